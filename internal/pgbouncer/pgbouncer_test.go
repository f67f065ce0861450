package pgbouncer_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/lakesession/lakesession/internal/leakcheck"
	"github.com/lakesession/lakesession/internal/pgbouncer"
	"github.com/lakesession/lakesession/internal/pgserver"
)

// TestMain fails the run when the goroutine that waits for a PgBouncer
// process outlives the tests.
func TestMain(m *testing.M) {
	leakcheck.Main(m, "pgbouncer.(*Bouncer)")
}

// A role with a password logs in through PgBouncer over TLS, and two
// clients connected at once share one server connection, which only
// transaction pooling allows; a statement that needs the session (a
// prepared statement) does not survive there.
func TestTransactionPooling(t *testing.T) {
	srv := pgserver.Start(t, pgserver.WithTLS())
	srv.Exec(t, "CREATE ROLE app LOGIN PASSWORD 'app-secret'")
	b := pgbouncer.Start(t, srv.Host(), srv.Port(), pgbouncer.WithClientTLS(srv.CertPath(), srv.KeyPath()), pgbouncer.WithPoolSize(1))

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dsn := fmt.Sprintf("postgres://app:app-secret@%s/postgres?sslmode=verify-full&sslrootcert=%s&default_query_exec_mode=exec", b.Addr(), srv.RootCertPath())
	connect := func() *pgx.Conn {
		c, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatalf("connect through pgbouncer: %v", err)
		}
		t.Cleanup(func() { c.Close(context.Background()) })
		return c
	}
	a, c := connect(), connect()
	pid := func(conn *pgx.Conn) int {
		var p int
		if err := conn.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if pa, pc := pid(a), pid(c); pa != pc {
		t.Errorf("two clients with a pool of one got backends %d and %d: not transaction pooling", pa, pc)
	}
	var user string
	if err := a.QueryRow(ctx, "SELECT current_user").Scan(&user); err != nil || user != "app" {
		t.Errorf("current_user %q, %v; want app", user, err)
	}

	// A prepared statement is the server connection's, not the client's:
	// the other client finds it there.
	if _, err := a.Prepare(ctx, "s1", "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	var pgErr *pgconn.PgError
	if _, err := c.Prepare(ctx, "s1", "SELECT 1"); !errors.As(err, &pgErr) || pgErr.Code != "42P05" {
		t.Errorf("preparing s1 on the other client: %v, want 42P05 (already exists)", err)
	}

	// A wrong password is refused.
	bad := fmt.Sprintf("postgres://app:wrong@%s/postgres?sslmode=require", b.Addr())
	if conn, err := pgx.Connect(ctx, bad); err == nil {
		conn.Close(context.Background())
		t.Error("a wrong password logged in through pgbouncer")
	}
}
