package lakesession

import (
	"encoding/json"
	"strings"
	"unicode/utf8"
)

// RepairHistory returns items, in their order, without the items that would
// make the OpenAI Responses API reject them as the input of a request. Use it
// on a window of a history, such as the latest items of GetItems, before
// sending it to a model: a window can cut a tool call from its output, or a
// reasoning item from the message it led to.
//
// It drops:
//
//   - a tool output whose call is not earlier in items: an item of type
//     function_call_output, custom_tool_call_output, computer_call_output,
//     local_shell_call_output, shell_call_output, apply_patch_call_output or
//     program_output, or of any other type ending in "_output" that has a
//     "call_id". The call is an earlier call item (a type ending in "_call",
//     or program) with the same "call_id". A local_shell_call_output without a
//     "call_id" is matched by its "id", which the API sets to the call's
//     call_id. A known output type without a call_id has no call and is
//     dropped; a tool_search_output without one (a search the server ran) is
//     kept;
//   - a call that the client answers with an output item, when no output with
//     its call_id is later in items: function_call, custom_tool_call,
//     computer_call, local_shell_call, shell_call, apply_patch_call, and a
//     tool_search_call that has a call_id or whose "execution" is "client".
//     Such a call without a call_id can have no output and is dropped.
//     Hosted tool calls, which carry their own result (web_search_call,
//     file_search_call, code_interpreter_call, image_generation_call,
//     mcp_call, a tool_search_call the server ran, program, and any other type
//     ending in "_call"), are kept;
//   - an mcp_approval_response whose mcp_approval_request (the request whose
//     "id" is its "approval_request_id") is not earlier in items. An
//     mcp_approval_request is kept whether or not a response follows: an
//     unanswered request is a decision still pending or never taken, and the
//     API takes it as input like any other item the model produced;
//   - a reasoning item that is not immediately followed by an item the model
//     produced, or whose item was dropped by the rules above. The item a
//     reasoning item belongs to is the first item after it that is not a
//     reasoning item (the model may think in several reasoning items before
//     it acts): it must be an assistant message (role "assistant", with type
//     "message" or no type), a call of any kind above (client-answered or
//     hosted), or an mcp_approval_request, and it must be kept. So a run of
//     reasoning items stays when it leads to such an item, and goes when it
//     ends the list, when it leads to anything else (a user message, a tool
//     output, an mcp_list_tools item, ...), or when the call it leads to is
//     dropped for want of its output.
//
// Every other item is kept: messages, hosted items such as mcp_list_tools,
// item_reference items (which name a stored item by id: RepairHistory cannot
// see what they point to, so a reference never stands in for a call or for a
// model item), types it does not know, and items that are not JSON objects.
// Fields are matched by their exact names at the top level of each item;
// when a name appears twice, the last one counts, as in encoding/json, and a
// field whose value is not a string counts as absent, as does an empty
// call_id, id or approval_request_id.
//
// RepairHistory never reorders items and never changes, copies or compacts
// their bytes: it returns a new slice whose elements are given elements
// themselves. It is idempotent: RepairHistory(RepairHistory(items)) returns
// the same items, because no rule can be broken by what it drops (a dropped
// output belongs to no earlier call, a dropped call answers no later output,
// and reasoning items, decided last, are what nothing else depends on: a
// kept reasoning item is still followed by its kept item).
//
// The Responses API may check more than these rules (for example, that a
// message the model produced with reasoning still has its reasoning item);
// RepairHistory only removes the items these rules name.
func RepairHistory(items []json.RawMessage) []json.RawMessage {
	if len(items) == 0 {
		return items[:0:0]
	}
	infos := make([]itemInfo, len(items))
	for i, it := range items {
		infos[i] = classify(it)
	}
	keep := make([]bool, len(items))

	// Forward: outputs and approval responses need something earlier.
	calls := make(map[string]struct{})
	requests := make(map[string]struct{})
	for i, in := range infos {
		switch in.kind {
		case kindToolOutput:
			_, ok := calls[in.key]
			keep[i] = ok && in.hasKey
		case kindApprovalResponse:
			_, ok := requests[in.key]
			keep[i] = ok && in.hasKey
		default:
			keep[i] = true
		}
		if in.isCall && in.hasKey {
			calls[in.key] = struct{}{}
		}
		if in.kind == kindApprovalRequest && in.hasID {
			requests[in.id] = struct{}{}
		}
	}

	// Backward: client-answered calls need an output later, and reasoning
	// items need their item, the next one that is not reasoning, kept and
	// made by the model. Any later output with the call's call_id is kept,
	// since this call is earlier than it.
	outputs := make(map[string]struct{})
	tiedOK := false // whether the next item that is not reasoning is kept and made by the model
	for i := len(items) - 1; i >= 0; i-- {
		in := infos[i]
		switch in.kind {
		case kindClientCall:
			_, ok := outputs[in.key]
			keep[i] = ok && in.hasKey
		case kindReasoning:
			keep[i] = tiedOK
			continue
		}
		if in.kind == kindToolOutput && in.hasKey {
			outputs[in.key] = struct{}{}
		}
		tiedOK = keep[i] && in.modelItem()
	}

	out := make([]json.RawMessage, 0, len(items))
	for i, it := range items {
		if keep[i] {
			out = append(out, it)
		}
	}
	return out
}

