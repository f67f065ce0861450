package bunstore_test

// Benchmarks of the protocol calls on PostgreSQL. Every operation runs in
// three variants on one database/sql pool (pgx stdlib), so that their ratios
// compare like with like:
//
//   - bunstore: a *bunstore.Session on a *bun.DB (pgdialect) over the pool;
//   - python:   the statement sequence of the Python SQLAlchemySession,
//     written with the driver's own placeholders;
//   - floor:    one bare statement per operation, with no session handling.
//
// The sub-benchmark names are what internal/benchratio reads to report the
// ratios and their targets; scripts/bench.sh runs both.

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/lakesession/lakesession/bunstore"
	"github.com/lakesession/lakesession/internal/testdb"
)

const (
	// benchLimit is the limit of the GetItems benchmarks.
	benchLimit = 20
	// benchPopChunk is how many items a PopItem benchmark pops before it
	// tops its session up again, outside the timer.
	benchPopChunk = 50
	// benchManySessions is the number of sessions GetItems20_Sessions1000
	// reads in turn.
	benchManySessions = 1000
	// benchManyItems is the number of items of each of those sessions.
	benchManyItems = 25
)

// benchItemSQL is the SQL expression of item number g, the same text as
// benchItem(g).
const benchItemSQL = `'{"type":"message","role":"user","content":"item ' || g || ': ' || repeat('x', 60) || '"}'`

// benchItem returns item number n of the fixtures: a compact Responses-API
// message of about 100 bytes.
func benchItem(n int) json.RawMessage {
	return json.RawMessage(`{"type":"message","role":"user","content":"item ` + strconv.Itoa(n) + `: ` + strings.Repeat("x", 60) + `"}`)
}

func benchItems(from, n int) []json.RawMessage {
	items := make([]json.RawMessage, n)
	for i := range items {
		items[i] = benchItem(from + i)
	}
	return items
}

// BenchmarkPostgres measures AddItems, GetItems and PopItem of bunstore on
// PostgreSQL beside the Python SQLAlchemySession's statements and a floor
// of one bare statement, all in one run on one pool. The large sessions are
// built once, each by one statement.
//
// Each operation has a sub-benchmark per variant (its ns/op and allocs/op)
// and an "interleaved" one that calls the variants in turn, one call each,
// and reports each variant's mean time per call as a metric
// ("bunstore-ns/op", ...): on a loaded machine the variants then share the
// same load, so their ratio is steadier than the ratio of separate runs.
func BenchmarkPostgres(b *testing.B) {
	f := newBenchFixture(b)
	vs := f.variants()

	for _, n := range []int{1, 10} {
		b.Run(fmt.Sprintf("AddItems%d", n), func(b *testing.B) {
			benchEachVariant(b, vs, func(b *testing.B, vs []benchVariant) { benchAdd(b, f, vs, n) })
		})
	}

	gets := []struct {
		name string
		id   string
		last json.RawMessage // the newest item of the session
	}{
		{"GetItems20_Session100", f.get100.id, f.get100.last},
		{"GetItems20_Session100k", "get-100k", benchItem(100_000)},
		{"GetItems20_OneBatch20k", f.oneBatch.id, f.oneBatch.last},
	}
	for _, g := range gets {
		b.Run(g.name, func(b *testing.B) {
			benchEachVariant(b, vs, func(b *testing.B, vs []benchVariant) {
				arms := make([]benchGetArm, len(vs))
				for i, v := range vs {
					arms[i] = benchGetArm{v.name, v.ops(g.id), g.last}
				}
				benchGet(b, arms)
			})
		})
	}

	b.Run("GetItems20_Sessions1000", func(b *testing.B) {
		benchEachVariant(b, vs, benchGetMany)
	})

	pops := []struct {
		name string
		pf   *benchPopFixture
	}{
		{"PopItem_Session100", f.pop100},
		{"PopItem_OneBatch20k", f.popBatch},
	}
	for _, p := range pops {
		b.Run(p.name, func(b *testing.B) {
			benchEachVariant(b, vs, func(b *testing.B, vs []benchVariant) {
				arms := make([]benchPopArm, len(vs))
				for i, v := range vs {
					arms[i] = benchPopArm{v.name, v.ops(p.pf.id), p.pf}
				}
				benchPop(b, f, arms)
			})
		})
	}

	// bunstore on a session of one 20,000-item batch and on a 100-item
	// session, in turn.
	bs := vs[0] // bunstore
	b.Run("GetItems20_OneBatch20kVsSession100/interleaved", func(b *testing.B) {
		benchGet(b, []benchGetArm{
			{"session100", bs.ops(f.get100.id), f.get100.last},
			{"onebatch20k", bs.ops(f.oneBatch.id), f.oneBatch.last},
		})
	})
	b.Run("PopItem_OneBatch20kVsSession100/interleaved", func(b *testing.B) {
		benchPop(b, f, []benchPopArm{
			{"session100", bs.ops(f.pop100.id), f.pop100},
			{"onebatch20k", bs.ops(f.popBatch.id), f.popBatch},
		})
	})
}

