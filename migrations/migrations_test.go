package migrations_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"
	"github.com/uptrace/bun/dialect/pgdialect"
	"github.com/uptrace/bun/migrate"

	"github.com/lakesession/lakesession/bunstore/sqlitedb"
	"github.com/lakesession/lakesession/internal/testdb"
	"github.com/lakesession/lakesession/migrations"
)

type backend struct {
	name string
	open func(t *testing.T) *bun.DB
}

var backends = []backend{
	{"postgres", func(t *testing.T) *bun.DB { return bun.NewDB(testdb.Open(t), pgdialect.New()) }},
	{"sqlite", func(t *testing.T) *bun.DB {
		db, err := sqlitedb.Open(filepath.Join(t.TempDir(), "m.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}},
}

func count(t *testing.T, db *bun.DB, q string, args ...any) int {
	t.Helper()
	var n int
	if err := db.QueryRowContext(context.Background(), q, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// objects counts the lakesession tables and indexes in db.
func objects(t *testing.T, db *bun.DB) (tables, indexes int) {
	t.Helper()
	if db.Dialect().Name() == dialect.PG {
		return count(t, db, "SELECT count(*) FROM pg_tables WHERE tablename IN ('agent_sessions', 'agent_messages')"),
			count(t, db, "SELECT count(*) FROM pg_indexes WHERE indexname IN ('idx_agent_messages_session_order', 'idx_agent_sessions_updated')")
	}
	return count(t, db, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ('agent_sessions', 'agent_messages')"),
		count(t, db, "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name IN ('idx_agent_messages_session_order', 'idx_agent_sessions_updated')")
}

func newMigrator(t *testing.T, db *bun.DB, ms *migrate.Migrations) *migrate.Migrator {
	t.Helper()
	m := migrate.NewMigrator(db, ms,
		migrate.WithTableName("lakesession_migrations"),
		migrate.WithLocksTableName("lakesession_migration_locks"))
	if err := m.Init(context.Background()); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestUpAndDown(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			db := b.open(t)
			ctx := context.Background()
			ms, err := migrations.For(db.Dialect().Name())
			if err != nil {
				t.Fatal(err)
			}
			m := newMigrator(t, db, ms)
			group, err := m.Migrate(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(group.Migrations) != 1 {
				t.Fatalf("applied %v", group.Migrations)
			}
			if tables, indexes := objects(t, db); tables != 2 || indexes != 2 {
				t.Fatalf("%d tables and %d indexes after the migration; want 2 and 2", tables, indexes)
			}
			// The tables take rows with their defaults.
			if _, err := db.ExecContext(ctx, "INSERT INTO agent_sessions (session_id) VALUES ('s')"); err != nil {
				t.Fatal(err)
			}
			if _, err := db.ExecContext(ctx, "INSERT INTO agent_messages (session_id, message_data) VALUES ('s', '{}')"); err != nil {
				t.Fatal(err)
			}
			group, err = m.Migrate(ctx)
			if err != nil || !group.IsZero() {
				t.Fatalf("second Migrate = %v, %v; want nothing to do", group, err)
			}
			if _, err := m.Rollback(ctx); err != nil {
				t.Fatal(err)
			}
			if tables, indexes := objects(t, db); tables+indexes != 0 {
				t.Fatalf("%d tables and %d indexes after the rollback", tables, indexes)
			}
			if _, err := m.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// The migration keeps the tables the Python SQLAlchemySession made, with
// their rows and index, and adds lakesession's indexes.
func TestUpOnPythonTables(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			db := b.open(t)
			ctx := context.Background()
			ts, id := "TIMESTAMP WITHOUT TIME ZONE", "id SERIAL NOT NULL, "
			if db.Dialect().Name() == dialect.SQLite {
				ts, id = "TIMESTAMP", "id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, "
			}
			pk := ", PRIMARY KEY (id)"
			if db.Dialect().Name() == dialect.SQLite {
				pk = ""
			}
			for _, q := range []string{
				"CREATE TABLE agent_sessions (session_id VARCHAR NOT NULL, created_at " + ts + " DEFAULT CURRENT_TIMESTAMP NOT NULL, updated_at " + ts + " DEFAULT CURRENT_TIMESTAMP NOT NULL, PRIMARY KEY (session_id))",
				"CREATE TABLE agent_messages (" + id + "session_id VARCHAR NOT NULL, message_data TEXT NOT NULL, created_at " + ts + " DEFAULT CURRENT_TIMESTAMP NOT NULL" + pk + ", FOREIGN KEY(session_id) REFERENCES agent_sessions (session_id) ON DELETE CASCADE)",
				"CREATE INDEX idx_agent_messages_session_time ON agent_messages (session_id, created_at)",
				"INSERT INTO agent_sessions (session_id) VALUES ('py')",
				`INSERT INTO agent_messages (session_id, message_data) VALUES ('py', '{"role":"user"}')`,
			} {
				if _, err := db.ExecContext(ctx, q); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			ms, err := migrations.For(db.Dialect().Name())
			if err != nil {
				t.Fatal(err)
			}
			if _, err := newMigrator(t, db, ms).Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			if n := count(t, db, "SELECT count(*) FROM agent_messages WHERE session_id = 'py'"); n != 1 {
				t.Fatalf("%d Python rows after the migration", n)
			}
			if _, indexes := objects(t, db); indexes != 2 {
				t.Fatalf("%d of lakesession's indexes", indexes)
			}
			q := "SELECT count(*) FROM pg_indexes WHERE indexname = 'idx_agent_messages_session_time'"
			if db.Dialect().Name() == dialect.SQLite {
				q = "SELECT count(*) FROM sqlite_master WHERE name = 'idx_agent_messages_session_time'"
			}
			if count(t, db, q) != 1 {
				t.Fatal("Python's index is gone")
			}
		})
	}
}

// The files discovered into an application's own collection run with its
// migrations, in version order, under one migrator.
func TestAmongApplicationMigrations(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			db := b.open(t)
			ctx := context.Background()
			app := migrate.NewMigrations()
			if err := app.Discover(fstest.MapFS{
				"20250101000000_users.tx.up.sql":    {Data: []byte("CREATE TABLE app_users (id INTEGER PRIMARY KEY)")},
				"20250101000000_users.tx.down.sql":  {Data: []byte("DROP TABLE app_users")},
				"20270101000000_orders.tx.up.sql":   {Data: []byte("CREATE TABLE app_orders (session_id VARCHAR REFERENCES agent_sessions (session_id))")},
				"20270101000000_orders.tx.down.sql": {Data: []byte("DROP TABLE app_orders")},
			}); err != nil {
				t.Fatal(err)
			}
			files, err := migrations.Files(db.Dialect().Name())
			if err != nil {
				t.Fatal(err)
			}
			if err := app.Discover(files); err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, m := range app.Sorted() {
				names = append(names, m.Name+"_"+m.Comment)
			}
			if got := strings.Join(names, " "); got != "20250101000000_users 20260601000000_lakesession_agent_tables 20270101000000_orders" {
				t.Fatalf("migrations %s", got)
			}
			m := migrate.NewMigrator(db, app)
			if err := m.Init(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := m.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			if tables, _ := objects(t, db); tables != 2 {
				t.Fatalf("%d lakesession tables", tables)
			}
		})
	}
}

func TestForUnsupportedDialect(t *testing.T) {
	if m, err := migrations.For(dialect.PG); m != migrations.Postgres || err != nil {
		t.Errorf("For(pg) = %v, %v", m, err)
	}
	if m, err := migrations.For(dialect.SQLite); m != migrations.SQLite || err != nil {
		t.Errorf("For(sqlite) = %v, %v", m, err)
	}
	if _, err := migrations.For(dialect.MySQL); err == nil || !strings.Contains(err.Error(), "no migrations for the mysql dialect") {
		t.Errorf("For(mysql) = %v", err)
	}
	if _, err := migrations.Files(dialect.MSSQL); err == nil {
		t.Error("Files(mssql) succeeded")
	}
}
