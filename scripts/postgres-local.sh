# Sourced by the benchmark scripts: start_local_postgres DIR makes a throw-away PostgreSQL 15 cluster in
# DIR (initdb and postgres from /usr/lib/postgresql/15/bin, run as the postgres user, listening only on
# a unix socket in DIR, fsync and synchronous_commit at their defaults), waits until it takes
# connections, and sets postgres_pid (stop it with kill -INT) and postgres_uri (the postgres database
# as the postgres superuser). Run as root: it switches to postgres for the server.
postgres_bin=/usr/lib/postgresql/15/bin

start_local_postgres() {
    local dir=$1
    [ -x "$postgres_bin/initdb" ] || { echo "$postgres_bin/initdb is missing: run scripts/install-deps.sh test" >&2; return 1; }
    mkdir -p "$dir"
    chown postgres: "$dir"
    setpriv --reuid=postgres --regid=postgres --init-groups "$postgres_bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 >/dev/null
    setpriv --reuid=postgres --regid=postgres --init-groups "$postgres_bin/postgres" -D "$dir/data" -k "$dir" -p 5432 \
        -c listen_addresses= >"$dir/server.log" 2>&1 &
    postgres_pid=$!
    postgres_uri="postgresql:///postgres?host=$dir&port=5432&user=postgres"
    for _ in $(seq 300); do
        "$postgres_bin/pg_isready" -q -h "$dir" -p 5432 && return 0
        sleep 0.1
    done
    echo "PostgreSQL did not start within 30 s: see $dir/server.log" >&2
    return 1
}

# create_local_database DIR NAME: an empty database NAME in the cluster of DIR; prints its URI.
create_local_database() {
    setpriv --reuid=postgres --regid=postgres --init-groups "$postgres_bin/createdb" -h "$1" -p 5432 -U postgres "$2"
    echo "postgresql:///$2?host=$1&port=5432&user=postgres"
}
