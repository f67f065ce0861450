package main_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"
	"github.com/uptrace/bun/dialect/pgdialect"
	"github.com/uptrace/bun/migrate"

	"github.com/lakesession/lakesession/bunstore"
	"github.com/lakesession/lakesession/migrations"
)

const migrationName = "20260601000000_lakesession_agent_tables"

// appMigrator is how an application runs the migrations itself, as package
// migrations documents.
func appMigrator(db *bun.DB, ms *migrate.Migrations) *migrate.Migrator {
	return migrate.NewMigrator(db, ms,
		migrate.WithTableName("lakesession_migrations"),
		migrate.WithLocksTableName("lakesession_migration_locks"))
}

func TestPostgresMigrate(t *testing.T) {
	t.Parallel()
	_, dsn := newDatabase(t)
	env := []string{"DATABASE_URL=" + tlsDSN(t, dsn)}
	db := openDB(t, dsn)
	bdb := bun.NewDB(db, pgdialect.New())
	ctx := context.Background()
	tables := func() int {
		return count(t, db, "SELECT count(*) FROM pg_tables WHERE tablename IN ('agent_sessions', 'agent_messages')")
	}

	r := mustRun(t, env, "", "migrate", "status")
	wantExit(t, r, 0, "pending  "+migrationName, "0 applied, 1 pending (bun/migrate table lakesession_migrations)")
	if n := count(t, db, "SELECT count(*) FROM pg_tables WHERE tablename = 'lakesession_migrations'"); n != 0 {
		t.Errorf("migrate status created bun/migrate's table")
	}

	r = mustRun(t, env, "", "migrate", "up")
	wantExit(t, r, 0, "applied "+migrationName+" (group 1)")
	if n := tables(); n != 2 {
		t.Fatalf("%d tables after migrate up", n)
	}
	// An application that runs the migrations itself sees them applied.
	ms, err := appMigrator(bdb, migrations.Postgres).MigrationsWithStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 1 || !ms[0].IsApplied() || ms[0].GroupID != 1 {
		t.Fatalf("the application sees %v", ms)
	}
	if g, err := appMigrator(bdb, migrations.Postgres).Migrate(ctx); err != nil || !g.IsZero() {
		t.Fatalf("the application's Migrate after the CLI's = %v, %v; want nothing to do", g, err)
	}

	r = mustRun(t, env, "", "migrate", "status")
	wantExit(t, r, 0, "applied  "+migrationName+"  1", "1 applied, 0 pending")
	wantExit(t, mustRun(t, env, "", "migrate", "up"), 0, "nothing to apply")

	// down drops every conversation: it needs --yes.
	r = lakesession(t, env, "", "migrate", "down")
	wantExit(t, r, 2, "pass --yes")
	if n := tables(); n != 2 {
		t.Fatalf("migrate down without --yes dropped tables")
	}
	r = mustRun(t, env, "", "migrate", "down", "--yes")
	wantExit(t, r, 0, "rolled back "+migrationName+" (group 1)")
	if n := tables(); n != 0 {
		t.Fatalf("%d tables after migrate down", n)
	}
	wantExit(t, mustRun(t, env, "", "migrate", "status"), 0, "pending  "+migrationName)

	// The application migrates; the CLI sees it.
	if _, err := appMigrator(bdb, migrations.Postgres).Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	wantExit(t, mustRun(t, env, "", "migrate", "status"), 0, "applied  "+migrationName)

	// The migrations make the default tables only.
	wantExit(t, lakesession(t, env, "", "migrate", "up", "--sessions-table", "chats"), 2, "create tables of other names")
}

