package connector_test

// The Connector's span and metrics, read with the OpenTelemetry SDK's
// in-memory span recorder and a manual metric reader.

import (
	"context"
	"errors"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/lakesession/lakesession/connector"
	"github.com/lakesession/lakesession/internal/faultproxy"
	"github.com/lakesession/lakesession/lakebasecred"
	"github.com/lakesession/lakesession/lakebasecred/lakebasetest"
)

// otelSDK is an SDK tracer provider that keeps every span, and a meter
// provider read by hand.
type otelSDK struct {
	spans  *tracetest.SpanRecorder
	tp     *sdktrace.TracerProvider
	reader *sdkmetric.ManualReader
	mp     *sdkmetric.MeterProvider
}

func newOtelSDK(t testing.TB) *otelSDK {
	t.Helper()
	o := &otelSDK{spans: tracetest.NewSpanRecorder(), reader: sdkmetric.NewManualReader()}
	o.tp = sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()), sdktrace.WithSpanProcessor(o.spans))
	o.mp = sdkmetric.NewMeterProvider(sdkmetric.WithReader(o.reader))
	t.Cleanup(func() {
		o.tp.Shutdown(context.Background())
		o.mp.Shutdown(context.Background())
	})
	return o
}

// options returns the Connector options that send to this SDK.
func (o *otelSDK) options(more ...connector.Option) []connector.Option {
	return append([]connector.Option{connector.WithTracerProvider(o.tp), connector.WithMeterProvider(o.mp)}, more...)
}

// scopeSpans returns the ended spans of scope (the connector's when ""),
// in the order they ended.
func (o *otelSDK) scopeSpans(scope string) []sdktrace.ReadOnlySpan {
	if scope == "" {
		scope = connector.ScopeName
	}
	var out []sdktrace.ReadOnlySpan
	for _, s := range o.spans.Ended() {
		if s.InstrumentationScope().Name == scope {
			out = append(out, s)
		}
	}
	return out
}

// metrics collects the connector's metrics recorded so far.
func (o *otelSDK) metrics(t testing.TB) map[string]metricdata.Metrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := o.reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string]metricdata.Metrics{}
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != connector.ScopeName {
			continue
		}
		for _, m := range sm.Metrics {
			out[m.Name] = m
		}
	}
	return out
}

func attrMap(kvs []attribute.KeyValue) map[string]string {
	out := map[string]string{}
	for _, kv := range kvs {
		out[string(kv.Key)] = kv.Value.String()
	}
	return out
}

// wantAttrs fails t unless got has the attributes of want ("" for a key
// that must be absent, "*" for one that must be present).
func wantAttrs(t *testing.T, what string, got map[string]string, want map[string]string) {
	t.Helper()
	for k, v := range want {
		g, ok := got[k]
		switch {
		case v == "" && ok:
			t.Errorf("%s: attribute %s = %q, want none (all: %v)", what, k, g, got)
		case v == "*" && !ok:
			t.Errorf("%s: attribute %s missing (all: %v)", what, k, got)
		case v != "" && v != "*" && g != v:
			t.Errorf("%s: attribute %s = %q, want %q (all: %v)", what, k, g, v, got)
		}
	}
}

// counts returns a counter's points as value by attributes (each point's
// attributes printed sorted, key=value joined by commas); none when nothing
// was recorded.
func counts(t *testing.T, m metricdata.Metrics) map[string]int64 {
	t.Helper()
	if m.Data == nil {
		return map[string]int64{} // nothing recorded
	}
	sum, ok := m.Data.(metricdata.Sum[int64])
	if !ok {
		t.Fatalf("%s is a %T, want an int64 counter", m.Name, m.Data)
	}
	if !sum.IsMonotonic || sum.Temporality != metricdata.CumulativeTemporality {
		t.Errorf("%s: monotonic %v, temporality %v, want a cumulative counter", m.Name, sum.IsMonotonic, sum.Temporality)
	}
	out := map[string]int64{}
	for _, dp := range sum.DataPoints {
		out[setKey(dp.Attributes)] += dp.Value
	}
	return out
}