// benchEachVariant runs bench as a sub-benchmark per variant, then as one
// that interleaves them all.
func benchEachVariant(b *testing.B, vs []benchVariant, bench func(b *testing.B, vs []benchVariant)) {
	for _, v := range vs {
		b.Run(v.name, func(b *testing.B) { bench(b, []benchVariant{v}) })
	}
	b.Run("interleaved", func(b *testing.B) { bench(b, vs) })
}

// benchClock times the calls of each arm of a benchmark; with more than one
// arm it reports each arm's mean time per call as "<arm>-ns/op".
type benchClock struct {
	names []string
	total []time.Duration
	calls []int
}

func newBenchClock(names []string) *benchClock {
	return &benchClock{names: names, total: make([]time.Duration, len(names)), calls: make([]int, len(names))}
}

func (c *benchClock) since(k int, start time.Time) {
	c.total[k] += time.Since(start)
	c.calls[k]++
}

func (c *benchClock) report(b *testing.B) {
	if len(c.names) < 2 {
		return
	}
	for k, name := range c.names {
		if c.calls[k] > 0 {
			b.ReportMetric(float64(c.total[k].Nanoseconds())/float64(c.calls[k]), name+"-ns/op")
		}
	}
}

func benchAdd(b *testing.B, f *benchFixture, vs []benchVariant, n int) {
	ctx := context.Background()
	names := make([]string, len(vs))
	ids := make([]string, len(vs))
	ops := make([]benchOps, len(vs))
	before := make([]int, len(vs))
	for k, v := range vs {
		names[k] = v.name
		ids[k] = fmt.Sprintf("add%d-%s", n, v.name)
		ops[k] = v.ops(ids[k])
		// The session exists, as it does for every AddItems but a
		// session's first: the Python sequence then skips its INSERT of
		// the session.
		f.exec(b, `INSERT INTO agent_sessions (session_id) VALUES ($1) ON CONFLICT DO NOTHING`, ids[k])
		before[k] = f.count(b, ids[k])
	}
	items := benchItems(1, n)
	clock := newBenchClock(names)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		k := i % len(ops)
		start := time.Now()
		err := ops[k].add(ctx, items)
		clock.since(k, start)
		if err != nil {
			b.Fatalf("%s: AddItems(%d items): %v", names[k], n, err)
		}
	}
	b.StopTimer()
	clock.report(b)
	for k, id := range ids {
		if got, want := f.count(b, id)-before[k], clock.calls[k]*n; got != want {
			b.Fatalf("%s: %d AddItems of %d items stored %d rows, want %d", names[k], clock.calls[k], n, got, want)
		}
	}
}

