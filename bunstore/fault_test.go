package bunstore_test

// Fault tests on a real PostgreSQL through the real pgx driver: the
// database's own errors, killed backends, connections cut after the
// client's statement went out, a server that refuses connections, restarts
// and turns read-only. They never reconfigure or restart the server other
// packages share: they use a database of their own, a TCP proxy in front
// of it, pg_terminate_backend on their own backends, or a private server
// (internal/pgserver).
//
// What every scenario checks: no call fails whose outcome is known (the
// store retried it), every acknowledged AddItems is stored exactly once,
// and every AddItems error that does not wrap lakesession.ErrOutcomeUnknown
// left nothing stored. Each batch carries a unique marker to count it by.

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/lakesession/lakesession"
	"github.com/lakesession/lakesession/bunstore"
	"github.com/lakesession/lakesession/internal/faultproxy"
	"github.com/lakesession/lakesession/internal/pgserver"
	"github.com/lakesession/lakesession/internal/testdb"
)

// openPool returns a *bun.DB over a plain pgx database/sql pool on dsn,
// sized for the workers of a workload.
func openPool(t testing.TB, dsn string) *bun.DB {
	t.Helper()
	sqldb, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	sqldb.SetMaxOpenConns(20)
	sqldb.SetMaxIdleConns(10)
	t.Cleanup(func() { sqldb.Close() })
	return bun.NewDB(sqldb, pgdialect.New())
}

// markedBatch returns a batch of n items that all carry marker.
func markedBatch(marker string, n int) []json.RawMessage {
	out := make([]json.RawMessage, n)
	for i := range out {
		out[i] = json.RawMessage(fmt.Sprintf(`{"role":"user","marker":%q,"n":%d}`, marker, i))
	}
	return out
}

