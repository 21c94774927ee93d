"""Helpers for the sandbox integration and hostile tests: the Docker Engine API
over its unix socket (http.client, never the docker CLI), a daemon with the
test recipe, and what "nothing of ours left behind" means.

    from sandbox_engine import engine_get, container_exists, daemon_args, ours_left
    from sandbox_engine import run_in_sandbox   # one daemon, one sandbox, checked cleanup
"""
import atexit
import http.client
import json
import os
import re
import shutil
import socket
import sys
import tempfile
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import make_wheel  # noqa: E402

DOCKER_SOCK = "/var/run/docker.sock"


class _UnixConn(http.client.HTTPConnection):
    def __init__(self, path, timeout=30):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self._path)
        self.sock = s


def engine_get(path, params=None):
    """GET an Engine API path; returns (status, parsed JSON or None)."""
    if params:
        path += "?" + urllib.parse.urlencode(params)
    c = _UnixConn(DOCKER_SOCK)
    try:
        c.request("GET", path)
        r = c.getresponse()
        body = r.read()
        try:
            return r.status, json.loads(body) if body else None
        except ValueError:
            return r.status, None
    finally:
        c.close()


def container_exists(cid):
    st, _ = engine_get("/containers/%s/json" % urllib.parse.quote(cid))
    if st == 404:
        return False
    if st != 200:
        raise AssertionError("inspect %s: HTTP %d" % (cid, st))
    return True


def container_of_sandbox(sandbox_id):
    """The container labelled with this sandbox id, or None."""
    st, js = engine_get("/containers/json", {
        "all": "1", "filters": json.dumps({"label": ["safeeval.sandbox=" + sandbox_id]})})
    assert st == 200, st
    return js[0] if js else None


def dangling_ours():
    st, js = engine_get("/images/json", {
        "filters": json.dumps({"dangling": ["true"], "label": ["safeeval.managed=1"]})})
    assert st == 200, st
    return {i["Id"] for i in js}


def make_wheelhouse():
    """A temp wheelhouse with the test package (make_wheel.py, stdlib only)."""
    d = tempfile.mkdtemp(prefix="safeeval-wheels-")
    atexit.register(shutil.rmtree, d, True)
    make_wheel.make_wheel(d)
    return d


def daemon_args(wheelhouse, *extra):
    return ["--base-image", "safeeval/python:{version}",
            "--recipe-dir", os.path.join(harness.SOURCE_DIR, "docker", "sandbox"),
            "--wheelhouse", wheelhouse] + list(extra)


def run_in_sandbox(limits, body):
    """Starts a daemon with the test recipe, creates one 3.11 + numpy sandbox
    with these limits and calls body(d, sb). A failing body first removes what
    the daemon made; the sandbox is destroyed either way. Then nothing of ours
    may be left, and the daemon must stop cleanly (a sanitizer build that finds
    a leak exits non-zero)."""
    wheels = make_wheelhouse()
    with harness.Daemon(extra_args=daemon_args(wheels), timeout=60) as d:
        pb = d.pb
        sb = d.stub.CreateSandbox(pb.CreateSandboxRequest(
            python_version="3.11", modules=["numpy"], limits=pb.Limits(**limits)),
            timeout=600).sandbox
        try:
            body(d, sb)
        except BaseException:
            cleanup_after_failure([d.log()])
            raise
        finally:
            d.stub.DestroySandbox(pb.DestroySandboxRequest(sandbox_id=sb.id), timeout=60)
        left = ours_left([d.log()])
        assert not left, left
        rc = d.stop()
        assert rc == 0, (rc, d.log()[-6000:])


def containers_made(log_text):
    """Container ids this daemon created (from its debug log)."""
    # Only containers it created: a daemon also recovers containers of other
    # daemons sharing the engine, which are not this test's to judge.
    return set(re.findall(r"sandbox [0-9a-f]+: container ([0-9a-f]{64}) created", log_text))


def ours_left(logs, live_ids=()):
    """Containers the daemons (their logs) made that still exist, except those
    of live sandboxes."""
    keep = set()
    for sid in live_ids:
        c = container_of_sandbox(sid)
        if c:
            keep.add(c["Id"])
    made = set()
    for t in logs:
        made |= containers_made(t)
    return sorted(c for c in made - keep if container_exists(c))


def engine_delete(path):
    """DELETE an Engine API path; returns the HTTP status."""
    c = _UnixConn(DOCKER_SOCK)
    try:
        c.request("DELETE", path)
        r = c.getresponse()
        r.read()
        return r.status
    finally:
        c.close()


def engine_remove(cid):
    engine_delete("/containers/%s?force=1" % urllib.parse.quote(cid))


def cleanup_after_failure(logs):
    """A failed test removes what its daemons made (found in their logs)."""
    made = set()
    for t in logs:
        made |= containers_made(t)
    for cid in made:
        if container_exists(cid):
            engine_remove(cid)
