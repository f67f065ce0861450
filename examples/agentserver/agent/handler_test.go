package agent_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/lakesession/lakesession"
	"github.com/lakesession/lakesession/bunstore"
	"github.com/lakesession/lakesession/bunstore/sqlitedb"
	"github.com/lakesession/lakesession/examples/agentserver/agent"
)

// testEnv is an agent server over HTTP on a real SQLite store in a
// temporary directory.
type testEnv struct {
	db    *bun.DB
	store *bunstore.Store
	h     *agent.Handler
	srv   *httptest.Server
}

func newTestEnv(t *testing.T, model agent.Model) *testEnv {
	t.Helper()
	db, err := sqlitedb.Open(filepath.Join(t.TempDir(), "agent.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	store, err := bunstore.New(db)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.CreateTables(context.Background()); err != nil {
		t.Fatal(err)
	}
	h := &agent.Handler{
		Sessions: func(id string) lakesession.Session { return store.Session(id) },
		Model:    model,
		Tools:    []agent.Tool{agent.WeatherTool()},
		Logger:   slog.New(slog.DiscardHandler),
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &testEnv{db: db, store: store, h: h, srv: srv}
}

// post sends body to POST /invocations and returns the status, the
// Content-Type and the body of the answer.
func (e *testEnv) post(t *testing.T, body string) (int, string, []byte) {
	t.Helper()
	resp, err := http.Post(e.srv.URL+"/invocations", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), b
}

// response is the JSON answer of a turn.
type response struct {
	ID            string            `json:"id"`
	Object        string            `json:"object"`
	Status        string            `json:"status"`
	Model         string            `json:"model"`
	Output        []json.RawMessage `json:"output"`
	CustomOutputs struct {
		SessionID string `json:"session_id"`
	} `json:"custom_outputs"`
	Error *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// requestBody returns the JSON of a request with one user message.
func requestBody(t *testing.T, sessionID, text string, stream bool) string {
	t.Helper()
	// The item is written by hand so that its key order is known: it is
	// stored as sent.
	quoted, err := json.Marshal(text)
	if err != nil {
		t.Fatal(err)
	}
	req := map[string]any{
		"input": []json.RawMessage{json.RawMessage(`{"role":"user","content":` + string(quoted) + `}`)},
	}
	if sessionID != "" {
		req["custom_inputs"] = map[string]string{"session_id": sessionID}
	}
	if stream {
		req["stream"] = true
	}
	b, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// turn sends one user message and returns the decoded answer, failing t
// unless it is 200 with output.
func (e *testEnv) turn(t *testing.T, sessionID, text string) response {
	t.Helper()
	status, ctype, body := e.post(t, requestBody(t, sessionID, text, false))
	if status != http.StatusOK {
		t.Fatalf("turn %q: status %d, body %s", text, status, body)
	}
	if ctype != "application/json" {
		t.Fatalf("turn %q: Content-Type %q", text, ctype)
	}
	var r response
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatalf("turn %q: %v in %s", text, err, body)
	}
	if r.Object != "response" || r.Status != "completed" || len(r.Output) == 0 {
		t.Fatalf("turn %q: unexpected answer %s", text, body)
	}
	if sessionID != "" && r.CustomOutputs.SessionID != sessionID {
		t.Fatalf("turn %q: session id %q, want %q", text, r.CustomOutputs.SessionID, sessionID)
	}
	return r
}

// outputText returns the text of an assistant output message item.
func outputText(t *testing.T, item json.RawMessage) string {
	t.Helper()
	var m struct {
		Type    string `json:"type"`
		Role    string `json:"role"`
		Content []struct {
			Type string `json:"type"`
			Text string `json:"text"`
		} `json:"content"`
	}
	if err := json.Unmarshal(item, &m); err != nil {
		t.Fatalf("output item %s: %v", item, err)
	}
	if m.Type != "message" || m.Role != "assistant" || len(m.Content) != 1 || m.Content[0].Type != "output_text" {
		t.Fatalf("output item is not an assistant message with one output_text: %s", item)
	}
	return m.Content[0].Text
}

// items returns every stored item of a session.
func (e *testEnv) items(t *testing.T, sessionID string) []json.RawMessage {
	t.Helper()
	items, err := e.store.Session(sessionID).GetItems(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	return items
}

// counts returns the number of rows in the two tables.
func (e *testEnv) counts(t *testing.T) (sessions, messages int) {
	t.Helper()
	ctx := context.Background()
	if err := e.db.QueryRowContext(ctx, "SELECT count(*) FROM agent_sessions").Scan(&sessions); err != nil {
		t.Fatal(err)
	}
	if err := e.db.QueryRowContext(ctx, "SELECT count(*) FROM agent_messages").Scan(&messages); err != nil {
		t.Fatal(err)
	}
	return sessions, messages
}

// sameJSON reports whether a and b are the same JSON value: items are
// stored as openaisession.Encode writes them, with the same keys and values
// as sent, in the order of openai-go's types.
func sameJSON(t *testing.T, a, b string) bool {
	t.Helper()
	var va, vb any
	if err := json.Unmarshal([]byte(a), &va); err != nil {
		t.Fatalf("%s: %v", a, err)
	}
	if err := json.Unmarshal([]byte(b), &vb); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return reflect.DeepEqual(va, vb)
}

func TestTwoTurnMemory(t *testing.T) {
	e := newTestEnv(t, agent.OfflineModel{})

	first := e.turn(t, "", "Hello I live in SF!")
	sid := first.CustomOutputs.SessionID
	if first.Model != agent.OfflineModelName {
		t.Errorf("model = %q, want %q", first.Model, agent.OfflineModelName)
	}
	if text := outputText(t, first.Output[0]); !strings.HasPrefix(text, "[offline demo model]") {
		t.Errorf("first reply %q does not name the offline model", text)
	}

	second := e.turn(t, sid, "What city did I say I live in?")
	text := outputText(t, second.Output[0])
	if !strings.HasPrefix(text, "[offline demo model]") || !strings.Contains(text, "You said you live in SF.") {
		t.Errorf("second reply %q does not recall SF", text)
	}

	// The same question in another session has nothing to recall.
	other := e.turn(t, "", "What city did I say I live in?")
	if other.CustomOutputs.SessionID == sid {
		t.Fatalf("a request without session id reused session %s", sid)
	}
	if text := outputText(t, other.Output[0]); strings.Contains(text, "SF") {
		t.Errorf("a new session recalled another session's city: %q", text)
	}

	// The session holds both turns, in order, each item stored as sent.
	got := e.items(t, sid)
	want := []string{
		`{"role":"user","content":"Hello I live in SF!"}`,
		string(first.Output[0]),
		`{"role":"user","content":"What city did I say I live in?"}`,
		string(second.Output[0]),
	}
	if len(got) != len(want) {
		t.Fatalf("stored %d items, want %d: %s", len(got), len(want), got)
	}
	for i := range want {
		if !sameJSON(t, string(got[i]), want[i]) {
			t.Errorf("item %d = %s, want %s", i, got[i], want[i])
		}
	}
}

func TestNewSessionID(t *testing.T) {
	e := newTestEnv(t, agent.OfflineModel{})
	seen := map[string]bool{}
	for i := range 3 {
		// With no custom_inputs, with an empty one, and with a null id.
		bodies := []string{
			`{"input":[{"role":"user","content":"hi"}]}`,
			`{"input":[{"role":"user","content":"hi"}],"custom_inputs":{}}`,
			`{"input":[{"role":"user","content":"hi"}],"custom_inputs":{"session_id":null}}`,
		}
		status, _, body := e.post(t, bodies[i])
		if status != http.StatusOK {
			t.Fatalf("%s: status %d: %s", bodies[i], status, body)
		}
		var r response
		if err := json.Unmarshal(body, &r); err != nil {
			t.Fatal(err)
		}
		sid := r.CustomOutputs.SessionID
		u, err := uuid.Parse(sid)
		if err != nil {
			t.Fatalf("session id %q is not a UUID: %v", sid, err)
		}
		if u.Version() != 7 || u.Variant() != uuid.RFC4122 || u.String() != sid {
			t.Errorf("session id %q is not a canonical UUIDv7 (version %d)", sid, u.Version())
		}
		if seen[sid] {
			t.Errorf("session id %q given twice", sid)
		}
		seen[sid] = true
		if n := len(e.items(t, sid)); n != 2 {
			t.Errorf("new session %s holds %d items, want 2", sid, n)
		}
	}
}

// sseEvent is one server-sent event.
type sseEvent struct {
	name string
	data map[string]json.RawMessage
	raw  string
}

// readEvents parses a text/event-stream body.
func readEvents(t *testing.T, body []byte) []sseEvent {
	t.Helper()
	var events []sseEvent
	var cur sseEvent
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if cur.name != "" || cur.raw != "" {
				events = append(events, cur)
			}
			cur = sseEvent{}
		case strings.HasPrefix(line, "event: "):
			cur.name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			cur.raw = strings.TrimPrefix(line, "data: ")
			if err := json.Unmarshal([]byte(cur.raw), &cur.data); err != nil {
				t.Fatalf("event data is not a JSON object: %s", cur.raw)
			}
		default:
			t.Fatalf("unexpected line in event stream: %q", line)
		}
	}
	if cur.name != "" || cur.raw != "" {
		t.Fatalf("event stream ends without a blank line after %q", cur.name)
	}
	return events
}

func str(t *testing.T, v json.RawMessage) string {
	t.Helper()
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		t.Fatalf("%s is not a string", v)
	}
	return s
}

// streamTurn sends a streamed turn and returns its events, checking the
// framing common to every stream: 200, text/event-stream, each data's type
// equal to the event name and sequence numbers counting up from 0.
func (e *testEnv) streamTurn(t *testing.T, body string) []sseEvent {
	t.Helper()
	status, ctype, b := e.post(t, body)
	if status != http.StatusOK {
		t.Fatalf("status %d: %s", status, b)
	}
	if ctype != "text/event-stream" {
		t.Fatalf("Content-Type %q, want text/event-stream", ctype)
	}
	events := readEvents(t, b)
	for i, ev := range events {
		if got := str(t, ev.data["type"]); got != ev.name {
			t.Errorf("event %d: data type %q, event name %q", i, got, ev.name)
		}
		var seq int
		if err := json.Unmarshal(ev.data["sequence_number"], &seq); err != nil || seq != i {
			t.Errorf("event %d (%s): sequence_number %s", i, ev.name, ev.data["sequence_number"])
		}
	}
	return events
}

func TestStreaming(t *testing.T) {
	e := newTestEnv(t, agent.OfflineModel{})
	sid := e.turn(t, "", "Hello I live in SF!").CustomOutputs.SessionID

	events := e.streamTurn(t, requestBody(t, sid, "What city did I say I live in?", true))
	var names []string
	var deltas strings.Builder
	for _, ev := range events {
		if ev.name == "response.output_text.delta" {
			deltas.WriteString(str(t, ev.data["delta"]))
			if len(names) > 0 && names[len(names)-1] == ev.name {
				continue // a run of deltas is checked as one
			}
		}
		names = append(names, ev.name)
	}
	wantNames := []string{
		"response.created",
		"response.in_progress",
		"response.output_item.added",
		"response.content_part.added",
		"response.output_text.delta",
		"response.output_text.done",
		"response.content_part.done",
		"response.output_item.done",
		"response.completed",
	}
	if strings.Join(names, " ") != strings.Join(wantNames, " ") {
		t.Fatalf("events:\n%s\nwant:\n%s", strings.Join(names, "\n"), strings.Join(wantNames, "\n"))
	}

	streamed := deltas.String()
	if !strings.Contains(streamed, "You said you live in SF.") {
		t.Errorf("streamed text %q does not recall SF", streamed)
	}
	var created response
	if err := json.Unmarshal(events[0].data["response"], &created); err != nil {
		t.Fatal(err)
	}
	if created.Status != "in_progress" || created.CustomOutputs.SessionID != sid {
		t.Errorf("response.created: %s", events[0].raw)
	}
	if got := str(t, events[len(events)-4].data["text"]); got != streamed {
		t.Errorf("output_text.done text %q, deltas add up to %q", got, streamed)
	}
	itemDone := events[len(events)-2].data["item"]
	if outputText(t, itemDone) != streamed {
		t.Errorf("output_item.done %s does not hold the streamed text", itemDone)
	}

	var completed response
	if err := json.Unmarshal(events[len(events)-1].data["response"], &completed); err != nil {
		t.Fatal(err)
	}
	if completed.Status != "completed" || completed.Object != "response" || completed.CustomOutputs.SessionID != sid {
		t.Errorf("response.completed: %s", events[len(events)-1].raw)
	}
	if len(completed.Output) != 1 || !sameJSON(t, string(completed.Output[0]), string(itemDone)) {
		t.Errorf("completed output %s, want [%s]", completed.Output, itemDone)
	}

	// The streamed turn is stored after the first.
	got := e.items(t, sid)
	if len(got) != 4 {
		t.Fatalf("stored %d items, want 4: %s", len(got), got)
	}
	if !sameJSON(t, string(got[2]), `{"role":"user","content":"What city did I say I live in?"}`) ||
		!sameJSON(t, string(got[3]), string(itemDone)) {
		t.Errorf("stored streamed turn %s, %s", got[2], got[3])
	}

	// A streamed turn without session id gets a new one.
	events = e.streamTurn(t, requestBody(t, "", "Hello!", true))
	last := events[len(events)-1]
	if err := json.Unmarshal(last.data["response"], &completed); err != nil {
		t.Fatal(err)
	}
	if u, err := uuid.Parse(completed.CustomOutputs.SessionID); last.name != "response.completed" || err != nil || u.Version() != 7 {
		t.Errorf("streamed turn without session id ends with %s", last.raw)
	}
	if n := len(e.items(t, completed.CustomOutputs.SessionID)); n != 2 {
		t.Errorf("new streamed session holds %d items, want 2", n)
	}
}

func TestBadRequests(t *testing.T) {
	e := newTestEnv(t, agent.OfflineModel{})
	e.h.MaxBodyBytes = 64 << 10
	e.turn(t, "existing", "Hello I live in SF!")
	wantSessions, wantMessages := e.counts(t)
	wantItems := e.items(t, "existing")

	long := strings.Repeat("x", lakesession.MaxSessionIDLen+1)
	tests := []struct {
		name, body, inMessage string
		status                int
	}{
		{"empty body", ``, "empty", 400},
		{"invalid JSON", `{"input": [{"role":"user","content":"hi"}`, "not valid JSON", 400},
		{"trailing garbage", `{"input":[{"role":"user","content":"hi"}]} x`, "not valid JSON", 400},
		{"body is an array", `[{"role":"user","content":"hi"}]`, "must be a JSON object", 400},
		{"body is a string", `"hi"`, "must be a JSON object", 400},
		{"no input", `{"custom_inputs":{"session_id":"existing"}}`, `"input" is missing`, 400},
		{"null input", `{"input":null,"custom_inputs":{"session_id":"existing"}}`, `"input" is missing`, 400},
		{"empty input", `{"input":[],"custom_inputs":{"session_id":"existing"}}`, `"input" is empty`, 400},
		{"input is a string", `{"input":"hi","custom_inputs":{"session_id":"existing"}}`, "must be an array", 400},
		{"input is an object", `{"input":{"role":"user","content":"hi"}}`, "must be an array", 400},
		{"item is a string", `{"input":["hi"],"custom_inputs":{"session_id":"existing"}}`, "input[0]", 400},
		{"item is a number", `{"input":[1],"custom_inputs":{"session_id":"existing"}}`, "input[0]", 400},
		{"item is an array", `{"input":[[]]}`, "input[0]", 400},
		{"item is null", `{"input":[null],"custom_inputs":{"session_id":"existing"}}`, "input[0]", 400},
		{"item of an unknown type", `{"input":[{"type":"no_such_item","x":1}],"custom_inputs":{"session_id":"existing"}}`, "input[0]", 400},
		{"message without role", `{"input":[{"type":"message","content":"hi"}],"custom_inputs":{"session_id":"existing"}}`, "input[0]", 400},
		{"tool output without its call", `{"input":[{"type":"function_call_output","call_id":"c9","output":"x"},{"role":"user","content":"hi"}],"custom_inputs":{"session_id":"existing"}}`,
			`input[0]: a function_call_output needs its call (call_id "c9") earlier in the input`, 400},
		{"call without its output", `{"input":[{"role":"user","content":"hi"},{"type":"function_call","call_id":"c9","name":"get_weather","arguments":"{}"}],"custom_inputs":{"session_id":"existing"}}`,
			`input[1]: a function_call needs its output (call_id "c9") later in the input`, 400},
		{"output before its call", `{"input":[{"type":"function_call_output","call_id":"c9","output":"x"},{"type":"function_call","call_id":"c9","name":"get_weather","arguments":"{}"}],"custom_inputs":{"session_id":"existing"}}`,
			`input[0]: a function_call_output needs its call`, 400},
		{"reasoning at the end", `{"input":[{"role":"user","content":"hi"},{"type":"reasoning","id":"rs_1","summary":[]}],"custom_inputs":{"session_id":"existing"}}`,
			`input[1]: a reasoning item must be followed by`, 400},
		{"second item bad", `{"input":[{"role":"user","content":"ok"},true],"custom_inputs":{"session_id":"existing"}}`, "input[1]", 400},
		{"bad item, new session", `{"input":[{"role":"user","content":"ok"},"x"],"custom_inputs":{"session_id":"fresh"}}`, "input[1]", 400},
		{"empty session id", `{"input":[{"role":"user","content":"hi"}],"custom_inputs":{"session_id":""}}`, "session_id", 400},
		{"long session id", `{"input":[{"role":"user","content":"hi"}],"custom_inputs":{"session_id":"` + long + `"}}`, "session_id", 400},
		{"NUL in session id", `{"input":[{"role":"user","content":"hi"}],"custom_inputs":{"session_id":"a\u0000b"}}`, "NUL", 400},
		{"numeric session id", `{"input":[{"role":"user","content":"hi"}],"custom_inputs":{"session_id":42}}`, "must be a string", 400},
		{"custom_inputs not an object", `{"input":[{"role":"user","content":"hi"}],"custom_inputs":"existing"}`, "custom_inputs", 400},
		{"stream not a boolean", `{"input":[{"role":"user","content":"hi"}],"stream":"yes","custom_inputs":{"session_id":"existing"}}`, `"stream"`, 400},
		{"body too large", `{"input":[{"role":"user","content":"` + strings.Repeat("a", 64<<10) + `"}],"custom_inputs":{"session_id":"existing"}}`, "larger than", 413},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, ctype, body := e.post(t, tt.body)
			if status != tt.status {
				t.Fatalf("status %d, want %d: %s", status, tt.status, body)
			}
			if ctype != "application/json" {
				t.Errorf("Content-Type %q, want application/json", ctype)
			}
			var eb struct {
				Error struct {
					Type    string `json:"type"`
					Message string `json:"message"`
				} `json:"error"`
			}
			if err := json.Unmarshal(body, &eb); err != nil {
				t.Fatalf("error body is not JSON: %s", body)
			}
			if eb.Error.Type != "invalid_request_error" || !strings.Contains(eb.Error.Message, tt.inMessage) {
				t.Errorf("error %+v, want invalid_request_error saying %q", eb.Error, tt.inMessage)
			}
			if s, m := e.counts(t); s != wantSessions || m != wantMessages {
				t.Errorf("after the bad request: %d sessions and %d messages, want %d and %d", s, m, wantSessions, wantMessages)
			}
		})
	}

	// Other methods and paths get JSON errors too.
	resp, err := http.Get(e.srv.URL + "/invocations")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("GET /invocations: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}

	got := e.items(t, "existing")
	if len(got) != len(wantItems) {
		t.Fatalf("session changed by bad requests: %s", got)
	}
}

