package bunstore_test

// These tests check with go-sqlmock which failures a call retries and
// which it does not: the statements sent (a write whose outcome is unknown
// is sent once, never again) and the errors returned. The behaviour on a
// real server, with real faults, is checked by fault_test.go.

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/DATA-DOG/go-sqlmock"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/lakesession/lakesession"
	"github.com/lakesession/lakesession/bunstore"
)

func pgErr(code string) error {
	return &pgconn.PgError{Severity: "FATAL", Code: code, Message: "injected " + code}
}

// safeToRetry is an error that pgconn.SafeToRetry reports as raised before
// anything was sent, as pgx's own are.
type safeToRetry struct{}

func (safeToRetry) Error() string     { return "conn closed before the query was sent" }
func (safeToRetry) SafeToRetry() bool { return true }

// notAppliedErrors certainly leave nothing written, and may not happen on
// another connection: every call retries them.
var notAppliedErrors = []error{
	pgErr("57P01"), pgErr("57P02"), pgErr("57P03"), pgErr("57P05"),
	pgErr("25006"), pgErr("40001"), pgErr("40P01"),
	driver.ErrBadConn,
	safeToRetry{},
}

// brokenErrors say that the connection broke after the statement was sent.
var brokenErrors = []error{
	io.EOF,
	io.ErrUnexpectedEOF,
	&net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET},
	fmt.Errorf("write failed: %w", syscall.EPIPE),
	pgErr("08P01"), // PgBouncer's "server conn crashed?"
}

// failedErrors are refusals a retry would meet again.
var failedErrors = []error{
	pgErr("23505"), pgErr("42P01"), pgErr("57014"), pgErr("53100"), pgErr("28P01"),
	errors.New("some driver error"),
}

// retryCall is one protocol call with the statements it sends.
type retryCall struct {
	name  string
	write bool // its outcome can be unknown: AddItems, PopItem
	// fail expects the call's statements, the first of them failing with
	// err.
	fail func(m sqlmock.Sqlmock, err error)
	// ok expects the call's statements, all succeeding.
	ok   func(m sqlmock.Sqlmock)
	call func(st *bunstore.Store) error
}

var addSQL = sqlLike(`INSERT INTO "agent_messages"`)

// retentionCutoff is the cutoff of the retention calls of the mock tests.
var retentionCutoff = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