func setKey(s attribute.Set) string {
	var parts []string
	for _, kv := range s.ToSlice() {
		parts = append(parts, string(kv.Key)+"="+kv.Value.String())
	}
	return strings.Join(parts, ",")
}

// connAttrs are the attributes every span and metric point of a Connector
// to host:port, database has, as setKey prints them (sorted), with more.
func connAttrs(host string, port int, database string, more ...string) string {
	parts := append([]string{
		"db.namespace=" + database,
		"db.system.name=postgresql",
		"server.address=" + host,
		"server.port=" + strconv.Itoa(port),
	}, more...)
	slices.Sort(parts)
	return strings.Join(parts, ",")
}

// A Connect is one client span, a child of the caller's, with the server's
// address and port, the database, and one attempt; its duration and the
// attempt are recorded, with the same attributes.
func TestConnectSpanAndMetrics(t *testing.T) {
	s := newServer(t)
	pw := "pw-" + randomToken(t)
	role := s.newRole(t, pw)
	o := newOtelSDK(t)
	c, err := connector.New(connector.Config{
		Host: s.host, Port: s.port, User: role, Database: s.database, Password: pw, SSLMode: "disable",
		TracerProvider: o.tp, MeterProvider: o.mp,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, parent := o.tp.Tracer("test").Start(context.Background(), "request")
	conn, err := c.Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()
	parent.End()

	spans := o.scopeSpans("")
	if len(spans) != 1 {
		t.Fatalf("one Connect made %d spans, want 1", len(spans))
	}
	sp := spans[0]
	if sp.Name() != connector.SpanConnect || sp.Name() != "lakesession.connect" {
		t.Errorf("span %q, want lakesession.connect", sp.Name())
	}
	if sp.SpanKind() != trace.SpanKindClient {
		t.Errorf("span kind %v, want client", sp.SpanKind())
	}
	if sp.Parent().SpanID() != parent.SpanContext().SpanID() || sp.SpanContext().TraceID() != parent.SpanContext().TraceID() {
		t.Errorf("span's parent %v, want the caller's span %v", sp.Parent().SpanID(), parent.SpanContext().SpanID())
	}
	if sp.Status().Code != codes.Unset {
		t.Errorf("status %v, want unset", sp.Status())
	}
	wantAttrs(t, "span", attrMap(sp.Attributes()), map[string]string{
		"server.address": s.host, "server.port": strconv.Itoa(s.port), "db.namespace": s.database,
		"db.system.name": "postgresql", "lakesession.connect.attempts": "1",
		"lakesession.connect.probes": "", "lakesession.connect.token_replaced": "", "error.type": "",
		"db.response.status_code": "",
	})
	if got := len(sp.Attributes()); got != 5 {
		t.Errorf("span has %d attributes, want 5: %v", got, sp.Attributes())
	}

	ms := o.metrics(t)
	base := connAttrs(s.host, s.port, s.database)
	d, ok := ms[connector.MetricConnectDuration]
	if !ok {
		t.Fatalf("no %s; metrics: %v", connector.MetricConnectDuration, slices.Collect(maps.Keys(ms)))
	}
	if d.Name != "lakesession.connect.duration" || d.Unit != "s" {
		t.Errorf("duration metric %q in %q, want lakesession.connect.duration in s", d.Name, d.Unit)
	}
	h, ok := d.Data.(metricdata.Histogram[float64])
	if !ok || len(h.DataPoints) != 1 {
		t.Fatalf("duration: %#v, want a histogram with one point", d.Data)
	}
	dp := h.DataPoints[0]
	if setKey(dp.Attributes) != base || dp.Count != 1 {
		t.Errorf("duration point {%s} count %d, want {%s} count 1", setKey(dp.Attributes), dp.Count, base)
	}
	if want := []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60}; !slices.Equal(dp.Bounds, want) {
		t.Errorf("duration buckets %v, want %v", dp.Bounds, want)
	}
	if dp.Sum <= 0 || dp.Sum > 10 {
		t.Errorf("duration %gs, want a few milliseconds", dp.Sum)
	}
	a := ms[connector.MetricConnectAttempts]
	if a.Name != "lakesession.connect.attempts" || a.Unit != "{attempt}" {
		t.Errorf("attempts metric %q in %q, want lakesession.connect.attempts in {attempt}", a.Name, a.Unit)
	}
	if got, want := counts(t, a), map[string]int64{connAttrs(s.host, s.port, s.database, "lakesession.connect.attempt.kind=connect"): 1}; !maps.Equal(got, want) {
		t.Errorf("attempts %v, want %v", got, want)
	}
	if r := counts(t, ms[connector.MetricConnectAuthRejected]); len(r) > 0 {
		t.Errorf("auth_rejected %v after a login that was accepted, want none", r)
	}
}

// A failed Connect has status Error, error.type (a SQLSTATE or a word),
// db.response.status_code when the server answered, a description without
// the password, and its duration recorded with error.type.
func TestConnectSpanFailures(t *testing.T) {
	s := newServer(t)
	pw := "pw-" + randomToken(t)
	role := s.newRole(t, pw)

	// A port where nothing listens.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := ln.Addr().(*net.TCPAddr).Port
	ln.Close()

	// A server that accepts and never answers.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	var held sync.WaitGroup
	held.Add(1)
	go func() {
		defer held.Done()
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	defer held.Wait()
	defer silent.Close()

	down := faultproxy.Start(t, faultproxy.HostPort(s.host, s.port))
	down.Refuse(true)

	static := func(mod func(*connector.Config)) connector.Config {
		cfg := connector.Config{Host: s.host, Port: s.port, User: role, Database: s.database,
			Password: pw, SSLMode: "disable", MaxConnectWait: -1}
		if mod != nil {
			mod(&cfg)
		}
		return cfg
	}
	cases := []struct {
		name     string
		cfg      connector.Config
		ctx      time.Duration // the caller's deadline; 0: none
		closed   bool          // Connect after Close
		errType  string
		sqlstate bool
		attempts string
		probes   bool // the span has lakesession.connect.probes
	}{
		{name: "wrong password", cfg: static(func(c *connector.Config) { c.Password = "wrong-" + pw }),
			errType: "28P01", sqlstate: true, attempts: "1"},
		{name: "no such database", cfg: static(func(c *connector.Config) { c.Database = s.database + "_missing" }),
			errType: "3D000", sqlstate: true, attempts: "1"},
		{name: "refused", cfg: static(func(c *connector.Config) { c.Port = closedPort }),
			errType: "refused", attempts: "1"},
		{name: "attempt timeout", cfg: static(func(c *connector.Config) {
			c.Port = silent.Addr().(*net.TCPAddr).Port
			c.ConnectTimeout = 300 * time.Millisecond
		}), errType: "timeout", attempts: "1"},
		{name: "token source", cfg: connector.Config{Host: s.host, Port: s.port, User: role, Database: s.database,
			Tokens: &fakeSource{err: errors.New("vault sealed")}, SSLMode: "require"},
			errType: "token_source", attempts: "1"},
		{name: "wait exceeded", cfg: static(func(c *connector.Config) {
			c.Host, c.Port, c.MaxConnectWait = down.Host(), down.Port(), 700*time.Millisecond
		}), errType: "connect_wait_exceeded", attempts: "1", probes: true},
		{name: "caller deadline during the wait", cfg: static(func(c *connector.Config) {
			c.Host, c.Port, c.MaxConnectWait = down.Host(), down.Port(), 20*time.Second
		}), ctx: 700 * time.Millisecond, errType: "context.DeadlineExceeded", attempts: "1", probes: true},
		{name: "closed", cfg: static(nil), closed: true, errType: "connector.ErrClosed", attempts: "0"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := newOtelSDK(t)
			tc.cfg.TracerProvider, tc.cfg.MeterProvider = o.tp, o.mp
			c, err := connector.New(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if tc.closed {
				c.Close()
			}
			ctx := context.Background()
			if tc.ctx > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.ctx)
				defer cancel()
			}
			conn, err := c.Connect(ctx)
			if err == nil {
				conn.Close()
				t.Fatal("Connect succeeded")
			}
			spans := o.scopeSpans("")
			if len(spans) != 1 {
				t.Fatalf("%d spans, want 1", len(spans))
			}
			sp := spans[0]
			if sp.Status().Code != codes.Error || sp.Status().Description != err.Error() {
				t.Errorf("status %v, want Error with the error's text %q", sp.Status(), err)
			}
			mustNotContain(t, "status description", sp.Status().Description, pw)
			code := ""
			if tc.sqlstate {
				code = tc.errType
			}
			probes := ""
			if tc.probes {
				probes = "*"
			}
			got := attrMap(sp.Attributes())
			wantAttrs(t, "span", got, map[string]string{
				"error.type": tc.errType, "db.response.status_code": code,
				"lakesession.connect.attempts": tc.attempts, "lakesession.connect.probes": probes,
				"lakesession.connect.token_replaced": "", "server.port": strconv.Itoa(tc.cfg.Port),
			})
			if tc.probes {
				if n, _ := strconv.Atoi(got["lakesession.connect.probes"]); n < 1 {
					t.Errorf("probes = %s after waiting an outage, want at least 1", got["lakesession.connect.probes"])
				}
			}
			for _, text := range fmtAll(tracetest.SpanStubFromReadOnlySpan(sp)) {
				mustNotContain(t, "span", text, pw)
			}

			ms := o.metrics(t)
			h := ms[connector.MetricConnectDuration].Data.(metricdata.Histogram[float64])
			if len(h.DataPoints) != 1 || attrMap(h.DataPoints[0].Attributes.ToSlice())["error.type"] != tc.errType {
				t.Errorf("duration points %v, want one with error.type %s", h.DataPoints, tc.errType)
			}
			att := counts(t, ms[connector.MetricConnectAttempts])
			own := connAttrs(tc.cfg.Host, tc.cfg.Port, tc.cfg.Database, "lakesession.connect.attempt.kind=connect", "error.type="+tc.errType)
			switch {
			case tc.closed:
				if len(att) != 0 {
					t.Errorf("attempts %v after Close, want none", att)
				}
			case tc.probes:
				// The first attempt met the outage (the proxy resets), the
				// probes too; the Connect's own error.type is the wait's.
				var connect, probe int64
				for k, v := range att {
					switch {
					case strings.Contains(k, "kind=connect"):
						connect += v
					case strings.Contains(k, "kind=probe"):
						probe += v
					}
				}
				if connect != 1 || probe < 1 {
					t.Errorf("attempts %v, want 1 by the Connect and at least 1 probe", att)
				}
			default:
				if !maps.Equal(att, map[string]int64{own: 1}) {
					t.Errorf("attempts %v, want {%s: 1}", att, own)
				}
			}
			rej := counts(t, ms[connector.MetricConnectAuthRejected])
			if tc.errType == "28P01" {
				if want := map[string]int64{connAttrs(tc.cfg.Host, tc.cfg.Port, tc.cfg.Database, "error.type=28P01"): 1}; !maps.Equal(rej, want) {
					t.Errorf("auth_rejected %v, want %v", rej, want)
				}
			} else if len(rej) > 0 {
				t.Errorf("auth_rejected %v, want none", rej)
			}
		})
	}
}