func TestConcurrentTurnsOneSession(t *testing.T) {
	e := newTestEnv(t, agent.OfflineModel{})
	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			body := requestBody(t, "shared", fmt.Sprintf("turn %d", i), false)
			resp, err := http.Post(e.srv.URL+"/invocations", "application/json", strings.NewReader(body))
			if err != nil {
				errs <- err
				return
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusOK {
				errs <- fmt.Errorf("turn %d: status %d: %s", i, resp.StatusCode, b)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}

	items := e.items(t, "shared")
	if len(items) != 2*n {
		t.Fatalf("stored %d items, want %d", len(items), 2*n)
	}
	seen := map[string]bool{}
	for k := 0; k < len(items); k += 2 {
		var user struct {
			Role    string `json:"role"`
			Content string `json:"content"`
		}
		if err := json.Unmarshal(items[k], &user); err != nil || user.Role != "user" {
			t.Fatalf("item %d is not the user message of a turn: %s", k, items[k])
		}
		reply := outputText(t, items[k+1])
		if !strings.Contains(reply, `"`+user.Content+`"`) {
			t.Errorf("item %d answers another turn than %q: %q", k+1, user.Content, reply)
		}
		if seen[user.Content] {
			t.Errorf("%q stored twice", user.Content)
		}
		seen[user.Content] = true
	}
	if len(seen) != n {
		t.Errorf("%d distinct turns stored, want %d", len(seen), n)
	}
}

// failInserts makes the database reject, with an error, any message whose
// JSON contains word, as a full disk or a lost connection would.
func (e *testEnv) failInserts(t *testing.T, word string) {
	t.Helper()
	_, err := e.db.ExecContext(context.Background(), `CREATE TRIGGER fail_insert BEFORE INSERT ON agent_messages
		WHEN NEW.message_data LIKE '%`+word+`%'
		BEGIN SELECT RAISE(ABORT, 'simulated storage failure'); END`)
	if err != nil {
		t.Fatal(err)
	}
}

func TestStorageFailure(t *testing.T) {
	// The database fails the turn on an input item (the second of two, so
	// the first would be written before), or on the model's output item
	// (every input item would be written before).
	for _, tt := range []struct{ name, word, input string }{
		{"input item", "boom", `[{"role":"user","content":"first"},{"role":"user","content":"boom"}]`},
		{"output item", "offline demo model", `[{"role":"user","content":"first"},{"role":"user","content":"second"}]`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newTestEnv(t, agent.OfflineModel{})
			e.turn(t, "s", "Hello I live in SF!")
			e.failInserts(t, tt.word)
			wantSessions, wantMessages := e.counts(t)
			before := e.items(t, "s")

			for _, sid := range []string{"s", "new-session"} {
				body := `{"input":` + tt.input + `,"custom_inputs":{"session_id":"` + sid + `"}}`
				status, ctype, b := e.post(t, body)
				if status != http.StatusServiceUnavailable || ctype != "application/json" {
					t.Fatalf("session %s: status %d %s, want 503 application/json: %s", sid, status, ctype, b)
				}
				if !bytes.Contains(b, []byte(`"type":"storage_unavailable"`)) {
					t.Errorf("session %s: error body %s", sid, b)
				}
				if bytes.Contains(b, []byte("simulated")) {
					t.Errorf("the storage error's detail reached the client: %s", b)
				}

				events := e.streamTurn(t, `{"stream":true,"input":`+tt.input+`,"custom_inputs":{"session_id":"`+sid+`"}}`)
				last := events[len(events)-1]
				var failed response
				if err := json.Unmarshal(last.data["response"], &failed); err != nil {
					t.Fatal(err)
				}
				if last.name != "response.failed" || failed.Status != "failed" || failed.Error == nil || failed.Error.Code != "storage_unavailable" {
					t.Errorf("session %s: streamed turn ends with %s", sid, last.raw)
				}
				for _, ev := range events {
					if ev.name == "response.completed" || ev.name == "response.output_item.done" {
						t.Errorf("session %s: %s sent for a turn that was not stored", sid, ev.name)
					}
				}
			}
			if s, m := e.counts(t); s != wantSessions || m != wantMessages {
				t.Errorf("after failed turns: %d sessions and %d messages, want %d and %d", s, m, wantSessions, wantMessages)
			}
			if after := e.items(t, "s"); len(after) != len(before) {
				t.Errorf("session s holds %d items, want %d", len(after), len(before))
			}

			// Once the database accepts writes again, turns are stored as usual.
			if _, err := e.db.ExecContext(context.Background(), "DROP TRIGGER fail_insert"); err != nil {
				t.Fatal(err)
			}
			e.turn(t, "s", "What city did I say I live in?")
			if after := e.items(t, "s"); len(after) != len(before)+2 {
				t.Errorf("session s holds %d items after a good turn, want %d", len(after), len(before)+2)
			}
		})
	}
}

