#!/usr/bin/env bash
# Sets this machine up and runs safeeval for real: packages, dockerd, the
# base image its demo needs (safeeval/python:3.11; the 3.13 one is made by
# `docker/base/build-base trixie` or `bash scripts/setup.sh`; a create for a
# version without a base image says so), build, then starts safeevald in the
# background on unix:/run/safeeval/safeevald.sock and runs a demo through the CLI.
# The daemon keeps running; stop it with: kill "$(cat /run/safeeval/safeevald.pid)"
set -euo pipefail
. "$(dirname "$0")/lib.sh"

prepare_machine run bookworm
build_tree "$SAFEEVAL_ROOT/build"

bin="$SAFEEVAL_ROOT/build/bin"
target=unix:/run/safeeval/safeevald.sock
export SAFEEVAL_TARGET=$target
mkdir -p /run/safeeval
if [ -f /run/safeeval/safeevald.pid ] && kill -0 "$(cat /run/safeeval/safeevald.pid)" 2>/dev/null; then
    say "safeevald: already running (pid $(cat /run/safeeval/safeevald.pid)), restarting"
    kill "$(cat /run/safeeval/safeevald.pid)"
    while kill -0 "$(cat /run/safeeval/safeevald.pid)" 2>/dev/null; do sleep 0.2; done
fi
say "safeevald: starting on $target (log: /var/log/safeevald.log)"
nohup "$bin/safeevald" --listen "$target" --base-image 'safeeval/python:{version}' \
    >/var/log/safeevald.log 2>&1 &
echo $! >/run/safeeval/safeevald.pid
up=0
for _ in $(seq 1 100); do
    if "$bin/safeeval" ls >/dev/null 2>&1; then
        up=1
        break
    fi
    sleep 0.1
done
if [ "$up" != 1 ]; then
    tail -n 20 /var/log/safeevald.log >&2
    say "safeevald: did not answer within 10 s"
    exit 1
fi

say "demo: a Python 3.11 sandbox with numpy (the first create builds its image)"
id=$("$bin/safeeval" create --python 3.11 --module numpy)
say "demo: sandbox $id"
"$bin/safeeval" eval "$id" -c 'print("Hello World")'
"$bin/safeeval" exec "$id" "$SAFEEVAL_ROOT/examples/numpy_job.py"
"$bin/safeeval" eval "$id" --wall-ms 300 -c 'while True: pass' || say "demo: the endless loop ended with exit code $? (wall-time limit)"
"$bin/safeeval" destroy "$id"
say "demo: done. safeevald is still running (pid $(cat /run/safeeval/safeevald.pid)); try:"
say "  $bin/safeeval run --python 3.11 --module numpy examples/numpy_job.py"
