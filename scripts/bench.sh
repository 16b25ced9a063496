#!/usr/bin/env bash
# The side-by-side benchmark. Starts one nginx (the project's site config, with GeoIP) in front of:
#   counter  the responder, release build, default settings: GET / and GET /api/sys/stats
#   limit    bench/limit-responder.c: libfcgi's thread-per-connection loop, same processes and threads,
#            answering the bytes the counter answers (its page for GET /, its stats JSON for the API)
#   php      PHP-FPM running bench/php/index.php: one SQLite transaction per visit
#   pg       the counter again, with a throw-away local PostgreSQL 15 cluster as its store
#            (scripts/postgres-local.sh; run as root, it switches to postgres for the server)
# and loads them with wrk in alternating rounds (counter, limit, php, counter stats, ...), every
# request from another address over several countries. Then: a round of GET / while another process
# writes batches of 100,000 visits into the same database, a 30 s run for the workers' RSS, the
# writer's visits/s, and the check that the visits stored match the 200 answers, for each store; then
# visitor-counter-bench's writer into SQLite and into an empty PostgreSQL database.
#
# Every round also loads a static page of the site (bench/page.html) served by nginx from its root,
# counted through the shipped mirror (page) and, as the control, from a site without the mirror
# (page-static): what counting a page costs nginx's page. --pages-only runs only these rounds, with
# the counter on SQLite, and prints their lines without touching the docs.
#
# With --baseline REV, the counter as built from commit REV (release, in .build-baseline) runs beside
# it behind the same nginx, and its GET / rounds alternate with the counter's: the table then shows
# what the changes since REV cost per request (d1e0357 is the last commit before the visit journal).
#
#   scripts/bench.sh [--seconds 10] [--rounds 3] [--connections 64] [--baseline REV] [--no-docs] [--pages-only]
#
# Prints a table and (unless --no-docs) puts it in docs/performance.md between the bench markers.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=10 rounds=3 connections=64 update_docs=yes baseline= pages_only=no
results_page=docs/performance.md
while [ $# -gt 0 ]; do
    case $1 in
        --seconds) seconds=$2; shift 2 ;;
        --rounds) rounds=$2; shift 2 ;;
        --connections) connections=$2; shift 2 ;;
        --baseline) baseline=$2; shift 2 ;;
        --no-docs|--no-readme) update_docs=no; shift ;;
        --pages-only) pages_only=yes update_docs=no; shift ;;
        *) echo "usage: scripts/bench.sh [--seconds N] [--rounds N] [--connections N] [--baseline REV] [--no-docs] [--pages-only]" >&2; exit 2 ;;
    esac
done

scripts/install-deps.sh bench >&2
swift build -c release --product visitor-counter >&2
[ "$pages_only" = yes ] || swift build -c release --product visitor-counter-bench >&2
. scripts/postgres-local.sh
counter_bin=$PWD/.build/release/visitor-counter
if [ -n "$baseline" ]; then
    # The baseline's sources from git (no worktree to register), built in a scratch folder of their own.
    baseline_src=/tmp/visitor-counter-baseline-$(git rev-parse --short "$baseline")
    if [ ! -f "$baseline_src/Package.swift" ]; then
        mkdir -p "$baseline_src"
        git archive "$baseline" | tar -x -C "$baseline_src"
    fi
    swift build -c release --product visitor-counter --package-path "$baseline_src" --scratch-path "$PWD/.build-baseline" >&2
    baseline_bin=$PWD/.build-baseline/release/visitor-counter
fi
php_fpm=$(ls /usr/sbin/php-fpm* | head -1)

dir=$PWD/run/bench
rm -rf "$dir" && mkdir -p "$dir"
cc -O2 -o "$dir/limit-responder" bench/limit-responder.c -lfcgi -lpthread
workers=$(nproc) threads=16   # the counter's defaults
port_counter=8081 port_limit=8082 port_php=8083 port_baseline=8084 port_pg=8085 port_static=8086

