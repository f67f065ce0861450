package main

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"strings"
	"testing"

	"github.com/lakesession/lakesession/examples/internal/locallakebase"
	"github.com/lakesession/lakesession/internal/testdb"
	"github.com/lakesession/lakesession/lakebasecred"
)

// checkRuns runs the app twice on db and checks what it did.
func checkRuns(t *testing.T, db *sql.DB) {
	t.Helper()
	ctx := context.Background()
	for round := 1; round <= 2; round++ {
		var out bytes.Buffer
		if err := run(ctx, db, &out); err != nil {
			t.Fatalf("round %d: %v\n%s", round, err, out.String())
		}
		for _, w := range []string{
			fmt.Sprintf("order %d stored", round),
			fmt.Sprintf(`{"role":"user","content":"Where is my order %d?"}`, round),
			// Each run adds two items to the customer's session.
			fmt.Sprintf("%d items stored for customer-42", 2*round),
		} {
			if !strings.Contains(out.String(), w) {
				t.Errorf("round %d: output lacks %q:\n%s", round, w, out.String())
			}
		}
	}
	var orders, messages int
	if err := db.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM orders), (SELECT count(*) FROM agent_messages)`).Scan(&orders, &messages); err != nil {
		t.Fatal(err)
	}
	if orders != 2 || messages != 4 {
		t.Errorf("%d orders and %d messages, want 2 and 4", orders, messages)
	}
}

func TestPostgres(t *testing.T) {
	dsn := testdb.NewDatabase(t)
	db, closeDB, err := openDB(context.Background(), func(k string) string {
		if k == "DATABASE_URL" {
			return dsn
		}
		return ""
	})
	if err != nil {
		t.Fatal(err)
	}
	defer closeDB()
	checkRuns(t, db)
}

func TestLakebase(t *testing.T) {
	lb := locallakebase.Setup(t)
	db, closeDB, err := openLakebase(context.Background(), lb.Fake.WorkspaceClient(),
		lakebasecred.Target{Instance: locallakebase.InstanceName}, lb.ConnectorOptions,
		lakebasecred.WithDatabase(lb.Database))
	if err != nil {
		t.Fatal(err)
	}
	defer closeDB()
	checkRuns(t, db)
	if lb.Fake.MintCount() == 0 {
		t.Error("no token was minted")
	}
	// The app's table and the store's were made by the Lakebase role.
	var owners []string
	rows, err := db.Query(`SELECT DISTINCT tableowner FROM pg_tables WHERE tablename IN ('orders', 'agent_sessions', 'agent_messages')`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var o string
		if err := rows.Scan(&o); err != nil {
			t.Fatal(err)
		}
		owners = append(owners, o)
	}
	if len(owners) != 1 || owners[0] != lb.Role {
		t.Errorf("table owners %q, want only %q", owners, lb.Role)
	}
}

func TestOpenDBConfiguration(t *testing.T) {
	for _, vars := range []map[string]string{
		{},
		{"DATABASE_URL": "postgres://x", "LAKEBASE_INSTANCE_NAME": "i"},
	} {
		_, _, err := openDB(context.Background(), func(k string) string { return vars[k] })
		if err == nil || !strings.Contains(err.Error(), "DATABASE_URL") {
			t.Errorf("%v: %v, want an error naming what to set", vars, err)
		}
	}
}
