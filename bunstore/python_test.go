package bunstore_test

// Interoperability with the Python openai-agents SQLAlchemySession: its
// tables (the DDL SQLAlchemy emits for its metadata), its statements, in its
// order, through the plain database/sql pool with the driver's own
// placeholders, as a second program sharing the database would.

import (
	"context"
	"database/sql"
	"encoding/json"
	"strings"
	"testing"

	"github.com/uptrace/bun"

	"github.com/lakesession/lakesession/bunstore"
)

// pythonDDL is what SQLAlchemy's create_all emits for SQLAlchemySession's
// tables.
var pythonDDL = map[string][]string{
	"postgres": {
		`CREATE TABLE agent_sessions (
	session_id VARCHAR NOT NULL, 
	created_at TIMESTAMP WITHOUT TIME ZONE DEFAULT CURRENT_TIMESTAMP NOT NULL, 
	updated_at TIMESTAMP WITHOUT TIME ZONE DEFAULT CURRENT_TIMESTAMP NOT NULL, 
	PRIMARY KEY (session_id)
)`,
		`CREATE TABLE agent_messages (
	id SERIAL NOT NULL, 
	session_id VARCHAR NOT NULL, 
	message_data TEXT NOT NULL, 
	created_at TIMESTAMP WITHOUT TIME ZONE DEFAULT CURRENT_TIMESTAMP NOT NULL, 
	PRIMARY KEY (id), 
	FOREIGN KEY(session_id) REFERENCES agent_sessions (session_id) ON DELETE CASCADE
)`,
		`CREATE INDEX idx_agent_messages_session_time ON agent_messages (session_id, created_at)`,
	},
	"sqlite": {
		`CREATE TABLE agent_sessions (
	session_id VARCHAR NOT NULL, 
	created_at TIMESTAMP DEFAULT (CURRENT_TIMESTAMP) NOT NULL, 
	updated_at TIMESTAMP DEFAULT (CURRENT_TIMESTAMP) NOT NULL, 
	PRIMARY KEY (session_id)
)`,
		`CREATE TABLE agent_messages (
	id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, 
	session_id VARCHAR NOT NULL, 
	message_data TEXT NOT NULL, 
	created_at TIMESTAMP DEFAULT (CURRENT_TIMESTAMP) NOT NULL, 
	FOREIGN KEY(session_id) REFERENCES agent_sessions (session_id) ON DELETE CASCADE
)`,
		`CREATE INDEX idx_agent_messages_session_time ON agent_messages (session_id, created_at)`,
	},
}

// python plays the Python SQLAlchemySession on the same database.
type python struct {
	t  *testing.T
	db *sql.DB
	pg bool
}

func newPython(t *testing.T, db *bun.DB) *python {
	return &python{t: t, db: db.DB, pg: isPG(db)}
}

func (p *python) sql(q string) string {
	if !p.pg {
		return q
	}
	n := 0
	var b strings.Builder
	for _, c := range q {
		if c == '?' {
			n++
			b.WriteString("$" + string(rune('0'+n)))
			continue
		}
		b.WriteRune(c)
	}
	return b.String()
}

func (p *python) createTables() {
	p.t.Helper()
	name := "sqlite"
	if p.pg {
		name = "postgres"
	}
	for _, stmt := range pythonDDL[name] {
		if _, err := p.db.Exec(stmt); err != nil {
			p.t.Fatalf("Python DDL: %v", err)
		}
	}
}