var retryCalls = []retryCall{
	{
		name:  "AddItems",
		write: true,
		fail: func(m sqlmock.Sqlmock, err error) {
			m.ExpectExec(addSQL).WithArgs("s", []string{`{"a":1}`, `{"b":2}`}).WillReturnError(err)
		},
		ok: func(m sqlmock.Sqlmock) {
			m.ExpectExec(addSQL).WithArgs("s", []string{`{"a":1}`, `{"b":2}`}).WillReturnResult(sqlmock.NewResult(0, 2))
		},
		call: func(st *bunstore.Store) error {
			return st.Session("s").AddItems(context.Background(), raw(`{"a":1}`, `{"b":2}`))
		},
	},
	{
		name:  "PopItem",
		write: true,
		fail: func(m sqlmock.Sqlmock, err error) {
			m.ExpectQuery(sqlLike(`DELETE FROM "agent_messages"`)).WithArgs("s").WillReturnError(err)
		},
		ok: func(m sqlmock.Sqlmock) {
			m.ExpectQuery(sqlLike(`DELETE FROM "agent_messages"`)).WithArgs("s").
				WillReturnRows(sqlmock.NewRows([]string{"id", "message_data"}).AddRow(7, `{"n":7}`))
		},
		call: func(st *bunstore.Store) error {
			got, err := st.Session("s").PopItem(context.Background())
			if err == nil && string(got) != `{"n":7}` {
				return fmt.Errorf("PopItem = %s", got)
			}
			return err
		},
	},
	{
		name: "GetItems",
		fail: func(m sqlmock.Sqlmock, err error) {
			m.ExpectQuery(sqlLike(`DESC LIMIT $2`)).WithArgs("s", 20).WillReturnError(err)
		},
		ok: func(m sqlmock.Sqlmock) {
			m.ExpectQuery(sqlLike(`DESC LIMIT $2`)).WithArgs("s", 20).
				WillReturnRows(sqlmock.NewRows([]string{"id", "created_at", "message_data"}).AddRow(1, time.Now(), `{"n":1}`))
		},
		call: func(st *bunstore.Store) error {
			got, err := st.Session("s").GetItems(context.Background(), 20)
			if err == nil && len(got) != 1 {
				return fmt.Errorf("GetItems = %s", got)
			}
			return err
		},
	},
	{
		name: "GetItemsRowError",
		fail: func(m sqlmock.Sqlmock, err error) {
			// The connection breaks while the rows come in.
			m.ExpectQuery(sqlLike(`ORDER BY created_at, id`)).WithArgs("s").WillReturnRows(
				sqlmock.NewRows([]string{"id", "message_data"}).AddRow(1, `{"n":1}`).AddRow(2, `{"n":2}`).RowError(1, err))
		},
		ok: func(m sqlmock.Sqlmock) {
			m.ExpectQuery(sqlLike(`ORDER BY created_at, id`)).WithArgs("s").WillReturnRows(
				sqlmock.NewRows([]string{"id", "message_data"}).AddRow(1, `{"n":1}`).AddRow(2, `{"n":2}`))
		},
		call: func(st *bunstore.Store) error {
			got, err := st.Session("s").GetItems(context.Background(), 0)
			if err == nil && len(got) != 2 {
				return fmt.Errorf("GetItems = %s; want the 2 items of the try that succeeded", got)
			}
			return err
		},
	},
	{
		name: "ClearSession",
		fail: func(m sqlmock.Sqlmock, err error) {
			m.ExpectExec(sqlLike(`DELETE FROM "agent_sessions"`)).WithArgs("s", "s").WillReturnError(err)
		},
		ok: func(m sqlmock.Sqlmock) {
			m.ExpectExec(sqlLike(`DELETE FROM "agent_sessions"`)).WithArgs("s", "s").WillReturnResult(sqlmock.NewResult(0, 1))
		},
		call: func(st *bunstore.Store) error { return st.Session("s").ClearSession(context.Background()) },
	},
	{
		name: "ListSessions",
		fail: func(m sqlmock.Sqlmock, err error) {
			m.ExpectQuery(sqlLike(`FROM "agent_sessions"`)).WithArgs(101).WillReturnError(err)
		},
		ok: func(m sqlmock.Sqlmock) {
			m.ExpectQuery(sqlLike(`FROM "agent_sessions"`)).WithArgs(101).
				WillReturnRows(sqlmock.NewRows([]string{"session_id", "created", "updated", "updated_at"}))
		},
		call: func(st *bunstore.Store) error {
			_, err := st.ListSessions(context.Background(), bunstore.ListOptions{})
			return err
		},
	},
	{
		name: "DeleteSessions",
		fail: func(m sqlmock.Sqlmock, err error) {
			m.ExpectBegin()
			m.ExpectQuery(sqlLike(`FOR UPDATE SKIP LOCKED`)).WithArgs(retentionCutoff, bunstore.DefaultPruneBatchSize).WillReturnError(err)
			m.ExpectRollback()
		},
		ok: func(m sqlmock.Sqlmock) {
			m.ExpectBegin()
			m.ExpectQuery(sqlLike(`FOR UPDATE SKIP LOCKED`)).WithArgs(retentionCutoff, bunstore.DefaultPruneBatchSize).
				WillReturnRows(sqlmock.NewRows([]string{"session_id", "updated_at"}).AddRow("a", retentionCutoff.Add(-time.Hour)))
			m.ExpectQuery(sqlLike(`WITH m AS (DELETE`)).WithArgs([]string{"a"}, []string{"a"}).
				WillReturnRows(sqlmock.NewRows([]string{"d", "m", "xid"}).AddRow(1, 3, 700))
			m.ExpectCommit()
		},
		call: func(st *bunstore.Store) error {
			n, err := st.DeleteSessions(context.Background(), retentionCutoff)
			if err == nil && n != 1 {
				return fmt.Errorf("DeleteSessions = %d; want the 1 session of the try that succeeded", n)
			}
			return err
		},
	},
	{
		name: "PruneSessionsDryRun",
		fail: func(m sqlmock.Sqlmock, err error) {
			m.ExpectQuery(sqlLike(`SELECT c.session_id`)).WithArgs(retentionCutoff, 5).WillReturnError(err)
		},
		ok: func(m sqlmock.Sqlmock) {
			m.ExpectQuery(sqlLike(`SELECT c.session_id`)).WithArgs(retentionCutoff, 5).
				WillReturnRows(sqlmock.NewRows([]string{"session_id", "updated_at", "count"}).AddRow("a", retentionCutoff.Add(-time.Hour), 4))
		},
		call: func(st *bunstore.Store) error {
			res, err := st.PruneSessions(context.Background(), bunstore.PruneOptions{Before: retentionCutoff, BatchSize: 5, DryRun: true})
			if want := (bunstore.PruneResult{Sessions: 1, Items: 4, Batches: 1}); err == nil && res != want {
				return fmt.Errorf("PruneSessions(DryRun) = %+v; want %+v", res, want)
			}
			return err
		},
	},
	{
		name: "PruneSessionsDryRunRowError",
		fail: func(m sqlmock.Sqlmock, err error) {
			// The connection breaks while the rows come in: the retry
			// counts from scratch.
			m.ExpectQuery(sqlLike(`SELECT c.session_id`)).WithArgs(retentionCutoff, 5).WillReturnRows(
				sqlmock.NewRows([]string{"session_id", "updated_at", "count"}).
					AddRow("a", retentionCutoff.Add(-time.Hour), 4).AddRow("b", retentionCutoff.Add(-time.Hour), 2).RowError(1, err))
		},
		ok: func(m sqlmock.Sqlmock) {
			m.ExpectQuery(sqlLike(`SELECT c.session_id`)).WithArgs(retentionCutoff, 5).WillReturnRows(
				sqlmock.NewRows([]string{"session_id", "updated_at", "count"}).
					AddRow("a", retentionCutoff.Add(-time.Hour), 4).AddRow("b", retentionCutoff.Add(-time.Hour), 2))
		},
		call: func(st *bunstore.Store) error {
			res, err := st.PruneSessions(context.Background(), bunstore.PruneOptions{Before: retentionCutoff, BatchSize: 5, DryRun: true})
			if want := (bunstore.PruneResult{Sessions: 2, Items: 6, Batches: 1}); err == nil && res != want {
				return fmt.Errorf("PruneSessions(DryRun) = %+v; want %+v, the counts of the try that succeeded", res, want)
			}
			return err
		},
	},
	{
		name: "CreateTables",
		fail: func(m sqlmock.Sqlmock, err error) {
			m.ExpectBegin()
			m.ExpectExec(sqlLike(`SELECT pg_advisory_xact_lock(`)).WillReturnError(err)
			m.ExpectRollback()
		},
		ok: func(m sqlmock.Sqlmock) {
			m.ExpectBegin()
			m.ExpectExec(sqlLike(`SELECT pg_advisory_xact_lock(`)).WillReturnResult(sqlmock.NewResult(0, 0))
			for range 4 {
				m.ExpectExec(sqlLike(`CREATE `)).WillReturnResult(sqlmock.NewResult(0, 0))
			}
			m.ExpectCommit()
		},
		call: func(st *bunstore.Store) error { return st.CreateTables(context.Background()) },
	},
	{
		name: "CreateTablesCommit",
		fail: func(m sqlmock.Sqlmock, err error) {
			m.ExpectBegin()
			m.ExpectExec(sqlLike(`SELECT pg_advisory_xact_lock(`)).WillReturnResult(sqlmock.NewResult(0, 0))
			for range 4 {
				m.ExpectExec(sqlLike(`CREATE `)).WillReturnResult(sqlmock.NewResult(0, 0))
			}
			m.ExpectCommit().WillReturnError(err)
		},
		ok: func(m sqlmock.Sqlmock) {
			m.ExpectBegin()
			m.ExpectExec(sqlLike(`SELECT pg_advisory_xact_lock(`)).WillReturnResult(sqlmock.NewResult(0, 0))
			for range 4 {
				m.ExpectExec(sqlLike(`CREATE `)).WillReturnResult(sqlmock.NewResult(0, 0))
			}
			m.ExpectCommit()
		},
		call: func(st *bunstore.Store) error { return st.CreateTables(context.Background()) },
	},
}

