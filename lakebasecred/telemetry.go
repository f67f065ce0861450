package lakebasecred

import (
	"context"
	"errors"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
	"weak"

	"github.com/databricks/databricks-sdk-go/apierr"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// scopeName is the instrumentation scope of this package's spans and
// metrics.
const scopeName = "github.com/lakesession/lakesession/lakebasecred"

// Names of the span and the metrics (see the package doc, # Telemetry).
const (
	spanMint           = "lakebase.token.mint"
	metricMintDuration = "lakebase.token.mint.duration"
	metricMints        = "lakebase.token.mints"
	metricExpiresIn    = "lakebase.token.expires_in"
)

// Attributes of the span and the metrics.
const (
	// attrTargetKind is "instance" (provisioned) or "endpoint" (autoscaling).
	attrTargetKind = attribute.Key("lakebase.target.kind")
	// attrTargetName is the instance name or the endpoint resource name.
	attrTargetName = attribute.Key("lakebase.target.name")
	// attrOutcome is one of the outcome* values.
	attrOutcome = attribute.Key("lakebase.token.mint.outcome")
	// attrReason is one of the reason* values (span only).
	attrReason = attribute.Key("lakebase.token.mint.reason")
	// attrErrorType is the OpenTelemetry error.type of a failed mint.
	attrErrorType = attribute.Key("error.type")
)

// Outcomes of a mint.
const (
	outcomeOK       = "ok"       // a token was minted and cached
	outcomeConfig   = "config"   // the API refused (400, 401, 403, 404): retrying does not help until someone fixes it
	outcomeError    = "error"    // any other failure: 429, 5xx, network, an unusable answer
	outcomeTimeout  = "timeout"  // no answer within WithMintTimeout
	outcomeCanceled = "canceled" // Close ended the mint, or came before its token was cached
)

// Why a mint ran.
const (
	reasonNoToken = "no_token" // no token could be served: callers wait for this mint
	reasonRefresh = "refresh"  // the cached token entered its refresh margin: callers keep getting it
	reasonRetry   = "retry"    // a background retry after a failed refresh
)

// Error types beside the API's error codes.
const (
	errTypeTimeout    = "timeout"
	errTypeEmptyToken = "empty_token"
	errTypeOther      = "_OTHER"
)

// errEmptyToken is the cause of a mint whose answer had no token.
var errEmptyToken = errors.New("the credential API returned an empty token")

// mintBuckets are the bucket boundaries of the mint duration histogram, in
// seconds: from a fast answer to the default mint timeout and beyond.
var mintBuckets = []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

// telemetry is the tracer and the instruments of one Source, and the
// registration of its expires_in callback.
type telemetry struct {
	tracer    trace.Tracer
	meter     metric.Meter
	duration  metric.Float64Histogram
	mints     metric.Int64Counter
	expiresIn metric.Float64ObservableGauge

	targetOnce sync.Once
	target     [2]attribute.KeyValue // kind and name

	// Guarded by Source.mu.
	watching bool
	reg      metric.Registration
	cleanup  runtime.Cleanup
}

// newTelemetry makes the tracer and the instruments. An instrument the
// provider refuses is reported to otel.Handle and replaced by a no-op.
func newTelemetry(tp trace.TracerProvider, mp metric.MeterProvider) *telemetry {
	t := &telemetry{
		tracer: tp.Tracer(scopeName, trace.WithSchemaURL(semconv.SchemaURL)),
		meter:  mp.Meter(scopeName, metric.WithSchemaURL(semconv.SchemaURL)),
	}
	var err error
	t.duration, err = t.meter.Float64Histogram(metricMintDuration,
		metric.WithUnit("s"),
		metric.WithDescription("Duration of each call of the Lakebase credential API, the SDK's own retries included."),
		metric.WithExplicitBucketBoundaries(mintBuckets...))
	if err != nil {
		otel.Handle(err)
		t.duration = noop.Float64Histogram{}
	}
	t.mints, err = t.meter.Int64Counter(metricMints,
		metric.WithUnit("{mint}"),
		metric.WithDescription("Calls of the Lakebase credential API, by outcome."))
	if err != nil {
		otel.Handle(err)
		t.mints = noop.Int64Counter{}
	}
	t.expiresIn, err = t.meter.Float64ObservableGauge(metricExpiresIn,
		metric.WithUnit("s"),
		metric.WithDescription("Seconds until the cached Lakebase token expires; no observation while no token is cached."))
	if err != nil {
		otel.Handle(err)
		t.expiresIn = noop.Float64ObservableGauge{}
	}
	return t
}

// targetAttrs returns the kind and name of s's target, from s.target
// (`instance "name"` or `endpoint "projects/..."`).
func (t *telemetry) targetAttrs(s *Source) []attribute.KeyValue {
	t.targetOnce.Do(func() {
		kind, quoted, _ := strings.Cut(s.target, " ")
		name, err := strconv.Unquote(quoted)
		if err != nil {
			name = quoted
		}
		t.target = [2]attribute.KeyValue{attrTargetKind.String(kind), attrTargetName.String(name)}
	})
	return t.target[:]
}

// startMint starts the span of one call of the credential API: a new root,
// linked to the span that caused it (the caller that started the mint, or
// the failed attempt a retry follows), if any.
func (t *telemetry) startMint(ctx context.Context, s *Source, f *flight) (context.Context, trace.Span) {
	attrs := make([]attribute.KeyValue, 0, 3)
	attrs = append(attrs, t.targetAttrs(s)...)
	attrs = append(attrs, attrReason.String(f.reason))
	opts := []trace.SpanStartOption{
		trace.WithNewRoot(),
		trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attrs...),
	}
	if f.cause.IsValid() {
		opts = append(opts, trace.WithLinks(trace.Link{SpanContext: f.cause}))
	}
	return t.tracer.Start(ctx, spanMint, opts...)
}