// storedMarkers returns how many stored items carry each marker.
func storedMarkers(t testing.TB, db bun.IDB) map[string]int {
	t.Helper()
	rows, err := db.QueryContext(context.Background(),
		`SELECT message_data::jsonb->>'marker', count(*) FROM agent_messages GROUP BY 1`)
	if err != nil {
		t.Fatalf("count stored markers: %v", err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var (
			m sql.NullString
			n int
		)
		if err := rows.Scan(&m, &n); err != nil {
			t.Fatal(err)
		}
		out[m.String] = n
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// ledger records what the callers of AddItems were told, by marker. Its
// markers start with its prefix.
type ledger struct {
	prefix  string
	mu      sync.Mutex
	size    map[string]int // items per batch
	acked   map[string]bool
	unknown map[string]error
	failed  map[string]error // errors with a known outcome: nothing stored
}

func newLedger(prefix string) *ledger {
	return &ledger{prefix: prefix, size: map[string]int{}, acked: map[string]bool{}, unknown: map[string]error{}, failed: map[string]error{}}
}

// add calls AddItems with a batch of n items marked marker and records the
// answer.
func (l *ledger) add(ctx context.Context, s *bunstore.Session, marker string, n int) error {
	err := s.AddItems(ctx, markedBatch(marker, n))
	l.mu.Lock()
	defer l.mu.Unlock()
	l.size[marker] = n
	switch {
	case err == nil:
		l.acked[marker] = true
	case errors.Is(err, lakesession.ErrOutcomeUnknown):
		l.unknown[marker] = err
	default:
		l.failed[marker] = err
	}
	return err
}

// check fails t unless every acknowledged batch is stored exactly once,
// every batch whose outcome was unknown is stored once or not at all,
// every batch that failed with a known outcome is not stored, and nothing
// else with the ledger's prefix is stored.
func (l *ledger) check(t testing.TB, db bun.IDB) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	stored := storedMarkers(t, db)
	for m, n := range stored {
		if !strings.HasPrefix(m, l.prefix) {
			continue
		}
		size, ok := l.size[m]
		switch {
		case !ok:
			t.Errorf("marker %q: %d items stored that no AddItems sent", m, n)
		case l.acked[m] && n != size:
			t.Errorf("marker %q: acknowledged batch of %d stored as %d items", m, size, n)
		case l.unknown[m] != nil && n != size:
			t.Errorf("marker %q: batch of %d with an unknown outcome stored as %d items", m, size, n)
		case l.failed[m] != nil:
			t.Errorf("marker %q: %d items stored, but AddItems returned %v, which does not wrap ErrOutcomeUnknown", m, n, l.failed[m])
		}
	}
	for m := range l.acked {
		if stored[m] == 0 {
			t.Errorf("marker %q: acknowledged batch not stored", m)
		}
	}
}

// workload is the load of the resilience scenarios: workers that each loop
// AddItems of 2 items and GetItems(20) on a session of their own.
type workload struct {
	*ledger
	calls    atomic.Int64
	gets     atomic.Int64
	mu       sync.Mutex
	getErrs  []error
	seen     map[string]int // what the callers saw: error text, with counts
	maxCall  time.Duration
	stop     chan struct{}
	wg       sync.WaitGroup
	stopOnce sync.Once
}

// startWorkload starts workers on st; stop them with (*workload).halt.
func startWorkload(st *bunstore.Store, workers int, name string) *workload {
	w := &workload{ledger: newLedger(name + "-"), seen: map[string]int{}, stop: make(chan struct{})}
	for i := range workers {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			s := st.Session(fmt.Sprintf("%s-worker-%d", name, i))
			for n := 0; ; n++ {
				select {
				case <-w.stop:
					return
				default:
				}
				ctx := context.Background()
				start := time.Now()
				err := w.add(ctx, s, fmt.Sprintf("%s-%d-%d", name, i, n), 2)
				w.note(time.Since(start), err)
				w.calls.Add(1)
				start = time.Now()
				_, err = s.GetItems(ctx, 20)
				w.note(time.Since(start), err)
				w.gets.Add(1)
				if err != nil {
					w.mu.Lock()
					w.getErrs = append(w.getErrs, err)
					w.mu.Unlock()
				}
			}
		}()
	}
	return w
}

func (w *workload) note(d time.Duration, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.maxCall = max(w.maxCall, d)
	if err != nil {
		w.seen[err.Error()]++
	}
}

// halt stops the workers and waits for them.
func (w *workload) halt() {
	w.stopOnce.Do(func() { close(w.stop) })
	w.wg.Wait()
}

// verify stops the workload and fails t unless no call with a known outcome
// failed and the ledger holds.
func (w *workload) verify(t testing.TB, db bun.IDB) {
	t.Helper()
	w.halt()
	w.ledger.check(t, db)
	w.mu.Lock()
	defer w.mu.Unlock()
	for m, err := range w.failed {
		t.Errorf("AddItems %s failed with a known outcome: %v", m, err)
	}
	for _, err := range w.getErrs {
		t.Errorf("GetItems failed: %v", err)
	}
	t.Logf("%d AddItems (%d with an unknown outcome), %d GetItems; slowest call %v",
		w.calls.Load(), len(w.unknown), w.gets.Load(), w.maxCall.Round(time.Millisecond))
	for _, s := range w.summary() {
		t.Logf("  caller saw: %s", s)
	}
	if w.calls.Load() == 0 {
		t.Error("the workload made no call")
	}
}

// summary lists the errors the callers saw, most frequent first.
func (w *workload) summary() []string {
	var out []string
	for e, n := range w.seen {
		out = append(out, fmt.Sprintf("%d × %s", n, e))
	}
	sort.Strings(out)
	return out
}

// injectFailures makes the next n statements of kind (INSERT or DELETE) on
// agent_messages fail with the SQLSTATE code, raised by a statement
// trigger: the database's own error, through the real driver. It returns a
// function that reports how many such statements ran.
func injectFailures(t *testing.T, db bun.IDB, kind, code string, n int) (statements func() int) {
	t.Helper()
	return injectFailuresOn(t, db, "agent_messages", kind, code, n)
}

// injectFailuresOn is injectFailures on another table.
func injectFailuresOn(t *testing.T, db bun.IDB, table, kind, code string, n int) (statements func() int) {
	t.Helper()
	ctx := context.Background()
	for _, q := range []string{
		`DROP TRIGGER IF EXISTS inject ON ` + table,
		`DROP SEQUENCE IF EXISTS inject_seq`,
		`CREATE SEQUENCE inject_seq`,
		fmt.Sprintf(`CREATE OR REPLACE FUNCTION inject() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	-- nextval is not rolled back with the statement.
	IF nextval('inject_seq') <= %d THEN
		RAISE EXCEPTION 'injected failure' USING ERRCODE = '%s';
	END IF;
	RETURN NULL;
END $$`, n, code),
		fmt.Sprintf(`CREATE TRIGGER inject BEFORE %s ON %s FOR EACH STATEMENT EXECUTE FUNCTION inject()`, kind, table),
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	return func() int {
		return count(t, db, `SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM inject_seq`)
	}
}

// Each error class that certainly leaves nothing written is retried, with
// the server's real error through pgx, and the batch is stored once; the
// pop removes one item. An error of another class is returned at once and
// leaves nothing stored.
func TestRetriedErrorClassesStoreOnce(t *testing.T) {
	db := openPG(t)
	st := newStore(t, db)
	ctx := context.Background()
	for _, code := range []string{"25006", "40001", "40P01", "57P01", "57P02", "57P03", "57P05"} {
		t.Run(code, func(t *testing.T) {
			id := "class-" + code
			s := st.Session(id)
			l := newLedger(id + "-")
			stmts := injectFailures(t, db, "INSERT", code, 2)
			if err := l.add(ctx, s, id+"-add", 3); err != nil {
				t.Fatalf("AddItems after two %s: %v", code, err)
			}
			if n := stmts(); n != 3 {
				t.Errorf("%d INSERT statements ran; want 3 (two failed, one succeeded)", n)
			}
			l.check(t, db)

			stmts = injectFailures(t, db, "DELETE", code, 2)
			got, err := s.PopItem(ctx)
			if err != nil {
				t.Fatalf("PopItem after two %s: %v", code, err)
			}
			if it := decode(t, got); it.N != 2 {
				t.Errorf("PopItem = %s, want the newest item", got)
			}
			if n := stmts(); n != 3 {
				t.Errorf("%d DELETE statements ran; want 3", n)
			}
			if _, messages := rowCounts(t, db, id); messages != 2 {
				t.Errorf("%d items left after one pop of 3; want 2", messages)
			}
		})
	}
	t.Run("NotRetried", func(t *testing.T) {
		s := st.Session("class-23514")
		l := newLedger("class-23514-")
		stmts := injectFailures(t, db, "INSERT", "23514", 1)
		err := l.add(ctx, s, "class-23514-add", 2)
		if !isCode(err, "23514") || errors.Is(err, lakesession.ErrOutcomeUnknown) {
			t.Fatalf("AddItems: %v; want the 23514 error, with a known outcome", err)
		}
		if n := stmts(); n != 1 {
			t.Errorf("%d INSERT statements ran; want 1", n)
		}
		l.check(t, db)
	})
	if _, err := db.ExecContext(ctx, `DROP TRIGGER IF EXISTS inject ON agent_messages`); err != nil {
		t.Fatal(err)
	}
}

// terminateBackends ends every backend of the database dsn names but the
// caller's own, with pg_terminate_backend, and returns how many it ended.
func terminateBackends(t testing.TB, admin *sql.DB, database string) int {
	t.Helper()
	var n int
	err := admin.QueryRowContext(context.Background(),
		`SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity
		 WHERE datname = $1 AND pid <> pg_backend_pid()`, database).Scan(&n)
	if err != nil {
		t.Fatalf("pg_terminate_backend: %v", err)
	}
	return n
}

// Killed backends (3 × pg_terminate_backend of every backend of the pool)
// cost no call: each statement that met a killed backend is retried on a
// new connection.
func TestTerminatedBackends(t *testing.T) {
	dsn := testdb.NewDatabase(t)
	db := openPool(t, dsn)
	st := newStore(t, db)
	admin, err := sql.Open("pgx", testdb.AdminDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	var database string
	if err := db.QueryRowContext(context.Background(), "SELECT current_database()").Scan(&database); err != nil {
		t.Fatal(err)
	}

	w := startWorkload(st, 8, "terminate")
	killed := 0
	for range 3 {
		time.Sleep(300 * time.Millisecond)
		killed += terminateBackends(t, admin, database)
	}
	time.Sleep(300 * time.Millisecond)
	w.verify(t, db)
	if killed < 3 {
		t.Errorf("only %d backends were terminated; the test did not kill the pool's connections", killed)
	}
	t.Logf("%d backends terminated", killed)
}

// A connection that reaches a server refusing writes (here: a session made
// read-only, as on a demoted primary) is closed after the 25006, and the
// retry runs on a new connection, which can write.
func TestReadOnlyConnectionIsReplaced(t *testing.T) {
	db := openPool(t, testdb.NewDatabase(t))
	db.SetMaxOpenConns(1)
	st := newStore(t, db, bunstore.WithMaxRetryWait(3*time.Second))
	ctx := context.Background()
	var before int
	if err := db.QueryRowContext(ctx, "SELECT pg_backend_pid()").Scan(&before); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, "SET default_transaction_read_only = on"); err != nil {
		t.Fatal(err)
	}
	l := newLedger("read-only-")
	if err := l.add(ctx, st.Session("read-only"), "read-only-1", 2); err != nil {
		t.Fatalf("AddItems: %v; want it retried on a new connection", err)
	}
	l.check(t, db)
	var after int
	if err := db.QueryRowContext(ctx, "SELECT pg_backend_pid()").Scan(&after); err != nil {
		t.Fatal(err)
	}
	if after == before {
		t.Errorf("the read-only connection (backend %d) is still in the pool", before)
	}
}

// viaProxy returns dsn with its host and port replaced by the proxy's, and
// TLS off, so that the proxy sees the protocol's messages.
func viaProxy(t testing.TB, dsn string, p *faultproxy.Proxy) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = p.Addr()
	q := u.Query()
	q.Set("sslmode", "disable")
	u.RawQuery = q.Encode()
	return u.String()
}

// proxiedStore returns a Store on a fresh database of the shared server,
// reached through a fault proxy, and a pool that bypasses the proxy for
// checking what was stored.
func proxiedStore(t *testing.T, opts ...bunstore.Option) (*bunstore.Store, *faultproxy.Proxy, *bun.DB) {
	t.Helper()
	return proxiedStoreInMode(t, "", opts...)
}

// proxiedStoreInMode is proxiedStore with pgx's default_query_exec_mode set
// to mode in the proxied pool's DSN ("" leaves pgx's default).
func proxiedStoreInMode(t *testing.T, mode string, opts ...bunstore.Option) (*bunstore.Store, *faultproxy.Proxy, *bun.DB) {
	t.Helper()
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
	if mode != "" {
		q := proxied.Query()
		q.Set("default_query_exec_mode", mode)
		proxied.RawQuery = q.Encode()
	}
	st := newStore(t, openPool(t, proxied.String()), opts...)
	return st, p, direct
}

// A connection cut right after AddItems' statement went out, before its
// result came back: the batch may be stored, so AddItems does not retry; it
// says the outcome is unknown, and the batch is stored once or not at all,
// never twice. GetItems, after the same cut, retries and succeeds; PopItem
// says its outcome is unknown.
func TestCutAfterStatementSent(t *testing.T) {
	st, p, direct := proxiedStore(t)
	ctx := context.Background()
	s := st.Session("cut")
	l := newLedger("cut-")
	mustAdd(t, s, markedBatch("cut-warm", 1)) // the statement is prepared on the connection
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
		t.Logf("AddItems %s: %v", marker, err)
	}
	waitIdle(t, direct)
	l.check(t, direct)
	if got := storedMarkers(t, direct); got["cut-0"]+got["cut-1"]+got["cut-2"] == 0 {
		t.Log("no cut batch was stored: the server dropped them all before commit")
	}

	// GetItems: cut after its statement (the session id is its argument).
	p.CutAfterClientSends(func(msg []byte) bool {
		return bytes.Contains(msg, []byte("cut")) && !bytes.Contains(msg, []byte("marker"))
	})
	items, err := s.GetItems(ctx, 20)
	if err != nil {
		t.Fatalf("GetItems after a cut: %v; want it retried", err)
	}
	if p.Armed() {
		t.Fatal("GetItems: the cut did not fire")
	}
	if len(items) < 1 {
		t.Fatalf("GetItems = %d items", len(items))
	}

	p.CutAfterClientSends(func(msg []byte) bool {
		return bytes.Contains(msg, []byte("cut")) && !bytes.Contains(msg, []byte("marker"))
	})
	if _, err := s.PopItem(ctx); !errors.Is(err, lakesession.ErrOutcomeUnknown) {
		t.Errorf("PopItem after a cut: %v; want ErrOutcomeUnknown", err)
	}
}

