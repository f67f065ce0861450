package bunstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"
	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"github.com/lakesession/lakesession"
)

const (
	// DefaultPruneBatchSize is the number of sessions PruneSessions removes
	// per transaction when PruneOptions.BatchSize is 0, and the batch of
	// DeleteSessions.
	DefaultPruneBatchSize = 1000
	// MaxPruneBatchSize is the largest PruneOptions.BatchSize.
	MaxPruneBatchSize = 1000
)

// PruneOptions selects what PruneSessions removes and how.
type PruneOptions struct {
	// Before is the retention cutoff, required: the sessions whose last
	// update (updated_at) is before it are removed with all their items.
	// A session updated at or after Before is never removed. On SQLite,
	// whose times have whole seconds, Before is rounded down to a second.
	Before time.Time
	// BatchSize is the number of sessions removed per transaction: 0 means
	// DefaultPruneBatchSize, at most MaxPruneBatchSize. Every item of a
	// session is removed in the transaction that removes the session, so a
	// batch's transaction is as large as its sessions' items.
	BatchSize int
	// DryRun counts what would be removed, batch by batch, and removes
	// nothing. It takes no locks; sessions written while it runs may make
	// its counts differ from those of a real run.
	DryRun bool
	// Progress, when set, is called after each batch that removed (or,
	// with DryRun, counted) at least one session, on the goroutine that
	// called PruneSessions, before the next batch starts. A batch it sees
	// has committed.
	Progress func(PruneProgress)
}

// PruneResult counts what PruneSessions removed, or with DryRun would
// remove.
type PruneResult struct {
	// Sessions is the number of sessions removed.
	Sessions int64
	// Items is the number of their items removed.
	Items int64
	// Batches is the number of batches (transactions, unless the Store is
	// on a bun.Tx) that removed at least one session.
	Batches int
}

// PruneProgress reports one batch of PruneSessions.
type PruneProgress struct {
	// Batch is the number of this batch, from 1.
	Batch int
	// Sessions and Items are this batch's counts.
	Sessions int64
	Items    int64
	// Total is the running total, this batch included.
	Total PruneResult
}

// PruneSessions removes the sessions not updated since opts.Before, with
// all their items, in batches of at most opts.BatchSize sessions, and
// returns how many sessions and items it removed. It is the retention job
// behind DeleteSessions, with a batch size, a dry run and progress reports.
//
// On a *bun.DB each batch is a short transaction of its own (READ COMMITTED
// on PostgreSQL): the job never holds one transaction over the whole
// table, locks at most a batch of sessions at a time, and lets autovacuum
// reclaim the rows of earlier batches while later ones run. On a bun.Conn
// each batch is a transaction on that connection. On a bun.Tx every batch
// runs in the caller's transaction (each in a savepoint), so the caller
// decides when it commits, and its locks are held until then.
//
// A session is removed whole or not at all, also while items are being
// added to it: AddItems either commits first, and the session, now
// updated, is kept with all its items; or it waits for the batch that
// removes the session and then starts it afresh with only its new items.
// A session whose write is in progress when a batch reaches it is skipped,
// not waited for.
//
// Bad options are reported before anything is read or written. On error,
// the result counts the batches that committed before it; they stay
// removed. The context is checked between batches.
//
// On SQLite a batch is two DELETE statements in one transaction, which
// holds the database's write lock, so no other write comes between them.
//
// On a *bun.DB with PostgreSQL, a batch that failed without committing (a
// connection that could not be made or broke, a terminated backend, a
// read-only server, a serialization failure or a deadlock) is tried again
// on a fresh connection, as every call of the Store is (see "Failures and
// retries" in the package documentation), for up to WithMaxRetryWait per
// batch; so is each read of a dry run. Running a batch again is harmless:
// it removes only what is still there and older than the cutoff. (If the
// server has not yet ended the transaction of the try that broke, the
// retry skips the sessions it still locks, as it skips sessions being
// written; a later run removes them.)
//
// The count needs more care: when the connection breaks after a batch's
// COMMIT was sent, the batch may have committed, and a plain retry would
// then remove the next sessions in its place and leave it out of the
// result. So the retry first asks the server how that transaction ended
// (txid_status): if it committed, the batch is counted and the job goes on
// with the next one; if it rolled back, the batch runs again. The result
// stays exact. Only when that cannot be learned (the server still runs the
// transaction when the batch's retry budget or the context ends, retries
// are off with WithMaxRetryWait(0), or the Store is on a bun.Conn, where
// nothing is retried) does the call stop with an error that wraps
// lakesession.ErrOutcomeUnknown and says how many sessions that batch
// held: they are not in the result, and may or may not be removed; run the
// job again to remove what is left.
//
// Nothing is retried on a bun.Tx (a broken connection rolls back all of
// the caller's transaction, so no outcome there is unknown) or on SQLite.
// On error, the result counts only the batches known to have committed.
//
// The call has one span, lakesession.PruneSessions, with the counts of
// its result (see "Observability" in the package documentation).
func (s *Store) PruneSessions(ctx context.Context, opts PruneOptions) (PruneResult, error) {
	ctx, c := s.begin(ctx, opPruneSessions, "")
	if opts.DryRun && c.span.IsRecording() {
		c.span.SetAttributes(dryRunAttrs...)
	}
	size, err := pruneBatchSize(opts)
	if err != nil {
		c.end(ctx, err)
		return PruneResult{}, fmt.Errorf("prune sessions: %w", err)
	}
	res, err := s.prune(ctx, &c, opts.Before, size, opts.DryRun, opts.Progress)
	c.endRetention(ctx, res, err)
	if err != nil {
		verb := "prune"
		if opts.DryRun {
			verb = "count (dry run)"
		}
		return res, fmt.Errorf("%s sessions not updated since %s: %w", verb, opts.Before.Format(time.RFC3339), err)
	}
	return res, nil
}