// benchGetArm is GetItems(20) of one variant on one session whose newest
// item is last.
type benchGetArm struct {
	name string
	ops  benchOps
	last json.RawMessage
}

func benchGet(b *testing.B, arms []benchGetArm) {
	ctx := context.Background()
	names := make([]string, len(arms))
	for k, a := range arms {
		names[k] = a.name
	}
	clock := newBenchClock(names)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		k := i % len(arms)
		start := time.Now()
		items, err := arms[k].ops.get(ctx, benchLimit)
		clock.since(k, start)
		if err != nil {
			b.Fatalf("%s: GetItems(%d): %v", names[k], benchLimit, err)
		}
		if len(items) != benchLimit || !bytes.Equal(items[benchLimit-1], arms[k].last) {
			b.Fatalf("%s: GetItems(%d) returned %d items ending in %.80s, want %d ending in %s",
				names[k], benchLimit, len(items), benchLast(items), benchLimit, arms[k].last)
		}
	}
	b.StopTimer()
	clock.report(b)
}

// benchGetMany reads GetItems(20) of 1,000 sessions in turn, as a server
// with many conversations does.
func benchGetMany(b *testing.B, vs []benchVariant) {
	ctx := context.Background()
	names := make([]string, len(vs))
	ops := make([][]benchOps, len(vs))
	for k, v := range vs {
		names[k] = v.name
		ops[k] = make([]benchOps, benchManySessions)
		for s := range ops[k] {
			ops[k][s] = v.ops(benchManyID(s))
		}
	}
	last := make([]json.RawMessage, benchManySessions)
	for s := range last {
		// Row g belongs to session g % 1000; the newest has the largest g.
		last[s] = benchItem((benchManyItems-1)*benchManySessions + s)
	}
	clock := newBenchClock(names)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		k, s := i%len(vs), (i/len(vs))%benchManySessions
		start := time.Now()
		items, err := ops[k][s].get(ctx, benchLimit)
		clock.since(k, start)
		if err != nil {
			b.Fatalf("%s: GetItems(%d) of %s: %v", names[k], benchLimit, benchManyID(s), err)
		}
		if len(items) != benchLimit || !bytes.Equal(items[benchLimit-1], last[s]) {
			b.Fatalf("%s: GetItems(%d) of %s returned %d items ending in %.80s, want %d ending in %s",
				names[k], benchLimit, benchManyID(s), len(items), benchLast(items), benchLimit, last[s])
		}
	}
	b.StopTimer()
	clock.report(b)
}

func benchManyID(k int) string { return "many-" + strconv.Itoa(k) }

// benchPopArm is PopItem of one variant on one pop fixture.
type benchPopArm struct {
	name string
	ops  benchOps
	pf   *benchPopFixture
}

func benchPop(b *testing.B, f *benchFixture, arms []benchPopArm) {
	ctx := context.Background()
	names := make([]string, len(arms))
	left := map[*benchPopFixture]int{} // items in each session
	for k, a := range arms {
		names[k] = a.name
		left[a.pf] = a.pf.refill(b, f)
	}
	clock := newBenchClock(names)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		k := i % len(arms)
		pf := arms[k].pf
		if left[pf] <= pf.size-benchPopChunk {
			b.StopTimer()
			left[pf] = pf.refill(b, f)
			b.StartTimer()
		}
		start := time.Now()
		item, err := arms[k].ops.pop(ctx)
		clock.since(k, start)
		if err != nil {
			b.Fatalf("%s: PopItem: %v", names[k], err)
		}
		if len(item) == 0 {
			b.Fatalf("%s: PopItem returned nothing from a session with %d items", names[k], left[pf])
		}
		left[pf]--
	}
	b.StopTimer()
	clock.report(b)
	for pf, n := range left {
		if got := f.count(b, pf.id); got != n {
			b.Fatalf("after the pops session %s has %d items, want %d", pf.id, got, n)
		}
	}
}

