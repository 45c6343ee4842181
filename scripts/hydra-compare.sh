#!/usr/bin/env bash
# hydra-compare.sh — Gatehouse and Ory Hydra v2.3.0 side by side, on loopback, in one run.
#
#   scripts/hydra-compare.sh            # everything, about 5 minutes plus the Hydra build
#
# What it does, all under one temporary directory (never inside the repository):
#   1. builds gatehouse and gatehouse-bench from this checkout;
#   2. builds Ory Hydra v2.3.0 from the Go module proxy (scripts/hydra/build.sh; reused from
#      $HYDRA_WORKDIR when already built, HYDRA_REBUILD=1 forces a fresh build);
#   3. starts `gatehouse serve` (SQLite, ES256) with a client_credentials client, a public
#      client, a user and one resource; logs in and consents once;
#   4. starts Hydra (`serve all --dev`, in-memory DSN, opaque strategy by default and JWT per
#      client) with a clean environment — Hydra reads any variable named like a config key;
#      gatehouse-bench registers the equivalent clients through its admin API;
#   5. runs every scenario against both servers, alternating per scenario so both see the same
#      background load, and for the rs path starts `gatehouse dev` (its demo MCP server sits
#      behind the rs middleware) when the binary has it;
#   6. prints the comparison (ratio per scenario, server CPU per unit, RSS) and the targets.
#
# Environment (all optional):
#   DURATION=5s            measured time per scenario and concurrency
#   WARMUP=500ms           unmeasured load before each measurement
#   MAX_REQUESTS=200000    bound on units per measurement
#   CONCURRENCY=32         concurrency of every scenario (comma-separated list allowed)
#   FLOW_CONCURRENCY=1,32  concurrency of the code-flow and refresh scenarios (Hydra's in-memory
#                          SQLite refuses concurrent flows, so 1 shows its best case)
#   ROUNDS=1               repeat every measurement; the comparison takes medians
#   SCENARIOS="…"          subset of: discovery jwks client_credentials client_credentials_opaque
#                          introspect code_flow code_flow_opaque refresh refresh_opaque rs_tools_call
#   GATEHOUSE_PORT=18080 HYDRA_PUBLIC_PORT=14444 HYDRA_ADMIN_PORT=14445 DEV_PORT=18090
#   HYDRA_WORKDIR=${TMPDIR:-/tmp}/gatehouse-hydra   where the Hydra source and binary live
#   KEEP=1                 keep the work directory (results.jsonl, logs)
#   OUT=FILE               also copy the comparison output to FILE
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
DURATION=${DURATION:-5s}
WARMUP=${WARMUP:-500ms}
MAX_REQUESTS=${MAX_REQUESTS:-200000}
CONCURRENCY=${CONCURRENCY:-32}
FLOW_CONCURRENCY=${FLOW_CONCURRENCY:-1,32}
ROUNDS=${ROUNDS:-1}
SCENARIOS=${SCENARIOS:-discovery jwks client_credentials client_credentials_opaque introspect code_flow code_flow_opaque refresh refresh_opaque rs_tools_call}
GATEHOUSE_PORT=${GATEHOUSE_PORT:-18080}
HYDRA_PUBLIC_PORT=${HYDRA_PUBLIC_PORT:-14444}
HYDRA_ADMIN_PORT=${HYDRA_ADMIN_PORT:-14445}
DEV_PORT=${DEV_PORT:-18090}
export HYDRA_WORKDIR=${HYDRA_WORKDIR:-${TMPDIR:-/tmp}/gatehouse-hydra}

work=$(mktemp -d "${TMPDIR:-/tmp}/gatehouse-compare.XXXXXX")
pids=()
cleanup() {
	for p in "${pids[@]}"; do
		kill "$p" 2>/dev/null || true
	done
	for p in "${pids[@]}"; do
		wait "$p" 2>/dev/null || true
	done
	if [[ ${KEEP:-0} == 1 ]]; then
		echo "work directory kept: $work" >&2
	else
		rm -rf "$work"
	fi
}
trap cleanup EXIT
say() { echo "== $*" >&2; }

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in "$GATEHOUSE_PORT" "$HYDRA_PUBLIC_PORT" "$HYDRA_ADMIN_PORT" "$DEV_PORT" "$((DEV_PORT + 1))"; do
	port_free "$p" || { echo "hydra-compare: port $p is in use; set the *_PORT variables" >&2; exit 1; }
done

wait_http() { # URL, log file
	for _ in $(seq 1 150); do
		if (exec 3<>"/dev/tcp/127.0.0.1/${1##*:}") 2>/dev/null; then return 0; fi
		sleep 0.2
	done
	echo "hydra-compare: nothing listens on $1; log:" >&2
	tail -20 "$2" >&2
	exit 1
}

