#!/usr/bin/env bash
# bench/compare.sh: imload against a plain socket.io 4.8 chat server (issue 6)
# and against Centrifugo 6.9.1.
#
# Runs each workload against `imload serve`, bench/server.js and Centrifugo
# (bench/centrifugo.json; built once into bench/.cache/bin by
# bench/build-centrifugo.sh), one after the other, with the same seed, each
# server a fresh process per run, and prints one table per workload. The script samples the server process
# itself (/proc/PID/stat, status, io) so both servers are measured the same
# way; the load generator's own CPU and RSS come from its result.json; the
# CPU other processes used meanwhile comes from /proc/stat (the machine is
# shared: the script waits for a quiet machine and reruns a disturbed run).
#
#   bench/compare.sh [--quick] [--only W1|W2|W3[,...]] [--seed N] [--rev REV] [--out DIR]
#   bench/compare.sh --help
#
# Raw results: bench/results/<timestamp>/ (gitignored): one folder per run with
# the load generator's result.json and logs, the server's logs, proc.txt (one
# line per second: server CPU/RSS, generator CPU/RSS, machine CPU),
# measure.json (what this script measured), row.json; runs.jsonl (one row per
# run) and tables.md (the tables printed at the end) at the top. Figures and
# how to read them: docs/benchmarks.md, "Comparison with socket.io" and
# "Comparison with Centrifugo".
set -euo pipefail

usage() {
	cat <<'EOF'
usage: bench/compare.sh [options]

  --quick          short runs with fewer clients (a smoke run of a few minutes)
  --only LIST      run only these workloads: W1, W2, W3 (comma separated)
  --seed N         load generator seed, the same for every run (default 42)
  --rev REV        build imload from this git revision (git archive) instead of
                   the working tree
  --out DIR        results directory (default bench/results/<timestamp>)
  --rates LIST     W2's rates per tab (comma separated), instead of the default
  --quiet-timeout S  before each run, wait at most S seconds (default 900) for
                   a quiet machine (under 10% of its CPU busy over 5 s; 0: don't)
  --retries N      run again (N times at most, default 1) a run during which
                   other processes used over 5% of the machine's CPU
  --tables DIR     only print the tables of an earlier run's results directory
  --no-socketio    no socket.io runs (also automatic when `imload run` has no
                   --protocol flag)
  --no-centrifugo  no Centrifugo runs (also automatic when `imload run` does
                   not speak --protocol centrifugo)
  -h, --help       this help

Workloads (full / --quick); W1 and W2 against imload, socket.io and Centrifugo
(those two per-tab: one socket per tab), W3 against imload only:
  W1  5,000 / 500 clients x 1 tab, rooms of 50, 0.1 msg/s per tab, 60 s / 10 s:
      delivery p50/p99, server RSS growth per connection, server CPU
  W2  1,000 / 200 clients x 1 tab, rooms of 50, rate per tab 0.5 1 2 4 8 / 1 4
      msg/s, 30 s / 10 s each: highest rate with p99 <= 100 ms and no loss
  W3  5,000 / 500 browsers x 3 tabs, 100 / 10 rooms, 0.1 msg/s per tab,
      60 s / 10 s, imload shared vs per-tab: server RSS, CPU, bytes written
EOF
}

QUICK=0
ONLY="W1,W2,W3"
SEED=42
REV=""
OUT=""
SOCKETIO=1
CENTRIFUGO=1
RATES=""
TABLES=""
QUIET_TIMEOUT=900
QUIET_BUSY=0.10
MAX_OTHER=0.05
RETRIES=1
while [[ $# -gt 0 ]]; do
	case "$1" in
	--quick) QUICK=1 ;;
	--only) ONLY=${2:?--only needs a value}; shift ;;
	--only=*) ONLY=${1#*=} ;;
	--seed) SEED=${2:?--seed needs a value}; shift ;;
	--seed=*) SEED=${1#*=} ;;
	--rev) REV=${2:?--rev needs a value}; shift ;;
	--rev=*) REV=${1#*=} ;;
	--out) OUT=${2:?--out needs a value}; shift ;;
	--out=*) OUT=${1#*=} ;;
	--no-socketio) SOCKETIO=0 ;;
	--no-centrifugo) CENTRIFUGO=0 ;;
	--tables) TABLES=${2:?--tables needs a directory}; shift ;;
	--tables=*) TABLES=${1#*=} ;;
	--quiet-timeout) QUIET_TIMEOUT=${2:?}; shift ;;
	--quiet-timeout=*) QUIET_TIMEOUT=${1#*=} ;;
	--retries) RETRIES=${2:?}; shift ;;
	--retries=*) RETRIES=${1#*=} ;;
	--rates) RATES=${2:?--rates needs a value}; shift ;;
	--rates=*) RATES=${1#*=} ;;
	-h | --help) usage; exit 0 ;;
	*) echo "compare.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
	esac
	shift
