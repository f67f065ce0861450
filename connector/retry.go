package connector

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// The backoff between probes of a server that cannot be reached: the first
// step is about backoffMin, each next one twice as long, up to backoffMax;
// each wait is drawn between half the step and the whole step.
const (
	backoffMin = 50 * time.Millisecond
	backoffMax = 2 * time.Second
)

// backoff returns the wait before probe number step (0-based), jittered.
func backoff(step int) time.Duration {
	d := backoffMax
	if step < 16 {
		d = min(backoffMin<<step, backoffMax)
	}
	return d/2 + rand.N(d/2+1)
}

// errWaitOver ends a wait whose MaxConnectWait has passed.
var errWaitOver = errors.New("connector: the connect wait is over")

// tokenError is an error of the TokenSource: the server was not reached, so
// it says nothing of an outage of the server.
type tokenError struct{ err error }

func (e *tokenError) Error() string { return e.err.Error() }
func (e *tokenError) Unwrap() error { return e.err }

// isOutage reports whether err, the error of a connection attempt made with
// ctx, says that the server cannot be reached for now: a dial error, a
// reset or an end of stream during the login, a timeout of the attempt, or
// an answer that the server is starting up or shutting down (57P03, 57P01,
// 57P02) or a connection exception (class 08). It is false once ctx has
// ended, and for a rejected login, a token source's error, an untrusted
// certificate, or any other answer of the server: waiting does not cure
// them.
func isOutage(ctx context.Context, err error) bool {
	if err == nil || ctx.Err() != nil {
		return false
	}
	var tokErr *tokenError
	if errors.As(err, &tokErr) {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case pgErr.Code == "57P03", pgErr.Code == "57P01", pgErr.Code == "57P02":
			return true
		case len(pgErr.Code) == 5 && pgErr.Code[:2] == "08":
			return true
		}
		return false
	}
	if untrustedCert(err) {
		return false // a certificate that is not trusted stays so
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return dnsErr.IsTimeout || dnsErr.IsTemporary
	}
	if pgconn.Timeout(err) || errors.Is(err, context.DeadlineExceeded) {
		return true // the attempt's own timeout: the caller's ctx is live
	}
	var netErr net.Error
	if errors.As(err, &netErr) && netErr.Timeout() {
		return true
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Op == "dial" {
		return true
	}
	for _, target := range []error{
		io.EOF, io.ErrUnexpectedEOF,
		syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.ECONNABORTED, syscall.EPIPE,
		syscall.EHOSTUNREACH, syscall.ENETUNREACH, syscall.ETIMEDOUT,
	} {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}

// prober waits out an outage for every Connect of one Connector: while at
// least one Connect waits, one goroutine probes the server with backoff,
// each probe a full connection attempt. When a probe connects, every waiter
// is woken: the first to take it gets the probe's connection, and the others
// dial, now that the server answers. A waiter whose context ends, or whose
// MaxConnectWait passes, leaves; when the last one leaves, the probing stops.
type prober struct {
	r *resolved

	mu     sync.Mutex
	ep     *episode // the outage being waited out; nil when none
	closed bool
	wg     sync.WaitGroup // the probing goroutine
}

// episode is one outage as the waiters see it, from the first failed
// attempt to the probe that gets through (or until nobody waits).
type episode struct {
	done chan struct{} // closed when the episode ends

	// Guarded by prober.mu:
	waiters   int
	up        bool        // a probe got through (or was answered)
	conn      driver.Conn // the probe's connection, until a waiter takes it
	lastErr   error       // the last probe's error, or the one that began the episode
	probes    int         // probes finished, the one that got through included
	abandoned bool        // nobody waits any more, or the Connector closed
	cancel    context.CancelFunc
	p         *prober
}

// cause returns the last error of the outage.
func (ep *episode) cause() error {
	ep.p.mu.Lock()
	defer ep.p.mu.Unlock()
	return ep.lastErr
}

// waiter is one Connect's place in an episode.
type waiter struct {
	ep   *episode
	from int // ep.probes when it joined
}

// joinActive joins the outage being waited out now, if there is one, and
// returns it (ok false when there is none).
func (p *prober) joinActive() (w waiter, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ep == nil || p.closed {
		return waiter{}, false
	}
	p.ep.waiters++
	return waiter{ep: p.ep, from: p.ep.probes}, true
}

// join joins the outage being waited out, or begins one with cause and
// starts probing.
func (p *prober) join(cause error) (waiter, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return waiter{}, ErrClosed
	}
	ep := p.ep
	if ep == nil {
		ctx, cancel := context.WithCancel(context.Background())
		ep = &episode{done: make(chan struct{}), lastErr: cause, cancel: cancel, p: p}
		p.ep = ep
		p.wg.Add(1)
		go p.probe(ctx, ep)
	}
	ep.waiters++
	return waiter{ep: ep, from: ep.probes}, nil
}

