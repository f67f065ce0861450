package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/uptrace/bun"
)

// The three user messages of the demo conversation.
const (
	FirstMessage  = "Hello I live in SF!"
	SecondMessage = "What city did I say I live in?"
	ThirdMessage  = "What's the weather where I live?"
)

// Messages are the demo's user messages, in order: one turn each.
var Messages = [...]string{FirstMessage, SecondMessage, ThirdMessage}

// Result is what the conversation returned.
type Result struct {
	SessionID string
	// Answers are the text of each turn's assistant messages.
	Answers [len(Messages)]string
	// Outputs are the output items of each turn, as answered.
	Outputs [len(Messages)][]json.RawMessage
}

// Converse sends the turns of the demo to the agent server at baseURL
// (http://host:port), each after the first with the session id the first
// returned, and writes each request, answer and reply to out, with the
// tool calls and outputs of a turn between its question and its answer. It
// fails unless every answer is well formed and the second and third recall
// SF.
func Converse(ctx context.Context, client *http.Client, baseURL string, out io.Writer) (Result, error) {
	return ConverseSpaced(ctx, client, baseURL, out, 0)
}

// ConverseSpaced is Converse with a pause of gap between turns, so that the
// turns of a store whose clock counts whole seconds (SQLite) get
// created_at values of their own.
func ConverseSpaced(ctx context.Context, client *http.Client, baseURL string, out io.Writer, gap time.Duration) (Result, error) {
	var res Result
	for i, text := range Messages {
		if i > 0 && gap > 0 {
			select {
			case <-ctx.Done():
				return res, ctx.Err()
			case <-time.After(gap):
			}
		}
		req := request{Input: []message{{Role: "user", Content: text}}}
		if res.SessionID != "" {
			req.CustomInputs = &customInputs{SessionID: res.SessionID}
		}
		body, err := json.Marshal(req)
		if err != nil {
			return res, err
		}
		fmt.Fprintf(out, "\n--- turn %d: POST %s/invocations\n%s\n", i+1, baseURL, body)
		answer, err := post(ctx, client, baseURL+"/invocations", body)
		if err != nil {
			return res, fmt.Errorf("turn %d: %w", i+1, err)
		}
		var resp struct {
			Object        string `json:"object"`
			Output        []json.RawMessage
			CustomOutputs struct {
				SessionID string `json:"session_id"`
			} `json:"custom_outputs"`
		}
		if err := json.Unmarshal(answer, &resp); err != nil {
			return res, fmt.Errorf("turn %d: the answer is not JSON: %s", i+1, answer)
		}
		fmt.Fprintf(out, "<-- %s\n", bytes.TrimSpace(answer))
		if resp.Object != "response" || resp.CustomOutputs.SessionID == "" || len(resp.Output) == 0 {
			return res, fmt.Errorf("turn %d: the answer is not a response with a session id: %s", i+1, answer)
		}
		if res.SessionID != "" && resp.CustomOutputs.SessionID != res.SessionID {
			return res, fmt.Errorf("turn %d: answered for session %s, not %s", i+1, resp.CustomOutputs.SessionID, res.SessionID)
		}
		res.SessionID = resp.CustomOutputs.SessionID
		res.Outputs[i] = resp.Output
		res.Answers[i] = replyText(resp.Output)
		fmt.Fprintf(out, "user:      %s\n", text)
		for _, item := range resp.Output {
			h := headOf(item)
			switch h.Type {
			case "function_call":
				fmt.Fprintf(out, "tool call: %s(%s)  call_id=%s\n", h.Name, h.Arguments, h.CallID)
			case "function_call_output":
				fmt.Fprintf(out, "tool out:  %s  call_id=%s\n", h.outputText(), h.CallID)
			}
		}
		fmt.Fprintf(out, "assistant: %s\n", res.Answers[i])
	}
	for _, i := range []int{1, 2} {
		if !strings.Contains(res.Answers[i], "SF") {
			return res, fmt.Errorf("answer %d does not recall SF: %q", i+1, res.Answers[i])
		}
	}
	return res, nil
}

// itemHead is the part of an item that the demo reads.
type itemHead struct {
	Type      string          `json:"type"`
	Role      string          `json:"role"`
	CallID    string          `json:"call_id"`
	Name      string          `json:"name"`
	Arguments string          `json:"arguments"`
	Output    json.RawMessage `json:"output"`
}

func headOf(item []byte) itemHead {
	var h itemHead
	json.Unmarshal(item, &h)
	if h.Type == "" && h.Role != "" {
		h.Type = "message"
	}
	return h
}

func (h itemHead) outputText() string {
	var s string
	if json.Unmarshal(h.Output, &s) == nil {
		return s
	}
	return string(h.Output)
}

// request is the body of POST /invocations, with its fields in the order of
// the Databricks agent template's README.
type request struct {
	Input        []message     `json:"input"`
	CustomInputs *customInputs `json:"custom_inputs,omitempty"`
}

type message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

type customInputs struct {
	SessionID string `json:"session_id"`
}

func post(ctx context.Context, client *http.Client, url string, body []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %s: %s", resp.Status, bytes.TrimSpace(b))
	}
	return b, nil
}

// replyText joins the text of the output messages.
func replyText(output []json.RawMessage) string {
	var texts []string
	for _, item := range output {
		var m struct {
			Content []struct {
				Text string `json:"text"`
			} `json:"content"`
		}
		if json.Unmarshal(item, &m) == nil {
			for _, c := range m.Content {
				texts = append(texts, c.Text)
			}
		}
	}
	return strings.Join(texts, "\n")
}

