package bunstore_test

// These tests check the SQL shape on PostgreSQL with go-sqlmock: how many
// statements each call sends (one per protocol call), what they contain, and
// every path where the database fails. The behaviour of that SQL is checked
// on a real PostgreSQL by the other tests.

import (
	"context"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"log/slog"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/DATA-DOG/go-sqlmock"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/lakesession/lakesession"
	"github.com/lakesession/lakesession/bunstore"
)

var errDB = errors.New("FATAL: terminating connection due to administrator command (SQLSTATE 57P01)")

// newMock returns a Store on a go-sqlmock database with the PostgreSQL
// dialect. The test fails unless every expectation was met.
func newMock(t *testing.T, opts ...bunstore.Option) (*bunstore.Store, sqlmock.Sqlmock) {
	t.Helper()
	st, mock, _ := newMockDB(t, false, opts...)
	return st, mock
}

// passThrough hands every argument to the mock driver as it is, as pgx's
// database/sql driver takes them (a []string becomes a text[] parameter).
type passThrough struct{}

func (passThrough) ConvertValue(v any) (driver.Value, error) { return v, nil }

// idbOnly hides which bun.IDB it wraps, as an application's own wrapper
// would: the store then sends its statements through Bun's formatting.
type idbOnly struct{ bun.IDB }

