package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/databricks/databricks-sdk-go"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/lakesession/lakesession/bunstore"
	"github.com/lakesession/lakesession/connector"
	"github.com/lakesession/lakesession/lakebasecred"
)

func main() {
	ctx := context.Background()
	db, closeDB, err := openDB(ctx, os.Getenv)
	if err == nil {
		err = run(ctx, db, os.Stdout)
		closeDB()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "databasesql:", err)
		os.Exit(1)
	}
}

// openDB opens the app's *sql.DB from the environment. The returned
// function closes it and the Lakebase source.
func openDB(ctx context.Context, getenv func(string) string) (*sql.DB, func(), error) {
	target := lakebasecred.Target{
		Instance: getenv("LAKEBASE_INSTANCE_NAME"),
		Endpoint: getenv("LAKEBASE_ENDPOINT"),
		Project:  getenv("LAKEBASE_PROJECT"),
		Branch:   getenv("LAKEBASE_BRANCH"),
	}
	dsn := getenv("DATABASE_URL")
	switch {
	case target != (lakebasecred.Target{}) && dsn != "":
		return nil, nil, errors.New("set DATABASE_URL or a LAKEBASE_* target, not both")
	case target != (lakebasecred.Target{}):
		w, err := databricks.NewWorkspaceClient()
		if err != nil {
			return nil, nil, fmt.Errorf("authenticate to Databricks (set DATABRICKS_HOST and DATABRICKS_TOKEN, or another DATABRICKS_* method): %w", err)
		}
		var opts []lakebasecred.Option
		if d := getenv("LAKEBASE_DATABASE"); d != "" {
			opts = append(opts, lakebasecred.WithDatabase(d))
		}
		return openLakebase(ctx, w, target, nil, opts...)
	case dsn != "":
		c, err := connector.New(connector.Config{DSN: dsn})
		if err != nil {
			return nil, nil, err
		}
		db := connector.OpenDB(c)
		return db, func() { db.Close() }, nil
	default:
		return nil, nil, errors.New("set LAKEBASE_INSTANCE_NAME (or LAKEBASE_ENDPOINT, or LAKEBASE_PROJECT and LAKEBASE_BRANCH) with DATABRICKS_* authentication, or DATABASE_URL")
	}
}

// openLakebase opens a *sql.DB on the Lakebase database of target.
func openLakebase(ctx context.Context, w *databricks.WorkspaceClient, target lakebasecred.Target, copts []connector.Option, opts ...lakebasecred.Option) (*sql.DB, func(), error) {
	src, err := lakebasecred.New(ctx, w, target, opts...)
	if err != nil {
		return nil, nil, err
	}
	c, err := connector.ForLakebase(src, copts...)
	if err != nil {
		src.Close()
		return nil, nil, err
	}
	db := connector.OpenDB(c)
	return db, func() { db.Close(); src.Close() }, nil
}

// message is a Responses-API message item in its simplest form.
type message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// run is the app: its own table and queries on db, and the conversation of
// a customer in the session store on the same pool.
func run(ctx context.Context, db *sql.DB, out io.Writer) error {
	// The app's own SQL, unchanged.
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS orders (
		id BIGSERIAL PRIMARY KEY,
		customer TEXT NOT NULL,
		item TEXT NOT NULL)`); err != nil {
		return err
	}
	var orderID int64
	if err := db.QueryRowContext(ctx, `INSERT INTO orders (customer, item) VALUES ($1, $2) RETURNING id`,
		"customer-42", "blue kettle").Scan(&orderID); err != nil {
		return err
	}
	fmt.Fprintf(out, "order %d stored with the app's own SQL\n", orderID)

	// The session store, on the same pool. Do not close bdb separately:
	// closing it would close db.
	bdb := bun.NewDB(db, pgdialect.New())
	store, err := bunstore.New(bdb)
	if err != nil {
		return err
	}
	if err := store.CreateTables(ctx); err != nil {
		return err
	}
	sess := store.Session("customer-42")
	question, err := json.Marshal(message{Role: "user", Content: fmt.Sprintf("Where is my order %d?", orderID)})
	if err != nil {
		return err
	}
	answer, err := json.Marshal(message{Role: "assistant", Content: "Your blue kettle ships tomorrow."})
	if err != nil {
		return err
	}
	if err := sess.AddItems(ctx, []json.RawMessage{question, answer}); err != nil {
		return err
	}
	items, err := sess.GetItems(ctx, 4)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "the latest %d items of session %s:\n", len(items), sess.SessionID())
	for _, it := range items {
		fmt.Fprintf(out, "  %s\n", it)
	}

	// The app can read the session tables with plain SQL too.
	var n int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM agent_messages WHERE session_id = $1`, sess.SessionID()).Scan(&n); err != nil {
		return err
	}
	st := db.Stats()
	fmt.Fprintf(out, "%d items stored for %s in all; one pool: %d open connections, at most %d\n",
		n, sess.SessionID(), st.OpenConnections, st.MaxOpenConnections)
	return nil
}
