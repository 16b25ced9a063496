#!/usr/bin/env bash
# Makes the README's pictures of the index page, docs/dashboard.png (desktop) and
# docs/dashboard-phone.png: fills a fresh database with 60 days of made-up visits (30 for the chart, 30
# more for the periods to compare with), serves it behind
# the local nginx on port 8089, and has headless Chromium take the screenshots.
#   scripts/screenshot.sh [--dark]     (--dark: docs/dashboard-dark.png, as a browser in dark mode sees it)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh test
swift build -c release --product visitor-counter

dark=()
suffix=""
if [ "${1:-}" = --dark ]; then dark=(--force-dark-mode --blink-settings=preferredColorScheme=0); suffix="-dark"; fi

dir=$(mktemp -d)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done; wait; rm -rf "$dir"; }
trap cleanup EXIT

.build/release/visitor-counter simulate --database "$dir/visitors.sqlite" --visits 80000 --spread-days 60 \
    --countries US,US,US,US,GB,GB,DE,DE,FR,IN,JP,BR,CA,NL,XX \
    --pages /,/,/,/,/blog/,/blog/,/blog/counting-pages-without-a-script.html,/about.html,/blog/nginx-mirror.html,/downloads/,/blog/,/,/contact.html \
    --referrers ,,,,news.ycombinator.com,,www.google.com,,lobste.rs,,www.google.com,,duckduckgo.com,,,github.com,,mastodon.social >/dev/null
scripts/nginx-local.sh "$dir" 8089 "$dir/fcgi.sock"
.build/release/visitor-counter serve --listen "unix:$dir/fcgi.sock" --database "$dir/visitors.sqlite" --workers 1 \
    2>"$dir/counter.log" &
pids+=($!)
for _ in $(seq 100); do [ -S "$dir/fcgi.sock" ] && break; sleep 0.1; done
nginx -c "$dir/nginx.conf" 2>"$dir/nginx.log" &
pids+=($!)
for _ in $(seq 100); do curl -sf -o /dev/null http://127.0.0.1:8089/api/sys/stats && break; sleep 0.1; done
# A few visits of the last minutes through nginx, so the recent windows show some life.
for address in 81.2.69.142 8.8.8.8 8.8.8.8 5.9.0.1 200.160.2.3; do
    curl -sf -o /dev/null -A 'Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0' -H "X-Forwarded-For: $address" http://127.0.0.1:8089/
done
for _ in $(seq 100); do
    curl -sf http://127.0.0.1:8089/api/sys/stats | grep -q '"total_visitors": 80005,' && break
    sleep 0.2
done
sleep 2.5   # one stats-cache period more: the page is rendered from the same figures as the stats

shoot() {
    chromium --headless --no-sandbox --disable-gpu --no-first-run --user-data-dir="$dir/profile" --hide-scrollbars \
        "${dark[@]}" --window-size="$2" --screenshot="$1" http://127.0.0.1:8089/ 2>/dev/null
    echo "$1"
}
shoot "docs/dashboard$suffix.png" 1280,1720
[ -n "$suffix" ] || shoot docs/dashboard-phone.png 390,2480
