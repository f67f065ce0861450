package lakebasecred

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/databricks/databricks-sdk-go"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/lakesession/lakesession/lakebasecred/lakebasetest"
)

// otelRig is a real OpenTelemetry SDK: spans to an in-memory exporter,
// sampling everything, and metrics to a manual reader.
type otelRig struct {
	spans  *tracetest.InMemoryExporter
	tp     *sdktrace.TracerProvider
	reader *sdkmetric.ManualReader
	mp     *sdkmetric.MeterProvider
}

func newOtelRig(t testing.TB) *otelRig {
	r := &otelRig{spans: tracetest.NewInMemoryExporter(), reader: sdkmetric.NewManualReader()}
	r.tp = sdktrace.NewTracerProvider(sdktrace.WithSyncer(r.spans), sdktrace.WithSampler(sdktrace.AlwaysSample()))
	r.mp = sdkmetric.NewMeterProvider(sdkmetric.WithReader(r.reader))
	t.Cleanup(func() {
		_ = r.tp.Shutdown(context.Background())
		_ = r.mp.Shutdown(context.Background())
	})
	return r
}

func (r *otelRig) options() []Option {
	return []Option{WithTracerProvider(r.tp), WithMeterProvider(r.mp)}
}

// callerSpan starts a span standing for the request that calls Token.
func (r *otelRig) callerSpan() (context.Context, trace.Span) {
	return r.tp.Tracer("test").Start(context.Background(), "request")
}

// mintSpans returns the ended lakebase.token.mint spans, oldest first.
func (r *otelRig) mintSpans() []tracetest.SpanStub {
	var out []tracetest.SpanStub
	for _, s := range r.spans.GetSpans() {
		if s.Name == spanMint {
			out = append(out, s)
		}
	}
	return out
}

// waitMintSpans waits until n mint spans have ended (a background mint ends
// its span shortly after it publishes its token) and returns them.
func (r *otelRig) waitMintSpans(t *testing.T, n int) []tracetest.SpanStub {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		spans := r.mintSpans()
		if len(spans) >= n {
			if len(spans) > n {
				t.Fatalf("%d mint spans, want %d", len(spans), n)
			}
			return spans
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d mint spans, want %d", len(spans), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func (r *otelRig) collect(t *testing.T) metricdata.ResourceMetrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.reader.Collect(context.Background(), &rm); err != nil {
		t.Fatalf("collect metrics: %v", err)
	}
	return rm
}

// findMetric returns the metric called name, from this package's scope.
func findMetric(t *testing.T, rm metricdata.ResourceMetrics, name string) (metricdata.Metrics, bool) {
	t.Helper()
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name == name {
				if sm.Scope.Name != scopeName {
					t.Errorf("metric %s has scope %q, want %q", name, sm.Scope.Name, scopeName)
				}
				return m, true
			}
		}
	}
	return metricdata.Metrics{}, false
}

// attrMap flattens attributes to text.
func attrMap(kvs []attribute.KeyValue) map[string]string {
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		m[string(kv.Key)] = kv.Value.String()
	}
	return m
}

func setMap(s attribute.Set) map[string]string { return attrMap(s.ToSlice()) }

// key renders attributes in a stable order, to compare attribute sets.
func key(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%s;", k, m[k])
	}
	return b.String()
}

// mintCounts returns lakebase.token.mints by attribute set.
func mintCounts(t *testing.T, rm metricdata.ResourceMetrics) map[string]int64 {
	t.Helper()
	m, ok := findMetric(t, rm, metricMints)
	if !ok {
		return nil
	}
	sum, ok := m.Data.(metricdata.Sum[int64])
	if !ok || !sum.IsMonotonic || sum.Temporality != metricdata.CumulativeTemporality || m.Unit != "{mint}" {
		t.Fatalf("%s is %T (monotonic %v) in %q, want a monotonic cumulative int64 sum in {mint}", metricMints, m.Data, sum.IsMonotonic, m.Unit)
	}
	out := map[string]int64{}
	for _, dp := range sum.DataPoints {
		out[key(setMap(dp.Attributes))] = dp.Value
	}
	return out
}

