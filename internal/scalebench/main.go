package main

import (
	"context"
	crand "crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/lakesession/lakesession/bunstore"
)

// envDSN names the superuser URL of the server (scripts/with-postgres.sh
// sets it).
const envDSN = "LAKESESSION_TEST_DATABASE_URL"

type options struct {
	large, small    shape
	iters1, iters16 int
	writers         int
	think, baseline time.Duration
	explainSessions int
	cluster, keep   bool
	smallT, largeT  tables
}

func main() {
	var o options
	flag.IntVar(&o.large.sessions, "sessions", 200_000, "sessions of the large table")
	flag.IntVar(&o.large.items, "items", 50, "items per session")
	flag.IntVar(&o.large.interleave, "interleave", 1000, "sessions active at a time (their items interleave)")
	flag.IntVar(&o.large.big, "big", 100_000, "items of the one big session (0: none)")
	flag.IntVar(&o.small.sessions, "small-sessions", 200, "sessions of the small table (of -items items each)")
	flag.IntVar(&o.iters1, "iters1", 400, "calls per table of each measure with 1 worker")
	flag.IntVar(&o.iters16, "iters16", 60, "calls per table and worker of each measure with 16 workers")
	flag.IntVar(&o.writers, "writers", 8, "writers during the prune")
	flag.DurationVar(&o.think, "think", 5*time.Millisecond, "pause of a writer between calls")
	flag.DurationVar(&o.baseline, "baseline", 15*time.Second, "how long the writers run before the prune starts")
	flag.IntVar(&o.explainSessions, "explain", 5, "cold sessions whose GetItems(20) pages are counted")
	flag.BoolVar(&o.cluster, "cluster", true, "after the prune, CLUSTER the messages table and count the pages again")
	flag.BoolVar(&o.keep, "keep", false, "keep the database at the end")
	flag.Parse()
	o.large.span = 30 * 24 * time.Hour
	o.small = shape{sessions: o.small.sessions, items: o.large.items, interleave: o.small.sessions, span: o.large.span}
	o.largeT = tables{`"agent_sessions"`, `"agent_messages"`}
	o.smallT = tables{`"small_sessions"`, `"small_messages"`}

	ctx := context.Background()
	rep := &report{w: os.Stdout}
	if err := run(ctx, o, rep); err != nil {
		fmt.Fprintf(os.Stderr, "scalebench: %v\n", err)
		os.Exit(2)
	}
	rep.targets()
	if rep.missed > 0 {
		os.Exit(1)
	}
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "scalebench: "+format+"\n", args...)
}

