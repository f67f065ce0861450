package lakesession_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/lakesession/lakesession"
)

// Items of the tests, by what they are.
const (
	user      = `{"role":"user","content":"What's the weather in SF?"}`
	userTyped = `{"type":"message","role":"user","content":[{"type":"input_text","text":"hi"}]}`
	assistant = `{"type":"message","id":"msg_1","role":"assistant","status":"completed","content":[{"type":"output_text","text":"Sunny.","annotations":[]}]}`
	easyAsst  = `{"role":"assistant","content":"Sunny."}`
	reasoning = `{"type":"reasoning","id":"rs_1","summary":[]}`
	call      = `{"type":"function_call","id":"fc_1","call_id":"call_1","name":"get_weather","arguments":"{\"city\":\"SF\"}","status":"completed"}`
	output    = `{"type":"function_call_output","call_id":"call_1","output":"18C, sunny"}`
	call2     = `{"type":"function_call","call_id":"call_2","name":"get_time","arguments":"{}"}`
	output2   = `{"type":"function_call_output","call_id":"call_2","output":"noon"}`
	request   = `{"type":"mcp_approval_request","id":"mcpr_1","server_label":"deepwiki","name":"ask","arguments":"{}"}`
	response  = `{"type":"mcp_approval_response","approval_request_id":"mcpr_1","approve":true}`
	webSearch = `{"type":"web_search_call","id":"ws_1","status":"completed","action":{"type":"search","query":"weather"}}`
	listTools = `{"type":"mcp_list_tools","id":"mcpl_1","server_label":"deepwiki","tools":[]}`
	itemRef   = `{"type":"item_reference","id":"fc_1"}`
)

