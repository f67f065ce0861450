package connector_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lakesession/lakesession/connector"
	"github.com/lakesession/lakesession/lakebasecred"
	"github.com/lakesession/lakesession/lakebasecred/lakebasetest"
)

// lakebase is a fake Lakebase: a fake control plane whose minted tokens
// become the password of a real role on the test server, a Source on it,
// and a Connector from ForLakebase.
type lakebase struct {
	*server
	fake *lakebasetest.Server
	src  *lakebasecred.Source
	role string
	conn *connector.Connector
	logs *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func newLakebase(t testing.TB, lifetime time.Duration, opts ...connector.Option) *lakebase {
	t.Helper()
	return newLakebaseWith(t, lifetime, nil, opts...)
}

// newLakebaseWith is newLakebase with options for the Source too.
func newLakebaseWith(t testing.TB, lifetime time.Duration, srcOpts []lakebasecred.Option, opts ...connector.Option) *lakebase {
	t.Helper()
	s := tlsServer(t)
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	// Lakebase roles are named after workspace users.
	role := "agent-" + hex.EncodeToString(b[:]) + "@example.com"
	s.createRole(t, role, "")

	fake := lakebasetest.NewServer(t)
	fake.SetUserName(role)
	fake.SetTokenLifetime(lifetime)
	fake.AddInstance(lakebasetest.Instance{Name: "agents-db", ReadWriteDNS: s.host})
	fake.OnMint(func(m lakebasetest.Mint) error {
		_, err := s.admin.Exec(m.AlterRoleSQL())
		return err
	})

	logs := &syncBuffer{}
	ctx := context.Background()
	src, err := lakebasecred.New(ctx, fake.WorkspaceClient(), lakebasecred.Target{Instance: "agents-db"},
		append([]lakebasecred.Option{
			lakebasecred.WithDatabase(s.database),
			lakebasecred.WithLogger(slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))),
		}, srcOpts...)...,
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })

	opts = append([]connector.Option{
		connector.WithPort(s.port),
		connector.WithSSLMode("verify-full"),
		connector.WithSSLRootCert(s.rootCert),
	}, opts...)
	c, err := connector.ForLakebase(src, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return &lakebase{server: s, fake: fake, src: src, role: role, conn: c, logs: logs}
}

func (l *lakebase) openDB(t testing.TB) *sql.DB {
	db := connector.OpenDB(l.conn)
	t.Cleanup(func() { db.Close() })
	return db
}

// checkNoTokenLeaked fails t when a minted token shows in the logs or in
// one of errs.
func (l *lakebase) checkNoTokenLeaked(t *testing.T, errs ...error) {
	t.Helper()
	var toks []string
	for _, m := range l.fake.Mints() {
		toks = append(toks, m.Token)
	}
	mustNotContain(t, "lakebasecred log", l.logs.String(), toks...)
	for _, err := range errs {
		for _, text := range errorTexts(err) {
			mustNotContain(t, "error", text, toks...)
		}
	}
	mustNotContain(t, "Connector.String", l.conn.String(), toks...)
}

func TestLakebaseManyConnectionsOneMint(t *testing.T) {
	l := newLakebase(t, time.Hour)
	db := l.openDB(t)
	db.SetMaxIdleConns(0) // every query opens a new connection

	const n = 200
	for i := 0; i < n; i++ {
		var user string
		if err := db.QueryRow("SELECT current_user").Scan(&user); err != nil {
			t.Fatalf("query %d: %v", i, err)
		}
		if user != l.role {
			t.Fatalf("current_user = %q, want %q", user, l.role)
		}
	}
	if got := db.Stats().MaxIdleClosed; got != n {
		t.Errorf("%d connections were opened and closed, want %d", got, n)
	}
	if got := l.fake.MintCount(); got != 1 {
		t.Errorf("%d tokens minted for %d connections, want 1", got, n)
	}
	if !strings.Contains(l.conn.String(), "user="+l.role) || !strings.Contains(l.conn.String(), "*lakebasecred.Source") {
		t.Errorf("String() = %s", l.conn)
	}
	l.checkNoTokenLeaked(t)
}

