#!/usr/bin/env bash
# scripts/test.sh — THE test command of Gatehouse (CI's .ci/run runs exactly
# this). From a clean clone, as root on Debian 12 with Go and Node/npm:
#
#   bash scripts/test.sh
#
# Steps, each announced with a "==> step" line and ended with a
# "--- step: Ns" line (the summary lists them all again):
#   1. system packages: postgresql and chromium (apt-get, only if missing)
#   2. npm peers: `npm ci` in test/interop, test/interop/conformance-alpha and
#      test/interop/realclients (each skipped when node_modules matches its
#      lockfile)
#   3. a throwaway PostgreSQL (scripts/pg-test-start.sh), stopped on exit;
#      its DSN is exported as GATEHOUSE_TEST_POSTGRES_DSN
#   3b. Ory Hydra v2.3.0 built from the Go module proxy
#      (scripts/hydra/build.sh, about 3 minutes the first time, then kept in
#      $HYDRA_WORKDIR, default <tools>/hydra-v2.3.0); its path is exported
#      as GATEHOUSE_TEST_HYDRA for TestUpstreamOIDC (test/interop); then
#      Dex v2.45.1 the same way (scripts/dex/build.sh, kept in $DEX_WORKDIR,
#      default <tools>/dex-v2.45.1), exported as GATEHOUSE_TEST_DEX
#   (1-3b run in the background, their output held back until step 5)
#   4. gofmt, go vet, staticcheck, govulncheck (against a local copy of the
#      Go vulnerability database, fetched from the Go module proxy)
#   5. go test -count=1 -race ./... (see GATEHOUSE_TEST_RACE_PKGS)
#   6. every native fuzz target fuzzed briefly (scripts/fuzz.sh -t 10s -m 2s, one
#      test binary built per package); the
#      seed corpora already ran as ordinary tests in step 5
#
# Locally, a prerequisite that cannot be had is reported as
# "SKIPPED: <what> (<why>)" and the run goes on; under CI=true it is a
# failure. A pinned tool the Go module proxy refuses to serve (staticcheck,
# govulncheck, the vulnerability database) is skipped even under CI.
#
# Skipped tests: scripts/testreport prints every skipped test with its
# reason. Under CI=true a skipped test is a failed test unless a line of
# scripts/skip-allowlist.txt (`PACKAGE TEST-PATTERN  # reason`) lets it
# pass, so neither a missing peer nor GO_TEST_FLAGS=-short can turn CI
# green with tests not run. The list is empty: a full run skips nothing.
#
# The last line is "N passed, N failed": every test and subtest, plus every
# check step (gofmt, vet, staticcheck, govulncheck, a prerequisite under CI).
# The exit status is non-zero exactly when N failed is not 0.
#
# Knobs: GO_TEST_FLAGS (extra flags for both go test runs, e.g. -run X);
# GATEHOUSE_TEST_RACE_PKGS (space-separated patterns tested with -race, the
# rest without; empty: no -race at all). Its default is ./...: on 2 cores
# `go test -race ./...` took 29s against 19s without, so everything races;
# narrow it (./internal/storage/... ./internal/as/...) if the budget needs.
# GATEHOUSE_FUZZTIME (how long step 6 fuzzes each target, default 10s; "off"
# skips the step, a skip that fails under CI=true). GATEHOUSE_TOOLS (where
# the pinned tools are kept, default ~/.cache/gatehouse-tools).
set -uo pipefail

cd "$(dirname "$0")/.." || exit 2
root=$PWD

# The toolchain go.mod names (its `toolchain` line): a patched Go for the
# standard-library fixes govulncheck reports. The machines set
# GOTOOLCHAIN=local, which ignores that line, so it is exported here; the go
# command fetches it from the Go module proxy once (about 76 MB).
export GOTOOLCHAIN=${GATEHOUSE_GOTOOLCHAIN:-$(awk '$1 == "toolchain" {print $2}' go.mod)}
[[ -n $GOTOOLCHAIN ]] || export GOTOOLCHAIN=local
echo "Go toolchain: $(go version)"
start=$SECONDS

# Pinned tools (bump deliberately; each is fetched through the Go module proxy).
staticcheck_version=v0.8.2
govulncheck_version=v1.9.0
vulndb_version=v0.0.0-20261105234957-e22db6528018

