package bunstore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/uptrace/bun"

	"github.com/lakesession/lakesession"
)

// DefaultMaxRetryWait is how long a call on a *bun.DB keeps retrying a
// failure that left nothing written, when WithMaxRetryWait is not given.
const DefaultMaxRetryWait = 15 * time.Second

// Backoff between attempts: the first retry waits about retryFirstDelay,
// each later one twice as long as the one before, up to retryMaxDelay;
// every wait is drawn at random between half the step and the whole step,
// so that callers who failed together do not retry together.
const (
	retryFirstDelay = 25 * time.Millisecond
	retryMaxDelay   = time.Second
)

// op describes one kind of call for the retry loop and for its span and
// metrics.
type op struct {
	idx int // index in allOps
	// name is the method: "AddItems".
	name string
	// idempotent calls are retried also after the connection broke with
	// their statement's outcome unknown: running them again gives the
	// result they would have given.
	idempotent bool
	// dbOperation is the span's db.operation.name: the SQL command of the
	// call's main statement.
	dbOperation string
	// collection is the table the call works on, for db.collection.name.
	collection table
	// ownTx calls run a transaction of their own: their tries get a
	// bun.Conn to start it on (attempt.db).
	ownTx bool
}

type table uint8

const (
	noTable table = iota
	sessionsTable
	messagesTable
)

// The calls of a Store. DeleteSessions and PruneSessions are idempotent: a
// batch run again removes what is still there to remove.
var (
	opGetItems       = &op{idx: 0, name: "GetItems", idempotent: true, dbOperation: "SELECT", collection: messagesTable}
	opAddItems       = &op{idx: 1, name: "AddItems", dbOperation: "INSERT", collection: messagesTable}
	opPopItem        = &op{idx: 2, name: "PopItem", dbOperation: "DELETE", collection: messagesTable}
	opClearSession   = &op{idx: 3, name: "ClearSession", idempotent: true, dbOperation: "DELETE", collection: sessionsTable}
	opListSessions   = &op{idx: 4, name: "ListSessions", idempotent: true, dbOperation: "SELECT", collection: sessionsTable}
	opCreateTables   = &op{idx: 5, name: "CreateTables", idempotent: true, dbOperation: "CREATE TABLE", ownTx: true}
	opDeleteSessions = &op{idx: 6, name: "DeleteSessions", idempotent: true, dbOperation: "DELETE", collection: sessionsTable, ownTx: true}
	opPruneSessions  = &op{idx: 7, name: "PruneSessions", idempotent: true, dbOperation: "DELETE", collection: sessionsTable, ownTx: true}

	allOps = [numOps]*op{opGetItems, opAddItems, opPopItem, opClearSession, opListSessions, opCreateTables, opDeleteSessions, opPruneSessions}
)

const numOps = 8

// attempt is where one try of a call runs. On a *bun.DB with PostgreSQL it
// is one connection taken from the pool for the try: c sends statements on
// it, and for an op with ownTx, db is that connection as a bun.Conn, to
// start the transaction on (nil otherwise). Elsewhere both are the Store's
// own.
type attempt struct {
	db bun.IDB
	c  conn
}

// outcome is what a failed statement tells about whether it took effect.
type outcome uint8

const (
	// failed: the database refused the statement (or the error is none
	// the store knows); a retry would not help.
	failed outcome = iota
	// notApplied: the statement certainly did not run, or ran and did not
	// commit, for a reason that another try on another connection may not
	// meet.
	notApplied
	// broken: the connection broke after the statement was sent, before
	// its result came back: it may or may not have committed.
	broken
)

