#!/usr/bin/env bash
# Runs every test: installs what is missing, builds the executables the tests start, then swift test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh test
swift build
swift test
