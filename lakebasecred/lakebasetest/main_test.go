package lakebasetest_test

import (
	"testing"

	"github.com/lakesession/lakesession/internal/leakcheck"
)

// TestMain fails the run when a request handler of a fake, or a mint of a
// Source, is still running after every test has finished: NewServer's
// cleanup must end them all.
func TestMain(m *testing.M) {
	leakcheck.Main(m, "lakebasetest.(*Server)", "lakebasecred.(*Source)")
}
