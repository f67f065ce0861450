package main

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
)

// prefix is the top-level benchmark whose sub-benchmarks are reported.
const prefix = "BenchmarkPostgres/"

// sample is one result line of one benchmark.
type sample struct {
	ns, bytes, allocs float64
	hasMem            bool
	// metrics are the other units reported, such as the "bunstore-ns/op"
	// of an interleaved benchmark.
	metrics map[string]float64
}

// results are the samples of each benchmark, by name without the prefix
// and the GOMAXPROCS suffix, in the order first seen.
type results struct {
	names   []string
	samples map[string][]sample
}

// procsSuffix is the "-N" that go test appends to a benchmark name when
// GOMAXPROCS is not 1.
var procsSuffix = regexp.MustCompile(`-[0-9]+$`)

// parse reads `go test -bench` output. Lines of other benchmarks and other
// text are ignored. A result may follow its name on the next line, as go
// test prints it when the benchmark logged something.
func parse(r io.Reader) (*results, error) {
	res := &results{samples: map[string][]sample{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	pending := "" // a benchmark name printed without its result
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		name := ""
		if strings.HasPrefix(fields[0], "Benchmark") {
			name, fields = fields[0], fields[1:]
			pending = ""
		} else if pending != "" {
			name = pending
		}
		if name == "" {
			continue
		}
		s, ok, err := parseResult(fields)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if !ok {
			if len(fields) == 0 {
				pending = name
			}
			continue
		}
		pending = ""
		name = procsSuffix.ReplaceAllString(name, "")
		short, found := strings.CutPrefix(name, prefix)
		if !found {
			continue
		}
		if _, seen := res.samples[short]; !seen {
			res.names = append(res.names, short)
		}
		res.samples[short] = append(res.samples[short], s)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return res, nil
}

// parseResult reads "N  x ns/op  y B/op  z allocs/op ..." and reports
// whether fields were a result at all.
func parseResult(fields []string) (sample, bool, error) {
	var s sample
	if len(fields) < 3 {
		return s, false, nil
	}
	if _, err := strconv.ParseInt(fields[0], 10, 64); err != nil {
		return s, false, nil
	}
	seenNs := false
	for i := 1; i+1 < len(fields); i += 2 {
		v, err := strconv.ParseFloat(fields[i], 64)
		if err != nil {
			return s, false, fmt.Errorf("value %q of %s is not a number", fields[i], fields[i+1])
		}
		switch fields[i+1] {
		case "ns/op":
			s.ns, seenNs = v, true
		case "B/op":
			s.bytes, s.hasMem = v, true
		case "allocs/op":
			s.allocs = v
		default:
			if s.metrics == nil {
				s.metrics = map[string]float64{}
			}
			s.metrics[fields[i+1]] = v
		}
	}
	if !seenNs {
		return s, false, nil
	}
	if s.ns <= 0 {
		return s, false, fmt.Errorf("ns/op is %v; a benchmark must take some time", s.ns)
	}
	return s, true, nil
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n == 0 {
		return math.NaN()
	}
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// stat is the summary of one benchmark over its runs.
type stat struct {
	runs          int
	ns, min, max  float64 // median, smallest and largest ns/op
	bytes, allocs float64 // medians
	hasMem        bool
}

func (r *results) stat(name string) (stat, bool) {
	ss := r.samples[name]
	if len(ss) == 0 {
		return stat{}, false
	}
	var ns, bytes, allocs []float64
	st := stat{runs: len(ss), hasMem: true}
	for _, s := range ss {
		ns = append(ns, s.ns)
		bytes = append(bytes, s.bytes)
		allocs = append(allocs, s.allocs)
		st.hasMem = st.hasMem && s.hasMem
	}
	st.ns, st.min, st.max = median(ns), slices.Min(ns), slices.Max(ns)
	st.bytes, st.allocs = median(bytes), median(allocs)
	return st, true
}

// spread is (max-min)/median of ns/op, in percent.
func (s stat) spread() float64 { return 100 * (s.max - s.min) / s.ns }

// A target compares bunstore with something else in two ways: the median
// ns/op of two separate benchmarks, over / under; and, when the input has
// it, the median across runs of the ratio of two metrics of one
// interleaved benchmark (mixed / metricOver / metricUnder), whose arms ran
// in turn under the same load. The verdict is the interleaved ratio's when
// there is one.
type target struct {
	label       string
	over, under string
	mixed       string // the interleaved benchmark; "" when there is none
	metricOver  string
	metricUnder string
	atMost      bool    // the ratio must be <= limit; else >= limit
	limit       float64 // 0: no target, the ratio is information
}

// operations are the operations that bunstore must do at 0.8x the floor's
// throughput or better.
var operations = []string{
	"AddItems1",
	"AddItems10",
	"GetItems20_Session100",
	"GetItems20_Session100k",
	"GetItems20_OneBatch20k",
	"GetItems20_Sessions1000",
	"PopItem_Session100",
	"PopItem_OneBatch20k",
}

// against returns the target of bunstore's throughput against another
// variant's on one operation.
func against(op, other string, limit float64) target {
	return target{
		label: op + ": bunstore throughput / " + other + "'s",
		over:  op + "/" + other, under: op + "/bunstore",
		mixed: op + "/interleaved", metricOver: other + "-ns/op", metricUnder: "bunstore-ns/op",
		limit: limit,
	}
}

// targets are the speed requirements of the session store, then the
// ratios to the Python sequence that have none.
func targets() []target {
	var ts []target
	for _, op := range operations {
		ts = append(ts, against(op, "floor", 0.8))
	}
	for _, op := range []string{"AddItems1", "AddItems10"} {
		ts = append(ts, against(op, "python", 1.5))
	}
	for _, op := range []string{"GetItems20", "PopItem"} {
		ts = append(ts, target{
			label: op + ": bunstore time, one 20k batch / 100 items",
			over:  op + "_OneBatch20k/bunstore", under: op + "_Session100/bunstore",
			mixed:      op + "_OneBatch20kVsSession100/interleaved",
			metricOver: "onebatch20k-ns/op", metricUnder: "session100-ns/op",
			atMost: true, limit: 1.5,
		})
	}
	for _, op := range operations[2:] {
		ts = append(ts, against(op, "python", 0))
	}
	return ts
}

// verdict is the outcome of one target.
type verdict int

const (
	pass verdict = iota
	miss
	noData
	info
)

func (v verdict) String() string {
	return [...]string{"PASS", "MISS", "NO DATA", "info"}[v]
}

// separate returns the ratio of the medians of the two benchmarks, or NaN.
func (t target) separate(r *results) float64 {
	over, ok1 := r.stat(t.over)
	under, ok2 := r.stat(t.under)
	if !ok1 || !ok2 {
		return math.NaN()
	}
	return over.ns / under.ns
}

// interleaved returns the median across runs of the interleaved ratio, or
// NaN.
func (t target) interleaved(r *results) float64 {
	if t.mixed == "" {
		return math.NaN()
	}
	var ratios []float64
	for _, s := range r.samples[t.mixed] {
		over, ok1 := s.metrics[t.metricOver]
		under, ok2 := s.metrics[t.metricUnder]
		if ok1 && ok2 && under > 0 {
			ratios = append(ratios, over/under)
		}
	}
	return median(ratios)
}

// judge returns both ratios and the verdict, taken on the interleaved one
// when there is one.
func (t target) judge(r *results) (separate, interleaved float64, v verdict) {
	separate, interleaved = t.separate(r), t.interleaved(r)
	ratio := interleaved
	if math.IsNaN(ratio) {
		ratio = separate
	}
	switch {
	case math.IsNaN(ratio):
		return separate, interleaved, noData
	case t.limit == 0:
		return separate, interleaved, info
	case t.atMost && ratio <= t.limit, !t.atMost && ratio >= t.limit:
		return separate, interleaved, pass
	default:
		return separate, interleaved, miss
	}
}

func (t target) want() string {
	switch {
	case t.limit == 0:
		return "-"
	case t.atMost:
		return fmt.Sprintf("<= %.2fx", t.limit)
	default:
		return fmt.Sprintf(">= %.2fx", t.limit)
	}
}

func ratioText(x float64) string {
	if math.IsNaN(x) {
		return "-"
	}
	return fmt.Sprintf("%.2fx", x)
}

// report writes the tables of benchmarks and the ratios, and returns the
// exit status: 0 all targets met, 1 one missed, 2 data missing.
func report(w io.Writer, r *results) int {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "benchmark\truns\tns/op (median)\tspread\tB/op\tallocs/op\t")
	var mixed []string
	for _, name := range r.names {
		if strings.HasSuffix(name, "/interleaved") {
			mixed = append(mixed, name)
			continue
		}
		s, _ := r.stat(name)
		mem, allocs := "-", "-"
		if s.hasMem {
			mem, allocs = fmt.Sprintf("%.0f", s.bytes), fmt.Sprintf("%.0f", s.allocs)
		}
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t%.0f%%\t%s\t%s\t\n", name, s.runs, s.ns, s.spread(), mem, allocs)
	}
	tw.Flush()

	if len(mixed) > 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "interleaved benchmark\tarm\truns\tns/op (median)\tspread\t")
		for _, name := range mixed {
			for _, arm := range armsOf(r.samples[name]) {
				var ns []float64
				for _, s := range r.samples[name] {
					if v, ok := s.metrics[arm+"-ns/op"]; ok {
						ns = append(ns, v)
					}
				}
				m := median(ns)
				fmt.Fprintf(tw, "%s\t%s\t%d\t%.0f\t%.0f%%\t\n", name, arm, len(ns), m, 100*(slices.Max(ns)-slices.Min(ns))/m)
			}
		}
		tw.Flush()
	}
	fmt.Fprintln(w)

	status := 0
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ratio\tseparate\tinterleaved\ttarget\tresult\t")
	for _, t := range targets() {
		separate, interleaved, v := t.judge(r)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t\n", t.label, ratioText(separate), ratioText(interleaved), t.want(), v)
		switch {
		case v == noData:
			status = 2
		case v == miss && status == 0:
			status = 1
		}
	}
	tw.Flush()
	fmt.Fprintln(w, "\nseparate: ratio of the median ns/op of separate benchmarks; interleaved: median across runs of the ratio")
	fmt.Fprintln(w, "within one benchmark that called the variants in turn (it decides the result when present).")
	return status
}

// armsOf returns the arms of an interleaved benchmark's "<arm>-ns/op"
// metrics, sorted.
func armsOf(ss []sample) []string {
	seen := map[string]bool{}
	var arms []string
	for _, s := range ss {
		for unit := range s.metrics {
			if arm, ok := strings.CutSuffix(unit, "-ns/op"); ok && !seen[arm] {
				seen[arm] = true
				arms = append(arms, arm)
			}
		}
	}
	slices.Sort(arms)
	return arms
}
