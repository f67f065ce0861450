package openaisession_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3/packages/param"
	"github.com/openai/openai-go/v3/responses"

	"github.com/lakesession/lakesession"
	"github.com/lakesession/lakesession/openaisession"
)

// Every fixture decodes into its variant and encodes back to the same JSON
// value: same keys, same values.
func TestDecodeEncode(t *testing.T) {
	for _, f := range fixtures {
		t.Run(f.name, func(t *testing.T) {
			it, err := openaisession.Decode(f.item())
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if got := setVariants(it); len(got) != 1 || got[0] != f.variant {
				t.Fatalf("Decode set %v, want [%s]", got, f.variant)
			}
			enc, err := openaisession.Encode(it)
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			if !sameJSON(t, enc, f.item()) {
				t.Fatalf("Encode(Decode(raw)) is another JSON value:\n got %s\nwant %s", enc, f.raw)
			}
			// What is sent to the API is the same: openai-go marshals the
			// union itself.
			sent, err := json.Marshal(it)
			if err != nil || !sameJSON(t, sent, f.item()) {
				t.Fatalf("json.Marshal of the item = %s, %v; want %s", sent, err, f.raw)
			}
			// A second round trip changes nothing.
			again, err := openaisession.Decode(enc)
			if err != nil {
				t.Fatalf("Decode(Encode(...)): %v", err)
			}
			enc2, err := openaisession.Encode(again)
			if err != nil || !bytes.Equal(enc2, enc) {
				t.Fatalf("second round trip = %s, %v; want %s", enc2, err, enc)
			}
		})
	}
}

// A decoded item does not share the bytes it was decoded from: the caller
// may reuse them.
func TestDecodeCopiesItsInput(t *testing.T) {
	for _, f := range fixtures {
		buf := []byte(f.raw)
		it, err := openaisession.Decode(buf)
		if err != nil {
			t.Fatalf("%s: Decode: %v", f.name, err)
		}
		for i := range buf {
			buf[i] = 'x'
		}
		enc, err := openaisession.Encode(it)
		if err != nil || !sameJSON(t, enc, f.item()) {
			t.Errorf("%s: after its input was overwritten, the item encodes to %s, %v", f.name, enc, err)
		}
	}
}

// Encode returns bytes of its own: changing them changes neither the item
// nor what it encodes to next.
func TestEncodeReturnsItsOwnBytes(t *testing.T) {
	for _, f := range fixtures {
		it := decode(t, f.raw)
		first, err := openaisession.Encode(it)
		if err != nil {
			t.Fatalf("%s: %v", f.name, err)
		}
		for i := range first {
			first[i] = 'x'
		}
		if again, err := openaisession.Encode(it); err != nil || !sameJSON(t, again, f.item()) {
			t.Errorf("%s: after the first result was overwritten, Encode = %s, %v", f.name, again, err)
		}
	}
}

// The fixtures cover every Of field of ResponseInputItemUnionParam: a
// variant that a new openai-go adds fails this test until it has one.
func TestFixturesCoverEveryVariant(t *testing.T) {
	covered := map[string]bool{}
	for _, f := range fixtures {
		covered[f.variant] = true
	}
	typ := reflect.TypeFor[responses.ResponseInputItemUnionParam]()
	n := 0
	for f := range typ.Fields() {
		if !f.IsExported() || !strings.HasPrefix(f.Name, "Of") {
			continue
		}
		n++
		if !covered[f.Name] {
			t.Errorf("no fixture decodes into %s (%s): add one to fixtures, and its type to Decode if it is new", f.Name, f.Type)
		}
	}
	if n < 33 {
		t.Fatalf("found %d Of fields in ResponseInputItemUnionParam; the pinned openai-go has 33", n)
	}
}

