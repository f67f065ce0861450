package bunstore

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"

	"github.com/uptrace/bun/dialect"
)

const (
	// DefaultListLimit is the page size of ListSessions when
	// ListOptions.Limit is 0.
	DefaultListLimit = 100
	// MaxListLimit is the largest page ListSessions returns.
	MaxListLimit = 1000
)

// SessionInfo describes one stored session.
type SessionInfo struct {
	// ID is the session id.
	ID string
	// CreatedAt is when the session's first item was added.
	CreatedAt time.Time
	// UpdatedAt is when items were last added.
	UpdatedAt time.Time
}

// ListOptions selects a page of ListSessions.
type ListOptions struct {
	// Limit is the number of sessions per page: 0 means DefaultListLimit,
	// at most MaxListLimit.
	Limit int
	// Cursor continues a listing: the NextCursor of the previous page. ""
	// starts with the most recently updated session.
	Cursor string
}

// SessionPage is one page of ListSessions.
type SessionPage struct {
	// Sessions are ordered by UpdatedAt, newest first (ties by ID,
	// descending).
	Sessions []SessionInfo
	// NextCursor fetches the next page; it is "" on the last page.
	NextCursor string
}

// cursor is the (updated_at, session_id) key of the last session of a page,
// updated_at as the database's own text form of the column, so that the
// next page continues exactly below it.
type cursor struct {
	UpdatedAt string `json:"u"`
	SessionID string `json:"s"`
}

// pgKeyLayout writes a PostgreSQL timestamp key with all its precision.
const pgKeyLayout = "2006-01-02 15:04:05.999999"

// ListSessions returns one page of sessions, most recently updated first,
// with their creation and last-update times as instants (on PostgreSQL the
// stored wall-clock times are read in the connection's TimeZone, the one
// they were written in; on SQLite they are UTC). Pages follow a keyset
// cursor: sessions added or updated while a listing goes on do not make it
// repeat or skip the others. One statement per page.
func (s *Store) ListSessions(ctx context.Context, opts ListOptions) (SessionPage, error) {
	ctx, c := s.begin(ctx, opListSessions, "")
	page, err := s.list(ctx, &c, opts)
	c.end(ctx, err)
	if err != nil {
		return SessionPage{}, fmt.Errorf("list sessions: %w", err)
	}
	return page, nil
}

func (s *Store) list(ctx context.Context, c *call, opts ListOptions) (SessionPage, error) {
	limit := opts.Limit
	switch {
	case limit == 0:
		limit = DefaultListLimit
	case limit < 0 || limit > MaxListLimit:
		return SessionPage{}, fmt.Errorf("limit is %d; use 1 to %d, or 0 for %d", limit, MaxListLimit, DefaultListLimit)
	}
	var after *cursor
	if opts.Cursor != "" {
		cur, err := decodeCursor(opts.Cursor)
		if err != nil {
			return SessionPage{}, err
		}
		after = &cur
	}
	var page SessionPage
	err := s.run(ctx, c, func(ctx context.Context, a attempt) error {
		var err error
		page, err = s.listSessions(ctx, a.c, after, limit)
		return err
	})
	return page, err
}

func (s *Store) listSessions(ctx context.Context, c conn, after *cursor, limit int) (SessionPage, error) {
	var (
		rows *sql.Rows
		err  error
	)
	// One more row than the page tells whether another page follows.
	if after == nil {
		rows, err = c.query(ctx, s.q.list, limit+1)
	} else {
		var key any = after.UpdatedAt
		if s.dialect == dialect.PG {
			t, err := time.Parse(pgKeyLayout, after.UpdatedAt)
			if err != nil {
				return SessionPage{}, fmt.Errorf("%w: pass the NextCursor of the previous page (%v)", ErrInvalidCursor, err)
			}
			key = t
		}
		rows, err = c.query(ctx, s.q.listAfter, key, after.SessionID, limit+1)
	}
	if err != nil {
		return SessionPage{}, err
	}
	defer rows.Close()
	page := SessionPage{Sessions: make([]SessionInfo, 0, min(limit, 64))}
	var last cursor
	for rows.Next() {
		if len(page.Sessions) == limit {
			page.NextCursor = encodeCursor(last)
			break
		}
		var info SessionInfo
		if s.dialect == dialect.PG {
			var key time.Time
			if err := rows.Scan(&info.ID, &info.CreatedAt, &info.UpdatedAt, &key); err != nil {
				return SessionPage{}, err
			}
			last = cursor{UpdatedAt: key.Format(pgKeyLayout), SessionID: info.ID}
		} else {
			var created, updated, key string
			if err := rows.Scan(&info.ID, &created, &updated, &key); err != nil {
				return SessionPage{}, err
			}
			if info.CreatedAt, err = parseSQLiteTime(created); err != nil {
				return SessionPage{}, fmt.Errorf("session %q: created_at: %w", info.ID, err)
			}
			if info.UpdatedAt, err = parseSQLiteTime(updated); err != nil {
				return SessionPage{}, fmt.Errorf("session %q: updated_at: %w", info.ID, err)
			}
			last = cursor{UpdatedAt: key, SessionID: info.ID}
		}
		info.CreatedAt = info.CreatedAt.UTC()
		info.UpdatedAt = info.UpdatedAt.UTC()
		page.Sessions = append(page.Sessions, info)
	}
	if err := rows.Err(); err != nil {
		return SessionPage{}, err
	}
	return page, rows.Close()
}

func encodeCursor(c cursor) string {
	b, _ := json.Marshal(c) // two strings: cannot fail
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(s string) (cursor, error) {
	var c cursor
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err == nil {
		err = json.Unmarshal(b, &c)
	}
	if err == nil && (c.UpdatedAt == "" || c.SessionID == "") {
		err = fmt.Errorf("a field is missing")
	}
	if err != nil {
		return cursor{}, fmt.Errorf("%w: pass the NextCursor of the previous page, or \"\" for the first page (%v)", ErrInvalidCursor, err)
	}
	return c, nil
}

// sqliteTimeLayouts are the text forms SQLite's date functions write (and
// read): CURRENT_TIMESTAMP writes the first, in UTC.
var sqliteTimeLayouts = []string{
	"2006-01-02 15:04:05",
	"2006-01-02 15:04:05.999999999",
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02T15:04:05.999999999Z07:00",
	"2006-01-02 15:04",
	"2006-01-02T15:04",
	"2006-01-02",
}

func parseSQLiteTime(s string) (time.Time, error) {
	for _, layout := range sqliteTimeLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a time SQLite writes", s)
}