# One nginx, three sites made from the project's site config: only the port, the upstream socket
# and (for PHP) the script differ.
scripts/nginx-local.sh "$dir" "$port_counter" "$dir/counter.sock"
# The other sites are the first one's server part (the country lookup and its variables are defined
# once per http block, by the first site), with another port, upstream and socket.
other_site() {  # NAME PORT [sed expression ...]
    local name=$1 port=$2; shift 2
    sed -n '/^upstream /,$p' "$dir/site.conf" | sed -e "s|visitor_counter|${name}_upstream|g" \
        -e "s|unix:$dir/counter.sock|unix:$dir/$name.sock|" \
        -e "s|listen 127.0.0.1:$port_counter;|listen 127.0.0.1:$port;|" -e "s|listen \[::1\]:$port_counter;|listen [::1]:$port;|" \
        "$@" > "$dir/site-$name.conf"
    sed -i "s|include $dir/site.conf;|include $dir/site.conf; include $dir/site-$name.conf;|" "$dir/nginx.conf"
}
other_site limit "$port_limit"
other_site php "$port_php" \
    -e "s|include /etc/nginx/fastcgi_params;|include /etc/nginx/fastcgi_params; fastcgi_param SCRIPT_FILENAME $PWD/bench/php/index.php; fastcgi_param COUNTER_DB $dir/php.sqlite;|"
if [ -n "$baseline" ]; then other_site baseline "$port_baseline"; fi
other_site pg "$port_pg"
# The same site without the mirror: nginx's static page as it costs without the counter.
other_site static "$port_static" -e '/^ *mirror \/_static_upstream_page;/d'
! grep -q '^ *mirror /' "$dir/site-static.conf" || { echo "the static site still has its mirror" >&2; exit 1; }
cp bench/page.html "$dir/html/bench-page.html"
page_url=/bench-page.html

cat > "$dir/php-fpm.conf" <<CONF
[global]
pid = $dir/php-fpm.pid
error_log = $dir/php-fpm.log
daemonize = no
[counter]
listen = $dir/php.sock
listen.mode = 0666
pm = static
pm.max_children = $((workers * threads))
clear_env = no
CONF

pids=()
postgres_pid=
cleanup() {
    for pid in "${pids[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true; done
    [ -z "$postgres_pid" ] || kill -INT "$postgres_pid" 2>/dev/null || true
    wait 2>/dev/null || true
}
trap cleanup EXIT
setsid "$counter_bin" serve --listen "unix:$dir/counter.sock" --database "$dir/visitors.sqlite" 2>"$dir/counter.log" &
counter_pid=$!; pids+=("$counter_pid")
sockets="counter"
if [ "$pages_only" = no ]; then
start_local_postgres "$dir/postgres"
pg_uri=$postgres_uri
mkdir -p "$dir/pg-state"
setsid "$php_fpm" -R -F -y "$dir/php-fpm.conf" 2>"$dir/php-fpm.stderr" &
php_pid=$!; pids+=("$php_pid")
setsid "$counter_bin" serve --listen "unix:$dir/pg.sock" --database "$pg_uri" --state-directory "$dir/pg-state" 2>"$dir/pg.log" &
pg_counter_pid=$!; pids+=("$pg_counter_pid")
sockets="counter php pg"
fi
if [ -n "$baseline" ] && [ "$pages_only" = no ]; then
    mkdir -p "$dir/baseline"
    setsid "$baseline_bin" serve --listen "unix:$dir/baseline.sock" --database "$dir/baseline/visitors.sqlite" 2>"$dir/baseline.log" &
    baseline_pid=$!; pids+=("$baseline_pid")
    sockets="$sockets baseline"
fi
for socket in $sockets; do
    for _ in $(seq 100); do [ -S "$dir/$socket.sock" ] && break; sleep 0.1; done
    [ -S "$dir/$socket.sock" ] || { echo "the $socket responder did not start; see $dir" >&2; exit 1; }
done
setsid nginx -c "$dir/nginx.conf" 2>"$dir/nginx.log" &
pids+=("$!")
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$port_counter/api/sys/stats" && break; sleep 0.1; done

