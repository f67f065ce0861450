package agent_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/lakesession/lakesession"
	"github.com/lakesession/lakesession/examples/agentserver/agent"
)

// recordingModel passes each request on to a model and records the items
// it was sent, as JSON.
type recordingModel struct {
	agent.Model
	mu    sync.Mutex
	sent  [][]json.RawMessage
	tools [][]string
}

func (m *recordingModel) Respond(ctx context.Context, req agent.Request) ([]agent.Item, error) {
	var raws []json.RawMessage
	for _, it := range req.Items {
		raws = append(raws, json.RawMessage(encodeItem(it)))
	}
	var names []string
	for _, t := range req.Tools {
		names = append(names, t.Name)
	}
	m.mu.Lock()
	m.sent = append(m.sent, raws)
	m.tools = append(m.tools, names)
	m.mu.Unlock()
	return m.Model.Respond(ctx, req)
}

// take returns the requests recorded since the last take.
func (m *recordingModel) take() [][]json.RawMessage {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.sent
	m.sent, m.tools = nil, nil
	return s
}

func encodeItem(it agent.Item) string {
	b, err := json.Marshal(it)
	if err != nil {
		return fmt.Sprintf(`{"encode_error":%q}`, err)
	}
	return string(b)
}

// funcModel is a model scripted by a function.
type funcModel func(ctx context.Context, req agent.Request) ([]agent.Item, error)

func (funcModel) Name() string { return "scripted-model" }
func (f funcModel) Respond(ctx context.Context, req agent.Request) ([]agent.Item, error) {
	return f(ctx, req)
}

// itemHead is the part of an item the tests below read.
type itemHead struct {
	Type      string          `json:"type"`
	Role      string          `json:"role"`
	ID        string          `json:"id"`
	CallID    string          `json:"call_id"`
	Name      string          `json:"name"`
	Arguments string          `json:"arguments"`
	Output    json.RawMessage `json:"output"`
}

func head(t *testing.T, raw json.RawMessage) itemHead {
	t.Helper()
	var h itemHead
	if err := json.Unmarshal(raw, &h); err != nil {
		t.Fatalf("item %s: %v", raw, err)
	}
	if h.Type == "" && h.Role != "" {
		h.Type = "message"
	}
	return h
}

func kinds(t *testing.T, raws []json.RawMessage) string {
	t.Helper()
	var k []string
	for _, r := range raws {
		k = append(k, head(t, r).Type)
	}
	return strings.Join(k, ",")
}

// checkNoOrphans fails t if items, as sent to a model, hold a tool output
// whose call is not earlier, or a call whose output is not later.
func checkNoOrphans(t *testing.T, items []json.RawMessage) {
	t.Helper()
	calls, outputs := map[string]int{}, map[string]int{}
	for i, raw := range items {
		h := head(t, raw)
		switch h.Type {
		case "function_call":
			calls[h.CallID] = i
		case "function_call_output":
			c, ok := calls[h.CallID]
			if !ok || c > i {
				t.Errorf("item %d is a function_call_output whose call %q is not earlier: %s", i, h.CallID, kinds(t, items))
			}
			outputs[h.CallID] = i
		}
	}
	for id, i := range calls {
		if o, ok := outputs[id]; !ok || o < i {
			t.Errorf("the function_call %q at %d has no output after it: %s", id, i, kinds(t, items))
		}
	}
	if kept := lakesession.RepairHistory(items); len(kept) != len(items) {
		t.Errorf("RepairHistory drops %d of the %d items sent to the model", len(items)-len(kept), len(items))
	}
}

// demoTurns holds the three turns of make demo in one session and returns
// the session id and the answers.
func demoTurns(t *testing.T, e *testEnv) (string, [3]response) {
	t.Helper()
	var rs [3]response
	rs[0] = e.turn(t, "", "Hello I live in SF!")
	sid := rs[0].CustomOutputs.SessionID
	rs[1] = e.turn(t, sid, "What city did I say I live in?")
	status, _, body := e.post(t, requestBody(t, sid, "What's the weather where I live?", false))
	if status != http.StatusOK {
		t.Fatalf("weather turn: %d %s", status, body)
	}
	if err := json.Unmarshal(body, &rs[2]); err != nil {
		t.Fatal(err)
	}
	return sid, rs
}

