#!/usr/bin/env bash
# Build Dex v2.45.1 (the CNCF OpenID provider) from the Go module proxy into a directory outside
# the repo. Dex is never vendored or committed: the source comes from `go mod download` each time.
#
#   scripts/dex/build.sh [WORKDIR]        # default: ${DEX_WORKDIR:-${TMPDIR:-/tmp}/gatehouse-dex}
#
# Prints the path of the binary on its last line. Reuses WORKDIR/dex if it exists unless
# DEX_REBUILD=1.
#
# Why a pseudo-version: Dex's module path is github.com/dexidp/dex (no /v2 suffix) while its tags
# are v2.x, so the proxy lists only v2.13.0+incompatible (2018, before Dex had a go.mod). A
# release is reachable only as the pseudo-version of its tagged commit: v2.45.1 is commit
# 11d2eeb52b42 (2026-03-03T13:39:05Z).
#
# Why not `go install github.com/dexidp/dex/cmd/dex@<that>`: Dex's go.mod has
# `replace github.com/dexidp/dex/api/v2 => ./api/v2`, which `go install pkg@version` refuses, and
# api/v2 is a nested module, so it is not in the module zip either. We copy the module to a writable
# directory and drop that replace; the published github.com/dexidp/dex/api/v2 v2.4.0 it requires has
# the same Go code as the tree at v2.45.1 (only api/v2's go.mod and go.sum differ).
set -euo pipefail

DEX_VERSION="${DEX_VERSION:-v2.45.1}"
DEX_MODULE_VERSION="${DEX_MODULE_VERSION:-v0.0.0-20260303133905-11d2eeb52b42}"
WORKDIR="${1:-${DEX_WORKDIR:-${TMPDIR:-/tmp}/gatehouse-dex}}"
BIN="$WORKDIR/dex"

case "$WORKDIR" in
  "$(cd "$(dirname "$0")/../.." && pwd)"*) echo "build.sh: WORKDIR must be outside the repository" >&2; exit 2 ;;
esac

if [[ -x "$BIN" && "${DEX_REBUILD:-0}" != 1 ]]; then
  echo "dex: reusing $BIN ($("$BIN" version 2>/dev/null | awk '/Dex Version/{print $3; exit}'))" >&2
  echo "$BIN"
  exit 0
fi

mkdir -p "$WORKDIR"
probe="$WORKDIR/probe"
mkdir -p "$probe"
# `go mod download` outside any module: fetches the module zip from GOPROXY into the module cache.
dir="$(cd "$probe" && GOFLAGS=-mod=mod go mod download -json "github.com/dexidp/dex@${DEX_MODULE_VERSION}" |
  sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
if [[ -z "$dir" || ! -d "$dir" ]]; then
  echo "build.sh: go mod download of github.com/dexidp/dex@${DEX_MODULE_VERSION} failed" >&2; exit 1
fi

src="$WORKDIR/src"
rm -rf "$src"
cp -r "$dir" "$src"
chmod -R u+w "$src"
cd "$src"
go mod edit -dropreplace=github.com/dexidp/dex/api/v2
export GOFLAGS=-mod=mod
export GOTOOLCHAIN=local
echo "dex: building ${DEX_VERSION} in $src (a few minutes)..." >&2
start=$(date +%s)
# cgo for the sqlite3 storage Dex links in; the tests use the in-memory storage.
CGO_ENABLED=1 go build -trimpath \
  -ldflags "-X main.version=${DEX_VERSION}" \
  -o "$BIN.tmp" ./cmd/dex
mv "$BIN.tmp" "$BIN"
echo "dex: built $BIN in $(( $(date +%s) - start ))s" >&2
echo "$BIN"