done
ONLY=${ONLY^^}
for w in ${ONLY//,/ }; do
	[[ $w == W1 || $w == W2 || $w == W3 ]] || { echo "compare.sh: unknown workload $w" >&2; exit 2; }
done
[[ $SEED =~ ^-?[0-9]+$ && $SEED != 0 ]] || { echo "compare.sh: --seed must be a non-zero integer" >&2; exit 2; }
want() { [[ ",$ONLY," == *",$1,"* ]]; }

# ---- parameters -------------------------------------------------------------

if ((QUICK)); then
	W1_CLIENTS=500 W1_ROOMS=10 W1_RATE=0.1 W1_DURATION=10s W1_RAMP=3s
	W2_CLIENTS=200 W2_ROOMS=4 W2_RATES="1 4" W2_DURATION=10s W2_RAMP=2s
	W3_CLIENTS=500 W3_ROOMS=10 W3_RATE=0.1 W3_DURATION=10s W3_RAMP=3s
else
	W1_CLIENTS=5000 W1_ROOMS=100 W1_RATE=0.1 W1_DURATION=60s W1_RAMP=10s
	W2_CLIENTS=1000 W2_ROOMS=20 W2_RATES="0.5 1 2 4 8" W2_DURATION=30s W2_RAMP=5s
	W3_CLIENTS=5000 W3_ROOMS=100 W3_RATE=0.1 W3_DURATION=60s W3_RAMP=10s
fi
if [[ -n $RATES ]]; then W2_RATES=${RATES//,/ }; fi
W2_MAX_P99_MS=100
SETTLE=2 # seconds between a server's start and the run (RSS baseline)
CLK_TCK=$(getconf CLK_TCK)

if [[ -n $OUT && $OUT != /* ]]; then OUT=$PWD/$OUT; fi
if [[ -n $TABLES && $TABLES != /* ]]; then TABLES=$PWD/$TABLES; fi
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=${OUT:-$ROOT/bench/results/$STAMP}
if [[ -z $TABLES ]]; then
	mkdir -p "$OUT"
	OUT=$(cd "$OUT" && pwd)
fi
TMP=$(mktemp -d "${TMPDIR:-/tmp}/imload-compare.XXXXXX")

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

SERVER_PID=""
SAMPLER_PID=""
GEN_PID=""
cleanup() {
	[[ $BASHPID == "$$" ]] || return 0
	if [[ -n $GEN_PID ]]; then kill -INT "$GEN_PID" 2>/dev/null || true; wait "$GEN_PID" 2>/dev/null || true; fi
	if [[ -n $SAMPLER_PID ]]; then kill "$SAMPLER_PID" 2>/dev/null || true; fi
	if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
		kill -TERM "$SERVER_PID" 2>/dev/null || true
		sleep 1
		kill -KILL "$SERVER_PID" 2>/dev/null || true
	fi
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- tables -----------------------------------------------------------------

# render_tables DIR: DIR/tables.md from DIR/runs.jsonl and DIR/meta.json.
render_tables() {
	local dir=$1
	jq -rs --slurpfile meta "$dir/meta.json" --argjson maxp99 "$W2_MAX_P99_MS" -f /dev/stdin "$dir/runs.jsonl" >"$dir/tables.md" <<'JQ'
def c3: if length <= 3 then . else (.[0:-3] | c3) + "," + .[-3:] end;
def int: if . == null then "–" else (round | tostring | c3) end;
def f(n): if . == null then "–" else (. * pow(10; n) | round / pow(10; n) | tostring) end;
def ms: if . == null then "–" elif . >= 100 then (round | tostring | c3) else f(1) end;
def mib: if . == null then "–" else (. / 1048576 | f(1)) + " MiB" end;
def kib: if . == null then "–" else (. / 1024 | f(1)) + " KiB" end;
def pass: if . == null then "–" elif . then "pass" else "**fail**" end;
def ratio(a; b): if a == null or b == null or b == 0 then "–" else (a / b | f(3)) end;
def target(a; b; t): "≤ \(t)" + (if a == null or b == null or b == 0 then "" elif a / b <= t then ": met" else ": **missed**" end);
def cell(r; k): if r == null then "–" else (r | k) end;
def errs: if (.errors // 0) == 0 then "0" else "\(.errors | int) (\(.errors_by_kind | to_entries | map(select(.key | test("^dm_(lost|duplicated)$") | not)) | map("\(.key) \(.value)") | join(", ")))" end;
def busy: if .machine_cpu_s == null then "–" else "\(.machine_cpu_s / (.wall_s * $meta[0].ncpu) * 100 | round)% of \($meta[0].ncpu) cores" end;
def dag: if .disturbed == true then " †" else "" end;
def mdrow(cells): "| " + (cells | join(" | ")) + " |";
def w1labels: ["connections at peak (generator / server)", "messages sent (room / DM)",
  "deliveries expected / delivered", "lost / duplicated / reordered (DM lost)",
  "**delivery p50 / p99**", "delivery p99.9 / max", "send → ack p99", "errors",
  "deliveries/s (delivered ÷ ramp+duration)", "**server CPU**", "server RSS before / peak",
  "**server RSS growth per connection**", "server bytes written (write syscalls, /proc io wchar)",
  "load generator CPU / peak RSS", "other processes' CPU (machine − server − generator)", "machine CPU busy during the run (all processes)", "load generator verdict"];
def w1targets: ["", "", "", "", "p99 ≤ 10 ms", "", "", "", "", "≤ 15 s", "", "≤ 4 KiB", "", "", "", "", ""];
def w1met: [null, null, null, null, (.p99 <= 10), null, null, null, null, (.server_cpu_s <= 15), null, (.rss_per_conn <= 4096), null, null, null, null, null];
def w1cells: [ (.conns_peak | int) + " / " + (.server_conns_peak | int),
  (.sent | int) + " / " + (.dms_sent | int),
  (.expected | int) + " / " + (.delivered | int),
  "\(.lost | int) / \(.duplicated | int) / \(.reordered | int) (\(.dm_lost | int))",
  "**\(.p50 | ms) / \(.p99 | ms) ms**\(dag)", "\(.p999 | ms) / \(.max | ms) ms", "\(.reply_p99 | ms) ms", errs,
  (.deliveries_per_s | int), "**\(.server_cpu_s | f(1)) s**",
  "\(.server_rss_before | mib) / \(.server_rss_peak | mib)", "**\(.rss_per_conn | kib)**",
  (.server_wchar | mib), "\(.gen_cpu_s | f(1)) s / \(.gen_rss_peak | mib)", "\(.other_cpu_s | f(1)) s", busy, (.verdict | pass) ];
def ok2: (.p99 != null and .p99 <= $maxp99 and .lost == 0 and .dm_lost == 0 and .errors == 0
  and .reconnects == 0 and .conns_peak == .clients * .tabs);

. as $rows | $meta[0] as $m |
def get(w; s): [$rows[] | select(.workload == w and .server == s)] | first;

"Machine: \($m.ncpu) vCPU \($m.cpu), \($m.mem), kernel \($m.kernel); \($m.go); node \(if $m.node == "" then "–" else $m.node end), socket.io \(if $m.socketio == "" then "–" else $m.socketio end)\(if ($m.centrifugo // "") == "" then "" else ", Centrifugo \($m.centrifugo)" end); imload built from \($m.imload); seed \($m.seed); \($m.date)\(if $m.quick then " (--quick)" else "" end)\n",

( [ $rows[] | select(.workload == "W1") ] | select(length > 0) |
  get("W1"; "imload") as $a | get("W1"; "socketio") as $b | get("W1"; "centrifugo") as $c | ($a // $b // $c) as $x |
  "### W1: \($x.clients | int) clients × 1 tab, \($x.rooms) rooms of \($x.clients / $x.rooms | round), \($x.rate) msg/s per tab, \($x.duration_s) s after a \($x.ramp_s) s ramp\n",
  (if $c == null then "| | imload | socket.io | imload target (issue 6) |", "|---|---|---|---|"
   else "| | imload | socket.io | Centrifugo | imload target (issue 6) |", "|---|---|---|---|---|" end),
  ( range(0; w1labels | length) as $i |
    mdrow([w1labels[$i], cell($a; w1cells[$i]), cell($b; w1cells[$i])] + (if $c == null then [] else [cell($c; w1cells[$i])] end) +
      [(w1targets[$i] + (if $a == null or ($a | w1met[$i]) == null then "" elif ($a | w1met[$i]) then ": met" else ": **missed**" end))]) ),
  "" ),

( [ $rows[] | select(.workload == "W2") ] | select(length > 0) | . as $w2 |
  ($w2 | map(.rate) | unique) as $rates | $w2[0] as $x |
  "### W2: \($x.clients | int) clients × 1 tab, \($x.rooms) rooms of \($x.clients / $x.rooms | round), \($x.duration_s) s after a \($x.ramp_s) s ramp per rate\n",
  "ok = delivery p99 ≤ \($maxp99) ms, nothing lost, no errors, every client connected at once (no reconnects or failed dials). CPU: server / load generator / other processes (machine − both).\n",
  ([$w2[] | select(.server == "centrifugo")] | length > 0) as $hasc |
  "| rate per tab | deliveries/s offered | imload p50 / p99 | lost | errors, reconnects | delivered/s | CPU s | ok | socket.io p50 / p99 | lost | errors, reconnects | delivered/s | CPU s | ok |"
    + (if $hasc then " Centrifugo p50 / p99 | lost | errors, reconnects | delivered/s | CPU s | ok |" else "" end),
  "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|" + (if $hasc then "---|---|---|---|---|---|" else "" end),
  ( $rates[] as $r |
    ([$w2[] | select(.rate == $r and .server == "imload")] | first) as $a |
    ([$w2[] | select(.rate == $r and .server == "socketio")] | first) as $b |
    ([$w2[] | select(.rate == $r and .server == "centrifugo")] | first) as $c |
    mdrow([ "\($r)", ($r * $x.clients * ($x.clients / $x.rooms) | int) ] +
      ( ([$a, $b] + (if $hasc then [$c] else [] end)) | map(
        if . == null then ["–", "–", "–", "–", "–", "–"]
        else [ "\(.p50 | ms) / \(.p99 | ms) ms\(dag)", "\(.lost + .dm_lost | int)", "\(errs), \(.reconnects | int)",
               (.deliveries_per_s | int),
               "\(.server_cpu_s | f(1)) / \(.gen_cpu_s | f(1)) / \(.other_cpu_s | f(1))",
               (if ok2 then "yes" else "**no**" end) ]
        end) | add ) ) ),
  "",
  ( ["imload", "socketio", "centrifugo"][] as $s |
    [$w2[] | select(.server == $s)] | select(length > 0) |
    ([.[] | select(ok2) | .rate] | max) as $best |
    ([.[] | select(ok2 | not) | .rate] | min) as $firstfail |
    "Highest rate with p99 ≤ \($maxp99) ms and no loss, \({"imload": "imload", "socketio": "socket.io", "centrifugo": "Centrifugo"}[$s]): **\(if $best == null then "none of the rates" else "\($best) msg/s per tab" end)**\(if $best != null and $firstfail != null and $firstfail < $best then " (but \($firstfail) msg/s failed)" else "" end)." ),
  "" ),

( [ $rows[] | select(.workload == "W3") ] | select(length > 0) |
  ([.[] | select(.mode == "shared")] | first) as $a |
  ([.[] | select(.mode == "per-tab")] | first) as $b | ($a // $b) as $x |
  "### W3 (imload only): \($x.clients | int) browsers × 3 tabs, \($x.rooms) rooms, \($x.rate) msg/s per tab, \($x.duration_s) s after a \($x.ramp_s) s ramp\n",
  "| | shared | per-tab | shared ÷ per-tab | target (issue 6) |", "|---|---|---|---|---|",
  mdrow(["connections / sessions at peak", cell($a; "\(.conns_peak | int) / \(.sessions_peak | int)"), cell($b; "\(.conns_peak | int) / \(.sessions_peak | int)"), "", ""]),
  mdrow(["deliveries expected / delivered", cell($a; "\(.expected | int) / \(.delivered | int)"), cell($b; "\(.expected | int) / \(.delivered | int)"), "", ""]),
  mdrow(["lost / duplicated / reordered (DM lost)", cell($a; "\(.lost | int) / \(.duplicated | int) / \(.reordered | int) (\(.dm_lost | int))"), cell($b; "\(.lost | int) / \(.duplicated | int) / \(.reordered | int) (\(.dm_lost | int))"), "", ""]),
  mdrow(["delivery p50 / p99", cell($a; "\(.p50 | ms) / \(.p99 | ms) ms\(dag)"), cell($b; "\(.p50 | ms) / \(.p99 | ms) ms\(dag)"), "", ""]),
  mdrow(["errors", cell($a; errs), cell($b; errs), "", ""]),
  mdrow(["**server RSS growth** (peak − before)", cell($a; .server_rss_peak - .server_rss_before | mib), cell($b; .server_rss_peak - .server_rss_before | mib),
         ratio($a.server_rss_peak - $a.server_rss_before; $b.server_rss_peak - $b.server_rss_before),
         target($a.server_rss_peak - $a.server_rss_before; $b.server_rss_peak - $b.server_rss_before; 0.4)]),
  mdrow(["server peak RSS", cell($a; .server_rss_peak | mib), cell($b; .server_rss_peak | mib), ratio($a.server_rss_peak; $b.server_rss_peak), ""]),
  mdrow(["**server CPU**", cell($a; "\(.server_cpu_s | f(1)) s"), cell($b; "\(.server_cpu_s | f(1)) s"), ratio($a.server_cpu_s; $b.server_cpu_s), target($a.server_cpu_s; $b.server_cpu_s; 0.5)]),
  mdrow(["**server bytes written** (WebSocket payload, /stats bytes_out)", cell($a; .server_bytes_out | mib), cell($b; .server_bytes_out | mib), ratio($a.server_bytes_out; $b.server_bytes_out), target($a.server_bytes_out; $b.server_bytes_out; 0.4)]),
  mdrow(["server CPU per million deliveries", cell($a; .server_cpu_s / .delivered * 1e6 | f(2)), cell($b; .server_cpu_s / .delivered * 1e6 | f(2)),
         ratio($a.server_cpu_s / $a.delivered; $b.server_cpu_s / $b.delivered), ""]),
  mdrow(["server bytes written per delivery (bytes_out ÷ delivered)", cell($a; .server_bytes_out / .delivered | f(1)), cell($b; .server_bytes_out / .delivered | f(1)),
         ratio($a.server_bytes_out / $a.delivered; $b.server_bytes_out / $b.delivered), ""]),
  mdrow(["machine CPU busy during the run (all processes)", cell($a; busy), cell($b; busy), "", ""]),
  mdrow(["server bytes written (write syscalls, wchar)", cell($a; .server_wchar | mib), cell($b; .server_wchar | mib), ratio($a.server_wchar; $b.server_wchar), ""]),
  mdrow(["WebSocket messages received by the generator", cell($a; .gen_ws_in | int), cell($b; .gen_ws_in | int), ratio($a.gen_ws_in; $b.gen_ws_in), ""]),
  mdrow(["load generator CPU / peak RSS", cell($a; "\(.gen_cpu_s | f(1)) s / \(.gen_rss_peak | mib)"), cell($b; "\(.gen_cpu_s | f(1)) s / \(.gen_rss_peak | mib)"), ratio($a.gen_cpu_s; $b.gen_cpu_s), ""]),
  mdrow(["other processes' CPU (machine − server − generator)", cell($a; "\(.other_cpu_s | f(1)) s"), cell($b; "\(.other_cpu_s | f(1)) s"), "", ""]),
  mdrow(["load generator verdict", cell($a; .verdict | pass), cell($b; .verdict | pass), "", ""]),
  "" ),

( [ $rows[] | select(.disturbed == true) ] | select(length > 0) |
  "† Disturbed: other processes used more than 5% of the machine's CPU during this run, also on its last attempt (\(map(.name) | join(", "))).\n" )
JQ
}

if [[ -n $TABLES ]]; then
	render_tables "$TABLES"
	cat "$TABLES/tables.md"
	exit 0
fi

# ---- tools ------------------------------------------------------------------

command -v go >/dev/null || die "go is not installed"
command -v curl >/dev/null || die "curl is not installed"
if ! command -v jq >/dev/null; then
	log "jq missing: installing it with apt-get"
	if [[ $(id -u) == 0 ]]; then
		apt-get install -y jq >/dev/null || { apt-get update >/dev/null && apt-get install -y jq >/dev/null; }
	else
		sudo apt-get install -y jq >/dev/null
	fi
	command -v jq >/dev/null || die "could not install jq"
fi

# Both the servers and the load generator open thousands of sockets.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n)
need=$((W3_CLIENTS * 3 + 1000))
((NOFILE >= need)) || log "warning: open-files limit $NOFILE < $need: the per-tab runs may fail (raise the hard limit)"

# ---- build ------------------------------------------------------------------

BIN=$TMP/imload
DIRTY=$(git status --porcelain --untracked-files=no -- . ':!bench' ':!docs' 2>/dev/null || true)
if [[ -n $REV ]]; then
	REV_ID=$(git rev-parse --verify "$REV^{commit}") || die "unknown revision $REV"
	log "building imload from $REV_ID (git archive)"
	mkdir -p "$TMP/src"
	git archive "$REV_ID" | tar -x -C "$TMP/src"
	(cd "$TMP/src" && go build -o "$BIN" ./cmd/imload)
	IMLOAD_SRC="$REV_ID"
else
	REV_ID=$(git rev-parse HEAD 2>/dev/null || echo unknown)
	log "building imload from the working tree (HEAD $REV_ID)"
	if [[ -n $DIRTY ]]; then
		log "warning: the working tree has uncommitted changes outside bench/ and docs/ (measured as they are; --rev HEAD builds the commit):"
		printf '%s\n' "$DIRTY" | sed 's/^/    /' >&2
	fi
	go build -o "$BIN" ./cmd/imload
	IMLOAD_SRC="working tree at $REV_ID${DIRTY:+ (uncommitted changes)}"
fi

HELP=$("$BIN" run --help 2>&1)
if ((SOCKETIO)) && ! grep -q -- '--protocol' <<<"$HELP"; then
	log "warning: this imload run has no --protocol flag yet: running the imload half only"
	SOCKETIO=0
fi
if ((CENTRIFUGO)) && ! grep -q -- 'centrifugo' <<<"$HELP"; then
	log "warning: this imload run does not speak --protocol centrifugo: no Centrifugo runs"
	CENTRIFUGO=0
fi
if ((CENTRIFUGO)); then
	CF_BIN=$("$ROOT/bench/build-centrifugo.sh") || die "could not build Centrifugo (bench/build-centrifugo.sh; --no-centrifugo to skip it)"
	CF_VERSION=$("$CF_BIN" version | awk '{print $2}')
else
	CF_BIN="" CF_VERSION=""
fi
if ((SOCKETIO)); then
	command -v node >/dev/null || die "node is not installed (needed for the socket.io server)"
	command -v npm >/dev/null || die "npm is not installed"
	if [[ ! -d $ROOT/bench/node_modules/socket.io ]]; then
		log "installing the socket.io server's dependencies (npm ci in bench/)"
		(cd "$ROOT/bench" && npm ci --no-audit --no-fund >&2)
	fi
	SIO_VERSION=$(node -p 'require("./bench/node_modules/socket.io/package.json").version')
	NODE_VERSION=$(node --version)
else
	SIO_VERSION="" NODE_VERSION=""
fi

jq -n \
	--arg date "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
	--arg host "$(hostname)" \
	--arg cpu "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')" \
	--arg ncpu "$(nproc)" \
	--arg mem "$(awk '/^MemTotal:/{printf "%.1f GiB", $2/1048576}' /proc/meminfo)" \
	--arg kernel "$(uname -r)" \
	--arg go "$(go env GOVERSION)" \
	--arg node "$NODE_VERSION" \
	--arg sio "$SIO_VERSION" \
	--arg cf "$CF_VERSION" \
	--arg imload "$IMLOAD_SRC" \
	--arg dirty "$DIRTY" \
	--arg cmd "bench/compare.sh $*" \
	--argjson quick "$QUICK" \
	--argjson seed "$SEED" \
	--arg only "$ONLY" \
	--arg nofile "$NOFILE" \
	'{date: $date, host: $host, cpu: $cpu, ncpu: ($ncpu|tonumber), mem: $mem, kernel: $kernel,
	  go: $go, node: $node, socketio: $sio, centrifugo: $cf, imload: $imload, dirty: $dirty, quick: ($quick == 1),
	  seed: $seed, only: $only, nofile: $nofile}' >"$OUT/meta.json"

# ---- server process ---------------------------------------------------------

# read_proc PID: "cpu_ticks rss_kib hwm_kib wchar_bytes"
read_proc() {
	local pid=$1 stat rest rss hwm wchar
	local -a f
	stat=$(<"/proc/$pid/stat")
	rest=${stat##*) }
	read -r -a f <<<"$rest"
	# f[0] is field 3 (state); utime is field 14, stime field 15.
	rss=$(awk '/^VmRSS:/{print $2}' "/proc/$pid/status")
	hwm=$(awk '/^VmHWM:/{print $2}' "/proc/$pid/status")
	wchar=$(awk '/^wchar:/{print $2}' "/proc/$pid/io" 2>/dev/null || echo 0)
	echo "$((f[11] + f[12])) ${rss:-0} ${hwm:-0} ${wchar:-0}"
}

# free_port: a loopback TCP port nothing listens on (Centrifugo cannot
# listen on port 0 and say which port it got).
free_port() {
	local p i
	for ((i = 0; i < 100; i++)); do
		p=$((20000 + RANDOM % 30000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return 0
		fi
	done
	return 1
}

# start_centrifugo DIR: Centrifugo with bench/centrifugo.json on a free
# loopback port, ready when /health answers (sets what start_server sets).
start_centrifugo() {
	local dir=$1 port attempt i
	for ((attempt = 0; attempt < 3; attempt++)); do
		port=$(free_port) || die "no free loopback port for Centrifugo"
		"$CF_BIN" -c "$ROOT/bench/centrifugo.json" --http_server.address 127.0.0.1 --http_server.port "$port" \
			--health.enabled >"$dir/server.stdout" 2>"$dir/server.log" &
		SERVER_PID=$!
		for ((i = 0; i < 300; i++)); do
			if curl -fsS --max-time 1 "http://127.0.0.1:$port/health" >/dev/null 2>&1; then
				SERVER_HTTP="http://127.0.0.1:$port"
				SERVER_WS="ws://127.0.0.1:$port/connection/websocket"
				return 0
			fi
			kill -0 "$SERVER_PID" 2>/dev/null || break
			sleep 0.1
		done
		log "Centrifugo did not start on port $port (see $dir/server.stdout): trying another port"
		stop_server
	done
	die "Centrifugo did not start (see $dir/server.stdout)"
}

# start_server KIND DIR: sets SERVER_PID, SERVER_HTTP, SERVER_WS.
start_server() {
	local kind=$1 dir=$2 line="" i
	case $kind in
	imload) "$BIN" serve --memory --addr 127.0.0.1:0 --log-level warn >"$dir/server.stdout" 2>"$dir/server.log" & ;;
	socketio) node "$ROOT/bench/server.js" --port 0 >"$dir/server.stdout" 2>"$dir/server.log" & ;;
	centrifugo) start_centrifugo "$dir"; return 0 ;;
	*) die "unknown server $kind" ;;
	esac
	SERVER_PID=$!
	for ((i = 0; i < 300; i++)); do
		if [[ -s $dir/server.stdout && $(wc -l <"$dir/server.stdout") -ge 1 ]]; then
			line=$(head -n1 "$dir/server.stdout")
			break
		fi
		kill -0 "$SERVER_PID" 2>/dev/null || die "$kind server exited at start (see $dir/server.log)"
		sleep 0.1
	done
	[[ $line == "listening on http://"* ]] || die "$kind server: unexpected first line '$line'"
	local hp=${line#listening on http://}
	SERVER_HTTP="http://$hp"
	case $kind in
	imload) SERVER_WS="ws://$hp/ws" ;;
	socketio) SERVER_WS="ws://$hp/socket.io/?EIO=4&transport=websocket" ;;
	esac
}

stop_server() {
	local i
	kill -TERM "$SERVER_PID" 2>/dev/null || true
	for ((i = 0; i < 200; i++)); do
		kill -0 "$SERVER_PID" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$SERVER_PID" 2>/dev/null || true
	wait "$SERVER_PID" 2>/dev/null || true
	SERVER_PID=""
}

# read_machine: "busy_ticks steal_ticks" of the whole machine (/proc/stat):
# busy = user + nice + system + irq + softirq + steal.
read_machine() {
	local cpu user nice system idle iowait irq softirq steal rest
	read -r cpu user nice system idle iowait irq softirq steal rest </proc/stat
	echo "$((user + nice + system + irq + softirq + steal)) $steal $((user + nice + system + idle + iowait + irq + softirq + steal))"
}

# wait_quiet: wait (at most QUIET_TIMEOUT seconds) until the machine is
# quiet: less than QUIET_BUSY of its CPU busy over 5 s. Other test suites on a
# shared 2-core machine distort every figure. Sets QUIET_WAITED.
wait_quiet() {
	local start=$SECONDS m0 m1 busy
	QUIET_WAITED=0
	((QUIET_TIMEOUT > 0)) || return 0
	while :; do
		m0=($(read_machine))
		sleep 5
		m1=($(read_machine))
		busy=$(awk -v b="$((m1[0] - m0[0]))" -v t="$((m1[2] - m0[2]))" 'BEGIN{printf "%.3f", (t > 0 ? b / t : 0)}')
		if awk -v b="$busy" -v q="$QUIET_BUSY" 'BEGIN{exit !(b < q)}'; then break; fi
		if ((SECONDS - start >= QUIET_TIMEOUT)); then
			log "warning: the machine is still busy ($busy of its CPU) after ${QUIET_TIMEOUT}s: running anyway"
			break
		fi
		if (((SECONDS - start) % 60 < 5)); then log "waiting for a quiet machine ($busy of its CPU busy: other jobs?)"; fi
	done
	QUIET_WAITED=$((SECONDS - start))
}

# start_sampler SERVER_PID GEN_PID FILE: one line per second, to see where the
# CPU went when a second's latency jumps (other processes on the machine?).
start_sampler() {
	local spid=$1 gpid=$2 file=$3
	(
		echo "unix_time server_cpu_ticks server_rss_kib server_hwm_kib server_wchar gen_cpu_ticks gen_rss_kib machine_busy_ticks machine_steal_ticks"
		while kill -0 "$spid" 2>/dev/null; do
			s=$(read_proc "$spid" 2>/dev/null) || break
			g=$(read_proc "$gpid" 2>/dev/null) || g="- - - -"
			read -r gc gr _ _ <<<"$g"
			echo "$(date +%s.%N) $s $gc $gr $(read_machine)"
			sleep 1
		done
	) >"$file" &
	SAMPLER_PID=$!
}

stop_sampler() {
	if [[ -n $SAMPLER_PID ]]; then
		kill "$SAMPLER_PID" 2>/dev/null || true
		wait "$SAMPLER_PID" 2>/dev/null || true
		SAMPLER_PID=""
	fi
}

secs() { # Go-style duration (10s, 1m, 500ms) -> seconds
	case $1 in
	*ms) awk -v v="${1%ms}" 'BEGIN{print v/1000}' ;;
	*s) echo "${1%s}" ;;
	*m) awk -v v="${1%m}" 'BEGIN{print v*60}' ;;
	*) echo "$1" ;;
	esac
}

# run_one WORKLOAD SERVER MODE CLIENTS TABS ROOMS RATE DURATION RAMP NAME
# Runs one load against a fresh server and appends a row to runs.jsonl.
run_one() {
	local wl=$1 kind=$2 mode=$3 clients=$4 tabs=$5 rooms=$6 rate=$7 dur=$8 ramp=$9 name=${10}
	local dir=$OUT/$name rc=0 before after t0 t1 load mb ma
	mkdir -p "$dir"
	log "$name: $kind, $clients clients x $tabs tabs, $rooms rooms, $rate msg/s per tab, $dur after a $ramp ramp, mode $mode"
	wait_quiet
	start_server "$kind" "$dir"
	sleep "$SETTLE"
	curl -fsS --max-time 5 "$SERVER_HTTP/stats" >"$dir/stats-before.json" 2>/dev/null || echo '{}' >"$dir/stats-before.json"
	load=$(cut -d' ' -f1-3 /proc/loadavg)
	before=$(read_proc "$SERVER_PID")
	local -a args=(run --target "$SERVER_WS" --clients "$clients" --tabs "$tabs" --rooms "$rooms"
		--rate "$rate" --duration "$dur" --ramp "$ramp" --seed "$SEED" --mode "$mode"
		--history 0 --out "$dir/run" --no-progress)
	if [[ $kind != imload ]]; then args+=(--protocol "$kind"); fi
	printf '%q ' imload "${args[@]}" >"$dir/command.txt"
	echo >>"$dir/command.txt"
	t0=$(date +%s.%N)
	mb=$(read_machine)
	"$BIN" "${args[@]}" >"$dir/gen.stdout" 2>"$dir/gen.stderr" &
	GEN_PID=$!
	start_sampler "$SERVER_PID" "$GEN_PID" "$dir/proc.txt"
	wait "$GEN_PID" || rc=$?
	GEN_PID=""
	ma=$(read_machine)
	t1=$(date +%s.%N)
	after=$(read_proc "$SERVER_PID" 2>/dev/null || echo "0 0 0 0")
	curl -fsS --max-time 5 "$SERVER_HTTP/stats" >"$dir/stats-after.json" 2>/dev/null || echo '{}' >"$dir/stats-after.json"
	stop_sampler
	stop_server
	local -a b=($before) a=($after) m0=($mb) m1=($ma)
	jq -n --arg workload "$wl" --arg server "$kind" --arg mode "$mode" --arg name "$name" \
		--argjson clients "$clients" --argjson tabs "$tabs" --argjson rooms "$rooms" --argjson rate "$rate" \
		--argjson duration_s "$(secs "$dur")" --argjson ramp_s "$(secs "$ramp")" \
		--argjson rc "$rc" --arg loadavg "$load" --argjson quiet_wait_s "$QUIET_WAITED" --argjson wall_s "$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}')" \
		--argjson cpu_ticks "$((a[0] - b[0]))" --argjson clk "$CLK_TCK" \
		--argjson rss_before_kib "${b[1]}" --argjson rss_after_kib "${a[1]}" --argjson hwm_kib "${a[2]}" \
		--argjson wchar "$((a[3] - b[3]))" \
		--argjson machine_ticks "$((m1[0] - m0[0]))" --argjson steal_ticks "$((m1[1] - m0[1]))" \
		--slurpfile sb "$dir/stats-before.json" --slurpfile sa "$dir/stats-after.json" \
		'{workload: $workload, server: $server, mode: $mode, name: $name, clients: $clients, tabs: $tabs,
		  rooms: $rooms, rate: $rate, duration_s: $duration_s, ramp_s: $ramp_s, gen_exit: $rc,
		  loadavg_before: $loadavg, quiet_wait_s: $quiet_wait_s, wall_s: $wall_s,
		  server_cpu_s: ($cpu_ticks / $clk), server_rss_before: ($rss_before_kib * 1024),
		  server_rss_after: ($rss_after_kib * 1024), server_rss_peak: ($hwm_kib * 1024),
		  server_wchar: $wchar,
		  machine_cpu_s: ($machine_ticks / $clk), machine_steal_s: ($steal_ticks / $clk),
		  server_bytes_out: (if ($sa[0].bytes_out != null and $sb[0].bytes_out != null)
		                     then $sa[0].bytes_out - $sb[0].bytes_out else null end)}' >"$dir/measure.json"
	if [[ -s $dir/run/result.json ]]; then
		jq -c --slurpfile m "$dir/measure.json" '
		  .runs[0] as $r | $m[0] + {
		    verdict: $r.verdict.pass, reason: $r.verdict.reason,
		    conns_peak: $r.physical_connections_peak, sessions_peak: $r.sessions_peak,
		    server_conns_peak: ($r.server_stats_peak.physical_connections // null),
		    sent: $r.counters.messages_sent, dms_sent: $r.counters.dms_sent,
		    expected: $r.delivery.expected, delivered: $r.delivery.delivered, lost: $r.delivery.lost,
		    duplicated: $r.delivery.duplicated, reordered: $r.delivery.reordered,
		    dm_lost: ($r.counters.errors.dm_lost // 0),
		    errors: ([$r.counters.errors // {} | to_entries[] | select(.key | test("^dm_(lost|duplicated)$") | not) | .value] | add // 0),
		    errors_by_kind: ($r.counters.errors // {}),
		    reconnects: ([$r.counters.reconnects // {} | .[]] | add // 0),
		    p50: $r.latency.delivery.p50_ms, p99: $r.latency.delivery.p99_ms,
		    p999: $r.latency.delivery.p999_ms, max: $r.latency.delivery.max_ms,
		    reply_p99: ($r.latency.reply.p99_ms // null),
		    gen_cpu_s: ($r.load_process.cpu_seconds // null), gen_rss_peak: ($r.load_process.rss_peak_bytes // null),
		    gen_bytes_in: $r.counters.bytes_in, gen_ws_in: ($r.counters.ws_messages_in // null),
		    server_messages_out: ($r.notes.server_messages_out // null),
		    deliveries_by_push: ($r.notes.deliveries_by_push // null)
		  } | . + {
		    rss_per_conn: (if .conns_peak > 0 then (.server_rss_peak - .server_rss_before) / .conns_peak else null end),
		    deliveries_per_s: (.delivered / (.duration_s + .ramp_s)),
		    other_cpu_s: (if .gen_cpu_s != null then ([.machine_cpu_s - .server_cpu_s - .gen_cpu_s, 0] | max) else null end)
		  }' "$dir/run/result.json" >"$dir/row.json"
	else
		log "$name: no result.json (load generator exit $rc; see $dir/gen.stderr)"
		jq -c '. + {verdict: false, reason: "no result.json"}' "$dir/measure.json" >"$dir/row.json"
	fi
	log "$name: $(tail -n1 "$dir/gen.stdout" 2>/dev/null || true)"
	sleep "$SETTLE"
}

# measure ARGS of run_one: runs it; a run during which other processes used
# more than MAX_OTHER of the machine's CPU is marked disturbed and run again
# (RETRIES times at most; earlier attempts stay in NAME.attemptN).
measure() {
	local name=${10} dir=$OUT/${10} attempt=1 disturbed
	while :; do
		run_one "$@"
		disturbed=$(jq --argjson n "$(nproc)" --argjson f "$MAX_OTHER" \
			'(.other_cpu_s // 0) > $f * $n * .wall_s' "$dir/row.json")
		if [[ $disturbed != true ]] || ((attempt > RETRIES)); then break; fi
		log "$name: other processes used $(jq -r '.other_cpu_s' "$dir/row.json") s of CPU during the run: disturbed, running it again"
		rm -rf "$dir.attempt$attempt"
		mv "$dir" "$dir.attempt$attempt"
		attempt=$((attempt + 1))
	done
	jq -c --argjson attempt "$attempt" --argjson d "$disturbed" '. + {attempt: $attempt, disturbed: $d}' "$dir/row.json" >>"$OUT/runs.jsonl"
}

SERVERS=(imload)
if ((SOCKETIO)); then SERVERS+=(socketio); fi
if ((CENTRIFUGO)); then SERVERS+=(centrifugo); fi
: >"$OUT/runs.jsonl"

# ---- workloads --------------------------------------------------------------

if want W1; then
	for s in "${SERVERS[@]}"; do
		mode=shared
		[[ $s != imload ]] && mode=per-tab
		measure W1 "$s" "$mode" "$W1_CLIENTS" 1 "$W1_ROOMS" "$W1_RATE" "$W1_DURATION" "$W1_RAMP" "W1-$s"
	done
fi
if want W2; then
	for r in $W2_RATES; do
		for s in "${SERVERS[@]}"; do
			mode=shared
			[[ $s != imload ]] && mode=per-tab
			measure W2 "$s" "$mode" "$W2_CLIENTS" 1 "$W2_ROOMS" "$r" "$W2_DURATION" "$W2_RAMP" "W2-r$r-$s"
		done
	done
fi
if want W3; then
	for mode in shared per-tab; do
		measure W3 imload "$mode" "$W3_CLIENTS" 3 "$W3_ROOMS" "$W3_RATE" "$W3_DURATION" "$W3_RAMP" "W3-$mode"
	done
fi

# ---- tables -----------------------------------------------------------------

render_tables "$OUT"
echo
cat "$OUT/tables.md"
log "raw results in $OUT"
