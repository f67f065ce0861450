package openaisession_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/openai/openai-go/v3/responses"

	"github.com/lakesession/lakesession"
	"github.com/lakesession/lakesession/bunstore"
	"github.com/lakesession/lakesession/openaisession"
)

// Every fixture survives a store round trip through the typed layer, added
// as a typed item and read back typed, popped, and added by another program
// as JSON.
func TestStoreRoundTrip(t *testing.T) {
	eachStore(t, func(t *testing.T, st *bunstore.Store) {
		ctx := t.Context()
		sess := openaisession.New(st.Session("round-trip"))
		items := make([]responses.ResponseInputItemUnionParam, len(fixtures))
		for i, f := range fixtures {
			items[i] = decode(t, f.raw)
		}
		if err := sess.AddItems(ctx, items); err != nil {
			t.Fatal(err)
		}
		got, err := sess.GetItems(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(fixtures) {
			t.Fatalf("GetItems returned %d items, want %d", len(got), len(fixtures))
		}
		raws, err := st.Session("round-trip").GetItems(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		for i, f := range fixtures {
			if v := setVariants(got[i]); len(v) != 1 || v[0] != f.variant {
				t.Errorf("%s: read back as %v, want %s", f.name, v, f.variant)
			}
			enc, err := openaisession.Encode(got[i])
			if err != nil {
				t.Fatalf("%s: Encode: %v", f.name, err)
			}
			if !sameJSON(t, enc, f.item()) {
				t.Errorf("%s: read back as\n%s\nwant\n%s", f.name, enc, f.raw)
			}
			if !sameJSON(t, raws[i], f.item()) {
				t.Errorf("%s: stored as\n%s\nwant\n%s", f.name, raws[i], f.raw)
			}
		}

		// Popped newest first.
		for i := len(fixtures) - 1; i >= len(fixtures)-3; i-- {
			p, err := sess.PopItem(ctx)
			if err != nil || p == nil {
				t.Fatalf("PopItem = %v, %v", p, err)
			}
			enc, err := openaisession.Encode(*p)
			if err != nil || !sameJSON(t, enc, fixtures[i].item()) {
				t.Fatalf("PopItem returned %s, %v; want %s", enc, err, fixtures[i].raw)
			}
		}

		// Written as JSON by another program (a Python agent), read typed.
		other := st.Session("written-as-json")
		raw := make([]json.RawMessage, len(fixtures))
		for i, f := range fixtures {
			raw[i] = f.item()
		}
		if err := other.AddItems(ctx, raw); err != nil {
			t.Fatal(err)
		}
		typed, err := openaisession.New(other).GetItems(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		for i, f := range fixtures {
			enc, err := openaisession.Encode(typed[i])
			if err != nil || !sameJSON(t, enc, f.item()) {
				t.Errorf("%s: read typed as %s, %v", f.name, enc, err)
			}
		}
	})
}

// AddTurn stores the turn's input and the response's output items, as the
// API returned them, in one AddItems batch.
func TestAddTurnIsOneBatch(t *testing.T) {
	eachStore(t, func(t *testing.T, st *bunstore.Store) {
		ctx := t.Context()
		counted := &countingSession{Session: st.Session("one-batch")}
		sess := openaisession.New(counted)

		input := []responses.ResponseInputItemUnionParam{
			responses.ResponseInputItemParamOfMessage("What's the weather in SF?", responses.EasyInputMessageRoleUser),
		}
		resp := response(t, 1)
		if err := sess.AddTurn(ctx, input, resp.Output); err != nil {
			t.Fatal(err)
		}
		if n := counted.adds.Load(); n != 1 {
			t.Fatalf("AddTurn made %d AddItems calls, want 1", n)
		}
		raws, err := st.Session("one-batch").GetItems(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		want := []string{`{"content":"What's the weather in SF?","role":"user"}`}
		for _, o := range resp.Output {
			want = append(want, o.RawJSON())
		}
		if len(raws) != len(want) {
			t.Fatalf("stored %d items, want %d", len(raws), len(want))
		}
		for i := range want {
			if !sameJSON(t, raws[i], json.RawMessage(want[i])) {
				t.Errorf("item %d stored as %s, want %s", i, raws[i], want[i])
			}
		}
		// The output items keep what openai-go's output types do not
		// name, because their raw JSON is stored.
		if !strings.Contains(string(raws[1]), `"provider_note":"kept"`) {
			t.Errorf("the reasoning item lost a field: %s", raws[1])
		}

		// An empty turn writes nothing.
		if err := sess.AddTurn(ctx, nil, nil); err != nil {
			t.Fatal(err)
		}
		if n := counted.adds.Load(); n != 1 {
			t.Fatalf("an empty AddTurn called AddItems")
		}
	})
}

// Concurrent turns on one session never interleave: each turn's items are
// stored together and in order.
func TestAddTurnConcurrent(t *testing.T) {
	const writers, turns = 6, 4
	eachStore(t, func(t *testing.T, st *bunstore.Store) {
		ctx := t.Context()
		sess := openaisession.New(st.Session("concurrent"))
		var wg sync.WaitGroup
		errs := make(chan error, writers*turns)
		for w := range writers {
			wg.Go(func() {
				for n := range turns {
					tag := fmt.Sprintf("w%d-t%d", w, n)
					input := []responses.ResponseInputItemUnionParam{
						responses.ResponseInputItemParamOfMessage(tag+" question", responses.EasyInputMessageRoleUser),
					}
					if err := sess.AddTurn(ctx, input, taggedOutput(t, tag)); err != nil {
						errs <- err
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		raws, err := st.Session("concurrent").GetItems(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		const perTurn = 4 // a question, then reasoning, a call and a message
		if len(raws) != writers*turns*perTurn {
			t.Fatalf("stored %d items, want %d", len(raws), writers*turns*perTurn)
		}
		seen := map[string]bool{}
		for i := 0; i < len(raws); i += perTurn {
			var first struct{ Content string }
			if err := json.Unmarshal(raws[i], &first); err != nil || !strings.HasSuffix(first.Content, " question") {
				t.Fatalf("item %d does not start a turn: %s", i, raws[i])
			}
			tag := strings.TrimSuffix(first.Content, " question")
			if seen[tag] {
				t.Fatalf("turn %s stored twice", tag)
			}
			seen[tag] = true
			for k := 1; k < perTurn; k++ {
				if !strings.Contains(string(raws[i+k]), tag+"-") {
					t.Fatalf("turn %s is interleaved with another: item %d is %s", tag, i+k, raws[i+k])
				}
			}
		}
	})
}

// A turn that cannot be stored whole is not stored at all, and the error
// says which item is wrong.
func TestAddTurnRefusesBadItems(t *testing.T) {
	eachStore(t, func(t *testing.T, st *bunstore.Store) {
		ctx := t.Context()
		counted := &countingSession{Session: st.Session("bad-turn")}
		sess := openaisession.New(counted)
		good := []responses.ResponseInputItemUnionParam{
			responses.ResponseInputItemParamOfMessage("hi", responses.EasyInputMessageRoleUser),
		}
		handMade := responses.ResponseOutputItemUnion{Type: "message", ID: "msg_1", Role: "assistant"}
		tests := []struct {
			name   string
			input  []responses.ResponseInputItemUnionParam
			output []responses.ResponseOutputItemUnion
			says   string
		}{
			{"output item without raw JSON", good, append(response(t, 1).Output, handMade), "output item 2: lakesession: invalid item: it has no raw JSON"},
			{"input item without variant", append(good, responses.ResponseInputItemUnionParam{}), response(t, 1).Output, "input item 1: lakesession: invalid item: no variant is set"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				err := sess.AddTurn(ctx, tt.input, tt.output)
				if !errors.Is(err, lakesession.ErrInvalidItem) {
					t.Fatalf("AddTurn = %v, want ErrInvalidItem", err)
				}
				if !strings.Contains(err.Error(), tt.says) {
					t.Errorf("error %q does not say %q", err, tt.says)
				}
				if n := counted.adds.Load(); n != 0 {
					t.Fatalf("AddItems was called %d times", n)
				}
			})
		}
		if items, err := sess.GetItems(ctx, 0); err != nil || len(items) != 0 {
			t.Fatalf("GetItems = %d items, %v; want none", len(items), err)
		}

		// AddItems refuses its batch the same way.
		err := sess.AddItems(ctx, append(good, responses.ResponseInputItemUnionParam{}))
		if !errors.Is(err, lakesession.ErrInvalidItem) || !strings.Contains(err.Error(), "item 1:") {
			t.Fatalf("AddItems = %v, want ErrInvalidItem naming item 1", err)
		}
		if n := counted.adds.Load(); n != 0 {
			t.Fatalf("AddItems of the store was called %d times", n)
		}
	})
}

// Whatever the limit, History sends no tool output without its call, no
// call without its output, no reasoning item without the item it led to
// and no call or answer without the reasoning item it came with; the items
// it keeps are those of the window, in order.
func TestHistoryHasNoOrphan(t *testing.T) {
	eachStore(t, func(t *testing.T, st *bunstore.Store) {
		ctx := t.Context()
		sess := openaisession.New(st.Session("history"))
		for turn := range 3 {
			input := []responses.ResponseInputItemUnionParam{
				responses.ResponseInputItemParamOfMessage(fmt.Sprintf("question %d", turn), responses.EasyInputMessageRoleUser),
			}
			if err := sess.AddTurn(ctx, input, response(t, 1).Output); err != nil { // reasoning, call
				t.Fatal(err)
			}
			if err := sess.AddTurn(ctx, []responses.ResponseInputItemUnionParam{
				decode(t, `{"type":"function_call_output","call_id":"call_1","output":"18C and sunny"}`),
			}, response(t, 2).Output); err != nil { // reasoning, message
				t.Fatal(err)
			}
		}
		// The last turn is cut short: its call has no output yet.
		if err := sess.AddTurn(ctx, []responses.ResponseInputItemUnionParam{
			responses.ResponseInputItemParamOfMessage("and tomorrow?", responses.EasyInputMessageRoleUser),
		}, response(t, 1).Output); err != nil {
			t.Fatal(err)
		}
		all, err := st.Session("history").GetItems(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		for limit := -1; limit <= len(all)+1; limit++ {
			hist, err := sess.History(ctx, limit)
			if err != nil {
				t.Fatal(err)
			}
			window := latest(all, limit)
			if len(hist) > len(window) {
				t.Fatalf("History(%d) returned %d items, more than the window", limit, len(hist))
			}
			var sent []json.RawMessage
			for _, it := range hist {
				raw, err := openaisession.Encode(it)
				if err != nil {
					t.Fatal(err)
				}
				sent = append(sent, raw)
			}
			if bad := orphans(sent); bad != "" {
				t.Fatalf("History(%d): %s", limit, bad)
			}
			if bad := withoutReasoning(reasoningOf(all), sent); bad != "" {
				t.Fatalf("History(%d): %s", limit, bad)
			}
			// It is RepairHistory of the window, decoded, without the
			// model items it starts with when their response began
			// before the window with a reasoning item.
			if limit > 0 && len(all) > limit {
				run := 0
				for run < len(window) && modelItem(window[run]) {
					run++
				}
				j := len(all) - limit - 1
				for j >= 0 && modelItem(all[j]) {
					j--
				}
				if run > 0 && j >= 0 && typeOf(all[j]) == "reasoning" {
					window = window[run:]
				}
			}
			want := lakesession.RepairHistory(window)
			if len(want) != len(sent) {
				t.Fatalf("History(%d) returned %d items, RepairHistory keeps %d", limit, len(sent), len(want))
			}
			for i := range want {
				if !sameJSON(t, sent[i], want[i]) {
					t.Fatalf("History(%d) item %d is %s, want %s", limit, i, sent[i], want[i])
				}
			}
		}
		// The latest items: ..., call, output, reasoning, answer, question,
		// reasoning, call (unanswered).
		checks := []struct {
			limit int
			want  string
		}{
			// The unanswered call goes, and the reasoning that led to it.
			{3, "[[OfMessage]]"},
			// Starting with the output of a call outside the window.
			{6, "[[OfReasoning] [OfOutputMessage] [OfMessage]]"},
			// Starting with that call, whose reasoning item is outside the
			// window: the window starts at the next response.
			{7, "[[OfReasoning] [OfOutputMessage] [OfMessage]]"},
			// Starting with the reasoning item of that call.
			{8, "[[OfReasoning] [OfFunctionCall] [OfFunctionCallOutput] [OfReasoning] [OfOutputMessage] [OfMessage]]"},
		}
		for _, c := range checks {
			h, err := sess.History(ctx, c.limit)
			if err != nil {
				t.Fatal(err)
			}
			if got := fmt.Sprint(variantsOf(h)); got != c.want {
				t.Errorf("History(%d) = %s, want %s", c.limit, got, c.want)
			}
		}
	})
}

// GetItems returns the latest limit items as they are stored, oldest
// first, all of them when limit <= 0, and does not repair the window.
func TestGetItemsLimit(t *testing.T) {
	eachStore(t, func(t *testing.T, st *bunstore.Store) {
		ctx := t.Context()
		sess := openaisession.New(st.Session("limit"))
		stored := []string{
			`{"role":"user","content":"What's the weather in SF?"}`,
			`{"type":"function_call","call_id":"call_1","name":"get_weather","arguments":"{}"}`,
			`{"type":"function_call_output","call_id":"call_1","output":"18C"}`,
			`{"type":"message","id":"msg_1","role":"assistant","status":"completed","content":[{"type":"output_text","text":"18C.","annotations":[]}]}`,
		}
		items := make([]responses.ResponseInputItemUnionParam, len(stored))
		for i, raw := range stored {
			items[i] = decode(t, raw)
		}
		if err := sess.AddItems(ctx, items); err != nil {
			t.Fatal(err)
		}
		for _, limit := range []int{-1, 0, 1, 2, 4, 5} {
			got, err := sess.GetItems(ctx, limit)
			if err != nil {
				t.Fatal(err)
			}
			want := latest(stored, limit)
			if len(got) != len(want) {
				t.Fatalf("GetItems(%d) returned %d items, want %d", limit, len(got), len(want))
			}
			for i := range want {
				enc, err := openaisession.Encode(got[i])
				if err != nil || !sameJSON(t, enc, json.RawMessage(want[i])) {
					t.Fatalf("GetItems(%d) item %d = %s, %v; want %s", limit, i, enc, err, want[i])
				}
			}
		}
	})
}

func TestPopItemEmpty(t *testing.T) {
	eachStore(t, func(t *testing.T, st *bunstore.Store) {
		sess := openaisession.New(st.Session("empty"))
		if got := sess.SessionID(t.Context()); got != "empty" {
			t.Fatalf("SessionID = %q", got)
		}
		p, err := sess.PopItem(t.Context())
		if p != nil || err != nil {
			t.Fatalf("PopItem on an empty session = %v, %v; want nil, nil", p, err)
		}
		if err := sess.AddItems(t.Context(), []responses.ResponseInputItemUnionParam{
			responses.ResponseInputItemParamOfMessage("hi", responses.EasyInputMessageRoleUser),
		}); err != nil {
			t.Fatal(err)
		}
		if err := sess.ClearSession(t.Context()); err != nil {
			t.Fatal(err)
		}
		if p, err := sess.PopItem(t.Context()); p != nil || err != nil {
			t.Fatalf("PopItem after ClearSession = %v, %v; want nil, nil", p, err)
		}
	})
}

// An item this openai-go cannot decode is neither an error nor dropped: it
// comes back as a pass-through item that encodes to the stored JSON.
func TestUnknownItemsPassThrough(t *testing.T) {
	eachStore(t, func(t *testing.T, st *bunstore.Store) {
		ctx := t.Context()
		raw := st.Session("unknown")
		unknown := `{"type":"hologram_call","id":"hg_1","status":"completed","payload":{"x":1}}`
		if err := raw.AddItems(ctx, []json.RawMessage{
			json.RawMessage(`{"role":"user","content":"show me"}`),
			json.RawMessage(unknown),
			json.RawMessage(`{"type":"message","id":"msg_1","role":"assistant","status":"completed","content":[{"type":"output_text","text":"here","annotations":[]}]}`),
		}); err != nil {
			t.Fatal(err)
		}
		sess := openaisession.New(raw)
		for _, read := range []func() ([]responses.ResponseInputItemUnionParam, error){
			func() ([]responses.ResponseInputItemUnionParam, error) { return sess.GetItems(ctx, 0) },
			func() ([]responses.ResponseInputItemUnionParam, error) { return sess.History(ctx, 0) },
		} {
			items, err := read()
			if err != nil {
				t.Fatal(err)
			}
			if len(items) != 3 || len(setVariants(items[1])) != 0 {
				t.Fatalf("read %v", variantsOf(items))
			}
			sent, err := json.Marshal(items[1]) // as openai-go sends it
			if err != nil || !sameJSON(t, sent, json.RawMessage(unknown)) {
				t.Fatalf("the unknown item is sent as %s, %v", sent, err)
			}
			if _, err := openaisession.Decode(sent); !errors.Is(err, openaisession.ErrUnknownType) {
				t.Fatalf("Decode of it = %v, want ErrUnknownType", err)
			}
		}
		// Added back, it is stored as it was.
		items, _ := sess.GetItems(ctx, 0)
		other := openaisession.New(st.Session("unknown-copy"))
		if err := other.AddItems(ctx, items); err != nil {
			t.Fatal(err)
		}
		copied, err := st.Session("unknown-copy").GetItems(ctx, 0)
		if err != nil || len(copied) != 3 || !sameJSON(t, copied[1], json.RawMessage(unknown)) {
			t.Fatalf("copied as %s, %v", copied, err)
		}
		// Popped, it is not lost.
		if _, err := sess.PopItem(ctx); err != nil {
			t.Fatal(err)
		}
		p, err := sess.PopItem(ctx)
		if err != nil || p == nil {
			t.Fatalf("PopItem = %v, %v", p, err)
		}
		if enc, err := openaisession.Encode(*p); err != nil || !sameJSON(t, enc, json.RawMessage(unknown)) {
			t.Fatalf("popped %s, %v", enc, err)
		}
	})
}

// Every method hands its context to the store: a cancelled call fails with
// the context's error and writes nothing.
func TestContextReachesTheStore(t *testing.T) {
	eachStore(t, func(t *testing.T, st *bunstore.Store) {
		sess := openaisession.New(st.Session("ctx"))
		if err := sess.AddItems(t.Context(), []responses.ResponseInputItemUnionParam{
			responses.ResponseInputItemParamOfMessage("hi", responses.EasyInputMessageRoleUser),
		}); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		input := []responses.ResponseInputItemUnionParam{
			responses.ResponseInputItemParamOfMessage("lost", responses.EasyInputMessageRoleUser),
		}
		calls := map[string]func() error{
			"GetItems":     func() error { _, err := sess.GetItems(ctx, 0); return err },
			"History":      func() error { _, err := sess.History(ctx, 0); return err },
			"AddItems":     func() error { return sess.AddItems(ctx, input) },
			"AddTurn":      func() error { return sess.AddTurn(ctx, input, response(t, 1).Output) },
			"PopItem":      func() error { _, err := sess.PopItem(ctx); return err },
			"ClearSession": func() error { return sess.ClearSession(ctx) },
		}
		for name, call := range calls {
			if err := call(); !errors.Is(err, context.Canceled) {
				t.Errorf("%s with a cancelled context = %v, want context.Canceled", name, err)
			}
		}
		items, err := sess.GetItems(t.Context(), 0)
		if err != nil || len(items) != 1 {
			t.Fatalf("after the cancelled calls, the session has %d items, %v; want the 1 it had", len(items), err)
		}
	})
}

// latest returns the window that GetItems(ctx, limit) reads from items:
// the last limit of them, or all of them when limit <= 0.
func latest[T any](items []T, limit int) []T {
	if limit > 0 && limit < len(items) {
		return items[len(items)-limit:]
	}
	return items
}

// countingSession counts the AddItems calls that reach the store.
type countingSession struct {
	lakesession.Session
	adds atomic.Int64
}

func (c *countingSession) AddItems(ctx context.Context, items []json.RawMessage) error {
	c.adds.Add(1)
	return c.Session.AddItems(ctx, items)
}

// response returns a Responses-API response as openai-go decodes it from
// the wire: turn 1 is a reasoning item and a call of get_weather, turn 2 a
// reasoning item and the answer.
func response(t testing.TB, turn int) responses.Response {
	t.Helper()
	outputs := map[int]string{
		1: `[{"id":"rs_1","type":"reasoning","summary":[],"provider_note":"kept"},
		     {"id":"fc_1","type":"function_call","status":"completed","arguments":"{\"city\":\"SF\"}","call_id":"call_1","name":"get_weather"}]`,
		2: `[{"id":"rs_2","type":"reasoning","summary":[]},
		     {"id":"msg_2","type":"message","status":"completed","role":"assistant","content":[{"type":"output_text","annotations":[],"logprobs":[],"text":"It is 18C and sunny in SF."}]}]`,
	}
	return decodeResponse(t, outputs[turn])
}

// taggedOutput returns the output of a response whose items carry tag in
// their ids.
func taggedOutput(t testing.TB, tag string) []responses.ResponseOutputItemUnion {
	out := fmt.Sprintf(`[{"id":"rs_%[1]s-","type":"reasoning","summary":[]},
		{"id":"fc_%[1]s-","type":"function_call","status":"completed","arguments":"{}","call_id":"call_%[1]s-","name":"get_weather"},
		{"id":"msg_%[1]s-","type":"message","status":"completed","role":"assistant","content":[{"type":"output_text","annotations":[],"text":"ok"}]}]`, tag)
	return decodeResponse(t, out).Output
}

func decodeResponse(t testing.TB, output string) responses.Response {
	t.Helper()
	body := `{"id":"resp_1","object":"response","created_at":1750000000,"status":"completed","model":"gpt-5","output":` + output +
		`,"parallel_tool_calls":true,"tool_choice":"auto","tools":[]}`
	var r responses.Response
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatal(err)
	}
	return r
}

func variantsOf(items []responses.ResponseInputItemUnionParam) [][]string {
	out := make([][]string, len(items))
	for i, it := range items {
		out[i] = setVariants(it)
	}
	return out
}

// orphans describes the first item of list that the Responses API would
// reject for want of its pair, or returns "".
func orphans(list []json.RawMessage) string {
	parsed := make([]map[string]any, len(list))
	for i, raw := range list {
		if err := json.Unmarshal(raw, &parsed[i]); err != nil {
			return fmt.Sprintf("item %d is not JSON", i)
		}
	}
	str := func(m map[string]any, k string) string { s, _ := m[k].(string); return s }
	for i, m := range parsed {
		switch str(m, "type") {
		case "function_call_output":
			found := false
			for _, e := range parsed[:i] {
				found = found || (str(e, "type") == "function_call" && str(e, "call_id") == str(m, "call_id"))
			}
			if !found {
				return fmt.Sprintf("item %d is an output whose call is not before it", i)
			}
		case "function_call":
			found := false
			for _, e := range parsed[i+1:] {
				found = found || (str(e, "type") == "function_call_output" && str(e, "call_id") == str(m, "call_id"))
			}
			if !found {
				return fmt.Sprintf("item %d is a call whose output is not after it", i)
			}
		case "reasoning":
			if i+1 == len(parsed) {
				return fmt.Sprintf("item %d is reasoning at the end", i)
			}
			n := parsed[i+1]
			if !(str(n, "role") == "assistant" || str(n, "type") == "function_call" || str(n, "type") == "reasoning") {
				return fmt.Sprintf("item %d is reasoning followed by %v", i, n["type"])
			}
		}
	}
	return ""
}

// reasoningOf maps the id of each item of list that comes right after a
// reasoning item (the call or the answer the reasoning led to) to that
// reasoning item's id: the pairs that the Responses API, which gave the
// ids, requires to be sent together.
func reasoningOf(list []json.RawMessage) map[string]string {
	need := map[string]string{}
	var prev struct{ Type, ID string }
	for _, raw := range list {
		var it struct{ Type, ID string }
		_ = json.Unmarshal(raw, &it)
		if prev.Type == "reasoning" && it.Type != "reasoning" && it.ID != "" {
			need[it.ID] = prev.ID
		}
		prev = it
	}
	return need
}

// withoutReasoning describes the first item of list that the Responses API
// rejects because the reasoning item it came with (need, from reasoningOf)
// is not before it, or returns "".
func withoutReasoning(need map[string]string, list []json.RawMessage) string {
	seen := map[string]bool{}
	for i, raw := range list {
		var it struct{ Type, ID string }
		_ = json.Unmarshal(raw, &it)
		if rs, ok := need[it.ID]; ok && !seen[rs] {
			return fmt.Sprintf("item %d (%s %s) was provided without its required reasoning item %s", i, it.Type, it.ID, rs)
		}
		seen[it.ID] = true
	}
	return ""
}

// modelItem reports whether raw is an item a model produces after its
// reasoning: an assistant message or a call.
func modelItem(raw json.RawMessage) bool {
	var m struct{ Type, Role string }
	_ = json.Unmarshal(raw, &m)
	return strings.HasSuffix(m.Type, "_call") || (m.Type == "" || m.Type == "message") && m.Role == "assistant"
}

// A window that cuts into a response leaves out the calls it starts with
// when the response began with a reasoning item, and keeps them when it
// did not; a response begun too far back to see counts as one with
// reasoning.
func TestHistoryCutResponse(t *testing.T) {
	call := func(n int) string {
		return fmt.Sprintf(`{"type":"function_call","id":"fc_%d","call_id":"call_%d","name":"get_weather","arguments":"{}"}`, n, n)
	}
	out := func(n int) string {
		return fmt.Sprintf(`{"type":"function_call_output","call_id":"call_%d","output":"18C"}`, n)
	}
	const (
		user      = `{"role":"user","content":"weather?"}`
		reasoning = `{"type":"reasoning","id":"rs_1","summary":[]}`
		answer    = `{"type":"message","id":"msg_1","role":"assistant","status":"completed","content":[{"type":"output_text","text":"18C","annotations":[]}]}`
	)
	many := func(f func(int) string, n int) []string {
		var s []string
		for i := 1; i <= n; i++ {
			s = append(s, f(i))
		}
		return s
	}
	for _, c := range []struct {
		name  string
		items []string
		limit int
		want  string // the call_ids, ids or roles History returns
	}{
		{"reasoning, window from the second call", slices.Concat([]string{user, reasoning}, many(call, 2), many(out, 2), []string{answer}), 4,
			"msg_1"},
		{"reasoning, window from the first call", slices.Concat([]string{user, reasoning}, many(call, 2), many(out, 2), []string{answer}), 5,
			"msg_1"},
		{"reasoning in the window", slices.Concat([]string{user, reasoning}, many(call, 2), many(out, 2), []string{answer}), 6,
			"rs_1 call_1 call_2 call_1 call_2 msg_1"},
		{"no reasoning, window from the second call", slices.Concat([]string{user}, many(call, 2), many(out, 2), []string{answer}), 4,
			"call_2 call_2 msg_1"},
		{"no reasoning, window from the first call", slices.Concat([]string{user}, many(call, 2), many(out, 2), []string{answer}), 5,
			"call_1 call_2 call_1 call_2 msg_1"},
		{"an answer after its reasoning", []string{user, reasoning, answer, user}, 2,
			"user"},
		{"an answer after a user message", []string{reasoning, user, answer, user}, 2,
			"msg_1 user"},
		{"a response begun more than 8 items back", slices.Concat([]string{user}, many(call, 10), many(out, 10), []string{answer}), 12,
			"msg_1"},
		{"one begun within 8 items", slices.Concat([]string{user}, many(call, 8), many(out, 8), []string{answer}), 10,
			"call_8 call_8 msg_1"},
		{"one that began the session", slices.Concat(many(call, 2), many(out, 2), []string{answer}), 4,
			"call_2 call_2 msg_1"},
		{"a response begun 9 items back, one more than is read", slices.Concat([]string{user}, many(call, 9), many(out, 9), []string{answer}), 11,
			"msg_1"},
		{"reasoning, then the MCP tools listed", slices.Concat([]string{user, reasoning, `{"type":"mcp_list_tools","id":"mlt_1","server_label":"s","tools":[]}`},
			many(call, 1), many(out, 1), []string{answer}), 4,
			"msg_1"},
		{"reasoning, then an MCP approval request", []string{user, reasoning,
			`{"type":"mcp_approval_request","id":"mcpr_1","server_label":"s","name":"n","arguments":"{}"}`, user, answer}, 3,
			"user msg_1"},
		{"reasoning, then a program and a server tool search", slices.Concat([]string{user, reasoning,
			`{"type":"program","id":"pg_1","code":"x"}`,
			`{"type":"tool_search_call","id":"ts_1"}`,
			`{"type":"tool_search_output","id":"tso_1","tools":[]}`,
		}, many(call, 1), many(out, 1), []string{answer}), 4,
			"msg_1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			st := sqliteStore(t)
			raws := make([]json.RawMessage, len(c.items))
			for i, it := range c.items {
				raws[i] = json.RawMessage(it)
			}
			if err := st.Session("cut").AddItems(t.Context(), raws); err != nil {
				t.Fatal(err)
			}
			hist, err := openaisession.New(st.Session("cut")).History(t.Context(), c.limit)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, it := range hist {
				raw, err := openaisession.Encode(it)
				if err != nil {
					t.Fatal(err)
				}
				var m struct {
					ID     string `json:"id"`
					CallID string `json:"call_id"`
					Role   string `json:"role"`
				}
				_ = json.Unmarshal(raw, &m)
				switch {
				case m.CallID != "":
					got = append(got, m.CallID)
				case m.ID != "":
					got = append(got, m.ID)
				default:
					got = append(got, m.Role)
				}
			}
			if strings.Join(got, " ") != c.want {
				t.Errorf("History(%d) = %s, want %s", c.limit, strings.Join(got, " "), c.want)
			}
		})
	}
}
