package connector_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/lakesession/lakesession/connector"
	"github.com/lakesession/lakesession/internal/faultproxy"
	"github.com/lakesession/lakesession/internal/leakcheck"
	"github.com/lakesession/lakesession/internal/pgbouncer"
	"github.com/lakesession/lakesession/internal/pgserver"
	"github.com/lakesession/lakesession/internal/testdb"
	"github.com/lakesession/lakesession/lakebasecred"
	"github.com/lakesession/lakesession/lakebasecred/lakebasetest"
)

// proxied is the test server behind a fault proxy, with a role whose
// password is known, so that errors can be checked for it.
type proxied struct {
	*server
	p        *faultproxy.Proxy
	role     string
	password string
}

func newProxied(t *testing.T) *proxied {
	t.Helper()
	s := newServer(t)
	pw := "pw-" + randomToken(t)
	role := s.newRole(t, pw)
	p := faultproxy.Start(t, faultproxy.HostPort(s.host, s.port))
	return &proxied{server: s, p: p, role: role, password: pw}
}

// connector returns a Connector to the proxy with a static password and the
// given MaxConnectWait, closed when the test ends.
func (x *proxied) connector(t *testing.T, wait time.Duration) *connector.Connector {
	t.Helper()
	c, err := connector.New(connector.Config{
		Host: x.p.Host(), Port: x.p.Port(), User: x.role, Database: x.database,
		Password: x.password, SSLMode: "disable", MaxConnectWait: wait,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func withTimeout(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func backendPID(t *testing.T, ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}) int {
	t.Helper()
	var pid int
	if err := q.QueryRowContext(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatalf("pg_backend_pid: %v", err)
	}
	return pid
}

// An outage shorter than MaxConnectWait costs no failed call: 8 workers, each
// opening a connection per query, wait it out and go on.
func TestOutageShorterThanTheWaitCostsNoFailedCall(t *testing.T) {
	t.Parallel()
	x := newProxied(t)
	db := connector.OpenDB(x.connector(t, 10*time.Second))
	defer db.Close()
	db.SetMaxIdleConns(0) // every query connects

	ctx := withTimeout(t, 60*time.Second)
	var stop atomic.Bool
	var queries, slow atomic.Int64
	errs := make(chan error, 8)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				start := time.Now()
				var one int
				if err := db.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
					errs <- err
					return
				}
				queries.Add(1)
				if time.Since(start) > time.Second {
					slow.Add(1)
				}
			}
		}()
	}
	time.Sleep(200 * time.Millisecond)
	x.p.Refuse(true)
	const outage = 1500 * time.Millisecond
	time.Sleep(outage)
	dials := x.p.Accepted()
	x.p.Refuse(false)
	time.Sleep(300 * time.Millisecond)
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("a query failed during an outage shorter than the wait: %v", err)
	}
	if slow.Load() == 0 {
		t.Error("no query waited out the outage: the outage was not seen")
	}
	t.Logf("%d queries, %d waited out the outage; %d dials in all until it ended", queries.Load(), slow.Load(), dials)
}

