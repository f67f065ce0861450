package main

import (
	"context"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/migrate"
)

// registerCreateTickets adds the migration that creates the tickets table.
// It sorts after lakesession's migration (20260601000000), so
// agent_sessions exists for its foreign key. bun/migrate names it after
// this file.
func registerCreateTickets(ms *migrate.Migrations) {
	ms.MustRegister(func(ctx context.Context, db *bun.DB) error {
		_, err := db.NewCreateTable().Model((*Ticket)(nil)).
			ForeignKey(`(session_id) REFERENCES agent_sessions (session_id) ON DELETE SET NULL`).
			Exec(ctx)
		return err
	}, func(ctx context.Context, db *bun.DB) error {
		_, err := db.NewDropTable().Model((*Ticket)(nil)).IfExists().Exec(ctx)
		return err
	})
}
