package faultproxy_test

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/lakesession/lakesession/internal/faultproxy"
	"github.com/lakesession/lakesession/internal/leakcheck"
	"github.com/lakesession/lakesession/internal/pgserver"
)

// TestMain fails the run when a goroutine of a proxy outlives the tests:
// Close, at each test's cleanup, must end them all (and the test servers
// theirs).
func TestMain(m *testing.M) {
	leakcheck.Main(m, "faultproxy.(*Proxy)", "faultproxy_test.(*lineServer)")
}

// lineServer is a TCP server that answers each line it reads with "ok:"
// and the line, and records the lines it got and the ends of stream it saw.
type lineServer struct {
	ln    net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	lines []string
	ends  int // connections whose client side ended
	conns []net.Conn
}

func startLineServer(t *testing.T) *lineServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &lineServer{ln: ln}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.mu.Unlock()
			s.wg.Add(1)
			go s.serve(c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		s.mu.Lock()
		for _, c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

func (s *lineServer) serve(c net.Conn) {
	defer s.wg.Done()
	defer c.Close()
	r := bufio.NewReader(c)
	for {
		line, err := r.ReadString('\n')
		if line != "" {
			s.mu.Lock()
			s.lines = append(s.lines, strings.TrimSuffix(line, "\n"))
			s.mu.Unlock()
			if _, werr := c.Write([]byte("ok:" + line)); werr != nil {
				return
			}
		}
		if err != nil {
			s.mu.Lock()
			s.ends++
			s.mu.Unlock()
			return
		}
	}
}

func (s *lineServer) got() ([]string, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.lines...), s.ends
}

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type client struct {
	net.Conn
	r *bufio.Reader
}

func dial(t *testing.T, p *faultproxy.Proxy) *client {
	t.Helper()
	c, err := dialErr(t, p)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// dialErr dials p; a reset that arrives before the dial returns is the
// dial's error.
func dialErr(t *testing.T, p *faultproxy.Proxy) (*client, error) {
	t.Helper()
	c, err := net.DialTimeout("tcp", p.Addr(), 5*time.Second)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return &client{Conn: c, r: bufio.NewReader(c)}, nil
}

// refused reports whether a dial and one round trip through p failed with a
// reset or an end of stream, before any byte of the server.
func refused(t *testing.T, p *faultproxy.Proxy) error {
	t.Helper()
	c, err := dialErr(t, p)
	if err == nil {
		var ans string
		if ans, err = c.roundTrip("x"); err == nil {
			return errors.New("got " + ans)
		}
	}
	if !errors.Is(err, io.EOF) && !isReset(err) {
		return err
	}
	return nil
}

// roundTrip sends line and returns the answer, or the read error.
func (c *client) roundTrip(line string) (string, error) {
	if _, err := c.Write([]byte(line + "\n")); err != nil {
		return "", err
	}
	ans, err := c.r.ReadString('\n')
	return strings.TrimSuffix(ans, "\n"), err
}

func TestProxyForwards(t *testing.T) {
	s := startLineServer(t)
	p := faultproxy.Start(t, s.ln.Addr().String())
	if p.Host() != "127.0.0.1" || p.Port() == 0 || p.Addr() != faultproxy.HostPort(p.Host(), p.Port()) {
		t.Fatalf("Host %q Port %d Addr %q", p.Host(), p.Port(), p.Addr())
	}
	c := dial(t, p)
	for _, line := range []string{"a", "b"} {
		if ans, err := c.roundTrip(line); err != nil || ans != "ok:"+line {
			t.Fatalf("round trip %q: %q, %v", line, ans, err)
		}
	}
	if p.Accepted() != 1 || p.Open() != 1 {
		t.Errorf("Accepted %d Open %d, want 1 and 1", p.Accepted(), p.Open())
	}
}

// While Refuse is on, a client's connection ends before any byte of the
// server, and the server never sees it; Accepted counts each dial.
func TestRefuse(t *testing.T) {
	s := startLineServer(t)
	p := faultproxy.Start(t, s.ln.Addr().String())
	p.Refuse(true)
	for i := range 3 {
		if err := refused(t, p); err != nil {
			t.Fatalf("dial %d through a refusing proxy: %v, want a reset or EOF", i, err)
		}
	}
	if got := p.Accepted(); got != 3 {
		t.Errorf("Accepted = %d, want 3", got)
	}
	if lines, _ := s.got(); len(lines) != 0 {
		t.Errorf("the server got %q while the proxy refused", lines)
	}

	p.Refuse(false)
	if ans, err := dial(t, p).roundTrip("y"); err != nil || ans != "ok:y" {
		t.Fatalf("after Refuse(false): %q, %v", ans, err)
	}
	if got := p.Accepted(); got != 4 {
		t.Errorf("Accepted = %d, want 4", got)
	}
}

func isReset(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "connection reset") || strings.Contains(err.Error(), "broken pipe"))
}

