package cli

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/uptrace/bun/dialect"
	"github.com/uptrace/bun/migrate"

	"github.com/lakesession/lakesession/migrations"
	"github.com/lakesession/lakesession/models"
)

// The bookkeeping tables of bun/migrate that lakesession uses by default:
// the names package migrations documents for a migrator of their own, so
// that an application that runs the migrations itself sees the same state.
const (
	DefaultMigrationsTable     = "lakesession_migrations"
	DefaultMigrationLocksTable = "lakesession_migration_locks"
)

type migrateFlags struct {
	table, locks string
	yes          bool
}

func (a *app) migrateCommand() *cobra.Command {
	var f migrateFlags
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Apply, roll back or show the embedded migrations (bun/migrate)",
		Long: `migrate runs the migrations embedded in package migrations through bun/migrate,
with its bookkeeping tables (` + DefaultMigrationsTable + ` and ` + DefaultMigrationLocksTable + `
by default, as package migrations documents), so an application that runs
them itself sees the same state. An application that discovers the files
into its own collection records them in its own table: pass
--migrations-table bun_migrations --migration-locks-table bun_migration_locks
to share it; down then refuses to roll back lakesession's group when the
table records the application's migrations applied with or after it.

The migrations create ` + models.SessionsTable + ` and ` + models.MessagesTable + ` (kept as they are when
the Python SQLAlchemySession made them first) and lakesession's indexes. With
--schema they run in that schema, which migrate up creates when missing.`,
		RunE: a.group,
	}
	cmd.PersistentFlags().StringVar(&f.table, "migrations-table", DefaultMigrationsTable, "bun/migrate's table of applied migrations")
	cmd.PersistentFlags().StringVar(&f.locks, "migration-locks-table", DefaultMigrationLocksTable, "bun/migrate's lock table")

	up := &cobra.Command{
		Use:   "up",
		Short: "Apply the migrations not applied yet",
		Args:  noArgs,
		RunE:  a.run(func(cmd *cobra.Command, _ []string) error { return a.migrateUp(cmd.Context(), f) }),
	}
	down := &cobra.Command{
		Use:   "down",
		Short: "Roll back the last group of applied migrations: drops the tables and every conversation",
		Args:  noArgs,
		RunE:  a.run(func(cmd *cobra.Command, _ []string) error { return a.migrateDown(cmd.Context(), f) }),
	}
	down.Flags().BoolVar(&f.yes, "yes", false, "confirm that the tables and every stored conversation are dropped")
	status := &cobra.Command{
		Use:   "status",
		Short: "Show which migrations are applied and which are pending",
		Args:  noArgs,
		RunE:  a.run(func(cmd *cobra.Command, _ []string) error { return a.migrateStatus(cmd.Context(), f) }),
	}
	cmd.AddCommand(up, down, status)
	return cmd
}

func (a *app) checkMigrateFlags(f migrateFlags) error {
	if a.conn.customTables() {
		return usagef("the embedded migrations create %s and %s only, not --sessions-table %s / --messages-table %s: leave those flags out, or create tables of other names from your application with bunstore's CreateTables (WithTables)",
			models.SessionsTable, models.MessagesTable, a.conn.sessionsTable, a.conn.messagesTable)
	}
	for _, n := range []struct{ flag, name string }{{"--migrations-table", f.table}, {"--migration-locks-table", f.locks}} {
		if !plainIdent(n.name) {
			return usagef("%s %q: use letters, digits and underscores, starting with a letter or an underscore, at most 63 bytes", n.flag, n.name)
		}
	}
	if f.table == f.locks {
		return usagef("--migrations-table and --migration-locks-table are both %q: give them different names", f.table)
	}
	return nil
}

