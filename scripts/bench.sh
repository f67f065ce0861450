#!/usr/bin/env bash
# bench.sh [GO TEST FLAGS...]
#
# Runs the session store benchmarks (package bunstore) on a throwaway
# PostgreSQL, all in one run, BENCH_COUNT times each (default 5), and
# prints their ratios against the speed targets with internal/benchratio.
# The raw output is kept in BENCH_OUT (default: a temporary file, named at
# the end). Extra arguments go to go test, for example -benchtime 2s.
# Exits 1 when a target is missed.
set -euo pipefail
cd "$(dirname "$0")/.."

count=${BENCH_COUNT:-5}
out=${BENCH_OUT:-$(mktemp "${TMPDIR:-/tmp}/lakesession-bench.XXXXXX")}

./scripts/with-postgres.sh go test -run '^$' -bench . -benchmem -count "$count" "$@" ./bunstore/ | tee "$out"
echo
set +e
go run ./internal/benchratio "$out"
rc=$?
set -e
echo
echo "bench: raw output in $out" >&2
exit $rc