// A token that the database rejects is replaced: the span says so and
// counts two attempts, auth_rejected counts the rejection, and the mint of
// the new token is linked to the Connect that needed it.
func TestConnectTokenReplaced(t *testing.T) {
	o := newOtelSDK(t)
	l := newLakebaseWith(t, time.Hour,
		[]lakebasecred.Option{lakebasecred.WithTracerProvider(o.tp), lakebasecred.WithMeterProvider(o.mp)},
		o.options()...)
	defer l.conn.Close()
	ctx := context.Background()
	conn, err := l.conn.Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()
	l.setPassword(t, l.role, randomToken(t)) // the cached token is refused from now on
	o.spans.Reset()

	conn, err = l.conn.Connect(ctx)
	if err != nil {
		t.Fatalf("Connect after the token was revoked: %v", err)
	}
	conn.Close()
	spans := o.scopeSpans("")
	if len(spans) != 1 {
		t.Fatalf("%d connect spans, want 1", len(spans))
	}
	sp := spans[0]
	wantAttrs(t, "span", attrMap(sp.Attributes()), map[string]string{
		"lakesession.connect.attempts": "2", "lakesession.connect.token_replaced": "true",
		"error.type": "", "server.address": l.host, "db.namespace": l.database,
	})
	if sp.Status().Code != codes.Unset {
		t.Errorf("status %v, want unset: the second attempt connected", sp.Status())
	}
	mints := o.scopeSpans("github.com/lakesession/lakesession/lakebasecred")
	if len(mints) != 1 {
		t.Fatalf("%d mint spans during the Connect, want 1", len(mints))
	}
	if links := mints[0].Links(); len(links) != 1 || links[0].SpanContext.SpanID() != sp.SpanContext().SpanID() {
		t.Errorf("the mint's links %v, want one to the Connect's span %v", links, sp.SpanContext().SpanID())
	}

	ms := o.metrics(t)
	base := func(more ...string) string { return connAttrs(l.host, l.port, l.database, more...) }
	if got, want := counts(t, ms[connector.MetricConnectAuthRejected]), map[string]int64{base("error.type=28P01"): 1}; !maps.Equal(got, want) {
		t.Errorf("auth_rejected %v, want %v", got, want)
	}
	if got, want := counts(t, ms[connector.MetricConnectAttempts]), map[string]int64{
		base("lakesession.connect.attempt.kind=connect"):                     2,
		base("lakesession.connect.attempt.kind=connect", "error.type=28P01"): 1,
	}; !maps.Equal(got, want) {
		t.Errorf("attempts %v, want %v", got, want)
	}

	// The new token is refused too: the span still says it was replaced,
	// and the Connect fails with the SQLSTATE.
	l.fake.OnMint(func(lakebasetest.Mint) error { return nil })
	l.setPassword(t, l.role, randomToken(t))
	o.spans.Reset()
	if conn, err := l.conn.Connect(ctx); err == nil {
		conn.Close()
		t.Fatal("Connect succeeded with tokens the database refuses")
	}
	sp = o.scopeSpans("")[0]
	wantAttrs(t, "span", attrMap(sp.Attributes()), map[string]string{
		"lakesession.connect.attempts": "2", "lakesession.connect.token_replaced": "true",
		"error.type": "28P01", "db.response.status_code": "28P01",
	})
	if got := counts(t, o.metrics(t)[connector.MetricConnectAuthRejected])[base("error.type=28P01")]; got != 3 {
		t.Errorf("auth_rejected = %d after three refused logins, want 3", got)
	}
	l.checkNoTokenLeaked(t)
	var toks []string
	for _, m := range l.fake.Mints() {
		toks = append(toks, m.Token)
	}
	for _, s := range o.spans.Ended() {
		for _, text := range fmtAll(tracetest.SpanStubFromReadOnlySpan(s)) {
			mustNotContain(t, "span "+s.Name(), text, toks...)
		}
	}
}