# The limit answers what the counter answers: its headers (less nginx's own) and body, as a responder writes them.
capture() {
    curl -s -A "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0" -D "$dir/headers" -o "$dir/body" "$1"
    { printf 'Status: 200 OK\r\n'
      grep -viE '^(HTTP/|server|date|connection|keep-alive|transfer-encoding|content-length):' "$dir/headers" | tr -d '\r' | grep . | sed 's/$/\r/'
      printf 'Content-Length: %s\r\n\r\n' "$(stat -c %s "$dir/body")"
      cat "$dir/body"; } > "$2"
}
if [ "$pages_only" = no ]; then
capture "http://127.0.0.1:$port_counter/" "$dir/page.answer"
capture "http://127.0.0.1:$port_counter/api/sys/stats" "$dir/stats.answer"
setsid "$dir/limit-responder" "$dir/limit.sock" "$workers" "$threads" "$dir/page.answer" "$dir/stats.answer" 2>"$dir/limit.log" &
limit_pid=$!; pids+=("$limit_pid")
for _ in $(seq 100); do [ -S "$dir/limit.sock" ] && break; sleep 0.1; done
[ -S "$dir/limit.sock" ] || { echo "the limit responder did not start; see $dir" >&2; exit 1; }
fi

# CPU time (user + system, in clock ticks) used so far by the children of process $1: the workers.
cpu_ticks() { local total=0 pid; for pid in $(pgrep -P "$1"); do total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat"))); done; echo "$total"; }
hz=$(getconf CLK_TCK)

# run NAME URL SECONDS: one wrk run; appends "NAME rps p50 p99 ok failed cpu_us_per_request" to results.
answered=0   # 200 answers to GET / from the counter, to check against the visits stored
answered_pg=0   # the same for the counter on PostgreSQL
runs=0 runs_pg=0
answered_pages=0   # 200 answers to the mirrored page: each a page view once its mirror is through
run() {
    local name=$1 url=$2 duration=$3 line server before after
    case $url in
        *":$port_counter/"*) server=$counter_pid ;;
        *":$port_limit/"*) server=$limit_pid ;;
        *":$port_baseline/"*) server=$baseline_pid ;;
        *":$port_pg/"*) server=$pg_counter_pid ;;
        *":$port_static/"*) server=$counter_pid ;;   # no counter work: the control's CPU is nginx's
        *) server=$php_pid ;;
    esac
    before=$(cpu_ticks "$server")
    line=$(wrk -t 2 -c "$connections" -d "${duration}s" --latency -s bench/wrk.lua "$url" | grep '^RESULT')
    after=$(cpu_ticks "$server")
    local rps p50 p99 ok failed cpu
    rps=$(sed -E 's/.* rps=([0-9.]+).*/\1/' <<<"$line")
    p50=$(sed -E 's/.* p50_ms=([0-9.]+).*/\1/' <<<"$line")
    p99=$(sed -E 's/.* p99_ms=([0-9.]+).*/\1/' <<<"$line")
    ok=$(sed -E 's/.* ok=([0-9]+).*/\1/' <<<"$line")
    failed=$(sed -E 's/.* failed=([0-9]+).*/\1/' <<<"$line")
    cpu=$(awk -v ticks=$((after - before)) -v hz="$hz" -v requests="$(sed -E 's/.*requests=([0-9]+).*/\1/' <<<"$line")" \
        'BEGIN {printf "%.1f", ticks / hz * 1e6 / requests}')
    echo "$name $rps $p50 $p99 $ok $failed $cpu" >> "$dir/results"
    if [ "$url" = "http://127.0.0.1:$port_counter/" ]; then answered=$((answered + ok)); runs=$((runs + 1)); fi
    if [ "$url" = "http://127.0.0.1:$port_pg/" ]; then answered_pg=$((answered_pg + ok)); runs_pg=$((runs_pg + 1)); fi
    if [ "$url" = "http://127.0.0.1:$port_counter$page_url" ]; then answered_pages=$((answered_pages + ok)); fi
    printf '%-14s %10.0f req/s  p50 %7.2f ms  p99 %7.2f ms  failed %s  %s µs CPU/request\n' "$name" "$rps" "$p50" "$p99" "$failed" "$cpu" >&2
}