ci=false
[[ ${CI:-} == true ]] && ci=true

# The pinned tools are kept outside the clone, keyed by the Go version that
# built them, so a fresh clone on the same machine (CI's, a second worktree)
# does not build staticcheck and govulncheck again: GATEHOUSE_TOOLS, default
# the user cache directory. testreport, built from this clone, goes there too.
tools=${GATEHOUSE_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/gatehouse-tools}/$(go env GOVERSION)
mkdir -p "$tools/bin"
work=$(mktemp -d "${TMPDIR:-/tmp}/gatehouse-test.XXXXXX")

checks_passed=0
checks_failed=0
failed_steps=()
skipped_steps=()

# step NAME: announce a phase; the previous one ends with a "--- NAME: Ns"
# line, and the summary lists every phase's time.
phase= phase_start=0 timings=()
end_phase() {
	[[ -n $phase ]] || return 0
	local took=$((SECONDS - phase_start))
	printf -- '--- %s: %ds\n' "$phase" "$took"
	timings+=("$(printf '%5ds  %s' "$took" "$phase")")
	phase=
}
step() {
	end_phase
	phase=$* phase_start=$SECONDS
	printf '\n==> %s\n' "$*"
}
pass() { checks_passed=$((checks_passed + 1)); echo "PASS: $*"; }
fail() {
	checks_failed=$((checks_failed + 1))
	failed_steps+=("$*")
	echo "FAILED: $*"
}
# skip WHAT WHY: a prerequisite or tool that is not there. Fails under CI
# unless the third argument is "tool-unreachable".
skip() {
	if $ci && [[ ${3:-} != tool-unreachable ]]; then
		fail "$1 ($2; a skipped prerequisite is a failure under CI=true)"
	else
		skipped_steps+=("$1 ($2)")
		echo "SKIPPED: $1 ($2)"
	fi
}

