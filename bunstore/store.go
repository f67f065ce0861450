package bunstore

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/lakesession/lakesession"
	"github.com/lakesession/lakesession/models"
)

var (
	// ErrInvalidConfig is returned by New when an option is not valid. The
	// error lists every problem found.
	ErrInvalidConfig = errors.New("bunstore: invalid configuration")

	// ErrInvalidCursor is returned by ListSessions for a cursor that it did
	// not hand out.
	ErrInvalidCursor = errors.New("bunstore: invalid cursor")

	// ErrCorruptItem is wrapped by CorruptItem.Err: a stored item is not
	// valid JSON.
	ErrCorruptItem = errors.New("bunstore: stored item is not valid JSON")
)

// MaxIdentifierLen is the longest table or schema name accepted, in bytes
// (PostgreSQL's limit).
const MaxIdentifierLen = 63

var _ lakesession.Session = (*Session)(nil)

// Store keeps the sessions of one database. It is safe for concurrent use;
// create one per database and share it.
type Store struct {
	db      bun.IDB
	c       conn
	dialect dialect.Name
	cfg     config
	q       statements
	rq      retentionStatements // DeleteSessions' and PruneSessions'

	// pool is db when it is a *bun.DB on PostgreSQL: calls then take a
	// connection per try and retry (see run).
	pool *bun.DB
	// unknownOutcomes is set when a write's connection can break with the
	// outcome unknown to the caller: on PostgreSQL, outside a transaction.
	unknownOutcomes bool
	// conns is what sendMode found out from the first connection it
	// looked at; nil until then.
	conns atomic.Pointer[connInfo]
	tel   *telemetry
}

type config struct {
	schema   string
	sessions string
	messages string
	logger   *slog.Logger
	corrupt  func(ctx context.Context, c CorruptItem)
	// maxRetryWait is how long a call may keep retrying; 0 turns retries
	// off.
	maxRetryWait time.Duration
	// tracerProvider and meterProvider are nil for the global ones.
	tracerProvider trace.TracerProvider
	meterProvider  metric.MeterProvider
	sessionIDAttr  bool
	// noTelemetry builds a Store without spans or metrics; only the
	// package's tests set it, to measure what they cost.
	noTelemetry bool
	problems    []string
}

// Option configures a Store.
type Option func(*config)

// WithTables sets the names of the sessions and messages tables (default
// "agent_sessions" and "agent_messages", as in the Python
// SQLAlchemySession). Names are letters, digits and underscores, not
// starting with a digit, at most MaxIdentifierLen bytes; they are quoted in
// SQL, so they are case-sensitive.
func WithTables(sessions, messages string) Option {
	return func(c *config) {
		if err := checkIdent(sessions); err != nil {
			c.problems = append(c.problems, "WithTables: sessions table name "+err.Error())
		}
		if err := checkIdent(messages); err != nil {
			c.problems = append(c.problems, "WithTables: messages table name "+err.Error())
		}
		c.sessions, c.messages = sessions, messages
	}
}

// WithSchema puts the tables in a schema (PostgreSQL) or an attached
// database (SQLite) instead of the connection's default (the search path on
// PostgreSQL, "main" on SQLite). The name follows the rules of WithTables.
func WithSchema(name string) Option {
	return func(c *config) {
		if err := checkIdent(name); err != nil {
			c.problems = append(c.problems, "WithSchema: schema name "+err.Error())
		}
		c.schema = name
	}
}

// WithLogger sets where stored items that are not valid JSON are reported
// when no WithCorruptItemHandler is set; the default is slog.Default().
// The log record has the session id, the message id and the error, never
// the item's content.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) {
		if l == nil {
			c.problems = append(c.problems, "WithLogger: the logger is nil; omit the option to log to slog.Default()")
		}
		c.logger = l
	}
}

// WithCorruptItemHandler sets a function called for every stored item that
// is not valid JSON, instead of logging it. GetItems skips such an item and
// PopItem removes it and pops the next one; fn receives its content, so it
// can be kept or repaired. fn runs on the caller's goroutine, before the
// call that found the item returns.
func WithCorruptItemHandler(fn func(ctx context.Context, c CorruptItem)) Option {
	return func(c *config) {
		if fn == nil {
			c.problems = append(c.problems, "WithCorruptItemHandler: the handler is nil; omit the option to log corrupt items instead")
		}
		c.corrupt = fn
	}
}

// WithMaxRetryWait sets how long a call on a *bun.DB with PostgreSQL may
// keep retrying a failure that left nothing written (and, for the calls
// that are safe to repeat, a connection that broke with the outcome
// unknown): no new try starts more than d after the call started. The
// default is DefaultMaxRetryWait (15 s); 0 turns retries off, so every
// call makes one try. The call's context bounds the retries too. See
// "Failures and retries" in the package documentation for what is
// retried.
func WithMaxRetryWait(d time.Duration) Option {
	return func(c *config) {
		if d < 0 {
			c.problems = append(c.problems, fmt.Sprintf("WithMaxRetryWait: %v is negative; use 0 to turn retries off", d))
		}
		c.maxRetryWait = d
	}
}