// An outage longer than MaxConnectWait fails Connect after about that long,
// not sooner and not much later, with an error that says how long it waited,
// wraps the last cause and shows no password. The caller's context ends the
// wait sooner; a negative MaxConnectWait makes one attempt.
func TestOutageLongerThanTheWaitFails(t *testing.T) {
	x := newProxied(t)
	x.p.Refuse(true)

	t.Run("MaxConnectWait", func(t *testing.T) {
		const wait = time.Second
		c := x.connector(t, wait)
		start := time.Now()
		conn, err := c.Connect(context.Background())
		took := time.Since(start)
		if err == nil {
			conn.Close()
			t.Fatal("Connect through a refusing proxy succeeded")
		}
		if took < wait || took > wait+1500*time.Millisecond {
			t.Errorf("Connect failed after %s, want about %s", took, wait)
		}
		msg := err.Error()
		if !regexp.MustCompile(`could not be reached for 1(\.\d+)?s`).MatchString(msg) || !strings.Contains(msg, "MaxConnectWait 1s") {
			t.Errorf("error = %q, want it to say how long it waited and the setting", msg)
		}
		var ce *pgconn.ConnectError
		if !errors.As(err, &ce) {
			t.Errorf("error = %v, want it to wrap pgx's connect error", err)
		}
		for _, text := range errorTexts(err) {
			mustNotContain(t, "error", text, x.password)
		}
	})

	t.Run("context", func(t *testing.T) {
		c := x.connector(t, 0) // the default wait, 30 s
		start := time.Now()    // before the deadline is set, so that took cannot be below it
		ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
		defer cancel()
		_, err := c.Connect(ctx)
		took := time.Since(start)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Connect = %v, want the context's deadline", err)
		}
		if took < 700*time.Millisecond || took > 2*time.Second {
			t.Errorf("Connect failed after %s, want about 700ms", took)
		}
		if !strings.Contains(err.Error(), "after waiting") {
			t.Errorf("error = %q, want it to say how long it waited", err)
		}
	})

	t.Run("off", func(t *testing.T) {
		// A proxy of its own, so that a probe of the connectors above
		// still in flight after their Close is not counted.
		y := *x
		y.p = faultproxy.Start(t, faultproxy.HostPort(x.host, x.port))
		y.p.Refuse(true)
		c := y.connector(t, -1)
		start := time.Now()
		if _, err := c.Connect(context.Background()); err == nil {
			t.Fatal("Connect through a refusing proxy succeeded")
		}
		if took := time.Since(start); took > time.Second {
			t.Errorf("Connect with the wait off took %s", took)
		}
		if n := y.p.Accepted(); n != 1 {
			t.Errorf("Connect with the wait off dialed %d times, want 1", n)
		}
	})
}

// Dials during an outage stay bounded whatever the number of waiting
// Connects: they share one probe per backoff step, and all connect once the
// server is back.
func TestWaitersShareTheProbes(t *testing.T) {
	x := newProxied(t)
	admin, err := pgx.ParseConfig(testdb.AdminDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{8, 80} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			t.Parallel() // each with a proxy of its own
			p := faultproxy.Start(t, x.p.Target())
			// As the superuser, who logs in without a password on the test
			// server: 80 logins at once cost no SCRAM hashing, which is
			// slow under the race detector.
			u := &url.URL{Scheme: "postgres", User: url.User(admin.User), Host: p.Addr(), Path: "/" + x.database, RawQuery: "sslmode=disable"}
			if admin.Password != "" {
				u.User = url.UserPassword(admin.User, admin.Password)
			}
			c, err := connector.New(connector.Config{DSN: u.String(), MaxConnectWait: 20 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			p.Refuse(true)
			ctx := withTimeout(t, 30*time.Second)
			conns := make(chan driver.Conn, n)
			errs := make(chan error, n)
			for range n {
				go func() {
					conn, err := c.Connect(ctx)
					if err != nil {
						errs <- err
						return
					}
					conns <- conn
				}()
			}
			time.Sleep(400 * time.Millisecond) // every Connect has made its first attempt
			settled := p.Accepted()
			const window = 2 * time.Second
			time.Sleep(window)
			probes := p.Accepted() - settled
			// One probe per backoff step (50 ms doubling, jittered): 2 to 4
			// in these two seconds. Each may count twice: when a login
			// breaks after the dial, pgx dials again to send a cancel
			// request. Without sharing, each waiter would dial that often.
			if probes > 16 {
				t.Errorf("%d waiting Connects made %d dials in %s of outage, want at most 16", n, probes, window)
			}
			if settled > 2*int64(n)+16 {
				t.Errorf("%d Connects made %d dials before settling, want at most one attempt each and a few probes", n, settled)
			}
			p.Refuse(false)
			for range n {
				select {
				case conn := <-conns:
					conn.Close()
				case err := <-errs:
					t.Errorf("a waiting Connect failed after the outage: %v", err)
				case <-ctx.Done():
					t.Fatal("the waiting Connects did not all connect after the outage")
				}
			}
			t.Logf("%d waiters: %d dials before settling, %d in %s of outage, %d in all", n, settled, probes, window, p.Accepted())
		})
	}
}

