#!/usr/bin/env bash
# Runs every test: installs what is missing, builds the executables the tests start, then swift test,
# then the Debian package's test (scripts/test-package.sh: build, lintian, install into a clean
# Debian 12 root, serve a visit there, purge).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh test
swift build
swift test
scripts/test-package.sh
