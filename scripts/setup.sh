#!/usr/bin/env bash
# Prepares this machine: packages, a running docker engine, the local base
# images, and a build in build/. Idempotent: a second run does only what is missing.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

[ "$(id -u)" = 0 ] || { echo "setup: run as root (apt-get, dockerd)" >&2; exit 1; }
install_packages
ensure_dockerd
ensure_base_images
build_tree "$SAFEEVAL_ROOT/build"
