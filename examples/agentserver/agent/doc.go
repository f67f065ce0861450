// Package agent is the HTTP side of the agent server example: a Handler that
// serves POST /invocations in the shape of the Databricks agent template,
// keeping each conversation in a lakesession.Session, and the models that
// answer: OpenAIModel for any OpenAI-compatible endpoint (NewDatabricksModel
// makes one for a Databricks model serving endpoint, authenticated by the
// Databricks SDK), and OfflineModel, a small rule-based stand-in that needs
// no network and says so in every reply.
//
// # A turn
//
// The request names the new input items and, optionally, the session:
//
//	{"input": [{"role": "user", "content": "Hello I live in SF!"}],
//	 "custom_inputs": {"session_id": "..."}, "stream": false}
//
// Without a session id a new one (a UUIDv7) is made. The handler reads the
// session's history (the latest Handler.HistoryLimit items, or all), gives the
// model the history followed by the new input, and stores the new input
// items and the model's output item with one AddItems, so a turn is stored
// whole or not at all. The answer carries the session id:
//
//	{"object": "response", "status": "completed", "model": "...",
//	 "output": [{"type": "message", "role": "assistant", "content": [...]}],
//	 "custom_outputs": {"session_id": "..."}}
//
// With "stream": true the answer is a stream of server-sent events in the
// shapes of the Responses API (response.created, response.output_item.added,
// response.output_text.delta, ..., response.output_item.done,
// response.completed); the completed response carries the session id and is
// sent only once the turn is stored.
//
// # Errors
//
// A bad request (body not JSON, no input, an item that is not a JSON object,
// an invalid session id, ...) is answered with 400 and a JSON body
// {"error": {"type": "invalid_request_error", "message": "..."}} that says what
// to fix; a storage failure with 503; a model failure with 502. In each case
// nothing of the turn is stored. A streamed turn that fails after the stream
// has begun ends with a response.failed event instead.
//
// # Use
//
//	store, err := bunstore.New(db)
//	if err != nil { ... }
//	if err := store.CreateTables(ctx); err != nil { ... }
//	h := &agent.Handler{
//		Sessions: func(id string) lakesession.Session { return store.Session(id) },
//		Model:    agent.OfflineModel{},
//	}
//	http.ListenAndServe("127.0.0.1:8000", h)
//
// With a real model:
//
//	m, err := agent.NewOpenAIModel(agent.OpenAIConfig{
//		BaseURL: "https://<workspace-host>/serving-endpoints", // or empty for OpenAI
//		APIKey:  token,
//		Model:   "databricks-claude-sonnet-4",
//	})
//
// or, with the Databricks SDK's authentication:
//
//	w, err := databricks.NewWorkspaceClient()
//	m, err := agent.NewDatabricksModel(agent.DatabricksConfig{
//		Workspace: w,
//		Endpoint:  "databricks-claude-sonnet-4",
//	})
package agent
