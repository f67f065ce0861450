package connector_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"errors"
	"net"
	"os"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/lakesession/lakesession/connector"
)

// tokenConfig is a Config that logs in as role with tokens from src, over
// TLS checked against the test server's certificate.
func (s *server) tokenConfig(role string, src connector.TokenSource) connector.Config {
	return connector.Config{
		Host:        s.host,
		Port:        s.port,
		User:        role,
		Database:    s.database,
		Tokens:      src,
		SSLMode:     "verify-full",
		SSLRootCert: s.rootCert,
	}
}

func openDB(t testing.TB, cfg connector.Config) (*sql.DB, *connector.Connector) {
	t.Helper()
	c, err := connector.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	db := connector.OpenDB(c)
	t.Cleanup(func() { db.Close() })
	return db, c
}

func currentUser(t testing.TB, db *sql.DB) string {
	t.Helper()
	var u string
	if err := db.QueryRow("SELECT current_user").Scan(&u); err != nil {
		t.Fatal(err)
	}
	return u
}

func TestEveryConnectTakesTheCurrentToken(t *testing.T) {
	s := tlsServer(t)
	tok := randomToken(t)
	role := s.newRole(t, tok)
	src := &fakeSource{tok: tok}
	db, _ := openDB(t, s.tokenConfig(role, src))
	db.SetMaxIdleConns(0) // every query opens a new connection

	const n = 20
	for i := 0; i < n; i++ {
		if u := currentUser(t, db); u != role {
			t.Fatalf("current_user = %q, want %q", u, role)
		}
	}
	if got := src.calls.Load(); got != n {
		t.Errorf("Token called %d times for %d new connections, want %d", got, n, n)
	}
	if got := src.invalidations.Load(); got != 0 {
		t.Errorf("Invalidate called %d times, want 0", got)
	}
}

func TestRotationKeepsOpenConnectionsAndUsesTheNewToken(t *testing.T) {
	s := tlsServer(t)
	old := randomToken(t)
	role := s.newRole(t, old)
	src := &fakeSource{tok: old}
	db, _ := openDB(t, s.tokenConfig(role, src))
	ctx := context.Background()

	held, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()

	// Rotate: the database now wants the new token, the source hands it out.
	fresh := randomToken(t)
	s.setPassword(t, role, fresh)
	src.set(fresh)

	// The held connection logged in with the old token and keeps working.
	var one int
	if err := held.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		t.Fatalf("connection opened before the rotation: %v", err)
	}
	// A new connection logs in with the new token.
	fresh2, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer fresh2.Close()
	if err := fresh2.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		t.Fatalf("connection opened after the rotation: %v", err)
	}
	if got := src.invalidations.Load(); got != 0 {
		t.Errorf("Invalidate called %d times, want 0", got)
	}
}

func TestRejectedTokenIsInvalidatedAndRetriedOnce(t *testing.T) {
	s := tlsServer(t)
	good := randomToken(t)
	stale := randomToken(t)
	role := s.newRole(t, good)
	src := &fakeSource{tok: stale, next: func() string { return good }}
	_, c := openDB(t, s.tokenConfig(role, src))

	conn, err := c.Connect(context.Background())
	if err != nil {
		t.Fatalf("Connect after a rejected token: %v", err)
	}
	conn.Close()
	if got := src.invalidations.Load(); got != 1 {
		t.Errorf("Invalidate called %d times, want 1", got)
	}
	// Token: the rejected attempt, the check that the source still hands out
	// the rejected token, and the retry.
	if got := src.calls.Load(); got != 3 {
		t.Errorf("Token called %d times, want 3", got)
	}
}

