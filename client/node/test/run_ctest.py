#!/usr/bin/python3
"""ctest entry of the Node SDK's tests (sdk.node): npm ci in client/node when
node_modules is missing or older than package-lock.json, a real safeevald
(tests/integration/harness.py), then `node --test test/sdk.test.js` with
SAFEEVAL_TARGET pointing at it. Afterwards the engine must hold nothing of
the daemon's instance. Fails (never skips) without node and npm.
"""
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
PKG = os.path.dirname(HERE)
SOURCE_DIR = os.environ.get("SAFEEVAL_SOURCE_DIR") or os.path.dirname(os.path.dirname(PKG))
sys.path.insert(0, os.path.join(SOURCE_DIR, "tests", "integration"))
import harness  # noqa: E402
import sandbox_engine  # noqa: E402

MAX_REQUEST = 1024 * 1024


def ensure_node_modules(npm):
    mods = os.path.join(PKG, "node_modules")
    stamp = os.path.join(mods, ".package-lock.json")
    lock = os.path.join(PKG, "package-lock.json")
    if os.path.exists(stamp) and os.path.getmtime(stamp) >= os.path.getmtime(lock):
        return
    r = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=PKG, timeout=600)
    if r.returncode != 0:
        raise SystemExit("npm ci failed with %d" % r.returncode)


def main():
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        print("FAIL: node (%s) and npm (%s) are required" % (node, npm))
        return 1
    ensure_node_modules(npm)
    with harness.Daemon(extra_args=["--base-image", "safeeval/python:{version}",
                                    "--max-request-bytes", str(MAX_REQUEST)]) as d:
        env = dict(os.environ, SAFEEVAL_TARGET=d.address,
                   SAFEEVAL_TEST_MAX_REQUEST=str(MAX_REQUEST))
        env.pop("SAFEEVAL_TOKEN", None)
        r = subprocess.run([node, "--test", "--test-reporter=spec", "test/sdk.test.js"], cwd=PKG, env=env,
                           timeout=800)
        if r.returncode != 0:
            print("---- daemon log (tail) ----\n" + "\n".join(d.log().splitlines()[-40:]))
        sandbox_engine.assert_nothing_left(harness.INSTANCE, wait_s=10)
    return r.returncode


if __name__ == "__main__":
    sys.exit(main())
