#!/usr/bin/env bash
# Prepares this machine: packages, a running docker engine, the local base
# images, and a build in build/. Idempotent: a second run does only what is missing.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

prepare_machine setup
build_tree "$SAFEEVAL_ROOT/build"
