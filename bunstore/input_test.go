package bunstore_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/lakesession/lakesession"
	"github.com/lakesession/lakesession/bunstore"
)

// An invalid item among valid ones, or an invalid session id, is refused
// with a clear error, and nothing is written: not the valid items, not the
// session row.
func TestBadInputWritesNothing(t *testing.T) {
	eachBackend(t, func(t *testing.T, db *bun.DB) {
		st := newStore(t, db)
		ctx := context.Background()
		existing := st.Session("existing")
		mustAdd(t, existing, batch("e", 2))

		bad := []struct {
			name  string
			item  string
			wants string
		}{
			{"array", `[1]`, "not a JSON object"},
			{"string", `"hi"`, "not a JSON object"},
			{"empty", ``, "empty"},
			{"broken", `{"a":`, "not valid JSON"},
			{"two values", `{} {}`, "not valid JSON"},
			{"invalid UTF-8", "{\"a\":\"\xff\xfe\"}", "UTF-8"},
		}
		for _, b := range bad {
			items := []json.RawMessage{item("ok", 0), json.RawMessage(b.item), item("ok", 2)}
			for _, s := range []*bunstore.Session{st.Session("new-" + b.name), existing} {
				err := s.AddItems(ctx, items)
				if !errors.Is(err, lakesession.ErrInvalidItem) {
					t.Fatalf("%s: AddItems = %v; want ErrInvalidItem", b.name, err)
				}
				if !strings.Contains(err.Error(), b.wants) || !strings.Contains(err.Error(), "item 1 of 3") {
					t.Errorf("%s: error %q should say %q and which item", b.name, err, b.wants)
				}
			}
			if sessions, messages := rowCounts(t, db, "new-"+b.name); sessions+messages != 0 {
				t.Fatalf("%s: %d session rows and %d items written", b.name, sessions, messages)
			}
		}
		wantItems(t, mustGet(t, existing, 0), batch("e", 2))

		for _, id := range []string{"", strings.Repeat("é", 128), "bad\xff", "nul\x00"} {
			s := st.Session(id)
			if s.SessionID() != id {
				t.Errorf("SessionID() = %q, want %q", s.SessionID(), id)
			}
			if err := s.AddItems(ctx, batch("x", 1)); !errors.Is(err, lakesession.ErrInvalidSessionID) {
				t.Errorf("AddItems on %q: %v; want ErrInvalidSessionID", id, err)
			}
			if err := s.AddItems(ctx, nil); !errors.Is(err, lakesession.ErrInvalidSessionID) {
				t.Errorf("AddItems(nil) on %q: %v; want ErrInvalidSessionID", id, err)
			}
			if _, err := s.GetItems(ctx, 1); !errors.Is(err, lakesession.ErrInvalidSessionID) {
				t.Errorf("GetItems on %q: %v; want ErrInvalidSessionID", id, err)
			}
			if _, err := s.PopItem(ctx); !errors.Is(err, lakesession.ErrInvalidSessionID) {
				t.Errorf("PopItem on %q: %v; want ErrInvalidSessionID", id, err)
			}
			if err := s.ClearSession(ctx); !errors.Is(err, lakesession.ErrInvalidSessionID) {
				t.Errorf("ClearSession on %q: %v; want ErrInvalidSessionID", id, err)
			}
		}
		if n := count(t, db, "SELECT count(*) FROM agent_sessions"); n != 1 {
			t.Fatalf("%d session rows; want only the existing one", n)
		}
		if n := count(t, db, "SELECT count(*) FROM agent_messages"); n != 2 {
			t.Fatalf("%d items; want only the existing two", n)
		}
	})
}

// When the database refuses an item in the middle of a batch, nothing of
// the batch is written, not even the session row.
func TestRejectedBatchWritesNothing(t *testing.T) {
	eachBackend(t, func(t *testing.T, db *bun.DB) {
		st := newStore(t, db)
		ctx := context.Background()
		var ddl string
		if isPG(db) {
			ddl = `ALTER TABLE agent_messages ADD CONSTRAINT no_reject CHECK (message_data NOT LIKE '%reject%')`
		} else {
			ddl = `CREATE TRIGGER no_reject BEFORE INSERT ON agent_messages
				WHEN NEW.message_data LIKE '%reject%' BEGIN SELECT RAISE(ABORT, 'rejected'); END`
		}
		if _, err := db.ExecContext(ctx, ddl); err != nil {
			t.Fatal(err)
		}
		items := []json.RawMessage{item("ok", 0), item("ok", 1), item("reject", 2), item("ok", 3)}
		for _, id := range []string{"fresh", "existing"} {
			if id == "existing" {
				mustAdd(t, st.Session(id), batch("e", 1))
			}
			err := st.Session(id).AddItems(ctx, items)
			if err == nil {
				t.Fatalf("%s: the database accepted the batch", id)
			}
			if !strings.HasPrefix(err.Error(), `add items to session "`+id+`": `) {
				t.Errorf("error %q lacks the operation and session id", err)
			}
		}
		if sessions, messages := rowCounts(t, db, "fresh"); sessions+messages != 0 {
			t.Fatalf("fresh session: %d session rows and %d items written", sessions, messages)
		}
		wantItems(t, mustGet(t, st.Session("existing"), 0), batch("e", 1))
	})
}

// otherDialect is PostgreSQL's dialect under another name.
type otherDialect struct{ *pgdialect.Dialect }

func (otherDialect) Name() dialect.Name { return dialect.MySQL }

