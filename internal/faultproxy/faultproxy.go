// Package faultproxy is a TCP proxy for tests that puts network faults between
// a client and a server: a server that refuses connections, connections cut
// at once or just after the client sent a given message, and a slow network.
//
// It listens on 127.0.0.1 only and knows nothing of the protocol it carries,
// except for CutAfterClientSends, whose match function sees the client's
// bytes (PostgreSQL's messages are readable there with sslmode=disable),
// and FailAfterCommandComplete, which reads PostgreSQL's messages from the
// server.
//
//	p := faultproxy.Start(t, "127.0.0.1:5432")
//	dsn := fmt.Sprintf("postgres://postgres@%s/postgres?sslmode=disable", p.Addr())
//	p.Refuse(true) // the server looks down
//	...
//	p.Refuse(false)
//	p.CutAfterClientSends(func(msg []byte) bool { return bytes.Contains(msg, []byte("INSERT")) })
//
// A Proxy starts goroutines (one accept loop, two per proxied connection);
// Close, which Start registers with t.Cleanup, ends them all.
package faultproxy

import (
	"context"
	"errors"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// dialTimeout bounds the proxy's dial to its target.
const dialTimeout = 5 * time.Second

// bufSize is the size of one read: the chunk that a match function of
// CutAfterClientSends sees, and that SetDelay delays.
const bufSize = 64 << 10

// Proxy is a TCP proxy on 127.0.0.1 in front of one target address. Its
// methods are safe for concurrent use.
type Proxy struct {
	target string
	ln     net.Listener

	ctx    context.Context // ends at Close: cancels dials to the target
	cancel context.CancelFunc

	accepted atomic.Int64
	refuse   atomic.Bool
	delay    atomic.Int64 // time.Duration

	mu        sync.Mutex
	links     map[*link]struct{}
	cutMatch  func(msg []byte) bool // armed CutAfterClientSends, nil when none
	failMatch func(msg []byte) bool // armed FailAfterCommandComplete, nil when none
	failWith  []byte
	closed    bool

	wg        sync.WaitGroup
	closeOnce sync.Once
}

// link is one proxied connection: the client's side and the server's side.
type link struct {
	client, server net.Conn

	// mu is held while bytes of the server are written to the client, and
	// while cut is set, so that once cut is true no further server byte
	// reaches the client.
	mu  sync.Mutex
	cut bool
	// failWith, once set, makes serverToClient read the server's messages
	// one by one and, after the first CommandComplete, send failWith
	// instead of the rest and end the link (FailAfterCommandComplete).
	failWith []byte

	done      chan struct{} // closed when the link is closed
	closeOnce sync.Once
}

func (l *link) close() {
	l.closeOnce.Do(func() {
		close(l.done)
		l.client.Close()
		l.server.Close()
	})
}

// Start starts a proxy to target (host:port) on a free 127.0.0.1 port. It is
// closed when t's test ends. A failure to listen fails t.
func Start(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("faultproxy: listen on 127.0.0.1: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Proxy{
		target: target,
		ln:     ln,
		ctx:    ctx,
		cancel: cancel,
		links:  map[*link]struct{}{},
	}
	p.wg.Add(1)
	go p.acceptLoop()
	t.Cleanup(p.Close)
	return p
}

// Addr returns the proxy's address, 127.0.0.1:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Host returns the proxy's host, 127.0.0.1.
func (p *Proxy) Host() string { return p.ln.Addr().(*net.TCPAddr).IP.String() }

// Port returns the proxy's port.
func (p *Proxy) Port() int { return p.ln.Addr().(*net.TCPAddr).Port }

// Target returns the address the proxy forwards to.
func (p *Proxy) Target() string { return p.target }

// Refuse makes the proxy look like a server that is down, while on: every
// new connection is accepted and at once closed with a reset, so the client
// sees a reset or an EOF before any byte of the server. Connections already
// proxied are left alone (CutAll cuts them).
func (p *Proxy) Refuse(on bool) { p.refuse.Store(on) }

// CutAll closes every connection proxied now, on both sides: the client and
// the server each see their connection end. New connections are proxied as
// before.
func (p *Proxy) CutAll() {
	p.mu.Lock()
	links := make([]*link, 0, len(p.links))
	for l := range p.links {
		links = append(links, l)
	}
	p.mu.Unlock()
	for _, l := range links {
		l.close()
	}
}

// CutAfterClientSends arms a one-shot fault: the next chunk of bytes a client
// sends for which match returns true is forwarded to the server, and then
// that client's connection is cut before any byte of the server's reply
// reaches it. The server gets all the bytes and then an end of stream (its
// reply is read and dropped), so a statement in them runs, and commits if it
// is not in a transaction, while the client sees its connection break with
// the outcome unknown.
//
// match sees the bytes of one read from the client (up to 64 KiB; a client
// such as pgx writes a query's messages in one write) and must not keep
// them. With pgx's default exec mode a statement's text is sent in the Parse
// message of a prepare, which runs nothing, and its arguments in the Bind
// message sent with Execute: match an argument to cut after the statement
// was sent to run. It is called from the proxy's goroutines, one call at a time. Arming
// again replaces a fault that has not fired; match nil disarms.
func (p *Proxy) CutAfterClientSends(match func(msg []byte) bool) {
	p.mu.Lock()
	p.cutMatch = match
	p.mu.Unlock()
}

// FailAfterCommandComplete arms a one-shot fault of the PostgreSQL
// protocol: after the client's next bytes for which match returns true
// have been forwarded to the server, the server's reply is forwarded up to
// and including its first CommandComplete message; then the client gets
// failWith (an ErrorResponse, see ErrorResponse) instead of the rest, and
// the connection is closed on both sides. It is what a client sees when
// PostgreSQL, in the simple query protocol, commits a statement, sends its
// CommandComplete and is then terminated (a FATAL 57P01 sent while it
// writes the statement's duration to its log): the statement committed,
// and the client gets an error. match is as for CutAfterClientSends;
// arming again replaces a fault that has not fired. The connection must be
// in plaintext (sslmode=disable).
func (p *Proxy) FailAfterCommandComplete(match func(msg []byte) bool, failWith []byte) {
	p.mu.Lock()
	p.failMatch, p.failWith = match, failWith
	p.mu.Unlock()
}

// ErrorResponse returns a PostgreSQL ErrorResponse message with the given
// severity (such as "FATAL"), SQLSTATE and message, for
// FailAfterCommandComplete.
func ErrorResponse(severity, code, message string) []byte {
	var body []byte
	for _, f := range []struct {
		typ byte
		val string
	}{{'S', severity}, {'V', severity}, {'C', code}, {'M', message}} {
		body = append(append(append(body, f.typ), f.val...), 0)
	}
	body = append(body, 0)
	n := len(body) + 4
	return append([]byte{'E', byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}, body...)
}

// Armed reports whether a CutAfterClientSends or FailAfterCommandComplete
// fault is armed and has not fired yet.
func (p *Proxy) Armed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cutMatch != nil || p.failMatch != nil
}

