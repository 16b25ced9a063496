#!/usr/bin/env bash
# Builds the Debian package: visitor-counter_<version>_<arch>.deb, with a release binary that carries
# the Swift standard library and Foundation inside it (--static-swift-stdlib), so the server needs no
# Swift. Prints the .deb's path as its last line.
#   scripts/package.sh
# The build goes to .build-deb/ (ignored by git, apart from the everyday .build/), the staging tree
# to a temporary folder. Needs swift, dpkg-dev (dpkg-shlibdeps) and binutils (strip).
set -euo pipefail
cd "$(dirname "$0")/.."
here=$PWD
scratch=$here/.build-deb

for tool in swift dpkg-deb dpkg-shlibdeps strip gzip; do
    command -v "$tool" >/dev/null || { echo "package.sh: $tool is missing: run scripts/install-deps.sh test" >&2; exit 1; }
done

# Reproducible dates: the changelog's and the files' times are the last commit's.
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
export SOURCE_DATE_EPOCH

echo "package.sh: building the release binary with the Swift runtime linked in" >&2
# --disable-local-rpath: no RUNPATH of $ORIGIN, since no library is installed beside the binary.
# -z relro -z now: the relocations read-only before main, as Debian's hardening flags (bindnow) ask.
swift build --scratch-path "$scratch" -c release --static-swift-stdlib --disable-local-rpath \
    -Xlinker -z -Xlinker relro -Xlinker -z -Xlinker now --product visitor-counter >&2
binary=$scratch/release/visitor-counter
if ldd "$binary" | grep -i swift >&2; then
    echo "package.sh: $binary still loads the Swift libraries above; the server would need Swift" >&2
    exit 1
fi

# The man page comes from the command's own help, through swift-argument-parser's generate-manual
# plugin. The plugin builds every product of the package itself, without the static runtime (which
# its own tool cannot link with), so it runs on the everyday debug build in .build, which
# scripts/test.sh has just made: the help text is the same.
echo "package.sh: generating the man page" >&2
swift package plugin generate-manual --configuration debug \
    --authors "visitor-counter maintainers" --section 1 --date "$(date -u -d "@$SOURCE_DATE_EPOCH" +%F)" >&2
manual=$here/.build/plugins/GenerateManual/outputs/visitor-counter/visitor-counter.1
[ -s "$manual" ] || { echo "package.sh: the generate-manual plugin wrote no $manual" >&2; exit 1; }

