package bunstore_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/lakesession/lakesession/bunstore"
)

// corruptRecorder collects what WithCorruptItemHandler reports.
type corruptRecorder struct {
	mu    sync.Mutex
	items []bunstore.CorruptItem
}

func (r *corruptRecorder) handle(_ context.Context, c bunstore.CorruptItem) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.items = append(r.items, c)
}

// take returns the data of the reported rows since the last call.
func (r *corruptRecorder) take(t *testing.T, sessionID string) []string {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, c := range r.items {
		if c.SessionID != sessionID || c.MessageID == 0 || !errors.Is(c.Err, bunstore.ErrCorruptItem) {
			t.Errorf("reported %+v; want session %q, a message id and an error wrapping ErrCorruptItem", c, sessionID)
		}
		out = append(out, c.Data)
	}
	r.items = nil
	return out
}

// insertRaw writes one message row as another program might, bypassing the
// store's checks.
func insertRaw(t *testing.T, db bun.IDB, sessionID, data string) {
	t.Helper()
	if _, err := db.ExecContext(context.Background(),
		"INSERT INTO agent_messages (session_id, message_data) VALUES (?, ?)", sessionID, data); err != nil {
		t.Fatal(err)
	}
}

// Rows that are not valid JSON are skipped by GetItems, do not count toward
// limit, are reported, and PopItem removes them and pops the next item
// (the Python implementation reported an empty session instead).
func TestCorruptRows(t *testing.T) {
	eachBackend(t, func(t *testing.T, db *bun.DB) {
		rec := &corruptRecorder{}
		st := newStore(t, db, bunstore.WithCorruptItemHandler(rec.handle))
		ctx := context.Background()
		id := "corrupt"
		s := st.Session(id)
		v := batch("v", 4)
		mustAdd(t, s, v[:2])
		insertRaw(t, db, id, "bad1")
		mustAdd(t, s, v[2:3])
		insertRaw(t, db, id, `{"bad":2`)
		insertRaw(t, db, id, "")
		mustAdd(t, s, v[3:4])
		insertRaw(t, db, id, "bad4")

		wantItems(t, mustGet(t, s, 0), v)
		if got := rec.take(t, id); strings.Join(got, "|") != `bad1|{"bad":2||bad4` {
			t.Fatalf("GetItems(0) reported %q; want the four corrupt rows in order", got)
		}
		// The newest 2 valid items lie below 3 corrupt rows.
		wantItems(t, mustGet(t, s, 2), v[2:])
		if got := rec.take(t, id); len(got) != 3 {
			t.Fatalf("GetItems(2) reported %q; want the 3 corrupt rows it skipped", got)
		}
		wantItems(t, mustGet(t, s, 4), v)
		rec.take(t, id)
		wantItems(t, mustGet(t, s, 10), v)
		rec.take(t, id)

		for i := 3; i >= 0; i-- {
			got, err := s.PopItem(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != string(v[i]) {
				t.Fatalf("PopItem = %s, want %s", got, v[i])
			}
		}
		if got := rec.take(t, id); strings.Join(got, "|") != `bad4||{"bad":2|bad1` {
			t.Fatalf("PopItem reported %q; want the corrupt rows it removed, newest first", got)
		}
		if got, err := s.PopItem(ctx); got != nil || err != nil {
			t.Fatalf("PopItem on the emptied session = %s, %v", got, err)
		}
		if _, n := rowCounts(t, db, id); n != 0 {
			t.Fatalf("%d rows left", n)
		}
	})
}

// A session whose only rows are corrupt pops as empty, after reporting them.
func TestCorruptRowsOnly(t *testing.T) {
	eachBackend(t, func(t *testing.T, db *bun.DB) {
		rec := &corruptRecorder{}
		st := newStore(t, db, bunstore.WithCorruptItemHandler(rec.handle))
		id := "only-corrupt"
		mustAdd(t, st.Session(id), batch("v", 1))
		if _, err := st.Session(id).PopItem(context.Background()); err != nil {
			t.Fatal(err)
		}
		insertRaw(t, db, id, "x")
		insertRaw(t, db, id, "y")
		if got := mustGet(t, st.Session(id), 1); len(got) != 0 {
			t.Fatalf("GetItems(1) = %s, want none", got)
		}
		rec.take(t, id)
		if got, err := st.Session(id).PopItem(context.Background()); got != nil || err != nil {
			t.Fatalf("PopItem = %s, %v; want nil, nil", got, err)
		}
		if got := rec.take(t, id); strings.Join(got, "|") != "y|x" {
			t.Fatalf("reported %q", got)
		}
	})
}

// A corrupt row inside one batch shares its created_at with its neighbours:
// the follow-up read continues by (created_at, id), not by created_at alone.
func TestCorruptRowInsideBatch(t *testing.T) {
	eachBackend(t, func(t *testing.T, db *bun.DB) {
		rec := &corruptRecorder{}
		st := newStore(t, db, bunstore.WithCorruptItemHandler(rec.handle))
		id := "corrupt-in-batch"
		v := batch("v", 6)
		mustAdd(t, st.Session(id), v)
		// Break items 3 and 4 in place: same created_at and ids as before.
		if _, err := db.ExecContext(context.Background(),
			"UPDATE agent_messages SET message_data = 'broken' WHERE session_id = ? AND message_data IN (?, ?)",
			id, string(v[3]), string(v[4])); err != nil {
			t.Fatal(err)
		}
		want := []json.RawMessage{v[1], v[2], v[5]}
		wantItems(t, mustGet(t, st.Session(id), 3), want)
		if got := rec.take(t, id); len(got) != 2 {
			t.Fatalf("reported %q; want the 2 broken rows", got)
		}
	})
}

// Without a handler, corrupt rows go to the logger: session and message id,
// never the content.
func TestCorruptRowsAreLogged(t *testing.T) {
	eachBackend(t, func(t *testing.T, db *bun.DB) {
		var buf bytes.Buffer
		st := newStore(t, db, bunstore.WithLogger(slog.New(slog.NewJSONHandler(&buf, nil))))
		id := "logged"
		mustAdd(t, st.Session(id), batch("v", 1))
		insertRaw(t, db, id, "PRIVATE-CONVERSATION-TEXT")
		if got := mustGet(t, st.Session(id), 0); len(got) != 1 {
			t.Fatalf("GetItems = %s", got)
		}
		var rec map[string]any
		if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
			t.Fatalf("log %q: %v", buf.String(), err)
		}
		if rec["level"] != "WARN" || rec["session_id"] != id || rec["message_id"] == nil || rec["error"] == nil {
			t.Fatalf("log record %v lacks level WARN, session_id, message_id or error", rec)
		}
		if strings.Contains(buf.String(), "PRIVATE") {
			t.Fatalf("the log shows the item's content: %s", buf.String())
		}
	})
}

