package bunstore

import (
	"context"
	"database/sql"
	"strconv"
	"strings"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
)

// query is one SQL text in the two placeholder styles the store may send it
// in.
type query struct {
	bun    string // "?" placeholders, which Bun formats into the text
	driver string // the driver's own: "$1", "$2"... on PostgreSQL, "?" on SQLite
}

// newQuery returns q, written with "?" placeholders, in both styles. The
// store's SQL has no other question mark.
func newQuery(pg bool, q string) query {
	if !pg {
		return query{bun: q, driver: q}
	}
	var b strings.Builder
	n := 0
	for _, c := range q {
		if c == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(c)
	}
	return query{bun: q, driver: b.String()}
}

// conn sends the store's statements. When the bun.IDB is a *bun.DB, bun.Tx
// or bun.Conn, it uses the database/sql handle underneath with arguments the
// driver binds: the SQL text is then the same on every call, so pgx
// prepares it once per connection and each call is one round trip, and the
// items travel as one text[] parameter, not as escaped text. Any other
// bun.IDB gets the statements through Bun, which formats the arguments into
// the text.
type conn struct {
	raw bun.IConn // *sql.DB, *sql.Tx or *sql.Conn; nil when unknown
	db  bun.IConn
	pg  bool
}

func newConn(db bun.IDB, pg bool) conn {
	c := conn{db: db, pg: pg}
	switch d := db.(type) {
	case *bun.DB:
		c.raw = d.DB
	case bun.Tx:
		c.raw = d.Tx
	case *bun.Tx:
		c.raw = d.Tx
	case bun.Conn:
		c.raw = d.Conn
	case *bun.Conn:
		c.raw = d.Conn
	}
	return c
}

// bunArgs adapts arguments for Bun's formatting: a []string becomes a
// PostgreSQL array literal.
func (c conn) bunArgs(args []any) []any {
	if !c.pg {
		return args
	}
	out := make([]any, len(args))
	for i, a := range args {
		if ss, ok := a.([]string); ok {
			out[i] = pgdialect.Array(ss)
		} else {
			out[i] = a
		}
	}
	return out
}

func (c conn) exec(ctx context.Context, q query, args ...any) (sql.Result, error) {
	if c.raw != nil {
		return c.raw.ExecContext(ctx, q.driver, args...)
	}
	return c.db.ExecContext(ctx, q.bun, c.bunArgs(args)...)
}

func (c conn) query(ctx context.Context, q query, args ...any) (*sql.Rows, error) {
	if c.raw != nil {
		return c.raw.QueryContext(ctx, q.driver, args...)
	}
	return c.db.QueryContext(ctx, q.bun, c.bunArgs(args)...)
}

func (c conn) queryRow(ctx context.Context, q query, args ...any) *sql.Row {
	if c.raw != nil {
		return c.raw.QueryRowContext(ctx, q.driver, args...)
	}
	return c.db.QueryRowContext(ctx, q.bun, c.bunArgs(args)...)
}
