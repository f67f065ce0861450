// Command benchratio reads the output of the session store benchmarks
// (`go test -bench` in package bunstore) and prints, for each target of the
// store's speed requirements, the measured ratio, the target and PASS or
// MISS.
//
// # Usage
//
// Run the benchmarks several times in one run, then give the output to
// benchratio as files or on standard input:
//
//	./scripts/with-postgres.sh go test -run '^$' -bench . -benchmem -count 5 ./bunstore/ | tee bench.txt
//	go run ./internal/benchratio bench.txt
//
// scripts/bench.sh does both.
//
// # What it prints
//
// First a table of every BenchmarkPostgres sub-benchmark found: the number
// of runs, the median ns/op, the spread of ns/op across runs ((max-min) /
// median, a measure of the noise), and the median B/op and allocs/op; then
// the same for each arm of the interleaved benchmarks, which call the
// variants in turn and report each one's time per call ("bunstore-ns/op").
//
// Then the ratios, each in two ways: "separate", the ratio of the medians
// of two separate benchmarks; "interleaved", the median across runs of the
// ratio measured within one interleaved benchmark. On a loaded machine the
// load changes between separate benchmarks but not between the arms of an
// interleaved one, so the interleaved ratio decides PASS or MISS when the
// input has it. The ratios are:
//
//   - bunstore vs floor, for every operation: the floor's ns/op over
//     bunstore's, that is bunstore's throughput as a fraction of one bare
//     statement's; the target is at least 0.8.
//   - bunstore vs python, for AddItems of 1 and of 10 items: the Python
//     SQLAlchemySession sequence's ns/op over bunstore's; at least 1.5.
//   - one batch vs 100 items, for GetItems(20) and PopItem: bunstore's
//     ns/op on a session whose 20,000 items share created_at over its ns/op
//     on a 100-item session; at most 1.5.
//   - bunstore vs python for the other operations, without a target.
//
// # Exit status
//
// 0 when every target is met, 1 when one is missed, 2 when the input lacks
// a benchmark that a target needs or cannot be read.
package main