// classify says what err, returned by a statement on a connection the
// store holds, tells about the statement.
func classify(err error) outcome {
	// pgx's database/sql driver returns driver.ErrBadConn only for what
	// pgconn.SafeToRetry says happened before anything was sent.
	if errors.Is(err, driver.ErrBadConn) || pgconn.SafeToRetry(err) {
		return notApplied
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		// An error response ends the statement's transaction without a
		// commit: PostgreSQL reports nothing but warnings once a commit is
		// done.
		switch pgErr.Code {
		case "57P01", // admin_shutdown: the backend was terminated
			"57P02", // crash_shutdown
			"57P03", // cannot_connect_now: the server is starting up
			"57P05", // idle_session_timeout: the backend ended while idle
			"25006", // read_only_sql_transaction: a server in recovery, or a demoted primary
			"40001", // serialization_failure
			"40P01": // deadlock_detected
			return notApplied
		}
		if strings.HasPrefix(pgErr.Code, "08") {
			// A connection exception in an error response comes from a
			// pooler in between (PgBouncer's "server conn crashed?" is
			// 08P01): the server's connection broke, at a moment the
			// pooler does not tell.
			return broken
		}
		return failed
	}
	if connBroke(err) {
		return broken
	}
	return failed
}

// connBroke reports whether err says that the connection failed: an EOF,
// a reset, a closed socket or another network error.
func connBroke(err error) bool {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNABORTED) {
		return true
	}
	var netErr net.Error
	return errors.As(err, &netErr)
}

// connectRetryable reports whether an error getting a connection (the
// statement was not sent) may go away on another try: the server was not
// reachable, closed the connection during the login, was starting up or
// shutting down, or the attempt timed out. A rejected login, a missing
// database, a certificate that does not verify and a closed *sql.DB are
// not retried.
func connectRetryable(err error) bool {
	if errors.Is(err, sql.ErrConnDone) {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "57P01", "57P02", "57P03":
			return true
		}
		return strings.HasPrefix(pgErr.Code, "08")
	}
	return errors.Is(err, driver.ErrBadConn) || pgconn.SafeToRetry(err) || pgconn.Timeout(err) ||
		errors.Is(err, context.DeadlineExceeded) || connBroke(err)
}

// untrusted reports whether the connection a statement failed on should
// not serve another one: it broke, its server is shutting down or ended
// the session, or it reaches a server that refuses writes (a demoted
// primary keeps refusing them; a new connection reaches the new primary).
func untrusted(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "25006", "57P01", "57P02", "57P03", "57P05":
			return true
		}
		return strings.HasPrefix(pgErr.Code, "08")
	}
	return connBroke(err)
}

// writeOutcomeUnknown reports whether err, returned by a write (one
// statement, or one transaction, on a connection the store held), leaves
// the write's outcome unknown: the connection broke after the statement
// was sent, or the context ended while it was in flight, and pgx then
// drops the connection without telling whether the server had it.
func writeOutcomeUnknown(ctx context.Context, err error) bool {
	switch classify(err) {
	case broken:
		return true
	case notApplied:
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return false // the server answered: the statement failed
	}
	return ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded))
}

// outcomeUnknown wraps a write's error in lakesession.ErrOutcomeUnknown.
func outcomeUnknown(err error) error {
	return fmt.Errorf("%w: %w", lakesession.ErrOutcomeUnknown, err)
}

