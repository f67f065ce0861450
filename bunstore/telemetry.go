package bunstore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"
	"reflect"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/lakesession/lakesession"
)

// ScopeName is the instrumentation scope of the store's spans and metrics.
const ScopeName = "github.com/lakesession/lakesession/bunstore"

// The store's own attribute keys; the others are OpenTelemetry's database
// conventions.
const (
	// AttrOperation is the metrics' attribute naming the call: "AddItems".
	AttrOperation = attribute.Key("lakesession.operation")
	// AttrItems is the number of items AddItems stored or GetItems
	// returned, or the items of the sessions PruneSessions or
	// DeleteSessions removed (with PruneOptions.DryRun, would remove).
	AttrItems = attribute.Key("lakesession.items")
	// AttrSessions is the number of sessions PruneSessions or
	// DeleteSessions removed (with PruneOptions.DryRun, would remove).
	AttrSessions = attribute.Key("lakesession.sessions")
	// AttrBatches is the number of batches of PruneSessions or
	// DeleteSessions that removed (or, with DryRun, counted) a session.
	AttrBatches = attribute.Key("lakesession.batches")
	// AttrDryRun is true on the span of a PruneSessions dry run.
	AttrDryRun = attribute.Key("lakesession.dry_run")
	// AttrBytes is the size of those items, in bytes of compact JSON.
	AttrBytes = attribute.Key("lakesession.bytes")
	// AttrRetries is the number of tries after the first, on a call that
	// was retried.
	AttrRetries = attribute.Key("lakesession.retries")
	// AttrSessionID is the session id, recorded only with
	// WithSessionIDAttribute(true).
	AttrSessionID = attribute.Key("lakesession.session.id")
)

// Metric names.
const (
	MetricOperationDuration = "lakesession.operation.duration"
	MetricItemsAdded        = "lakesession.items.added"
	MetricItemsCorrupt      = "lakesession.items.corrupt"
	MetricRetries           = "lakesession.retries"
)

// durationBuckets are the bucket boundaries of the operation duration, in
// seconds: from a loopback round trip (well under a millisecond) to a call
// that retried through an outage (up to the default 15 s budget).
var durationBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20}

// WithTracerProvider sets where the store's spans go. The default is the
// global provider, otel.GetTracerProvider(), as it is when New runs (the
// global provider forwards to an SDK installed later, so New may run
// before otel.SetTracerProvider).
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(c *config) {
		if tp == nil {
			c.problems = append(c.problems, "WithTracerProvider: the provider is nil; omit the option to use the global one")
		}
		c.tracerProvider = tp
	}
}

// WithMeterProvider sets where the store's metrics go. The default is the
// global provider, otel.GetMeterProvider(), as it is when New runs.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(c *config) {
		if mp == nil {
			c.problems = append(c.problems, "WithMeterProvider: the provider is nil; omit the option to use the global one")
		}
		c.meterProvider = mp
	}
}

// WithSessionIDAttribute records the session id on every span of a
// session's call (attribute lakesession.session.id) when on is true. It is
// off by default: session ids can identify people. Metrics never carry
// it.
func WithSessionIDAttribute(on bool) Option {
	return func(c *config) { c.sessionIDAttr = on }
}

// telemetry holds a Store's tracer, instruments and the attributes it
// reuses on every call.
type telemetry struct {
	tracer       trace.Tracer
	duration     metric.Float64Histogram
	itemsAdded   metric.Int64Counter
	itemsCorrupt metric.Int64Counter
	retries      metric.Int64Counter
	sessionID    bool
	system       attribute.KeyValue // db.system.name
	ops          [numOps]opTelemetry
	itemsOpts    []metric.AddOption // the items counters' attributes

	// On PostgreSQL, db.namespace is the schema qualified by the database
	// name (database.schema), or the database alone without WithSchema:
	// the database is the connection's, learned from the first connection
	// of a *bun.DB the store takes (see Store.sendMode, learnNamespace).
	// namespace is nil until then, and stays nil when it cannot be
	// learned.
	schema    string
	pg        bool
	namespace atomic.Pointer[attribute.KeyValue]
}

// opTelemetry is what one kind of call reuses: its span's name and
// attributes, and its duration's attributes when it succeeds.
type opTelemetry struct {
	spanName  string
	start     []trace.SpanStartOption // client kind and the conventions' attributes, given at the start for samplers
	operation attribute.KeyValue
	okRecord  []metric.RecordOption
}

// noSpan is the span of a call of a Store without telemetry.
var noSpan trace.Span = noop.Span{}