// mintDurations returns lakebase.token.mint.duration's data points by
// attribute set.
func mintDurations(t *testing.T, rm metricdata.ResourceMetrics) map[string]metricdata.HistogramDataPoint[float64] {
	t.Helper()
	m, ok := findMetric(t, rm, metricMintDuration)
	if !ok {
		return nil
	}
	h, ok := m.Data.(metricdata.Histogram[float64])
	if !ok || m.Unit != "s" {
		t.Fatalf("%s is %T in %q, want a float64 histogram in s", metricMintDuration, m.Data, m.Unit)
	}
	out := map[string]metricdata.HistogramDataPoint[float64]{}
	for _, dp := range h.DataPoints {
		if !slices.Equal(dp.Bounds, mintBuckets) {
			t.Errorf("%s bounds %v, want %v", metricMintDuration, dp.Bounds, mintBuckets)
		}
		out[key(setMap(dp.Attributes))] = dp
	}
	return out
}

// expiresIn returns lakebase.token.expires_in's observations by attribute
// set.
func expiresIn(t *testing.T, rm metricdata.ResourceMetrics) map[string]float64 {
	t.Helper()
	m, ok := findMetric(t, rm, metricExpiresIn)
	if !ok {
		return map[string]float64{}
	}
	g, ok := m.Data.(metricdata.Gauge[float64])
	if !ok || m.Unit != "s" {
		t.Fatalf("%s is %T in %q, want a float64 gauge in s", metricExpiresIn, m.Data, m.Unit)
	}
	out := map[string]float64{}
	for _, dp := range g.DataPoints {
		out[key(setMap(dp.Attributes))] = dp.Value
	}
	return out
}

// targetKey is the attribute key of a target's gauge; with an outcome (and
// error type), that of its mint metrics.
func targetKey(kind, name string, more ...string) string {
	m := map[string]string{string(attrTargetKind): kind, string(attrTargetName): name}
	for i := 0; i+1 < len(more); i += 2 {
		m[more[i]] = more[i+1]
	}
	return key(m)
}

// TestTelemetryMintSpan: one Token call on an empty cache makes one mint
// span, a new root linked to the caller's span, with the target and the
// outcome; the metrics count it, time it and report the token's expiry.
func TestTelemetryMintSpan(t *testing.T) {
	for _, tc := range []struct {
		name             string
		target           Target
		kind, targetName string
	}{
		{"instance by name", Target{Instance: instName}, "instance", instName},
		{"instance by hostname", Target{Instance: instHost}, "instance", instName},
		{"endpoint", Target{Endpoint: epName}, "endpoint", epName},
		{"project and branch", Target{Project: "my-project", Branch: "production"}, "endpoint", epName},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newOtelRig(t)
			fake := newFake(t)
			s := newSource(t, fake, tc.target, r.options()...)

			ctx, caller := r.callerSpan()
			mustTokenCtx(t, ctx, s)
			caller.End()
			for range 10 {
				mustToken(t, s) // warm: no more spans
			}

			spans := r.mintSpans()
			if len(spans) != 1 {
				t.Fatalf("%d mint spans, want 1", len(spans))
			}
			sp := spans[0]
			if sp.SpanKind != trace.SpanKindClient {
				t.Errorf("span kind %v, want client", sp.SpanKind)
			}
			if sp.Parent.IsValid() || sp.SpanContext.TraceID() == caller.SpanContext().TraceID() {
				t.Errorf("the mint span is in the caller's trace (parent %v), want a new root", sp.Parent)
			}
			if len(sp.Links) != 1 || !sp.Links[0].SpanContext.Equal(caller.SpanContext()) {
				t.Errorf("links %+v, want one link to the caller's span", sp.Links)
			}
			if sp.Status.Code != codes.Unset {
				t.Errorf("status %+v, want unset", sp.Status)
			}
			if sp.InstrumentationScope.Name != scopeName {
				t.Errorf("scope %q, want %q", sp.InstrumentationScope.Name, scopeName)
			}
			want := map[string]string{
				"lakebase.target.kind":        tc.kind,
				"lakebase.target.name":        tc.targetName,
				"lakebase.token.mint.reason":  "no_token",
				"lakebase.token.mint.outcome": "ok",
			}
			if got := attrMap(sp.Attributes); key(got) != key(want) {
				t.Errorf("span attributes\n got %v\nwant %v", got, want)
			}

			rm := r.collect(t)
			okKey := targetKey(tc.kind, tc.targetName, "lakebase.token.mint.outcome", "ok")
			if got := mintCounts(t, rm); len(got) != 1 || got[okKey] != 1 {
				t.Errorf("%s = %v, want 1 at %s", metricMints, got, okKey)
			}
			durs := mintDurations(t, rm)
			if dp, ok := durs[okKey]; len(durs) != 1 || !ok || dp.Count != 1 || dp.Sum <= 0 || dp.Sum > 30 {
				t.Errorf("%s = %+v, want one mint at %s", metricMintDuration, durs, okKey)
			}
			gauge := expiresIn(t, rm)
			if v, ok := gauge[targetKey(tc.kind, tc.targetName)]; len(gauge) != 1 || !ok || v <= 3500 || v > 3600 {
				t.Errorf("%s = %v, want about 3600 s for %s %q", metricExpiresIn, gauge, tc.kind, tc.targetName)
			}
		})
	}
}

