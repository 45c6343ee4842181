#!/usr/bin/env bash
# Regenerates docs/screenshots/{login,consent,error,account,passkeys}.png: starts a branded
# `gatehouse dev` with a fresh data directory on 127.0.0.1:18080 (and its
# demo MCP server on 18081; GATEHOUSE_SCREENSHOTS_PORT changes that), runs
# scripts/screenshots (headless Chromium at 1200×900) against it, and
# stops it. The port is fixed so that the pictures do not change from run
# to run. Needs Chromium (Debian: apt-get install chromium; or set
# GATEHOUSE_CHROMIUM). Usage: bash scripts/screenshots.sh [OUT-DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-docs/screenshots}
tmp=$(mktemp -d)
dev_pid=
cleanup() {
	if [[ -n $dev_pid ]]; then kill "$dev_pid" 2>/dev/null || true; wait "$dev_pid" 2>/dev/null || true; fi
	rm -rf "$tmp"
}
trap cleanup EXIT

go build -o "$tmp/gatehouse" ./cmd/gatehouse
port=${GATEHOUSE_SCREENSHOTS_PORT:-18080}
export GATEHOUSE_DEV_PASSWORD=screenshots-password
logo="data:image/svg+xml;base64,$(base64 -w0 docs/screenshots/example-logo.svg)"
"$tmp/gatehouse" dev --data "$tmp/data" --listen "127.0.0.1:$port" \
	--branding-name "Acme Corp" --branding-logo-url "$logo" >"$tmp/dev.log" 2>&1 &
dev_pid=$!
for _ in $(seq 100); do
	curl -fs "http://127.0.0.1:$port/.well-known/oauth-authorization-server" >/dev/null && break
	kill -0 "$dev_pid" 2>/dev/null || { cat "$tmp/dev.log"; exit 1; }
	sleep 0.1
done
go run ./scripts/screenshots -issuer "http://127.0.0.1:$port" -out "$out"
