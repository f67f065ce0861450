// Package lakesession gives AI agents persistent conversation memory on
// Databricks Lakebase, on any PostgreSQL, or on an embedded SQLite file.
//
// This root package holds the small Session interface, the protocol every
// store implements, and its errors. The packages under it implement or feed it:
//
//   - bunstore: the Store and its Sessions, on any bun.IDB (PostgreSQL, SQLite).
//   - models, migrations: the Bun models and the embedded SQL migrations of the
//     agent_sessions and agent_messages tables, shared with the Python
//     SQLAlchemySession.
//   - lakebasecred: finds a Lakebase database and mints and caches its tokens.
//   - connector: a database/sql driver.Connector that logs in with those tokens.
//   - sessiontest: the conformance suite any Session implementation can run.
//
// # The protocol
//
// A Session is the history of one session id, as a list of JSON objects
// (Responses-API input items):
//
//	sess := store.Session("user-789")
//	err := sess.AddItems(ctx, []json.RawMessage{
//		json.RawMessage(`{"role":"user","content":"Hello I live in SF!"}`),
//	})
//	items, err := sess.GetItems(ctx, 20) // the latest 20, oldest first
//	last, err := sess.PopItem(ctx)       // nil when the session is empty
//	err = sess.ClearSession(ctx)
//
// # Sending a window to a model
//
// The latest items of a history can cut a tool call from its output, or a
// reasoning item from the message it led to, and the OpenAI Responses API
// rejects such a list. RepairHistory drops those items, and only those,
// without reordering or rewriting the others:
//
//	items, err := sess.GetItems(ctx, 20)
//	input := lakesession.RepairHistory(items) // no output without its call, no call without its output
//
// Module github.com/lakesession/lakesession/openaisession does this for
// openai-go users, with typed items (its History method).
//
// # Errors
//
// Bad input is reported with sentinels checked by errors.Is:
// ErrInvalidSessionID and ErrInvalidItem. Nothing is written when they are
// returned. Storage failures come back wrapped with the operation and the
// session id; no error ever contains a password or token.
package lakesession
