package main

import (
	"testing"
	"time"
)

// Every session of a shape gets its items in order, the big one its big
// items, and firstLast names the rows of each session's first and last
// items: the Go mapping that load's SQL follows.
func TestShape(t *testing.T) {
	for _, s := range []shape{
		{sessions: 20, items: 5, interleave: 4, big: 10},
		{sessions: 12, items: 3, interleave: 12},
		{sessions: 6, items: 4, interleave: 2, big: 24},
	} {
		if err := s.check(); err != nil {
			t.Fatalf("%+v: %v", s, err)
		}
		next := make([]int64, s.sessions)
		first := make([]int64, s.sessions)
		last := make([]int64, s.sessions)
		var big int64
		for row := range s.rows() {
			i, item := s.itemOf(row)
			if i < 0 {
				if item != big {
					t.Fatalf("%+v: row %d is big item %d, want %d", s, row, item, big)
				}
				big++
				continue
			}
			if item != next[i] {
				t.Fatalf("%+v: row %d is item %d of session %d, want %d", s, row, item, i, next[i])
			}
			if item == 0 {
				first[i] = row
			}
			last[i] = row
			next[i]++
		}
		if big != int64(s.big) {
			t.Fatalf("%+v: the big session has %d items", s, big)
		}
		for i := range s.sessions {
			f, l := s.firstLast(i)
			if next[i] != int64(s.items) || f != first[i] || l != last[i] {
				t.Fatalf("%+v: session %d has %d items, rows %d to %d; firstLast says %d to %d", s, i, next[i], first[i], last[i], f, l)
			}
		}
	}
	if err := (shape{sessions: 10, items: 5, interleave: 3}).check(); err == nil {
		t.Fatal("sessions not a multiple of interleave accepted")
	}
}

func TestPercentileAndFormat(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 200; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	s := summarize(d)
	if s.median != 100*time.Millisecond || s.p99 != 198*time.Millisecond || s.max_ != 200*time.Millisecond || s.n != 200 {
		t.Fatalf("summarize = %+v", s)
	}
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 10_100_000: "10,100,000", -1234: "-1,234"} {
		if got := thousands(n); got != want {
			t.Errorf("thousands(%d) = %q, want %q", n, got, want)
		}
	}
}

// The picker hands out each index once, and refuses a range once half of
// it is used, counting only the picks in that range.
func TestPicker(t *testing.T) {
	p := newPicker()
	seen := map[int]bool{}
	for range 50 {
		i, err := p.pick(0, 100)
		if err != nil || i < 0 || i >= 100 || seen[i] {
			t.Fatalf("pick(0, 100) = %d, %v (picked before: %v)", i, err, seen[i])
		}
		seen[i] = true
	}
	if _, err := p.pick(0, 100); err == nil {
		t.Fatal("pick(0, 100) with half of the range used: no error")
	}
	// A range of its own is not full because another one is.
	for range 10 {
		if i, err := p.pick(100, 120); err != nil || i < 100 || i >= 120 {
			t.Fatalf("pick(100, 120) = %d, %v", i, err)
		}
	}
	if _, err := p.pick(100, 120); err == nil {
		t.Fatal("pick(100, 120) with half of the range used: no error")
	}
}