// New returns a Store on db, which may be a *bun.DB, a bun.Conn or a bun.Tx
// whose dialect is PostgreSQL (pgdialect) or SQLite (sqlitedialect). It
// checks every option and reports all problems at once, in an error that
// wraps ErrInvalidConfig; it does not touch the database.
//
// On a *bun.DB with PostgreSQL, a call retries what certainly did not
// happen, on a fresh connection, for up to WithMaxRetryWait (see "Failures
// and retries" in the package documentation). Every call makes an
// OpenTelemetry span and metrics, through the global providers as New
// finds them (otel.GetTracerProvider, otel.GetMeterProvider) unless
// WithTracerProvider or WithMeterProvider is given; with no SDK installed
// they cost next to nothing.
//
// Bun's query hooks (bunotel, bundebug, or your own bun.QueryHook) do not
// see the store's statements: on a *bun.DB, bun.Tx or bun.Conn, the store
// sends them to the database/sql handle underneath, with arguments the
// driver binds, so that each statement's text is constant, pgx prepares it
// once per connection, and a call is one round trip with its items as one
// text[] parameter. Going through Bun would format every argument into the
// text, and pgx would prepare a new statement on every call. A hook sees
// only the BEGIN and COMMIT around them, and CreateTables' DDL. Use the
// store's spans instead (lakesession.AddItems, ...), and for a span per
// statement a pgx tracer, such as otelpgx, set with package connector's
// Config.QueryTracer (or pgx.ConnConfig.Tracer): its spans are children of
// the store's.
func New(db bun.IDB, opts ...Option) (*Store, error) {
	cfg := config{
		sessions:     models.SessionsTable,
		messages:     models.MessagesTable,
		logger:       slog.Default(),
		maxRetryWait: DefaultMaxRetryWait,
	}
	for _, opt := range opts {
		if opt == nil {
			cfg.problems = append(cfg.problems, "an option is nil")
			continue
		}
		opt(&cfg)
	}
	var name dialect.Name
	if db == nil {
		cfg.problems = append(cfg.problems, "the database is nil; pass a *bun.DB, bun.Conn or bun.Tx")
	} else {
		name = db.Dialect().Name()
		if name != dialect.PG && name != dialect.SQLite {
			cfg.problems = append(cfg.problems, fmt.Sprintf("the %s dialect is not supported; use PostgreSQL (pgdialect) or SQLite (sqlitedialect)", name))
		}
	}
	if cfg.sessions == cfg.messages && cfg.sessions != "" {
		cfg.problems = append(cfg.problems, fmt.Sprintf("WithTables: the sessions and messages tables are both named %q; give them different names", cfg.sessions))
	}
	if len(cfg.problems) > 0 {
		return nil, fmt.Errorf("%w: %s", ErrInvalidConfig, strings.Join(cfg.problems, "; "))
	}
	cfg.problems = nil
	s := &Store{db: db, c: newConn(db, name == dialect.PG), dialect: name, cfg: cfg}
	s.q = buildStatements(name, s.names())
	s.rq = buildRetentionStatements(name, s.names())
	s.tel = newTelemetry(&s.cfg, name == dialect.PG)
	if name == dialect.PG {
		switch d := db.(type) {
		case *bun.DB:
			s.pool = d
			s.unknownOutcomes = true
		case bun.Tx, *bun.Tx:
			// A broken connection rolls the caller's transaction back:
			// nothing of it commits, and its Commit says so.
		default:
			s.unknownOutcomes = true
		}
	}
	return s, nil
}

// Session returns a handle on the session with the given id. It is cheap
// and does not touch the database; the id is checked by each method of the
// handle, which returns lakesession.ErrInvalidSessionID for an invalid one.
func (s *Store) Session(id string) *Session {
	return &Session{store: s, id: id}
}

// tableNames are the quoted, possibly schema-qualified names used in SQL.
type tableNames struct {
	sessions      string // "schema"."agent_sessions" or "agent_sessions"
	messages      string
	sessionsLocal string // unqualified, for SQLite foreign keys
	schema        string // quoted schema, or ""
	orderIndex    string // quoted index names, unqualified
	updatedIndex  string
}

func (s *Store) names() tableNames {
	n := tableNames{
		sessionsLocal: quoteIdent(s.cfg.sessions),
		orderIndex:    quoteIdent(indexName(s.cfg.messages, "_session_order")),
		updatedIndex:  quoteIdent(indexName(s.cfg.sessions, "_updated")),
	}
	n.sessions = n.sessionsLocal
	n.messages = quoteIdent(s.cfg.messages)
	if s.cfg.schema != "" {
		n.schema = quoteIdent(s.cfg.schema)
		n.sessions = n.schema + "." + n.sessions
		n.messages = n.schema + "." + n.messages
	}
	return n
}

// checkIdent reports why name is not a valid table or schema name; the
// message starts with the quoted name.
func checkIdent(name string) error {
	if name == "" {
		return errors.New(`"" is empty`)
	}
	if len(name) > MaxIdentifierLen {
		return fmt.Errorf("%.20q... is %d bytes long; use at most %d", name, len(name), MaxIdentifierLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c == '_', 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case '0' <= c && c <= '9':
			if i == 0 {
				return fmt.Errorf("%q starts with a digit; start it with a letter or an underscore", name)
			}
		default:
			return fmt.Errorf("%q contains %q; use only letters, digits and underscores", name, rune(c))
		}
	}
	return nil
}

// quoteIdent quotes a name checked by checkIdent. PostgreSQL and SQLite both
// quote identifiers with double quotes; a checked name contains none.
func quoteIdent(name string) string {
	return `"` + name + `"`
}

// indexName is "idx_" + table + suffix, shortened with a hash of the full
// name when it would exceed the identifier limit (PostgreSQL would truncate
// it, and two long table names could then share one index name).
func indexName(table, suffix string) string {
	name := "idx_" + table + suffix
	if len(name) <= MaxIdentifierLen {
		return name
	}
	h := fnv.New32a()
	h.Write([]byte(name))
	tail := fmt.Sprintf("_%08x", h.Sum32())
	return name[:MaxIdentifierLen-len(tail)] + tail
}
