package connector_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

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
