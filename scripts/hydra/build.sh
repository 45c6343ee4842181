#!/usr/bin/env bash
# Build Ory Hydra v2.3.0 from the Go module proxy into a temporary directory, outside the repo.
# Hydra is never vendored or committed: the source comes from `go mod download` each time.
#
#   scripts/hydra/build.sh [WORKDIR]        # default: ${HYDRA_WORKDIR:-${TMPDIR:-/tmp}/gatehouse-hydra}
#
# Prints the path of the binary on its last line. Reuses WORKDIR/hydra if it exists unless
# HYDRA_REBUILD=1. Takes about 3 minutes on 2 cores.
#
# Why not `go install github.com/ory/hydra/v2@v2.3.0`: Hydra's go.mod has replace directives, which
# `go install pkg@version` refuses. We copy the module to a writable directory, drop the
# `github.com/ory/hydra-client-go/v2 => ./internal/httpclient` replace (the published module of the
# same version is used instead; the pop replace points at a published module and stays), and build
# with cgo for the sqlite driver (the in-memory DSN).
set -euo pipefail

HYDRA_VERSION="${HYDRA_VERSION:-v2.3.0}"
WORKDIR="${1:-${HYDRA_WORKDIR:-${TMPDIR:-/tmp}/gatehouse-hydra}}"
BIN="$WORKDIR/hydra"

case "$WORKDIR" in
  "$(cd "$(dirname "$0")/../.." && pwd)"*) echo "build.sh: WORKDIR must be outside the repository" >&2; exit 2 ;;
esac

if [[ -x "$BIN" && "${HYDRA_REBUILD:-0}" != 1 ]]; then
  echo "hydra: reusing $BIN ($("$BIN" version 2>/dev/null | awk '/Version/{print $2; exit}'))" >&2
  echo "$BIN"
  exit 0
fi

mkdir -p "$WORKDIR"
probe="$WORKDIR/probe"
mkdir -p "$probe"
# `go mod download` outside any module: fetches the module zip from GOPROXY into the module cache.
dir="$(cd "$probe" && GOFLAGS=-mod=mod go mod download -json "github.com/ory/hydra/v2@${HYDRA_VERSION}" |
  sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
if [[ -z "$dir" || ! -d "$dir" ]]; then
  echo "build.sh: go mod download of github.com/ory/hydra/v2@${HYDRA_VERSION} failed" >&2; exit 1
fi

src="$WORKDIR/src"
rm -rf "$src"
cp -r "$dir" "$src"
chmod -R u+w "$src"
cd "$src"
go mod edit -dropreplace=github.com/ory/hydra-client-go/v2
# go.sum has no entry for the published client (the replace hid it); let the go command add it.
export GOFLAGS=-mod=mod
export GOTOOLCHAIN=local
echo "hydra: building ${HYDRA_VERSION} in $src (several minutes)..." >&2
start=$(date +%s)
CGO_ENABLED=1 go build -trimpath -tags sqlite,sqlite_omit_load_extension \
  -ldflags "-X github.com/ory/hydra/v2/driver/config.Version=${HYDRA_VERSION}" \
  -o "$BIN.tmp" .
mv "$BIN.tmp" "$BIN"
echo "hydra: built $BIN in $(( $(date +%s) - start ))s" >&2
echo "$BIN"
