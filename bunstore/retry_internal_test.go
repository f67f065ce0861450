package bunstore

import (
	"testing"
	"time"
)

// The waits between tries double from retryFirstDelay up to retryMaxDelay,
// each drawn between half its step and the step, so that callers who
// failed together spread out.
func TestBackoff(t *testing.T) {
	step := retryFirstDelay
	for i := range 10 {
		wait, next := backoff(step)
		if wait < step/2 || wait > step {
			t.Fatalf("try %d: wait %v outside [%v, %v]", i, wait, step/2, step)
		}
		if want := min(2*step, retryMaxDelay); next != want {
			t.Fatalf("try %d: next step %v, want %v", i, next, want)
		}
		step = next
	}
	if step != retryMaxDelay {
		t.Fatalf("step after 10 tries is %v, want the cap %v", step, retryMaxDelay)
	}
	seen := map[time.Duration]bool{}
	for range 50 {
		w, _ := backoff(retryMaxDelay)
		seen[w] = true
	}
	if len(seen) < 40 {
		t.Errorf("50 waits took %d distinct values; want them drawn at random", len(seen))
	}
}