func TestRepairHistory(t *testing.T) {
	tests := []struct {
		name  string
		items []string
		keep  []int // indexes of the items kept
	}{
		{"empty", nil, nil},
		{"messages only", []string{user, assistant, userTyped, easyAsst}, []int{0, 1, 2, 3}},
		{"a whole tool turn", []string{user, reasoning, call, output, reasoning, assistant}, []int{0, 1, 2, 3, 4, 5}},

		// Tool outputs need their call earlier.
		{"output whose call was cut", []string{output, reasoning, assistant}, []int{1, 2}},
		{"output before its call", []string{output, call}, nil},
		{"output of another call", []string{call, output2}, nil},
		{"output without call_id", []string{call, `{"type":"function_call_output","output":"x"}`}, nil},
		{"output with an empty call_id", []string{`{"type":"function_call","call_id":"","name":"f","arguments":"{}"}`, `{"type":"function_call_output","call_id":"","output":"x"}`}, nil},
		{"output whose call_id is not a string", []string{call, `{"type":"function_call_output","call_id":1,"output":"x"}`}, nil},
		{"custom tool output alone", []string{`{"type":"custom_tool_call_output","call_id":"c","output":"x"}`}, nil},
		{"computer output alone", []string{`{"type":"computer_call_output","call_id":"c","output":{"type":"computer_screenshot"}}`}, nil},
		{"local shell output alone", []string{`{"type":"local_shell_call_output","id":"c","output":"x"}`}, nil},
		{"shell output alone", []string{`{"type":"shell_call_output","call_id":"c","output":[]}`}, nil},
		{"apply patch output alone", []string{`{"type":"apply_patch_call_output","call_id":"c","status":"completed"}`}, nil},
		{"program output alone", []string{`{"type":"program_output","id":"po","call_id":"c","result":"x","status":"completed"}`}, nil},
		{"unknown output with a call_id, alone", []string{`{"type":"future_tool_call_output","call_id":"c"}`}, nil},
		{"unknown output without a call_id", []string{`{"type":"future_output","x":1}`}, []int{0}},
		{"tool search output of the server", []string{`{"type":"tool_search_output","execution":"server","tools":[]}`}, []int{0}},
		{"tool search output with a call_id, alone", []string{`{"type":"tool_search_output","call_id":"c","tools":[]}`}, nil},
		{"local shell pair matched by id", []string{`{"type":"local_shell_call","id":"lsh_1","call_id":"c","action":{},"status":"completed"}`, `{"type":"local_shell_call_output","id":"c","output":"ok"}`}, []int{0, 1}},
		{"local shell pair matched by call_id", []string{`{"type":"local_shell_call","id":"lsh_1","call_id":"c","action":{},"status":"completed"}`, `{"type":"local_shell_call_output","call_id":"c","output":"ok"}`}, []int{0, 1}},
		{"program and its output", []string{`{"type":"program","id":"p","call_id":"c","code":"","fingerprint":"f"}`, `{"type":"program_output","id":"po","call_id":"c","result":"x","status":"completed"}`}, []int{0, 1}},
		{"output of an unknown hosted call", []string{`{"type":"future_call","call_id":"c"}`, `{"type":"function_call_output","call_id":"c","output":"x"}`}, []int{0, 1}},

		// Client-answered calls need their output later.
		{"call whose output is missing", []string{user, call}, []int{0}},
		{"two calls, one answered", []string{call, call2, output2}, []int{1, 2}},
		{"parallel calls answered", []string{call, call2, output, output2}, []int{0, 1, 2, 3}},
		{"call without call_id", []string{`{"type":"function_call","name":"f","arguments":"{}"}`, `{"type":"function_call_output","output":"x"}`}, nil},
		{"custom tool call alone", []string{`{"type":"custom_tool_call","call_id":"c","name":"f","input":""}`}, nil},
		{"computer call alone", []string{`{"type":"computer_call","id":"cu","call_id":"c","action":{},"status":"completed"}`}, nil},
		{"local shell call alone", []string{`{"type":"local_shell_call","id":"l","call_id":"c","action":{},"status":"completed"}`}, nil},
		{"shell call alone", []string{`{"type":"shell_call","call_id":"c","action":{}}`}, nil},
		{"apply patch call alone", []string{`{"type":"apply_patch_call","call_id":"c","operation":{},"status":"completed"}`}, nil},
		{"client tool search alone", []string{`{"type":"tool_search_call","call_id":"c","arguments":{}}`}, nil},
		{"client tool search without call_id", []string{`{"type":"tool_search_call","execution":"client","arguments":{}}`}, nil},
		{"client tool search answered", []string{`{"type":"tool_search_call","call_id":"c","execution":"client","arguments":{}}`, `{"type":"tool_search_output","call_id":"c","tools":[]}`}, []int{0, 1}},

		// Hosted calls carry their result.
		{"hosted calls", []string{
			webSearch,
			`{"type":"file_search_call","id":"fs","queries":[],"status":"completed"}`,
			`{"type":"code_interpreter_call","id":"ci","code":"","container_id":"c","outputs":[],"status":"completed"}`,
			`{"type":"image_generation_call","id":"ig","result":null,"status":"completed"}`,
			`{"type":"mcp_call","id":"mc","server_label":"s","name":"n","arguments":"{}"}`,
			`{"type":"tool_search_call","execution":"server","arguments":{}}`,
			`{"type":"program","id":"p","call_id":"c","code":"","fingerprint":"f"}`,
			`{"type":"future_call","id":"x"}`,
		}, []int{0, 1, 2, 3, 4, 5, 6, 7}},

		// Approval responses need their request earlier.
		{"request and response", []string{request, response}, []int{0, 1}},
		{"response alone", []string{response}, nil},
		{"response before its request", []string{response, request}, []int{1}},
		{"response to another request", []string{request, `{"type":"mcp_approval_response","approval_request_id":"mcpr_2","approve":false}`}, []int{0}},
		{"response without approval_request_id", []string{request, `{"type":"mcp_approval_response","approve":true}`}, []int{0}},
		{"unanswered request", []string{user, request, user}, []int{0, 1, 2}},

		// Reasoning needs a kept model item right after it.
		{"reasoning then assistant message", []string{reasoning, assistant}, []int{0, 1}},
		{"reasoning then easy assistant message", []string{reasoning, easyAsst}, []int{0, 1}},
		{"reasoning at the end", []string{user, reasoning}, []int{0}},
		{"reasoning then user message", []string{reasoning, user}, []int{1}},
		{"reasoning then tool output", []string{call, reasoning, output}, []int{0, 2}},
		{"reasoning then mcp_list_tools", []string{reasoning, listTools}, []int{1}},
		{"reasoning then item_reference", []string{reasoning, itemRef}, []int{1}},
		{"reasoning then an answered call", []string{reasoning, call, output}, []int{0, 1, 2}},
		{"reasoning then a dropped call", []string{user, reasoning, call}, []int{0}},
		{"reasoning then a dropped call, then more", []string{reasoning, call2, reasoning, call, output}, []int{2, 3, 4}},
		{"reasoning then a hosted call", []string{reasoning, webSearch}, []int{0, 1}},
		{"reasoning then an approval request", []string{reasoning, request}, []int{0, 1}},
		{"reasoning run leading to a message", []string{reasoning, reasoning, assistant}, []int{0, 1, 2}},
		{"reasoning run at the end", []string{assistant, reasoning, reasoning}, []int{0}},
		{"reasoning run before a dropped call", []string{reasoning, reasoning, call}, nil},

		// Other items are kept as they are.
		{"other items", []string{itemRef, listTools, `{"type":"compaction","encrypted_content":"x"}`, `{"type":"brand_new"}`, `not json`, `[1,2]`, `{}`, ``}, []int{0, 1, 2, 3, 4, 5, 6, 7}},
		{"fields are top-level only", []string{`{"role":"user","content":[{"type":"function_call_output","call_id":"z"}]}`}, []int{0}},
		{"field names are exact", []string{`{"Type":"function_call_output","call_id":"x"}`}, []int{0}},
		{"escaped field names", []string{`{"typ\u0065":"function_call_output","call_id":"x"}`}, nil},
		{"escaped values", []string{`{"type":"function_call","call_id":"a\"b","name":"f","arguments":"{}"}`, `{"type":"function_call_output","call_id":"a\u0022b","output":"x"}`}, []int{0, 1}},
		{"the last of a repeated field counts", []string{`{"type":"function_call_output","type":"message","role":"user","content":"x"}`, `{"type":"message","role":"user","type":"function_call_output","call_id":"q"}`}, []int{0}},
		{"the last of a repeated field counts when it is not a string", []string{call, `{"type":"function_call_output","call_id":"call_1","call_id":1,"output":"x"}`}, nil},
		{"a type that is not a string", []string{`{"type":["function_call_output"],"call_id":"x"}`}, []int{0}},
		{"white space", []string{" {\n \"type\" : \"function_call\" ,\t\"call_id\" : \"c\" } ", `{"type":"function_call_output","call_id":"c","output":"x"}`}, []int{0, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			items := raw(tt.items...)
			got := lakesession.RepairHistory(items)
			want := make([]json.RawMessage, 0, len(tt.keep))
			for _, k := range tt.keep {
				want = append(want, items[k])
			}
			if !sameItems(got, want) {
				t.Errorf("RepairHistory kept\n%s\nwant\n%s", show(got), show(want))
			}
			if v := violations(got); len(v) > 0 {
				t.Errorf("the result breaks rules: %v", v)
			}
			if again := lakesession.RepairHistory(got); !sameItems(again, got) {
				t.Errorf("not idempotent: a second pass kept\n%s", show(again))
			}
		})
	}
}

