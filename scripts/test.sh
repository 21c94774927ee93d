#!/usr/bin/env bash
# Runs every test: sets the machine up (packages, dockerd, base images),
# builds, runs ctest (unit, integration, interop, hostile, fuzz replay), then
# builds with ASan+UBSan and runs every label again (the daemon the
# integration, hostile and interop tests start is then the sanitized one, and
# a sanitizer report makes its exit status, and so the test, fail).
#
#   SAFEEVAL_SKIP_ASAN=1  skip the sanitizer pass (local iteration only)
set -euo pipefail
. "$(dirname "$0")/lib.sh"

start=$(date +%s)
# The tests use both versions (3.11 and 3.13).
prepare_machine test bookworm trixie

build_tree "$SAFEEVAL_ROOT/build"
say "ctest: all labels"
(cd "$SAFEEVAL_ROOT/build" && ctest -j2 --output-on-failure --timeout 900)

if [ "${SAFEEVAL_SKIP_ASAN:-0}" != 1 ]; then
    build_tree "$SAFEEVAL_ROOT/build-asan" -DSAFEEVAL_SANITIZE=ON
    say "ctest (ASan+UBSan): all labels"
    export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1}
    export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
    export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$SAFEEVAL_ROOT/tests/lsan.supp}
    (cd "$SAFEEVAL_ROOT/build-asan" && ctest -j2 --output-on-failure --timeout 900)
fi
say "all tests passed in $(($(date +%s) - start)) s"
