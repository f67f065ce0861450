package openaisession

import (
	"bytes"
	"encoding/json"
)

// The helpers below read documents that are already known to be valid JSON
// (checked by lakesession.CompactItem, or written by encoding/json), without
// building them in memory: Decode runs them on every item a Session reads.

// member is one member of a JSON object: its key, decoded, and its value's
// JSON text.
type member struct {
	key string
	val []byte
}

// members returns the members of the JSON object b in their order,
// repeated keys included, or nil when b is not an object.
func members(b []byte) []member {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return nil
	}
	var out []member
	i++
	for {
		i = skipSpace(b, i)
		if b[i] == '}' {
			return out
		}
		end := skipValue(b, i)
		key := decodeString(b[i:end])
		i = skipSpace(b, end) + 1 // ':'
		i = skipSpace(b, i)
		end = skipValue(b, i)
		out = append(out, member{key: key, val: b[i:end]})
		i = skipSpace(b, end)
		if b[i] == ',' {
			i++
		}
	}
}

// lookup returns the value of the last member named key (encoding/json
// keeps the last of repeated keys).
func lookup(ms []member, key string) ([]byte, bool) {
	for i := len(ms) - 1; i >= 0; i-- {
		if ms[i].key == key {
			return ms[i].val, true
		}
	}
	return nil, false
}

// equalJSON reports whether the JSON texts a and b are the same value, as
// encoding/json with UseNumber reads them: objects compare by their keys
// (the last of repeated keys counts) and not their order, strings by their
// decoded text, numbers by their text (1.0 and 1 differ).
func equalJSON(a, b []byte) bool {
	a, b = bytes.TrimSpace(a), bytes.TrimSpace(b)
	if bytes.Equal(a, b) {
		return true
	}
	if len(a) == 0 || len(b) == 0 || a[0] != b[0] {
		return false
	}
	switch a[0] {
	case '{':
		ma, mb := members(a), members(b)
		n := 0
		for i, m := range ma {
			if last, _ := lookupIndex(ma, m.key); last != i {
				continue // an earlier repeat of the key
			}
			n++
			vb, ok := lookup(mb, m.key)
			if !ok || !equalJSON(m.val, vb) {
				return false
			}
		}
		return n == distinctKeys(mb)
	case '[':
		ea, eb := elements(a), elements(b)
		if len(ea) != len(eb) {
			return false
		}
		for i := range ea {
			if !equalJSON(ea[i], eb[i]) {
				return false
			}
		}
		return true
	case '"':
		return decodeString(a) == decodeString(b)
	}
	return false // numbers and literals differ in text
}

func lookupIndex(ms []member, key string) (int, bool) {
	for i := len(ms) - 1; i >= 0; i-- {
		if ms[i].key == key {
			return i, true
		}
	}
	return -1, false
}

func distinctKeys(ms []member) int {
	n := 0
	for i, m := range ms {
		if last, _ := lookupIndex(ms, m.key); last == i {
			n++
		}
	}
	return n
}

// elements returns the JSON texts of the elements of the array b.
func elements(b []byte) [][]byte {
	var out [][]byte
	i := skipSpace(b, 1)
	for b[i] != ']' {
		end := skipValue(b, i)
		out = append(out, b[i:end])
		i = skipSpace(b, end)
		if b[i] == ',' {
			i = skipSpace(b, i+1)
		}
	}
	return out
}

// decodeString returns the text of the JSON string s, as encoding/json
// decodes it.
func decodeString(s []byte) string {
	if bytes.IndexByte(s, '\\') < 0 {
		plain := true
		for _, c := range s {
			if c >= 0x80 {
				plain = false // let encoding/json handle invalid UTF-8
				break
			}
		}
		if plain {
			return string(s[1 : len(s)-1])
		}
	}
	var v string
	if err := json.Unmarshal(s, &v); err != nil {
		return "" // not reached for valid JSON
	}
	return v
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipValue returns the index just past the value that starts at b[i].
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		i++
		for b[i] != '"' {
			if b[i] == '\\' {
				i++
			}
			i++
		}
		return i + 1
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				i = skipValue(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
		}
		return i
	}
	for i < len(b) {
		switch b[i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return i
		}
		i++
	}
	return i
}
