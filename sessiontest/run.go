package sessiontest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/lakesession/lakesession"
)

// Run runs the conformance suite against one lakesession.Session
// implementation.
//
// open returns a handle on the session with the given id. It must not
// validate the id: for an invalid id it returns a handle whose methods report
// lakesession.ErrInvalidSessionID. Calling open twice with one id gives two
// handles on the same stored session. Within one Run, open is called from
// the goroutine of the subtest t, one call at a time.
//
// Every subtest uses session ids of its own, made unique with a random part,
// so one store may be shared by all subtests, by several calls of Run and by
// earlier runs. Sessions of a passing subtest are cleared when it ends; those
// of a failing one are left for inspection.
func Run(t *testing.T, open func(t *testing.T, sessionID string) lakesession.Session) {
	t.Helper()
	if open == nil {
		t.Fatal("sessiontest.Run: open is nil; pass a function that returns a handle on a session")
	}
	s := &suite{open: open, prefix: "sessiontest-" + randomHex(6) + "-"}

	t.Run("SessionID", s.testSessionID)
	t.Run("UnknownSession", s.testUnknownSession)
	t.Run("Order", s.testOrder)
	t.Run("Limit", s.testLimit)
	t.Run("EmptyAddItems", s.testEmptyAddItems)
	t.Run("PopItem", s.testPopItem)
	t.Run("ClearSession", s.testClearSession)
	t.Run("TwoHandles", s.testTwoHandles)
	t.Run("Isolation", s.testIsolation)
	t.Run("Ownership", s.testOwnership)
	t.Run("RoundTrip", s.testRoundTrip)
	t.Run("InvalidItem", s.testInvalidItem)
	t.Run("InvalidSessionID", s.testInvalidSessionID)
	t.Run("ValidSessionID", s.testValidSessionID)
	t.Run("Concurrency", s.testConcurrency)
	t.Run("Context", s.testContext)
}

// suite holds what the subtests of one Run share.
type suite struct {
	open   func(t *testing.T, sessionID string) lakesession.Session
	prefix string // unique per Run: "sessiontest-<random>-"
	n      atomic.Int64
}

// newID returns a session id no other subtest, Run or earlier run uses. label
// makes it readable in failure messages and in the store.
func (s *suite) newID(label string) string {
	return fmt.Sprintf("%s%d-%s", s.prefix, s.n.Add(1), label)
}

// openSession opens a handle on the session id. Unless t fails, the session
// is cleared when t ends.
func (s *suite) openSession(t *testing.T, id string) lakesession.Session {
	t.Helper()
	sess := s.open(t, id)
	if sess == nil {
		t.Fatalf("open(t, %s) returned nil; it must return a handle on the session", showID(id))
	}
	if lakesession.ValidateSessionID(id) == nil {
		t.Cleanup(func() {
			if t.Failed() {
				return
			}
			if err := sess.ClearSession(context.Background()); err != nil {
				t.Errorf("clean up: ClearSession on session %s: %v", showID(id), err)
			}
		})
	}
	return sess
}

// newSession opens a brand-new session with a unique id.
func (s *suite) newSession(t *testing.T, label string) lakesession.Session {
	t.Helper()
	return s.openSession(t, s.newID(label))
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}

// items returns n compact items tagged with tag and numbered from first.
func items(tag string, first, n int) []json.RawMessage {
	out := make([]json.RawMessage, n)
	for i := range out {
		out[i] = item(tag, first+i)
	}
	return out
}

// item returns one compact item tagged with tag and numbered i.
func item(tag string, i int) json.RawMessage {
	b, err := json.Marshal(struct {
		Role    string `json:"role"`
		Content string `json:"content"`
		Tag     string `json:"tag"`
		N       int    `json:"n"`
	}{"user", fmt.Sprintf("message %d", i), tag, i})
	if err != nil {
		panic(err)
	}
	return b
}

// concat returns the items of all lists, in order, in a new slice.
func concat(lists ...[]json.RawMessage) []json.RawMessage {
	var out []json.RawMessage
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}

// add calls AddItems and fails t on error.
func add(t *testing.T, sess lakesession.Session, batch []json.RawMessage) {
	t.Helper()
	if err := sess.AddItems(t.Context(), batch); err != nil {
		t.Fatalf("AddItems(%d items) on session %s: %v", len(batch), showID(sess.SessionID()), err)
	}
}