func benchLast(items []json.RawMessage) json.RawMessage {
	if len(items) == 0 {
		return nil
	}
	return items[len(items)-1]
}

// benchFixture is one database with the sessions the benchmarks read.
type benchFixture struct {
	db    *bun.DB
	store *bunstore.Store
	// get100 has 100 items of distinct created_at, oneBatch 20,000 items
	// added by one AddItems; last is the newest item.
	get100, oneBatch struct {
		id   string
		last json.RawMessage
	}
	pop100   *benchPopFixture
	popBatch *benchPopFixture
}

func newBenchFixture(b *testing.B) *benchFixture {
	b.Helper()
	ctx := context.Background()
	f := &benchFixture{db: bun.NewDB(testdb.Open(b), pgdialect.New())}
	st, err := bunstore.New(f.db)
	if err != nil {
		b.Fatalf("New: %v", err)
	}
	if err := st.CreateTables(ctx); err != nil {
		b.Fatalf("CreateTables: %v", err)
	}
	f.store = st

	// Sessions of distinct created_at, one row a millisecond, in the past.
	f.get100.id, f.get100.last = "get-100", benchItem(100)
	f.load(b, f.get100.id, 100)
	f.load(b, "get-100k", 100_000)
	f.exec(b, `INSERT INTO agent_sessions (session_id) SELECT 'many-' || k FROM generate_series(0, $1 - 1) k`, benchManySessions)
	f.exec(b, `INSERT INTO agent_messages (session_id, message_data, created_at) `+
		`SELECT 'many-' || (g % $1), `+benchItemSQL+`, CAST(now() AS timestamp) - interval '1 day' + g * interval '1 millisecond' `+
		`FROM generate_series(0, $2 - 1) g`, benchManySessions, benchManySessions*benchManyItems)

	// Sessions of one AddItems batch: every item has the same created_at.
	const batch = 20_000
	f.oneBatch.id = "batch-20k"
	f.oneBatch.last = benchItem(batch)
	if err := st.Session(f.oneBatch.id).AddItems(ctx, benchItems(1, batch)); err != nil {
		b.Fatalf("AddItems(%d items): %v", batch, err)
	}
	f.oneBatchCreatedAt(b, f.oneBatch.id, batch)

	f.pop100 = &benchPopFixture{id: "pop-100", size: 100}
	f.exec(b, `INSERT INTO agent_sessions (session_id) VALUES ($1)`, f.pop100.id)
	f.pop100.refill(b, f)

	f.popBatch = &benchPopFixture{id: "pop-batch-20k", size: batch, next: batch}
	if err := st.Session(f.popBatch.id).AddItems(ctx, benchItems(1, batch)); err != nil {
		b.Fatalf("AddItems(%d items): %v", batch, err)
	}
	f.popBatch.createdAt = f.oneBatchCreatedAt(b, f.popBatch.id, batch)

	f.exec(b, `ANALYZE`)
	return f
}

// load creates a session of n items numbered 1 to n, one a millisecond.
func (f *benchFixture) load(b *testing.B, id string, n int) {
	b.Helper()
	f.exec(b, `INSERT INTO agent_sessions (session_id) VALUES ($1)`, id)
	f.exec(b, `INSERT INTO agent_messages (session_id, message_data, created_at) `+
		`SELECT $1, `+benchItemSQL+`, CAST(now() AS timestamp) - interval '1 day' + g * interval '1 millisecond' `+
		`FROM generate_series(1, $2) g`, id, n)
	if got := f.count(b, id); got != n {
		b.Fatalf("session %s has %d items, want %d", id, got, n)
	}
}

