package sqlitedb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/sqlitedialect"
	_ "modernc.org/sqlite" // registers the pure-Go "sqlite" database/sql driver
)

// BusyTimeout is how long, in milliseconds, a connection waits for another
// process to release the database before it fails with SQLITE_BUSY. SQLite
// waits without looking at a context: deadlines apply to waits inside the
// process (see Open), not to waits for other processes.
const BusyTimeout = 5000

// Memory is the path of a private in-memory database.
const Memory = ":memory:"

// Open opens (creating it when missing) the SQLite database file at path and
// returns it as a *bun.DB with the SQLite dialect, ready for bunstore and for
// many goroutines at once. The connection has:
//
//   - foreign_keys on, so deleting a session also deletes its items;
//   - journal_mode WAL: readers in other processes do not block the writer,
//     nor it them;
//   - busy_timeout BusyTimeout: it waits for another process's write
//     instead of failing at once;
//   - synchronous NORMAL, the usual setting with WAL (a power loss may lose
//     the last transactions, never corrupt the file);
//   - transactions that begin IMMEDIATE: a transaction takes the write lock
//     when it starts, so it cannot fail half-way when it starts writing
//     after another process committed.
//
// The pool has one connection. SQLite lets one writer in at a time, and its
// own wait for the lock ignores contexts; with a single connection the
// goroutines of this process queue in database/sql instead, where each
// waits only as long as its context allows, in arrival order. Reads are
// served by the same connection; they are short. Inside a transaction on
// the *bun.DB, use that transaction (bunstore.New(tx)) rather than the
// *bun.DB itself, which waits for the transaction to end.
//
// The path Memory (":memory:") opens a private in-memory database, which
// lives as long as the *bun.DB.
func Open(path string) (*bun.DB, error) {
	if path == "" {
		return nil, errors.New(`sqlitedb: the path is empty; pass a file path such as "sessions.db", or ":memory:"`)
	}
	dsn := "file:" + escapePath(path) + "?_busy_timeout=" + fmt.Sprint(BusyTimeout) +
		"&_foreign_keys=1&_txlock=immediate"
	if path != Memory {
		dsn += "&_journal_mode=WAL&_synchronous=NORMAL"
	}
	sqldb, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("sqlitedb: open %s: %w", path, err)
	}
	// One connection, kept forever (for ":memory:", every connection would
	// be a database of its own).
	sqldb.SetMaxOpenConns(1)
	sqldb.SetMaxIdleConns(1)
	sqldb.SetConnMaxLifetime(0)
	sqldb.SetConnMaxIdleTime(0)
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
