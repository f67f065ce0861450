package openaisession

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
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
			for _, m := range members([]byte(a)) {
				got[m.key] = decodeNumbers(t, string(m.val))
			}
			if !reflect.DeepEqual(got, obj) {
				t.Fatalf("members(%s) = %v, want %v", a, got, obj)
			}
		} else if members([]byte(a)) != nil {
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
