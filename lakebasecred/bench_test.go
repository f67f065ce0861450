package lakebasecred

import (
	"context"
	"log/slog"
	"testing"

	"github.com/lakesession/lakesession/lakebasecred/lakebasetest"
)

func warmSource(b *testing.B) *Source {
	b.Helper()
	fake := lakebasetest.NewServer(b)
	fake.AddInstance(lakebasetest.Instance{Name: instName, ReadWriteDNS: instHost})
	s, err := New(context.Background(), fake.WorkspaceClient(), Target{Instance: instName}, WithLogger(slog.New(&logSink{})))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	if _, err := s.Token(context.Background()); err != nil {
		b.Fatal(err)
	}
	return s
}

// BenchmarkTokenWarm is Token on a warm cache, from one goroutine.
func BenchmarkTokenWarm(b *testing.B) {
	s := warmSource(b)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := s.Token(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTokenWarmParallel is Token on a warm cache from GOMAXPROCS
// goroutines at once, as a busy connection pool calls it.
func BenchmarkTokenWarmParallel(b *testing.B) {
	s := warmSource(b)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.Token(ctx); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