// A proxy whose target is down behaves as a refusing one.
func TestTargetDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	p := faultproxy.Start(t, addr)
	if err := refused(t, p); err != nil {
		t.Fatalf("through a proxy whose target is down: %v, want a reset or EOF", err)
	}
}

// CutAll ends every open connection on both sides; new ones work.
func TestCutAll(t *testing.T) {
	s := startLineServer(t)
	p := faultproxy.Start(t, s.ln.Addr().String())
	c1, c2 := dial(t, p), dial(t, p)
	for _, c := range []*client{c1, c2} {
		if _, err := c.roundTrip("before"); err != nil {
			t.Fatal(err)
		}
	}
	p.CutAll()
	for i, c := range []*client{c1, c2} {
		if ans, err := c.roundTrip("after"); err == nil {
			t.Fatalf("client %d: got %q after CutAll", i, ans)
		}
	}
	waitFor(t, "the server to see both connections end", func() bool { _, ends := s.got(); return ends == 2 })
	waitFor(t, "the proxy to drop the cut connections", func() bool { return p.Open() == 0 })
	if lines, _ := s.got(); len(lines) != 2 {
		t.Errorf("server got %q, want only the two lines sent before the cut", lines)
	}
	if ans, err := dial(t, p).roundTrip("new"); err != nil || ans != "ok:new" {
		t.Fatalf("a new connection after CutAll: %q, %v", ans, err)
	}
}

// CutAfterClientSends lets unmatched bytes through, then forwards the
// matched bytes to the server and cuts the connection before any byte of the
// answer reaches the client (the server answers at once, so a proxy that let
// one through would fail here). It fires once.
func TestCutAfterClientSends(t *testing.T) {
	s := startLineServer(t)
	p := faultproxy.Start(t, s.ln.Addr().String())
	p.CutAfterClientSends(func(msg []byte) bool { return bytes.Contains(msg, []byte("COMMIT")) })
	if !p.Armed() {
		t.Fatal("Armed() = false after CutAfterClientSends")
	}
	c := dial(t, p)
	if ans, err := c.roundTrip("BEGIN"); err != nil || ans != "ok:BEGIN" {
		t.Fatalf("unmatched line: %q, %v", ans, err)
	}
	ans, err := c.roundTrip("COMMIT")
	if err == nil || ans != "" {
		t.Fatalf("matched line: got %q, %v; want the connection cut with no byte of the answer", ans, err)
	}
	waitFor(t, "the server to get the matched line and then the end of stream", func() bool {
		lines, ends := s.got()
		return len(lines) == 2 && lines[1] == "COMMIT" && ends == 1
	})
	if p.Armed() {
		t.Error("Armed() = true after the fault fired")
	}
	waitFor(t, "the proxy to drop the cut connection", func() bool { return p.Open() == 0 })

	// One-shot: the same bytes pass now.
	if ans, err := dial(t, p).roundTrip("COMMIT"); err != nil || ans != "ok:COMMIT" {
		t.Fatalf("after the fault fired: %q, %v", ans, err)
	}
	// Disarming with nil.
	p.CutAfterClientSends(func([]byte) bool { return true })
	p.CutAfterClientSends(nil)
	if ans, err := dial(t, p).roundTrip("z"); err != nil || ans != "ok:z" {
		t.Fatalf("after disarming: %q, %v", ans, err)
	}
}

// SetDelay delays each chunk in each direction: a round trip takes at least
// twice the delay, and none once it is off again.
func TestSetDelay(t *testing.T) {
	s := startLineServer(t)
	p := faultproxy.Start(t, s.ln.Addr().String())
	c := dial(t, p)
	const d = 100 * time.Millisecond
	p.SetDelay(d)
	start := time.Now()
	if _, err := c.roundTrip("slow"); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < 2*d {
		t.Errorf("round trip with a %s delay took %s, want at least %s", d, took, 2*d)
	}
	p.SetDelay(0)
	start = time.Now()
	for range 5 {
		if _, err := c.roundTrip("fast"); err != nil {
			t.Fatal(err)
		}
	}
	if took := time.Since(start); took >= 5*2*d {
		t.Errorf("5 round trips without delay took %s", took)
	}
}