// oneBatchCreatedAt checks that the n items of session id share one
// created_at, and returns it as text.
func (f *benchFixture) oneBatchCreatedAt(b *testing.B, id string, n int) string {
	b.Helper()
	var (
		distinct, rows int
		at             string
	)
	err := f.db.DB.QueryRow(`SELECT count(DISTINCT created_at), count(*), CAST(max(created_at) AS text) `+
		`FROM agent_messages WHERE session_id = $1`, id).Scan(&distinct, &rows, &at)
	if err != nil {
		b.Fatal(err)
	}
	if distinct != 1 || rows != n {
		b.Fatalf("session %s has %d items with %d distinct created_at, want %d with one", id, rows, distinct, n)
	}
	return at
}

func (f *benchFixture) exec(b *testing.B, query string, args ...any) {
	b.Helper()
	if _, err := f.db.DB.Exec(query, args...); err != nil {
		b.Fatalf("%s: %v", query, err)
	}
}

func (f *benchFixture) count(b *testing.B, id string) int {
	b.Helper()
	var n int
	if err := f.db.DB.QueryRow(`SELECT count(*) FROM agent_messages WHERE session_id = $1`, id).Scan(&n); err != nil {
		b.Fatal(err)
	}
	return n
}

// benchPopFixture is a session that PopItem benchmarks pop from and that is
// topped up to size between chunks of pops.
type benchPopFixture struct {
	id   string
	size int
	// createdAt, when set, is the created_at of every row: the session
	// stays one batch. Otherwise each row added takes a later time.
	createdAt string
	next      int // number of the next item added
}

// refill adds items until the session has size items, and returns how
// many it has.
func (p *benchPopFixture) refill(b *testing.B, f *benchFixture) int {
	b.Helper()
	have := f.count(b, p.id)
	if have >= p.size {
		return have
	}
	missing := p.size - have
	at := `CAST(clock_timestamp() AS timestamp) + g * interval '1 microsecond'`
	args := []any{p.id, p.next + 1, p.next + missing}
	if p.createdAt != "" {
		at = `CAST($4 AS timestamp)`
		args = append(args, p.createdAt)
	}
	f.exec(b, `INSERT INTO agent_messages (session_id, message_data, created_at) `+
		`SELECT $1, `+benchItemSQL+`, `+at+` FROM generate_series($2::int, $3::int) g ORDER BY g`, args...)
	p.next += missing
	return p.size
}

// benchOps are the three protocol calls of one variant on one session.
type benchOps struct {
	add func(ctx context.Context, items []json.RawMessage) error
	get func(ctx context.Context, limit int) ([]json.RawMessage, error)
	pop func(ctx context.Context) (json.RawMessage, error)
}

type benchVariant struct {
	name string
	ops  func(id string) benchOps
}

// variants returns bunstore, python and floor, in that order.
func (f *benchFixture) variants() []benchVariant {
	pool := f.db.DB
	return []benchVariant{
		{"bunstore", func(id string) benchOps {
			s := f.store.Session(id)
			return benchOps{add: s.AddItems, get: s.GetItems, pop: s.PopItem}
		}},
		{"python", func(id string) benchOps {
			p := &benchPython{db: pool, id: id, insert: map[int]string{}}
			return benchOps{add: p.add, get: p.get, pop: p.pop}
		}},
		{"floor", func(id string) benchOps {
			p := &benchFloor{db: pool, id: id, insert: map[int]string{}}
			return benchOps{add: p.add, get: p.get, pop: p.pop}
		}},
	}
}

// benchInsertSQL is one INSERT of n messages of one session (args: session
// id, then the n items).
func benchInsertSQL(cache map[int]string, n int) string {
	if q, ok := cache[n]; ok {
		return q
	}
	var sb strings.Builder
	sb.WriteString(`INSERT INTO agent_messages (session_id, message_data) VALUES `)
	for i := range n {
		if i > 0 {
			sb.WriteString(", ")
		}
		fmt.Fprintf(&sb, "($1, $%d)", i+2)
	}
	cache[n] = sb.String()
	return cache[n]
}

func benchInsertArgs(id string, items []json.RawMessage) []any {
	args := make([]any, 1+len(items))
	args[0] = id
	for i, it := range items {
		args[i+1] = string(it)
	}
	return args
}