func newTelemetry(cfg *config, pg bool) *telemetry {
	if cfg.noTelemetry {
		return nil
	}
	tp := cfg.tracerProvider
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	mp := cfg.meterProvider
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	t := &telemetry{
		tracer:    tp.Tracer(ScopeName, trace.WithSchemaURL(semconv.SchemaURL)),
		sessionID: cfg.sessionIDAttr,
		system:    semconv.DBSystemNameSQLite,
		schema:    cfg.schema,
		pg:        pg,
	}
	if pg {
		t.system = semconv.DBSystemNamePostgreSQL
	}
	meter := mp.Meter(ScopeName, metric.WithSchemaURL(semconv.SchemaURL))
	var err error
	// An SDK returns a working instrument along with an error (a name it
	// does not like, a duplicate registration): report the error to the
	// application's OpenTelemetry error handler and go on.
	if t.duration, err = meter.Float64Histogram(MetricOperationDuration,
		metric.WithDescription("Duration of the store's calls, retries included."),
		metric.WithUnit("s"),
		metric.WithExplicitBucketBoundaries(durationBuckets...)); err != nil {
		otel.Handle(err)
	}
	if t.itemsAdded, err = meter.Int64Counter(MetricItemsAdded,
		metric.WithDescription("Items stored by AddItems."),
		metric.WithUnit("{item}")); err != nil {
		otel.Handle(err)
	}
	if t.itemsCorrupt, err = meter.Int64Counter(MetricItemsCorrupt,
		metric.WithDescription("Stored items found not valid JSON, skipped by GetItems or removed by PopItem."),
		metric.WithUnit("{item}")); err != nil {
		otel.Handle(err)
	}
	if t.retries, err = meter.Int64Counter(MetricRetries,
		metric.WithDescription("Tries of a call after its first, by the error that made the store retry."),
		metric.WithUnit("{retry}")); err != nil {
		otel.Handle(err)
	}
	t.itemsOpts = []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(t.system))}

	var namespace []attribute.KeyValue
	if cfg.schema != "" && !pg {
		// SQLite's schema names an attached database ("main"): it is the
		// namespace. PostgreSQL's is learned from a connection.
		namespace = []attribute.KeyValue{semconv.DBNamespace(cfg.schema)}
	}
	for _, o := range allOps {
		ot := &t.ops[o.idx]
		ot.spanName = "lakesession." + o.name
		ot.operation = AttrOperation.String(o.name)
		attrs := []attribute.KeyValue{t.system, semconv.DBOperationName(o.dbOperation)}
		switch o.collection {
		case messagesTable:
			attrs = append(attrs, semconv.DBCollectionName(cfg.messages))
		case sessionsTable:
			attrs = append(attrs, semconv.DBCollectionName(cfg.sessions))
		}
		attrs = append(attrs, namespace...)
		ot.start = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...)}
		ot.okRecord = []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(ot.operation, t.system))}
	}
	return t
}

// call is one call of the store in flight: its span and what it reports
// when it ends.
type call struct {
	t       *telemetry
	op      *op
	span    trace.Span
	start   time.Time
	retries int // tries after the first
	items   int // items stored or returned
	bytes   int
}

// begin starts the span of a call of o; sessionID is "" for a call on the
// Store. The returned context carries the span.
func (s *Store) begin(ctx context.Context, o *op, sessionID string) (context.Context, call) {
	t := s.tel
	if t == nil {
		return ctx, call{op: o, span: noSpan}
	}
	ctx, span := t.tracer.Start(ctx, t.ops[o.idx].spanName, t.ops[o.idx].start...)
	if span.IsRecording() {
		if ns := t.namespace.Load(); ns != nil {
			span.SetAttributes(*ns)
		}
		if t.sessionID && sessionID != "" && lakesession.ValidateSessionID(sessionID) == nil {
			span.SetAttributes(AttrSessionID.String(sessionID))
		}
	}
	c := call{t: t, op: o, span: span}
	if t.duration.Enabled(ctx) {
		c.start = time.Now() // the clock is not free: read it only to record
	}
	return ctx, c
}

