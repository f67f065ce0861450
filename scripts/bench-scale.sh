#!/usr/bin/env bash
# bench-scale.sh [SCALEBENCH FLAGS...]
#
# Runs the scale benchmark (internal/scalebench) on a throwaway PostgreSQL:
# 10.1 million items loaded with SQL, the store's calls timed against the
# same calls on a 10,000-item table, and a retention prune of half the
# sessions while writers work. It takes 10 to 30 minutes on a 2-core
# machine and about 4 GB of disk. The Markdown report is printed and kept in
# BENCH_SCALE_OUT (default: a temporary file, named at the end). Extra
# arguments go to scalebench, for example -sessions 20000 -big 10000 for a
# quick try. Exits 1 when a target is missed.
set -euo pipefail
cd "$(dirname "$0")/.."

out=${BENCH_SCALE_OUT:-$(mktemp "${TMPDIR:-/tmp}/lakesession-bench-scale.XXXXXX")}

set +e
./scripts/with-postgres.sh go run ./internal/scalebench "$@" | tee "$out"
rc=${PIPESTATUS[0]}
set -e
echo
echo "bench-scale: report in $out" >&2
exit $rc