say "building gatehouse and gatehouse-bench"
(cd "$repo" && go build -o "$work/gatehouse" ./cmd/gatehouse && go build -o "$work/gatehouse-bench" ./cmd/gatehouse-bench)
G=$work/gatehouse
B=$work/gatehouse-bench

say "building Ory Hydra v2.3.0 (from the Go module proxy, into $HYDRA_WORKDIR)"
HYDRA=$(bash "$repo/scripts/hydra/build.sh" "$HYDRA_WORKDIR" | tail -1)

# --- Gatehouse -------------------------------------------------------------------------------
gh=$work/gatehouse-data
mkdir -p "$gh"
"$G" keys gen-kek "$gh/kek" >/dev/null
cat >"$gh/gatehouse.yaml" <<EOF
issuer: http://127.0.0.1:$GATEHOUSE_PORT
allow_insecure_issuer: true
listen: 127.0.0.1:$GATEHOUSE_PORT
admin_listen: ""
storage:
  driver: sqlite
  sqlite_path: $gh/gatehouse.db
keys:
  encryption_key_file: $gh/kek
log:
  level: warn
EOF
cfg=(--config "$gh/gatehouse.yaml")
resource=http://127.0.0.1:18081/mcp
"$G" resource add "$resource" --scope "notes:read=Read notes" --scope "notes:write=Write notes" --default-scope notes:read --accept-client-credentials "${cfg[@]}" >/dev/null
cc_secret=$("$G" client create --id bench-cc --confidential --grant-type client_credentials "${cfg[@]}" | awk '/client_secret:/{print $2}')
"$G" client create --id bench-public --redirect-uri http://127.0.0.1/callback "${cfg[@]}" >/dev/null
head -c 24 /dev/urandom | base64 | tr -d '/+=' >"$gh/password"
"$G" user add bench --password-file "$gh/password" "${cfg[@]}" >/dev/null
say "starting gatehouse serve on 127.0.0.1:$GATEHOUSE_PORT"
"$G" serve "${cfg[@]}" >"$work/gatehouse.log" 2>&1 &
gh_pid=$!
pids+=("$gh_pid")
wait_http "127.0.0.1:$GATEHOUSE_PORT" "$work/gatehouse.log"
sleep 1

# --- Hydra -----------------------------------------------------------------------------------
hy=$work/hydra
mkdir -p "$hy"
cat >"$hy/hydra.yaml" <<EOF
dsn: memory
serve:
  public:
    host: 127.0.0.1
    port: $HYDRA_PUBLIC_PORT
  admin:
    host: 127.0.0.1
    port: $HYDRA_ADMIN_PORT
urls:
  self:
    issuer: http://127.0.0.1:$HYDRA_PUBLIC_PORT
    public: http://127.0.0.1:$HYDRA_PUBLIC_PORT
  # The bench tool plays the login and consent app through the admin API; nothing listens here.
  login: http://127.0.0.1:9/login
  consent: http://127.0.0.1:9/consent
secrets:
  system:
    - $(head -c 32 /dev/urandom | base64 | tr -d '/+=')
strategies:
  access_token: opaque
log:
  level: warn
oauth2:
  pkce:
    enforced_for_public_clients: true
EOF
say "starting hydra serve all --dev (in-memory DSN) on 127.0.0.1:$HYDRA_PUBLIC_PORT/$HYDRA_ADMIN_PORT"
# A clean environment: Hydra maps any variable named like a config key onto its configuration.
env -i PATH=/usr/bin:/bin HOME="$hy" "$HYDRA" serve all --dev --sqa-opt-out -c "$hy/hydra.yaml" >"$work/hydra.log" 2>&1 &
hy_pid=$!
pids+=("$hy_pid")
wait_http "127.0.0.1:$HYDRA_PUBLIC_PORT" "$work/hydra.log"
wait_http "127.0.0.1:$HYDRA_ADMIN_PORT" "$work/hydra.log"
sleep 1

results=$work/results.jsonl
common=(--duration "$DURATION" --warmup "$WARMUP" --max-requests "$MAX_REQUESTS" --json "$results" --resource "$resource")
gh_args=(--target gatehouse --url "http://127.0.0.1:$GATEHOUSE_PORT" --server-pid "$gh_pid"
	--client-id bench-cc --client-secret "$cc_secret" --public-client bench-public)
