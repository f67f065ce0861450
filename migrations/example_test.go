package migrations_test

import (
	"context"
	"fmt"
	"log"

	"github.com/uptrace/bun/migrate"

	"github.com/lakesession/lakesession/bunstore/sqlitedb"
	"github.com/lakesession/lakesession/migrations"
)

// The migrations with a migrator of their own, next to the application's.
func Example() {
	ctx := context.Background()
	db, err := sqlitedb.Open(":memory:")
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()

	ms, err := migrations.For(db.Dialect().Name())
	if err != nil {
		log.Fatal(err)
	}
	m := migrate.NewMigrator(db, ms,
		migrate.WithTableName("lakesession_migrations"),
		migrate.WithLocksTableName("lakesession_migration_locks"))
	if err := m.Init(ctx); err != nil {
		log.Fatal(err)
	}
	if err := m.Lock(ctx); err != nil {
		log.Fatal(err)
	}
	defer m.Unlock(ctx)
	group, err := m.Migrate(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("applied", group.Migrations)
	// Output:
	// applied 20260601000000_lakesession_agent_tables
}
