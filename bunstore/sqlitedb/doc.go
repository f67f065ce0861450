// Package sqlitedb opens an SQLite database file for bunstore, with the pure
// Go driver modernc.org/sqlite (no cgo) and the settings a store shared by
// many goroutines needs: foreign keys on, WAL, a busy timeout, transactions
// that take the write lock when they begin, and a single connection, so
// that callers queue where their contexts apply.
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
// # Sharing the file
//
// Other processes, such as a Python agent using SQLAlchemySession with
// sqlite+aiosqlite, can use the same file: the tables and their
// CURRENT_TIMESTAMP times (UTC text, whole seconds) are the same. A process
// waits up to BusyTimeout for another's write to finish.
package sqlitedb