// benchPython runs the statements of the Python SQLAlchemySession (openai-
// agents), in its order, one round trip each. Its bulk insert of the
// messages is taken as one multi-row INSERT, its best case.
type benchPython struct {
	db     *sql.DB
	id     string
	insert map[int]string
}

func (p *benchPython) add(ctx context.Context, items []json.RawMessage) error {
	if len(items) == 0 {
		return nil
	}
	args := benchInsertArgs(p.id, items) // json.dumps of each item
	tx, err := p.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var existing string
	err = tx.QueryRowContext(ctx, `SELECT session_id FROM agent_sessions WHERE session_id = $1`, p.id).Scan(&existing)
	if errors.Is(err, sql.ErrNoRows) {
		_, err = tx.ExecContext(ctx, `INSERT INTO agent_sessions (session_id) VALUES ($1)`, p.id)
	}
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, benchInsertSQL(p.insert, len(items)), args...); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE agent_sessions SET updated_at = CURRENT_TIMESTAMP WHERE session_id = $1`, p.id); err != nil {
		return err
	}
	return tx.Commit()
}

func (p *benchPython) get(ctx context.Context, limit int) ([]json.RawMessage, error) {
	return benchGetLatest(ctx, p.db, p.id, limit, true) // json.loads, skipping corrupt rows
}

func (p *benchPython) pop(ctx context.Context) (json.RawMessage, error) {
	tx, err := p.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	var id int64
	err = tx.QueryRowContext(ctx, `SELECT id FROM agent_messages WHERE session_id = $1 `+
		`ORDER BY created_at DESC, id DESC LIMIT 1`, p.id).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, tx.Commit()
	}
	if err != nil {
		return nil, err
	}
	var data []byte
	if err := tx.QueryRowContext(ctx, `SELECT message_data FROM agent_messages WHERE id = $1`, id).Scan(&data); err != nil {
		return nil, err
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM agent_messages WHERE id = $1`, id); err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	if !json.Valid(data) {
		return nil, nil
	}
	return data, nil
}

// benchFloor does each operation with one bare statement: no session row,
// no validation, no transaction of its own.
type benchFloor struct {
	db     *sql.DB
	id     string
	insert map[int]string
}

func (p *benchFloor) add(ctx context.Context, items []json.RawMessage) error {
	_, err := p.db.ExecContext(ctx, benchInsertSQL(p.insert, len(items)), benchInsertArgs(p.id, items)...)
	return err
}

func (p *benchFloor) get(ctx context.Context, limit int) ([]json.RawMessage, error) {
	return benchGetLatest(ctx, p.db, p.id, limit, false)
}

// benchGetLatest reads the latest limit items of session id with one
// statement and returns them oldest first; with checkJSON, rows that are
// not valid JSON are left out.
func benchGetLatest(ctx context.Context, db *sql.DB, id string, limit int, checkJSON bool) ([]json.RawMessage, error) {
	rows, err := db.QueryContext(ctx, `SELECT message_data FROM agent_messages WHERE session_id = $1 `+
		`ORDER BY created_at DESC, id DESC LIMIT $2`, id, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	items := make([]json.RawMessage, 0, limit)
	for rows.Next() {
		var data []byte
		if err := rows.Scan(&data); err != nil {
			return nil, err
		}
		if !checkJSON || json.Valid(data) {
			items = append(items, data)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	slices.Reverse(items)
	return items, nil
}

func (p *benchFloor) pop(ctx context.Context) (json.RawMessage, error) {
	var data []byte
	err := p.db.QueryRowContext(ctx, `DELETE FROM agent_messages WHERE id = (`+
		`SELECT id FROM agent_messages WHERE session_id = $1 ORDER BY created_at DESC, id DESC LIMIT 1) `+
		`RETURNING message_data`, p.id).Scan(&data)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	return data, err
}