// newMockPool returns a Store on a *bun.DB over go-sqlmock, whose
// expectations must all be met. It keeps one extra connection of the mock
// open for the test: the mock driver serves a single connection object,
// which stays available as long as one of its connections is open, so a
// connection the store closes after a failure can be opened again.
func newMockPool(t *testing.T, opts ...bunstore.Option) (*bunstore.Store, sqlmock.Sqlmock) {
	t.Helper()
	st, mock, db := newMockDB(t, false, opts...)
	keep, err := db.DB.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { keep.Close() })
	return st, mock
}

// Every call retries, on a new try, a failure that certainly left nothing
// written, and returns the result of the try that succeeded. A write on a
// driver other than pgx's (go-sqlmock here) does not take driver.ErrBadConn
// for "nothing was sent" (lib/pq returns it after sending too): it is sent
// once and reports its outcome unknown.
func TestMockRetriesWhatDidNotHappen(t *testing.T) {
	for _, e := range notAppliedErrors {
		for _, c := range retryCalls {
			t.Run(fmt.Sprintf("%s/%v", c.name, e), func(t *testing.T) {
				st, mock := newMockPool(t)
				c.fail(mock, e)
				if c.write && errors.Is(e, driver.ErrBadConn) {
					if err := c.call(st); !errors.Is(err, lakesession.ErrOutcomeUnknown) || !errors.Is(err, e) {
						t.Fatalf("%s after %v on a driver that is not pgx's: %v; want ErrOutcomeUnknown", c.name, e, err)
					}
					return
				}
				c.ok(mock)
				if err := c.call(st); err != nil {
					t.Fatalf("%s after one %v: %v; want the retry to succeed", c.name, e, err)
				}
			})
		}
	}
}

