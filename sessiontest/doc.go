// Package sessiontest is the conformance suite for implementations of
// lakesession.Session. Every store of this module runs it, and so can any
// other implementation: one call to Run in a test checks the behaviour
// documented on lakesession.Session.
//
// # Running the suite
//
// Give Run a function that opens a handle on a session id. The suite makes
// up its own ids, so one store serves every subtest:
//
//	package mystore_test
//
//	import (
//		"database/sql"
//		"os"
//		"testing"
//
//		_ "github.com/jackc/pgx/v5/stdlib"
//		"github.com/uptrace/bun"
//		"github.com/uptrace/bun/dialect/pgdialect"
//
//		"github.com/lakesession/lakesession"
//		"github.com/lakesession/lakesession/bunstore"
//		"github.com/lakesession/lakesession/sessiontest"
//	)
//
//	func TestConformance(t *testing.T) {
//		sqldb, err := sql.Open("pgx", os.Getenv("DATABASE_URL"))
//		if err != nil {
//			t.Fatal(err)
//		}
//		db := bun.NewDB(sqldb, pgdialect.New())
//		t.Cleanup(func() { db.Close() })
//		store, err := bunstore.New(db)
//		if err != nil {
//			t.Fatal(err)
//		}
//		if err := store.CreateTables(t.Context()); err != nil {
//			t.Fatal(err)
//		}
//		sessiontest.Run(t, func(t *testing.T, sessionID string) lakesession.Session {
//			return store.Session(sessionID)
//		})
//	}
//
// An implementation of your own is tested the same way; open only has to
// return a handle:
//
//	func TestMyStore(t *testing.T) {
//		store := mystore.New()
//		sessiontest.Run(t, func(t *testing.T, sessionID string) lakesession.Session {
//			return store.Session(sessionID)
//		})
//	}
//
// Each check is a subtest with a stable name, so one can be run alone:
//
//	go test -race -run 'TestConformance/Concurrency/PopItem' ./mystore
//
// # What open must do
//
// open must not validate the id: for an invalid id it returns a handle whose
// methods report lakesession.ErrInvalidSessionID, which the suite checks.
// Calling open twice with one id must give two handles on the same stored
// session. open receives the subtest's t and, within one Run, is called
// from its goroutine, one call at a time, so it may call t.Cleanup, t.Skip
// or t.Fatal.
//
// # Shared stores
//
// Every subtest uses session ids of its own, starting with "sessiontest-"
// and a random part, so one store may be shared by every subtest, by several
// calls of Run (also in parallel tests) and by earlier runs whose data is
// still there. The sessions of a passing subtest are cleared when it ends;
// those of a failing one are kept, to be looked at.
//
// # What is checked
//
// The subtests, in the order they run:
//
//   - SessionID: SessionID returns the id the handle was opened with.
//   - UnknownSession: a session never written reads as empty; PopItem
//     returns (nil, nil) and ClearSession succeeds.
//   - Order: items come back oldest first, across batches and within one
//     batch (also a batch of 2,000 items, which share one timestamp).
//   - Limit: 0 and negative limits return all items, N the latest N still
//     oldest first, more than there are all of them.
//   - EmptyAddItems: AddItems of nil or of an empty slice is a no-op.
//   - PopItem: PopItem removes and returns the newest item, and (nil, nil)
//     on an empty session; the session can be used again.
//   - ClearSession: everything is removed, the session can be used again,
//     and clearing an unknown session or clearing twice is fine.
//   - TwoHandles: two handles on one id see the same session.
//   - Isolation: adding to, popping from and clearing one session leaves
//     others alone, also ids that differ only in case, white space, a LIKE
//     wildcard, a prefix or Unicode normalization.
//   - Ownership: the store neither keeps the caller's bytes nor hands out
//     its own.
//   - RoundTrip: items come back byte for byte as json.Compact of what was
//     added: emoji, CJK, right-to-left text, escaped NUL and lone
//     surrogates, HTML characters, key order, duplicate keys, big numbers,
//     SQL-looking text and a 1 MiB item.
//   - InvalidItem: a batch with an item that is not a JSON object (array,
//     string, number, null, invalid or empty JSON), wherever it is, fails
//     with lakesession.ErrInvalidItem and writes nothing.
//   - InvalidSessionID: every method of a handle whose id is empty, over
//     255 bytes, not UTF-8 or contains NUL fails with
//     lakesession.ErrInvalidSessionID, and no session is touched, not even
//     the one the id would name if it were cut or cleaned.
//   - ValidSessionID: ids of exactly 255 bytes and ids with any character
//     but NUL work.
//   - Concurrency: 32 goroutines each adding a batch of 5 to one session
//     give 160 items with every batch whole and in order, and a reader
//     running beside them never sees part of a batch; 50 concurrent PopItem
//     calls on 50 items return each item once and leave the session empty;
//     PopItem calls racing AddItems calls lose no item and return none
//     twice; 20 goroutines writing first to a new session all succeed.
//   - Context: with a cancelled context or a passed deadline every method
//     fails with an error matching context.Canceled or
//     context.DeadlineExceeded and loses nothing; an AddItems or
//     ClearSession cancelled midway leaves all of its work or none.
//
// The suite does not sleep and keeps its data small, so it runs in a few
// seconds on a real database under the race detector. Its subtests run one
// after another; only the concurrency checks start goroutines.
package sessiontest