: > "$dir/results"
# The static page with and without the mirror, alternating: requests/s and latency of each and their ratio.
page_rounds() {
    run page "http://127.0.0.1:$port_counter$page_url" "$seconds"
    run page-static "http://127.0.0.1:$port_static$page_url" "$seconds"
}
page_report() {
    local rps_page rps_static
    rps_page=$(median page 2) rps_static=$(median page-static 2)
    printf '| %s | %.0f | %.2f | %.2f | %.1f | %s |\n' "nginx's static page, counted through the mirror" "$rps_page" \
        "$(median page 3)" "$(median page 4)" "$(median page 7)" \
        "$(ratio "$rps_page" "$rps_static")x the control's requests/s, $(ratio "$(median page 4)" "$(median page-static 4)")x its p99"
    printf '| %s | %.0f | %.2f | %.2f | %.1f | %s |\n' "control: the same page, no mirror" "$rps_static" \
        "$(median page-static 3)" "$(median page-static 4)" "$(median page-static 7)" "1.00x"
}
if [ "$pages_only" = yes ]; then
    median() { awk -v name="$1" -v field="$2" '$1 == name {print $field}' "$dir/results" | sort -g | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
    ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
    echo "warming up" >&2
    run warmup-page "http://127.0.0.1:$port_counter$page_url" 2
    run warmup-page-static "http://127.0.0.1:$port_static$page_url" 2
    for round in $(seq "$rounds"); do
        echo "round $round of $rounds" >&2
        page_rounds
    done
    sleep 3   # the last page views written
    kill -TERM "$counter_pid"
    wait "$counter_pid" || true
    stored_pages=$("$counter_bin" stats --database "$dir/visitors.sqlite" | grep -o "\"$page_url\": [0-9]*" | awk '{print $2}')
    echo
    echo "wrk: 2 threads, $connections connections, $rounds rounds of ${seconds} s each, alternating; medians. $(uptime)"
    echo
    echo "| system | requests/s | p50 ms | p99 ms | counter CPU µs per request | |"
    echo "| --- | --- | --- | --- | --- | --- |"
    page_report
    echo
    echo "Page views stored: ${stored_pages:-0} of $answered_pages pages answered with 200 (warm-up included)."
    exit 0
fi
echo "warming up" >&2
run warmup-counter "http://127.0.0.1:$port_counter/" 2
run warmup-limit "http://127.0.0.1:$port_limit/" 2
run warmup-php "http://127.0.0.1:$port_php/" 2
run warmup-pg "http://127.0.0.1:$port_pg/" 2
if [ -n "$baseline" ]; then run warmup-baseline "http://127.0.0.1:$port_baseline/" 2; fi
for round in $(seq "$rounds"); do
    echo "round $round of $rounds" >&2
    run counter "http://127.0.0.1:$port_counter/" "$seconds"
    run pg "http://127.0.0.1:$port_pg/" "$seconds"
    if [ -n "$baseline" ]; then run baseline "http://127.0.0.1:$port_baseline/" "$seconds"; fi
    run limit "http://127.0.0.1:$port_limit/" "$seconds"
    run php "http://127.0.0.1:$port_php/" "$seconds"
    run counter-stats "http://127.0.0.1:$port_counter/api/sys/stats" "$seconds"
    run limit-stats "http://127.0.0.1:$port_limit/api/sys/stats" "$seconds"
    page_rounds
done

# The writer's rate under the rounds' load, before any other process writes into the file.
sleep 3   # the last visits written
metrics=$(curl -s "http://127.0.0.1:$port_counter/api/sys/metrics")
write_seconds=$(awk '/^visitor_counter_write_duration_seconds_sum/ {s += $2} END {print s}' <<<"$metrics")
visits_written=$(awk '/^visitor_counter_visits_written_total/ {s += $2} END {print s}' <<<"$metrics")
metrics_pg=$(curl -s "http://127.0.0.1:$port_pg/api/sys/metrics")
write_seconds_pg=$(awk '/^visitor_counter_write_duration_seconds_sum/ {s += $2} END {print s}' <<<"$metrics_pg")
visits_written_pg=$(awk '/^visitor_counter_visits_written_total/ {s += $2} END {print s}' <<<"$metrics_pg")
kill -TERM "$pg_counter_pid"
wait "$pg_counter_pid" || true
stored_pg=$("$counter_bin" stats --database "$pg_uri" | sed -E 's/.*"total_visitors": ([0-9]+).*/\1/')

# GET / while another process writes batches of 100,000 visits into the same file; and, as the control,
# into another file on the same disk. The batch writer runs at nice 19, but it still costs the two
# cores some work (its I/O above all): a request that waited for the database would show as a slower
# p99 with the same file than with the other one.
batch_writer() {
    local database=$1
    sleep 1
    local end=$((SECONDS + seconds - 2))
    while [ $SECONDS -lt "$end" ]; do
        nice -n 19 "$counter_bin" simulate --database "$database" --visits 100000 --batch-size 100000 --threads 1 \
            --flush-interval 60 >> "$database.out"
    done
}
for round in 1 2; do
    echo "GET / while batches of 100,000 visits are written, round $round of 2" >&2
    batch_writer "$dir/visitors.sqlite" &
    writer=$!
    run counter-100k "http://127.0.0.1:$port_counter/" "$seconds"
    wait "$writer"
    batch_writer "$dir/other.sqlite" &
    writer=$!
    run counter-100k-other "http://127.0.0.1:$port_counter/" "$seconds"
    wait "$writer"
done
simulated=$(grep -o '"written": [0-9]*' "$dir/visitors.sqlite.out" | awk '{s += $2} END {print s + 0}')
batches=$(grep -c written "$dir/visitors.sqlite.out" || true)

echo "30 s at full load for the workers' RSS" >&2
run counter-30s "http://127.0.0.1:$port_counter/" 30
worker_rss=$(for pid in $(pgrep -P "$counter_pid"); do awk '/VmRSS/ {printf "%.1f ", $2 / 1024}' "/proc/$pid/status"; done)

kill -TERM "$counter_pid"
wait "$counter_pid" || true
stored_json=$("$counter_bin" stats --database "$dir/visitors.sqlite")
stored_pages=$(grep -o "\"$page_url\": [0-9]*" <<<"$stored_json" | awk '{print $2}')
stored_pages=${stored_pages:-0}
# The page views are visits too, under their own path: left out of the check of GET / below.
stored=$(( $(sed -E 's/.*"total_visitors": ([0-9]+).*/\1/' <<<"$stored_json") - stored_pages ))

# The writer alone, with no requests: visitor-counter-bench's batches into SQLite and into an empty
# PostgreSQL database of the same cluster.
echo "the writer into each store (visitor-counter-bench)" >&2
writer_lines=$(.build/release/visitor-counter-bench --postgres "$(create_local_database "$dir/postgres" writer)" | grep '^write ')
echo "$writer_lines" >&2
writer_rate_of() {  # STORE BATCH
    awk -v store="store=$1" -v batch="batch=$2" '$2 == store && $3 == batch {sub("visits/s=", "", $5); print $5}' <<<"$writer_lines"
}

# The report: medians over the rounds.
median() { awk -v name="$1" -v field="$2" '$1 == name {print $field}' "$dir/results" | sort -g | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
declare -A rps p50 p99 cpu
for name in counter pg limit php counter-stats limit-stats counter-100k counter-100k-other counter-30s ${baseline:+baseline}; do
    rps[$name]=$(median "$name" 2); p50[$name]=$(median "$name" 3); p99[$name]=$(median "$name" 4); cpu[$name]=$(median "$name" 7)
done
failed() { awk -v name="$1" '$1 == name || $1 == "warmup-" name || index($1, name "-") == 1 {s += $6} END {print s + 0}' "$dir/results"; }
writer_rate=$(awk -v v="$visits_written" -v s="$write_seconds" 'BEGIN {printf "%.0f", (s > 0) ? v / s : 0}')
writer_rate_pg=$(awk -v v="$visits_written_pg" -v s="$write_seconds_pg" 'BEGIN {printf "%.0f", (s > 0) ? v / s : 0}')
unanswered=$((stored - simulated - answered))
if [ "$unanswered" -ge 0 ] && [ "$unanswered" -le $((connections * runs)) ]; then check="ok"; else check="MISMATCH"; fi
unanswered_pg=$((stored_pg - answered_pg))
if [ "$unanswered_pg" -ge 0 ] && [ "$unanswered_pg" -le $((connections * runs_pg)) ]; then check_pg="ok"; else check_pg="MISMATCH"; fi

row() { printf '| %s | %.0f | %.2f | %.2f | %.1f | %s |\n' "$1" "${rps[$2]}" "${p50[$2]}" "${p99[$2]}" "${cpu[$2]}" "$3"; }
report=$(
    echo "Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), Debian $(cat /etc/debian_version), $(swift --version 2>/dev/null | head -1 | sed -E 's/.*(Swift version [0-9.]+).*/\1/'); $(date -u +%Y-%m-%d)."
    echo "wrk: 2 threads, $connections connections, $rounds rounds of ${seconds} s per system, alternating; medians. nginx: $(grep -o 'keepalive [0-9]*' "$dir/site.conf") per upstream, 2 workers."
    echo
    echo "| system | requests/s | p50 ms | p99 ms | server CPU µs per request | vs the limit |"
    echo "| --- | --- | --- | --- | --- | --- |"
    row "counter \`GET /\`" counter "$(ratio "${rps[counter]}" "${rps[limit]}")x requests/s, $(ratio "${p99[counter]}" "${p99[limit]}")x p99"
    row "counter \`GET /\` on PostgreSQL" pg "$(ratio "${rps[pg]}" "${rps[limit]}")x requests/s, $(ratio "${p99[pg]}" "${p99[limit]}")x p99; $(ratio "${rps[pg]}" "${rps[counter]}")x SQLite's requests/s"
    row "counter \`GET /api/sys/stats\`" counter-stats "$(ratio "${rps[counter-stats]}" "${rps[limit-stats]}")x requests/s, $(ratio "${p99[counter-stats]}" "${p99[limit-stats]}")x p99"
    if [ -n "$baseline" ]; then
        row "counter \`GET /\` as built from $baseline" baseline "$(ratio "${rps[baseline]}" "${rps[limit]}")x requests/s; this build uses $(awk -v a="${cpu[counter]}" -v b="${cpu[baseline]}" 'BEGIN {printf "%+.1f%%", (a / b - 1) * 100}') CPU per request"
    fi
    row "limit (C, libfcgi), the page's bytes" limit "1.00x"
    row "limit (C, libfcgi), the stats' bytes" limit-stats "1.00x"
    row "PHP-FPM, a transaction per visit" php "counter \`GET /\` is $(ratio "${rps[counter]}" "${rps[php]}")x this; its p99 $(ratio "${p99[counter]}" "${p99[php]}")x this"
    page_report
    row "counter \`GET /\` while 100,000-visit batches go into its database" counter-100k "p99 $(ratio "${p99[counter-100k]}" "${p99[counter-100k-other]}")x the control's; $batches batches written"
    row "control: the same batches into another file" counter-100k-other "p99 $(ratio "${p99[counter-100k-other]}" "${p99[counter]}")x the plain rounds'"
    echo
    echo "Failed requests (non-2xx or errors), warm-up included: counter $(failed counter), limit $(failed limit), PHP $(failed php)${baseline:+, baseline $(failed baseline)}; a failure is a non-2xx answer or a wrk socket error, a request over wrk's 2 s timeout included. Writer: $writer_rate visits per second of write time over the rounds ($visits_written visits; the time includes waiting for the other workers' transactions). Worker RSS after 30 s at full load: ${worker_rss% } MiB. Page views stored: $stored_pages of $answered_pages pages answered with 200. Visits of \`GET /\` stored: $stored = $answered answered with 200 + $simulated from the batch writer + $unanswered in flight when wrk stopped (at most $connections per run): $check."
    echo
    echo "PostgreSQL (a local cluster on the same cores, fsync and synchronous_commit on): the counter's writer under the rounds' load $writer_rate_pg visits per second of write time ($visits_written_pg visits); visits stored $stored_pg = $answered_pg answered with 200 + $unanswered_pg in flight when wrk stopped: $check_pg. The writer alone (visitor-counter-bench, 200,000 visits): SQLite $(writer_rate_of sqlite 1000) visits/s in batches of 1,000 and $(writer_rate_of sqlite 10000) in batches of 10,000; PostgreSQL $(writer_rate_of postgresql 1000) and $(writer_rate_of postgresql 10000). A backlog as the service's writer takes it (batches of 1,000 that wait taken up to 10,000 rows at once): SQLite $(writer_rate_of sqlite 1000+backlog), PostgreSQL $(writer_rate_of postgresql 1000+backlog)."
)
echo
echo "$report"
if [ "$update_docs" = yes ]; then
    grep -q '<!-- bench:begin -->' "$results_page" || { echo "$results_page has no bench markers" >&2; exit 1; }
    REPORT="$report" perl -0pi -e 's/<!-- bench:begin -->.*?<!-- bench:end -->/<!-- bench:begin -->\n$ENV{REPORT}\n<!-- bench:end -->/s' "$results_page"
    echo "$results_page updated" >&2
fi
[ "$check" = ok ] && [ "$check_pg" = ok ]
