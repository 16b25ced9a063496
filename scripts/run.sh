#!/usr/bin/env bash
# Builds the counter and runs it behind a local nginx on http://127.0.0.1:8080/ and http://[::1]:8080/
# with its database in ./run/visitors.sqlite, in the foreground. Ctrl-C stops both; every visit answered
# is written first. Countries come from the GeoIP2 file at /var/lib/GeoIP/country.mmdb when there is
# one (deploy/visitor-counter-geoip-update fetches it), else from Debian's legacy geoip-database.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
swift build -c release --product visitor-counter

dir=$PWD/run
mkdir -p "$dir"
socket=$dir/fcgi.sock
lookup=$(scripts/nginx-local.sh "$dir" 8080 "$socket" | tail -n 1)
case $lookup in
geoip2\ *) countries="countries from the GeoIP2 database ${lookup#geoip2 }" ;;
*) countries="countries from the legacy GeoIP database ${lookup#legacy } (data of 2019, no IPv6; for current data, run deploy/visitor-counter-geoip-update)" ;;
esac

.build/release/visitor-counter serve --listen "unix:$socket" --database "$dir/visitors.sqlite" "$@" &
counter=$!
for _ in $(seq 100); do [ -S "$socket" ] && break; kill -0 $counter 2>/dev/null || exit 1; sleep 0.1; done
nginx -c "$dir/nginx.conf" &
web=$!

stop() { kill -TERM $web $counter 2>/dev/null || true; }
trap stop INT TERM
echo "visitor-counter: http://127.0.0.1:8080/ and http://127.0.0.1:8080/api/sys/stats, also on [::1]; $countries (Ctrl-C stops)" >&2
status=0
wait $counter || status=$?
kill -TERM $web 2>/dev/null || true
wait $web 2>/dev/null || true
exit $status