// An application that discovers lakesession's migrations into its own
// collection records them in its own bun/migrate table; the CLI shares it
// with --migrations-table and --migration-locks-table. migrate down does
// not roll back lakesession's group when the application's migrations
// were applied with or after it: they may build on its tables.
func TestPostgresMigrateSharedTable(t *testing.T) {
	t.Parallel()
	_, dsn := newDatabase(t)
	env := []string{"DATABASE_URL=" + tlsDSN(t, dsn)}
	shared := []string{"--migrations-table", "bun_migrations", "--migration-locks-table", "bun_migration_locks"}
	db := openDB(t, dsn)
	ctx := context.Background()

	wantExit(t, mustRun(t, env, "", append([]string{"migrate", "up"}, shared...)...), 0, "applied "+migrationName+" (group 1)")
	// The application's collection: lakesession's files and its own, a
	// table that refers to agent_sessions, applied by its own migrator
	// (bun/migrate's default tables) in group 2.
	app := migrate.NewMigrations()
	files, err := migrations.Files(dialect.PG)
	if err != nil {
		t.Fatal(err)
	}
	if err := app.Discover(files); err != nil {
		t.Fatal(err)
	}
	if err := app.Discover(fstest.MapFS{
		"20270101000000_app_notes.up.sql":   {Data: []byte("CREATE TABLE app_notes (session_id VARCHAR REFERENCES agent_sessions (session_id))")},
		"20270101000000_app_notes.down.sql": {Data: []byte("DROP TABLE app_notes")},
	}); err != nil {
		t.Fatal(err)
	}
	g, err := migrate.NewMigrator(bun.NewDB(db, pgdialect.New()), app).Migrate(ctx)
	if err != nil || g.ID != 2 || len(g.Migrations) != 1 {
		t.Fatalf("the application's Migrate = %v, %v; want its own migration in group 2", g, err)
	}

	wantExit(t, mustRun(t, env, "", append([]string{"migrate", "status"}, shared...)...), 0,
		"applied  "+migrationName+"  1", "1 applied, 0 pending (bun/migrate table bun_migrations; it also records 1 other migration of the application's)")
	r := lakesession(t, env, "", append([]string{"migrate", "down", "--yes"}, shared...)...)
	wantExit(t, r, 1, "bun_migrations also records migrations that are not lakesession's, applied with or after its group 1: 20270101000000;",
		"nothing was rolled back: roll back with the application's own migrator")
	if n := count(t, db, "SELECT count(*) FROM pg_tables WHERE tablename IN ('agent_sessions', 'agent_messages', 'app_notes')"); n != 3 {
		t.Fatalf("%d of the 3 tables left after a refused migrate down", n)
	}
	if n := count(t, db, "SELECT count(*) FROM bun_migration_locks"); n != 0 {
		t.Fatalf("migrate down left its lock behind: %d rows", n)
	}
}

// In a schema of its own: migrate up creates it, and every command finds
// the tables there.
func TestPostgresSchema(t *testing.T) {
	t.Parallel()
	_, dsn := newDatabase(t)
	env := []string{"DATABASE_URL=" + tlsDSN(t, dsn)}
	db := openDB(t, dsn)
	wantExit(t, mustRun(t, env, "", "migrate", "up", "--schema", "agents"), 0, "created schema agents", "applied "+migrationName)
	if n := count(t, db, "SELECT count(*) FROM pg_tables WHERE schemaname = 'agents' AND tablename IN ('agent_sessions', 'agent_messages', 'lakesession_migrations')"); n != 3 {
		t.Fatalf("%d tables in schema agents", n)
	}
	if n := count(t, db, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"); n != 0 {
		t.Fatalf("%d tables in schema public", n)
	}
	wantExit(t, mustRun(t, env, "", "migrate", "status", "--schema", "agents"), 0, "applied  "+migrationName, "(bun/migrate table agents.lakesession_migrations)")
	wantExit(t, mustRun(t, env, "", "migrate", "status"), 0, "pending  "+migrationName)
	mustRun(t, env, `{"session_id":"in-schema","item":{"role":"user","content":"hi"}}`+"\n", "sessions", "import", "--schema", "agents")
	wantExit(t, mustRun(t, env, "", "sessions", "show", "in-schema", "--schema", "agents"), 0, "user: hi")
	wantExit(t, mustRun(t, env, "", "doctor", "--schema", "agents"), 0, "agents.agent_sessions and agents.agent_messages exist")
}

