package openaisession_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"

	"github.com/lakesession/lakesession/openaisession"
)

// The agent loop of the package documentation and the README, with a tool,
// runs against a Responses API that, like the real one, rejects an input
// with a tool output whose call is not before it, or a call without its
// reasoning item: every request is accepted, whatever the history limit,
// and the turn's steps are stored in order.
func TestAgentLoopWithTool(t *testing.T) {
	for _, limit := range []int{50, 5, 4, 3, 2, 1} {
		t.Run(fmt.Sprintf("History(%d)", limit), func(t *testing.T) {
			api := newFakeAPI(t)
			st := sqliteStore(t)
			sess := openaisession.New(st.Session("loop"))
			ctx := t.Context()

			if got, err := ask(ctx, api.client, sess, limit, "Hello I live in SF!"); err != nil || got != "Nice to meet you." {
				t.Fatalf("first turn = %q, %v", got, err)
			}
			got, err := ask(ctx, api.client, sess, limit, "What's the weather where I live?")
			if err != nil || got != `The weather: {"temperature":18}` {
				t.Fatalf("second turn = %q, %v", got, err)
			}
			// With History(3), the window of this turn would start with
			// the call, whose reasoning item is older: History leaves out
			// the end of the second turn (with 2, the call's output and
			// the answer; with 4, the window starts with the reasoning).
			if got, err := ask(ctx, api.client, sess, limit, "Thanks!"); err != nil || got != "Nice to meet you." {
				t.Fatalf("third turn = %q, %v", got, err)
			}
			if api.requests() != 4 {
				t.Fatalf("the API got %d requests, want 4", api.requests())
			}
			raws, err := st.Session("loop").GetItems(ctx, 0)
			if err != nil {
				t.Fatal(err)
			}
			var types []string
			for _, raw := range raws {
				types = append(types, typeOf(raw))
			}
			want := []string{"user", "message", "user", "reasoning", "function_call", "function_call_output", "message", "user", "message"}
			if !slices.Equal(types, want) {
				t.Fatalf("stored %v, want %v", types, want)
			}
		})
	}
}

