package lakebasecred

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/databricks/databricks-sdk-go"
	"github.com/databricks/databricks-sdk-go/apierr"
	"github.com/lakesession/lakesession/lakebasecred/lakebasetest"
)

// waitWaiters waits until n goroutines are blocked in Token waiting for a
// mint.
func waitWaiters(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		buf := make([]byte, 8<<20)
		buf = buf[:runtime.Stack(buf, true)]
		if got := strings.Count(string(buf), "lakebasecred.(*Source).tokenSlow("); got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("fewer than %d callers are waiting for the mint", n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestColdCacheOneMint: 1000 concurrent Token calls on an empty cache make
// exactly one API call and all get its token.
func TestColdCacheOneMint(t *testing.T) {
	const callers = 1000
	fake := newFake(t)
	g := newGate(t, fake)
	s := newSource(t, fake, Target{Instance: instName})

	var wg sync.WaitGroup
	toks := make([]string, callers)
	errs := make([]error, callers)
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			toks[i], errs[i] = s.Token(context.Background())
		}()
	}
	g.waitEntered(t)
	waitWaiters(t, callers) // every caller is inside Token while the mint is held
	g.open()
	wg.Wait()

	if n := fake.Calls(lakebasetest.OpDatabaseCredential); n != 1 {
		t.Fatalf("%d credential API calls for %d concurrent callers, want 1", n, callers)
	}
	want := fake.Mints()[0].Token
	for i := range callers {
		if errs[i] != nil || toks[i] != want {
			t.Fatalf("caller %d got (%d bytes, %v), want the one minted token", i, len(toks[i]), errs[i])
		}
	}
}

// TestCallerContextEndsOthersSucceed: a caller whose context ends gets its
// context error at once; the mint goes on and the other callers get the
// token.
func TestCallerContextEndsOthersSucceed(t *testing.T) {
	fake := newFake(t)
	g := newGate(t, fake)
	s := newSource(t, fake, Target{Instance: instName})

	ctxA, cancelA := context.WithCancel(context.Background())
	type result struct {
		tok string
		err error
	}
	a, b := make(chan result, 1), make(chan result, 1)
	go func() { tok, err := s.Token(ctxA); a <- result{tok, err} }()
	go func() { tok, err := s.Token(context.Background()); b <- result{tok, err} }()
	g.waitEntered(t)
	waitWaiters(t, 2)

	cancelA()
	ra := <-a
	var re *RefreshError
	if !errors.As(ra.err, &re) || !errors.Is(ra.err, context.Canceled) || ra.tok != "" {
		t.Fatalf("cancelled caller got (%d bytes, %v), want a *RefreshError wrapping context.Canceled", len(ra.tok), ra.err)
	}
	select {
	case rb := <-b:
		t.Fatalf("the other caller returned (%v) while the mint was still held", rb.err)
	default:
	}

	g.open()
	rb := <-b
	if rb.err != nil || rb.tok != fake.Mints()[0].Token {
		t.Fatalf("other caller got error %v, want the minted token", rb.err)
	}
	if tok := mustToken(t, s); tok != rb.tok {
		t.Error("the cancelled caller's next call did not get the cached token")
	}
	if n := fake.Calls(lakebasetest.OpDatabaseCredential); n != 1 {
		t.Errorf("%d credential calls, want 1 (the cancellation must not restart the mint)", n)
	}
}