// mustTokenCtx is mustToken with the caller's context.
func mustTokenCtx(t *testing.T, ctx context.Context, s *Source) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	tok, err := s.Token(ctx)
	if err != nil || tok == "" {
		t.Fatalf("Token: %v", err)
	}
	return tok
}

// TestTelemetryRefreshAndRetry: a background refresh is a new root linked
// to the caller that noticed the margin; its failure is an Error span with
// error.type; the background retry is a span of its own, linked to the
// failed attempt.
func TestTelemetryRefreshAndRetry(t *testing.T) {
	r := newOtelRig(t)
	clock := newFakeClock()
	fake := newFake(t, lakebasetest.WithClock(clock.Now))
	s := newSource(t, fake, Target{Instance: instName}, append(r.options(), withClock(clock.Now, clock.After))...)
	t1 := mustToken(t, s) // no caller span: no link
	fake.Fail(lakebasetest.OpDatabaseCredential, http.StatusInternalServerError, 1)

	clock.Advance(56 * time.Minute)
	ctx, caller := r.callerSpan()
	if tok := mustTokenCtx(t, ctx, s); tok != t1 {
		t.Fatal("the cached token was not served inside the margin")
	}
	caller.End()
	waitCalls(t, fake, s, 2)
	waitArmed(t, clock)
	clock.Advance(2 * time.Second) // past the first backoff (1s ± 25%)
	waitCalls(t, fake, s, 3)

	spans := r.waitMintSpans(t, 3)
	first, refresh, retry := spans[0], spans[1], spans[2]
	if len(first.Links) != 0 || attrMap(first.Attributes)["lakebase.token.mint.reason"] != "no_token" {
		t.Errorf("first mint: links %v, attributes %v; want no link, reason no_token", first.Links, attrMap(first.Attributes))
	}

	got := attrMap(refresh.Attributes)
	if got["lakebase.token.mint.reason"] != "refresh" || got["lakebase.token.mint.outcome"] != "error" || got["error.type"] != "INTERNAL_ERROR" {
		t.Errorf("refresh span attributes %v, want reason refresh, outcome error, error.type INTERNAL_ERROR", got)
	}
	if refresh.Status.Code != codes.Error || !strings.Contains(refresh.Status.Description, "injected failure") {
		t.Errorf("refresh span status %+v, want Error with the API's message", refresh.Status)
	}
	if refresh.Parent.IsValid() || len(refresh.Links) != 1 || !refresh.Links[0].SpanContext.Equal(caller.SpanContext()) {
		t.Errorf("refresh span: parent %v, links %+v; want a new root linked to the caller", refresh.Parent, refresh.Links)
	}

	got = attrMap(retry.Attributes)
	if got["lakebase.token.mint.reason"] != "retry" || got["lakebase.token.mint.outcome"] != "ok" || got["error.type"] != "" {
		t.Errorf("retry span attributes %v, want reason retry, outcome ok, no error.type", got)
	}
	if retry.Parent.IsValid() || len(retry.Links) != 1 || !retry.Links[0].SpanContext.Equal(refresh.SpanContext) {
		t.Errorf("retry span: parent %v, links %+v; want a new root linked to the failed refresh", retry.Parent, retry.Links)
	}

	rm := r.collect(t)
	want := map[string]int64{
		targetKey("instance", instName, "lakebase.token.mint.outcome", "ok"):                                    2,
		targetKey("instance", instName, "lakebase.token.mint.outcome", "error", "error.type", "INTERNAL_ERROR"): 1,
	}
	if got := mintCounts(t, rm); !mapsEqual(got, want) {
		t.Errorf("%s\n got %v\nwant %v", metricMints, got, want)
	}
}