// Every window of a realistic history, as GetItems(ctx, n) returns it, is
// repaired into a list that breaks no rule, and a window that breaks none is
// left whole.
func TestRepairHistoryWindows(t *testing.T) {
	history := raw(
		user, reasoning, call, output, reasoning, assistant,
		user, reasoning, call, call2, output, output2, reasoning, assistant,
		user, listTools, reasoning, request, response, `{"type":"mcp_call","id":"mc","server_label":"deepwiki","name":"ask","arguments":"{}","output":"x"}`, assistant,
		user, webSearch, easyAsst,
	)
	for n := 1; n <= len(history); n++ {
		window := history[len(history)-n:]
		got := lakesession.RepairHistory(window)
		if v := violations(got); len(v) > 0 {
			t.Errorf("window of %d: the result breaks rules: %v", n, v)
		}
		if len(violations(window)) == 0 && !sameItems(got, window) {
			t.Errorf("window of %d breaks no rule, but RepairHistory dropped items:\n%s", n, show(got))
		}
		if !isSubsequence(got, window) {
			t.Errorf("window of %d: not a subsequence", n)
		}
	}
}

// RepairHistory neither copies nor changes the items, nor writes to the
// caller's slice.
func TestRepairHistoryKeepsBytes(t *testing.T) {
	items := raw(output, user, reasoning, call, output, assistant)
	before := make([][]byte, len(items))
	for i, it := range items {
		before[i] = bytes.Clone(it)
	}
	orig := slices.Clone(items)
	got := lakesession.RepairHistory(items)
	for i := range items {
		if !bytes.Equal(items[i], before[i]) || &items[i][0] != &orig[i][0] {
			t.Fatalf("item %d of the input changed", i)
		}
	}
	if len(got) != 5 || &got[0][0] != &items[1][0] || &got[4][0] != &items[5][0] {
		t.Fatalf("the result does not hold the given items themselves")
	}
	got[0] = nil
	if items[1] == nil {
		t.Fatal("the result shares the caller's slice")
	}
}

