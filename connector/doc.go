// Package connector opens database/sql pools on PostgreSQL whose password is
// a short-lived token, such as Databricks Lakebase, or a static password.
//
// A Connector is a database/sql driver.Connector built on the pgx driver
// (pgx/v5/stdlib). Every new connection asks its TokenSource for the current
// token and logs in with it, so a pool keeps working while tokens rotate: a
// connection that is open stays open (the server checks a password only at
// login), and the next one logs in with the next token. When the database
// rejects a token, the Connector drops it from the source and tries once more
// with a fresh one.
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
// after 45 minutes (DefaultConnMaxLifetime), or after 10 idle minutes, at
// most 20 open and 10 idle. Change them on the *sql.DB:
//
//	db := connector.OpenDB(c)
//	db.SetMaxOpenConns(50)
//	db.SetMaxIdleConns(25)
//
// Each connection attempt (token, dial, TLS handshake, login) is bounded by
// Config.ConnectTimeout, 15 seconds by default, also when the caller's
// context has no deadline.
//
// # Errors
//
// New and ForLakebase validate a private copy of the configuration and
// return every problem at once in a *ConfigError, each saying what to set;
// retrying cannot help. New does not connect.
//
// Connect returns the token source's error wrapped (for a Lakebase source, a
// retryable *lakebasecred.RefreshError), or pgx's connection error wrapped,
// which names the user and the database; IsAuthError tells a rejected login
// (SQLSTATE 28P01 or 28000) apart, and errors.As reaches the
// *pgconn.PgError. No error, String or GoString of this package ever
// contains a password or token.
//
// # What a Connector owns
//
// Nothing that needs stopping: it starts no goroutine, and the connections
// belong to the *sql.DB, which closes them in (*sql.DB).Close. That Close
// also calls the Connector's Close, after which Connect returns ErrClosed,
// so give each *sql.DB a Connector of its own. The TokenSource is not the
// Connector's: close it yourself (lakebasecred.Source.Close), after the
// *sql.DB.
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