// addItems is SQLAlchemySession.add_items: BEGIN; SELECT the session;
// INSERT it when missing; INSERT the messages; UPDATE updated_at; COMMIT.
// Items are json.dumps(item, separators=(",", ":")) strings.
func (p *python) addItems(id string, items ...string) {
	p.t.Helper()
	ctx := context.Background()
	tx, err := p.db.BeginTx(ctx, nil)
	if err != nil {
		p.t.Fatal(err)
	}
	defer tx.Rollback()
	var existing string
	err = tx.QueryRowContext(ctx, p.sql(`SELECT agent_sessions.session_id FROM agent_sessions WHERE agent_sessions.session_id = ?`), id).Scan(&existing)
	switch {
	case err == sql.ErrNoRows:
		if _, err := tx.ExecContext(ctx, p.sql(`INSERT INTO agent_sessions (session_id) VALUES (?)`), id); err != nil {
			p.t.Fatal(err)
		}
	case err != nil:
		p.t.Fatal(err)
	}
	for _, it := range items {
		if _, err := tx.ExecContext(ctx, p.sql(`INSERT INTO agent_messages (session_id, message_data) VALUES (?, ?)`), id, it); err != nil {
			p.t.Fatal(err)
		}
	}
	if _, err := tx.ExecContext(ctx, p.sql(`UPDATE agent_sessions SET updated_at=CURRENT_TIMESTAMP WHERE agent_sessions.session_id = ?`), id); err != nil {
		p.t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		p.t.Fatal(err)
	}
}

// getItems is SQLAlchemySession.get_items: all items by (created_at, id),
// or the latest limit by (created_at DESC, id DESC), reversed. Each row
// must load as JSON, as json.loads does.
func (p *python) getItems(id string, limit int) []string {
	p.t.Helper()
	var (
		rows *sql.Rows
		err  error
	)
	if limit <= 0 {
		rows, err = p.db.Query(p.sql(`SELECT agent_messages.message_data FROM agent_messages WHERE agent_messages.session_id = ? ORDER BY agent_messages.created_at ASC, agent_messages.id ASC`), id)
	} else {
		rows, err = p.db.Query(p.sql(`SELECT agent_messages.message_data FROM agent_messages WHERE agent_messages.session_id = ? ORDER BY agent_messages.created_at DESC, agent_messages.id DESC LIMIT ?`), id, limit)
	}
	if err != nil {
		p.t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			p.t.Fatal(err)
		}
		var v map[string]any
		if err := json.Unmarshal([]byte(s), &v); err != nil {
			p.t.Fatalf("Python cannot load %q: %v", s, err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		p.t.Fatal(err)
	}
	if limit > 0 {
		for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
			out[i], out[j] = out[j], out[i]
		}
	}
	return out
}

// popItem is SQLAlchemySession.pop_item: select the newest id, its data,
// delete it.
func (p *python) popItem(id string) string {
	p.t.Helper()
	tx, err := p.db.Begin()
	if err != nil {
		p.t.Fatal(err)
	}
	defer tx.Rollback()
	var rowID int64
	if err := tx.QueryRow(p.sql(`SELECT agent_messages.id FROM agent_messages WHERE agent_messages.session_id = ? ORDER BY agent_messages.created_at DESC, agent_messages.id DESC LIMIT ?`), id, 1).Scan(&rowID); err != nil {
		p.t.Fatal(err)
	}
	var data string
	if err := tx.QueryRow(p.sql(`SELECT agent_messages.message_data FROM agent_messages WHERE agent_messages.id = ?`), rowID).Scan(&data); err != nil {
		p.t.Fatal(err)
	}
	if _, err := tx.Exec(p.sql(`DELETE FROM agent_messages WHERE agent_messages.id = ?`), rowID); err != nil {
		p.t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		p.t.Fatal(err)
	}
	return data
}

func strs(items []json.RawMessage) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = string(it)
	}
	return out
}

func wantStrings(t *testing.T, what string, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("%s:\n got %q\nwant %q", what, got, want)
	}
}

