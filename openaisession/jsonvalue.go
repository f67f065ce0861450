package openaisession

import (
	"bytes"
	"encoding/json"
	"unicode/utf16"
	"unicode/utf8"
)

// The helpers below read documents that are already known to be valid JSON
// (checked by Decode, or written by encoding/json), without building them
// in memory and, for the usual small objects, without allocating: Decode
// runs them on every item a Session reads.

// member is one member of a JSON object: the JSON text of its key (a
// string, quotes included) and of its value.
type member struct {
	key []byte
	val []byte
}

// name returns the member's key, decoded.
func (m member) name() string { return decodeString(m.key) }

// members appends the members of the JSON object b to dst, in their order,
// repeated keys included, and returns the result, or nil when b is not an
// object. Pass a slice of an array on the caller's stack as dst to read an
// object of a few members without allocating.
func members(dst []member, b []byte) []member {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return nil
	}
	out := dst[:0]
	i++
	for {
		i = skipSpace(b, i)
		if b[i] == '}' {
			if out == nil {
				out = []member{}
			}
			return out
		}
		end := skipValue(b, i)
		key := b[i:end]
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

// lookup returns the value of the last member named name (encoding/json
// keeps the last of repeated keys).
func lookup(ms []member, name string) ([]byte, bool) {
	for i := len(ms) - 1; i >= 0; i-- {
		if stringIs(ms[i].key, name) {
			return ms[i].val, true
		}
	}
	return nil, false
}

// lookupKey returns the index of the last member whose key is the same
// string as the JSON string key, or -1.
func lookupKey(ms []member, key []byte) int {
	for i := len(ms) - 1; i >= 0; i-- {
		if equalString(ms[i].key, key) {
			return i
		}
	}
	return -1
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
		var bufA, bufB [8]member
		ma, mb := members(bufA[:0], a), members(bufB[:0], b)
		n := 0
		for i, m := range ma {
			if lookupKey(ma, m.key) != i {
				continue // an earlier repeat of the key
			}
			n++
			k := lookupKey(mb, m.key)
			if k < 0 || !equalJSON(m.val, mb[k].val) {
				return false
			}
		}
		return n == distinctKeys(mb)
	case '[':
		i, j := skipSpace(a, 1), skipSpace(b, 1)
		for a[i] != ']' && b[j] != ']' {
			endA, endB := skipValue(a, i), skipValue(b, j)
			if !equalJSON(a[i:endA], b[j:endB]) {
				return false
			}
			i, j = skipSpace(a, endA), skipSpace(b, endB)
			if a[i] == ',' {
				i = skipSpace(a, i+1)
			}
			if b[j] == ',' {
				j = skipSpace(b, j+1)
			}
		}
		return a[i] == ']' && b[j] == ']'
	case '"':
		return equalString(a, b)
	}
	return false // numbers and literals differ in text
}

func distinctKeys(ms []member) int {
	n := 0
	for i, m := range ms {
		if lookupKey(ms, m.key) == i {
			n++
		}
	}
	return n
}

// decodeString returns the text of the JSON string s, as encoding/json
// decodes it.
func decodeString(s []byte) string {
	if plainString(s) {
		return string(s[1 : len(s)-1])
	}
	var v string
	if err := json.Unmarshal(s, &v); err != nil {
		return "" // not reached for valid JSON
	}
	return v
}

// plainString reports whether the JSON string s has neither escapes nor
// bytes outside ASCII, so that its text is its bytes between the quotes.
func plainString(s []byte) bool {
	for _, c := range s[1 : len(s)-1] {
		if c == '\\' || c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// stringIs reports whether the JSON string s decodes to name.
func stringIs(s []byte, name string) bool {
	if len(s) == len(name)+2 && string(s[1:len(s)-1]) == name {
		return true
	}
	if plainString(s) {
		return false
	}
	i := 1
	for _, want := range name {
		if s[i] == '"' {
			return false
		}
		var r rune
		if r, i = nextRune(s, i); r != want {
			return false
		}
	}
	return s[i] == '"'
}

// equalString reports whether the JSON strings a and b decode to the same
// text, without decoding them into memory.
func equalString(a, b []byte) bool {
	if bytes.Equal(a, b) {
		return true
	}
	if plainString(a) && plainString(b) {
		return false
	}
	i, j := 1, 1
	for {
		endA, endB := a[i] == '"', b[j] == '"'
		if endA || endB {
			return endA && endB
		}
		var ra, rb rune
		ra, i = nextRune(a, i)
		rb, j = nextRune(b, j)
		if ra != rb {
			return false
		}
	}
}

// nextRune decodes the character of the JSON string s at s[i], which is not
// its closing quote, as encoding/json does (invalid UTF-8 and lone
// surrogate escapes become U+FFFD), and returns it with the index of the
// next one.
func nextRune(s []byte, i int) (rune, int) {
	c := s[i]
	if c != '\\' {
		if c < utf8.RuneSelf {
			return rune(c), i + 1
		}
		r, size := utf8.DecodeRune(s[i:])
		return r, i + size
	}
	switch s[i+1] {
	case 'u':
		r, _ := hex4(s[i+2 : i+6])
		i += 6
		if utf16.IsSurrogate(r) {
			if i+6 <= len(s) && s[i] == '\\' && s[i+1] == 'u' {
				r2, ok := hex4(s[i+2 : i+6])
				if dec := utf16.DecodeRune(r, r2); ok && dec != utf8.RuneError {
					return dec, i + 6
				}
			}
			return utf8.RuneError, i
		}
		return r, i
	case 'b':
		return '\b', i + 2
	case 'f':
		return '\f', i + 2
	case 'n':
		return '\n', i + 2
	case 'r':
		return '\r', i + 2
	case 't':
		return '\t', i + 2
	default: // '"', '\\', '/'
		return rune(s[i+1]), i + 2
	}
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

// compactObject reports whether b is one JSON object, in compact form, of
// valid UTF-8: the form lakesession.CompactItem returns, so that it need
// not be copied into that form.
func compactObject(b []byte) bool {
	if len(b) == 0 || b[0] != '{' || !utf8.Valid(b) || !json.Valid(b) {
		return false
	}
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '"':
			i = skipValue(b, i) - 1
		case ' ', '\t', '\n', '\r':
			return false
		}
	}
	return true
}