// The typed fields are filled, so code can read them; for assistant output
// messages that includes the id and status the old decoding lost.
func TestDecodeFillsTypedFields(t *testing.T) {
	it := decode(t, `{"id":"msg_68a1","type":"message","status":"completed","content":[{"type":"output_text","annotations":[],"text":"You live in SF."}],"role":"assistant"}`)
	om := it.OfOutputMessage
	if om == nil || om.ID != "msg_68a1" || om.Status != responses.ResponseOutputMessageStatusCompleted ||
		len(om.Content) != 1 || om.Content[0].OfOutputText == nil || om.Content[0].OfOutputText.Text != "You live in SF." {
		t.Fatalf("output message decoded as %+v", om)
	}

	// With text content, an assistant message is an easy message even with
	// an id, so its text is in a typed field (the id and status are kept
	// in ExtraFields).
	it = decode(t, `{"type":"message","id":"msg_4","role":"assistant","status":"completed","content":"You said SF."}`)
	if m := it.OfMessage; m == nil || m.Content.OfString.Value != "You said SF." || m.Role != responses.EasyInputMessageRoleAssistant {
		t.Fatalf("assistant message with text content decoded as %v", setVariants(it))
	}

	it = decode(t, `{"role":"user","content":"Hello I live in SF!"}`)
	if m := it.OfMessage; m == nil || m.Role != responses.EasyInputMessageRoleUser || m.Content.OfString.Value != "Hello I live in SF!" {
		t.Fatalf("easy message decoded as %+v", it.OfMessage)
	}

	it = decode(t, `{"type":"function_call","call_id":"call_1","name":"get_weather","arguments":"{\"city\":\"SF\"}"}`)
	if fc := it.OfFunctionCall; fc == nil || fc.CallID != "call_1" || fc.Name != "get_weather" || fc.Arguments != `{"city":"SF"}` {
		t.Fatalf("function call decoded as %+v", it.OfFunctionCall)
	}

	it = decode(t, `{"type":"function_call_output","call_id":"call_1","output":"18C"}`)
	if fo := it.OfFunctionCallOutput; fo == nil || fo.CallID.Value != "call_1" || fo.Output.OfString.Value != "18C" {
		t.Fatalf("function call output decoded as %+v", it.OfFunctionCallOutput)
	}
}

// A field openai-go does not know is kept in ExtraFields, where code can
// see and change it.
func TestDecodeKeepsUnknownFieldsInExtraFields(t *testing.T) {
	it := decode(t, `{"type":"function_call","call_id":"c","name":"f","arguments":"{}","provider_data":{"model":"m"}}`)
	extra := it.OfFunctionCall.ExtraFields()
	if got, ok := extra["provider_data"].(json.RawMessage); !ok || string(got) != `{"model":"m"}` {
		t.Fatalf("ExtraFields = %v", extra)
	}
	if len(extra) != 1 {
		t.Fatalf("ExtraFields holds more than the unknown field: %v", extra)
	}
	// Changed typed fields are encoded.
	it.OfFunctionCall.Name = "g"
	enc, err := openaisession.Encode(it)
	if err != nil {
		t.Fatal(err)
	}
	if !sameJSON(t, enc, json.RawMessage(`{"type":"function_call","call_id":"c","name":"g","arguments":"{}","provider_data":{"model":"m"}}`)) {
		t.Fatalf("after a change: %s", enc)
	}
}

// An item decoded from the API's output message form is no longer the easy
// message it used to become: the re-encoded item keeps id and status.
func TestAssistantOutputMessageKeepsIDAndStatus(t *testing.T) {
	raw := `{"type":"message","id":"msg_1","role":"assistant","status":"completed","content":[{"type":"output_text","text":"Hi","annotations":[]}]}`
	enc, err := openaisession.Encode(decode(t, raw))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(enc, &m); err != nil {
		t.Fatal(err)
	}
	if m["id"] != "msg_1" || m["status"] != "completed" {
		t.Fatalf("encoded as %s", enc)
	}
}