// New reports every configuration problem at once, each saying what to fix.
func TestNewRejectsBadConfiguration(t *testing.T) {
	sqldb, err := sql.Open("pgx", "postgres://127.0.0.1:1/none")
	if err != nil {
		t.Fatal(err)
	}
	defer sqldb.Close()
	pg := bun.NewDB(sqldb, pgdialect.New())
	long := strings.Repeat("t", 64)
	cases := []struct {
		name  string
		db    bun.IDB
		opts  []bunstore.Option
		wants []string
	}{
		{"nil db", nil, nil, []string{"the database is nil"}},
		{"dialect", bun.NewDB(sqldb, otherDialect{pgdialect.New()}), nil, []string{"mysql dialect is not supported"}},
		{"hyphen", pg, []bunstore.Option{bunstore.WithTables("agent-sessions", "msgs")}, []string{`sessions table name "agent-sessions" contains '-'`}},
		{"injection", pg, []bunstore.Option{bunstore.WithTables("s", `m"; DROP TABLE x; --`)}, []string{`messages table name`, `contains '"'`}},
		{"digit", pg, []bunstore.Option{bunstore.WithTables("1s", "m")}, []string{`"1s" starts with a digit`}},
		{"empty", pg, []bunstore.Option{bunstore.WithTables("", "m")}, []string{`sessions table name "" is empty`}},
		{"long", pg, []bunstore.Option{bunstore.WithTables(long, "m")}, []string{"is 64 bytes long; use at most 63"}},
		{"same", pg, []bunstore.Option{bunstore.WithTables("t", "t")}, []string{`both named "t"`}},
		{"unicode", pg, []bunstore.Option{bunstore.WithTables("séances", "m")}, []string{"use only letters, digits and underscores"}},
		{"schema", pg, []bunstore.Option{bunstore.WithSchema("my schema")}, []string{`schema name "my schema" contains ' '`}},
		{"logger", pg, []bunstore.Option{bunstore.WithLogger(nil)}, []string{"WithLogger: the logger is nil"}},
		{"handler", pg, []bunstore.Option{bunstore.WithCorruptItemHandler(nil)}, []string{"WithCorruptItemHandler: the handler is nil"}},
		{"nil option", pg, []bunstore.Option{nil}, []string{"an option is nil"}},
		{"all at once", pg, []bunstore.Option{bunstore.WithSchema("a.b"), bunstore.WithTables("x y", "ok"), bunstore.WithLogger(nil)},
			[]string{"WithSchema", "WithTables: sessions table name", "WithLogger"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st, err := bunstore.New(tc.db, tc.opts...)
			if !errors.Is(err, bunstore.ErrInvalidConfig) || st != nil {
				t.Fatalf("New = %v, %v; want ErrInvalidConfig", st, err)
			}
			for _, w := range tc.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}

	// Valid names, any case, up to 63 bytes.
	for _, opts := range [][]bunstore.Option{
		nil,
		{bunstore.WithTables("Sessions_2", "_messages"), bunstore.WithSchema("App")},
		{bunstore.WithTables(strings.Repeat("s", 63), strings.Repeat("m", 63))},
		{bunstore.WithLogger(slog.Default()), bunstore.WithCorruptItemHandler(func(context.Context, bunstore.CorruptItem) {})},
	} {
		if _, err := bunstore.New(pg, opts...); err != nil {
			t.Errorf("New: %v", err)
		}
	}
}

// Table names are used as given (quoted, so case-sensitive), in the schema
// given, and every statement uses them.
func TestCustomNames(t *testing.T) {
	eachBackend(t, func(t *testing.T, db *bun.DB) {
		long1 := strings.Repeat("x", 62) + "1"
		long2 := strings.Repeat("x", 62) + "2"
		a := newStore(t, db, bunstore.WithTables("Chat_Sessions", long1))
		b := newStore(t, db, bunstore.WithTables("chat_sessions", long2))
		mustAdd(t, a.Session("s"), batch("a", 2))
		mustAdd(t, b.Session("s"), batch("b", 1))
		wantItems(t, mustGet(t, a.Session("s"), 0), batch("a", 2))
		wantItems(t, mustGet(t, b.Session("s"), 1), batch("b", 1))
		if n := count(t, db, `SELECT count(*) FROM "Chat_Sessions"`); n != 1 {
			t.Fatalf("%d rows in Chat_Sessions", n)
		}
		if n := count(t, db, `SELECT count(*) FROM `+long1); n != 2 {
			t.Fatalf("%d rows in %s", n, long1)
		}
		// The default tables were never made.
		if n := defaultTables(t, db); n != 0 {
			t.Fatalf("%d default tables exist", n)
		}
		// Each long messages table has its own order index.
		if n := countIn(t, db,
			`SELECT count(DISTINCT indexname) FROM pg_indexes WHERE tablename LIKE 'xxx%' AND indexdef LIKE '%(session_id, created_at, id)'`,
			`SELECT count(*) FROM sqlite_master WHERE type = 'index' AND tbl_name LIKE 'xxx%' AND sql LIKE '%(session_id, created_at, id)'`); n != 2 {
			t.Fatalf("%d order indexes on the two long-named tables; want 2", n)
		}
		if err := a.Session("s").ClearSession(context.Background()); err != nil {
			t.Fatal(err)
		}
		if n := count(t, db, `SELECT count(*) FROM "Chat_Sessions"`); n != 0 {
			t.Fatalf("%d rows in Chat_Sessions after ClearSession", n)
		}
	})
}
