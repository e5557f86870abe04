#!/usr/bin/env bash
# Fault scenarios against a 5-node Fulcrum cluster in Docker: builds the
# image (scripts/docker-build.sh), then runs each scenario as its own
# `fulcrum verify --docker` run (a compose project of its own, under load,
# with the nemesis injecting faults through the Docker engine) and exits
# non-zero if any verdict fails.
#
#   scripts/docker-scenarios.sh [SCENARIO ...]      default: every scenario
#   DURATION=30s NODES=5 SEED=7 IMAGE=fulcrum:dev SKIP_BUILD=1
#   MEMBERSHIP_DURATION=45s            the join and leave runs' duration
#                                      (load before and after the change)
#   FULCRUM_BIN=target/debug/fulcrum   image and verify from that binary
#                                      (no release build; what CI does)
#
# Scenarios (each a function scenario_<name> below):
#   partition  eventual keyspace at QUORUM; a node is disconnected from the
#              peer network (docker network disconnect/connect)
#   kill       eventual at QUORUM; docker kill, then docker start on the volume
#   pause      eventual at QUORUM; docker pause/unpause
#   strong     strong keyspace, partition and kill: linearizable
#   join       eventual at QUORUM; a sixth node, held back under the compose
#              profile `join`, starts and joins the running cluster
#   leave      eventual at QUORUM; a member other than n1 gets CLUSTER LEAVE,
#              moves its data away and stops (4 members remain)
# Eventual runs must lose no acknowledged write and converge after healing;
# join and leave must also refuse no request with UNAVAILABLE while the
# member set changes (availability). The verdicts are verify's (see
# TESTING.md).
#
# Every container, network and volume the runs create is removed at exit,
# also on failure or Ctrl-C (the image stays).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-30s}
MEMBERSHIP_DURATION=${MEMBERSHIP_DURATION:-45s}
NODES=${NODES:-5}
IMAGE=${IMAGE:-fulcrum:dev}
SEED=${SEED:-}
BIN="${FULCRUM_BIN:-${CARGO_TARGET_DIR:-target}/release/fulcrum}"
export FULCRUM_BIN
ALL_SCENARIOS=(partition kill pause strong join leave)
RUN_ID="fulcrum-scenarios-$$"

projects=()

# Removes everything a compose project created, found by compose's labels
# (works without the compose file, which lives in verify's temporary dir).
remove_project() {
  local label="label=com.docker.compose.project=$1" ids
  ids=$(docker ps -aq --filter "$label")
  if [ -n "$ids" ]; then docker rm -f $ids >/dev/null 2>&1 || true; fi
  ids=$(docker network ls -q --filter "$label")
  if [ -n "$ids" ]; then docker network rm $ids >/dev/null 2>&1 || true; fi
  ids=$(docker volume ls -q --filter "$label")
  if [ -n "$ids" ]; then docker volume rm $ids >/dev/null 2>&1 || true; fi
}

cleanup() {
  for p in "${projects[@]}"; do remove_project "$p"; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# verify NAME ARGS...: one `fulcrum verify --docker` run as project $RUN_ID-NAME.
verify() {
  local name=$1
  shift
  local project="$RUN_ID-$name"
  projects+=("$project")
  local seed_args=()
  if [ -n "$SEED" ]; then seed_args=(--seed "$SEED"); fi
  "$BIN" verify --docker --docker-image "$IMAGE" --docker-project "$project" \
    --nodes "$NODES" --duration "${RUN_DURATION:-$DURATION}" --clients 8 "${seed_args[@]}" "$@"
}

scenario_partition() { verify partition --workload register --mode eventual --nemesis partition; }
scenario_kill()      { verify kill --workload register --mode eventual --nemesis kill; }
scenario_pause()     { verify pause --workload register --mode eventual --nemesis pause; }
scenario_strong()    { verify strong --workload register --mode strong --nemesis partition,kill; }
scenario_join()      { RUN_DURATION=$MEMBERSHIP_DURATION verify join --workload register --mode eventual --nemesis join; }
scenario_leave()     { RUN_DURATION=$MEMBERSHIP_DURATION verify leave --workload register --mode eventual --nemesis leave; }

scenarios=("$@")
if [ ${#scenarios[@]} -eq 0 ]; then scenarios=("${ALL_SCENARIOS[@]}"); fi
for name in "${scenarios[@]}"; do
  if ! declare -F "scenario_$name" >/dev/null; then
    echo "error: unknown scenario '$name' (known: ${ALL_SCENARIOS[*]})" >&2
    exit 2
  fi
done

if ! docker info >/dev/null 2>&1; then
  echo "error: no Docker engine answers 'docker info'" >&2
  exit 3
fi
if [ "${SKIP_BUILD:-0}" != 1 ]; then
  scripts/docker-build.sh "$IMAGE"
fi

results=()
failed=0
for name in "${scenarios[@]}"; do
  echo
  echo "== scenario $name ($NODES containers)"
  started=$SECONDS
  if "scenario_$name"; then
    results+=("$name: ok ($((SECONDS - started)) s)")
  else
    code=$?
    results+=("$name: FAILED, exit $code ($((SECONDS - started)) s)")
    failed=1
  fi
  remove_project "$RUN_ID-$name"
done

echo
echo "== docker scenarios"
printf '   %s\n' "${results[@]}"
exit $failed
