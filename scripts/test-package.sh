#!/usr/bin/env bash
# Tests the Debian package the way a site owner meets it: builds it (scripts/package.sh), runs lintian,
# installs it with apt into a clean Debian 12 root that has no Swift, and there checks --help and
# --version, `nginx -t` with the site enabled as docs/deploying.md says, a visit served through that nginx
# and counted, and that `apt-get purge` leaves none of the package's files. Exits non-zero with
# "FAIL: what" at the first check that fails. Needs root (debootstrap, chroot, mount, unshare).
#   scripts/test-package.sh
# The clean root is made once with `debootstrap --variant=minbase bookworm` and kept as a tar in
# $VISITOR_COUNTER_TEST_CACHE (default /var/cache/visitor-counter-test); each run unpacks a fresh copy
# into a temporary folder under /var/tmp and deletes it at the end. The Debian mirror is the one apt
# uses here, or $DEBIAN_MIRROR.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { echo "test-package.sh: FAIL: $*" >&2; exit 1; }
pass() { echo "test-package.sh: ok: $*" >&2; }
# Any other command that fails stops the test too, and says which.
trap 'echo "test-package.sh: FAIL: line $LINENO: $BASH_COMMAND exited $?" >&2' ERR

[ "$(id -u)" -eq 0 ] || fail "needs root: it runs debootstrap, chroot and mount"
for tool in debootstrap lintian unshare ip curl chroot mountpoint; do
    command -v "$tool" >/dev/null || fail "$tool is missing: run scripts/install-deps.sh test"
done

deb=$(scripts/package.sh | tail -n 1)
[ -f "$deb" ] || fail "scripts/package.sh did not end with the path of a .deb (it printed '$deb')"
version=$(dpkg-deb -f "$deb" Version)
pass "built $deb"

# lintian: no errors. The warnings it prints are the ones docs/deploying.md lists as kept.
lintian --fail-on error --info "$deb" >&2 || fail "lintian found errors in $deb (above)"
pass "lintian shows no errors"

