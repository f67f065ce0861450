package connector_test

import (
	"context"
	"errors"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/lakesession/lakesession/connector"
)

// A statement whose context ends is cancelled on the server (pgx sends a
// cancel request when it abandons the connection), so that it cannot commit
// after its caller was told that it failed, for example an AddItems waiting
// for a session's row lock.
func TestCancelledStatementDoesNotCommitLater(t *testing.T) {
	s := newServer(t)
	const password = "cancel-password-123"
	role := s.newRole(t, password)
	if _, err := s.admin.Exec(`CREATE TABLE counter (id int PRIMARY KEY, n int NOT NULL); INSERT INTO counter VALUES (1, 0);
		GRANT SELECT, UPDATE ON counter TO ` + quoteIdent(role)); err != nil {
		t.Fatal(err)
	}
	dsn := "postgres://" + role + ":" + password + "@" + net.JoinHostPort(s.host, strconv.Itoa(s.port)) + "/" + s.database + "?sslmode=disable"
	db, _ := openDB(t, connector.Config{DSN: dsn})

	// Hold the row lock in another transaction.
	ctx := context.Background()
	holder, err := s.admin.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Rollback()
	if _, err := holder.Exec(`SELECT n FROM counter WHERE id = 1 FOR UPDATE`); err != nil {
		t.Fatal(err)
	}

	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	_, err = db.ExecContext(short, `UPDATE counter SET n = n + 1 WHERE id = 1`)
	if !errors.Is(err, context.DeadlineExceeded) && !isQueryCanceled(err) {
		t.Fatalf("UPDATE behind a held lock with a 300ms deadline: %v, want a deadline or cancel error", err)
	}

	// Wait until the server no longer runs the UPDATE (cancelled, or
	// still waiting if the cancel did not reach it), then release the lock.
	deadline := time.Now().Add(10 * time.Second)
	for {
		var waiting int
		if err := s.admin.QueryRow(`SELECT count(*) FROM pg_stat_activity WHERE usename = $1 AND state = 'active' AND query LIKE 'UPDATE counter%'`, role).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting == 0 {
			break
		}
		if time.Now().After(deadline) {
			break // still running: the commit below shows whether it then applies
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := holder.Commit(); err != nil {
		t.Fatal(err)
	}
	// Give a statement that survived the cancel the time to finish.
	time.Sleep(200 * time.Millisecond)
	var n int
	if err := s.admin.QueryRow(`SELECT n FROM counter WHERE id = 1`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("the UPDATE whose caller got an error was applied after all (n = %d)", n)
	}

	// The pool is still usable afterwards.
	if err := db.PingContext(ctx); err != nil {
		t.Fatalf("Ping after a cancelled statement: %v", err)
	}
}

// isQueryCanceled reports whether err is PostgreSQL's query_canceled
// (SQLSTATE 57014), the answer to a cancel request.
func isQueryCanceled(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "57014"
}