func TestToolTurn(t *testing.T) {
	rec := &recordingModel{Model: agent.OfflineModel{}}
	e := newTestEnv(t, rec)
	calls := &callLog{}
	sessions := e.h.Sessions
	e.h.Sessions = func(id string) lakesession.Session { return loggedSession{sessions(id), calls} }

	sid, rs := demoTurns(t, e)
	weather := rs[2]
	if weather.Status != "completed" || len(weather.Output) != 3 {
		t.Fatalf("weather turn: %s output items, status %s: %s", fmt.Sprint(len(weather.Output)), weather.Status, weather.Output)
	}
	if got := kinds(t, weather.Output); got != "function_call,function_call_output,message" {
		t.Fatalf("weather turn output %s", got)
	}
	call, out := head(t, weather.Output[0]), head(t, weather.Output[1])
	if call.Name != "get_weather" || call.Arguments != `{"city":"SF"}` || call.CallID == "" || !strings.HasPrefix(call.ID, "fc_") {
		t.Errorf("the call %s", weather.Output[0])
	}
	if out.CallID != call.CallID || !strings.Contains(string(out.Output), `\"sky\":\"fog\"`) {
		t.Errorf("the output %s does not answer the call %s", weather.Output[1], call.CallID)
	}
	text := outputText(t, weather.Output[2])
	if !strings.Contains(text, "You said you live in SF.") || !strings.Contains(text, "fog, 16 °C in SF") {
		t.Errorf("the answer %q does not use SF and the tool's output", text)
	}

	// The model was called twice in the turn: with the question, then with
	// the call and its output after it, and the tool offered both times.
	sent := rec.take()
	if len(sent) != 4 {
		t.Fatalf("the model was called %d times in three turns, want 4", len(sent))
	}
	if got := kinds(t, sent[2]); got != "message,message,message,message,message" {
		t.Errorf("first call of the weather turn was sent %s", got)
	}
	if got := kinds(t, sent[3]); got != "message,message,message,message,message,function_call,function_call_output" {
		t.Errorf("second call of the weather turn was sent %s", got)
	}

	// Each turn is one AddItems: the weather turn's four items in one batch.
	if got, want := calls.take(), "GetItems(0) AddItems(2) GetItems(0) AddItems(2) GetItems(0) AddItems(4)"; got != want {
		t.Errorf("storage calls %s, want %s", got, want)
	}
	stored := e.items(t, sid)
	if got := kinds(t, stored); got != "message,message,message,message,message,function_call,function_call_output,message" {
		t.Fatalf("stored %s", got)
	}
	if !sameJSON(t, string(stored[4]), `{"role":"user","content":"What's the weather where I live?"}`) {
		t.Errorf("stored input %s", stored[4])
	}
	for i, raw := range weather.Output {
		if !sameJSON(t, string(stored[5+i]), string(raw)) {
			t.Errorf("stored item %d %s, answered %s", 5+i, stored[5+i], raw)
		}
	}
	// The batch's rows share one created_at, after the rows of the turn before.
	rows, err := e.db.QueryContext(context.Background(),
		"SELECT count(DISTINCT created_at) FROM agent_messages WHERE session_id = ? AND id > (SELECT max(id) - 4 FROM agent_messages WHERE session_id = ?)", sid, sid)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var distinct int
	for rows.Next() {
		rows.Scan(&distinct)
	}
	if distinct != 1 {
		t.Errorf("the weather turn's rows have %d created_at values, want 1", distinct)
	}
}

