#!/usr/bin/env bash
# pg-test-stop.sh DIR — stop the PostgreSQL that pg-test-start.sh started in
# DIR and delete the cluster. Only a DIR that pg-test-start.sh initialised
# (it holds .gatehouse-pg-test) is deleted; set PG_KEEP=1 to keep it.
set -euo pipefail

dir=${1:?usage: pg-test-stop.sh DIR}
[[ -d $dir/data ]] || { echo "pg-test-stop: no cluster in $dir" >&2; exit 1; }

as_pg=()
[[ $(id -u) == 0 ]] && as_pg=(runuser -u postgres --)
version=$(cat "$dir/data/PG_VERSION")
bindir=/usr/lib/postgresql/$version/bin

if "${as_pg[@]}" "$bindir/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
	"${as_pg[@]}" "$bindir/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >>"$dir/pg-test.log" 2>&1 ||
		{ echo "pg-test-stop: pg_ctl stop failed, see $dir/pg-test.log" >&2; exit 1; }
fi

if [[ -z ${PG_KEEP:-} && -e $dir/.gatehouse-pg-test ]]; then
	rm -rf -- "$dir/data" "$dir/postgres.log" "$dir/pg-test.log" "$dir/dsn" "$dir/.gatehouse-pg-test"
	rmdir -- "$dir" 2>/dev/null || true
fi