// pruneBatchSize checks opts and returns the batch size to use.
func pruneBatchSize(opts PruneOptions) (int, error) {
	size := opts.BatchSize
	switch {
	case opts.Before.IsZero():
		return 0, errors.New("option Before is zero; set it to the oldest last-update time to keep, such as time.Now().AddDate(0, 0, -30)")
	case size == 0:
		return DefaultPruneBatchSize, nil
	case size < 0 || size > MaxPruneBatchSize:
		return 0, fmt.Errorf("BatchSize is %d; use 1 to %d, or 0 for %d", size, MaxPruneBatchSize, DefaultPruneBatchSize)
	}
	return size, nil
}

// DeleteSessions removes every session not updated since notUpdatedSince
// (updated_at < notUpdatedSince), with its items, and returns how many
// sessions it removed: a retention job. It is PruneSessions with the
// default batch size (DefaultPruneBatchSize sessions per transaction on a
// *bun.DB; see PruneSessions for bun.Tx and bun.Conn, and for what is
// retried). A session updated after the cutoff is never removed; on
// SQLite, whose times have whole seconds, the cutoff is rounded down to a
// second for that. A session that gets items while it runs is kept with
// all its items, or removed with all of them and started afresh by the
// new items; never partly removed. On error, n counts the sessions of the
// batches that committed before it. Its span is
// lakesession.DeleteSessions.
func (s *Store) DeleteSessions(ctx context.Context, notUpdatedSince time.Time) (n int64, err error) {
	ctx, c := s.begin(ctx, opDeleteSessions, "")
	if notUpdatedSince.IsZero() {
		err := errors.New("the time is zero; pass the oldest last-update time to keep, such as time.Now().Add(-30 * 24 * time.Hour)")
		c.end(ctx, err)
		return 0, fmt.Errorf("delete sessions: %w", err)
	}
	res, err := s.prune(ctx, &c, notUpdatedSince, DefaultPruneBatchSize, false, nil)
	c.endRetention(ctx, res, err)
	if err != nil {
		return res.Sessions, fmt.Errorf("delete sessions not updated since %s: %w", notUpdatedSince.Format(time.RFC3339), err)
	}
	return res.Sessions, nil
}

// dryRunAttrs mark the span of a dry run, which reads and deletes nothing.
var dryRunAttrs = []attribute.KeyValue{semconv.DBOperationName("SELECT"), AttrDryRun.Bool(true)}

// endRetention ends the span of a PruneSessions or DeleteSessions call
// with the counts of its result: with an error, those of the batches
// that committed before it.
func (c *call) endRetention(ctx context.Context, res PruneResult, err error) {
	if c.span.IsRecording() {
		c.span.SetAttributes(AttrSessions.Int64(res.Sessions), AttrItems.Int64(res.Items), AttrBatches.Int(res.Batches))
	}
	c.end(ctx, err)
}

