package bunstore_test

// The store's spans and metrics, read with the OpenTelemetry SDK's
// in-memory span recorder and a manual metric reader.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/DATA-DOG/go-sqlmock"
	"github.com/uptrace/bun"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/lakesession/lakesession/bunstore"
	"github.com/lakesession/lakesession/internal/testdb"
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

// options returns the store options that send to this SDK.
func (o *otelSDK) options(more ...bunstore.Option) []bunstore.Option {
	return append([]bunstore.Option{bunstore.WithTracerProvider(o.tp), bunstore.WithMeterProvider(o.mp)}, more...)
}

// ended returns the store's ended spans, and forgets them.
func (o *otelSDK) ended() []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range o.spans.Ended() {
		if s.InstrumentationScope().Name == bunstore.ScopeName {
			out = append(out, s)
		}
	}
	o.spans.Reset()
	return out
}

// metrics collects the metrics recorded so far.
func (o *otelSDK) metrics(t testing.TB) map[string]metricdata.Metrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := o.reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string]metricdata.Metrics{}
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != bunstore.ScopeName {
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

func setMap(s attribute.Set) map[string]string { return attrMap(s.ToSlice()) }

// wantAttrs fails t unless got has the attributes of want ("" for a key
// that must be absent).
func wantAttrs(t *testing.T, what string, got map[string]string, want map[string]string) {
	t.Helper()
	for k, v := range want {
		g, ok := got[k]
		switch {
		case v == "" && ok:
			t.Errorf("%s: attribute %s = %q, want none", what, k, g)
		case v != "" && g != v:
			t.Errorf("%s: attribute %s = %q, want %q (all: %v)", what, k, g, v, got)
		}
	}
}

// Every call makes one client span named lakesession.<Method>, a child of
// the caller's span, with the database conventions' attributes and the
// store's own; no session id unless asked for.
func TestSpans(t *testing.T) {
	eachBackend(t, func(t *testing.T, db *bun.DB) {
		o := newOtelSDK(t)
		st, err := bunstore.New(db, o.options()...)
		if err != nil {
			t.Fatal(err)
		}
		system, namespace := "sqlite", ""
		if isPG(db) {
			// db.namespace: the database of the pool's connections.
			system = "postgresql"
			if err := db.QueryRowContext(context.Background(), "SELECT current_database()").Scan(&namespace); err != nil {
				t.Fatal(err)
			}
		}
		ctx, parent := o.tp.Tracer("test").Start(context.Background(), "request")
		s := st.Session("span-session")
		items := batch("span", 3)
		size := 0
		for _, it := range items {
			size += len(it)
		}
		// Sessions for the retention calls, all updated before the cutoff.
		cutoff := time.Now().Add(time.Hour)
		addOld := func(counts map[string]int) func() {
			return func() {
				for id, n := range counts {
					mustAdd(t, st.Session(id), batch(id, n))
				}
			}
		}
		calls := []struct {
			name  string
			setup func() // its spans are not checked
			call  func() error
			attrs map[string]string
		}{
			{"CreateTables", nil, func() error { return st.CreateTables(ctx) },
				map[string]string{"db.operation.name": "CREATE TABLE", "db.collection.name": ""}},
			{"AddItems", nil, func() error { return s.AddItems(ctx, items) },
				map[string]string{"db.operation.name": "INSERT", "db.collection.name": "agent_messages",
					"lakesession.items": "3", "lakesession.bytes": fmt.Sprint(size)}},
			{"GetItems", nil, func() error { _, err := s.GetItems(ctx, 2); return err },
				map[string]string{"db.operation.name": "SELECT", "db.collection.name": "agent_messages",
					"lakesession.items": "2", "lakesession.bytes": fmt.Sprint(len(items[1]) + len(items[2]))}},
			{"PopItem", nil, func() error { _, err := s.PopItem(ctx); return err },
				map[string]string{"db.operation.name": "DELETE", "db.collection.name": "agent_messages", "lakesession.items": ""}},
			{"ListSessions", nil, func() error { _, err := st.ListSessions(ctx, bunstore.ListOptions{}); return err },
				map[string]string{"db.operation.name": "SELECT", "db.collection.name": "agent_sessions"}},
			{"ClearSession", nil, func() error { return s.ClearSession(ctx) },
				map[string]string{"db.operation.name": "DELETE", "db.collection.name": "agent_sessions"}},
			{"PruneSessions", addOld(map[string]int{"old-1": 2, "old-2": 1}), func() error {
				_, err := st.PruneSessions(ctx, bunstore.PruneOptions{Before: cutoff, BatchSize: 1, DryRun: true})
				return err
			}, map[string]string{"db.operation.name": "SELECT", "db.collection.name": "agent_sessions", "lakesession.dry_run": "true",
				"lakesession.sessions": "2", "lakesession.items": "3", "lakesession.batches": "2"}},
			{"PruneSessions", nil, func() error {
				_, err := st.PruneSessions(ctx, bunstore.PruneOptions{Before: cutoff, BatchSize: 1})
				return err
			}, map[string]string{"db.operation.name": "DELETE", "db.collection.name": "agent_sessions",
				"lakesession.sessions": "2", "lakesession.items": "3", "lakesession.batches": "2"}},
			{"DeleteSessions", addOld(map[string]int{"old-3": 4}), func() error {
				_, err := st.DeleteSessions(ctx, cutoff)
				return err
			}, map[string]string{"db.operation.name": "DELETE", "db.collection.name": "agent_sessions",
				"lakesession.sessions": "1", "lakesession.items": "4", "lakesession.batches": "1"}},
		}
		for _, c := range calls {
			if c.setup != nil {
				c.setup()
				o.ended()
			}
			if err := c.call(); err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			spans := o.ended()
			if len(spans) != 1 {
				t.Fatalf("%s made %d spans, want 1", c.name, len(spans))
			}
			sp := spans[0]
			if want := "lakesession." + c.name; sp.Name() != want {
				t.Errorf("span %q, want %q", sp.Name(), want)
			}
			if sp.SpanKind() != trace.SpanKindClient {
				t.Errorf("%s: span kind %v, want client", c.name, sp.SpanKind())
			}
			if sp.Parent().SpanID() != parent.SpanContext().SpanID() || sp.SpanContext().TraceID() != parent.SpanContext().TraceID() {
				t.Errorf("%s: span's parent is %v, want the caller's span %v", c.name, sp.Parent().SpanID(), parent.SpanContext().SpanID())
			}
			if sp.Status().Code != codes.Unset {
				t.Errorf("%s: status %v, want unset", c.name, sp.Status())
			}
			want := map[string]string{"db.system.name": system, "error.type": "", "lakesession.session.id": "",
				"lakesession.retries": "", "db.namespace": namespace,
				"lakesession.sessions": "", "lakesession.batches": "", "lakesession.dry_run": ""}
			for k, v := range c.attrs {
				want[k] = v
			}
			wantAttrs(t, c.name, attrMap(sp.Attributes()), want)
		}
		parent.End()
	})
}

// WithSchema gives the spans db.namespace; WithSessionIDAttribute(true)
// gives the spans of a session's calls its id.
func TestSpanNamespaceAndSessionID(t *testing.T) {
	o := newOtelSDK(t)
	db := openSQLite(t)
	st, err := bunstore.New(db, o.options(bunstore.WithSchema("main"), bunstore.WithSessionIDAttribute(true))...)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := st.CreateTables(ctx); err != nil {
		t.Fatal(err)
	}
	if err := st.Session("user-42").AddItems(ctx, batch("x", 1)); err != nil {
		t.Fatal(err)
	}
	spans := o.ended()
	if len(spans) != 2 {
		t.Fatalf("%d spans, want 2", len(spans))
	}
	wantAttrs(t, "CreateTables", attrMap(spans[0].Attributes()), map[string]string{"db.namespace": "main", "lakesession.session.id": ""})
	wantAttrs(t, "AddItems", attrMap(spans[1].Attributes()), map[string]string{"db.namespace": "main", "lakesession.session.id": "user-42"})
}

// On PostgreSQL, db.namespace is the WithSchema schema qualified by the
// database of the pool's connections, as the conventions for PostgreSQL
// write it, from the first call on, that call's span included.
func TestSpanNamespacePostgres(t *testing.T) {
	dsn := testdb.NewDatabase(t)
	db := openPool(t, dsn)
	ctx := context.Background()
	var database string
	if err := db.QueryRowContext(ctx, "SELECT current_database()").Scan(&database); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, "CREATE SCHEMA telns"); err != nil {
		t.Fatal(err)
	}
	o := newOtelSDK(t)
	st, err := bunstore.New(db, o.options(bunstore.WithSchema("telns"))...)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.CreateTables(ctx); err != nil {
		t.Fatal(err)
	}
	if err := st.Session("ns").AddItems(ctx, batch("ns", 1)); err != nil {
		t.Fatal(err)
	}
	spans := o.ended()
	if len(spans) != 2 {
		t.Fatalf("%d spans, want 2", len(spans))
	}
	for _, sp := range spans {
		wantAttrs(t, sp.Name(), attrMap(sp.Attributes()), map[string]string{"db.namespace": database + ".telns"})
	}
}