func run(ctx context.Context, o options, rep *report) error {
	if err := o.large.check(); err != nil {
		return fmt.Errorf("large table: %w", err)
	}
	if err := o.small.check(); err != nil {
		return fmt.Errorf("small table: %w", err)
	}
	admin := os.Getenv(envDSN)
	if admin == "" {
		return fmt.Errorf("%s is not set: run ./scripts/with-postgres.sh go run ./internal/scalebench, or set it to a superuser URL", envDSN)
	}
	dsn, drop, err := createDatabase(ctx, admin, o.keep)
	if err != nil {
		return err
	}
	defer drop()

	sqldb, err := sql.Open("pgx", dsn)
	if err != nil {
		return err
	}
	defer sqldb.Close()
	sqldb.SetMaxOpenConns(40)
	sqldb.SetMaxIdleConns(40)
	db := bun.NewDB(sqldb, pgdialect.New())
	large, err := bunstore.New(db)
	if err != nil {
		return err
	}
	small, err := bunstore.New(db, bunstore.WithTables("small_sessions", "small_messages"))
	if err != nil {
		return err
	}
	for _, st := range []*bunstore.Store{large, small} {
		if err := st.CreateTables(ctx); err != nil {
			return err
		}
	}

	// 1. Load.
	start := time.Now()
	if _, err := load(ctx, sqldb, o.smallT, o.small, logf); err != nil {
		return err
	}
	base, err := load(ctx, sqldb, o.largeT, o.large, logf)
	if err != nil {
		return err
	}
	rep.loadTime = time.Since(start)
	sample := []int{0, 1, o.large.interleave - 1, o.large.sessions / 2, o.large.sessions - 1}
	if o.large.big > 0 {
		sample = append(sample, -1)
	}
	if err := verify(ctx, sqldb, o.largeT, o.large, sample); err != nil {
		return err
	}
	if err := verify(ctx, sqldb, o.smallT, o.small, []int{0, o.small.sessions - 1}); err != nil {
		return err
	}
	if err := rep.server(ctx, sqldb, o); err != nil {
		return err
	}

	cold := newPicker()
	activeLo := o.large.sessions - o.large.interleave // the newest block
	coldID := func() (string, error) {
		i, err := cold.pick(0, activeLo)
		return sessionID(i), err
	}

	// 2. Pages touched by GetItems(20).
	if err := rep.pages(ctx, sqldb, o, "before the prune", coldID, sessionID(activeLo+rand.IntN(o.large.interleave))); err != nil {
		return err
	}

	// 3. Calls through the library.
	smallID := func() string { return sessionID(rand.IntN(o.small.sessions)) }
	activeID := func() string { return sessionID(activeLo + rand.IntN(o.large.interleave)) }
	two := []json.RawMessage{
		json.RawMessage(`{"type":"message","role":"user","content":"And what about the weather next week, will it rain in the afternoon?"}`),
		json.RawMessage(`{"type":"message","role":"assistant","content":"Expect light rain on two afternoons; bring a light jacket and an umbrella."}`),
	}
	type op struct {
		name string
		call func(ctx context.Context, s *bunstore.Session) error
	}
	ops := []op{
		{"GetItems(20)", func(ctx context.Context, s *bunstore.Session) error { _, err := s.GetItems(ctx, 20); return err }},
		{"GetItems(0), 50 items", func(ctx context.Context, s *bunstore.Session) error { _, err := s.GetItems(ctx, 0); return err }},
		{"AddItems(2)", func(ctx context.Context, s *bunstore.Session) error { return s.AddItems(ctx, two) }},
		{"PopItem", func(ctx context.Context, s *bunstore.Session) error { _, err := s.PopItem(ctx); return err }},
	}
	for _, workers := range []int{1, 16} {
		iters := o.iters1
		if workers == 16 {
			iters = o.iters16
		}
		for _, kind := range []string{"active", "cold"} {
			for _, op := range ops {
				smallCall := func(ctx context.Context) error { return op.call(ctx, small.Session(smallID())) }
				largeCall := func(ctx context.Context) error {
					id := activeID()
					if kind == "cold" {
						var err error
						if id, err = coldID(); err != nil {
							return err
						}
					}
					return op.call(ctx, large.Session(id))
				}
				if err := rep.measure(ctx, op.name, kind, workers, iters, smallCall, largeCall); err != nil {
					return err
				}
			}
		}
		if o.large.big > 0 {
			if err := rep.measure(ctx, "GetItems(20), 100,000-item session", "active", workers, iters,
				func(ctx context.Context) error { return ops[0].call(ctx, small.Session(smallID())) },
				func(ctx context.Context) error { return ops[0].call(ctx, large.Session(bigID)) }); err != nil {
				return err
			}
		}
		// ListSessions, 20 a page: the first page, and a page deep in the
		// listing by cursor (the 50th; the small table has 10 pages, so its
		// last).
		deepLarge, err := cursorOf(ctx, large, 49)
		if err != nil {
			return err
		}
		deepSmall, err := cursorOf(ctx, small, min(49, o.small.sessions/20-1))
		if err != nil {
			return err
		}
		list := func(st *bunstore.Store, cursor string) func(context.Context) error {
			return func(ctx context.Context) error {
				_, err := st.ListSessions(ctx, bunstore.ListOptions{Limit: 20, Cursor: cursor})
				return err
			}
		}
		if err := rep.measure(ctx, "ListSessions, first page", "-", workers, iters, list(small, ""), list(large, "")); err != nil {
			return err
		}
		if err := rep.measure(ctx, "ListSessions, page 50 by cursor", "-", workers, iters, list(small, deepSmall), list(large, deepLarge)); err != nil {
			return err
		}
	}

	// 4. The prune.
	// The cutoff: the time of the row after the last item of the older
	// half of the sessions (blocks are contiguous in time).
	var cutoff time.Time
	lastRow := o.large.row(int64(o.large.sessions/2)*int64(o.large.items) - 1)
	if err := sqldb.QueryRowContext(ctx, fmt.Sprintf(`SELECT CAST(CAST($1 AS timestamp) + %d * interval '%d microseconds' AS timestamptz)`,
		lastRow+1, o.large.step().Microseconds()), base).Scan(&cutoff); err != nil {
		return err
	}
	if err := rep.prune(ctx, sqldb, large, o, cutoff, activeID, two); err != nil {
		return err
	}

	// 5. CLUSTER.
	if o.cluster {
		var index string
		if err := sqldb.QueryRowContext(ctx, `SELECT CAST(indexrelid AS regclass)::text FROM pg_index
			WHERE indrelid = CAST($1 AS regclass) AND pg_get_indexdef(indexrelid) LIKE '%(session_id, created_at, id)'`, o.largeT.messages).Scan(&index); err != nil {
			return fmt.Errorf("find the (session_id, created_at, id) index: %w", err)
		}
		start := time.Now()
		if _, err := sqldb.ExecContext(ctx, `CLUSTER `+o.largeT.messages+` USING `+index); err != nil {
			return err
		}
		rep.clusterTime = time.Since(start)
		if _, err := sqldb.ExecContext(ctx, `VACUUM (ANALYZE) `+o.largeT.messages); err != nil {
			return err
		}
		logf("clustered %s (%v)", o.largeT.messages, rep.clusterTime.Round(time.Second))
		// Cold sessions that are left: those of the newer half.
		kept := func() (string, error) {
			i, err := cold.pick(o.large.sessions/2, activeLo)
			return sessionID(i), err
		}
		if err := rep.pages(ctx, sqldb, o, "after the prune and CLUSTER", kept, activeID()); err != nil {
			return err
		}
	}
	return nil
}

