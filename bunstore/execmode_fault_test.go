package bunstore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"testing"

	"github.com/lakesession/lakesession"
	"github.com/lakesession/lakesession/internal/faultproxy"
	"github.com/lakesession/lakesession/internal/testdb"
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
			dsn := testdb.NewDatabase(t)
			direct := openPool(t, dsn)
			u, err := url.Parse(dsn)
			if err != nil {
				t.Fatal(err)
			}
			p := faultproxy.Start(t, u.Host)
			proxied, err := url.Parse(viaProxy(t, dsn, p))
			if err != nil {
				t.Fatal(err)
			}
			q := proxied.Query()
			q.Set("default_query_exec_mode", mode)
			proxied.RawQuery = q.Encode()
			st := newStore(t, openPool(t, proxied.String()))
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
			_, err = s.PopItem(ctx)
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
