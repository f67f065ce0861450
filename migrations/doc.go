// Package migrations creates the agent_sessions and agent_messages tables
// (see package models) with bun/migrate, from embedded SQL files.
//
// The migrations create the tables only when they do not exist, so they also
// run on a database where the Python SQLAlchemySession made them first: its
// tables are kept, and the index lakesession reads by is added. They use the
// default table names; for other names or a schema, use
// bunstore.Store.CreateTables instead.
//
// There is one set of files per dialect: Postgres and SQLite, or For(name).
// Their version numbers are fixed timestamps, so they sort among an
// application's own migrations.
//
// # Running them with their own migrator
//
// The simplest way: a migrator of their own, with its own bookkeeping tables,
// next to the application's migrator.
//
//	m := migrate.NewMigrator(db, migrations.Postgres, // or migrations.For(db.Dialect().Name())
//		migrate.WithTableName("lakesession_migrations"),
//		migrate.WithLocksTableName("lakesession_migration_locks"))
//	if err := m.Init(ctx); err != nil {
//		return err
//	}
//	if err := m.Lock(ctx); err != nil {
//		return err
//	}
//	defer m.Unlock(ctx)
//	if _, err := m.Migrate(ctx); err != nil {
//		return err
//	}
//
// # Running them among the application's migrations
//
// Or discover the files into the application's own collection, so that one
// migrator runs (and rolls back) everything:
//
//	var Migrations = migrate.NewMigrations() // the application's
//
//	func init() {
//		if err := Migrations.DiscoverCaller(); err != nil { // the application's own files
//			panic(err)
//		}
//		files, err := migrations.Files(dialect.PG)
//		if err != nil {
//			panic(err)
//		}
//		if err := Migrations.Discover(files); err != nil {
//			panic(err)
//		}
//	}
//
// # Without bun/migrate
//
// The SQL is in FS (postgres/*.sql, sqlite/*.sql) for any other migration
// tool; the lines "--bun:split" separate the statements.
package migrations
