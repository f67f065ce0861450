package agent_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/openai/openai-go/v3/option"

	"github.com/lakesession/lakesession/examples/agentserver/agent"
)

// chatMessage is a chat completions message as the fake endpoint reads it.
type chatMessage struct {
	Role       string `json:"role"`
	Content    any    `json:"content"`
	ToolCallID string `json:"tool_call_id"`
	ToolCalls  []struct {
		ID       string `json:"id"`
		Function struct {
			Name      string `json:"name"`
			Arguments string `json:"arguments"`
		} `json:"function"`
	} `json:"tool_calls"`
}

// chatTool is a tool offered to the fake endpoint.
type chatTool struct {
	Type     string `json:"type"`
	Function struct {
		Name       string         `json:"name"`
		Parameters map[string]any `json:"parameters"`
	} `json:"function"`
}

// fakeOpenAI is an OpenAI-compatible chat completions endpoint. Asked about
// the weather with a get_weather tool offered, it says "Let me look that
// up." and calls get_weather({"city":"SF"}); given a tool message last, it
// quotes it; otherwise its reply says how many messages it was sent and
// quotes the last one. A last message "fail" is answered with 500.
type fakeOpenAI struct {
	srv *httptest.Server

	mu       sync.Mutex
	requests [][]chatMessage
	tools    [][]chatTool
}