// After the connection broke with the statement sent, the idempotent calls
// retry; AddItems and PopItem send their statement once and return an
// error wrapping lakesession.ErrOutcomeUnknown and the cause.
func TestMockOutcomeUnknown(t *testing.T) {
	for _, e := range brokenErrors {
		for _, c := range retryCalls {
			if e == io.EOF && strings.HasSuffix(c.name, "RowError") {
				continue // database/sql takes a driver's io.EOF from Next for the end of the rows
			}
			t.Run(fmt.Sprintf("%s/%v", c.name, e), func(t *testing.T) {
				st, mock := newMockPool(t)
				c.fail(mock, e)
				if !c.write {
					c.ok(mock)
					if err := c.call(st); err != nil {
						t.Fatalf("%s after a broken connection: %v; want the retry to succeed", c.name, err)
					}
					return
				}
				err := c.call(st)
				if !errors.Is(err, lakesession.ErrOutcomeUnknown) {
					t.Fatalf("%s: %v; want an error wrapping lakesession.ErrOutcomeUnknown", c.name, err)
				}
				if !errors.Is(err, e) {
					t.Errorf("%s: %q does not wrap the cause %q", c.name, err, e)
				}
				if !strings.Contains(err.Error(), `session "s"`) {
					t.Errorf("%s: %q does not name the session", c.name, err)
				}
			})
		}
	}
}

// A refusal that another try would meet again is returned at once, and is
// never reported as an unknown outcome.
func TestMockNotRetried(t *testing.T) {
	for _, e := range failedErrors {
		for _, c := range retryCalls {
			t.Run(fmt.Sprintf("%s/%v", c.name, e), func(t *testing.T) {
				st, mock := newMockPool(t)
				c.fail(mock, e)
				err := c.call(st)
				if !errors.Is(err, e) {
					t.Fatalf("%s: %v; want the database's error", c.name, err)
				}
				if errors.Is(err, lakesession.ErrOutcomeUnknown) {
					t.Errorf("%s: %v wraps ErrOutcomeUnknown, but the database answered", c.name, err)
				}
				if strings.Contains(err.Error(), "attempts") {
					t.Errorf("%s: %v says it retried", c.name, err)
				}
			})
		}
	}
}