// A failed call's span has status Error and error.type (the SQLSTATE, with
// db.response.status_code, when the database answered), and its duration
// is recorded with error.type.
func TestSpansOfFailedCalls(t *testing.T) {
	type failure struct {
		name    string
		expect  func(m sqlmock.Sqlmock)
		call    func(ctx context.Context, st *bunstore.Store) error
		errType string
		status  string // the SQLSTATE, or ""
	}
	for _, f := range []failure{
		{"SQLSTATE", func(m sqlmock.Sqlmock) { m.ExpectExec(addSQL).WillReturnError(pgErr("23505")) },
			func(ctx context.Context, st *bunstore.Store) error {
				return st.Session("s").AddItems(ctx, raw(`{}`))
			}, "23505", "23505"},
		{"OutcomeUnknown", func(m sqlmock.Sqlmock) { m.ExpectExec(addSQL).WillReturnError(io.ErrUnexpectedEOF) },
			func(ctx context.Context, st *bunstore.Store) error {
				return st.Session("s").AddItems(ctx, raw(`{}`))
			}, "lakesession.ErrOutcomeUnknown", ""},
		{"Deadline", func(m sqlmock.Sqlmock) {
			m.ExpectQuery(sqlLike(`DESC LIMIT $2`)).WillDelayFor(time.Second).WillReturnError(errors.New("late"))
		}, func(ctx context.Context, st *bunstore.Store) error {
			ctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
			defer cancel()
			_, err := st.Session("s").GetItems(ctx, 20)
			return err
		}, "context.DeadlineExceeded", ""},
		{"InvalidSessionID", func(sqlmock.Sqlmock) {},
			func(ctx context.Context, st *bunstore.Store) error { return st.Session("").ClearSession(ctx) },
			"lakesession.ErrInvalidSessionID", ""},
		{"InvalidItem", func(sqlmock.Sqlmock) {},
			func(ctx context.Context, st *bunstore.Store) error {
				return st.Session("s").AddItems(ctx, raw(`{"ok":1}`, `[1]`))
			}, "lakesession.ErrInvalidItem", ""},
		{"InvalidCursor", func(sqlmock.Sqlmock) {},
			func(ctx context.Context, st *bunstore.Store) error {
				_, err := st.ListSessions(ctx, bunstore.ListOptions{Cursor: "nope"})
				return err
			}, "bunstore.ErrInvalidCursor", ""},
		{"DeleteSessions", func(m sqlmock.Sqlmock) {
			m.ExpectBegin()
			m.ExpectQuery(sqlLike(`FOR UPDATE SKIP LOCKED`)).WillReturnError(pgErr("42P01"))
			m.ExpectRollback()
		}, func(ctx context.Context, st *bunstore.Store) error {
			_, err := st.DeleteSessions(ctx, time.Now())
			return err
		}, "42P01", "42P01"},
		{"PruneSessionsBadOptions", func(sqlmock.Sqlmock) {},
			func(ctx context.Context, st *bunstore.Store) error {
				_, err := st.PruneSessions(ctx, bunstore.PruneOptions{Before: time.Now(), BatchSize: -1})
				return err
			}, "_OTHER", ""},
		{"PlainError", func(m sqlmock.Sqlmock) {
			m.ExpectQuery(sqlLike(`DELETE FROM "agent_messages"`)).WillReturnError(errors.New("something"))
		}, func(ctx context.Context, st *bunstore.Store) error {
			_, err := st.Session("s").PopItem(ctx)
			return err
		}, "_OTHER", ""},
	} {
		t.Run(f.name, func(t *testing.T) {
			o := newOtelSDK(t)
			st, mock := newMockPool(t, o.options()...)
			f.expect(mock)
			if err := f.call(context.Background(), st); err == nil {
				t.Fatal("no error")
			}
			spans := o.ended()
			if len(spans) != 1 {
				t.Fatalf("%d spans, want 1", len(spans))
			}
			sp := spans[0]
			if sp.Status().Code != codes.Error || sp.Status().Description == "" {
				t.Errorf("status %+v, want Error with a description", sp.Status())
			}
			want := map[string]string{"error.type": f.errType, "db.response.status_code": f.status}
			wantAttrs(t, sp.Name(), attrMap(sp.Attributes()), want)

			d, ok := o.metrics(t)[bunstore.MetricOperationDuration]
			if !ok {
				t.Fatal("no operation duration recorded")
			}
			dps := d.Data.(metricdata.Histogram[float64]).DataPoints
			if len(dps) != 1 || dps[0].Count != 1 {
				t.Fatalf("duration data points %+v, want one with one call", dps)
			}
			wantAttrs(t, "duration", setMap(dps[0].Attributes), map[string]string{
				"error.type": f.errType, "lakesession.operation": strings.TrimPrefix(sp.Name(), "lakesession."), "db.system.name": "postgresql"})
		})
	}
}

