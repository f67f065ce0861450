package agent_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/lakesession/lakesession/examples/agentserver/agent"
)

func userMsg(text string) json.RawMessage {
	b, _ := json.Marshal(map[string]string{"role": "user", "content": text})
	return b
}

func assistantMsg(text string) json.RawMessage {
	b, _ := json.Marshal(map[string]any{
		"type": "message", "role": "assistant", "status": "completed",
		"content": []any{map[string]any{"type": "output_text", "text": text, "annotations": []any{}}},
	})
	return b
}

func TestOfflineModelRecall(t *testing.T) {
	tests := []struct {
		name  string
		items []json.RawMessage
		want  string
		not   string
	}{
		{
			name:  "the seed conversation",
			items: []json.RawMessage{userMsg("Hello I live in SF!"), assistantMsg("[offline demo model] Noted: you live in SF."), userMsg("What city did I say I live in?")},
			want:  "You said you live in SF.",
		},
		{
			name:  "first turn acknowledges the city",
			items: []json.RawMessage{userMsg("Hello I live in SF!")},
			want:  "Noted: you live in SF.",
		},
		{
			name:  "nothing to recall",
			items: []json.RawMessage{userMsg("What city did I say I live in?")},
			want:  "You have not told me where you live",
		},
		{
			name:  "a question is not a statement",
			items: []json.RawMessage{userMsg("Do I live in Paris?"), userMsg("Where do I live?")},
			want:  "You have not told me where you live",
			not:   "Paris",
		},
		{
			name: "the latest statement wins",
			items: []json.RawMessage{
				userMsg("I live in Paris, near the river."), assistantMsg("ok"),
				userMsg("Big news: I moved to Lisbon."), assistantMsg("ok"),
				userMsg("Which city did I say I live in?"),
			},
			want: "You said you live in Lisbon.",
			not:  "Paris",
		},
		{
			name: "only user messages count",
			items: []json.RawMessage{
				assistantMsg("I live in Berlin."),
				userMsg("Where do I live?"),
			},
			want: "You have not told me where you live",
		},
		{
			name:  "content parts",
			items: []json.RawMessage{json.RawMessage(`{"type":"message","role":"user","content":[{"type":"input_text","text":"Hi. I'm from New York and I like tea."}]}`), userMsg("where am I from?")},
			want:  "You said you live in New York.",
		},
		{
			name:  "name and city",
			items: []json.RawMessage{userMsg("My name is Ada. I live in London."), userMsg("Who am I and what city do I live in?")},
			want:  "You said your name is Ada. You said you live in London.",
		},
		{
			name:  "anything else is repeated",
			items: []json.RawMessage{userMsg("turn 7")},
			want:  `You said: "turn 7".`,
		},
		{
			name:  "no user message",
			items: []json.RawMessage{assistantMsg("hello"), json.RawMessage(`{"type":"function_call","call_id":"c","name":"f","arguments":"{}"}`)},
			want:  "There is no user message to answer.",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var pieces []string
			got, err := agent.OfflineModel{}.Reply(context.Background(), tt.items, func(p string) error {
				pieces = append(pieces, p)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(got, "[offline demo model] ") {
				t.Errorf("reply %q does not start with [offline demo model]", got)
			}
			if !strings.Contains(got, tt.want) {
				t.Errorf("reply %q, want it to contain %q", got, tt.want)
			}
			if tt.not != "" && strings.Contains(got, tt.not) {
				t.Errorf("reply %q contains %q", got, tt.not)
			}
			if strings.Join(pieces, "") != got || len(pieces) < 2 {
				t.Errorf("streamed pieces %q do not add up to %q", pieces, got)
			}
			plain, err := agent.OfflineModel{}.Reply(context.Background(), tt.items, nil)
			if err != nil || plain != got {
				t.Errorf("reply without streaming %q, %v; with streaming %q", plain, err, got)
			}
		})
	}
}

func TestOfflineModelStopsOnDeltaError(t *testing.T) {
	stop := errors.New("client gone")
	calls := 0
	_, err := agent.OfflineModel{}.Reply(context.Background(), []json.RawMessage{userMsg("Hello I live in SF!")}, func(string) error {
		calls++
		return stop
	})
	if !errors.Is(err, stop) || calls != 1 {
		t.Errorf("Reply returned %v after %d calls, want the delta error after 1", err, calls)
	}
}
