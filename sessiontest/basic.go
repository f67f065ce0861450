package sessiontest

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/lakesession/lakesession"
)

// testSessionID checks that SessionID returns the id the handle was opened
// with, also for ids that are not valid.
func (s *suite) testSessionID(t *testing.T) {
	ids := []string{
		s.newID("plain"),
		s.newID("unicode-会话-🧠-جلسة"),
		"",
		strings.Repeat("x", lakesession.MaxSessionIDLen+1),
		"bad-utf8-\xff",
		"nul-\x00-inside",
	}
	for _, id := range ids {
		var sess lakesession.Session
		if lakesession.ValidateSessionID(id) == nil {
			sess = s.openSession(t, id)
		} else {
			sess = s.open(t, id)
			if sess == nil {
				t.Fatalf("open(t, %s) returned nil; for an invalid id it must return a handle whose methods report ErrInvalidSessionID", showID(id))
			}
		}
		if got := sess.SessionID(); got != id {
			t.Errorf("SessionID() = %s, want %s, the id the handle was opened with", showID(got), showID(id))
		}
	}
}

// testUnknownSession checks that a session never written to reads as empty.
func (s *suite) testUnknownSession(t *testing.T) {
	sess := s.newSession(t, "unknown")
	wantItems(t, sess, 0, nil)
	wantItems(t, sess, 3, nil)
	wantPop(t, sess, nil)
	clearSession(t, sess)
	wantItems(t, sess, 0, nil)
}

// testOrder checks that items come back oldest first: batches in the order
// they were added and, within a batch, in the caller's order.
func (s *suite) testOrder(t *testing.T) {
	t.Run("WithinBatch", func(t *testing.T) {
		sess := s.newSession(t, "order-batch")
		batch := items("a", 1, 10)
		add(t, sess, batch)
		wantItems(t, sess, 0, batch)
	})
	t.Run("AcrossBatches", func(t *testing.T) {
		sess := s.newSession(t, "order-batches")
		var all []json.RawMessage
		n := 1
		for _, size := range []int{1, 3, 2, 1, 4, 1} {
			batch := items("a", n, size)
			n += size
			add(t, sess, batch)
			all = append(all, batch...)
			wantItems(t, sess, 0, all)
		}
	})
	t.Run("LargeBatch", func(t *testing.T) {
		// The items of one batch are usually stored with one timestamp; only
		// a tie-breaker keeps them in the caller's order. n is also more
		// than 999 bind parameters' worth of rows, an old SQLite limit.
		const n = 2000
		sess := s.newSession(t, "order-large")
		batch := make([]json.RawMessage, n)
		for i := range batch {
			batch[i] = json.RawMessage(`{"n":` + strconv.Itoa(i) + `}`)
		}
		add(t, sess, batch)
		wantItems(t, sess, 0, batch)
		wantItems(t, sess, 20, batch[n-20:])
		wantPop(t, sess, batch[n-1])
		more := items("b", 1, 3)
		add(t, sess, more)
		wantItems(t, sess, 5, concat(batch[n-3:n-1], more))
	})
}

// testLimit checks GetItems' limit: <= 0 means all, N the latest N (oldest
// first), more than there are means all.
func (s *suite) testLimit(t *testing.T) {
	sess := s.newSession(t, "limit")
	all := items("a", 1, 7)
	add(t, sess, all[:3])
	add(t, sess, all[3:])

	cases := []struct {
		name  string
		limit int
		want  []json.RawMessage
	}{
		{"Zero", 0, all},
		{"Negative", -1, all},
		{"MinInt", math.MinInt, all},
		{"One", 1, all[6:]},
		{"LatestThree", 3, all[4:]},
		{"LatestFiveAcrossBatches", 5, all[2:]},
		{"EqualToCount", 7, all},
		{"MoreThanCount", 8, all},
		{"MaxInt", math.MaxInt, all},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			wantItems(t, sess, c.limit, c.want)
		})
	}
	t.Run("AfterPopItem", func(t *testing.T) {
		wantPop(t, sess, all[6])
		wantItems(t, sess, 3, all[3:6])
		wantItems(t, sess, 0, all[:6])
	})
}

