package sqlitedb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"runtime"
	"strings"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/sqlitedialect"
	_ "modernc.org/sqlite" // registers the pure-Go "sqlite" database/sql driver
)

// BusyTimeout is how long, in milliseconds, a connection waits for another
// writer (of this or another process) to release the database before it
// fails with SQLITE_BUSY.
const BusyTimeout = 10000

// Memory is the path of a private in-memory database.
const Memory = ":memory:"

// Open opens (creating it when missing) the SQLite database file at path and
// returns it as a *bun.DB with the SQLite dialect, ready for bunstore and for
// many goroutines at once. Every connection has:
//
//   - foreign_keys on, so deleting a session also deletes its items;
//   - journal_mode WAL: readers do not block the writer, nor it them;
//   - busy_timeout BusyTimeout: a writer waits for another instead of
//     failing at once;
//   - synchronous NORMAL, the usual setting with WAL (a power loss may lose
//     the last transactions, never corrupt the file);
//   - transactions that begin IMMEDIATE: a transaction takes the write lock
//     when it starts, so it cannot fail half-way when it starts writing
//     after another writer committed.
//
// SQLite has one writer at a time; writes wait for one another and reads go
// on beside them. The pool has at most max(4, runtime.NumCPU()) connections.
//
// The path Memory (":memory:") opens a private in-memory database on a
// single connection, which lives as long as the *bun.DB.
func Open(path string) (*bun.DB, error) {
	if path == "" {
		return nil, errors.New(`sqlitedb: the path is empty; pass a file path such as "sessions.db", or ":memory:"`)
	}
	memory := path == Memory
	dsn := "file:" + escapePath(path) + "?_busy_timeout=" + fmt.Sprint(BusyTimeout) +
		"&_foreign_keys=1&_txlock=immediate"
	if !memory {
		dsn += "&_journal_mode=WAL&_synchronous=NORMAL"
	}
	sqldb, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("sqlitedb: open %s: %w", path, err)
	}
	if memory {
		// Each connection to ":memory:" is a database of its own: keep
		// exactly one, forever.
		sqldb.SetMaxOpenConns(1)
		sqldb.SetMaxIdleConns(1)
		sqldb.SetConnMaxLifetime(0)
		sqldb.SetConnMaxIdleTime(0)
	} else {
		n := max(4, runtime.NumCPU())
		sqldb.SetMaxOpenConns(n)
		sqldb.SetMaxIdleConns(n)
	}
	if err := sqldb.PingContext(context.Background()); err != nil {
		sqldb.Close()
		return nil, fmt.Errorf("sqlitedb: open %s: %w", path, err)
	}
	return bun.NewDB(sqldb, sqlitedialect.New()), nil
}

// escapePath makes path the path part of a "file:" URI: SQLite decodes %XX
// escapes there, and would take '?' and '#' as the start of the query and
// fragment.
func escapePath(path string) string {
	return strings.NewReplacer("%", "%25", "?", "%3F", "#", "%23").Replace(path)
}
