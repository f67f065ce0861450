// Package leakcheck fails a test binary whose goroutines outlive its tests.
//
// A package's TestMain calls Main with the frames that mark its own
// goroutines (for example "lakebasecred.(*Source)"); a test calls Stacks to
// wait for such goroutines to end in the middle of a run.
package leakcheck

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// Grace is how long Main waits for marked goroutines to end after the tests
// passed, before it reports them.
const Grace = 5 * time.Second

// Main runs the tests of m and exits with their code; when they passed, it
// fails the run (exit code 1, stacks on stderr) if a goroutine whose stack
// contains one of markers is still running after Grace.
func Main(m *testing.M, markers ...string) {
	code := m.Run()
	if code == 0 {
		if stacks := Stacks(Grace, markers...); stacks != "" {
			fmt.Fprintf(os.Stderr, "goroutines still running after the tests:\n%s\n", stacks)
			code = 1
		}
	}
	os.Exit(code)
}

// Stacks waits up to d for every goroutine whose stack contains one of
// markers to end, and returns the stacks of those still running then ("" when
// none is).
func Stacks(d time.Duration, markers ...string) string {
	deadline := time.Now().Add(d)
	for {
		var found []string
		for _, g := range strings.Split(allStacks(), "\n\n") {
			for _, m := range markers {
				if strings.Contains(g, m) {
					found = append(found, g)
					break
				}
			}
		}
		if len(found) == 0 || time.Now().After(deadline) {
			return strings.Join(found, "\n\n")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// allStacks returns the stacks of every goroutine, however many there are.
func allStacks() string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return string(buf[:n])
		}
		buf = make([]byte, 2*len(buf))
	}
}
