package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/migrate"

	"github.com/lakesession/lakesession/internal/testdb"
)

func count(t *testing.T, db *bun.DB, query string) int {
	t.Helper()
	var n int
	if err := db.QueryRowContext(context.Background(), query).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

func testService(t *testing.T, db *bun.DB) {
	ctx := context.Background()
	for round := 1; round <= 2; round++ {
		var out bytes.Buffer
		if err := run(ctx, db, &out); err != nil {
			t.Fatalf("round %d: %v\n%s", round, err, out.String())
		}
		applied := strings.Contains(out.String(), "20260601000000 lakesession_agent_tables") &&
			strings.Contains(out.String(), "20260701000000 create_tickets")
		if round == 1 && !applied {
			t.Errorf("first round did not apply both migration sets:\n%s", out.String())
		}
		if round == 2 && !strings.Contains(out.String(), "nothing to do") {
			t.Errorf("second round migrated again:\n%s", out.String())
		}
		// One ticket per round, each with its three items; the refused ticket
		// left neither a ticket, nor a session, nor a message.
		if n := count(t, db, "SELECT count(*) FROM tickets"); n != round {
			t.Errorf("round %d: %d tickets", round, n)
		}
		if n := count(t, db, "SELECT count(*) FROM agent_sessions"); n != round {
			t.Errorf("round %d: %d sessions, want one per ticket", round, n)
		}
		if n := count(t, db, "SELECT count(*) FROM agent_messages m JOIN tickets t ON t.session_id = m.session_id"); n != 3*round {
			t.Errorf("round %d: %d messages of tickets, want %d", round, n, 3*round)
		}
		if n := count(t, db, "SELECT count(*) FROM agent_messages"); n != 3*round {
			t.Errorf("round %d: %d messages in all, want %d", round, n, 3*round)
		}
	}
	if n := count(t, db, "SELECT count(*) FROM bun_migrations"); n != 3 {
		t.Errorf("%d migrations recorded, want 3", n)
	}

	// The whole group rolls back, the service's tables before lakesession's.
	ms, err := serviceMigrations(db.Dialect().Name())
	if err != nil {
		t.Fatal(err)
	}
	m := migrate.NewMigrator(db, ms)
	if _, err := m.Rollback(ctx); err != nil {
		t.Fatalf("rollback: %v", err)
	}
	for _, table := range []string{"tickets", "agent_messages", "agent_sessions"} {
		var q string
		if db.Dialect().Name().String() == "sqlite" {
			q = "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '" + table + "'"
		} else {
			q = "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = '" + table + "'"
		}
		if n := count(t, db, q); n != 0 {
			t.Errorf("table %s still exists after the rollback", table)
		}
	}
}

func TestServiceSQLite(t *testing.T) {
	db, err := openDB("", filepath.Join(t.TempDir(), "bunservice.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	testService(t, db)
}

func TestServicePostgres(t *testing.T) {
	db, err := openDB(testdb.NewDatabase(t), "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	testService(t, db)
}
