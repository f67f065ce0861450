package connector

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
)

// ScopeName is the instrumentation scope of the Connector's span and
// metrics.
const ScopeName = "github.com/lakesession/lakesession/connector"

// The name of the span of each Connect, and the names of the metrics (see
// the package doc, # Telemetry).
const (
	SpanConnect               = "lakesession.connect"
	MetricConnectDuration     = "lakesession.connect.duration"
	MetricConnectAttempts     = "lakesession.connect.attempts"
	MetricConnectAuthRejected = "lakesession.connect.auth_rejected"
)

// The Connector's own attribute keys; the others are OpenTelemetry's
// conventions (server.address, server.port, db.namespace, db.system.name,
// error.type, db.response.status_code).
const (
	// AttrAttempts is the number of connection attempts a Connect made
	// itself (each a token, a dial, a TLS handshake and a login): 1 when
	// the first one connected, 2 after a rejected token, more after an
	// outage; 0 when it joined an outage already being waited out and took
	// the connection of a probe.
	AttrAttempts = attribute.Key("lakesession.connect.attempts")
	// AttrProbes is the number of the Connector's shared probes that
	// finished while a Connect waited out an outage, the one that got
	// through included; absent when it did not wait. The Connects that
	// wait at the same time see the same probes.
	AttrProbes = attribute.Key("lakesession.connect.probes")
	// AttrTokenReplaced is present when the database rejected a token:
	// true when Connect logged in again with a different token from the
	// source, false when the source handed out the rejected token again.
	AttrTokenReplaced = attribute.Key("lakesession.connect.token_replaced")
	// AttrAttemptKind says who made a counted attempt: "connect" (a
	// Connect, for itself) or "probe" (the prober, for every Connect that
	// waits out an outage).
	AttrAttemptKind = attribute.Key("lakesession.connect.attempt.kind")
)

// The error.type values of the Connector besides SQLSTATEs and the
// context's errors; the package doc lists them all (# Telemetry).
const (
	errTypeClosed      = "connector.ErrClosed"
	errTypeWaitOver    = "connect_wait_exceeded"
	errTypeTokenSource = "token_source"
	errTypeTimeout     = "timeout"
	errTypeRefused     = "refused"
	errTypeReset       = "reset"
	errTypeClosedConn  = "closed"
	errTypeUnreachable = "unreachable"
	errTypeDNS         = "dns"
	errTypeTLS         = "tls"
	errTypeCanceled    = "context.Canceled"
	errTypeDeadline    = "context.DeadlineExceeded"
	errTypeOther       = "_OTHER"
)

// connectBuckets are the bucket boundaries of the connect duration, in
// seconds: from a login on loopback (a few milliseconds with TLS) to a
// Connect that waited out an outage (up to MaxConnectWait, 30 s by
// default) and beyond.
var connectBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60}

// telemetry is a Connector's tracer, its instruments and the attributes it
// reuses on every Connect.
type telemetry struct {
	tracer       trace.Tracer
	duration     metric.Float64Histogram
	attempts     metric.Int64Counter
	authRejected metric.Int64Counter

	attrs      []attribute.KeyValue    // the span's and every metric's
	spanStart  []trace.SpanStartOption // kind client, attrs
	okDuration []metric.RecordOption   // a Connect that succeeded
	okAttempt  [2][]metric.AddOption   // an attempt that connected: by a Connect, by a probe
	kinds      [2]attribute.KeyValue   // attempt.kind: connect, probe
}

// newTelemetry makes the tracer and the instruments of a Connector to
// host:port, database. A nil provider is the global one, as it is now. An
// instrument the provider refuses is reported to otel.Handle and replaced
// by a no-op. A nil *telemetry (a Connector built without telemetry, for
// the benchmarks) records nothing.
func newTelemetry(tp trace.TracerProvider, mp metric.MeterProvider, host string, port int, database string) *telemetry {
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	t := &telemetry{
		tracer: tp.Tracer(ScopeName, trace.WithSchemaURL(semconv.SchemaURL)),
		attrs: []attribute.KeyValue{
			semconv.DBSystemNamePostgreSQL,
			semconv.ServerAddress(host),
			semconv.ServerPort(port),
			semconv.DBNamespace(database),
		},
		kinds: [2]attribute.KeyValue{AttrAttemptKind.String("connect"), AttrAttemptKind.String("probe")},
	}
	t.spanStart = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(t.attrs...)}
	t.okDuration = []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(t.attrs...))}
	for i, kind := range t.kinds {
		t.okAttempt[i] = []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(append(t.attrs[:len(t.attrs):len(t.attrs)], kind)...))}
	}

	meter := mp.Meter(ScopeName, metric.WithSchemaURL(semconv.SchemaURL))
	var err error
	if t.duration, err = meter.Float64Histogram(MetricConnectDuration,
		metric.WithDescription("Duration of each Connect: its attempts, and the wait for the database during an outage."),
		metric.WithUnit("s"),
		metric.WithExplicitBucketBoundaries(connectBuckets...)); err != nil {
		otel.Handle(err)
		t.duration = metricnoop.Float64Histogram{}
	}
	if t.attempts, err = meter.Int64Counter(MetricConnectAttempts,
		metric.WithDescription("Connection attempts (token, dial, TLS handshake, login): those of each Connect and the shared probes during an outage, each once."),
		metric.WithUnit("{attempt}")); err != nil {
		otel.Handle(err)
		t.attempts = metricnoop.Int64Counter{}
	}
	if t.authRejected, err = meter.Int64Counter(MetricConnectAuthRejected,
		metric.WithDescription("Logins the database rejected (SQLSTATE 28P01 or 28000): with a token source, each is followed by one more attempt with a fresh token."),
		metric.WithUnit("{login}")); err != nil {
		otel.Handle(err)
		t.authRejected = metricnoop.Int64Counter{}
	}
	return t
}