func mapsEqual[V comparable](a, b map[string]V) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// switchTransport fails every request while fail is set, as a network
// that drops the connection.
type switchTransport struct {
	next http.RoundTripper
	fail atomic.Bool
}

func (s *switchTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if s.fail.Load() {
		return nil, errors.New("connection reset by test")
	}
	return s.next.RoundTrip(r)
}

// TestTelemetryFailedMints: each kind of failure gives an Error span with
// its outcome and error.type, is counted and timed with them, and leaves
// the gauge without an observation.
func TestTelemetryFailedMints(t *testing.T) {
	for _, tc := range []struct {
		name             string
		status           int           // the credential API answers this
		network          bool          // the connection fails
		delay            time.Duration // the credential API answers this late
		opts             []Option
		outcome, errType string
		inStatus         string
	}{
		{name: "403", status: http.StatusForbidden, outcome: "config", errType: "PERMISSION_DENIED", inStatus: "injected failure"},
		{name: "404", status: http.StatusNotFound, outcome: "config", errType: "RESOURCE_DOES_NOT_EXIST", inStatus: "injected failure"},
		{name: "400", status: http.StatusBadRequest, outcome: "config", errType: "INVALID_PARAMETER_VALUE", inStatus: "injected failure"},
		{name: "500", status: http.StatusInternalServerError, outcome: "error", errType: "INTERNAL_ERROR", inStatus: "injected failure"},
		{name: "503 after the SDK's retries", status: http.StatusServiceUnavailable, outcome: "error", errType: "TEMPORARILY_UNAVAILABLE", inStatus: "injected failure"},
		{name: "network", network: true, outcome: "error", errType: "_OTHER", inStatus: "connection reset by test"},
		{name: "timeout", delay: 10 * time.Second, opts: []Option{WithMintTimeout(100 * time.Millisecond)},
			outcome: "timeout", errType: "timeout", inStatus: "did not answer within 100ms (WithMintTimeout)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newOtelRig(t)
			fake := newFake(t)
			cfg := fake.Config()
			tr := &switchTransport{next: cfg.HTTPTransport}
			cfg.HTTPTransport = tr
			w, err := databricks.NewWorkspaceClient(cfg)
			if err != nil {
				t.Fatal(err)
			}
			opts := append(append([]Option{WithLogger(slog.New(&logSink{}))}, r.options()...), tc.opts...)
			s, err := New(context.Background(), w, Target{Instance: instName}, opts...)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = s.Close() })
			if tc.status != 0 {
				fake.Fail(lakebasetest.OpDatabaseCredential, tc.status, 0)
			}
			fake.SetDelay(lakebasetest.OpDatabaseCredential, tc.delay)
			tr.fail.Store(tc.network)

			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var re *RefreshError
			if _, err := s.Token(ctx); !errors.As(err, &re) {
				t.Fatalf("Token = %v, want a *RefreshError", err)
			}

			spans := r.mintSpans()
			if len(spans) != 1 {
				t.Fatalf("%d mint spans, want 1", len(spans))
			}
			sp := spans[0]
			want := map[string]string{
				"lakebase.target.kind":        "instance",
				"lakebase.target.name":        instName,
				"lakebase.token.mint.reason":  "no_token",
				"lakebase.token.mint.outcome": tc.outcome,
				"error.type":                  tc.errType,
			}
			if got := attrMap(sp.Attributes); key(got) != key(want) {
				t.Errorf("span attributes\n got %v\nwant %v", got, want)
			}
			if sp.Status.Code != codes.Error || !strings.Contains(sp.Status.Description, tc.inStatus) {
				t.Errorf("span status %+v, want Error saying %q", sp.Status, tc.inStatus)
			}

			rm := r.collect(t)
			k := targetKey("instance", instName, "lakebase.token.mint.outcome", tc.outcome, "error.type", tc.errType)
			if got := mintCounts(t, rm); len(got) != 1 || got[k] != 1 {
				t.Errorf("%s = %v, want 1 at %s", metricMints, got, k)
			}
			if durs := mintDurations(t, rm); len(durs) != 1 || durs[k].Count != 1 {
				t.Errorf("%s = %+v, want one mint at %s", metricMintDuration, durs, k)
			}
			if tc.outcome == "timeout" {
				if d := mintDurations(t, rm)[k].Sum; d < 0.1 || d > 5 {
					t.Errorf("a mint that timed out after 100ms took %vs", d)
				}
			}
			if g := expiresIn(t, rm); len(g) != 0 {
				t.Errorf("%s = %v with no token cached, want no observation", metricExpiresIn, g)
			}
		})
	}
}