func TestRejectedTokenFailsCleanlyAfterOneRetry(t *testing.T) {
	s := tlsServer(t)
	good := randomToken(t)
	role := s.newRole(t, good)
	bad1, bad2 := randomToken(t), randomToken(t)
	src := &fakeSource{tok: bad1, next: func() string { return bad2 }}
	_, c := openDB(t, s.tokenConfig(role, src))

	conn, err := c.Connect(context.Background())
	if err == nil {
		conn.Close()
		t.Fatal("Connect succeeded with tokens the database rejects")
	}
	if !connector.IsAuthError(err) {
		t.Errorf("IsAuthError(%v) = false, want true", err)
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "28P01" {
		t.Errorf("error does not wrap the server's 28P01: %v", err)
	}
	if !strings.Contains(err.Error(), "rejected the password twice") || !strings.Contains(err.Error(), "user="+role) {
		t.Errorf("error does not explain the failure: %v", err)
	}
	if got := src.invalidations.Load(); got != 1 {
		t.Errorf("Invalidate called %d times, want exactly 1 (one retry)", got)
	}
	if got := src.calls.Load(); got != 3 {
		t.Errorf("Token called %d times, want 3 (no second retry)", got)
	}
	for _, text := range errorTexts(err) {
		mustNotContain(t, "connect error", text, bad1, bad2, good)
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) && ce.Config != nil && ce.Config.Password != "" {
		t.Error("the error's pgconn.ConnectError still carries the password")
	}
}

func TestRejectedTokenAlreadyReplacedIsNotInvalidated(t *testing.T) {
	// Another Connect got the source to mint a new token between this
	// Connect's rejected login and its retry: the new token must not be
	// thrown away.
	s := tlsServer(t)
	good := randomToken(t)
	stale := randomToken(t)
	role := s.newRole(t, good)
	src := &fakeSource{tok: stale}
	src.onTok = func(n int64) {
		if n == 2 {
			src.set(good)
		}
	}
	_, c := openDB(t, s.tokenConfig(role, src))
	conn, err := c.Connect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()
	if got := src.invalidations.Load(); got != 0 {
		t.Errorf("Invalidate called %d times although the source already had a new token, want 0", got)
	}
}

func TestTokenSourceErrorIsReturnedWithoutRetry(t *testing.T) {
	s := tlsServer(t)
	role := s.newRole(t, randomToken(t))
	errMint := errors.New("mint failed")
	src := &fakeSource{err: errMint}
	_, c := openDB(t, s.tokenConfig(role, src))
	_, err := c.Connect(context.Background())
	if !errors.Is(err, errMint) {
		t.Fatalf("Connect error = %v, want it to wrap the source's error", err)
	}
	if !strings.Contains(err.Error(), role) {
		t.Errorf("error does not name the user: %v", err)
	}
	if got := src.invalidations.Load(); got != 0 {
		t.Errorf("Invalidate called %d times, want 0", got)
	}
	if got := src.calls.Load(); got != 1 {
		t.Errorf("Token called %d times, want 1", got)
	}

	empty := &fakeSource{}
	_, c = openDB(t, s.tokenConfig(role, empty))
	if _, err := c.Connect(context.Background()); err == nil || !strings.Contains(err.Error(), "empty token") {
		t.Errorf("Connect with an empty token: %v, want an error about the empty token", err)
	}
}

func usesTLS(t testing.TB, db *sql.DB) bool {
	t.Helper()
	var ssl bool
	if err := db.QueryRow("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").Scan(&ssl); err != nil {
		t.Fatal(err)
	}
	return ssl
}

func TestTokenOverTLS(t *testing.T) {
	s := tlsServer(t)
	tok := randomToken(t)
	role := s.newRole(t, tok)
	pem, err := os.ReadFile(s.rootCert)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("no certificate in the test server's root file")
	}
	for name, tweak := range map[string]func(*connector.Config){
		"require":                func(c *connector.Config) { c.SSLMode = "require"; c.SSLRootCert = "" },
		"verify-ca":              func(c *connector.Config) { c.SSLMode = "verify-ca" },
		"verify-full":            func(c *connector.Config) { c.SSLMode = "verify-full" },
		"verify-full by default": func(c *connector.Config) { c.SSLMode = "" },
		"TLS config": func(c *connector.Config) {
			c.SSLMode = ""
			c.SSLRootCert = ""
			c.TLSConfig = &tls.Config{RootCAs: pool}
		},
		"verify-full through localhost": func(c *connector.Config) { c.Host = "localhost" },
	} {
		t.Run(name, func(t *testing.T) {
			cfg := s.tokenConfig(role, &fakeSource{tok: tok})
			tweak(&cfg)
			db, _ := openDB(t, cfg)
			if !usesTLS(t, db) {
				t.Error("the connection does not use TLS")
			}
		})
	}

	// verify-full really checks the certificate: the self-signed one is not
	// signed by a system root.
	cfg := s.tokenConfig(role, &fakeSource{tok: tok})
	cfg.SSLRootCert = ""
	db, _ := openDB(t, cfg)
	if err := db.Ping(); err == nil {
		t.Error("verify-full accepted a certificate that no system root signs")
	}
}

