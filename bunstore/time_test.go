package bunstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/lakesession/lakesession/bunstore"
)

// created_at and updated_at come from the database server's clock, written
// as the wall-clock time of the connection's TimeZone as the Python
// implementation's CURRENT_TIMESTAMP defaults do, and ListSessions and
// DeleteSessions read them back as the right instants, whatever that zone.
func TestServerTimesInAnyTimeZone(t *testing.T) {
	zones := []struct {
		name string
		open func(t *testing.T) *bun.DB
	}{
		{"server-default", openPG}, // Asia/Kolkata under `make test`
		{"Asia/Kolkata", func(t *testing.T) *bun.DB { db, _ := openPGWith(t, "timezone", "Asia/Kolkata"); return db }},
		{"America/Los_Angeles", func(t *testing.T) *bun.DB { db, _ := openPGWith(t, "timezone", "America/Los_Angeles"); return db }},
		{"Pacific/Chatham", func(t *testing.T) *bun.DB { db, _ := openPGWith(t, "timezone", "Pacific/Chatham"); return db }}, // UTC+12:45/+13:45
	}
	for _, z := range zones {
		t.Run(z.name, func(t *testing.T) {
			db := z.open(t)
			ctx := context.Background()
			var zone string
			if err := db.QueryRowContext(ctx, "SELECT current_setting('TimeZone')").Scan(&zone); err != nil {
				t.Fatal(err)
			}
			t.Logf("connection TimeZone %s", zone)
			st := newStore(t, db)
			id := "clock"
			mustAdd(t, st.Session(id), batch("x", 2))

			// Stored wall-clock times are the server's local time now, in the
			// connection's zone: a client-side or UTC timestamp would be off
			// by the zone's offset.
			var skew float64
			if err := db.QueryRowContext(ctx,
				`SELECT max(abs(extract(epoch FROM (LOCALTIMESTAMP - created_at)))) FROM agent_messages WHERE session_id = ?`, id).Scan(&skew); err != nil {
				t.Fatal(err)
			}
			if skew > 60 {
				t.Fatalf("created_at is %.0fs away from the server's LOCALTIMESTAMP", skew)
			}
			var sessSkew float64
			if err := db.QueryRowContext(ctx,
				`SELECT greatest(abs(extract(epoch FROM (LOCALTIMESTAMP - created_at))), abs(extract(epoch FROM (LOCALTIMESTAMP - updated_at)))) FROM agent_sessions WHERE session_id = ?`, id).Scan(&sessSkew); err != nil {
				t.Fatal(err)
			}
			if sessSkew > 60 {
				t.Fatalf("the session's times are %.0fs away from the server's LOCALTIMESTAMP", sessSkew)
			}

			page, err := st.ListSessions(ctx, bunstore.ListOptions{})
			if err != nil {
				t.Fatal(err)
			}
			now := time.Now()
			if len(page.Sessions) != 1 || !near(page.Sessions[0].CreatedAt, now, time.Minute) || !near(page.Sessions[0].UpdatedAt, now, time.Minute) {
				t.Fatalf("ListSessions = %+v; want times near %v", page.Sessions, now.UTC())
			}

			if n, err := st.DeleteSessions(ctx, now.Add(-time.Minute)); err != nil || n != 0 {
				t.Fatalf("DeleteSessions(a minute ago) = %d, %v; want 0", n, err)
			}
			if n, err := st.DeleteSessions(ctx, now.Add(time.Minute)); err != nil || n != 1 {
				t.Fatalf("DeleteSessions(in a minute) = %d, %v; want 1", n, err)
			}
		})
	}
}
