package bunstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"

	"github.com/lakesession/lakesession"
)

// Session is the history of one session id in a Store. It implements
// lakesession.Session and is safe for concurrent use; handles on one id from
// one or several Stores on the same tables all see the same history.
type Session struct {
	store *Store
	id    string
}

// SessionID returns the id this handle was opened with.
func (s *Session) SessionID() string { return s.id }

// GetItems returns the session's items, oldest first: all of them when
// limit <= 0, else the latest limit items. On PostgreSQL it is one
// statement, read through the (session_id, created_at, id) index; when
// stored items are not valid JSON (reported, see WithCorruptItemHandler), a
// follow-up statement fetches as many older items as were skipped.
func (s *Session) GetItems(ctx context.Context, limit int) ([]json.RawMessage, error) {
	ctx, c := s.store.begin(ctx, opGetItems, s.id)
	if err := lakesession.ValidateSessionID(s.id); err != nil {
		c.end(ctx, err)
		return nil, fmt.Errorf("get items: %w", err)
	}
	var (
		items   []json.RawMessage
		corrupt []CorruptItem
	)
	err := s.store.run(ctx, &c, func(ctx context.Context, a attempt) error {
		var err error
		corrupt = corrupt[:0]
		if limit <= 0 {
			items, err = s.getAll(ctx, a.c, &corrupt)
		} else {
			items, err = s.getLatest(ctx, a.c, limit, &corrupt)
		}
		return err
	})
	if err != nil {
		c.end(ctx, err)
		return nil, fmt.Errorf("get items from session %q: %w", s.id, err)
	}
	s.store.report(ctx, corrupt)
	c.items = len(items)
	if c.span.IsRecording() {
		for _, it := range items {
			c.bytes += len(it)
		}
	}
	c.end(ctx, nil)
	return items, nil
}