// get calls GetItems and fails t on error.
func get(t *testing.T, sess lakesession.Session, limit int) []json.RawMessage {
	t.Helper()
	got, err := sess.GetItems(t.Context(), limit)
	if err != nil {
		t.Fatalf("GetItems(%d) on session %s: %v", limit, showID(sess.SessionID()), err)
	}
	return got
}

// pop calls PopItem and fails t on error.
func pop(t *testing.T, sess lakesession.Session) json.RawMessage {
	t.Helper()
	got, err := sess.PopItem(t.Context())
	if err != nil {
		t.Fatalf("PopItem on session %s: %v", showID(sess.SessionID()), err)
	}
	return got
}

// clearSession calls ClearSession and fails t on error.
func clearSession(t *testing.T, sess lakesession.Session) {
	t.Helper()
	if err := sess.ClearSession(t.Context()); err != nil {
		t.Fatalf("ClearSession on session %s: %v", showID(sess.SessionID()), err)
	}
}

// wantItems fails t unless GetItems(limit) returns exactly want, byte for
// byte and in order.
func wantItems(t *testing.T, sess lakesession.Session, limit int, want []json.RawMessage) {
	t.Helper()
	got := get(t, sess, limit)
	if diff := diffItems(got, want); diff != "" {
		t.Fatalf("GetItems(%d) on session %s: %s", limit, showID(sess.SessionID()), diff)
	}
}

// wantPop fails t unless PopItem returns want (nil: the session is empty).
func wantPop(t *testing.T, sess lakesession.Session, want json.RawMessage) {
	t.Helper()
	got := pop(t, sess)
	switch {
	case want == nil && got != nil:
		t.Fatalf("PopItem on session %s = %s, want (nil, nil) on an empty session", showID(sess.SessionID()), short(got))
	case want != nil && got == nil:
		t.Fatalf("PopItem on session %s = nil, want the newest item %s", showID(sess.SessionID()), short(want))
	case string(got) != string(want):
		t.Fatalf("PopItem on session %s = %s, want the newest item %s", showID(sess.SessionID()), short(got), short(want))
	}
}

// diffItems describes how got differs from want, or returns "".
func diffItems(got, want []json.RawMessage) string {
	if len(got) != len(want) {
		return fmt.Sprintf("got %d items, want %d\n got: %s\nwant: %s", len(got), len(want), list(got), list(want))
	}
	for i := range got {
		if string(got[i]) != string(want[i]) {
			return fmt.Sprintf("item %d differs\n got: %s\nwant: %s\n got all: %s\nwant all: %s",
				i, short(got[i]), short(want[i]), list(got), list(want))
		}
	}
	return ""
}

// list formats items for a failure message, shortening long ones.
func list(items []json.RawMessage) string {
	const maxItems = 12
	var b strings.Builder
	b.WriteByte('[')
	for i, it := range items {
		if i == maxItems {
			fmt.Fprintf(&b, " ... %d more", len(items)-maxItems)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(short(it))
	}
	b.WriteByte(']')
	return b.String()
}

// short formats one item for a failure message: quoted, and cut when long.
func short(item []byte) string {
	const maxBytes = 120
	if item == nil {
		return "nil"
	}
	if len(item) <= maxBytes {
		return fmt.Sprintf("%q", item)
	}
	return fmt.Sprintf("%q... (%d bytes)", item[:maxBytes], len(item))
}

// compact returns the compact form of a JSON text the suite itself wrote,
// the form in which a store must return it.
func compact(s string) json.RawMessage {
	var b bytes.Buffer
	if err := json.Compact(&b, []byte(s)); err != nil {
		panic(fmt.Sprintf("sessiontest: bad test item %q: %v", s, err))
	}
	return b.Bytes()
}

// showID formats a session id for a failure message: quoted, and cut when
// long.
func showID(id string) string {
	const maxBytes = 80
	if len(id) <= maxBytes {
		return fmt.Sprintf("%q", id)
	}
	return fmt.Sprintf("%q... (%d bytes)", id[:maxBytes], len(id))
}