// WithMaxRetryWait(0) turns retries off; an unknown outcome is still
// reported as such.
func TestMockRetryOff(t *testing.T) {
	for _, c := range retryCalls {
		t.Run(c.name, func(t *testing.T) {
			st, mock := newMockPool(t, bunstore.WithMaxRetryWait(0))
			c.fail(mock, pgErr("57P01"))
			if err := c.call(st); !isCode(err, "57P01") {
				t.Fatalf("%s: %v; want the 57P01 error, not retried", c.name, err)
			}
			if !c.write {
				return
			}
			st, mock = newMockPool(t, bunstore.WithMaxRetryWait(0))
			c.fail(mock, io.ErrUnexpectedEOF)
			if err := c.call(st); !errors.Is(err, lakesession.ErrOutcomeUnknown) {
				t.Fatalf("%s: %v; want ErrOutcomeUnknown", c.name, err)
			}
		})
	}
}

func isCode(err error, code string) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == code
}

// Nothing is retried on a bun.Tx, a bun.Conn or a bun.IDB the store does
// not know: a retry inside the caller's transaction would break it, and
// the store cannot take another connection. Inside a transaction no
// outcome is unknown: a broken connection rolls the whole transaction
// back.
func TestMockNoRetryOutsideAPool(t *testing.T) {
	kinds := []struct {
		name    string
		unknown bool // a broken connection leaves a write's outcome unknown
		open    func(t *testing.T, m sqlmock.Sqlmock, db *bun.DB) bun.IDB
	}{
		{"Tx", false, func(t *testing.T, m sqlmock.Sqlmock, db *bun.DB) bun.IDB {
			m.ExpectBegin()
			tx, err := db.BeginTx(context.Background(), nil)
			if err != nil {
				t.Fatal(err)
			}
			return tx
		}},
		{"Conn", true, func(t *testing.T, m sqlmock.Sqlmock, db *bun.DB) bun.IDB {
			c, err := db.Conn(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			return c
		}},
		{"IDB", true, func(t *testing.T, m sqlmock.Sqlmock, db *bun.DB) bun.IDB { return idbOnly{db} }},
	}
	for _, k := range kinds {
		for _, w := range []struct {
			name string
			err  error
		}{{"NotApplied", pgErr("40001")}, {"Broken", io.ErrUnexpectedEOF}, {"AfterCommit", pgErr("57P01")}} {
			t.Run(k.name+"/"+w.name, func(t *testing.T) {
				sqldb, mock, err := sqlmock.New(sqlmock.ValueConverterOption(passThrough{}))
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { sqldb.Close() })
				db := bun.NewDB(sqldb, pgdialect.New())
				idb := k.open(t, mock, db)
				st, err := bunstore.New(idb)
				if err != nil {
					t.Fatal(err)
				}
				// Through Bun's formatting (IDB) the items are a literal.
				mock.ExpectExec(addSQL).WillReturnError(w.err)
				err = st.Session("s").AddItems(context.Background(), raw(`{"a":1}`))
				if !errors.Is(err, w.err) {
					t.Fatalf("AddItems: %v; want %v, not retried", err, w.err)
				}
				unknown := errors.Is(err, lakesession.ErrOutcomeUnknown)
				// Through Bun (IDB) a statement has no arguments, so pgx
				// sends it in the simple protocol, where 57P01 can come
				// after the commit.
				if want := k.unknown && (w.err == io.ErrUnexpectedEOF || k.name == "IDB" && w.name == "AfterCommit"); unknown != want {
					t.Errorf("AddItems: %v: wraps ErrOutcomeUnknown = %v, want %v", err, unknown, want)
				}
				if tx, ok := idb.(bun.Tx); ok {
					mock.ExpectRollback()
					if err := tx.Rollback(); err != nil {
						t.Error(err)
					}
				}
				if err := mock.ExpectationsWereMet(); err != nil {
					t.Error(err)
				}
			})
		}
	}
}