// A server that answers 57P03 (here: shutting down, while a session ends)
// and then restarts is waited out.
func TestCannotConnectNowIsWaitedOut(t *testing.T) {
	t.Parallel()
	srv := pgserver.Start(t)
	ctx := withTimeout(t, 60*time.Second)
	held, err := pgconn.Connect(ctx, srv.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close(context.Background())
	srv.BeginStop(t)
	// The server now answers new logins with 57P03.
	var pgErr *pgconn.PgError
	for deadline := time.Now().Add(10 * time.Second); ; {
		c, err := pgconn.Connect(ctx, srv.DSN())
		if err == nil {
			c.Close(ctx)
		}
		if errors.As(err, &pgErr) && pgErr.Code == "57P03" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("connect during a smart shutdown: %v, want 57P03", err)
		}
		time.Sleep(10 * time.Millisecond)
	}

	c, err := connector.New(connector.Config{DSN: srv.DSN(), MaxConnectWait: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		conn, err := c.Connect(ctx)
		if err == nil {
			conn.Close()
		}
		done <- err
	}()
	time.Sleep(time.Second) // the Connect meets 57P03 meanwhile
	select {
	case err := <-done:
		t.Fatalf("Connect returned during the 57P03 answers, after %s: %v", time.Since(start), err)
	default:
	}
	held.Close(ctx) // the last session ends: the server exits
	srv.Start(t)
	if err := <-done; err != nil {
		t.Fatalf("Connect across 57P03 and a restart: %v", err)
	}
	t.Logf("Connect waited %s across 57P03 and a restart", time.Since(start))
}

// Connections whose backends were terminated are discarded, not handed out:
// the next calls run on fresh connections, without an error.
func TestTerminatedBackendsAreDiscarded(t *testing.T) {
	t.Parallel()
	x := newProxied(t)
	db := connector.OpenDB(x.connector(t, 0))
	defer db.Close()
	ctx := withTimeout(t, 30*time.Second)

	// Four connections in the pool.
	old := map[int]bool{}
	var conns []*sql.Conn
	for range 4 {
		conn, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, conn)
		old[backendPID(t, ctx, conn)] = true
	}
	for _, conn := range conns {
		conn.Close()
	}
	for round := range 2 {
		var killed int
		if err := x.admin.QueryRowContext(ctx, "SELECT count(pg_terminate_backend(pid, 5000)) FROM pg_stat_activity WHERE usename = $1", x.role).Scan(&killed); err != nil {
			t.Fatal(err)
		}
		if round == 0 && killed != 4 {
			t.Fatalf("terminated %d backends, want 4", killed)
		}
		for i := range 8 {
			pid := backendPID(t, ctx, db)
			if old[pid] {
				t.Fatalf("round %d, call %d ran on terminated backend %d", round, i, pid)
			}
		}
		// Also when the connections are taken all at once.
		var wg sync.WaitGroup
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var pid int
				if err := db.QueryRowContext(ctx, "SELECT pg_backend_pid() FROM pg_sleep(0.05)").Scan(&pid); err != nil {
					t.Errorf("round %d: a call after the backends were terminated failed: %v", round, err)
				}
			}()
		}
		wg.Wait()
		rows, err := x.admin.QueryContext(ctx, "SELECT pid FROM pg_stat_activity WHERE usename = $1", x.role)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var pid int
			rows.Scan(&pid)
			old[pid] = true
		}
		rows.Close()
	}
}

// A connection that got 25006 (read-only transaction: after a failover it
// reached a standby) is discarded, so that the pool does not keep failing
// on it once the server takes writes again.
func TestReadOnlyConnectionIsDiscarded(t *testing.T) {
	t.Parallel()
	srv := pgserver.Start(t)
	srv.Exec(t, "CREATE TABLE t (v int)")
	c, err := connector.New(connector.Config{DSN: srv.DSN()})
	if err != nil {
		t.Fatal(err)
	}
	db := connector.OpenDB(c)
	defer db.Close()
	db.SetMaxOpenConns(1) // one connection: only a discarded one is replaced
	ctx := withTimeout(t, 30*time.Second)
	before := backendPID(t, ctx, db)

	srv.Exec(t, "ALTER SYSTEM SET default_transaction_read_only = on; SELECT pg_reload_conf()")
	var pgErr *pgconn.PgError
	for i := 0; ; i++ {
		_, err := db.ExecContext(ctx, "INSERT INTO t VALUES ($1)", i)
		if err == nil {
			if i > 50 {
				t.Fatal("the server never became read-only")
			}
			time.Sleep(20 * time.Millisecond) // the reload reaches the backend between statements
			continue
		}
		if !errors.As(err, &pgErr) || pgErr.Code != "25006" {
			t.Fatalf("INSERT on a read-only server: %v, want 25006", err)
		}
		break
	}
	after := backendPID(t, ctx, db)
	if after == before {
		t.Fatalf("the connection that got 25006 (backend %d) was handed out again", before)
	}

	srv.Exec(t, "ALTER SYSTEM RESET default_transaction_read_only; SELECT pg_reload_conf()")
	if _, err := db.ExecContext(ctx, "INSERT INTO t VALUES (-1)"); err != nil {
		// The connection opened while read-only may still be read-only until
		// its next statement, and is then discarded too.
		if _, err := db.ExecContext(ctx, "INSERT INTO t VALUES (-1)"); err != nil {
			t.Fatalf("INSERT after the server takes writes again: %v", err)
		}
	}
}