func TestStaticPasswordWithoutTLS(t *testing.T) {
	s := newServer(t)
	const password = "local-password-123"
	role := s.newRole(t, password)
	dsn := "postgres://" + role + ":" + password + "@" + net.JoinHostPort(s.host, strconv.Itoa(s.port)) + "/" + s.database + "?sslmode=disable"
	for name, cfg := range map[string]connector.Config{
		"fields": {Host: s.host, Port: s.port, User: role, Database: s.database, Password: password, SSLMode: "disable"},
		"DSN":    {DSN: dsn},
	} {
		t.Run(name, func(t *testing.T) {
			db, c := openDB(t, cfg)
			if u := currentUser(t, db); u != role {
				t.Errorf("current_user = %q, want %q", u, role)
			}
			if usesTLS(t, db) {
				t.Error("sslmode=disable connected with TLS")
			}
			mustNotContain(t, "String()", c.String(), password)
		})
	}

	// A wrong static password fails at once, with no retry and no secret
	// in the error.
	const wrong = "wrong-password-456"
	db, _ := openDB(t, connector.Config{Host: s.host, Port: s.port, User: role, Database: s.database, Password: wrong, SSLMode: "disable"})
	err := db.Ping()
	if !connector.IsAuthError(err) {
		t.Fatalf("Ping with a wrong password: %v, want an authentication error", err)
	}
	if !strings.Contains(err.Error(), "user="+role) {
		t.Errorf("error does not name the user: %v", err)
	}
	for _, text := range errorTexts(err) {
		mustNotContain(t, "connect error", text, wrong, password)
	}
}

func TestNewIgnoresTheEnvironment(t *testing.T) {
	s := tlsServer(t)
	tok := randomToken(t)
	role := s.newRole(t, tok)
	t.Setenv("PGSSLMODE", "disable")
	t.Setenv("PGSSLROOTCERT", "/nonexistent/root.crt")
	t.Setenv("PGSSLCERT", "/nonexistent/client.crt")
	t.Setenv("PGSSLKEY", "/nonexistent/client.key")
	t.Setenv("PGPASSWORD", "from-the-environment")
	t.Setenv("PGPASSFILE", "/nonexistent/pgpass")
	t.Setenv("PGAPPNAME", "from-the-environment")
	t.Setenv("PGOPTIONS", "-c search_path=from_the_environment")
	t.Setenv("PGTZ", "America/Lima")
	t.Setenv("PGTARGETSESSIONATTRS", "standby")
	t.Setenv("PGCONNECT_TIMEOUT", "1")

	db, _ := openDB(t, s.tokenConfig(role, &fakeSource{tok: tok}))
	var app, searchPath string
	if err := db.QueryRow("SELECT current_setting('application_name'), current_setting('search_path')").Scan(&app, &searchPath); err != nil {
		t.Fatal(err)
	}
	if app != "" || strings.Contains(searchPath, "from_the_environment") {
		t.Errorf("the environment leaked in: application_name=%q search_path=%q", app, searchPath)
	}
	if !usesTLS(t, db) {
		t.Error("PGSSLMODE=disable turned TLS off")
	}
}

