// Command scalebench measures the session store on a table of 10 million
// items against the same calls on a table of 10,000, and a retention prune
// of half the sessions while writers keep working. It is the scale
// benchmark behind `make bench-scale`; it is not part of `make test`.
//
// # Usage
//
//	./scripts/with-postgres.sh go run ./internal/scalebench
//
// or `make bench-scale` (scripts/bench-scale.sh), which does the same. It
// connects to the server LAKESESSION_TEST_DATABASE_URL names (a superuser
// URL), creates a database of its own there, and drops it at the end
// (-keep keeps it). It takes 10 to 30 minutes on a 2-core machine and about
// 4 GB of disk. Flags change the sizes, for a quick try:
//
//	go run ./internal/scalebench -sessions 20000 -big 10000
//
// # What it does
//
//  1. Loads, with SQL (generate_series), the large tables: -sessions
//     sessions (200,000) of -items items (50), plus one session of -big
//     items (100,000): 10.1 million items. Sessions interleave in time as
//     real traffic does: -interleave sessions (1,000) are active at once,
//     taking turns, so a session's items lie about 1,000 rows apart in the
//     heap. Times span the last 30 days; the newest block of sessions was
//     written in the last minutes. The small tables (10,000 items: 200
//     sessions of 50) are built the same way. The tables have the store's
//     schema; the load drops their secondary indexes and foreign key and
//     builds them again afterwards, then runs VACUUM (ANALYZE), as
//     autovacuum would have.
//  2. Counts the pages GetItems(20) touches (EXPLAIN (ANALYZE, BUFFERS) of
//     the store's statement) on cold sessions picked at random, on an
//     active session, and on the small table; and how many distinct heap
//     pages hold the 20 items.
//  3. Times, through the library, with 1 and 16 workers: GetItems(20),
//     GetItems(0) of a 50-item session, AddItems(2) and PopItem, on active
//     sessions (the newest block: warm pages) and on cold ones (each call a
//     session not touched before, picked at random from the whole table);
//     ListSessions' first page and its 50th page by cursor (20 sessions a
//     page); and GetItems(20) of the 100,000-item session. Every call on
//     the large tables is interleaved with the same call on the small
//     ones, so both see the same load, and the ratio is large over small.
//  4. Prunes half the sessions (the oldest, through PruneSessions) while 8
//     workers keep adding items to other sessions, and reports the prune's
//     duration, its largest and slowest batch, the WAL written, and the
//     writers' latency before and during the prune.
//  5. Optionally (-cluster), CLUSTERs the large messages table on its
//     (session_id, created_at, id) index and counts GetItems(20)'s pages
//     again.
//
// The report is Markdown on standard output; progress goes to standard
// error. The exit status is 1 when a target is missed, 2 on an error.
//
// # Targets
//
//   - Active sessions: every call within 1.5x of its time on the small
//     tables (median latency).
//   - Cold sessions: GetItems(20) touches no more heap pages than it
//     returns items (plus a page or two), beyond the index path.
//   - During the prune, the writers' p99 latency within 3x of their p99
//     before it, and no call over 1 s.
package main
