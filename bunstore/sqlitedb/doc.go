// Package sqlitedb opens an SQLite database file for bunstore, with the pure
// Go driver modernc.org/sqlite (no cgo) and settings that make it safe to
// share between many goroutines: foreign keys on, WAL, a busy timeout, and
// transactions that take the write lock when they begin.
//
// It is a package of its own so that programs that use only PostgreSQL do
// not link SQLite.
//
// # Usage
//
//	db, err := sqlitedb.Open("sessions.db")
//	if err != nil {
//		return err
//	}
//	defer db.Close()
//	store, err := bunstore.New(db)
//	if err != nil {
//		return err
//	}
//	if err := store.CreateTables(ctx); err != nil {
//		return err
//	}
//	sess := store.Session("user-789")
//
// # In memory
//
// Open(":memory:") gives a private database that disappears with the
// *bun.DB, handy for tests and examples.
//
// # Sharing the file with Python
//
// The Python SQLAlchemySession (sqlite+aiosqlite) can use the same file: the
// tables and their CURRENT_TIMESTAMP times (UTC text) are the same.
package sqlitedb