func TestSchemaSetsSearchPathOnEveryConnection(t *testing.T) {
	s := tlsServer(t)
	tok := randomToken(t)
	role := s.newRole(t, tok)
	for _, q := range []string{
		`CREATE SCHEMA "Agents"`,
		`GRANT USAGE ON SCHEMA "Agents" TO ` + role,
		`CREATE TABLE "Agents".marker (v text)`,
		`INSERT INTO "Agents".marker VALUES ('agents')`,
		`CREATE TABLE public.marker (v text)`,
		`INSERT INTO public.marker VALUES ('public')`,
		`CREATE TABLE public.only_public (v text)`,
		`GRANT SELECT ON "Agents".marker, public.marker, public.only_public TO ` + role,
	} {
		if _, err := s.admin.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	cfg := s.tokenConfig(role, &fakeSource{tok: tok})
	cfg.Schema = "Agents"
	cfg.ApplicationName = "connector-test"
	db, _ := openDB(t, cfg)
	db.SetMaxIdleConns(0)
	for i := 0; i < 5; i++ {
		var path, v, app string
		if err := db.QueryRow("SELECT current_setting('search_path'), (SELECT v FROM marker), current_setting('application_name')").Scan(&path, &v, &app); err != nil {
			t.Fatal(err)
		}
		if path != `"Agents", public` || v != "agents" || app != "connector-test" {
			t.Fatalf("search_path=%q marker=%q application_name=%q, want \"Agents\", public / agents / connector-test", path, v, app)
		}
	}
	// public stays on the path, and RESET returns to the schema.
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "SELECT count(*) FROM only_public"); err != nil {
		t.Errorf("public is not on the search_path: %v", err)
	}
	if _, err := conn.ExecContext(ctx, "SET search_path TO public; RESET ALL"); err != nil {
		t.Fatal(err)
	}
	var path string
	if err := conn.QueryRowContext(ctx, "SHOW search_path").Scan(&path); err != nil {
		t.Fatal(err)
	}
	if path != `"Agents", public` {
		t.Errorf("after RESET ALL search_path = %q, want the schema", path)
	}
}

func TestCloseStopsNewConnections(t *testing.T) {
	s := tlsServer(t)
	tok := randomToken(t)
	role := s.newRole(t, tok)
	src := &fakeSource{tok: tok}
	db, c := openDB(t, s.tokenConfig(role, src))
	if err := db.Ping(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	calls := src.calls.Load()
	if _, err := c.Connect(context.Background()); !errors.Is(err, connector.ErrClosed) {
		t.Errorf("Connect after db.Close() = %v, want ErrClosed", err)
	}
	if src.calls.Load() != calls {
		t.Error("Connect after Close asked for a token")
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	// The pool's connections are gone from the server.
	var n int
	if err := s.admin.QueryRow("SELECT count(*) FROM pg_stat_activity WHERE usename = $1", role).Scan(&n); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); n > 0 && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
		if err := s.admin.QueryRow("SELECT count(*) FROM pg_stat_activity WHERE usename = $1", role).Scan(&n); err != nil {
			t.Fatal(err)
		}
	}
	if n != 0 {
		t.Errorf("%d connections of the role remain after db.Close()", n)
	}
}

