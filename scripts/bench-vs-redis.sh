#!/usr/bin/env bash
# Fulcrum side by side with redis-server on this machine, same client, same
# run:
#
#   (a) redis-server --appendonly no --save ''          vs fulcrum --fsync never
#   (b) redis-server --appendonly yes --appendfsync always --save ''
#                                                        vs fulcrum --fsync always
#
# each measured with `redis-benchmark -c 50 -n 200000 -t set,get -q`, then
# again with `-P 16` (also recording the server's CPU time per request
# and, for Fulcrum, requests per fsync); then `fulcrum bench` (10 s, 50 clients, 50/50 and
# 95/5 reads) against both servers of (b). The two servers of a pair run
# side by side, each on its own loopback port and temporary data directory,
# and are measured in turn, run after run (so a drift of the machine, e.g.
# a disk whose flushes slow down for a while, hits both alike); all are
# stopped on exit. Prints a markdown report, or writes it to the file
# given as $1.
#
# Usage: scripts/bench-vs-redis.sh [report.md]
#
# Environment (all optional):
#   RUNS=3          repeat each redis-benchmark measurement, report the median
#   REQUESTS=200000 redis-benchmark -n
#   CLIENTS=50      redis-benchmark -c and fulcrum bench --clients
#   BENCH_DURATION=10s  fulcrum bench --duration
#   BASE_PORT=16379 first loopback port used (up to BASE_PORT+12)
#   BENCH_DIR=...   parent of the temporary data directories (default
#                   $TMPDIR or /tmp; must be a real disk for fsync to mean
#                   anything, not tmpfs)
#   CARGO_TARGET_DIR  where the release build goes (default ./target)
#   FULCRUM_THREADS=0  fulcrum server --threads: worker threads (0, the
#                   server's default: one per CPU core but one; 1 is redis-server's
#                   one event-loop thread)
#   FULCRUM_REV     how to name the measured Fulcrum in the report (default:
#                   git commit, marked if the working tree has changes)
#
# Needs root (or the tools already installed) to apt-get install
# redis-server, redis-tools and jq when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

OUT=${1:-}
RUNS=${RUNS:-1}
REQUESTS=${REQUESTS:-200000}
CLIENTS=${CLIENTS:-50}
BENCH_DURATION=${BENCH_DURATION:-10s}
BASE_PORT=${BASE_PORT:-16379}
FULCRUM_THREADS=${FULCRUM_THREADS:-0}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
FULCRUM=$TARGET_DIR/release/fulcrum