// A retried call records on its span how many times it retried, and each
// retry is counted with the error that caused it.
func TestRetriesAreRecorded(t *testing.T) {
	o := newOtelSDK(t)
	st, mock := newMockPool(t, o.options()...)
	retryCalls[0].fail(mock, pgErr("57P01"))
	retryCalls[0].fail(mock, pgErr("40001"))
	retryCalls[0].ok(mock)
	if err := retryCalls[0].call(st); err != nil {
		t.Fatal(err)
	}
	spans := o.ended()
	if len(spans) != 1 {
		t.Fatalf("%d spans, want 1", len(spans))
	}
	wantAttrs(t, "AddItems", attrMap(spans[0].Attributes()), map[string]string{"lakesession.retries": "2", "error.type": ""})
	m, ok := o.metrics(t)[bunstore.MetricRetries]
	if !ok {
		t.Fatal("no retries counted")
	}
	if m.Unit != "{retry}" {
		t.Errorf("retries unit %q", m.Unit)
	}
	got := map[string]int64{}
	for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
		a := setMap(dp.Attributes)
		if a["lakesession.operation"] != "AddItems" || a["db.system.name"] != "postgresql" {
			t.Errorf("retries data point attributes %v", a)
		}
		got[a["error.type"]] += dp.Value
	}
	if got["57P01"] != 1 || got["40001"] != 1 || len(got) != 2 {
		t.Errorf("retries by error.type = %v, want one 57P01 and one 40001", got)
	}
}