func (s *Session) getAll(ctx context.Context, c conn, corrupt *[]CorruptItem) ([]json.RawMessage, error) {
	rows, err := c.query(ctx, s.store.q.getAll, s.id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	items := []json.RawMessage{}
	for rows.Next() {
		var (
			id   int64
			data []byte
		)
		if err := rows.Scan(&id, &data); err != nil {
			return nil, err
		}
		if s.store.checkItem(s.id, id, data, corrupt) {
			items = append(items, data)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return items, rows.Close()
}

func (s *Session) getLatest(ctx context.Context, c conn, limit int, corrupt *[]CorruptItem) ([]json.RawMessage, error) {
	items := make([]json.RawMessage, 0, min(limit, 1024))
	// Newest first; the key of the oldest row read so far continues the
	// scan when corrupt rows left items short.
	var (
		keyTime any
		keyID   int64
	)
	for first := true; len(items) < limit; first = false {
		want := limit - len(items)
		var (
			rows *sql.Rows
			err  error
		)
		if first {
			rows, err = c.query(ctx, s.store.q.getLatest, s.id, want)
		} else {
			rows, err = c.query(ctx, s.store.q.getBefore, s.id, keyTime, keyID, want)
		}
		if err != nil {
			return nil, err
		}
		n, skipped := 0, 0
		// The key's time is boxed into keyTime once per page, not per row.
		var (
			pgTime   time.Time
			liteTime string
		)
		for rows.Next() {
			var data []byte
			if s.store.dialect == dialect.PG {
				err = rows.Scan(&keyID, &pgTime, &data)
			} else {
				err = rows.Scan(&keyID, &liteTime, &data)
			}
			if err != nil {
				rows.Close()
				return nil, err
			}
			n++
			if s.store.checkItem(s.id, keyID, data, corrupt) {
				items = append(items, data)
			} else {
				skipped++
			}
		}
		if err := rows.Err(); err != nil {
			rows.Close()
			return nil, err
		}
		if err := rows.Close(); err != nil {
			return nil, err
		}
		if s.store.dialect == dialect.PG {
			keyTime = pgTime
		} else {
			keyTime = liteTime
		}
		if n < want || skipped == 0 {
			break // the session has no more rows, or the page is full
		}
	}
	slices.Reverse(items)
	return items, nil
}

// AddItems appends items as one batch, in the given order, after checking
// every item (lakesession.CompactItem) and the session id. On PostgreSQL it
// is one statement, also on the session's first write: it creates or
// touches the session row and inserts the items. Concurrent batches of one
// session are serialized by the session row's lock and come back in the
// order they committed.
func (s *Session) AddItems(ctx context.Context, items []json.RawMessage) error {
	ctx, c := s.store.begin(ctx, opAddItems, s.id)
	if err := lakesession.ValidateSessionID(s.id); err != nil {
		c.end(ctx, err)
		return fmt.Errorf("add items: %w", err)
	}
	if len(items) == 0 {
		c.end(ctx, nil)
		return nil
	}
	data := make([]string, len(items))
	for i, item := range items {
		b, err := lakesession.CompactItem(item)
		if err != nil {
			err = fmt.Errorf("item %d of %d: %w", i, len(items), err)
			c.end(ctx, err)
			return fmt.Errorf("add items to session %q: %w", s.id, err)
		}
		data[i] = string(b)
		c.bytes += len(b)
	}
	err := s.store.run(ctx, &c, func(ctx context.Context, a attempt) error {
		if s.store.dialect == dialect.PG {
			return s.addPG(ctx, a.c, data)
		}
		return s.addSQLite(ctx, a.db, data)
	})
	if err == nil {
		c.items = len(items)
	}
	c.end(ctx, err)
	if err != nil {
		return fmt.Errorf("add items to session %q: %w", s.id, err)
	}
	return nil
}

func (s *Session) addPG(ctx context.Context, c conn, data []string) error {
	res, err := c.exec(ctx, s.store.q.add, s.id, data)
	if err != nil {
		return err
	}
	return checkAffected(res, len(data))
}

// sqliteChunk is how many items one SQLite INSERT carries (two parameters
// each, well under SQLite's limit on parameters per statement).
const sqliteChunk = 1000

func (s *Session) addSQLite(ctx context.Context, db bun.IDB, data []string) error {
	return db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		c := newConn(tx, false)
		if _, err := c.exec(ctx, s.store.q.add, s.id); err != nil {
			return err
		}
		for len(data) > 0 {
			chunk := data[:min(len(data), sqliteChunk)]
			data = data[len(chunk):]
			var b strings.Builder
			b.Grow(len(s.store.q.addValues.driver) + 8*len(chunk))
			b.WriteString(s.store.q.addValues.driver)
			args := make([]any, 0, 2*len(chunk))
			for i, d := range chunk {
				if i > 0 {
					b.WriteString(", ")
				}
				b.WriteString("(?, ?)")
				args = append(args, s.id, d)
			}
			res, err := c.exec(ctx, newQuery(false, b.String()), args...)
			if err != nil {
				return err
			}
			if err := checkAffected(res, len(chunk)); err != nil {
				return err
			}
		}
		return nil
	})
}

// checkAffected guards against a statement that silently wrote fewer rows
// than it was given.
func checkAffected(res sql.Result, want int) error {
	n, err := res.RowsAffected()
	if err != nil {
		return nil // the driver does not count; the statement succeeded
	}
	if n != int64(want) {
		return fmt.Errorf("the database stored %d rows for %d items", n, want)
	}
	return nil
}

// PopItem removes and returns the newest item, or (nil, nil) when the
// session is empty. Each attempt is one statement that deletes the newest
// row and returns it; on PostgreSQL concurrent pops skip a row another pop
// holds, so they never return the same item. A row that is not valid JSON is
// removed, reported (see WithCorruptItemHandler), and the next one popped.
func (s *Session) PopItem(ctx context.Context) (json.RawMessage, error) {
	ctx, c := s.store.begin(ctx, opPopItem, s.id)
	item, err := s.pop(ctx, &c)
	c.end(ctx, err)
	if err != nil {
		if errors.Is(err, lakesession.ErrInvalidSessionID) {
			return nil, fmt.Errorf("pop item: %w", err)
		}
		return nil, fmt.Errorf("pop item from session %q: %w", s.id, err)
	}
	return item, nil
}

func (s *Session) pop(ctx context.Context, c *call) (json.RawMessage, error) {
	if err := lakesession.ValidateSessionID(s.id); err != nil {
		return nil, err
	}
	for {
		var (
			id    int64
			data  []byte
			found bool
		)
		err := s.store.run(ctx, c, func(ctx context.Context, a attempt) error {
			// Rows rather than Row: Row.Scan returns the error of closing
			// the rows, which is nil when database/sql already closed them
			// because the context ended, although the driver's close (the
			// rest of the answer, the commit) then failed. Rows.Err after
			// Close reports that context's error.
			rows, err := a.c.query(ctx, s.store.q.pop, s.id)
			if err != nil {
				return err
			}
			found = rows.Next()
			if found {
				if err := rows.Scan(&id, &data); err != nil {
					rows.Close()
					return err
				}
			}
			if err := rows.Close(); err != nil {
				return err
			}
			return rows.Err()
		})
		if err != nil || !found {
			return nil, err
		}
		var corrupt []CorruptItem
		if s.store.checkItem(s.id, id, data, &corrupt) {
			return data, nil
		}
		s.store.report(ctx, corrupt)
	}
}

// ClearSession removes every item of the session and its session row. On
// PostgreSQL it is one statement; it does not depend on the foreign key's
// ON DELETE CASCADE.
func (s *Session) ClearSession(ctx context.Context) error {
	ctx, c := s.store.begin(ctx, opClearSession, s.id)
	if err := lakesession.ValidateSessionID(s.id); err != nil {
		c.end(ctx, err)
		return fmt.Errorf("clear session: %w", err)
	}
	err := s.store.run(ctx, &c, func(ctx context.Context, a attempt) error {
		if s.store.dialect == dialect.PG {
			_, err := a.c.exec(ctx, s.store.q.clear, s.id, s.id)
			return err
		}
		return a.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			c := newConn(tx, false)
			if _, err := c.exec(ctx, s.store.q.clear, s.id); err != nil {
				return err
			}
			_, err := c.exec(ctx, s.store.q.clearSession, s.id)
			return err
		})
	})
	c.end(ctx, err)
	if err != nil {
		return fmt.Errorf("clear session %q: %w", s.id, err)
	}
	return nil
}

// withCtxErr makes err wrap the context's error when the context ended, so
// that errors.Is(err, context.DeadlineExceeded) holds also when the driver
// reports the server's "canceling statement" error instead.
func withCtxErr(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("%w: %w", cerr, err)
	}
	return err
}
