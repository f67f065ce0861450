package bunstore_test

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/lakesession/lakesession/bunstore"
	"github.com/lakesession/lakesession/internal/testdb"
)

// discardSpans is a span exporter that drops what it is given.
type discardSpans struct{}

func (discardSpans) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discardSpans) Shutdown(context.Context) error                             { return nil }

// BenchmarkTelemetry measures what the store's spans and metrics cost on
// PostgreSQL, with three Stores on one pool:
//
//   - off:   built without telemetry (a test-only option): the calls as
//     they were before the store had spans and metrics;
//   - nosdk: the default, the global OpenTelemetry providers with no SDK
//     installed (this benchmark installs none), what an application that
//     does not use OpenTelemetry pays;
//   - sdk:   the OpenTelemetry SDK sampling every span, with a batch span
//     processor (to an exporter that discards) and a metric reader.
//
// Each operation runs per Store (for its allocations) and interleaved, one
// call of each Store in turn, reporting each one's mean time per call
// ("off-ns/op", ...): they then share the machine's load, and their ratios
// are the figures to read.
func BenchmarkTelemetry(b *testing.B) {
	ctx := context.Background()
	db := bun.NewDB(testdb.Open(b), pgdialect.New())
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()),
		sdktrace.WithBatcher(discardSpans{}))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	b.Cleanup(func() {
		tp.Shutdown(ctx)
		mp.Shutdown(ctx)
	})
	arms := []struct {
		name string
		opts []bunstore.Option
	}{
		{"off", []bunstore.Option{bunstore.WithoutTelemetry()}},
		{"nosdk", nil},
		{"sdk", []bunstore.Option{bunstore.WithTracerProvider(tp), bunstore.WithMeterProvider(mp)}},
	}
	stores := make([]*bunstore.Store, len(arms))
	names := make([]string, len(arms))
	for k, a := range arms {
		st, err := bunstore.New(db, a.opts...)
		if err != nil {
			b.Fatal(err)
		}
		if err := st.CreateTables(ctx); err != nil {
			b.Fatal(err)
		}
		stores[k], names[k] = st, a.name
	}
	// A session of 100 items for GetItems(20), the same for every arm.
	if _, err := db.ExecContext(ctx, `INSERT INTO agent_sessions (session_id) VALUES ('read-100')`); err != nil {
		b.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO agent_messages (session_id, message_data, created_at) `+
		`SELECT 'read-100', `+benchItemSQL+`, CAST(now() AS timestamp) - interval '1 day' + g * interval '1 millisecond' `+
		`FROM generate_series(1, 100) g`); err != nil {
		b.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `ANALYZE`); err != nil {
		b.Fatal(err)
	}

	// Session handles made once, as a server keeps them per request.
	adds := make([]*bunstore.Session, len(arms))
	reads := make([]*bunstore.Session, len(arms))
	for k, st := range stores {
		adds[k], reads[k] = st.Session("add-"+names[k]), st.Session("read-100")
	}
	item := benchItems(1, 1)
	benchArms(b, names, []benchArmOp{
		{"AddItems1", func(k int) error { return adds[k].AddItems(ctx, item) }},
		{"GetItems20_Session100", func(k int) error {
			items, err := reads[k].GetItems(ctx, benchLimit)
			if err == nil && len(items) != benchLimit {
				err = fmt.Errorf("%d items, want %d", len(items), benchLimit)
			}
			return err
		}},
	})
}

// benchArmOp is one operation of a benchmark over arms: f(k) calls it on
// arm k.
type benchArmOp struct {
	name string
	f    func(k int) error
}

// benchArms runs each operation on each arm alone (for its allocations),
// then on all arms interleaved, one call each in turn, reporting each
// arm's mean time per call ("<arm>-ns/op") and the mean CPU time the
// calling thread spent in it ("<arm>-cpu-ns/op": the client's own work,
// which on a busy machine varies much less than the wall clock), and on the first two arms alone interleaved
// ("off-vs-nosdk"): the cost of telemetry without an SDK, with no SDK's
// garbage collected during the calls measured.
func benchArms(b *testing.B, names []string, ops []benchArmOp) {
	run := func(b *testing.B, f func(k int) error, idx []int) {
		// The goroutine stays on one thread, whose CPU time is read
		// around each call.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		clock := newBenchClock(pick(names, idx))
		cpu := make([]time.Duration, len(idx))
		_, haveCPU := threadCPU()
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			k := i % len(idx)
			c0, _ := threadCPU()
			start := time.Now()
			err := f(idx[k])
			clock.since(k, start)
			c1, _ := threadCPU()
			cpu[k] += c1 - c0
			if err != nil {
				b.Fatalf("%s: %v", names[idx[k]], err)
			}
		}
		b.StopTimer()
		clock.report(b)
		if haveCPU {
			for k, i := range idx {
				if clock.calls[k] > 0 {
					b.ReportMetric(float64(cpu[k].Nanoseconds())/float64(clock.calls[k]), names[i]+"-cpu-ns/op")
				}
			}
		}
	}
	all := make([]int, len(names))
	for k := range all {
		all[k] = k
	}
	for _, op := range ops {
		b.Run(op.name, func(b *testing.B) {
			for k := range names {
				b.Run(names[k], func(b *testing.B) { run(b, op.f, []int{k}) })
			}
			b.Run("interleaved", func(b *testing.B) { run(b, op.f, all) })
			b.Run(names[0]+"-vs-"+names[1], func(b *testing.B) { run(b, op.f, all[:2]) })
		})
	}
}

func pick(names []string, idx []int) []string {
	out := make([]string, len(idx))
	for i, k := range idx {
		out[i] = names[k]
	}
	return out
}

// BenchmarkTelemetryOverhead measures the same three Stores as
// BenchmarkTelemetry on a scripted in-memory driver, where a call costs a
// few microseconds instead of a database round trip: what telemetry adds
// to a call, in nanoseconds and allocations, with less of the network's
// noise. It needs no database.
func BenchmarkTelemetryOverhead(b *testing.B) {
	ctx := context.Background()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()),
		sdktrace.WithBatcher(discardSpans{}))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	b.Cleanup(func() {
		tp.Shutdown(ctx)
		mp.Shutdown(ctx)
	})
	names := []string{"off", "nosdk", "sdk"}
	optss := [][]bunstore.Option{
		{bunstore.WithoutTelemetry()},
		nil,
		{bunstore.WithTracerProvider(tp), bunstore.WithMeterProvider(mp)},
	}
	sessions := make([]*bunstore.Session, len(names))
	for k := range names {
		sessions[k] = scriptStore(b, &scriptDriver{}, optss[k]...).Session("overhead")
	}
	item := benchItems(1, 1)
	benchArms(b, names, []benchArmOp{
		{"AddItems1", func(k int) error { return sessions[k].AddItems(ctx, item) }},
		{"GetItems20", func(k int) error { _, err := sessions[k].GetItems(ctx, benchLimit); return err }},
	})
}
