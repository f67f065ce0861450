package bunstore_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/lakesession/lakesession/bunstore"
)

// 32 goroutines each add a batch of 5 to one session: 160 items, every
// batch contiguous and in its own order, and the stored (created_at, id)
// order is the order in which the batches took the session's lock (ids are
// drawn under it): ordering by (created_at, id) and by id agree, and each
// batch has one created_at, later than the batch before.
func TestConcurrentBatchesKeepOrder(t *testing.T) {
	eachBackend(t, func(t *testing.T, db *bun.DB) {
		st := newStore(t, db)
		const writers, size = 32, 5
		s := st.Session("concurrent-batches")
		noErrors(t, parallel(writers, func(w int) error {
			return s.AddItems(context.Background(), batch(fmt.Sprint(w), size))
		}))

		got := mustGet(t, s, 0)
		if len(got) != writers*size {
			t.Fatalf("got %d items, want %d", len(got), writers*size)
		}
		seen := map[string]bool{}
		for i := 0; i < len(got); i += size {
			first := decode(t, got[i])
			if seen[first.Tag] {
				t.Fatalf("batch %s appears twice", first.Tag)
			}
			seen[first.Tag] = true
			for j := 0; j < size; j++ {
				it := decode(t, got[i+j])
				if it.Tag != first.Tag || it.N != j {
					t.Fatalf("item %d is %s/%d, want %s/%d: batches interleaved or out of order\n%s", i+j, it.Tag, it.N, first.Tag, j, got)
				}
			}
		}

		// The latest 7: the tail of the same order.
		wantItems(t, mustGet(t, s, 7), got[len(got)-7:])

		rows, err := db.QueryContext(context.Background(),
			"SELECT id, CAST(created_at AS TEXT) FROM agent_messages WHERE session_id = ? ORDER BY created_at, id", s.SessionID())
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var (
			prevID   int64
			prevTime string
			n        int
		)
		for rows.Next() {
			var (
				id      int64
				created string
			)
			if err := rows.Scan(&id, &created); err != nil {
				t.Fatal(err)
			}
			if id <= prevID {
				t.Fatalf("row %d: id %d after id %d: (created_at, id) order is not id order", n, id, prevID)
			}
			inBatch := n%size != 0
			switch {
			case inBatch && created != prevTime:
				t.Fatalf("row %d: created_at %s differs from %s within one batch", n, created, prevTime)
			case !inBatch && isPG(db) && n > 0 && created <= prevTime:
				t.Fatalf("row %d: batch created_at %s is not after the previous batch's %s", n, created, prevTime)
			}
			prevID, prevTime = id, created
			n++
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
	})
}

// A batch added inside a transaction that began before another batch
// committed, and that commits after it, comes back after it: created_at is
// read after the session lock is held, not at transaction start.
func TestOrderIsCommitOrderAcrossTransactions(t *testing.T) {
	db := openPG(t)
	st := newStore(t, db)
	ctx := context.Background()
	id := "commit-order"
	mustAdd(t, st.Session(id), batch("first", 1))

	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, "SELECT 1"); err != nil { // the transaction has started
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	mustAdd(t, st.Session(id), batch("committed-first", 2))

	inTx, err := bunstore.New(tx)
	if err != nil {
		t.Fatal(err)
	}
	if err := inTx.Session(id).AddItems(ctx, batch("committed-second", 2)); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	want := append(append(batch("first", 1), batch("committed-first", 2)...), batch("committed-second", 2)...)
	wantItems(t, mustGet(t, st.Session(id), 0), want)
	wantItems(t, mustGet(t, st.Session(id), 3), want[2:])
}

// A batch that waited for its session's lock while another session was
// updated gets the later updated_at: updated_at, like created_at, is read
// after the lock is held, not at the start of the batch's transaction, so
// ListSessions lists the session whose last batch committed last first.
func TestUpdatedAtIsReadAfterTheLock(t *testing.T) {
	db := openPG(t)
	st := newStore(t, db)
	ctx := context.Background()
	waiting, other := "waited-for-lock", "updated-meanwhile"
	mustAdd(t, st.Session(waiting), batch("first", 1))
	mustAdd(t, st.Session(other), batch("first", 1))

	release := holdSessionLock(t, db, waiting)
	done := make(chan error, 1)
	go func() { done <- st.Session(waiting).AddItems(ctx, batch("waited", 1)) }()
	// Until the batch waits for the lock: its statement has begun.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if count(t, db, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'") == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("AddItems did not wait for the session's lock")
		}
	}
	mustAdd(t, st.Session(other), batch("meanwhile", 1))
	release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	page, err := st.ListSessions(ctx, bunstore.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Sessions) != 2 || page.Sessions[0].ID != waiting || page.Sessions[1].ID != other {
		t.Fatalf("ListSessions = %+v; want %s, whose batch committed last, before %s", page.Sessions, waiting, other)
	}
	if !page.Sessions[0].UpdatedAt.After(page.Sessions[1].UpdatedAt) {
		t.Fatalf("%s updated at %v, not after %s at %v", waiting, page.Sessions[0].UpdatedAt, other, page.Sessions[1].UpdatedAt)
	}
}

