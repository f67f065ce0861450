package lakesession_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/lakesession/lakesession"
)

func TestValidateSessionID(t *testing.T) {
	tests := []struct {
		name string
		id   string
		ok   bool
		says string
	}{
		{"uuid", "0192f0c8-7f5e-7c3a-9d1e-2b3c4d5e6f70", true, ""},
		{"one byte", "x", true, ""},
		{"255 bytes", strings.Repeat("a", 255), true, ""},
		{"multibyte at the limit", strings.Repeat("é", 127) + "a", true, ""},
		{"empty", "", false, "empty"},
		{"256 bytes", strings.Repeat("a", 256), false, "256 bytes"},
		{"invalid UTF-8", "user-\xff", false, "UTF-8"},
		{"NUL", "user\x00789", false, "NUL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := lakesession.ValidateSessionID(tt.id)
			if tt.ok {
				if err != nil {
					t.Fatalf("ValidateSessionID(%q) = %v, want nil", tt.id, err)
				}
				return
			}
			if !errors.Is(err, lakesession.ErrInvalidSessionID) {
				t.Fatalf("ValidateSessionID(%q) = %v, want ErrInvalidSessionID", tt.id, err)
			}
			if !strings.Contains(err.Error(), tt.says) {
				t.Errorf("error %q does not say %q", err, tt.says)
			}
		})
	}
}

func TestCompactItem(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string // "" means an ErrInvalidItem is expected
		says string
	}{
		{"object", `{"role":"user","content":"hi"}`, `{"role":"user","content":"hi"}`, ""},
		{"spaced", " \n{ \"a\" : [1, 2 ,3],\t\"b\": {} }\r\n", `{"a":[1,2,3],"b":{}}`, ""},
		{"escapes kept", `{"s":"\u0000\u00e9 é \"q\""}`, `{"s":"\u0000\u00e9 é \"q\""}`, ""},
		{"empty", ``, "", "empty"},
		{"blank", " \n\t", "", "empty"},
		{"array", `[{"a":1}]`, "", "not a JSON object"},
		{"string", `"hi"`, "", "not a JSON object"},
		{"number", `42`, "", "not a JSON object"},
		{"null", `null`, "", "not a JSON object"},
		{"truncated", `{"a":`, "", "not valid JSON"},
		{"two objects", `{"a":1}{"b":2}`, "", "not valid JSON"},
		{"trailing garbage", `{"a":1} x`, "", "not valid JSON (syntax error at byte 9 of 9)"},
		{"bad character", `{"a":Zsecret}`, "", "not valid JSON (syntax error at byte 6 of 13)"},
		{"invalid UTF-8 in a string", "{\"a\":\"\xff\"}", "", "UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := lakesession.CompactItem(json.RawMessage(tt.in))
			if tt.want == "" {
				if !errors.Is(err, lakesession.ErrInvalidItem) {
					t.Fatalf("CompactItem(%q) = %q, %v; want ErrInvalidItem", tt.in, got, err)
				}
				if !strings.Contains(err.Error(), tt.says) {
					t.Errorf("error %q does not say %q", err, tt.says)
				}
				// No character of the item reaches the error.
				if strings.Contains(err.Error(), "'Z'") || strings.Contains(err.Error(), "secret") || strings.Contains(err.Error(), "'x'") {
					t.Errorf("error %q quotes the item", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("CompactItem(%q): %v", tt.in, err)
			}
			if string(got) != tt.want {
				t.Errorf("CompactItem(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// CompactItem must not alias its input: callers may reuse their buffers.
func TestCompactItemCopies(t *testing.T) {
	in := []byte(`{"a":1}`)
	out, err := lakesession.CompactItem(in)
	if err != nil {
		t.Fatal(err)
	}
	in[1] = 'X'
	if string(out) != `{"a":1}` {
		t.Fatalf("output changed with the input: %q", out)
	}
}

func FuzzCompactItem(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":[1,{"b":null}]}`, ` {"x":"\u00e9"} `, `[]`, `"s"`, `{`, "{\"a\":\"\xff\"}"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		out, err := lakesession.CompactItem(in)
		if err != nil {
			if !errors.Is(err, lakesession.ErrInvalidItem) {
				t.Fatalf("error %v is not ErrInvalidItem", err)
			}
			return
		}
		// An accepted item is one valid UTF-8 JSON object, already compact.
		var obj map[string]any
		if err := json.Unmarshal(out, &obj); err != nil {
			t.Fatalf("accepted %q, but the output %q is not a JSON object: %v", in, out, err)
		}
		if !utf8.Valid(out) {
			t.Fatalf("accepted invalid UTF-8: %q", out)
		}
		var again bytes.Buffer
		if err := json.Compact(&again, out); err != nil || !bytes.Equal(again.Bytes(), out) {
			t.Fatalf("output %q is not compact", out)
		}
	})
}

func FuzzValidateSessionID(f *testing.F) {
	for _, s := range []string{"user-789", "", "a\x00b", "\xff", strings.Repeat("x", 256)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		err := lakesession.ValidateSessionID(id)
		valid := id != "" && len(id) <= lakesession.MaxSessionIDLen && utf8.ValidString(id) && !strings.ContainsRune(id, 0)
		if valid != (err == nil) {
			t.Fatalf("ValidateSessionID(%q) = %v, want valid=%v", id, err, valid)
		}
		if err != nil && !errors.Is(err, lakesession.ErrInvalidSessionID) {
			t.Fatalf("error %v is not ErrInvalidSessionID", err)
		}
	})
}
