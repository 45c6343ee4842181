#!/usr/bin/env bash
# pg-test-start.sh [DIR] — start a throwaway PostgreSQL for the storage tests.
#
# Uses Debian's postgresql package (/usr/lib/postgresql/*/bin), waiting up
# to PG_WAIT_SECONDS (default 300) for it to appear, since CI may still be
# installing it. The cluster lives in DIR (default: a new mktemp dir),
# listens only on 127.0.0.1 (port $PGPORT, or a free one), trusts loopback
# connections, has no Unix socket, and runs with fsync off: it is for tests
# only. Works as root: initdb and postgres refuse to run as root, so they
# run as the postgres user and DIR is handed to it.
#
# Prints exactly one line on stdout, for `export "$(scripts/pg-test-start.sh)"`:
#   GATEHOUSE_TEST_POSTGRES_DSN=postgres://postgres@127.0.0.1:PORT/gatehouse_test?sslmode=disable
# Everything else goes to DIR/pg-test.log (server log: DIR/postgres.log).
# Stop it with scripts/pg-test-stop.sh DIR.
set -euo pipefail

dir=${1:-$(mktemp -d "${TMPDIR:-/tmp}/gatehouse-pg.XXXXXX")}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
log=$dir/pg-test.log
: >>"$log"

fail() {
	echo "pg-test-start: $*" >&2
	echo "pg-test-start: see $log and $dir/postgres.log" >&2
	echo "FAILED: $*" >>"$log"
	exit 1
}
say() { echo "$(date -u +%FT%TZ) $*" >>"$log"; }

# Find the newest installed server, waiting for apt if need be.
wait_s=${PG_WAIT_SECONDS:-300}
bindir=
for ((i = 0; i <= wait_s; i++)); do
	for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
		if [[ -x $d/initdb && -x $d/pg_ctl && -x $d/postgres && -x $d/pg_isready && -x $d/createdb ]]; then
			bindir=$d
			break 2
		fi
	done
	((i == 0)) && say "waiting up to ${wait_s}s for /usr/lib/postgresql/*/bin"
	sleep 1
done
[[ -n $bindir ]] || fail "no PostgreSQL server under /usr/lib/postgresql after ${wait_s}s (apt-get install postgresql)"
say "using $bindir"

# As root, run the server tools as postgres; otherwise as ourselves.
as_pg=()
if [[ $(id -u) == 0 ]]; then
	id postgres >/dev/null 2>&1 || fail "no postgres user (install Debian's postgresql package)"
	chown postgres: "$dir" "$log"
	as_pg=(runuser -u postgres --)
	"${as_pg[@]}" test -w "$dir" || fail "user postgres cannot write $dir (is a parent directory private?)"
fi
pg() { "${as_pg[@]}" "$@"; }

data=$dir/data
if [[ ! -s $data/PG_VERSION ]]; then
	say "initdb $data"
	pg "$bindir/initdb" -D "$data" -U postgres --auth=trust --encoding=UTF8 --locale=C >>"$log" 2>&1 ||
		fail "initdb failed"
	# Throwaway cluster: loopback only, no socket, durability off for speed.
	cat >>"$data/postgresql.conf" <<-'CONF'
		# pg-test-start.sh
		listen_addresses = '127.0.0.1'
		unix_socket_directories = ''
		fsync = off
		synchronous_commit = off
		full_page_writes = off
		max_connections = 200
	CONF
	# Trust loopback TCP only (initdb's file also has local and ::1 lines).
	printf '%s\n' '# pg-test-start.sh: loopback only' 'host all all 127.0.0.1/32 trust' >"$data/pg_hba.conf"
	chown --reference="$data/postgresql.conf" "$data/pg_hba.conf"
	touch "$dir/.gatehouse-pg-test"
fi
if pg "$bindir/pg_ctl" -D "$data" status >>"$log" 2>&1; then
	fail "a server is already running in $data (scripts/pg-test-stop.sh $dir)"
fi

# port_free PORT: nothing accepts connections on 127.0.0.1:PORT.
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

started=
for attempt in 1 2 3 4 5; do
	port=${PGPORT:-$((20000 + RANDOM % 40000))}
	port_free "$port" || { [[ -n ${PGPORT:-} ]] && fail "port $port is in use"; continue; }
	say "starting on 127.0.0.1:$port (attempt $attempt)"
	if pg "$bindir/pg_ctl" -D "$data" -l "$dir/postgres.log" -o "-p $port" -w -t 60 start >>"$log" 2>&1; then
		started=1
		break
	fi
	[[ -n ${PGPORT:-} ]] && break # a fixed port will not get better
done
[[ -n $started ]] || fail "postgres did not start"

for ((i = 0; i < 60; i++)); do
	pg "$bindir/pg_isready" -q -h 127.0.0.1 -p "$port" -U postgres && break
	sleep 0.5
done
pg "$bindir/pg_isready" -q -h 127.0.0.1 -p "$port" -U postgres || fail "postgres is not accepting connections"

if ! pg "$bindir/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -Atqc \
	"SELECT 1 FROM pg_database WHERE datname = 'gatehouse_test'" | grep -q 1; then
	pg "$bindir/createdb" -h 127.0.0.1 -p "$port" -U postgres gatehouse_test >>"$log" 2>&1 ||
		fail "createdb gatehouse_test failed"
fi

dsn="postgres://postgres@127.0.0.1:$port/gatehouse_test?sslmode=disable"
echo "$dsn" >"$dir/dsn"
say "ready: $dsn"
echo "GATEHOUSE_TEST_POSTGRES_DSN=$dsn"
