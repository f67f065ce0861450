package connector_test

import (
	"testing"

	"github.com/lakesession/lakesession/internal/leakcheck"
)

// TestMain fails the run when a goroutine that probes a server during an
// outage, or one of the test helpers' (proxies, servers, poolers), outlives
// the tests: Close and the tests' cleanups must end them all.
func TestMain(m *testing.M) {
	leakcheck.Main(m, "connector.(*prober)", "faultproxy.(*Proxy)", "pgserver.(*Server)", "pgbouncer.(*Bouncer)")
}
