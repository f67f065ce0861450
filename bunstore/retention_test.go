package bunstore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/DATA-DOG/go-sqlmock"
	"github.com/uptrace/bun"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/lakesession/lakesession/bunstore"
	"github.com/lakesession/lakesession/internal/faultproxy"
)

// The retention tests use tables of their own names.
const (
	retSessions = "ret_sessions"
	retMessages = "ret_messages"
)

func newRetStore(t *testing.T, db bun.IDB) *bunstore.Store {
	t.Helper()
	return newStore(t, db, bunstore.WithTables(retSessions, retMessages))
}

// seedOld writes n sessions prefix0..prefix(n-1) of k items each, item j
// being item("old", j), created and last updated an hour ago, with SQL.
func seedOld(t *testing.T, db bun.IDB, prefix string, n, k int) {
	t.Helper()
	var stmts []string
	if isPG(db) {
		stmts = []string{
			`INSERT INTO ret_sessions (session_id, created_at, updated_at)
			SELECT ? || g, LOCALTIMESTAMP - interval '1 hour', LOCALTIMESTAMP - interval '1 hour'
			FROM generate_series(0, ? - 1) g`,
			`INSERT INTO ret_messages (session_id, message_data, created_at)
			SELECT ? || g, '{"role":"user","tag":"old","n":' || j || '}', LOCALTIMESTAMP - interval '1 hour'
			FROM generate_series(0, ? - 1) g, generate_series(0, ? - 1) j ORDER BY g, j`,
		}
	} else {
		stmts = []string{
			`WITH RECURSIVE g(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM g WHERE n + 1 < ?)
			INSERT INTO ret_sessions (session_id, created_at, updated_at)
			SELECT ? || n, datetime('now', '-1 hour'), datetime('now', '-1 hour') FROM g`,
			`WITH RECURSIVE g(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM g WHERE n + 1 < ?),
			j(k) AS (SELECT 0 UNION ALL SELECT k + 1 FROM j WHERE k + 1 < ?)
			INSERT INTO ret_messages (session_id, message_data, created_at)
			SELECT ? || n, '{"role":"user","tag":"old","n":' || k || '}', datetime('now', '-1 hour')
			FROM g, j ORDER BY n, k`,
		}
	}
	args := [][]any{{prefix, n}, {prefix, n, k}}
	if !isPG(db) {
		args = [][]any{{n, prefix}, {n, k, prefix}}
	}
	if k == 0 {
		stmts = stmts[:1]
	}
	for i, stmt := range stmts {
		if _, err := db.ExecContext(context.Background(), stmt, args[i]...); err != nil {
			t.Fatalf("seed %s: %v", prefix, err)
		}
	}
}

// txDeletes is what one committed transaction deleted: session rows, and
// items per session.
type txDeletes struct {
	sessions map[string]bool
	items    map[string]int
}

func (d *txDeletes) add(table, session string) {
	if d.sessions == nil {
		d.sessions, d.items = map[string]bool{}, map[string]int{}
	}
	if table == retSessions {
		d.sessions[session] = true
	} else {
		d.items[session]++
	}
}