// mintEnd is how one call of the credential API ended.
type mintEnd struct {
	outcome string
	errType string // "" unless the mint failed
	err     error  // the cause of a failure, never a token
	took    time.Duration
}

// endMint ends the span of a mint and records its metrics. ctx carries the
// span, so that exemplars point at it.
func (t *telemetry) endMint(ctx context.Context, s *Source, span trace.Span, e mintEnd) {
	attrs := make([]attribute.KeyValue, 0, 4)
	attrs = append(attrs, t.targetAttrs(s)...)
	attrs = append(attrs, attrOutcome.String(e.outcome))
	if e.errType != "" {
		attrs = append(attrs, attrErrorType.String(e.errType))
	}
	span.SetAttributes(attrs[2:]...)
	if e.errType != "" {
		span.SetStatus(codes.Error, e.err.Error())
	}
	set := metric.WithAttributeSet(attribute.NewSet(attrs...))
	t.duration.Record(ctx, e.took.Seconds(), set)
	t.mints.Add(ctx, 1, set)
	span.End() // last: once the span is exported, the mint is counted
}

// classify returns the outcome and error.type of a failed mint.
func classify(err error, timedOut bool) (outcome, errType string) {
	var ae *apierr.APIError
	switch {
	case timedOut:
		return outcomeTimeout, errTypeTimeout
	case errors.Is(err, errEmptyToken):
		return outcomeError, errTypeEmptyToken
	case errors.As(err, &ae):
		errType = ae.ErrorCode
		if errType == "" {
			errType = strconv.Itoa(ae.StatusCode)
		}
		switch ae.StatusCode {
		case 400, 401, 403, 404:
			return outcomeConfig, errType
		}
		return outcomeError, errType
	}
	return outcomeError, errTypeOther
}

// watchLocked registers the callback that reports how long s's cached
// token has left, once. s.mu must be held, and s not closed.
//
// The callback holds s weakly, and the registration ends when s is closed
// or, for a Source dropped without Close, garbage collected: a meter
// provider never keeps a Source alive.
func (t *telemetry) watchLocked(s *Source) {
	if t.watching {
		return
	}
	t.watching = true
	src := weak.Make(s)
	gauge := t.expiresIn
	set := attribute.NewSet(t.targetAttrs(s)...)
	reg, err := t.meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		live := src.Value()
		if live == nil {
			return nil
		}
		c := live.cur.Load()
		if c == nil {
			return nil
		}
		if left := c.expiresAt.Sub(live.now()); left > 0 {
			o.ObserveFloat64(gauge, left.Seconds(), metric.WithAttributeSet(set))
		}
		return nil
	}, gauge)
	if err != nil {
		otel.Handle(err)
		return
	}
	t.reg = reg
	t.cleanup = runtime.AddCleanup(s, unregister, reg)
}

// closeLocked ends the callback's registration. s.mu must be held.
func (t *telemetry) closeLocked() {
	if t.reg == nil {
		return
	}
	t.cleanup.Stop()
	unregister(t.reg)
	t.reg = nil
}

func unregister(r metric.Registration) {
	if err := r.Unregister(); err != nil {
		otel.Handle(err)
	}
}