// 50 concurrent pops on 50 items return 50 distinct items and leave the
// session empty.
func TestConcurrentPops(t *testing.T) {
	eachBackend(t, func(t *testing.T, db *bun.DB) {
		st := newStore(t, db)
		for round := range 3 {
			s := st.Session(fmt.Sprintf("pops-%d", round))
			const n = 50
			mustAdd(t, s, batch("p", n))
			popped := make([]json.RawMessage, n)
			noErrors(t, parallel(n, func(i int) error {
				var err error
				popped[i], err = s.PopItem(context.Background())
				return err
			}))
			seen := map[int]bool{}
			for i, p := range popped {
				if p == nil {
					t.Fatalf("round %d: pop %d returned nil while items remained", round, i)
				}
				it := decode(t, p)
				if seen[it.N] {
					t.Fatalf("round %d: item %d popped twice", round, it.N)
				}
				seen[it.N] = true
			}
			if got := mustGet(t, s, 0); len(got) != 0 {
				t.Fatalf("round %d: %d items left after %d pops: %s", round, len(got), n, got)
			}
			if p, err := s.PopItem(context.Background()); p != nil || err != nil {
				t.Fatalf("round %d: PopItem on the emptied session = %s, %v", round, p, err)
			}
		}
	})
}

// 20 goroutines adding to a brand-new session all succeed, and there is one
// session row.
func TestConcurrentFirstWrite(t *testing.T) {
	eachBackend(t, func(t *testing.T, db *bun.DB) {
		st := newStore(t, db)
		for round := range 3 {
			id := fmt.Sprintf("first-write-%d", round)
			noErrors(t, parallel(20, func(i int) error {
				return st.Session(id).AddItems(context.Background(), batch(fmt.Sprint(i), 1))
			}))
			sessions, messages := rowCounts(t, db, id)
			if sessions != 1 || messages != 20 {
				t.Fatalf("round %d: %d session rows and %d items; want 1 and 20", round, sessions, messages)
			}
		}
	})
}

// 10 goroutines calling CreateTables at once on an empty database all
// succeed.
func TestConcurrentCreateTables(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			for round := range 3 {
				db := b.open(t)
				st, err := bunstore.New(db)
				if err != nil {
					t.Fatal(err)
				}
				noErrors(t, parallel(10, func(int) error { return st.CreateTables(context.Background()) }))
				mustAdd(t, st.Session("s"), batch("x", 1))
				if got := mustGet(t, st.Session("s"), 0); len(got) != 1 {
					t.Fatalf("round %d: %d items", round, len(got))
				}
			}
		})
	}
}

// A batch of 20,000 items is stored whole and in order (SQLite limits the
// parameters of one statement; PostgreSQL gets them as one text[]).
func TestLargeBatch(t *testing.T) {
	eachBackend(t, func(t *testing.T, db *bun.DB) {
		st := newStore(t, db)
		s := st.Session("large")
		const n = 20000
		items := batch("l", n)
		mustAdd(t, s, items)
		wantItems(t, mustGet(t, s, 0), items)
		wantItems(t, mustGet(t, s, 20), items[n-20:])
		if got, err := s.PopItem(context.Background()); err != nil || string(got) != string(items[n-1]) {
			t.Fatalf("PopItem = %s, %v", got, err)
		}
	})
}
