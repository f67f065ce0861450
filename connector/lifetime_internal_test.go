package connector

import (
	"context"
	"database/sql"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lakesession/lakesession/internal/testdb"
)

// fakeClock is a clock that moves only when told.
type fakeClock struct{ ns atomic.Int64 }

func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) set(t time.Time)         { c.ns.Store(t.UnixNano()) }
func (c *fakeClock) advance(d time.Duration) { c.ns.Add(int64(d)) }

// retireAfter draws ages in the last tenth of the lifetime, never past it,
// spread over all of that tenth.
func TestRetireAfterIsSpreadWithinTheLifetime(t *testing.T) {
	const lifetime = 45 * time.Minute
	lo, hi := lifetime, time.Duration(0)
	seconds := map[time.Duration]bool{}
	for range 10000 {
		d := retireAfter(lifetime)
		if d > lifetime || d < lifetime*9/10 {
			t.Fatalf("retireAfter(%s) = %s, want between %s and %s", lifetime, d, lifetime*9/10, lifetime)
		}
		lo, hi = min(lo, d), max(hi, d)
		seconds[d.Truncate(time.Second)] = true
	}
	if lo > 41*time.Minute || hi < 44*time.Minute+30*time.Second {
		t.Errorf("10000 draws span %s to %s, want about 40m30s to 45m", lo, hi)
	}
	if len(seconds) < 200 {
		t.Errorf("10000 connections retire in %d distinct seconds, want them spread over the 270 of the last tenth", len(seconds))
	}
}

// Connections opened together retire at different moments in the last tenth
// of their lifetime: none before it, none after it.
func TestLifetimesAreJitteredWithinTheMax(t *testing.T) {
	const lifetime = 10 * time.Minute
	c, err := New(Config{DSN: testdb.NewDatabase(t), ConnMaxLifetime: lifetime})
	if err != nil {
		t.Fatal(err)
	}
	clock := &fakeClock{}
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	clock.set(t0)
	c.r.now = clock.Now
	db := OpenDB(c)
	defer db.Close()
	const n = 20
	db.SetMaxOpenConns(n)
	db.SetMaxIdleConns(n)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// take holds n connections at once and returns their backends.
	take := func() map[int]bool {
		t.Helper()
		conns := make([]*sql.Conn, 0, n)
		pids := map[int]bool{}
		for range n {
			conn, err := db.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			conns = append(conns, conn)
			var pid int
			if err := conn.QueryRowContext(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
				t.Fatal(err)
			}
			pids[pid] = true
		}
		for _, conn := range conns {
			conn.Close()
		}
		return pids
	}
	kept := func(now, first map[int]bool) int {
		k := 0
		for pid := range now {
			if first[pid] {
				k++
			}
		}
		return k
	}

	first := take()
	if len(first) != n {
		t.Fatalf("%d backends for %d connections", len(first), n)
	}
	clock.set(t0.Add(lifetime*9/10 - time.Millisecond))
	if k := kept(take(), first); k != n {
		t.Errorf("%d of %d connections retired before the last tenth of their lifetime", n-k, n)
	}
	clock.set(t0.Add(lifetime * 95 / 100))
	if k := kept(take(), first); k == 0 || k == n {
		t.Errorf("halfway through the last tenth, %d of %d connections opened together are kept, want some but not all", k, n)
	}
	clock.set(t0.Add(lifetime))
	if k := kept(take(), first); k != 0 {
		t.Errorf("%d of %d connections are still used at the end of their lifetime", k, n)
	}
}

// A negative lifetime keeps connections whatever their age, and OpenDB sets
// no pool lifetime then.
func TestNoLifetime(t *testing.T) {
	c, err := New(Config{DSN: testdb.NewDatabase(t), ConnMaxLifetime: -1})
	if err != nil {
		t.Fatal(err)
	}
	clock := &fakeClock{}
	clock.set(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	c.r.now = clock.Now
	db := OpenDB(c)
	defer db.Close()
	db.SetMaxOpenConns(1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pid := func() int {
		var p int
		if err := db.QueryRowContext(ctx, "SELECT pg_backend_pid()").Scan(&p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	first := pid()
	clock.advance(1000 * time.Hour)
	if got := pid(); got != first {
		t.Errorf("a connection without a lifetime was retired (backend %d, then %d)", first, got)
	}
}