// itemKind is what RepairHistory needs to know about an item.
type itemKind uint8

const (
	kindOther            itemKind = iota // kept; reasoning may not lead to it
	kindModel                            // produced by the model, kept: assistant message, hosted call
	kindClientCall                       // a call the client answers with an output item
	kindToolOutput                       // the output of a call
	kindApprovalRequest                  // mcp_approval_request: a model item, kept
	kindApprovalResponse                 // mcp_approval_response
	kindReasoning                        // reasoning
)

type itemInfo struct {
	kind   itemKind
	isCall bool   // a call item (client-answered or hosted) whose key outputs may name
	key    string // call_id (calls, outputs) or approval_request_id (responses)
	hasKey bool
	id     string // the "id" of an mcp_approval_request
	hasID  bool
}

// modelItem reports whether the item, when kept, is one that reasoning items
// may lead to.
func (in itemInfo) modelItem() bool {
	switch in.kind {
	case kindModel, kindClientCall, kindApprovalRequest:
		return true
	}
	return false
}

// Client-answered calls, and the outputs that answer them.
var (
	clientCallTypes = map[string]bool{
		"function_call":    true,
		"custom_tool_call": true,
		"computer_call":    true,
		"local_shell_call": true,
		"shell_call":       true,
		"apply_patch_call": true,
	}
	toolOutputTypes = map[string]bool{
		"function_call_output":    true,
		"custom_tool_call_output": true,
		"computer_call_output":    true,
		"local_shell_call_output": true,
		"shell_call_output":       true,
		"apply_patch_call_output": true,
		"program_output":          true,
	}
)

