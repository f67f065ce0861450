package connector

import (
	"database/sql"
	"time"
)

// Pool settings OpenDB applies. Change them on the returned *sql.DB with its
// Set methods.
const (
	// DefaultConnMaxLifetime is the lifetime of a connection when
	// Config.ConnMaxLifetime is 0: each is retired at a random moment
	// between 40.5 and 45 minutes after it was opened, so that connections
	// are renewed, each logging in with the token current then, and move
	// to the new server after a failover or a resize, without all those
	// opened together being replaced in the same second.
	DefaultConnMaxLifetime = 45 * time.Minute
	// DefaultConnMaxIdleTime closes a connection idle for 10 minutes.
	DefaultConnMaxIdleTime = 10 * time.Minute
	// DefaultMaxOpenConns caps the connections of one pool, so that a burst
	// of requests waits for a connection rather than exhausting the
	// server's connection limit.
	DefaultMaxOpenConns = 20
	// DefaultMaxIdleConns keeps up to 10 connections open between requests
	// (database/sql keeps 2 by default), so that a busy service does not
	// pay a TLS handshake and a login for most queries.
	DefaultMaxIdleConns = 10
)

// OpenDB returns a *sql.DB on c with the pool settings above; the
// connection lifetime is c's (Config.ConnMaxLifetime, DefaultConnMaxLifetime
// by default), set as the pool's SetConnMaxLifetime, the upper bound of the
// Connector's jittered retirement. It does not connect; the first query or
// Ping does. Closing the *sql.DB closes c.
//
// To change a setting, call the *sql.DB's method afterwards:
//
//	db := connector.OpenDB(c)
//	db.SetMaxOpenConns(50)
//
// except the lifetime: set Config.ConnMaxLifetime (WithConnMaxLifetime)
// instead, since a shorter db.SetConnMaxLifetime retires connections at
// exactly that age, all those opened together at once.
func OpenDB(c *Connector) *sql.DB {
	db := sql.OpenDB(c)
	lifetime := c.r.lifetime
	if lifetime < 0 {
		lifetime = 0 // database/sql: no limit
	}
	db.SetConnMaxLifetime(lifetime)
	db.SetConnMaxIdleTime(DefaultConnMaxIdleTime)
	db.SetMaxOpenConns(DefaultMaxOpenConns)
	db.SetMaxIdleConns(DefaultMaxIdleConns)
	return db
}