// TestExpiryRules checks when a token is refreshed and when it stops being
// served, for the expiry the API returns, the cap and the fallback.
func TestExpiryRules(t *testing.T) {
	for _, tc := range []struct {
		name        string
		target      Target
		lifetime    time.Duration
		opts        []Option
		refresh     time.Duration // after the mint
		stale       time.Duration
		wantWarning string
	}{
		{name: "one hour", lifetime: time.Hour, refresh: 55 * time.Minute, stale: 59*time.Minute + 30*time.Second},
		{name: "one hour, autoscaling", target: Target{Endpoint: epName}, lifetime: time.Hour, refresh: 55 * time.Minute, stale: 59*time.Minute + 30*time.Second},
		{name: "capped by max age", lifetime: time.Hour, opts: []Option{WithMaxTokenAge(10 * time.Minute)}, refresh: 5 * time.Minute, stale: 9*time.Minute + 30*time.Second},
		{name: "max age above the expiry", lifetime: 20 * time.Minute, opts: []Option{WithMaxTokenAge(2 * time.Hour)}, refresh: 15 * time.Minute, stale: 19*time.Minute + 30*time.Second},
		{name: "no expiry: max age", lifetime: lakebasetest.NoExpiry, opts: []Option{WithMaxTokenAge(20 * time.Minute)}, refresh: 15 * time.Minute, stale: 19*time.Minute + 30*time.Second},
		{name: "no expiry: default max age", target: Target{Endpoint: epName}, lifetime: lakebasetest.NoExpiry, refresh: 55 * time.Minute, stale: 59*time.Minute + 30*time.Second},
		{name: "short life: half margin", lifetime: 8 * time.Minute, refresh: 4 * time.Minute, stale: 7*time.Minute + 30*time.Second},
		{name: "four seconds", lifetime: 4 * time.Second, refresh: 2 * time.Second, stale: 3600 * time.Millisecond},
		{
			name: "expiry in the past: max age", lifetime: -time.Minute, opts: []Option{WithMaxTokenAge(30 * time.Minute)},
			refresh: 25 * time.Minute, stale: 29*time.Minute + 30*time.Second, wantWarning: "not in the future",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := newFakeClock()
			fake := newFake(t, lakebasetest.WithClock(clock.Now))
			fake.SetTokenLifetime(tc.lifetime)
			logs := &logSink{}
			target := tc.target
			if target == (Target{}) {
				target = Target{Instance: instName}
			}
			s := newSource(t, fake, target, append([]Option{withClock(clock.Now, clock.After), WithLogger(slog.New(logs))}, tc.opts...)...)
			t0 := clock.Now()
			t1 := mustToken(t, s)

			c := s.cur.Load()
			if got := c.refreshAt.Sub(t0); got != tc.refresh {
				t.Errorf("refresh after %v, want %v", got, tc.refresh)
			}
			if got := c.staleAt.Sub(t0); got != tc.stale {
				t.Errorf("served for %v, want %v", got, tc.stale)
			}
			if w := logs.find("not in the future"); (tc.wantWarning != "") != (len(w) == 1) {
				t.Errorf("warnings about the expiry: %v", w)
			}

			// Just before the refresh point: served, nothing minted.
			clock.Advance(tc.refresh - time.Millisecond)
			if tok := mustToken(t, s); tok != t1 {
				t.Fatal("the token changed before its refresh point")
			}
			s.waitIdle()
			if n := fake.MintCount(); n != 1 {
				t.Fatalf("%d mints before the refresh point, want 1", n)
			}
			// At the refresh point: still served, one background mint.
			clock.Advance(time.Millisecond)
			if tok := mustToken(t, s); tok != t1 {
				t.Fatal("inside the margin, the cached token was not served")
			}
			s.waitIdle()
			if n := fake.MintCount(); n != 2 {
				t.Fatalf("%d mints after the refresh point, want 2", n)
			}
			if tok := mustToken(t, s); tok == t1 || tok != fake.Mints()[1].Token {
				t.Fatal("the refreshed token is not served")
			}
		})
	}
}

// TestBackgroundRefreshServesCachedToken: inside the margin, callers get the
// cached token at once while one refresh is in flight.
func TestBackgroundRefreshServesCachedToken(t *testing.T) {
	clock := newFakeClock()
	fake := newFake(t, lakebasetest.WithClock(clock.Now))
	s := newSource(t, fake, Target{Instance: instName}, withClock(clock.Now, clock.After))
	t1 := mustToken(t, s)

	g := newGate(t, fake) // the next mint blocks until g.open
	clock.Advance(56 * time.Minute)
	if tok := mustToken(t, s); tok != t1 {
		t.Fatal("the cached token was not served inside the margin")
	}
	g.waitEntered(t) // the refresh is in flight, held

	var wg sync.WaitGroup
	for range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if tok, err := s.Token(context.Background()); err != nil || tok != t1 {
				t.Errorf("during the refresh, Token gave (%v), want the cached token", err)
			}
		}()
	}
	wg.Wait() // returned although the mint is still held
	if n := fake.Calls(lakebasetest.OpDatabaseCredential); n != 2 {
		t.Fatalf("%d credential calls, want 2 (one background refresh)", n)
	}
	g.open()
	s.waitIdle()
	if tok := mustToken(t, s); tok == t1 {
		t.Fatal("the refreshed token was not cached")
	}
}

