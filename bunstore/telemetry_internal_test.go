package bunstore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"testing"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
)

// neverConnector is a driver.Connector for a Store that never reaches its
// database.
type neverConnector struct{}

func (neverConnector) Connect(context.Context) (driver.Conn, error) {
	return nil, errors.New("no database")
}
func (neverConnector) Driver() driver.Driver { return nil }

// BenchmarkCallTelemetry measures what the telemetry of one call costs by
// itself, without the call (begin and end of an AddItems): with no SDK
// installed (the global providers), and with the telemetry off for
// reference.
func BenchmarkCallTelemetry(b *testing.B) {
	sqldb := sql.OpenDB(neverConnector{})
	b.Cleanup(func() { sqldb.Close() })
	for _, tc := range []struct {
		name string
		opts []Option
	}{{"off", []Option{WithoutTelemetry()}}, {"nosdk", nil}} {
		st, err := New(bun.NewDB(sqldb, pgdialect.New()), tc.opts...)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(tc.name, func(b *testing.B) {
			ctx := context.Background()
			b.ReportAllocs()
			for range b.N {
				cctx, c := st.begin(ctx, opAddItems, "session")
				c.items, c.bytes = 1, 100
				c.end(cctx, nil)
			}
		})
	}
}
