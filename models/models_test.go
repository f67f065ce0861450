package models_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"
	"github.com/uptrace/bun/dialect/pgdialect"
	"github.com/uptrace/bun/migrate"

	"github.com/lakesession/lakesession/bunstore"
	"github.com/lakesession/lakesession/bunstore/sqlitedb"
	"github.com/lakesession/lakesession/internal/testdb"
	"github.com/lakesession/lakesession/migrations"
	"github.com/lakesession/lakesession/models"
)

var backends = []struct {
	name string
	open func(t *testing.T) *bun.DB
}{
	{"postgres", func(t *testing.T) *bun.DB { return bun.NewDB(testdb.Open(t), pgdialect.New()) }},
	{"sqlite", func(t *testing.T) *bun.DB {
		db, err := sqlitedb.Open(filepath.Join(t.TempDir(), "m.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}},
}

func migrated(t *testing.T, db *bun.DB) {
	t.Helper()
	ms, err := migrations.For(db.Dialect().Name())
	if err != nil {
		t.Fatal(err)
	}
	m := migrate.NewMigrator(db, ms)
	if err := m.Init(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func columns(t *testing.T, db *bun.DB, table string) []string {
	t.Helper()
	q := "SELECT column_name FROM information_schema.columns WHERE table_name = ? ORDER BY column_name"
	if db.Dialect().Name() == dialect.SQLite {
		q = "SELECT name FROM pragma_table_info(?) ORDER BY name"
	}
	rows, err := db.QueryContext(context.Background(), q, table)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
	return out
}

// The models have exactly the columns of the tables.
func TestModelsMatchTables(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			db := b.open(t)
			migrated(t, db)
			for _, m := range []any{(*models.AgentSession)(nil), (*models.AgentMessage)(nil)} {
				table := db.Table(reflect.TypeOf(m))
				var fields []string
				for _, f := range table.Fields {
					fields = append(fields, f.Name)
				}
				slices.Sort(fields)
				if got := columns(t, db, table.Name); !slices.Equal(fields, got) {
					t.Errorf("%s: model fields %v, table columns %v", table.Name, fields, got)
				}
			}
			if name := db.Table(reflect.TypeOf((*models.AgentSession)(nil))).Name; name != models.SessionsTable {
				t.Errorf("AgentSession table %s", name)
			}
			if name := db.Table(reflect.TypeOf((*models.AgentMessage)(nil))).Name; name != models.MessagesTable {
				t.Errorf("AgentMessage table %s", name)
			}
		})
	}
}

// Rows written through the store read back through the models, and rows
// inserted with the models read back through the store.
func TestModelsAndStoreShareRows(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			db := b.open(t)
			migrated(t, db)
			ctx := context.Background()
			st, err := bunstore.New(db)
			if err != nil {
				t.Fatal(err)
			}
			if err := st.Session("s").AddItems(ctx, []json.RawMessage{json.RawMessage(`{"n":1}`), json.RawMessage(`{"n":2}`)}); err != nil {
				t.Fatal(err)
			}

			var sess models.AgentSession
			if err := db.NewSelect().Model(&sess).Where("session_id = ?", "s").Scan(ctx); err != nil {
				t.Fatal(err)
			}
			if sess.CreatedAt.IsZero() || sess.UpdatedAt.Before(sess.CreatedAt) {
				t.Errorf("session %+v", sess)
			}
			var msgs []models.AgentMessage
			if err := db.NewSelect().Model(&msgs).Where("session_id = ?", "s").Order("created_at", "id").Scan(ctx); err != nil {
				t.Fatal(err)
			}
			if len(msgs) != 2 || msgs[0].MessageData != `{"n":1}` || msgs[1].MessageData != `{"n":2}` || msgs[0].ID >= msgs[1].ID || msgs[0].CreatedAt.IsZero() {
				t.Fatalf("messages %+v", msgs)
			}

			// Inserted with the models; the database fills ids and times.
			if _, err := db.NewInsert().Model(&models.AgentSession{SessionID: "m"}).Exec(ctx); err != nil {
				t.Fatal(err)
			}
			in := []models.AgentMessage{{SessionID: "m", MessageData: `{"a":1}`}, {SessionID: "m", MessageData: `{"a":2}`}}
			if _, err := db.NewInsert().Model(&in).Exec(ctx); err != nil {
				t.Fatal(err)
			}
			items, err := st.Session("m").GetItems(ctx, 0)
			if err != nil || len(items) != 2 || string(items[0]) != `{"a":1}` || string(items[1]) != `{"a":2}` {
				t.Fatalf("GetItems = %s, %v", items, err)
			}
			var got models.AgentSession
			if err := db.NewSelect().Model(&got).Where("session_id = ?", "m").Scan(ctx); err != nil {
				t.Fatal(err)
			}
			if got.CreatedAt.IsZero() {
				t.Errorf("the database did not fill created_at: %+v", got)
			}
		})
	}
}

// With other table names, ModelTableExpr points the models at them.
func TestModelsWithCustomNames(t *testing.T) {
	db := bun.NewDB(testdb.Open(t), pgdialect.New())
	ctx := context.Background()
	st, err := bunstore.New(db, bunstore.WithSchema("app"), bunstore.WithTables("chat_sessions", "chat_messages"))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.CreateTables(ctx); err != nil {
		t.Fatal(err)
	}
	if err := st.Session("s").AddItems(ctx, []json.RawMessage{json.RawMessage(`{"n":1}`)}); err != nil {
		t.Fatal(err)
	}
	var msgs []models.AgentMessage
	err = db.NewSelect().
		Model(&msgs).
		ModelTableExpr("?.? AS m", bun.Ident("app"), bun.Ident("chat_messages")).
		Where("session_id = ?", "s").
		Order("created_at", "id").
		Scan(ctx)
	if err != nil || len(msgs) != 1 || msgs[0].MessageData != `{"n":1}` {
		t.Fatalf("messages %+v, %v", msgs, err)
	}
	if msgs[0].CreatedAt.IsZero() || msgs[0].ID == 0 {
		t.Errorf("message %+v lacks its id or created_at", msgs[0])
	}
}