func TestPythonInterop(t *testing.T) {
	for _, tables := range []string{"made-by-python", "made-by-create-tables"} {
		t.Run(tables, func(t *testing.T) {
			eachBackend(t, func(t *testing.T, db *bun.DB) {
				py := newPython(t, db)
				if tables == "made-by-python" {
					py.createTables()
				}
				id := "shared-with-python"
				// Python's json.dumps escapes non-ASCII by default.
				p1 := []string{`{"role":"user","content":"Hello I live in SF!"}`, `{"role":"assistant","content":"caf\u00e9 \ud83d\ude00"}`}
				if tables == "made-by-python" {
					py.addItems(id, p1...) // before our store ever ran
				}
				st := newStore(t, db) // CreateTables keeps Python's tables
				if tables != "made-by-python" {
					py.addItems(id, p1...)
				}
				s := st.Session(id)
				wantStrings(t, "our GetItems of Python's rows", strs(mustGet(t, s, 0)), p1)

				g1 := []json.RawMessage{
					json.RawMessage(`{"role":"user","content":"What city did I say I live in? \"quoted\" café 😀"}`),
					json.RawMessage(`{"type":"function_call","arguments":"{\"x\": 1}"}`),
				}
				mustAdd(t, s, g1)
				p2 := []string{`{"role":"assistant","content":"San Francisco"}`}
				py.addItems(id, p2...)

				all := append(append(append([]string{}, p1...), strs(g1)...), p2...)
				wantStrings(t, "Python's get_items()", py.getItems(id, 0), all)
				wantStrings(t, "Python's get_items(3)", py.getItems(id, 3), all[2:])
				wantStrings(t, "our GetItems(0)", strs(mustGet(t, s, 0)), all)
				wantStrings(t, "our GetItems(3)", strs(mustGet(t, s, 3)), all[2:])

				if got := py.popItem(id); got != p2[0] {
					t.Fatalf("Python's pop_item = %s, want %s", got, p2[0])
				}
				got, err := s.PopItem(context.Background())
				if err != nil || string(got) != string(g1[1]) {
					t.Fatalf("our PopItem = %s, %v; want %s", got, err, g1[1])
				}
				wantStrings(t, "Python's get_items() after pops", py.getItems(id, 0), all[:3])

				// A session only Python wrote is listed with the others.
				py.addItems("python-only", `{"role":"user","content":"hi"}`)
				page, err := st.ListSessions(context.Background(), bunstore.ListOptions{})
				if err != nil {
					t.Fatal(err)
				}
				// (SQLite times have whole seconds: the two may tie, and then
				// come by descending id.)
				if len(page.Sessions) != 2 || page.Sessions[0].ID == page.Sessions[1].ID ||
					(isPG(db) && page.Sessions[0].ID != "python-only") {
					t.Fatalf("ListSessions = %+v; want python-only, then %s", page.Sessions, id)
				}
				for _, info := range page.Sessions {
					if info.ID != id && info.ID != "python-only" {
						t.Fatalf("ListSessions = %+v; want python-only and %s", page.Sessions, id)
					}
				}

				if err := s.ClearSession(context.Background()); err != nil {
					t.Fatal(err)
				}
				if n := len(py.getItems(id, 0)); n != 0 {
					t.Fatalf("Python sees %d items after ClearSession", n)
				}
				if sessions, _ := rowCounts(t, db, id); sessions != 0 {
					t.Fatal("the session row is left after ClearSession")
				}
			})
		})
	}
}

// CreateTables on Python's tables adds the index lakesession reads by and
// keeps Python's own.
func TestCreateTablesOnPythonTables(t *testing.T) {
	eachBackend(t, func(t *testing.T, db *bun.DB) {
		newPython(t, db).createTables()
		newStore(t, db)
		newStore(t, db) // again: idempotent
		if n := countIn(t, db,
			"SELECT count(*) FROM pg_indexes WHERE tablename = 'agent_messages' AND indexname IN ('idx_agent_messages_session_time', 'idx_agent_messages_session_order')",
			"SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name IN ('idx_agent_messages_session_time', 'idx_agent_messages_session_order')"); n != 2 {
			t.Fatalf("%d of the two indexes exist", n)
		}
	})
}