// A server that refuses connections for a second (as while it restarts):
// the calls wait it out, and none fails.
func TestServerDownForASecond(t *testing.T) {
	st, p, direct := proxiedStore(t)
	w := startWorkload(st, 8, "refuse")
	time.Sleep(200 * time.Millisecond)
	dials := p.Accepted()
	p.Refuse(true)
	p.CutAll()
	time.Sleep(time.Second)
	refused := p.Accepted() - dials
	p.Refuse(false)
	time.Sleep(300 * time.Millisecond)
	w.verify(t, direct)
	// Backoff: 8 workers over a second make a few dozen dials, not
	// thousands.
	if refused > 200 {
		t.Errorf("%d dials in the second the server was down; want backoff to bound them", refused)
	}
	t.Logf("%d dials while down", refused)
}

// An outage longer than WithMaxRetryWait fails the call in about that
// time, with a known outcome: nothing stored.
func TestOutageLongerThanTheRetryBudget(t *testing.T) {
	const budget = time.Second
	st, p, direct := proxiedStore(t, bunstore.WithMaxRetryWait(budget))
	l := newLedger("budget-")
	p.Refuse(true)
	p.CutAll()
	start := time.Now()
	err := l.add(context.Background(), st.Session("budget"), "budget-1", 2)
	took := time.Since(start)
	p.Refuse(false)
	if err == nil || errors.Is(err, lakesession.ErrOutcomeUnknown) {
		t.Fatalf("AddItems while the server is down: %v; want a failure with a known outcome", err)
	}
	if !strings.Contains(err.Error(), "attempts in") {
		t.Errorf("AddItems: %q does not say how long it tried", err)
	}
	if took < budget || took > budget+time.Second {
		t.Errorf("AddItems gave up after %v; want about %v", took, budget)
	}
	t.Logf("after %v: %v", took.Round(time.Millisecond), err)
	l.check(t, direct)
}

