package connector

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/lakesession/lakesession/lakebasecred"
)

// TokenSource hands out the password of every new connection.
//
// Implementations must keep this behaviour:
//   - Token returns a password that is valid now, for the Config's user. It
//     is called once for every new connection, so it must be cheap when it
//     has a valid token cached, and safe to call from many goroutines.
//   - Token honours ctx: it returns ctx's error once ctx is done, and never
//     hangs past it.
//   - Invalidate drops any cached token, so that the next Token call hands
//     out a fresh one. The Connector calls it when the database rejects a
//     token (SQLSTATE 28P01 or 28000) that the source still hands out.
//   - No error, log line or String method of the source ever contains a
//     token.
//
// A source may also have a method InvalidateToken(token string) that drops
// the cached token only if it is token; the Connector then calls it instead
// of Invalidate, so that many logins rejected at once cause one new token,
// not one each. Without it, the Connector calls Token first and Invalidate
// only when the source still hands out the rejected token.
//
// *lakebasecred.Source is a TokenSource with InvalidateToken.
type TokenSource interface {
	Token(ctx context.Context) (string, error)
	Invalidate()
}

// tokenInvalidator is the optional method of a TokenSource described above.
type tokenInvalidator interface {
	InvalidateToken(token string)
}

var _ interface {
	TokenSource
	tokenInvalidator
} = (*lakebasecred.Source)(nil)

// ErrClosed is returned by Connect after Close.
var ErrClosed = errors.New("connector: closed")

// Connector is a database/sql driver.Connector for PostgreSQL on pgx. Each new
// connection logs in with the current token of its TokenSource (or with its
// static password). Create it with New or ForLakebase, and open a pool with
// OpenDB or sql.OpenDB. A Connector is safe for concurrent use; give each
// *sql.DB a Connector of its own, since closing the *sql.DB closes its
// Connector.
type Connector struct {
	// Everything that may hold a secret sits behind this pointer, so that
	// printing a dereferenced Connector shows an address and no password.
	r      *resolved
	closed atomic.Bool
}

var (
	_ driver.Connector = (*Connector)(nil)
	_ io.Closer        = (*Connector)(nil)
	_ fmt.Stringer     = (*Connector)(nil)
	_ fmt.GoStringer   = (*Connector)(nil)
)

// settings are the validated settings of a Connector besides pgx's
// configuration.
type settings struct {
	tokens   TokenSource   // nil when a static password (or none) is used
	timeout  time.Duration // per connection attempt (token and dial); always > 0
	maxWait  time.Duration // how long Connect waits out an outage; < 0: not at all
	lifetime time.Duration // a connection's lifetime; < 0: unlimited
	desc     string        // what String shows: never a secret
	tel      *telemetry    // the span and metrics of each Connect
}

// resolved is a validated configuration, ready to connect.
type resolved struct {
	settings
	inner  driver.Connector // pgx stdlib connector over base
	probes prober           // waits out outages for every Connect at once
	now    func() time.Time // the clock of connection lifetimes
}

// New validates cfg and returns a Connector for it. cfg is copied: changing
// it afterwards has no effect. Every problem found is reported at once, in a
// *ConfigError that says what to set. New does not connect.
func New(cfg Config) (*Connector, error) {
	r, err := cfg.resolve()
	if err != nil {
		return nil, err
	}
	return &Connector{r: r}, nil
}

func newResolved(base *pgx.ConnConfig, s settings) *resolved {
	r := &resolved{settings: s, now: time.Now}
	r.probes.r = r
	base.OnPgError = distrustOnPgError(base.OnPgError)
	opts := []stdlib.OptionOpenDB{
		stdlib.OptionAfterConnect(r.afterConnect),
		stdlib.OptionShouldPing(r.shouldPing),
		stdlib.OptionResetSession(r.resetSession),
	}
	if s.tokens != nil {
		opts = append(opts, stdlib.OptionBeforeConnect(r.beforeConnect))
	}
	r.inner = stdlib.GetConnector(*base, opts...)
	return r
}

// attemptKey carries an *attempt through the context that pgx hands to
// BeforeConnect, so that Connect learns which token a failed login used.
type attemptKey struct{}

