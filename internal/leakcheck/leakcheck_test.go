package leakcheck

import (
	"strings"
	"sync"
	"testing"
	"time"
)

// parked closes started, then blocks until release is closed; its frame
// marks the goroutine.
func parked(started chan<- struct{}, release chan struct{}) {
	close(started)
	<-release
}

func TestStacks(t *testing.T) {
	const marker = "leakcheck.parked("
	if s := Stacks(0, marker); s != "" {
		t.Fatalf("a marked goroutine before any was started:\n%s", s)
	}

	// Many goroutines started first push the marked one past the first
	// buffer of stacks, so that a truncated dump would miss it.
	release := make(chan struct{})
	var wg sync.WaitGroup
	for range 5000 {
		wg.Add(1)
		go func() { defer wg.Done(); <-release }()
	}
	if n := len(allStacks()); n <= 1<<20 {
		t.Logf("the stacks take %d bytes, within the first buffer", n)
	}
	wg.Add(1)
	started := make(chan struct{})
	go func() { defer wg.Done(); parked(started, release) }()
	<-started // the goroutine is in parked, not still on its way there

	s := Stacks(0, "no such frame", marker)
	if strings.Count(s, marker) != 1 {
		t.Fatalf("Stacks did not report the one marked goroutine:\n%.2000s", s)
	}
	if s := Stacks(0, "no such frame"); s != "" {
		t.Errorf("Stacks reported goroutines that no marker names:\n%.2000s", s)
	}

	close(release)
	start := time.Now()
	if s := Stacks(30*time.Second, marker); s != "" {
		t.Fatalf("the marked goroutine ended, yet Stacks reports:\n%s", s)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("Stacks waited %v for a goroutine that was ending", d)
	}
	wg.Wait()
}
