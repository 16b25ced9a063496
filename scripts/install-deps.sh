#!/usr/bin/env bash
# Installs the Debian packages the counter needs to build, run and test; with `bench`, also those the
# side-by-side benchmark needs. Safe to run again: it only calls apt-get when a package is missing.
# Needs root (or sudo).
set -euo pipefail

packages=(
    libfcgi-dev             # the FastCGI library the responder is built on
    libsqlite3-dev          # SQLite, through GRDB
    nginx-light             # the web server in front of the responder
    libnginx-mod-http-geoip # nginx's country lookup
    geoip-database          # the offline country database it reads
    geoip-bin               # geoiplookup, to check what the database says
    curl                    # the tests' and the README's HTTP client
    systemd                 # systemd-analyze, to check the unit files
)
if [ "${1:-}" = bench ]; then
    packages+=(
        wrk                 # the load generator
        php-fpm             # the usual alternative the counter is compared with
        php-sqlite3
        gcc                 # builds the C responder that stands for the limit
        libc6-dev
    )
fi

missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "installing: ${missing[*]}" >&2
    $sudo apt-get update
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends "${missing[@]}"
fi
