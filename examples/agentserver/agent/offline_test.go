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
			items := decodeAll(t, tt.items...)
			var pieces []string
			out, err := agent.OfflineModel{}.Respond(context.Background(), agent.Request{
				Items: items,
				OnDelta: func(p string) error {
					pieces = append(pieces, p)
					return nil
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			got := replyText(t, out)
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
			plain, err := agent.OfflineModel{}.Respond(context.Background(), agent.Request{Items: items})
			if err != nil || replyText(t, plain) != got {
				t.Errorf("reply without streaming %v, %v; with streaming %q", plain, err, got)
			}
		})
	}
}

// weatherTurn is the conversation of a weather question: the history, the
// question, then what the turn produced so far.
func weatherTurn(history ...json.RawMessage) []json.RawMessage {
	return append(history, userMsg("What's the weather where I live?"))
}

func TestOfflineModelCallsTheWeatherTool(t *testing.T) {
	ctx := context.Background()
	tools := []agent.Tool{agent.WeatherTool()}
	history := []json.RawMessage{
		userMsg("Hello I live in SF!"), assistantMsg("[offline demo model] Noted: you live in SF."),
		userMsg("What city did I say I live in?"), assistantMsg("[offline demo model] You said you live in SF."),
	}
	items := decodeAll(t, weatherTurn(history...)...)

	// First call: the model asks for the weather of the city in the
	// history, and streams nothing.
	out, err := agent.OfflineModel{}.Respond(ctx, agent.Request{Items: items, Tools: tools, OnDelta: func(p string) error {
		t.Errorf("a tool call streamed text %q", p)
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 1 || out[0].OfFunctionCall == nil {
		t.Fatalf("want one function_call, got %d items: %v", len(out), out)
	}
	call := out[0].OfFunctionCall
	if call.Name != agent.WeatherToolName || call.Arguments != `{"city":"SF"}` || !strings.HasPrefix(call.CallID, "call_") {
		t.Errorf("call %s(%s) with call_id %q, want get_weather({\"city\":\"SF\"}) with a call_ id", call.Name, call.Arguments, call.CallID)
	}

	// Second call: with the tool's output after the call, it answers from
	// the output.
	output, err := tools[0].Call(ctx, call.Arguments)
	if err != nil {
		t.Fatal(err)
	}
	items = append(items, out[0], decode(t, `{"type":"function_call_output","call_id":"`+call.CallID+`","output":`+quote(output)+`}`))
	out, err = agent.OfflineModel{}.Respond(ctx, agent.Request{Items: items, Tools: tools})
	if err != nil {
		t.Fatal(err)
	}
	want := "[offline demo model] You said you live in SF. get_weather says: fog, 16 °C in SF (fixed demo table, not a forecast)."
	if got := replyText(t, out); got != want {
		t.Errorf("reply %q, want %q", got, want)
	}
}

func TestOfflineModelWeatherAnswers(t *testing.T) {
	tools := []agent.Tool{agent.WeatherTool()}
	for _, tt := range []struct {
		name  string
		items []json.RawMessage
		tools []agent.Tool
		args  string // the call wanted, or "" for a reply
		want  string
	}{
		{
			name:  "the city of the question wins",
			items: []json.RawMessage{userMsg("I live in SF."), userMsg("What's the weather in Paris?")},
			tools: tools, args: `{"city":"Paris"}`,
		},
		{
			name:  "the city of the question, with a time",
			items: []json.RawMessage{userMsg("What is the weather like in New York today?")},
			tools: tools, args: `{"city":"New York"}`,
		},
		{
			name:  "no city known",
			items: []json.RawMessage{userMsg("What's the weather where I live?")},
			tools: tools, want: "You have not told me where you live",
		},
		{
			name:  "no weather tool",
			items: weatherTurn(userMsg("I live in Lisbon.")),
			want:  "You said you live in Lisbon. I have no get_weather tool here",
		},
		{
			name: "an output of the tool from an earlier turn is not this turn's",
			items: []json.RawMessage{
				userMsg("I live in SF."),
				json.RawMessage(`{"type":"function_call","call_id":"old","name":"get_weather","arguments":"{\"city\":\"SF\"}"}`),
				json.RawMessage(`{"type":"function_call_output","call_id":"old","output":"{\"city\":\"SF\",\"sky\":\"sunny\",\"temperature_c\":30,\"source\":\"x\"}"}`),
				userMsg("What's the weather where I live?"),
			},
			tools: tools, args: `{"city":"SF"}`,
		},
		{
			name: "a city the tool does not know",
			items: []json.RawMessage{
				userMsg("What's the weather in Oslo?"),
				json.RawMessage(`{"type":"function_call","call_id":"c","name":"get_weather","arguments":"{\"city\":\"Oslo\"}"}`),
				json.RawMessage(`{"type":"function_call_output","call_id":"c","output":"{\"city\":\"Oslo\",\"error\":\"no weather for this city in the demo table\",\"source\":\"x\"}"}`),
			},
			tools: tools, want: "get_weather has no weather for Oslo: no weather for this city in the demo table.",
		},
		{
			name: "an output that is not the tool's JSON is quoted",
			items: []json.RawMessage{
				userMsg("What's the weather in Paris?"),
				json.RawMessage(`{"type":"function_call","call_id":"c","name":"get_weather","arguments":"{}"}`),
				json.RawMessage(`{"type":"function_call_output","call_id":"c","output":"error: send the arguments"}`),
			},
			tools: tools, want: "get_weather answered: error: send the arguments",
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out, err := agent.OfflineModel{}.Respond(context.Background(), agent.Request{Items: decodeAll(t, tt.items...), Tools: tt.tools})
			if err != nil {
				t.Fatal(err)
			}
			if tt.args != "" {
				if len(out) != 1 || out[0].OfFunctionCall == nil || out[0].OfFunctionCall.Arguments != tt.args {
					t.Fatalf("want a call with %s, got %v", tt.args, out)
				}
				return
			}
			if got := replyText(t, out); !strings.Contains(got, tt.want) {
				t.Errorf("reply %q, want it to contain %q", got, tt.want)
			}
		})
	}
}

func TestWeatherTool(t *testing.T) {
	ctx := context.Background()
	tool := agent.WeatherTool()
	if tool.Name != "get_weather" || tool.Parameters["type"] != "object" {
		t.Errorf("tool %q, parameters %v", tool.Name, tool.Parameters)
	}
	for _, tt := range []struct{ args, want string }{
		{`{"city":"SF"}`, `{"city":"SF","sky":"fog","temperature_c":16,"source":"fixed demo table, not a forecast"}`},
		{`{"city":"  san   Francisco "}`, `{"city":"SF","sky":"fog","temperature_c":16,"source":"fixed demo table, not a forecast"}`},
		{`{"city":"Lisbon"}`, `{"city":"Lisbon","sky":"sunny","temperature_c":22,"source":"fixed demo table, not a forecast"}`},
		{`{"city":"Oslo"}`, `{"city":"Oslo","error":"no weather for this city in the demo table; it knows SF, Paris, Lisbon, London, New York, Berlin, Tokyo","source":"fixed demo table, not a forecast"}`},
	} {
		got, err := tool.Call(ctx, tt.args)
		if err != nil || got != tt.want {
			t.Errorf("get_weather(%s) = %s, %v; want %s", tt.args, got, err, tt.want)
		}
		// The same every time: it is fixed demo data.
		if again, _ := tool.Call(ctx, tt.args); again != got {
			t.Errorf("get_weather(%s) changed: %s, then %s", tt.args, got, again)
		}
	}
	for _, bad := range []string{``, `{}`, `{"city":""}`, `{"city":3}`, `["SF"]`} {
		if _, err := tool.Call(ctx, bad); err == nil || !strings.Contains(err.Error(), `{"city": "SF"}`) {
			t.Errorf("get_weather(%s): %v, want an error that shows the arguments to send", bad, err)
		}
	}
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func TestOfflineModelStopsOnDeltaError(t *testing.T) {
	stop := errors.New("client gone")
	calls := 0
	_, err := agent.OfflineModel{}.Respond(context.Background(), agent.Request{
		Items: decodeAll(t, userMsg("Hello I live in SF!")),
		OnDelta: func(string) error {
			calls++
			return stop
		},
	})
	if !errors.Is(err, stop) || calls != 1 {
		t.Errorf("Respond returned %v after %d calls, want the delta error after 1", err, calls)
	}
}