// run runs f, the statements of the call c, and returns its error. On a
// *bun.DB with PostgreSQL (s.pool is set) every try takes a connection of
// its own from the pool, and a try that certainly left nothing written is
// tried again, after a backoff, until it succeeds, the context ends or the
// Store's retry budget (WithMaxRetryWait) is spent; an idempotent call is
// also tried again after its connection broke with the outcome unknown. A
// connection that failed in a way that makes it unfit for more statements
// is closed, not handed back to the pool. Elsewhere f runs once.
//
// A write (o not idempotent) whose outcome is unknown returns an error
// wrapping lakesession.ErrOutcomeUnknown. Each try after the first adds
// one to c.retries and to the retries counter.
//
// A method wraps its statements in begin, run and end:
//
//	ctx, c := s.begin(ctx, opListSessions, "")
//	err := s.run(ctx, &c, func(ctx context.Context, a attempt) error { ... })
//	c.end(ctx, err)
//
// f may run several times: it must finish with its rows before it returns,
// and start from scratch each time.
func (s *Store) run(ctx context.Context, c *call, f func(ctx context.Context, a attempt) error) error {
	o := c.op
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.pool == nil {
		mode := protoExtended
		if !o.idempotent && s.unknownOutcomes {
			switch raw := s.c.raw.(type) {
			case *sql.Conn: // a bun.Conn
				mode, _ = s.sendMode(raw)
			case nil:
				// Another bun.IDB: the statements go through Bun, with
				// their arguments in the text, and pgx sends a statement
				// without arguments in the simple protocol.
				mode = protoSimple
			}
		}
		err := f(ctx, attempt{db: s.db, c: s.c})
		if err != nil && !o.idempotent && s.unknownOutcomes && (writeOutcomeUnknown(ctx, err) || maybeSent(mode, err)) {
			err = outcomeUnknown(err)
		}
		if err != nil {
			return withCtxErr(ctx, err)
		}
		return nil
	}
	start := c.start // begin reads the clock when the duration is recorded
	if start.IsZero() {
		start = time.Now()
	}
	deadline := start.Add(s.cfg.maxRetryWait)
	step := retryFirstDelay
	for n := 1; ; n++ {
		err, retry := s.try(ctx, o, f)
		if err == nil {
			return nil
		}
		if !retry || ctx.Err() != nil {
			return attemptsErr(ctx, err, n, start)
		}
		var wait time.Duration
		wait, step = backoff(step)
		left := time.Until(deadline)
		if left <= 0 {
			return attemptsErr(ctx, err, n, start)
		}
		if !sleep(ctx, min(wait, left)) {
			return attemptsErr(ctx, err, n, start)
		}
		c.retries++
		s.tel.countRetry(ctx, o, err)
	}
}

// try runs f once on a connection of its own and says whether another try
// may succeed where it failed.
func (s *Store) try(ctx context.Context, o *op, f func(ctx context.Context, a attempt) error) (err error, retry bool) {
	var (
		sc *sql.Conn
		a  attempt
	)
	if o.ownTx {
		bc, err := s.pool.Conn(ctx)
		if err != nil {
			return err, connectRetryable(err)
		}
		sc, a = bc.Conn, attempt{db: bc, c: conn{raw: bc.Conn, pg: true}}
	} else {
		// A *sql.Conn, not a bun.Conn: a pointer in an interface costs no
		// allocation.
		if sc, err = s.pool.DB.Conn(ctx); err != nil {
			return err, connectRetryable(err)
		}
		a = attempt{c: conn{raw: sc, pg: true}}
	}
	// After the first look at a connection, one atomic load.
	mode, database := s.sendMode(sc)
	s.tel.learnNamespace(ctx, database)
	if o.idempotent {
		mode = protoExtended // only a write's outcome can be unknown
	}
	err = f(ctx, a)
	if err != nil && untrusted(err) {
		// database/sql closes a connection whose Raw function returns
		// driver.ErrBadConn, instead of returning it to the pool.
		_ = sc.Raw(func(any) error { return driver.ErrBadConn })
	}
	_ = sc.Close() // hands the connection back; ErrConnDone when Raw closed it
	if err == nil {
		return nil, false
	}
	if maybeSent(mode, err) {
		return outcomeUnknown(err), false
	}
	switch classify(err) {
	case notApplied:
		return err, true
	case broken:
		if o.idempotent {
			return err, true
		}
		return outcomeUnknown(err), false
	}
	if !o.idempotent && writeOutcomeUnknown(ctx, err) {
		return outcomeUnknown(err), false
	}
	return err, false
}

// backoff returns how long to wait before the next try, drawn at random
// between half of step and step, and the step after it.
func backoff(step time.Duration) (wait, next time.Duration) {
	return step/2 + rand.N(step/2+1), min(2*step, retryMaxDelay)
}

// attemptsErr returns the error of a call's last try, saying how many tries
// it took when there was more than one, and wrapping the context's error
// when the context ended.
func attemptsErr(ctx context.Context, err error, n int, start time.Time) error {
	err = withCtxErr(ctx, err)
	if n == 1 {
		return err
	}
	return fmt.Errorf("after %d attempts in %s: %w", n, time.Since(start).Round(time.Millisecond), err)
}