func FuzzRepairHistory(f *testing.F) {
	seeds := [][]string{
		{user, reasoning, call, output, reasoning, assistant},
		{output, reasoning, call2, call, output, reasoning, reasoning, easyAsst},
		{request, response, response, reasoning, request, reasoning},
		{`{"type":"local_shell_call","call_id":"c"}`, `{"type":"local_shell_call_output","id":"c"}`, `{"type":"program","call_id":"p"}`, `{"type":"program_output","call_id":"p"}`},
		{`{"type":"tool_search_call","execution":"client"}`, `{"type":"tool_search_output","call_id":""}`, `{"typ\u0065":"reasoning"}`, `{"type":"x_call","call_id":"\ud800"}`, `{"type":"x_output","call_id":"\ud800"}`},
		{`{`, `[]`, `"s"`, ``, `{"a":[{"type":"reasoning"}],"type":"reasoning"}`, "{\"type\":\"function_call\",\"call_id\":\"\xff\"}", "{\"type\":\"function_call_output\",\"call_id\":\"\xfe\"}"},
	}
	for _, s := range seeds {
		f.Add(strings.Join(s, "\n"))
	}
	f.Fuzz(func(t *testing.T, in string) {
		var items []json.RawMessage
		for _, line := range strings.Split(in, "\n") {
			items = append(items, json.RawMessage(line))
		}
		got := lakesession.RepairHistory(items)
		if !isSubsequence(got, items) {
			t.Fatalf("the result is not a subsequence of the input")
		}
		if again := lakesession.RepairHistory(got); !sameItems(again, got) {
			t.Fatalf("not idempotent:\n%s\nthen\n%s", show(got), show(again))
		}
		if v := violations(got); len(v) > 0 {
			t.Fatalf("the result breaks rules: %v\n%s", v, show(got))
		}
		// Nothing is dropped without a reason: put back alone where it was,
		// each dropped item breaks a rule. A reasoning item is dropped for
		// the item it belongs to in the input (the next one that is not
		// reasoning), which must have been dropped or not be a model item.
		kept := make([]bool, len(items))
		k := 0
		for i, it := range items {
			if k < len(got) && sameItem(got[k], it) {
				kept[i] = true
				k++
			}
		}
		k = 0
		for i, it := range items {
			if kept[i] {
				k++
				continue
			}
			if o, ok := oracleDecode(it); ok && o.typ == "reasoning" {
				j := i + 1
				for j < len(items) {
					if n, ok := oracleDecode(items[j]); !ok || n.typ != "reasoning" {
						break
					}
					j++
				}
				if j < len(items) && kept[j] {
					if n, ok := oracleDecode(items[j]); ok && n.isModelItem() {
						t.Fatalf("reasoning item %d was dropped, but its item %d is kept and made by the model", i, j)
					}
				}
				continue
			}
			with := slices.Insert(slices.Clone(got), k, it)
			if !slices.Contains(violations(with), k) {
				t.Fatalf("item %d (%s) was dropped, but breaks no rule in the result", i, it)
			}
		}
	})
}

func raw(items ...string) []json.RawMessage {
	out := make([]json.RawMessage, len(items))
	for i, s := range items {
		out[i] = json.RawMessage(s)
	}
	return out
}