func newFakeOpenAI(t *testing.T) *fakeOpenAI {
	f := &fakeOpenAI{}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/chat/completions" {
			http.Error(w, `{"error":{"message":"no such route"}}`, http.StatusNotFound)
			return
		}
		if r.Header.Get("Authorization") != "Bearer test-key" {
			http.Error(w, `{"error":{"message":"bad key"}}`, http.StatusUnauthorized)
			return
		}
		var req struct {
			Model    string        `json:"model"`
			Messages []chatMessage `json:"messages"`
			Tools    []chatTool    `json:"tools"`
			Stream   bool          `json:"stream"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Model != "test-model" {
			http.Error(w, `{"error":{"message":"bad request"}}`, http.StatusBadRequest)
			return
		}
		f.mu.Lock()
		f.requests = append(f.requests, req.Messages)
		f.tools = append(f.tools, req.Tools)
		f.mu.Unlock()
		last := req.Messages[len(req.Messages)-1]
		if last.Content == "fail" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusInternalServerError)
			fmt.Fprint(w, `{"error":{"message":"the model is down","type":"server_error"}}`)
			return
		}
		reply := fmt.Sprintf("I was sent %d messages; the last: %v", len(req.Messages), last.Content)
		var callWeather bool
		switch {
		case last.Role == "tool":
			reply = fmt.Sprintf("The tool said: %v", last.Content)
		case last.Role == "user" && strings.Contains(fmt.Sprint(last.Content), "weather"):
			for _, t := range req.Tools {
				callWeather = callWeather || (t.Type == "function" && t.Function.Name == "get_weather")
			}
			if callWeather {
				reply = "Let me look that up."
			}
		}
		const callID, args = "call_fake", `{"city":"SF"}`
		finish := "stop"
		if callWeather {
			finish = "tool_calls"
		}
		if !req.Stream {
			msg := map[string]any{"role": "assistant", "content": reply}
			if callWeather {
				msg["tool_calls"] = []any{map[string]any{
					"id": callID, "type": "function",
					"function": map[string]any{"name": "get_weather", "arguments": args},
				}}
			}
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(map[string]any{
				"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": req.Model,
				"choices": []any{map[string]any{"index": 0, "finish_reason": finish, "message": msg}},
			})
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		chunk := func(delta map[string]any, finish any) {
			b, _ := json.Marshal(map[string]any{
				"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": req.Model,
				"choices": []any{map[string]any{"index": 0, "delta": delta, "finish_reason": finish}},
			})
			fmt.Fprintf(w, "data: %s\n\n", b)
			w.(http.Flusher).Flush()
		}
		chunk(map[string]any{"role": "assistant", "content": ""}, nil)
		for _, word := range strings.SplitAfter(reply, " ") {
			chunk(map[string]any{"content": word}, nil)
		}
		if callWeather {
			// The call in pieces, as endpoints stream it.
			chunk(map[string]any{"tool_calls": []any{map[string]any{
				"index": 0, "id": callID, "type": "function",
				"function": map[string]any{"name": "get_weather", "arguments": ""},
			}}}, nil)
			for _, piece := range []string{args[:8], args[8:]} {
				chunk(map[string]any{"tool_calls": []any{map[string]any{
					"index": 0, "function": map[string]any{"arguments": piece},
				}}}, nil)
			}
		}
		chunk(map[string]any{}, finish)
		fmt.Fprint(w, "data: [DONE]\n\n")
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeOpenAI) lastRequest(t *testing.T) []chatMessage {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.requests) == 0 {
		t.Fatal("the model endpoint was not called")
	}
	return f.requests[len(f.requests)-1]
}

// take returns the messages and tools of the requests since the last take.
func (f *fakeOpenAI) take() ([][]chatMessage, [][]chatTool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, tl := f.requests, f.tools
	f.requests, f.tools = nil, nil
	return r, tl
}

func (f *fakeOpenAI) model(t *testing.T) *agent.OpenAIModel {
	t.Helper()
	m, err := agent.NewOpenAIModel(agent.OpenAIConfig{
		BaseURL:      f.srv.URL + "/v1/",
		APIKey:       "test-key",
		Model:        "test-model",
		Instructions: "Be brief.",
		Options:      []option.RequestOption{option.WithMaxRetries(0)},
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func roles(msgs []chatMessage) string {
	var r []string
	for _, m := range msgs {
		r = append(r, m.Role)
	}
	return strings.Join(r, ",")
}

func TestOpenAIModelThroughHandler(t *testing.T) {
	fake := newFakeOpenAI(t)
	e := newTestEnv(t, fake.model(t))

	first := e.turn(t, "", "Hello I live in SF!")
	sid := first.CustomOutputs.SessionID
	if first.Model != "test-model" {
		t.Errorf("model = %q", first.Model)
	}
	firstText := outputText(t, first.Output[0])
	if firstText != "I was sent 2 messages; the last: Hello I live in SF!" {
		t.Errorf("first reply %q", firstText)
	}
	if got := roles(fake.lastRequest(t)); got != "system,user" {
		t.Errorf("first request roles %s, want system,user", got)
	}

	// The second turn is streamed; the model gets the history.
	events := e.streamTurn(t, requestBody(t, sid, "What city did I say I live in?", true))
	msgs := fake.lastRequest(t)
	if got := roles(msgs); got != "system,user,assistant,user" {
		t.Fatalf("second request roles %s, want system,user,assistant,user", got)
	}
	if msgs[0].Content != "Be brief." || msgs[1].Content != "Hello I live in SF!" ||
		msgs[2].Content != firstText || msgs[3].Content != "What city did I say I live in?" {
		t.Errorf("second request messages %+v", msgs)
	}
	var deltas int
	for _, ev := range events {
		if ev.name == "response.output_text.delta" {
			deltas++
		}
	}
	last := events[len(events)-1]
	var completed response
	if err := json.Unmarshal(last.data["response"], &completed); err != nil {
		t.Fatal(err)
	}
	want := "I was sent 4 messages; the last: What city did I say I live in?"
	if last.name != "response.completed" || completed.CustomOutputs.SessionID != sid || outputText(t, completed.Output[0]) != want {
		t.Fatalf("stream ends with %s", last.raw)
	}
	if deltas < 5 {
		t.Errorf("%d deltas; the endpoint's chunks were not streamed through", deltas)
	}
	items := e.items(t, sid)
	if len(items) != 4 || outputText(t, items[3]) != want {
		t.Errorf("stored %s", items)
	}

	// Function calls from an agent with tools sharing the session become tool
	// calls and tool messages; the reasoning item that led to them is left
	// out.
	status, _, body := e.post(t, `{"custom_inputs":{"session_id":"`+sid+`"},"input":[
		{"type":"reasoning","id":"rs_1","summary":[]},
		{"type":"function_call","call_id":"c1","name":"weather","arguments":"{\"city\":\"SF\"}"},
		{"type":"function_call","call_id":"c2","name":"time","arguments":"{}"},
		{"type":"function_call_output","call_id":"c1","output":"foggy"},
		{"type":"function_call_output","call_id":"c2","output":[{"type":"input_text","text":"noon"}]},
		{"role":"user","content":[{"type":"input_text","text":"Summarize."}]}]}`)
	if status != http.StatusOK {
		t.Fatalf("tool turn: %d %s", status, body)
	}
	msgs = fake.lastRequest(t)
	if got := roles(msgs); got != "system,user,assistant,user,assistant,assistant,tool,tool,user" {
		t.Fatalf("tool turn roles %s", got)
	}
	calls := msgs[5]
	if len(calls.ToolCalls) != 2 || calls.ToolCalls[0].ID != "c1" || calls.ToolCalls[0].Function.Name != "weather" ||
		calls.ToolCalls[0].Function.Arguments != `{"city":"SF"}` || calls.ToolCalls[1].ID != "c2" || calls.Content != nil {
		t.Errorf("tool calls %+v", calls)
	}
	if msgs[6].ToolCallID != "c1" || msgs[6].Content != "foggy" || msgs[7].ToolCallID != "c2" || msgs[7].Content != "noon" ||
		msgs[8].Content != "Summarize." {
		t.Errorf("tool messages %+v", msgs[6:])
	}
	if n := len(e.items(t, sid)); n != 4+7 {
		t.Errorf("stored %d items after the tool turn, want 11", n)
	}

	// A history window that starts between a call and its output is
	// repaired: the output whose call is cut off is left out, and so is
	// the call c2 the window starts with, since the reasoning item that
	// led to it (before c1) is cut off too; its output goes with it.
	e.h.HistoryLimit = 5 // fc c2, out c1, out c2, user, assistant
	status, _, body = e.post(t, `{"custom_inputs":{"session_id":"`+sid+`"},"input":[{"role":"user","content":"And now?"}]}`)
	if status != http.StatusOK {
		t.Fatalf("windowed turn: %d %s", status, body)
	}
	msgs = fake.lastRequest(t)
	if got := roles(msgs); got != "system,user,assistant,user" {
		t.Fatalf("windowed turn roles %s", got)
	}
	if msgs[1].Content != "Summarize." {
		t.Errorf("windowed turn starts with %+v; want the user's Summarize.", msgs[1])
	}

	// A window that starts with that reasoning item keeps both pairs (the
	// chat model is not sent the reasoning).
	e.h.HistoryLimit = 9 // rs, fc c1, fc c2, out c1, out c2, user, assistant, user, assistant
	status, _, body = e.post(t, `{"custom_inputs":{"session_id":"`+sid+`"},"input":[{"role":"user","content":"And then?"}]}`)
	if status != http.StatusOK {
		t.Fatalf("windowed turn: %d %s", status, body)
	}
	msgs = fake.lastRequest(t)
	if got := roles(msgs); got != "system,assistant,tool,tool,user,assistant,user,assistant,user" {
		t.Fatalf("windowed turn roles %s", got)
	}
	if len(msgs[1].ToolCalls) != 2 || msgs[1].ToolCalls[0].ID != "c1" || msgs[1].ToolCalls[1].ID != "c2" || msgs[2].ToolCallID != "c1" || msgs[3].ToolCallID != "c2" {
		t.Errorf("windowed turn kept %+v; want both pairs", msgs[1:4])
	}
}

// TestOpenAIModelToolRoundTrip: the model gets get_weather as a function
// tool, calls it, and answers from its output, streamed or not.
func TestOpenAIModelToolRoundTrip(t *testing.T) {
	for _, stream := range []bool{false, true} {
		t.Run(fmt.Sprint("stream=", stream), func(t *testing.T) {
			fake := newFakeOpenAI(t)
			e := newTestEnv(t, fake.model(t))
			sid := e.turn(t, "", "Hello I live in SF!").CustomOutputs.SessionID
			fake.take()

			status, _, body := e.post(t, requestBody(t, sid, "What's the weather where I live?", stream))
			if status != http.StatusOK {
				t.Fatalf("%d %s", status, body)
			}
			var r response
			if !stream {
				if err := json.Unmarshal(body, &r); err != nil {
					t.Fatal(err)
				}
			} else {
				events := readEvents(t, body)
				var names []string
				for _, ev := range events {
					name := ev.name
					if raw, ok := ev.data["output_index"]; ok {
						name += "[" + string(raw) + "]"
					}
					if len(names) > 0 && names[len(names)-1] == name && strings.HasSuffix(ev.name, ".delta") {
						continue
					}
					names = append(names, name)
				}
				want := []string{
					"response.created", "response.in_progress",
					// The text before the call, streamed and ended before the call.
					"response.output_item.added[0]", "response.content_part.added[0]", "response.output_text.delta[0]",
					"response.output_text.done[0]", "response.content_part.done[0]", "response.output_item.done[0]",
					"response.output_item.added[1]", "response.function_call_arguments.delta[1]",
					"response.function_call_arguments.done[1]", "response.output_item.done[1]",
					"response.output_item.added[2]", "response.output_item.done[2]",
					"response.output_item.added[3]", "response.content_part.added[3]", "response.output_text.delta[3]",
					"response.output_text.done[3]", "response.content_part.done[3]", "response.output_item.done[3]",
					"response.completed",
				}
				if strings.Join(names, " ") != strings.Join(want, " ") {
					t.Fatalf("events:\n%s\nwant:\n%s", strings.Join(names, "\n"), strings.Join(want, "\n"))
				}
				if err := json.Unmarshal(events[len(events)-1].data["response"], &r); err != nil {
					t.Fatal(err)
				}
			}

			if got := kinds(t, r.Output); got != "message,function_call,function_call_output,message" {
				t.Fatalf("output %s", got)
			}
			call, out := head(t, r.Output[1]), head(t, r.Output[2])
			if outputText(t, r.Output[0]) != "Let me look that up." || call.CallID != "call_fake" || call.Name != "get_weather" ||
				call.Arguments != `{"city":"SF"}` || out.CallID != "call_fake" {
				t.Errorf("output %s", r.Output)
			}
			final := outputText(t, r.Output[3])
			if !strings.HasPrefix(final, "The tool said: ") || !strings.Contains(final, `"sky":"fog"`) {
				t.Errorf("final answer %q", final)
			}

			reqs, tools := fake.take()
			if len(reqs) != 2 {
				t.Fatalf("%d requests to the endpoint, want 2", len(reqs))
			}
			for i, tl := range tools {
				if len(tl) != 1 || tl[0].Type != "function" || tl[0].Function.Name != "get_weather" ||
					tl[0].Function.Parameters["type"] != "object" {
					t.Errorf("request %d offered the tools %+v", i, tl)
				}
			}
			second := reqs[1]
			if got := roles(second); got != "system,user,assistant,user,assistant,tool" {
				t.Fatalf("second request roles %s", got)
			}
			asst, tool := second[4], second[5]
			if asst.Content != "Let me look that up." || len(asst.ToolCalls) != 1 || asst.ToolCalls[0].ID != "call_fake" ||
				asst.ToolCalls[0].Function.Arguments != `{"city":"SF"}` || tool.ToolCallID != "call_fake" ||
				!strings.Contains(fmt.Sprint(tool.Content), `"sky":"fog"`) {
				t.Errorf("second request: %+v, %+v", asst, tool)
			}

			stored := e.items(t, sid)
			if got := kinds(t, stored); got != "message,message,message,message,function_call,function_call_output,message" {
				t.Errorf("stored %s", got)
			}
			for i, raw := range r.Output {
				if !sameJSON(t, string(stored[3+i]), string(raw)) {
					t.Errorf("stored %s, answered %s", stored[3+i], raw)
				}
			}
		})
	}
}

func TestOpenAIModelHistoryLimit(t *testing.T) {
	fake := newFakeOpenAI(t)
	e := newTestEnv(t, fake.model(t))
	e.h.HistoryLimit = 2
	for i := range 3 {
		e.turn(t, "limited", fmt.Sprintf("message %d", i))
	}
	// History: the latest 2 of 4 items (the second turn), then the input.
	msgs := fake.lastRequest(t)
	if got := roles(msgs); got != "system,user,assistant,user" || msgs[1].Content != "message 1" {
		t.Errorf("with HistoryLimit 2 the model got %+v", msgs)
	}
	if n := len(e.items(t, "limited")); n != 6 {
		t.Errorf("stored %d items, want 6: the limit is on what the model sees, not on storage", n)
	}
}

func TestOpenAIModelFailure(t *testing.T) {
	fake := newFakeOpenAI(t)
	e := newTestEnv(t, fake.model(t))
	e.turn(t, "s", "Hello")
	before, beforeMsgs := e.counts(t)

	status, ctype, body := e.post(t, requestBody(t, "s", "fail", false))
	if status != http.StatusBadGateway || ctype != "application/json" || !strings.Contains(string(body), `"type":"model_error"`) {
		t.Errorf("model failure answered %d %s %s, want 502 model_error", status, ctype, body)
	}
	if strings.Contains(string(body), "test-key") {
		t.Errorf("the API key leaked into the error: %s", body)
	}
	events := e.streamTurn(t, requestBody(t, "s", "fail", true))
	last := events[len(events)-1]
	if last.name != "response.failed" || !strings.Contains(last.raw, `"code":"model_error"`) {
		t.Errorf("streamed model failure ends with %s", last.raw)
	}
	if s, m := e.counts(t); s != before || m != beforeMsgs {
		t.Errorf("a failed model call stored something: %d sessions, %d messages", s, m)
	}
}

func TestNewOpenAIModelNeedsModel(t *testing.T) {
	_, err := agent.NewOpenAIModel(agent.OpenAIConfig{BaseURL: "http://127.0.0.1:1/v1/"})
	if err == nil || !strings.Contains(err.Error(), "OPENAI_MODEL") {
		t.Errorf("NewOpenAIModel without a model: %v", err)
	}
}
