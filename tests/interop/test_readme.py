#!/usr/bin/python3
"""sdk.readme: runs README.md's code snippets as written, so the docs cannot
drift from the code.

A fenced block whose info string is `LANG safeeval-test [OPTIONS]` is
extracted and run, in README order, in one scratch directory holding
symlinks to proto/ and examples/, a `test_numpy.py` (the file the old
tl;dr runs), and node_modules/safeeval -> client/node. SAFEEVAL_TARGET
points at a real daemon (tests/integration/harness.py):

  python  the venv's python, where client/python is installed the README's
          way (pip install --no-build-isolation); option `raw`: Debian's
          /usr/bin/python3 without the SDK (the generated-stubs example)
  js      an ES module, run by node
  c       compiled with -Wall -Wextra -Werror (and the sanitizer flags of a
          SAFEEVAL_SANITIZE build: $SAFEEVAL_SNIPPET_CFLAGS) against the build
          tree's libsafeeval, then run
  sh      bash -euo pipefail, PATH starting with the venv's bin
  needs=METHOD  skipped, and said so, when the daemon answers UNIMPLEMENTED
          for METHOD (the server side of issue 11 not in this build)

Every snippet must exit 0. The sections Python, Node, C and "Any other
language" must each hold at least one such snippet, so dropping the markers
fails this test. At the end the engine holds nothing of the daemon's
instance.
"""
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import grpc

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import common  # noqa: E402
import sandbox_engine  # noqa: E402

SOURCE_DIR = common.SOURCE_DIR
BUILD_DIR = common.harness.BUILD_DIR


def load(rel, name):
    """A helper module by path: the SDKs' ctest runners share a file name."""
    spec = importlib.util.spec_from_file_location(name, os.path.join(SOURCE_DIR, rel))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


FENCE = re.compile(r"^```(\w+) safeeval-test([^\n]*)\n(.*?)^```\s*$", re.M | re.S)
SECTIONS = ["### Python", "### Node", "### C", "### Any other language"]
EXT = {"python": ".py", "js": ".mjs", "c": ".c", "sh": ".sh"}
SNIPPET_TIMEOUT_S = 600


def snippets(text):
    """[(section heading, lang, options, code)] in README order."""
    heads = [(m.start(), m.group(0).strip()) for m in re.finditer(r"^### .*$", text, re.M)]
    out = []
    for m in FENCE.finditer(text):
        head = [h for pos, h in heads if pos < m.start()]
        out.append((head[-1] if head else "", m.group(1), m.group(2).split(), m.group(3)))
    return out


def unimplemented(d, method):
    pb = d.pb
    try:
        if method == "GetServerInfo":
            d.stub.GetServerInfo(pb.GetServerInfoRequest(), timeout=10)
        elif method == "EvalStream":
            list(d.stub.EvalStream(pb.EvalRequest(sandbox_id="no-such-sandbox-0", code="pass"),
                                   timeout=10))
        else:
            raise AssertionError("needs=%s: no probe for that method" % method)
    except grpc.RpcError as e:
        return e.code() == grpc.StatusCode.UNIMPLEMENTED
    return False


def main():
    text = open(os.path.join(SOURCE_DIR, "README.md")).read()
    found = snippets(text)
    for s in SECTIONS:
        if not any(h == s for h, _, _, _ in found):
            print("FAIL: README section %r has no `safeeval-test` snippet" % s)
            return 1
    for h, lang, _, _ in found:
        if lang not in EXT:
            print("FAIL: a %s snippet in %r: no runner for that language" % (lang, h))
            return 1
    python_sdk = load("client/python/tests/run_ctest.py", "python_sdk_run")
    node_sdk = load("client/node/test/run_ctest.py", "node_sdk_run")
    venv_py = python_sdk.install_venv(os.path.join(BUILD_DIR, "sdk", "readme-venv"))
    node_sdk.ensure_node_modules(shutil.which("npm"))
    work = tempfile.mkdtemp(prefix="safeeval-readme-")
    failures, skipped = [], []
    try:
        for name in ("proto", "examples"):
            os.symlink(os.path.join(SOURCE_DIR, name), os.path.join(work, name))
        shutil.copy(os.path.join(SOURCE_DIR, "client", "python", "tests", "tldr",
                                 "test_numpy.py"), work)
        os.makedirs(os.path.join(work, "node_modules"))
        os.symlink(os.path.join(SOURCE_DIR, "client", "node"),
                   os.path.join(work, "node_modules", "safeeval"))
        with common.daemon() as d:
            env = dict(os.environ, SAFEEVAL_TARGET=d.address,
                       PATH=os.path.dirname(venv_py) + os.pathsep + os.environ["PATH"])
            env.pop("SAFEEVAL_TOKEN", None)
            for i, (head, lang, opts, code) in enumerate(found):
                what = "snippet %d (%s, %s %s)" % (i + 1, head, lang, " ".join(opts))
                need = [o.split("=", 1)[1] for o in opts if o.startswith("needs=")]
                if need and unimplemented(d, need[0]):
                    skipped.append(what)
                    print("SKIP %s: the server answers UNIMPLEMENTED for %s (the server side "
                          "of issue 11 is not in this build)" % (what, need[0]), flush=True)
                    continue
                path = os.path.join(work, "snippet%d%s" % (i + 1, EXT[lang]))
                with open(path, "w") as f:
                    f.write(code)
                if lang == "python":
                    cmd = ["/usr/bin/python3" if "raw" in opts else venv_py, path]
                elif lang == "js":
                    cmd = ["node", path]
                elif lang == "sh":
                    cmd = ["bash", "-euo", "pipefail", path]
                else:
                    exe = path[:-2]
                    lib = os.path.join(BUILD_DIR, "lib")
                    cc = subprocess.run(["cc", "-std=c11", "-Wall", "-Wextra", "-Werror"]
                                        + os.environ.get("SAFEEVAL_SNIPPET_CFLAGS", "").split()
                                        + ["-I" + os.path.join(SOURCE_DIR, "client", "include"),
                                           path, "-o", exe, "-L" + lib, "-lsafeeval",
                                           "-Wl,-rpath," + lib], capture_output=True, text=True)
                    if cc.returncode != 0:
                        failures.append(what)
                        print("FAIL %s: does not compile:\n%s" % (what, cc.stderr))
                        continue
                    cmd = [exe]
                print("---- %s" % what, flush=True)
                t0 = time.monotonic()
                r = subprocess.run(cmd, cwd=work, env=env, timeout=SNIPPET_TIMEOUT_S,
                                   capture_output=True, text=True)
                sys.stdout.write(r.stdout + r.stderr)
                # Every snippet cleans up after itself (a reader copies it).
                left = sandbox_engine.wait_until(
                    lambda: not sandbox_engine.containers_of(common.harness.INSTANCE), 10)
                if r.returncode != 0:
                    failures.append(what)
                    print("FAIL %s: exit %d" % (what, r.returncode), flush=True)
                elif not left:
                    failures.append(what)
                    print("FAIL %s: left a sandbox behind" % what, flush=True)
                else:
                    print("ok   %s (%.1f s)" % (what, time.monotonic() - t0), flush=True)
            if failures:
                print("---- daemon log (tail) ----\n" + common.log_tail(d))
        sandbox_engine.assert_nothing_left(common.harness.INSTANCE, wait_s=10)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("%d snippets: %d failed, %d skipped" % (len(found), len(failures), len(skipped)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
