package main_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/uptrace/bun"

	"github.com/lakesession/lakesession/bunstore/sqlitedb"
	"github.com/lakesession/lakesession/migrations"
)

func openSQLite(t *testing.T, path string) *bun.DB {
	t.Helper()
	db, err := sqlitedb.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestSQLite(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "sessions.db")
	flag := "--sqlite=" + path

	// With nothing that says where to connect, the error says what to set.
	wantExit(t, lakesession(t, nil, "", "sessions", "list"), 2,
		"no database to connect to: pass --database-url URL (or set DATABASE_URL), --sqlite PATH, or a Lakebase target: --instance NAME (LAKEBASE_INSTANCE_NAME)")

	// Commands other than migrate up do not create a missing file.
	wantExit(t, lakesession(t, nil, "", "sessions", "list", flag), 2, "sessions.db does not exist", "migrate up --sqlite")
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("sessions list created the file: %v", err)
	}
	wantExit(t, lakesession(t, nil, "", "doctor", flag), 1, "problem  SQLite file: "+path+" does not exist")

	// A database without the tables: the error says how to create them.
	empty := filepath.Join(dir, "empty.db")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	wantExit(t, lakesession(t, nil, "", "sessions", "list", "--sqlite", empty), 1, "no such table", "the tables are missing: create them with `lakesession migrate up`")

	wantExit(t, mustRun(t, nil, "", "migrate", "up", flag), 0, "applied "+migrationName+" (group 1)")
	wantExit(t, mustRun(t, nil, "", "migrate", "status", flag), 0, "applied  "+migrationName+"  1", "1 applied, 0 pending")
	db := openSQLite(t, path)
	ms, err := appMigrator(db, migrations.SQLite).MigrationsWithStatus(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 1 || !ms[0].IsApplied() {
		t.Fatalf("an application sees %v", ms)
	}
	seed(t, db)

	// SQLite's times have whole seconds: sessions updated in one second
	// come by id, descending. The seed may straddle a second, so give the
	// three sessions one time.
	if _, err := db.Exec(`UPDATE agent_sessions SET updated_at = (SELECT max(updated_at) FROM agent_sessions)`); err != nil {
		t.Fatal(err)
	}
	r := mustRun(t, nil, "", "sessions", "list", flag)
	got := lines(r.stdout)
	if len(got) != 4 {
		t.Fatalf("list: %v", r)
	}
	for i, id := range []string{"s-beta", "s-alpha", `s "quoted" <id> ✓`} {
		if !strings.HasPrefix(got[i+1], id+" ") || !strings.HasSuffix(got[i+1], " "+strconv.Itoa(seedCount(id))) {
			t.Errorf("row %d = %q, want session %s with %d items", i+1, got[i+1], id, seedCount(id))
		}
	}
	r = mustRun(t, nil, "", "sessions", "show", "s-alpha", "--json", flag)
	if got, want := lines(r.stdout), slices.Concat(seedBatches["s-alpha"]...); !slices.Equal(got, want) {
		t.Errorf("show --json:\n%q\nwant\n%q", got, want)
	}
	wantExit(t, mustRun(t, nil, "", "sessions", "show", "s-alpha", flag), 0, "user: Hello I live in SF!\nassistant: café")

	// Export, import into a new file: the same bytes in the same order.
	all := mustRun(t, nil, "", "sessions", "export", "--all", flag)
	path2 := filepath.Join(dir, "copy.db")
	mustRun(t, nil, "", "migrate", "up", "--sqlite", path2)
	wantExit(t, mustRun(t, nil, all.stdout, "sessions", "import", "--sqlite", path2), 0, "imported 3 sessions, 8 items")
	if a, b := rowsOf(t, db.DB), rowsOf(t, openSQLite(t, path2).DB); !slices.Equal(a, b) || len(a) != 8 {
		t.Fatalf("the import differs from the original (%d and %d rows)", len(a), len(b))
	}
	wantExit(t, lakesession(t, nil, all.stdout, "sessions", "import", "--sqlite", path2), 1, "already exist")

	// Prune: one session idle for 40 days.
	if _, err := db.Exec(`UPDATE agent_sessions SET updated_at = datetime(updated_at, '-40 days') WHERE session_id = 's-beta'`); err != nil {
		t.Fatal(err)
	}
	wantExit(t, mustRun(t, nil, "", "prune", "--older-than", "30d", "--dry-run", flag), 0, "would delete 1 session, 2 items")
	if n := len(rowsOf(t, db.DB)); n != 8 {
		t.Fatalf("--dry-run deleted: %d rows left", n)
	}
	wantExit(t, mustRun(t, nil, "", "prune", "--older-than", "30d", flag), 0, "deleted 1 session, 2 items", "1 batch of at most 1000")
	if n := len(rowsOf(t, db.DB)); n != 6 {
		t.Fatalf("%d rows after the prune, want 6", n)
	}

	wantExit(t, mustRun(t, nil, "", "sessions", "delete", "s-alpha", flag), 0, "deleted 1 session, 4 items")
	if n := count(t, db.DB, "SELECT count(*) FROM agent_sessions WHERE session_id = 's-alpha'"); n != 0 {
		t.Fatal("s-alpha is still there")
	}

	wantExit(t, mustRun(t, nil, "", "doctor", flag), 0,
		"ok       SQLite file: "+path, "journal_mode wal",
		"ok       table shape: Python-compatible",
		"ok       indexes: idx_agent_messages_session_order (session_id, created_at, id) and idx_agent_sessions_updated (updated_at, session_id)",
		"ok       write access", "all 5 checks ok")

	wantExit(t, mustRun(t, nil, "", "migrate", "down", "--yes", flag), 0, "rolled back "+migrationName)
	wantExit(t, lakesession(t, nil, "", "doctor", flag), 1, "problem  tables: agent_sessions and agent_messages missing from", "fix: run `lakesession migrate up`")
	wantExit(t, lakesession(t, nil, "", "sessions", "list", flag, "--schema", "x"), 2, "--schema applies to PostgreSQL only")

	// Tables of another shape, without lakesession's indexes.
	other := filepath.Join(dir, "other.db")
	odb := openSQLite(t, other)
	execSQL(t, odb.DB,
		"CREATE TABLE agent_sessions (session_id TEXT PRIMARY KEY, created_at TIMESTAMP, updated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP NOT NULL)",
		"CREATE TABLE agent_messages (id INTEGER PRIMARY KEY, session_id TEXT NOT NULL, message_data BLOB NOT NULL, created_at TIMESTAMP NOT NULL)",
	)
	wantExit(t, lakesession(t, nil, "", "doctor", "--sqlite", other), 1,
		"problem  table shape: not the shape of the Python SQLAlchemySession's tables: agent_sessions.created_at may be NULL; agent_messages.message_data is BLOB, not TEXT; agent_messages.created_at has no default",
		"problem  indexes: agent_messages has no index on (session_id, created_at, id): reads of a session sort its items; agent_sessions has no index on (updated_at, session_id)",
		"ok       write access", "doctor found 2 problems (of 5 checks)")
}
