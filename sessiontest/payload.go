package sessiontest

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/lakesession/lakesession"
)

// roundTripCases are items that must come back byte for byte in their
// compact form (json.Compact of the input): no re-encoding, no reordering of
// keys, no loss of escapes, precision or duplicate keys.
var roundTripCases = []struct {
	name string
	item string
}{
	{"WhiteSpace", "{ \"role\" : \"user\",\n\t\"content\" : [ 1, 2 ,\r\n 3 ] ,\"empty\":{ } }\n"},
	{"Unicode", `{"content":"emoji 🧠👩‍👩‍👧🏳️‍🌈 CJK 会话记忆 日本語 한국어 RTL مرحبا بالعالم שלום ` +
		"\u202eoverride\u202c combining e\u0301 BOM \ufeff line sep \u2028 para sep \u2029" + `"}`},
	{"EscapedControlCharacters", `{"content":"nul \u0000 bell \u0007 esc \u001b quote \" backslash \\ slash \/ nl \n tab \t cr \r"}`},
	{"EscapedUnicode", `{"content":"\u00e9 \u4f1a\u8bdd \ud83e\udde0 lone \ud800 and \udfff"}`},
	{"HTMLCharacters", `{"content":"<script>alert('x')</script> & &amp; <b>bold</b>"}`},
	{"KeyOrderNumbersDuplicates", `{"z":1,"a":2,"m":{"y":1.50,"e":1e400,"big":123456789012345678901234567890,"neg":-0.0,"exp":2E-7},"dup":1,"dup":2}`},
	{"SQLLooking", `{"role":"user","content":"'); DROP TABLE agent_messages; --"}`},
	{"SQLLookingMore", `{"content":"Robert'); DROP TABLE agent_sessions;-- \" ; /* */ $1 $$ ? :name %s %% \\x00 E'\\''"}`},
	{"Nested", strings.Repeat(`{"a":[`, 64) + `"deep"` + strings.Repeat(`]}`, 64)},
	{"EmptyObject", `{}`},
}

// bigItem returns a JSON object of at least size bytes whose content mixes
// ASCII, multi-byte UTF-8 and escapes.
func bigItem(size int) string {
	const chunk = `Lorem ipsum 会话 🧠 مرحبا \"quoted\" \\ \n \u0000 <&> '); -- `
	var b strings.Builder
	b.Grow(size + 2*len(chunk))
	b.WriteString(`{"role":"assistant","content":"`)
	for b.Len() < size {
		b.WriteString(chunk)
	}
	b.WriteString(`","size":` + "\t" + `"big"}`)
	return b.String()
}

// testRoundTrip checks that items come back as the compact form of what was
// added, byte for byte.
func (s *suite) testRoundTrip(t *testing.T) {
	for _, c := range roundTripCases {
		t.Run(c.name, func(t *testing.T) {
			s.checkRoundTrip(t, c.item)
		})
	}
	t.Run("Big", func(t *testing.T) {
		s.checkRoundTrip(t, bigItem(1<<20))
	})
	t.Run("AllInOneBatch", func(t *testing.T) {
		sess := s.newSession(t, "roundtrip-all")
		var batch, want []json.RawMessage
		for _, c := range roundTripCases {
			batch = append(batch, json.RawMessage(c.item))
			want = append(want, compact(c.item))
		}
		add(t, sess, batch)
		wantItems(t, sess, 0, want)
		wantItems(t, sess, 2, want[len(want)-2:])
	})
}

// checkRoundTrip adds raw between two plain items and checks that GetItems
// and PopItem return its compact form.
func (s *suite) checkRoundTrip(t *testing.T, raw string) {
	t.Helper()
	sess := s.newSession(t, "roundtrip")
	want := compact(raw)
	before, after := item("before", 1), item("after", 2)
	add(t, sess, []json.RawMessage{before, json.RawMessage(raw), after})
	wantItems(t, sess, 0, []json.RawMessage{before, want, after})
	wantPop(t, sess, after)
	wantItems(t, sess, 1, []json.RawMessage{want})
	wantPop(t, sess, want)
	wantItems(t, sess, 0, []json.RawMessage{before})
}