func TestStorageUnreachable(t *testing.T) {
	e := newTestEnv(t, agent.OfflineModel{})
	e.turn(t, "s", "Hello I live in SF!")
	if err := e.db.Close(); err != nil {
		t.Fatal(err)
	}
	for _, stream := range []bool{false, true} {
		status, ctype, b := e.post(t, requestBody(t, "s", "What city did I say I live in?", stream))
		if status != http.StatusServiceUnavailable || ctype != "application/json" ||
			!bytes.Contains(b, []byte(`"type":"storage_unavailable"`)) {
			t.Errorf("stream=%v: %d %s %s, want 503 storage_unavailable", stream, status, ctype, b)
		}
	}
}

// callLog records, in order, the storage calls a handler makes and the
// model's replies, and can make one kind of call fail.
type callLog struct {
	mu    sync.Mutex
	calls []string
	fail  string // "GetItems", "Respond" or "AddItems": that call fails
}

func (l *callLog) record(op string, n int) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls = append(l.calls, fmt.Sprintf("%s(%d)", op, n))
	if op == l.fail {
		return fmt.Errorf("simulated %s failure", op)
	}
	return nil
}

// take returns the calls recorded since the last take.
func (l *callLog) take() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := strings.Join(l.calls, " ")
	l.calls = nil
	return s
}

