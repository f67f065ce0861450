package main

import (
	"bytes"
	"fmt"
	"maps"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func line(name string, ns float64) string {
	return fmt.Sprintf("BenchmarkPostgres/%s-2   \t    1000\t  %.0f ns/op\t    1896 B/op\t      13 allocs/op\n", name, ns)
}

// mixedLine is a result of an interleaved benchmark with the given
// "<arm>-ns/op" metrics.
func mixedLine(name string, arms map[string]float64) string {
	var b strings.Builder
	fmt.Fprintf(&b, "BenchmarkPostgres/%s-2   \t    1000\t  123456 ns/op", name)
	for _, arm := range slices.Sorted(maps.Keys(arms)) {
		fmt.Fprintf(&b, "\t  %.0f %s-ns/op", arms[arm], arm)
	}
	b.WriteString("\t    1896 B/op\t      13 allocs/op\n")
	return b.String()
}

// passing returns output in which every target is met, with ns/op
// repeated runs times around the given values. Interleaved benchmarks
// report the same values as the separate ones; mixed overrides theirs
// (keys "<benchmark>/<arm>").
func passing(runs int, change, mixed map[string]float64) string {
	ns := map[string]float64{}
	for _, op := range operations {
		ns[op+"/bunstore"] = 100_000
		ns[op+"/python"] = 200_000
		ns[op+"/floor"] = 90_000
	}
	for k, v := range change {
		ns[k] = v
	}
	var b strings.Builder
	b.WriteString("goos: linux\ngoarch: amd64\npkg: github.com/lakesession/lakesession/bunstore\n")
	for i := range runs {
		for _, op := range operations {
			for _, v := range []string{"bunstore", "python", "floor"} {
				if x, ok := ns[op+"/"+v]; ok {
					// Runs differ by up to 2%; the median is the given value.
					b.WriteString(line(op+"/"+v, x*(1+0.01*float64(i-runs/2))))
				}
			}
			arms := map[string]float64{}
			for _, v := range []string{"bunstore", "python", "floor"} {
				arms[v] = ns[op+"/"+v]
				if x, ok := mixed[op+"/interleaved/"+v]; ok {
					arms[v] = x
				}
			}
			b.WriteString(mixedLine(op+"/interleaved", arms))
		}
		for _, op := range []string{"GetItems20", "PopItem"} {
			name := op + "_OneBatch20kVsSession100/interleaved"
			arms := map[string]float64{
				"session100":  ns[op+"_Session100/bunstore"],
				"onebatch20k": ns[op+"_OneBatch20k/bunstore"],
			}
			for arm := range arms {
				if x, ok := mixed[name+"/"+arm]; ok {
					arms[arm] = x
				}
			}
			b.WriteString(mixedLine(name, arms))
		}
	}
	b.WriteString("PASS\nok  \tgithub.com/lakesession/lakesession/bunstore\t42.1s\n")
	return b.String()
}

func TestParse(t *testing.T) {
	in := `goos: linux
BenchmarkOther-2        	 100	 5 ns/op
BenchmarkPostgres/AddItems1/bunstore-2  	 5000	 217629 ns/op	 1896 B/op	 13 allocs/op
BenchmarkPostgres/AddItems1/bunstore    	 5000	 200000.5 ns/op
BenchmarkPostgres/AddItems1/floor-16
    bench_test.go:12: a log line
BenchmarkPostgres/AddItems1/floor-16   	 12986	 95451 ns/op	 400 B/op	 8 allocs/op
BenchmarkPostgres/GetItems20_Session100/python-2
	 100	 70000 ns/op	 7000 B/op	 96 allocs/op
BenchmarkPostgres/GetItems20_Session100/interleaved-2  300  82611 ns/op  79733 bunstore-ns/op  85091 floor-ns/op  8977 B/op  173 allocs/op
--- BENCH: BenchmarkPostgres/GetItems20_Session100/python-2
PASS
`
	r, err := parse(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	wantNames := []string{"AddItems1/bunstore", "AddItems1/floor", "GetItems20_Session100/python", "GetItems20_Session100/interleaved"}
	if fmt.Sprint(r.names) != fmt.Sprint(wantNames) {
		t.Fatalf("names = %v, want %v", r.names, wantNames)
	}
	got := r.samples["AddItems1/bunstore"]
	want := []sample{{ns: 217629, bytes: 1896, allocs: 13, hasMem: true}, {ns: 200000.5}}
	if got := r.samples["GetItems20_Session100/interleaved"]; len(got) != 1 || got[0].ns != 82611 || got[0].allocs != 173 ||
		fmt.Sprint(got[0].metrics) != "map[bunstore-ns/op:79733 floor-ns/op:85091]" {
		t.Errorf("interleaved samples = %+v, want one with bunstore-ns/op 79733 and floor-ns/op 85091", got)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("AddItems1/bunstore samples = %v, want %v", got, want)
	}
	if got := r.samples["AddItems1/floor"]; len(got) != 1 || got[0].ns != 95451 || got[0].allocs != 8 {
		t.Errorf("AddItems1/floor samples = %v, want one of 95451 ns/op and 8 allocs/op", got)
	}
	if got := r.samples["GetItems20_Session100/python"]; len(got) != 1 || got[0].ns != 70000 {
		t.Errorf("a result on the line after its name: samples = %v, want one of 70000 ns/op", got)
	}
	if _, ok := r.samples["Other"]; ok || len(r.samples) != 4 {
		t.Errorf("other benchmarks were read: %v", r.samples)
	}
}

func TestParseRejectsBadNumbers(t *testing.T) {
	for _, in := range []string{
		"BenchmarkPostgres/AddItems1/bunstore-2  100  12x ns/op\n",
		"BenchmarkPostgres/AddItems1/bunstore-2  100  0 ns/op\n",
	} {
		if _, err := parse(strings.NewReader(in)); err == nil || !strings.Contains(err.Error(), "AddItems1/bunstore") {
			t.Errorf("parse(%q) error = %v, want one naming the benchmark", in, err)
		}
	}
}

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want float64
	}{
		{[]float64{5}, 5},
		{[]float64{9, 1, 5}, 5},
		{[]float64{4, 1, 3, 2}, 2.5},
		{[]float64{300, 100, 200, 1_000_000, 150}, 200},
	} {
		if got := median(c.in); got != c.want {
			t.Errorf("median(%v) = %v, want %v", c.in, got, c.want)
		}
	}
	if got := median(nil); !math.IsNaN(got) {
		t.Errorf("median(nil) = %v, want NaN", got)
	}
}