// batchCounts are one batch's counts; scanned is how many sessions the
// batch found (locked, or read by a dry run), which tells whether more may
// follow.
type batchCounts struct {
	sessions, items int64
	scanned         int
}

// pruneKey is the (updated_at, session_id) of the last session of a batch:
// the next batch continues above it. updated is a time.Time on PostgreSQL
// (the stored wall clock), the stored text on SQLite.
type pruneKey struct {
	updated any
	id      string
}

func (s *Store) prune(ctx context.Context, c *call, before time.Time, size int, dryRun bool, progress func(PruneProgress)) (PruneResult, error) {
	q := s.rq
	// PostgreSQL compares the instant in the connection's TimeZone, the one
	// updated_at was written in; SQLite's times are UTC text with whole
	// seconds, so the cutoff is rounded down to keep a session updated
	// within the cutoff's second.
	var cutoff any = before
	if s.dialect != dialect.PG {
		cutoff = before.UTC().Format("2006-01-02 15:04:05")
	}
	var (
		res PruneResult
		key *pruneKey
	)
	for {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		var (
			b   batchCounts
			err error
		)
		switch {
		case dryRun:
			b, key, err = s.countBatch(ctx, c, q, cutoff, key, size)
		case s.dialect == dialect.PG:
			b, key, err = s.deleteBatchPG(ctx, c, q, cutoff, key, size)
		default:
			b, err = s.deleteBatchSQLite(ctx, c, q, cutoff, size)
		}
		if err != nil {
			return res, err
		}
		if b.sessions > 0 {
			res.Batches++
			res.Sessions += b.sessions
			res.Items += b.items
			if progress != nil {
				progress(PruneProgress{Batch: res.Batches, Sessions: b.sessions, Items: b.items, Total: res})
			}
		}
		if b.scanned < size {
			return res, nil
		}
	}
}

// deleteBatchPG removes one batch in a transaction of two statements.
//
// Why a session is never partly removed: AddItems' upsert takes the
// session row's lock (ON CONFLICT DO UPDATE) before it inserts the items,
// in one statement, and a writer that inserts items without it (such as
// Python's SQLAlchemySession) takes a KEY SHARE lock on the row through the
// foreign key. The first statement locks the batch's session rows FOR
// UPDATE SKIP LOCKED:
//
//   - a session a writer holds is skipped: its write commits a newer
//     updated_at, and the session is kept with all its items;
//   - a write that committed before the lock made updated_at newer than the
//     cutoff: PostgreSQL re-checks the WHERE on the row's latest version
//     after locking it (READ COMMITTED), and leaves it out;
//   - a session the batch locked cannot get items until the batch commits:
//     AddItems waits for the lock, finds the row gone, and starts the
//     session afresh with only its new items (a writer that inserts items
//     without creating the session, as Python does when it saw the row,
//     fails on the foreign key instead, and stores nothing).
//
// The second statement deletes the items and the locked rows with a
// snapshot taken after the locks were held, so it sees every item committed
// before them: none is left behind. (One statement could not do this: its
// snapshot would predate the locks.) The lock is the row lock, so the batch
// never waits for writers of other sessions, nor they for it beyond its
// own rows.
//
// On a *bun.DB the batch is tried again as run says (see PruneSessions):
// when a try's COMMIT was sent and its connection broke before the answer,
// the next try first asks the server how that transaction ended, by the id
// the delete returned, and counts the batch if it committed.
func (s *Store) deleteBatchPG(ctx context.Context, c *call, q retentionStatements, cutoff any, after *pruneKey, size int) (batchCounts, *pruneKey, error) {
	var (
		b    batchCounts
		next *pruneKey
		// sent is the batch of the last try, when its COMMIT was sent and
		// its outcome is unknown.
		sent *sentBatch
	)
	err := s.run(ctx, c, func(ctx context.Context, a attempt) error {
		b, next = batchCounts{}, after
		if sent != nil {
			committed, err := commitStatus(ctx, a.c, q, sent.xid)
			if err != nil {
				return err
			}
			if committed {
				b, next, sent = sent.counts, sent.last, nil
				return nil
			}
			sent = nil // rolled back: the batch runs again
		}
		var (
			tb   batchCounts
			last *pruneKey
			xid  int64
			done bool // the statements ran; only the COMMIT is left
		)
		// The statements take the call's ctx: bun hands a nested
		// transaction (a savepoint on a bun.Tx) the context its outer
		// transaction began with.
		err := a.db.RunInTx(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted}, func(_ context.Context, tx bun.Tx) error {
			tc := newConn(tx, true)
			ids, l, err := s.lockBatch(ctx, tc, q, cutoff, after, size)
			if err != nil {
				return err
			}
			tb = batchCounts{scanned: len(ids)}
			if len(ids) == 0 {
				return nil
			}
			if err := tc.queryRow(ctx, q.deleteLocked, ids, ids).Scan(&tb.sessions, &tb.items, &xid); err != nil {
				return err
			}
			last, done = l, true
			return nil
		})
		if err != nil {
			// On a bun.Tx nothing is unknown: a broken connection rolls
			// the caller's whole transaction back.
			if done && s.unknownOutcomes && commitUnanswered(err) {
				sent = &sentBatch{counts: tb, last: last, xid: xid}
			}
			return err
		}
		b = tb
		if last != nil {
			next = last
		}
		return nil
	})
	if err != nil {
		if sent != nil {
			return batchCounts{}, after, fmt.Errorf("%w: a batch of %d sessions and %d items whose COMMIT was sent is not counted; they may or may not be removed, and a later run removes what is left: %w",
				lakesession.ErrOutcomeUnknown, sent.counts.sessions, sent.counts.items, err)
		}
		return batchCounts{}, after, err
	}
	return b, next, nil
}

