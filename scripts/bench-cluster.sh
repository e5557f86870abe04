#!/usr/bin/env bash
# Measures Fulcrum on this machine: one node, then three nodes with N=3 at
# consistency ONE and QUORUM, 50/50 and 95/5 read/write mixes, with
# `fulcrum bench` (closed loop, 50 clients spread over the nodes).
# Prints a markdown table; writes it to $1 if given.
#   scripts/bench-cluster.sh [out.md]        DURATION=10s CLIENTS=50
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10s}
CLIENTS=${CLIENTS:-50}
OUT=${1:-}
cargo build --release --locked -q
BIN=${CARGO_TARGET_DIR:-target}/release/fulcrum
source scripts/lib-cluster.sh

run() { # label addrs keyspace ratio
  local json
  json=$("$BIN" bench --addr "$2" --keyspace "$3" --clients "$CLIENTS" --duration "$DURATION" \
    --read-ratio "$4" --keys 100000 --value-size 100 --json)
  python3 - "$1" "$4" "$json" <<'PY'
import json, sys
label, ratio, raw = sys.argv[1], sys.argv[2], sys.argv[3]
d = json.loads(raw)
a = d["all"]
print(f"| {label} | {float(ratio)*100:.0f}/{100-float(ratio)*100:.0f} | {d['ops_per_sec']:.0f} | {a['p50_us']/1000:.2f} | {a['p99_us']/1000:.2f} | {d['errors']['total']} |")
PY
}

ROWS=()
start_node 1 17901 17902 17903
wait_up 17901
"$BIN" keyspace --addr 127.0.0.1:17901 create one --replicas 1 --read ONE --write ONE >/dev/null
for r in 0.5 0.95; do ROWS+=("$(run "1 node" 127.0.0.1:17901 one $r)"); done
stop_all
rm -rf "$WORK/n1"

start_node 1 17911 17912 17913
wait_up 17911
start_node 2 17921 17922 17923 17913
start_node 3 17931 17932 17933 17913
wait_up 17921; wait_up 17931
for port in 17912 17922 17932; do wait_members_up $port 3; done
A=127.0.0.1:17911
ALL=127.0.0.1:17911,127.0.0.1:17921,127.0.0.1:17931
"$BIN" keyspace --addr $A create at_one --replicas 3 --read ONE --write ONE >/dev/null
"$BIN" keyspace --addr $A create at_quorum --replicas 3 --read QUORUM --write QUORUM >/dev/null
for ks in at_one at_quorum; do
  for r in 0.5 0.95; do ROWS+=("$(run "3 nodes, N=3, ${ks#at_}" "$ALL" $ks $r)"); done
done

TABLE="| setup | read/write | ops/s | p50 ms | p99 ms | errors |
|---|---|---|---|---|---|
$(printf '%s\n' "${ROWS[@]}")"
echo "$TABLE"
if [ -n "$OUT" ]; then echo "$TABLE" >"$OUT"; fi
