#!/usr/bin/env bash
# demo-lakebase.sh: the conversation of `make demo` through the real Lakebase
# code path, offline. Run it under with-postgres.sh (make demo-lakebase does),
# which starts a local PostgreSQL with TLS and sets
# LAKESESSION_TEST_DATABASE_URL. A fake Databricks control plane (lakebasetest)
# points the instance at that server and turns each token it mints into a
# role's password; lakebasecred, the connector and bunstore run as they do
# against a real workspace. The fake is a test helper, so the demo is the Go
# test TestLakebaseDemo of examples/lakebasedemo.
set -euo pipefail
cd "$(dirname "$0")/../examples"

if [ -z "${LAKESESSION_TEST_DATABASE_URL:-}" ]; then
	echo "demo-lakebase: no PostgreSQL: run it as 'make demo-lakebase'" >&2
	exit 2
fi
# Without a database the test would be skipped; make that a failure.
export CI=true
exec "${GO:-go}" test -count=1 -v -run '^TestLakebaseDemo$' ./lakebasedemo
