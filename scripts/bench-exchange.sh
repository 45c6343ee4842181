#!/usr/bin/env bash
# bench-exchange.sh: the token exchange grant under load (issue 15: ≥ 5,000 exchanges/s at
# concurrency 32). It builds gatehouse and gatehouse-bench from this checkout, starts
# `gatehouse serve` (SQLite, ES256) with an MCP resource, an API resource, a public client, a
# confidential "gateway" client named in token_exchange.clients and a user, and runs the
# gatehouse-bench scenario `exchange`: each worker signs in once (code flow) and then exchanges
# its access token for a token for the API, again and again, for DURATION. client_credentials
# runs just before, as the baseline of the same moment.
#
#   scripts/bench-exchange.sh                        # concurrency 32, 5 s
#   CONCURRENCY=1,32 DURATION=10s scripts/bench-exchange.sh
#
# Loopback only; everything lives in a temporary directory removed at exit (KEEP=1 keeps it).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
DURATION=${DURATION:-5s}
WARMUP=${WARMUP:-1s}
CONCURRENCY=${CONCURRENCY:-32}
ROUNDS=${ROUNDS:-1}
GATEHOUSE_PORT=${GATEHOUSE_PORT:-18480}

work=$(mktemp -d "${TMPDIR:-/tmp}/gatehouse-exchange.XXXXXX")
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	if [[ ${KEEP:-0} == 1 ]]; then echo "work directory kept: $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
say() { echo "== $*" >&2; }
if (exec 3<>"/dev/tcp/127.0.0.1/$GATEHOUSE_PORT") 2>/dev/null; then
	echo "bench-exchange: port $GATEHOUSE_PORT is in use; set GATEHOUSE_PORT" >&2
	exit 1
fi

say "building gatehouse and gatehouse-bench"
(cd "$repo" && go build -o "$work/gatehouse" ./cmd/gatehouse && go build -o "$work/gatehouse-bench" ./cmd/gatehouse-bench)
G=$work/gatehouse
B=$work/gatehouse-bench

mcp=http://127.0.0.1:18481/mcp
api=https://api.example.com/v1
"$G" keys gen-kek "$work/kek" >/dev/null
cat >"$work/gatehouse.yaml" <<EOF
issuer: http://127.0.0.1:$GATEHOUSE_PORT
allow_insecure_issuer: true
listen: 127.0.0.1:$GATEHOUSE_PORT
admin_listen: ""
storage:
  driver: sqlite
  sqlite_path: $work/gatehouse.db
keys:
  encryption_key_file: $work/kek
log:
  level: warn
token_exchange:
  clients:
    - client_id: bench-gateway
      subject_audiences: ["$mcp"]
      audiences: ["$api"]
EOF
cfg=(--config "$work/gatehouse.yaml")
"$G" migrate "${cfg[@]}" >/dev/null
# The MCP resource accepts client_credentials only for the baseline scenario below.
"$G" resource add "$mcp" --scope "notes:read=Read notes" --scope "notes:write=Write notes" --default-scope notes:read --accept-client-credentials "${cfg[@]}" >/dev/null
"$G" resource add "$api" --scope "notes:read=Read notes" --scope "notes:write=Write notes" --default-scope notes:read "${cfg[@]}" >/dev/null
gw_secret=$("$G" client create --id bench-gateway --confidential --grant-type client_credentials "${cfg[@]}" | awk '/client_secret:/{print $2}')
"$G" client create --id bench-public --redirect-uri http://127.0.0.1/callback "${cfg[@]}" >/dev/null
head -c 24 /dev/urandom | base64 | tr -d '/+=' >"$work/password"
"$G" user add bench --password-file "$work/password" "${cfg[@]}" >/dev/null

say "starting gatehouse serve on 127.0.0.1:$GATEHOUSE_PORT"
"$G" serve "${cfg[@]}" >"$work/gatehouse.log" 2>&1 &
gh_pid=$!
pids+=("$gh_pid")
for _ in $(seq 1 150); do
	(exec 3<>"/dev/tcp/127.0.0.1/$GATEHOUSE_PORT") 2>/dev/null && break
	sleep 0.2
done

args=(--target gatehouse --url "http://127.0.0.1:$GATEHOUSE_PORT" --server-pid "$gh_pid"
	--public-client bench-public --resource "$mcp" --client-id bench-gateway --client-secret "$gw_secret"
	--exchange-client-id bench-gateway --exchange-client-secret "$gw_secret" --exchange-resource "$api")
session=$("$B" "${args[@]}" --username bench --password-file "$work/password" --print-session |
	sed -n 's/^GATEHOUSE_BENCH_SESSION=//p')
args+=(--session-cookie "$session")
# Let the GC return the login's argon2id block before measuring (see docs/performance.md).
"$B" "${args[@]}" --scenarios discovery --concurrency 4 --duration 3s --warmup 0 >/dev/null
for round in $(seq 1 "$ROUNDS"); do
	# client_credentials first, as the baseline of the same moment: the
	# machine's other load moves both.
	say "round $round: client_credentials (baseline) and exchange at concurrency $CONCURRENCY for $DURATION"
	"$B" "${args[@]}" --scenarios client_credentials,exchange --concurrency "$CONCURRENCY" --duration "$DURATION" --warmup "$WARMUP"
done