func TestPostgresSessions(t *testing.T) {
	t.Parallel()
	_, dsn := newDatabase(t)
	url := tlsDSN(t, dsn)
	env := []string{"DATABASE_URL=" + url}
	mustRun(t, env, "", "migrate", "up")
	db := openDB(t, dsn)
	bdb := bun.NewDB(db, pgdialect.New())
	seed(t, bdb)
	ctx := context.Background()

	t.Run("list", func(t *testing.T) {
		r := mustRun(t, nil, "", "sessions", "list", "--database-url", url)
		got := lines(r.stdout)
		if len(got) != 4 || !strings.HasPrefix(got[0], "SESSION") {
			t.Fatalf("list: %v", r)
		}
		// Newest first, with the item counts.
		for i, id := range []string{"s-alpha", `s "quoted" <id> ✓`, "s-beta"} {
			if !strings.HasPrefix(got[i+1], id+" ") || !strings.HasSuffix(got[i+1], fmt.Sprintf(" %d", seedCount(id))) {
				t.Errorf("row %d = %q, want session %s with %d items", i+1, got[i+1], id, seedCount(id))
			}
		}

		// --json: the same instants as the library's ListSessions, whatever
		// the server's time zone.
		store, err := bunstore.New(bdb)
		if err != nil {
			t.Fatal(err)
		}
		want, err := store.ListSessions(ctx, bunstore.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var page struct {
			Sessions []struct {
				SessionID string    `json:"session_id"`
				CreatedAt time.Time `json:"created_at"`
				UpdatedAt time.Time `json:"updated_at"`
				Items     int       `json:"items"`
			} `json:"sessions"`
			NextCursor string `json:"next_cursor"`
		}
		r = mustRun(t, env, "", "sessions", "list", "--json")
		if err := json.Unmarshal([]byte(r.stdout), &page); err != nil {
			t.Fatalf("list --json: %v: %v", err, r)
		}
		if len(page.Sessions) != 3 || page.NextCursor != "" {
			t.Fatalf("list --json: %v", r)
		}
		for i, s := range page.Sessions {
			w := want.Sessions[i]
			if s.SessionID != w.ID || !s.CreatedAt.Equal(w.CreatedAt) || !s.UpdatedAt.Equal(w.UpdatedAt) || s.Items != seedCount(w.ID) {
				t.Errorf("session %d = %+v, want %+v with %d items", i, s, w, seedCount(w.ID))
			}
			if time.Since(s.UpdatedAt).Abs() > 10*time.Minute { // a time zone mistake is off by hours
				t.Errorf("session %s updated at %v: not the instant it was written", s.SessionID, s.UpdatedAt)
			}
		}

		// Pages: the cursor on stderr continues the listing.
		r = mustRun(t, env, "", "sessions", "list", "--limit", "2")
		if n := len(lines(r.stdout)); n != 3 {
			t.Fatalf("list --limit 2: %v", r)
		}
		_, cursor, ok := strings.Cut(strings.TrimSpace(r.stderr), "--cursor ")
		if !ok {
			t.Fatalf("list --limit 2 printed no cursor: %v", r)
		}
		r = mustRun(t, env, "", "sessions", "list", "--limit", "2", "--cursor", cursor)
		if got := lines(r.stdout); len(got) != 2 || !strings.HasPrefix(got[1], "s-beta ") || r.stderr != "" {
			t.Fatalf("second page: %v", r)
		}
		wantExit(t, lakesession(t, env, "", "sessions", "list", "--cursor", "not-a-cursor"), 2, `--cursor "not-a-cursor" is not a cursor sessions list printed`)
		wantExit(t, lakesession(t, env, "", "sessions", "list", "--limit", "0"), 2, "--limit 0: use 1 to 1000")
	})

	t.Run("show", func(t *testing.T) {
		r := mustRun(t, env, "", "sessions", "show", "s-alpha")
		got := lines(r.stdout)
		want := []string{
			"user: Hello I live in SF!",
			"assistant: caf\u00e9 <b>&amp;</b> \u2028 line\\nbreak \"q\" \\ /",
			`item: {"z":1,"a":[1.50,2e10,-0,1E-7],"n":null,"t":true,"nested":{"k":{}}}`,
			`function_call: get_weather({"city":"SF"})`,
		}
		if !slices.Equal(got, want) {
			t.Errorf("show:\n%q\nwant\n%q", got, want)
		}
		r = mustRun(t, env, "", "sessions", "show", "s-alpha", "--json")
		if got, want := lines(r.stdout), slices.Concat(seedBatches["s-alpha"]...); !slices.Equal(got, want) {
			t.Errorf("show --json:\n%q\nwant the stored bytes\n%q", got, want)
		}
		r = mustRun(t, env, "", "sessions", "show", "s-alpha", "--json", "--limit", "1")
		if got := lines(r.stdout); len(got) != 1 || got[0] != seedBatches["s-alpha"][1][1] {
			t.Errorf("show --limit 1: %v", r)
		}
		wantExit(t, lakesession(t, env, "", "sessions", "show", "nope"), 1, `session "nope" does not exist`)
		wantExit(t, lakesession(t, env, "", "sessions", "show"), 2, "needs one session id")
	})

	t.Run("export and import", func(t *testing.T) {
		all := mustRun(t, env, "", "sessions", "export", "--all")
		if n := len(lines(all.stdout)); n != 8 {
			t.Fatalf("export --all wrote %d lines: %v", n, all)
		}
		wantExit(t, all, 0, "exported 3 sessions, 8 items")
		if r := mustRun(t, env, "", "sessions", "export", "--all", "--since", "2099-01-01"); r.stdout != "" {
			t.Errorf("export --since 2099-01-01: %v", r)
		}
		if r := mustRun(t, env, "", "sessions", "export", "--all", "--since", "1h"); r.stdout != all.stdout {
			t.Errorf("export --since 1h differs from --all")
		}
		wantExit(t, lakesession(t, env, "", "sessions", "export", "s-alpha", "nope"), 1, `no session "nope"`)
		wantExit(t, lakesession(t, env, "", "sessions", "export", "s-alpha", "--all"), 2, "not both")

		// Into another database: every item's bytes and each session's
		// order come back.
		_, dsn2 := newDatabase(t)
		env2 := []string{"DATABASE_URL=" + tlsDSN(t, dsn2)}
		db2 := openDB(t, dsn2)
		mustRun(t, env2, "", "migrate", "up")
		file := filepath.Join(t.TempDir(), "export.jsonl")
		if err := os.WriteFile(file, []byte(all.stdout), 0o600); err != nil {
			t.Fatal(err)
		}
		wantExit(t, mustRun(t, env2, "", "sessions", "import", file), 0, "imported 3 sessions, 8 items")
		if a, b := rowsOf(t, db), rowsOf(t, db2); !slices.Equal(a, b) {
			t.Fatalf("the import differs from the original (%d and %d rows)", len(a), len(b))
		}
		ids := []string{"sessions", "export", "s-alpha", "s-beta", `s "quoted" <id> ✓`}
		if a, b := mustRun(t, env, "", ids...).stdout, mustRun(t, env2, "", ids...).stdout; a != b {
			t.Errorf("the export of the import differs:\n%s\n%s", clip(a), clip(b))
		}

		// Sessions that exist: refused, or appended as one batch each.
		wantExit(t, lakesession(t, env2, all.stdout, "sessions", "import"), 1, "already exist", "nothing was imported")
		if n := len(rowsOf(t, db2)); n != 8 {
			t.Fatalf("a refused import wrote: %d rows", n)
		}
		wantExit(t, mustRun(t, env2, all.stdout, "sessions", "import", "--if-exists", "append", "-"), 0, "imported 3 sessions, 8 items (appended to 3 existing sessions)")
		var batches int
		if err := db2.QueryRow("SELECT count(DISTINCT created_at) FROM agent_messages WHERE session_id = 's-alpha'").Scan(&batches); err != nil {
			t.Fatal(err)
		}
		if batches != 2 {
			t.Errorf("s-alpha has %d batches after two imports, want 2 (one per import)", batches)
		}
		r := mustRun(t, env2, "", "sessions", "show", "s-alpha", "--json")
		if got, want := lines(r.stdout), slices.Concat(slices.Concat(seedBatches["s-alpha"]...), slices.Concat(seedBatches["s-alpha"]...)); !slices.Equal(got, want) {
			t.Errorf("after the append: %d items, want the %d items twice, in order", len(got), len(want)/2)
		}

		// A bad line: reported with its number, and nothing is written.
		bad := `{"session_id":"s-new","item":{"role":"user","content":"hi"}}` + "\n" +
			`{"session_id":"s-new","item":"not an object"}` + "\n" +
			"\n" +
			`{"session_id":"s-other","item":{"role":"user"}` + "\n"
		r = lakesession(t, env2, bad, "sessions", "import")
		wantExit(t, r, 1, "line 2: \"item\": lakesession: invalid item", "line 4: not valid JSON", "2 bad lines of 4: nothing was imported")
		if n := count(t, db2, "SELECT count(*) FROM agent_sessions WHERE session_id IN ('s-new', 's-other')"); n != 0 {
			t.Errorf("a refused import created %d sessions", n)
		}
	})

	t.Run("prune", func(t *testing.T) {
		_, dsn3 := newDatabase(t)
		env3 := []string{"DATABASE_URL=" + tlsDSN(t, dsn3)}
		db3 := openDB(t, dsn3)
		mustRun(t, env3, "", "migrate", "up")
		seed(t, bun.NewDB(db3, pgdialect.New()))
		// Two sessions not updated for 40 days.
		if _, err := db3.Exec(`UPDATE agent_sessions SET updated_at = updated_at - interval '40 days' WHERE session_id IN ('s-beta', 's-alpha')`); err != nil {
			t.Fatal(err)
		}
		before := rowsOf(t, db3)
		r := mustRun(t, env3, "", "prune", "--older-than", "30d", "--dry-run", "--batch-size", "1")
		wantExit(t, r, 0, "would delete 2 sessions, 6 items not updated since", "2 batches of at most 1; dry run: nothing deleted")
		if !slices.Equal(before, rowsOf(t, db3)) {
			t.Fatal("prune --dry-run deleted rows")
		}
		if lines := lines(r.stdout); len(lines) != 1 || r.stderr != "" {
			t.Errorf("prune off a terminal printed more than its final line: %v", r)
		}
		r = mustRun(t, env3, "", "prune", "--older-than", "30d", "--batch-size", "1")
		wantExit(t, r, 0, "deleted 2 sessions, 6 items not updated since", "2 batches of at most 1")
		if n := count(t, db3, "SELECT count(*) FROM agent_sessions"); n != 1 {
			t.Fatalf("%d sessions after the prune, want 1", n)
		}
		if n := count(t, db3, "SELECT count(*) FROM agent_messages"); n != seedCount(`s "quoted" <id> ✓`) {
			t.Fatalf("%d items after the prune", n)
		}
		wantExit(t, mustRun(t, env3, "", "prune", "--older-than", "30d"), 0, "deleted 0 sessions, 0 items")

		// Ages are instants, compared with times stored as wall clock in
		// the server's zone (Asia/Kolkata, 5.5 hours from UTC): a session
		// last updated 3 hours ago is updated since 4h ago, not since 2h
		// ago, and older than 2h, not 4h.
		execSQL(t, db3, `UPDATE agent_sessions SET updated_at = LOCALTIMESTAMP - interval '3 hours'`)
		if r := mustRun(t, env3, "", "sessions", "export", "--all", "--since", "2h"); r.stdout != "" {
			t.Errorf("export --since 2h exported a session updated 3 hours ago: %v", r)
		}
		if r := mustRun(t, env3, "", "sessions", "export", "--all", "--since", "4h"); len(lines(r.stdout)) != seedCount(`s "quoted" <id> ✓`) {
			t.Errorf("export --since 4h left out a session updated 3 hours ago: %v", r)
		}
		wantExit(t, mustRun(t, env3, "", "prune", "--older-than", "4h"), 0, "deleted 0 sessions")
		wantExit(t, mustRun(t, env3, "", "prune", "--older-than", "2h"), 0, "deleted 1 session, 2 items")
		wantExit(t, lakesession(t, env3, "", "prune", "--older-than", "30"), 2, "such as 30d")
		wantExit(t, lakesession(t, env3, "", "prune"), 2, `"older-than" not set`)
		wantExit(t, lakesession(t, env3, "", "prune", "--older-than", "1d", "--batch-size", "5000"), 2, "--batch-size 5000: use 1 to 1000")
	})

	t.Run("delete", func(t *testing.T) {
		r := lakesession(t, env, "", "sessions", "delete", "s-beta", "nope", "s-beta")
		wantExit(t, r, 1, "deleted 1 session, 2 items", `session "nope" does not exist`)
		if n := count(t, db, "SELECT count(*) FROM agent_sessions WHERE session_id = 's-beta'"); n != 0 {
			t.Fatal("s-beta is still there")
		}
		if n := count(t, db, "SELECT count(*) FROM agent_messages WHERE session_id = 's-beta'"); n != 0 {
			t.Fatal("items of s-beta are still there")
		}
		wantExit(t, mustRun(t, env, "", "sessions", "delete", "s-alpha"), 0, "deleted 1 session, 4 items")
		wantExit(t, lakesession(t, env, "", "sessions", "delete"), 2, "at least one session id")
	})
}

func TestPostgresDoctor(t *testing.T) {
	t.Parallel()
	name, dsn := newDatabase(t)
	url := tlsDSN(t, dsn)
	env := []string{"DATABASE_URL=" + url}

	t.Run("missing tables", func(t *testing.T) {
		r := lakesession(t, env, "", "doctor")
		wantExit(t, r, 1,
			"ok       TLS login: logged in as postgres to database "+name+" over TLS",
			"ok       server: PostgreSQL ", "TimeZone Asia/Kolkata",
			"problem  tables: agent_sessions and agent_messages do not exist in the search path",
			"fix: run `lakesession migrate up`",
			"ok       privileges: postgres may create the tables in schema public",
			"ok       transaction pooler: none seen",
			"doctor found 1 problem")
	})

	t.Run("healthy", func(t *testing.T) {
		mustRun(t, env, "", "migrate", "up")
		r := mustRun(t, env, "", "doctor")
		wantExit(t, r, 0,
			"ok       tables: public.agent_sessions and public.agent_messages exist (1 migration recorded in lakesession_migrations)",
			"ok       table shape: Python-compatible",
			"ok       indexes: idx_agent_messages_session_order (session_id, created_at, id) and idx_agent_sessions_updated (updated_at, session_id)",
			"ok       privileges: postgres may read and write both tables",
			"all 7 checks ok")
		if strings.Contains(r.stdout, "problem") {
			t.Errorf("a healthy setup has a problem: %v", r)
		}
	})

	t.Run("no TLS", func(t *testing.T) {
		r := lakesession(t, nil, "", "doctor", "--database-url", withParams(t, dsn, map[string]string{"sslmode": "disable"}))
		wantExit(t, r, 1, "problem  TLS login: logged in as postgres to database "+name+" without TLS", "fix: add sslmode=require")
	})

	t.Run("wrong password", func(t *testing.T) {
		// The passwords are secrets no output may contain (see TestMain).
		role, rightPW, wrongPW := "cli_"+randomHex(t), "right-"+randomHex(t), "wrong-"+randomHex(t)
		secrets(func() []string { return []string{rightPW, wrongPW} })
		admin := openDB(t, adminDSN(t))
		if _, err := admin.Exec("CREATE ROLE " + role + " LOGIN PASSWORD '" + rightPW + "'"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { admin.Exec("DROP OWNED BY " + role); admin.Exec("DROP ROLE IF EXISTS " + role) })
		wrong := withParams(t, url, map[string]string{"user": role, "password": wrongPW})
		r := lakesession(t, nil, "", "doctor", "--database-url", wrong)
		wantExit(t, r, 1, "problem  TLS login:", "password authentication failed", "fix: the password is wrong", "skipped  the other checks")
		// The right password, but no privileges on the tables.
		right := withParams(t, url, map[string]string{"user": role, "password": rightPW})
		r = lakesession(t, nil, "", "doctor", "--database-url", right)
		wantExit(t, r, 1, "ok       TLS login: logged in as "+role, "problem  privileges: "+role+" lacks SELECT on agent_sessions, INSERT on agent_sessions",
			"GRANT SELECT, INSERT, UPDATE, DELETE ON agent_sessions, agent_messages TO \""+role+"\"")
		// Commands that fail to log in, or to parse the URL, do not print
		// it either.
		wantExit(t, lakesession(t, nil, "", "sessions", "list", "--database-url", wrong), 1, "password authentication failed")
		unparsable := strings.Replace(wrong, "127.0.0.1", "[127.0.0.1", 1)
		wantExit(t, lakesession(t, nil, "", "sessions", "list", "--database-url", unparsable), 2, "DSN cannot be parsed")
	})

	t.Run("Python tables without lakesession's indexes", func(t *testing.T) {
		_, dsn := newDatabase(t)
		db := openDB(t, dsn)
		execSQL(t, db,
			"CREATE TABLE agent_sessions (session_id VARCHAR NOT NULL, created_at TIMESTAMP WITHOUT TIME ZONE DEFAULT CURRENT_TIMESTAMP NOT NULL, updated_at TIMESTAMP WITHOUT TIME ZONE DEFAULT CURRENT_TIMESTAMP NOT NULL, PRIMARY KEY (session_id))",
			"CREATE TABLE agent_messages (id SERIAL NOT NULL, session_id VARCHAR NOT NULL, message_data TEXT NOT NULL, created_at TIMESTAMP WITHOUT TIME ZONE DEFAULT CURRENT_TIMESTAMP NOT NULL, PRIMARY KEY (id), FOREIGN KEY(session_id) REFERENCES agent_sessions (session_id) ON DELETE CASCADE)",
			"CREATE INDEX idx_agent_messages_session_time ON agent_messages (session_id, created_at)",
		)
		env := []string{"DATABASE_URL=" + tlsDSN(t, dsn)}
		r := lakesession(t, env, "", "doctor")
		wantExit(t, r, 1, "(not through lakesession's migrations)", "ok       table shape: Python-compatible: session_id varchar, created_at and updated_at timestamp without time zone, id integer serial",
			"problem  indexes: agent_messages has no index on (session_id, created_at, id)", "doctor found 1 problem")
		mustRun(t, env, "", "migrate", "up")
		wantExit(t, mustRun(t, env, "", "doctor"), 0, "Python's idx_agent_messages_session_time is there too")
	})

	t.Run("timestamps with time zone", func(t *testing.T) {
		_, dsn := newDatabase(t)
		db := openDB(t, dsn)
		execSQL(t, db,
			"CREATE TABLE agent_sessions (session_id TEXT PRIMARY KEY, created_at TIMESTAMPTZ NOT NULL DEFAULT now(), updated_at TIMESTAMPTZ NOT NULL DEFAULT now())",
			"CREATE TABLE agent_messages (id BIGSERIAL PRIMARY KEY, session_id TEXT NOT NULL, message_data JSONB NOT NULL, created_at TIMESTAMPTZ NOT NULL DEFAULT now())",
		)
		r := lakesession(t, []string{"DATABASE_URL=" + tlsDSN(t, dsn)}, "", "doctor")
		wantExit(t, r, 1, "problem  table shape: not the shape of the Python SQLAlchemySession's tables:",
			"agent_sessions.created_at is timestamp with time zone, not timestamp without time zone",
			"agent_messages.message_data is jsonb, not text",
			"agent_messages.session_id has no foreign key to agent_sessions")
	})
}

// export --all while writers add items to the sessions: every session
// that existed when it started is exported (a write moves a session to
// the front of the list, ahead of a page already read), and each session's
// lines hold its items up to some instant: writers' batches whole, in
// order.
func TestPostgresExportWhileWriting(t *testing.T) {
	t.Parallel()
	_, dsn := newDatabase(t)
	env := []string{"DATABASE_URL=" + tlsDSN(t, dsn)}
	mustRun(t, env, "", "migrate", "up")
	db := openDB(t, dsn)
	const sessions = 3000 // three pages of ListSessions
	execSQL(t, db,
		`INSERT INTO agent_sessions (session_id, created_at, updated_at)
		SELECT 'w' || g, LOCALTIMESTAMP - interval '1 day', LOCALTIMESTAMP - interval '1 day' - g * interval '1 second'
		FROM generate_series(0, 2999) g`,
		`INSERT INTO agent_messages (session_id, message_data, created_at)
		SELECT 'w' || g, '{"seed":' || g || '}', LOCALTIMESTAMP - interval '1 day' FROM generate_series(0, 2999) g`,
	)
	store, err := bunstore.New(bun.NewDB(db, pgdialect.New()))
	if err != nil {
		t.Fatal(err)
	}
	// Writers add two-item batches to the oldest sessions (the last page)
	// until the export is done.
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ctx.Err() == nil; n++ {
				id := fmt.Sprintf("w%d", sessions-1-(n*4+w)%1000)
				tag := fmt.Sprintf("%d-%d", w, n)
				batch := []json.RawMessage{json.RawMessage(`{"b":"` + tag + `","i":0}`), json.RawMessage(`{"b":"` + tag + `","i":1}`)}
				if err := store.Session(id).AddItems(ctx, batch); err != nil && ctx.Err() == nil {
					t.Errorf("AddItems: %v", err)
					return
				}
			}
		}()
	}
	r := lakesession(t, env, "", "sessions", "export", "--all")
	stop()
	wg.Wait()
	wantExit(t, r, 0)
	got := map[string][]json.RawMessage{}
	for _, l := range lines(r.stdout) {
		var line struct {
			SessionID string          `json:"session_id"`
			Item      json.RawMessage `json:"item"`
		}
		if err := json.Unmarshal([]byte(l), &line); err != nil {
			t.Fatalf("export line %q: %v", l, err)
		}
		got[line.SessionID] = append(got[line.SessionID], line.Item)
	}
	written := 0
	for g := range sessions {
		id := fmt.Sprintf("w%d", g)
		items := got[id]
		if len(items) == 0 || string(items[0]) != fmt.Sprintf(`{"seed":%d}`, g) {
			t.Fatalf("session %s is not in the export, or not from its first item: %d items", id, len(items))
		}
		if (len(items)-1)%2 != 0 {
			t.Fatalf("session %s: %d items after the seed: part of a batch was exported", id, len(items)-1)
		}
		for i := 1; i < len(items); i += 2 {
			var a, b struct {
				B string `json:"b"`
				I int    `json:"i"`
			}
			if json.Unmarshal(items[i], &a) != nil || json.Unmarshal(items[i+1], &b) != nil || a.B != b.B || a.I != 0 || b.I != 1 {
				t.Fatalf("session %s: items %d and %d are not one batch: %s %s", id, i, i+1, items[i], items[i+1])
			}
		}
		written += (len(items) - 1) / 2
	}
	t.Logf("%d batches written during the export were in it", written)
	if written == 0 {
		t.Fatal("no write came during the export: the test proved nothing")
	}
}

