package bunstore_test

// These tests run the retry loop on a scripted database/sql driver, whose
// connections and statements fail as a test says, to check what go-sqlmock
// cannot show: the retry budget and the context bound the retries, failed
// logins are retried or not by their cause, and a connection that failed in
// a way that makes it unfit is closed instead of going back to the pool.

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/lakesession/lakesession"
	"github.com/lakesession/lakesession/bunstore"
)

// scriptDriver is a driver.Connector whose Connect calls and statements
// fail with the errors a test queues, in order, and succeed once the queue
// is empty. Queries return no rows; an exec reports as many rows as the
// items it was given.
type scriptDriver struct {
	mu       sync.Mutex
	connect  []error // errors of the next Connect calls; nil succeeds
	stmt     []error // errors of the next statements; nil succeeds
	always   error   // when set, every statement after the queue fails with it
	connects int     // Connect calls
	opened   int     // connections opened
	closed   int     // connections closed
	stmts    int     // statements run
}

func (d *scriptDriver) Connect(context.Context) (driver.Conn, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.connects++
	if len(d.connect) > 0 {
		err := d.connect[0]
		d.connect = d.connect[1:]
		if err != nil {
			return nil, err
		}
	}
	d.opened++
	return &scriptConn{d: d}, nil
}

func (d *scriptDriver) Driver() driver.Driver { return scriptDriverOnly{} }

type scriptDriverOnly struct{}

func (scriptDriverOnly) Open(string) (driver.Conn, error) {
	return nil, errors.New("scriptDriver: use sql.OpenDB")
}

// counts returns connects, opened, closed and statements so far.
func (d *scriptDriver) counts() (connects, opened, closed, stmts int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.connects, d.opened, d.closed, d.stmts
}

type scriptConn struct{ d *scriptDriver }

func (c *scriptConn) next() error {
	d := c.d
	d.mu.Lock()
	defer d.mu.Unlock()
	d.stmts++
	if len(d.stmt) > 0 {
		err := d.stmt[0]
		d.stmt = d.stmt[1:]
		return err
	}
	return d.always
}

func (c *scriptConn) Prepare(string) (driver.Stmt, error) {
	return nil, errors.New("scriptDriver: no prepared statements")
}

func (c *scriptConn) Close() error {
	c.d.mu.Lock()
	c.d.closed++
	c.d.mu.Unlock()
	return nil
}

func (c *scriptConn) Begin() (driver.Tx, error) { return scriptTx{}, nil }

func (c *scriptConn) CheckNamedValue(*driver.NamedValue) error { return nil }

func (c *scriptConn) ExecContext(_ context.Context, _ string, args []driver.NamedValue) (driver.Result, error) {
	if err := c.next(); err != nil {
		return nil, err
	}
	n := int64(0)
	for _, a := range args {
		if ss, ok := a.Value.([]string); ok {
			n = int64(len(ss))
		}
	}
	return driver.RowsAffected(n), nil
}

func (c *scriptConn) QueryContext(context.Context, string, []driver.NamedValue) (driver.Rows, error) {
	if err := c.next(); err != nil {
		return nil, err
	}
	return noRows{}, nil
}

type scriptTx struct{}

func (scriptTx) Commit() error   { return nil }
func (scriptTx) Rollback() error { return nil }

type noRows struct{}

func (noRows) Columns() []string              { return []string{"a", "b", "c", "d"} }
func (noRows) Close() error                   { return nil }
func (noRows) Next(dest []driver.Value) error { return io.EOF }