// SetDelay delays each forwarded chunk, in both directions, by d (a slow
// network); 0 turns the delay off. It applies to chunks read after the call.
func (p *Proxy) SetDelay(d time.Duration) { p.delay.Store(int64(d)) }

// Accepted returns the number of connections accepted so far, refused ones
// included: the number of dials clients made to the proxy.
func (p *Proxy) Accepted() int64 { return p.accepted.Load() }

// Open returns the number of connections proxied now.
func (p *Proxy) Open() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.links)
}

// Close stops listening, closes every proxied connection and waits for the
// proxy's goroutines to end. It is idempotent.
func (p *Proxy) Close() {
	p.closeOnce.Do(func() {
		p.cancel()
		p.ln.Close()
		p.mu.Lock()
		p.closed = true
		p.mu.Unlock()
		p.CutAll()
		p.wg.Wait()
	})
}

func (p *Proxy) acceptLoop() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// A transient accept error (too many open files): go on.
			select {
			case <-p.ctx.Done():
				return
			case <-time.After(10 * time.Millisecond):
			}
			continue
		}
		p.accepted.Add(1)
		if p.refuse.Load() {
			reset(c)
			continue
		}
		p.wg.Add(1)
		go p.serve(c)
	}
}

// reset closes c so that its peer gets a TCP reset rather than a clean end.
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}

