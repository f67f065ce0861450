package main

import (
	"github.com/uptrace/bun/dialect"
	"github.com/uptrace/bun/migrate"

	"github.com/lakesession/lakesession/migrations"
)

// serviceMigrations returns the service's own migrations (the Go files
// named VERSION_name.go in this directory) and lakesession's SQL
// migrations for the dialect, in one collection.
func serviceMigrations(d dialect.Name) (*migrate.Migrations, error) {
	ms := migrate.NewMigrations()
	registerCreateTickets(ms)
	registerTicketsSessionIndex(ms)
	files, err := migrations.Files(d)
	if err != nil {
		return nil, err
	}
	if err := ms.Discover(files); err != nil {
		return nil, err
	}
	return ms, nil
}