func TestDecodeErrors(t *testing.T) {
	const secret = "SECRET-CONTENT-42"
	tests := []struct {
		name    string
		raw     string
		says    string
		unknown bool
	}{
		{"empty", ``, "empty", false},
		{"array", `[{"role":"user","content":"` + secret + `"}]`, "not a JSON object", false},
		{"string", `"` + secret + `"`, "not a JSON object", false},
		{"invalid JSON", `{"role":"user","content":"` + secret + `"`, "not valid JSON", false},
		{"invalid UTF-8", "{\"role\":\"user\",\"content\":\"\xff" + secret + "\"}", "UTF-8", false},
		{"no type, role or id", `{"content":"` + secret + `"}`, `no "type" and no "role"`, false},
		{"type not a string", `{"type":["message"],"role":"user","content":"` + secret + `"}`, `"type" is not a string`, false},
		{"message without role", `{"type":"message","content":"` + secret + `"}`, `without a string "role"`, false},
		{"message with a role that is not a string", `{"type":"message","role":1,"content":"` + secret + `"}`, `without a string "role"`, false},
		{"unknown type", `{"type":"hologram_call","content":"` + secret + `"}`, `type "hologram_call"`, true},
		{"long unknown type", `{"type":"` + strings.Repeat("x", 100) + `"}`, `"type" is not a type name`, true},
		{"type that is text", `{"type":"` + secret + `","role":"user"}`, `"type" is not a type name`, true},
		{"type with a quote", `{"type":"a\"` + secret + `"}`, `"type" is not a type name`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			it, err := openaisession.Decode(json.RawMessage(tt.raw))
			if !errors.Is(err, lakesession.ErrInvalidItem) {
				t.Fatalf("Decode = %+v, %v; want ErrInvalidItem", it, err)
			}
			if errors.Is(err, openaisession.ErrUnknownType) != tt.unknown {
				t.Errorf("errors.Is(err, ErrUnknownType) = %v, want %v", !tt.unknown, tt.unknown)
			}
			if !strings.Contains(err.Error(), tt.says) {
				t.Errorf("error %q does not say %q", err, tt.says)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error %q quotes the item's content", err)
			}
			if len(setVariants(it)) != 0 {
				t.Errorf("a failed Decode returned an item with %v set", setVariants(it))
			}
		})
	}
}

func TestEncodeErrors(t *testing.T) {
	two := responses.ResponseInputItemUnionParam{
		OfMessage:      &responses.EasyInputMessageParam{Role: responses.EasyInputMessageRoleUser},
		OfFunctionCall: &responses.ResponseFunctionToolCallParam{CallID: "c"},
	}
	badText := responses.ResponseInputItemParamOfMessage("hi", responses.EasyInputMessageRoleUser)
	badText.OfMessage.SetExtraFields(map[string]any{"note": json.RawMessage("\"\xff\"")})
	tests := []struct {
		name string
		item responses.ResponseInputItemUnionParam
		says string
	}{
		{"no variant", responses.ResponseInputItemUnionParam{}, "no variant is set"},
		{"two variants", two, "2 variants are set"},
		{"invalid UTF-8", badText, "UTF-8"},
		{"JSON set in code that is not an object", param.Override[responses.ResponseInputItemUnionParam](json.RawMessage(` [1]`)), "does not encode to a JSON object"},
		{"JSON set in code that is not valid", param.Override[responses.ResponseInputItemUnionParam](json.RawMessage(`{"type":`)), "cannot encode it; check the JSON set in code"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw, err := openaisession.Encode(tt.item)
			if !errors.Is(err, lakesession.ErrInvalidItem) {
				t.Fatalf("Encode = %s, %v; want ErrInvalidItem", raw, err)
			}
			if !strings.Contains(err.Error(), tt.says) {
				t.Errorf("error %q does not say %q", err, tt.says)
			}
		})
	}
}