log() { printf '[bench-vs-redis] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ---------------------------------------------------------------- tools --
if ! command -v redis-server >/dev/null || ! command -v redis-benchmark >/dev/null ||
    ! command -v redis-cli >/dev/null || ! command -v jq >/dev/null; then
    log "installing redis-server, redis-tools and jq"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update >&2
    apt-get install -y redis-server redis-tools jq >&2
fi
# The Debian package may have started a system redis-server (port 6379);
# ours use their own ports, so it only costs CPU. Say so if it is running.
if pgrep -x redis-server >/dev/null; then
    log "note: a redis-server is already running on this machine (pids $(pgrep -x redis-server | tr '\n' ' '))"
fi

log "building fulcrum (release)"
cargo build --release --locked -p fulcrum >&2
[ -x "$FULCRUM" ] || die "no binary at $FULCRUM (CARGO_TARGET_DIR?)"

# --------------------------------------------------------------- servers --
WORK=$(mktemp -d "${BENCH_DIR:-${TMPDIR:-/tmp}}/bench-vs-redis.XXXXXX")
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# wait_ready PORT PID: PING until PONG (15 s), or fail if the server died.
wait_ready() {
    local port=$1 pid=$2 i
    for i in $(seq 150); do
        kill -0 "$pid" 2>/dev/null || return 1
        [ "$(redis-cli -p "$port" PING 2>/dev/null)" = PONG ] && return 0
        sleep 0.1
    done
    return 1
}

# start_redis NAME PORT ARGS...: sets SERVER_PID.
start_redis() {
    local name=$1 port=$2
    shift 2
    port_free "$port" || die "port $port is in use"
    mkdir -p "$WORK/$name"
    redis-server --port "$port" --bind 127.0.0.1 --dir "$WORK/$name" \
        --daemonize no --logfile "$WORK/$name.log" "$@" &
    SERVER_PID=$!
    PIDS+=("$SERVER_PID")
    wait_ready "$port" "$SERVER_PID" || die "$name did not start; see its log:
$(tail -20 "$WORK/$name.log" 2>/dev/null)"
}

# start_fulcrum NAME PORT FSYNC: RESP on PORT, HTTP PORT+1, peers PORT+2.
start_fulcrum() {
    local name=$1 port=$2 fsync=$3
    port_free "$port" || die "port $port is in use"
    "$FULCRUM" server --data-dir "$WORK/$name" --fsync "$fsync" --threads "$FULCRUM_THREADS" \
        --resp-addr "127.0.0.1:$port" --http-addr "127.0.0.1:$((port + 1))" \
        --peer-addr "127.0.0.1:$((port + 2))" >"$WORK/$name.log" 2>&1 &
    SERVER_PID=$!
    PIDS+=("$SERVER_PID")
    wait_ready "$port" "$SERVER_PID" || die "$name did not start; see its log:
$(tail -20 "$WORK/$name.log" 2>/dev/null)"
}

stop_servers() {
    local pid
    for pid in "$@"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
}

# ---------------------------------------------------------- measurement --
# Results: R[<server>|<test>|rps] and R[<server>|<test>|p50] (ms).
declare -A R

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# Server CPU time (user + system) so far, in clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
CLK_TCK=$(getconf CLK_TCK)

# Fsyncs done so far by a Fulcrum node (INFO fulcrum); empty for Redis.
fsyncs() { redis-cli -p "$1" INFO fulcrum 2>/dev/null | tr -d '\r' | sed -n 's/^fsyncs://p'; }

# Samples per SERVER|TEST|PIPELINE, space separated.
declare -A RPS P50 CPU PER_FSYNC

# measure SERVER PORT PID PIPELINE: one run of the SET test then the GET test
# (`-t set,get` as two invocations, same order and traffic, so that the
# server's CPU time can be attributed to each) against the server SERVER
# (process PID); appends ops/s, p50 (ms), server CPU µs per request and,
# for Fulcrum, requests per fsync to the samples. Parses the -q line
#   SET: 123456.78 requests per second, p50=0.199 msec
# (progress updates before it end in \r, hence the tr).
measure() {
    local server=$1 port=$2 pid=$3 pipeline=$4 out cmd line c0 c1 f0 f1 k
    for cmd in SET GET; do
        k="$server|$cmd|$pipeline"
        c0=$(cpu_ticks "$pid")
        f0=$(fsyncs "$port")
        out=$(redis-benchmark -h 127.0.0.1 -p "$port" -c "$CLIENTS" -n "$REQUESTS" \
            -t "${cmd,,}" -P "$pipeline" -q 2>"$WORK/redis-benchmark.err" | tr '\r' '\n')
        c1=$(cpu_ticks "$pid")
        f1=$(fsyncs "$port")
        line=$(grep -E "^$cmd: [0-9.]+ requests per second" <<<"$out" | tail -1) ||
            die "no $cmd result from redis-benchmark against $server:
$out
$(cat "$WORK/redis-benchmark.err")"
        RPS[$k]+="$(sed -E 's/^[A-Z]+: ([0-9.]+) requests.*/\1/' <<<"$line") "
        P50[$k]+="$(sed -nE 's/.*p50=([0-9.]+) msec.*/\1/p' <<<"$line") "
        CPU[$k]+="$(awk -v t=$((c1 - c0)) -v hz="$CLK_TCK" -v n="$REQUESTS" 'BEGIN { printf "%.2f", t / hz / n * 1e6 }') "
        if [ -n "$f0" ] && [ -n "$f1" ] && [ "$f1" -gt "$f0" ]; then
            PER_FSYNC[$k]+="$(awk -v f=$((f1 - f0)) -v n="$REQUESTS" 'BEGIN { printf "%.1f", n / f }') "
        fi
    done
    if grep -qi "config" "$WORK/redis-benchmark.err" 2>/dev/null; then
        log "  (redis-benchmark on $server: $(grep -i config "$WORK/redis-benchmark.err" | head -1))"
    fi
}

# samples_median SAMPLES: the median of space-separated numbers ("-" if none).
samples_median() { tr ' ' '\n' <<<"$1" | { grep . || true; } | median; }

# compare NAME:PORT:PID...: RUNS rounds; in each, every server in turn at
# -P 1, then every server in turn at -P 16. Medians into R[SERVER|TEST|P|rps],
# ...|p50] (ms), ...|cpu] (server CPU µs per request) and ...|fsync]
# (requests per fsync, Fulcrum only).
compare() {
    local run p spec name port pid cmd k
    for run in $(seq "$RUNS"); do
        for p in 1 16; do
            for spec in "$@"; do
                IFS=: read -r name port pid <<<"$spec"
                log "  redis-benchmark -P $p against $name (run $run/$RUNS)"
                measure "$name" "$port" "$pid" "$p"
            done
        done
    done
    for spec in "$@"; do
        IFS=: read -r name port pid <<<"$spec"
        for p in 1 16; do
            for cmd in SET GET; do
                k="$name|$cmd|$p"
                R[$k|rps]=$(samples_median "${RPS[$k]:-}")
                R[$k|p50]=$(samples_median "${P50[$k]:-}")
                R[$k|cpu]=$(samples_median "${CPU[$k]:-}")
                R[$k|fsync]=$(samples_median "${PER_FSYNC[$k]:-}")
            done
        done
    done
}

# run_fulcrum_bench SERVER PORT READ_RATIO: one JSON summary into
# $WORK/fb-SERVER-RATIO.json.
run_fulcrum_bench() {
    local server=$1 port=$2 ratio=$3
    log "  fulcrum bench --read-ratio $ratio against $server ($BENCH_DURATION)"
    "$FULCRUM" bench --addr "127.0.0.1:$port" --clients "$CLIENTS" \
        --duration "$BENCH_DURATION" --warmup 1s --read-ratio "$ratio" --seed 1 \
        --json >"$WORK/fb-$server-$ratio.json" ||
        die "fulcrum bench against $server failed"
}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
STARTED=$(date -u '+%Y-%m-%d %H:%M UTC')

REDIS_PORT=$BASE_PORT
FULCRUM_PORT=$((BASE_PORT + 10))

log "(a) no fsync"
start_redis redis-nofsync "$REDIS_PORT" --appendonly no --save ''
REDIS_PID=$SERVER_PID
start_fulcrum fulcrum-never "$FULCRUM_PORT" never
FULCRUM_PID=$SERVER_PID
compare "redis-nofsync:$REDIS_PORT:$REDIS_PID" "fulcrum-never:$FULCRUM_PORT:$FULCRUM_PID"
stop_servers "$REDIS_PID" "$FULCRUM_PID"

log "(b) fsync on every write"
start_redis redis-always "$REDIS_PORT" --appendonly yes --appendfsync always --save ''
REDIS_PID=$SERVER_PID
start_fulcrum fulcrum-always "$FULCRUM_PORT" always
FULCRUM_PID=$SERVER_PID
compare "redis-always:$REDIS_PORT:$REDIS_PID" "fulcrum-always:$FULCRUM_PORT:$FULCRUM_PID"
for ratio_arg in 0.5 0.95; do
    run_fulcrum_bench redis-always "$REDIS_PORT" "$ratio_arg"
    run_fulcrum_bench fulcrum-always "$FULCRUM_PORT" "$ratio_arg"
done
stop_servers "$REDIS_PID" "$FULCRUM_PID"

LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# --------------------------------------------------------------- report --
ratio() { awk -v f="$1" -v r="$2" 'BEGIN { if (r > 0) printf "%.2f", f / r; else print "n/a" }'; }
# meets RATIO TARGET -> "yes" / "**no**"
meets() { awk -v x="$1" -v t="$2" 'BEGIN { print (x + 0 >= t) ? "yes" : "**no**" }'; }
fmt_rps() { awk -v x="$1" 'BEGIN { printf "%.0f", x }'; }
# ms FILE JQ_PATH: a latency in µs from a fulcrum bench summary, in ms.
ms() { jq -r "$2 // \"-\"" "$1" | awk '$1 == "-" { print; next } { printf "%.3f\n", $1 / 1000 }'; }

report() {
    local redis_version fulcrum_commit
    redis_version=$(redis-server --version | sed -nE 's/.*v=([0-9.]+).*/\1/p')
    if [ -n "${FULCRUM_REV:-}" ]; then
        fulcrum_commit=$FULCRUM_REV
    else
        fulcrum_commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
        if [ -n "$(git status --porcelain 2>/dev/null)" ]; then
            fulcrum_commit="$fulcrum_commit (working tree with uncommitted changes)"
        fi
    fi
    echo "## Fulcrum vs redis-server: run of $STARTED"
    echo
    echo "- machine: $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), kernel $(uname -r)"
    echo "- redis-server $redis_version (Debian package); fulcrum $fulcrum_commit, release build, \`--threads $FULCRUM_THREADS\`$([ "$FULCRUM_THREADS" = 0 ] && echo " (the default: one worker thread per CPU core but one, at least one)")"
    echo "- load average (1/5/15 min) before: $LOAD_BEFORE; after: $LOAD_AFTER"
    echo "- data directories on: $(df -T "$WORK" | awk 'NR == 2 { print $2 " (" $1 ")" }')"
    echo "- client: \`redis-benchmark -c $CLIENTS -n $REQUESTS -t set,get -q [-P 16]\` (SET and GET as two invocations), median of $RUNS run(s); the two servers of a pair running side by side and measured in turn, run after run; client on the same machine"
    echo "- the targets are set for the runs without \`-P\`; the \`-P 16\` rows are for comparison"
    echo "- server CPU µs/req: the server process's user + system CPU time during the test divided by the requests (from /proc, 1/$CLK_TCK s resolution); less sensitive to other load on the machine than ops/s"
    echo
    echo "| durability | test | redis-server ops/s | Fulcrum ops/s | Fulcrum/Redis | target | met | redis p50 ms | Fulcrum p50 ms | server CPU µs/req redis / Fulcrum | Fulcrum req/fsync |"
    echo "|---|---|---:|---:|---:|---:|---|---:|---:|---:|---:|"
    local mode redis fulcrum cmd p target x label
    for mode in nofsync always; do
        if [ $mode = nofsync ]; then
            redis=redis-nofsync fulcrum=fulcrum-never
            label="no fsync (redis \`appendonly no\`, fulcrum \`--fsync never\`)"
        else
            redis=redis-always fulcrum=fulcrum-always
            label="fsync always (redis \`appendfsync always\`, fulcrum \`--fsync always\`)"
        fi
        for p in 1 16; do
            for cmd in SET GET; do
                # The targets are set for the unpipelined shape
                # (`redis-benchmark -c 50 -n 200000 -t set,get`); -P 16
                # rows are reported for comparison.
                target=""
                if [ "$p" = 1 ]; then
                    if [ $mode = nofsync ]; then target=0.8; elif [ $cmd = SET ]; then target=1.0; fi
                fi
                x=$(ratio "${R[$fulcrum|$cmd|$p|rps]}" "${R[$redis|$cmd|$p|rps]}")
                printf '| %s | %s%s | %s | %s | %s | %s | %s | %s | %s | %s / %s | %s |\n' \
                    "$label" "$cmd" "$([ "$p" = 1 ] || echo " -P $p")" \
                    "$(fmt_rps "${R[$redis|$cmd|$p|rps]}")" "$(fmt_rps "${R[$fulcrum|$cmd|$p|rps]}")" \
                    "$x" "${target:+≥ ${target}x}" "$([ -n "$target" ] && meets "$x" "$target" || echo "")" \
                    "${R[$redis|$cmd|$p|p50]}" "${R[$fulcrum|$cmd|$p|p50]}" \
                    "${R[$redis|$cmd|$p|cpu]}" "${R[$fulcrum|$cmd|$p|cpu]}" \
                    "${R[$fulcrum|$cmd|$p|fsync]:--}"
            done
        done
    done
    echo
    echo "### \`fulcrum bench\`, fsync always"
    echo
    echo "\`fulcrum bench --clients $CLIENTS --duration $BENCH_DURATION --warmup 1s --seed 1 --read-ratio R\`: 100 000 keys, 100-byte values, uniform keys; latency of every operation; the servers of (b), after their redis-benchmark runs, measured in turn."
    echo
    echo "| reads/writes | server | ops/s | Fulcrum/Redis | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | GET misses | errors |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    local ratio_arg f name server_ops fulcrum_ops
    for ratio_arg in 0.5 0.95; do
        server_ops=$(jq -r .ops_per_sec "$WORK/fb-redis-always-$ratio_arg.json")
        fulcrum_ops=$(jq -r .ops_per_sec "$WORK/fb-fulcrum-always-$ratio_arg.json")
        for name in redis-always fulcrum-always; do
            f=$WORK/fb-$name-$ratio_arg.json
            printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' \
                "$(awk -v r="$ratio_arg" 'BEGIN { printf "%d/%d", r * 100 + 0.5, 100 - r * 100 + 0.5 }')" \
                "$([ $name = redis-always ] && echo "redis-server appendfsync always" || echo "Fulcrum --fsync always")" \
                "$(fmt_rps "$(jq -r .ops_per_sec "$f")")" \
                "$([ $name = fulcrum-always ] && ratio "$fulcrum_ops" "$server_ops" || echo "")" \
                "$(ms "$f" .all.p50_us)" "$(ms "$f" .all.p90_us)" "$(ms "$f" .all.p99_us)" \
                "$(ms "$f" .all.p999_us)" "$(ms "$f" .all.max_us)" \
                "$(jq -r .get_misses "$f")" "$(jq -r .errors.total "$f")"
        done
    done
    echo
    echo "Per-class latencies (µs) of the Fulcrum runs:"
    echo
    echo '```'
    for ratio_arg in 0.5 0.95; do
        jq -c --arg r "$ratio_arg" '{read_ratio: $r, reads: (.reads | {ops, p50_us, p99_us, p999_us}), writes: (.writes | {ops, p50_us, p99_us, p999_us}), errors: .errors.by_code}' \
            "$WORK/fb-fulcrum-always-$ratio_arg.json"
    done
    echo '```'
}

if [ -n "$OUT" ]; then
    report >"$OUT"
    log "report written to $OUT"
else
    report
fi
