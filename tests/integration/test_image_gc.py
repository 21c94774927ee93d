"""Image collection against the real engine: an unused sandbox image goes
once it is older than --image-max-age (and at once with a tiny
--image-cache-bytes); an image any container uses stays, even a container
no daemon made; base images are never touched; a collected image is built
again by the next create that needs it.

Other programs share this engine, so every daemon here runs with
--image-gc-own: it may only collect images its own instance (this
program's harness.INSTANCE) built, and those are specs no other program
asks for (a random version floor on the test wheel). What exists is asked
of the engine, never read from the log."""
import json
import os
import re
import sys
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Daemon  # noqa: E402
from sandbox_engine import (_UnixConn, DOCKER_SOCK, assert_nothing_left, daemon_args,  # noqa: E402
                            engine_delete, engine_get, finish, make_wheelhouse, wait_until)

T = 600  # a create may build an image
MAX_AGE = 4


def image_id(ref):
    st, js = engine_get("/images/%s/json" % urllib.parse.quote(ref, safe=""))
    return js["Id"] if st == 200 else None


def remove_image(tag):
    st = engine_delete("/images/%s" % urllib.parse.quote(tag, safe=""))
    assert st in (200, 404), "remove image %s: HTTP %d" % (tag, st)


def unique_spec():
    floor = "0.%d" % int.from_bytes(os.urandom(3), "big")
    return dict(python_version="3.11", modules=["safeeval_testpkg>=" + floor])


def bare_container(image):
    """A container made straight through the Engine API from image, never
    started and unknown to any daemon: it must keep its image alive."""
    conn = _UnixConn(DOCKER_SOCK)
    body = json.dumps({"Image": image, "Cmd": ["true"],
                       "Labels": {"safeeval.test": harness.INSTANCE}})
    conn.request("POST", "/containers/create", body=body,
                 headers={"Content-Type": "application/json"})
    r = conn.getresponse()
    js = json.loads(r.read() or b"{}")
    conn.close()
    assert r.status == 201, (r.status, js)
    return js["Id"]


def removed_tags(d):
    return re.findall(r"image (safeeval/sandbox:\S+): removed", d.log())


def collected(d, tag):
    """The image is gone from the engine and the daemon says it removed it
    (it logs just after the engine answers)."""
    return image_id(tag) is None and tag in removed_tags(d)


class ImageCollection(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.wheels = make_wheelhouse()
        cls.bases = {v: image_id("safeeval/python:" + v) for v in ("3.11", "3.13")}
        cls.tags = set()

    @classmethod
    def tearDownClass(cls):
        for tag in cls.tags:
            remove_image(tag)
        # Base images untouched, by any of the daemons here.
        for v, iid in cls.bases.items():
            assert image_id("safeeval/python:" + v) == iid, v

    def tearDown(self):
        assert_nothing_left()

    def create(self, d, spec):
        sb = d.stub.CreateSandbox(d.pb.CreateSandboxRequest(**spec), timeout=T).sandbox
        self.tags.add(sb.image)
        return sb

    def destroy(self, d, sb):
        d.stub.DestroySandbox(d.pb.DestroySandboxRequest(sandbox_id=sb.id), timeout=60)

    def test_max_age(self):
        d = Daemon(extra_args=daemon_args(self.wheels, "--image-gc-own", "--image-max-age",
                                          str(MAX_AGE), "--reap-interval-s", "1"), timeout=60)
        holder = None
        kept = gone = None
        try:
            spec_kept, spec_gone = unique_spec(), unique_spec()
            kept = self.create(d, spec_kept)
            gone = self.create(d, spec_gone)
            self.destroy(d, gone)
            # Unused, older than the limit: removed by the reaper.
            self.assertTrue(wait_until(lambda: collected(d, gone.image), 60),
                            "unused image %s still there" % gone.image)
            print("unused image %s removed after %d s unused" % (gone.image, MAX_AGE))
            # In use by a live sandbox: kept, although far older than the limit.
            time.sleep(MAX_AGE + 3)
            self.assertIsNotNone(image_id(kept.image))
            # In use by a container no daemon knows: kept too.
            self.destroy(d, kept)
            holder = bare_container(kept.image)
            time.sleep(MAX_AGE + 3)
            self.assertIsNotNone(image_id(kept.image), "image of a foreign container removed")
            self.assertEqual(engine_delete("/containers/%s?force=1" % holder), 204)
            holder = None
            self.assertTrue(wait_until(lambda: collected(d, kept.image), 60),
                            "image %s still there once unused" % kept.image)
            # Only ever this test's own images.
            self.assertEqual(set(removed_tags(d)), {gone.image, kept.image}, removed_tags(d))
            self.assertLessEqual(set(removed_tags(d)), self.tags)
            # Collected, then asked for again: built again, and it works.
            again = self.create(d, spec_kept)
            self.assertEqual(again.image, kept.image)
            self.assertEqual(d.log().count("building image %s " % kept.image), 2)
            r = d.stub.Eval(d.pb.EvalRequest(sandbox_id=again.id, code="import safeeval_testpkg "
                                              "as p\nprint(p.VALUE)"), timeout=60).result
            self.assertEqual(r.stdout, b"42\n", (r.stdout, r.stderr))
            self.destroy(d, again)
        finally:
            if holder:
                engine_delete("/containers/%s?force=1" % holder)
            finish(d)

    def test_tiny_cache(self):
        d = Daemon(extra_args=daemon_args(self.wheels, "--image-gc-own", "--image-cache-bytes",
                                          "1", "--reap-interval-s", "1"), timeout=60)
        try:
            sb = self.create(d, unique_spec())
            # Over budget at once, but in use: it stays while the sandbox lives.
            time.sleep(3)
            self.assertIsNotNone(image_id(sb.image))
            self.destroy(d, sb)
            self.assertTrue(wait_until(lambda: collected(d, sb.image), 60),
                            "image %s still there over a 1-byte budget" % sb.image)
            # Only ever this program's own images (the first test's last one
            # may go here too: same instance).
            self.assertLessEqual(set(removed_tags(d)), self.tags, removed_tags(d))
            m = re.search(r"image %s: removed \((\d+) bytes of its own" % re.escape(sb.image),
                          d.log())
            print("over a 1-byte budget: removed %s (%s bytes of its own)" % (sb.image, m.group(1)))
        finally:
            finish(d)


if __name__ == "__main__":
    unittest.main(verbosity=2)