// A stored item that is not valid JSON (written by another program) is
// left out by show and export with a warning that names its row, never
// its content; export then exits 1, since its output lacks an item.
func TestPostgresCorruptItems(t *testing.T) {
	t.Parallel()
	_, dsn := newDatabase(t)
	env := []string{"DATABASE_URL=" + tlsDSN(t, dsn)}
	mustRun(t, env, "", "migrate", "up")
	db := openDB(t, dsn)
	in := `{"session_id":"c","item":{"role":"user","content":"before"}}` + "\n"
	mustRun(t, env, in, "sessions", "import")
	var id int64
	if err := db.QueryRow(`INSERT INTO agent_messages (session_id, message_data) VALUES ('c', '{"role":"user","content":"corrupt-secret-text"') RETURNING id`).Scan(&id); err != nil {
		t.Fatal(err)
	}
	after := `{"session_id":"c","item":{"role":"assistant","content":"after"}}` + "\n"
	mustRun(t, env, after, "sessions", "import", "--if-exists", "append")
	warning := fmt.Sprintf(`warning: session "c": stored item %d is not valid JSON; it is left out`, id)

	r := mustRun(t, env, "", "sessions", "show", "c")
	if r.stdout != "user: before\nassistant: after\n" || !strings.Contains(r.stderr, warning) {
		t.Errorf("show: %v", r)
	}
	r = mustRun(t, env, "", "sessions", "show", "c", "--json", "--limit", "1")
	if r.stdout != `{"role":"assistant","content":"after"}`+"\n" {
		t.Errorf("show --json --limit 1: %v", r)
	}
	r = lakesession(t, env, "", "sessions", "export", "c")
	wantExit(t, r, 1, warning+" of the export", "1 stored item not valid JSON and left out of the export")
	if r.stdout != in+after {
		t.Errorf("export: %v", r)
	}
	for _, r := range []result{r, mustRun(t, env, "", "sessions", "show", "c")} {
		if strings.Contains(r.stdout+r.stderr, "corrupt-secret-text") {
			t.Errorf("the corrupt item's content was printed: %v", r)
		}
	}
}
