package bunstore

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"
)

// retentionStatements are the SQL texts of the retention calls, built from
// the Store's quoted table names.
type retentionStatements struct {
	// deleteOld removes the sessions not updated since a time. PostgreSQL:
	// one statement returning the count (args: time). SQLite: deleteOld
	// deletes their items and deleteOldSessions the rows, in one
	// transaction (args: time as text).
	deleteOld         query
	deleteOldSessions query
}

func buildRetentionStatements(d dialect.Name, n tableNames) retentionStatements {
	names := strings.NewReplacer("{S}", n.sessions, "{M}", n.messages)
	pg := d == dialect.PG
	r := replacer{names, pg}
	if pg {
		return retentionStatements{
			// The time is compared in the connection's TimeZone, the one
			// updated_at was written in.
			deleteOld: r.Replace(`WITH d AS (DELETE FROM {S} ` +
				`WHERE updated_at < CAST(CAST(? AS timestamptz) AS timestamp) RETURNING session_id), ` +
				`m AS (DELETE FROM {M} WHERE session_id IN (SELECT session_id FROM d)) ` +
				`SELECT count(*) FROM d`),
		}
	}
	return retentionStatements{
		deleteOld: r.Replace(`DELETE FROM {M} WHERE session_id IN ` +
			`(SELECT session_id FROM {S} WHERE updated_at < ?)`),
		deleteOldSessions: r.Replace(`DELETE FROM {S} WHERE updated_at < ?`),
	}
}

// DeleteSessions removes every session not updated since notUpdatedSince
// (updated_at < notUpdatedSince), with its items, and returns how many
// sessions it removed: a retention job. A session that gets items while it
// runs is kept. On PostgreSQL it is one statement; on SQLite, whose times
// have whole seconds, the cutoff is rounded down to a second, so a session
// updated after the cutoff is never removed.
func (s *Store) DeleteSessions(ctx context.Context, notUpdatedSince time.Time) (int64, error) {
	if notUpdatedSince.IsZero() {
		return 0, fmt.Errorf("delete sessions: the time is zero; pass the oldest last-update time to keep, such as time.Now().Add(-30 * 24 * time.Hour)")
	}
	q := buildRetentionStatements(s.dialect, s.names())
	var (
		n   int64
		err error
	)
	if s.dialect == dialect.PG {
		err = s.c.queryRow(ctx, q.deleteOld, notUpdatedSince).Scan(&n)
	} else {
		cutoff := notUpdatedSince.UTC().Format("2006-01-02 15:04:05")
		err = s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			c := newConn(tx, false)
			if _, err := c.exec(ctx, q.deleteOld, cutoff); err != nil {
				return err
			}
			res, err := c.exec(ctx, q.deleteOldSessions, cutoff)
			if err != nil {
				return err
			}
			n, err = res.RowsAffected()
			return err
		})
	}
	if err != nil {
		return 0, fmt.Errorf("delete sessions not updated since %s: %w", notUpdatedSince.Format(time.RFC3339), withCtxErr(ctx, err))
	}
	return n, nil
}
