package storage_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/lakesession/lakesession/examples/agentserver/storage"
)

func ExampleOpen() {
	dir, err := os.MkdirTemp("", "storage-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	// As the agent server does with os.Getenv: nothing set means SQLite.
	env := map[string]string{"SQLITE_PATH": filepath.Join(dir, "agent.db")}
	cfg := storage.FromEnv(func(k string) string { return env[k] })
	fmt.Println(cfg.Kind())

	ctx := context.Background()
	st, err := storage.Open(ctx, cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	sess := st.Store.Session("user-789")
	if err := sess.AddItems(ctx, []json.RawMessage{json.RawMessage(`{"role":"user","content":"Hello I live in SF!"}`)}); err != nil {
		log.Fatal(err)
	}
	items, err := sess.GetItems(ctx, 0)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(items[0]))
	// Output:
	// sqlite
	// {"role":"user","content":"Hello I live in SF!"}
}