func (p *Proxy) serve(client net.Conn) {
	defer p.wg.Done()
	d := net.Dialer{Timeout: dialTimeout}
	server, err := d.DialContext(p.ctx, "tcp", p.target)
	if err != nil {
		// The target is down: the client sees what it would see without
		// the proxy, a connection that ends at once.
		reset(client)
		return
	}
	l := &link{client: client, server: server, done: make(chan struct{})}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		l.close()
		return
	}
	p.links[l] = struct{}{}
	p.mu.Unlock()

	var pumps sync.WaitGroup
	pumps.Add(2)
	go func() {
		defer pumps.Done()
		p.clientToServer(l)
	}()
	go func() {
		defer pumps.Done()
		p.serverToClient(l)
	}()
	pumps.Wait()
	l.close()
	p.mu.Lock()
	delete(p.links, l)
	p.mu.Unlock()
}

// wait sleeps for the current delay, or until l is closed. It reports
// whether l is still open.
func (p *Proxy) wait(l *link) bool {
	d := time.Duration(p.delay.Load())
	if d <= 0 {
		select {
		case <-l.done:
			return false
		default:
			return true
		}
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-l.done:
		return false
	case <-timer.C:
		return true
	}
}

func (p *Proxy) clientToServer(l *link) {
	buf := make([]byte, bufSize)
	for {
		n, err := l.client.Read(buf)
		if n > 0 {
			if !p.wait(l) {
				return
			}
			if failWith := p.fireFail(buf[:n]); failWith != nil {
				// Set before the server can answer: the reply is read
				// message by message from its first byte.
				l.mu.Lock()
				l.failWith = failWith
				l.mu.Unlock()
			}
			if p.fire(buf[:n]) {
				l.mu.Lock()
				l.cut = true
				l.mu.Unlock()
				_, werr := l.server.Write(buf[:n])
				l.client.Close()
				if werr != nil {
					l.close()
					return
				}
				// The server reads every byte, then the end of the
				// stream; serverToClient drops its reply and ends the
				// link when the server closes.
				if tc, ok := l.server.(*net.TCPConn); ok {
					tc.CloseWrite()
				} else {
					l.close()
				}
				return
			}
			if _, werr := l.server.Write(buf[:n]); werr != nil {
				l.close()
				return
			}
		}
		if err != nil {
			l.close()
			return
		}
	}
}

// fire reports whether chunk fires the armed CutAfterClientSends fault, and
// disarms it when it does.
func (p *Proxy) fire(chunk []byte) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cutMatch == nil || !p.cutMatch(chunk) {
		return false
	}
	p.cutMatch = nil
	return true
}

// fireFail returns the ErrorResponse of the armed FailAfterCommandComplete
// fault when chunk fires it, and disarms it; nil otherwise.
func (p *Proxy) fireFail(chunk []byte) []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.failMatch == nil || !p.failMatch(chunk) {
		return nil
	}
	p.failMatch = nil
	return p.failWith
}

// forwardUntilCommandComplete writes the complete messages at the start of
// *pending to the client, up to and including the first CommandComplete,
// and drops them from *pending. It reports whether it wrote a
// CommandComplete. Called with l.mu held.
func forwardUntilCommandComplete(l *link, pending *[]byte) (bool, error) {
	for len(*pending) >= 5 {
		b := *pending
		n := int(b[1])<<24 | int(b[2])<<16 | int(b[3])<<8 | int(b[4])
		if len(b) < 1+n {
			return false, nil
		}
		if _, err := l.client.Write(b[:1+n]); err != nil {
			return false, err
		}
		*pending = b[1+n:]
		if b[0] == 'C' {
			return true, nil
		}
	}
	return false, nil
}

func (p *Proxy) serverToClient(l *link) {
	buf := make([]byte, bufSize)
	var pending []byte // the server's bytes not yet forwarded, once failWith is set
	for {
		n, err := l.server.Read(buf)
		if n > 0 {
			if !p.wait(l) {
				return
			}
			l.mu.Lock()
			if l.failWith != nil && !l.cut {
				pending = append(pending, buf[:n]...)
				done, werr := forwardUntilCommandComplete(l, &pending)
				if done && werr == nil {
					_, werr = l.client.Write(l.failWith)
					l.cut = true
				}
				l.mu.Unlock()
				if done || werr != nil {
					l.close()
					return
				}
				if err != nil {
					l.close()
					return
				}
				continue
			}
			if !l.cut {
				if _, werr := l.client.Write(buf[:n]); werr != nil {
					l.mu.Unlock()
					l.close()
					return
				}
			}
			l.mu.Unlock()
		}
		if err != nil {
			l.close()
			return
		}
	}
}

// HostPort joins a host and a port into the host:port address that Start
// takes as its target.
func HostPort(host string, port int) string {
	return net.JoinHostPort(host, strconv.Itoa(port))
}