// scriptStore returns a Store on a *bun.DB over d.
func scriptStore(t testing.TB, d *scriptDriver, opts ...bunstore.Option) *bunstore.Store {
	t.Helper()
	sqldb := sql.OpenDB(d)
	t.Cleanup(func() { sqldb.Close() })
	st, err := bunstore.New(bun.NewDB(sqldb, pgdialect.New()), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// A failure that lasts longer than WithMaxRetryWait fails the call in
// about that time, not sooner and not much later, with the last cause and
// the number of tries.
func TestRetryBudget(t *testing.T) {
	const budget = 400 * time.Millisecond
	d := &scriptDriver{always: pgErr("57P03")}
	st := scriptStore(t, d, bunstore.WithMaxRetryWait(budget))
	start := time.Now()
	err := st.Session("s").AddItems(context.Background(), raw(`{}`))
	took := time.Since(start)
	if !isCode(err, "57P03") {
		t.Fatalf("AddItems: %v; want the 57P03 of the last try", err)
	}
	if errors.Is(err, lakesession.ErrOutcomeUnknown) {
		t.Errorf("AddItems: %v wraps ErrOutcomeUnknown; nothing was written", err)
	}
	if took < budget || took > budget+300*time.Millisecond {
		t.Errorf("AddItems gave up after %v; want about %v", took, budget)
	}
	_, _, _, stmts := d.counts()
	// Backoff from 25 ms doubling, each wait between half a step and a
	// step: 400 ms hold 5 to 8 waits.
	if stmts < 5 || stmts > 10 {
		t.Errorf("%d tries in %v; want jittered exponential backoff (5 to 10)", stmts, budget)
	}
	if want := fmt.Sprintf(`add items to session "s": after %d attempts in `, stmts); !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error %q does not start with %q", err, want)
	}
	t.Logf("%d tries in %v: %v", stmts, took, err)
}

// The call's context bounds the retries too.
func TestRetryStopsWhenTheContextEnds(t *testing.T) {
	d := &scriptDriver{always: pgErr("25006")}
	st := scriptStore(t, d)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := st.Session("s").GetItems(ctx, 20)
	took := time.Since(start)
	if !errors.Is(err, context.DeadlineExceeded) || !isCode(err, "25006") {
		t.Fatalf("GetItems: %v; want an error wrapping the deadline and the last cause", err)
	}
	if took > 450*time.Millisecond {
		t.Errorf("GetItems returned %v after the call started; its deadline was 300ms", took)
	}
}

// closedPortConnectError returns the error pgx returns when nothing
// listens on the server's port.
func closedPortConnectError(t *testing.T) error {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, err = pgconn.Connect(context.Background(), "postgres://app@"+addr+"/app?sslmode=disable&connect_timeout=5")
	var ce *pgconn.ConnectError
	if !errors.As(err, &ce) {
		t.Fatalf("connect to a closed port: %v; want a *pgconn.ConnectError", err)
	}
	return fmt.Errorf("connector: %w", err)
}

// A connection that could not be made means the statement was not sent:
// when the server was unreachable, starting up or closed the connection
// during the login, the call tries again; a rejected login is not retried.
func TestRetryConnectErrors(t *testing.T) {
	refused := closedPortConnectError(t)
	t.Run("Retried", func(t *testing.T) {
		d := &scriptDriver{connect: []error{
			refused,
			fmt.Errorf("connector: %w", pgErr("57P03")),
			fmt.Errorf("connector: failed to receive message: %w", io.ErrUnexpectedEOF),
			fmt.Errorf("connector: %w", &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("i/o timeout")}),
		}}
		st := scriptStore(t, d)
		if err := st.Session("s").AddItems(context.Background(), raw(`{}`)); err != nil {
			t.Fatalf("AddItems: %v; want it to wait out the failed connections", err)
		}
		if connects, _, _, stmts := d.counts(); connects != 5 || stmts != 1 {
			t.Errorf("%d connects and %d statements; want 5 and 1", connects, stmts)
		}
	})
	for _, e := range []error{
		fmt.Errorf("connector: %w", pgErr("28P01")),
		fmt.Errorf("connector: %w", pgErr("3D000")),
		errors.New("get a token for user \"app\": the token source is closed"),
	} {
		t.Run(fmt.Sprintf("NotRetried/%v", e), func(t *testing.T) {
			d := &scriptDriver{connect: []error{e}}
			st := scriptStore(t, d)
			err := st.Session("s").AddItems(context.Background(), raw(`{}`))
			if err == nil || err.Error() != `add items to session "s": `+e.Error() {
				t.Fatalf("AddItems: %v; want %v", err, e)
			}
			if errors.Is(err, lakesession.ErrOutcomeUnknown) {
				t.Errorf("AddItems: %v wraps ErrOutcomeUnknown; no statement was sent", err)
			}
			if connects, _, _, stmts := d.counts(); connects != 1 || stmts != 0 {
				t.Errorf("%d connects and %d statements; want 1 and 0", connects, stmts)
			}
		})
	}
}

// A connection that failed in a way that makes it unfit (a read-only
// server, a shutdown, a broken connection) is closed and the retry runs on
// a new one; after a serialization failure or a deadlock the connection is
// fine and goes back to the pool.
func TestRetryDiscardsUntrustedConnections(t *testing.T) {
	for _, tc := range []struct {
		err     error
		discard bool
	}{
		{pgErr("25006"), true},
		{pgErr("57P01"), true},
		{pgErr("57P05"), true},
		{io.ErrUnexpectedEOF, true},
		{pgErr("40001"), false},
		{pgErr("40P01"), false},
	} {
		t.Run(fmt.Sprint(tc.err), func(t *testing.T) {
			d := &scriptDriver{stmt: []error{tc.err}}
			st := scriptStore(t, d)
			// GetItems is retried after every one of these.
			if _, err := st.Session("s").GetItems(context.Background(), 20); err != nil {
				t.Fatalf("GetItems: %v", err)
			}
			_, opened, closed, stmts := d.counts()
			if stmts != 2 {
				t.Fatalf("%d statements; want 2", stmts)
			}
			if tc.discard && (closed != 1 || opened != 2) {
				t.Errorf("after %v: %d connections opened, %d closed; want the failed one closed and the retry on a new one", tc.err, opened, closed)
			}
			if !tc.discard && (closed != 0 || opened != 1) {
				t.Errorf("after %v: %d connections opened, %d closed; want the connection kept", tc.err, opened, closed)
			}
		})
	}
}