hy_args=(--target hydra --url "http://127.0.0.1:$HYDRA_PUBLIC_PORT" --admin-url "http://127.0.0.1:$HYDRA_ADMIN_PORT"
	--server-pid "$hy_pid" --scope notes:read)

# Idle RSS of both, before any load (the header line of results.jsonl).
"$B" "${gh_args[@]}" --json "$results" --idle >/dev/null
"$B" "${hy_args[@]}" --json "$results" --idle >/dev/null

# One login and consent for the Gatehouse flows, long before the flow scenarios run: argon2id
# makes the server's RSS jump for a while (see docs/performance.md).
session=$("$B" "${gh_args[@]}" --username bench --password-file "$gh/password" --resource "$resource" --print-session |
	sed -n 's/^GATEHOUSE_BENCH_SESSION=//p')
gh_args+=(--session-cookie "$session")
# That login leaves the argon2id block (64 MiB) resident until the next GC cycle and the
# scavenger return it; an idle server keeps it for minutes. A few seconds of unmeasured load
# let the GC run, so the peak RSS of the first scenario is its own.
"$B" "${gh_args[@]}" --scenarios discovery --concurrency 4 --duration 3s --warmup 0 >/dev/null

# Hydra: register the equivalent clients once; every run reuses them.
"$B" "${hy_args[@]}" --resource "$resource" --print-hydra-clients >"$work/hydra-clients.env"
# shellcheck disable=SC1091
source "$work/hydra-clients.env"
hy_args+=(--client-id "$HYDRA_CC_ID" --client-secret "$HYDRA_CC_SECRET" --opaque-client-id "$HYDRA_CC_OPAQUE_ID"
	--opaque-client-secret "$HYDRA_CC_OPAQUE_SECRET" --public-client "$HYDRA_PUBLIC_ID" --public-client-opaque "$HYDRA_PUBLIC_OPAQUE_ID")

# --- the rs path: gatehouse dev with its demo MCP server -------------------------------------
dev_ready=0
if [[ " $SCENARIOS " == *" rs_tools_call "* ]]; then
	dev=$work/dev-data
	mkdir -p "$dev"
	say "starting gatehouse dev on 127.0.0.1:$DEV_PORT (demo MCP server on $((DEV_PORT + 1)))"
	"$G" dev --data "$dev" --listen "127.0.0.1:$DEV_PORT" --user bench --password-file "$gh/password" >"$work/dev.log" 2>&1 &
	dev_pid=$!
	pids+=("$dev_pid")
	if wait_http "127.0.0.1:$((DEV_PORT + 1))" "$work/dev.log"; then
		dev_ready=1
	fi
fi

run_scenario() { # scenario
	local s=$1 conc=$CONCURRENCY
	case $s in code_flow* | refresh*) conc=$FLOW_CONCURRENCY ;; esac
	case $s in
	rs_tools_call)
		if [[ $dev_ready == 1 ]]; then
			say "rs_tools_call (gatehouse dev, demo MCP server)"
			"$B" --target gatehouse --label gatehouse --url "http://127.0.0.1:$DEV_PORT" --server-pid "$dev_pid" \
				--public-client gatehouse-demo --username bench --password-file "$gh/password" \
				--rs-url "http://127.0.0.1:$((DEV_PORT + 1))/mcp" \
				--rs-tool list_notes --scenarios rs_tools_call --concurrency "$CONCURRENCY" \
				--duration "$DURATION" --warmup "$WARMUP" --max-requests "$MAX_REQUESTS" --json "$results" || true
		fi
		return
		;;
	esac
	case $s in
	*_opaque) ;; # Hydra only
	*)
		say "$s: gatehouse"
		"$B" "${gh_args[@]}" "${common[@]}" --scenarios "$s" --concurrency "$conc" || true
		;;
	esac
	say "$s: hydra"
	"$B" "${hy_args[@]}" "${common[@]}" --scenarios "$s" --concurrency "$conc" || true
}

for ((round = 1; round <= ROUNDS; round++)); do
	for s in $SCENARIOS; do
		run_scenario "$s"
	done
done

{
	echo
	echo "machine: $(nproc) CPUs, $(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1), $(uname -r), $(go version | awk '{print $3}')"
	echo "load: DURATION=$DURATION WARMUP=$WARMUP MAX_REQUESTS=$MAX_REQUESTS CONCURRENCY=$CONCURRENCY FLOW_CONCURRENCY=$FLOW_CONCURRENCY ROUNDS=$ROUNDS"
	echo
	"$B" compare "$results"
} | tee ${OUT:+"$OUT"}
if [[ -n ${OUT:-} ]]; then
	cp "$results" "${OUT%.*}.jsonl"
fi