// The metrics have their names, units and attributes, and count what the
// calls did.
func TestMetrics(t *testing.T) {
	eachBackend(t, func(t *testing.T, db *bun.DB) {
		o := newOtelSDK(t)
		rec := &corruptRecorder{}
		st := newStore(t, db, o.options(bunstore.WithCorruptItemHandler(rec.handle))...)
		ctx := context.Background()
		s := st.Session("metrics")
		mustAdd(t, s, batch("m", 3))
		mustAdd(t, s, batch("n", 2))
		insertRaw(t, db, "metrics", "not json")
		mustGet(t, s, 0)
		if _, err := s.PopItem(ctx); err != nil { // pops the corrupt row, then an item
			t.Fatal(err)
		}
		if _, err := st.DeleteSessions(ctx, time.Now().Add(-time.Hour)); err != nil {
			t.Fatal(err)
		}
		ms := o.metrics(t)
		system := "sqlite"
		if isPG(db) {
			system = "postgresql"
		}

		d := ms[bunstore.MetricOperationDuration]
		if d.Unit != "s" {
			t.Errorf("duration unit %q, want s", d.Unit)
		}
		calls := map[string]uint64{}
		for _, dp := range d.Data.(metricdata.Histogram[float64]).DataPoints {
			a := setMap(dp.Attributes)
			if a["db.system.name"] != system || a["error.type"] != "" || len(a) != 2 {
				t.Errorf("duration attributes %v; want lakesession.operation and db.system.name %s", a, system)
			}
			calls[a["lakesession.operation"]] += dp.Count
			if len(dp.Bounds) == 0 || dp.Bounds[0] != 0.0005 || dp.Bounds[len(dp.Bounds)-1] != 20 {
				t.Errorf("duration buckets %v; want 0.5 ms to 20 s", dp.Bounds)
			}
			if dp.Sum <= 0 {
				t.Errorf("duration sum %v", dp.Sum)
			}
		}
		if want := map[string]uint64{"CreateTables": 1, "AddItems": 2, "GetItems": 1, "PopItem": 1, "DeleteSessions": 1}; !mapsEqual(calls, want) {
			t.Errorf("calls recorded %v, want %v", calls, want)
		}

		for name, want := range map[string]int64{bunstore.MetricItemsAdded: 5, bunstore.MetricItemsCorrupt: 2} {
			m := ms[name]
			if m.Unit != "{item}" {
				t.Errorf("%s unit %q", name, m.Unit)
			}
			sum, ok := m.Data.(metricdata.Sum[int64])
			if !ok || !sum.IsMonotonic || len(sum.DataPoints) != 1 {
				t.Fatalf("%s: %+v, want one monotonic sum", name, m.Data)
			}
			dp := sum.DataPoints[0]
			if dp.Value != want {
				t.Errorf("%s = %d, want %d", name, dp.Value, want)
			}
			wantAttrs(t, name, setMap(dp.Attributes), map[string]string{"db.system.name": system})
		}
		if got := rec.take(t, "metrics"); len(got) != 2 {
			t.Errorf("corrupt rows reported %q, want the one row twice (GetItems, PopItem)", got)
		}
	})
}

