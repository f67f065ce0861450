// Package agent is the HTTP side of the agent server example: a Handler that
// serves POST /invocations in the shape of the Databricks agent template,
// keeping each conversation in a lakesession.Session through openaisession
// (typed openai-go items), running the tools the model calls, and the models
// that answer: OpenAIModel for any OpenAI-compatible endpoint
// (NewDatabricksModel makes one for a Databricks model serving endpoint,
// authenticated by the Databricks SDK), and OfflineModel, a small rule-based
// stand-in that needs no network and says so in every reply. WeatherTool is
// the example's tool, get_weather(city), answered from a fixed table of demo
// data.
//
// # A turn
//
// The request names the new input items and, optionally, the session:
//
//	{"input": [{"role": "user", "content": "What's the weather where I live?"}],
//	 "custom_inputs": {"session_id": "..."}, "stream": false}
//
// Without a session id a new one (a UUIDv7) is made. The input items must be
// Responses-API items (openaisession.Decode reads them) that the model can
// take as they are: a tool output needs its call earlier in the input, a
// call its output later in it. The handler then
//
//   - reads the history with openaisession.Session.History: the latest
//     Handler.HistoryLimit items (or all), passed through
//     lakesession.RepairHistory, so that a window which cuts a call from its
//     output never sends the model the orphaned half;
//   - calls the model with the history, the input and Handler.Tools;
//   - when the model calls tools, runs each (an unknown tool or a tool error
//     becomes an "error: ..." output the model reads), adds the call and its
//     function_call_output to the conversation and calls the model again, at
//     most Handler.MaxModelCalls times (DefaultMaxModelCalls, 5) in the turn;
//   - stores the input items, the calls, their outputs and the final
//     assistant message, in that order, with one AddItems, so a turn is
//     stored whole or not at all, in one batch.
//
// The answer carries every item the turn produced and the session id:
//
//	{"object": "response", "status": "completed", "model": "...",
//	 "output": [{"type": "function_call", "name": "get_weather", "arguments": "{\"city\":\"SF\"}", "call_id": "call_..."},
//	            {"type": "function_call_output", "call_id": "call_...", "output": "{\"city\":\"SF\",\"sky\":\"fog\",...}"},
//	            {"type": "message", "role": "assistant", "content": [...]}],
//	 "custom_outputs": {"session_id": "..."}}
//
// With "stream": true the answer is a stream of server-sent events in the
// shapes of the Responses API (response.created; for a call
// response.output_item.added, response.function_call_arguments.delta and
// .done, response.output_item.done; for its output response.output_item.added
// and .done; for the message response.output_item.added,
// response.output_text.delta, ..., response.output_item.done;
// response.completed), each item with its output_index; the completed
// response carries the session id and is sent only once the turn is stored.
//
// # Errors
//
// A bad request (body not JSON, no input, an item that is not a
// Responses-API item, a tool output without its call, an invalid session
// id, ...) is answered with 400 and a JSON body
// {"error": {"type": "invalid_request_error", "message": "..."}} that says what
// to fix; a storage failure with 503; a model failure, or a model that still
// calls tools after Handler.MaxModelCalls calls, with 502. In each case
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
//		Tools:    []agent.Tool{agent.WeatherTool()},
//	}
//	http.ListenAndServe("127.0.0.1:8000", h)
//
// With a real model, called through Chat Completions (which Databricks
// serving endpoints speak) with the tools as function tools:
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
//
// # Models and tools of your own
//
// A Model returns output items for a Request: FunctionCall items for the
// tools it calls, or an AssistantMessage. A Tool is a name, a description, a
// JSON Schema of its arguments and a function:
//
//	clock := agent.Tool{
//		Name:        "get_time",
//		Description: "Returns the current time in UTC.",
//		Parameters:  map[string]any{"type": "object", "properties": map[string]any{}},
//		Call: func(ctx context.Context, arguments string) (string, error) {
//			return time.Now().UTC().Format(time.RFC3339), nil
//		},
//	}
//	h.Tools = append(h.Tools, clock)
package agent
