#!/usr/bin/python3
"""Interop, issue 9: runs node/auth.js (grpc-js) against a real daemon with
--tokens (two tenants, alice and bob), as run_node.py does for the cycle.
After node exits and the daemon stopped, the engine must hold no container
of the daemon's instance."""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import run_node  # noqa: E402
import sandbox_engine  # noqa: E402


def main():
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        print("FAIL: node (%s) and npm (%s) are required" % (node, npm))
        return 1
    run_node.ensure_node_modules(npm)
    tmp = tempfile.mkdtemp(prefix="safeeval-node-auth-")
    try:
        tok = {n: "tok-" + os.urandom(16).hex() for n in ("alice", "bob")}
        tokens = os.path.join(tmp, "tokens")
        with open(tokens, "w") as f:
            for n, t in tok.items():
                f.write("%s %s\n" % (n, hashlib.sha256(t.encode()).hexdigest()))
        tj = os.path.join(tmp, "tokens.json")
        with open(tj, "w") as f:
            json.dump(tok, f)
        env = dict(os.environ, SAFEEVAL_SOURCE_DIR=common.SOURCE_DIR)
        with common.harness.Daemon(extra_args=common.DAEMON_ARGS + ["--tokens", tokens]) as d:
            r = subprocess.run([node, os.path.join(run_node.NODE_DIR, "auth.js"),
                                common.socket_path(d), tj], env=env, timeout=1200)
            if r.returncode != 0:
                print("---- daemon log (tail) ----\n" + common.log_tail(d))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    try:
        sandbox_engine.assert_nothing_left(common.harness.INSTANCE)
    except AssertionError as e:
        print("FAIL: %s" % e)
        return 1
    if r.returncode != 0:
        print("FAIL: node auth client exited with %d" % r.returncode)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