func TestJudge(t *testing.T) {
	r, err := parse(strings.NewReader(
		line("AddItems1/bunstore", 100) + line("AddItems1/bunstore", 100) + line("AddItems1/bunstore", 1000) +
			line("AddItems1/floor", 80) +
			line("AddItems1/python", 149) +
			line("PopItem_Session100/bunstore", 100) + line("PopItem_OneBatch20k/bunstore", 150) +
			// Interleaved ratios 0.7, 0.9 and 0.85: the median is 0.85.
			mixedLine("GetItems20_Session100/interleaved", map[string]float64{"bunstore": 100, "floor": 70}) +
			mixedLine("GetItems20_Session100/interleaved", map[string]float64{"bunstore": 200, "floor": 180}) +
			mixedLine("GetItems20_Session100/interleaved", map[string]float64{"bunstore": 1000, "floor": 850}) +
			line("GetItems20_Session100/bunstore", 100) + line("GetItems20_Session100/floor", 50)))
	if err != nil {
		t.Fatal(err)
	}
	nan := math.NaN()
	for _, c := range []struct {
		t                     target
		separate, interleaved float64
		v                     verdict
	}{
		// The median of 100, 100, 1000 is 100: one slow run does not decide.
		{target{over: "AddItems1/floor", under: "AddItems1/bunstore", limit: 0.8}, 0.8, nan, pass},
		{target{over: "AddItems1/floor", under: "AddItems1/bunstore", limit: 0.81}, 0.8, nan, miss},
		{target{over: "AddItems1/python", under: "AddItems1/bunstore", limit: 1.5}, 1.49, nan, miss},
		{target{over: "PopItem_OneBatch20k/bunstore", under: "PopItem_Session100/bunstore", atMost: true, limit: 1.5}, 1.5, nan, pass},
		{target{over: "PopItem_OneBatch20k/bunstore", under: "PopItem_Session100/bunstore", atMost: true, limit: 1.4}, 1.5, nan, miss},
		{target{over: "AddItems1/python", under: "AddItems1/bunstore"}, 1.49, nan, info},
		{target{over: "AddItems10/floor", under: "AddItems1/bunstore", limit: 0.8}, nan, nan, noData},
		// The interleaved ratio decides: the separate one (0.5) would miss.
		{against("GetItems20_Session100", "floor", 0.8), 0.5, 0.85, pass},
		{against("GetItems20_Session100", "floor", 0.86), 0.5, 0.85, miss},
		// An interleaved benchmark without the metric is no data.
		{against("GetItems20_Session100", "python", 0.8), nan, nan, noData},
	} {
		separate, interleaved, v := c.t.judge(r)
		if v != c.v || !same(separate, c.separate) || !same(interleaved, c.interleaved) {
			t.Errorf("%s / %s (limit %v, atMost %v) = %v, %v, %v; want %v, %v, %v",
				c.t.over, c.t.under, c.t.limit, c.t.atMost, separate, interleaved, v, c.separate, c.interleaved, c.v)
		}
	}
}

func same(a, b float64) bool {
	return math.Abs(a-b) < 1e-9 || math.IsNaN(a) && math.IsNaN(b)
}