// TestClassify covers the error types that the fake control plane cannot
// produce: an answer without a token, and an API error without a code.
func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		err              error
		timedOut         bool
		outcome, errType string
	}{
		{errEmptyToken, false, "error", "empty_token"},
		{fmt.Errorf("wrapped: %w", errEmptyToken), false, "error", "empty_token"},
		{errors.New("dial tcp: connection refused"), true, "timeout", "timeout"},
		{errors.New("dial tcp: connection refused"), false, "error", "_OTHER"},
	} {
		if o, e := classify(tc.err, tc.timedOut); o != tc.outcome || e != tc.errType {
			t.Errorf("classify(%v, %v) = %s, %s; want %s, %s", tc.err, tc.timedOut, o, e, tc.outcome, tc.errType)
		}
	}
}

// TestTelemetryCloseCancelsMint: a mint ended by Close is a span with
// outcome canceled and no error status.
func TestTelemetryCloseCancelsMint(t *testing.T) {
	r := newOtelRig(t)
	fake := newFake(t)
	g := newGate(t, fake)
	s, err := New(context.Background(), fake.WorkspaceClient(), Target{Endpoint: epName}, append(r.options(), WithLogger(slog.New(&logSink{})))...)
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { _, err := s.Token(context.Background()); errc <- err }()
	g.waitEntered(t)
	_ = s.Close()
	if err := <-errc; !errors.Is(err, ErrClosed) {
		t.Fatalf("Token = %v, want ErrClosed", err)
	}
	g.open()
	spans := r.mintSpans()
	if len(spans) != 1 {
		t.Fatalf("%d mint spans, want 1", len(spans))
	}
	got := attrMap(spans[0].Attributes)
	if got["lakebase.token.mint.outcome"] != "canceled" || got["error.type"] != "" || spans[0].Status.Code != codes.Unset {
		t.Errorf("span attributes %v, status %+v; want outcome canceled, no error", got, spans[0].Status)
	}
	k := targetKey("endpoint", epName, "lakebase.token.mint.outcome", "canceled")
	if got := mintCounts(t, r.collect(t)); len(got) != 1 || got[k] != 1 {
		t.Errorf("%s = %v, want 1 at %s", metricMints, got, k)
	}
}

// TestTelemetryExpiresIn: the gauge reports the seconds left until the
// cached token's expiry, falling as time passes, per target; nothing once
// it expired, after Invalidate, or after Close.
func TestTelemetryExpiresIn(t *testing.T) {
	r := newOtelRig(t)
	clock := newFakeClock()
	fake := newFake(t, lakebasetest.WithClock(clock.Now))
	fake.SetTokenLifetime(20 * time.Minute)
	opts := append(r.options(), withClock(clock.Now, clock.After))
	inst := newSource(t, fake, Target{Instance: instName}, opts...)
	ep := newSource(t, fake, Target{Endpoint: epName}, append(opts, WithMaxTokenAge(10*time.Minute))...)
	instKey, epKey := targetKey("instance", instName), targetKey("endpoint", epName)

	gauge := func() map[string]float64 { t.Helper(); return expiresIn(t, r.collect(t)) }
	check := func(step string, want map[string]float64) {
		t.Helper()
		if got := gauge(); !mapsEqual(got, want) {
			t.Errorf("%s: %s\n got %v\nwant %v", step, metricExpiresIn, got, want)
		}
	}

	check("before any mint", map[string]float64{})
	mustToken(t, inst)
	check("after the instance's mint", map[string]float64{instKey: 1200})
	mustToken(t, ep)
	check("after both mints", map[string]float64{instKey: 1200, epKey: 600}) // capped by WithMaxTokenAge

	clock.Advance(5 * time.Minute)
	check("5 minutes later", map[string]float64{instKey: 900, epKey: 300})
	clock.Advance(5*time.Minute - 500*time.Millisecond)
	check("9m59.5s later", map[string]float64{instKey: 600.5, epKey: 0.5})
	clock.Advance(500 * time.Millisecond)
	check("the endpoint's token expired", map[string]float64{instKey: 600})

	ep.Invalidate()
	mustToken(t, ep)
	check("a new endpoint token", map[string]float64{instKey: 600, epKey: 600})
	inst.Invalidate()
	check("after Invalidate", map[string]float64{epKey: 600})
	mustToken(t, inst)
	check("a new instance token", map[string]float64{instKey: 1200, epKey: 600})
	_ = inst.Close()
	check("after Close", map[string]float64{epKey: 600})
}

