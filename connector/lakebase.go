package connector

import (
	"crypto/tls"
	"time"

	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/lakesession/lakesession/lakebasecred"
)

// LakebaseSSLMode is the sslmode ForLakebase uses unless WithSSLMode or
// WithTLSConfig says otherwise: TLS, as Lakebase
// requires and documents. WithSSLMode("verify-full") also checks the
// server's certificate against the system roots and its host name.
const LakebaseSSLMode = "require"

// LakebaseApplicationName is the application_name ForLakebase sets unless
// WithApplicationName gives another.
const LakebaseApplicationName = "lakesession"

// Option changes the Config that ForLakebase builds.
type Option func(*Config)

// WithPort sets the port; the default is 5432.
func WithPort(port int) Option { return func(c *Config) { c.Port = port } }

// WithSchema makes every new connection's search_path schema, then public
// (see Config.Schema).
func WithSchema(schema string) Option { return func(c *Config) { c.Schema = schema } }

// WithTLSConfig sets the TLS configuration of every connection, instead of
// an sslmode (see Config.TLSConfig).
func WithTLSConfig(tc *tls.Config) Option { return func(c *Config) { c.TLSConfig = tc } }

// WithSSLMode sets the sslmode: require (the default), verify-ca or
// verify-full. Modes that allow plaintext are refused, since a token is the
// password.
func WithSSLMode(mode string) Option { return func(c *Config) { c.SSLMode = mode } }

// WithSSLRootCert sets the PEM file of the certificates that sign the
// server's certificate, or "system" for the system roots (see
// Config.SSLRootCert). With the default sslmode require, a root file makes
// the server's certificate checked, as verify-ca does.
func WithSSLRootCert(path string) Option { return func(c *Config) { c.SSLRootCert = path } }

// WithConnectTimeout bounds each connection attempt; the default is
// DefaultConnectTimeout (see Config.ConnectTimeout).
func WithConnectTimeout(d time.Duration) Option {
	return func(c *Config) { c.ConnectTimeout = d }
}

// WithApplicationName sets the application_name of every connection; the
// default is LakebaseApplicationName.
func WithApplicationName(name string) Option {
	return func(c *Config) { c.ApplicationName = name }
}

// WithMaxConnectWait sets how long Connect waits out an outage; the default
// is DefaultMaxConnectWait, and a negative d turns the waiting off (see
// Config.MaxConnectWait).
func WithMaxConnectWait(d time.Duration) Option {
	return func(c *Config) { c.MaxConnectWait = d }
}

// WithQueryExecMode sets the pgx query exec mode of every connection (see
// Config.QueryExecMode): pgx.QueryExecModeExec for a transaction pooler.
func WithQueryExecMode(m pgx.QueryExecMode) Option {
	return func(c *Config) { c.QueryExecMode = m }
}

// WithConnMaxLifetime sets how long a connection may live, each one retired
// at a random moment in the last tenth of it; the default is
// DefaultConnMaxLifetime (see Config.ConnMaxLifetime).
func WithConnMaxLifetime(d time.Duration) Option {
	return func(c *Config) { c.ConnMaxLifetime = d }
}

// WithTracerProvider sets where the span of each Connect
// (lakesession.connect) goes; the default, and what a nil tp means, is
// otel.GetTracerProvider() as it is when ForLakebase runs (see
// Config.TracerProvider).
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(c *Config) { c.TracerProvider = tp }
}

// WithMeterProvider sets where the Connector's metrics go; the default, and
// what a nil mp means, is otel.GetMeterProvider() as it is when
// ForLakebase runs (see Config.MeterProvider).
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(c *Config) { c.MeterProvider = mp }
}

// WithQueryTracer sets the pgx tracer of every connection, such as
// otelpgx's, for a span per statement (see Config.QueryTracer).
func WithQueryTracer(qt pgx.QueryTracer) Option {
	return func(c *Config) { c.QueryTracer = qt }
}

// WithPooledHost makes ForLakebase connect to the endpoint's pooled host
// (lakebasecred.Source.PooledHost: the PgBouncer in transaction mode in
// front of the endpoint) instead of its host, with the query exec mode
// pgx.QueryExecModeExec unless WithQueryExecMode sets another. A Source
// without a pooled host makes ForLakebase return a *ConfigError.
//
// The pooler may not accept every role: OAuth roles (a workspace user's
// token as the password) may be refused by it, in which case connect to
// the host itself. Each statement runs in a transaction of its own on
// whichever server connection is free, so session state (SET, advisory
// locks, temporary tables, LISTEN, prepared statements) does not carry
// over between statements; a transaction keeps its server connection.
func WithPooledHost() Option {
	return func(c *Config) { c.pooled = true }
}

// ForLakebase returns a Connector that logs in to the Lakebase database of
// src as src.User(), with src's current token as the password of every new
// connection. Host, User and Database come from src; the options set the
// rest (WithPooledHost takes the host from src too). The Connector does not
// own src: close src, if at all, after the *sql.DB.
func ForLakebase(src *lakebasecred.Source, opts ...Option) (*Connector, error) {
	if src == nil {
		return nil, &ConfigError{Problems: []string{"the Source is nil: pass the *lakebasecred.Source that lakebasecred.New returned"}}
	}
	cfg := Config{
		Host:            src.Host(),
		User:            src.User(),
		Database:        src.Database(),
		Tokens:          src,
		ApplicationName: LakebaseApplicationName,
	}
	for _, opt := range opts {
		if opt != nil {
			opt(&cfg)
		}
	}
	if cfg.SSLMode == "" && cfg.TLSConfig == nil {
		cfg.SSLMode = LakebaseSSLMode
	}
	if cfg.pooled {
		host := src.PooledHost()
		if host == "" {
			return nil, &ConfigError{Problems: []string{"WithPooledHost is set but the Lakebase endpoint has no pooled host (read_write_pooled_host): connect to its host without WithPooledHost, or enable the endpoint's connection pooler"}}
		}
		cfg.Host = host
		if cfg.QueryExecMode == 0 {
			cfg.QueryExecMode = pgx.QueryExecModeExec
		}
	}
	return New(cfg)
}