type attempt struct{ token string }

// beforeConnect runs on pgx's shallow copy of the base configuration for
// every new connection. It sets Password and nothing else: the maps, slices
// and TLS configuration of the copy are shared with the base and every other
// connection, so they are never touched.
func (r *resolved) beforeConnect(ctx context.Context, cc *pgx.ConnConfig) error {
	tok, err := r.tokens.Token(ctx)
	if err != nil {
		return &tokenError{fmt.Errorf("get a token for user %q: %w", cc.User, err)}
	}
	if tok == "" {
		return &tokenError{fmt.Errorf("the token source returned an empty token for user %q", cc.User)}
	}
	if a, ok := ctx.Value(attemptKey{}).(*attempt); ok {
		a.token = tok
	}
	cc.Password = tok
	return nil
}

// Connect opens a new connection. ctx bounds the dial, the TLS handshake,
// the login and the wait for a token; each attempt is also bounded by the
// configured connect timeout.
//
// With a TokenSource, Connect asks it for the current token. When the
// database rejects that token (SQLSTATE 28P01 invalid_password or 28000
// invalid_authorization_specification), Connect calls Invalidate (or
// InvalidateToken) on the source, unless the source already hands out
// another token, and tries once more with the token the source gives then.
//
// When the server cannot be reached (the dial fails, the connection is
// reset or ends during the login, or the server answers 57P03, cannot
// connect now), Connect waits it out, up to Config.MaxConnectWait after it
// was called or until ctx ends, whichever comes first: the Connector probes
// the server with backoff (about 50 ms, doubling to 2 s, jittered), one
// probe at a time for all the Connects that wait, and lets them all dial
// once a probe gets through. A Connect that starts while an outage is being
// waited out joins the wait without dialing. The error after the wait says
// how long it waited and wraps the last cause.
//
// Each Connect is an OpenTelemetry span, lakesession.connect, a child of
// the span in ctx, and is counted in the Connector's metrics (see the
// package doc, # Telemetry).
func (c *Connector) Connect(ctx context.Context) (driver.Conn, error) {
	r := c.r
	start := time.Now()
	ctx, span := r.tel.start(ctx)
	var st connectStats
	conn, err := c.connect(ctx, start, &st)
	r.tel.end(ctx, span, start, &st, err)
	return conn, err
}

// connect is Connect, with what the telemetry reports kept in st. ctx
// carries the Connect's span: the token source and a pgx.ConnectTracer see
// it as their parent.
func (c *Connector) connect(ctx context.Context, start time.Time, st *connectStats) (driver.Conn, error) {
	if c.closed.Load() {
		return nil, ErrClosed
	}
	r := c.r
	var deadline time.Time // zero while the first attempt runs
	var lastErr error      // the last outage error, for the final error
	rejected := ""         // the token the database rejected, once it did
	for {
		if lastErr == nil && r.maxWait >= 0 {
			// An outage already being waited out: join it, without
			// dialing a server that is known to be down.
			if w, ok := r.probes.joinActive(); ok {
				deadline = start.Add(r.maxWait)
				conn, err := r.wait(ctx, w, deadline, start, st)
				if conn != nil || err != nil {
					return conn, err
				}
			}
		}

		var a attempt
		conn, err := r.dial(ctx, &a, deadline)
		st.attempts++
		r.tel.countAttempt(ctx, false, err)
		if st.rejected && a.token != "" && a.token != rejected {
			st.replaced = true
		}
		if err == nil {
			return conn, nil
		}
		if IsAuthError(err) && r.tokens != nil {
			if st.rejected {
				return nil, fmt.Errorf("connector: the database rejected the password twice, also after the token source was asked for a fresh token: %w", scrub(err))
			}
			st.rejected = true
			rejected = a.token
			// The database rejected the token. Drop it from the source,
			// unless a concurrent Connect already did and the source hands
			// out a new one: invalidating that one would only make the
			// source mint again.
			if ti, ok := r.tokens.(tokenInvalidator); ok {
				ti.InvalidateToken(a.token)
			} else if cur, terr := r.currentToken(ctx); terr != nil || cur == a.token {
				r.tokens.Invalidate()
			}
			continue
		}
		if r.maxWait < 0 || !isOutage(ctx, err) {
			if lastErr != nil && ctx.Err() == nil && !deadline.IsZero() && !time.Now().Before(deadline) {
				// The wait's own deadline cut this attempt short.
				st.errType = errTypeWaitOver
				return nil, r.waitError(ctx, errWaitOver, start, lastErr)
			}
			return nil, wrapConnectError(err)
		}
		lastErr = scrub(err)
		if deadline.IsZero() {
			deadline = start.Add(r.maxWait)
		}
		w, jerr := r.probes.join(lastErr)
		if jerr != nil {
			return nil, jerr
		}
		conn, err = r.wait(ctx, w, deadline, start, st)
		if conn != nil || err != nil {
			return conn, err
		}
		// A probe got through: the server is back. Dial again.
	}
}