// waitCalls waits until the fake has answered n credential calls and the
// Source has published the result of the last one.
func waitCalls(t *testing.T, fake *lakebasetest.Server, s *Source, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for fake.Calls(lakebasetest.OpDatabaseCredential) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d credential calls, want %d", fake.Calls(lakebasetest.OpDatabaseCredential), n)
		}
		time.Sleep(time.Millisecond)
	}
	s.waitIdle()
	if got := fake.Calls(lakebasetest.OpDatabaseCredential); got != n {
		t.Fatalf("%d credential calls, want %d", got, n)
	}
}

// waitArmed waits until the Source waits on a backoff timer.
func waitArmed(t *testing.T, clock *fakeClock) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for clock.pending() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("%d backoff timers armed, want 1", clock.pending())
		}
		time.Sleep(time.Millisecond)
	}
}

// TestFailedRefreshRetried: a failed background refresh is reported and
// retried by the Source itself with growing backoff, and the still-valid
// token is served all the while; the recovery is reported too.
func TestFailedRefreshRetried(t *testing.T) {
	clock := newFakeClock()
	fake := newFake(t, lakebasetest.WithClock(clock.Now))
	logs := &logSink{}
	s := newSource(t, fake, Target{Instance: instName}, withClock(clock.Now, clock.After), WithLogger(slog.New(logs)))
	t1 := mustToken(t, s)
	fake.Fail(lakebasetest.OpDatabaseCredential, http.StatusInternalServerError, 0)

	serve := func() {
		t.Helper()
		tok, err := s.Token(context.Background())
		if err != nil || tok != t1 {
			t.Fatalf("Token = (%v), want the still-valid cached token", err)
		}
		if s.inflight.Load() {
			t.Fatal("Token started a mint during the backoff")
		}
	}

	clock.Advance(56 * time.Minute)
	if tok := mustToken(t, s); tok != t1 {
		t.Fatal("the cached token was not served inside the margin")
	}
	waitCalls(t, fake, s, 2)
	waitArmed(t, clock)
	// Backoffs: ~1s, ~2s, ~4s (each ±25%), retried without any Token call.
	for attempt, wait := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second} {
		serve()
		clock.Advance(wait*3/4 - time.Millisecond) // below the shortest backoff
		serve()
		if clock.pending() != 1 || fake.Calls(lakebasetest.OpDatabaseCredential) != 2+attempt {
			t.Fatalf("attempt %d: retried before the backoff", attempt+2)
		}
		clock.Advance(wait/2 + 2*time.Millisecond) // past the longest backoff
		waitCalls(t, fake, s, 3+attempt)
		waitArmed(t, clock)
	}
	warns := logs.find("token refresh failed")
	if len(warns) != 4 {
		t.Fatalf("%d failure reports, want 4: %v", len(warns), warns)
	}
	for i, w := range warns {
		if w.Level != slog.LevelWarn || w.Attrs["attempt"] != strconv.Itoa(i+1) || w.Attrs["target"] != `instance "my-instance"` ||
			w.Attrs["retry_in"] == "" || w.Attrs["valid_for"] == "" || !strings.Contains(w.Attrs["error"], "injected failure") {
			t.Errorf("report %d: %+v", i+1, w)
		}
	}

	fake.ClearFailures()
	serve()
	clock.Advance(10*time.Second + time.Millisecond) // past the 4th backoff, ~8s
	waitCalls(t, fake, s, 6)
	if tok := mustToken(t, s); tok == t1 || tok != fake.Mints()[1].Token {
		t.Fatal("the token minted after the recovery is not served")
	}
	if r := logs.await("recovered", 1); len(r) != 1 || r[0].Attrs["failed_attempts"] != "4" {
		t.Errorf("recovery reports: %+v", r)
	}
	if n := clock.pending(); n != 0 {
		t.Errorf("%d backoff timers left after the recovery", n)
	}
}