func TestToolTurnStreaming(t *testing.T) {
	e := newTestEnv(t, agent.OfflineModel{})
	sid := e.turn(t, "", "Hello I live in SF!").CustomOutputs.SessionID
	events := e.streamTurn(t, requestBody(t, sid, "What's the weather where I live?", true))

	var names []string
	var deltas strings.Builder
	for _, ev := range events {
		name := ev.name
		if raw, ok := ev.data["output_index"]; ok {
			var index int
			json.Unmarshal(raw, &index)
			name = fmt.Sprintf("%s[%d]", ev.name, index)
		}
		if ev.name == "response.output_text.delta" {
			deltas.WriteString(str(t, ev.data["delta"]))
			if names[len(names)-1] == name {
				continue // a run of deltas is checked as one
			}
		}
		names = append(names, name)
	}
	want := []string{
		"response.created",
		"response.in_progress",
		"response.output_item.added[0]",
		"response.function_call_arguments.delta[0]",
		"response.function_call_arguments.done[0]",
		"response.output_item.done[0]",
		"response.output_item.added[1]",
		"response.output_item.done[1]",
		"response.output_item.added[2]",
		"response.content_part.added[2]",
		"response.output_text.delta[2]",
		"response.output_text.done[2]",
		"response.content_part.done[2]",
		"response.output_item.done[2]",
		"response.completed",
	}
	if strings.Join(names, " ") != strings.Join(want, " ") {
		t.Fatalf("events:\n%s\nwant:\n%s", strings.Join(names, "\n"), strings.Join(want, "\n"))
	}

	added := head(t, events[2].data["item"])
	if added.Type != "function_call" || added.Arguments != "" || !strings.Contains(events[2].raw, `"status":"in_progress"`) {
		t.Errorf("function_call added as %s", events[2].raw)
	}
	if str(t, events[3].data["delta"]) != `{"city":"SF"}` || str(t, events[4].data["arguments"]) != `{"city":"SF"}` ||
		str(t, events[3].data["item_id"]) != added.ID || added.ID == "" {
		t.Errorf("arguments events %s, %s for item %s", events[3].raw, events[4].raw, added.ID)
	}
	call := head(t, events[5].data["item"])
	output := head(t, events[7].data["item"])
	if call.Arguments != `{"city":"SF"}` || call.CallID != added.CallID || output.Type != "function_call_output" || output.CallID != call.CallID {
		t.Errorf("call %s and output %s", events[5].raw, events[7].raw)
	}
	if !strings.Contains(deltas.String(), "fog, 16 °C in SF") {
		t.Errorf("streamed text %q", deltas.String())
	}

	var completed response
	if err := json.Unmarshal(events[len(events)-1].data["response"], &completed); err != nil {
		t.Fatal(err)
	}
	stored := e.items(t, sid)
	if len(completed.Output) != 3 || len(stored) != 2+1+3 {
		t.Fatalf("completed with %d items, stored %d", len(completed.Output), len(stored))
	}
	for i, raw := range completed.Output {
		if !sameJSON(t, string(stored[3+i]), string(raw)) {
			t.Errorf("stored %s, streamed %s", stored[3+i], raw)
		}
	}
	if !sameJSON(t, string(completed.Output[0]), string(events[5].data["item"])) ||
		!sameJSON(t, string(completed.Output[2]), string(events[len(events)-2].data["item"])) {
		t.Errorf("the completed output differs from the items streamed")
	}
}

// TestHistoryWindowCutsToolPair sets a history limit that cuts through the
// weather turn's call and output: the next turns still succeed, and the
// model is never sent a tool output without its call.
func TestHistoryWindowCutsToolPair(t *testing.T) {
	for _, tt := range []struct {
		limit int
		want  string // what the model is sent in the next turn
	}{
		// u1 a1 u2 a2 u3 fc fco a3: the latest 2 cut the call off its output.
		{2, "message,message"},
		{3, "function_call,function_call_output,message,message"},
		{4, "message,function_call,function_call_output,message,message"},
	} {
		t.Run(fmt.Sprint("limit ", tt.limit), func(t *testing.T) {
			rec := &recordingModel{Model: agent.OfflineModel{}}
			e := newTestEnv(t, rec)
			sid, _ := demoTurns(t, e)
			rec.take()

			e.h.HistoryLimit = tt.limit
			r := e.turn(t, sid, "Thanks!")
			if text := outputText(t, r.Output[0]); !strings.Contains(text, `You said: "Thanks!"`) {
				t.Errorf("reply %q", text)
			}
			sent := rec.take()
			if len(sent) != 1 {
				t.Fatalf("the model was called %d times, want 1", len(sent))
			}
			checkNoOrphans(t, sent[0])
			if got := kinds(t, sent[0]); got != tt.want {
				t.Errorf("the model was sent %s, want %s", got, tt.want)
			}

			// A tool turn in the cut window works too, streamed or not.
			for _, stream := range []bool{false, true} {
				status, _, body := e.post(t, requestBody(t, sid, "What's the weather in Paris?", stream))
				if status != http.StatusOK || !strings.Contains(string(body), "light rain, 12 °C in Paris") {
					t.Fatalf("stream=%v: %d %s", stream, status, body)
				}
				for _, s := range rec.take() {
					checkNoOrphans(t, s)
				}
			}
			// The limit is on what the model sees: every item is stored.
			if n := len(e.items(t, sid)); n != 8+2+4+4 {
				t.Errorf("stored %d items, want 18", n)
			}
		})
	}
}