// classify reads the top-level fields of item that the rules use.
func classify(item json.RawMessage) itemInfo {
	f, ok := scanFields(item)
	if !ok {
		return itemInfo{kind: kindOther}
	}
	var in itemInfo
	typ := f.get(fieldType)
	switch {
	case !f.has(fieldType) || typ == "message":
		if f.get(fieldRole) == "assistant" {
			in.kind = kindModel
		}
		return in
	case typ == "reasoning":
		in.kind = kindReasoning
		return in
	case typ == "mcp_approval_request":
		in.kind = kindApprovalRequest
		in.id, in.hasID = f.key(fieldID)
		return in
	case typ == "mcp_approval_response":
		in.kind = kindApprovalResponse
		in.key, in.hasKey = f.key(fieldApprovalRequestID)
		return in
	}
	in.key, in.hasKey = f.key(fieldCallID)
	switch {
	case toolOutputTypes[typ]:
		in.kind = kindToolOutput
		if typ == "local_shell_call_output" && !in.hasKey {
			in.key, in.hasKey = f.key(fieldID)
		}
	case typ == "tool_search_output", strings.HasSuffix(typ, "_output"):
		// Known to need a call only when it names one.
		if in.hasKey {
			in.kind = kindToolOutput
		}
	case clientCallTypes[typ]:
		in.kind, in.isCall = kindClientCall, true
	case typ == "tool_search_call":
		in.isCall = true
		if in.hasKey || f.get(fieldExecution) == "client" {
			in.kind = kindClientCall
		} else {
			in.kind = kindModel
		}
	case typ == "program", strings.HasSuffix(typ, "_call"):
		in.kind, in.isCall = kindModel, true
	}
	return in
}

// The top-level fields classify reads.
const (
	fieldType = iota
	fieldRole
	fieldCallID
	fieldID
	fieldApprovalRequestID
	fieldExecution
	numFields
)

var fieldNames = [numFields]string{"type", "role", "call_id", "id", "approval_request_id", "execution"}

// fields holds the string values of the top-level fields classify reads.
type fields struct {
	val [numFields]string
	set [numFields]bool
}

func (f *fields) get(k int) string { return f.val[k] }
func (f *fields) has(k int) bool   { return f.set[k] }

// key returns the value of an identifier field; an empty one is absent.
func (f *fields) key(k int) (string, bool) { return f.val[k], f.set[k] && f.val[k] != "" }

// scanFields reads the string values of the fields of fieldNames at the top
// level of item. It reports false when item is not one valid JSON object.
// A field whose value is not a string is unset; the last occurrence of a
// name counts.
func scanFields(item []byte) (fields, bool) {
	var f fields
	if !json.Valid(item) {
		return f, false
	}
	s := scanner{b: item}
	s.space()
	if s.i >= len(s.b) || s.b[s.i] != '{' {
		return f, false
	}
	s.i++
	for {
		s.space()
		if s.b[s.i] == '}' {
			return f, true
		}
		key := s.str()
		s.space()
		s.i++ // ':'
		s.space()
		k := -1
		for n, name := range fieldNames {
			if key == name {
				k = n
				break
			}
		}
		if k >= 0 {
			if s.b[s.i] == '"' {
				f.val[k], f.set[k] = s.str(), true
			} else {
				f.val[k], f.set[k] = "", false
				s.skip()
			}
		} else {
			s.skip()
		}
		s.space()
		if s.b[s.i] == ',' {
			s.i++
		}
	}
}

// scanner walks a document that json.Valid accepted.
type scanner struct {
	b []byte
	i int
}

func (s *scanner) space() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// str reads the string at s.i and returns its value, decoded as
// encoding/json decodes it (invalid UTF-8 becomes U+FFFD).
func (s *scanner) str() string {
	start := s.i
	s.i++ // opening quote
	escaped := false
	for s.b[s.i] != '"' {
		if s.b[s.i] == '\\' {
			escaped = true
			s.i++
		}
		s.i++
	}
	s.i++ // closing quote
	raw := s.b[start:s.i]
	if !escaped && utf8.Valid(raw) {
		return string(raw[1 : len(raw)-1])
	}
	var v string
	if err := json.Unmarshal(raw, &v); err != nil {
		return "" // not reached for a valid document
	}
	return v
}

// skip moves past the value at s.i.
func (s *scanner) skip() {
	depth := 0
	for s.i < len(s.b) {
		switch c := s.b[s.i]; c {
		case '"':
			s.str()
			if depth == 0 {
				return
			}
			continue
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 {
				return // the end of the enclosing object
			}
			depth--
			if depth == 0 {
				s.i++
				return
			}
		case ',':
			if depth == 0 {
				return
			}
		}
		s.i++
	}
}