// commitUnanswered reports whether err, the error of a batch's COMMIT,
// leaves open whether it committed: anything but the server's refusal, and
// the refusals that may come after the commit (see afterCommit).
// The classes of classify do not tell: pgx (v5.12) reports a connection
// that broke after the COMMIT was sent as "conn closed", an error it marks
// safe to retry, as if nothing had been sent.
func commitUnanswered(err error) bool {
	var pgErr *pgconn.PgError
	return !errors.As(err, &pgErr) || classify(err) == broken || afterCommit(pgErr)
}

// sentBatch is a batch whose COMMIT may have been sent on a connection
// that broke before the answer came back: it may or may not have
// committed.
type sentBatch struct {
	counts batchCounts
	last   *pruneKey
	xid    int64 // its transaction's id, from txid_current()
}

// commitStatus reports whether the transaction xid committed; false when
// it rolled back (or was never seen to end: a server that lost the
// connection before the COMMIT arrived aborts the transaction). While the
// server still runs it, commitStatus returns commitPendingError, which run
// retries.
func commitStatus(ctx context.Context, c conn, q retentionStatements, xid int64) (bool, error) {
	var status sql.NullString
	if err := c.queryRow(ctx, q.commitStatus, xid).Scan(&status); err != nil {
		return false, fmt.Errorf("ask how the batch's transaction ended: %w", err)
	}
	switch status.String {
	case "committed":
		return true, nil
	case "aborted":
		return false, nil
	case "in progress":
		return false, commitPendingError{}
	}
	return false, fmt.Errorf("the server no longer knows how the batch's transaction %d ended (txid_status = %q)", xid, status.String)
}

// commitPendingError says that the transaction of a batch whose COMMIT may
// have been lost is still running on the server: the try that asked wrote
// nothing, and a later one asks again. pgconn.SafeToRetry reports it, so
// run tries again; its error.type is lakesession.ErrOutcomeUnknown.
type commitPendingError struct{}

func (commitPendingError) Error() string {
	return "the batch's transaction is still in progress on the server"
}

func (commitPendingError) SafeToRetry() bool { return true }

func (commitPendingError) Unwrap() error { return lakesession.ErrOutcomeUnknown }

