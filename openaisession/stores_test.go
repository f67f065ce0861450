package openaisession_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/lakesession/lakesession/bunstore"
	"github.com/lakesession/lakesession/bunstore/sqlitedb"
)

// envDSN names the environment variable with the superuser DSN of the test
// PostgreSQL; `make test` starts a throwaway server and sets it.
const envDSN = "LAKESESSION_TEST_DATABASE_URL"

const defaultDSN = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// storeKinds are the databases every store test runs on.
var storeKinds = []struct {
	name string
	open func(t testing.TB) *bunstore.Store
}{
	{"SQLite", sqliteStore},
	{"PostgreSQL", postgresStore},
}

// eachStore runs test once per database, each on a store of its own.
func eachStore(t *testing.T, test func(t *testing.T, st *bunstore.Store)) {
	for _, k := range storeKinds {
		t.Run(k.name, func(t *testing.T) { test(t, k.open(t)) })
	}
}

// sqliteStore returns a store on a new SQLite file.
func sqliteStore(t testing.TB) *bunstore.Store {
	t.Helper()
	db, err := sqlitedb.Open(filepath.Join(t.TempDir(), "sessions.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return newStore(t, db)
}

var (
	pgOnce sync.Once
	pgDB   *sql.DB
	pgErr  error
)

// postgresStore returns a store on tables of its own in the test
// PostgreSQL, dropped when the test ends. Without a server the test is
// skipped, or fails under CI=true.
func postgresStore(t testing.TB) *bunstore.Store {
	t.Helper()
	pgOnce.Do(func() {
		dsn := os.Getenv(envDSN)
		if dsn == "" {
			dsn = defaultDSN
		}
		pgDB, pgErr = sql.Open("pgx", dsn)
		if pgErr != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if pgErr = pgDB.PingContext(ctx); pgErr != nil {
			pgDB.Close()
		}
	})
	if pgErr != nil {
		msg := fmt.Sprintf("no PostgreSQL for tests (set %s or run `make test`): %v", envDSN, pgErr)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	suffix := hex.EncodeToString(b[:])
	sessions, messages := "oais_sessions_"+suffix, "oais_messages_"+suffix
	t.Cleanup(func() {
		if _, err := pgDB.Exec("DROP TABLE IF EXISTS " + messages + ", " + sessions); err != nil {
			t.Errorf("drop test tables: %v", err)
		}
	})
	return newStore(t, bun.NewDB(pgDB, pgdialect.New()), bunstore.WithTables(sessions, messages))
}

func newStore(t testing.TB, db bun.IDB, opts ...bunstore.Option) *bunstore.Store {
	t.Helper()
	st, err := bunstore.New(db, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.CreateTables(context.Background()); err != nil {
		t.Fatal(err)
	}
	return st
}