func TestTargetsOfTheRequirements(t *testing.T) {
	// Every operation against the floor, AddItems against python, and the
	// one-batch session against the 100-item one, each also interleaved.
	type key struct {
		over, under, mixed, metricOver, metricUnder string
		atMost                                      bool
		limit                                       float64
	}
	have := map[key]bool{}
	for _, tg := range targets() {
		have[key{tg.over, tg.under, tg.mixed, tg.metricOver, tg.metricUnder, tg.atMost, tg.limit}] = true
	}
	want := []key{
		{"GetItems20_OneBatch20k/bunstore", "GetItems20_Session100/bunstore",
			"GetItems20_OneBatch20kVsSession100/interleaved", "onebatch20k-ns/op", "session100-ns/op", true, 1.5},
		{"PopItem_OneBatch20k/bunstore", "PopItem_Session100/bunstore",
			"PopItem_OneBatch20kVsSession100/interleaved", "onebatch20k-ns/op", "session100-ns/op", true, 1.5},
		{"AddItems1/python", "AddItems1/bunstore", "AddItems1/interleaved", "python-ns/op", "bunstore-ns/op", false, 1.5},
		{"AddItems10/python", "AddItems10/bunstore", "AddItems10/interleaved", "python-ns/op", "bunstore-ns/op", false, 1.5},
	}
	for _, op := range operations {
		want = append(want, key{op + "/floor", op + "/bunstore", op + "/interleaved", "floor-ns/op", "bunstore-ns/op", false, 0.8})
	}
	for _, k := range want {
		if !have[k] {
			t.Errorf("no target %+v", k)
		}
	}
}

func TestReport(t *testing.T) {
	for _, c := range []struct {
		name       string
		in         string
		status     int
		wantInLine map[string]string // a line starting with key contains value
	}{
		{"all met", passing(5, nil, nil), 0, map[string]string{
			"AddItems1: bunstore throughput / floor's":           "0.90x     0.90x        >= 0.80x  PASS",
			"AddItems10: bunstore throughput / python's":         "2.00x     2.00x        >= 1.50x  PASS",
			"GetItems20: bunstore time, one 20k batch":           "1.00x     1.00x        <= 1.50x  PASS",
			"PopItem_Session100: bunstore throughput / python's": "2.00x     2.00x        -         info",
			"AddItems1/bunstore ":                                "5     100000",
			"PopItem_OneBatch20kVsSession100/interleaved":        "  5     100000          0%",
		}},
		{"slow add", passing(5, map[string]float64{"AddItems10/bunstore": 150_000},
			map[string]float64{"AddItems10/interleaved/bunstore": 150_000}), 1, map[string]string{
			"AddItems10: bunstore throughput / floor's":  "0.60x     0.60x        >= 0.80x  MISS",
			"AddItems10: bunstore throughput / python's": "1.33x     1.33x        >= 1.50x  MISS",
			"AddItems1: bunstore throughput / floor's":   "PASS",
		}},
		{"slow one batch, interleaved", passing(3, nil,
			map[string]float64{"PopItem_OneBatch20kVsSession100/interleaved/onebatch20k": 160_000}), 1, map[string]string{
			"PopItem: bunstore time, one 20k batch / 100 items": "1.00x     1.60x        <= 1.50x  MISS",
		}},
		{"slow separate run, interleaved met", passing(3, map[string]float64{"GetItems20_Session100k/bunstore": 200_000},
			map[string]float64{"GetItems20_Session100k/interleaved/bunstore": 100_000}), 0, map[string]string{
			"GetItems20_Session100k: bunstore throughput / floor's": "0.45x     0.90x        >= 0.80x  PASS",
		}},
		{"no interleaved", line("AddItems1/bunstore", 100) + line("AddItems1/floor", 70), 2, map[string]string{
			"AddItems1: bunstore throughput / floor's":  "0.70x     -            >= 0.80x  MISS",
			"AddItems10: bunstore throughput / floor's": "-         -            >= 0.80x  NO DATA",
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var out, errs bytes.Buffer
			status := run(nil, strings.NewReader(c.in), &out, &errs)
			if status != c.status {
				t.Errorf("status = %d, want %d; output:\n%s%s", status, c.status, out.String(), errs.String())
			}
			for prefix, want := range c.wantInLine {
				found := false
				for _, l := range strings.Split(out.String(), "\n") {
					if strings.HasPrefix(l, prefix) {
						found = true
						if !strings.Contains(l, want) {
							t.Errorf("line %q does not contain %q", l, want)
						}
					}
				}
				if !found {
					t.Errorf("no line starts with %q in:\n%s", prefix, out.String())
				}
			}
		})
	}
}

func TestRunWithoutResults(t *testing.T) {
	var out, errs bytes.Buffer
	if status := run(nil, strings.NewReader("PASS\nok  \tx\t0.1s\n"), &out, &errs); status != 2 {
		t.Errorf("status = %d, want 2", status)
	}
	if !strings.Contains(errs.String(), "no BenchmarkPostgres results") {
		t.Errorf("stderr = %q, want it to say that no results were found", errs.String())
	}
	if status := run([]string{filepath.Join(t.TempDir(), "missing.txt")}, nil, &out, &errs); status != 2 {
		t.Errorf("a missing file: status = %d, want 2", status)
	}
}
