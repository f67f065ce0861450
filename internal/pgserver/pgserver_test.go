package pgserver_test

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/lakesession/lakesession/internal/leakcheck"
	"github.com/lakesession/lakesession/internal/pgserver"
)

// TestMain fails the run when the goroutine that waits for a server process
// outlives the tests: every server must be stopped at its test's cleanup.
func TestMain(m *testing.M) {
	leakcheck.Main(m, "pgserver.(*Server)")
}

func open(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// A stopped server refuses connections; started again it serves the same
// data on the same port.
func TestStopStart(t *testing.T) {
	srv := pgserver.Start(t)
	if srv.Host() != "127.0.0.1" || srv.Port() == 0 || !strings.Contains(srv.DSN(), srv.Addr()) {
		t.Fatalf("Host %q Port %d DSN %q", srv.Host(), srv.Port(), srv.DSN())
	}
	srv.Exec(t, "CREATE TABLE kept (v int); INSERT INTO kept VALUES (42)")
	db := open(t, srv.DSN())
	db.SetMaxIdleConns(0)
	if err := db.PingContext(ctx(t)); err != nil {
		t.Fatal(err)
	}

	port := srv.Port()
	srv.Stop(t)
	err := db.PingContext(ctx(t))
	if err == nil {
		t.Fatal("Ping of a stopped server succeeded")
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("Ping of a stopped server: %v, want connection refused", err)
	}

	srv.Start(t)
	if srv.Port() != port {
		t.Errorf("port after Start %d, want %d", srv.Port(), port)
	}
	var v int
	if err := db.QueryRowContext(ctx(t), "SELECT v FROM kept").Scan(&v); err != nil || v != 42 {
		t.Fatalf("after restart: v=%d, %v; want 42", v, err)
	}
}

// Stop ends the open sessions: a client that holds a connection sees it end.
func TestStopEndsSessions(t *testing.T) {
	srv := pgserver.Start(t)
	conn, err := pgconn.Connect(ctx(t), srv.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	srv.Stop(t)
	if _, err := conn.Exec(ctx(t), "SELECT 1").ReadAll(); err == nil {
		t.Fatal("a session survived Stop")
	}
}

// Exec runs ALTER SYSTEM with another statement; the read-only setting then
// makes writes fail with 25006, and turning it off again lets them through.
func TestExecReadOnlyFlip(t *testing.T) {
	srv := pgserver.Start(t)
	srv.Exec(t, "CREATE TABLE t (v text); -- a comment; with a semicolon\nINSERT INTO t VALUES ('a;b')")
	db := open(t, srv.DSN())
	db.SetMaxOpenConns(1)
	if _, err := db.ExecContext(ctx(t), "INSERT INTO t VALUES ('x')"); err != nil {
		t.Fatal(err)
	}

	srv.Exec(t, "ALTER SYSTEM SET default_transaction_read_only = on; SELECT pg_reload_conf()")
	var pgErr *pgconn.PgError
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := db.ExecContext(ctx(t), "INSERT INTO t VALUES ('y')")
		if errors.As(err, &pgErr) && pgErr.Code == "25006" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("INSERT on a read-only server: %v, want SQLSTATE 25006", err)
		}
		time.Sleep(20 * time.Millisecond) // the reload reaches each backend between statements
	}

	srv.Exec(t, "ALTER SYSTEM RESET default_transaction_read_only; SELECT pg_reload_conf()")
	deadline = time.Now().Add(10 * time.Second)
	for {
		_, err := db.ExecContext(ctx(t), "INSERT INTO t VALUES ('z')")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("INSERT after read-only was turned off: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	var n int
	if err := db.QueryRowContext(ctx(t), "SELECT count(*) FROM t WHERE v IN ('a;b', 'x', 'z')").Scan(&n); err != nil || n != 3 {
		t.Fatalf("rows: %d, %v; want 3", n, err)
	}
}

// WithTLS serves TLS with a certificate that RootCertPath verifies for
// 127.0.0.1.
func TestTLS(t *testing.T) {
	srv := pgserver.Start(t, pgserver.WithTLS())
	if srv.RootCertPath() == "" || srv.CertPath() == "" || srv.KeyPath() == "" {
		t.Fatal("a TLS server has no certificate paths")
	}
	dsn := strings.Replace(srv.DSN(), "sslmode=disable", "sslmode=verify-full&sslrootcert="+srv.RootCertPath(), 1)
	db := open(t, dsn)
	var ssl bool
	if err := db.QueryRowContext(ctx(t), "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").Scan(&ssl); err != nil || !ssl {
		t.Fatalf("ssl=%v, %v; want a TLS connection", ssl, err)
	}

	plain := pgserver.Start(t)
	if plain.RootCertPath() != "" {
		t.Errorf("RootCertPath of a server without TLS: %q", plain.RootCertPath())
	}
	if err := open(t, strings.Replace(plain.DSN(), "sslmode=disable", "sslmode=require", 1)).PingContext(ctx(t)); err == nil {
		t.Error("sslmode=require connected to a server without TLS")
	}
}

// WithSetting overrides a default of the package.
func TestWithSetting(t *testing.T) {
	srv := pgserver.Start(t, pgserver.WithSetting("max_connections", "37"), pgserver.WithSetting("idle_session_timeout", "1234"))
	db := open(t, srv.DSN())
	for name, want := range map[string]string{"max_connections": "37", "idle_session_timeout": "1234ms", "fsync": "off", "listen_addresses": "127.0.0.1"} {
		var got string
		if err := db.QueryRowContext(ctx(t), "SELECT current_setting($1)", name).Scan(&got); err != nil || got != want {
			t.Errorf("%s = %q, %v; want %q", name, got, err, want)
		}
	}
}

// Each test's server is its own, and is gone after the test: its process has
// exited and its port refuses connections.
func TestCleanupStopsServer(t *testing.T) {
	var addr string
	t.Run("server", func(t *testing.T) {
		a := pgserver.Start(t)
		b := pgserver.Start(t)
		if a.Port() == b.Port() {
			t.Fatalf("two servers on port %d", a.Port())
		}
		a.Exec(t, "CREATE TABLE only_in_a (v int)")
		db := open(t, b.DSN())
		if _, err := db.ExecContext(ctx(t), "SELECT * FROM only_in_a"); err == nil {
			t.Fatal("the second server sees the first server's table")
		}
		addr = a.DSN()
	})
	conn, err := pgconn.Connect(ctx(t), addr+"&connect_timeout=2")
	if err == nil {
		conn.Close(context.Background())
		t.Fatal("the server still accepts connections after its test ended")
	}
	if s := leakcheck.Stacks(5*time.Second, "pgserver.(*Server)"); s != "" {
		t.Fatalf("a server process is still waited for:\n%s", s)
	}
}

// During a smart shutdown the server refuses new connections with 57P03
// while an open session goes on; once it ends the server exits, and Start
// brings it back.
func TestBeginStop(t *testing.T) {
	srv := pgserver.Start(t)
	held, err := pgconn.Connect(ctx(t), srv.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close(context.Background())
	srv.BeginStop(t)
	var pgErr *pgconn.PgError
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := pgconn.Connect(ctx(t), srv.DSN())
		if err == nil {
			c.Close(context.Background())
		}
		if errors.As(err, &pgErr) && pgErr.Code == "57P03" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("connect during a smart shutdown: %v, want SQLSTATE 57P03", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := held.Exec(ctx(t), "SELECT 1").ReadAll(); err != nil {
		t.Fatalf("the open session during a smart shutdown: %v", err)
	}
	held.Close(context.Background())
	srv.Start(t)
	srv.Exec(t, "SELECT 1")
}