// loggedSession records the calls on a session in a callLog.
type loggedSession struct {
	lakesession.Session
	log *callLog
}

func (s loggedSession) GetItems(ctx context.Context, limit int) ([]json.RawMessage, error) {
	if err := s.log.record("GetItems", limit); err != nil {
		return nil, err
	}
	return s.Session.GetItems(ctx, limit)
}

func (s loggedSession) AddItems(ctx context.Context, items []json.RawMessage) error {
	if err := s.log.record("AddItems", len(items)); err != nil {
		return err
	}
	return s.Session.AddItems(ctx, items)
}

func (s loggedSession) PopItem(ctx context.Context) (json.RawMessage, error) {
	s.log.record("PopItem", 0)
	return s.Session.PopItem(ctx)
}

func (s loggedSession) ClearSession(ctx context.Context) error {
	s.log.record("ClearSession", 0)
	return s.Session.ClearSession(ctx)
}

// loggedModel records each Respond, with the number of items the model is
// given, in a callLog.
type loggedModel struct {
	agent.Model
	log *callLog
}

func (m loggedModel) Respond(ctx context.Context, req agent.Request) ([]agent.Item, error) {
	if err := m.log.record("Respond", len(req.Items)); err != nil {
		return nil, err
	}
	return m.Model.Respond(ctx, req)
}

