package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"
	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
	"github.com/uptrace/bun/migrate"

	"github.com/lakesession/lakesession/bunstore"
	"github.com/lakesession/lakesession/bunstore/sqlitedb"
	"github.com/lakesession/lakesession/models"
)

func main() {
	path := flag.String("sqlite", "bunservice.db", "SQLite file, used when DATABASE_URL is not set")
	flag.Parse()
	ctx := context.Background()
	db, err := openDB(os.Getenv("DATABASE_URL"), *path)
	if err == nil {
		err = run(ctx, db, os.Stdout)
		db.Close()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bunservice:", err)
		os.Exit(1)
	}
}

// openDB opens PostgreSQL when dsn is set, else the SQLite file at path.
func openDB(dsn, path string) (*bun.DB, error) {
	if dsn == "" {
		return sqlitedb.Open(path)
	}
	sqldb, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, err
	}
	return bun.NewDB(sqldb, pgdialect.New()), nil
}

// Ticket is the service's own model.
type Ticket struct {
	bun.BaseModel `bun:"table:tickets,alias:t"`

	ID        int64     `bun:",pk,autoincrement"`
	Subject   string    `bun:",nullzero,notnull"` // "" is stored as NULL, which NOT NULL refuses
	SessionID string    `bun:",nullzero"`         // the conversation, in agent_sessions
	CreatedAt time.Time `bun:",nullzero,notnull,default:current_timestamp"`
}

func run(ctx context.Context, db *bun.DB, out io.Writer) error {
	if err := migrateAll(ctx, db, out); err != nil {
		return err
	}
	// The tables exist: the migrations made them, no CreateTables needed.
	store, err := bunstore.New(db)
	if err != nil {
		return err
	}

	id, err := openTicket(ctx, db, "Cannot log in", "Hello, I cannot log in since this morning.")
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "opened ticket %d with conversation %s\n", id.ticket, id.session)

	// Later turns go through the Store shared by the whole service.
	sess := store.Session(id.session)
	reply := json.RawMessage(`{"type":"message","role":"assistant","status":"completed","content":[{"type":"output_text","text":"Sorry about that! Which browser do you use?","annotations":[]}]}`)
	if err := sess.AddItems(ctx, []json.RawMessage{reply, json.RawMessage(`{"role":"user","content":"Firefox."}`)}); err != nil {
		return err
	}

	// A ticket the database refuses (it has no subject) takes its
	// conversation with it: the transaction that wrote both is rolled back.
	bad, err := openTicket(ctx, db, "", "This ticket has no subject.")
	if err == nil {
		return errors.New("a ticket without a subject was stored")
	}
	items, gerr := store.Session(bad.session).GetItems(ctx, 0)
	if gerr != nil {
		return gerr
	}
	if len(items) != 0 {
		return fmt.Errorf("the refused ticket's conversation was stored: %d items", len(items))
	}
	fmt.Fprintf(out, "a ticket without a subject was refused, and its first message rolled back with it:\n  %v\n", err)

	return report(ctx, db, out)
}

type ticketID struct {
	ticket  int64
	session string
}

// openTicket stores a new ticket and the first message of its conversation
// in one transaction.
func openTicket(ctx context.Context, db *bun.DB, subject, message string) (ticketID, error) {
	first, err := json.Marshal(map[string]string{"role": "user", "content": message})
	if err != nil {
		return ticketID{}, err
	}
	u, err := uuid.NewV7()
	if err != nil {
		return ticketID{}, err
	}
	t := &Ticket{Subject: subject, SessionID: u.String()}
	err = db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		// A Store on the transaction: its writes commit or roll back with it.
		txStore, err := bunstore.New(tx)
		if err != nil {
			return err
		}
		// The conversation first: the ticket's foreign key needs its session row.
		if err := txStore.Session(t.SessionID).AddItems(ctx, []json.RawMessage{first}); err != nil {
			return err
		}
		_, err = tx.NewInsert().Model(t).Returning("id").Exec(ctx)
		return err
	})
	id := ticketID{ticket: t.ID, session: t.SessionID}
	if err != nil {
		return id, fmt.Errorf("open ticket %q: %w", subject, err)
	}
	return id, nil
}

// report lists every ticket with the size of its conversation and its
// latest item, read with the lakesession models.
func report(ctx context.Context, db *bun.DB, out io.Writer) error {
	var tickets []Ticket
	if err := db.NewSelect().Model(&tickets).Order("id").Scan(ctx); err != nil {
		return err
	}
	fmt.Fprintf(out, "\ntickets:\n")
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "id\tsubject\tmessages\tlatest message")
	for _, t := range tickets {
		var msgs []models.AgentMessage
		err := db.NewSelect().Model(&msgs).
			Where("session_id = ?", t.SessionID).
			Order("created_at", "id").
			Scan(ctx)
		if err != nil {
			return err
		}
		latest := ""
		if len(msgs) > 0 {
			latest = msgs[len(msgs)-1].MessageData
		}
		fmt.Fprintf(tw, "%d\t%s\t%d\t%s\n", t.ID, t.Subject, len(msgs), latest)
	}
	return tw.Flush()
}

// migrateAll runs the service's migrations and lakesession's with one
// migrator, in version order.
func migrateAll(ctx context.Context, db *bun.DB, out io.Writer) error {
	ms, err := serviceMigrations(db.Dialect().Name())
	if err != nil {
		return err
	}
	m := migrate.NewMigrator(db, ms)
	if err := m.Init(ctx); err != nil {
		return err
	}
	if err := m.Lock(ctx); err != nil {
		return err
	}
	defer m.Unlock(ctx)
	group, err := m.Migrate(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if group.IsZero() {
		fmt.Fprintln(out, "migrations: nothing to do, the database is up to date")
		return nil
	}
	fmt.Fprintf(out, "migrations: applied group %d:\n", group.ID)
	for _, mig := range group.Migrations {
		fmt.Fprintf(out, "  %s %s\n", mig.Name, mig.Comment)
	}
	return nil
}
