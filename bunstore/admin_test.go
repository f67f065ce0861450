package bunstore_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/lakesession/lakesession/bunstore"
)

// setUpdated moves a session's updated_at to ago before the database's
// current time (a whole number of minutes).
func setUpdated(t *testing.T, db bun.IDB, id string, ago time.Duration) {
	t.Helper()
	mins := int(ago / time.Minute)
	var err error
	if isPG(db) {
		_, err = db.ExecContext(context.Background(),
			"UPDATE agent_sessions SET updated_at = LOCALTIMESTAMP - make_interval(mins => ?) WHERE session_id = ?", mins, id)
	} else {
		_, err = db.ExecContext(context.Background(),
			"UPDATE agent_sessions SET updated_at = datetime('now', ?) WHERE session_id = ?", fmt.Sprintf("-%d minutes", mins), id)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// listRest pages through ListSessions from opts.Cursor to the last page
// and adds the id of every session listed to seen; one listed twice fails t.
func listRest(t *testing.T, st *bunstore.Store, opts bunstore.ListOptions, seen map[string]bool) {
	t.Helper()
	for {
		page, err := st.ListSessions(context.Background(), opts)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range page.Sessions {
			if seen[s.ID] {
				t.Fatalf("%s listed twice", s.ID)
			}
			seen[s.ID] = true
		}
		if page.NextCursor == "" {
			return
		}
		opts.Cursor = page.NextCursor
	}
}

func near(got, want time.Time, within time.Duration) bool {
	d := got.Sub(want)
	return -within <= d && d <= within
}

// ListSessions pages through every session exactly once, most recently
// updated first, ties by id, with instants that match the server's clock.
func TestListSessions(t *testing.T) {
	eachBackend(t, func(t *testing.T, db *bun.DB) {
		st := newStore(t, db)
		ctx := context.Background()
		now := time.Now()
		// 23 sessions; groups of three share an updated_at.
		const n = 23
		type want struct {
			id  string
			ago time.Duration
		}
		var wants []want
		for i := range n {
			id := fmt.Sprintf("s%02d", i)
			mustAdd(t, st.Session(id), batch(id, 1))
			ago := time.Duration(10+i/3*7) * time.Minute
			setUpdated(t, db, id, ago)
			wants = append(wants, want{id, ago})
		}
		slices.SortFunc(wants, func(a, b want) int {
			if a.ago != b.ago {
				return int(a.ago - b.ago) // smaller ago = newer = first
			}
			return strings.Compare(b.id, a.id)
		})

		var got []bunstore.SessionInfo
		cursor := ""
		for pages := 0; ; pages++ {
			if pages > 3 {
				t.Fatal("more pages than expected")
			}
			page, err := st.ListSessions(ctx, bunstore.ListOptions{Limit: 10, Cursor: cursor})
			if err != nil {
				t.Fatal(err)
			}
			if len(page.Sessions) > 10 {
				t.Fatalf("page of %d", len(page.Sessions))
			}
			got = append(got, page.Sessions...)
			if page.NextCursor == "" {
				if pages != 2 {
					t.Fatalf("listing ended after %d pages; want 3", pages+1)
				}
				break
			}
			cursor = page.NextCursor
		}
		if len(got) != n {
			t.Fatalf("listed %d sessions, want %d", len(got), n)
		}
		for i, w := range wants {
			g := got[i]
			if g.ID != w.id {
				t.Fatalf("session %d is %s, want %s", i, g.ID, w.id)
			}
			if !near(g.UpdatedAt, now.Add(-w.ago), time.Minute) {
				t.Errorf("%s: UpdatedAt %v, want about %v", g.ID, g.UpdatedAt, now.Add(-w.ago))
			}
			if !near(g.CreatedAt, now, time.Minute) {
				t.Errorf("%s: CreatedAt %v, want about %v", g.ID, g.CreatedAt, now)
			}
			if g.UpdatedAt.Location() != time.UTC || g.CreatedAt.Location() != time.UTC {
				t.Errorf("%s: times not in UTC", g.ID)
			}
		}

		// A page size that divides the count: no empty last page.
		page, err := st.ListSessions(ctx, bunstore.ListOptions{Limit: n})
		if err != nil || len(page.Sessions) != n || page.NextCursor != "" {
			t.Fatalf("ListSessions(Limit %d) = %d sessions, cursor %q, %v", n, len(page.Sessions), page.NextCursor, err)
		}
		// The default page size.
		page, err = st.ListSessions(ctx, bunstore.ListOptions{})
		if err != nil || len(page.Sessions) != n {
			t.Fatalf("ListSessions() = %d sessions, %v", len(page.Sessions), err)
		}
	})
}

// A session updated while a listing goes on moves to the front: the pages
// after the cursor neither repeat nor skip the others.
func TestListSessionsWhileUpdating(t *testing.T) {
	eachBackend(t, func(t *testing.T, db *bun.DB) {
		st := newStore(t, db)
		ctx := context.Background()
		for i := range 9 {
			id := fmt.Sprintf("s%d", i)
			mustAdd(t, st.Session(id), batch(id, 1))
			setUpdated(t, db, id, time.Duration(10+i)*time.Minute)
		}
		page1, err := st.ListSessions(ctx, bunstore.ListOptions{Limit: 3})
		if err != nil {
			t.Fatal(err)
		}
		mustAdd(t, st.Session("s7"), batch("again", 1)) // from page 3 to the front
		mustAdd(t, st.Session("new"), batch("new", 1))
		seen := map[string]bool{}
		for _, s := range page1.Sessions {
			seen[s.ID] = true
		}
		listRest(t, st, bunstore.ListOptions{Limit: 3, Cursor: page1.NextCursor}, seen)
		for i := range 9 {
			if id := fmt.Sprintf("s%d", i); !seen[id] && id != "s7" {
				t.Fatalf("%s skipped", id)
			}
		}
	})
}

func TestListSessionsBadInput(t *testing.T) {
	st := newStore(t, openSQLite(t))
	ctx := context.Background()
	for _, limit := range []int{-1, bunstore.MaxListLimit + 1} {
		if _, err := st.ListSessions(ctx, bunstore.ListOptions{Limit: limit}); err == nil || !strings.Contains(err.Error(), "use 1 to 1000") {
			t.Errorf("Limit %d: %v; want an error saying the range", limit, err)
		}
	}
	for _, c := range []string{"x", "!!!", "e30", "eyJ1IjoiIn0"} { // not base64, {}, {"u":""}
		if _, err := st.ListSessions(ctx, bunstore.ListOptions{Cursor: c}); !errors.Is(err, bunstore.ErrInvalidCursor) {
			t.Errorf("cursor %q: %v; want ErrInvalidCursor", c, err)
		}
	}
}

// DeleteSessions removes the sessions not updated since the given time with
// their items, and keeps the others.
func TestDeleteSessions(t *testing.T) {
	eachBackend(t, func(t *testing.T, db *bun.DB) {
		st := newStore(t, db)
		ctx := context.Background()
		for _, id := range []string{"old-1", "old-2", "recent", "fresh"} {
			mustAdd(t, st.Session(id), batch(id, 3))
		}
		setUpdated(t, db, "old-1", 10*24*time.Hour)
		setUpdated(t, db, "old-2", 6*24*time.Hour)
		setUpdated(t, db, "recent", 2*time.Hour)

		n, err := st.DeleteSessions(ctx, time.Now().Add(-5*24*time.Hour))
		if err != nil || n != 2 {
			t.Fatalf("DeleteSessions(5 days ago) = %d, %v; want 2", n, err)
		}
		for _, id := range []string{"old-1", "old-2"} {
			if sessions, messages := rowCounts(t, db, id); sessions+messages != 0 {
				t.Fatalf("%s: %d session rows and %d items left", id, sessions, messages)
			}
		}
		// The cutoff is an instant: 1 hour ago removes the session updated
		// 2 hours ago (in the server's time zone), not the fresh one.
		n, err = st.DeleteSessions(ctx, time.Now().Add(-time.Hour))
		if err != nil || n != 1 {
			t.Fatalf("DeleteSessions(1 hour ago) = %d, %v; want 1", n, err)
		}
		wantItems(t, mustGet(t, st.Session("fresh"), 0), batch("fresh", 3))
		n, err = st.DeleteSessions(ctx, time.Now().Add(-time.Hour))
		if err != nil || n != 0 {
			t.Fatalf("DeleteSessions again = %d, %v; want 0", n, err)
		}
		if _, err := st.DeleteSessions(ctx, time.Time{}); err == nil {
			t.Fatal("DeleteSessions(zero time) succeeded")
		}
	})
}

// ClearSession and DeleteSessions delete the items themselves: they work on
// tables whose foreign key has no ON DELETE CASCADE.
func TestDeletesWithoutCascade(t *testing.T) {
	eachBackend(t, func(t *testing.T, db *bun.DB) {
		ctx := context.Background()
		for _, stmt := range []string{
			`CREATE TABLE agent_sessions (session_id VARCHAR NOT NULL PRIMARY KEY,
				created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
				updated_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP)`,
			`CREATE TABLE agent_messages (id INTEGER PRIMARY KEY,
				session_id VARCHAR NOT NULL REFERENCES agent_sessions (session_id),
				message_data TEXT NOT NULL,
				created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP)`,
		} {
			if isPG(db) {
				stmt = strings.Replace(stmt, "INTEGER PRIMARY KEY", "SERIAL PRIMARY KEY", 1)
			}
			if _, err := db.ExecContext(ctx, stmt); err != nil {
				t.Fatal(err)
			}
		}
		st := newStore(t, db)
		mustAdd(t, st.Session("a"), batch("a", 2))
		mustAdd(t, st.Session("b"), batch("b", 2))
		if err := st.Session("a").ClearSession(ctx); err != nil {
			t.Fatal(err)
		}
		if n, err := st.DeleteSessions(ctx, time.Now().Add(time.Hour)); err != nil || n != 1 {
			t.Fatalf("DeleteSessions = %d, %v; want 1", n, err)
		}
		if n := count(t, db, "SELECT count(*) FROM agent_messages"); n != 0 {
			t.Fatalf("%d items left", n)
		}
	})
}
