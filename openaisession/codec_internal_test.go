package openaisession

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestHasLoneSurrogate(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{`"plain"`, false},
		{`"\u00e9 \u0000 \n \\ud800"`, false}, // the last is an escaped backslash, then text
		{`"\ud83c\udf1e"`, false},
		{`"\uD83C\uDF1E"`, false},
		{`"\ud800"`, true},
		{`"\udc00"`, true},
		{`"\ud800x"`, true},
		{`"\ud800\n"`, true},
		{`"\ud800\u0041"`, true},
		{`"\ud800\ud800\udc00"`, true},
		{`"\udf1e\ud83c"`, true},
		{`"\u12"`, false},
		{`\`, false},
	}
	for _, tt := range tests {
		if got := hasLoneSurrogate([]byte(tt.in)); got != tt.want {
			t.Errorf("hasLoneSurrogate(%s) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

// equalJSON agrees with encoding/json (UseNumber) on every pair of valid
// documents, and members with its map of the last of repeated keys.
func FuzzEqualJSON(f *testing.F) {
	pairs := [][2]string{
		{`{"a":1,"b":[1,"x"]}`, `{"b":[1,"x"],"a":1}`},
		{`{"a":1,"a":2}`, `{"a":2}`},
		{`{"a":1.0}`, `{"a":1}`},
		{`"\u00e9"`, `"é"`},
		{`"\ud800"`, `"\ufffd"`},
		{`[ 1 , {"k" : null} ]`, `[1,{"k":null}]`},
		{`{"a":{}}`, `{"a":[]}`},
		{`{"":1,"\"":2}`, `{"\"":2,"":1}`},
		{"\"\xff\"", `"\ufffd"`},
		{`{"a":1,"b":2}`, `{"a":1}`},
		{`true`, `false`},
		{`{"\u00e9":"\u00e9"}`, `{"é":"é"}`},
		{`"\ud83c\udf1e"`, `"🌞"`},
		{`"\ud800\u0041"`, `"\ufffdA"`},
		{`"\udc00\ud800x"`, `"\ufffd\ufffdx"`},
		{`"\ud83c\ud83c\udf1e"`, `"\ufffd🌞"`},
		{`"\/\b\f\n\r\t\"\\"`, `"/\u0008\u000c\u000a\u000d\u0009\u0022\u005c"`},
		{`["a",["b"]]`, `["a",["b"],"c"]`},
		{`{"a":1,"b":2,"c":3,"d":4,"e":5,"f":6,"g":7,"h":8,"i":9}`, `{"i":9,"h":8,"g":7,"f":6,"e":5,"d":4,"c":3,"b":2,"a":1}`},
	}
	for _, p := range pairs {
		f.Add(p[0], p[1])
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		if !json.Valid([]byte(a)) || !json.Valid([]byte(b)) {
			return
		}
		va, vb := decodeNumbers(t, a), decodeNumbers(t, b)
		if got, want := equalJSON([]byte(a), []byte(b)), reflect.DeepEqual(va, vb); got != want {
			t.Fatalf("equalJSON(%s, %s) = %v, want %v", a, b, got, want)
		}
		if obj, ok := va.(map[string]any); ok {
			got := map[string]any{}
			for _, m := range members(nil, []byte(a)) {
				got[m.name()] = decodeNumbers(t, string(m.val))
			}
			if !reflect.DeepEqual(got, obj) {
				t.Fatalf("members(%s) = %v, want %v", a, got, obj)
			}
		} else if members(nil, []byte(a)) != nil {
			t.Fatalf("members(%s) is not nil", a)
		}
	})
}

func decodeNumbers(t *testing.T, s string) any {
	d := json.NewDecoder(strings.NewReader(s))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatalf("decode %s: %v", s, err)
	}
	return v
}

// stringIs agrees with encoding/json's decoding of a JSON string.
func FuzzStringIs(f *testing.F) {
	for _, s := range []string{`"type"`, `"typ\u0065"`, `"\ud800"`, `"é"`, "\"\xff\"", `""`, `"\ud83c\udf1e"`} {
		f.Add(s, "type")
	}
	f.Fuzz(func(t *testing.T, s, name string) {
		var v string
		if !json.Valid([]byte(s)) || json.Unmarshal([]byte(s), &v) != nil || !utf8.ValidString(name) || strings.TrimSpace(s) != s {
			return // stringIs is given a string token alone, and a name in UTF-8
		}
		if !stringIs([]byte(s), v) {
			t.Fatalf("stringIs(%s, %q) = false", s, v)
		}
		if got := stringIs([]byte(s), name); got != (v == name) {
			t.Fatalf("stringIs(%s, %q) = %v, but it decodes to %q", s, name, got, v)
		}
		if quoted, err := json.Marshal(name); err == nil {
			var w string
			_ = json.Unmarshal(quoted, &w)
			if got := equalString([]byte(s), quoted); got != (v == w) {
				t.Fatalf("equalString(%s, %s) = %v, want %v", s, quoted, got, v == w)
			}
		}
	})
}
