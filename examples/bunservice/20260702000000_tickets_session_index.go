package main

import (
	"context"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/migrate"
)

// registerTicketsSessionIndex adds the migration that indexes tickets by
// conversation.
func registerTicketsSessionIndex(ms *migrate.Migrations) {
	ms.MustRegister(func(ctx context.Context, db *bun.DB) error {
		_, err := db.NewCreateIndex().Model((*Ticket)(nil)).
			Index("tickets_session_id_idx").Column("session_id").
			Exec(ctx)
		return err
	}, func(ctx context.Context, db *bun.DB) error {
		_, err := db.NewDropIndex().Index("tickets_session_id_idx").IfExists().Exec(ctx)
		return err
	})
}
