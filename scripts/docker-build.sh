#!/usr/bin/env bash
# Builds the `fulcrum` image FROM scratch (nothing is pulled): compiles the
# release binary on this host, copies it and the shared libraries `ldd`
# lists into a build context, and runs `docker build` on docker/Dockerfile.
#   scripts/docker-build.sh [TAG]        TAG defaults to fulcrum:dev
#   FULCRUM_BIN=path/to/fulcrum scripts/docker-build.sh   use that binary
#                                        instead of building release (CI
#                                        reuses the debug build of the tests)
# The image runs on any Linux host with the same CPU architecture; the
# libraries come from this host, so the image matches what was tested here.
set -euo pipefail
cd "$(dirname "$0")/.."
TAG=${1:-fulcrum:dev}
TARGET_DIR=${CARGO_TARGET_DIR:-target}

if [ -n "${FULCRUM_BIN:-}" ]; then
  BIN=$FULCRUM_BIN
else
  echo "== cargo build --release --locked"
  cargo build --release --locked -q
  BIN="$TARGET_DIR/release/fulcrum"
fi
[ -x "$BIN" ] || { echo "error: $BIN was not built" >&2; exit 1; }

CONTEXT=$(mktemp -d "${TMPDIR:-/tmp}/fulcrum-image-XXXXXX")
trap 'rm -rf "$CONTEXT"' EXIT
ROOTFS="$CONTEXT/rootfs"
mkdir -p "$ROOTFS" "$CONTEXT/data"
cp "$BIN" "$ROOTFS/fulcrum"
strip "$ROOTFS/fulcrum" 2>/dev/null || true

# Every absolute path ldd prints: `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)`
# and the loader `/lib64/ld-linux-x86-64.so.2 (0x…)`. Symlinks are followed
# (cp -L) so each path holds the real file.
libs=$(ldd "$BIN" | grep -o '/[^ ]*' | sort -u)
if [ -z "$libs" ]; then
  echo "error: ldd listed no libraries for $BIN (a static binary needs none; check ldd)" >&2
  exit 1
fi
for lib in $libs; do
  mkdir -p "$ROOTFS$(dirname "$lib")"
  cp -L "$lib" "$ROOTFS$lib"
  echo "   + $lib"
done
cp docker/Dockerfile "$CONTEXT/Dockerfile"

echo "== docker build -t $TAG (FROM scratch)"
old=$(docker image inspect --format '{{.Id}}' "$TAG" 2>/dev/null || true)
docker build -q -t "$TAG" "$CONTEXT"
new=$(docker image inspect --format '{{.Id}}' "$TAG")
# A rebuild leaves the previous image untagged; remove it unless in use.
if [ -n "$old" ] && [ "$old" != "$new" ]; then
  docker image rm "$old" >/dev/null 2>&1 || true
fi
docker image ls "$TAG"