// invalidItems are items that are not one JSON object.
var invalidItems = []struct {
	name string
	item json.RawMessage
}{
	{"Array", json.RawMessage(`[{"role":"user","content":"hi"}]`)},
	{"EmptyArray", json.RawMessage(`[]`)},
	{"String", json.RawMessage(`"hello"`)},
	{"Number", json.RawMessage(`42`)},
	{"Null", json.RawMessage(`null`)},
	{"Bool", json.RawMessage(`true`)},
	{"Empty", json.RawMessage(``)},
	{"Nil", nil},
	{"OnlyWhiteSpace", json.RawMessage(" \n\t ")},
	{"Truncated", json.RawMessage(`{"role":"user","content":"hi"`)},
	{"TrailingGarbage", json.RawMessage(`{"a":1} x`)},
	{"TwoObjects", json.RawMessage(`{"a":1}{"b":2}`)},
	{"SingleQuotes", json.RawMessage(`{'a':1}`)},
	{"UnquotedKey", json.RawMessage(`{a:1}`)},
	{"TrailingComma", json.RawMessage(`{"a":1,}`)},
	{"NaN", json.RawMessage(`{"a":NaN}`)},
}

// testInvalidItem checks that a batch with one item that is not a JSON
// object fails with ErrInvalidItem and writes nothing.
func (s *suite) testInvalidItem(t *testing.T) {
	for _, c := range invalidItems {
		t.Run(c.name, func(t *testing.T) {
			sess := s.newSession(t, "invalid-item")
			existing := items("existing", 1, 2)
			add(t, sess, existing)
			batch := []json.RawMessage{item("new", 1), c.item, item("new", 2)}
			wantInvalidItem(t, sess, batch)
			wantItems(t, sess, 0, existing)
		})
	}
	// Wherever the bad item is, nothing is written, also on a session that
	// does not exist yet.
	bad := json.RawMessage(`["not","an","object"]`)
	positions := []struct {
		name  string
		batch []json.RawMessage
	}{
		{"First", []json.RawMessage{bad, item("new", 1), item("new", 2)}},
		{"Middle", []json.RawMessage{item("new", 1), bad, item("new", 2)}},
		{"Last", []json.RawMessage{item("new", 1), item("new", 2), bad}},
		{"Only", []json.RawMessage{bad}},
		{"AllBad", []json.RawMessage{bad, json.RawMessage(`1`), json.RawMessage(`null`)}},
	}
	for _, p := range positions {
		t.Run("NewSession"+p.name, func(t *testing.T) {
			sess := s.newSession(t, "invalid-item-new")
			wantInvalidItem(t, sess, p.batch)
			wantItems(t, sess, 0, nil)
			wantPop(t, sess, nil)
			// The session is still usable.
			good := items("good", 1, 1)
			add(t, sess, good)
			wantItems(t, sess, 0, good)
		})
	}
}

func wantInvalidItem(t *testing.T, sess lakesession.Session, batch []json.RawMessage) {
	t.Helper()
	err := sess.AddItems(t.Context(), batch)
	if !errors.Is(err, lakesession.ErrInvalidItem) {
		t.Fatalf("AddItems(%s) on session %s: error %v, want one matching lakesession.ErrInvalidItem",
			list(batch), showID(sess.SessionID()), err)
	}
	wantDetail(t, "AddItems", err, lakesession.ErrInvalidItem)
}

// wantDetail fails t when err is the bare sentinel: an error for bad input
// must say what is wrong, as lakesession.CompactItem and
// lakesession.ValidateSessionID do.
func wantDetail(t *testing.T, op string, err, sentinel error) {
	t.Helper()
	if err.Error() == sentinel.Error() {
		t.Errorf("%s: the error is only %q; it must also say what is wrong (wrap the error of lakesession.CompactItem or lakesession.ValidateSessionID)", op, err)
	}
}

