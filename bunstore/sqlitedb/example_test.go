package sqlitedb_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/lakesession/lakesession/bunstore"
	"github.com/lakesession/lakesession/bunstore/sqlitedb"
)

func ExampleOpen() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "sessions")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	db, err := sqlitedb.Open(filepath.Join(dir, "sessions.db"))
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
	if err := sess.AddItems(ctx, []json.RawMessage{json.RawMessage(`{"role":"user","content":"Hello"}`)}); err != nil {
		log.Fatal(err)
	}
	items, err := sess.GetItems(ctx, 0)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(items), string(items[0]))
	// Output:
	// 1 {"role":"user","content":"Hello"}
}
