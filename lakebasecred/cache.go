package lakebasecred

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"go.opentelemetry.io/otel/trace"
)

// expiryGuard is how long before its expiry a token stops being handed out
// (or a tenth of its lifetime when that is shorter), so that a login started
// with it does not reach the server after it expired.
const expiryGuard = 30 * time.Second

// mintResult is what one call of the credential API gave.
type mintResult struct {
	token      string
	expiry     time.Time // zero when the API returned none
	expiryNote string    // why an expiry that came back could not be used
}

// cached is a token and the times that govern it. It is never changed once
// stored, so Token reads it without a lock.
type cached struct {
	value     string
	refreshAt time.Time // from here on, a background refresh is due
	staleAt   time.Time // from here on, the token is not handed out
	expiresAt time.Time // its expiry, capped by the maximum token age
}

// String keeps the token out of anything that prints a cached value.
func (c *cached) String() string { return "lakebasecred.cached{token: [redacted]}" }

// flight is one mint in progress; waiters block on done.
type flight struct {
	done  chan struct{}
	value string
	err   error

	reason string            // why it runs (reason*, telemetry.go)
	cause  trace.SpanContext // the span that caused it, if any: the mint span links to it
	span   trace.SpanContext // the mint's own span, set by attempt
}

// Token returns a token to use as the password of the next login.
//
// A cached token is returned at once, without allocating, while it is fresh.
// From the refresh margin before its expiry (see RefreshMargin) it is still
// returned at once, and one background mint of a new token starts; if that
// fails, it is retried with backoff, and the cached token keeps being
// returned while it is valid. With no valid token, Token waits for a mint:
// at most one runs at a time for all callers, detached from their contexts,
// so each caller waits only as long as its own ctx allows while the others
// still get the token.
//
// Errors are *RefreshError (retryable), also when ctx ends first (then
// errors.Is(err, ctx.Err()) holds), or ErrClosed after Close. After a failed
// mint, the next one waits a growing backoff (1s doubling up to 30s, with
// jitter); a call that finds no valid token during that backoff fails at
// once with the last error rather than waiting.
func (s *Source) Token(ctx context.Context) (string, error) {
	if c := s.cur.Load(); c != nil {
		now := s.now()
		if now.Before(c.refreshAt) {
			return c.value, nil
		}
		if now.Before(c.staleAt) {
			if !s.inflight.Load() && now.UnixNano() >= s.notBeforeNano.Load() {
				s.refreshBehind(ctx, c, now)
			}
			return c.value, nil
		}
	}
	return s.tokenSlow(ctx)
}

// refreshBehind starts a background mint to replace c, unless one runs, c
// was replaced already, or a backoff is pending. The mint's span links to
// the span of ctx, the caller that noticed the margin.
func (s *Source) refreshBehind(ctx context.Context, c *cached, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.flight != nil || s.cur.Load() != c || now.Before(s.notBefore) {
		return
	}
	s.startLocked(reasonRefresh, trace.SpanContextFromContext(ctx))
}

func (s *Source) tokenSlow(ctx context.Context) (string, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return "", ErrClosed
	}
	now := s.now()
	if c := s.cur.Load(); c != nil && now.Before(c.staleAt) {
		// A mint finished since the caller looked.
		s.mu.Unlock()
		return c.value, nil
	}
	f := s.flight
	if f == nil {
		if s.lastErr != nil && now.Before(s.notBefore) {
			err := &RefreshError{Target: s.target, Err: &backoffError{last: s.lastErr, wait: s.notBefore.Sub(now)}}
			s.mu.Unlock()
			return "", err
		}
		f = s.startLocked(reasonNoToken, trace.SpanContextFromContext(ctx))
	}
	s.mu.Unlock()

	select {
	case <-f.done:
		return f.value, f.err
	case <-ctx.Done():
	}
	select {
	case <-f.done: // it came at the same time: use it
		return f.value, f.err
	default:
	}
	s.mu.Lock()
	last := s.lastErr
	s.mu.Unlock()
	return "", &RefreshError{Target: s.target, Err: &waitError{ctx: ctx.Err(), last: last}}
}

// startLocked starts a mint in its own goroutine, for reason, caused by the
// span cause (if valid). s.mu must be held.
func (s *Source) startLocked(reason string, cause trace.SpanContext) *flight {
	f := s.newFlightLocked(reason, cause)
	s.wg.Add(1)
	go s.run(f)
	return f
}