func TestLakebaseRotation(t *testing.T) {
	t.Parallel()
	const lifetime = 4 * time.Second
	const run = 10 * time.Second
	l := newLakebase(t, lifetime)
	db := l.openDB(t)
	db.SetMaxIdleConns(0)
	ctx := context.Background()

	// A connection opened with the first token, kept across every rotation.
	held, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()

	var queries, failures atomic.Int64
	var firstErr atomic.Value
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < 3; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Since(start) < run {
				var user string
				err := db.QueryRowContext(ctx, "SELECT current_user").Scan(&user)
				queries.Add(1)
				if err != nil {
					failures.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
				time.Sleep(10 * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)

	if n := failures.Load(); n > 0 {
		err, _ := firstErr.Load().(error)
		t.Errorf("%d of %d queries failed across rotations; first: %v", n, queries.Load(), err)
	}
	// Each token is replaced before it expires: at least one mint per
	// lifetime, and no storm of mints either.
	mints := l.fake.MintCount()
	minMints := int(elapsed / lifetime)
	maxMints := int(elapsed/(lifetime/4)) + 2
	if mints < minMints || mints > maxMints {
		t.Errorf("%d tokens minted in %s with %s tokens, want between %d and %d", mints, elapsed.Round(time.Millisecond), lifetime, minMints, maxMints)
	}
	t.Logf("%d queries, each on a new connection, %d tokens minted in %s", queries.Load(), mints, elapsed.Round(time.Millisecond))

	// The connection opened with the first token outlived it.
	var one int
	if err := held.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		t.Errorf("connection opened with the first token: %v", err)
	}
	l.checkNoTokenLeaked(t)
}

func TestLakebaseControlPlaneDownWithValidToken(t *testing.T) {
	t.Parallel()
	// The token is refreshed from half its lifetime on, and served until a
	// tenth of its lifetime before it expires: from 12s to 21.6s, the
	// window for the checks below, wide enough for a loaded machine.
	const lifetime = 24 * time.Second
	l := newLakebase(t, lifetime)
	db := l.openDB(t)
	db.SetMaxIdleConns(0)
	if err := db.Ping(); err != nil {
		t.Fatal(err)
	}
	l.fake.Fail(lakebasetest.OpDatabaseCredential, http.StatusServiceUnavailable, 0)

	// On failure, the Source's log (no token is ever in it) tells when each
	// refresh ran and failed.
	start := time.Now()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("lakebasecred log (the test began at %s):\n%s", start.Format("15:04:05.000"), l.logs.String())
		}
	})
	// Each query opens a connection (a TLS login): few of them inside the
	// margin, so that the control plane comes back while the refresh is
	// still retried (backoffs of 1, 2, 4 s) on a loaded machine too.
	query := func(what string, n int) {
		t.Helper()
		for i := 0; i < n; i++ {
			var user string
			if err := db.QueryRow("SELECT current_user").Scan(&user); err != nil {
				t.Fatalf("%s, query %d, %s after the first login: %v", what, i, time.Since(start).Round(time.Millisecond), err)
			}
		}
	}
	// A fresh token: no refresh is even attempted.
	query("fresh token, control plane answering 503", 10)

	// Inside the refresh margin: the refresh fails, the cached token is
	// still valid and still served.
	time.Sleep(lifetime/2 + time.Second)
	query("token inside its refresh margin, control plane answering 503", 2)
	deadline := time.Now().Add(5 * time.Second)
	for l.fake.Calls(lakebasetest.OpDatabaseCredential) < 2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if got := l.fake.Calls(lakebasetest.OpDatabaseCredential); got < 2 {
		t.Errorf("%d credential calls, want the first mint and at least one failed refresh", got)
	}
	if got := l.fake.MintCount(); got != 1 {
		t.Errorf("%d tokens minted while the control plane was down, want 1", got)
	}
	query("token inside its refresh margin, refresh failed", 2)

	// Back up before the token stops being served: a retried refresh mints
	// a new token, and no query fails meanwhile.
	l.fake.ClearFailures()
	t.Logf("the control plane answers again %s after the first login", time.Since(start).Round(time.Millisecond))
	deadline = time.Now().Add(lifetime)
	for l.fake.MintCount() < 2 && time.Now().Before(deadline) {
		query("control plane back", 3)
		time.Sleep(100 * time.Millisecond)
	}
	// At least one new token: more than one is possible when a request
	// reached the fake while the SDK had already given up on it.
	if got := l.fake.MintCount(); got < 2 {
		t.Errorf("%d tokens minted after the control plane came back, want a new one", got)
	}
	query("after the refresh", 10)
	l.checkNoTokenLeaked(t)
}

