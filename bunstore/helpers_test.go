package bunstore_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/lakesession/lakesession/bunstore"
	"github.com/lakesession/lakesession/bunstore/sqlitedb"
	"github.com/lakesession/lakesession/internal/testdb"
)

// backend opens a fresh, empty database of one kind.
type backend struct {
	name string
	open func(t *testing.T) *bun.DB
}

var backends = []backend{
	{"postgres", openPG},
	{"sqlite", openSQLite},
}

// eachBackend runs f as a subtest on a fresh database of every kind.
func eachBackend(t *testing.T, f func(t *testing.T, db *bun.DB)) {
	t.Helper()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { f(t, b.open(t)) })
	}
}

// openPG returns a new empty PostgreSQL database (server TimeZone
// Asia/Kolkata under `make test`).
func openPG(t *testing.T) *bun.DB {
	t.Helper()
	return bun.NewDB(testdb.Open(t), pgdialect.New())
}

// openPGWith returns a pool on a new empty database whose connections set
// one extra DSN parameter, such as timezone.
func openPGWith(t *testing.T, key, value string) (*bun.DB, string) {
	t.Helper()
	dsn := testdb.WithParam(t, testdb.NewDatabase(t), key, value)
	sqldb, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sqldb.Close() })
	return bun.NewDB(sqldb, pgdialect.New()), dsn
}

// openSQLite returns a new empty SQLite file database, opened by sqlitedb.
func openSQLite(t *testing.T) *bun.DB {
	t.Helper()
	db, err := sqlitedb.Open(filepath.Join(t.TempDir(), "sessions.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func isPG(db bun.IDB) bool { return db.Dialect().Name() == dialect.PG }

// newStore returns a Store on db with its tables created.
func newStore(t *testing.T, db bun.IDB, opts ...bunstore.Option) *bunstore.Store {
	t.Helper()
	st, err := bunstore.New(db, opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := st.CreateTables(context.Background()); err != nil {
		t.Fatalf("CreateTables: %v", err)
	}
	return st
}

// item returns a compact test item.
func item(tag string, n int) json.RawMessage {
	return json.RawMessage(fmt.Sprintf(`{"role":"user","tag":%q,"n":%d}`, tag, n))
}

// batch returns n items tagged tag, numbered from 0.
func batch(tag string, n int) []json.RawMessage {
	out := make([]json.RawMessage, n)
	for i := range out {
		out[i] = item(tag, i)
	}
	return out
}

type taggedItem struct {
	Tag string `json:"tag"`
	N   int    `json:"n"`
}

func decode(t *testing.T, raw json.RawMessage) taggedItem {
	t.Helper()
	var it taggedItem
	if err := json.Unmarshal(raw, &it); err != nil {
		t.Fatalf("stored item %s: %v", raw, err)
	}
	return it
}

func mustAdd(t *testing.T, s *bunstore.Session, items []json.RawMessage) {
	t.Helper()
	if err := s.AddItems(context.Background(), items); err != nil {
		t.Fatalf("AddItems(%d items): %v", len(items), err)
	}
}

func mustGet(t *testing.T, s *bunstore.Session, limit int) []json.RawMessage {
	t.Helper()
	items, err := s.GetItems(context.Background(), limit)
	if err != nil {
		t.Fatalf("GetItems(%d): %v", limit, err)
	}
	return items
}

func wantItems(t *testing.T, got, want []json.RawMessage) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d items, want %d:\n got %s\nwant %s", len(got), len(want), got, want)
	}
	for i := range got {
		if string(got[i]) != string(want[i]) {
			t.Fatalf("item %d = %s, want %s\n got %s\nwant %s", i, got[i], want[i], got, want)
		}
	}
}

// count returns the result of a SELECT count(*) query.
func count(t *testing.T, db bun.IDB, query string, args ...any) int {
	t.Helper()
	var n int
	if err := db.QueryRowContext(context.Background(), query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// countIn returns count(t, db, pg) on PostgreSQL and count(t, db, sqlite)
// on SQLite: one question asked of either catalog.
func countIn(t *testing.T, db bun.IDB, pg, sqlite string) int {
	t.Helper()
	if isPG(db) {
		return count(t, db, pg)
	}
	return count(t, db, sqlite)
}

// defaultTables returns how many tables (on SQLite, objects of any kind)
// have a name that starts with agent.
func defaultTables(t *testing.T, db bun.IDB) int {
	t.Helper()
	return countIn(t, db,
		"SELECT count(*) FROM pg_tables WHERE tablename LIKE 'agent%'",
		"SELECT count(*) FROM sqlite_master WHERE name LIKE 'agent%'")
}

// rowCounts returns the number of session rows and item rows of a session in
// the default tables.
func rowCounts(t *testing.T, db bun.IDB, id string) (sessions, messages int) {
	t.Helper()
	return count(t, db, "SELECT count(*) FROM agent_sessions WHERE session_id = ?", id),
		count(t, db, "SELECT count(*) FROM agent_messages WHERE session_id = ?", id)
}

// parallel runs f(i) for i in [0, n) on n goroutines released at once, and
// returns the errors.
func parallel(n int, f func(i int) error) []error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs[i] = f(i)
		}()
	}
	close(start)
	wg.Wait()
	return errs
}

func noErrors(t *testing.T, errs []error) {
	t.Helper()
	for i, err := range errs {
		if err != nil {
			t.Errorf("goroutine %d: %v", i, err)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
}