// end ends the call's span and records its duration. err is the call's
// error before the method adds the session id to it: the span's status
// description is its text, which holds no session id and no item content.
func (c *call) end(ctx context.Context, err error) {
	t := c.t
	if t == nil {
		return
	}
	ot := &t.ops[c.op.idx]
	if !c.start.IsZero() && t.duration.Enabled(ctx) {
		secs := time.Since(c.start).Seconds()
		if err == nil {
			t.duration.Record(ctx, secs, ot.okRecord...)
		} else {
			t.duration.Record(ctx, secs, metric.WithAttributes(ot.operation, t.system, semconv.ErrorTypeKey.String(errorType(err))))
		}
	}
	if err == nil && c.op == opAddItems && c.items > 0 {
		t.itemsAdded.Add(ctx, int64(c.items), t.itemsOpts...)
	}
	if c.span.IsRecording() {
		if c.op == opAddItems || c.op == opGetItems {
			c.span.SetAttributes(AttrItems.Int(c.items), AttrBytes.Int(c.bytes))
		}
		if c.retries > 0 {
			c.span.SetAttributes(AttrRetries.Int(c.retries))
		}
		if err != nil {
			c.span.SetAttributes(semconv.ErrorTypeKey.String(errorType(err)))
			var pgErr *pgconn.PgError
			if errors.As(err, &pgErr) {
				c.span.SetAttributes(semconv.DBResponseStatusCode(pgErr.Code))
			}
			c.span.SetStatus(codes.Error, statusDescription(err))
		}
	}
	c.span.End()
}

// countRetry counts one retry of a call of o after err.
func (t *telemetry) countRetry(ctx context.Context, o *op, err error) {
	if t != nil && t.retries.Enabled(ctx) {
		t.retries.Add(ctx, 1, metric.WithAttributes(t.ops[o.idx].operation, t.system, semconv.ErrorTypeKey.String(errorType(err))))
	}
}

// countCorrupt counts corrupt items found.
func (t *telemetry) countCorrupt(ctx context.Context, n int) {
	if t == nil {
		return
	}
	t.itemsCorrupt.Add(ctx, int64(n), t.itemsOpts...)
}

// statusDescription is a span's status description for err. Invalid items
// are described by their sentinel alone: the parser's message can quote a
// character of the item.
func statusDescription(err error) string {
	if errors.Is(err, lakesession.ErrInvalidItem) {
		return lakesession.ErrInvalidItem.Error()
	}
	return err.Error()
}

// errorType is the error.type of a failed call: low-cardinality, and
// documented in the package doc ("Observability"). It is, in this order,
// the store's and lakesession's sentinel ("lakesession.ErrOutcomeUnknown"),
// the SQLSTATE of the database's error ("57P01"), a standard sentinel
// ("context.DeadlineExceeded", "io.ErrUnexpectedEOF"), or the Go type of
// the innermost error that is not a fmt wrapper ("*net.OpError",
// "*pgconn.ConnectError"); "_OTHER" when that type says nothing (a plain
// errors.New).
func errorType(err error) string {
	switch {
	case errors.Is(err, lakesession.ErrOutcomeUnknown):
		return "lakesession.ErrOutcomeUnknown"
	case errors.Is(err, lakesession.ErrInvalidSessionID):
		return "lakesession.ErrInvalidSessionID"
	case errors.Is(err, lakesession.ErrInvalidItem):
		return "lakesession.ErrInvalidItem"
	case errors.Is(err, ErrInvalidCursor):
		return "bunstore.ErrInvalidCursor"
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code != "" {
		return pgErr.Code
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "context.DeadlineExceeded"
	case errors.Is(err, context.Canceled):
		return "context.Canceled"
	case errors.Is(err, driver.ErrBadConn):
		return "driver.ErrBadConn"
	case errors.Is(err, sql.ErrConnDone):
		return "sql.ErrConnDone"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "io.ErrUnexpectedEOF"
	case errors.Is(err, io.EOF):
		return "io.EOF"
	}
	name := reflect.TypeOf(innermost(err)).String()
	if name == "*errors.errorString" {
		return semconv.ErrorTypeOther.Value.AsString()
	}
	return name
}

// innermost unwraps err through the wrappers that fmt.Errorf makes, taking
// the last of several wrapped errors (the cause, in this package's
// messages).
func innermost(err error) error {
	for {
		switch u := err.(type) {
		case interface{ Unwrap() []error }:
			errs := u.Unwrap()
			if len(errs) == 0 || !strings.HasPrefix(reflect.TypeOf(err).String(), "*fmt.") {
				return err
			}
			err = errs[len(errs)-1]
		case interface{ Unwrap() error }:
			next := u.Unwrap()
			if next == nil || !strings.HasPrefix(reflect.TypeOf(err).String(), "*fmt.") {
				return err
			}
			err = next
		default:
			return err
		}
	}
}

// learnNamespace sets db.namespace (see telemetry) from database, the
// database of the store's *bun.DB's connections, the first time it is
// given one, and adds it to the span of ctx, the call that learned it.
func (t *telemetry) learnNamespace(ctx context.Context, database string) {
	if t == nil || !t.pg || database == "" || t.namespace.Load() != nil {
		return
	}
	ns := database
	if t.schema != "" {
		ns += "." + t.schema
	}
	kv := semconv.DBNamespace(ns)
	t.namespace.Store(&kv)
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		span.SetAttributes(kv)
	}
}
