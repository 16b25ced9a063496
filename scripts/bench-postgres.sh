#!/bin/bash
# The writer's visits/s into PostgreSQL beside SQLite's: starts a throw-away PostgreSQL 15 cluster
# (scripts/postgres-local.sh) and runs visitor-counter-bench against it. Run as root (it switches to
# postgres for the server). scripts/bench.sh runs this too, beside its GET / rounds with each store.
#
#   scripts/bench-postgres.sh                  # SQLite and PostgreSQL, then the reads
#   scripts/bench-postgres.sh --postgres-only  # the PostgreSQL writer alone
#
# It also prints the CPU time the server's processes used during the run, per visit written into
# PostgreSQL: with the bench's client_cpu_us, where the writer's time goes on a machine that is shared.
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
# utime, stime and the reaped children's cutime and cstime of the postmaster and its processes, in ticks.
server_ticks() {
    local total=0 pid
    for pid in "$postgres_pid" $(pgrep -P "$postgres_pid"); do
        total=$((total + $(awk '{ print $14 + $15 + $16 + $17 }' "/proc/$pid/stat" 2>/dev/null || echo 0)))
    done
    echo "$total"
}
before=$(server_ticks)
.build/release/visitor-counter-bench --postgres "$postgres_uri" "$@" | tee "$dir/bench.out"
sleep 1 # the bench's backend has exited: the postmaster has reaped it and counts its CPU time
after=$(server_ticks)
visits=$(awk '/store=postgresql/ { for (i = 1; i <= NF; i++) if ($i ~ /^visits=/) { sub("visits=", "", $i); n += $i } } END { print n + 0 }' "$dir/bench.out")
awk -v ticks=$((after - before)) -v hz="$(getconf CLK_TCK)" -v visits="$visits" \
    'BEGIN { s = ticks / hz; printf "server cpu_s=%.2f  visits=%d  server_cpu_us=%.1f\n", s, visits, visits ? s / visits * 1e6 : 0 }'
