#!/usr/bin/env bash
# bench/durability.sh: what durable sends cost (issue 12). Runs W1 (and W2
# at one rate) against `imload serve` with each store: --memory, and --data
# with --durability relaxed, process and durable (the default), one after
# the other, each server a fresh process on a fresh
# data directory, and prints delivery p50/p99, send-reply p99, server CPU
# and what was lost.
#
#   bench/durability.sh [--quick] [--only W1|W2] [--stores LIST] [--w2-rate R] [--runs N] [--out DIR]
#
# W1: 5,000 clients x 1 tab, 100 rooms of 50, 0.1 msg/s per tab, 60 s after a
# 10 s ramp (--quick: 500 clients, 10 s). W2: 1,000 clients x 1 tab, 20 rooms
# of 50, --w2-rate msg/s per tab (default 8), 30 s after a 5 s ramp.
# Raw results: DIR/<workload>-<store>-<run>/ (result.json, server.log).
set -euo pipefail
cd "$(dirname "$0")/.."

QUICK=0 ONLY="W1,W2" STORES="memory,relaxed,process,durable" W2RATE=8 RUNS=1 OUT=""
while [[ $# -gt 0 ]]; do
	case $1 in
	--quick) QUICK=1 ;;
	--only) ONLY=$2; shift ;;
	--stores) STORES=$2; shift ;;
	--w2-rate) W2RATE=$2; shift ;;
	--runs) RUNS=$2; shift ;;
	--out) OUT=$2; shift ;;
	-h | --help) sed -n 2,17p "$0"; exit 0 ;;
	*) echo "unknown option $1" >&2; exit 2 ;;
	esac
	shift
done
OUT=${OUT:-bench/results/durability-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"
BIN=$OUT/imload
go build -o "$BIN" ./cmd/imload
ulimit -n "$(ulimit -Hn)" || true

# cpu_ticks PID: user+system ticks of the process.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

run_one() { # workload store run
	local w=$1 store=$2 n=$3 dir="$OUT/$1-$2-$3" args
	mkdir -p "$dir"
	case $store in
	memory) args=(--memory) ;;
	relaxed) args=(--data "$dir/data" --durability relaxed) ;;
	process) args=(--data "$dir/data" --durability process) ;;
	durable) args=(--data "$dir/data" --durability durable) ;;
	esac
	"$BIN" serve --addr 127.0.0.1:0 --log-level warn "${args[@]}" >"$dir/server.stdout" 2>"$dir/server.log" &
	local pid=$! line="" i
	for ((i = 0; i < 300; i++)); do
		line=$(head -n1 "$dir/server.stdout" 2>/dev/null || true)
		[[ -n $line ]] && break
		sleep 0.1
	done
	local hp=${line#listening on http://}
	local t0
	t0=$(cpu_ticks "$pid")
	local load=(--target "ws://$hp/ws" --tabs 1 --mode shared --history 0 --seed 1 --out "$dir" --max-p99 10s)
	if [[ $w == W1 ]]; then
		if ((QUICK)); then load+=(--clients 500 --rooms 10 --rate 0.1 --duration 10s --ramp 2s)
		else load+=(--clients 5000 --rooms 100 --rate 0.1 --duration 60s --ramp 10s); fi
	else
		if ((QUICK)); then load+=(--clients 200 --rooms 4 --rate "$W2RATE" --duration 10s --ramp 2s)
		else load+=(--clients 1000 --rooms 20 --rate "$W2RATE" --duration 30s --ramp 5s); fi
	fi
	"$BIN" run "${load[@]}" >"$dir/run.stdout" 2>&1 || true
	local t1
	t1=$(cpu_ticks "$pid")
	kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
	local hz
	hz=$(getconf CLK_TCK)
	jq -r --arg w "$w" --arg s "$store" --arg n "$n" --arg cpu "$(awk -v a="$t0" -v b="$t1" -v h="$hz" 'BEGIN{printf "%.1f", (b-a)/h}')" '.runs[0] |
		"| \($w) | \($s) | \($n) | \(.latency.delivery.p50_ms) / \(.latency.delivery.p99_ms) ms | \(.latency.reply.p99_ms) ms | \($cpu) s | \(.delivery.delivered)/\(.delivery.expected) | \(.delivery.lost) / \(.delivery.duplicated) / \(.delivery.mismatched) |"' "$dir/result.json"
}

echo "| workload | store | run | delivery p50 / p99 | reply p99 | server CPU | delivered | lost / dup / mismatched |"
echo "|---|---|---|---|---|---|---|---|"
for w in ${ONLY//,/ }; do
	for ((r = 1; r <= RUNS; r++)); do
		for store in ${STORES//,/ }; do
			run_one "$w" "$store" "$r"
		done
	done
done | tee "$OUT/table.md"
