package sqlitedb_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/uptrace/bun/dialect"

	"github.com/lakesession/lakesession/bunstore/sqlitedb"
)

func TestOpenSettings(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sessions.db")
	db, err := sqlitedb.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if db.Dialect().Name() != dialect.SQLite {
		t.Fatalf("dialect %s", db.Dialect().Name())
	}
	ctx := context.Background()
	want := map[string]string{
		"foreign_keys": "1",
		"journal_mode": "wal",
		"busy_timeout": "5000",
		"synchronous":  "1", // NORMAL
	}
	for name, w := range want {
		var got string
		if err := db.QueryRowContext(ctx, "PRAGMA "+name).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != w {
			t.Errorf("PRAGMA %s = %s, want %s", name, got, w)
		}
	}
	if n := db.DB.Stats().MaxOpenConnections; n != 1 {
		t.Errorf("MaxOpenConnections = %d, want 1", n)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("the file was not created: %v", err)
	}
}

// Foreign keys cascade: deleting a parent row deletes its children.
func TestForeignKeysCascade(t *testing.T) {
	db, err := sqlitedb.Open(filepath.Join(t.TempDir(), "fk.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	for _, q := range []string{
		"CREATE TABLE p (id TEXT PRIMARY KEY)",
		"CREATE TABLE c (id INTEGER PRIMARY KEY, p TEXT NOT NULL REFERENCES p (id) ON DELETE CASCADE)",
		"INSERT INTO p VALUES ('x')",
		"INSERT INTO c (p) VALUES ('x'), ('x')",
		"DELETE FROM p",
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	var n int
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM c").Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d child rows left, %v", n, err)
	}
	if _, err := db.ExecContext(ctx, "INSERT INTO c (p) VALUES ('missing')"); err == nil {
		t.Fatal("a row referencing a missing parent was accepted")
	}
}

// Paths with characters that mean something in a URI name the file they
// spell.
func TestOpenPathWithURICharacters(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"a?b.db", "c#d.db", "e%20f.db", "g h.db", "mode=ro.db"} {
		path := filepath.Join(dir, name)
		db, err := sqlitedb.Open(path)
		if err != nil {
			t.Fatalf("Open(%q): %v", path, err)
		}
		if _, err := db.ExecContext(context.Background(), "CREATE TABLE t (x INTEGER)"); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		db.Close()
		if _, err := os.Stat(path); err != nil {
			t.Errorf("Open(%q) did not create that file: %v", path, err)
		}
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if n := e.Name(); !strings.HasSuffix(n, ".db") && !strings.HasSuffix(n, "-wal") && !strings.HasSuffix(n, "-shm") {
			t.Errorf("unexpected file %q", n)
		}
	}
}

func TestOpenErrors(t *testing.T) {
	if _, err := sqlitedb.Open(""); err == nil || !strings.Contains(err.Error(), "the path is empty") {
		t.Errorf("Open(\"\") = %v", err)
	}
	dir := t.TempDir()
	if _, err := sqlitedb.Open(filepath.Join(dir, "no", "such", "dir", "x.db")); err == nil || !strings.Contains(err.Error(), "sqlitedb: open") {
		t.Errorf("Open in a missing directory = %v", err)
	}
}

// The in-memory database keeps its data across calls: it lives on one
// connection.
func TestMemory(t *testing.T) {
	db, err := sqlitedb.Open(sqlitedb.Memory)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	if _, err := db.ExecContext(ctx, "CREATE TABLE t (x INTEGER)"); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := db.ExecContext(ctx, "INSERT INTO t VALUES (?)", i); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	var n int
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM t").Scan(&n); err != nil || n != 20 {
		t.Fatalf("count = %d, %v; want 20", n, err)
	}
}

// A caller waiting behind a transaction of this process gives up at its
// context's deadline (it waits in the pool, not in SQLite's busy handler).
func TestWaitHonoursContext(t *testing.T) {
	db, err := sqlitedb.Open(filepath.Join(t.TempDir(), "wait.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tx, err := db.BeginTx(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = db.ExecContext(ctx, "CREATE TABLE t (x INTEGER)")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Exec while a transaction is open: %v; want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("waited %v", d)
	}
}

// Two handles on one file, like two processes: a write waits for the
// other's transaction (transactions begin IMMEDIATE, with a busy timeout)
// instead of failing.
func TestTwoHandlesWaitForEachOther(t *testing.T) {
	path := filepath.Join(t.TempDir(), "shared.db")
	a, err := sqlitedb.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := sqlitedb.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()
	if _, err := a.ExecContext(ctx, "CREATE TABLE t (x INTEGER)"); err != nil {
		t.Fatal(err)
	}
	tx, err := a.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO t VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := b.ExecContext(ctx, "INSERT INTO t VALUES (2)")
		done <- err
	}()
	time.Sleep(100 * time.Millisecond)
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("the second writer failed instead of waiting: %v", err)
	}
	var n int
	if err := b.QueryRowContext(ctx, "SELECT count(*) FROM t").Scan(&n); err != nil || n != 2 {
		t.Fatalf("count = %d, %v", n, err)
	}
}