// testEmptyAddItems checks that AddItems with no items is a no-op.
func (s *suite) testEmptyAddItems(t *testing.T) {
	t.Run("NewSession", func(t *testing.T) {
		sess := s.newSession(t, "empty-new")
		add(t, sess, nil)
		add(t, sess, []json.RawMessage{})
		wantItems(t, sess, 0, nil)
		wantPop(t, sess, nil)
	})
	t.Run("ExistingSession", func(t *testing.T) {
		sess := s.newSession(t, "empty-existing")
		first := items("a", 1, 2)
		add(t, sess, first)
		add(t, sess, nil)
		add(t, sess, []json.RawMessage{})
		wantItems(t, sess, 0, first)
		next := items("a", 3, 1)
		add(t, sess, next)
		wantItems(t, sess, 0, concat(first, next))
	})
}

// testPopItem checks that PopItem removes and returns the newest item, and
// returns (nil, nil) on an empty session.
func (s *suite) testPopItem(t *testing.T) {
	t.Run("Newest", func(t *testing.T) {
		sess := s.newSession(t, "pop-newest")
		all := items("a", 1, 3)
		add(t, sess, all[:2])
		add(t, sess, all[2:])
		for i := len(all) - 1; i >= 0; i-- {
			wantPop(t, sess, all[i])
			wantItems(t, sess, 0, all[:i])
			if i > 0 {
				wantItems(t, sess, 1, all[i-1:i])
			}
		}
		wantPop(t, sess, nil)
		wantItems(t, sess, 0, nil)
	})
	t.Run("EmptySession", func(t *testing.T) {
		sess := s.newSession(t, "pop-empty")
		wantPop(t, sess, nil)
		wantPop(t, sess, nil)
		wantItems(t, sess, 0, nil)
	})
	t.Run("ReuseAfterEmpty", func(t *testing.T) {
		sess := s.newSession(t, "pop-reuse")
		a := items("a", 1, 1)
		add(t, sess, a)
		wantPop(t, sess, a[0])
		wantPop(t, sess, nil)
		b := items("b", 1, 3)
		add(t, sess, b)
		wantItems(t, sess, 0, b)
		wantPop(t, sess, b[2])
		c := items("c", 1, 1)
		add(t, sess, c)
		wantPop(t, sess, c[0])
		wantItems(t, sess, 0, b[:2])
	})
}

// testClearSession checks that ClearSession removes everything, that the
// session can be used again, and that clearing an unknown session is fine.
func (s *suite) testClearSession(t *testing.T) {
	t.Run("RemovesAll", func(t *testing.T) {
		sess := s.newSession(t, "clear-all")
		add(t, sess, items("a", 1, 2))
		add(t, sess, items("a", 3, 3))
		clearSession(t, sess)
		wantItems(t, sess, 0, nil)
		wantItems(t, sess, 2, nil)
		wantPop(t, sess, nil)
	})
	t.Run("ReuseAfterClear", func(t *testing.T) {
		sess := s.newSession(t, "clear-reuse")
		add(t, sess, items("a", 1, 3))
		clearSession(t, sess)
		b := items("b", 1, 2)
		add(t, sess, b)
		wantItems(t, sess, 0, b)
		wantItems(t, sess, 1, b[1:])
		wantPop(t, sess, b[1])
		wantItems(t, sess, 0, b[:1])
	})
	t.Run("UnknownSession", func(t *testing.T) {
		sess := s.newSession(t, "clear-unknown")
		clearSession(t, sess)
		wantItems(t, sess, 0, nil)
	})
	t.Run("Twice", func(t *testing.T) {
		sess := s.newSession(t, "clear-twice")
		add(t, sess, items("a", 1, 1))
		clearSession(t, sess)
		clearSession(t, sess)
		wantItems(t, sess, 0, nil)
	})
}