// TestBackgroundRetriesEndWithToken: the background retries stop when the
// cached token stops being served (the next caller takes over), and Close
// ends a goroutine waiting to retry.
func TestBackgroundRetriesEndWithToken(t *testing.T) {
	clock := newFakeClock()
	fake := newFake(t, lakebasetest.WithClock(clock.Now))
	s := newSource(t, fake, Target{Instance: instName}, withClock(clock.Now, clock.After))
	mustToken(t, s)
	fake.Fail(lakebasetest.OpDatabaseCredential, http.StatusInternalServerError, 0)

	// 0.5s before the token stops being served: a retry (>= 0.75s away)
	// would come too late, so none is armed and the goroutine ends.
	clock.Advance(59*time.Minute + 29*time.Second + 500*time.Millisecond)
	mustToken(t, s)
	waitCalls(t, fake, s, 2)
	if stacks := leakedGoroutines(5 * time.Second); stacks != "" {
		t.Fatalf("a refresh goroutine outlived the token:\n%s", stacks)
	}
	if n := clock.pending(); n != 0 {
		t.Fatalf("%d retries armed past the token's validity", n)
	}

	// Earlier in the margin a retry is armed; Close ends its wait.
	s2 := newSource(t, fake, Target{Instance: "my-instance.database.example.com"}, withClock(clock.Now, clock.After))
	fake.ClearFailures()
	mustToken(t, s2)
	fake.Fail(lakebasetest.OpDatabaseCredential, http.StatusInternalServerError, 0)
	clock.Advance(56 * time.Minute)
	mustToken(t, s2)
	waitCalls(t, fake, s2, 4)
	waitArmed(t, clock)
	_ = s2.Close()
	if stacks := leakedGoroutines(2 * time.Second); stacks != "" {
		t.Fatalf("Close left a goroutine waiting to retry:\n%s", stacks)
	}
}

// TestNoValidTokenFailingAPI: with no valid token and the API failing,
// Token returns a *RefreshError within the caller's deadline, and fails at
// once (without calling the API) during the backoff.
func TestNoValidTokenFailingAPI(t *testing.T) {
	fake := newFake(t)
	fake.Fail(lakebasetest.OpDatabaseCredential, http.StatusServiceUnavailable, 0) // the SDK retries this
	logs := &logSink{}
	s := newSource(t, fake, Target{Instance: instName}, WithLogger(slog.New(logs)))

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	tok, err := s.Token(ctx)
	elapsed := time.Since(start)
	var re *RefreshError
	if !errors.As(err, &re) || !errors.Is(err, context.DeadlineExceeded) || tok != "" {
		t.Fatalf("Token = (%d bytes, %v), want a *RefreshError wrapping the deadline", len(tok), err)
	}
	if elapsed > 5*time.Second { // the deadline is 200ms; the SDK alone would retry for 1s
		t.Errorf("Token returned after %v, long past the caller's deadline", elapsed)
	}
	var retryable interface{ Temporary() bool }
	if !errors.As(err, &retryable) || !retryable.Temporary() {
		t.Errorf("Token error %v does not say that retrying can help (Temporary)", err)
	}

	s.waitIdle() // the mint gives up (the SDK's retries end)
	calls := fake.Calls(lakebasetest.OpDatabaseCredential)
	_, err = s.Token(context.Background())
	var apiErr *apierr.APIError
	if !errors.As(err, &re) || !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusServiceUnavailable ||
		!strings.Contains(err.Error(), "next attempt in") {
		t.Fatalf("during the backoff, Token = %v, want a *RefreshError with the API's 503 and the backoff", err)
	}
	if n := fake.Calls(lakebasetest.OpDatabaseCredential); n != calls {
		t.Errorf("Token called the API during the backoff")
	}
	if e := logs.await("no valid token", 1); len(e) != 1 || e[0].Level != slog.LevelError {
		t.Errorf("failure reports: %+v", logs.all())
	}
}

// TestNonRetryableFailureSurfacesAtOnce: an API error the SDK does not retry
// reaches every waiting caller as a *RefreshError carrying the API error.
func TestNonRetryableFailureSurfacesAtOnce(t *testing.T) {
	fake := newFake(t)
	fake.Fail(lakebasetest.OpPostgresCredential, http.StatusForbidden, 1)
	s := newSource(t, fake, Target{Endpoint: epName})
	_, err := s.Token(context.Background())
	var re *RefreshError
	if !errors.As(err, &re) || !errors.Is(err, apierr.ErrPermissionDenied) {
		t.Fatalf("Token = %v, want a *RefreshError wrapping the 403", err)
	}
	if re.Target != `endpoint "`+epName+`"` {
		t.Errorf("Target = %q", re.Target)
	}
}

// TestMintTimeout: even when the SDK would retry a 503 for minutes, the
// mint gives up after its own timeout, so a caller without a deadline
// still gets an answer.
func TestMintTimeout(t *testing.T) {
	fake := newFake(t)
	fake.Fail(lakebasetest.OpDatabaseCredential, http.StatusServiceUnavailable, 0)
	cfg := fake.Config()
	cfg.RetryTimeoutSeconds = 0 // the SDK's default: 5 minutes of retries
	w, err := databricks.NewWorkspaceClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(context.Background(), w, Target{Instance: instName}, WithMintTimeout(300*time.Millisecond), WithLogger(slog.New(&logSink{})))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	start := time.Now()
	_, err = s.Token(context.Background())
	var re *RefreshError
	if !errors.As(err, &re) || !strings.Contains(err.Error(), "did not answer within 300ms") {
		t.Fatalf("Token = %v, want the mint timeout", err)
	}
	if elapsed := time.Since(start); elapsed > 20*time.Second {
		t.Errorf("Token returned after %v", elapsed)
	}
}