func TestLakebaseExpiredTokenStopsNewLogins(t *testing.T) {
	t.Parallel()
	const lifetime = 3 * time.Second
	l := newLakebase(t, lifetime)
	db := l.openDB(t)
	db.SetMaxIdleConns(1)
	ctx := context.Background()
	held, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	first := l.fake.Mints()[0]

	// Wait past the first token's expiry without asking for another one:
	// it is still the role's password, but no longer valid.
	time.Sleep(time.Until(first.ExpireTime) + 500*time.Millisecond)
	loginErr := plainLogin(t, l.server, l.role, first.Token)
	if !connector.IsAuthError(loginErr) {
		t.Fatalf("login with an expired token: %v, want it refused", loginErr)
	}
	if got := l.fake.MintCount(); got != 1 {
		t.Fatalf("%d tokens minted, want still 1", got)
	}

	// The connector keeps working: the open connection goes on, and a new
	// one logs in with a new token.
	var one int
	if err := held.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		t.Errorf("connection opened before the expiry: %v", err)
	}
	fresh, err := db.Conn(ctx)
	if err != nil {
		t.Fatalf("new connection after the expiry: %v", err)
	}
	defer fresh.Close()
	if got := l.fake.MintCount(); got != 2 {
		t.Errorf("%d tokens minted, want 2", got)
	}
	l.checkNoTokenLeaked(t, loginErr)
}

func TestLakebaseRevokedTokenIsReplacedOnce(t *testing.T) {
	// The database stops accepting the cached, unexpired token (revoked, or
	// the password changed): the Connector drops it, the Source mints one
	// new token, and concurrent logins share it.
	l := newLakebase(t, time.Hour)
	db := l.openDB(t)
	db.SetMaxIdleConns(0)
	if err := db.Ping(); err != nil {
		t.Fatal(err)
	}
	l.setPassword(t, l.role, randomToken(t))

	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- db.Ping()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("Ping after the token was revoked: %v", err)
		}
	}
	if got := l.fake.MintCount(); got != 2 {
		t.Errorf("%d tokens minted, want 2 (one new token for all the rejected logins)", got)
	}
	l.checkNoTokenLeaked(t)
}

func TestForLakebaseOptions(t *testing.T) {
	fake := lakebasetest.NewServer(t)
	fake.AddInstance(lakebasetest.Instance{Name: "agents-db", ReadWriteDNS: "instance-1.database.example.com"})
	src, err := lakebasecred.New(context.Background(), fake.WorkspaceClient(), lakebasecred.Target{Instance: "agents-db"})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()

	c, err := connector.ForLakebase(src)
	if err != nil {
		t.Fatal(err)
	}
	want := "host=instance-1.database.example.com port=5432 user=" + lakebasetest.DefaultUserName + " database=databricks_postgres sslmode=require"
	if !strings.Contains(c.String(), want) {
		t.Errorf("String() = %s, want it to contain %s", c, want)
	}
	if fake.MintCount() != 0 {
		t.Error("ForLakebase minted a token; only Connect should")
	}

	c, err = connector.ForLakebase(src, connector.WithPort(6543), connector.WithSchema("agents"),
		connector.WithSSLMode("verify-full"), connector.WithConnectTimeout(time.Second), connector.WithApplicationName("svc"))
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"port=6543", "sslmode=verify-full", "schema=agents"} {
		if !strings.Contains(c.String(), w) {
			t.Errorf("String() = %s, want %s", c, w)
		}
	}
	if _, err := connector.ForLakebase(src, connector.WithTLSConfig(nil), connector.WithSSLMode("prefer"), connector.WithSchema("a b")); err == nil {
		t.Error("ForLakebase accepted sslmode=prefer and a bad schema")
	} else {
		var ce *connector.ConfigError
		if !errors.As(err, &ce) || len(ce.Problems) != 2 {
			t.Errorf("error = %v, want a ConfigError with 2 problems", err)
		}
	}
	if _, err := connector.ForLakebase(nil); err == nil || !strings.Contains(err.Error(), "lakebasecred.New") {
		t.Errorf("ForLakebase(nil) = %v, want an error saying what to pass", err)
	}
}

// plainLogin logs in to s as user with a static password, over TLS.
func plainLogin(t *testing.T, s *server, user, password string) error {
	t.Helper()
	c, err := connector.New(connector.Config{
		Host: s.host, Port: s.port, User: user, Database: s.database,
		Password: password, SSLMode: "verify-full", SSLRootCert: s.rootCert,
	})
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(c)
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return db.PingContext(ctx)
}
