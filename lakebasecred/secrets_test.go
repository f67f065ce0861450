package lakebasecred

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lakesession/lakesession/lakebasecred/lakebasetest"
)

// TestNoTokenInErrorsLogsOrStrings drives a Source through every path that
// produces an error, a log record or a description, and checks that no
// minted token appears in any of them.
func TestNoTokenInErrorsLogsOrStrings(t *testing.T) {
	clock := newFakeClock()
	fake := newFake(t, lakebasetest.WithClock(clock.Now))
	sink := &logSink{}
	var text bytes.Buffer // a stock handler too, as an app would use
	textLog := slog.New(slog.NewTextHandler(&text, &slog.HandlerOptions{Level: slog.LevelDebug}))
	both := slog.New(fanout{sink, textLog.Handler()})

	var texts []string
	note := func(format string, args ...any) { texts = append(texts, fmt.Sprintf(format, args...)) }
	noteErr := func(err error) {
		t.Helper()
		if err == nil {
			t.Fatal("expected an error")
		}
		note("%v | %+v | %#v | %s | %q", err, err, err, err, err)
		for e := err; e != nil; e = errors.Unwrap(e) {
			note("%v", e)
		}
	}

	s := newSource(t, fake, Target{Instance: instName}, withClock(clock.Now, clock.After), WithLogger(both))
	mustToken(t, s)
	note("%v | %+v | %#v | %s", s, s, s, s)
	note("%s %s", s.String(), s.GoString())
	textLog.Info("source", "src", s)
	both.Info("source", "src", s)

	// A background refresh that fails, then recovers.
	fake.Fail(lakebasetest.OpDatabaseCredential, http.StatusInternalServerError, 1)
	clock.Advance(56 * time.Minute)
	mustToken(t, s)
	waitCalls(t, fake, s, 2)
	waitArmed(t, clock)
	clock.Advance(2 * time.Second) // the retry succeeds
	waitCalls(t, fake, s, 3)

	// No valid token and a failing API: a mint error, then a backoff error.
	s.Invalidate()
	fake.Fail(lakebasetest.OpDatabaseCredential, http.StatusInternalServerError, 0)
	_, err := s.Token(context.Background())
	noteErr(err)
	_, err = s.Token(context.Background())
	noteErr(err)

	// A caller whose context ends while a mint is held.
	fake.ClearFailures()
	clock.Advance(time.Minute)
	g := newGate(t, fake)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { _, err := s.Token(ctx); errc <- err }()
	g.waitEntered(t)
	cancel()
	noteErr(<-errc)
	g.open()
	s.waitIdle()
	fake.OnMint(nil)

	// An expiry in the past (a warning), then Close.
	fake.SetTokenLifetime(-time.Minute)
	s.Invalidate()
	mustToken(t, s)
	_ = s.Close()
	_, err = s.Token(context.Background())
	noteErr(err)

	// A configuration error.
	_, err = New(context.Background(), fake.WorkspaceClient(), Target{Instance: "nope"})
	noteErr(err)

	note("%s", sink.String())
	note("%s", text.String())

	mints := fake.Mints()
	if len(mints) < 4 {
		t.Fatalf("only %d tokens minted; the scenario did not run", len(mints))
	}
	for _, want := range []string{"token refresh failed", "recovered", "no valid token", "not in the future", "minted a token", `src.target="instance \"my-instance\""`} {
		if !strings.Contains(sink.String()+text.String(), want) {
			t.Errorf("the logs lack %q; the scenario did not cover it:\n%s%s", want, sink.String(), text.String())
		}
	}
	all := strings.Join(texts, "\n")
	for _, m := range mints {
		secret := m.Token[strings.LastIndex(m.Token, ".")+1:] // the random part
		if strings.Contains(all, secret) {
			t.Fatalf("a token leaked into an error, log record or description:\n%s", all)
		}
	}
}

// fanout sends each record to several handlers.
type fanout []slog.Handler

func (f fanout) Enabled(context.Context, slog.Level) bool { return true }
func (f fanout) WithAttrs([]slog.Attr) slog.Handler       { return f }
func (f fanout) WithGroup(string) slog.Handler            { return f }
func (f fanout) Handle(ctx context.Context, r slog.Record) error {
	for _, h := range f {
		if err := h.Handle(ctx, r.Clone()); err != nil {
			return err
		}
	}
	return nil
}

func TestSourceDescriptions(t *testing.T) {
	fake := newFake(t)
	s := newSource(t, fake, Target{Instance: instName}, WithUser("svc"), WithDatabase("agents"))
	want := `lakebasecred.Source{target: instance "my-instance", host: "my-instance.database.example.com", user: "svc", database: "agents"}`
	for _, got := range []string{s.String(), s.GoString(), fmt.Sprintf("%v", s), fmt.Sprintf("%+v", s), fmt.Sprintf("%#v", s)} {
		if got != want {
			t.Errorf("got %s\nwant %s", got, want)
		}
	}
	v := s.LogValue()
	if v.Kind() != slog.KindGroup || len(v.Group()) != 4 {
		t.Errorf("LogValue = %v, want a group of target, host, user, database", v)
	}
}
