package bunstore_test

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/lakesession/lakesession/bunstore"
	"github.com/lakesession/lakesession/bunstore/sqlitedb"
)

var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}$`)

// A name New accepts is a plain identifier, safe to quote; any other name is
// refused with ErrInvalidConfig.
func FuzzTableNames(f *testing.F) {
	for _, s := range []string{"agent_sessions", "A1", "_", "1a", "a-b", `a"b`, "a;b", "", "é", strings.Repeat("x", 64), "x\x00"} {
		f.Add(s)
	}
	db, err := sqlitedb.Open(":memory:")
	if err != nil {
		f.Fatal(err)
	}
	defer db.Close()
	f.Fuzz(func(t *testing.T, name string) {
		_, err := bunstore.New(db, bunstore.WithTables(name, "m"), bunstore.WithSchema(name))
		switch {
		case err == nil && !identRE.MatchString(name):
			t.Fatalf("New accepted %q", name)
		case err != nil && identRE.MatchString(name) && name != "m":
			t.Fatalf("New refused %q: %v", name, err)
		case err != nil && !errors.Is(err, bunstore.ErrInvalidConfig):
			t.Fatalf("error %v does not wrap ErrInvalidConfig", err)
		}
	})
}

// Any cursor string is either one ListSessions handed out or refused with
// ErrInvalidCursor; it never reaches the database as anything but a value.
func FuzzCursor(f *testing.F) {
	for _, s := range []string{"", "x", "e30", "eyJ1IjoiIiwicyI6IiJ9", "eyJ1IjoiMjAyNS0wMS0wMSAwMDowMDowMCIsInMiOiJhIn0", "eyJ1IjoiJzsgRFJPUCBUQUJMRSB4OyAtLSIsInMiOiJhIn0"} {
		f.Add(s)
	}
	db, err := sqlitedb.Open(":memory:")
	if err != nil {
		f.Fatal(err)
	}
	defer db.Close()
	st, err := bunstore.New(db)
	if err != nil {
		f.Fatal(err)
	}
	if err := st.CreateTables(context.Background()); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, cursor string) {
		_, err := st.ListSessions(context.Background(), bunstore.ListOptions{Cursor: cursor})
		if err != nil && !errors.Is(err, bunstore.ErrInvalidCursor) {
			t.Fatalf("cursor %q: %v", cursor, err)
		}
		// The tables are intact.
		if _, err := st.ListSessions(context.Background(), bunstore.ListOptions{}); err != nil {
			t.Fatalf("after cursor %q: %v", cursor, err)
		}
	})
}
