package lakebasetest_test

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestMain fails the run when a request handler of a fake, or a mint of a
// Source, is still running after every test has finished: NewServer's
// cleanup must end them all.
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if stacks := leaked(5 * time.Second); stacks != "" {
			fmt.Fprintf(os.Stderr, "lakebasetest: goroutines still running after the tests:\n%s\n", stacks)
			code = 1
		}
	}
	os.Exit(code)
}

func leaked(d time.Duration) string {
	deadline := time.Now().Add(d)
	for {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		var found []string
		for _, g := range strings.Split(string(buf), "\n\n") {
			if strings.Contains(g, "lakebasetest.(*Server)") || strings.Contains(g, "lakebasecred.(*Source)") {
				found = append(found, g)
			}
		}
		if len(found) == 0 || time.Now().After(deadline) {
			return strings.Join(found, "\n\n")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