// watchDeletes records the rows deleted from the retention tables, per
// committed transaction, and returns a function that reports them. On
// PostgreSQL, row triggers log txid_current() with each deleted row in a
// table of the test's database (a rolled-back transaction takes its log
// rows with it); on SQLite, the driver's pre-update and commit hooks on the
// single connection of sqlitedb group the deletes by transaction.
func watchDeletes(t *testing.T, db *bun.DB) func() []txDeletes {
	t.Helper()
	ctx := context.Background()
	if isPG(db) {
		for _, stmt := range []string{
			`CREATE TABLE ret_log (txid bigint NOT NULL, tbl text NOT NULL, session_id text NOT NULL)`,
			`CREATE FUNCTION ret_log() RETURNS trigger LANGUAGE plpgsql AS $$
			BEGIN
				INSERT INTO ret_log VALUES (txid_current(), TG_TABLE_NAME, OLD.session_id);
				RETURN OLD;
			END $$`,
			`CREATE TRIGGER ret_log AFTER DELETE ON ret_sessions FOR EACH ROW EXECUTE FUNCTION ret_log()`,
			`CREATE TRIGGER ret_log AFTER DELETE ON ret_messages FOR EACH ROW EXECUTE FUNCTION ret_log()`,
		} {
			if _, err := db.ExecContext(ctx, stmt); err != nil {
				t.Fatal(err)
			}
		}
		return func() []txDeletes {
			rows, err := db.QueryContext(ctx, `SELECT txid, tbl, session_id FROM ret_log ORDER BY txid`)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			var (
				out  []txDeletes
				last int64 = -1
			)
			for rows.Next() {
				var (
					txid        int64
					tbl, sessID string
				)
				if err := rows.Scan(&txid, &tbl, &sessID); err != nil {
					t.Fatal(err)
				}
				if txid != last {
					out = append(out, txDeletes{})
					last = txid
				}
				out[len(out)-1].add(tbl, sessID)
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			return out
		}
	}
	var (
		mu        sync.Mutex
		pending   txDeletes
		committed []txDeletes
	)
	conn, err := db.DB.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	err = conn.Raw(func(dc any) error {
		h, ok := dc.(sqlite.HookRegisterer)
		if !ok {
			return fmt.Errorf("the SQLite driver connection %T has no hooks", dc)
		}
		h.RegisterPreUpdateHook(func(d sqlite.SQLitePreUpdateData) {
			if d.Op != sqlite3.SQLITE_DELETE || (d.TableName != retSessions && d.TableName != retMessages) {
				return
			}
			row := make([]any, d.Count())
			if err := d.Old(row...); err != nil {
				panic(err)
			}
			col := 0 // session_id: the first column of the sessions table
			if d.TableName == retMessages {
				col = 1 // (id, session_id, ...)
			}
			mu.Lock()
			pending.add(d.TableName, fmt.Sprint(row[col]))
			mu.Unlock()
		})
		h.RegisterCommitHook(func() int32 {
			mu.Lock()
			if pending.sessions != nil {
				committed = append(committed, pending)
			}
			pending = txDeletes{}
			mu.Unlock()
			return 0
		})
		h.RegisterRollbackHook(func() {
			mu.Lock()
			pending = txDeletes{}
			mu.Unlock()
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return func() []txDeletes {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(committed)
	}
}

// checkDeletes fails t when a transaction deleted more than maxSessions
// session rows, or deleted items of a session whose row it did not delete,
// or when a session's row or items were deleted by more than one
// transaction. It returns the number of transactions that deleted a
// session, and the sessions and items they deleted.
func checkDeletes(t *testing.T, txs []txDeletes, maxSessions int) (batches int, sessions, items int64) {
	t.Helper()
	by := map[string]int{} // session -> the transaction that deleted its row
	for i, tx := range txs {
		if len(tx.sessions) > maxSessions {
			t.Errorf("transaction %d deleted %d sessions; the batch is %d", i, len(tx.sessions), maxSessions)
		}
		for id := range tx.sessions {
			if j, ok := by[id]; ok {
				t.Errorf("session %s deleted by transactions %d and %d", id, j, i)
			}
			by[id] = i
		}
		for id, n := range tx.items {
			if !tx.sessions[id] {
				t.Errorf("transaction %d deleted %d items of session %s but not its row: part of a session", i, n, id)
			}
			items += int64(n)
		}
		if len(tx.sessions) > 0 {
			batches++
			sessions += int64(len(tx.sessions))
		}
	}
	return batches, sessions, items
}

// progressLog collects PruneProgress reports and checks that they add up.
type progressLog []bunstore.PruneProgress

func (p *progressLog) add(pr bunstore.PruneProgress) { *p = append(*p, pr) }

func (p progressLog) check(t *testing.T, res bunstore.PruneResult) {
	t.Helper()
	var sum bunstore.PruneResult
	for i, pr := range p {
		sum.Batches++
		sum.Sessions += pr.Sessions
		sum.Items += pr.Items
		if pr.Batch != i+1 || pr.Total != sum || pr.Sessions <= 0 {
			t.Fatalf("report %d = %+v; want batch %d with running total %+v", i, pr, i+1, sum)
		}
	}
	if sum != res {
		t.Fatalf("reports add up to %+v; the result is %+v", sum, res)
	}
}

// A prune deletes at most BatchSize sessions per transaction, each session
// with all its items in the transaction that deletes its row (a session of
// 3,000 items too), and keeps the sessions updated since the cutoff. The
// sessions share one updated_at, so batches continue by session id.
func TestPruneSessionsBatches(t *testing.T) {
	eachBackend(t, func(t *testing.T, db *bun.DB) {
		st := newRetStore(t, db)
		ctx := context.Background()
		seedOld(t, db, "old-", 50, 3)
		seedOld(t, db, "big-", 1, 3000)
		for _, id := range []string{"fresh-1", "fresh-2"} {
			mustAdd(t, st.Session(id), batch(id, 2))
		}
		deletes := watchDeletes(t, db)

		var progress progressLog
		res, err := st.PruneSessions(ctx, bunstore.PruneOptions{
			Before: time.Now().Add(-30 * time.Minute), BatchSize: 7, Progress: progress.add,
		})
		want := bunstore.PruneResult{Sessions: 51, Items: 50*3 + 3000, Batches: 8}
		if err != nil || res != want {
			t.Fatalf("PruneSessions = %+v, %v; want %+v", res, err, want)
		}
		progress.check(t, res)
		batches, sessions, items := checkDeletes(t, deletes(), 7)
		if batches != 8 || sessions != want.Sessions || items != want.Items {
			t.Fatalf("the database saw %d transactions delete %d sessions and %d items; want %+v", batches, sessions, items, want)
		}
		for _, id := range []string{"fresh-1", "fresh-2"} {
			wantItems(t, mustGet(t, st.Session(id), 0), batch(id, 2))
		}
		if n := count(t, db, "SELECT count(*) FROM ret_sessions"); n != 2 {
			t.Fatalf("%d sessions left; want the 2 fresh ones", n)
		}
		if n := count(t, db, "SELECT count(*) FROM ret_messages"); n != 4 {
			t.Fatalf("%d items left; want those of the 2 fresh sessions", n)
		}
	})
}

// DeleteSessions deletes at most DefaultPruneBatchSize (1,000) sessions per
// transaction: 2,500 sessions take three.
func TestDeleteSessionsBatches(t *testing.T) {
	eachBackend(t, func(t *testing.T, db *bun.DB) {
		st := newRetStore(t, db)
		seedOld(t, db, "s", 2500, 1)
		deletes := watchDeletes(t, db)
		n, err := st.DeleteSessions(context.Background(), time.Now().Add(-30*time.Minute))
		if err != nil || n != 2500 {
			t.Fatalf("DeleteSessions = %d, %v; want 2500", n, err)
		}
		batches, sessions, items := checkDeletes(t, deletes(), bunstore.DefaultPruneBatchSize)
		if batches != 3 || sessions != 2500 || items != 2500 {
			t.Fatalf("the database saw %d transactions delete %d sessions and %d items; want 3, 2500, 2500", batches, sessions, items)
		}
	})
}

// While a prune with small batches runs, writers keep adding batches to
// the old sessions: after each batch of the prune, a few writes to random
// sessions are let through, and the next batch starts once they have
// begun, so that they race with it.
// Afterwards every session has either all its old items (it was written
// before the prune reached it, and kept) or none of them (removed whole,
// then started afresh by later writes, with a new created_at); every batch
// a writer stored is there, whole and in order; and the prune's counts are
// those of the removed sessions.
func TestPruneWhileWriting(t *testing.T) {
	eachBackend(t, func(t *testing.T, db *bun.DB) {
		st := newRetStore(t, db)
		ctx := context.Background()
		const (
			sessions = 150
			oldItems = 4
			writers  = 8
			perBatch = 4 // writes let through after each batch of the prune
		)
		seedOld(t, db, "s", sessions, oldItems)
		deletes := watchDeletes(t, db)
		start := time.Now()
		db.DB.SetMaxIdleConns(writers + 2) // no new connection for each burst of writes

		var (
			mu       sync.Mutex
			stored   = map[string][]string{} // session -> tags of its stored batches
			tokens   = make(chan struct{}, sessions*perBatch)
			started  = make(chan struct{}, sessions*perBatch)
			stop     = make(chan struct{})
			wg       sync.WaitGroup
			writeErr = make(chan error, writers)
		)
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := rand.New(rand.NewPCG(uint64(w), 1))
				for n := 0; ; n++ {
					select {
					case <-stop:
						return
					case <-tokens:
					}
					started <- struct{}{}
					id := fmt.Sprintf("s%d", r.IntN(sessions))
					tag := fmt.Sprintf("w%d-%d", w, n)
					if err := st.Session(id).AddItems(ctx, batch(tag, 3)); err != nil {
						writeErr <- err
						return
					}
					mu.Lock()
					stored[id] = append(stored[id], tag)
					mu.Unlock()
				}
			}()
		}
		res, err := st.PruneSessions(ctx, bunstore.PruneOptions{
			Before: start.Add(-30 * time.Minute), BatchSize: 3,
			Progress: func(bunstore.PruneProgress) {
				for range perBatch {
					tokens <- struct{}{}
				}
				for range perBatch {
					select {
					case <-started:
					case <-time.After(10 * time.Second):
						t.Error("the writers did not start their writes")
						return
					}
				}
			},
		})
		for len(tokens) > 0 && len(writeErr) == 0 { // the writes of the last batch
			time.Sleep(time.Millisecond)
		}
		close(stop)
		wg.Wait()
		close(writeErr)
		for err := range writeErr {
			t.Fatalf("AddItems: %v", err)
		}
		if err != nil {
			t.Fatalf("PruneSessions: %v", err)
		}

		info := map[string]bunstore.SessionInfo{}
		for opts := (bunstore.ListOptions{Limit: bunstore.MaxListLimit}); ; {
			page, err := st.ListSessions(ctx, opts)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range page.Sessions {
				info[s.ID] = s
			}
			if opts.Cursor = page.NextCursor; opts.Cursor == "" {
				break
			}
		}
		var kept, removed, restarted int64
		for i := range sessions {
			id := fmt.Sprintf("s%d", i)
			items := mustGet(t, st.Session(id), 0)
			old := 0
			for old < len(items) && decode(t, items[old]).Tag == "old" {
				if decode(t, items[old]).N != old {
					t.Fatalf("%s: old item %d is %s", id, old, items[old])
				}
				old++
			}
			// The writers' batches follow, whole and in order.
			got := map[string]bool{}
			for j := old; j < len(items); j += 3 {
				tag := decode(t, items[j]).Tag
				if j+3 > len(items) || got[tag] {
					t.Fatalf("%s: batch %s is not whole: %s", id, tag, items)
				}
				wantItems(t, items[j:j+3], batch(tag, 3))
				got[tag] = true
			}
			for _, tag := range stored[id] {
				if !got[tag] {
					t.Fatalf("%s: the stored batch %s is missing (items %s)", id, tag, items)
				}
			}
			if len(got) != len(stored[id]) {
				t.Fatalf("%s: %d batches, %d stored", id, len(got), len(stored[id]))
			}
			s, exists := info[id]
			switch {
			case old == oldItems:
				kept++
				if !exists || s.CreatedAt.After(start.Add(-30*time.Minute)) {
					t.Fatalf("%s kept its old items but its row is %+v (exists %v)", id, s, exists)
				}
			case old == 0:
				removed++
				if len(got) > 0 {
					restarted++
					if !exists || s.CreatedAt.Before(start.Add(-time.Minute)) {
						t.Fatalf("%s lost its old items but kept its old row %+v: part of the session was deleted", id, s)
					}
				} else if exists {
					t.Fatalf("%s has no items but a row %+v", id, s)
				}
			default:
				t.Fatalf("%s has %d of its %d old items: part of the session was deleted", id, old, oldItems)
			}
		}
		if res.Sessions != removed || res.Items != removed*oldItems {
			t.Fatalf("PruneSessions = %+v; %d sessions were removed, with %d items each", res, removed, oldItems)
		}
		if _, n, _ := checkDeletes(t, deletes(), 3); n != removed {
			t.Fatalf("the database saw %d sessions deleted; %d were removed", n, removed)
		}
		t.Logf("%d sessions kept, %d removed (%d of them started again)", kept, removed, restarted)
		if kept == 0 || removed == 0 || restarted == 0 {
			t.Fatal("the writes did not both keep sessions and start removed ones again: the test proved too little")
		}
	})
}

// A session whose write is in progress (its row locked by AddItems) is
// skipped, not waited for, and kept with all its items once the write
// commits.
func TestPruneSkipsSessionBeingWritten(t *testing.T) {
	db := openPG(t)
	st := newRetStore(t, db)
	ctx := context.Background()
	seedOld(t, db, "s", 5, 2)

	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	txStore, err := bunstore.New(tx, bunstore.WithTables(retSessions, retMessages))
	if err != nil {
		t.Fatal(err)
	}
	mustAdd(t, txStore.Session("s2"), batch("new", 2)) // holds s2's row until commit

	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	res, err := st.PruneSessions(pctx, bunstore.PruneOptions{Before: time.Now().Add(-30 * time.Minute), BatchSize: 1})
	if err != nil || res.Sessions != 4 || res.Items != 8 {
		t.Fatalf("PruneSessions while s2 is written = %+v, %v; want the 4 other sessions removed without waiting", res, err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	wantItems(t, mustGet(t, st.Session("s2"), 0), append(batch("old", 2), batch("new", 2)...))
}

// A write that comes while a batch holds its session waits for the batch
// and then starts the session afresh with only its own items.
func TestPruneWriterWaitsAndRestarts(t *testing.T) {
	db := openPG(t)
	st := newRetStore(t, db)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	seedOld(t, db, "s", 3, 2)
	// Deleting s1's items waits for an advisory lock the test holds: the
	// batch then stops between s1's items and s1's row until the test lets
	// it go. A prune that did not hold s1's row by then would let AddItems
	// through, which would touch the old row and keep it without its old
	// items.
	for _, stmt := range []string{
		`CREATE FUNCTION ret_hold() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN PERFORM pg_advisory_xact_lock_shared(4242); RETURN OLD; END $$`,
		`CREATE TRIGGER ret_hold AFTER DELETE ON ret_messages FOR EACH ROW
		WHEN (OLD.session_id = 's1') EXECUTE FUNCTION ret_hold()`,
	} {
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			t.Fatal(err)
		}
	}
	hold, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer hold.Close()
	if _, err := hold.ExecContext(ctx, `SELECT pg_advisory_lock(4242)`); err != nil {
		t.Fatal(err)
	}
	// waiting returns once a backend of the test's database waits on
	// event; it fails t when done delivers first.
	waiting := func(event string, done <-chan error) {
		t.Helper()
		for {
			if count(t, db, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event = ?`, event) > 0 {
				return
			}
			select {
			case err := <-done:
				t.Fatalf("returned (%v) before any backend waited on %s", err, event)
			case <-ctx.Done():
				t.Fatalf("no backend waits on %s", event)
			case <-time.After(10 * time.Millisecond):
			}
		}
	}

	pruned := make(chan error, 1)
	var res bunstore.PruneResult
	go func() {
		var err error
		res, err = st.PruneSessions(ctx, bunstore.PruneOptions{Before: time.Now().Add(-30 * time.Minute)})
		pruned <- err
	}()
	waiting("advisory", pruned) // the batch holds s0, s1 and s2
	added := make(chan error, 1)
	go func() { added <- st.Session("s1").AddItems(ctx, batch("late", 2)) }()
	waiting("transactionid", added) // AddItems waits for the batch
	if _, err := hold.ExecContext(ctx, `SELECT pg_advisory_unlock(4242)`); err != nil {
		t.Fatal(err)
	}
	if err := <-pruned; err != nil || res.Sessions != 3 || res.Items != 6 {
		t.Fatalf("PruneSessions = %+v, %v; want 3 sessions and 6 items", res, err)
	}
	if err := <-added; err != nil {
		t.Fatalf("AddItems after the batch: %v", err)
	}
	wantItems(t, mustGet(t, st.Session("s1"), 0), batch("late", 2))
	page, err := st.ListSessions(ctx, bunstore.ListOptions{})
	if err != nil || len(page.Sessions) != 1 || !near(page.Sessions[0].CreatedAt, time.Now(), time.Minute) {
		t.Fatalf("ListSessions = %+v, %v; want s1 alone, created now", page.Sessions, err)
	}
}

// A dry run counts, in batches, exactly what a real run then removes, and
// writes nothing.
func TestPruneDryRun(t *testing.T) {
	eachBackend(t, func(t *testing.T, db *bun.DB) {
		st := newRetStore(t, db)
		ctx := context.Background()
		seedOld(t, db, "old-", 10, 3)
		seedOld(t, db, "empty-", 2, 0) // sessions whose items were popped
		mustAdd(t, st.Session("fresh"), batch("fresh", 2))
		deletes := watchDeletes(t, db)
		snapshot := func() string {
			var b strings.Builder
			rows, err := db.QueryContext(ctx, `SELECT s.session_id, CAST(s.updated_at AS TEXT), count(m.id)
				FROM ret_sessions s LEFT JOIN ret_messages m ON m.session_id = s.session_id
				GROUP BY s.session_id, s.updated_at ORDER BY s.session_id`)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			for rows.Next() {
				var id, updated string
				var n int
				if err := rows.Scan(&id, &updated, &n); err != nil {
					t.Fatal(err)
				}
				fmt.Fprintf(&b, "%s %s %d\n", id, updated, n)
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			return b.String()
		}
		before := snapshot()
		opts := bunstore.PruneOptions{Before: time.Now().Add(-30 * time.Minute), BatchSize: 3}
		var dry progressLog
		opts.DryRun, opts.Progress = true, dry.add
		got, err := st.PruneSessions(ctx, opts)
		want := bunstore.PruneResult{Sessions: 12, Items: 30, Batches: 4}
		if err != nil || got != want {
			t.Fatalf("PruneSessions(DryRun) = %+v, %v; want %+v", got, err, want)
		}
		dry.check(t, got)
		if after := snapshot(); after != before {
			t.Fatalf("the dry run changed the tables:\nbefore\n%s\nafter\n%s", before, after)
		}
		if txs := deletes(); len(txs) != 0 {
			t.Fatalf("the dry run deleted rows in %d transactions", len(txs))
		}

		var real progressLog
		opts.DryRun, opts.Progress = false, real.add
		res, err := st.PruneSessions(ctx, opts)
		if err != nil || res != want {
			t.Fatalf("PruneSessions = %+v, %v; want what the dry run counted, %+v", res, err, want)
		}
		real.check(t, res)
		if !slices.Equal(dry, real) {
			t.Fatalf("dry run reported %+v; the real run %+v", dry, real)
		}
	})
}

// Bad options are refused with an error that says what to set, before
// anything is read or written.
func TestPruneSessionsBadOptions(t *testing.T) {
	eachBackend(t, func(t *testing.T, db *bun.DB) {
		st := newRetStore(t, db)
		seedOld(t, db, "s", 3, 1)
		called := false
		progress := func(bunstore.PruneProgress) { called = true }
		cutoff := time.Now()
		for _, c := range []struct {
			opts bunstore.PruneOptions
			want string
		}{
			{bunstore.PruneOptions{Progress: progress}, "Before is zero; set it to the oldest last-update time to keep"},
			{bunstore.PruneOptions{Before: cutoff, BatchSize: -1, Progress: progress}, "BatchSize is -1; use 1 to 1000, or 0 for 1000"},
			{bunstore.PruneOptions{Before: cutoff, BatchSize: 1001, Progress: progress}, "BatchSize is 1001; use 1 to 1000, or 0 for 1000"},
			{bunstore.PruneOptions{Before: cutoff, BatchSize: 5000, DryRun: true, Progress: progress}, "BatchSize is 5000"},
		} {
			res, err := st.PruneSessions(context.Background(), c.opts)
			if err == nil || !strings.Contains(err.Error(), c.want) || res != (bunstore.PruneResult{}) {
				t.Errorf("PruneSessions(%+v) = %+v, %v; want an error saying %q", c.opts, res, err, c.want)
			}
		}
		if called {
			t.Error("Progress was called")
		}
		if n := count(t, db, "SELECT count(*) FROM ret_messages"); n != 3 {
			t.Fatalf("%d items left of 3", n)
		}
	})
}

// A context cancelled between batches stops the prune: the batches done
// stay done, the result counts them, and the error wraps the context's.
func TestPruneSessionsCancelled(t *testing.T) {
	eachBackend(t, func(t *testing.T, db *bun.DB) {
		st := newRetStore(t, db)
		seedOld(t, db, "s", 5, 2)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		res, err := st.PruneSessions(ctx, bunstore.PruneOptions{
			Before: time.Now(), BatchSize: 2,
			Progress: func(bunstore.PruneProgress) { cancel() },
		})
		if !errors.Is(err, context.Canceled) || res != (bunstore.PruneResult{Sessions: 2, Items: 4, Batches: 1}) {
			t.Fatalf("PruneSessions = %+v, %v; want the first batch and context.Canceled", res, err)
		}
		if n := count(t, db, "SELECT count(*) FROM ret_sessions"); n != 3 {
			t.Fatalf("%d sessions left; want 3", n)
		}
	})
}

// On a Store on the caller's transaction, every batch runs in that
// transaction: a rollback undoes the whole prune.
func TestPruneSessionsInCallersTransaction(t *testing.T) {
	eachBackend(t, func(t *testing.T, db *bun.DB) {
		newRetStore(t, db)
		seedOld(t, db, "s", 5, 2)
		ctx := context.Background()
		for _, commit := range []bool{false, true} {
			err := db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
				st, err := bunstore.New(tx, bunstore.WithTables(retSessions, retMessages))
				if err != nil {
					return err
				}
				res, err := st.PruneSessions(ctx, bunstore.PruneOptions{Before: time.Now(), BatchSize: 2})
				if err != nil {
					return err
				}
				if res != (bunstore.PruneResult{Sessions: 5, Items: 10, Batches: 3}) {
					return fmt.Errorf("PruneSessions = %+v", res)
				}
				if !commit {
					return errRollback
				}
				return nil
			})
			if commit && err != nil || !commit && !errors.Is(err, errRollback) {
				t.Fatalf("RunInTx (commit %v): %v", commit, err)
			}
			want := 5
			if commit {
				want = 0
			}
			if n := count(t, db, "SELECT count(*) FROM ret_sessions"); n != want {
				t.Fatalf("commit %v: %d sessions left; want %d", commit, n, want)
			}
		}
	})
}

// On SQLite, whose times have whole seconds, the cutoff is rounded down: a
// session updated within the cutoff's second is kept.
func TestPruneSessionsSQLiteSecond(t *testing.T) {
	db := openSQLite(t)
	st := newRetStore(t, db)
	mustAdd(t, st.Session("s"), batch("s", 1))
	if _, err := db.ExecContext(context.Background(), `UPDATE ret_sessions SET updated_at = '2025-01-01 12:00:00'`); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2025, 1, 1, 17, 30, 0, 0, time.FixedZone("IST", 5*3600+1800)) // 12:00:00 UTC
	for _, c := range []struct {
		before time.Time
		want   int64
	}{
		{at.Add(500 * time.Millisecond), 0},
		{at.Add(time.Second), 1},
	} {
		res, err := st.PruneSessions(context.Background(), bunstore.PruneOptions{Before: c.before})
		if err != nil || res.Sessions != c.want {
			t.Fatalf("PruneSessions(Before %v) = %+v, %v; want %d sessions", c.before, res, err, c.want)
		}
	}
}

// The SQL of a prune on PostgreSQL: per batch a transaction that locks the
// next sessions above the last key, skipping locked rows, then deletes
// their items and rows by id; a dry run reads without a transaction.
func TestMockPruneSessions(t *testing.T) {
	st, mock := newMock(t)
	ctx := context.Background()
	before := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	k1 := time.Date(2025, 1, 1, 8, 0, 0, 123456000, time.UTC)
	lock := `SELECT session_id, updated_at FROM "agent_sessions" WHERE updated_at < CAST(CAST($1 AS timestamptz) AS timestamp)`
	del := `WITH m AS (DELETE FROM "agent_messages" WHERE session_id = ANY(CAST($1 AS text[])) RETURNING 1), ` +
		`d AS (DELETE FROM "agent_sessions" WHERE session_id = ANY(CAST($2 AS text[])) RETURNING 1) ` +
		`SELECT (SELECT count(*) FROM d), (SELECT count(*) FROM m), txid_current()`

	mock.ExpectBegin()
	mock.ExpectQuery(sqlLike(lock+` ORDER BY updated_at, session_id LIMIT $2 FOR UPDATE SKIP LOCKED`)).WithArgs(before, 2).
		WillReturnRows(sqlmock.NewRows([]string{"session_id", "updated_at"}).AddRow("a", k1).AddRow("b", k1))
	mock.ExpectQuery(sqlLike(del)).WithArgs([]string{"a", "b"}, []string{"a", "b"}).
		WillReturnRows(sqlmock.NewRows([]string{"d", "m", "xid"}).AddRow(2, 5, 700))
	mock.ExpectCommit()
	mock.ExpectBegin()
	mock.ExpectQuery(sqlLike(lock+` AND (updated_at, session_id) > (CAST($2 AS timestamp), $3) ORDER BY updated_at, session_id LIMIT $4 FOR UPDATE SKIP LOCKED`)).
		WithArgs(before, k1, "b", 2).
		WillReturnRows(sqlmock.NewRows([]string{"session_id", "updated_at"}).AddRow("c", k1))
	mock.ExpectQuery(sqlLike(del)).WithArgs([]string{"c"}, []string{"c"}).
		WillReturnRows(sqlmock.NewRows([]string{"d", "m", "xid"}).AddRow(1, 1, 701))
	mock.ExpectCommit()
	res, err := st.PruneSessions(ctx, bunstore.PruneOptions{Before: before, BatchSize: 2})
	if want := (bunstore.PruneResult{Sessions: 3, Items: 6, Batches: 2}); err != nil || res != want {
		t.Fatalf("PruneSessions = %+v, %v; want %+v", res, err, want)
	}

	mock.ExpectQuery(sqlLike(`SELECT c.session_id, c.updated_at, (SELECT count(*) FROM "agent_messages" m WHERE m.session_id = c.session_id) FROM (`,
		lock, `LIMIT $2) c`)).WithArgs(before, 2).
		WillReturnRows(sqlmock.NewRows([]string{"session_id", "updated_at", "count"}).AddRow("a", k1, 4))
	res, err = st.PruneSessions(ctx, bunstore.PruneOptions{Before: before, BatchSize: 2, DryRun: true})
	if want := (bunstore.PruneResult{Sessions: 1, Items: 4, Batches: 1}); err != nil || res != want {
		t.Fatalf("PruneSessions(DryRun) = %+v, %v; want %+v", res, err, want)
	}
}

// A failed batch is rolled back; the result counts the batches committed
// before it, and the error says what failed.
func TestMockPruneSessionsFails(t *testing.T) {
	st, mock := newMock(t)
	before := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	mock.ExpectBegin()
	mock.ExpectQuery(sqlLike(`FOR UPDATE SKIP LOCKED`)).
		WillReturnRows(sqlmock.NewRows([]string{"session_id", "updated_at"}).AddRow("a", before))
	mock.ExpectQuery(sqlLike(`WITH m AS (DELETE`)).WillReturnRows(sqlmock.NewRows([]string{"d", "m", "xid"}).AddRow(1, 3, 700))
	mock.ExpectCommit()
	mock.ExpectBegin()
	mock.ExpectQuery(sqlLike(`FOR UPDATE SKIP LOCKED`)).
		WillReturnRows(sqlmock.NewRows([]string{"session_id", "updated_at"}).AddRow("b", before))
	mock.ExpectQuery(sqlLike(`WITH m AS (DELETE`)).WillReturnError(errDB)
	mock.ExpectRollback()
	res, err := st.PruneSessions(context.Background(), bunstore.PruneOptions{Before: before, BatchSize: 1})
	if !errors.Is(err, errDB) || !strings.HasPrefix(err.Error(), "prune sessions not updated since 2025-01-02T03:04:05Z: ") {
		t.Fatalf("error %v; want it to wrap the database's and say what failed", err)
	}
	if res != (bunstore.PruneResult{Sessions: 1, Items: 3, Batches: 1}) {
		t.Fatalf("result %+v; want the first batch", res)
	}
}

// Through Bun's formatting (a bun.IDB the store does not know), a dry run
// pages by its (updated_at, session_id) key and a prune by batches, as
// with driver-bound arguments.
func TestPruneThroughBunFormatting(t *testing.T) {
	eachBackend(t, func(t *testing.T, db *bun.DB) {
		st := newStore(t, idbOnly{db}, bunstore.WithTables(retSessions, retMessages))
		seedOld(t, db, "s", 5, 2)
		mustAdd(t, st.Session("fresh"), batch("fresh", 1))
		want := bunstore.PruneResult{Sessions: 5, Items: 10, Batches: 3}
		for _, dry := range []bool{true, false} {
			res, err := st.PruneSessions(context.Background(), bunstore.PruneOptions{
				Before: time.Now().Add(-30 * time.Minute), BatchSize: 2, DryRun: dry,
			})
			if err != nil || res != want {
				t.Fatalf("PruneSessions(DryRun %v) = %+v, %v; want %+v", dry, res, err, want)
			}
		}
		if n := count(t, db, "SELECT count(*) FROM ret_sessions"); n != 1 {
			t.Fatalf("%d sessions left; want the fresh one", n)
		}
	})
}

// On a *bun.DB, a batch that fails without committing (the server's own
// 40001 or 57P01, raised by a trigger on its DELETE, twice) is tried again
// on a fresh connection: every session is removed once, whole, by one
// committed transaction, and the counts are exact.
func TestRetentionRetriesFailedBatch(t *testing.T) {
	for _, tc := range []struct {
		call, code string
		want       bunstore.PruneResult
		statements int // DELETE statements on the items: the failed ones and one per batch
	}{
		{"PruneSessions", "40001", bunstore.PruneResult{Sessions: 7, Items: 14, Batches: 3}, 2 + 3},
		{"DeleteSessions", "57P01", bunstore.PruneResult{Sessions: 7, Items: 14, Batches: 1}, 2 + 1},
	} {
		t.Run(tc.call+"/"+tc.code, func(t *testing.T) {
			db := openPG(t)
			o := newOtelSDK(t)
			st := newStore(t, db, o.options(bunstore.WithTables(retSessions, retMessages))...)
			ctx := context.Background()
			seedOld(t, db, "s", 7, 2)
			deletes := watchDeletes(t, db)
			statements := injectFailuresOn(t, db, retMessages, "DELETE", tc.code, 2)
			o.ended()
			cutoff := time.Now().Add(-30 * time.Minute)
			var (
				res bunstore.PruneResult
				err error
			)
			if tc.call == "PruneSessions" {
				res, err = st.PruneSessions(ctx, bunstore.PruneOptions{Before: cutoff, BatchSize: 3})
			} else {
				res.Sessions, err = st.DeleteSessions(ctx, cutoff)
			}
			if err != nil || res.Sessions != tc.want.Sessions || tc.call == "PruneSessions" && res != tc.want {
				t.Fatalf("%s after two %s = %+v, %v; want %+v", tc.call, tc.code, res, err, tc.want)
			}
			if n := statements(); n != tc.statements {
				t.Errorf("%d DELETE statements ran; want %d (two failed, one per batch)", n, tc.statements)
			}
			size := 3
			if tc.call == "DeleteSessions" {
				size = bunstore.DefaultPruneBatchSize
			}
			batches, sessions, items := checkDeletes(t, deletes(), size)
			if got := (bunstore.PruneResult{Sessions: sessions, Items: items, Batches: batches}); got != tc.want {
				t.Fatalf("the database saw %+v committed; want %+v", got, tc.want)
			}
			if n := count(t, db, "SELECT count(*) FROM ret_sessions"); n != 0 {
				t.Fatalf("%d sessions left", n)
			}
			spans := o.ended()
			if len(spans) != 1 {
				t.Fatalf("%d spans, want 1", len(spans))
			}
			wantAttrs(t, tc.call, attrMap(spans[0].Attributes()), map[string]string{"lakesession.retries": "2",
				"lakesession.sessions": fmt.Sprint(tc.want.Sessions), "lakesession.items": fmt.Sprint(tc.want.Items),
				"lakesession.batches": fmt.Sprint(tc.want.Batches), "error.type": ""})
		})
	}
}

// Through a proxy that cuts the connection at chosen moments, on a real
// server: a dry run cut while it reads is read again; a batch cut after
// its COMMIT was sent (the server gets the COMMIT and commits) is counted,
// because the retry asks the server how the transaction ended, and the
// prune goes on with the next batch; a batch cut after its DELETE was sent
// (the server rolls it back) runs again. The counts are those of the
// transactions that committed, and each session is removed whole, once.
func TestRetentionLostConnection(t *testing.T) {
	o := newOtelSDK(t)
	st, p, direct := proxiedStore(t, o.options(bunstore.WithTables(retSessions, retMessages))...)
	ctx := context.Background()
	seedOld(t, direct, "s", 10, 3)
	deletes := watchDeletes(t, direct)
	opts := bunstore.PruneOptions{Before: time.Now().Add(-30 * time.Minute), BatchSize: 4}
	want := bunstore.PruneResult{Sessions: 10, Items: 30, Batches: 3}
	o.ended()
	// prune runs PruneSessions with the cut armed, checks that it fired, and
	// returns the result and the span's attributes.
	prune := func(what string, match func(msg []byte) bool) (bunstore.PruneResult, map[string]string) {
		t.Helper()
		p.CutAfterClientSends(match)
		res, err := st.PruneSessions(ctx, opts)
		if err != nil {
			t.Fatalf("PruneSessions with a %s cut: %v; want it retried", what, err)
		}
		if p.Armed() {
			p.CutAfterClientSends(nil)
			t.Fatalf("the %s cut did not fire", what)
		}
		spans := o.ended()
		if len(spans) != 1 {
			t.Fatalf("%d spans, want 1", len(spans))
		}
		attrs := attrMap(spans[0].Attributes())
		if attrs["lakesession.retries"] == "" {
			t.Errorf("PruneSessions with a %s cut: span attributes %v; want it to say it retried", what, attrs)
		}
		t.Logf("%s cut: %+v, %s retries", what, res, attrs["lakesession.retries"])
		return res, attrs
	}

	// The dry run's statement is cut as it is prepared.
	opts.DryRun = true
	if res, _ := prune("dry run", func(msg []byte) bool { return bytes.Contains(msg, []byte("SELECT c.session_id")) }); res != want {
		t.Fatalf("PruneSessions(DryRun) = %+v; want %+v", res, want)
	}
	opts.DryRun = false
	// The COMMIT of the first batch: a simple query "commit" (BEGIN says
	// "read committed").
	res, attrs := prune("COMMIT", func(msg []byte) bool { return bytes.Contains(msg, []byte("commit\x00")) })
	if res != want {
		t.Fatalf("PruneSessions = %+v; want %+v: the batch whose COMMIT was cut is not counted once", res, want)
	}
	wantAttrs(t, "PruneSessions", attrs, map[string]string{"lakesession.sessions": "10", "lakesession.items": "30", "lakesession.batches": "3"})
	if batches, sessions, items := checkDeletes(t, deletes(), 4); batches != 3 || sessions != 10 || items != 30 {
		t.Fatalf("the database saw %d transactions delete %d sessions and %d items; want 3, 10, 30", batches, sessions, items)
	}

	// The COMMIT of the first batch commits, and the server answers it
	// with FATAL 57P01 (terminated while it logged the COMMIT's duration):
	// no proof that it did not commit, so the retry asks the server too.
	seedOld(t, direct, "fatal-", 10, 3)
	p.FailAfterCommandComplete(func(msg []byte) bool { return bytes.Contains(msg, []byte("commit\x00")) },
		faultproxy.ErrorResponse("FATAL", "57P01", "terminating connection due to administrator command"))
	res, err := st.PruneSessions(ctx, opts)
	if err != nil || p.Armed() {
		t.Fatalf("PruneSessions with a COMMIT answered 57P01 = %+v, %v (fault armed: %v); want it retried", res, err, p.Armed())
	}
	o.ended()
	if res != want {
		t.Fatalf("PruneSessions = %+v; want %+v: the batch whose COMMIT was answered 57P01 is not counted once", res, want)
	}
	if batches, sessions, items := checkDeletes(t, deletes(), 4); batches != 6 || sessions != 20 || items != 60 {
		t.Fatalf("the database saw %d transactions delete %d sessions and %d items in all; want 6, 20, 60", batches, sessions, items)
	}

	// The DELETE of the first batch: its ids travel in its Bind message.
	seedOld(t, direct, "cutme-", 10, 3)
	res, _ = prune("DELETE", func(msg []byte) bool { return bytes.Contains(msg, []byte("cutme-1")) })
	waitIdle(t, direct)
	_, sessions, items := checkDeletes(t, deletes(), 4)
	if res.Sessions != sessions-20 || res.Items != items-60 {
		t.Fatalf("PruneSessions = %+v; the database saw %d sessions and %d items deleted", res, sessions-20, items-60)
	}
	// The retry skips sessions the cut transaction still locked, if the
	// server had not yet ended it: a later run removes them.
	left := int64(count(t, direct, "SELECT count(*) FROM ret_sessions"))
	if res.Sessions+left != 10 || left%4 != 0 {
		t.Fatalf("PruneSessions = %+v and %d sessions are left; want all 10, or a skipped batch left", res, left)
	}
	if left > 0 {
		t.Logf("the retry skipped the %d sessions the cut transaction still held", left)
		if again, err := st.PruneSessions(ctx, opts); err != nil || again.Sessions != left {
			t.Fatalf("PruneSessions again = %+v, %v; want the %d left", again, err, left)
		}
	}
}