func newMockDB(t *testing.T, wrap bool, opts ...bunstore.Option) (*bunstore.Store, sqlmock.Sqlmock, *bun.DB) {
	t.Helper()
	sqldb, mock, err := sqlmock.New(sqlmock.ValueConverterOption(passThrough{}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := mock.ExpectationsWereMet(); err != nil {
			t.Errorf("SQL sent is not the SQL expected: %v", err)
		}
		sqldb.Close()
	})
	db := bun.NewDB(sqldb, pgdialect.New())
	var idb bun.IDB = db
	if wrap {
		idb = idbOnly{db}
	}
	st, err := bunstore.New(idb, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return st, mock, db
}

// sqlLike returns a regexp matching SQL that contains the fragments, in
// order.
func sqlLike(fragments ...string) string {
	q := make([]string, len(fragments))
	for i, f := range fragments {
		q[i] = regexp.QuoteMeta(f)
	}
	return "(?s)" + strings.Join(q, ".*")
}

func raw(items ...string) []json.RawMessage {
	out := make([]json.RawMessage, len(items))
	for i, s := range items {
		out[i] = json.RawMessage(s)
	}
	return out
}

func TestMockAddItemsIsOneStatement(t *testing.T) {
	st, mock := newMock(t)
	// The first write of a session, and every later one: one statement, no
	// BEGIN/COMMIT, with the same text on every call (the driver prepares
	// it once) and the items as one text[] parameter, compacted, in order.
	add := sqlLike(
		// updated_at: read from the server clock once the session row is
		// locked, not at the transaction's start.
		`WITH s AS (INSERT INTO "agent_sessions" AS s (session_id) VALUES ($1) `+
			`ON CONFLICT (session_id) DO UPDATE SET updated_at = CAST(clock_timestamp() AS timestamp) RETURNING s.session_id)`,
		// created_at: read once, from the server clock, after the session
		// row is locked (t reads s).
		`t AS MATERIALIZED (SELECT s.session_id, CAST(clock_timestamp() AS timestamp) AS created_at FROM s)`,
		`INSERT INTO "agent_messages" (session_id, message_data, created_at)`,
		`SELECT t.session_id, i.message_data, t.created_at`,
		`FROM t CROSS JOIN unnest(CAST($2 AS text[])) WITH ORDINALITY AS i(message_data, n)`,
		`ORDER BY i.n`)
	mock.ExpectExec(add).
		WithArgs("sess-1", []string{`{"role":"user","content":"it's"}`, `{"n":2}`}).
		WillReturnResult(sqlmock.NewResult(0, 2))
	mock.ExpectExec(add).
		WithArgs("sess-1", []string{`{"n":3}`}).
		WillReturnResult(sqlmock.NewResult(0, 1))

	s := st.Session("sess-1")
	if err := s.AddItems(context.Background(), raw(`{ "role": "user", "content": "it's" }`, "{\"n\":\n 2}")); err != nil {
		t.Fatal(err)
	}
	if err := s.AddItems(context.Background(), raw(`{"n":3}`)); err != nil {
		t.Fatal(err)
	}
	// An empty batch sends nothing.
	if err := s.AddItems(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
}

// On a bun.IDB the store cannot see through, the statements go through
// Bun, which formats the arguments into the text: still one statement.
func TestMockAddItemsThroughBunFormatting(t *testing.T) {
	st, mock, _ := newMockDB(t, true)
	mock.ExpectExec(sqlLike(
		`WITH s AS (INSERT INTO "agent_sessions" AS s (session_id) VALUES ('sess-1') `,
		`FROM t CROSS JOIN unnest(CAST('{"{\"role\":\"user\",\"content\":\"it''s\"}","{\"n\":2}"}' AS text[])) WITH ORDINALITY`)).
		WithoutArgs().
		WillReturnResult(sqlmock.NewResult(0, 2))
	mock.ExpectQuery(sqlLike(`WHERE session_id = 'sess-1' ORDER BY created_at DESC, id DESC LIMIT 2`)).
		WithoutArgs().
		WillReturnRows(sqlmock.NewRows([]string{"id", "created_at", "message_data"}).AddRow(2, time.Now(), `{"n":2}`))
	s := st.Session("sess-1")
	if err := s.AddItems(context.Background(), raw(`{"role":"user","content":"it's"}`, `{"n":2}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetItems(context.Background(), 2); err != nil {
		t.Fatal(err)
	}
}

func TestMockSchemaQualifiedNames(t *testing.T) {
	st, mock := newMock(t, bunstore.WithSchema("App"), bunstore.WithTables("chat_sessions", "chat_messages"))
	mock.ExpectExec(sqlLike(`INSERT INTO "App"."chat_sessions" AS s`, `INSERT INTO "App"."chat_messages"`)).
		WillReturnResult(sqlmock.NewResult(0, 1))
	mock.ExpectQuery(sqlLike(`FROM "App"."chat_messages" WHERE session_id = $1`)).WithArgs("x").
		WillReturnRows(sqlmock.NewRows([]string{"id", "message_data"}))
	mock.ExpectExec(sqlLike(`WITH m AS (DELETE FROM "App"."chat_messages" WHERE session_id = $1) DELETE FROM "App"."chat_sessions" WHERE session_id = $2`)).WithArgs("x", "x").
		WillReturnResult(sqlmock.NewResult(0, 1))
	s := st.Session("x")
	if err := s.AddItems(context.Background(), raw(`{}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetItems(context.Background(), 0); err != nil {
		t.Fatal(err)
	}
	if err := s.ClearSession(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestMockReadsAreOneStatement(t *testing.T) {
	st, mock := newMock(t)
	s := st.Session("sess-1")
	ts := time.Date(2025, 1, 2, 3, 4, 5, 6000, time.UTC)

	mock.ExpectQuery(sqlLike(`SELECT id, message_data FROM "agent_messages" WHERE session_id = $1 ORDER BY created_at, id`)).WithArgs("sess-1").
		WillReturnRows(sqlmock.NewRows([]string{"id", "message_data"}).AddRow(1, `{"a":1}`).AddRow(2, `{"b":2}`))
	got, err := s.GetItems(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	wantItems(t, got, raw(`{"a":1}`, `{"b":2}`))

	// limit > 0: newest first through the index, reversed in Go.
	mock.ExpectQuery(sqlLike(`SELECT id, created_at, message_data FROM "agent_messages" WHERE session_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2`)).WithArgs("sess-1", 2).
		WillReturnRows(sqlmock.NewRows([]string{"id", "created_at", "message_data"}).
			AddRow(3, ts, `{"c":3}`).AddRow(2, ts, `{"b":2}`))
	got, err = s.GetItems(context.Background(), 2)
	if err != nil {
		t.Fatal(err)
	}
	wantItems(t, got, raw(`{"b":2}`, `{"c":3}`))

	mock.ExpectQuery(sqlLike(`DELETE FROM "agent_messages" WHERE id = (SELECT id FROM "agent_messages" WHERE session_id = $1 ORDER BY created_at DESC, id DESC LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING id, message_data`)).WithArgs("sess-1").
		WillReturnRows(sqlmock.NewRows([]string{"id", "message_data"}).AddRow(3, `{"c":3}`))
	popped, err := s.PopItem(context.Background())
	if err != nil || string(popped) != `{"c":3}` {
		t.Fatalf("PopItem = %s, %v", popped, err)
	}

	mock.ExpectQuery(sqlLike(`DELETE FROM "agent_messages"`)).
		WillReturnRows(sqlmock.NewRows([]string{"id", "message_data"}))
	popped, err = s.PopItem(context.Background())
	if err != nil || popped != nil {
		t.Fatalf("PopItem on an empty session = %s, %v; want nil, nil", popped, err)
	}

	mock.ExpectExec(sqlLike(`WITH m AS (DELETE FROM "agent_messages" WHERE session_id = $1) DELETE FROM "agent_sessions" WHERE session_id = $2`)).WithArgs("sess-1", "sess-1").
		WillReturnResult(sqlmock.NewResult(0, 1))
	if err := s.ClearSession(context.Background()); err != nil {
		t.Fatal(err)
	}

	mock.ExpectQuery(sqlLike(`SELECT session_id, CAST(created_at AS timestamptz) AS created, CAST(updated_at AS timestamptz) AS updated, updated_at FROM "agent_sessions" ORDER BY updated_at DESC, session_id DESC LIMIT $1`)).WithArgs(3).
		WillReturnRows(sqlmock.NewRows([]string{"session_id", "created", "updated", "updated_at"}).
			AddRow("b", ts, ts, ts).AddRow("a", ts, ts, ts).AddRow("0", ts, ts, ts))
	page, err := st.ListSessions(context.Background(), bunstore.ListOptions{Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Sessions) != 2 || page.NextCursor == "" {
		t.Fatalf("ListSessions = %+v; want 2 sessions and a cursor", page)
	}
	mock.ExpectQuery(sqlLike(`FROM "agent_sessions" WHERE (updated_at, session_id) < (CAST($1 AS timestamp), $2) ORDER BY updated_at DESC, session_id DESC LIMIT $3`)).
		WithArgs(ts, "a", 3).
		WillReturnRows(sqlmock.NewRows([]string{"session_id", "created", "updated", "updated_at"}).AddRow("0", ts, ts, ts))
	page, err = st.ListSessions(context.Background(), bunstore.ListOptions{Limit: 2, Cursor: page.NextCursor})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Sessions) != 1 || page.NextCursor != "" {
		t.Fatalf("last page = %+v; want 1 session and no cursor", page)
	}
}

// A corrupt row among the newest: the follow-up statement continues below
// the (created_at, id) key of the oldest row read, for as many rows as were
// skipped.
func TestMockGetItemsRefillsAfterCorruptRows(t *testing.T) {
	var reported []bunstore.CorruptItem
	st, mock := newMock(t, bunstore.WithCorruptItemHandler(func(_ context.Context, c bunstore.CorruptItem) {
		reported = append(reported, c)
	}))
	ts := time.Date(2025, 1, 2, 3, 4, 5, 123456000, time.UTC)
	mock.ExpectQuery(sqlLike(`ORDER BY created_at DESC, id DESC LIMIT $2`)).WithArgs("s", 3).
		WillReturnRows(sqlmock.NewRows([]string{"id", "created_at", "message_data"}).
			AddRow(9, ts, `{"i":9}`).AddRow(8, ts, `{"i":8`).AddRow(7, ts, `{"i":7}`))
	mock.ExpectQuery(sqlLike(`WHERE session_id = $1 AND (created_at, id) < (CAST($2 AS timestamp), $3) ORDER BY created_at DESC, id DESC LIMIT $4`)).
		WithArgs("s", ts, int64(7), 1).
		WillReturnRows(sqlmock.NewRows([]string{"id", "created_at", "message_data"}).AddRow(5, ts, `{"i":5}`))
	got, err := st.Session("s").GetItems(context.Background(), 3)
	if err != nil {
		t.Fatal(err)
	}
	wantItems(t, got, raw(`{"i":5}`, `{"i":7}`, `{"i":9}`))
	if len(reported) != 1 || reported[0].MessageID != 8 || reported[0].Data != `{"i":8` || reported[0].SessionID != "s" ||
		!errors.Is(reported[0].Err, bunstore.ErrCorruptItem) {
		t.Fatalf("reported %+v; want the row with id 8", reported)
	}
}

func TestMockPopItemPopsPastCorruptRow(t *testing.T) {
	var reported []bunstore.CorruptItem
	st, mock := newMock(t, bunstore.WithCorruptItemHandler(func(_ context.Context, c bunstore.CorruptItem) {
		reported = append(reported, c)
	}))
	pop := sqlLike(`DELETE FROM "agent_messages" WHERE id = (SELECT id FROM "agent_messages" WHERE session_id = $1`)
	mock.ExpectQuery(pop).WillReturnRows(sqlmock.NewRows([]string{"id", "message_data"}).AddRow(4, `not json`))
	mock.ExpectQuery(pop).WillReturnRows(sqlmock.NewRows([]string{"id", "message_data"}).AddRow(3, `{"i":3}`))
	got, err := st.Session("s").PopItem(context.Background())
	if err != nil || string(got) != `{"i":3}` {
		t.Fatalf("PopItem = %s, %v; want the item under the corrupt one", got, err)
	}
	if len(reported) != 1 || reported[0].MessageID != 4 || reported[0].Data != "not json" {
		t.Fatalf("reported %+v; want the row with id 4", reported)
	}
}

// Every database failure comes back wrapped with the operation and the
// session id, after exactly the one statement that failed: no retry, no
// second statement, nothing half-written.
func TestMockDatabaseErrors(t *testing.T) {
	cases := []struct {
		name   string
		expect func(m sqlmock.Sqlmock)
		call   func(st *bunstore.Store) error
		want   string
	}{
		{
			name:   "AddItems",
			expect: func(m sqlmock.Sqlmock) { m.ExpectExec(sqlLike(`INSERT INTO "agent_messages"`)).WillReturnError(errDB) },
			call: func(st *bunstore.Store) error {
				return st.Session("sess-1").AddItems(context.Background(), raw(`{}`, `{}`))
			},
			want: `add items to session "sess-1": `,
		},
		{
			name: "AddItemsShortWrite",
			expect: func(m sqlmock.Sqlmock) {
				m.ExpectExec(sqlLike(`INSERT INTO "agent_messages"`)).WillReturnResult(sqlmock.NewResult(0, 1))
			},
			call: func(st *bunstore.Store) error {
				return st.Session("sess-1").AddItems(context.Background(), raw(`{}`, `{}`))
			},
			want: `add items to session "sess-1": the database stored 1 rows for 2 items`,
		},
		{
			name:   "GetItemsAll",
			expect: func(m sqlmock.Sqlmock) { m.ExpectQuery(sqlLike(`ORDER BY created_at, id`)).WillReturnError(errDB) },
			call: func(st *bunstore.Store) error {
				_, err := st.Session("sess-1").GetItems(context.Background(), 0)
				return err
			},
			want: `get items from session "sess-1": `,
		},
		{
			name: "GetItemsAllRowError",
			expect: func(m sqlmock.Sqlmock) {
				m.ExpectQuery(sqlLike(`ORDER BY created_at, id`)).WillReturnRows(
					sqlmock.NewRows([]string{"id", "message_data"}).AddRow(1, `{}`).AddRow(2, `{}`).RowError(1, errDB))
			},
			call: func(st *bunstore.Store) error {
				_, err := st.Session("sess-1").GetItems(context.Background(), 0)
				return err
			},
			want: `get items from session "sess-1": `,
		},
		{
			name:   "GetItemsLatest",
			expect: func(m sqlmock.Sqlmock) { m.ExpectQuery(sqlLike(`DESC LIMIT $2`)).WillReturnError(errDB) },
			call: func(st *bunstore.Store) error {
				_, err := st.Session("sess-1").GetItems(context.Background(), 5)
				return err
			},
			want: `get items from session "sess-1": `,
		},
		{
			name: "GetItemsLatestRowError",
			expect: func(m sqlmock.Sqlmock) {
				m.ExpectQuery(sqlLike(`DESC LIMIT $2`)).WillReturnRows(
					sqlmock.NewRows([]string{"id", "created_at", "message_data"}).AddRow(2, time.Now(), `{}`).RowError(0, errDB))
			},
			call: func(st *bunstore.Store) error {
				_, err := st.Session("sess-1").GetItems(context.Background(), 5)
				return err
			},
			want: `get items from session "sess-1": `,
		},
		{
			name: "GetItemsRefill",
			expect: func(m sqlmock.Sqlmock) {
				m.ExpectQuery(sqlLike(`DESC LIMIT $2`)).WillReturnRows(
					sqlmock.NewRows([]string{"id", "created_at", "message_data"}).AddRow(2, time.Now(), `{`))
				m.ExpectQuery(sqlLike(`(created_at, id) <`)).WillReturnError(errDB)
			},
			call: func(st *bunstore.Store) error {
				_, err := st.Session("sess-1").GetItems(context.Background(), 1)
				return err
			},
			want: `get items from session "sess-1": `,
		},
		{
			name:   "PopItem",
			expect: func(m sqlmock.Sqlmock) { m.ExpectQuery(sqlLike(`DELETE FROM "agent_messages"`)).WillReturnError(errDB) },
			call: func(st *bunstore.Store) error {
				_, err := st.Session("sess-1").PopItem(context.Background())
				return err
			},
			want: `pop item from session "sess-1": `,
		},
		{
			name:   "ClearSession",
			expect: func(m sqlmock.Sqlmock) { m.ExpectExec(sqlLike(`DELETE FROM "agent_sessions"`)).WillReturnError(errDB) },
			call:   func(st *bunstore.Store) error { return st.Session("sess-1").ClearSession(context.Background()) },
			want:   `clear session "sess-1": `,
		},
		{
			name:   "ListSessions",
			expect: func(m sqlmock.Sqlmock) { m.ExpectQuery(sqlLike(`FROM "agent_sessions"`)).WillReturnError(errDB) },
			call: func(st *bunstore.Store) error {
				_, err := st.ListSessions(context.Background(), bunstore.ListOptions{})
				return err
			},
			want: `list sessions: `,
		},
		{
			name: "DeleteSessions",
			expect: func(m sqlmock.Sqlmock) {
				m.ExpectBegin()
				m.ExpectQuery(sqlLike(`FROM "agent_sessions"`, `FOR UPDATE SKIP LOCKED`)).WillReturnError(errDB)
				m.ExpectRollback()
			},
			call: func(st *bunstore.Store) error {
				_, err := st.DeleteSessions(context.Background(), time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
				return err
			},
			want: `delete sessions not updated since 2025-01-01T00:00:00Z: `,
		},
		{
			name: "CreateTables",
			expect: func(m sqlmock.Sqlmock) {
				m.ExpectBegin()
				m.ExpectExec(sqlLike(`SELECT pg_advisory_xact_lock(`)).WillReturnResult(sqlmock.NewResult(0, 0))
				m.ExpectExec(sqlLike(`CREATE TABLE IF NOT EXISTS "agent_sessions"`)).WillReturnResult(sqlmock.NewResult(0, 0))
				m.ExpectExec(sqlLike(`CREATE TABLE IF NOT EXISTS "agent_messages"`)).WillReturnError(errDB)
				m.ExpectRollback()
			},
			call: func(st *bunstore.Store) error { return st.CreateTables(context.Background()) },
			want: `create tables agent_sessions and agent_messages: `,
		},
		{
			name: "CreateTablesLock",
			expect: func(m sqlmock.Sqlmock) {
				m.ExpectBegin()
				m.ExpectExec(sqlLike(`SELECT pg_advisory_xact_lock(`)).WillReturnError(errDB)
				m.ExpectRollback()
			},
			call: func(st *bunstore.Store) error { return st.CreateTables(context.Background()) },
			want: `create tables agent_sessions and agent_messages: `,
		},
		{
			name: "CreateTablesCommit",
			expect: func(m sqlmock.Sqlmock) {
				m.ExpectBegin()
				m.ExpectExec(sqlLike(`SELECT pg_advisory_xact_lock(`)).WillReturnResult(sqlmock.NewResult(0, 0))
				for range 4 {
					m.ExpectExec(sqlLike(`CREATE `)).WillReturnResult(sqlmock.NewResult(0, 0))
				}
				m.ExpectCommit().WillReturnError(errDB)
			},
			call: func(st *bunstore.Store) error { return st.CreateTables(context.Background()) },
			want: `create tables agent_sessions and agent_messages: `,
		},
		{
			name:   "CreateTablesBegin",
			expect: func(m sqlmock.Sqlmock) { m.ExpectBegin().WillReturnError(errDB) },
			call:   func(st *bunstore.Store) error { return st.CreateTables(context.Background()) },
			want:   `create tables agent_sessions and agent_messages: `,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st, mock := newMock(t, bunstore.WithLogger(slog.New(slog.DiscardHandler)))
			tc.expect(mock)
			err := tc.call(st)
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("error %q does not start with %q", err, tc.want)
			}
			if !strings.Contains(tc.name, "ShortWrite") && !errors.Is(err, errDB) {
				t.Errorf("error %q does not wrap the database error", err)
			}
		})
	}
}

// Bad input is refused before anything is sent to the database: the mock
// expects no statement at all.
func TestMockBadInputSendsNothing(t *testing.T) {
	st, _ := newMock(t)
	ctx := context.Background()
	for _, id := range []string{"", strings.Repeat("x", 256), "bad\xffutf8", "nul\x00byte"} {
		s := st.Session(id)
		if err := s.AddItems(ctx, raw(`{}`)); !errors.Is(err, lakesession.ErrInvalidSessionID) {
			t.Errorf("AddItems on id %q: %v; want ErrInvalidSessionID", id, err)
		}
		if _, err := s.GetItems(ctx, 0); !errors.Is(err, lakesession.ErrInvalidSessionID) {
			t.Errorf("GetItems on id %q: %v; want ErrInvalidSessionID", id, err)
		}
		if _, err := s.PopItem(ctx); !errors.Is(err, lakesession.ErrInvalidSessionID) {
			t.Errorf("PopItem on id %q: %v; want ErrInvalidSessionID", id, err)
		}
		if err := s.ClearSession(ctx); !errors.Is(err, lakesession.ErrInvalidSessionID) {
			t.Errorf("ClearSession on id %q: %v; want ErrInvalidSessionID", id, err)
		}
	}
	for _, items := range [][]json.RawMessage{
		raw(`{"ok":1}`, `[1,2]`),
		raw(`{"ok":1}`, `"text"`),
		raw(`{"ok":1}`, ``),
		raw(`{"ok":1}`, `{"broken":`),
		raw(`{"ok":1}`, "{\"bad\":\"\xff\"}"),
		raw(`{"ok":1}`, `{} {}`),
	} {
		err := st.Session("s").AddItems(ctx, items)
		if !errors.Is(err, lakesession.ErrInvalidItem) {
			t.Errorf("AddItems(%q): %v; want ErrInvalidItem", items, err)
			continue
		}
		if !strings.Contains(err.Error(), "item 1 of 2") {
			t.Errorf("AddItems(%q): %q does not say which item is wrong", items, err)
		}
	}
}
