#!/usr/bin/env bash
# Writes an nginx configuration that runs deploy/nginx.conf unprivileged-style in a folder of its own:
#   scripts/nginx-local.sh DIR PORT SOCKET
# DIR gets nginx.conf (start it with `nginx -c DIR/nginx.conf`), logs and temp files. The site is the
# deploy file with its socket, port and root changed, and realip trusting 127.0.0.1, so a local client
# can try other countries with `X-Forwarded-For`.
set -euo pipefail
dir=$(realpath "$1"); port=$2; socket=$3
here=$(cd "$(dirname "$0")/.." && pwd)
module=/usr/lib/nginx/modules/ngx_http_geoip_module.so
[ -f "$module" ] || { echo "nginx's GeoIP module is missing ($module): run scripts/install-deps.sh" >&2; exit 1; }
mkdir -p "$dir/html" "$dir/tmp"

sed -e "s|unix:/run/visitor-counter/fcgi.sock|unix:$socket|" \
    -e "s|listen 80;|listen 127.0.0.1:$port;|" \
    -e "/listen \[::\]:80;/d" \
    -e "s|root /var/www/html;|root $dir/html;|" \
    -e "s|# set_real_ip_from 192.0.2.10;|set_real_ip_from 127.0.0.1;|" \
    -e "s|# real_ip_header X-Forwarded-For;|real_ip_header X-Forwarded-For;|" \
    "$here/deploy/nginx.conf" > "$dir/site.conf"

user_line=""
[ "$(id -u)" -ne 0 ] || user_line="user root root;"   # workers must reach a socket only root may open
cat > "$dir/nginx.conf" <<CONF
load_module $module;
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
