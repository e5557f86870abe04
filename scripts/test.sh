#!/usr/bin/env bash
# The project's test command: every crate's unit, conformance, property and
# end-to-end tests (end-to-end tests start the real `fulcrum` binary on
# loopback ports). Needs the Rust toolchain and protoc (Debian:
# protobuf-compiler; the etcd-client crate generates code with it).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${PROTOC:-}" ] && ! command -v protoc >/dev/null 2>&1; then
  echo "scripts/test.sh: protoc not found; the build needs it (etcd-client generates its gRPC code)." >&2
  echo "Install it with: apt-get install -y protobuf-compiler (or set PROTOC=/path/to/protoc)" >&2
  exit 1
fi
cargo test --workspace --locked "$@"