// WaitReady polls GET baseURL/healthz until it answers 200 or ctx ends.
func WaitReady(ctx context.Context, client *http.Client, baseURL string) error {
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, baseURL+"/healthz", nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the server at %s did not become ready: %w", baseURL, errors.Join(ctx.Err(), err))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Row is a row of agent_messages.
type Row struct {
	ID        int64
	CreatedAt string
	Data      string
}

// PrintRows writes the session's row of agent_sessions and its rows of
// agent_messages, as they are in the database, and returns the message
// rows.
func PrintRows(ctx context.Context, db *bun.DB, sessionID string, out io.Writer) ([]Row, error) {
	fmt.Fprintf(out, "\n--- agent_sessions\n")
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "session_id\tcreated_at\tupdated_at")
	var sid string
	var created, updated any
	err := db.QueryRowContext(ctx, "SELECT session_id, created_at, updated_at FROM agent_sessions WHERE session_id = ?", sessionID).
		Scan(&sid, &created, &updated)
	if err != nil {
		return nil, fmt.Errorf("read agent_sessions: %w", err)
	}
	fmt.Fprintf(tw, "%s\t%s\t%s\n", sid, formatTime(created), formatTime(updated))
	tw.Flush()

	fmt.Fprintf(out, "\n--- agent_messages (session_id %s)\n", sessionID)
	tw = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "id\tcreated_at\tmessage_data")
	rows, err := db.QueryContext(ctx, "SELECT id, created_at, message_data FROM agent_messages WHERE session_id = ? ORDER BY created_at, id", sessionID)
	if err != nil {
		return nil, fmt.Errorf("read agent_messages: %w", err)
	}
	defer rows.Close()
	var got []Row
	for rows.Next() {
		var r Row
		if err := rows.Scan(&r.ID, &created, &r.Data); err != nil {
			return got, fmt.Errorf("read agent_messages: %w", err)
		}
		r.CreatedAt = formatTime(created)
		fmt.Fprintf(tw, "%d\t%s\t%s\n", r.ID, r.CreatedAt, r.Data)
		got = append(got, r)
	}
	if err := rows.Err(); err != nil {
		return got, fmt.Errorf("read agent_messages: %w", err)
	}
	tw.Flush()
	return got, nil
}

// CheckTurns checks that rows hold the conversation res, one AddItems batch
// per turn, and writes what each batch holds to out: each turn's rows come
// in order (its user message, then its output items as answered), with
// increasing ids and one created_at; and the third turn holds the call of
// get_weather and its output, in that order, before the answer.
func CheckTurns(rows []Row, res Result, out io.Writer) error {
	fmt.Fprintf(out, "\n--- one AddItems batch per turn\n")
	next := 0
	for i, output := range res.Outputs {
		n := 1 + len(output)
		if next+n > len(rows) {
			return fmt.Errorf("%d rows stored, want %d or more for turns 1 to %d", len(rows), next+n, i+1)
		}
		batch := rows[next : next+n]
		next += n
		var kinds []string
		for k, r := range batch {
			h := headOf([]byte(r.Data))
			kinds = append(kinds, h.Type)
			if k > 0 && (r.ID <= batch[k-1].ID || r.CreatedAt != batch[0].CreatedAt) {
				return fmt.Errorf("turn %d: row %d (created_at %s) is not in the batch of row %d (created_at %s)",
					i+1, r.ID, r.CreatedAt, batch[0].ID, batch[0].CreatedAt)
			}
			if k > 0 && !sameJSON(r.Data, output[k-1]) {
				return fmt.Errorf("turn %d: row %d holds %s, but the answer's item %d was %s", i+1, r.ID, r.Data, k-1, output[k-1])
			}
		}
		if u := headOf([]byte(batch[0].Data)); u.Type != "message" || u.Role != "user" {
			return fmt.Errorf("turn %d: row %d is not the user message: %s", i+1, batch[0].ID, batch[0].Data)
		}
		fmt.Fprintf(out, "turn %d: ids %d-%d, created_at %s: %s\n", i+1, batch[0].ID, batch[n-1].ID, batch[0].CreatedAt, strings.Join(kinds, ", "))
		if i == 2 {
			if got := strings.Join(kinds, ","); got != "message,function_call,function_call_output,message" {
				return fmt.Errorf("turn 3 stored %s, want the question, the get_weather call, its output and the answer", got)
			}
			call, output := headOf([]byte(batch[1].Data)), headOf([]byte(batch[2].Data))
			if call.Name != "get_weather" || call.CallID == "" || output.CallID != call.CallID {
				return fmt.Errorf("turn 3: the output %s does not answer the call %s", batch[2].Data, batch[1].Data)
			}
		}
	}
	if next != len(rows) {
		return fmt.Errorf("%d rows stored, want %d", len(rows), next)
	}
	return nil
}

// sameJSON reports whether a and b are the same JSON value.
func sameJSON(a string, b []byte) bool {
	var va, vb any
	if json.Unmarshal([]byte(a), &va) != nil || json.Unmarshal(b, &vb) != nil {
		return false
	}
	return reflect.DeepEqual(va, vb)
}

func formatTime(v any) string {
	switch t := v.(type) {
	case time.Time:
		return t.Format("2006-01-02 15:04:05.999999")
	case []byte:
		return string(t)
	default:
		return fmt.Sprint(t)
	}
}
