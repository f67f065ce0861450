// Package testdb gives tests a real PostgreSQL database of their own.
//
// The server is named by the LAKESESSION_TEST_DATABASE_URL environment
// variable (a superuser DSN; `make test` starts a throwaway server and sets
// it), with postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable as the
// local default. When no server answers, tests that need one are skipped,
// except under CI=true, where they fail.
package testdb

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
)

const (
	// EnvDSN names the environment variable with the test server's superuser DSN.
	EnvDSN = "LAKESESSION_TEST_DATABASE_URL"
	// EnvSSLRootCert names the environment variable with the path of the test
	// server's self-signed certificate, set when the server runs with ssl=on.
	EnvSSLRootCert = "LAKESESSION_TEST_SSLROOTCERT"

	defaultDSN = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
)

var (
	probeOnce sync.Once
	probeErr  error
)

// AdminDSN returns the superuser DSN of the test server. It skips t (fails it
// under CI=true) when the server cannot be reached.
func AdminDSN(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv(EnvDSN)
	if dsn == "" {
		dsn = defaultDSN
	}
	probeOnce.Do(func() { probeErr = probe(dsn) })
	if probeErr != nil {
		msg := fmt.Sprintf("no PostgreSQL for tests (set %s or run `make test`): %v", EnvDSN, probeErr)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return dsn
}

func probe(dsn string) error {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return db.PingContext(ctx)
}

// SSLRootCert returns the path of the test server's certificate, or skips t
// (fails it under CI=true) when the server was not started with TLS.
func SSLRootCert(t testing.TB) string {
	t.Helper()
	p := os.Getenv(EnvSSLRootCert)
	if p == "" {
		msg := fmt.Sprintf("the test PostgreSQL has no TLS certificate (set %s or run `make test`)", EnvSSLRootCert)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return p
}

// NewDatabase creates an empty database on the test server and returns a
// superuser DSN for it. The database is dropped when the test ends.
func NewDatabase(t testing.TB) string {
	t.Helper()
	admin := AdminDSN(t)
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	name := "lakesession_test_" + hex.EncodeToString(b[:])
	db, err := sql.Open("pgx", admin)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("CREATE DATABASE " + name); err != nil {
		db.Close()
		t.Fatalf("create test database: %v", err)
	}
	t.Cleanup(func() {
		defer db.Close()
		if _, err := db.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)"); err != nil {
			t.Errorf("drop test database %s: %v", name, err)
		}
	})
	return WithParam(t, admin, "dbname", name)
}

// Open returns a pool on a new empty database (see NewDatabase), closed when
// the test ends.
func Open(t testing.TB) *sql.DB {
	t.Helper()
	db, err := sql.Open("pgx", NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// WithParam returns dsn with one connection parameter set (for example
// "dbname", "timezone" or "user"). URL and keyword/value DSNs are both
// understood; for a URL, "dbname" replaces the path and "user" and "password"
// replace the user info.
func WithParam(t testing.TB, dsn, key, value string) string {
	t.Helper()
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatalf("parse %s: %v", EnvDSN, err)
		}
		switch key {
		case "dbname":
			u.Path = "/" + value
		case "user":
			if p, ok := u.User.Password(); ok {
				u.User = url.UserPassword(value, p)
			} else {
				u.User = url.User(value)
			}
		case "password":
			u.User = url.UserPassword(u.User.Username(), value)
		default:
			q := u.Query()
			q.Set(key, value)
			u.RawQuery = q.Encode()
		}
		return u.String()
	}
	quoted := "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(value) + "'"
	return dsn + " " + key + "=" + quoted
}
