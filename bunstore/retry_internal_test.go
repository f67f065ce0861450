package bunstore

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/lakesession/lakesession"
)

// The waits between tries double from retryFirstDelay up to retryMaxDelay,
// each drawn between half its step and the step, so that callers who
// failed together spread out.
func TestBackoff(t *testing.T) {
	step := retryFirstDelay
	for i := range 10 {
		wait, next := backoff(step)
		if wait < step/2 || wait > step {
			t.Fatalf("try %d: wait %v outside [%v, %v]", i, wait, step/2, step)
		}
		if want := min(2*step, retryMaxDelay); next != want {
			t.Fatalf("try %d: next step %v, want %v", i, next, want)
		}
		step = next
	}
	if step != retryMaxDelay {
		t.Fatalf("step after 10 tries is %v, want the cap %v", step, retryMaxDelay)
	}
	seen := map[time.Duration]bool{}
	for range 50 {
		w, _ := backoff(retryMaxDelay)
		seen[w] = true
	}
	if len(seen) < 40 {
		t.Errorf("50 waits took %d distinct values; want them drawn at random", len(seen))
	}
}

func TestErrorType(t *testing.T) {
	pg := &pgconn.PgError{Code: "57P01"}
	for _, tc := range []struct {
		err  error
		want string
	}{
		{outcomeUnknown(io.ErrUnexpectedEOF), "lakesession.ErrOutcomeUnknown"},
		{fmt.Errorf("after 3 attempts in 1s: %w", pg), "57P01"},
		{fmt.Errorf("%w: %w", context.DeadlineExceeded, pg), "57P01"},
		{fmt.Errorf("%w: %w", context.DeadlineExceeded, errors.New("x")), "context.DeadlineExceeded"},
		{context.Canceled, "context.Canceled"},
		{driver.ErrBadConn, "driver.ErrBadConn"},
		{fmt.Errorf("read: %w", io.ErrUnexpectedEOF), "io.ErrUnexpectedEOF"},
		{&net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, "*net.OpError"},
		{fmt.Errorf("connector: %w", &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}), "*net.OpError"},
		{fmt.Errorf("a: %w", fmt.Errorf("b: %w", syscall.ECONNRESET)), "syscall.Errno"},
		{errors.New("plain"), "_OTHER"},
		{fmt.Errorf("wrapped: %w", errors.New("plain")), "_OTHER"},
		{fmt.Errorf("item 1 of 2: %w", lakesession.ErrInvalidItem), "lakesession.ErrInvalidItem"},
	} {
		if got := errorType(tc.err); got != tc.want {
			t.Errorf("errorType(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

// Which errors leave a write's outcome unknown although classify takes
// them for "not applied", by how the connections send statements; and
// which errors of a retention batch's COMMIT leave open whether it
// committed.
func TestMaybeSentAndCommitUnanswered(t *testing.T) {
	pg := func(code string) error { return &pgconn.PgError{Severity: "FATAL", Code: code} }
	tests := []struct {
		err                     error
		extended, simple, other bool // maybeSent in each mode
		commitUnanswered        bool
	}{
		{driver.ErrBadConn, false, true, true, true},
		{pg("57P01"), false, true, false, true}, // may come after the commit in the simple protocol
		{pg("57P02"), false, true, false, true},
		{pg("57014"), false, true, false, true},
		{pg("57P03"), false, false, false, false},
		{pg("25006"), false, false, false, false},
		{pg("40001"), false, false, false, false},
		{pg("23505"), false, false, false, false},
		{pg("08P01"), false, false, false, true}, // broken: handled by classify
		{io.ErrUnexpectedEOF, false, false, false, true},
	}
	for _, tt := range tests {
		for _, m := range []struct {
			mode uint32
			want bool
		}{{protoExtended, tt.extended}, {protoSimple, tt.simple}, {protoOther, tt.other}} {
			if got := maybeSent(m.mode, tt.err); got != m.want {
				t.Errorf("maybeSent(mode %d, %v) = %v, want %v", m.mode, tt.err, got, m.want)
			}
		}
		if got := commitUnanswered(tt.err); got != tt.commitUnanswered {
			t.Errorf("commitUnanswered(%v) = %v, want %v", tt.err, got, tt.commitUnanswered)
		}
	}
}
