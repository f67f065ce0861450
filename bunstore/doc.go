// Package bunstore keeps conversation histories (lakesession.Session) in
// PostgreSQL or SQLite through Bun.
//
// A Store works on any bun.IDB: a *bun.DB, a bun.Conn or a bun.Tx, so it
// also works inside RunInTx. Create one Store per database and share it;
// Store.Session returns a cheap handle per session id. The tables are those
// of the Python openai-agents SQLAlchemySession (see package models), so a
// Go service and a Python agent can share them.
//
// # PostgreSQL
//
//	sqldb, err := sql.Open("pgx", "postgres://app@db.example.com/app?sslmode=verify-full")
//	if err != nil {
//		return err
//	}
//	db := bun.NewDB(sqldb, pgdialect.New())
//	store, err := bunstore.New(db)
//	if err != nil {
//		return err
//	}
//	if err := store.CreateTables(ctx); err != nil { // or run package migrations
//		return err
//	}
//	sess := store.Session("user-789")
//	err = sess.AddItems(ctx, []json.RawMessage{json.RawMessage(`{"role":"user","content":"Hello"}`)})
//	items, err := sess.GetItems(ctx, 20) // the latest 20, oldest first
//
// For Databricks Lakebase, open the *sql.DB with package connector, which
// logs in with short-lived tokens.
//
// # SQLite
//
// Package sqlitedb opens a file with the pure-Go driver and the settings a
// shared store needs (it is separate so that PostgreSQL users do not link
// SQLite):
//
//	db, err := sqlitedb.Open("sessions.db")
//	if err != nil {
//		return err
//	}
//	defer db.Close()
//	store, err := bunstore.New(db)
//
// # Inside a transaction
//
// A Store on a bun.Tx reads and writes in that transaction; methods that
// need a transaction of their own nest as a savepoint.
//
//	err := db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
//		store, err := bunstore.New(tx)
//		if err != nil {
//			return err
//		}
//		if err := store.Session(id).AddItems(ctx, items); err != nil {
//			return err
//		}
//		return recordUsage(ctx, tx, id) // the application's own writes, same transaction
//	})
//
// # Table names and schema
//
// WithTables and WithSchema choose other names (checked identifiers,
// quoted in SQL). On SQLite a schema is an attached database, which must be
// attached on the connection (sqlitedb.Open keeps a single one).
//
//	store, err := bunstore.New(db,
//		bunstore.WithSchema("agents"),
//		bunstore.WithTables("chat_sessions", "chat_messages"))
//
// # Guarantees
//
//   - One statement per call on PostgreSQL: AddItems upserts the session
//     row, touches updated_at and inserts the batch in one statement, also
//     on a session's first write. (Python's SQLAlchemySession takes five.)
//     On SQLite, AddItems and ClearSession are two statements in one
//     transaction.
//   - Order: items come back in (created_at, id) order, which is the order
//     in which batches committed and, within a batch, the caller's order.
//     Concurrent batches on one session are serialized by the session row's
//     lock and never interleave; a batch reads the clock after it holds
//     that lock, for the created_at all its rows share and for the
//     session's updated_at: ListSessions (newest first) puts the session
//     of a batch that waited before the sessions updated while it waited.
//   - created_at and updated_at come from the database server's clock, as
//     TIMESTAMP WITHOUT TIME ZONE in the connection's TimeZone (PostgreSQL)
//     or UTC (SQLite), as Python writes them. ListSessions and
//     DeleteSessions convert them to and from instants. Writers that share
//     a PostgreSQL database should use one TimeZone setting (normally the
//     server's default), or their wall-clock times will not compare.
//   - PopItem is atomic: concurrent pops return distinct items and lose
//     none.
//   - A stored item that is not valid JSON (written by another program) is
//     skipped by GetItems without counting toward limit, removed by PopItem,
//     which pops the next one, and reported to WithCorruptItemHandler or the
//     WithLogger logger.
//   - Bad input is refused before anything is written: invalid session ids
//     (lakesession.ErrInvalidSessionID), items that are not JSON objects or
//     not UTF-8 (lakesession.ErrInvalidItem), invalid options
//     (ErrInvalidConfig).
//   - Contexts: a call returns when its context ends, with an error that
//     wraps the context's error, and a batch is stored whole or not at all.
//     An error does not prove the batch absent: the statement may have
//     committed just before the cancellation arrived, and on PostgreSQL a
//     statement the server is still running (for example, waiting for a
//     lock) runs on unless the driver cancels it: with pgx, set
//     pgconn.Config.BuildContextWatcherHandler to a
//     pgconn.CancelRequestContextWatcherHandler.
//
// # Failures and retries
//
// On a *bun.DB with PostgreSQL, every call takes a connection of its own
// from the pool for each try, and tries again, on a fresh connection, when
// its statement certainly did not run or did not commit:
//
//   - no connection could be made: the server refused or reset the
//     connection, closed it during the login, timed out, or answered 57P03
//     (starting up), 57P01 or 57P02 (shutting down);
//   - the driver reports that nothing was sent: pgx's pgconn.SafeToRetry
//     errors, which reach database/sql as driver.ErrBadConn (from a driver
//     other than pgx's, AddItems and PopItem take driver.ErrBadConn for an
//     unknown outcome: lib/pq, for one, returns it after sending too);
//   - the server answered 57P01 or 57P02 (the backend was terminated, by
//     pg_terminate_backend or a shutdown), 57P03, 57P05 (the session had
//     reached idle_session_timeout), 25006 (a read-only server: a standby,
//     or a primary demoted by a failover), 40001 (serialization failure)
//     or 40P01 (deadlock). An error response means the statement's
//     transaction did not commit, except in pgx's simple protocol (below).
//
// After the connection broke once the statement had started to go out (an
// EOF, a reset or another network error while sending it or waiting for
// its answer, or a class 08 error from a pooler such as PgBouncer's
// "server conn crashed?"), the outcome is unknown. GetItems, ClearSession,
// ListSessions, CreateTables, DeleteSessions and PruneSessions are safe to
// repeat, and try again. (A ClearSession tried again clears again: a batch
// that another writer added, and was told was stored, between the lost
// first try and the retry is cleared too, as if it had come before the
// ClearSession.) AddItems and PopItem do not, since their statement
// may have committed: they return an error that wraps
// lakesession.ErrOutcomeUnknown and the cause, so that the application can
// read the session and reconcile instead of guessing. A write whose context
// ends while its statement is in flight returns ErrOutcomeUnknown too,
// unless the server answered (with pgx's
// CancelRequestContextWatcherHandler it answers 57014: not committed,
// except in the simple protocol, below).
//
//	err := sess.AddItems(ctx, items)
//	if errors.Is(err, lakesession.ErrOutcomeUnknown) {
//		// The batch may be stored or not: read the session before adding it again.
//	}
//
// DeleteSessions and PruneSessions retry batch by batch: each batch (a
// transaction of its own) and each read of a dry run is retried as a call
// is, with a WithMaxRetryWait budget of its own. A batch run again
// removes only what is still there, so repeating it is safe; what needs
// care is the count. When the connection broke after a batch's COMMIT was
// sent, the batch may have committed, and a plain retry would remove the
// next sessions in its place and leave it out of the result. So the retry
// first asks the server how that transaction ended (txid_status): it
// counts the batch if it committed and runs it again if not, and the
// result stays exact. Only when the server cannot tell in time (its
// transaction still runs when the budget or the context ends, or nothing
// is retried: WithMaxRetryWait(0), a bun.Conn) does the call stop, with an
// error that wraps lakesession.ErrOutcomeUnknown and says how many
// sessions and items that batch held: they are not counted and may or may
// not be removed, and running the job again removes what is left. A lost
// COMMIT thus neither fails a retention job nor makes it under-count.
//
// Nothing else is retried: the database's other errors (a constraint, a
// missing table, a statement timeout, a rejected login, a missing
// database), errors getting a token, and a closed *sql.DB are returned at
// once. No AddItems is ever sent twice unless the first try is known not
// to have committed, so a batch is never stored twice.
//
// Tries are spaced by a jittered exponential backoff (about 25 ms, doubling
// to 1 s) and bounded by the call's context and by WithMaxRetryWait
// (DefaultMaxRetryWait, 15 s): no try starts later than that after the
// call began. A try that opens a connection through package connector may
// itself wait out an outage for up to the connector's MaxConnectWait; the
// call's context bounds both. The error of a call that tried more than once
// says how many times and for how long, and wraps the last try's error.
//
// A connection that failed in a way that makes it unfit for more work (a
// network error, 25006, 57P01, 57P02, 57P03, 57P05, class 08) is closed
// instead of going back to the pool, so that a pool that reached a demoted
// primary does not keep failing. Package connector also discards such
// connections, and waits out short outages when it opens one.
//
// Nothing is retried on a bun.Tx (a retry would break the caller's
// transaction; a broken connection rolls all of it back, and its Commit
// says so, so no outcome there is unknown), on a bun.Conn or on any other
// bun.IDB; outside a transaction, a write's outcome can still be unknown
// there, and is reported as above. On SQLite nothing is retried: there is
// no connection to lose, and a database busy with another writer is
// waited for by the busy timeout that sqlitedb.Open sets (SQLITE_BUSY after
// it means the timeout passed).
//
// # How statements are sent
//
// On a *bun.DB, bun.Tx or bun.Conn, the store sends its statements through
// the database/sql handle underneath, with arguments bound by the driver:
// each statement's text is constant, so pgx prepares it once per connection
// and a call is one round trip, and a batch travels as one text[]
// parameter. On any other bun.IDB the statements go through Bun, which
// formats the arguments into the text; with pgx, use
// default_query_exec_mode=exec there, or every call prepares a new
// statement first. Such a statement carries no arguments, so pgx sends an
// AddItems in the simple protocol whatever the mode, where a broken
// connection can reach database/sql as driver.ErrBadConn (see below), and
// a *sql.DB underneath runs the statement again: pass the *bun.DB itself
// (or a bun.Tx or bun.Conn) where you can.
//
// Prefer any mode to pgx's simple protocol (simple_protocol,
// pgx.QueryExecModeSimpleProtocol): there pgx v5 reports a connection that
// broke after a statement was sent as if nothing had been sent
// (driver.ErrBadConn), and database/sql re-runs such a statement on
// another connection, so a write of your own can run twice. The store
// looks at the mode of its connections and does not take that error at
// its word: after it, AddItems and PopItem return an error wrapping
// lakesession.ErrOutcomeUnknown instead of retrying. In that protocol the
// server, too, can answer a statement that committed with an error: it
// commits, sends the statement's CommandComplete, and then, as it writes
// the statement's duration to its log (log_duration,
// log_min_duration_statement), acts on a termination or a cancel that came
// in during the commit, sending FATAL 57P01 or 57014, which pgx reports
// instead of the statement's result. So there 57P01, 57P02 and 57014 also
// leave AddItems' and PopItem's outcome unknown, as they do on a bun.IDB
// other than *bun.DB, bun.Tx and bun.Conn, whose statements are always
// sent that way. COMMIT is always sent in
// the simple protocol, so a retention batch whose COMMIT got one of them
// asks txid_status as after a broken connection.
//
// So Bun's query hooks (bunotel, bundebug, a bun.QueryHook of your own) do
// not see the store's statements, only the BEGIN and COMMIT around them
// and CreateTables' DDL: with its own hooks, Bun would have to format the arguments
// into the text, giving up the statements prepared once and the single
// round trip. Watch the store through its OpenTelemetry spans and metrics
// (below); for a span per statement, give pgx a tracer (otelpgx, or any
// pgx.QueryTracer) through package connector's Config.QueryTracer, or
// pgx.ConnConfig.Tracer: its spans nest under the store's.
//
// # Observability
//
// Every call makes one OpenTelemetry span, of kind client, a child of the
// span in its context, named lakesession.<Method>: lakesession.GetItems,
// lakesession.AddItems, lakesession.PopItem, lakesession.ClearSession,
// lakesession.ListSessions, lakesession.CreateTables,
// lakesession.DeleteSessions and lakesession.PruneSessions (one span for
// all the batches of a call). Its attributes follow OpenTelemetry's
// database conventions:
//
//   - db.system.name: postgresql or sqlite;
//   - db.collection.name: the messages table (GetItems, AddItems, PopItem)
//     or the sessions table (ClearSession, ListSessions, DeleteSessions,
//     PruneSessions); none for CreateTables, which creates both;
//   - db.operation.name: the SQL command of the call's main statement
//     (SELECT, INSERT, DELETE, CREATE TABLE); SELECT for a PruneSessions
//     dry run;
//   - db.namespace: on PostgreSQL, the schema qualified by the database
//     name, as the conventions for PostgreSQL write it (database.schema
//     with WithSchema, the database alone without): the database is that
//     of the *bun.DB's connections, learned from the first one the store
//     takes (on a bun.Tx, bun.Conn or other bun.IDB it is not known, and
//     the attribute is left out); on SQLite, the WithSchema name (an
//     attached database, such as main), when set;
//   - lakesession.items and lakesession.bytes (AddItems, GetItems): the
//     items stored or returned, and their size as compact JSON;
//   - lakesession.sessions, lakesession.items and lakesession.batches
//     (DeleteSessions, PruneSessions): the sessions removed, their items,
//     and the batches that removed at least one; on failure, those of the
//     batches known to have committed; on a dry run, what would be
//     removed, with lakesession.dry_run true;
//   - lakesession.retries: the tries after the first, on a call that was
//     retried (for DeleteSessions and PruneSessions, over all batches);
//   - lakesession.session.id: the session id, only with
//     WithSessionIDAttribute(true), since ids can identify people;
//   - on failure: status Error, whose description is the error without
//     the session id, error.type, and db.response.status_code when the
//     database answered with an error.
//
// error.type is the SQLSTATE of the database's error ("57P01", "23505"),
// else lakesession.ErrOutcomeUnknown, lakesession.ErrInvalidSessionID,
// lakesession.ErrInvalidItem or bunstore.ErrInvalidCursor, else
// context.DeadlineExceeded, context.Canceled, driver.ErrBadConn,
// sql.ErrConnDone, io.ErrUnexpectedEOF or io.EOF, else the Go type of the
// innermost error ("*net.OpError", "*pgconn.ConnectError"), and "_OTHER"
// for an error with no type of its own. An ErrOutcomeUnknown comes first:
// it is what the caller must act on.
//
// Metrics:
//
//   - lakesession.operation.duration (histogram, s): the duration of each
//     call, retries included, with lakesession.operation (the method),
//     db.system.name, and error.type on failure; buckets from 0.5 ms to
//     20 s;
//   - lakesession.items.added (counter, {item}): items stored by AddItems,
//     with db.system.name;
//   - lakesession.items.corrupt (counter, {item}): stored items found not
//     valid JSON, with db.system.name;
//   - lakesession.retries (counter, {retry}): tries after a call's first,
//     with lakesession.operation, db.system.name and the error.type of the
//     failure that was retried.
//
// No span, event, metric or status holds an item's content; the session id
// only as said above, and never in metrics.
//
// The providers are the global ones as New finds them
// (otel.GetTracerProvider, otel.GetMeterProvider), unless
// WithTracerProvider or WithMeterProvider is given. Until the application
// installs an SDK nothing is recorded, and a call pays only for starting
// a span that does nothing (the store builds no attribute for a span that
// is not recording); the global providers forward to an SDK installed
// after New.
//
//	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exporter))
//	otel.SetTracerProvider(tp) // or bunstore.WithTracerProvider(tp)
//	store, err := bunstore.New(db)
//
// # Listing and retention
//
//	page, err := store.ListSessions(ctx, bunstore.ListOptions{Limit: 50})
//	for _, s := range page.Sessions {
//		fmt.Println(s.ID, s.UpdatedAt)
//	}
//	next, err := store.ListSessions(ctx, bunstore.ListOptions{Limit: 50, Cursor: page.NextCursor})
//
//	n, err := store.DeleteSessions(ctx, time.Now().AddDate(0, 0, -30)) // idle for 30 days
//
//	res, err := store.PruneSessions(ctx, bunstore.PruneOptions{
//		Before:    time.Now().AddDate(0, 0, -30),
//		BatchSize: 500, // sessions per transaction; at most 1,000
//		Progress:  func(p bunstore.PruneProgress) { log.Printf("%d sessions so far", p.Total.Sessions) },
//	})
//
// Both delete in batches, each a short transaction on a *bun.DB (inside
// the caller's transaction on a bun.Tx), and never part of a session: a
// batch locks its session rows before it deletes their items, so a
// session written to meanwhile is kept whole or deleted whole. See
// PruneSessions.
//
// # Sharing the tables with Python
//
// Rows written by SQLAlchemySession read back here in its order, and rows
// written here read back through its queries. CreateTables and the
// migrations keep tables Python created (id SERIAL instead of BIGINT) and
// add the (session_id, created_at, id) index reads use. Python stamps a
// batch with its transaction's start time rather than after taking the
// session's lock, so batches it writes concurrently with others may sort
// before batches that committed earlier.
package bunstore
