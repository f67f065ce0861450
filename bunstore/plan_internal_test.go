package bunstore

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/lakesession/lakesession/bunstore/sqlitedb"
	"github.com/lakesession/lakesession/internal/testdb"
)

// Every ordered read (GetItems, its refill, PopItem, ListSessions) is served
// in order by an index of CreateTables: its plan has no sort. On PostgreSQL
// sorts are disabled for the EXPLAIN, so that the planner avoids one
// whenever an index can give the order, whatever the table's statistics.
func TestOrderedReadsDoNotSort(t *testing.T) {
	ctx := context.Background()
	key := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	t.Run("postgres", func(t *testing.T) {
		st := newPlanStore(t, bun.NewDB(testdb.Open(t), pgdialect.New()))
		tx, err := st.db.(*bun.DB).DB.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback()
		if _, err := tx.ExecContext(ctx, "SET LOCAL enable_sort = off"); err != nil {
			t.Fatal(err)
		}
		for _, r := range planReads(st, key) {
			plan := planText(t, tx, "EXPLAIN "+r.q.driver, r.args)
			if strings.Contains(plan, "Sort") {
				t.Errorf("%s sorts:\n%s", r.name, plan)
			}
		}
	})
	t.Run("sqlite", func(t *testing.T) {
		db, err := sqlitedb.Open(filepath.Join(t.TempDir(), "plan.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		st := newPlanStore(t, db)
		for _, r := range planReads(st, key) {
			plan := planText(t, db.DB, "EXPLAIN QUERY PLAN "+r.q.driver, r.args)
			if strings.Contains(plan, "TEMP B-TREE") {
				t.Errorf("%s sorts:\n%s", r.name, plan)
			}
		}
	})
}

func newPlanStore(t *testing.T, db *bun.DB) *Store {
	t.Helper()
	st, err := New(db)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.CreateTables(context.Background()); err != nil {
		t.Fatal(err)
	}
	return st
}

type planRead struct {
	name string
	q    query
	args []any
}

// planReads are the ordered reads of st with arguments of the right types.
func planReads(st *Store, key time.Time) []planRead {
	var k any = key
	if st.dialect != dialect.PG {
		k = key.Format("2006-01-02 15:04:05")
	}
	return []planRead{
		{"GetItems(0)", st.q.getAll, []any{"s"}},
		{"GetItems(n)", st.q.getLatest, []any{"s", 20}},
		{"GetItems(n) refill", st.q.getBefore, []any{"s", k, int64(7), 20}},
		{"PopItem", st.q.pop, []any{"s"}},
		{"ListSessions", st.q.list, []any{100}},
		{"ListSessions after a cursor", st.q.listAfter, []any{k, "s", 100}},
	}
}

// planText returns the text columns of the plan's rows, a line per row.
func planText(t *testing.T, db bun.IConn, q string, args []any) string {
	t.Helper()
	rows, err := db.QueryContext(context.Background(), q, args...)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for rows.Next() {
		vals := make([]any, len(cols))
		for i := range vals {
			vals[i] = new(any)
		}
		if err := rows.Scan(vals...); err != nil {
			t.Fatal(err)
		}
		for _, v := range vals {
			switch s := (*v.(*any)).(type) {
			case string:
				b.WriteString(s + " ")
			case []byte:
				b.WriteString(string(s) + " ")
			}
		}
		b.WriteString("\n")
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}
