package migrations

import (
	"embed"
	"fmt"
	"io/fs"

	"github.com/uptrace/bun/dialect"
	"github.com/uptrace/bun/migrate"
)

// FS holds the SQL migration files: postgres/*.sql for PostgreSQL and
// sqlite/*.sql for SQLite, named as bun/migrate expects
// (<version>_<comment>.tx.up.sql and .tx.down.sql, run in a transaction).
//
//go:embed postgres/*.sql sqlite/*.sql
var FS embed.FS

var (
	// Postgres creates the tables on PostgreSQL.
	Postgres = mustDiscover(dialect.PG)
	// SQLite creates the tables on SQLite.
	SQLite = mustDiscover(dialect.SQLite)
)

// Files returns the migration files for one dialect (dialect.PG or
// dialect.SQLite), for an application that discovers them into its own
// migrate.Migrations: appMigrations.Discover(files).
func Files(name dialect.Name) (fs.FS, error) {
	var dir string
	switch name {
	case dialect.PG:
		dir = "postgres"
	case dialect.SQLite:
		dir = "sqlite"
	default:
		return nil, fmt.Errorf("migrations: no migrations for the %s dialect; lakesession supports PostgreSQL (pgdialect) and SQLite (sqlitedialect)", name)
	}
	return fs.Sub(FS, dir)
}

// For returns the migrations for one dialect, typically
// migrations.For(db.Dialect().Name()).
func For(name dialect.Name) (*migrate.Migrations, error) {
	switch name {
	case dialect.PG:
		return Postgres, nil
	case dialect.SQLite:
		return SQLite, nil
	}
	_, err := Files(name)
	return nil, err
}

func mustDiscover(name dialect.Name) *migrate.Migrations {
	files, err := Files(name)
	if err != nil {
		panic(err)
	}
	m := migrate.NewMigrations()
	if err := m.Discover(files); err != nil {
		panic(fmt.Sprintf("migrations: embedded %s files: %v", name, err))
	}
	return m
}
