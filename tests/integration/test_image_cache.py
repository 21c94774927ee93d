"""The image cache against the real engine: two concurrent creates of one
new spec build its image once; a pip failure is FAILED_PRECONDITION with
pip's own lines and leaves no container or dangling image behind. What is
left is asked of the engine (by label), never read from the log."""
import json
import os
import re
import sys
import threading
import unittest
import urllib.parse

import grpc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Daemon, expect_code  # noqa: E402
from sandbox_engine import (LABEL_MANAGED, assert_nothing_left, daemon_args,  # noqa: E402
                            dangling_ours, engine_delete, engine_get, finish, make_wheelhouse,
                            workers_of)

T = 600  # a create may build an image


def remove_image(tag):
    """Removes the test's own one-off image (a unique tag no other program
    uses); fails unless it is gone or was never there. A removal that failed
    silently left one image per run in the engine."""
    st = engine_delete("/images/%s" % urllib.parse.quote(tag, safe=""))
    if st not in (200, 404):
        raise AssertionError("remove image %s: HTTP %d" % (tag, st))


def concurrent_creates_build_once(d):
    pb = d.pb
    # A spec no earlier run has built: the version floor is unique (the
    # test wheel is 1.0, which satisfies it), and so is the tag.
    floor = "0.%d" % int.from_bytes(os.urandom(3), "big")
    spec = dict(python_version="3.11", modules=["safeeval_testpkg>=" + floor])
    out = [None, None]

    def create(i):
        try:
            out[i] = d.stub.CreateSandbox(pb.CreateSandboxRequest(**spec), timeout=T).sandbox
        except grpc.RpcError as e:
            out[i] = e
    threads = [threading.Thread(target=create, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for sb in out:
        assert isinstance(sb, pb.Sandbox), sb
    a, b = out
    try:
        assert a.id != b.id and a.image == b.image, (a, b)
        builds = re.findall(r"building image (\S+)", d.log())
        assert builds.count(a.image) == 1, builds
        print("two concurrent creates, one build of %s" % a.image)
        r = d.stub.Eval(pb.EvalRequest(sandbox_id=b.id, code="import safeeval_testpkg as p\n"
                                       "print(p.VALUE)"), timeout=60).result
        assert r.stdout == b"42\n", (r.stdout, r.stderr)
    finally:
        for sb in out:
            d.stub.DestroySandbox(pb.DestroySandboxRequest(sandbox_id=sb.id), timeout=60)
        remove_image(a.image)
    for sb in out:
        assert workers_of(sb.id) == [], workers_of(sb.id)


def pip_failure(d):
    pb = d.pb
    e = expect_code(lambda: d.stub.CreateSandbox(pb.CreateSandboxRequest(
        python_version="3.11", modules=["safeeval_nosuchpkg==1.0"]), timeout=T),
        grpc.StatusCode.FAILED_PRECONDITION)
    # pip's own words, not just "build failed".
    assert "No matching distribution found for safeeval_nosuchpkg==1.0" in e.details(), \
        e.details()
    # ... and within the head a client may keep: the C library keeps 512
    # bytes (SAFEEVAL_ERROR_MESSAGE_MAX) and pip's cause must be in them.
    cause = "ERROR: No matching distribution found for safeeval_nosuchpkg==1.0"
    at = e.details().find(cause)
    assert 0 <= at and at + len(cause) < 512, e.details()
    print("pip failure: %s" % e.details()[:at + len(cause)])
    # The failed build's own steps (named in its output, logged at debug) are
    # gone. Other daemons' builds may have dangling steps of their own in
    # flight, so only this build's count.
    failed = d.log().rsplit("building image", 1)[1]
    steps = set(re.findall(r"image build:\s*---> ([0-9a-f]{12})\s*$", failed, re.M))
    assert steps, "no build steps in the log"
    left = {i for i in dangling_ours() if i[len("sha256:"):][:12] in steps}
    assert not left, left
    # Nor a build container of those steps (the failed RUN step's own: build
    # containers carry our managed label from the recipe, not the instance).
    st, js = engine_get("/containers/json", {"all": "1",
                                             "filters": json.dumps({"label": [LABEL_MANAGED]})})
    assert st == 200, st
    left = [c["Id"][:12] for c in js
            if c.get("ImageID", "")[len("sha256:"):][:12] in steps or c.get("Image") in steps]
    assert not left, left
    assert not d.stub.ListSandboxes(pb.ListSandboxesRequest(), timeout=10).sandboxes
    print("pip failure: FAILED_PRECONDITION with pip's lines, nothing left")


class ImageCache(unittest.TestCase):
    """One daemon; each check is its own test, so one failing does not hide
    the other; nothing of the instance may be left after each."""

    @classmethod
    def setUpClass(cls):
        cls.d = Daemon(extra_args=daemon_args(make_wheelhouse()), timeout=60)

    @classmethod
    def tearDownClass(cls):
        finish(cls.d)

    def tearDown(self):
        assert_nothing_left()

    def test_concurrent_creates_build_once(self):
        concurrent_creates_build_once(self.d)

    def test_pip_failure(self):
        pip_failure(self.d)


if __name__ == "__main__":
    unittest.main(verbosity=2)