// lockBatch locks the next batch of sessions and returns their ids and the
// greatest key among them.
func (s *Store) lockBatch(ctx context.Context, c conn, q retentionStatements, cutoff any, after *pruneKey, size int) ([]string, *pruneKey, error) {
	var (
		rows *sql.Rows
		err  error
	)
	if after == nil {
		rows, err = c.query(ctx, q.lockFirst, cutoff, size)
	} else {
		rows, err = c.query(ctx, q.lockAfter, cutoff, after.updated, after.id, size)
	}
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	ids := make([]string, 0, size)
	var last *pruneKey
	for rows.Next() {
		var (
			id      string
			updated time.Time
		)
		if err := rows.Scan(&id, &updated); err != nil {
			return nil, nil, err
		}
		ids = append(ids, id)
		// Rows come in key order, unless a row was updated (still before
		// the cutoff) between the snapshot and its lock: keep the greatest.
		if last == nil || keyAfterPG(updated, id, last) {
			last = &pruneKey{updated: updated, id: id}
		}
	}
	if err := rows.Err(); err != nil {
		return nil, nil, err
	}
	return ids, last, rows.Close()
}

func keyAfterPG(updated time.Time, id string, k *pruneKey) bool {
	ku := k.updated.(time.Time)
	return updated.After(ku) || updated.Equal(ku) && id > k.id
}

// deleteBatchSQLite removes one batch: the items, then the session rows,
// of the oldest size sessions before the cutoff, in one transaction. The
// transaction holds SQLite's write lock from its first DELETE (from BEGIN
// with sqlitedb), so no write comes between the two statements and both
// select the same sessions. A batch restarts from the oldest session: a
// DELETE leaves no dead index entries to step over on SQLite.
func (s *Store) deleteBatchSQLite(ctx context.Context, c *call, q retentionStatements, cutoff any, size int) (batchCounts, error) {
	var b batchCounts
	err := s.run(ctx, c, func(ctx context.Context, a attempt) error {
		b = batchCounts{}
		return a.db.RunInTx(ctx, nil, func(_ context.Context, tx bun.Tx) error { // the call's ctx, as above
			tc := newConn(tx, false)
			res, err := tc.exec(ctx, q.deleteItems, cutoff, size)
			if err != nil {
				return err
			}
			if b.items, err = res.RowsAffected(); err != nil {
				return err
			}
			if res, err = tc.exec(ctx, q.deleteSessions, cutoff, size); err != nil {
				return err
			}
			b.sessions, err = res.RowsAffected()
			b.scanned = int(b.sessions)
			return err
		})
	})
	if err != nil {
		return batchCounts{}, err
	}
	return b, nil
}

// countBatch reads the next batch of sessions before the cutoff and counts
// their items, without locking or writing anything.
func (s *Store) countBatch(ctx context.Context, c *call, q retentionStatements, cutoff any, after *pruneKey, size int) (batchCounts, *pruneKey, error) {
	var (
		b    batchCounts
		next *pruneKey
	)
	err := s.run(ctx, c, func(ctx context.Context, a attempt) error {
		var err error
		b, next, err = s.countRows(ctx, a.c, q, cutoff, after, size)
		return err
	})
	if err != nil {
		return batchCounts{}, after, err
	}
	return b, next, nil
}

// countRows is one try of countBatch, on c.
func (s *Store) countRows(ctx context.Context, c conn, q retentionStatements, cutoff any, after *pruneKey, size int) (batchCounts, *pruneKey, error) {
	var (
		rows *sql.Rows
		err  error
	)
	if after == nil {
		rows, err = c.query(ctx, q.countFirst, cutoff, size)
	} else {
		rows, err = c.query(ctx, q.countAfter, cutoff, after.updated, after.id, size)
	}
	if err != nil {
		return batchCounts{}, after, err
	}
	defer rows.Close()
	var (
		b    batchCounts
		next = after
	)
	for rows.Next() {
		var (
			id    string
			items int64
			k     pruneKey
		)
		if s.dialect == dialect.PG {
			var updated time.Time
			err = rows.Scan(&id, &updated, &items)
			k.updated = updated
		} else {
			var updated string
			err = rows.Scan(&id, &updated, &items)
			k.updated = updated
		}
		if err != nil {
			return batchCounts{}, after, err
		}
		k.id = id
		next = &k
		b.scanned++
		b.sessions++
		b.items += items
	}
	if err := rows.Err(); err != nil {
		return batchCounts{}, after, err
	}
	return b, next, rows.Close()
}