// A call whose context is already done sends nothing.
func TestMockDoneContextSendsNothing(t *testing.T) {
	st, _ := newMockPool(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := st.Session("s").AddItems(ctx, raw(`{}`)); !errors.Is(err, context.Canceled) || errors.Is(err, lakesession.ErrOutcomeUnknown) {
		t.Errorf("AddItems: %v; want context.Canceled, and a known outcome", err)
	}
}

// expectPruneBatch expects one batch of a PruneSessions with BatchSize 2
// on a pool: it locks ids (the first ones, or those above the session
// after), deletes them with items items in the transaction xid, and sends
// COMMIT, which fails with commitErr, or succeeds when it is nil.
func expectPruneBatch(m sqlmock.Sqlmock, after string, ids []string, items, xid int64, commitErr error) {
	m.ExpectBegin()
	var lock *sqlmock.ExpectedQuery
	if after == "" {
		lock = m.ExpectQuery(sqlLike(`FOR UPDATE SKIP LOCKED`)).WithArgs(retentionCutoff, 2)
	} else {
		lock = m.ExpectQuery(sqlLike(`AND (updated_at, session_id) >`, `FOR UPDATE SKIP LOCKED`)).
			WithArgs(retentionCutoff, retentionCutoff.Add(-time.Hour), after, 2)
	}
	rows := sqlmock.NewRows([]string{"session_id", "updated_at"})
	for _, id := range ids {
		rows.AddRow(id, retentionCutoff.Add(-time.Hour))
	}
	lock.WillReturnRows(rows)
	if len(ids) > 0 {
		m.ExpectQuery(sqlLike(`WITH m AS (DELETE`, `txid_current()`)).WithArgs(ids, ids).
			WillReturnRows(sqlmock.NewRows([]string{"d", "m", "xid"}).AddRow(len(ids), items, xid))
	}
	commit := m.ExpectCommit()
	if commitErr != nil {
		commit.WillReturnError(commitErr)
	}
}

// expectCommitStatus expects the question of how transaction xid ended.
func expectCommitStatus(m sqlmock.Sqlmock, xid int64, status string) *sqlmock.ExpectedQuery {
	return m.ExpectQuery(sqlLike(`SELECT txid_status($1)`)).WithArgs(xid).
		WillReturnRows(sqlmock.NewRows([]string{"txid_status"}).AddRow(status))
}

// A batch whose connection broke after its COMMIT was sent may have
// committed. The retry asks the server how the transaction ended: a batch
// that committed is counted and the prune goes on above it (a plain retry
// would remove the next sessions in its place and leave it out of the
// result); one that rolled back runs again. When the server answered the
// COMMIT with an error, nothing is asked: the batch did not commit.
func TestMockPruneLostCommit(t *testing.T) {
	for _, tc := range []struct {
		name   string
		expect func(m sqlmock.Sqlmock)
		want   bunstore.PruneResult
	}{
		{"Committed", func(m sqlmock.Sqlmock) {
			expectPruneBatch(m, "", []string{"a", "b"}, 5, 700, io.ErrUnexpectedEOF)
			expectCommitStatus(m, 700, "in progress") // asked again after a backoff
			expectCommitStatus(m, 700, "committed")
			expectPruneBatch(m, "b", []string{"c"}, 1, 701, nil)
		}, bunstore.PruneResult{Sessions: 3, Items: 6, Batches: 2}},
		{"ConnClosed", func(m sqlmock.Sqlmock) {
			// pgx reports a connection that broke after a COMMIT was sent
			// as "conn closed", an error it says is safe to retry.
			expectPruneBatch(m, "", []string{"a", "b"}, 5, 700, safeToRetry{})
			expectCommitStatus(m, 700, "committed")
			expectPruneBatch(m, "b", []string{"c"}, 1, 701, nil)
		}, bunstore.PruneResult{Sessions: 3, Items: 6, Batches: 2}},
		{"RolledBack", func(m sqlmock.Sqlmock) {
			expectPruneBatch(m, "", []string{"a", "b"}, 5, 700, &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET})
			expectCommitStatus(m, 700, "aborted")
			expectPruneBatch(m, "", []string{"a", "b"}, 5, 702, nil)
			expectPruneBatch(m, "b", nil, 0, 0, nil)
		}, bunstore.PruneResult{Sessions: 2, Items: 5, Batches: 1}},
		{"CommitAnswered", func(m sqlmock.Sqlmock) {
			expectPruneBatch(m, "", []string{"a", "b"}, 5, 700, pgErr("40001"))
			expectPruneBatch(m, "", []string{"a", "b"}, 5, 702, nil)
			expectPruneBatch(m, "b", nil, 0, 0, nil)
		}, bunstore.PruneResult{Sessions: 2, Items: 5, Batches: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := newOtelSDK(t)
			st, mock := newMockPool(t, o.options()...)
			tc.expect(mock)
			var progress progressLog
			res, err := st.PruneSessions(context.Background(), bunstore.PruneOptions{Before: retentionCutoff, BatchSize: 2, Progress: progress.add})
			if err != nil || res != tc.want {
				t.Fatalf("PruneSessions = %+v, %v; want %+v", res, err, tc.want)
			}
			progress.check(t, res)
			spans := o.ended()
			if len(spans) != 1 {
				t.Fatalf("%d spans, want 1", len(spans))
			}
			retries := "1"
			if tc.name == "Committed" {
				retries = "2"
			}
			wantAttrs(t, "PruneSessions", attrMap(spans[0].Attributes()), map[string]string{
				"lakesession.retries": retries, "lakesession.sessions": fmt.Sprint(tc.want.Sessions),
				"lakesession.items": fmt.Sprint(tc.want.Items), "lakesession.batches": fmt.Sprint(tc.want.Batches), "error.type": ""})
		})
	}
}

