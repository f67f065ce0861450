package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/lakesession/lakesession/bunstore"
)

// report prints the figures as Markdown as they come, and keeps the
// targets' results for the end.
type report struct {
	w           io.Writer
	section     string
	loadTime    time.Duration
	clusterTime time.Duration
	checks      []check
	missed      int
}

type check struct {
	target, measured string
	ok               bool
}

func (r *report) printf(format string, args ...any) { fmt.Fprintf(r.w, format, args...) }

// begin starts a section with a table header, once.
func (r *report) begin(section, intro, header string) {
	if r.section == section {
		return
	}
	r.section = section
	r.printf("\n### %s\n\n", section)
	if intro != "" {
		r.printf("%s\n\n", intro)
	}
	if header != "" {
		r.printf("%s\n", header)
	}
}

func (r *report) check(target, measured string, ok bool) {
	r.checks = append(r.checks, check{target, measured, ok})
	if !ok {
		r.missed++
	}
}

func (r *report) server(ctx context.Context, db *sql.DB, o options) error {
	var version, sharedBuffers, fpw, workMem string
	if err := db.QueryRowContext(ctx, `SELECT current_setting('server_version'), current_setting('shared_buffers'),
		current_setting('full_page_writes'), current_setting('work_mem')`).Scan(&version, &sharedBuffers, &fpw, &workMem); err != nil {
		return err
	}
	var rows, heap, total, order int64
	if err := db.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM `+o.largeT.messages+`),
		pg_relation_size(CAST($1 AS regclass)), pg_total_relation_size(CAST($1 AS regclass)),
		(SELECT pg_relation_size(indexrelid) FROM pg_index WHERE indrelid = CAST($1 AS regclass)
			AND pg_get_indexdef(indexrelid) LIKE '%(session_id, created_at, id)')`, o.largeT.messages).Scan(&rows, &heap, &total, &order); err != nil {
		return err
	}
	r.printf("## Scale benchmark\n\n")
	r.printf("PostgreSQL %s (shared_buffers %s, work_mem %s, full_page_writes %s). ", version, sharedBuffers, workMem, fpw)
	r.printf("Large tables: %s items in %s sessions of %d plus one of %s, %d sessions active at a time; ",
		thousands(rows), thousands(int64(o.large.sessions)), o.large.items, thousands(int64(o.large.big)), o.large.interleave)
	r.printf("messages heap %s, (session_id, created_at, id) index %s, all of it %s. ", mib(heap), mib(order), mib(total))
	r.printf("Small tables: %s items in %d sessions of %d. Load, index builds and VACUUM took %v.\n",
		thousands(o.small.rows()), o.small.sessions, o.small.items, r.loadTime.Round(time.Second))
	return nil
}

func mib(b int64) string {
	if b >= 1<<30 {
		return fmt.Sprintf("%.2f GiB", float64(b)/(1<<30))
	}
	return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20))
}

// pageCount is what one GetItems(20) touched.
type pageCount struct {
	total, index, heap, distinct, read int64
}

func countPages(ctx context.Context, db *sql.DB, t tables, id string) (pageCount, error) {
	var p pageCount
	idx, _, err := explainJSON(ctx, db, indexPath(t, id, 20))
	if err != nil {
		return p, err
	}
	if p.total, p.read, err = explainJSON(ctx, db, getLatest(t, id, 20)); err != nil {
		return p, err
	}
	p.index = idx
	p.heap = p.total - idx
	p.distinct, err = heapPages(ctx, db, t, id, 20)
	return p, err
}

// pages reports the pages GetItems(20) touches on cold sessions, an active
// one and the small table.
func (r *report) pages(ctx context.Context, db *sql.DB, o options, label string, coldID func() (string, error), activeID string) error {
	r.section = ""
	r.begin("Pages touched by GetItems(20), "+label,
		"EXPLAIN (ANALYZE, BUFFERS) of the store's statement: buffers touched (hit or read); the index path is the same read as an index-only scan; heap pages are the rest. Distinct heap pages: how many pages hold the 20 items.",
		"| session | buffers | index path | heap (the rest) | distinct heap pages of the 20 items | read from outside shared buffers |\n| --- | --- | --- | --- | --- | --- |")
	var colds []pageCount
	for range o.explainSessions {
		id, err := coldID()
		if err != nil {
			return err
		}
		p, err := countPages(ctx, db, o.largeT, id)
		if err != nil {
			return err
		}
		colds = append(colds, p)
		r.printf("| cold %s | %d | %d | %d | %d | %d |\n", id, p.total, p.index, p.heap, p.distinct, p.read)
	}
	p, err := countPages(ctx, db, o.largeT, activeID)
	if err != nil {
		return err
	}
	r.printf("| active %s | %d | %d | %d | %d | %d |\n", activeID, p.total, p.index, p.heap, p.distinct, p.read)
	p, err = countPages(ctx, db, o.smallT, sessionID(0))
	if err != nil {
		return err
	}
	r.printf("| small table %s | %d | %d | %d | %d | %d |\n", sessionID(0), p.total, p.index, p.heap, p.distinct, p.read)

	id, err := coldID()
	if err != nil {
		return err
	}
	plan, err := explainText(ctx, db, getLatest(o.largeT, id, 20))
	if err != nil {
		return err
	}
	r.printf("\nThe plan of one more cold session, %s:\n\n```\n%s```\n", id, plan)
	if len(colds) > 0 && label == "before the prune" {
		worst := slices.MaxFunc(colds, func(a, b pageCount) int { return int(a.heap - b.heap) })
		r.check("cold GetItems(20) touches at most one heap page per item (+2), beyond the index path",
			fmt.Sprintf("%d heap pages and %d index pages at most, over %d cold sessions", worst.heap, worst.index, len(colds)),
			worst.heap <= 22)
	}
	return nil
}

// measure times one call on both tables, interleaved, and reports the
// ratio of the large table's median latency to the small one's.
func (r *report) measure(ctx context.Context, name, kind string, workers, iters int, small, large func(context.Context) error) error {
	r.begin("Calls through the library: large tables over small",
		"Latency per call, median (and p99), each call on the large tables interleaved with the same call on the small ones. Ratio: large over small, of the medians (and of the means).",
		"| call | sessions | workers | small: median (p99) | large: median (p99) | ratio of medians | ratio of means |\n| --- | --- | --- | --- | --- | --- | --- |")
	// A short warm-up opens the connections.
	if _, _, err := interleaved(ctx, workers, 3, small, large); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	s, l, err := interleaved(ctx, workers, iters, small, large)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	ss, ls := summarize(s), summarize(l)
	ratio := float64(ls.median) / float64(ss.median)
	meanRatio := float64(ls.mean) / float64(ss.mean)
	r.printf("| %s | %s | %d | %s (%s) | %s (%s) | %.2fx | %.2fx |\n", name, kind, workers,
		ms(ss.median), ms(ss.p99), ms(ls.median), ms(ls.p99), ratio, meanRatio)
	logf("%s, %s, %d workers: %.2fx", name, kind, workers, ratio)
	if kind != "cold" {
		r.check(fmt.Sprintf("%s, %s sessions, %d workers: within 1.5x of the small table", name, kind, workers),
			fmt.Sprintf("%.2fx (means %.2fx)", ratio, meanRatio), ratio <= 1.5)
	}
	return nil
}

type walPoint struct {
	at                time.Time
	lsn               string
	records, fpi, byt int64
}

func walNow(ctx context.Context, db *sql.DB) (walPoint, error) {
	p := walPoint{at: time.Now()}
	err := db.QueryRowContext(ctx, `SELECT CAST(pg_current_wal_lsn() AS text), wal_records, wal_fpi, CAST(wal_bytes AS bigint) FROM pg_stat_wal`).
		Scan(&p.lsn, &p.records, &p.fpi, &p.byt)
	return p, err
}

func walDiff(ctx context.Context, db *sql.DB, a, b walPoint) (int64, error) {
	var n int64
	err := db.QueryRowContext(ctx, `SELECT CAST(pg_wal_lsn_diff(CAST($1 AS pg_lsn), CAST($2 AS pg_lsn)) AS bigint)`, b.lsn, a.lsn).Scan(&n)
	return n, err
}

// prune removes the older half of the sessions with PruneSessions while
// writers add items to active sessions, and reports it.
func (r *report) prune(ctx context.Context, db *sql.DB, st *bunstore.Store, o options, cutoff time.Time, activeID func() string, items []json.RawMessage) error {
	var eligible int64
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM `+o.largeT.sessions+` WHERE updated_at < CAST(CAST($1 AS timestamptz) AS timestamp)`, cutoff).Scan(&eligible); err != nil {
		return err
	}
	logf("pruning %s sessions while %d writers work", thousands(eligible), o.writers)

	stop := make(chan struct{})
	type result struct {
		calls []timedCall
		err   error
	}
	done := make(chan result, 1)
	go func() {
		calls, err := writers(ctx, o.writers, o.think, func(ctx context.Context) error {
			return st.Session(activeID()).AddItems(ctx, items)
		}, stop)
		done <- result{calls, err}
	}()
	w0, err := walNow(ctx, db)
	if err != nil {
		close(stop)
		return err
	}
	time.Sleep(o.baseline)
	w1, err := walNow(ctx, db)
	if err != nil {
		close(stop)
		return err
	}
	var (
		batchEnds []time.Time
		progress  []bunstore.PruneProgress
	)
	res, perr := st.PruneSessions(ctx, bunstore.PruneOptions{Before: cutoff, Progress: func(p bunstore.PruneProgress) {
		batchEnds = append(batchEnds, time.Now())
		progress = append(progress, p)
		if p.Batch%10 == 0 {
			logf("prune: batch %d, %s sessions, %s items so far", p.Batch, thousands(p.Total.Sessions), thousands(p.Total.Items))
		}
	}})
	w2, werr := walNow(ctx, db)
	close(stop)
	wr := <-done
	switch {
	case perr != nil:
		return perr
	case werr != nil:
		return werr
	case wr.err != nil:
		return fmt.Errorf("writer during the prune: %w", wr.err)
	}
	dur := w2.at.Sub(w1.at)
	var slowest time.Duration
	var largest bunstore.PruneProgress
	prev := w1.at
	for i, end := range batchEnds {
		slowest = max(slowest, end.Sub(prev))
		prev = end
		if progress[i].Items > largest.Items {
			largest = progress[i]
		}
	}
	baseWAL, err := walDiff(ctx, db, w0, w1)
	if err != nil {
		return err
	}
	pruneWAL, err := walDiff(ctx, db, w1, w2)
	if err != nil {
		return err
	}
	rate := float64(baseWAL) / w1.at.Sub(w0.at).Seconds()
	writersWAL := int64(rate * dur.Seconds())
	before := summarize(between(wr.calls, w0.at.Add(2*time.Second), w1.at))
	during := summarize(between(wr.calls, w1.at, w2.at))

	var live, dead, autovacuums int64
	var lastAuto sql.NullString
	if err := db.QueryRowContext(ctx, `SELECT n_live_tup, n_dead_tup, autovacuum_count, CAST(last_autovacuum AS text)
		FROM pg_stat_user_tables WHERE relid = CAST($1 AS regclass)`, o.largeT.messages).Scan(&live, &dead, &autovacuums, &lastAuto); err != nil {
		return err
	}
	if !lastAuto.Valid {
		lastAuto.String = "never"
	}

	r.section = ""
	r.begin("Prune of half the sessions while writers work",
		fmt.Sprintf("PruneSessions (batches of %d sessions) of the older half of the sessions (the oldest in time, less those the benchmark wrote to since), while %d writers add 2 items at a time to active sessions, pausing %v between calls; %v of writers alone first.",
			bunstore.DefaultPruneBatchSize, o.writers, o.think, o.baseline),
		"| figure | value |\n| --- | --- |")
	r.printf("| removed | %s sessions, %s items, in %d transactions |\n", thousands(res.Sessions), thousands(res.Items), res.Batches)
	r.printf("| duration | %v (%s items/s) |\n", dur.Round(time.Millisecond), thousands(int64(float64(res.Items)/dur.Seconds())))
	r.printf("| largest transaction | %s sessions, %s items |\n", thousands(largest.Sessions), thousands(largest.Items))
	r.printf("| slowest transaction | %v |\n", slowest.Round(time.Millisecond))
	r.printf("| WAL during the prune | %s in all; the writers' share at their rate before it, %s; the prune's, %s (%s bytes per item); %s full-page images |\n",
		mib(pruneWAL), mib(writersWAL), mib(pruneWAL-writersWAL), thousands((pruneWAL-writersWAL)/max(res.Items, 1)), thousands(w2.fpi-w1.fpi))
	r.printf("| writers before: calls, median, p99, max | %s, %s, %s, %s |\n", thousands(int64(before.n)), ms(before.median), ms(before.p99), ms(before.max_))
	r.printf("| writers during: calls, median, p99, max | %s, %s, %s, %s |\n", thousands(int64(during.n)), ms(during.median), ms(during.p99), ms(during.max_))
	p99Ratio := float64(during.p99) / float64(before.p99)
	r.printf("| p99 during over p99 before | %.2fx |\n", p99Ratio)
	r.printf("| messages table after it | %s live rows, %s dead; autovacuum ran %d times (last %s) |\n",
		thousands(live), thousands(dead), autovacuums, lastAuto.String)
	r.check("writers' p99 during the prune within 3x of before it", fmt.Sprintf("%s vs %s: %.2fx", ms(during.p99), ms(before.p99), p99Ratio), p99Ratio <= 3)
	r.check("no writer call over 1 s during the prune", "max "+ms(during.max_), during.max_ <= time.Second)
	if res.Sessions != eligible {
		r.printf("\nThe prune removed %s sessions; %s were older than the cutoff when it started.\n", thousands(res.Sessions), thousands(eligible))
	}
	return nil
}

func (r *report) targets() {
	if r.clusterTime > 0 {
		r.printf("\nCLUSTER of the messages table after the prune took %v.\n", r.clusterTime.Round(time.Second))
	}
	r.printf("\n### Targets\n\n| target | measured | result |\n| --- | --- | --- |\n")
	for _, c := range r.checks {
		res := "PASS"
		if !c.ok {
			res = "MISS"
		}
		r.printf("| %s | %s | %s |\n", c.target, c.measured, res)
	}
}
