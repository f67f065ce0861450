package lakebasecred

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/lakesession/lakesession/lakebasecred/lakebasetest"
)

// benchSources returns two Sources on one fake control plane: plain, with
// the global providers and no SDK installed (the default), and traced, with
// the OpenTelemetry SDK sampling every span and a metric reader.
func benchSources(b *testing.B) (plain, traced *Source) {
	b.Helper()
	if _, ok := otel.GetTracerProvider().(*sdktrace.TracerProvider); ok {
		b.Fatal("an OpenTelemetry SDK is installed globally: the plain Source would not be plain")
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(tracetest.NewNoopExporter()), sdktrace.WithSampler(sdktrace.AlwaysSample()))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	b.Cleanup(func() {
		_ = tp.Shutdown(context.Background())
		_ = mp.Shutdown(context.Background())
	})
	fake := lakebasetest.NewServer(b)
	fake.AddInstance(lakebasetest.Instance{Name: instName, ReadWriteDNS: instHost})
	newBench := func(opts ...Option) *Source {
		s, err := New(context.Background(), fake.WorkspaceClient(), Target{Instance: instName}, append(opts, WithLogger(slog.New(&logSink{})))...)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = s.Close() })
		if _, err := s.Token(context.Background()); err != nil {
			b.Fatal(err)
		}
		return s
	}
	return newBench(), newBench(WithTracerProvider(tp), WithMeterProvider(mp))
}

// BenchmarkTokenWarmTelemetry is Token on a warm cache without and with the
// SDK installed, interleaved in batches so that both see the same load.
// The warm path records nothing, so both cost the same; it reports
// plain-ns/call, traced-ns/call and their ratio.
func BenchmarkTokenWarmTelemetry(b *testing.B) {
	plain, traced := benchSources(b)
	ctx := context.Background()
	const batch = 512
	var tPlain, tTraced time.Duration
	calls := 0
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		t0 := time.Now()
		for range batch {
			if _, err := plain.Token(ctx); err != nil {
				b.Fatal(err)
			}
		}
		t1 := time.Now()
		for range batch {
			if _, err := traced.Token(ctx); err != nil {
				b.Fatal(err)
			}
		}
		tTraced += time.Since(t1)
		tPlain += t1.Sub(t0)
		calls += batch
	}
	b.ReportMetric(float64(tPlain.Nanoseconds())/float64(calls), "plain-ns/call")
	b.ReportMetric(float64(tTraced.Nanoseconds())/float64(calls), "traced-ns/call")
	b.ReportMetric(float64(tTraced)/float64(tPlain), "traced/plain")
}

// BenchmarkMintTelemetry is a mint on an empty cache (Invalidate, then
// Token: one call of the fake credential API over loopback HTTP), without
// and with the SDK installed, interleaved: what a span and two metric
// points cost next to the API call. It reports plain-ns/mint,
// traced-ns/mint and their ratio.
func BenchmarkMintTelemetry(b *testing.B) {
	plain, traced := benchSources(b)
	ctx := context.Background()
	var tPlain, tTraced time.Duration
	mints := 0
	b.ReportAllocs()
	b.ResetTimer()
	mint := func(s *Source) time.Duration {
		t0 := time.Now()
		s.Invalidate()
		if _, err := s.Token(ctx); err != nil {
			b.Fatal(err)
		}
		return time.Since(t0)
	}
	for b.Loop() {
		if mints%2 == 0 { // each goes first half of the time
			tPlain += mint(plain)
			tTraced += mint(traced)
		} else {
			tTraced += mint(traced)
			tPlain += mint(plain)
		}
		mints++
	}
	b.ReportMetric(float64(tPlain.Nanoseconds())/float64(mints), "plain-ns/mint")
	b.ReportMetric(float64(tTraced.Nanoseconds())/float64(mints), "traced-ns/mint")
	b.ReportMetric(float64(tTraced)/float64(tPlain), "traced/plain")
}

// BenchmarkMintRecording is what one mint records, without the API call: a
// span started and ended, and two metric points; with no SDK installed
// (the global providers) and with the SDK sampling everything.
func BenchmarkMintRecording(b *testing.B) {
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(tracetest.NewNoopExporter()), sdktrace.WithSampler(sdktrace.AlwaysSample()))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	b.Cleanup(func() {
		_ = tp.Shutdown(context.Background())
		_ = mp.Shutdown(context.Background())
	})
	for _, arm := range []struct {
		name string
		tel  *telemetry
	}{
		{"no-sdk", newTelemetry(otel.GetTracerProvider(), otel.GetMeterProvider())},
		{"sdk", newTelemetry(tp, mp)},
	} {
		b.Run(arm.name, func(b *testing.B) {
			s := &Source{target: `instance "` + instName + `"`, tel: arm.tel}
			f := &flight{reason: reasonRefresh}
			b.ReportAllocs()
			for b.Loop() {
				ctx, span := s.tel.startMint(context.Background(), s, f)
				s.tel.endMint(ctx, s, span, mintEnd{outcome: outcomeOK, took: 50 * time.Millisecond})
			}
		})
	}
}
