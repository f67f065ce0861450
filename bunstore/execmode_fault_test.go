package bunstore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/lakesession/lakesession"
	"github.com/lakesession/lakesession/internal/faultproxy"
)

// A connection cut right after a write was sent, in every query exec mode
// pgx has. In the simple protocol, pgx v5 reports such a cut as "conn
// closed", which it marks safe to retry, and its database/sql driver turns
// into driver.ErrBadConn, the error for "nothing was sent": taken at its
// word, the store would run the batch again and store it twice. Whatever the
// mode, AddItems and PopItem must say that their outcome is unknown, and a
// batch must be stored once or not at all.
func TestCutAfterWriteSentEveryExecMode(t *testing.T) {
	for _, mode := range []string{"cache_statement", "cache_describe", "describe_exec", "exec", "simple_protocol"} {
		t.Run(mode, func(t *testing.T) {
			st, p, direct := proxiedStoreInMode(t, mode)
			ctx := context.Background()
			s := st.Session("cut-" + mode)
			l := newLedger("cut-")
			mustAdd(t, s, markedBatch("cut-warm", 1)) // the session exists; in cached modes the statement is prepared
			l.size["cut-warm"], l.acked["cut-warm"] = 1, true

			for i := range 3 {
				marker := fmt.Sprintf("cut-%d", i)
				p.CutAfterClientSends(func(msg []byte) bool { return bytes.Contains(msg, []byte(marker)) })
				err := l.add(ctx, s, marker, 2)
				if p.Armed() {
					t.Fatalf("AddItems %s: the cut did not fire (%v)", marker, err)
				}
				if !errors.Is(err, lakesession.ErrOutcomeUnknown) {
					t.Errorf("AddItems %s after the cut: %v; want an error wrapping ErrOutcomeUnknown", marker, err)
				}
			}
			waitIdle(t, direct)
			l.check(t, direct)

			// PopItem: its only argument is the session id.
			check := newStore(t, direct).Session("cut-" + mode)
			before := len(mustGet(t, check, 0))
			p.CutAfterClientSends(func(msg []byte) bool {
				return bytes.Contains(msg, []byte("cut-"+mode)) && !bytes.Contains(msg, []byte("marker"))
			})
			_, err := s.PopItem(ctx)
			if p.Armed() {
				t.Fatalf("PopItem: the cut did not fire (%v)", err)
			}
			if !errors.Is(err, lakesession.ErrOutcomeUnknown) {
				t.Errorf("PopItem after the cut: %v; want an error wrapping ErrOutcomeUnknown", err)
			}
			waitIdle(t, direct)
			if after := len(mustGet(t, check, 0)); after < before-1 {
				t.Errorf("one PopItem removed %d items", before-after)
			}
		})
	}
}

// In the simple protocol PostgreSQL commits a statement and sends its
// CommandComplete before it services a termination or a cancel that came
// in while the commit held them off (when it writes the statement's
// duration to its log): the client gets FATAL 57P01, or 57014, for a
// statement that committed. The proxy answers so after the server
// committed. An error response is no proof that nothing was stored there:
// taken at its word, the store would run the batch again and store it
// twice, or pop a second item. AddItems and PopItem must say that their
// outcome is unknown, and the batch is stored once.
func TestErrorAfterCommitSimpleProtocol(t *testing.T) {
	st, p, direct := proxiedStoreInMode(t, "simple_protocol")
	ctx := context.Background()
	s := st.Session("after-commit")
	check := newStore(t, direct).Session("after-commit")
	mustAdd(t, s, markedBatch("after-commit-warm", 3))

	for _, e := range []struct{ severity, code, message string }{
		{"FATAL", "57P01", "terminating connection due to administrator command"},
		{"ERROR", "57014", "canceling statement due to user request"},
	} {
		marker := "after-commit-" + e.code
		p.FailAfterCommandComplete(func(msg []byte) bool { return bytes.Contains(msg, []byte(marker)) },
			faultproxy.ErrorResponse(e.severity, e.code, e.message))
		err := s.AddItems(ctx, markedBatch(marker, 2))
		if p.Armed() {
			t.Fatalf("AddItems %s: the fault did not fire (%v)", e.code, err)
		}
		if !errors.Is(err, lakesession.ErrOutcomeUnknown) {
			t.Errorf("AddItems answered %s after it committed: %v; want an error wrapping ErrOutcomeUnknown", e.code, err)
		}
		if n := storedMarkers(t, direct)[marker]; n != 2 {
			t.Errorf("AddItems answered %s after it committed: its batch of 2 is stored as %d items", e.code, n)
		}

		before := len(mustGet(t, check, 0))
		p.FailAfterCommandComplete(func(msg []byte) bool {
			return bytes.Contains(msg, []byte("DELETE")) && bytes.Contains(msg, []byte("after-commit"))
		}, faultproxy.ErrorResponse(e.severity, e.code, e.message))
		_, err = s.PopItem(ctx)
		if p.Armed() {
			t.Fatalf("PopItem %s: the fault did not fire (%v)", e.code, err)
		}
		if !errors.Is(err, lakesession.ErrOutcomeUnknown) {
			t.Errorf("PopItem answered %s after it committed: %v; want an error wrapping ErrOutcomeUnknown", e.code, err)
		}
		if after := len(mustGet(t, check, 0)); after != before-1 {
			t.Errorf("one PopItem answered %s after it committed removed %d items, want 1", e.code, before-after)
		}
	}
}
