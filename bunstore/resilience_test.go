package bunstore_test

import (
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/lakesession/lakesession/bunstore"
	"github.com/lakesession/lakesession/connector"
	"github.com/lakesession/lakesession/internal/faultproxy"
	"github.com/lakesession/lakesession/internal/pgbouncer"
	"github.com/lakesession/lakesession/internal/pgserver"
)

// EnvResilienceTable turns on TestResilienceTable, which measures how many
// calls fail through ordinary database events. It takes about a minute, so
// `make test` does not run it:
//
//	LAKESESSION_RESILIENCE_TABLE=1 go test -run TestResilienceTable -v ./bunstore/
const EnvResilienceTable = "LAKESESSION_RESILIENCE_TABLE"

// resilienceEvent is one event of the table: it happens to a private
// server, in front of which a proxy counts the dials.
type resilienceEvent struct {
	name string
	run  func(t *testing.T, srv *pgserver.Server, admin *sql.DB)
}

var resilienceEvents = []resilienceEvent{
	{"3 × pg_terminate_backend of the pool's backends", func(t *testing.T, srv *pgserver.Server, admin *sql.DB) {
		for range 3 {
			terminateBackends(t, admin, "postgres")
			time.Sleep(500 * time.Millisecond)
		}
	}},
	{"server restart, down 0.85 s", func(t *testing.T, srv *pgserver.Server, _ *sql.DB) {
		srv.Stop(t)
		time.Sleep(850 * time.Millisecond)
		srv.Start(t)
	}},
	{"server down 5 s", func(t *testing.T, srv *pgserver.Server, _ *sql.DB) {
		srv.Stop(t)
		time.Sleep(5 * time.Second)
		srv.Start(t)
	}},
	{"read-only for 3 s (as after a failover)", func(t *testing.T, srv *pgserver.Server, _ *sql.DB) {
		srv.Exec(t, "ALTER SYSTEM SET default_transaction_read_only = on; SELECT pg_reload_conf()")
		time.Sleep(3 * time.Second)
		srv.Exec(t, "ALTER SYSTEM RESET default_transaction_read_only; SELECT pg_reload_conf()")
	}},
}

// TestResilienceTable runs 8 workers looping AddItems of 2 items and
// GetItems(20) through connector.OpenDB and a Store on a private server,
// through each event, with the store's retries on (the default) and off
// (WithMaxRetryWait(0)), and prints the failed calls and what the callers
// saw. It also checks what every scenario test checks: every acknowledged
// batch is stored once, and every failure with a known outcome stored
// nothing.
func TestResilienceTable(t *testing.T) {
	if os.Getenv(EnvResilienceTable) == "" {
		t.Skipf("set %s=1 to measure the resilience table (about a minute)", EnvResilienceTable)
	}
	var rows []string
	for _, ev := range resilienceEvents {
		for _, retries := range []bool{false, true} {
			name := ev.name + map[bool]string{false: " / retries off", true: " / retries on"}[retries]
			t.Run(name, func(t *testing.T) {
				rows = append(rows, measureEvent(t, ev, retries))
			})
		}
	}
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeExec} {
		t.Run(fmt.Sprintf("PgBouncer transaction mode / %v", mode), func(t *testing.T) {
			rows = append(rows, measurePgBouncer(t, mode))
		})
	}
	t.Log("\n| event | store retries | AddItems + GetItems calls | failed calls (outcome known) | outcome unknown | slowest call | dials | what the caller saw |\n| --- | --- | --- | --- | --- | --- | --- | --- |\n" +
		strings.Join(rows, "\n"))
}

