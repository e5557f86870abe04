#!/usr/bin/env bash
# Runs the deterministic cluster simulation (crates/fulcrum-sim) over many
# seeds, one summary line per seed; a failing seed prints its full report
# (nemesis log, counterexample sub-history, how to reproduce it alone) and
# the run exits non-zero listing every failing seed.
#
#   scripts/sim-many-seeds.sh                 # seeds 1..=500
#   scripts/sim-many-seeds.sh 1000..2000      # seeds 1000 to 1999
#   scripts/sim-many-seeds.sh 1..=50 --twice  # run each seed twice (eventual and
#                                             # strong keyspaces) and fail seeds
#                                             # whose histories, logs or simulated
#                                             # durations differ
#
# Environment (optional):
#   FULCRUM_SIM_SCENARIO=calm|partitions|crashes|mixed|lossy
#                          force one scenario (default: seed % 4 picks among
#                          the first four; lossy is opt-in, see the crate docs)
#   FULCRUM_SIM_STRICT=1   undecided checks (linearizability budget) fail too
#   FULCRUM_SIM_FSYNC=never  the nodes' fsync policy (default always)
#   FULCRUM_SIM_LOG=info   node logs on stderr (very verbose)
#   PROFILE=release        build optimized (slower build, ~5x faster runs)
#
# One seed alone: FULCRUM_SIM_SEED=<n> cargo test -p fulcrum-sim \
#   --test simulation one_seed_from_env -- --nocapture
set -euo pipefail
cd "$(dirname "$0")/.."

range="${1:-1..=500}"
export FULCRUM_SIM_SEEDS="$range"
if [[ "${2:-}" == "--twice" ]]; then
    export FULCRUM_SIM_TWICE=1
fi
profile=()
if [[ "${PROFILE:-debug}" == "release" ]]; then
    profile=(--release)
fi
exec cargo test -p fulcrum-sim "${profile[@]}" --test simulation many_seeds_from_env \
    -- --nocapture --test-threads 1
