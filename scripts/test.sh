#!/usr/bin/env bash
# Runs the whole test suite. Installs the test oracles it needs first (tshark/capinfos read dumps back; sqlite3
# runs the docs' SQL).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/need-cargo.sh
# need PACKAGE WHAT CMD...: installs the Debian package PACKAGE (as root, with apt-get) when one of the commands
# is missing, or says what to install.
need() {
  local pkg=$1 what=$2 c; shift 2
  for c in "$@"; do command -v "$c" >/dev/null 2>&1 || break; c=; done
  [ -z "${c:-}" ] && return 0
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "test.sh: $* missing, and this script installs it with apt-get, which is not here;" \
         "install $what with your package manager" >&2
    exit 1
  elif [ "$(id -u)" = 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq "$pkg" >/dev/null
  else
    echo "test.sh: $* missing; install the Debian package '$pkg' (sudo apt-get install $pkg)" >&2
    exit 1
  fi
}
need tshark "Wireshark's command-line tools (tshark, capinfos)" tshark capinfos
# The docs' SQL examples run on the system sqlite3 (tests/it/docs.rs): Debian 12's is SQLite 3.40.
need sqlite3 "the SQLite command-line shell (sqlite3)" sqlite3
# tcpdump writes the rotations that tests/it/watch.rs replays (editcap and dumpcap come with tshark).
need tcpdump "tcpdump" tcpdump
command -v python3 >/dev/null 2>&1 || { echo "test.sh: python3 is needed for ../shared/conformance/check.py" >&2; exit 1; }
# The Community ID oracle (tests/it/connections.rs): Corelight's reference implementation, from PyPI.
python3 -c 'import communityid' 2>/dev/null || python3 -m pip install -q communityid || {
  echo "test.sh: could not install the PyPI package communityid (pip install communityid)" >&2; exit 1; }
# The Python package's tests (tests/it/python.rs) make a virtual environment: python3's venv module (Debian
# ships it apart, as python3-venv); pip then installs maturin, pytest and the oracle pypcapkit from PyPI.
if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
  else
    echo "test.sh: python3's venv module is missing; install the Debian package 'python3-venv'" >&2
    exit 1
  fi
fi
# The browser tests (tests/it/serve.rs runs tests/browser/*.py): Debian's chromium and its fonts, driven by
# Playwright for Python (PyPI) from a venv of their own (`playwright install` would download a browser).
need chromium "the Chromium browser (chromium)" chromium
[ -e /usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf ] ||
  need fonts-liberation "the Liberation fonts (fonts-liberation)" fc-list-liberation-fonts
if ! target/venv-browser/bin/python -c 'import playwright' 2>/dev/null; then
  python3 -m venv target/venv-browser && target/venv-browser/bin/pip install -q playwright || {
    echo "test.sh: could not make the browser tests' venv (python3 -m venv target/venv-browser; pip install playwright)" >&2; exit 1; }
fi
test -d ../shared/conformance/captures || { echo "test.sh: ../shared/conformance is missing beside the repo" >&2; exit 1; }
log=$(mktemp)
# The PostgreSQL tests (tests/it/postgres.rs) need a server: a private cluster for this run, stopped at the end
# whatever happens (pg-cluster.sh installs PostgreSQL first when it is missing).
trap 'rm -f "$log"; if [ -n "${TRACEFLOW_TEST_PG_DIR:-}" ]; then bash scripts/pg-cluster.sh stop "$TRACEFLOW_TEST_PG_DIR"; fi' EXIT
pg_env=$(bash scripts/pg-cluster.sh start) || { echo "test.sh: could not start a PostgreSQL cluster for the tests" >&2; exit 1; }
eval "$pg_env"
export TRACEFLOW_TEST_PG TRACEFLOW_TEST_PG_DIR
status=0
cargo test --release 2>&1 | tee "$log" || status=$?
# One closing line for the whole run, summed over every test binary.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i; if ($(i+1) ~ /^ignored/) s += $i } }
     END { printf "tests: %d passed, %d failed, %d skipped\n", p, f, s }' "$log"
exit "$status"
