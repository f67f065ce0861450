package bunstore_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/lakesession/lakesession"
	"github.com/lakesession/lakesession/internal/testdb"
)

// holdSessionLock locks a session's row (PostgreSQL) or the database's write
// lock (SQLite) from another connection until the returned function is
// called.
func holdSessionLock(t *testing.T, db *bun.DB, id string) (release func()) {
	t.Helper()
	ctx := context.Background()
	tx, err := db.BeginTx(ctx, nil) // SQLite: BEGIN IMMEDIATE takes the write lock
	if err != nil {
		t.Fatal(err)
	}
	if isPG(db) {
		if _, err := tx.ExecContext(ctx, "SELECT 1 FROM agent_sessions WHERE session_id = ? FOR UPDATE", id); err != nil {
			t.Fatal(err)
		}
	} else if _, err := tx.ExecContext(ctx, "UPDATE agent_sessions SET updated_at = updated_at WHERE session_id = ?", id); err != nil {
		t.Fatal(err)
	}
	done := false
	release = func() {
		if !done {
			done = true
			if err := tx.Rollback(); err != nil {
				t.Error(err)
			}
		}
	}
	t.Cleanup(release)
	return release
}

// openPGCancelling returns a pool whose connections ask the server to cancel
// the running statement when a call's context ends (pgx's
// CancelRequestContextWatcherHandler), instead of only dropping the
// connection.
func openPGCancelling(t *testing.T) *bun.DB {
	t.Helper()
	cfg, err := pgx.ParseConfig(testdb.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.BuildContextWatcherHandler = func(c *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.CancelRequestContextWatcherHandler{Conn: c, DeadlineDelay: 5 * time.Second}
	}
	sqldb := stdlib.OpenDB(*cfg)
	t.Cleanup(func() { sqldb.Close() })
	return bun.NewDB(sqldb, pgdialect.New())
}

// waitIdle waits until no other connection runs a statement on db's
// database: statements a dropped connection left running have ended.
func waitIdle(t *testing.T, db *bun.DB) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if count(t, db, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND state <> 'idle'") == 0 {
			return
		}
	}
	t.Fatal("statements still running after 30s")
}

// A call blocked behind another writer gives up when its context's deadline
// passes. Its batch is then written whole or not at all; with a driver that
// cancels the server's statement (and on SQLite, where the wait is in the
// pool) not at all.
func TestDeadlineWhileBlocked(t *testing.T) {
	cases := []struct {
		name    string
		open    func(t *testing.T) *bun.DB
		nothing bool // the cancelled calls leave no trace
	}{
		{"postgres-cancel-request", openPGCancelling, true},
		{"postgres-default-pgx", openPG, false}, // the error says the outcome is unknown
		{"sqlite", openSQLite, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			db := tc.open(t)
			st := newStore(t, db)
			id := "blocked"
			s := st.Session(id)
			before := batch("before", 2)
			mustAdd(t, s, before)
			release := holdSessionLock(t, db, id)

			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			start := time.Now()
			err := s.AddItems(ctx, batch("blocked", 3))
			if err == nil {
				t.Fatal("AddItems succeeded while the session was locked")
			}
			if ctx.Err() == nil {
				t.Fatalf("AddItems failed before its deadline: %v", err)
			}
			if waited := time.Since(start); waited > 3*time.Second {
				t.Errorf("AddItems returned %v after its deadline", waited)
			}
			t.Logf("AddItems: %v", err)
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("AddItems error %q does not wrap context.DeadlineExceeded", err)
			}
			// pgx drops the connection of a statement still running at the
			// deadline: the server may commit it later. With the cancel
			// request, the server answers that it cancelled the statement.
			if unknown := errors.Is(err, lakesession.ErrOutcomeUnknown); unknown == tc.nothing {
				t.Errorf("AddItems error %q: wraps ErrOutcomeUnknown = %v, want %v", err, unknown, !tc.nothing)
			}

			ctx2, cancel2 := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel2()
			if err := s.ClearSession(ctx2); err == nil || ctx2.Err() == nil {
				t.Errorf("ClearSession while locked: %v; want it to fail at its deadline", err)
			}
			release()
			if isPG(db) {
				waitIdle(t, db)
			}

			got := mustGet(t, s, 0)
			switch {
			case tc.nothing:
				wantItems(t, got, before)
			case len(got) == 0, len(got) == 2, len(got) == 5: // cleared, or before (+ the whole batch)
				t.Logf("after the dropped connections' statements ended: %d items", len(got))
			default:
				t.Fatalf("%d items: a cancelled call wrote in part: %s", len(got), got)
			}
		})
	}
}