// PgBouncer in transaction mode in front of the server, with Lakebase tokens
// over TLS to the pooler: WithPooledHost connects to the endpoint's pooled
// host with pgx.QueryExecModeExec, and concurrent queries with arguments
// work. With pgx's default mode they fail as before (42P05, a prepared
// statement of another client on the same server connection).
func TestPgBouncerTransactionMode(t *testing.T) {
	t.Parallel()
	srv := pgserver.Start(t, pgserver.WithTLS())
	b := pgbouncer.Start(t, srv.Host(), srv.Port(), pgbouncer.WithClientTLS(srv.CertPath(), srv.KeyPath()), pgbouncer.WithPoolSize(2))
	role := "agent-" + randomToken(t)[:12] + "@example.com"
	srv.Exec(t, fmt.Sprintf("CREATE ROLE %s LOGIN; CREATE TABLE items (id int, v text); GRANT ALL ON items TO %s", quoteIdent(role), quoteIdent(role)))

	fake := lakebasetest.NewServer(t)
	fake.SetUserName(role)
	const endpoint = "projects/p/branches/main/endpoints/rw"
	// The host does not resolve: only the pooled host can be reached.
	fake.AddEndpoint(lakebasetest.Endpoint{Name: endpoint, Host: "direct.invalid", PooledHost: "127.0.0.1"})
	fake.OnMint(func(m lakebasetest.Mint) error {
		srv.Exec(t, m.AlterRoleSQL())
		return nil
	})
	src, err := lakebasecred.New(context.Background(), fake.WorkspaceClient(), lakebasecred.Target{Endpoint: endpoint},
		lakebasecred.WithDatabase("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if src.PooledHost() != "127.0.0.1" {
		t.Fatalf("PooledHost = %q", src.PooledHost())
	}
	ctx := withTimeout(t, 60*time.Second)

	run := func(t *testing.T, opts ...connector.Option) []error {
		opts = append([]connector.Option{
			connector.WithPooledHost(), connector.WithPort(b.Port()),
			connector.WithSSLMode("verify-full"), connector.WithSSLRootCert(srv.RootCertPath()),
		}, opts...)
		c, err := connector.ForLakebase(src, opts...)
		if err != nil {
			t.Fatal(err)
		}
		db := connector.OpenDB(c)
		defer db.Close()
		var mu sync.Mutex
		var errs []error
		var wg sync.WaitGroup
		for w := range 6 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 15 {
					var n int
					err := db.QueryRowContext(ctx, "SELECT count(*) FROM items WHERE id >= $1", i).Scan(&n)
					if err == nil {
						_, err = db.ExecContext(ctx, "INSERT INTO items VALUES ($1, $2)", w*100+i, "x")
					}
					if err != nil {
						mu.Lock()
						errs = append(errs, err)
						mu.Unlock()
					}
				}
			}()
		}
		wg.Wait()
		return errs
	}

	t.Run("exec mode", func(t *testing.T) {
		if errs := run(t); len(errs) > 0 {
			t.Fatalf("%d calls failed through the pooler with WithPooledHost, the first: %v", len(errs), errs[0])
		}
	})
	t.Run("default mode fails", func(t *testing.T) {
		errs := run(t, connector.WithQueryExecMode(pgx.QueryExecModeCacheStatement))
		var pgErr *pgconn.PgError
		found := false
		for _, err := range errs {
			if errors.As(err, &pgErr) && pgErr.Code == "42P05" {
				found = true
			}
		}
		if !found {
			t.Fatalf("with pgx's default exec mode through a transaction pooler: %d errors (%v), want 42P05 among them", len(errs), errs)
		}
	})

	// A source without a pooled host: a clear configuration error.
	fake.AddEndpoint(lakebasetest.Endpoint{Name: "projects/p/branches/main/endpoints/plain", Host: "127.0.0.1"})
	plain, err := lakebasecred.New(context.Background(), fake.WorkspaceClient(), lakebasecred.Target{Endpoint: "projects/p/branches/main/endpoints/plain"})
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	var ce *connector.ConfigError
	if _, err := connector.ForLakebase(plain, connector.WithPooledHost()); !errors.As(err, &ce) || !strings.Contains(err.Error(), "pooled host") {
		t.Errorf("ForLakebase with WithPooledHost on a source without one = %v, want a ConfigError about the pooled host", err)
	}
}