func mapsEqual[K comparable, V comparable](a, b map[K]V) bool {
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

// No span, event, status or metric carries an item's content, nor the
// session id unless WithSessionIDAttribute(true): every call, successful
// or failed, with a marker in every item.
func TestTelemetryHoldsNoContent(t *testing.T) {
	const marker = "MARKER-a1b2c3"
	const id = "SESSION-d4e5f6"
	eachBackend(t, func(t *testing.T, db *bun.DB) {
		o := newOtelSDK(t)
		st := newStore(t, db, o.options(bunstore.WithCorruptItemHandler(func(context.Context, bunstore.CorruptItem) {}))...)
		ctx := context.Background()
		s := st.Session(id)
		item := json.RawMessage(`{"role":"user","content":"` + marker + `"}`)
		mustAdd(t, s, []json.RawMessage{item, item})
		insertRaw(t, db, id, "corrupt "+marker)
		mustGet(t, s, 0)
		mustGet(t, s, 1)
		if _, err := s.PopItem(ctx); err != nil {
			t.Fatal(err)
		}
		// Failures that hold the marker in their input.
		if err := s.AddItems(ctx, []json.RawMessage{item, json.RawMessage(`{"x":"` + marker + `"` /* unterminated */)}); err == nil {
			t.Fatal("AddItems of invalid JSON succeeded")
		}
		if err := s.AddItems(ctx, []json.RawMessage{json.RawMessage(`"` + marker + `"`)}); err == nil {
			t.Fatal("AddItems of a string succeeded")
		}
		if _, err := st.ListSessions(ctx, bunstore.ListOptions{Cursor: marker}); err == nil {
			t.Fatal("ListSessions with a bad cursor succeeded")
		}
		if _, err := st.PruneSessions(ctx, bunstore.PruneOptions{Before: time.Now().Add(time.Hour), DryRun: true}); err != nil {
			t.Fatal(err)
		}
		if _, err := st.PruneSessions(ctx, bunstore.PruneOptions{Before: time.Now().Add(time.Hour), BatchSize: -1}); err == nil {
			t.Fatal("PruneSessions with BatchSize -1 succeeded")
		}
		if n, err := st.DeleteSessions(ctx, time.Now().Add(time.Hour)); err != nil || n != 1 {
			t.Fatalf("DeleteSessions = %d, %v; want the session", n, err)
		}
		if err := s.ClearSession(ctx); err != nil {
			t.Fatal(err)
		}
		spans := o.ended()
		if len(spans) < 12 {
			t.Fatalf("%d spans; want one per call", len(spans))
		}
		var texts []string
		for _, sp := range spans {
			texts = append(texts, sp.Name(), sp.Status().Description)
			for _, kv := range sp.Attributes() {
				texts = append(texts, string(kv.Key), kv.Value.String())
			}
			for _, ev := range sp.Events() {
				texts = append(texts, ev.Name)
				for _, kv := range ev.Attributes {
					texts = append(texts, kv.Value.String())
				}
			}
		}
		for _, m := range o.metrics(t) {
			texts = append(texts, m.Name, m.Description)
			switch data := m.Data.(type) {
			case metricdata.Histogram[float64]:
				for _, dp := range data.DataPoints {
					texts = append(texts, dp.Attributes.Encoded(attribute.DefaultEncoder()))
				}
			case metricdata.Sum[int64]:
				for _, dp := range data.DataPoints {
					texts = append(texts, dp.Attributes.Encoded(attribute.DefaultEncoder()))
				}
			default:
				t.Errorf("metric %s of unexpected type %T", m.Name, m.Data)
			}
		}
		for _, txt := range texts {
			if strings.Contains(txt, marker) {
				t.Errorf("telemetry holds item content: %q", txt)
			}
			if strings.Contains(txt, id) {
				t.Errorf("telemetry holds the session id without WithSessionIDAttribute: %q", txt)
			}
		}
		if !slices.ContainsFunc(texts, func(s string) bool { return strings.Contains(s, "invalid item") }) {
			t.Error("no span says an item was invalid: the failures were not recorded")
		}
	})
}

// Without WithTracerProvider and WithMeterProvider the store uses the
// global providers as New finds them.
func TestGlobalProviders(t *testing.T) {
	o := newOtelSDK(t)
	prevTP, prevMP := otel.GetTracerProvider(), otel.GetMeterProvider()
	otel.SetTracerProvider(o.tp)
	otel.SetMeterProvider(o.mp)
	t.Cleanup(func() {
		otel.SetTracerProvider(prevTP)
		otel.SetMeterProvider(prevMP)
	})
	st := newStore(t, openSQLite(t))
	mustAdd(t, st.Session("global"), batch("g", 1))
	if spans := o.ended(); len(spans) != 2 {
		t.Errorf("%d spans through the global provider, want 2 (CreateTables, AddItems)", len(spans))
	}
	if _, ok := o.metrics(t)[bunstore.MetricItemsAdded]; !ok {
		t.Error("no items counted through the global meter provider")
	}
}

// Nil providers are configuration errors.
func TestNilProviders(t *testing.T) {
	_, err := bunstore.New(openSQLite(t), bunstore.WithTracerProvider(nil), bunstore.WithMeterProvider(nil))
	if !errors.Is(err, bunstore.ErrInvalidConfig) || !strings.Contains(err.Error(), "WithTracerProvider") || !strings.Contains(err.Error(), "WithMeterProvider") {
		t.Errorf("New with nil providers: %v", err)
	}
}

// The conventions' attributes are given when a span starts, so that a
// sampler can decide by them.
func TestSpanAttributesAtStart(t *testing.T) {
	sampler := &recordingSampler{seen: map[string]map[string]string{}}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sampler))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	st, err := bunstore.New(openSQLite(t), bunstore.WithTracerProvider(tp))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := st.CreateTables(ctx); err != nil {
		t.Fatal(err)
	}
	if err := st.Session("s").AddItems(ctx, batch("s", 1)); err != nil {
		t.Fatal(err)
	}
	sampler.mu.Lock()
	defer sampler.mu.Unlock()
	wantAttrs(t, "AddItems at its start", sampler.seen["lakesession.AddItems"], map[string]string{
		"db.system.name": "sqlite", "db.collection.name": "agent_messages", "db.operation.name": "INSERT",
	})
}

// recordingSampler samples everything and records the attributes each
// span name started with.
type recordingSampler struct {
	mu   sync.Mutex
	seen map[string]map[string]string
}

func (r *recordingSampler) ShouldSample(p sdktrace.SamplingParameters) sdktrace.SamplingResult {
	r.mu.Lock()
	r.seen[p.Name] = attrMap(p.Attributes)
	r.mu.Unlock()
	return sdktrace.SamplingResult{Decision: sdktrace.RecordAndSample}
}

func (r *recordingSampler) Description() string { return "recordingSampler" }