func TestConnectTimeout(t *testing.T) {
	// A server that accepts connections and never answers.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	defer func() {
		ln.Close()
		wg.Wait()
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port

	c, err := connector.New(connector.Config{
		Host: "127.0.0.1", Port: port, User: "u", Database: "d",
		Tokens: &fakeSource{tok: "t"}, SSLMode: "require",
		ConnectTimeout: 300 * time.Millisecond,
		MaxConnectWait: -1, // one attempt: its timeout is what this test checks
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	done := make(chan error, 1)
	go func() {
		_, err := c.Connect(context.Background()) // no deadline of its own
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Connect to a silent server succeeded")
		}
		if !errors.Is(err, context.DeadlineExceeded) && !strings.Contains(err.Error(), "timeout") {
			t.Errorf("Connect error = %v, want a timeout", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Connect to a silent server did not return: the connect timeout is not applied")
	}

	// The timeout also bounds the wait for a token.
	blocking := blockingSource{}
	c2, err := connector.New(connector.Config{
		Host: "127.0.0.1", Port: port, User: "u", Database: "d",
		Tokens: blocking, SSLMode: "require", ConnectTimeout: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		_, err := c2.Connect(context.Background())
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Connect with a token source that waits for ctx = %v, want context.DeadlineExceeded", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Connect waited for a token past the connect timeout")
	}
}

// TestConnectTimeoutBoundsTheRetry: after a rejected token, the check of
// the source's current token is bounded by the connect timeout too, like
// every other wait for a token.
func TestConnectTimeoutBoundsTheRetry(t *testing.T) {
	s := tlsServer(t)
	role := s.newRole(t, randomToken(t))
	src := &stallingSource{first: randomToken(t)} // rejected by the database
	cfg := s.tokenConfig(role, src)
	cfg.ConnectTimeout = 2 * time.Second
	c, err := connector.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	done := make(chan error, 1)
	go func() {
		_, err := c.Connect(context.Background()) // no deadline of its own
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Connect = %v, want the connect timeout's context.DeadlineExceeded", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("Connect waited for a token past the connect timeout after a rejected login")
	}
	if got := src.calls.Load(); got != 3 {
		t.Errorf("Token called %d times, want 3 (the rejected login, the check, the retry)", got)
	}
}

// stallingSource hands out first once, then waits for ctx on every call.
type stallingSource struct {
	first string
	calls atomic.Int64
}

func (s *stallingSource) Token(ctx context.Context) (string, error) {
	if s.calls.Add(1) == 1 {
		return s.first, nil
	}
	<-ctx.Done()
	return "", ctx.Err()
}

func (s *stallingSource) Invalidate() {}

// blockingSource waits for ctx and never hands out a token.
type blockingSource struct{}

func (blockingSource) Token(ctx context.Context) (string, error) {
	<-ctx.Done()
	return "", ctx.Err()
}

func (blockingSource) Invalidate() {}

func TestConcurrentConnects(t *testing.T) {
	// Many connections opened at once share the base configuration; with
	// -race this catches any write to it.
	s := tlsServer(t)
	tok := randomToken(t)
	role := s.newRole(t, tok)
	cfg := s.tokenConfig(role, &fakeSource{tok: tok})
	cfg.Schema = "public"
	db, _ := openDB(t, cfg)
	db.SetMaxIdleConns(0)
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := 0; i < 40; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var one int
			errs <- db.QueryRow("SELECT 1").Scan(&one)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

func TestOpenDBPoolSettings(t *testing.T) {
	c, err := connector.New(connector.Config{Host: "h", User: "u", Database: "d", Tokens: &fakeSource{}})
	if err != nil {
		t.Fatal(err)
	}
	db := connector.OpenDB(c)
	defer db.Close()
	if got := db.Stats().MaxOpenConnections; got != connector.DefaultMaxOpenConns {
		t.Errorf("MaxOpenConnections = %d, want %d", got, connector.DefaultMaxOpenConns)
	}
	// database/sql shows no getter for the other settings: read its fields.
	for field, want := range map[string]int64{
		"maxLifetime":  int64(45 * time.Minute), // the figure, not the constant
		"maxIdleTime":  int64(connector.DefaultConnMaxIdleTime),
		"maxIdleCount": connector.DefaultMaxIdleConns,
	} {
		f := reflect.ValueOf(db).Elem().FieldByName(field)
		if !f.IsValid() {
			t.Fatalf("sql.DB has no field %s any more: update this test", field)
		}
		if got := f.Int(); got != want {
			t.Errorf("sql.DB.%s = %d, want %d", field, got, want)
		}
	}
	db.SetMaxOpenConns(3)
	if got := db.Stats().MaxOpenConnections; got != 3 {
		t.Errorf("MaxOpenConnections after SetMaxOpenConns(3) = %d", got)
	}
}

// invalidatingSource is a fakeSource that also has InvalidateToken.
type invalidatingSource struct {
	*fakeSource
	mu      sync.Mutex
	dropped []string
}

func (s *invalidatingSource) InvalidateToken(tok string) {
	s.mu.Lock()
	s.dropped = append(s.dropped, tok)
	s.mu.Unlock()
	s.fakeSource.mu.Lock()
	defer s.fakeSource.mu.Unlock()
	if s.fakeSource.tok == tok && s.next != nil {
		s.fakeSource.tok = s.next()
	}
}

func TestRejectedTokenUsesInvalidateToken(t *testing.T) {
	s := tlsServer(t)
	good := randomToken(t)
	stale := randomToken(t)
	role := s.newRole(t, good)
	src := &invalidatingSource{fakeSource: &fakeSource{tok: stale, next: func() string { return good }}}
	_, c := openDB(t, s.tokenConfig(role, src))
	conn, err := c.Connect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()
	if len(src.dropped) != 1 || src.dropped[0] != stale {
		t.Errorf("InvalidateToken called with %d tokens, want once with the rejected one", len(src.dropped))
	}
	if got := src.invalidations.Load(); got != 0 {
		t.Errorf("Invalidate called %d times, want 0 (InvalidateToken instead)", got)
	}
	if got := src.calls.Load(); got != 2 {
		t.Errorf("Token called %d times, want 2 (the rejected attempt and the retry)", got)
	}
}