// connectStats is what one Connect reports when it ends.
type connectStats struct {
	attempts int    // its own attempts
	probes   int    // shared probes that finished while it waited
	waited   bool   // it waited out an outage
	rejected bool   // the database rejected a token
	replaced bool   // ... and the next attempt had a different one
	errType  string // error.type, when the flow knows it better than the error
}

// noSpan is the span of a Connect of a Connector without telemetry.
var noSpan trace.Span = tracenoop.Span{}

// start starts the span of a Connect; the returned context carries it.
func (t *telemetry) start(ctx context.Context) (context.Context, trace.Span) {
	if t == nil {
		return ctx, noSpan
	}
	return t.tracer.Start(ctx, SpanConnect, t.spanStart...)
}

// end ends the span of a Connect made with ctx (the caller's, carrying the
// span) that began at start, and records its duration.
func (t *telemetry) end(ctx context.Context, span trace.Span, start time.Time, st *connectStats, err error) {
	if t == nil {
		return
	}
	timed, recording := t.duration.Enabled(ctx), span.IsRecording()
	var errType string
	if err != nil && (timed || recording) {
		errType = st.errType
		if errType == "" {
			errType = errorType(ctx, err)
		}
	}
	if timed {
		secs := time.Since(start).Seconds()
		if err == nil {
			t.duration.Record(ctx, secs, t.okDuration...)
		} else {
			t.duration.Record(ctx, secs, metric.WithAttributes(append(t.attrs[:len(t.attrs):len(t.attrs)], semconv.ErrorTypeKey.String(errType))...))
		}
	}
	if recording {
		span.SetAttributes(AttrAttempts.Int(st.attempts))
		if st.waited {
			span.SetAttributes(AttrProbes.Int(st.probes))
		}
		if st.rejected {
			span.SetAttributes(AttrTokenReplaced.Bool(st.replaced))
		}
		if err != nil {
			span.SetAttributes(semconv.ErrorTypeKey.String(errType))
			var pgErr *pgconn.PgError
			if errors.As(err, &pgErr) && pgErr.Code != "" {
				span.SetAttributes(semconv.DBResponseStatusCode(pgErr.Code))
			}
			// The Connector's errors never hold a password or a token
			// (pgx's name the host, the user and the database).
			span.SetStatus(codes.Error, err.Error())
		}
	}
	span.End()
}

// countAttempt counts one connection attempt made with ctx that ended with
// err, by a probe or by a Connect, and a rejected login.
func (t *telemetry) countAttempt(ctx context.Context, probe bool, err error) {
	if t == nil {
		return
	}
	kind := 0
	if probe {
		kind = 1
	}
	if err == nil {
		t.attempts.Add(ctx, 1, t.okAttempt[kind]...)
		return
	}
	counted := t.attempts.Enabled(ctx)
	auth := t.authRejected.Enabled(ctx) && IsAuthError(err)
	if !counted && !auth {
		return
	}
	errType := errorType(ctx, err)
	if counted {
		t.attempts.Add(ctx, 1, metric.WithAttributes(append(t.attrs[:len(t.attrs):len(t.attrs)], t.kinds[kind], semconv.ErrorTypeKey.String(errType))...))
	}
	if auth {
		t.authRejected.Add(ctx, 1, metric.WithAttributes(append(t.attrs[:len(t.attrs):len(t.attrs)], semconv.ErrorTypeKey.String(errType))...))
	}
}

// errorType is the error.type of err, an error of a connection attempt or
// of a Connect made with ctx: low-cardinality, and listed in the package
// doc (# Telemetry).
func errorType(ctx context.Context, err error) string {
	if errors.Is(err, ErrClosed) {
		return errTypeClosed
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code != "" {
		return pgErr.Code
	}
	if cerr := ctx.Err(); cerr != nil {
		// The caller's context ended: whatever the attempt met then is
		// the consequence.
		if errors.Is(cerr, context.DeadlineExceeded) {
			return errTypeDeadline
		}
		return errTypeCanceled
	}
	var tokErr *tokenError
	if errors.As(err, &tokErr) {
		return errTypeTokenSource
	}
	var (
		alert     tls.AlertError
		recordErr tls.RecordHeaderError
	)
	if untrustedCert(err) || errors.As(err, &alert) || errors.As(err, &recordErr) {
		return errTypeTLS
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return errTypeDNS
	}
	var netErr net.Error
	if pgconn.Timeout(err) || errors.Is(err, context.DeadlineExceeded) ||
		(errors.As(err, &netErr) && netErr.Timeout()) || errors.Is(err, syscall.ETIMEDOUT) {
		return errTypeTimeout // the attempt's own ConnectTimeout
	}
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return errTypeRefused
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.ECONNABORTED), errors.Is(err, syscall.EPIPE):
		return errTypeReset
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return errTypeUnreachable
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return errTypeClosedConn
	}
	return errTypeOther
}
