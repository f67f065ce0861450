package main

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// shape is the layout of one pair of tables: sessions of items items,
// interleave of them active at a time, plus one session of big items whose
// rows are spread evenly over the whole table.
//
// Row t (0 <= t < rows) of the messages table, in heap and id order, is
// either an item of the big session (every period-th row) or item u of
// the others, where u counts those rows. Item u belongs to block u /
// (interleave*items); within a block the interleave sessions take turns:
// session block*interleave + u%interleave gets its item number
// (u % (interleave*items)) / interleave.
type shape struct {
	sessions, items, interleave, big int
	// span is the time the rows cover, ending now.
	span time.Duration
}

func (s shape) check() error {
	switch {
	case s.sessions <= 0 || s.items <= 0 || s.interleave <= 0:
		return fmt.Errorf("sessions, items and interleave must be positive")
	case s.sessions%s.interleave != 0:
		return fmt.Errorf("sessions (%d) must be a multiple of interleave (%d)", s.sessions, s.interleave)
	case s.big < 0 || s.big > 0 && (s.sessions*s.items)%s.big != 0:
		return fmt.Errorf("big (%d) must divide sessions*items (%d)", s.big, s.sessions*s.items)
	}
	return nil
}

// rows is the number of items of all sessions.
func (s shape) rows() int64 { return int64(s.sessions)*int64(s.items) + int64(s.big) }

// period is the distance between two rows of the big session, which is at
// rows period-1, 2*period-1, ...; with no big session, a period longer
// than the table.
func (s shape) period() int64 {
	if s.big == 0 {
		return s.rows() + 1
	}
	return int64(s.sessions*s.items)/int64(s.big) + 1
}

// row returns the row of item u of the ordinary sessions.
func (s shape) row(u int64) int64 {
	if s.big == 0 {
		return u
	}
	return u + u/(s.period()-1)
}

// itemOf returns the session index (-1 for the big session) and the item
// number of row t.
func (s shape) itemOf(t int64) (session int, item int64) {
	p := s.period()
	if t%p == p-1 {
		return -1, t / p
	}
	u := t - t/p
	per := int64(s.interleave * s.items)
	return int(u/per)*s.interleave + int(u%int64(s.interleave)), (u % per) / int64(s.interleave)
}

// firstLast returns the rows of the first and last items of session i.
func (s shape) firstLast(i int) (first, last int64) {
	per := int64(s.interleave * s.items)
	base := int64(i/s.interleave)*per + int64(i%s.interleave)
	return s.row(base), s.row(base + int64(s.items-1)*int64(s.interleave))
}

// step is the time between two rows.
func (s shape) step() time.Duration { return s.span / time.Duration(s.rows()) }

// sessionID is the id of session i; bigID that of the big session. Ids
// sort as their numbers.
func sessionID(i int) string { return fmt.Sprintf("sess-%07d", i) }

const bigID = "sess-big"

// tables are the quoted names of one pair of tables.
type tables struct{ sessions, messages string }

// execer is a *sql.DB or a *sql.Conn.
type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// load fills the tables, which CreateTables made and which are empty, with
// the shape, in chunks of rows, then rebuilds the messages table's
// secondary indexes and foreign key, which it drops first so that the
// load is one sequential write, and vacuums both tables. It returns the
// time of row 0, as the server's local timestamp text.
//
// It runs on one connection with synchronous_commit on: VACUUM marks a
// page all-visible only when the commit of its rows is flushed, which an
// asynchronous commit (a test server's setting) may not be yet.
func load(ctx context.Context, pool *sql.DB, t tables, s shape, logf func(string, ...any)) (base string, err error) {
	if err := s.check(); err != nil {
		return "", err
	}
	db, err := pool.Conn(ctx)
	if err != nil {
		return "", err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, `SET synchronous_commit = on`); err != nil {
		return "", err
	}
	defer db.ExecContext(context.Background(), `RESET synchronous_commit`)
	return base, loadOn(ctx, db, t, s, logf, &base)
}