func plainIdent(s string) bool {
	if s == "" || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '_', 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case '0' <= c && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// migrationTables returns the bookkeeping tables as SQL, written as an
// application passes them to migrate.WithTableName (bun/migrate's lock is
// keyed by that text), qualified with the quoted --schema when given.
func (a *app) migrationTables(f migrateFlags) (table, locks string) {
	q := func(n string) string {
		if a.conn.schema != "" {
			return `"` + a.conn.schema + `".` + n
		}
		return n
	}
	return q(f.table), q(f.locks)
}

func (a *app) newMigrator(c *conn, f migrateFlags) (*migrate.Migrator, error) {
	ms, err := migrations.For(c.db.Dialect().Name())
	if err != nil {
		return nil, err
	}
	table, locks := a.migrationTables(f)
	return migrate.NewMigrator(c.db, ms,
		migrate.WithTableName(table),
		migrate.WithLocksTableName(locks),
		// A migration that fails is not recorded as applied.
		migrate.WithMarkAppliedOnSuccess(true)), nil
}

// schemaExists reports whether --schema exists (true without --schema).
func (a *app) schemaExists(ctx context.Context, c *conn) (bool, error) {
	if a.conn.schema == "" || c.db.Dialect().Name() != dialect.PG {
		return true, nil
	}
	var ok bool
	err := c.db.QueryRowContext(ctx, "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = ?)", a.conn.schema).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("look for schema %s: %w", a.conn.schema, err)
	}
	return ok, nil
}

// tableExists reports whether the named table exists: name is a plain
// identifier, looked up in --schema (or the search path) on PostgreSQL.
func (a *app) tableExists(ctx context.Context, c *conn, name string) (bool, error) {
	var ok bool
	var err error
	if c.db.Dialect().Name() == dialect.PG {
		q := name
		if a.conn.schema != "" {
			q = `"` + a.conn.schema + `".` + q
		}
		err = c.db.QueryRowContext(ctx, "SELECT to_regclass(?) IS NOT NULL", q).Scan(&ok)
	} else {
		err = c.db.QueryRowContext(ctx, "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = ?", name).Scan(&ok)
	}
	if err != nil {
		return false, fmt.Errorf("look for table %s: %w", name, err)
	}
	return ok, nil
}

// locked runs fn holding bun/migrate's lock, and releases it also when
// ctx was cancelled (Ctrl-C).
func locked(ctx context.Context, m *migrate.Migrator, locks string, fn func() error) (err error) {
	if err := m.Lock(ctx); err != nil {
		return fmt.Errorf("%w: another migration is running, or one was interrupted; when none runs, delete the row of %s", err, locks)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if uerr := m.Unlock(ctx); uerr != nil && err == nil {
			err = fmt.Errorf("release the migration lock (delete the row of %s by hand): %w", locks, uerr)
		}
	}()
	return fn()
}

// othersSince returns the migrations the bookkeeping table records that
// are not lakesession's, applied in group minGroup or later (all of them
// for minGroup 0): the table is shared with an application that runs its
// own migrations with bun/migrate.
func othersSince(ctx context.Context, m *migrate.Migrator, ours migrate.MigrationSlice, minGroup int64) ([]string, error) {
	applied, err := m.AppliedMigrations(ctx)
	if err != nil {
		return nil, err
	}
	known := make(map[string]bool, len(ours))
	for _, mg := range ours {
		known[mg.Name] = true
	}
	var names []string
	for _, mg := range applied {
		if !known[mg.Name] && mg.GroupID >= minGroup {
			names = append(names, mg.Name) // the table keeps no comment
		}
	}
	sort.Strings(names)
	return names, nil
}

func (a *app) migrateUp(ctx context.Context, f migrateFlags) error {
	if err := a.checkMigrateFlags(f); err != nil {
		return err
	}
	c, err := a.open(ctx, openOptions{createSQLite: true})
	if err != nil {
		return err
	}
	defer c.Close()
	ok, err := a.schemaExists(ctx, c)
	if err != nil {
		return err
	}
	if !ok {
		if _, err := c.db.ExecContext(ctx, `CREATE SCHEMA IF NOT EXISTS "`+a.conn.schema+`"`); err != nil {
			return fmt.Errorf("create schema %s (it needs the CREATE privilege on the database; or create the schema first): %w", a.conn.schema, err)
		}
		fmt.Fprintf(a.env.Stdout, "created schema %s\n", a.conn.schema)
	}
	m, err := a.newMigrator(c, f)
	if err != nil {
		return err
	}
	if err := m.Init(ctx); err != nil {
		return fmt.Errorf("create bun/migrate's tables %s and %s: %w", f.table, f.locks, err)
	}
	return locked(ctx, m, f.locks, func() error {
		group, err := m.Migrate(ctx)
		if err != nil {
			return fmt.Errorf("migrate up: %w", err)
		}
		if group.IsZero() {
			fmt.Fprintln(a.env.Stdout, "nothing to apply: every migration is applied")
			return nil
		}
		for _, mg := range group.Migrations {
			fmt.Fprintf(a.env.Stdout, "applied %s (group %d)\n", mg.String(), group.ID)
		}
		return nil
	})
}