// TestTurnStorageCalls checks the storage calls of a turn: one GetItems
// (with the history limit) before the model, one AddItems of the whole turn
// after it, and nothing else; a failed step stops the turn there, so nothing
// of it is stored.
func TestTurnStorageCalls(t *testing.T) {
	for _, stream := range []bool{false, true} {
		t.Run(fmt.Sprintf("stream=%v", stream), func(t *testing.T) {
			e := newTestEnv(t, agent.OfflineModel{})
			calls := &callLog{}
			sessions := e.h.Sessions
			e.h.Sessions = func(id string) lakesession.Session { return loggedSession{sessions(id), calls} }
			e.h.Model = loggedModel{agent.OfflineModel{}, calls}
			e.h.HistoryLimit = 5

			// turn sends two input items and returns whether the turn
			// completed.
			turn := func(sid string) bool {
				t.Helper()
				body := `{"input":[{"role":"user","content":"Hello"},{"role":"user","content":"I live in SF."}],` +
					`"custom_inputs":{"session_id":"` + sid + `"},"stream":` + fmt.Sprint(stream) + `}`
				status, ctype, b := e.post(t, body)
				switch {
				case status == http.StatusOK && ctype == "text/event-stream":
					events := readEvents(t, b)
					return len(events) > 0 && events[len(events)-1].name == "response.completed"
				case status == http.StatusOK, status == http.StatusBadGateway, status == http.StatusServiceUnavailable:
					return status == http.StatusOK
				}
				t.Fatalf("status %d %s: %s", status, ctype, b)
				return false
			}

			// A new session: no history, then two input items. The turn
			// stores three items, so the next one has three of history.
			if !turn("calls") {
				t.Fatal("the first turn failed")
			}
			if got, want := calls.take(), "GetItems(13) Respond(2) AddItems(3)"; got != want {
				t.Errorf("first turn: calls %s, want %s", got, want)
			}
			if !turn("calls") {
				t.Fatal("the second turn failed")
			}
			if got, want := calls.take(), "GetItems(13) Respond(5) AddItems(3)"; got != want {
				t.Errorf("second turn: calls %s, want %s", got, want)
			}
			_, wantMessages := e.counts(t)

			// Six items of history now, of which the model sees five.
			for _, c := range []struct{ fail, want string }{
				{"GetItems", "GetItems(13)"},
				{"Respond", "GetItems(13) Respond(7)"},
				{"AddItems", "GetItems(13) Respond(7) AddItems(3)"},
			} {
				calls.fail = c.fail
				if turn("calls") {
					t.Errorf("the turn completed although %s failed", c.fail)
				}
				if got := calls.take(); got != c.want {
					t.Errorf("%s failing: calls %s, want %s", c.fail, got, c.want)
				}
				if _, m := e.counts(t); m != wantMessages {
					t.Errorf("%s failing: %d messages stored, want %d", c.fail, m, wantMessages)
				}
			}
		})
	}
}