// countingMeters counts the callback registrations made through it and
// their ends.
type countingMeters struct {
	metric.MeterProvider
	registered, unregistered atomic.Int64
}

func (p *countingMeters) Meter(name string, opts ...metric.MeterOption) metric.Meter {
	return countingMeter{Meter: p.MeterProvider.Meter(name, opts...), p: p}
}

type countingMeter struct {
	metric.Meter
	p *countingMeters
}

func (m countingMeter) RegisterCallback(f metric.Callback, insts ...metric.Observable) (metric.Registration, error) {
	reg, err := m.Meter.RegisterCallback(f, insts...)
	if err != nil {
		return nil, err
	}
	m.p.registered.Add(1)
	return countingRegistration{Registration: reg, p: m.p}, nil
}

type countingRegistration struct {
	metric.Registration
	p *countingMeters
}

func (r countingRegistration) Unregister() error {
	r.p.unregistered.Add(1)
	return r.Registration.Unregister()
}

// TestTelemetryGaugeRegistration: the gauge's callback is registered once
// per Source, at its first token, and unregistered once, by Close or, for
// a Source dropped without Close, when it is garbage collected: a meter
// provider does not keep a Source alive.
func TestTelemetryGaugeRegistration(t *testing.T) {
	r := newOtelRig(t)
	mp := &countingMeters{MeterProvider: r.mp}
	fake := newFake(t)
	opts := []Option{WithMeterProvider(mp), WithTracerProvider(r.tp), WithLogger(slog.New(&logSink{}))}

	s, err := New(context.Background(), fake.WorkspaceClient(), Target{Instance: instName}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if n := mp.registered.Load(); n != 0 {
		t.Fatalf("%d registrations before the first token, want 0", n)
	}
	mustToken(t, s)
	s.Invalidate()
	mustToken(t, s)
	if n := mp.registered.Load(); n != 1 {
		t.Fatalf("%d registrations after two mints, want 1", n)
	}
	_ = s.Close()
	_ = s.Close()
	if n := mp.unregistered.Load(); n != 1 {
		t.Fatalf("%d unregistrations after Close, want 1", n)
	}
	s = nil
	collectGarbage(t, func() bool { return false }, 200*time.Millisecond) // a closed Source's cleanup does not unregister again
	if n := mp.unregistered.Load(); n != 1 {
		t.Fatalf("%d unregistrations after a closed Source was collected, want 1", n)
	}

	// Dropped without Close.
	func() {
		s, err := New(context.Background(), fake.WorkspaceClient(), Target{Endpoint: epName}, opts...)
		if err != nil {
			t.Fatal(err)
		}
		mustToken(t, s)
		s.waitIdle()
	}()
	if g := expiresIn(t, r.collect(t)); len(g) != 1 {
		t.Fatalf("%s = %v, want the dropped Source's token until it is collected", metricExpiresIn, g)
	}
	if !collectGarbage(t, func() bool { return mp.unregistered.Load() == 2 }, 30*time.Second) {
		t.Fatalf("the callback of a dropped Source was not unregistered (%d of %d)", mp.unregistered.Load(), mp.registered.Load())
	}
	if g := expiresIn(t, r.collect(t)); len(g) != 0 {
		t.Errorf("%s = %v after the Source was collected, want no observation", metricExpiresIn, g)
	}
}

// collectGarbage runs the garbage collector until done reports true or d
// passes, and returns done's last answer.
func collectGarbage(t *testing.T, done func() bool, d time.Duration) bool {
	t.Helper()
	deadline := time.Now().Add(d)
	for !done() {
		if time.Now().After(deadline) {
			return false
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

// TestTelemetryColdCacheOneSpan: 1000 concurrent Token calls on an empty
// cache make one mint span and count one mint.
func TestTelemetryColdCacheOneSpan(t *testing.T) {
	const callers = 1000
	r := newOtelRig(t)
	fake := newFake(t)
	g := newGate(t, fake)
	s := newSource(t, fake, Target{Instance: instName}, r.options()...)

	var wg sync.WaitGroup
	errs := make([]error, callers)
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, span := r.callerSpan()
			defer span.End()
			_, errs[i] = s.Token(ctx)
		}()
	}
	g.waitEntered(t)
	waitWaiters(t, callers)
	g.open()
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("caller %d: %v", i, err)
		}
	}

	if spans := r.mintSpans(); len(spans) != 1 || len(spans[0].Links) != 1 {
		t.Fatalf("%d mint spans for %d concurrent callers, want 1 linked to the caller that started it", len(spans), callers)
	}
	rm := r.collect(t)
	k := targetKey("instance", instName, "lakebase.token.mint.outcome", "ok")
	if got := mintCounts(t, rm); len(got) != 1 || got[k] != 1 {
		t.Errorf("%s = %v, want 1", metricMints, got)
	}
	if d := mintDurations(t, rm); d[k].Count != 1 {
		t.Errorf("%s counted %d mints, want 1", metricMintDuration, d[k].Count)
	}
}