// retentionStatements are the SQL texts of the retention calls, built from
// the Store's quoted table names.
type retentionStatements struct {
	// lockFirst locks the oldest sessions before the cutoff, oldest first,
	// skipping rows another transaction holds (args: cutoff, limit);
	// lockAfter continues above an (updated_at, session_id) key (args:
	// cutoff, updated_at, session id, limit). They return session_id and
	// updated_at. PostgreSQL only.
	lockFirst query
	lockAfter query
	// deleteLocked deletes the items and the rows of the sessions locked
	// (args: text[] of ids, twice) and returns how many sessions and items
	// it deleted, and the transaction's id. PostgreSQL only.
	deleteLocked query
	// commitStatus tells how the transaction of a batch ended (arg: its
	// id): committed, aborted or in progress. PostgreSQL only.
	commitStatus query

	// deleteItems deletes the items of the oldest sessions before the
	// cutoff, and deleteSessions then their rows, in one transaction
	// (args: cutoff, limit). SQLite only.
	deleteItems    query
	deleteSessions query

	// countFirst reads the oldest sessions before the cutoff with their
	// item counts (args: cutoff, limit); countAfter continues above a key
	// (args: cutoff, updated_at, session id, limit). They return
	// session_id, updated_at as a key and the count.
	countFirst query
	countAfter query
}

func buildRetentionStatements(d dialect.Name, n tableNames) retentionStatements {
	names := strings.NewReplacer("{S}", n.sessions, "{M}", n.messages)
	pg := d == dialect.PG
	r := replacer{names, pg}
	if pg {
		// The cutoff instant is compared in the connection's TimeZone, the
		// one updated_at was written in; keys are the stored wall clock.
		// Every scan follows the (updated_at, session_id) index.
		const old = `updated_at < CAST(CAST(? AS timestamptz) AS timestamp)`
		const above = ` AND (updated_at, session_id) > (CAST(? AS timestamp), ?)`
		const count = `SELECT c.session_id, c.updated_at, ` +
			`(SELECT count(*) FROM {M} m WHERE m.session_id = c.session_id) ` +
			`FROM (SELECT session_id, updated_at FROM {S} WHERE `
		return retentionStatements{
			lockFirst: r.Replace(`SELECT session_id, updated_at FROM {S} WHERE ` + old +
				` ORDER BY updated_at, session_id LIMIT ? FOR UPDATE SKIP LOCKED`),
			lockAfter: r.Replace(`SELECT session_id, updated_at FROM {S} WHERE ` + old + above +
				` ORDER BY updated_at, session_id LIMIT ? FOR UPDATE SKIP LOCKED`),
			deleteLocked: r.Replace(`WITH m AS (DELETE FROM {M} WHERE session_id = ANY(CAST(? AS text[])) RETURNING 1), ` +
				`d AS (DELETE FROM {S} WHERE session_id = ANY(CAST(? AS text[])) RETURNING 1) ` +
				`SELECT (SELECT count(*) FROM d), (SELECT count(*) FROM m), txid_current()`),
			// txid_status is in PostgreSQL 10 and later, for a client that
			// lost its connection during a COMMIT.
			commitStatus: r.Replace(`SELECT txid_status(?)`),
			countFirst: r.Replace(count + old +
				` ORDER BY updated_at, session_id LIMIT ?) c ORDER BY c.updated_at, c.session_id`),
			countAfter: r.Replace(count + old + above +
				` ORDER BY updated_at, session_id LIMIT ?) c ORDER BY c.updated_at, c.session_id`),
		}
	}
	// SQLite: times are UTC text, compared as text.
	const batch = `(SELECT session_id FROM {S} WHERE updated_at < ? ORDER BY updated_at, session_id LIMIT ?)`
	const count = `SELECT c.session_id, c.updated_key, ` +
		`(SELECT count(*) FROM {M} m WHERE m.session_id = c.session_id) ` +
		`FROM (SELECT session_id, updated_at, CAST(updated_at AS TEXT) AS updated_key FROM {S} WHERE updated_at < ?`
	return retentionStatements{
		deleteItems:    r.Replace(`DELETE FROM {M} WHERE session_id IN ` + batch),
		deleteSessions: r.Replace(`DELETE FROM {S} WHERE session_id IN ` + batch),
		countFirst: r.Replace(count +
			` ORDER BY updated_at, session_id LIMIT ?) c ORDER BY c.updated_at, c.session_id`),
		countAfter: r.Replace(count + ` AND (updated_at, session_id) > (?, ?)` +
			` ORDER BY updated_at, session_id LIMIT ?) c ORDER BY c.updated_at, c.session_id`),
	}
}
