package models_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"

	"github.com/lakesession/lakesession/bunstore"
	"github.com/lakesession/lakesession/bunstore/sqlitedb"
	"github.com/lakesession/lakesession/models"
)

// An application's own query on the rows the store wrote.
func Example() {
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
	err = store.Session("user-789").AddItems(ctx, []json.RawMessage{
		json.RawMessage(`{"role":"user","content":"Hello"}`),
		json.RawMessage(`{"role":"assistant","content":"Hi!"}`),
	})
	if err != nil {
		log.Fatal(err)
	}

	var msgs []models.AgentMessage
	err = db.NewSelect().
		Model(&msgs).
		Where("session_id = ?", "user-789").
		Order("created_at", "id").
		Scan(ctx)
	if err != nil {
		log.Fatal(err)
	}
	for _, m := range msgs {
		fmt.Println(m.ID, m.MessageData)
	}
	// Output:
	// 1 {"role":"user","content":"Hello"}
	// 2 {"role":"assistant","content":"Hi!"}
}
