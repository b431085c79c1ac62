#!/usr/bin/env bash
# The Python package against PyPCAPKit and the CLI:
#   1. traceflow.extract against pcapkit.extract (PyPCAPKit 1.4.1) on the same 10,000-frame capture
#      (`traceflow sample --conversations 1429`), the same tracing script (nofile, trace, tcp, pcap dumps to ./tmp);
#   2. Database.flows iteration (rows per second, every row's fields read) against `traceflow flows --format
#      jsonl` to /dev/null, on a database of 400,000 flows (`traceflow sample --conversations 200000`).
#
# usage: bash benches/python.sh [--python PY] [--repeat R]
#   --python PY  an interpreter with traceflow (pip install .) and pypcapkit==1.4.1.post2 installed
#                (default: target/tmp/python-venv/bin/python, which tests/it/python.rs makes)
#   --repeat R   runs of each, the median is reported (default 3)
# A benchmark is not a test: it prints the figures and fails only when a command errors.
set -euo pipefail
cd "$(dirname "$0")/.."
py=target/tmp/python-venv/bin/python
repeat=3
while [ $# -gt 0 ]; do
  case "$1" in
    --python) py=$2; shift 2 ;;
    --repeat) repeat=$2; shift 2 ;;
    *) echo "usage: bash benches/python.sh [--python PY] [--repeat R]" >&2; exit 2 ;;
  esac
done
bin=target/release/traceflow
[ -x "$bin" ] || cargo build --release
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$bin" sample --conversations 1429 "$work/10k.pcap" >/dev/null 2>&1
"$bin" sample --conversations 200000 "$work/big.pcap" >/dev/null 2>&1
"$bin" ingest --db "$work/big.db" --quiet "$work/big.pcap"
"$py" - "$work" "$repeat" "$bin" <<'PY'
import logging, os, statistics, subprocess, sys, time, warnings
work, repeat, exe = sys.argv[1], int(sys.argv[2]), os.path.abspath(sys.argv[3])
warnings.simplefilter('ignore')
logging.getLogger('pcapkit').disabled = True
import pcapkit, traceflow

def timed(fn):
    runs = []
    for _ in range(repeat):
        t = time.perf_counter(); fn(); runs.append(time.perf_counter() - t)
    return statistics.median(runs)

def script(module, sub):
    d = os.path.join(work, sub); os.makedirs(d, exist_ok=True); os.chdir(d)
    e = module.extract(fin=os.path.join(work, '10k.pcap'), nofile=True, trace=True, tcp=True)
    assert e.length >= 10000
    return e

a, b = script(pcapkit, 'pk').trace.tcp, script(traceflow, 'tf').trace.tcp
assert [i.to_dict() for i in a] == [i.to_dict() for i in b]
tf, pk = timed(lambda: script(traceflow, 'tf')), timed(lambda: script(pcapkit, 'pk'))
print(f'extract, 10,000 frames, {len(a)} flows: pcapkit {pk:.2f} s, traceflow {tf:.3f} s: {pk / tf:.0f}x')

db = traceflow.open(os.path.join(work, 'big.db'))
n = db.count('')
def iterate():
    k = 0
    for r in db.flows():
        r.label; r.packets; r.bytes
        k += 1
    assert k == n
it = timed(iterate)
def cli():
    subprocess.run([exe, 'flows', '--db', db.path, '--format', 'jsonl'], stdout=subprocess.DEVNULL, check=True)
c = timed(cli)
print(f'Database.flows, {n} rows: {n / it / 1e6:.2f}M rows/s ({it:.2f} s); '
      f'CLI flows --format jsonl: {n / c / 1e6:.2f}M rows/s ({c:.2f} s); iteration/CLI {c / it:.2f}')
PY
