#!/usr/bin/env bash
# demo.sh: the agent server example on an embedded SQLite file in a temporary
# directory. It builds the server and the demo client, starts the server on a
# free 127.0.0.1 port, sends the two requests of the Databricks agent
# template ("Hello I live in SF!", then "What city did I say I live in?" in
# the same session) and a third, "What's the weather where I live?", for
# which the agent calls its get_weather tool (fixed demo data) for SF; it
# prints the answers, the tool call and its output, and the stored rows (one
# batch per turn), and stops the server. It exits non-zero if any step
# fails. No database server, network service or credentials are needed.
set -euo pipefail
cd "$(dirname "$0")/../examples"

GO=${GO:-go}
workdir=$(mktemp -d "${TMPDIR:-/tmp}/lakesession-demo.XXXXXX")
trap 'rm -rf "$workdir"' EXIT

echo "building the agent server and the demo client" >&2
"$GO" build -o "$workdir/agentserver" ./agentserver
"$GO" build -o "$workdir/demo" ./cmd/demo
"$workdir/demo" -server "$workdir/agentserver" -dir "$workdir"
