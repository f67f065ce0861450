package openaisession

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"

	"github.com/openai/openai-go/v3/packages/param"
	"github.com/openai/openai-go/v3/responses"

	"github.com/lakesession/lakesession"
)

// ErrUnknownType is wrapped, beside lakesession.ErrInvalidItem, by the error
// of Decode for an item whose "type" the pinned openai-go does not know (a
// type newer than it, or a misspelt one).
var ErrUnknownType = errors.New("openaisession: item type unknown to openai-go")

// item is the union of every Responses-API input item, as openai-go names it.
type item = responses.ResponseInputItemUnionParam

// Decode decodes one stored item into the variant of
// responses.ResponseInputItemUnionParam it is.
//
// The variant is chosen by the item's "type":
//
//   - no "type" and a "role": OfMessage (an easy message, as the Python
//     Agents SDK stores user input);
//   - no "type", no "role" and an "id": OfItemReference;
//   - "message" with role "assistant", an "id" and content that is not a
//     string: OfOutputMessage (the form in which the API returns the model's
//     messages), so "id", "status" and "phase" are kept;
//   - "message" with another role and a content list: OfInputMessage;
//   - any other "message": OfMessage;
//   - every other type: the variant of that type.
//
// Decoding is lossless: Encode of the result is the same JSON value as raw,
// with the same keys and values (key order and white space aside). Where
// openai-go's types cannot hold part of an item exactly (a field they do not
// know, a null they would drop, a number they would spell differently),
// Decode keeps that top-level field's JSON, as a json.RawMessage, in the
// variant's ExtraFields, which win over the typed field when the item is
// encoded; the typed fields are filled all the same, for reading. To change
// such a field, change it in ExtraFields too (SetExtraFields). An item that
// even ExtraFields cannot carry (one with an empty key) is made to encode to
// its JSON as it was, whatever its typed fields say.
//
// An item that is not one JSON object, whose "type" is not a string, that
// has neither "type" nor "role" nor "id", or whose "type" is "message" and
// that has no string "role", gets an error that wraps lakesession.ErrInvalidItem and
// says what is wrong; an unknown type gets one that also wraps
// ErrUnknownType. Errors never quote the item's content.
func Decode(raw json.RawMessage) (responses.ResponseInputItemUnionParam, error) {
	var u item
	b := []byte(raw) // read, not kept: keepAll copies what it keeps
	if !compactObject(b) {
		var err error
		if b, err = lakesession.CompactItem(raw); err != nil {
			return u, err
		}
	}
	var buf [16]member
	top := members(buf[:0], b)
	v, typ, err := pick(&u, top)
	if err != nil {
		return item{}, err
	}
	if err := unmarshal(b, v.ptr); err != nil {
		return item{}, fmt.Errorf("%w: it is not a valid %s item for openai-go; check its fields against the Responses API", lakesession.ErrInvalidItem, typ)
	}
	if err := keepAll(v, b, top); err != nil {
		return item{}, err
	}
	return u, nil
}

// Encode returns the JSON of item, compact, as a Session stores it. An item
// from Decode encodes to the same JSON value it was decoded from (see
// Decode), and a pass-through item (see Session) to the JSON it holds.
//
// An item with no variant set, or with more than one, gets an error that
// wraps lakesession.ErrInvalidItem.
func Encode(it responses.ResponseInputItemUnionParam) (json.RawMessage, error) {
	// The union's MarshalJSON, called as json.Marshal would call it, but
	// without json.Marshal's copy: the result is checked here.
	b, err := it.MarshalJSON()
	if err != nil {
		if n := variantsSet(it); n > 1 {
			return nil, fmt.Errorf("%w: %d variants are set; set exactly one Of field of ResponseInputItemUnionParam", lakesession.ErrInvalidItem, n)
		}
		return nil, fmt.Errorf("%w: openai-go cannot encode it; check the JSON set in code (param.Override, extra fields) and that no number is NaN or infinite", lakesession.ErrInvalidItem)
	}
	if compactObject(b) {
		return b, nil
	}
	switch trimmed := bytes.TrimSpace(b); {
	case bytes.Equal(trimmed, []byte("null")):
		return nil, fmt.Errorf("%w: no variant is set; set one Of field of ResponseInputItemUnionParam", lakesession.ErrInvalidItem)
	case len(trimmed) == 0 || trimmed[0] != '{':
		return nil, fmt.Errorf("%w: it does not encode to a JSON object; set one Of field of ResponseInputItemUnionParam", lakesession.ErrInvalidItem)
	}
	// Not compact (JSON set in code, through param.Override or extra
	// fields), or not valid: invalid UTF-8 or JSON set in code.
	return lakesession.CompactItem(b)
}

// variantsSet counts the Of fields of it that are set.
func variantsSet(it item) int {
	v := reflect.ValueOf(it)
	n := 0
	for i := range v.NumField() {
		f := v.Field(i)
		if f.Kind() == reflect.Pointer && !f.IsNil() {
			n++
		}
	}
	return n
}

