#!/usr/bin/env bash
# The project's test command: every crate's unit, conformance, property and
# end-to-end tests (end-to-end tests start the real `fulcrum` binary on
# loopback ports). Needs only the Rust toolchain (the etcd target of
# `fulcrum bench`, which needs protoc, is behind the `etcd` feature).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --locked "$@"
