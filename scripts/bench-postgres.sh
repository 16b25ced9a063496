#!/bin/bash
# The writer's visits/s into PostgreSQL beside SQLite's: starts a throw-away PostgreSQL 15 cluster
# (initdb and postgres from /usr/lib/postgresql/15/bin, run as the postgres user, on a unix socket in a
# temporary folder, fsync and synchronous_commit at their defaults) and runs visitor-counter-bench
# against it. Run as root (it switches to postgres for the server).
#
#   scripts/bench-postgres.sh
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh bench >&2
bin=/usr/lib/postgresql/15/bin
[ -x "$bin/initdb" ] || { echo "$bin/initdb is missing: run scripts/install-deps.sh test" >&2; exit 1; }
dir=$(mktemp -d /tmp/visitor-counter-bench-pg.XXXXXX)
chown postgres: "$dir"
server=
cleanup() {
    [ -n "$server" ] && kill -INT "$server" 2>/dev/null && wait "$server" 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT
setpriv --reuid=postgres --regid=postgres --init-groups "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 >/dev/null
setpriv --reuid=postgres --regid=postgres --init-groups "$bin/postgres" -D "$dir/data" -k "$dir" -p 5432 \
    -c listen_addresses= >"$dir/server.log" 2>&1 &
server=$!
for _ in $(seq 100); do [ -S "$dir/.s.PGSQL.5432" ] && break; sleep 0.1; done
sleep 0.5
swift build -c release --product visitor-counter-bench >&2
.build/release/visitor-counter-bench --postgres "postgresql:///postgres?host=$dir&port=5432&user=postgres"
