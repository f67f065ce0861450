package bunstore_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"log"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/lakesession/lakesession/bunstore"
	"github.com/lakesession/lakesession/bunstore/sqlitedb"
)

// A conversation on an embedded SQLite database.
func Example() {
	ctx := context.Background()
	db, err := sqlitedb.Open(":memory:") // or a file path
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	store, err := bunstore.New(db)
	if err != nil {
		log.Fatal(err)
	}
	if err := store.CreateTables(ctx); err != nil {
		log.Fatal(err)
	}

	sess := store.Session("user-789")
	err = sess.AddItems(ctx, []json.RawMessage{
		json.RawMessage(`{"role": "user", "content": "Hello I live in SF!"}`),
		json.RawMessage(`{"role": "assistant", "content": "Hi! How can I help?"}`),
	})
	if err != nil {
		log.Fatal(err)
	}
	err = sess.AddItems(ctx, []json.RawMessage{
		json.RawMessage(`{"role": "user", "content": "What city did I say I live in?"}`),
	})
	if err != nil {
		log.Fatal(err)
	}

	items, err := sess.GetItems(ctx, 2) // the latest 2, oldest first
	if err != nil {
		log.Fatal(err)
	}
	for _, it := range items {
		fmt.Println(string(it))
	}
	last, err := sess.PopItem(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("popped:", string(last))
	// Output:
	// {"role":"assistant","content":"Hi! How can I help?"}
	// {"role":"user","content":"What city did I say I live in?"}
	// popped: {"role":"user","content":"What city did I say I live in?"}
}

// A Store on PostgreSQL through pgx's database/sql driver.
func ExampleNew_postgres() {
	ctx := context.Background()
	sqldb, err := sql.Open("pgx", "postgres://app@127.0.0.1:5432/app?sslmode=disable")
	if err != nil {
		log.Fatal(err)
	}
	db := bun.NewDB(sqldb, pgdialect.New())
	store, err := bunstore.New(db,
		bunstore.WithSchema("agents"),
		bunstore.WithTables("agent_sessions", "agent_messages"))
	if err != nil {
		log.Fatal(err)
	}
	if err := store.CreateTables(ctx); err != nil {
		log.Fatal(err)
	}
	items, err := store.Session("user-789").GetItems(ctx, 20)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(items))
}

// New reports every configuration problem at once.
func ExampleNew_invalidConfig() {
	db, err := sqlitedb.Open(":memory:")
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	_, err = bunstore.New(db, bunstore.WithTables("agent-sessions", "messages; DROP TABLE x"))
	fmt.Println(err)
	// Output:
	// bunstore: invalid configuration: WithTables: sessions table name "agent-sessions" contains '-'; use only letters, digits and underscores; WithTables: messages table name "messages; DROP TABLE x" contains ';'; use only letters, digits and underscores
}

// The store in the application's own transaction.
func ExampleNew_transaction() {
	ctx := context.Background()
	db, err := sqlitedb.Open(":memory:")
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	store, err := bunstore.New(db)
	if err != nil {
		log.Fatal(err)
	}
	if err := store.CreateTables(ctx); err != nil {
		log.Fatal(err)
	}

	err = db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		inTx, err := bunstore.New(tx)
		if err != nil {
			return err
		}
		if err := inTx.Session("s1").AddItems(ctx, []json.RawMessage{json.RawMessage(`{"n":1}`)}); err != nil {
			return err
		}
		return fmt.Errorf("the application changed its mind")
	})
	fmt.Println(err)
	items, err := store.Session("s1").GetItems(ctx, 0)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(items), "items")
	// Output:
	// the application changed its mind
	// 0 items
}

// Stored items that are not valid JSON (written by hand or by another
// program) are skipped and reported.
func ExampleWithCorruptItemHandler() {
	ctx := context.Background()
	db, err := sqlitedb.Open(":memory:")
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	store, err := bunstore.New(db, bunstore.WithCorruptItemHandler(func(ctx context.Context, c bunstore.CorruptItem) {
		fmt.Printf("session %s, message %d: %q is not JSON\n", c.SessionID, c.MessageID, c.Data)
	}))
	if err != nil {
		log.Fatal(err)
	}
	if err := store.CreateTables(ctx); err != nil {
		log.Fatal(err)
	}
	sess := store.Session("s1")
	if err := sess.AddItems(ctx, []json.RawMessage{json.RawMessage(`{"n":1}`)}); err != nil {
		log.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, "INSERT INTO agent_messages (session_id, message_data) VALUES ('s1', '{oops')"); err != nil {
		log.Fatal(err)
	}
	items, err := sess.GetItems(ctx, 1)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(items[0]))
	// Output:
	// session s1, message 2: "{oops" is not JSON
	// {"n":1}
}

// Listing sessions page by page, and deleting idle ones.
func ExampleStore_ListSessions() {
	ctx := context.Background()
	db, err := sqlitedb.Open(":memory:")
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	store, err := bunstore.New(db)
	if err != nil {
		log.Fatal(err)
	}
	if err := store.CreateTables(ctx); err != nil {
		log.Fatal(err)
	}
	for _, id := range []string{"a", "b", "c"} {
		if err := store.Session(id).AddItems(ctx, []json.RawMessage{json.RawMessage(`{}`)}); err != nil {
			log.Fatal(err)
		}
	}

	opts := bunstore.ListOptions{Limit: 2}
	for {
		page, err := store.ListSessions(ctx, opts)
		if err != nil {
			log.Fatal(err)
		}
		for _, s := range page.Sessions {
			fmt.Println(s.ID, time.Since(s.UpdatedAt) < time.Minute)
		}
		if page.NextCursor == "" {
			break
		}
		opts.Cursor = page.NextCursor
	}

	n, err := store.DeleteSessions(ctx, time.Now().AddDate(0, 0, -30))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(n, "sessions idle for 30 days deleted")
	// Unordered output:
	// a true
	// b true
	// c true
	// 0 sessions idle for 30 days deleted
}
