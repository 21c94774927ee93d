#!/usr/bin/python3
"""Interop: runs node/client.js (grpc-js), then node/reflection.js (a client
built from server reflection alone) against a real daemon started by
tests/integration/harness.py. Fails (never skips) when node or npm is
missing: node is part of the test environment here and in CI.

node_modules comes from the committed package-lock.json: `npm ci` into
tests/interop/node/node_modules (gitignored) when it is missing or stale.
After node exits and the daemon stopped, the engine must hold no container
of the daemon's instance (asked by label: sandbox_engine).
"""
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import sandbox_engine  # noqa: E402  (tests/integration, on the path through common)

NODE_DIR = os.path.join(common.SOURCE_DIR, "tests", "interop", "node")
CLIENT_TIMEOUT_S = 1200


def ensure_node_modules(npm):
    mods = os.path.join(NODE_DIR, "node_modules")
    stamp = os.path.join(mods, ".package-lock.json")  # written by npm ci / install
    lock = os.path.join(NODE_DIR, "package-lock.json")
    if (os.path.isdir(os.path.join(mods, "@grpc", "grpc-js"))
            and os.path.isdir(os.path.join(mods, "@grpc", "proto-loader"))
            and os.path.exists(stamp) and os.path.getmtime(stamp) >= os.path.getmtime(lock)):
        return
    print("npm ci in " + NODE_DIR, flush=True)
    r = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR, timeout=600)
    if r.returncode != 0:
        raise SystemExit("npm ci failed with %d" % r.returncode)


def main():
    node = shutil.which("node")
    npm = shutil.which("npm")
    if not node or not npm:
        print("FAIL: node (%s) and npm (%s) are required for the Node interop test"
              % (node, npm))
        return 1
    print(subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip())
    ensure_node_modules(npm)
    env = dict(os.environ, SAFEEVAL_SOURCE_DIR=common.SOURCE_DIR)
    with common.daemon() as d:
        path = common.socket_path(d)
        r = subprocess.run([node, os.path.join(NODE_DIR, "client.js"), path], env=env,
                           timeout=CLIENT_TIMEOUT_S)
        # The same cycle by a client that has no .proto: server reflection.
        if r.returncode == 0:
            r = subprocess.run([node, os.path.join(NODE_DIR, "reflection.js"), path], env=env,
                               timeout=CLIENT_TIMEOUT_S)
        if r.returncode != 0:
            print("---- daemon log (tail) ----\n" + common.log_tail(d))
    try:
        sandbox_engine.assert_nothing_left(common.harness.INSTANCE)
    except AssertionError as e:
        print("FAIL: %s" % e)
        return 1
    if r.returncode != 0:
        print("FAIL: node client exited with %d" % r.returncode)
        return 1
    print("nothing of instance %s left in the engine" % common.harness.INSTANCE)
    return 0


if __name__ == "__main__":
    sys.exit(main())