// dumpTelemetry renders every span (name, attributes, events, links,
// status, scope, resource) and every metric (name, description, unit, data
// points with attributes and exemplars) as text, twice: walked field by
// field, and with %+v.
func dumpTelemetry(spans []tracetest.SpanStub, rm metricdata.ResourceMetrics) string {
	var b strings.Builder
	kvs := func(kv []attribute.KeyValue) {
		for _, a := range kv {
			fmt.Fprintf(&b, " %s=%s", a.Key, a.Value.String())
		}
	}
	for _, s := range spans {
		fmt.Fprintf(&b, "span %s scope=%s status=%s:%s", s.Name, s.InstrumentationScope.Name, s.Status.Code, s.Status.Description)
		kvs(s.Attributes)
		for _, e := range s.Events {
			fmt.Fprintf(&b, " event %s", e.Name)
			kvs(e.Attributes)
		}
		for _, l := range s.Links {
			fmt.Fprintf(&b, " link %s", l.SpanContext.SpanID())
			kvs(l.Attributes)
		}
		if s.Resource != nil {
			kvs(s.Resource.Attributes())
		}
		fmt.Fprintf(&b, "\n%+v\n", s)
	}
	kvs(rm.Resource.Attributes())
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			fmt.Fprintf(&b, "metric %s (%s) [%s] scope=%s", m.Name, m.Description, m.Unit, sm.Scope.Name)
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, dp := range d.DataPoints {
					fmt.Fprintf(&b, " point %d", dp.Value)
					kvs(dp.Attributes.ToSlice())
					for _, e := range dp.Exemplars {
						kvs(e.FilteredAttributes)
					}
				}
			case metricdata.Histogram[float64]:
				for _, dp := range d.DataPoints {
					fmt.Fprintf(&b, " point %d %v", dp.Count, dp.Sum)
					kvs(dp.Attributes.ToSlice())
					for _, e := range dp.Exemplars {
						kvs(e.FilteredAttributes)
					}
				}
			case metricdata.Gauge[float64]:
				for _, dp := range d.DataPoints {
					fmt.Fprintf(&b, " point %v", dp.Value)
					kvs(dp.Attributes.ToSlice())
				}
			default:
				fmt.Fprintf(&b, " unexpected %T", d)
			}
			fmt.Fprintf(&b, "\n%+v\n", m)
		}
	}
	return b.String()
}

