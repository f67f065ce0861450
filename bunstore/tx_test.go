package bunstore_test

import (
	"context"
	"errors"
	"testing"

	"github.com/uptrace/bun"

	"github.com/lakesession/lakesession/bunstore"
)

var errRollback = errors.New("roll back")

// A Store on a bun.Tx works inside RunInTx: it sees its own writes, and the
// transaction decides whether they stay.
func TestStoreInTransaction(t *testing.T) {
	eachBackend(t, func(t *testing.T, db *bun.DB) {
		newStore(t, db)
		ctx := context.Background()
		for _, commit := range []bool{false, true} {
			id := "rolled-back"
			if commit {
				id = "committed"
			}
			err := db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
				st, err := bunstore.New(tx)
				if err != nil {
					return err
				}
				s := st.Session(id)
				if err := s.AddItems(ctx, batch(id, 3)); err != nil {
					return err
				}
				if got, err := s.PopItem(ctx); err != nil || got == nil {
					t.Errorf("PopItem in the transaction = %s, %v", got, err)
				}
				got, err := s.GetItems(ctx, 5)
				if err != nil {
					return err
				}
				wantItems(t, got, batch(id, 2))
				if page, err := st.ListSessions(ctx, bunstore.ListOptions{}); err != nil || len(page.Sessions) != 1 {
					t.Errorf("ListSessions in the transaction = %+v, %v", page, err)
				}
				if !commit {
					return errRollback
				}
				return nil
			})
			if commit && err != nil || !commit && !errors.Is(err, errRollback) {
				t.Fatalf("RunInTx: %v", err)
			}
			st := newStore(t, db)
			got := mustGet(t, st.Session(id), 0)
			if commit {
				wantItems(t, got, batch(id, 2))
			} else if len(got) != 0 {
				t.Fatalf("rolled-back items are visible: %s", got)
			} else if sessions, _ := rowCounts(t, db, id); sessions != 0 {
				t.Fatal("a rolled-back session row is visible")
			}
		}
	})
}

// The methods that run their own transaction (CreateTables everywhere;
// AddItems, ClearSession and DeleteSessions on SQLite) nest as savepoints.
func TestNestedTransactions(t *testing.T) {
	eachBackend(t, func(t *testing.T, db *bun.DB) {
		ctx := context.Background()
		err := db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			st, err := bunstore.New(tx)
			if err != nil {
				return err
			}
			if err := st.CreateTables(ctx); err != nil {
				return err
			}
			s := st.Session("nested")
			if err := s.AddItems(ctx, batch("n", 2)); err != nil {
				return err
			}
			if err := s.ClearSession(ctx); err != nil {
				return err
			}
			if err := s.AddItems(ctx, batch("n", 1)); err != nil {
				return err
			}
			return errRollback
		})
		if !errors.Is(err, errRollback) {
			t.Fatalf("RunInTx: %v", err)
		}
		// Even the tables were rolled back.
		if n := defaultTables(t, db); n != 0 {
			t.Fatalf("%d tables survived the rollback", n)
		}
	})
}

// A Store on a bun.Conn works too.
func TestStoreOnConn(t *testing.T) {
	eachBackend(t, func(t *testing.T, db *bun.DB) {
		newStore(t, db)
		ctx := context.Background()
		conn, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		st, err := bunstore.New(conn)
		if err != nil {
			t.Fatal(err)
		}
		s := st.Session("on-conn")
		if err := s.AddItems(ctx, batch("c", 2)); err != nil {
			t.Fatal(err)
		}
		got, err := s.GetItems(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		wantItems(t, got, batch("c", 2))
		if err := conn.Close(); err != nil {
			t.Fatal(err)
		}
		wantItems(t, mustGet(t, newStore(t, db).Session("on-conn"), 0), batch("c", 2))
	})
}