// Items built in code with openai-go's helpers encode compactly and decode
// back to the same variant.
func TestEncodeBuiltItems(t *testing.T) {
	items := []responses.ResponseInputItemUnionParam{
		responses.ResponseInputItemParamOfMessage("Hello I live in SF!", responses.EasyInputMessageRoleUser),
		responses.ResponseInputItemParamOfFunctionCall(`{"city":"SF"}`, "call_1", "get_weather"),
		{OfFunctionCallOutput: &responses.ResponseInputItemFunctionCallOutputParam{
			CallID: param.NewOpt("call_1"),
			Output: responses.ResponseInputItemFunctionCallOutputOutputUnionParam{OfString: param.NewOpt("18C")},
		}},
		param.Override[responses.ResponseInputItemUnionParam](json.RawMessage(`{"type":"hologram_call","id":"h"}`)),
		param.Override[responses.ResponseInputItemUnionParam](json.RawMessage(" {\n  \"type\": \"hologram_call\",\t\"id\": \"h 2\"\n} ")),
	}
	wants := []string{
		`{"content":"Hello I live in SF!","role":"user"}`,
		`{"arguments":"{\"city\":\"SF\"}","call_id":"call_1","name":"get_weather","type":"function_call"}`,
		`{"output":"18C","call_id":"call_1","type":"function_call_output"}`,
		`{"type":"hologram_call","id":"h"}`,
		`{"type":"hologram_call","id":"h 2"}`,
	}
	for i, it := range items {
		raw, err := openaisession.Encode(it)
		if err != nil {
			t.Fatalf("item %d: %v", i, err)
		}
		if string(raw) != wants[i] {
			t.Errorf("item %d encoded as %s, want %s", i, raw, wants[i])
		}
	}
}

func FuzzDecodeEncode(f *testing.F) {
	for _, fx := range fixtures {
		f.Add(fx.raw)
	}
	for _, s := range []string{`{}`, `{"type":"message"}`, `{"id":1}`, `{"role":null}`, `{"type":"reasoning","summary":{"a":1}}`, `{"role":"user","content":"x","":{"":[]}}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		it, err := openaisession.Decode(json.RawMessage(raw))
		if err != nil {
			if !errors.Is(err, lakesession.ErrInvalidItem) {
				t.Fatalf("Decode error %v does not wrap ErrInvalidItem", err)
			}
			return
		}
		if n := len(setVariants(it)); n != 1 {
			t.Fatalf("Decode set %d variants", n)
		}
		enc, err := openaisession.Encode(it)
		if err != nil {
			t.Fatalf("Encode(Decode(%s)): %v", raw, err)
		}
		if !sameJSON(t, enc, json.RawMessage(raw)) {
			t.Fatalf("Encode(Decode(raw)) is another JSON value:\n got %s\nwant %s", enc, raw)
		}
	})
}

func decode(t *testing.T, raw string) responses.ResponseInputItemUnionParam {
	t.Helper()
	it, err := openaisession.Decode(json.RawMessage(raw))
	if err != nil {
		t.Fatalf("Decode(%s): %v", raw, err)
	}
	return it
}

// setVariants returns the names of the Of fields of it that are set.
func setVariants(it responses.ResponseInputItemUnionParam) []string {
	var names []string
	v := reflect.ValueOf(it)
	for i := range v.NumField() {
		f := v.Type().Field(i)
		if strings.HasPrefix(f.Name, "Of") && !v.Field(i).IsNil() {
			names = append(names, f.Name)
		}
	}
	return names
}

// sameJSON reports whether a and b are the same JSON value: the same keys
// and values, numbers compared by their value as written (1.0 and 1 differ).
func sameJSON(t testing.TB, a, b json.RawMessage) bool {
	t.Helper()
	va, errA := decodeJSON(a)
	vb, errB := decodeJSON(b)
	if errA != nil || errB != nil {
		t.Fatalf("not JSON: %v, %v", errA, errB)
	}
	return reflect.DeepEqual(va, vb)
}

func decodeJSON(b []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	err := d.Decode(&v)
	return v, err
}

// A lone surrogate escape, which encoding/json would turn into U+FFFD, is
// kept as written; surrogate pairs (as Python's json.dumps writes every
// character outside the BMP) decode into the typed field.
func TestDecodeKeepsLoneSurrogates(t *testing.T) {
	enc, err := openaisession.Encode(decode(t, `{"role":"user","content":"a\ud800b"}`))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(enc, []byte(`a\ud800b`)) {
		t.Fatalf("lone surrogate lost: %s", enc)
	}
	it := decode(t, `{"role":"user","content":"sun \ud83c\udf1e"}`)
	if got := it.OfMessage.Content.OfString.Value; got != "sun 🌞" || len(it.OfMessage.ExtraFields()) != 0 {
		t.Fatalf("content %q, extra fields %v", got, it.OfMessage.ExtraFields())
	}
}