// Close ends the listener, every connection and every goroutine of the
// proxy, also one in the middle of a delay.
func TestClose(t *testing.T) {
	s := startLineServer(t)
	p := faultproxy.Start(t, s.ln.Addr().String())
	c := dial(t, p)
	if _, err := c.roundTrip("a"); err != nil {
		t.Fatal(err)
	}
	p.SetDelay(time.Hour)
	c.Write([]byte("stuck\n"))
	time.Sleep(20 * time.Millisecond)
	done := make(chan struct{})
	go func() { p.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return while a chunk was delayed")
	}
	p.Close() // idempotent
	if _, err := c.r.ReadString('\n'); err == nil {
		t.Error("the client's connection is still open after Close")
	}
	if _, err := net.DialTimeout("tcp", p.Addr(), time.Second); err == nil {
		t.Error("the proxy still accepts connections after Close")
	}
	if st := leakcheck.Stacks(2*time.Second, "faultproxy.(*Proxy)"); st != "" {
		t.Fatalf("goroutines of the proxy after Close:\n%s", st)
	}
}

// On a real PostgreSQL through pgx: a statement whose bytes reached the
// server runs and commits, while the client sees its connection break;
// Refuse makes pgx's dial fail; CutAll breaks a pooled connection.
func TestPostgres(t *testing.T) {
	srv := pgserver.Start(t)
	srv.Exec(t, "CREATE TABLE items (v text)")
	p := faultproxy.Start(t, srv.Addr())
	db, err := sql.Open("pgx", "postgres://postgres@"+p.Addr()+"/postgres?sslmode=disable&connect_timeout=5")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := db.ExecContext(ctx, "INSERT INTO items VALUES ('first')"); err != nil {
		t.Fatal(err)
	}

	// The argument travels in the Bind message, sent with Execute: pgx's
	// prepare (Parse, which runs nothing) goes through first.
	p.CutAfterClientSends(func(msg []byte) bool { return bytes.Contains(msg, []byte("unknown")) })
	if _, err := db.ExecContext(ctx, "INSERT INTO items VALUES ($1)", "unknown"); err == nil {
		t.Fatal("the INSERT whose connection was cut returned no error")
	}
	count := func(v string) int {
		var n int
		if err := db.QueryRowContext(ctx, "SELECT count(*) FROM items WHERE v = $1", v).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := count("unknown"); n != 1 {
		t.Errorf("the INSERT that reached the server before the cut is stored %d times, want 1", n)
	}

	// In the simple protocol the INSERT commits before its CommandComplete;
	// the client gets the injected FATAL instead of ReadyForQuery.
	simple, err := sql.Open("pgx", "postgres://postgres@"+p.Addr()+"/postgres?sslmode=disable&connect_timeout=5&default_query_exec_mode=simple_protocol")
	if err != nil {
		t.Fatal(err)
	}
	defer simple.Close()
	p.FailAfterCommandComplete(func(msg []byte) bool { return bytes.Contains(msg, []byte("terminated")) },
		faultproxy.ErrorResponse("FATAL", "57P01", "terminating connection due to administrator command"))
	_, err = simple.ExecContext(ctx, "INSERT INTO items VALUES ($1)", "terminated")
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "57P01" || pgErr.Severity != "FATAL" {
		t.Fatalf("the INSERT answered by the injected error returned %v; want FATAL 57P01", err)
	}
	if p.Armed() {
		t.Error("Armed() = true after the fault fired")
	}
	if n := count("terminated"); n != 1 {
		t.Errorf("the INSERT whose CommandComplete came before the error is stored %d times, want 1", n)
	}

	p.CutAll()
	if err := db.PingContext(ctx); err == nil {
		// database/sql may have found the connection bad and dialed anew;
		// either way a query on a fresh connection must work.
		t.Log("Ping after CutAll succeeded on a fresh connection")
	}
	if n := count("first"); n != 1 {
		t.Errorf("count after CutAll = %d", n)
	}

	p.Refuse(true)
	before := p.Accepted()
	db.SetMaxIdleConns(0)
	if err := db.PingContext(ctx); err == nil {
		t.Fatal("Ping through a refusing proxy succeeded")
	}
	if p.Accepted() == before {
		t.Error("the refused dial was not counted")
	}
	p.Refuse(false)
	if err := db.PingContext(ctx); err != nil {
		t.Fatalf("Ping after Refuse(false): %v", err)
	}
}