func (a *app) migrateDown(ctx context.Context, f migrateFlags) error {
	if err := a.checkMigrateFlags(f); err != nil {
		return err
	}
	if !f.yes {
		return usagef("migrate down rolls back the last group of migrations: it drops %s and %s with every stored conversation; pass --yes to do it", models.SessionsTable, models.MessagesTable)
	}
	c, err := a.open(ctx, openOptions{})
	if err != nil {
		return err
	}
	defer c.Close()
	ok, err := a.schemaExists(ctx, c)
	if err == nil && ok {
		ok, err = a.tableExists(ctx, c, f.table)
	}
	if err != nil {
		return err
	}
	if !ok {
		fmt.Fprintf(a.env.Stdout, "nothing to roll back: no migration was applied (%s does not exist)\n", f.table)
		return nil
	}
	m, err := a.newMigrator(c, f)
	if err != nil {
		return err
	}
	return locked(ctx, m, f.locks, func() error {
		ours, err := m.MigrationsWithStatus(ctx)
		if err != nil {
			return fmt.Errorf("read %s: %w", f.table, err)
		}
		last := ours.LastGroup()
		if last.IsZero() {
			fmt.Fprintln(a.env.Stdout, "nothing to roll back: no migration is applied")
			return nil
		}
		// bun/migrate rolls back the last group of the migrations it
		// knows: in a table shared with an application's own migrations,
		// that may be one the application's later groups build on.
		others, err := othersSince(ctx, m, ours, last.ID)
		if err != nil {
			return fmt.Errorf("read %s: %w", f.table, err)
		}
		if len(others) > 0 {
			return fmt.Errorf("%s also records migrations that are not lakesession's, applied with or after its group %d: %s; nothing was rolled back: roll back with the application's own migrator, which knows them all", f.table, last.ID, joinSome(others, 5))
		}
		group, err := m.Rollback(ctx)
		if err != nil {
			return fmt.Errorf("migrate down: %w", err)
		}
		for i := len(group.Migrations) - 1; i >= 0; i-- {
			fmt.Fprintf(a.env.Stdout, "rolled back %s (group %d)\n", group.Migrations[i].String(), group.ID)
		}
		return nil
	})
}

func (a *app) migrateStatus(ctx context.Context, f migrateFlags) error {
	if err := a.checkMigrateFlags(f); err != nil {
		return err
	}
	c, err := a.open(ctx, openOptions{})
	if err != nil {
		return err
	}
	defer c.Close()
	m, err := a.newMigrator(c, f)
	if err != nil {
		return err
	}
	ok, err := a.schemaExists(ctx, c)
	if err == nil && ok {
		ok, err = a.tableExists(ctx, c, f.table)
	}
	if err != nil {
		return err
	}
	var (
		list   migrate.MigrationSlice
		others []string
	)
	if ok {
		if list, err = m.MigrationsWithStatus(ctx); err != nil {
			return fmt.Errorf("read %s: %w", f.table, err)
		}
		if others, err = othersSince(ctx, m, list, 0); err != nil {
			return fmt.Errorf("read %s: %w", f.table, err)
		}
	} else {
		ms, err := migrations.For(c.db.Dialect().Name())
		if err != nil {
			return err
		}
		list = ms.Sorted()
	}
	tw := tabwriter.NewWriter(a.env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STATUS\tMIGRATION\tGROUP\tAPPLIED AT")
	applied := 0
	for _, mg := range list {
		if mg.IsApplied() {
			applied++
			fmt.Fprintf(tw, "applied\t%s\t%d\t%s\n", mg.String(), mg.GroupID, mg.MigratedAt.UTC().Format(time.RFC3339))
		} else {
			fmt.Fprintf(tw, "pending\t%s\t-\t-\n", mg.String())
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	table, _ := a.migrationTables(f)
	shared := ""
	if len(others) > 0 {
		shared = fmt.Sprintf("; it also records %s of the application's", plural(int64(len(others)), "other migration"))
	}
	fmt.Fprintf(a.env.Stdout, "%d applied, %d pending (bun/migrate table %s%s)\n", applied, len(list)-applied, strings.ReplaceAll(table, `"`, ""), shared)
	return nil
}
