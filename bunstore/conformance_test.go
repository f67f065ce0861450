package bunstore_test

import (
	"testing"

	"github.com/lakesession/lakesession"
	"github.com/lakesession/lakesession/bunstore"
	"github.com/lakesession/lakesession/sessiontest"
)

func TestConformance(t *testing.T) {
	run := func(t *testing.T, st *bunstore.Store) {
		sessiontest.Run(t, func(t *testing.T, id string) lakesession.Session { return st.Session(id) })
	}
	t.Run("postgres", func(t *testing.T) { run(t, newStore(t, openPG(t))) })
	t.Run("postgres-simple-protocol", func(t *testing.T) {
		db, _ := openPGWith(t, "default_query_exec_mode", "simple_protocol")
		run(t, newStore(t, db))
	})
	t.Run("postgres-schema-and-tables", func(t *testing.T) {
		run(t, newStore(t, openPG(t), bunstore.WithSchema("Agents"), bunstore.WithTables("Chat_Sessions", "chat_messages")))
	})
	t.Run("postgres-bun-formatting", func(t *testing.T) { run(t, newStore(t, idbOnly{openPG(t)})) })
	t.Run("sqlite", func(t *testing.T) { run(t, newStore(t, openSQLite(t))) })
	t.Run("sqlite-bun-formatting", func(t *testing.T) { run(t, newStore(t, idbOnly{openSQLite(t)})) })
}