func loadOn(ctx context.Context, db execer, t tables, s shape, logf func(string, ...any), basep *string) error {
	var base string // the time of row 0
	if err := db.QueryRowContext(ctx, fmt.Sprintf(`SELECT CAST(LOCALTIMESTAMP - interval '%d microseconds' AS text)`,
		s.step().Microseconds()*s.rows())).Scan(&base); err != nil {
		return err
	}
	*basep = base
	// Save and drop what makes the load slow: the foreign key (a lookup per
	// row) and the messages' secondary indexes (random inserts).
	type def struct{ name, sql string }
	var (
		restore []def
		drop    []string
	)
	rows, err := db.QueryContext(ctx, `SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint
		WHERE conrelid = CAST($1 AS regclass) AND contype = 'f'`, t.messages)
	if err != nil {
		return err
	}
	for rows.Next() {
		var name, d string
		if err := rows.Scan(&name, &d); err != nil {
			rows.Close()
			return err
		}
		drop = append(drop, fmt.Sprintf(`ALTER TABLE %s DROP CONSTRAINT %q`, t.messages, name))
		restore = append(restore, def{name, fmt.Sprintf(`ALTER TABLE %s ADD CONSTRAINT %q %s`, t.messages, name, d)})
	}
	if err := rows.Close(); err != nil {
		return err
	}
	rows, err = db.QueryContext(ctx, `SELECT CAST(indexrelid AS regclass)::text, pg_get_indexdef(indexrelid) FROM pg_index
		WHERE indrelid = CAST($1 AS regclass) AND NOT indisprimary`, t.messages)
	if err != nil {
		return err
	}
	for rows.Next() {
		var name, d string
		if err := rows.Scan(&name, &d); err != nil {
			rows.Close()
			return err
		}
		drop = append(drop, `DROP INDEX `+name)
		restore = append(restore, def{name, d})
	}
	if err := rows.Close(); err != nil {
		return err
	}
	for _, stmt := range drop {
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("%s: %w", stmt, err)
		}
	}

	step := s.step().Microseconds()
	p := s.period()
	per := int64(s.interleave * s.items)
	// The session rows: created at their first item, updated at their last.
	// Session i's first item is item u = (i/K)*K*J + i%K of the ordinary
	// rows, its last u + (J-1)*K; row(u) = u + u/(p-1) with a big session.
	rowOf := func(u string) string {
		if s.big == 0 {
			return u
		}
		return fmt.Sprintf("(%s + (%s) / %d)", u, u, p-1)
	}
	first := fmt.Sprintf("((i / %d) * %d + i %% %d)", s.interleave, per, s.interleave)
	last := fmt.Sprintf("(%s + %d)", first, int64(s.items-1)*int64(s.interleave))
	stmt := fmt.Sprintf(`INSERT INTO %s (session_id, created_at, updated_at)
		SELECT 'sess-' || lpad(CAST(i AS text), 7, '0'),
			CAST($1 AS timestamp) + %s * interval '%d microseconds',
			CAST($1 AS timestamp) + %s * interval '%d microseconds'
		FROM generate_series(0, %d) i`, t.sessions, rowOf(first), step, rowOf(last), step, s.sessions-1)
	if _, err := db.ExecContext(ctx, stmt, base); err != nil {
		return fmt.Errorf("load sessions: %w", err)
	}
	if s.big > 0 {
		if _, err := db.ExecContext(ctx, fmt.Sprintf(`INSERT INTO %s (session_id, created_at, updated_at)
			VALUES ('%s', CAST($1 AS timestamp) + %d * interval '%d microseconds', CAST($1 AS timestamp) + %d * interval '%d microseconds')`,
			t.sessions, bigID, p-1, step, s.rows()-1, step), base); err != nil {
			return fmt.Errorf("load the big session: %w", err)
		}
	}

	// The items, in row order, so that ids and the heap follow time.
	const chunk = 1_000_000
	total := s.rows()
	for lo := int64(0); lo < total; lo += chunk {
		hi := min(lo+chunk, total)
		stmt := fmt.Sprintf(`INSERT INTO %s (session_id, message_data, created_at)
			SELECT CASE WHEN big THEN '%s' ELSE 'sess-' || lpad(CAST((u / %d) * %d + u %% %d AS text), 7, '0') END,
				'{"type":"message","role":"' || CASE WHEN j %% 2 = 0 THEN 'user' ELSE 'assistant' END ||
				'","content":"message ' || j || ' of a conversation about the weather in San Francisco, and what to pack for a week there in March"}',
				CAST($1 AS timestamp) + t * interval '%d microseconds'
			FROM (SELECT t, big, u, CASE WHEN big THEN t / %d ELSE (u %% %d) / %d END AS j
				FROM (SELECT t, t %% %d = %d AS big, t - t / %d AS u FROM generate_series(CAST(%d AS bigint), %d) t) r) x`,
			t.messages, bigID, per, s.interleave, s.interleave, step,
			p, per, s.interleave,
			p, p-1, p, lo, hi-1)
		start := time.Now()
		if _, err := db.ExecContext(ctx, stmt, base); err != nil {
			return fmt.Errorf("load items %d to %d: %w", lo, hi, err)
		}
		logf("loaded %s items of %s into %s (%v)", thousands(hi), thousands(total), t.messages, time.Since(start).Round(time.Millisecond))
	}
	for _, d := range restore {
		start := time.Now()
		if _, err := db.ExecContext(ctx, d.sql); err != nil {
			return fmt.Errorf("%s: %w", d.sql, err)
		}
		logf("built %s (%v)", d.name, time.Since(start).Round(time.Millisecond))
	}
	for _, tbl := range []string{t.sessions, t.messages} {
		start := time.Now()
		if _, err := db.ExecContext(ctx, `VACUUM (ANALYZE) `+tbl); err != nil {
			return err
		}
		logf("vacuumed %s (%v)", tbl, time.Since(start).Round(time.Millisecond))
	}
	return nil
}

// verify checks a few sessions against the shape: their item counts and
// that their items come back in item order.
func verify(ctx context.Context, db *sql.DB, t tables, s shape, sample []int) error {
	for _, i := range sample {
		id, want := sessionID(i), int64(s.items)
		if i < 0 {
			id, want = bigID, int64(s.big)
		}
		var n, bad int64
		err := db.QueryRowContext(ctx, fmt.Sprintf(`SELECT count(*), count(*) FILTER (WHERE n <> CAST(substring(message_data from 'message ([0-9]+) of') AS bigint))
			FROM (SELECT message_data, row_number() OVER (ORDER BY created_at, id) - 1 AS n FROM %s WHERE session_id = $1) x`, t.messages), id).Scan(&n, &bad)
		if err != nil {
			return err
		}
		if n != want || bad != 0 {
			return fmt.Errorf("the load is wrong: session %s has %d items (want %d), %d out of order", id, n, want, bad)
		}
		var ok bool
		err = db.QueryRowContext(ctx, fmt.Sprintf(`SELECT s.created_at = min(m.created_at) AND s.updated_at = max(m.created_at)
			FROM %s s JOIN %s m USING (session_id) WHERE s.session_id = $1 GROUP BY s.created_at, s.updated_at`, t.sessions, t.messages), id).Scan(&ok)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("the load is wrong: session %s's times are not those of its first and last items", id)
		}
	}
	return nil
}