// sleep waits for d or until ctx ends, and reports whether it waited d.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// How a Store's connections send statements (see sendMode).
const (
	_ uint32 = iota
	// protoExtended: pgx v5 in the extended query protocol (every exec
	// mode but QueryExecModeSimpleProtocol): driver.ErrBadConn means that
	// nothing was sent, and an error response that nothing committed.
	protoExtended
	// protoSimple: pgx v5 in the simple query protocol.
	protoSimple
	// protoOther: another driver (lib/pq, for one, returns
	// driver.ErrBadConn also after a statement was sent).
	protoOther
)

// sendMode says how far a write's errors on sc can be taken at their word,
// by the driver and the protocol that send the statements.
//
// pgx v5 in the simple query protocol (QueryExecModeSimpleProtocol, which
// a pool gets from default_query_exec_mode=simple_protocol in its DSN or
// from connector.WithQueryExecMode) reports a connection that broke after
// a query was sent as "conn closed", an error it marks safe to retry, and
// its database/sql driver turns that into driver.ErrBadConn, the error for
// "nothing was sent"; and the server can answer a statement that committed
// with an error (see afterCommit). In the extended protocol (every other
// mode) pgx reports such a break as the network error it is. Drivers other
// than pgx's are not known to keep driver.ErrBadConn for what was not sent.
//
// The answer is taken from the first connection looked at and kept for the
// Store: the connections of one pool share their configuration. A
// connection that cannot be looked at counts as simple, the cautious
// answer, and is not kept. The same look reads the database pgx's
// connections open (for db.namespace): "" when the driver is not pgx's or
// the connection could not be looked at.
func (s *Store) sendMode(sc *sql.Conn) (mode uint32, database string) {
	if ci := s.conns.Load(); ci != nil {
		return ci.mode, ci.database
	}
	mode = protoOther
	err := sc.Raw(func(dc any) error {
		if c, ok := dc.(interface{ Conn() *pgx.Conn }); ok {
			cfg := c.Conn().Config()
			mode, database = protoExtended, cfg.Database
			if cfg.DefaultQueryExecMode == pgx.QueryExecModeSimpleProtocol {
				mode = protoSimple
			}
		}
		return nil
	})
	if err != nil {
		return protoSimple, "" // not kept: the next look tries again
	}
	s.conns.Store(&connInfo{mode: mode, database: database})
	return mode, database
}

// connInfo is what sendMode found out about a Store's connections.
type connInfo struct {
	mode     uint32 // protoExtended, protoSimple or protoOther
	database string // the database of pgx's connections; "" when unknown
}

// maybeSent reports whether err, from a write sent on a connection of the
// given mode (see sendMode), leaves open whether the write took effect
// although classify says it was not applied. In the simple protocol, that
// is anything classify takes for "not applied" but that is not the
// server's own answer, and the server's answers that may come after the
// write committed (see afterCommit); with another driver, a
// driver.ErrBadConn.
func maybeSent(mode uint32, err error) bool {
	switch mode {
	case protoSimple:
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) {
			return afterCommit(pgErr)
		}
		return classify(err) == notApplied
	case protoOther:
		return errors.Is(err, driver.ErrBadConn)
	}
	return false
}

// afterCommit reports whether the server may have sent the error response
// pgErr after the statement it answers had committed. In the simple query
// protocol PostgreSQL commits a statement, sends its CommandComplete, and
// only then writes the statement's duration to its log (log_duration,
// log_min_duration_statement); writing a log line services the interrupts
// that came in while the commit held them off: a termination
// (pg_terminate_backend, a fast shutdown: FATAL 57P01) or a cancel (a
// cancel request or statement_timeout: 57014). pgx then reports the error
// and not the CommandComplete before it. COMMIT too is sent in the simple
// protocol, whatever the exec mode. In the extended protocol a statement
// commits at Sync, after its own log line, and nothing between the commit
// and ReadyForQuery looks at interrupts.
func afterCommit(pgErr *pgconn.PgError) bool {
	switch pgErr.Code {
	case "57P01", // admin_shutdown
		"57P02", // crash_shutdown
		"57014": // query_canceled
		return true
	}
	return false
}