// A token source that hands out the rejected token again: the retry is
// made, with the same token, and token_replaced is false.
func TestConnectTokenNotReplaced(t *testing.T) {
	s := tlsServer(t)
	role := s.newRole(t, "pw-"+randomToken(t))
	o := newOtelSDK(t)
	cfg := s.tokenConfig(role, &fakeSource{tok: randomToken(t)})
	cfg.TracerProvider, cfg.MeterProvider = o.tp, o.mp
	c, err := connector.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if conn, err := c.Connect(context.Background()); err == nil {
		conn.Close()
		t.Fatal("Connect succeeded with a wrong token")
	}
	wantAttrs(t, "span", attrMap(o.scopeSpans("")[0].Attributes()), map[string]string{
		"lakesession.connect.attempts": "2", "lakesession.connect.token_replaced": "false", "error.type": "28P01",
	})
}

// Connects that wait out an outage together: each span counts its own
// attempts and the shared probes it saw; the attempts counter counts each
// dial once, the Connects' as "connect" and the probes' as "probe".
func TestConnectOutageAttempts(t *testing.T) {
	x := newProxied(t)
	o := newOtelSDK(t)
	c, err := connector.New(connector.Config{
		Host: x.p.Host(), Port: x.p.Port(), User: x.role, Database: x.database,
		Password: x.password, SSLMode: "disable", MaxConnectWait: 20 * time.Second,
		TracerProvider: o.tp, MeterProvider: o.mp,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	x.p.Refuse(true)
	ctx := withTimeout(t, 30*time.Second)
	const n = 3
	errs := make(chan error, n)
	started := make(chan struct{}, n)
	for range n {
		go func() {
			started <- struct{}{}
			conn, err := c.Connect(ctx)
			if err == nil {
				conn.Close()
			}
			errs <- err
		}()
	}
	for range n {
		<-started
	}
	time.Sleep(600 * time.Millisecond) // every Connect waits, probes fail
	x.p.Refuse(false)
	for range n {
		if err := <-errs; err != nil {
			t.Fatalf("Connect across the outage: %v", err)
		}
	}
	spans := o.scopeSpans("")
	if len(spans) != n {
		t.Fatalf("%d spans, want %d", len(spans), n)
	}
	own, maxProbes := 0, 0
	for _, sp := range spans {
		got := attrMap(sp.Attributes())
		a, err1 := strconv.Atoi(got["lakesession.connect.attempts"])
		p, err2 := strconv.Atoi(got["lakesession.connect.probes"])
		if err1 != nil || err2 != nil || p < 1 {
			t.Errorf("span attributes %v, want attempts, and probes of at least 1", got)
		}
		own += a
		maxProbes = max(maxProbes, p)
		if sp.Status().Code != codes.Unset {
			t.Errorf("status %v after the outage, want unset", sp.Status())
		}
	}
	var connect, probe int64
	for k, v := range counts(t, o.metrics(t)[connector.MetricConnectAttempts]) {
		switch {
		case strings.Contains(k, "kind=connect"):
			connect += v
		case strings.Contains(k, "kind=probe"):
			probe += v
		default:
			t.Errorf("attempts point {%s} without a kind", k)
		}
	}
	if connect != int64(own) {
		t.Errorf("attempts counter: %d by Connects, the spans say %d", connect, own)
	}
	if probe < int64(maxProbes) || probe > x.p.Accepted() {
		t.Errorf("attempts counter: %d probes, want at least the %d a Connect saw and at most the %d dials the proxy accepted", probe, maxProbes, x.p.Accepted())
	}
	t.Logf("%d Connects: %d own attempts, %d probes (a Connect saw up to %d), %d dials", n, own, probe, maxProbes, x.p.Accepted())
}

// statementTracer is a pgx.QueryTracer and pgx.ConnectTracer that keeps the
// statements it sees, the span in each statement's context, and the span in
// the context of each connection attempt.
type statementTracer struct {
	mu         sync.Mutex
	statements []string
	parents    []trace.SpanContext
	connects   []trace.SpanContext
}

func (st *statementTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.statements = append(st.statements, data.SQL)
	st.parents = append(st.parents, trace.SpanContextFromContext(ctx))
	return ctx
}

func (st *statementTracer) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (st *statementTracer) TraceConnectStart(ctx context.Context, _ pgx.TraceConnectStartData) context.Context {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.connects = append(st.connects, trace.SpanContextFromContext(ctx))
	return ctx
}

func (st *statementTracer) TraceConnectEnd(context.Context, pgx.TraceConnectEndData) {}

// Config.QueryTracer (WithQueryTracer) is pgx's tracer: it sees each
// statement in the context of the call, and each connection attempt under
// the Connect's span.
func TestQueryTracer(t *testing.T) {
	qt := &statementTracer{}
	o := newOtelSDK(t)
	l := newLakebase(t, time.Hour, o.options(connector.WithQueryTracer(qt))...)
	db := l.openDB(t)
	ctx, parent := o.tp.Tracer("test").Start(context.Background(), "request")
	var sum int
	if err := db.QueryRowContext(ctx, "SELECT $1::int + 1", 41).Scan(&sum); err != nil || sum != 42 {
		t.Fatalf("query: %d, %v", sum, err)
	}
	parent.End()
	qt.mu.Lock()
	defer qt.mu.Unlock()
	if !slices.Equal(qt.statements, []string{"SELECT $1::int + 1"}) {
		t.Errorf("the tracer saw %q, want the statement", qt.statements)
	}
	if len(qt.parents) != 1 || qt.parents[0].SpanID() != parent.SpanContext().SpanID() {
		t.Errorf("the statement's context carries %v, want the caller's span %v", qt.parents, parent.SpanContext().SpanID())
	}
	spans := o.scopeSpans("")
	if len(spans) != 1 || len(qt.connects) != 1 || qt.connects[0].SpanID() != spans[0].SpanContext().SpanID() {
		t.Errorf("connect tracer saw %v, want the lakesession.connect span (%d spans)", qt.connects, len(spans))
	}
}

// With no provider given, a Connector uses the global ones: those of an SDK
// installed after New (the global provider forwards to the first SDK
// installed), and of one installed before.
func TestConnectDefaultsToTheGlobalProviders(t *testing.T) {
	s := newServer(t)
	pw := "pw-" + randomToken(t)
	role := s.newRole(t, pw)
	cfg := connector.Config{Host: s.host, Port: s.port, User: role, Database: s.database, Password: pw, SSLMode: "disable"}
	var conns []*connector.Connector
	// The global providers forward only to the first SDK installed: in a
	// repeated run (go test -count=2) an SDK of the run before is there.
	if _, installed := otel.GetTracerProvider().(*sdktrace.TracerProvider); !installed {
		before, err := connector.New(cfg) // before any SDK is installed
		if err != nil {
			t.Fatal(err)
		}
		defer before.Close()
		conns = append(conns, before)
	}
	o := newOtelSDK(t)
	otel.SetTracerProvider(o.tp)
	otel.SetMeterProvider(o.mp)
	after, err := connector.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer after.Close()
	conns = append(conns, after)
	ctx, parent := o.tp.Tracer("test").Start(context.Background(), "global")
	for _, c := range conns {
		conn, err := c.Connect(ctx)
		if err != nil {
			t.Fatal(err)
		}
		conn.Close()
	}
	parent.End()
	mine := 0
	for _, sp := range o.scopeSpans("") {
		if sp.Parent().SpanID() == parent.SpanContext().SpanID() {
			mine++
		}
	}
	if mine != len(conns) {
		t.Errorf("%d connect spans under the test's span, want %d (one per Connector)", mine, len(conns))
	}
	got := counts(t, o.metrics(t)[connector.MetricConnectAttempts])[connAttrs(s.host, s.port, s.database, "lakesession.connect.attempt.kind=connect")]
	if got != int64(len(conns)) {
		t.Errorf("%d attempts counted by the global meter provider, want %d", got, len(conns))
	}
}

// Config's String shows which providers and tracer are set, by type.
func TestConfigStringShowsTelemetry(t *testing.T) {
	o := newOtelSDK(t)
	cfg := connector.Config{TracerProvider: o.tp, QueryTracer: &statementTracer{}}
	got := cfg.String()
	for _, want := range []string{"TracerProvider:*trace.TracerProvider", "MeterProvider:<nil>", "QueryTracer:*connector_test.statementTracer"} {
		if !strings.Contains(got, want) {
			t.Errorf("String() = %s, want %s", got, want)
		}
	}
}