pgdir= prereq_pid=
cleanup() {
	[[ -z $prereq_pid ]] || kill "$prereq_pid" 2>/dev/null
	if [[ -n $pgdir && -e $pgdir/pg-test.log ]]; then
		bash scripts/pg-test-stop.sh "$pgdir" >/dev/null 2>&1 ||
			echo "warning: scripts/pg-test-stop.sh $pgdir failed" >&2
	fi
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo "gatehouse test: $(go version), CI=${CI:-}, $(nproc) cores"

# --- 1-3b. Prerequisites, in the background -----------------------------------
# System packages, the npm peers, PostgreSQL, then Ory Hydra and Dex: mostly
# waiting on the network and on disk, so they run while the static checks
# (step 4) use the CPU (Hydra's and Dex's first builds compete for it; later
# runs reuse the binaries). Their output is shown, in one piece, when go test needs them. The
# subshell hands its results back through $work/prereq.results: one
# "skipped|failed|timing<TAB>text" line each (arrays do not cross a subshell).
prerequisites() {
	skipped_steps=() failed_steps=() timings=() checks_failed=0
	# --- 1. System packages ------------------------------------------------------
	step "system packages (postgresql, chromium)"
	have_postgres() { compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; }
	chromium_bin() { command -v chromium || command -v chromium-browser || command -v google-chrome; }
	missing=()
	have_postgres || missing+=(postgresql)
	chromium_bin >/dev/null || missing+=(chromium)
	if ((${#missing[@]} == 0)); then
		echo "present: $(compgen -G "/usr/lib/postgresql/*/bin" | sort -V | tail -1), $(chromium_bin)"
	elif [[ $(id -u) != 0 ]] || ! command -v apt-get >/dev/null; then
		echo "cannot install ${missing[*]}: not root or no apt-get"
	else
		echo "installing ${missing[*]}"
		export DEBIAN_FRONTEND=noninteractive
		if apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >"$work/apt.log" 2>&1; then
			echo "installed ${missing[*]}"
		else
			tail -20 "$work/apt.log"
		fi
	fi
	chromium_bin >/dev/null || skip "chromium" "not installed: the browser tests cannot run"

	# --- 2. npm peers -------------------------------------------------------------
	step "npm peers (test/interop, test/interop/conformance-alpha, test/interop/realclients)"
	if ! command -v npm >/dev/null; then
		skip "npm peers" "npm is not installed: the interop tests cannot run"
	else
		for prefix in test/interop test/interop/conformance-alpha test/interop/realclients; do
			stamp=$prefix/node_modules/.gatehouse-npm-ci
			want=$(cat "$prefix/package.json" "$prefix/package-lock.json" | sha256sum | cut -d' ' -f1)
			if [[ -f $stamp && $(<"$stamp") == "$want" ]]; then
				echo "$prefix: node_modules matches package-lock.json"
				continue
			fi
			# Once more from an empty node_modules if it fails: npm ci
			# can trip over a half-removed tree (ENOTEMPTY) or a network
			# blip; a second failure is real.
			if npm ci --prefix "$prefix" --no-audit --no-fund --loglevel=error ||
				{ echo "npm ci --prefix $prefix failed; once more from an empty node_modules"; rm -rf "$prefix/node_modules"; npm ci --prefix "$prefix" --no-audit --no-fund --loglevel=error; }; then
				echo "$want" >"$stamp"
			else
				skip "npm peers in $prefix" "npm ci failed twice"
			fi
		done
	fi

	# --- 3. PostgreSQL ------------------------------------------------------------
	step "PostgreSQL (scripts/pg-test-start.sh)"
	if [[ ! -f scripts/pg-test-start.sh ]]; then
		skip "postgres" "scripts/pg-test-start.sh is missing"
	elif ! have_postgres; then
		skip "postgres" "Debian's postgresql is not installed: the PostgreSQL storage tests cannot run"
	else
		if line=$(PG_WAIT_SECONDS=10 bash scripts/pg-test-start.sh "$pgdir") &&
			[[ $line == GATEHOUSE_TEST_POSTGRES_DSN=postgres://* ]]; then
			echo "$line" >"$work/pg.env"
			echo "$line"
		else
			skip "postgres" "scripts/pg-test-start.sh failed: $(tail -3 "$pgdir/pg-test.log" 2>/dev/null | tr '\n' ' ')"
		fi
	fi

	# --- 3b. Ory Hydra ------------------------------------------------------------
	# The upstream OpenID provider of TestUpstreamOIDC. Built once per Go
	# version into the tools directory (build.sh reuses the binary it finds
	# there); a GATEHOUSE_TEST_HYDRA already set is used as it is.
	hydra_dir=${HYDRA_WORKDIR:-$tools/hydra-v2.3.0}
	step "Ory Hydra v2.3.0 (scripts/hydra/build.sh $hydra_dir)"
	if [[ -n ${GATEHOUSE_TEST_HYDRA:-} ]]; then
		echo "GATEHOUSE_TEST_HYDRA=$GATEHOUSE_TEST_HYDRA (from the environment)"
	elif hydra_bin=$(bash scripts/hydra/build.sh "$hydra_dir" 2>"$work/hydra-build.log" | tail -1) && [[ -x $hydra_bin ]]; then
		tail -1 "$work/hydra-build.log"
		echo "GATEHOUSE_TEST_HYDRA=$hydra_bin" >"$work/hydra.env"
		echo "GATEHOUSE_TEST_HYDRA=$hydra_bin"
	else
		tail -20 "$work/hydra-build.log"
		skip "Ory Hydra" "scripts/hydra/build.sh $hydra_dir failed: TestUpstreamOIDC cannot run against Hydra"
	fi

	# The second upstream provider of TestUpstreamOIDC (its groups claim),
	# built and handed over like Hydra.
	dex_dir=${DEX_WORKDIR:-$tools/dex-v2.45.1}
	step "Dex v2.45.1 (scripts/dex/build.sh $dex_dir)"
	if [[ -n ${GATEHOUSE_TEST_DEX:-} ]]; then
		echo "GATEHOUSE_TEST_DEX=$GATEHOUSE_TEST_DEX (from the environment)"
	elif dex_bin=$(bash scripts/dex/build.sh "$dex_dir" 2>"$work/dex-build.log" | tail -1) && [[ -x $dex_bin ]]; then
		tail -1 "$work/dex-build.log"
		echo "GATEHOUSE_TEST_DEX=$dex_bin" >"$work/dex.env"
		echo "GATEHOUSE_TEST_DEX=$dex_bin"
	else
		tail -20 "$work/dex-build.log"
		skip "Dex" "scripts/dex/build.sh $dex_dir failed: TestUpstreamOIDC cannot run against Dex"
	fi
	end_phase
	{
		for x in "${skipped_steps[@]}"; do printf 'skipped\t%s\n' "$x"; done
		for x in "${failed_steps[@]}"; do printf 'failed\t%s\n' "$x"; done
		for x in "${timings[@]}"; do printf 'timing\t%s\n' "$x"; done
	} >"$work/prereq.results"
}
pgdir=$(mktemp -d "${TMPDIR:-/tmp}/gatehouse-pg.XXXXXX")
prerequisites >"$work/prereq.log" 2>&1 &
prereq_pid=$!

# join_prerequisites: wait for the background steps 1-3b, print their
# output, and take over their results, the PostgreSQL DSN and Hydra's and
# Dex's paths.
join_prerequisites() {
	end_phase
	local took_from=$SECONDS kind text
	wait "$prereq_pid"
	prereq_pid=
	cat "$work/prereq.log"
	printf -- '--- (waited %ds for the steps above)\n' $((SECONDS - took_from))
	while IFS=$'\t' read -r kind text; do
		case $kind in
		skipped) skipped_steps+=("$text") ;;
		failed) failed_steps+=("$text") checks_failed=$((checks_failed + 1)) ;;
		timing) timings+=("$text") ;;
		esac
	done <"$work/prereq.results"
	if [[ -s $work/pg.env ]]; then
		export "$(<"$work/pg.env")"
	fi
	if [[ -s $work/hydra.env ]]; then
		export "$(<"$work/hydra.env")"
	fi
	if [[ -s $work/dex.env ]]; then
		export "$(<"$work/dex.env")"
	fi
}

# --- 4. Static checks -----------------------------------------------------------
step "gofmt -l"
# Every .go file the go command would see: not under node_modules, testdata,
# or directories starting with . or _.
unformatted=$(find . \( -name node_modules -o -name testdata -o -name '[._]?*' \) -prune -o -name '*.go' -type f -print0 |
	xargs -0 -r gofmt -l)
if [[ -z $unformatted ]]; then
	pass "gofmt"
else
	echo "$unformatted"
	fail "gofmt (files above are not formatted)"
fi

step "go vet ./..."
if go vet ./...; then pass "go vet"; else fail "go vet"; fi

# install_tool PKG@VERSION NAME: go install into $tools/bin unless that exact
# version is there. Fails when the proxy does not serve it.
install_tool() {
	local pkg=$1 name=$2 version=${1##*@}
	if [[ -x $tools/bin/$name && $(<"$tools/bin/$name.version" 2>/dev/null) == "$version" ]]; then
		return 0
	fi
	if GOBIN=$tools/bin go install "$pkg" >"$work/install-$name.log" 2>&1; then
		echo "$version" >"$tools/bin/$name.version"
		return 0
	fi
	cat "$work/install-$name.log"
	return 1
}

step "staticcheck $staticcheck_version"
if ! install_tool "honnef.co/go/tools/cmd/staticcheck@$staticcheck_version" staticcheck; then
	skip "staticcheck" "go install honnef.co/go/tools/cmd/staticcheck@$staticcheck_version failed: the module proxy did not serve it" tool-unreachable
elif "$tools/bin/staticcheck" ./...; then
	pass "staticcheck"
else
	fail "staticcheck"
fi

step "govulncheck $govulncheck_version (local vulnerability database golang.org/x/vulndb@$vulndb_version)"
# The database is the x/vulndb module's data/osv directory: a flat directory
# of <ID>.json OSV entries, which govulncheck -db file:// reads directly (it
# builds the index/ endpoints itself when index/modules.json is absent).
# Downloaded outside the main module, so go.mod and go.sum stay untouched.
vulndb_dir=
if json=$(cd "$work" && GOFLAGS=-mod=mod go mod download -json "golang.org/x/vulndb@$vulndb_version" 2>&1); then
	vulndb_dir=$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p' <<<"$json")
fi
if [[ -z $vulndb_dir || ! -d $vulndb_dir/data/osv ]]; then
	echo "$json" | tail -5
	skip "govulncheck" "go mod download golang.org/x/vulndb@$vulndb_version failed: the module proxy did not serve it" tool-unreachable
elif ! install_tool "golang.org/x/vuln/cmd/govulncheck@$govulncheck_version" govulncheck; then
	skip "govulncheck" "go install golang.org/x/vuln/cmd/govulncheck@$govulncheck_version failed: the module proxy did not serve it" tool-unreachable
else
	echo "database: $vulndb_dir/data/osv ($(find "$vulndb_dir/data/osv" -name '*.json' | wc -l) entries)"
	vulncheck=("$tools/bin/govulncheck" -db "file://$vulndb_dir/data/osv" ./...)
	if "${vulncheck[@]}" >"$work/govulncheck.txt" 2>&1; then
		tail -1 "$work/govulncheck.txt"
		pass "govulncheck"
	else
		# Without the call traces (hundreds of lines per finding).
		grep -Ev '^ +#[0-9]+: |^ +Example traces found:' "$work/govulncheck.txt"
		echo "(call traces: ${vulncheck[*]})"
		fail "govulncheck (vulnerabilities found, or it could not run: see above)"
	fi
fi

join_prerequisites

# --- 5. Tests -----------------------------------------------------------------
step "go test -count=1 ./... (-race: ${GATEHOUSE_TEST_RACE_PKGS-./...})"
tests_passed=0 tests_failed=0 tests_skipped=0
read -r -a race_patterns <<<"${GATEHOUSE_TEST_RACE_PKGS-./...}"
read -r -a extra <<<"${GO_TEST_FLAGS:-}"
race_pkgs=()
if ((${#race_patterns[@]} > 0)); then
	mapfile -t race_pkgs < <(go list -e "${race_patterns[@]}")
fi
mapfile -t all_pkgs < <(go list -e ./...)
declare -A is_race=()
for p in "${race_pkgs[@]}"; do is_race[$p]=1; done
plain_pkgs=()
for p in "${all_pkgs[@]}"; do [[ -n ${is_race[$p]:-} ]] || plain_pkgs+=("$p"); done

report_flags=(-counts "$work/counts" -allowlist scripts/skip-allowlist.txt)
$ci && report_flags+=(-fail-skips)
if ! go build -o "$work/testreport" ./scripts/testreport; then
	fail "build scripts/testreport"
else
	test_start=$SECONDS
	{
		rc=0
		if ((${#plain_pkgs[@]} > 0)); then
			go test -json -count=1 "${extra[@]}" "${plain_pkgs[@]}" || rc=$?
		fi
		if ((${#race_pkgs[@]} > 0)); then
			go test -json -count=1 -race "${extra[@]}" "${race_pkgs[@]}" || rc=$?
		fi
		echo "$rc" >"$work/go-test.rc"
	} 2>&1 | tee "$work/go-test.json" | "$work/testreport" "${report_flags[@]}"
	echo "go test took $((SECONDS - test_start))s"
	if [[ -s $work/counts ]]; then
		read -r tests_passed tests_failed tests_skipped <"$work/counts"
	fi
	if [[ ! -s $work/counts ]]; then
		fail "go test (no results)"
	elif (($(<"$work/go-test.rc") != 0 && tests_failed == 0)); then
		fail "go test exited $(<"$work/go-test.rc") without a failed test"
	fi
fi

# --- 6. Fuzzing ---------------------------------------------------------------
fuzztime=${GATEHOUSE_FUZZTIME:-10s}
step "fuzz every target for $fuzztime (scripts/fuzz.sh)"
if [[ $fuzztime == off ]]; then
	skip "fuzzing" "GATEHOUSE_FUZZTIME=off"
elif bash scripts/fuzz.sh -t "$fuzztime" -m 2s -j "$(nproc)"; then
	pass "fuzz each target for $fuzztime"
else
	fail "fuzz (a target failed: see its log above; the crasher is in testdata/fuzz)"
fi

# --- Summary ------------------------------------------------------------------
step "summary"
elapsed=$((SECONDS - start))
echo "phases (1-3 ran in the background, during 4):"
printf '%s\n' "${timings[@]}"
printf 'took %dm%02ds\n' $((elapsed / 60)) $((elapsed % 60))
for s in "${skipped_steps[@]}"; do echo "SKIPPED: $s"; done
for f in "${failed_steps[@]}"; do echo "FAILED: $f"; done
echo "tests: $tests_passed passed, $tests_failed failed, $tests_skipped skipped; checks: $checks_passed passed, $checks_failed failed"
total_failed=$((tests_failed + checks_failed))
echo "$((tests_passed + checks_passed)) passed, $total_failed failed"
((total_failed == 0))