func measureEvent(t *testing.T, ev resilienceEvent, retries bool) string {
	srv := pgserver.Start(t)
	p := faultproxy.Start(t, srv.Addr())
	admin, err := sql.Open("pgx", srv.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	c, err := connector.New(connector.Config{DSN: viaProxy(t, srv.DSN(), p)})
	if err != nil {
		t.Fatal(err)
	}
	sqldb := connector.OpenDB(c)
	defer sqldb.Close()
	db := bun.NewDB(sqldb, pgdialect.New())
	var opts []bunstore.Option
	if !retries {
		opts = append(opts, bunstore.WithMaxRetryWait(0))
	}
	st := newStore(t, db, opts...)

	w := startWorkload(st, 8, "table")
	time.Sleep(time.Second)
	dials := p.Accepted()
	start := time.Now()
	ev.run(t, srv, admin)
	took := time.Since(start)
	time.Sleep(2 * time.Second) // recovery
	w.halt()
	dials = p.Accepted() - dials

	check := openPool(t, srv.DSN())
	w.ledger.check(t, check)
	w.mu.Lock()
	defer w.mu.Unlock()
	failed := len(w.failed) + len(w.getErrs)
	calls := w.calls.Load() + w.gets.Load()
	row := fmt.Sprintf("| %s (took %v) | %s | %d | %d | %d | %v | %d | %s |",
		ev.name, took.Round(10*time.Millisecond), map[bool]string{false: "off", true: "on"}[retries],
		calls, failed, len(w.unknown), w.maxCall.Round(time.Millisecond), dials, seenSummary(w.seen))
	t.Log(row)
	return row
}

// measurePgBouncer runs the workload for 3 s through PgBouncer in
// transaction mode, with the connector's query exec mode set to mode.
func measurePgBouncer(t *testing.T, mode pgx.QueryExecMode) string {
	st, db := pgBouncerStore(t, mode)
	w := startWorkload(st, 8, "bouncer")
	time.Sleep(3 * time.Second)
	w.halt()
	w.ledger.check(t, db)
	w.mu.Lock()
	defer w.mu.Unlock()
	row := fmt.Sprintf("| PgBouncer %s, transaction mode, 3 s, query exec mode %v | on | %d | %d | %d | %v | - | %s |",
		pgbouncerVersion(), mode, w.calls.Load()+w.gets.Load(), len(w.failed)+len(w.getErrs), len(w.unknown),
		w.maxCall.Round(time.Millisecond), seenSummary(w.seen))
	t.Log(row)
	return row
}

// pgBouncerStore returns a Store through a private PgBouncer in
// transaction mode (pool of 4 server connections) in front of a private
// server, through the connector with the given query exec mode, and a
// direct pool for checking what was stored.
func pgBouncerStore(t *testing.T, mode pgx.QueryExecMode) (*bunstore.Store, *bun.DB) {
	t.Helper()
	srv := pgserver.Start(t)
	srv.Exec(t, "CREATE ROLE app LOGIN PASSWORD 'app-secret'; GRANT CREATE ON SCHEMA public TO app")
	b := pgbouncer.Start(t, srv.Host(), srv.Port(), pgbouncer.WithPoolSize(4))
	c, err := connector.New(connector.Config{
		DSN:           "postgres://app:app-secret@" + b.Addr() + "/postgres?sslmode=disable",
		QueryExecMode: mode,
	})
	if err != nil {
		t.Fatal(err)
	}
	sqldb := connector.OpenDB(c)
	t.Cleanup(func() { sqldb.Close() })
	st := newStore(t, bun.NewDB(sqldb, pgdialect.New()))
	return st, openPool(t, srv.DSN())
}

func pgbouncerVersion() string {
	out, err := exec.Command(pgbouncer.Bin(), "--version").Output()
	if err != nil {
		return ""
	}
	if f := strings.Fields(string(out)); len(f) >= 2 {
		return f[1]
	}
	return ""
}

var (
	reSession = regexp.MustCompile(`session "[^"]*"`)
	reNumber  = regexp.MustCompile(`SQLSTATE [0-9A-Z]{5}|\b[0-9]+(\.[0-9]+)?(ms|s|µs)?\b`)
	reStmt    = regexp.MustCompile(`stmtcache_[0-9a-f]+`)
	reDB      = regexp.MustCompile("`user=[^`]*`")
)

// seenSummary groups the errors callers saw by their text with numbers and
// session ids blanked, most frequent first.
func seenSummary(seen map[string]int) string {
	groups := map[string]int{}
	for e, n := range seen {
		e = reSession.ReplaceAllString(e, `session "…"`)
		e = reDB.ReplaceAllString(e, "`…`")
		e = reStmt.ReplaceAllString(e, "stmtcache_…")
		e = reNumber.ReplaceAllStringFunc(e, func(m string) string {
			if strings.HasPrefix(m, "SQLSTATE") {
				return m
			}
			return "N"
		})
		groups[e] += n
	}
	type g struct {
		text string
		n    int
	}
	var gs []g
	for e, n := range groups {
		gs = append(gs, g{e, n})
	}
	sort.Slice(gs, func(i, j int) bool { return gs[i].n > gs[j].n })
	var parts []string
	for i, x := range gs {
		if i == 4 {
			parts = append(parts, fmt.Sprintf("and %d other kinds", len(gs)-4))
			break
		}
		parts = append(parts, fmt.Sprintf("%d × %s", x.n, x.text))
	}
	if len(parts) == 0 {
		return "nothing"
	}
	return strings.Join(parts, "; ")
}
