#!/usr/bin/env bash
# Builds traceflow, writes a small sample capture with its own code, ingests it and prints the flow index.
set -euo pipefail
cd "$(dirname "$0")/.."
# TRACEFLOW_BIN: a traceflow already built (the README's test runs this script with the test's build).
bin=${TRACEFLOW_BIN:-}
if [ -z "$bin" ]; then
  . scripts/need-cargo.sh
  # The build's progress shows: a cold release build takes minutes on a small machine (SQLite and zstd are C).
  cargo build --release
  bin=target/release/traceflow
fi
dir=${1:-$(mktemp -d)}
mkdir -p "$dir"
"$bin" sample --force "$dir/sample.pcap"
"$bin" --db "$dir/demo.db" ingest "$dir/sample.pcap"
echo "== traceflow captures"
"$bin" --db "$dir/demo.db" captures --format table
echo "== traceflow query --capture sample.pcap"
"$bin" --db "$dir/demo.db" query --capture sample.pcap --format table
echo "(database: $dir/demo.db — try: sqlite3 $dir/demo.db 'SELECT * FROM flows')"