# The clean root, cached.
cache=${VISITOR_COUNTER_TEST_CACHE:-/var/cache/visitor-counter-test}
tarball=$cache/bookworm-minbase.tar
mirror=${DEBIAN_MIRROR:-}
if [ -z "$mirror" ]; then
    mirror=$(grep -shoE 'https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/*.sources \
        /etc/apt/sources.list.d/*.list | head -n 1 | tr -d ' ' || true)
fi
mirror=${mirror:-http://deb.debian.org/debian}
if [ ! -f "$tarball" ]; then
    echo "test-package.sh: making the Debian 12 root in $tarball (once; a few minutes)" >&2
    mkdir -p "$cache"
    fresh=$(mktemp -d /var/tmp/visitor-counter-debootstrap.XXXXXX)
    debootstrap --variant=minbase bookworm "$fresh/root" "$mirror" >&2 || { rm -rf --one-file-system "$fresh"; fail "debootstrap from $mirror failed"; }
    tar -C "$fresh/root" -cf "$tarball.partial" . && mv "$tarball.partial" "$tarball"
    rm -rf --one-file-system "$fresh"
fi

work=$(mktemp -d /var/tmp/visitor-counter-test.XXXXXX)
root=$work/root
cleanup() {
    # Whatever still runs in the root (a check that failed half-way), then the mounts, then the files.
    for process in /proc/[0-9]*; do
        [ "$(readlink "$process/root" 2>/dev/null)" = "$root" ] && kill -KILL "${process#/proc/}" 2>/dev/null
    done
    for mount in "$root/dev/pts" "$root/dev/shm" "$root/proc"; do
        if mountpoint -q "$mount"; then umount "$mount" || umount -l "$mount"; fi
    done
    rm -rf --one-file-system "$work"
}
trap cleanup EXIT
mkdir "$root"
tar -C "$root" -xf "$tarball"
mount -t proc proc "$root/proc"
mount -t tmpfs -o mode=1777 shm "$root/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666 devpts "$root/dev/pts"   # apt's log of the maintainer scripts
cp /etc/resolv.conf "$root/etc/resolv.conf"
# As in any chroot: packages' init scripts (nginx's) must not start daemons here. The counter's own
# maintainer scripts start nothing anyway, since /run/systemd/system does not exist in the root.
printf '#!/bin/sh\nexit 101\n' > "$root/usr/sbin/policy-rc.d"
chmod 0755 "$root/usr/sbin/policy-rc.d"
in_root() { chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 HOME=/root DEBIAN_FRONTEND=noninteractive "$@"; }

[ -z "$(find "$root" -xdev -name 'libswift*' -print -quit)" ] || fail "the clean root has Swift libraries"
in_root sh -c '! command -v swift' >/dev/null || fail "the clean root has swift"

# Install as the README and docs/deploying.md say.
cp "$deb" "$root/tmp/"
in_root apt-get update >&2 || fail "apt-get update in the root failed (mirror $mirror)"
install_log=$work/install.log
in_root sh -c "cd /tmp && apt-get install -y ./$(basename "$deb")" > "$install_log" 2>&1 \
    || { cat "$install_log" >&2; fail "apt-get install ./$(basename "$deb") failed"; }
grep -q 'ln -s /etc/nginx/sites-available/visitor-counter /etc/nginx/sites-enabled/' "$install_log" \
    || { cat "$install_log" >&2; fail "the install did not say how to enable the nginx site"; }
pass "apt-get install ./$(basename "$deb") in a clean Debian 12 root"
for process in /proc/[0-9]*; do
    [ "$(readlink "$process/root" 2>/dev/null)" != "$root" ] \
        || fail "the install left a process running in the root: $(tr '\0' ' ' < "$process/cmdline")"
done
pass "the install started nothing where systemd is not running"

in_root visitor-counter --help | grep -q '^USAGE: visitor-counter' || fail "visitor-counter --help"
[ "$(in_root visitor-counter --version)" = "$version" ] || fail "visitor-counter --version is not $version"
pass "visitor-counter --help and --version ($version) run"

in_root test -f /usr/share/zoneinfo/Asia/Kathmandu || fail "the install did not bring the tz data (tzdata)"
# It exits 64 for the missing database, after taking the zone (an unknown one is refused first, with
# another message): the output is kept apart, as pipefail would take that exit for grep's.
zone_check=$(in_root visitor-counter rebuild-days --database /nonexistent --time-zone Asia/Kathmandu 2>&1 || true)
grep -q 'no database at' <<< "$zone_check" \
    || fail "the installed binary does not know the zone Asia/Kathmandu: $zone_check"
pass "the tz data is installed and the binary knows the zones"

libraries=$(in_root ldd /usr/bin/visitor-counter)
! grep -i swift <<< "$libraries" || fail "the installed binary loads Swift libraries"
! grep 'not found' <<< "$libraries" || fail "the installed binary misses libraries"
pass "ldd names no Swift library and finds every library"

for unit in visitor-counter.socket visitor-counter.service; do
    [ -f "$root/lib/systemd/system/$unit" ] || fail "$unit is not in /lib/systemd/system"
done
[ -L "$root/etc/systemd/system/sockets.target.wants/visitor-counter.socket" ] || fail "the socket unit is not enabled"
[ -L "$root/etc/systemd/system/multi-user.target.wants/visitor-counter.service" ] || fail "the service unit is not enabled"
exec_start=$(sed -n 's/^ExecStart=\([^ ]*\).*/\1/p' "$root/lib/systemd/system/visitor-counter.service")
[ -x "$root$exec_start" ] || fail "the service's ExecStart names $exec_start, which is not installed"
pass "the units are installed and enabled; ExecStart is $exec_start"

[ -x "$root/usr/sbin/visitor-counter-geoip-update" ] || fail "the GeoIP updater is not in /usr/sbin"
[ -L "$root/etc/systemd/system/timers.target.wants/visitor-counter-geoip-update.timer" ] \
    || fail "the GeoIP updater's timer is not enabled"
user=$(sed -n 's/^User=//p' "$root/lib/systemd/system/visitor-counter-geoip-update.service")
[ -n "$user" ] || fail "the GeoIP updater's service names no User="
entry=$(in_root getent passwd "$user") || fail "the install did not make the GeoIP updater's user $user"
[ "$(cut -d: -f3 <<< "$entry")" -lt 1000 ] && [ "$(cut -d: -f3 <<< "$entry")" -gt 0 ] \
    || fail "the GeoIP updater's user is not a system user: $entry"
in_root getent group "$user" >/dev/null || fail "the install did not make the group $user"
pass "the GeoIP updater and its timer are installed and enabled, its service runs as the system user $user"

doc=$root/usr/share/doc/visitor-counter
[ -f "$doc/README.md" ] || fail "the README is not in /usr/share/doc/visitor-counter"
for page in $(grep -oE '(\]\(|src=")docs/[^)#"]+' README.md | sed -E 's/^(\]\(|src=")//' | sort -u); do
    [ -f "$doc/$page" ] || fail "$page, which the README links, is not in /usr/share/doc/visitor-counter"
done
pass "the README and every page and picture it links are in /usr/share/doc/visitor-counter"

# Enable the site as the README and docs/deploying.md say. Its first step, visitor-counter-geoip-update, would download the
# month's country database; a test one made here stands for it (127.0.0.1 is FR in it).
scripts/make-test-geoip.pl "$work/country.mmdb" "$(date +%s)" || fail "scripts/make-test-geoip.pl"
install -D -m 0644 "$work/country.mmdb" "$root/var/lib/GeoIP/country.mmdb"
in_root ln -s /etc/nginx/sites-available/visitor-counter /etc/nginx/sites-enabled/visitor-counter
in_root rm -f /etc/nginx/sites-enabled/default
in_root nginx -t > "$work/nginx-t.log" 2>&1 || { cat "$work/nginx-t.log" >&2; fail "nginx -t with the site enabled"; }
pass "nginx -t passes with the packaged site enabled"

# A visit through that nginx, to the counter started by hand on the socket the socket unit names.
# Both run in a network namespace of their own, so the site's port 80 is free whatever this machine runs.
socket=$(sed -n 's/^ListenStream=//p' "$root/lib/systemd/system/visitor-counter.socket")
group=$(sed -n 's/^SocketGroup=//p' "$root/lib/systemd/system/visitor-counter.socket")
[[ "$socket" == /* ]] && [ -n "$group" ] || fail "visitor-counter.socket names no socket path and group"
serve_a_visit() {
    trap 'echo "test-package.sh: FAIL: serving a visit: $BASH_COMMAND exited $?" >&2' ERR
    ip link set lo up
    # The state directory as systemd makes it for DynamicUser=yes.
    in_root install -d -m 0700 /var/lib/private
    in_root install -d -m 0755 /var/lib/private/visitor-counter "$(dirname "$socket")"
    in_root ln -s private/visitor-counter /var/lib/visitor-counter
    # Straight through chroot, not the in_root function, so that $! is the counter and not a subshell.
    chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 visitor-counter serve \
        --listen "unix:$socket" --workers 1 --database /var/lib/visitor-counter/visitors.sqlite 2> "$work/counter.log" &
    counter=$!
    for _ in $(seq 100); do [ -S "$root$socket" ] && break; sleep 0.1; done
    [ -S "$root$socket" ] || { cat "$work/counter.log" >&2; fail "the counter made no socket at $socket"; }
    in_root chgrp "$group" "$socket"
    in_root nginx || fail "nginx did not start"
    status=$(curl -s -o /dev/null -w '%{http_code}' -A 'Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0' http://127.0.0.1/)
    [ "$status" = 200 ] || { cat "$work/counter.log" >&2; fail "GET / through nginx answered $status"; }
    stats=""
    for _ in $(seq 50); do
        stats=$(curl -s http://127.0.0.1/api/sys/stats)
        grep -q '"total_visitors": 1,' <<< "$stats" && break
        sleep 0.2
    done
    grep -q '"total_visitors": 1,' <<< "$stats" || fail "the stats through nginx do not count the visit: $stats"
    grep -q '"FR": 1' <<< "$stats" || fail "the visit from 127.0.0.1 is not counted under FR, as the site's GeoIP2 lookup says: $stats"
    in_root nginx -s quit
    kill -TERM "$counter"
    status=0
    wait "$counter" || status=$?
    [ "$status" = 0 ] || { cat "$work/counter.log" >&2; fail "the counter exited $status after SIGTERM"; }
    in_root visitor-counter stats --database /var/lib/visitor-counter/visitors.sqlite | grep -q '"total_visitors": 1,' \
        || fail "the database does not hold the visit"
    in_root rm -rf "$(dirname "$socket")"   # made by hand above, as systemd would
}
export -f serve_a_visit in_root fail
export root socket group work
unshare --net bash -euo pipefail -c serve_a_visit
[ -f "$root/var/lib/private/visitor-counter/visitors.sqlite" ] || fail "no database in /var/lib/private/visitor-counter"
pass "a visit through nginx to the counter on $socket is served and counted"

# The site is a conffile: an edit survives a reinstall, and the units stay enabled.
in_root sed -i 's/server_name _;/server_name counter.example;/' /etc/nginx/sites-available/visitor-counter
in_root dpkg-query -W -f='${Conffiles}' visitor-counter | grep -q '/etc/nginx/sites-available/visitor-counter' \
    || fail "the nginx site is not registered as a conffile"
in_root sh -c "cd /tmp && apt-get install -y --reinstall ./$(basename "$deb")" > "$work/reinstall.log" 2>&1 \
    || { cat "$work/reinstall.log" >&2; fail "apt-get install --reinstall"; }
grep -q 'server_name counter.example;' "$root/etc/nginx/sites-available/visitor-counter" \
    || fail "a reinstall overwrote the edited nginx site"
[ -L "$root/etc/systemd/system/sockets.target.wants/visitor-counter.socket" ] || fail "a reinstall disabled the socket unit"
rm "$root/tmp/$(basename "$deb")"
pass "the edited site (a conffile) and the units' enabled state survive a reinstall"

# Purge: none of the package's files, links or state stays.
in_root apt-get purge -y visitor-counter >&2 || fail "apt-get purge visitor-counter"
dpkg-deb -c "$deb" | awk '$1 !~ /^d/ {print $6}' | sed 's|^\./|/|' > "$work/files"
while read -r file; do
    [ ! -e "$root$file" ] && [ ! -L "$root$file" ] || fail "$file is still there after the purge"
done < "$work/files"
leftovers=$(find "$root" -xdev -name '*visitor-counter*' -not -path "$root/var/log/*" -print)
[ -z "$leftovers" ] || fail "left after the purge: $leftovers"
pass "apt-get purge leaves none of the package's files, links or state"

echo "test-package.sh: every check passed" >&2