// newFlightLocked records a new mint in progress; attempt clears it. s.mu
// must be held.
func (s *Source) newFlightLocked(reason string, cause trace.SpanContext) *flight {
	f := &flight{done: make(chan struct{}), reason: reason, cause: cause}
	s.flight = f
	s.inflight.Store(true)
	return f
}

// run performs the mint of f, detached from every caller's context and
// bounded by the mint timeout, and publishes its result. When a background
// refresh fails while the cached token is still valid, run waits out the
// backoff and tries again, for as long as that token stays valid; after
// that, the next Token call starts a new mint.
func (s *Source) run(f *flight) {
	defer s.wg.Done()
	for f != nil {
		wait := s.attempt(f)
		if wait <= 0 {
			return
		}
		select {
		case <-s.after(wait):
		case <-s.ctx.Done():
			return
		}
		f = s.retryFlight(f.span)
	}
}

// retryFlight returns a new flight for a background retry after the failed
// mint whose span is prev, or nil when none is needed any more: the Source
// is closed, a mint runs already, the token was replaced or dropped, or it
// is no longer valid.
func (s *Source) retryFlight(prev trace.SpanContext) *flight {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	c := s.cur.Load()
	if s.closed || s.flight != nil || c == nil || !now.Before(c.staleAt) || now.Before(s.notBefore) {
		return nil
	}
	return s.newFlightLocked(reasonRetry, prev)
}

// attempt calls the credential API once for f and publishes the result. It
// returns how long to wait before a background retry, or 0 for none.
func (s *Source) attempt(f *flight) (retryIn time.Duration) {
	ctx, cancel := context.WithTimeout(s.ctx, s.mintTimeout)
	ctx, span := s.tel.startMint(ctx, s, f)
	f.span = span.SpanContext()
	start := s.now()
	res, err := s.mint(ctx)
	timedOut := ctx.Err() != nil
	cancel()
	end := s.now()
	if err == nil && res.token == "" {
		err = errEmptyToken
	}

	var logs []func()
	ended := mintEnd{outcome: outcomeOK, took: end.Sub(start)}
	s.mu.Lock()
	switch {
	case s.closed:
		f.err = ErrClosed
		ended.outcome = outcomeCanceled
	case err != nil:
		ended.outcome, ended.errType = classify(err, timedOut)
		if timedOut {
			err = fmt.Errorf("the credential API did not answer within %v (WithMintTimeout): %w", s.mintTimeout, err)
		}
		ended.err = err
		s.failures++
		wait := backoff(s.failures)
		s.notBefore = end.Add(wait)
		s.notBeforeNano.Store(s.notBefore.UnixNano())
		s.lastErr = err
		f.err = &RefreshError{Target: s.target, Err: err}
		attempt := s.failures
		if c := s.cur.Load(); c != nil && end.Before(c.staleAt) {
			validFor := c.staleAt.Sub(end)
			if wait < validFor {
				retryIn = wait
			}
			logs = append(logs, func() {
				s.log.LogAttrs(context.Background(), slog.LevelWarn, "lakebasecred: token refresh failed; the cached token is still served",
					slog.String("target", s.target), slog.Int("attempt", attempt), slog.Duration("retry_in", wait),
					slog.Duration("valid_for", validFor), slog.String("error", err.Error()))
			})
		} else {
			logs = append(logs, func() {
				s.log.LogAttrs(context.Background(), slog.LevelError, "lakebasecred: token refresh failed; no valid token",
					slog.String("target", s.target), slog.Int("attempt", attempt), slog.Duration("retry_in", wait),
					slog.String("error", err.Error()))
			})
		}
	default:
		c, note := s.newCached(res, start, end)
		s.cur.Store(c)
		s.tel.watchLocked(s)
		f.value = res.token
		if s.failures > 0 {
			failed := s.failures
			logs = append(logs, func() {
				s.log.LogAttrs(context.Background(), slog.LevelInfo, "lakebasecred: token refresh recovered",
					slog.String("target", s.target), slog.Int("failed_attempts", failed))
			})
		}
		if note != "" {
			logs = append(logs, func() {
				s.log.LogAttrs(context.Background(), slog.LevelWarn, "lakebasecred: "+note,
					slog.String("target", s.target), slog.Duration("max_token_age", s.maxAge))
			})
		}
		refreshIn, staleIn := c.refreshAt.Sub(end), c.staleAt.Sub(end)
		logs = append(logs, func() {
			s.log.LogAttrs(context.Background(), slog.LevelDebug, "lakebasecred: minted a token",
				slog.String("target", s.target), slog.Duration("refresh_in", refreshIn), slog.Duration("valid_for", staleIn))
		})
		s.failures = 0
		s.lastErr = nil
		s.notBefore = time.Time{}
		s.notBeforeNano.Store(0)
	}
	s.flight = nil
	s.inflight.Store(false)
	s.mu.Unlock()
	// Report before waking the waiters, so that a caller that got the
	// result finds it reported; new callers no longer wait for this flight.
	s.tel.endMint(ctx, s, span, ended)
	for _, l := range logs {
		l()
	}
	close(f.done)
	return retryIn
}