// TestStaleTokenNeverServed: past its serving limit, a cached token is not
// returned even while its refresh fails.
func TestStaleTokenNeverServed(t *testing.T) {
	clock := newFakeClock()
	fake := newFake(t, lakebasetest.WithClock(clock.Now))
	s := newSource(t, fake, Target{Instance: instName}, withClock(clock.Now, clock.After))
	t1 := mustToken(t, s)
	fake.Fail(lakebasetest.OpDatabaseCredential, http.StatusInternalServerError, 0)
	clock.Advance(59*time.Minute + 31*time.Second)
	tok, err := s.Token(context.Background())
	if err == nil || tok != "" || tok == t1 {
		t.Fatalf("a stale token was served (err %v)", err)
	}
	var re *RefreshError
	if !errors.As(err, &re) {
		t.Fatalf("error %T, want *RefreshError", err)
	}
}

func TestInvalidate(t *testing.T) {
	fake := newFake(t)
	s := newSource(t, fake, Target{Instance: instName})
	t1 := mustToken(t, s)
	if tok := mustToken(t, s); tok != t1 {
		t.Fatal("a second call minted again")
	}
	s.Invalidate()
	t2 := mustToken(t, s)
	if t2 == t1 || fake.MintCount() != 2 {
		t.Fatalf("Invalidate did not force a new mint (%d mints)", fake.MintCount())
	}

	s.InvalidateToken(t1) // an older token: the cached one stays
	if tok := mustToken(t, s); tok != t2 || fake.MintCount() != 2 {
		t.Fatal("InvalidateToken with an old token dropped the current one")
	}
	s.InvalidateToken(t2)
	if tok := mustToken(t, s); tok == t2 || fake.MintCount() != 3 {
		t.Fatal("InvalidateToken with the current token did not force a new mint")
	}
}

// TestInvalidateJoinsRunningMint: after Invalidate while a refresh is in
// flight, callers wait for that refresh instead of starting another.
func TestInvalidateJoinsRunningMint(t *testing.T) {
	clock := newFakeClock()
	fake := newFake(t, lakebasetest.WithClock(clock.Now))
	s := newSource(t, fake, Target{Instance: instName}, withClock(clock.Now, clock.After))
	t1 := mustToken(t, s)
	g := newGate(t, fake)
	clock.Advance(56 * time.Minute)
	mustToken(t, s) // starts the background refresh
	g.waitEntered(t)
	s.Invalidate()
	done := make(chan string)
	go func() { done <- mustToken(t, s) }()
	waitWaiters(t, 1)
	g.open()
	if tok := <-done; tok == t1 {
		t.Fatal("the invalidated token was served")
	}
	if n := fake.Calls(lakebasetest.OpDatabaseCredential); n != 2 {
		t.Errorf("%d calls, want 2", n)
	}
}

// TestClose: Close ends a running mint at once; waiting and later callers
// get ErrClosed; no goroutine of the Source is left.
func TestClose(t *testing.T) {
	fake := newFake(t)
	g := newGate(t, fake)
	s, err := New(context.Background(), fake.WorkspaceClient(), Target{Instance: instName})
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { _, err := s.Token(context.Background()); errc <- err }()
	g.waitEntered(t)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, ErrClosed) {
		t.Errorf("waiting caller got %v, want ErrClosed", err)
	}
	if _, err := s.Token(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("Token after Close = %v, want ErrClosed", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if stacks := leakedGoroutines(2 * time.Second); stacks != "" && strings.Contains(stacks, "(*Source).run") {
		t.Errorf("a mint goroutine survived Close:\n%s", stacks)
	}
	g.open()
}

// TestWarmTokenAllocatesNothing guards the promise checked by the
// benchmark: a fresh cached token costs no allocation.
func TestWarmTokenAllocatesNothing(t *testing.T) {
	fake := newFake(t)
	s := newSource(t, fake, Target{Instance: instName})
	mustToken(t, s)
	ctx := context.Background()
	if n := testing.AllocsPerRun(1000, func() {
		if _, err := s.Token(ctx); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("warm Token allocates %v times per call, want 0", n)
	}
}