// wait waits out the outage w is in for a Connect made with ctx at start,
// until deadline; it returns what prober.wait does, the error made for the
// caller, and notes the wait in st.
func (r *resolved) wait(ctx context.Context, w waiter, deadline, start time.Time, st *connectStats) (driver.Conn, error) {
	conn, probes, err := r.probes.wait(ctx, w, deadline)
	st.waited = true
	st.probes += probes
	switch {
	case err == nil:
	case errors.Is(err, errWaitOver):
		st.errType = errTypeWaitOver
	case errors.Is(err, ErrClosed):
		st.errType = errTypeClosed
	case errors.Is(err, context.DeadlineExceeded):
		st.errType = errTypeDeadline
	default:
		st.errType = errTypeCanceled
	}
	return conn, r.waitError(ctx, err, start, w.ep.cause())
}

// currentToken asks the source for its token, waiting no longer than one
// connection attempt may.
func (r *resolved) currentToken(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	return r.tokens.Token(ctx)
}

// dial makes one connection attempt, bounded by the connect timeout and,
// when it is not zero, by deadline.
func (r *resolved) dial(ctx context.Context, a *attempt, deadline time.Time) (driver.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	if !deadline.IsZero() {
		var cancel2 context.CancelFunc
		ctx, cancel2 = context.WithDeadline(ctx, deadline)
		defer cancel2()
	}
	if a != nil {
		ctx = context.WithValue(ctx, attemptKey{}, a)
	}
	return r.inner.Connect(ctx)
}

// IsAuthError reports whether err says that the database rejected the login:
// SQLSTATE 28P01 (invalid_password) or 28000
// (invalid_authorization_specification).
func IsAuthError(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	return pgErr.Code == "28P01" || pgErr.Code == "28000"
}

func wrapConnectError(err error) error {
	return fmt.Errorf("connector: %w", scrub(err))
}

// scrub clears the password from the configuration that pgx attaches to a
// connection error. That configuration is the private copy made for the
// failed attempt, used by nothing else; pgx's error text never shows the
// password, and after this neither does the error's data.
func scrub(err error) error {
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) && ce.Config != nil {
		ce.Config.Password = ""
	}
	return err
}

// Driver returns the pgx database/sql driver.
func (c *Connector) Driver() driver.Driver {
	return c.r.inner.Driver()
}

// Close marks the Connector closed: later Connect calls return ErrClosed.
// database/sql calls it from (*sql.DB).Close.
//
// A Connector holds no connection of its own (the *sql.DB owns and closes
// its connections). Its only goroutine probes the server while Connects
// wait out an outage; Close stops it, ends those waits with ErrClosed and
// waits for the probe to finish. Close does not close the TokenSource: a
// source may be shared by several Connectors, and whoever created it stops
// it. Close is idempotent and always returns nil.
func (c *Connector) Close() error {
	c.closed.Store(true)
	c.r.probes.close()
	return nil
}

// String describes the Connector without any password or token, e.g.
// connector.Connector(host=db.example.com port=5432 user=app database=app
// sslmode=verify-full password=token source *lakebasecred.Source).
func (c *Connector) String() string {
	if c == nil || c.r == nil {
		return "connector.Connector(nil)"
	}
	return "connector.Connector(" + c.r.desc + ")"
}

// GoString is String, so that %#v shows no secret either.
func (c *Connector) GoString() string { return c.String() }
