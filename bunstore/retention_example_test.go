package bunstore_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"time"

	"github.com/lakesession/lakesession/bunstore"
	"github.com/lakesession/lakesession/bunstore/sqlitedb"
)

// A retention job: count first with DryRun, then prune in batches, with a
// report after each batch.
func ExampleStore_PruneSessions() {
	ctx := context.Background()
	db, err := sqlitedb.Open(sqlitedb.Memory)
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
		err := store.Session(id).AddItems(ctx, []json.RawMessage{
			json.RawMessage(`{"role":"user","content":"Hello"}`),
			json.RawMessage(`{"role":"assistant","content":"Hi!"}`),
		})
		if err != nil {
			log.Fatal(err)
		}
	}

	// A real job keeps, say, 30 days: Before: time.Now().AddDate(0, 0, -30).
	// A second from now takes every session of this example.
	opts := bunstore.PruneOptions{Before: time.Now().Add(time.Second), BatchSize: 2, DryRun: true}
	res, err := store.PruneSessions(ctx, opts)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("would remove %d sessions, %d items\n", res.Sessions, res.Items)

	opts.DryRun = false
	opts.Progress = func(p bunstore.PruneProgress) {
		fmt.Printf("batch %d: %d sessions, %d items (so far %d sessions)\n", p.Batch, p.Sessions, p.Items, p.Total.Sessions)
	}
	res, err = store.PruneSessions(ctx, opts)
	if err != nil {
		log.Fatal(err) // the batches before the error stay removed; res counts them
	}
	fmt.Printf("removed %d sessions, %d items, in %d transactions\n", res.Sessions, res.Items, res.Batches)
	// Output:
	// would remove 3 sessions, 6 items
	// batch 1: 2 sessions, 4 items (so far 2 sessions)
	// batch 2: 1 sessions, 2 items (so far 3 sessions)
	// removed 3 sessions, 6 items, in 2 transactions
}
