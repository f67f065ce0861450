// Package connector opens database/sql pools on PostgreSQL whose password is
// a short-lived token, such as Databricks Lakebase, or a static password.
//
// A Connector is a database/sql driver.Connector built on the pgx driver
// (pgx/v5/stdlib). Every new connection asks its TokenSource for the current
// token and logs in with it, so a pool keeps working while tokens rotate: a
// connection that is open stays open (the server checks a password only at
// login), and the next one logs in with the next token. When the database
// rejects a token, the Connector drops it from the source and tries once more
// with a fresh one. It waits out short outages (a restart, a failover, a
// wake-up), discards connections that can no longer be trusted, and spreads
// the renewal of connections over time.
//
// # Lakebase
//
// ForLakebase takes the host, user and database from a lakebasecred.Source,
// which mints and caches the tokens:
//
//	w, err := databricks.NewWorkspaceClient() // DATABRICKS_HOST, DATABRICKS_TOKEN, ...
//	if err != nil {
//		return err
//	}
//	src, err := lakebasecred.New(ctx, w, lakebasecred.Target{Instance: "my-instance"})
//	if err != nil {
//		return err
//	}
//	defer src.Close() // after db.Close
//	c, err := connector.ForLakebase(src,
//		connector.WithSchema("agents"),        // optional: search_path agents, public
//		connector.WithSSLMode("verify-full"), // optional: also check the certificate
//	)
//	if err != nil {
//		return err // *connector.ConfigError says what to set
//	}
//	db := connector.OpenDB(c)
//	defer db.Close()
//
// The default sslmode is require, as Lakebase documents; the token is never
// sent without TLS.
//
// # A token source of your own
//
// Any type with Token and Invalidate is a TokenSource (see its contract): a
// cloud IAM token, a secret manager, a vault lease.
//
//	c, err := connector.New(connector.Config{
//		Host:        "db.internal.example.com",
//		User:        "app",
//		Database:    "app",
//		Tokens:      myTokens, // Token(ctx) (string, error); Invalidate()
//		SSLMode:     "verify-full",
//		SSLRootCert: "/etc/ssl/db-ca.pem",
//	})
//	if err != nil {
//		return err
//	}
//	db := connector.OpenDB(c)
//	defer db.Close()
//
// Token is called once per new connection, so it should return a cached
// token in well under a millisecond.
//
// # A local PostgreSQL with a static password
//
// A DSN, URL or keyword/value, as psql takes it:
//
//	c, err := connector.New(connector.Config{
//		DSN: "postgres://app:secret@localhost:5432/app?sslmode=disable",
//	})
//	if err != nil {
//		return err
//	}
//	db := connector.OpenDB(c)
//	defer db.Close()
//
// or the same fields as with a token source, with Password instead of Tokens
// (SSLMode: "disable" for a server without TLS).
//
// # TLS
//
// A token is only ever sent over TLS: with Tokens, SSLMode must be require,
// verify-ca or verify-full (verify-full when empty; ForLakebase uses
// require), or TLSConfig set. disable, allow and prefer, whose connections
// may be plaintext, are refused by New. A static password may go without
// TLS. Config.TLSConfig (WithTLSConfig) replaces the sslmode settings with a
// tls.Config of your own.
//
// With Host, User and Database set, nothing else is read: the PG* environment
// variables, ~/.pgpass and ~/.postgresql are ignored. A DSN is parsed as
// libpq does, environment included.
//
// # Schema
//
// Config.Schema (WithSchema) makes every new connection's search_path that
// schema, then public. It is sent as a startup parameter of the connection,
// not as a SET statement: the server applies it before the first query, it
// costs no round trip, RESET ALL and DISCARD ALL return to it, and no
// statement is ever built from it. The name must be a plain identifier
// (letters, digits, underscores, dollar signs); it is quoted, so its case is
// kept.
//
// # Pool settings
//
// OpenDB is sql.OpenDB plus settings for a service: connections retired
// after 40.5 to 45 minutes (see Connection lifetimes), or after 10 idle
// minutes, at most 20 open and 10 idle. Change them on the *sql.DB:
//
//	db := connector.OpenDB(c)
//	db.SetMaxOpenConns(50)
//	db.SetMaxIdleConns(25)
//
// Each connection attempt (token, dial, TLS handshake, login) is bounded by
// Config.ConnectTimeout, 15 seconds by default, also when the caller's
// context has no deadline.
//
// # Outages and retries
//
// A database that restarts for an update, wakes from scale-to-zero or fails
// over is unreachable for a moment. Connect waits such moments out: when the
// dial fails, the connection is reset or ends during the login, or the
// server answers SQLSTATE 57P03 (cannot connect now: starting up or
// shutting down), Connect tries again with backoff, about 50 ms doubling to
// 2 s with jitter, until the caller's context ends or Config.MaxConnectWait
// (WithMaxConnectWait) has passed since it was called, 30 seconds by
// default:
//
//	c, err := connector.ForLakebase(src,
//		connector.WithMaxConnectWait(10*time.Second), // a negative value: one attempt, no waiting
//	)
//
// The Connects that wait at the same time share the attempts: one probe per
// backoff step for all of them, whether 8 or 80 wait, and a Connect that
// starts during a known outage joins the wait without dialing. When a probe
// gets through, one waiter takes its connection and the others dial at
// once. A rejected login (28P01, 28000) is not an outage: it keeps its one
// retry with a fresh token. A wait that ends unsuccessfully returns an error
// that says how long it waited and wraps the last cause (errors.As reaches
// the *pgconn.PgError or the network error; errors.Is the context's error
// when the context ended the wait). Close ends the waits with ErrClosed.
//
// A connection that can no longer be trusted is discarded: database/sql
// closes it and takes or opens another the next time it would hand it out,
// so that no later call fails on it. That is a connection that received
// 25006 (read-only transaction: after a failover, it reached a server that
// is a standby now), 57P01 or 57P02 (administrator or crash shutdown, a
// terminated backend), 57P05 (idle-session timeout) or an error of class 08
// (connection exception); and one that the server closed, or sent an
// unasked message to (as a terminated backend does), while it sat idle in
// the pool, which a non-blocking look at its socket finds before it is
// handed out. The Connector does this with pgx's hooks: OnPgError, and
// stdlib's ShouldPing and ResetSession, whose driver.ErrBadConn makes
// database/sql replace the connection without failing the caller.
//
// What the Connector cannot know is a statement's outcome when the
// connection breaks while it runs: the caller gets the error. Retrying a
// statement is for the layer that knows whether it is idempotent or did not
// commit (package bunstore does).
//
// # Transaction poolers
//
// A transaction pooler, such as the PgBouncer of a Lakebase autoscaling
// endpoint, gives each transaction whichever server connection is free.
// pgx's default query exec mode prepares statements on the server
// connection and reuses them by name, which breaks there (42P05, prepared
// statement already exists, or 26000, does not exist). Set
// Config.QueryExecMode (WithQueryExecMode) to pgx.QueryExecModeExec, which
// sends each statement with its arguments unnamed, or use PgBouncer 1.21 or
// later with max_prepared_statements set. Avoid
// pgx.QueryExecModeSimpleProtocol: pgx v5 reports a connection that broke
// after a simple-protocol statement was sent as driver.ErrBadConn, and
// database/sql then runs the statement again on another connection, so a
// write can happen twice (package bunstore guards its own writes against
// this; your statements are not guarded).
//
//	c, err := connector.New(connector.Config{
//		Host:          "pooler.internal.example.com",
//		Port:          6432,
//		User:          "app",
//		Database:      "app",
//		Tokens:        myTokens,
//		QueryExecMode: pgx.QueryExecModeExec,
//	})
//
// For Lakebase, WithPooledHost connects to the endpoint's pooled host
// (lakebasecred.Source.PooledHost) with that exec mode:
//
//	c, err := connector.ForLakebase(src, connector.WithPooledHost())
//	if err != nil {
//		return err // *connector.ConfigError when the endpoint has no pooled host
//	}
//
// The pooler may not accept OAuth roles (a workspace user's token as the
// password): if its logins are refused, connect to the host itself. Through
// a pooler, session state does not carry over between transactions: SET,
// advisory locks, temporary tables, LISTEN, db.Prepare. Config.Schema is
// sent as a startup parameter, which PgBouncer refuses unless it is in its
// ignore_startup_parameters (and then ignores it): through a pooler, give
// the role a search_path instead (ALTER ROLE ... SET search_path).
//
// # Connection lifetimes
//
// Connections are renewed: each logs in again with the token current then,
// and reaches the new server after a failover or a resize. Each connection
// retires at a random moment in the last tenth of Config.ConnMaxLifetime
// (WithConnMaxLifetime; DefaultConnMaxLifetime, 45 minutes, when 0): between
// 40.5 and 45 minutes after it logged in, never later. So the connections
// opened together, by a deploy or a wake-up, are not all replaced in the
// same second: their logins are spread over 4.5 minutes. A retired
// connection is closed when database/sql would next hand it out, and
// replaced without failing the caller. OpenDB also sets the lifetime as the
// pool's SetConnMaxLifetime, the upper bound; a shorter
// db.SetConnMaxLifetime would retire connections at exactly that age, all
// at once, so change the lifetime on the Config instead. A negative
// ConnMaxLifetime keeps connections regardless of age.
//
// # Errors
//
// New and ForLakebase validate a private copy of the configuration and
// return every problem at once in a *ConfigError, each saying what to set;
// retrying cannot help. New does not connect.
//
// Connect returns the token source's error wrapped (for a Lakebase source, a
// retryable *lakebasecred.RefreshError), or pgx's connection error wrapped,
// which names the user and the database; after waiting out an outage, an
// error that says how long it waited and wraps the last one (see Outages
// and retries). IsAuthError tells a rejected login (SQLSTATE 28P01 or
// 28000) apart, and errors.As reaches the *pgconn.PgError. No error, String,
// GoString, span or metric of this package ever contains a password or
// token.
//
// # Telemetry
//
// Each Connect is one OpenTelemetry span, lakesession.connect, of kind
// client, a child of the span in Connect's context. database/sql passes the
// context of the call that needs a new connection, so the span sits under
// the caller's: under lakesession.GetItems, lakesession.AddItems, ... for a
// call of package bunstore. (A connection that database/sql opens in the
// background, for callers waiting on a full pool, has a span with no
// parent.) The token source gets the span in its context: a mint of
// package lakebasecred links to the Connect that needed it. Attributes:
//
//   - db.system.name postgresql; server.address and server.port, the
//     configured host and port (the first, for a DSN with several hosts);
//     db.namespace, the database.
//   - lakesession.connect.attempts: the connection attempts (token, dial,
//     TLS handshake, login) that this Connect made itself: 1 when the first
//     one connected, 2 after a rejected token, more after an outage. The
//     Connects that wait out an outage share the probes: those are not
//     theirs, and a Connect that joined a wait and took the connection of
//     a probe made 0.
//   - lakesession.connect.probes, only when the Connect waited out an
//     outage: the shared probes that finished while it waited, the one
//     that got through included (the Connects that waited together see
//     the same ones).
//   - lakesession.connect.token_replaced, only when the database rejected
//     a token: true when Connect logged in again with a different token from
//     the source, false when the source handed out the rejected one again.
//   - On failure: status Error, with the error's text (which, like every
//     error of this package, holds no password or token), error.type, and
//     db.response.status_code when the server answered.
//
// error.type is the SQLSTATE when the server answered (28P01, 3D000,
// 57P03, ...), else connect_wait_exceeded (an outage outlasted
// MaxConnectWait), context.DeadlineExceeded or context.Canceled (the
// caller's context ended), connector.ErrClosed, token_source (the
// TokenSource failed), timeout (an attempt outlasted ConnectTimeout),
// refused, reset, closed (the server closed the connection during the
// login), unreachable, dns, tls (the handshake or the certificate failed),
// or _OTHER.
//
// Metrics, each with db.system.name, server.address, server.port and
// db.namespace, and error.type on failure:
//
//   - lakesession.connect.duration, a histogram in seconds (buckets from
//     1 ms to 60 s): each Connect, waits included.
//   - lakesession.connect.attempts, a counter ({attempt}): every connection
//     attempt once, with lakesession.connect.attempt.kind connect (made by
//     a Connect for itself) or probe (made for all the Connects that wait
//     out an outage). Its sum is the logins the server saw: during an
//     outage, 80 waiting Connects add their 80 first attempts, then one
//     probe per backoff step.
//   - lakesession.connect.auth_rejected, a counter ({login}): logins the
//     database rejected (error.type 28P01 or 28000), the shared probes'
//     included. With a token source a Connect's own rejected login is
//     followed by one attempt with a fresh token; a Connect that
//     failed on it shows in lakesession.connect.duration with that
//     error.type.
//
// They go to Config.TracerProvider and Config.MeterProvider
// (WithTracerProvider, WithMeterProvider), by default the global providers
// as they are when New runs, which forward to an SDK the application
// installs, before or after: until then nothing is recorded, and each new
// connection costs a non-recording span, about a microsecond and three
// small allocations next to the milliseconds of a login. Queries on
// open connections cost nothing.
//
// For a span per statement, give pgx a tracer with Config.QueryTracer
// (WithQueryTracer), such as otelpgx's (github.com/exaring/otelpgx):
//
//	c, err := connector.ForLakebase(src, connector.WithQueryTracer(otelpgx.NewTracer()))
//
// It is pgx.ConnConfig.Tracer: it sees every statement with the context of
// the call that runs it, so its spans nest under the caller's (the store's
// lakesession.<Method>), and pgx calls its ConnectTracer, PrepareTracer,
// BatchTracer and CopyFromTracer methods when it has them (a connect span
// of its own nests under lakesession.connect). Combine tracers with pgx's
// multitracer package. Such a tracer sees what a span must not hold: the
// statements' arguments, the items' content among them, and, in a
// ConnectTracer, the connection's configuration, whose Password is the
// token. Record the statement text (the store's never holds content) and
// neither of those: otelpgx records arguments only with
// WithIncludeQueryParameters, which is for a database without user
// content.
//
// # What a Connector owns
//
// One goroutine, only while Connects wait out an outage: it probes the
// server and ends when the server answers or nobody waits any more. The
// connections belong to the *sql.DB, which closes them in (*sql.DB).Close.
// That Close also calls the Connector's Close, which stops the probing and
// after which Connect returns ErrClosed, so give each *sql.DB a Connector of
// its own. The TokenSource is not the Connector's: close it yourself
// (lakebasecred.Source.Close), after the *sql.DB.
//
// # Testing
//
// Package lakebasecred/lakebasetest is a fake Databricks control plane whose
// tokens a test can make the password of a role on a local PostgreSQL, so the
// Lakebase path, ForLakebase included, runs offline end to end. For a
// TokenSource of your own, a fake with a fixed token and a counter is enough:
// with db.SetMaxIdleConns(0), every query opens a connection and calls Token
// once.
package connector