// testTwoHandles checks that two handles opened with one id share the
// stored session.
func (s *suite) testTwoHandles(t *testing.T) {
	id := s.newID("two-handles")
	h1 := s.openSession(t, id)
	h2 := s.openSession(t, id)
	a := items("a", 1, 2)
	add(t, h1, a)
	wantItems(t, h2, 0, a)
	b := items("b", 1, 2)
	add(t, h2, b)
	wantItems(t, h1, 0, concat(a, b))
	wantPop(t, h2, b[1])
	wantItems(t, h1, 0, concat(a, b[:1]))
	clearSession(t, h1)
	wantItems(t, h2, 0, nil)
	wantPop(t, h2, nil)
}

// testIsolation checks that adding to, popping from and clearing one session
// leaves every other session as it was, also sessions whose ids differ only
// in case, white space, a LIKE wildcard, a prefix or Unicode normalization.
func (s *suite) testIsolation(t *testing.T) {
	t.Run("AddPopClear", func(t *testing.T) {
		sessions := []lakesession.Session{
			s.newSession(t, "iso-a"),
			s.newSession(t, "iso-b"),
			s.newSession(t, "iso-c"),
		}
		s.checkIsolation(t, sessions)
	})
	t.Run("SimilarIDs", func(t *testing.T) {
		base := s.newID("iso-similar-")
		var sessions []lakesession.Session
		for _, suffix := range []string{
			"abc", "ABC", "Abc", "abc ", " abc", "ab", "ab%", "ab_", "a%c", "ab\\c",
			"caf\u00e9", "cafe\u0301", // the same word in Unicode NFC and NFD
		} {
			sessions = append(sessions, s.openSession(t, base+suffix))
		}
		s.checkIsolation(t, sessions)
	})
}

// checkIsolation adds two items to each session, then pops from each in
// turn, then clears each in turn, checking every session after each step.
func (s *suite) checkIsolation(t *testing.T, sessions []lakesession.Session) {
	t.Helper()
	want := make([][]json.RawMessage, len(sessions))
	checkAll := func(step string) {
		t.Helper()
		for i, sess := range sessions {
			got := get(t, sess, 0)
			if diff := diffItems(got, want[i]); diff != "" {
				t.Fatalf("after %s: GetItems(0) on session %s: %s", step, showID(sess.SessionID()), diff)
			}
		}
	}
	for i, sess := range sessions {
		want[i] = items("session-"+strconv.Itoa(i), 1, 2)
		add(t, sess, want[i][:1])
	}
	for i, sess := range sessions {
		add(t, sess, want[i][1:])
	}
	checkAll("adding two items to each session")
	for i, sess := range sessions {
		wantPop(t, sess, want[i][1])
		want[i] = want[i][:1]
		checkAll("PopItem on session " + strconv.Quote(sess.SessionID()))
	}
	for i, sess := range sessions {
		clearSession(t, sess)
		want[i] = nil
		checkAll("ClearSession on session " + strconv.Quote(sess.SessionID()))
	}
}

// testOwnership checks that a store keeps its own copy of what it is given
// and hands out copies of what it stores.
func (s *suite) testOwnership(t *testing.T) {
	t.Run("AddItemsCopiesInput", func(t *testing.T) {
		sess := s.newSession(t, "own-input")
		want := items("a", 1, 2)
		batch := []json.RawMessage{clone(want[0]), clone(want[1])}
		add(t, sess, batch)
		for i := range batch[0] {
			batch[0][i] = ' '
		}
		batch[1] = json.RawMessage(`{"replaced":true}`)
		wantItems(t, sess, 0, want)
	})
	t.Run("GetItemsReturnsCopies", func(t *testing.T) {
		sess := s.newSession(t, "own-output")
		want := items("a", 1, 2)
		add(t, sess, want)
		got := get(t, sess, 0)
		for _, it := range got {
			for i := range it {
				it[i] = ' '
			}
		}
		wantItems(t, sess, 0, want)
	})
}

func clone(b []byte) []byte { return append([]byte(nil), b...) }
