package connector_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"runtime"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/lakesession/lakesession/connector"
)

// connectors returns, for the same role on the same server over the same
// TLS, a plain pgx stdlib connector with a static password, a Connector whose
// TokenSource hands out that password as a cached token, and a Connector on
// a warm lakebasecred.Source (fake control plane).
func connectors(b *testing.B) (plain, withSource, lakebase driver.Connector) {
	b.Helper()
	l := newLakebase(b, time.Hour)
	ctx := context.Background()
	tok, err := l.src.Token(ctx) // warm the cache; this token is the role's password
	if err != nil {
		b.Fatal(err)
	}

	plainCfg, err := pgx.ParseConfig("host=" + l.host + " port=" + strconv.Itoa(l.port) + " dbname=" + l.database +
		" sslmode=verify-full sslrootcert=" + l.rootCert)
	if err != nil {
		b.Fatal(err)
	}
	plainCfg.User = l.role
	plainCfg.Password = tok
	plain = stdlib.GetConnector(*plainCfg)

	c, err := connector.New(l.tokenConfig(l.role, &fakeSource{tok: tok}))
	if err != nil {
		b.Fatal(err)
	}
	return plain, c, l.conn
}

func connectOnce(b *testing.B, ctx context.Context, dc driver.Connector) time.Duration {
	start := time.Now()
	conn, err := dc.Connect(ctx)
	if err != nil {
		b.Fatal(err)
	}
	d := time.Since(start)
	conn.Close()
	return d
}

// BenchmarkConnect measures one new connection (TLS handshake and SCRAM
// login included; closing it is not timed) through each connector.
func BenchmarkConnect(b *testing.B) {
	plain, withSource, lakebase := connectors(b)
	ctx := context.Background()
	for _, bc := range []struct {
		name string
		dc   driver.Connector
	}{
		{"pgx-static-password", plain},
		{"connector-token-source", withSource},
		{"connector-lakebase", lakebase},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var total time.Duration
			n := 0
			for b.Loop() {
				total += connectOnce(b, ctx, bc.dc)
				n++
			}
			b.ReportMetric(float64(total.Nanoseconds())/float64(n), "connect-ns/op")
		})
	}
}

// BenchmarkConnectInterleaved opens connections through the plain pgx
// connector and the Lakebase Connector in turn, so that both see the same
// machine load, and reports the Connector's throughput relative to plain pgx
// (1 means as fast; the target is at least 0.95).
func BenchmarkConnectInterleaved(b *testing.B) {
	plain, _, lakebase := connectors(b)
	ctx := context.Background()
	var tPlain, tConn time.Duration
	n := 0
	for b.Loop() {
		if n%2 == 0 {
			tPlain += connectOnce(b, ctx, plain)
			tConn += connectOnce(b, ctx, lakebase)
		} else {
			tConn += connectOnce(b, ctx, lakebase)
			tPlain += connectOnce(b, ctx, plain)
		}
		n++
	}
	b.ReportMetric(float64(tPlain.Nanoseconds())/float64(n), "pgx-ns/conn")
	b.ReportMetric(float64(tConn.Nanoseconds())/float64(n), "connector-ns/conn")
	b.ReportMetric(float64(tPlain)/float64(tConn), "throughput-ratio")
}

// BenchmarkPooledQueryInterleaved runs SELECT 1 on a pooled connection
// through a *sql.DB on plain pgx and one on the Lakebase Connector in turn,
// so that both see the same load: the Connector's checks before a
// connection is handed out (a look at its socket, its lifetime, whether it
// got an error that distrusts it) are in its figure. It reports the
// Connector's throughput relative to plain pgx (1 means as fast).
func BenchmarkPooledQueryInterleaved(b *testing.B) {
	plain, _, lakebase := connectors(b)
	ctx := context.Background()
	dbPlain, dbConn := sqlOpenDB(plain), sqlOpenDB(lakebase)
	defer dbPlain.Close()
	defer dbConn.Close()
	query := func(db *sql.DB) time.Duration {
		start := time.Now()
		var one int
		if err := db.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
			b.Fatal(err)
		}
		return time.Since(start)
	}
	query(dbPlain) // open the pooled connections
	query(dbConn)
	var tPlain, tConn time.Duration
	n := 0
	for b.Loop() {
		if n%2 == 0 {
			tPlain += query(dbPlain)
			tConn += query(dbConn)
		} else {
			tConn += query(dbConn)
			tPlain += query(dbPlain)
		}
		n++
	}
	b.ReportMetric(float64(tPlain.Nanoseconds())/float64(n), "pgx-ns/query")
	b.ReportMetric(float64(tConn.Nanoseconds())/float64(n), "connector-ns/query")
	b.ReportMetric(float64(tPlain)/float64(tConn), "throughput-ratio")
}

