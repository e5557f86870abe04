# Shell helpers for scripts that start local Fulcrum clusters on loopback.
# Source it after setting BIN (the fulcrum binary); it creates $WORK (a
# temporary directory, removed at exit) and stops every node it started at
# exit. Ports are fixed by the caller.
#
#   start_node ID RESP HTTP PEER [SEED_PEER]   background node n<ID>
#   wait_up RESP                               the node answers on RESP
#   wait_members_up HTTP COUNT                 it sees COUNT members up
#   stop_all                                   stops every started process
#   PIDS+=($!)                                 register another process

WORK=$(mktemp -d)
PIDS=()

stop_all() {
  for p in "${PIDS[@]:-}"; do
    [ -n "$p" ] && kill "$p" 2>/dev/null || true
  done
  for p in "${PIDS[@]:-}"; do
    [ -n "$p" ] && wait "$p" 2>/dev/null || true
  done
  PIDS=()
}

_lib_cluster_cleanup() {
  stop_all
  rm -rf "$WORK"
}
trap _lib_cluster_cleanup EXIT

start_node() { # id resp http peer [seed]
  local args=(server --node-id "n$1" --data-dir "$WORK/n$1" --resp-addr "127.0.0.1:$2"
    --http-addr "127.0.0.1:$3" --peer-addr "127.0.0.1:$4")
  [ -n "${5:-}" ] && args+=(--seeds "127.0.0.1:$5")
  "$BIN" "${args[@]}" >"$WORK/n$1.log" 2>&1 &
  PIDS+=($!)
}

wait_up() { # resp port
  for _ in $(seq 100); do
    if "$BIN" get --addr "127.0.0.1:$1" __probe >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  echo "node on $1 did not start" >&2
  exit 1
}

_members_up() { # http port, count
  "$BIN" cluster --http "127.0.0.1:$1" status 2>/dev/null |
    python3 -c 'import json,sys; m=json.load(sys.stdin)["members"]; sys.exit(0 if sum(x["state"]=="up" for x in m)==int(sys.argv[1]) else 1)' "$2"
}

wait_members_up() { # http port, count
  for _ in $(seq 100); do
    _members_up "$1" "$2" && return 0
    sleep 0.1
  done
  echo "node with http $1 does not see $2 members up" >&2
  exit 1
}
