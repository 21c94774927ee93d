#!/usr/bin/env bash
# Prepares this machine: packages, a running docker engine, both local base
# images (safeeval/python:3.11 and :3.13), and a build in build/. Idempotent:
# a second run does only what is missing.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

prepare_machine setup bookworm trixie
build_tree "$SAFEEVAL_ROOT/build"