// sqlOpenDB is a pool of one connection on dc.
func sqlOpenDB(dc driver.Connector) *sql.DB {
	db := sql.OpenDB(dc)
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	return db
}

// BenchmarkConnectTelemetry measures what the connect span and metrics cost
// on a new connection (TLS handshake and SCRAM login included), with three
// Lakebase Connectors on one warm token source:
//
//   - off:   built without telemetry (a test-only option): Connect as it
//     was before it had a span and metrics;
//   - nosdk: the default, the global OpenTelemetry providers with no SDK
//     installed (this benchmark installs none);
//   - sdk:   the OpenTelemetry SDK sampling every span, with a batch span
//     processor (to an exporter that discards) and a metric reader.
//
// The arms connect in turn, each first in turn, so that they share the
// machine's load. It reports each arm's median wall time per connection
// ("off-ns/conn", ...), and the mean CPU time the calling thread spent in
// it ("off-cpu-ns/conn", ...: the client's own work, TLS and SCRAM
// included, which on a busy machine varies much less than the wall
// clock), and the ratios of both to off (1 means as fast).
func BenchmarkConnectTelemetry(b *testing.B) {
	ctx := context.Background()
	l := newLakebase(b, time.Hour)
	if _, err := l.src.Token(ctx); err != nil { // warm the cache
		b.Fatal(err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()), sdktrace.WithBatcher(tracetest.NewNoopExporter()))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	b.Cleanup(func() {
		tp.Shutdown(ctx)
		mp.Shutdown(ctx)
	})
	names := []string{"off", "nosdk", "sdk"}
	arms := [][]connector.Option{
		{connector.WithoutTelemetry()},
		nil,
		{connector.WithTracerProvider(tp), connector.WithMeterProvider(mp)},
	}
	conns := make([]*connector.Connector, len(arms))
	for k, opts := range arms {
		c, err := connector.ForLakebase(l.src, append([]connector.Option{
			connector.WithPort(l.port), connector.WithSSLMode("verify-full"), connector.WithSSLRootCert(l.rootCert),
		}, opts...)...)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		conns[k] = c
	}
	// The goroutine stays on one thread, whose CPU time is read around
	// each Connect.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	_, haveCPU := threadCPU()
	walls := make([][]time.Duration, len(arms))
	cpus := make([]time.Duration, len(arms))
	n := 0
	for b.Loop() {
		for i := range conns {
			k := (n + i) % len(conns)
			cpu0, _ := threadCPU()
			start := time.Now()
			conn, err := conns[k].Connect(ctx)
			wall := time.Since(start)
			cpu1, _ := threadCPU()
			if err != nil {
				b.Fatal(err)
			}
			conn.Close()
			walls[k] = append(walls[k], wall)
			cpus[k] += cpu1 - cpu0
		}
		n++
	}
	median := make([]float64, len(arms))
	for k, w := range walls {
		slices.Sort(w)
		median[k] = float64(w[len(w)/2].Nanoseconds())
		b.ReportMetric(median[k], names[k]+"-ns/conn")
		if haveCPU {
			b.ReportMetric(float64(cpus[k].Nanoseconds())/float64(n), names[k]+"-cpu-ns/conn")
		}
	}
	for k := 1; k < len(arms); k++ {
		b.ReportMetric(median[k]/median[0], names[k]+"/off")
		if haveCPU {
			b.ReportMetric(float64(cpus[k])/float64(cpus[0]), names[k]+"/off-cpu")
		}
	}
}