// A private server restarted with 0.85 s of downtime: open sessions see
// 57P01, new connections are refused, then the server starts up (57P03).
// No call fails.
func TestServerRestart(t *testing.T) {
	srv := pgserver.Start(t)
	db := openPool(t, srv.DSN())
	st := newStore(t, db)
	w := startWorkload(st, 8, "restart")
	time.Sleep(300 * time.Millisecond)
	srv.Stop(t)
	time.Sleep(850 * time.Millisecond)
	srv.Start(t)
	time.Sleep(500 * time.Millisecond)
	w.verify(t, db)
}

// A private server that turns read-only for 3 s, as a primary does when it
// is demoted by a failover: writes meet 25006 and are retried until it
// takes writes again. No call fails.
func TestServerReadOnlyForThreeSeconds(t *testing.T) {
	srv := pgserver.Start(t)
	db := openPool(t, srv.DSN())
	st := newStore(t, db)
	w := startWorkload(st, 8, "readonly")
	time.Sleep(300 * time.Millisecond)
	srv.Exec(t, "ALTER SYSTEM SET default_transaction_read_only = on; SELECT pg_reload_conf()")
	time.Sleep(3 * time.Second)
	srv.Exec(t, "ALTER SYSTEM RESET default_transaction_read_only; SELECT pg_reload_conf()")
	time.Sleep(500 * time.Millisecond)
	w.verify(t, db)
	if len(w.seen) != 0 {
		t.Errorf("callers saw errors: %v", w.summary())
	}
}

// Through PgBouncer in transaction mode, with the connector's
// pgx.QueryExecModeExec, the store works under concurrent load: every call
// succeeds and every batch is stored once.
func TestThroughPgBouncer(t *testing.T) {
	st, direct := pgBouncerStore(t, pgx.QueryExecModeExec)
	w := startWorkload(st, 8, "pgbouncer")
	time.Sleep(time.Second)
	w.verify(t, direct)
	if len(w.seen) != 0 {
		t.Errorf("callers saw errors: %v", w.summary())
	}
}
