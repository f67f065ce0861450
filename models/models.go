package models

import (
	"time"

	"github.com/uptrace/bun"
)

// Default table names, the ones the Python SQLAlchemySession uses.
const (
	SessionsTable = "agent_sessions"
	MessagesTable = "agent_messages"
)

// AgentSession is one row of agent_sessions: a conversation, keyed by its
// session id.
//
// CreatedAt and UpdatedAt are TIMESTAMP WITHOUT TIME ZONE columns filled by
// the database with CURRENT_TIMESTAMP: on PostgreSQL they hold the wall-clock
// time of the writing connection's TimeZone setting, on SQLite the UTC time.
// Scanned into a time.Time they keep those wall-clock digits in the UTC
// location, so on a PostgreSQL server that does not run in UTC they are not
// the right instants. bunstore.Store.ListSessions returns them as instants.
type AgentSession struct {
	bun.BaseModel `bun:"table:agent_sessions,alias:s"`

	// SessionID is the primary key.
	SessionID string `bun:"session_id,pk,type:varchar"`
	// CreatedAt is when the session's first item was added.
	CreatedAt time.Time `bun:"created_at,notnull,nullzero,type:timestamp,default:current_timestamp"`
	// UpdatedAt is when items were last added to the session.
	UpdatedAt time.Time `bun:"updated_at,notnull,nullzero,type:timestamp,default:current_timestamp"`
}

// AgentMessage is one row of agent_messages: one item of a session's
// history, stored as compact JSON text.
//
// A session's items are ordered by (CreatedAt, ID). CreatedAt is written by
// the database as for AgentSession and has the same time-zone caveat.
type AgentMessage struct {
	bun.BaseModel `bun:"table:agent_messages,alias:m"`

	// ID is the primary key, assigned by the database in insertion order.
	ID int64 `bun:"id,pk,autoincrement"`
	// SessionID references AgentSession.SessionID (ON DELETE CASCADE).
	SessionID string `bun:"session_id,notnull,type:varchar"`
	// MessageData is the item: one JSON object as compact text.
	MessageData string `bun:"message_data,notnull,type:text"`
	// CreatedAt is when the item's batch was added.
	CreatedAt time.Time `bun:"created_at,notnull,nullzero,type:timestamp,default:current_timestamp"`
}