// When the server cannot say how a batch whose COMMIT was lost ended (no
// retry is allowed, its transaction is still running when the retry budget
// ends, or it does not know the transaction), the call returns an error
// that wraps lakesession.ErrOutcomeUnknown and says how large that batch
// was; the result counts the batches before it.
func TestMockPruneLostCommitUnknown(t *testing.T) {
	for _, tc := range []struct {
		name   string
		opts   []bunstore.Option
		expect func(m sqlmock.Sqlmock)
		cause  func(err error) bool
		says   string
	}{
		{"RetriesOff", []bunstore.Option{bunstore.WithMaxRetryWait(0)}, func(m sqlmock.Sqlmock) {
			expectPruneBatch(m, "b", []string{"c", "d"}, 4, 701, io.ErrUnexpectedEOF)
		}, func(err error) bool { return errors.Is(err, io.ErrUnexpectedEOF) }, "unexpected EOF"},
		{"StillInProgress", []bunstore.Option{bunstore.WithMaxRetryWait(200 * time.Millisecond)}, func(m sqlmock.Sqlmock) {
			expectPruneBatch(m, "b", []string{"c", "d"}, 4, 701, io.ErrUnexpectedEOF)
			expectCommitStatus(m, 701, "in progress").WillDelayFor(300 * time.Millisecond) // past the budget
		}, func(err error) bool {
			return strings.Contains(err.Error(), "the batch's transaction is still in progress on the server")
		}, "after 2 attempts in"},
		{"NotKnown", nil, func(m sqlmock.Sqlmock) {
			expectPruneBatch(m, "b", []string{"c", "d"}, 4, 701, io.ErrUnexpectedEOF)
			m.ExpectQuery(sqlLike(`SELECT txid_status($1)`)).WithArgs(int64(701)).WillReturnError(pgErr("22023"))
		}, func(err error) bool { return isCode(err, "22023") }, "ask how the batch's transaction ended"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := newOtelSDK(t)
			st, mock := newMockPool(t, o.options(tc.opts...)...)
			expectPruneBatch(mock, "", []string{"a", "b"}, 5, 700, nil)
			tc.expect(mock)
			res, err := st.PruneSessions(context.Background(), bunstore.PruneOptions{Before: retentionCutoff, BatchSize: 2})
			if want := (bunstore.PruneResult{Sessions: 2, Items: 5, Batches: 1}); res != want {
				t.Errorf("PruneSessions = %+v; want the first batch, %+v", res, want)
			}
			if !errors.Is(err, lakesession.ErrOutcomeUnknown) || !tc.cause(err) {
				t.Fatalf("PruneSessions: %v; want an error wrapping ErrOutcomeUnknown and the cause", err)
			}
			t.Log(err)
			for _, part := range []string{"prune sessions not updated since 2025-01-02T03:04:05Z: ",
				"a batch of 2 sessions and 4 items whose COMMIT was sent is not counted", tc.says} {
				if !strings.Contains(err.Error(), part) {
					t.Errorf("error %q does not say %q", err, part)
				}
			}
			spans := o.ended()
			if len(spans) != 1 {
				t.Fatalf("%d spans, want 1", len(spans))
			}
			wantAttrs(t, "PruneSessions", attrMap(spans[0].Attributes()), map[string]string{
				"error.type": "lakesession.ErrOutcomeUnknown", "lakesession.sessions": "2", "lakesession.items": "5", "lakesession.batches": "1"})
		})
	}
}

