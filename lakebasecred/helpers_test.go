package lakebasecred

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lakesession/lakesession/internal/leakcheck"
	"github.com/lakesession/lakesession/lakebasecred/lakebasetest"
)

// TestMain fails the run when a goroutine of this package (a mint) is
// still alive after every test has finished.
func TestMain(m *testing.M) { leakcheck.Main(m, sourceFrame) }

// sourceFrame marks the goroutines running code of a Source.
const sourceFrame = "lakebasecred.(*Source)"

// leakedGoroutines waits up to d for every goroutine running code of this
// package (a mint) to end, and returns the stacks of those that did not.
func leakedGoroutines(d time.Duration) string { return leakcheck.Stacks(d, sourceFrame) }

// fakeClock is a clock that moves only when told, shared by the fake
// control plane (token expiry times) and the Source (its time and its
// backoff timers).
type fakeClock struct {
	mu     sync.Mutex
	t      time.Time
	timers []fakeTimer
}

type fakeTimer struct {
	at time.Time
	ch chan time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// After fires once the clock has been advanced by d.
func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.t
		return ch
	}
	c.timers = append(c.timers, fakeTimer{at: c.t.Add(d), ch: ch})
	return ch
}

// Advance moves the clock and fires the timers that are due.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	kept := c.timers[:0]
	for _, tm := range c.timers {
		if tm.at.After(c.t) {
			kept = append(kept, tm)
			continue
		}
		tm.ch <- c.t
	}
	c.timers = kept
}

// pending reports how many timers wait to fire.
func (c *fakeClock) pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timers)
}

// logRecord is one captured slog record, attributes flattened to text.
type logRecord struct {
	Level slog.Level
	Msg   string
	Attrs map[string]string
}

// logSink is a slog.Handler that keeps every record, and the text form of
// all of them for secret scanning.
type logSink struct {
	mu      sync.Mutex
	records []logRecord
	text    bytes.Buffer
}

func (h *logSink) Enabled(context.Context, slog.Level) bool { return true }
func (h *logSink) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *logSink) WithGroup(string) slog.Handler            { return h }

func (h *logSink) Handle(_ context.Context, r slog.Record) error {
	rec := logRecord{Level: r.Level, Msg: r.Message, Attrs: map[string]string{}}
	r.Attrs(func(a slog.Attr) bool {
		rec.Attrs[a.Key] = a.Value.Resolve().String()
		return true
	})
	h.mu.Lock()
	defer h.mu.Unlock()
	h.records = append(h.records, rec)
	fmt.Fprintf(&h.text, "%s %s %v\n", r.Level, r.Message, rec.Attrs)
	return nil
}

func (h *logSink) all() []logRecord {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]logRecord(nil), h.records...)
}

func (h *logSink) String() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.text.String()
}

// await returns the records whose message contains msg once there are at
// least n, or after 30 s. A mint reports after it publishes its token and
// clears its flight, so waitIdle can return before the report is written.
func (h *logSink) await(msg string, n int) []logRecord {
	deadline := time.Now().Add(30 * time.Second)
	for {
		if r := h.find(msg); len(r) >= n || time.Now().After(deadline) {
			return r
		}
		time.Sleep(time.Millisecond)
	}
}

// find returns the records whose message contains msg.
func (h *logSink) find(msg string) []logRecord {
	var out []logRecord
	for _, r := range h.all() {
		if strings.Contains(r.Msg, msg) {
			out = append(out, r)
		}
	}
	return out
}

const (
	instName = "my-instance"
	instHost = "my-instance.database.example.com"
	epName   = "projects/my-project/branches/production/endpoints/primary"
	epHost   = "ep-primary.database.example.com"
)

// newFake starts a fake control plane with one provisioned instance and one
// autoscaling endpoint.
func newFake(t *testing.T, opts ...lakebasetest.Option) *lakebasetest.Server {
	t.Helper()
	fake := lakebasetest.NewServer(t, opts...)
	fake.AddInstance(lakebasetest.Instance{Name: instName, ReadWriteDNS: instHost, ReadOnlyDNS: "ro-" + instHost})
	fake.AddEndpoint(lakebasetest.Endpoint{Name: epName, Host: epHost})
	return fake
}

// newSource makes a Source on fake and closes it when t ends.
func newSource(t *testing.T, fake *lakebasetest.Server, target Target, opts ...Option) *Source {
	t.Helper()
	// Quiet by default; a test that reads the log passes its own WithLogger.
	opts = append([]Option{WithLogger(slog.New(&logSink{}))}, opts...)
	s, err := New(context.Background(), fake.WorkspaceClient(), target, opts...)
	if err != nil {
		t.Fatalf("New(%+v): %v", target, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// waitIdle waits for the mint in progress, if any, to finish.
func (s *Source) waitIdle() {
	s.mu.Lock()
	f := s.flight
	s.mu.Unlock()
	if f != nil {
		<-f.done
	}
}

// mustToken calls Token with a generous deadline and fails t on error.
func mustToken(t *testing.T, s *Source) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tok, err := s.Token(ctx)
	if err != nil {
		t.Fatalf("Token: %v", err)
	}
	if tok == "" {
		t.Fatal("Token returned an empty token")
	}
	return tok
}

// gate blocks the fake's OnMint hook until released, so that a test can
// hold a mint in flight.
type gate struct {
	entered chan struct{}
	release chan struct{}
	once    sync.Once
}

func newGate(t *testing.T, fake *lakebasetest.Server) *gate {
	g := &gate{entered: make(chan struct{}, 100), release: make(chan struct{})}
	fake.OnMint(func(lakebasetest.Mint) error {
		g.entered <- struct{}{}
		<-g.release
		return nil
	})
	t.Cleanup(g.open)
	return g
}

func (g *gate) open() { g.once.Do(func() { close(g.release) }) }

// waitEntered waits until a mint reached the hook.
func (g *gate) waitEntered(t *testing.T) {
	t.Helper()
	select {
	case <-g.entered:
	case <-time.After(30 * time.Second):
		t.Fatal("no mint reached the credential API")
	}
}