// testInvalidSessionID checks that every method of a handle with an invalid
// id fails with ErrInvalidSessionID and touches no session, not even the one
// a store would reach by cutting or cleaning the id.
func (s *suite) testInvalidSessionID(t *testing.T) {
	base := s.newID("invalid-id-")
	id255 := padID(base, lakesession.MaxSessionIDLen)
	cases := []struct{ name, id string }{
		{"Empty", ""},
		{"TooLong256Bytes", id255 + "x"},
		{"TooLong256BytesMultiByte", padID(base, lakesession.MaxSessionIDLen-1) + "é"},
		{"TooLong4096Bytes", padID(base, 4096)},
		{"InvalidUTF8", base + "\xff"},
		{"TruncatedUTF8", base + "\xe4\xbc"},
		{"Surrogate", base + "\xed\xa0\x80"},
		{"NUL", base + "\x00tail"},
		{"TrailingNUL", base + "\x00"},
		{"OnlyNUL", "\x00"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if lakesession.ValidateSessionID(c.id) == nil {
				t.Fatalf("sessiontest: test id %s is valid", showID(c.id))
			}
			// Sessions a store could reach by mistake: the id cut at the
			// length limit or at the NUL, or with its bad bytes cleaned.
			shadows := map[string]lakesession.Session{}
			for _, sh := range shadowIDs(c.id) {
				shadows[sh] = s.openSession(t, sh)
			}
			shadowItems := items("shadow", 1, 2)
			for _, sh := range shadows {
				add(t, sh, shadowItems)
			}

			sess := s.open(t, c.id)
			if sess == nil {
				t.Fatalf("open(t, %s) returned nil; for an invalid id it must return a handle whose methods report ErrInvalidSessionID", showID(c.id))
			}
			ctx := t.Context()
			check := func(op string, err error) {
				t.Helper()
				if !errors.Is(err, lakesession.ErrInvalidSessionID) {
					t.Errorf("%s on session %s: error %v, want one matching lakesession.ErrInvalidSessionID", op, showID(c.id), err)
					return
				}
				wantDetail(t, op, err, lakesession.ErrInvalidSessionID)
			}
			_, err := sess.PopItem(ctx)
			check("PopItem", err)
			check("ClearSession", sess.ClearSession(ctx))
			check("AddItems", sess.AddItems(ctx, items("new", 1, 2)))
			check("AddItems(nil)", sess.AddItems(ctx, nil))
			check("AddItems(empty)", sess.AddItems(ctx, []json.RawMessage{}))
			_, err = sess.GetItems(ctx, 0)
			check("GetItems(0)", err)
			_, err = sess.GetItems(ctx, 3)
			check("GetItems(3)", err)

			for _, sh := range shadows {
				if diff := diffItems(get(t, sh, 0), shadowItems); diff != "" {
					t.Errorf("session %s changed through the invalid id %s: %s", showID(sh.SessionID()), showID(c.id), diff)
				}
			}
		})
	}
}

// shadowIDs returns the valid ids a store could wrongly use for the invalid
// id: cut to MaxSessionIDLen bytes, cut at the first NUL, or with invalid
// UTF-8 dropped or replaced.
func shadowIDs(id string) []string {
	var out []string
	seen := map[string]bool{id: true}
	addID := func(c string) {
		if !seen[c] && lakesession.ValidateSessionID(c) == nil {
			seen[c] = true
			out = append(out, c)
		}
	}
	if len(id) > lakesession.MaxSessionIDLen {
		addID(id[:lakesession.MaxSessionIDLen])
		addID(strings.ToValidUTF8(id[:lakesession.MaxSessionIDLen], ""))
	}
	if i := strings.IndexByte(id, 0); i >= 0 {
		addID(id[:i])
		addID(strings.ReplaceAll(id, "\x00", ""))
	}
	if !utf8.ValidString(id) {
		addID(strings.ToValidUTF8(id, ""))
		addID(strings.ToValidUTF8(id, "\uFFFD"))
	}
	return out
}

// padID returns prefix padded with 'x' to n bytes.
func padID(prefix string, n int) string {
	return prefix + strings.Repeat("x", n-len(prefix))
}

// testValidSessionID checks ids at the edge of what is valid: 255 bytes, and
// any characters but NUL.
func (s *suite) testValidSessionID(t *testing.T) {
	base := s.newID("valid-id-")
	// 255 bytes that end in a 3-byte character, so that a limit counted in
	// characters or a cut inside a character shows.
	rest := lakesession.MaxSessionIDLen - len(base)
	multi := base + strings.Repeat("x", rest%3) + strings.Repeat("€", rest/3)
	cases := []struct{ name, id string }{
		{"MaxLength255Bytes", padID(base, lakesession.MaxSessionIDLen)},
		{"MaxLength255BytesMultiByte", multi},
		{"Unicode", base + "用户-🧠-مستخدم-שלום"},
		{"SQLLooking", base + "'); DROP TABLE agent_sessions; --"},
		{"Quotes", base + `"double" 'single' \back\slash`},
		{"WhiteSpace", base + " with spaces\tand\nnewlines "},
		{"Punctuation", base + "a/b?c=d&e#f:g@h;i,j*k(l)[m]{n}|o~p`q"},
		{"ControlCharacters", base + "\x01\x1f\x7f"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := lakesession.ValidateSessionID(c.id); err != nil {
				t.Fatalf("sessiontest: test id %s: %v", showID(c.id), err)
			}
			sess := s.openSession(t, c.id)
			if got := sess.SessionID(); got != c.id {
				t.Errorf("SessionID() = %s, want %s", showID(got), showID(c.id))
			}
			all := items("valid-id", 1, 3)
			add(t, sess, all[:2])
			add(t, sess, all[2:])
			wantItems(t, sess, 0, all)
			wantItems(t, sess, 2, all[1:])
			wantPop(t, sess, all[2])
			other := s.openSession(t, c.id)
			wantItems(t, other, 0, all[:2])
			clearSession(t, other)
			wantItems(t, sess, 0, nil)
		})
	}
}