// sameItem reports whether a and b are the same element: the same bytes at
// the same address.
func sameItem(a, b json.RawMessage) bool {
	if len(a) != len(b) {
		return false
	}
	return len(a) == 0 || &a[0] == &b[0]
}

func sameItems(a, b []json.RawMessage) bool {
	return slices.EqualFunc(a, b, sameItem)
}

// isSubsequence reports whether sub is made of elements of items, in order.
func isSubsequence(sub, items []json.RawMessage) bool {
	k := 0
	for _, it := range items {
		if k < len(sub) && sameItem(sub[k], it) {
			k++
		}
	}
	return k == len(sub)
}

func show(items []json.RawMessage) string {
	var b strings.Builder
	for _, it := range items {
		fmt.Fprintf(&b, "  %s\n", it)
	}
	return b.String()
}

// The rules, written a second way (decoding each item with encoding/json and
// looking around it) to check RepairHistory against.

type oracleItem struct {
	typ, role, callID, id, requestID, execution string
	hasType                                     bool
}

func oracleDecode(it json.RawMessage) (oracleItem, bool) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(it, &m); err != nil {
		return oracleItem{}, false
	}
	str := func(k string) string {
		var s string
		if json.Unmarshal(m[k], &s) != nil {
			return ""
		}
		return s
	}
	var tv string
	_, isString := m["type"]
	isString = isString && json.Unmarshal(m["type"], &tv) == nil
	return oracleItem{
		typ: tv, hasType: isString,
		role: str("role"), callID: str("call_id"), id: str("id"),
		requestID: str("approval_request_id"), execution: str("execution"),
	}, true
}

func (o oracleItem) isOutput() bool {
	switch o.typ {
	case "function_call_output", "custom_tool_call_output", "computer_call_output", "local_shell_call_output",
		"shell_call_output", "apply_patch_call_output", "program_output":
		return true
	}
	return strings.HasSuffix(o.typ, "_output") && o.callID != ""
}

func (o oracleItem) outputKey() string {
	if o.typ == "local_shell_call_output" && o.callID == "" {
		return o.id
	}
	return o.callID
}

func (o oracleItem) isCall() bool {
	return o.typ == "program" || strings.HasSuffix(o.typ, "_call")
}

func (o oracleItem) isClientCall() bool {
	switch o.typ {
	case "function_call", "custom_tool_call", "computer_call", "local_shell_call", "shell_call", "apply_patch_call":
		return true
	case "tool_search_call":
		return o.callID != "" || o.execution == "client"
	}
	return false
}

func (o oracleItem) isModelItem() bool {
	switch {
	case (!o.hasType || o.typ == "message") && o.role == "assistant":
		return true
	case o.isCall(), o.typ == "mcp_approval_request":
		return true
	}
	return false
}

// violations returns the indexes of the items of list that break a rule.
func violations(list []json.RawMessage) []int {
	dec := make([]oracleItem, len(list))
	ok := make([]bool, len(list))
	for i, it := range list {
		dec[i], ok[i] = oracleDecode(it)
	}
	var bad []int
	for i, o := range dec {
		if !ok[i] {
			continue
		}
		broken := false
		switch {
		case o.isOutput():
			broken = true
			if key := o.outputKey(); key != "" {
				for j := range i {
					if ok[j] && dec[j].isCall() && dec[j].callID == key {
						broken = false
					}
				}
			}
		case o.isClientCall():
			broken = true
			if o.callID != "" {
				for j := i + 1; j < len(list); j++ {
					if ok[j] && dec[j].isOutput() && dec[j].outputKey() == o.callID {
						broken = false
					}
				}
			}
		case o.typ == "mcp_approval_response":
			broken = true
			if o.requestID != "" {
				for j := range i {
					if ok[j] && dec[j].typ == "mcp_approval_request" && dec[j].id == o.requestID {
						broken = false
					}
				}
			}
		case o.typ == "reasoning":
			j := i + 1
			for j < len(list) && ok[j] && dec[j].typ == "reasoning" {
				j++
			}
			broken = j == len(list) || !ok[j] || !dec[j].isModelItem()
		}
		if broken {
			bad = append(bad, i)
		}
	}
	return bad
}
