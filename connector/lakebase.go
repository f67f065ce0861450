package connector

import (
	"crypto/tls"
	"time"

	"github.com/lakesession/lakesession/lakebasecred"
)

// LakebaseSSLMode is the sslmode ForLakebase uses unless WithSSLMode,
// WithSSLRootCert or WithTLSConfig says otherwise: TLS, as Lakebase
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

// ForLakebase returns a Connector that logs in to the Lakebase database of
// src as src.User(), with src's current token as the password of every new
// connection. Host, User and Database come from src; the options set the
// rest. The Connector does not own src: close src, if at all, after the
// *sql.DB.
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
	return New(cfg)
}
