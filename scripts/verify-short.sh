#!/usr/bin/env bash
# Short `fulcrum verify` runs, one per keyspace mode, under kill and
# partition faults (what CI runs after the tests). Each must exit 0:
# strong keyspaces linearizable; eventual keyspaces at QUORUM lose no
# acknowledged write and converge after healing. A third run cuts nodes
# off while clients write at ANY (hinted writes count) and read at ONE:
# every partition's replicas must reach equal Merkle roots after healing
# through hinted handoff and anti-entropy alone, before any read repairs.
# A fourth run grows the cluster by a node and then has a member leave
# (4 nodes for a moment) under QUORUM load: nothing lost, replicas
# converge on the final members, and no request is refused with
# UNAVAILABLE while the member set changes. A fifth does the same on a
# strong keyspace: its Raft voters move to the joined node and off the
# leaving one (a leaving leader hands its groups over first) while the
# register stays linearizable.
#   scripts/verify-short.sh [path/to/fulcrum]     DURATION=20s
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/debug/fulcrum}
DURATION=${DURATION:-20s}
if [ ! -x "$BIN" ]; then
  cargo build --locked -q
  BIN=target/debug/fulcrum
fi
for mode in strong eventual; do
  echo "== fulcrum verify --mode $mode --nemesis kill,partition --duration $DURATION"
  "$BIN" verify --workload register --mode "$mode" --nodes 3 \
    --nemesis kill,partition --duration "$DURATION" --clients 6
done
echo "== fulcrum verify --mode eventual --levels ONE,ANY --nemesis partition --duration $DURATION"
"$BIN" verify --workload register --mode eventual --levels ONE,ANY --nodes 3 \
  --nemesis partition --duration "$DURATION" --clients 6
echo "== fulcrum verify --mode eventual --nodes 3 --nemesis join,leave --duration $DURATION"
"$BIN" verify --workload register --mode eventual --nodes 3 \
  --nemesis join,leave --duration "$DURATION" --clients 6
echo "== fulcrum verify --mode strong --nodes 3 --nemesis join,leave --duration $DURATION"
"$BIN" verify --workload register --mode strong --nodes 3 \
  --nemesis join,leave --duration "$DURATION" --clients 6
