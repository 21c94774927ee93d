#!/bin/sh
# Installs the sandbox's requirements into the venv. Fixed text: the only
# inputs are files in the build context (requirements.txt, pip-offline,
# wheelhouse/), never interpolated into a command line.
set -eu
ctx=/tmp/safeeval
pip=/opt/safeeval/venv/bin/pip
# No requirements (empty or comments only): nothing to do, no pip run.
if ! grep -qv '^[[:space:]]*\(#.*\)\{0,1\}$' "$ctx/requirements.txt"; then
    exit 0
fi
offline=0
if [ "$(cat "$ctx/pip-offline" 2>/dev/null | tr -d ' \n')" = "1" ]; then
    offline=1
fi
if [ -n "$(ls -A "$ctx/wheelhouse" 2>/dev/null)" ]; then
    offline=1
fi
if [ "$offline" = "1" ]; then
    exec "$pip" install --no-input --disable-pip-version-check --no-cache-dir \
        --no-index --find-links "$ctx/wheelhouse" -r "$ctx/requirements.txt"
fi
exec "$pip" install --no-input --disable-pip-version-check --no-cache-dir \
    -r "$ctx/requirements.txt"
