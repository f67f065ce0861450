package sessiontest_test

import (
	"database/sql"
	"os"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/lakesession/lakesession"
	"github.com/lakesession/lakesession/bunstore"
	"github.com/lakesession/lakesession/sessiontest"
)

// A conformance test for bunstore on PostgreSQL, as it is written in a
// _test.go file. The suite makes up its own session ids, so the store is
// shared by every subtest.
func ExampleRun() {
	testConformance := func(t *testing.T) {
		sqldb, err := sql.Open("pgx", os.Getenv("DATABASE_URL"))
		if err != nil {
			t.Fatal(err)
		}
		db := bun.NewDB(sqldb, pgdialect.New())
		t.Cleanup(func() { db.Close() })

		store, err := bunstore.New(db)
		if err != nil {
			t.Fatal(err)
		}
		if err := store.CreateTables(t.Context()); err != nil {
			t.Fatal(err)
		}
		sessiontest.Run(t, func(t *testing.T, sessionID string) lakesession.Session {
			return store.Session(sessionID)
		})
	}
	_ = testConformance // func TestConformance(t *testing.T) in a real test file
}
