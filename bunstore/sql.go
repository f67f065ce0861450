package bunstore

import (
	"strings"

	"github.com/uptrace/bun/dialect"
)

// statements are the SQL texts of one Store, built once by New with its
// quoted table names.
type statements struct {
	// add appends a batch. PostgreSQL: the whole call, one statement (args:
	// session id, text[] of items). SQLite: the session upsert, followed in
	// the same transaction by addValues with one "(?, ?)" per item, in
	// chunks.
	add       query
	addValues query

	// getAll reads every item oldest first (args: session id).
	getAll query
	// getLatest reads the newest items first (args: session id, limit);
	// getBefore continues it below a (created_at, id) key (args: session
	// id, created_at, id, limit). They return id, created_at as a key and
	// message_data.
	getLatest query
	getBefore query

	// pop deletes the newest item and returns its id and message_data
	// (args: session id).
	pop query

	// clear removes the items and the session row (args: session id, twice
	// on PostgreSQL). SQLite: clear deletes the items and clearSession the
	// row, in one transaction.
	clear        query
	clearSession query

	// list reads sessions newest first (args: limit); listAfter continues
	// below an (updated_at, session_id) key (args: updated_at, session id,
	// limit). They return session_id, created_at, updated_at as instants,
	// and updated_at as a key.
	list      query
	listAfter query
}

func buildStatements(d dialect.Name, n tableNames) statements {
	names := strings.NewReplacer("{S}", n.sessions, "{M}", n.messages)
	pg := d == dialect.PG
	r := replacer{names, pg}
	if d == dialect.PG {
		return statements{
			// The upsert locks the session row until commit, so concurrent
			// batches of one session run one after the other. updated_at
			// and created_at are read from the clock after that lock is
			// held (the DO UPDATE runs once the row is locked; t reads s),
			// not at the transaction's start (CURRENT_TIMESTAMP): a batch
			// that waited gets later times than the one it waited for, and
			// later ids, and ListSessions puts its session before those
			// updated while it waited. CAST to timestamp converts to the
			// connection's TimeZone, as the columns' CURRENT_TIMESTAMP
			// default does.
			add: r.Replace(`WITH s AS (` +
				`INSERT INTO {S} AS s (session_id) VALUES (?) ` +
				`ON CONFLICT (session_id) DO UPDATE SET updated_at = CAST(clock_timestamp() AS timestamp) ` +
				`RETURNING s.session_id), ` +
				`t AS MATERIALIZED (SELECT s.session_id, CAST(clock_timestamp() AS timestamp) AS created_at FROM s) ` +
				`INSERT INTO {M} (session_id, message_data, created_at) ` +
				`SELECT t.session_id, i.message_data, t.created_at ` +
				`FROM t CROSS JOIN unnest(CAST(? AS text[])) WITH ORDINALITY AS i(message_data, n) ` +
				`ORDER BY i.n`),
			getAll: r.Replace(`SELECT id, message_data FROM {M} ` +
				`WHERE session_id = ? ORDER BY created_at, id`),
			getLatest: r.Replace(`SELECT id, created_at, message_data FROM {M} ` +
				`WHERE session_id = ? ORDER BY created_at DESC, id DESC LIMIT ?`),
			getBefore: r.Replace(`SELECT id, created_at, message_data FROM {M} ` +
				`WHERE session_id = ? AND (created_at, id) < (CAST(? AS timestamp), ?) ` +
				`ORDER BY created_at DESC, id DESC LIMIT ?`),
			// SKIP LOCKED: concurrent pops each take a different row
			// instead of waiting for one another and finding it gone.
			pop: r.Replace(`DELETE FROM {M} WHERE id = (` +
				`SELECT id FROM {M} WHERE session_id = ? ` +
				`ORDER BY created_at DESC, id DESC LIMIT 1 FOR UPDATE SKIP LOCKED) ` +
				`RETURNING id, message_data`),
			clear: r.Replace(`WITH m AS (DELETE FROM {M} WHERE session_id = ?) ` +
				`DELETE FROM {S} WHERE session_id = ?`),
			list: r.Replace(`SELECT session_id, CAST(created_at AS timestamptz) AS created, CAST(updated_at AS timestamptz) AS updated, updated_at ` +
				`FROM {S} ORDER BY updated_at DESC, session_id DESC LIMIT ?`),
			listAfter: r.Replace(`SELECT session_id, CAST(created_at AS timestamptz) AS created, CAST(updated_at AS timestamptz) AS updated, updated_at ` +
				`FROM {S} WHERE (updated_at, session_id) < (CAST(? AS timestamp), ?) ` +
				`ORDER BY updated_at DESC, session_id DESC LIMIT ?`),
		}
	}
	// SQLite: CURRENT_TIMESTAMP is UTC text, the same for every row of one
	// statement. Writers take the database's write lock one at a time, so
	// ids follow commit order.
	return statements{
		add: r.Replace(`INSERT INTO {S} (session_id) VALUES (?) ` +
			`ON CONFLICT (session_id) DO UPDATE SET updated_at = CURRENT_TIMESTAMP`),
		addValues: r.Replace(`INSERT INTO {M} (session_id, message_data) VALUES `),
		getAll: r.Replace(`SELECT id, message_data FROM {M} ` +
			`WHERE session_id = ? ORDER BY created_at, id`),
		getLatest: r.Replace(`SELECT id, CAST(created_at AS TEXT), message_data FROM {M} ` +
			`WHERE session_id = ? ORDER BY created_at DESC, id DESC LIMIT ?`),
		getBefore: r.Replace(`SELECT id, CAST(created_at AS TEXT), message_data FROM {M} ` +
			`WHERE session_id = ? AND (created_at, id) < (?, ?) ` +
			`ORDER BY created_at DESC, id DESC LIMIT ?`),
		pop: r.Replace(`DELETE FROM {M} WHERE id = (` +
			`SELECT id FROM {M} WHERE session_id = ? ` +
			`ORDER BY created_at DESC, id DESC LIMIT 1) ` +
			`RETURNING id, message_data`),
		clear:        r.Replace(`DELETE FROM {M} WHERE session_id = ?`),
		clearSession: r.Replace(`DELETE FROM {S} WHERE session_id = ?`),
		list: r.Replace(`SELECT session_id, CAST(created_at AS TEXT) AS created, CAST(updated_at AS TEXT) AS updated, CAST(updated_at AS TEXT) AS updated_key ` +
			`FROM {S} ORDER BY updated_at DESC, session_id DESC LIMIT ?`),
		listAfter: r.Replace(`SELECT session_id, CAST(created_at AS TEXT) AS created, CAST(updated_at AS TEXT) AS updated, CAST(updated_at AS TEXT) AS updated_key ` +
			`FROM {S} WHERE (updated_at, session_id) < (?, ?) ` +
			`ORDER BY updated_at DESC, session_id DESC LIMIT ?`),
	}
}

type replacer struct {
	names *strings.Replacer
	pg    bool
}

// Replace fills in the table names and returns the query in both
// placeholder styles.
func (r replacer) Replace(q string) query {
	return newQuery(r.pg, r.names.Replace(q))
}
