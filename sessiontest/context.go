package sessiontest

import (
	"context"
	"encoding/json"
	"errors"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lakesession/lakesession"
)

// testContext checks that calls honour their context: a done context makes
// every call fail with the context's error, and a cancelled AddItems or
// ClearSession leaves all of its work or none of it.
func (s *suite) testContext(t *testing.T) {
	t.Run("Canceled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		s.checkDoneContext(t, ctx, context.Canceled)
	})
	t.Run("DeadlineExceeded", func(t *testing.T) {
		ctx, cancel := context.WithDeadline(t.Context(), time.Now().Add(-time.Minute))
		defer cancel()
		s.checkDoneContext(t, ctx, context.DeadlineExceeded)
	})
	t.Run("AddItemsCanceledMidway", func(t *testing.T) {
		// The context is cancelled at the k-th time anything asks it whether
		// it is done, so the cancellation lands at a different point of the
		// call each round.
		for k := 1; k <= 16; k++ {
			sess := s.newSession(t, "ctx-add-midway")
			before := items("before", 1, 1)
			add(t, sess, before)
			batch := items("batch", 1, 10)
			ctx, cancel := newCountdownContext(t.Context(), k)
			err := sess.AddItems(ctx, batch)
			cancel()
			s.checkWholeOrNothing(t, sess, "AddItems", k, err, before, concat(before, batch))
		}
	})
	t.Run("AddItemsCanceledWhileRunning", func(t *testing.T) {
		// The context is cancelled by another goroutine while AddItems runs.
		for round := range 8 {
			sess := s.newSession(t, "ctx-add-running")
			batch := items("batch", 1, 100)
			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan error, 1)
			go func() { done <- sess.AddItems(ctx, batch) }()
			for range round * 4 {
				runtime.Gosched()
			}
			cancel()
			err := <-done
			s.checkWholeOrNothing(t, sess, "AddItems", round, err, nil, batch)
		}
	})
	t.Run("ClearSessionCanceledMidway", func(t *testing.T) {
		for k := 1; k <= 8; k++ {
			sess := s.newSession(t, "ctx-clear-midway")
			all := items("a", 1, 6)
			add(t, sess, all[:3])
			add(t, sess, all[3:])
			ctx, cancel := newCountdownContext(t.Context(), k)
			err := sess.ClearSession(ctx)
			cancel()
			s.checkWholeOrNothing(t, sess, "ClearSession", k, err, all, nil)
		}
	})
}

// checkDoneContext checks that every method fails with wantErr when called
// with ctx, which is already done, and that nothing is lost or half-written.
func (s *suite) checkDoneContext(t *testing.T, ctx context.Context, wantErr error) {
	t.Helper()
	sess := s.newSession(t, "ctx-done")
	before := items("before", 1, 2)
	add(t, sess, before)
	check := func(op string, err error) {
		t.Helper()
		if !errors.Is(err, wantErr) {
			t.Errorf("%s with a done context on session %s: error %v, want one matching %v", op, showID(sess.SessionID()), err, wantErr)
		}
	}

	_, err := sess.GetItems(ctx, 0)
	check("GetItems(0)", err)
	_, err = sess.GetItems(ctx, 1)
	check("GetItems(1)", err)

	got, err := sess.PopItem(ctx)
	check("PopItem", err)
	if err != nil && got != nil {
		t.Errorf("PopItem with a done context on session %s returned the item %s with the error %v", showID(sess.SessionID()), short(got), err)
	}
	if diff := diffItems(get(t, sess, 0), before); diff != "" {
		t.Errorf("after PopItem with a done context failed, session %s lost an item: %s", showID(sess.SessionID()), diff)
	}

	batch := items("batch", 1, 3)
	check("AddItems", sess.AddItems(ctx, batch))
	now := get(t, sess, 0)
	if diffItems(now, before) != "" && diffItems(now, concat(before, batch)) != "" {
		t.Errorf("after AddItems(%d items) with a done context, session %s holds part of the batch: %s",
			len(batch), showID(sess.SessionID()), list(now))
	}

	check("ClearSession", sess.ClearSession(ctx))
	if after := get(t, sess, 0); len(after) != 0 && diffItems(after, now) != "" {
		t.Errorf("after ClearSession with a done context, session %s was partly cleared: %s", showID(sess.SessionID()), list(after))
	}

	fresh := s.newSession(t, "ctx-done-new")
	check("AddItems on a new session", fresh.AddItems(ctx, batch))
	if got := get(t, fresh, 0); len(got) != 0 && diffItems(got, batch) != "" {
		t.Errorf("after AddItems(%d items) with a done context, new session %s holds part of the batch: %s",
			len(batch), fresh.SessionID(), list(got))
	}
}

// checkWholeOrNothing checks the session after op ran with a context that was
// cancelled during the call: it holds either before (op did nothing) or after
// (op did all of its work), and after when op reported success.
func (s *suite) checkWholeOrNothing(t *testing.T, sess lakesession.Session, op string, round int, err error, before, after []json.RawMessage) {
	t.Helper()
	got := get(t, sess, 0)
	switch {
	case diffItems(got, after) == "":
	case err == nil:
		t.Fatalf("round %d: %s returned no error but session %s holds %s, want %s",
			round, op, showID(sess.SessionID()), list(got), list(after))
	case diffItems(got, before) == "":
	default:
		t.Fatalf("round %d: %s cancelled midway (error %v) left session %s half done: %s\nwant all of it: %s\nor none of it: %s",
			round, op, err, showID(sess.SessionID()), list(got), list(after), list(before))
	}
}

// countdownContext is a context that cancels itself the n-th time Done or
// Err is called on it: a cancellation at a chosen point of a call, without
// timing.
type countdownContext struct {
	context.Context
	cancel context.CancelFunc
	left   atomic.Int64
}

func newCountdownContext(parent context.Context, n int) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(parent)
	c := &countdownContext{Context: ctx, cancel: cancel}
	c.left.Store(int64(n))
	return c, cancel
}

func (c *countdownContext) tick() {
	if c.left.Add(-1) == 0 {
		c.cancel()
	}
}

func (c *countdownContext) Done() <-chan struct{} {
	c.tick()
	return c.Context.Done()
}

func (c *countdownContext) Err() error {
	c.tick()
	return c.Context.Err()
}