// The fake API of TestAgentLoopWithTool refuses what the real one refuses,
// so the test above can fail: a loop that reads History again in the
// middle of a turn sends the tool's output without its call.
func TestFakeAPIRejectsOrphans(t *testing.T) {
	api := newFakeAPI(t)
	sess := openaisession.New(sqliteStore(t).Session("wrong-loop"))
	ctx := t.Context()
	question := []responses.ResponseInputItemUnionParam{
		responses.ResponseInputItemParamOfMessage("What's the weather in SF?", responses.EasyInputMessageRoleUser),
	}
	resp, err := api.client.Responses.New(ctx, responses.ResponseNewParams{
		Model: openai.ChatModelGPT5_4Mini,
		Input: responses.ResponseNewParamsInputUnion{OfInputItemList: question},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := sess.AddTurn(ctx, question, resp.Output); err != nil {
		t.Fatal(err)
	}
	history, err := sess.History(ctx, 50) // the call, the newest item, has no output yet: left out
	if err != nil {
		t.Fatal(err)
	}
	_, err = api.client.Responses.New(ctx, responses.ResponseNewParams{
		Model: openai.ChatModelGPT5_4Mini,
		Input: responses.ResponseNewParamsInputUnion{OfInputItemList: append(history, toolOutput(resp.Output[1].AsFunctionCall()))},
	})
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusBadRequest {
		t.Fatalf("the fake API accepted a tool output without its call: %v", err)
	}

	// A window that starts with the call, without the reasoning item the
	// call came with.
	call, err := openaisession.InputItems(resp.Output[1:])
	if err != nil {
		t.Fatal(err)
	}
	_, err = api.client.Responses.New(ctx, responses.ResponseNewParams{
		Model: openai.ChatModelGPT5_4Mini,
		Input: responses.ResponseNewParamsInputUnion{OfInputItemList: append(call, toolOutput(resp.Output[1].AsFunctionCall()))},
	})
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusBadRequest || !strings.Contains(apiErr.Message, "required reasoning item") {
		t.Fatalf("the fake API accepted a call without its reasoning item: %v", err)
	}
}

func TestInputItems(t *testing.T) {
	out := response(t, 1).Output // reasoning (with a field openai-go does not name), call
	out = append(out, decodeResponse(t, `[{"type":"hologram_call","id":"hg_1"}]`).Output...)
	items, err := openaisession.InputItems(out)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(variantsOf(items)); got != "[[OfReasoning] [OfFunctionCall] []]" {
		t.Fatalf("InputItems = %s", got)
	}
	for i, it := range items {
		sent, err := json.Marshal(it)
		if err != nil || !sameJSON(t, sent, json.RawMessage(out[i].RawJSON())) {
			t.Errorf("item %d is sent as %s, %v; want %s", i, sent, err, out[i].RawJSON())
		}
	}

	handMade := responses.ResponseOutputItemUnion{Type: "message", ID: "msg_1", Role: "assistant"}
	if _, err := openaisession.InputItems(append(out, handMade)); err == nil || !strings.Contains(err.Error(), "output item 3:") {
		t.Fatalf("InputItems of an item without raw JSON = %v", err)
	}
}

// ask is the agent loop of the README's openai-go section: one user turn,
// with at most 5 model calls, the history read once, and each step stored
// with AddTurn.
func ask(ctx context.Context, client openai.Client, sess *openaisession.Session, limit int, question string) (string, error) {
	history, err := sess.History(ctx, limit)
	if err != nil {
		return "", err
	}
	conversation := history
	input := []responses.ResponseInputItemUnionParam{
		responses.ResponseInputItemParamOfMessage(question, responses.EasyInputMessageRoleUser),
	}
	for range 5 {
		conversation = append(conversation, input...)
		resp, err := client.Responses.New(ctx, responses.ResponseNewParams{
			Model: openai.ChatModelGPT5_4Mini,
			Input: responses.ResponseNewParamsInputUnion{OfInputItemList: conversation},
		})
		if err != nil {
			return "", err
		}
		if err := sess.AddTurn(ctx, input, resp.Output); err != nil {
			return "", err
		}
		output, err := openaisession.InputItems(resp.Output)
		if err != nil {
			return "", err
		}
		conversation = append(conversation, output...)
		input = nil
		for _, out := range resp.Output {
			if out.Type == "function_call" {
				input = append(input, toolOutput(out.AsFunctionCall()))
			}
		}
		if len(input) == 0 {
			return resp.OutputText(), nil
		}
	}
	return "", errors.New("no answer after 5 model calls")
}

func toolOutput(call responses.ResponseFunctionToolCall) responses.ResponseInputItemUnionParam {
	return responses.ResponseInputItemUnionParam{OfFunctionCallOutput: &responses.ResponseInputItemFunctionCallOutputParam{
		CallID: openai.String(call.CallID),
		Output: responses.ResponseInputItemFunctionCallOutputOutputUnionParam{OfString: openai.String(`{"temperature":18}`)},
	}}
}

// fakeAPI is a Responses API on httptest: it answers a weather question
// with a reasoning item and a get_weather call, a tool output with a
// message that quotes it, and anything else with a greeting. Like the real
// API, it answers 400 to an input that orphans finds fault with, or that
// sends a call it made without the reasoning item it made it with.
type fakeAPI struct {
	client openai.Client
	mu     sync.Mutex
	n      int
	need   map[string]string // reasoningOf the items it returned
}

// splitJSON returns the elements of a JSON array.
func splitJSON(array string) []json.RawMessage {
	var items []json.RawMessage
	_ = json.Unmarshal([]byte(array), &items)
	return items
}

func newFakeAPI(t *testing.T) *fakeAPI {
	api := &fakeAPI{need: map[string]string{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		body, err := io.ReadAll(r.Body)
		var req struct {
			Input []json.RawMessage `json:"input"`
		}
		if err == nil {
			err = json.Unmarshal(body, &req)
		}
		if err != nil || len(req.Input) == 0 {
			http.Error(w, `{"error":{"message":"no input","type":"invalid_request_error"}}`, http.StatusBadRequest)
			return
		}
		api.mu.Lock()
		bad := withoutReasoning(api.need, req.Input)
		api.mu.Unlock()
		if bad == "" {
			bad = orphans(req.Input)
		}
		if bad != "" {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, `{"error":{"message":%q,"type":"invalid_request_error"}}`, bad)
			return
		}
		api.mu.Lock()
		api.n++
		n := api.n
		api.mu.Unlock()
		last := req.Input[len(req.Input)-1]
		var output string
		switch {
		case typeOf(last) == "function_call_output":
			var o struct{ Output string }
			_ = json.Unmarshal(last, &o)
			output = fmt.Sprintf(`[{"id":"msg_%d","type":"message","status":"completed","role":"assistant","content":[{"type":"output_text","annotations":[],"text":%q}]}]`, n, "The weather: "+o.Output)
		case strings.Contains(string(last), "weather"):
			output = fmt.Sprintf(`[{"id":"rs_%d","type":"reasoning","summary":[]},{"id":"fc_%d","type":"function_call","status":"completed","call_id":"call_%d","name":"get_weather","arguments":"{\"city\":\"SF\"}"}]`, n, n, n)
		default:
			output = fmt.Sprintf(`[{"id":"msg_%d","type":"message","status":"completed","role":"assistant","content":[{"type":"output_text","annotations":[],"text":"Nice to meet you."}]}]`, n)
		}
		api.mu.Lock()
		maps.Copy(api.need, reasoningOf(splitJSON(output)))
		api.mu.Unlock()
		fmt.Fprintf(w, `{"id":"resp_%d","object":"response","created_at":1750000000,"status":"completed","model":"gpt-5.4-mini","output":%s}`, n, output)
	}))
	t.Cleanup(srv.Close)
	api.client = openai.NewClient(option.WithBaseURL(srv.URL), option.WithAPIKey("test"), option.WithMaxRetries(0))
	return api
}

func (a *fakeAPI) requests() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.n
}

// typeOf returns an item's "type", or "user" for a user message without one.
func typeOf(raw json.RawMessage) string {
	var m struct{ Type, Role string }
	_ = json.Unmarshal(raw, &m)
	if m.Type == "" {
		return m.Role
	}
	return m.Type
}