// TestTelemetryNoToken: no span, event, link, status, attribute, metric or
// exemplar carries a token, across successes, refreshes, retries,
// failures, invalidations and a Close.
func TestTelemetryNoToken(t *testing.T) {
	r := newOtelRig(t)
	clock := newFakeClock()
	fake := newFake(t, lakebasetest.WithClock(clock.Now))
	var mu sync.Mutex
	var tokens []string
	fake.OnMint(func(m lakebasetest.Mint) error {
		mu.Lock()
		defer mu.Unlock()
		tokens = append(tokens, m.Token)
		return nil
	})
	opts := append(r.options(), withClock(clock.Now, clock.After))
	inst := newSource(t, fake, Target{Instance: instName}, opts...)
	ep := newSource(t, fake, Target{Project: "my-project", Branch: "production"}, opts...)

	ctx, caller := r.callerSpan()
	mustTokenCtx(t, ctx, inst)
	mustTokenCtx(t, ctx, ep)
	caller.End()
	clock.Advance(56 * time.Minute) // refreshes, one of them failing, then retried
	fake.Fail(lakebasetest.OpDatabaseCredential, http.StatusInternalServerError, 1)
	mustToken(t, inst)
	mustToken(t, ep)
	waitCalls(t, fake, inst, 2)
	waitArmed(t, clock)
	clock.Advance(2 * time.Second)
	waitCalls(t, fake, inst, 3)
	r.waitMintSpans(t, 5)
	ep.Invalidate()
	mustToken(t, ep)
	fake.Fail(lakebasetest.OpPostgresCredential, http.StatusForbidden, 1)
	ep.Invalidate()
	if _, err := ep.Token(context.Background()); err == nil {
		t.Fatal("Token succeeded with the API failing")
	}
	rm := r.collect(t) // the gauge observes the instance's token
	_ = inst.Close()
	_ = ep.Close()

	dump := dumpTelemetry(r.spans.GetSpans(), rm)
	mu.Lock()
	defer mu.Unlock()
	if len(tokens) != 5 {
		t.Fatalf("%d tokens minted, want 5", len(tokens))
	}
	for i, tok := range tokens {
		if strings.Contains(dump, tok) {
			t.Errorf("token %d appears in the telemetry", i+1)
		}
	}
	// The scan sees the attributes, the statuses and every instrument.
	for _, want := range []string{instName, epName, "INTERNAL_ERROR", "PERMISSION_DENIED", "injected failure",
		"lakebase.token.mint.outcome", metricMints, metricMintDuration, metricExpiresIn} {
		if !strings.Contains(dump, want) {
			t.Errorf("the telemetry dump lacks %q, so the scan is incomplete:\n%s", want, dump)
		}
	}
}

// TestTelemetryOptionErrors: nil providers are configuration errors.
func TestTelemetryOptionErrors(t *testing.T) {
	_, err := New(context.Background(), newFake(t).WorkspaceClient(), Target{Instance: instName},
		WithTracerProvider(nil), WithMeterProvider(nil))
	var ce *ConfigError
	if !errors.As(err, &ce) || len(ce.Problems) != 2 ||
		!strings.Contains(ce.Problems[0], "WithTracerProvider was given a nil provider") ||
		!strings.Contains(ce.Problems[1], "WithMeterProvider was given a nil provider") {
		t.Fatalf("New = %v, want a *ConfigError naming both options", err)
	}
}

// TestTelemetryGlobalProviders: without the options, spans and metrics go
// to the global providers. It runs in a process of its own, so that the
// SDK it installs globally reaches no other test or benchmark.
func TestTelemetryGlobalProviders(t *testing.T) {
	const env = "LAKEBASECRED_TEST_GLOBAL_OTEL"
	if os.Getenv(env) == "" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestTelemetryGlobalProviders$", "-test.count=1", "-test.v")
		cmd.Env = append(os.Environ(), env+"=1")
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "--- PASS: TestTelemetryGlobalProviders") {
			t.Fatalf("the test in its own process: %v\n%s", err, out)
		}
		return
	}

	r := newOtelRig(t)
	fake := newFake(t)
	s := newSource(t, fake, Target{Instance: instName}) // made before the SDK is installed
	otel.SetTracerProvider(r.tp)
	otel.SetMeterProvider(r.mp)
	mustToken(t, s)
	if n := len(r.mintSpans()); n != 1 {
		t.Errorf("%d mint spans through the global provider, want 1", n)
	}
	rm := r.collect(t)
	if got := mintCounts(t, rm); len(got) != 1 {
		t.Errorf("%s through the global provider = %v, want one count", metricMints, got)
	}
	if g := expiresIn(t, rm); len(g) != 1 {
		t.Errorf("%s through the global provider = %v, want one observation", metricExpiresIn, g)
	}
}
