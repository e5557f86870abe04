#!/usr/bin/env bash
# Strong keyspaces beside etcd, on this machine, with one load generator
# (`fulcrum bench`, its RESP and etcd targets): a 3-member etcd cluster
# (Debian's etcd-server, fsync on as by default), then a 3-node Fulcrum
# cluster with a strong keyspace (Raft, fsync always). Only one system runs
# at a time. Loads: writes (SET / Put) and linearizable reads (GET / Range
# with serializable=false) at 1 and 64 clients, spread over the three
# members, same keys (key:0 … key:<KEYS-1>) and 100-byte values.
# Prints a markdown report; writes it to $1 if given.
#   scripts/bench-vs-etcd.sh [out.md]     DURATION=10s WARMUP=2s KEYS=10000
#   SYSTEMS=fulcrum (or etcd) measures only one of them.
# Needs root for apt-get if etcd or protoc is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
KEYS=${KEYS:-10000}
SYSTEMS=${SYSTEMS:-etcd fulcrum}
OUT=${1:-}

need_apt=()
command -v etcd >/dev/null 2>&1 || need_apt+=(etcd-server)
command -v etcdctl >/dev/null 2>&1 || need_apt+=(etcd-client)
command -v protoc >/dev/null 2>&1 || need_apt+=(protobuf-compiler)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing ${need_apt[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

cargo build --release --locked -q --features etcd
BIN=${CARGO_TARGET_DIR:-target}/release/fulcrum
source scripts/lib-cluster.sh

summary_line() { # JSON summary
  python3 -c 'import json, sys
d = json.loads(sys.argv[1])
print("%.0f ops/s, p99 %.2f ms, %d errors" % (d["ops_per_sec"], (d["all"]["p99_us"] or 0) / 1000, d["errors"]["total"]))' "$1"
}

# bench LABEL TARGET ADDRS CLIENTS READ_RATIO [--keyspace KS]: one JSON line
# into $WORK/results.jsonl, tagged with the label.
bench() {
  local label=$1 target=$2 addrs=$3 clients=$4 ratio=$5
  shift 5
  local json
  json=$("$BIN" bench --target "$target" --addr "$addrs" --clients "$clients" \
    --duration "$DURATION" --warmup "$WARMUP" --read-ratio "$ratio" --keys "$KEYS" \
    --value-size 100 --seed 1 --json "$@")
  echo "{\"label\": \"$label\", \"summary\": $json}" >>"$WORK/results.jsonl"
  echo "  $label $target: $(summary_line "$json")" >&2
}

# The four loads, in order: writes fill the keys the reads then find.
loads() { # target addrs [bench flags]
  local target=$1 addrs=$2
  shift 2
  bench "writes, 1 client" "$target" "$addrs" 1 0 "$@"
  bench "writes, 64 clients" "$target" "$addrs" 64 0 "$@"
  bench "linearizable reads, 1 client" "$target" "$addrs" 1 1 "$@"
  bench "linearizable reads, 64 clients" "$target" "$addrs" 64 1 "$@"
}

run_etcd() {
  echo "== etcd $(etcd --version | head -1 | awk '{print $3}'): 3 members" >&2
  local CLUSTER=""
  for i in 1 2 3; do CLUSTER+="${CLUSTER:+,}e$i=http://127.0.0.1:2${i}380"; done
  for i in 1 2 3; do
    etcd --name "e$i" --data-dir "$WORK/e$i" \
      --listen-client-urls "http://127.0.0.1:2${i}379" --advertise-client-urls "http://127.0.0.1:2${i}379" \
      --listen-peer-urls "http://127.0.0.1:2${i}380" --initial-advertise-peer-urls "http://127.0.0.1:2${i}380" \
      --initial-cluster "$CLUSTER" --initial-cluster-state new --initial-cluster-token fulcrum-bench \
      --logger zap --log-outputs "$WORK/e$i.log" >"$WORK/e$i.out" 2>&1 &
    PIDS+=($!)
  done
  local ETCD=127.0.0.1:21379,127.0.0.1:22379,127.0.0.1:23379
  for _ in $(seq 100); do
    if ETCDCTL_API=3 etcdctl --endpoints "$ETCD" endpoint health >/dev/null 2>&1; then break; fi
    sleep 0.2
  done
  ETCDCTL_API=3 etcdctl --endpoints "$ETCD" endpoint health >&2
  loads etcd "$ETCD"
  stop_all
}

run_fulcrum() {
  echo "== fulcrum: 3 nodes, strong keyspace" >&2
  start_node 1 17941 17942 17943
  wait_up 17941
  start_node 2 17951 17952 17953 17943
  start_node 3 17961 17962 17963 17943
  wait_up 17951
  wait_up 17961
  # Every node must see all three up before the keyspace places its groups.
  for port in 17942 17952 17962; do wait_members_up $port 3; done
  local addrs=127.0.0.1:17941,127.0.0.1:17951,127.0.0.1:17961
  "$BIN" keyspace --addr 127.0.0.1:17941 create strong --mode strong --replicas 3 >/dev/null
  loads resp "$addrs" --keyspace strong
  stop_all
}

touch "$WORK/results.jsonl"
for system in $SYSTEMS; do
  case $system in
    etcd) run_etcd ;;
    fulcrum) run_fulcrum ;;
    *) echo "unknown system $system (etcd, fulcrum)" >&2; exit 2 ;;
  esac
done

LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
python3 - "$WORK/results.jsonl" "$(git rev-parse --short HEAD)" "$(nproc)" "$LOAD" "$DURATION" "$KEYS" \
  "$(etcd --version | head -1 | awk '{print $3}')" >"$WORK/report.md" <<'PY'
import datetime, json, sys
path, commit, cores, load, duration, keys, etcd_version = sys.argv[1:8]
rows = [json.loads(l) for l in open(path)]
by = {}
for r in rows:
    by.setdefault(r["label"], {})[r["summary"]["target"]] = r["summary"]
def ms(us):
    return "-" if us is None else f"{us / 1000:.2f}"
def cls(s):
    return s["writes"] if s["read_ratio"] == 0 else s["reads"]
now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
print(f"{now}, commit {commit}, {cores} cores, load average before the report {load}; "
      f"etcd {etcd_version} (3 members), Fulcrum 3 nodes (strong keyspace, 8 Raft groups); "
      f"{duration} per load, {keys} keys, 100-byte values, clients spread over the 3 members.")
print()
print("| load | etcd ops/s | etcd p50 ms | etcd p99 ms | Fulcrum ops/s | Fulcrum p50 ms | Fulcrum p99 ms | Fulcrum / etcd | errors (etcd / Fulcrum) |")
print("|---|---|---|---|---|---|---|---|---|")
for label, t in by.items():
    e, f = t.get("etcd"), t.get("resp")
    def cells(s):
        if not s:
            return ["-", "-", "-"]
        c = cls(s)
        return [f"{c['ops_per_sec']:.0f}", ms(c["p50_us"]), ms(c["p99_us"])]
    ratio = "-"
    if e and f and cls(e)["ops_per_sec"]:
        ratio = f"{cls(f)['ops_per_sec'] / cls(e)['ops_per_sec']:.2f}x"
    errors = " / ".join(str(s["errors"]["total"]) if s else "-" for s in (e, f))
    print("| " + " | ".join([label] + cells(e) + cells(f) + [ratio, errors]) + " |")
PY
cat "$WORK/report.md"
if [ -n "$OUT" ]; then cp "$WORK/report.md" "$OUT"; fi