func TestMaxModelCalls(t *testing.T) {
	for _, tt := range []struct {
		max, want int
	}{{0, agent.DefaultMaxModelCalls}, {3, 3}, {1, 1}} {
		t.Run(fmt.Sprint("max ", tt.max), func(t *testing.T) {
			// A model that calls the tool again and again, with no call id:
			// the handler makes one for each call.
			rec := &recordingModel{Model: funcModel(func(ctx context.Context, req agent.Request) ([]agent.Item, error) {
				return []agent.Item{agent.FunctionCall("", agent.WeatherToolName, `{"city":"SF"}`)}, nil
			})}
			e := newTestEnv(t, rec)
			e.h.MaxModelCalls = tt.max
			for _, stream := range []bool{false, true} {
				status, ctype, body := e.post(t, requestBody(t, "s", "What's the weather in SF?", stream))
				wantMsg := fmt.Sprintf("the model did not answer: it still called tools after %d calls in this turn", tt.want)
				if !stream {
					if status != http.StatusBadGateway || ctype != "application/json" ||
						!strings.Contains(string(body), `"type":"model_error"`) || !strings.Contains(string(body), wantMsg) {
						t.Errorf("answered %d %s %s, want 502 model_error: %s", status, ctype, body, wantMsg)
					}
				} else {
					events := readEvents(t, body)
					last := events[len(events)-1]
					if last.name != "response.failed" || !strings.Contains(last.raw, `"code":"model_error"`) || !strings.Contains(last.raw, wantMsg) {
						t.Errorf("stream ends with %s", last.raw)
					}
					for _, ev := range events {
						if ev.name == "response.completed" {
							t.Errorf("response.completed sent for a failed turn")
						}
					}
				}
				sent := rec.take()
				if len(sent) != tt.want {
					t.Fatalf("stream=%v: the model was called %d times, want %d", stream, len(sent), tt.want)
				}
				// Each call was sent the calls before it, each with its output.
				last := sent[len(sent)-1]
				if len(last) != 1+2*(tt.want-1) {
					t.Errorf("the last call was sent %s", kinds(t, last))
				}
				checkNoOrphans(t, last)
				ids := map[string]bool{}
				for _, raw := range last {
					if h := head(t, raw); h.Type == "function_call" {
						if h.CallID == "" || ids[h.CallID] {
							t.Errorf("call id %q empty or repeated", h.CallID)
						}
						ids[h.CallID] = true
					}
				}
			}
			if s, m := e.counts(t); s != 0 || m != 0 {
				t.Errorf("turns that failed stored %d sessions and %d messages", s, m)
			}
		})
	}
}

// TestToolErrorsGoToTheModel: a call of a tool that does not exist, or with
// arguments the tool rejects, is answered with an error output that the
// model sees; the turn goes on.
func TestToolErrorsGoToTheModel(t *testing.T) {
	e := newTestEnv(t, funcModel(func(ctx context.Context, req agent.Request) ([]agent.Item, error) {
		last := req.Items[len(req.Items)-1]
		if last.OfFunctionCallOutput == nil {
			return []agent.Item{
				agent.FunctionCall("c1", "no_such_tool", `{}`),
				agent.FunctionCall("c2", agent.WeatherToolName, `not json`),
			}, nil
		}
		var outs []string
		for _, it := range req.Items {
			if o := it.OfFunctionCallOutput; o != nil {
				outs = append(outs, o.CallID.Value+": "+o.Output.OfString.Value)
			}
		}
		return []agent.Item{agent.AssistantMessage(strings.Join(outs, " | "))}, nil
	}))
	r := e.turn(t, "s", "Use your tools.")
	if got := kinds(t, r.Output); got != "function_call,function_call,function_call_output,function_call_output,message" {
		t.Fatalf("output %s", got)
	}
	want := `c1: error: there is no tool named "no_such_tool"; the tools are: get_weather | ` +
		`c2: error: get_weather: send the arguments {"city": "<name>"}, such as {"city": "SF"}`
	if got := outputText(t, r.Output[4]); got != want {
		t.Errorf("the model saw %q, want %q", got, want)
	}
	if n := len(e.items(t, "s")); n != 6 {
		t.Errorf("stored %d items, want 6", n)
	}
}

func TestHandlerRejectsBadTools(t *testing.T) {
	tool := agent.WeatherTool()
	for _, tt := range []struct {
		name  string
		tools []agent.Tool
	}{
		{"two tools of one name", []agent.Tool{tool, tool}},
		{"a name with a space", []agent.Tool{{Name: "get weather", Call: tool.Call}}},
		{"no function", []agent.Tool{{Name: "get_time"}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newTestEnv(t, agent.OfflineModel{})
			e.h.Tools = tt.tools
			status, _, body := e.post(t, requestBody(t, "s", "hi", false))
			if status != http.StatusInternalServerError || !strings.Contains(string(body), "tools are misconfigured") {
				t.Errorf("answered %d %s, want 500", status, body)
			}
			if _, m := e.counts(t); m != 0 {
				t.Errorf("%d messages stored", m)
			}
		})
	}
}