// newCached works out when a token minted between start and end is to be
// refreshed and when it stops being handed out. note explains a fallback
// to the maximum age.
func (s *Source) newCached(r mintResult, start, end time.Time) (*cached, string) {
	limit := start.Add(s.maxAge)
	note := ""
	switch {
	case r.expiryNote != "":
		note = r.expiryNote + "; assuming the token lives the maximum token age"
	case r.expiry.IsZero():
		// No expiry came back: the maximum age is the lifetime.
	default:
		// end carries the monotonic clock; the expiry is a wall time.
		expAt := end.Add(r.expiry.Sub(end))
		if !expAt.After(end) {
			note = fmt.Sprintf("the credential API returned an expiry %s that is not in the future (is the clock wrong?); assuming the token lives the maximum token age", r.expiry.UTC().Format(time.RFC3339))
		} else if expAt.Before(limit) {
			limit = expAt
		}
	}
	life := limit.Sub(start)
	margin := min(RefreshMargin, life/2)
	guard := min(expiryGuard, life/10)
	return &cached{
		value:     r.token,
		refreshAt: limit.Add(-margin),
		staleAt:   limit.Add(-guard),
		expiresAt: limit,
	}, note
}

// backoff is the wait after the n-th failure in a row: 1s doubling up to
// 30s, each within ±25%.
func backoff(n int) time.Duration {
	d := maxBackoff
	if n < 6 {
		d = min(maxBackoff, minBackoff<<(n-1))
	}
	return d - d/4 + rand.N(d/2+1)
}

// Invalidate drops the cached token, so that the next Token call mints a new
// one (or waits for the mint already running). The connector calls it when
// the database rejects a token. See InvalidateToken for a variant that
// cannot drop a newer token.
func (s *Source) Invalidate() {
	s.cur.Store(nil)
}

// InvalidateToken drops the cached token only if it is token: a caller
// whose login failed with a token drops that token, never a newer one that
// another goroutine already cached, so that many logins failing at once
// cause one new mint, not one each.
func (s *Source) InvalidateToken(token string) {
	if c := s.cur.Load(); c != nil && c.value == token {
		s.cur.CompareAndSwap(c, nil)
	}
}

// Close drops the cached token, ends a running mint and waits for its
// goroutine to return. Token then returns ErrClosed. Close is optional: a
// Source's goroutines end by themselves (see Source). It is safe to call
// more than once and always returns nil.
func (s *Source) Close() error {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		s.cur.Store(nil)
		s.cancel()
		s.tel.closeLocked()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

// backoffError is the cause of a Token call that found no valid token while
// mints are backing off after a failure.
type backoffError struct {
	last error
	wait time.Duration
}

func (e *backoffError) Error() string {
	return fmt.Sprintf("%v (next attempt in %v)", e.last, e.wait.Round(time.Millisecond))
}

func (e *backoffError) Unwrap() error { return e.last }

// waitError is the cause of a Token call whose context ended before a mint
// finished: the context's error, and the last failed mint if any.
type waitError struct {
	ctx  error
	last error
}

func (e *waitError) Error() string {
	if e.last == nil {
		return "gave up waiting for a new token: " + e.ctx.Error()
	}
	return fmt.Sprintf("gave up waiting for a new token: %v (last attempt: %v)", e.ctx, e.last)
}

func (e *waitError) Unwrap() []error {
	if e.last == nil {
		return []error{e.ctx}
	}
	return []error{e.ctx, e.last}
}
