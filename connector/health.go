package connector

import (
	"context"
	"crypto/tls"
	"database/sql/driver"
	"math/rand/v2"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
)

// Keys of the state the Connector keeps in each pgconn.PgConn's CustomData.
const (
	// keyDiscard holds why the connection must not be handed out again
	// (a SQLSTATE, or a word); set, database/sql discards the connection
	// the next time it would reuse it.
	keyDiscard = "lakesession/connector.discard"
	// keyRetireAt holds the time.Time after which the connection is
	// retired.
	keyRetireAt = "lakesession/connector.retireAt"
)

// distrusts reports whether a connection that received an error with this
// SQLSTATE can no longer be trusted: 25006 (read-only transaction: the
// server is a standby now, as after a failover), 57P01 and 57P02 (the
// server is shutting down or crashed), 57P05 (idle-session timeout) and
// class 08 (connection exception).
func distrusts(code string) bool {
	switch code {
	case "25006", "57P01", "57P02", "57P05":
		return true
	}
	return strings.HasPrefix(code, "08")
}

// distrustOnPgError wraps pgx's error handler (which closes the connection
// on a FATAL error) so that a connection that received an error that
// distrusts names is marked for discarding, also when the error is not
// FATAL, as 25006 is not.
func distrustOnPgError(prev pgconn.PgErrorHandler) pgconn.PgErrorHandler {
	return func(pc *pgconn.PgConn, pgErr *pgconn.PgError) bool {
		if distrusts(pgErr.Code) {
			pc.CustomData()[keyDiscard] = pgErr.Code
		}
		if prev != nil {
			return prev(pc, pgErr)
		}
		return !strings.EqualFold(pgErr.Severity, "FATAL")
	}
}

// lifetimeSpread is the part of a connection's lifetime in which it is
// retired: the last tenth.
const lifetimeSpread = 10

// retireAfter draws the age at which a connection is retired: a uniformly
// random duration between lifetime less its last tenth and lifetime, never
// more.
func retireAfter(lifetime time.Duration) time.Duration {
	return lifetime - rand.N(lifetime/lifetimeSpread+1)
}

// afterConnect runs for every new connection, once it is logged in: it
// draws the moment the connection retires.
func (r *resolved) afterConnect(_ context.Context, conn *pgx.Conn) error {
	if r.lifetime > 0 {
		conn.PgConn().CustomData()[keyRetireAt] = r.now().Add(retireAfter(r.lifetime))
	}
	return nil
}

// retired reports whether conn must be discarded rather than reused: it
// received an error that distrusts names, its lifetime is over, or (when
// check is set) the server closed it or sent it something while it sat in
// the pool, as a terminated backend does. It marks conn when it is.
func (r *resolved) retired(conn *pgx.Conn, check bool) bool {
	data := conn.PgConn().CustomData()
	if _, ok := data[keyDiscard]; ok {
		return true
	}
	if at, ok := data[keyRetireAt].(time.Time); ok && !r.now().Before(at) {
		data[keyDiscard] = "lifetime"
		return true
	}
	if check && !idleAndOpen(conn.PgConn().Conn()) {
		data[keyDiscard] = "closed"
		return true
	}
	return false
}

// shouldPing runs first when database/sql is about to reuse a connection
// (stdlib's ResetSession). A connection to discard is not pinged
// (resetSession then discards it); any other is pinged as pgx does by
// default, when it was idle for more than a second.
func (r *resolved) shouldPing(_ context.Context, p stdlib.ShouldPingParams) bool {
	if r.retired(p.Conn, true) {
		return false
	}
	return p.IdleDuration > time.Second
}

// resetSession runs last when database/sql is about to reuse a connection:
// driver.ErrBadConn makes database/sql close it and take or open another,
// without failing the caller.
func (r *resolved) resetSession(_ context.Context, conn *pgx.Conn) error {
	if r.retired(conn, false) {
		return driver.ErrBadConn
	}
	return nil
}

// idleAndOpen reports whether the socket of an idle connection has nothing
// to read: a connection that the server closed, or that got a message
// while nobody asked (a terminated backend sends its FATAL error, then
// closes), does. It never blocks; where it cannot look, it reports true.
func idleAndOpen(c net.Conn) bool {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return true
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return true
	}
	return peekIdle(raw)
}
