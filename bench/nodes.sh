#!/usr/bin/env bash
# bench/nodes.sh: imload on one node in memory, one node over Redis and
# three nodes over Redis, side by side (issue 14). Every run is a fresh
# local server (`imload run`, or `imload run --nodes N`, which starts a
# redis-server and N `imload serve --redis` children), interleaved, with
# the same seed; the table shows delivery p50/p99, the server's CPU (every
# node and redis-server) and its peak RSS (summed), and what crossed nodes.
#
#   bench/nodes.sh [--runs N] [--only W1|W2] [--out DIR] [--quick]
#
# W1: 5,000 clients x 1 tab, 100 rooms (rooms of 50), 0.1 msg/s per tab,
#     60 s after a 10 s ramp: memory, --nodes 1, --nodes 3.
# W2: 1,000 clients x 1 tab, 20 rooms of 50, rates 2 4 8 msg/s per tab,
#     30 s each, on --nodes 3: the highest rate with p99 <= 100 ms.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=2
ONLY="W1,W2"
OUT="bench/results/nodes-$(date -u +%Y%m%dT%H%M%SZ)"
QUICK=0
while [[ $# -gt 0 ]]; do
	case "$1" in
	--runs) RUNS=$2; shift ;;
	--only) ONLY=$2; shift ;;
	--out) OUT=$2; shift ;;
	--quick) QUICK=1 ;;
	-h|--help) sed -n '2,16p' "$0"; exit 0 ;;
	*) echo "unknown option $1" >&2; exit 2 ;;
	esac
	shift
done
mkdir -p "$OUT"
BIN="$OUT/imload"
go build -o "$BIN" ./cmd/imload
command -v redis-server >/dev/null || { echo "redis-server is not installed (apt-get install redis-server)" >&2; exit 1; }

W1_CLIENTS=5000 W1_DUR=60s W1_RAMP=10s W2_CLIENTS=1000 W2_DUR=30s W2_RATES="2 4 8"
if [[ $QUICK == 1 ]]; then W1_CLIENTS=1000 W1_DUR=15s W1_RAMP=3s W2_CLIENTS=300 W2_DUR=10s W2_RATES="2 8"; fi

run() { # name, then imload run's arguments
	local name=$1; shift
	echo "== $name: imload run $*"
	"$BIN" run --mode shared --tabs 1 --seed 42 --no-progress --out "$OUT/$name" "$@" >"$OUT/$name.log" 2>&1 || true
	tail -1 "$OUT/$name.log"
}

if [[ $ONLY == *W1* ]]; then
	for rep in $(seq 1 "$RUNS"); do
		for cfg in memory nodes1 nodes3; do
			extra=()
			case $cfg in nodes1) extra=(--nodes 1) ;; nodes3) extra=(--nodes 3) ;; esac
			run "W1-$cfg-$rep" --clients "$W1_CLIENTS" --rooms 100 --rate 0.1 --duration "$W1_DUR" --ramp "$W1_RAMP" "${extra[@]}"
		done
	done
fi
if [[ $ONLY == *W2* ]]; then
	for rate in $W2_RATES; do
		run "W2-nodes3-$rate" --clients "$W2_CLIENTS" --rooms 20 --rate "$rate" --duration "$W2_DUR" --ramp 5s --nodes 3
	done
fi

python3 - "$OUT" <<'PY'
import json, os, sys, glob
out = sys.argv[1]
rows = []
for d in sorted(glob.glob(os.path.join(out, 'W*'))):
    f = os.path.join(d, 'result.json')
    if not os.path.isfile(f):
        continue
    r = json.load(open(f))
    run = r['runs'][0]
    lat = run['latency']['delivery']
    sp = run.get('server_process') or {}
    dl = run['delivery']
    procs = ' '.join('%s %.1f' % (p['name'], p['cpu_seconds']) for p in sp.get('processes', []))
    notes = run.get('notes') or {}
    sent = notes.get('server_messages_in') or 0
    # Redis's cost per room message sent (the redis_* notes of a --nodes run)
    redis = '-'
    if sent and 'redis_commands' in notes:
        redis = '%.1f cmds, %d B in, %d B out, %.2f SPUBLISH' % (
            notes['redis_commands'] / sent, notes['redis_bytes_in'] / sent,
            notes['redis_bytes_out'] / sent, notes['redis_spublish'] / sent)
    rows.append((os.path.basename(d), r['verdict']['pass'], dl['delivered'], dl['lost'], dl['duplicated'],
                 dl.get('cross_node', 0), lat['p50_ms'], lat['p99_ms'], sp.get('cpu_seconds', 0),
                 sp.get('rss_peak_bytes', 0) / 2**20, procs, redis))
print('| run | pass | delivered | lost/dup | cross-node | p50 ms | p99 ms | server CPU s | server RSS MiB | CPU by process | Redis per message sent |')
print('|---|---|---|---|---|---|---|---|---|---|---|')
for x in rows:
    print('| %s | %s | %s | %d/%d | %s | %.2f | %.2f | %.1f | %.1f | %s | %s |' % (x[0], 'PASS' if x[1] else 'FAIL', format(x[2], ','), x[3], x[4], format(x[5], ','), x[6], x[7], x[8], x[9], x[10], x[11]))
PY
