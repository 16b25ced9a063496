#!/usr/bin/env bash
# Runs every test: installs what is missing, builds the executables the tests start, then swift test,
# then the Debian package's test (scripts/test-package.sh: build, lintian, install into a clean
# Debian 12 root, serve a visit there, purge).
#
# scripts/test.sh --unit runs only the tests that need neither nginx, PostgreSQL, a browser nor root:
# it skips every suite and test tagged .nginx, .postgres, .browser or .root
# (Tests/VisitorCounterTests/Tags.swift), installs nothing and leaves the package test out.
#
# With CI set (.ci/run sets CI=true), Package.swift makes the project's own warnings errors.
set -euo pipefail
cd "$(dirname "$0")/.."

unit=false
case "${1:-}" in
"") ;;
--unit) unit=true ;;
*)
    echo "usage: scripts/test.sh [--unit]" >&2
    exit 2
    ;;
esac

# The names of the suites and tests that carry a service tag, as one regular expression for
# `swift test --skip`. Swift 6.3's `swift test` selects by name only (Tags.swift says why), so this reads
# the tag from the attribute's first line and the name from the declaration it belongs to.
service_tagged_names() {
    awk '
        function emit(line) {
            if (match(line, /(struct|class|enum|actor) [A-Za-z_][A-Za-z0-9_]*/)) {
                split(substr(line, RSTART, RLENGTH), words, " ")
                names = names (names ? "|" : "") "\\." words[2] "/"
                return 1
            }
            if (match(line, /func [A-Za-z_][A-Za-z0-9_]*/)) {
                names = names (names ? "|" : "") "/" substr(line, RSTART + 5, RLENGTH - 5) "\\("
                return 1
            }
            return 0
        }
        /^[[:space:]]*@(Suite|Test)\(.*\.tags\([^)]*\.(nginx|postgres|root|browser)/ { pending = 1 }
        pending && emit($0) { pending = 0 }
        END { print names }
    ' Tests/VisitorCounterTests/*.swift
}

if $unit; then
    skip=$(service_tagged_names)
    if [ -z "$skip" ]; then
        echo "scripts/test.sh: found no suite tagged .nginx, .postgres, .root or .browser in Tests/" >&2
        exit 1
    fi
    swift build
    # A service started in spite of the skip (a tag the reading above missed) fails the test loudly.
    VISITOR_COUNTER_UNIT_RUN=1 swift test --skip "$skip"
    exit
fi

scripts/install-deps.sh test
swift build
# At most two tests at once, as many as the cores. Swift Testing 6.3 starts every test it may at once,
# and the tests that wait now give their thread back, so without a bound a dozen nginx stacks would run
# together and the tests that bound latency (none slower than 1 s) would measure each other.
log=$(mktemp --tmpdir visitor-counter-test.XXXXXX.log)
if ! SWT_EXPERIMENTAL_MAXIMUM_PARALLELIZATION_WIDTH=2 swift test 2>&1 | tee "$log"; then
    # Thousands of lines go by before the summary, and a CI page may keep only the last of them: say
    # again, at the end, which tests failed and why.
    echo
    echo "scripts/test.sh: the failures, again (the whole output is in $log):"
    grep -E -A 6 '^✘ (Test|Suite) .* (recorded an issue|failed)' "$log" | grep -v '^◇\|^✔' || true
    exit 1
fi
rm -f "$log"
scripts/test-package.sh