// Cancelling AddItems at random moments leaves each batch whole or absent,
// never part of it, and a batch whose error does not wrap
// lakesession.ErrOutcomeUnknown absent.
func TestCancelledAddItemsIsAllOrNothing(t *testing.T) {
	eachBackend(t, func(t *testing.T, db *bun.DB) {
		st := newStore(t, db)
		s := st.Session("cancelled")
		const rounds, size = 40, 20
		// Cancel at random moments across the span of a call.
		start := time.Now()
		mustAdd(t, s, batch("warm-up", size))
		span := 2 * time.Since(start)
		var cancelled, unknown int
		absent := map[string]bool{} // batches whose error says they were not stored
		for r := range rounds {
			ctx, cancel := context.WithCancel(context.Background())
			timer := time.AfterFunc(time.Duration(rand.Int64N(int64(span))), cancel)
			if err := s.AddItems(ctx, batch(fmt.Sprint(r), size)); err != nil {
				if ctx.Err() == nil {
					t.Fatalf("round %d: %v", r, err)
				}
				if !errors.Is(err, context.Canceled) {
					t.Errorf("round %d: error %q does not wrap context.Canceled", r, err)
				}
				if errors.Is(err, lakesession.ErrOutcomeUnknown) {
					unknown++
				} else {
					absent[fmt.Sprint(r)] = true
				}
				cancelled++
			}
			timer.Stop()
			cancel()
		}
		got := mustGet(t, s, 0)
		if len(got)%size != 0 {
			t.Fatalf("%d items stored: a batch of %d was written in part", len(got), size)
		}
		for i := 0; i < len(got); i += size {
			tag := decode(t, got[i]).Tag
			if absent[tag] {
				t.Errorf("batch %s is stored, but its error did not wrap ErrOutcomeUnknown", tag)
			}
			for j := range size {
				if it := decode(t, got[i+j]); it.Tag != tag || it.N != j {
					t.Fatalf("item %d is %s/%d, want %s/%d", i+j, it.Tag, it.N, tag, j)
				}
			}
		}
		t.Logf("%d of %d calls cancelled (%d with an unknown outcome), %d batches stored", cancelled, rounds, unknown, len(got)/size)
	})
}

// A context that is already done fails every call before it reaches the
// database.
func TestDoneContext(t *testing.T) {
	eachBackend(t, func(t *testing.T, db *bun.DB) {
		st := newStore(t, db)
		s := st.Session("done")
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := s.AddItems(ctx, batch("x", 1)); !errors.Is(err, context.Canceled) {
			t.Errorf("AddItems: %v", err)
		}
		if _, err := s.GetItems(ctx, 0); !errors.Is(err, context.Canceled) {
			t.Errorf("GetItems: %v", err)
		}
		if _, err := s.GetItems(ctx, 3); !errors.Is(err, context.Canceled) {
			t.Errorf("GetItems(3): %v", err)
		}
		if _, err := s.PopItem(ctx); !errors.Is(err, context.Canceled) {
			t.Errorf("PopItem: %v", err)
		}
		if err := s.ClearSession(ctx); !errors.Is(err, context.Canceled) {
			t.Errorf("ClearSession: %v", err)
		}
		if err := st.CreateTables(ctx); !errors.Is(err, context.Canceled) {
			t.Errorf("CreateTables: %v", err)
		}
		if sessions, messages := rowCounts(t, db, "done"); sessions+messages != 0 {
			t.Errorf("%d session rows and %d items written with a done context", sessions, messages)
		}
	})
}