// wait waits for w's episode to end, for ctx to end or for deadline,
// whichever comes first. It returns the probe's connection when this waiter
// takes it; nil and nil when a probe got through and the caller should
// dial; nil and an error (ctx's, errWaitOver or ErrClosed) when the wait is
// over. probes is the number of probes that finished while it waited.
func (p *prober) wait(ctx context.Context, w waiter, deadline time.Time) (conn driver.Conn, probes int, err error) {
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	select {
	case <-w.ep.done:
		conn, up, n := p.leave(w, true)
		if !up {
			return nil, n, ErrClosed
		}
		return conn, n, nil
	case <-ctx.Done():
		_, _, n := p.leave(w, false)
		return nil, n, ctx.Err()
	case <-timer.C:
		_, _, n := p.leave(w, false)
		return nil, n, errWaitOver
	}
}

// leave stops waiting on w's episode. With take, it returns the probe's
// connection if nobody took it yet. The last waiter to leave stops the
// probing, and closes a probe's connection that nobody took. probes is the
// number of probes that finished since w joined.
func (p *prober) leave(w waiter, take bool) (conn driver.Conn, up bool, probes int) {
	ep := w.ep
	var orphan driver.Conn
	p.mu.Lock()
	probes = ep.probes - w.from
	ep.waiters--
	if take && ep.conn != nil {
		conn, ep.conn = ep.conn, nil
	}
	if ep.waiters == 0 {
		if !ep.up && !ep.abandoned {
			ep.abandoned = true
			ep.cancel()
			if p.ep == ep {
				p.ep = nil
			}
		}
		orphan, ep.conn = ep.conn, nil
	}
	up = ep.up
	p.mu.Unlock()
	if orphan != nil {
		orphan.Close()
	}
	return conn, up, probes
}

// probe probes the server with backoff until a probe gets through, or the
// episode is abandoned.
func (p *prober) probe(ctx context.Context, ep *episode) {
	defer p.wg.Done()
	defer ep.cancel()
	for step := 0; ; step++ {
		timer := time.NewTimer(backoff(step))
		select {
		case <-ctx.Done():
			timer.Stop()
			p.end(ep, false, nil)
			return
		case <-timer.C:
		}
		conn, err := p.r.dial(ctx, nil, time.Time{})
		p.r.tel.countAttempt(ctx, true, err)
		if ctx.Err() != nil {
			// Abandoned while the probe ran.
			if conn != nil {
				conn.Close()
			}
			p.end(ep, false, nil)
			return
		}
		outage := err != nil && isOutage(ctx, err)
		p.mu.Lock()
		ep.probes++
		if outage {
			ep.lastErr = scrub(err)
		}
		p.mu.Unlock()
		if !outage {
			// The server answered: with a connection, or with an error
			// that waiting does not cure, which each waiter will meet on
			// its own dial (a rejected token is then re-minted there).
			if !p.end(ep, true, conn) && conn != nil {
				conn.Close()
			}
			return
		}
	}
}

// end ends ep, up (a probe got through, with conn, which may be nil after
// an answer that was an error) or not (abandoned). It reports whether conn
// was handed to the waiters; it is not when ep was abandoned meanwhile.
func (p *prober) end(ep *episode, up bool, conn driver.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ep == ep {
		p.ep = nil
	}
	handed := false
	if up && !ep.abandoned {
		ep.up = true
		ep.conn = conn
		handed = conn != nil
	}
	close(ep.done)
	return handed
}

// close stops the probing and ends every wait with ErrClosed.
func (p *prober) close() {
	p.mu.Lock()
	p.closed = true
	ep := p.ep
	if ep != nil {
		ep.abandoned = true
		ep.cancel()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// waitError builds the error of a Connect whose wait for the server ended
// with err.
func (r *resolved) waitError(ctx context.Context, err error, start time.Time, cause error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, ErrClosed) {
		return ErrClosed
	}
	waited := time.Since(start).Round(time.Millisecond)
	if cause == nil {
		cause = errors.New("no attempt finished")
	}
	if errors.Is(err, errWaitOver) {
		return fmt.Errorf("connector: the database could not be reached for %s, the connect wait (MaxConnectWait %s); it may be down or restarting: %w", waited, r.maxWait, cause)
	}
	return fmt.Errorf("connector: %w after waiting %s for the database to come back: %w", err, waited, cause)
}

// untrustedCert reports whether err says that the server's certificate was
// not trusted.
func untrustedCert(err error) bool {
	var (
		unknownAuthority x509.UnknownAuthorityError
		hostnameErr      x509.HostnameError
		invalidCert      x509.CertificateInvalidError
		verifyErr        *tls.CertificateVerificationError
	)
	return errors.As(err, &unknownAuthority) || errors.As(err, &hostnameErr) ||
		errors.As(err, &invalidCert) || errors.As(err, &verifyErr)
}
