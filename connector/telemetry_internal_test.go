package connector

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// BenchmarkConnectTelemetryAlone measures the telemetry of one Connect
// without the connection: the span's start and end, one attempt counted and
// the duration recorded, with no SDK installed (the global providers) and
// with the SDK sampling everything; a Connect that succeeded, and one whose
// login was refused.
func BenchmarkConnectTelemetryAlone(b *testing.B) {
	ctx := context.Background()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()), sdktrace.WithBatcher(tracetest.NewNoopExporter()))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	b.Cleanup(func() {
		tp.Shutdown(ctx)
		mp.Shutdown(ctx)
	})
	refused := &pgconn.PgError{Severity: "FATAL", Code: "28P01", Message: "password authentication failed"}
	for _, arm := range []struct {
		name string
		tel  *telemetry
	}{
		{"nosdk", newTelemetry(nil, nil, "db.example.com", 5432, "app")},
		{"sdk", newTelemetry(tp, mp, "db.example.com", 5432, "app")},
	} {
		for _, outcome := range []struct {
			name string
			err  error
		}{{"ok", nil}, {"refused", errors.Join(refused)}} {
			b.Run(arm.name+"/"+outcome.name, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					start := time.Now()
					sctx, span := arm.tel.start(ctx)
					var st connectStats
					st.attempts++
					arm.tel.countAttempt(sctx, false, outcome.err)
					arm.tel.end(sctx, span, start, &st, outcome.err)
				}
			})
		}
	}
}
