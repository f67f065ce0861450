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
// written, and returns the result of the try that succeeded.
func TestMockRetriesWhatDidNotHappen(t *testing.T) {
	for _, e := range notAppliedErrors {
		for _, c := range retryCalls {
			t.Run(fmt.Sprintf("%s/%v", c.name, e), func(t *testing.T) {
				st, mock := newMockPool(t)
				c.fail(mock, e)
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
			if e == io.EOF && c.name == "GetItemsRowError" {
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
		}{{"NotApplied", pgErr("40001")}, {"Broken", io.ErrUnexpectedEOF}} {
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
				if want := k.unknown && w.err == io.ErrUnexpectedEOF; unknown != want {
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
