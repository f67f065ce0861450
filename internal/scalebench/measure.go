package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"time"
)

// stats summarize latencies.
type stats struct {
	n                       int
	median, mean, p99, max_ time.Duration
}

func summarize(lat []time.Duration) stats {
	if len(lat) == 0 {
		return stats{}
	}
	s := slices.Clone(lat)
	slices.Sort(s)
	var sum time.Duration
	for _, d := range s {
		sum += d
	}
	return stats{
		n:      len(s),
		median: percentile(s, 0.5),
		mean:   sum / time.Duration(len(s)),
		p99:    percentile(s, 0.99),
		max_:   s[len(s)-1],
	}
}

// percentile returns the q-quantile of sorted, nearest rank.
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*q+0.999999999) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// interleaved runs workers goroutines of iters iterations each; an
// iteration calls small and large once each, in turns of order, and times
// both. It returns their latencies.
func interleaved(ctx context.Context, workers, iters int, small, large func(context.Context) error) (smallLat, largeLat []time.Duration, err error) {
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		errs = make([]error, workers)
	)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := make([]time.Duration, 0, iters)
			l := make([]time.Duration, 0, iters)
			for i := range iters {
				for k := range 2 {
					call, into := small, &s
					if (i+w+k)%2 == 1 {
						call, into = large, &l
					}
					start := time.Now()
					if err := call(ctx); err != nil {
						errs[w] = err
						return
					}
					*into = append(*into, time.Since(start))
				}
			}
			mu.Lock()
			smallLat = append(smallLat, s...)
			largeLat = append(largeLat, l...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, nil, err
		}
	}
	return smallLat, largeLat, nil
}

// timedCall is one call of a writer: when it started and how long it took.
type timedCall struct {
	at time.Time
	d  time.Duration
}

// writers runs n goroutines that call call, pausing think between calls,
// until stop is closed, and returns every call's start and latency.
func writers(ctx context.Context, n int, think time.Duration, call func(context.Context) error, stop <-chan struct{}) ([]timedCall, error) {
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		all  []timedCall
		errs = make([]error, n)
	)
	for w := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []timedCall
			defer func() {
				mu.Lock()
				all = append(all, mine...)
				mu.Unlock()
			}()
			for {
				select {
				case <-stop:
					return
				case <-time.After(think):
				}
				start := time.Now()
				if err := call(ctx); err != nil {
					errs[w] = err
					return
				}
				mine = append(mine, timedCall{start, time.Since(start)})
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return all, nil
}

// between returns the latencies of the calls that started in [from, to).
func between(calls []timedCall, from, to time.Time) []time.Duration {
	var out []time.Duration
	for _, c := range calls {
		if !c.at.Before(from) && c.at.Before(to) {
			out = append(out, c.d)
		}
	}
	return out
}

// picker hands out session indexes in [lo, hi) at random, each at most
// once: cold sessions, never touched before by the benchmark.
type picker struct {
	mu   sync.Mutex
	used map[int]bool
}

func newPicker() *picker { return &picker{used: map[int]bool{}} }

func (p *picker) pick(lo, hi int) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	inRange := 0
	for i := range p.used {
		if lo <= i && i < hi {
			inRange++
		}
	}
	if inRange >= (hi-lo)/2 {
		return 0, fmt.Errorf("more than half of the sessions %d to %d were already used; load more sessions or run fewer iterations", lo, hi)
	}
	for {
		i := lo + rand.IntN(hi-lo)
		if !p.used[i] {
			p.used[i] = true
			return i, nil
		}
	}
}

// thousands writes n with thousands separators.
func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := n < 0
	if neg {
		s = s[1:]
	}
	var out []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	if neg {
		return "-" + string(out)
	}
	return string(out)
}

// ms formats a duration in milliseconds with two decimals, or in µs below
// one millisecond.
func ms(d time.Duration) string {
	if d < time.Millisecond {
		return fmt.Sprintf("%d µs", d.Microseconds())
	}
	return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
}
