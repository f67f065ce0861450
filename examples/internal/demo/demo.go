package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/uptrace/bun"
)

// The two user messages of the demo conversation.
const (
	FirstMessage  = "Hello I live in SF!"
	SecondMessage = "What city did I say I live in?"
)

// Result is what the conversation returned.
type Result struct {
	SessionID string
	Answers   [2]string
}

// Converse sends the two turns of the demo to the agent server at baseURL
// (http://host:port), the second with the session id the first returned,
// and writes each request, answer and reply to out. It fails unless both
// answers are well formed and the second recalls SF.
func Converse(ctx context.Context, client *http.Client, baseURL string, out io.Writer) (Result, error) {
	var res Result
	for i, text := range []string{FirstMessage, SecondMessage} {
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
		res.Answers[i] = replyText(resp.Output)
		fmt.Fprintf(out, "user:      %s\nassistant: %s\n", text, res.Answers[i])
	}
	if !strings.Contains(res.Answers[1], "SF") {
		return res, fmt.Errorf("the second answer does not recall SF: %q", res.Answers[1])
	}
	return res, nil
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

// PrintRows writes the session's row of agent_sessions and its rows of
// agent_messages, as they are in the database, and returns the number of
// message rows.
func PrintRows(ctx context.Context, db *bun.DB, sessionID string, out io.Writer) (int, error) {
	fmt.Fprintf(out, "\n--- agent_sessions\n")
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "session_id\tcreated_at\tupdated_at")
	var sid string
	var created, updated any
	err := db.QueryRowContext(ctx, "SELECT session_id, created_at, updated_at FROM agent_sessions WHERE session_id = ?", sessionID).
		Scan(&sid, &created, &updated)
	if err != nil {
		return 0, fmt.Errorf("read agent_sessions: %w", err)
	}
	fmt.Fprintf(tw, "%s\t%s\t%s\n", sid, formatTime(created), formatTime(updated))
	tw.Flush()

	fmt.Fprintf(out, "\n--- agent_messages\n")
	tw = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "id\tsession_id\tcreated_at\tmessage_data")
	rows, err := db.QueryContext(ctx, "SELECT id, session_id, created_at, message_data FROM agent_messages WHERE session_id = ? ORDER BY created_at, id", sessionID)
	if err != nil {
		return 0, fmt.Errorf("read agent_messages: %w", err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var id int64
		var data string
		if err := rows.Scan(&id, &sid, &created, &data); err != nil {
			return n, fmt.Errorf("read agent_messages: %w", err)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", id, sid, formatTime(created), data)
		n++
	}
	if err := rows.Err(); err != nil {
		return n, fmt.Errorf("read agent_messages: %w", err)
	}
	tw.Flush()
	return n, nil
}

func formatTime(v any) string {
	switch t := v.(type) {
	case time.Time:
		return t.Format("2006-01-02 15:04:05.000000")
	case []byte:
		return string(t)
	default:
		return fmt.Sprint(t)
	}
}