// The paths that continue from a key (GetItems' refill, ListSessions'
// cursor) and DeleteSessions also work when the statements go through Bun's
// formatting.
func TestKeysThroughBunFormatting(t *testing.T) {
	eachBackend(t, func(t *testing.T, db *bun.DB) {
		rec := &corruptRecorder{}
		st := newStore(t, idbOnly{db}, bunstore.WithCorruptItemHandler(rec.handle))
		id := "formatted"
		v := batch("v", 5)
		mustAdd(t, st.Session(id), v)
		if _, err := db.ExecContext(context.Background(),
			"UPDATE agent_messages SET message_data = 'broken' WHERE session_id = ? AND message_data IN (?, ?)",
			id, string(v[2]), string(v[3])); err != nil {
			t.Fatal(err)
		}
		wantItems(t, mustGet(t, st.Session(id), 2), []json.RawMessage{v[1], v[4]})
		if got := rec.take(t, id); len(got) != 2 {
			t.Fatalf("reported %q", got)
		}
		for _, other := range []string{"a", "b", "c"} {
			mustAdd(t, st.Session(other), batch(other, 1))
		}
		seen := map[string]bool{}
		listRest(t, st, bunstore.ListOptions{Limit: 1}, seen)
		if len(seen) != 4 {
			t.Fatalf("listed %v", seen)
		}
		if n, err := st.DeleteSessions(context.Background(), time.Now().Add(time.Hour)); err != nil || n != 4 {
			t.Fatalf("DeleteSessions = %d, %v; want 4", n, err)
		}
	})
}
