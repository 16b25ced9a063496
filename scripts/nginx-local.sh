#!/usr/bin/env bash
# Writes an nginx configuration that runs deploy/nginx.conf unprivileged-style in a folder of its own:
#   scripts/nginx-local.sh DIR PORT SOCKET [GEOIP]
# DIR gets nginx.conf (start it with `nginx -c DIR/nginx.conf`), logs and temp files. The site is the
# deploy file with its socket, port and root changed, listening on 127.0.0.1 and ::1, and realip
# trusting both, so a local client can try other countries with `X-Forwarded-For`.
# GEOIP is the country database: a GeoIP2 (.mmdb) file, or `legacy` for the deploy file's fallback
# (the legacy module and Debian's geoip-database). Without it: /var/lib/GeoIP/country.mmdb when that
# exists, else legacy. The last line printed says which.
# The site's rate limit on /api/ is left out (its limit_req lines): tests and benchmarks send many
# requests from one address. VISITOR_COUNTER_NGINX_RATE_LIMIT=keep keeps it.
set -euo pipefail
dir=$(realpath "$1"); port=$2; socket=$3
geoip=${4:-}
documented=/var/lib/GeoIP/country.mmdb
if [ -z "$geoip" ]; then
    if [ -f "$documented" ]; then geoip=$documented; else geoip=legacy; fi
fi
here=$(cd "$(dirname "$0")/.." && pwd)
legacy_module=/usr/lib/nginx/modules/ngx_http_geoip_module.so
geoip2_module=/usr/lib/nginx/modules/ngx_http_geoip2_module.so
modules=""
if [ "$geoip" = legacy ]; then
    [ -f "$legacy_module" ] || { echo "nginx's GeoIP module is missing ($legacy_module): run scripts/install-deps.sh" >&2; exit 1; }
    modules="load_module $legacy_module;"
    # The deploy file's fallback: the geoip2 block and its map out, the commented legacy lines in.
    lookup=(-e '/^geoip2 /,/^}/d' -e '/^map \$pid \$visitor_country_database_type /d'
            -e 's/^# \(geoip_country \|map \$\)/\1/')
else
    [ -f "$geoip2_module" ] || { echo "nginx's GeoIP2 module is missing ($geoip2_module): run scripts/install-deps.sh" >&2; exit 1; }
    [ -f "$geoip" ] || { echo "no GeoIP2 database at $geoip" >&2; exit 1; }
    geoip=$(realpath "$geoip")
    # Both modules when both are installed, as Debian's modules-enabled loads them.
    [ ! -f "$legacy_module" ] || modules="load_module $legacy_module;"
    modules="$modules load_module $geoip2_module;"
    lookup=(-e "s|^geoip2 /var/lib/GeoIP/country.mmdb {|geoip2 $geoip {|")
fi
mkdir -p "$dir/html" "$dir/tmp"
rate_limit=(-e '/^ *limit_req /d' -e '/^ *limit_req_status /d' -e '/^ *# The rate above; nodelay/d')
[ "${VISITOR_COUNTER_NGINX_RATE_LIMIT:-}" != keep ] || rate_limit=()

sed -e "s|unix:/run/visitor-counter/fcgi.sock|unix:$socket|" \
    -e "s|listen 80;|listen 127.0.0.1:$port;|" \
    -e "s|listen \[::\]:80;|listen [::1]:$port;|" \
    -e "s|root /var/www/html;|root $dir/html;|" \
    -e "s|# set_real_ip_from 192.0.2.10;|set_real_ip_from 127.0.0.1; set_real_ip_from ::1;|" \
    "${lookup[@]}" ${rate_limit[@]+"${rate_limit[@]}"} \
    -e "s|# real_ip_header X-Forwarded-For;|real_ip_header X-Forwarded-For;|" \
    "$here/deploy/nginx.conf" > "$dir/site.conf"

user_line=""
[ "$(id -u)" -ne 0 ] || user_line="user root root;"   # workers must reach a socket only root may open
cat > "$dir/nginx.conf" <<CONF
$modules
$user_line
daemon off;
worker_processes 2;
pid $dir/nginx.pid;
error_log stderr warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $dir/tmp/body;
    fastcgi_temp_path $dir/tmp/fastcgi;
    proxy_temp_path $dir/tmp/proxy;
    scgi_temp_path $dir/tmp/scgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    include $dir/site.conf;
}
CONF
if [ "$geoip" = legacy ]; then echo "legacy /usr/share/GeoIP/GeoIP.dat"; else echo "geoip2 $geoip"; fi