// Close ends the Connects waiting out an outage at once, with ErrClosed, and
// stops the probing. Not parallel: its look for probing goroutines would
// see those of other tests' outages.
func TestCloseEndsTheWait(t *testing.T) {
	x := newProxied(t)
	x.p.Refuse(true)
	c := x.connector(t, 30*time.Second)
	errs := make(chan error, 3)
	for range 3 {
		go func() {
			_, err := c.Connect(context.Background())
			errs <- err
		}()
	}
	time.Sleep(300 * time.Millisecond)
	start := time.Now()
	c.Close()
	for range 3 {
		select {
		case err := <-errs:
			if !errors.Is(err, connector.ErrClosed) {
				t.Errorf("a waiting Connect after Close = %v, want ErrClosed", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("a waiting Connect did not return after Close")
		}
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("the waits ended %s after Close", took)
	}
	if s := leakcheck.Stacks(2*time.Second, "connector.(*prober)"); s != "" {
		t.Fatalf("the probing goes on after Close:\n%s", s)
	}
}

func TestQueryExecModeConfig(t *testing.T) {
	t.Parallel()
	base := connector.Config{Host: "h", User: "u", Database: "d", Tokens: &fakeSource{}}
	cfg := base
	cfg.QueryExecMode = pgx.QueryExecModeExec
	c, err := connector.New(cfg)
	if err != nil {
		t.Fatalf("QueryExecModeExec with a token source: %v", err)
	}
	if !strings.Contains(c.String(), "query_exec_mode=exec") {
		t.Errorf("String() = %s, want query_exec_mode=exec", c)
	}
	if !strings.Contains(cfg.String(), "QueryExecMode:exec") {
		t.Errorf("Config.String() = %s", cfg)
	}
	cfg.QueryExecMode = 42
	var ce *connector.ConfigError
	if _, err := connector.New(cfg); !errors.As(err, &ce) || !strings.Contains(err.Error(), "QueryExecMode 42") {
		t.Errorf("QueryExecMode 42: %v, want a ConfigError naming it", err)
	}
}

// A healthy connection is reused, over TLS and without it: the checks before
// a connection is handed out find nothing to discard.
func TestHealthyConnectionsAreReused(t *testing.T) {
	t.Parallel()
	s := tlsServer(t)
	tok := randomToken(t)
	role := s.newRole(t, tok)
	plain := newProxied(t)
	for name, cfg := range map[string]connector.Config{
		"tls":       s.tokenConfig(role, &fakeSource{tok: tok}),
		"plaintext": {Host: plain.p.Host(), Port: plain.p.Port(), User: plain.role, Database: plain.database, Password: plain.password, SSLMode: "disable"},
	} {
		t.Run(name, func(t *testing.T) {
			db, _ := openDB(t, cfg)
			db.SetMaxOpenConns(1)
			ctx := withTimeout(t, 30*time.Second)
			first := backendPID(t, ctx, db)
			for i := range 30 {
				if i == 15 {
					time.Sleep(1100 * time.Millisecond) // idle long enough for pgx's ping
				}
				if pid := backendPID(t, ctx, db); pid != first {
					t.Fatalf("call %d ran on backend %d, not %d: a healthy connection was discarded", i, pid, first)
				}
			}
		})
	}
}