// maxTypeLen is the longest "type" an error repeats.
const maxTypeLen = 64

// isTypeName reports whether typ looks like an item type of the Responses
// API (such as "function_call"), which an error may repeat.
func isTypeName(typ string) bool {
	if typ == "" || len(typ) > maxTypeLen {
		return false
	}
	for i := 0; i < len(typ); i++ {
		c := typ[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// pick sets the variant of u that top is and returns it, with the type's
// name for errors.
func pick(u *item, top []member) (variant, string, error) {
	typRaw, hasType := lookup(top, "type")
	if !hasType {
		if _, ok := lookup(top, "role"); ok {
			return set(&u.OfMessage), "message", nil
		}
		if _, ok := lookup(top, "id"); ok {
			return set(&u.OfItemReference), "item_reference", nil
		}
		return variant{}, "", fmt.Errorf(`%w: it has no "type" and no "role"; give a message its "role", and any other item its "type"`, lakesession.ErrInvalidItem)
	}
	if typRaw[0] != '"' {
		return variant{}, "", fmt.Errorf(`%w: its "type" is not a string`, lakesession.ErrInvalidItem)
	}
	typ := decodeString(typRaw)
	if typ == "message" {
		roleRaw, ok := lookup(top, "role")
		if !ok || roleRaw[0] != '"' {
			return variant{}, "", fmt.Errorf(`%w: it is a message without a string "role"; set "role" to "user", "assistant", "system" or "developer"`, lakesession.ErrInvalidItem)
		}
		role := decodeString(roleRaw)
		_, hasID := lookup(top, "id")
		content, _ := lookup(top, "content")
		switch {
		case role == "assistant" && hasID && (len(content) == 0 || content[0] != '"'):
			return set(&u.OfOutputMessage), typ, nil
		case role != "assistant" && len(content) > 0 && content[0] == '[':
			return set(&u.OfInputMessage), typ, nil
		default:
			return set(&u.OfMessage), typ, nil
		}
	}
	newVariant, ok := variants[typ]
	if !ok {
		if !isTypeName(typ) {
			// Not a name the API could give: it may be text that belongs
			// in the item, which an error never repeats.
			return variant{}, "", fmt.Errorf(`%w: %w: its "type" is not a type name (lower-case letters, digits, "_" and "."); check what wrote it`, lakesession.ErrInvalidItem, ErrUnknownType)
		}
		return variant{}, "", fmt.Errorf("%w: %w: type %q; upgrade github.com/openai/openai-go/v3 to a version that knows it", lakesession.ErrInvalidItem, ErrUnknownType, typ)
	}
	return newVariant(u), typ, nil
}

// unmarshal decodes the valid JSON b into ptr. It calls the UnmarshalJSON
// of openai-go's types itself, as json.Unmarshal would, but without
// json.Unmarshal's second check that b is valid JSON.
func unmarshal(b []byte, ptr any) error {
	if u, ok := ptr.(json.Unmarshaler); ok {
		return u.UnmarshalJSON(b)
	}
	return json.Unmarshal(b, ptr)
}

// variant is the variant of an item that Decode fills.
type variant struct {
	ptr     any          // a pointer to the param struct
	setJSON func([]byte) // makes the struct encode to the given JSON
}

// set points *p at a new zero T and returns it.
func set[T param.ParamStruct, PT param.InferPtr[T]](p **T) variant {
	*p = new(T)
	ptr := PT(*p)
	return variant{ptr: ptr, setJSON: func(b []byte) { param.SetJSON(b, ptr) }}
}

// variants maps every "type" but "message" to the variant of
// ResponseInputItemUnionParam that holds it. TestFixturesCoverEveryVariant
// fails when openai-go adds a variant that is missing here.
var variants = map[string]func(u *item) variant{
	"file_search_call":        func(u *item) variant { return set(&u.OfFileSearchCall) },
	"computer_call":           func(u *item) variant { return set(&u.OfComputerCall) },
	"computer_call_output":    func(u *item) variant { return set(&u.OfComputerCallOutput) },
	"web_search_call":         func(u *item) variant { return set(&u.OfWebSearchCall) },
	"function_call":           func(u *item) variant { return set(&u.OfFunctionCall) },
	"function_call_output":    func(u *item) variant { return set(&u.OfFunctionCallOutput) },
	"tool_search_call":        func(u *item) variant { return set(&u.OfToolSearchCall) },
	"tool_search_output":      func(u *item) variant { return set(&u.OfToolSearchOutput) },
	"additional_tools":        func(u *item) variant { return set(&u.OfAdditionalTools) },
	"configuration_update":    func(u *item) variant { return set(&u.OfConfigurationUpdate) },
	"reasoning":               func(u *item) variant { return set(&u.OfReasoning) },
	"compaction":              func(u *item) variant { return set(&u.OfCompaction) },
	"image_generation_call":   func(u *item) variant { return set(&u.OfImageGenerationCall) },
	"code_interpreter_call":   func(u *item) variant { return set(&u.OfCodeInterpreterCall) },
	"local_shell_call":        func(u *item) variant { return set(&u.OfLocalShellCall) },
	"local_shell_call_output": func(u *item) variant { return set(&u.OfLocalShellCallOutput) },
	"shell_call":              func(u *item) variant { return set(&u.OfShellCall) },
	"shell_call_output":       func(u *item) variant { return set(&u.OfShellCallOutput) },
	"apply_patch_call":        func(u *item) variant { return set(&u.OfApplyPatchCall) },
	"apply_patch_call_output": func(u *item) variant { return set(&u.OfApplyPatchCallOutput) },
	"mcp_list_tools":          func(u *item) variant { return set(&u.OfMcpListTools) },
	"mcp_approval_request":    func(u *item) variant { return set(&u.OfMcpApprovalRequest) },
	"mcp_approval_response":   func(u *item) variant { return set(&u.OfMcpApprovalResponse) },
	"mcp_call":                func(u *item) variant { return set(&u.OfMcpCall) },
	"custom_tool_call_output": func(u *item) variant { return set(&u.OfCustomToolCallOutput) },
	"custom_tool_call":        func(u *item) variant { return set(&u.OfCustomToolCall) },
	"compaction_trigger":      func(u *item) variant { return set(&u.OfCompactionTrigger) },
	"item_reference":          func(u *item) variant { return set(&u.OfItemReference) },
	"program":                 func(u *item) variant { return set(&u.OfProgram) },
	"program_output":          func(u *item) variant { return set(&u.OfProgramOutput) },
}

// extraFielder is the part of every openai-go param struct that Decode uses
// to keep what the typed fields cannot hold.
type extraFielder interface {
	SetExtraFields(map[string]any)
}

// keepAll makes v encode to the JSON value of b (whose top-level members
// are top): each top-level field whose encoding differs from b's is carried
// in the variant's extra fields, as a copy of b's JSON, and each field the
// encoding adds is omitted. It keeps no reference to b.
func keepAll(v variant, b []byte, top []member) error {
	enc, err := v.ptr.(json.Marshaler).MarshalJSON() // what json.Marshal calls, less its copy
	if err != nil {
		return fmt.Errorf("%w: openai-go cannot encode it again", lakesession.ErrInvalidItem)
	}
	if bytes.Equal(enc, b) {
		return nil
	}
	if !json.Valid(enc) { // as json.Marshal would check it
		return fmt.Errorf("%w: openai-go cannot encode it again", lakesession.ErrInvalidItem)
	}
	var buf [16]member
	encTop := members(buf[:0], enc)
	if encTop == nil {
		return fmt.Errorf("%w: openai-go does not encode it as a JSON object", lakesession.ErrInvalidItem)
	}
	var extras map[string]any
	keep := func(k string, val any) {
		if extras == nil {
			extras = make(map[string]any)
		}
		extras[k] = val
	}
	for i, m := range top {
		if lookupKey(top, m.key) != i {
			continue // an earlier repeat: the last one counts
		}
		k := lookupKey(encTop, m.key)
		// A lone surrogate escape (\ud800) decodes to U+FFFD, which
		// openai-go writes out: compare such fields byte for byte.
		if k < 0 || !equalJSON(m.val, encTop[k].val) || (!bytes.Equal(m.val, encTop[k].val) && hasLoneSurrogate(m.val)) {
			keep(m.name(), json.RawMessage(bytes.Clone(m.val)))
		}
	}
	for _, m := range encTop {
		if lookupKey(top, m.key) < 0 {
			keep(m.name(), param.Omit)
		}
	}
	if extras == nil {
		return nil
	}
	v.ptr.(extraFielder).SetExtraFields(extras)
	if enc, err := json.Marshal(v.ptr); err == nil && equalJSON(enc, b) && hasLoneSurrogate(enc) == hasLoneSurrogate(b) {
		return nil
	}
	// A key that extra fields cannot carry (openai-go sets them by path,
	// and the empty key is no path), or a lone surrogate the encoding
	// changed: make the variant encode to b itself. Its typed fields stay
	// filled, for reading.
	v.setJSON(bytes.Clone(b))
	return nil
}

// hasLoneSurrogate reports whether the JSON text b has a \u escape of a
// UTF-16 surrogate that is not part of a pair.
func hasLoneSurrogate(b []byte) bool {
	high := false // the last character was an escaped high surrogate
	for i := 0; i < len(b); i++ {
		if b[i] != '\\' || i+1 == len(b) {
			if high {
				return true
			}
			continue
		}
		if b[i+1] != 'u' || i+6 > len(b) {
			if high {
				return true
			}
			i++ // a one-character escape, such as \\ or \"
			continue
		}
		r, ok := hex4(b[i+2 : i+6])
		i += 5
		switch {
		case ok && r >= 0xD800 && r < 0xDC00:
			if high {
				return true
			}
			high = true
		case ok && r >= 0xDC00 && r < 0xE000:
			if !high {
				return true
			}
			high = false
		case high:
			return true
		}
	}
	return high
}

func hex4(b []byte) (rune, bool) {
	var r rune
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}
