package bunstore_test

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
	"github.com/uptrace/bun/migrate"

	"github.com/lakesession/lakesession/bunstore"
	"github.com/lakesession/lakesession/bunstore/sqlitedb"
	"github.com/lakesession/lakesession/internal/testdb"
	"github.com/lakesession/lakesession/migrations"
)

// catalog describes the tables and indexes of the default names, in a form
// that does not depend on how the DDL was spelled.
func catalog(t *testing.T, db *bun.DB) string {
	t.Helper()
	var queries []string
	if isPG(db) {
		queries = []string{
			`SELECT table_name || '.' || column_name || ' ' || data_type || ' null=' || is_nullable || ' default=' || coalesce(column_default, '') || ' identity=' || is_identity
			 FROM information_schema.columns WHERE table_name LIKE 'agent%' ORDER BY table_name, column_name`,
			`SELECT indexname || ': ' || indexdef FROM pg_indexes WHERE tablename LIKE 'agent%' ORDER BY indexname`,
			`SELECT conrelid::regclass::text || ': ' || pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid::regclass::text LIKE 'agent%' ORDER BY 1`,
		}
	} else {
		queries = []string{`SELECT type || ' ' || name || ': ' || coalesce(sql, '') FROM sqlite_master WHERE tbl_name LIKE 'agent%' ORDER BY name`}
	}
	space := regexp.MustCompile(`\s+`)
	var b strings.Builder
	for _, q := range queries {
		rows, err := db.QueryContext(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				t.Fatal(err)
			}
			s = strings.ReplaceAll(s, `"`, "")
			s = space.ReplaceAllString(s, " ")
			b.WriteString(s + "\n")
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
	}
	return b.String()
}

func runMigrations(t *testing.T, db *bun.DB) {
	t.Helper()
	ctx := context.Background()
	ms, err := migrations.For(db.Dialect().Name())
	if err != nil {
		t.Fatal(err)
	}
	m := migrate.NewMigrator(db, ms)
	if err := m.Init(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
}

// CreateTables makes exactly the schema the migrations make.
func TestCreateTablesMatchesMigrations(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			migrated := b.open(t)
			runMigrations(t, migrated)
			created := b.open(t)
			newStore(t, created)
			want, got := catalog(t, migrated), catalog(t, created)
			if got != want {
				t.Fatalf("CreateTables made\n%s\nthe migrations made\n%s", got, want)
			}
			if !strings.Contains(got, "idx_agent_messages_session_order") || !strings.Contains(got, "(session_id, created_at, id)") {
				t.Fatalf("no order index in\n%s", got)
			}
			t.Logf("schema:\n%s", got)
			// The store works on the migrated tables.
			st, err := bunstore.New(migrated)
			if err != nil {
				t.Fatal(err)
			}
			mustAdd(t, st.Session("m"), batch("m", 2))
			wantItems(t, mustGet(t, st.Session("m"), 1), batch("m", 2)[1:])
		})
	}
}

// WithSchema puts the tables in a PostgreSQL schema, creating it when
// missing; two schemas keep separate histories.
func TestSchemaPostgres(t *testing.T) {
	db := openPG(t)
	a := newStore(t, db, bunstore.WithSchema("tenant_a"))
	b := newStore(t, db, bunstore.WithSchema("Tenant_B"))
	mustAdd(t, a.Session("s"), batch("a", 2))
	mustAdd(t, b.Session("s"), batch("b", 1))
	wantItems(t, mustGet(t, a.Session("s"), 0), batch("a", 2))
	wantItems(t, mustGet(t, b.Session("s"), 0), batch("b", 1))
	if n := count(t, db, `SELECT count(*) FROM tenant_a.agent_messages`); n != 2 {
		t.Fatalf("%d rows in tenant_a.agent_messages", n)
	}
	if n := count(t, db, `SELECT count(*) FROM "Tenant_B".agent_messages`); n != 1 {
		t.Fatalf("%d rows in Tenant_B.agent_messages", n)
	}
	if n := count(t, db, `SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename LIKE 'agent%'`); n != 0 {
		t.Fatalf("%d tables in public", n)
	}
}

// A role that may not create schemas in the database can still run
// CreateTables in a schema that exists and that it may create tables in.
func TestSchemaExistsWithoutCreatePrivilege(t *testing.T) {
	admin := openPG(t)
	ctx := context.Background()
	role := fmt.Sprintf("lakesession_app_%d", rand.Uint32()) // roles are shared by the whole server
	for _, stmt := range []string{
		"CREATE ROLE " + role + " LOGIN PASSWORD 'app-password'",
		"CREATE SCHEMA app AUTHORIZATION " + role,
	} {
		if _, err := admin.ExecContext(ctx, stmt); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		admin.ExecContext(context.Background(), "DROP SCHEMA app CASCADE")
		admin.ExecContext(context.Background(), "DROP ROLE IF EXISTS "+role)
	})
	var dbname string
	if err := admin.QueryRowContext(ctx, "SELECT current_database()").Scan(&dbname); err != nil {
		t.Fatal(err)
	}
	dsn := testdb.WithParam(t, testdb.WithParam(t, testdb.WithParam(t, testdb.AdminDSN(t), "dbname", dbname), "user", role), "password", "app-password")
	sqldb, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer sqldb.Close()
	app := bun.NewDB(sqldb, pgdialect.New())
	var canCreate bool
	if err := app.QueryRowContext(ctx, "SELECT has_database_privilege(current_database(), 'CREATE')").Scan(&canCreate); err != nil {
		t.Fatal(err)
	}
	if canCreate {
		t.Fatal("the role may create schemas; the test needs one that may not")
	}
	st := newStore(t, app, bunstore.WithSchema("app"))
	mustAdd(t, st.Session("s"), batch("s", 1))
	// A schema that does not exist is reported.
	missing, err := bunstore.New(app, bunstore.WithSchema("missing"))
	if err != nil {
		t.Fatal(err)
	}
	if err := missing.CreateTables(ctx); err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Fatalf("CreateTables in a schema the role may not create: %v", err)
	}
}

// On SQLite a schema is an attached database.
func TestSchemaSQLite(t *testing.T) {
	dir := t.TempDir()
	db, err := sqlitedb.Open(filepath.Join(dir, "main.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// sqlitedb.Open keeps one connection, so the ATTACH holds for every call.
	if _, err := db.ExecContext(context.Background(), "ATTACH DATABASE ? AS history", filepath.Join(dir, "history.db")); err != nil {
		t.Fatal(err)
	}
	st := newStore(t, db, bunstore.WithSchema("history"))
	mustAdd(t, st.Session("s"), batch("s", 3))
	if got, err := st.Session("s").PopItem(context.Background()); err != nil || got == nil {
		t.Fatalf("PopItem = %s, %v", got, err)
	}
	wantItems(t, mustGet(t, st.Session("s"), 1), batch("s", 3)[1:2])
	if n := count(t, db, "SELECT count(*) FROM history.agent_messages"); n != 2 {
		t.Fatalf("%d rows in history.agent_messages", n)
	}
	if n := count(t, db, "SELECT count(*) FROM history.sqlite_master WHERE type = 'index' AND name LIKE 'idx_%'"); n != 2 {
		t.Fatalf("%d indexes in history", n)
	}
	if n := count(t, db, "SELECT count(*) FROM main.sqlite_master"); n != 0 {
		t.Fatalf("%d objects in main", n)
	}
}