// cursorOf returns the cursor of page n+1 of ListSessions, 20 a page.
func cursorOf(ctx context.Context, st *bunstore.Store, n int) (string, error) {
	cursor := ""
	for range n {
		page, err := st.ListSessions(ctx, bunstore.ListOptions{Limit: 20, Cursor: cursor})
		if err != nil {
			return "", err
		}
		if page.NextCursor == "" {
			return "", errors.New("the listing ended before the page wanted")
		}
		cursor = page.NextCursor
	}
	return cursor, nil
}

// createDatabase creates a database of its own on the server and returns
// its URL and a function that drops it (unless keep).
func createDatabase(ctx context.Context, admin string, keep bool) (string, func(), error) {
	u, err := url.Parse(admin)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", nil, fmt.Errorf("%s must be a postgres:// URL", envDSN)
	}
	var b [4]byte
	if _, err := crand.Read(b[:]); err != nil {
		return "", nil, err
	}
	name := "lakesession_scale_" + hex.EncodeToString(b[:])
	adb, err := sql.Open("pgx", admin)
	if err != nil {
		return "", nil, err
	}
	if _, err := adb.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		adb.Close()
		return "", nil, fmt.Errorf("create database: %w", err)
	}
	u.Path = "/" + name
	drop := func() {
		defer adb.Close()
		if keep {
			logf("kept database %s", name)
			return
		}
		if _, err := adb.ExecContext(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			logf("drop database %s: %v", name, err)
		}
	}
	return u.String(), drop, nil
}

// explainJSON runs EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) of q and returns
// the buffers its plan touched (hit + read) and how many were read from
// outside shared buffers.
func explainJSON(ctx context.Context, db *sql.DB, q string) (total, read int64, err error) {
	var out string
	if err := db.QueryRowContext(ctx, "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) "+q).Scan(&out); err != nil {
		return 0, 0, err
	}
	var plans []struct {
		Plan struct {
			Hit  int64 `json:"Shared Hit Blocks"`
			Read int64 `json:"Shared Read Blocks"`
		}
	}
	if err := json.Unmarshal([]byte(out), &plans); err != nil || len(plans) != 1 {
		return 0, 0, fmt.Errorf("read EXPLAIN output: %v", err)
	}
	return plans[0].Plan.Hit + plans[0].Plan.Read, plans[0].Plan.Read, nil
}

func explainText(ctx context.Context, db *sql.DB, q string) (string, error) {
	rows, err := db.QueryContext(ctx, "EXPLAIN (ANALYZE, BUFFERS) "+q)
	if err != nil {
		return "", err
	}
	defer rows.Close()
	var b strings.Builder
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return "", err
		}
		b.WriteString(line + "\n")
	}
	return b.String(), rows.Err()
}

// getLatest is the store's GetItems(limit) statement on PostgreSQL, with
// the session id inlined (ids here are ours, made of letters, digits and
// dashes).
func getLatest(t tables, id string, limit int) string {
	return fmt.Sprintf(`SELECT id, created_at, message_data FROM %s WHERE session_id = '%s' ORDER BY created_at DESC, id DESC LIMIT %d`, t.messages, id, limit)
}

// indexPath is the same read of the index alone (an index-only scan: the
// tables are vacuumed), which counts the index pages of the read.
func indexPath(t tables, id string, limit int) string {
	return fmt.Sprintf(`SELECT created_at, id FROM %s WHERE session_id = '%s' ORDER BY created_at DESC, id DESC LIMIT %d`, t.messages, id, limit)
}

// heapPages counts the distinct heap pages that hold the latest limit
// items of a session.
func heapPages(ctx context.Context, db *sql.DB, t tables, id string, limit int) (int64, error) {
	var n int64
	err := db.QueryRowContext(ctx, fmt.Sprintf(`SELECT count(DISTINCT (CAST(CAST(ctid AS text) AS point))[0]) FROM
		(SELECT ctid FROM %s WHERE session_id = '%s' ORDER BY created_at DESC, id DESC LIMIT %d) x`, t.messages, id, limit)).Scan(&n)
	return n, err
}
