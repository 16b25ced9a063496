#!/usr/bin/env bash
# Installs the Debian packages the counter needs to build, run and test. With `test`, also the browser
# the page tests drive (and scripts/screenshot.sh); with `bench`, those the side-by-side benchmark
# needs. Safe to run again: it only calls apt-get when a package is missing. Needs root (or sudo).
set -euo pipefail

packages=(
    libfcgi-dev             # the FastCGI library the responder is built on
    libsqlite3-dev          # SQLite, through GRDB
    zlib1g-dev              # zlib, which compresses the index page once per stats-cache period
    libpq-dev               # libpq, PostgreSQL's client library
    nginx-light             # the web server in front of the responder
    libnginx-mod-http-geoip2 # nginx's country lookup in GeoIP2 (.mmdb) files, IPv4 and IPv6
    mmdb-bin                # mmdblookup, with which the GeoIP updater checks a new file
    libnginx-mod-http-geoip # the legacy lookup, the fallback without a GeoIP2 file
    geoip-database          # the offline country database it reads
    geoip-bin               # geoiplookup, to check what the database says
    curl                    # the tests' and the README's HTTP client
    tzdata                  # the IANA time zones of --time-zone
    systemd                 # systemd-analyze, to check the unit files
)
# Chromium comes with its recommended packages, as the page tests were checked with.
with_recommends=()
if [ "${1:-}" = test ]; then
    with_recommends+=(
        chromium                # the headless browser the page tests and screenshots use
        fonts-dejavu-core       # the page's text
        fonts-noto-color-emoji  # the countries' flags
    )
    packages+=(
        libmaxmind-db-writer-perl # the tests write their own small GeoIP2 database
        python3                   # a local HTTP server the GeoIP updater's tests download from
        openssl                   # the certificate of that server: the updater downloads over https only
        postgresql                # the server the PostgreSQL tests start clusters of their own with
        dpkg-dev                  # dpkg-shlibdeps, which works out the .deb's Depends (scripts/package.sh)
        binutils                  # strip, for the packaged binary
        lintian                   # checks the .deb (scripts/test-package.sh)
        debootstrap               # the clean Debian 12 root the .deb is installed into
        iproute2                  # ip, for the network namespace the installed package serves a visit in
    )
fi
if [ "${1:-}" = bench ]; then
    packages+=(
        wrk                 # the load generator
        php-fpm             # the usual alternative the counter is compared with
        php-sqlite3
        gcc                 # builds the C responder that stands for the limit
        libc6-dev
        postgresql          # the server scripts/bench-postgres.sh measures the writer into
    )
fi

missing() {
    for package in "$@"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || echo "$package"
    done
}
mapfile -t missing_plain < <(missing "${packages[@]}")
mapfile -t missing_full < <(missing "${with_recommends[@]}")
if [ ${#missing_plain[@]} -gt 0 ] || [ ${#missing_full[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "installing: ${missing_plain[*]} ${missing_full[*]}" >&2
    $sudo apt-get update
    if [ ${#missing_plain[@]} -gt 0 ]; then
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends "${missing_plain[@]}"
    fi
    if [ ${#missing_full[@]} -gt 0 ]; then
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y "${missing_full[@]}"
    fi
fi
