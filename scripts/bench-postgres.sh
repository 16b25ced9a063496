#!/bin/bash
# The writer's visits/s into PostgreSQL beside SQLite's: starts a throw-away PostgreSQL 15 cluster
# (scripts/postgres-local.sh) and runs visitor-counter-bench against it. Run as root (it switches to
# postgres for the server). scripts/bench.sh runs this too, beside its GET / rounds with each store.
#
#   scripts/bench-postgres.sh
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh bench >&2
. scripts/postgres-local.sh
dir=$(mktemp -d /tmp/visitor-counter-bench-pg.XXXXXX)
postgres_pid=
cleanup() {
    [ -n "$postgres_pid" ] && kill -INT "$postgres_pid" 2>/dev/null && wait "$postgres_pid" 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT
start_local_postgres "$dir"
swift build -c release --product visitor-counter-bench >&2
.build/release/visitor-counter-bench --postgres "$postgres_uri"