version=$("$binary" --version)
arch=$(dpkg --print-architecture)
[[ "$version" =~ ^[0-9][0-9A-Za-z.+~]*$ ]] || { echo "package.sh: '$version' is no Debian version" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/root
install -d "$root/DEBIAN" "$root/usr/bin" "$root/lib/systemd/system" "$root/etc/nginx/sites-available" \
    "$root/usr/share/doc/visitor-counter" "$root/usr/share/man/man1"

# dh_strip's options: symbols out, Swift's reflection metadata (which it needs at run time) kept.
install -m 0755 "$binary" "$root/usr/bin/visitor-counter"
strip --remove-section=.comment --remove-section=.note --strip-unneeded "$root/usr/bin/visitor-counter"

# Every unit, the GeoIP updater's among them once it is there. They name /usr/local paths, where a build
# from source installs; the package installs under /usr.
enable_units=()
all_units=()
shopt -s nullglob
for unit in systemd/*.service systemd/*.socket systemd/*.timer; do
    name=$(basename "$unit")
    sed 's|/usr/local/|/usr/|g' "$unit" > "$root/lib/systemd/system/$name"
    chmod 0644 "$root/lib/systemd/system/$name"
    all_units+=("'$name'")
    # As dh_installsystemd does: only units with an [Install] section are enabled and started.
    if grep -q '^\[Install\]' "$unit"; then enable_units+=("'$name'"); fi
done
shopt -u nullglob
[ ${#enable_units[@]} -gt 0 ] || { echo "package.sh: no unit in systemd/ has an [Install] section" >&2; exit 1; }
if [ -f deploy/visitor-counter-geoip-update ]; then
    install -D -m 0755 deploy/visitor-counter-geoip-update "$root/usr/sbin/visitor-counter-geoip-update"
fi

install -m 0644 deploy/nginx.conf "$root/etc/nginx/sites-available/visitor-counter"
echo /etc/nginx/sites-available/visitor-counter > "$root/DEBIAN/conffiles"

doc=$root/usr/share/doc/visitor-counter
install -m 0644 README.md "$doc/README.md"
# The pages and pictures the README links, in the same layout, so its links work where it is installed.
install -d "$doc/docs"
install -m 0644 docs/*.md docs/*.png "$doc/docs/"
install -m 0644 deploy/debian/copyright "$doc/copyright"
maintainer=$(sed -n 's/^Maintainer: //p' deploy/debian/control)
{
    echo "visitor-counter ($version) unstable; urgency=medium"
    echo
    echo "  * Built from commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown). What changed is in the"
    echo "    project's git history."
    echo
    echo " -- $maintainer  $(date -R -u -d "@$SOURCE_DATE_EPOCH")"
} | gzip -9n > "$doc/changelog.gz"
# generate-manual lists hidden subcommands too (`worker`, which serve starts, and `simulate`, for
# tests); the binary's own description of itself says which they are, and their entries go.
hidden=$("$binary" --experimental-dump-help | perl -MJSON::PP -0777 -ne '
    print join(" ", map { $_->{commandName} } grep { exists $_->{shouldDisplay} && !$_->{shouldDisplay} }
        @{decode_json($_)->{command}{subcommands}})')
awk -v hidden=" $hidden " '
    /^\.Bl/ { depth++ }
    /^\.It Em / && depth == 1 { skip = index(hidden, " " $3 " ") > 0 }
    /^\.El/ && depth == 1 { skip = 0 }
    !skip { print }
    /^\.El/ { depth-- }
' "$manual" | gzip -9n > "$root/usr/share/man/man1/visitor-counter.1.gz"
chmod 0644 "$doc/changelog.gz" "$root/usr/share/man/man1/visitor-counter.1.gz"

# Depends: what the binary links, as dpkg-shlibdeps works it out (it wants a debian/control to read).
mkdir -p "$work/shlibs/debian"
printf 'Source: visitor-counter\n\nPackage: visitor-counter\nArchitecture: any\n' > "$work/shlibs/debian/control"
depends=$(cd "$work/shlibs" && dpkg-shlibdeps -O -e "$root/usr/bin/visitor-counter" | sed -n 's/^shlibs:Depends=//p')
[ -n "$depends" ] || { echo "package.sh: dpkg-shlibdeps found no libraries" >&2; exit 1; }

# Recommends: the nginx module that the shipped site's country lookup needs.
if grep -Eq '^[[:space:]]*geoip2[[:space:]]' deploy/nginx.conf; then
    geoip=libnginx-mod-http-geoip2
elif grep -Eq '^[[:space:]]*geoip_country[[:space:]]' deploy/nginx.conf; then
    geoip="libnginx-mod-http-geoip, geoip-database"
else
    echo "package.sh: deploy/nginx.conf has neither a geoip2 block nor geoip_country" >&2
    exit 1
fi

installed_size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
sed -e "s|@VERSION@|$version|" -e "s|@ARCH@|$arch|" -e "s|@INSTALLED_SIZE@|$installed_size|" \
    -e "s|@DEPENDS@|$depends|" -e "s|@GEOIP_RECOMMENDS@|$geoip|" deploy/debian/control > "$root/DEBIAN/control"
for script in postinst prerm postrm; do
    sed -e "s|@ENABLE_UNITS@|${enable_units[*]}|" -e "s|@START_UNITS@|${enable_units[*]}|" \
        -e "s|@STOP_UNITS@|${enable_units[*]}|" -e "s|@ALL_UNITS@|${all_units[*]}|" \
        "deploy/debian/$script" > "$root/DEBIAN/$script"
    chmod 0755 "$root/DEBIAN/$script"
done

# As dh_md5sums: every file but the conffiles, which dpkg tracks by itself.
(cd "$root" && find . -type f ! -path './DEBIAN/*' ! -path './etc/*' -printf '%P\0' | LC_ALL=C sort -z | xargs -0 md5sum) \
    > "$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/md5sums"

deb=$scratch/visitor-counter_${version}_${arch}.deb
dpkg-deb --build --root-owner-group -Zxz "$root" "$deb" >&2
echo "$deb"