// Nothing of a retention call is retried on a Store on the caller's
// bun.Tx: each batch is a savepoint there, and its failure is returned at
// once. A connection that breaks there leaves no outcome unknown (the
// caller's transaction is rolled back), also when it breaks during the
// RELEASE of a batch's savepoint.
func TestMockRetentionNoRetryInTx(t *testing.T) {
	for _, tc := range []struct {
		name   string
		expect func(m sqlmock.Sqlmock)
		call   func(st *bunstore.Store) error
		is     func(err error) bool
	}{
		{"PruneSessions", func(m sqlmock.Sqlmock) {
			m.ExpectExec(sqlLike(`SAVEPOINT`)).WillReturnResult(sqlmock.NewResult(0, 0))
			m.ExpectQuery(sqlLike(`FOR UPDATE SKIP LOCKED`)).WillReturnError(pgErr("40001"))
			m.ExpectExec(sqlLike(`ROLLBACK TO SAVEPOINT`)).WillReturnResult(sqlmock.NewResult(0, 0))
		}, func(st *bunstore.Store) error {
			_, err := st.PruneSessions(context.Background(), bunstore.PruneOptions{Before: retentionCutoff})
			return err
		}, func(err error) bool { return isCode(err, "40001") }},
		{"DeleteSessionsRelease", func(m sqlmock.Sqlmock) {
			m.ExpectExec(sqlLike(`SAVEPOINT`)).WillReturnResult(sqlmock.NewResult(0, 0))
			m.ExpectQuery(sqlLike(`FOR UPDATE SKIP LOCKED`)).
				WillReturnRows(sqlmock.NewRows([]string{"session_id", "updated_at"}).AddRow("a", retentionCutoff.Add(-time.Hour)))
			m.ExpectQuery(sqlLike(`WITH m AS (DELETE`)).WillReturnRows(sqlmock.NewRows([]string{"d", "m", "xid"}).AddRow(1, 3, 700))
			m.ExpectExec(sqlLike(`RELEASE SAVEPOINT`)).WillReturnError(io.ErrUnexpectedEOF)
		}, func(st *bunstore.Store) error {
			_, err := st.DeleteSessions(context.Background(), retentionCutoff)
			return err
		}, func(err error) bool { return errors.Is(err, io.ErrUnexpectedEOF) }},
		{"DryRun", func(m sqlmock.Sqlmock) {
			m.ExpectQuery(sqlLike(`SELECT c.session_id`)).WillReturnError(io.ErrUnexpectedEOF)
		}, func(st *bunstore.Store) error {
			_, err := st.PruneSessions(context.Background(), bunstore.PruneOptions{Before: retentionCutoff, DryRun: true})
			return err
		}, func(err error) bool { return errors.Is(err, io.ErrUnexpectedEOF) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sqldb, mock, err := sqlmock.New(sqlmock.ValueConverterOption(passThrough{}))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { sqldb.Close() })
			mock.ExpectBegin()
			tx, err := bun.NewDB(sqldb, pgdialect.New()).BeginTx(context.Background(), nil)
			if err != nil {
				t.Fatal(err)
			}
			st, err := bunstore.New(tx)
			if err != nil {
				t.Fatal(err)
			}
			tc.expect(mock)
			err = tc.call(st)
			if err == nil || !tc.is(err) || errors.Is(err, lakesession.ErrOutcomeUnknown) || strings.Contains(err.Error(), "attempts") {
				t.Fatalf("%s: %v; want the first try's error at once, with a known outcome", tc.name, err)
			}
			mock.ExpectRollback()
			if err := tx.Rollback(); err != nil {
				t.Error(err)
			}
			if err := mock.ExpectationsWereMet(); err != nil {
				t.Error(err)
			}
		})
	}
}
