"""Sandbox lifecycle against the real daemon and dockerd: the old library's
example (3.11 + numpy, Hello World, a numpy file, 3.13), a module from a local
wheel with no network, image reuse, the worker container a sandbox starts
with, bad input that leaves nothing behind, --max-sandboxes, ListSandboxes
oldest first, the idle clock and the reaper, SIGNALED over gRPC, recovery
after a restart (a live worker kept, a dead one replaced, a removed one's
sandbox gone), code and output never in the info log, destroy.

  Lifecycle  one daemon (--max-sandboxes 3, --reap-interval-s 1) and one
             long-lived sandbox made in setUpClass, sb1 (the old library's
             example: 3.11 + numpy, labelled); every other sandbox is a
             test's own, destroyed when it ends, so each test checks on its
             own and one failure does not hide the rest.
  Restart    the restart is an ordered sequence, so it all happens in
             setUpClass: a first daemon makes three sandboxes (A 3.11 + numpy,
             labelled; B 3.13 + the wheel; C 3.11 + numpy) and is stopped;
             while it is down B's worker is killed (a crash) and C's removed;
             a second daemon starts at --log-level info and what it reports
             at once is recorded before any test runs code. The tests check
             those records, each on its own; the ones that run code are
             numbered (test_N_...) so that unittest's alphabetical order is
             the order the steps had in the old single main().

What is left behind is asked of the engine by our labels (sandbox_engine),
never read from the daemon's log: after every test nothing of the instance
but the class's long-lived sandboxes, and each class ends with
sandbox_engine.finish (destroy, nothing left, exit status 0)."""
import json
import os
import re
import shutil
import sys
import threading
import time
import unittest
import urllib.parse

import grpc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Daemon, expect_code  # noqa: E402
from sandbox_engine import (LABEL_MANAGED, assert_nothing_left, container_exists,  # noqa: E402
                            daemon_args, describe, engine_get, engine_kill, engine_remove,
                            finish, make_wheelhouse, processes_of_sandbox,
                            remove_containers_of, wait_until, workers_of)

C = grpc.StatusCode
T = 600  # create may build an image
AGENT = "/usr/local/bin/safeeval-agent"
# The daemon's --instance (harness) keeps other daemons' sandboxes out of its
# registry, so the max counts only this test's.
MAX_SB = 3
EXTRA = ("--max-sandboxes", str(MAX_SB), "--reap-interval-s", "1")
UNKNOWN = "0" * 24  # a well-formed sandbox id nobody made

# The dangling-image check looks only at images this program could have
# made: other test programs build images at the same time (ctest -j), and a
# failed or re-tagged build of theirs is not this program's leak. Ours are
#   - an image of a spec one of our sandboxes used (the safeeval.spec label,
#     the part of Sandbox.image after ':'), left dangling when a build here
#     re-tagged it;
#   - a step of a build one of our daemons ran (named in its debug log),
#     left dangling when that build failed.
OUR_SPECS = set()
OUR_STEPS = set()
STEP_RE = re.compile(r"image build:\s*---> ([0-9a-f]{12})\s*$", re.M)
DANGLING_BEFORE = set()


def note_steps(d):
    """Records the build steps daemon d logged (call before it is closed)."""
    OUR_STEPS.update(STEP_RE.findall(d.log()))


def dangling():
    """{id: labels} of the dangling images carrying our managed label."""
    st, js = engine_get("/images/json", {
        "filters": json.dumps({"dangling": ["true"], "label": [LABEL_MANAGED]})})
    assert st == 200, st
    return {i["Id"]: i.get("Labels") or {} for i in js}


def dangling_of_ours():
    """The dangling images this program could have left (see above), minus
    those there before it started."""
    return sorted(i for i, labels in dangling().items()
                  if i not in DANGLING_BEFORE
                  and (labels.get("safeeval.spec") in OUR_SPECS
                       or i[len("sha256:"):][:12] in OUR_STEPS))


def setUpModule():
    DANGLING_BEFORE.update(dangling())


def tearDownModule():
    # Neither class's daemons left a dangling image of ours behind.
    left = dangling_of_ours()
    assert not left, (left, sorted(OUR_SPECS))


def image_tags():
    st, js = engine_get("/images/json", {"filters": '{"label":["safeeval.managed=1"]}'})
    assert st == 200
    return {t for i in js for t in (i.get("RepoTags") or [])}


def inspect(cid):
    st, js = engine_get("/containers/%s/json" % urllib.parse.quote(cid))
    assert st == 200, (cid, st)
    return js


def worker_ids(sid):
    return sorted(c["Id"] for c in workers_of(sid))


def create(d, **kw):
    t = time.monotonic()
    r = d.stub.CreateSandbox(d.pb.CreateSandboxRequest(**kw), timeout=T)
    OUR_SPECS.add(r.sandbox.image.rsplit(":", 1)[-1])
    return r.sandbox, time.monotonic() - t


def ev(d, sid, code, **kw):
    return d.stub.Eval(d.pb.EvalRequest(sandbox_id=sid, code=code, **kw), timeout=60).result


def get(d, sid):
    return d.stub.GetSandbox(d.pb.GetSandboxRequest(sandbox_id=sid), timeout=10).sandbox


def now_ms():
    return int(time.time() * 1000)


def check_worker(sb):
    """A fresh sandbox has exactly one worker container, named, labelled and
    configured for the resident agent."""
    ws = workers_of(sb.id)
    assert len(ws) == 1 and sb.workers == 1, (sb.workers, ws)
    c = ws[0]
    assert c["State"] == "running", c
    assert len(c["Names"]) == 1 and re.fullmatch(
        "/safeeval-%s-[0-9a-f]{8}" % sb.id, c["Names"][0]), c["Names"]
    js = inspect(c["Id"])
    cfg, hc = js["Config"], js["HostConfig"]
    want = {"safeeval.managed": "1", "safeeval.instance": harness.INSTANCE,
            "safeeval.sandbox": sb.id, "safeeval.worker": "1"}
    labels = cfg.get("Labels") or {}
    assert {k: labels.get(k) for k in want} == want, labels
    # The agent is the main process (under the engine's init) and serves
    # runs over the attached stdin/stdout: stdin stays open across attaches,
    # no TTY mangles the frames, nothing goes to the engine's log store.
    assert cfg["Cmd"] == [AGENT, "--serve"], cfg["Cmd"]
    assert (cfg["OpenStdin"], cfg["StdinOnce"], cfg["Tty"]) == (True, False, False), cfg
    assert hc["Init"] is True, hc.get("Init")
    assert hc["LogConfig"]["Type"] == "none", hc["LogConfig"]
    # One run at a time: the container's limits are the run's plus a small
    # reserve for the agent and init, and swap is not extra memory.
    lim = sb.limits
    assert hc["Memory"] == hc["MemorySwap"], (hc["Memory"], hc["MemorySwap"])
    assert lim.memory_bytes < hc["Memory"] <= lim.memory_bytes + (64 << 20), (
        lim.memory_bytes, hc["Memory"])
    assert lim.max_processes < hc["PidsLimit"] <= lim.max_processes + 16, (
        lim.max_processes, hc["PidsLimit"])
    return c["Id"]


def code_marker():
    return "mk" + os.urandom(8).hex()


class Lifecycle(unittest.TestCase):
    """One daemon and sb1, the old library's example, for the whole class;
    every other sandbox is the test's own (destroyed at its end), and after
    each test the engine holds nothing of the instance but sb1's worker."""

    @classmethod
    def setUpClass(cls):
        cls.wheels = make_wheelhouse()
        cls.tags_before = image_tags()
        cls.d = Daemon(extra_args=daemon_args(cls.wheels, *EXTRA), timeout=60)
        cls.pb = cls.d.pb
        cls.live = []
        try:
            # The old library's example.
            cls.sb1, cls.t_first = create(cls.d, python_version="3.11", modules=["numpy"],
                                          labels={"owner": "tests"})
            cls.live.append(cls.sb1.id)
            cls.cold = cls.sb1.image not in cls.tags_before
            print("create 3.11+numpy: %.2f s (%s)"
                  % (cls.t_first, "cold" if cls.cold else "cached"))
            ws = worker_ids(cls.sb1.id)
            cls.cid1 = ws[0] if len(ws) == 1 else None  # test_create_example checks it
        except BaseException:
            # No tearDownClass after a failed setUpClass: stop the daemon and
            # remove its containers here (finish does both, then re-raise).
            note_steps(cls.d)
            finish(cls.d, destroy=cls.live)
            raise

    @classmethod
    def tearDownClass(cls):
        note_steps(cls.d)
        finish(cls.d, destroy=cls.live)

    def setUp(self):
        self.addCleanup(self._nothing_left)  # runs last (cleanups are LIFO)

    def _nothing_left(self):
        assert_nothing_left(keep=[self.sb1.id])

    def sandbox(self, **kw):
        """A sandbox of this test's, destroyed when it ends; (sandbox, create s)."""
        sb, t = create(self.d, **kw)
        self.addCleanup(self._destroy, sb.id)
        return sb, t

    def _destroy(self, sid):
        try:
            self.d.stub.DestroySandbox(self.pb.DestroySandboxRequest(sandbox_id=sid),
                                       timeout=60)
        except grpc.RpcError as e:
            if e.code() != C.NOT_FOUND:  # the test destroyed it (or the reaper did)
                raise

    def test_create_example(self):
        sb1, lim = self.sb1, self.sb1.limits
        assert sb1.python_version.startswith("3.11."), sb1.python_version
        assert list(sb1.modules) == ["numpy"] and dict(sb1.labels) == {"owner": "tests"}
        assert all([lim.wall_time_ms, lim.cpu_time_ms, lim.memory_bytes, lim.max_processes,
                    lim.max_output_bytes, lim.max_file_bytes]), lim
        # 0 asked = the service's --max-concurrent-runs (default 4).
        assert sb1.max_concurrent_runs == 4, sb1.max_concurrent_runs
        self.assertEqual(check_worker(sb1), self.cid1)

    def test_eval_hello_and_worker_reuse(self):
        d, pb, sb1 = self.d, self.pb, self.sb1
        t = time.monotonic()
        r = ev(d, sb1.id, 'print("Hello World")')
        print("eval hello: %.1f ms" % ((time.monotonic() - t) * 1000))
        assert r.reason == pb.EXIT_REASON_EXITED and r.exit_code == 0, r
        assert r.stdout == b"Hello World\n", r.stdout
        lat = []
        for _ in range(5):
            t = time.monotonic()
            ev(d, sb1.id, "pass")
            lat.append((time.monotonic() - t) * 1000)
        print("eval latency ms: min %.1f median %.1f" % (min(lat), sorted(lat)[2]))
        # Runs one after the other reuse the one worker.
        assert worker_ids(sb1.id) == [self.cid1], (self.cid1, workers_of(sb1.id))

    def test_execute_file_numpy(self):
        pb = self.pb
        script = (b"import numpy as np\nimport sys\n"
                  b"a = np.arange(12).reshape(3, 4)\n"
                  b"print(int(a.sum()), a.shape, sys.argv[1:], open('data/x.txt').read())\n")
        r = self.d.stub.ExecuteFile(pb.ExecuteFileRequest(
            sandbox_id=self.sb1.id, filename="job.py", content=script, args=["a", "b"],
            files=[pb.File(path="data/x.txt", content=b"hi")]), timeout=60).result
        assert r.reason == pb.EXIT_REASON_EXITED and r.exit_code == 0, r
        assert r.stdout == b"66 (3, 4) ['a', 'b'] hi\n", r.stdout

    def test_signaled_over_grpc(self):
        # A self-sent signal: SIGNALED, exit_code -N, signal N (over gRPC,
        # as the contract says).
        pb = self.pb
        r = ev(self.d, self.sb1.id, "import os, signal\nos.kill(os.getpid(), signal.SIGTERM)\n")
        assert (r.reason, r.exit_code, r.signal) == (pb.EXIT_REASON_SIGNALED, -15, 15), \
            describe(pb, r)

    def test_idle_clock_moves_on_run(self):
        # The idle clock: a run moves last_used_at_ms on (to the run's time).
        d, sb1 = self.d, self.sb1
        before = get(d, sb1.id).last_used_at_ms
        time.sleep(0.05)  # so that the run's own millisecond is a later one
        t0 = now_ms()
        assert ev(d, sb1.id, "print(3)").stdout == b"3\n"
        t1 = now_ms()
        after = get(d, sb1.id).last_used_at_ms
        print("last_used_at_ms: %d -> %d (run in [%d, %d])" % (before, after, t0, t1))
        assert before < after, (before, after)
        assert t0 - 1000 <= after <= t1 + 1000, (t0, after, t1)

    def test_same_spec_reuses_image(self):
        # Same spec again: the image is reused.
        sb1 = self.sb1
        sb2, t_second = self.sandbox(python_version="3.11", modules=["numpy"])
        print("create again (cached): %.2f s" % t_second)
        assert sb2.image == sb1.image and sb2.id != sb1.id
        assert t_second < 15, t_second
        if self.cold and self.t_first > 3:  # a real build (not all layers in the build cache)
            assert t_second < self.t_first / 2, (self.t_first, t_second)
        check_worker(sb2)

    def test_python313_local_wheel(self):
        # 3.13, with a module from the local wheelhouse (no network anywhere).
        sb3, t3 = self.sandbox(python_version="3.13", modules=["safeeval_testpkg"])
        print("create 3.13+wheel: %.2f s" % t3)
        assert sb3.python_version.startswith("3.13."), sb3.python_version
        r = ev(self.d, sb3.id, "import sys, safeeval_testpkg\n"
                               "print(sys.version_info[:2], safeeval_testpkg.VALUE)")
        assert r.stdout == b"(3, 13) 42\n", (r.stdout, r.stderr)

    def test_list_oldest_first_and_max_sandboxes(self):
        # ListSandboxes: exactly ours, oldest first (a fresh instance: only
        # this class's sandboxes are in its registry: sb1 and two made here).
        d, pb = self.d, self.pb
        sb2, _ = self.sandbox(python_version="3.11", modules=["numpy"])
        sb3, _ = self.sandbox(python_version="3.11", modules=["numpy"])
        ls = d.stub.ListSandboxes(pb.ListSandboxesRequest(), timeout=10).sandboxes
        assert [s.id for s in ls] == [self.sb1.id, sb2.id, sb3.id], [s.id for s in ls]
        assert [s.created_at_ms for s in ls] == sorted(s.created_at_ms for s in ls), ls
        assert ls[0].created_at_ms < ls[2].created_at_ms, ls
        assert [s.workers for s in ls] == [1, 1, 1], [s.workers for s in ls]

        # --max-sandboxes: one more is refused before any build.
        assert len(ls) == MAX_SB, len(ls)
        e = expect_code(lambda: self.sandbox(python_version="3.11"), C.RESOURCE_EXHAUSTED)
        assert "max-sandboxes" in e.details(), e.details()

    def test_destroy_during_run(self):
        # Destroy during a run: the run answers NOT_FOUND, its worker is gone.
        d, pb = self.d, self.pb
        sb2, _ = self.sandbox(python_version="3.11", modules=["numpy"])
        cids2 = worker_ids(sb2.id)
        mark = code_marker()
        box = {}

        def long_run():
            try:
                box["r"] = ev(d, sb2.id, "import time\ntime.sleep(8)\nprint('finished')",
                              args=[mark])
            except grpc.RpcError as e:
                box["e"] = e
        th = threading.Thread(target=long_run)
        th.start()
        self.addCleanup(th.join, 30)
        # The victim is seen running before the destroy (no fixed sleep).
        seen = wait_until(lambda: processes_of_sandbox(sb2.id, mark) or box, 30, 0.1)
        assert seen and not box, ("the run never showed up in the worker", box)
        t = time.monotonic()
        d.stub.DestroySandbox(pb.DestroySandboxRequest(sandbox_id=sb2.id), timeout=60)
        th.join(30)
        print("destroy during a run: %.2f s, run -> %s" % (
            time.monotonic() - t, box["e"].code() if "e" in box else box.get("r")))
        assert "e" in box and box["e"].code() == C.NOT_FOUND, box
        assert workers_of(sb2.id) == [], workers_of(sb2.id)
        assert not [c for c in cids2 if container_exists(c)], cids2
        expect_code(lambda: d.stub.DestroySandbox(
            pb.DestroySandboxRequest(sandbox_id=sb2.id), timeout=10), C.NOT_FOUND)
        expect_code(lambda: ev(d, sb2.id, "print(1)"), C.NOT_FOUND)

    def test_bad_input(self):
        # Bad input: the right code, the field named, nothing left behind.
        # Each case is a subTest: one wrong answer does not hide the others.
        d, pb, sb1 = self.d, self.pb, self.sb1

        def create_(**kw):
            return self.sandbox(**kw)  # destroyed at the end should one succeed
        cases = [
            ("eval unknown", lambda: ev(d, UNKNOWN, "print(1)"), C.NOT_FOUND, None),
            ("execfile unknown", lambda: d.stub.ExecuteFile(pb.ExecuteFileRequest(
                sandbox_id=UNKNOWN, filename="a.py", content=b"1"), timeout=10),
             C.NOT_FOUND, None),
            ("get unknown", lambda: d.stub.GetSandbox(
                pb.GetSandboxRequest(sandbox_id=UNKNOWN), timeout=10), C.NOT_FOUND, None),
            ("destroy unknown", lambda: d.stub.DestroySandbox(
                pb.DestroySandboxRequest(sandbox_id=UNKNOWN), timeout=10), C.NOT_FOUND, None),
            ("bad sandbox_id", lambda: ev(d, "../../etc", "print(1)"),
             C.INVALID_ARGUMENT, "sandbox_id"),
            ("module option", lambda: create_(python_version="3.11",
                                              modules=["numpy", "--index-url=http://evil/"]),
             C.INVALID_ARGUMENT, "modules[1]"),
            ("module shell", lambda: create_(python_version="3.11", modules=["x; rm -rf /"]),
             C.INVALID_ARGUMENT, "modules[0]"),
            ("python_version", lambda: create_(python_version="3.x"),
             C.INVALID_ARGUMENT, "python_version"),
            ("unknown python", lambda: create_(python_version="3.99"),
             C.FAILED_PRECONDITION, None),
            ("memory", lambda: create_(limits=pb.Limits(memory_bytes=1 << 50)),
             C.INVALID_ARGUMENT, "limits.memory_bytes"),
            ("max_concurrent_runs", lambda: create_(python_version="3.11",
                                                    max_concurrent_runs=5),
             C.INVALID_ARGUMENT, "max_concurrent_runs"),
            ("empty code", lambda: ev(d, sb1.id, ""), C.INVALID_ARGUMENT, "code"),
            ("wall over the sandbox's", lambda: ev(d, sb1.id, "1", limits=pb.Limits(
                wall_time_ms=sb1.limits.wall_time_ms + 1)),
             C.INVALID_ARGUMENT, "limits.wall_time_ms"),
            ("file path", lambda: ev(d, sb1.id, "1", files=[pb.File(path="../x")]),
             C.INVALID_ARGUMENT, "files[0].path"),
            ("filename", lambda: d.stub.ExecuteFile(pb.ExecuteFileRequest(
                sandbox_id=sb1.id, filename="../job.py", content=b"1"), timeout=10),
             C.INVALID_ARGUMENT, "filename"),
            ("reserved env", lambda: ev(d, sb1.id, "1", env={"SAFEEVAL_X": "1"}),
             C.INVALID_ARGUMENT, "env"),
            ("70 MiB of code", lambda: ev(d, sb1.id, "#" * (70 << 20)),
             C.RESOURCE_EXHAUSTED, None),
        ]
        for name, call, code, field in cases:
            with self.subTest(name):
                e = expect_code(call, code)
                if field is not None:
                    assert field in e.details(), e.details()
        # By the engine's labels: only sb1's worker, the same one.
        with self.subTest("nothing left"):
            assert_nothing_left(keep=[sb1.id])
        with self.subTest("sb1's worker the same"):
            assert worker_ids(sb1.id) == [self.cid1], (self.cid1, workers_of(sb1.id))
        with self.subTest("no dangling image"):
            note_steps(d)
            left = dangling_of_ours()
            assert not left, left
        # The sandbox still answers after all that.
        assert ev(d, sb1.id, "print(2)").stdout == b"2\n"

    def test_idle_reaper(self):
        # The idle reaper: runs keep a sandbox with a 2 s idle timeout alive
        # for twice that; unused for 2 s it goes, workers and all.
        d, pb = self.d, self.pb
        sb4, _ = self.sandbox(python_version="3.11", modules=["numpy"], idle_timeout_s=2)
        cids4 = worker_ids(sb4.id)
        assert len(cids4) == 1, cids4
        end = time.monotonic() + 4.5
        n = 0
        while time.monotonic() < end:
            r = ev(d, sb4.id, "print('busy')")
            assert r.stdout == b"busy\n", describe(pb, r)
            n += 1
            time.sleep(0.7)
        print("idle clock: %d runs over 4.5 s kept a 2 s idle sandbox" % n)
        try:
            get(d, sb4.id)
        except grpc.RpcError as e:
            self.fail("a run did not reset the reaper's clock: %s %s" % (e.code(), e.details()))
        end = time.monotonic() + 15

        def alive():
            try:
                get(d, sb4.id)
                return True
            except grpc.RpcError as e:
                assert e.code() == C.NOT_FOUND, e
                return False
        while alive() and time.monotonic() < end:
            time.sleep(0.5)
        assert not alive(), "the reaper did not reap an idle sandbox"
        # The registry goes first, then the workers.
        assert wait_until(lambda: not workers_of(sb4.id), 10, 0.2), workers_of(sb4.id)
        assert not [c for c in cids4 if container_exists(c)], cids4
        # sb1 was used within its (default, long) timeout: still there.
        get(d, self.sb1.id)


class Restart(unittest.TestCase):
    """Recovery after a restart (see the module's docstring): setUpClass runs
    the ordered steps and records what the restarted daemon reports; the
    tests check it, in the numbered order."""

    @classmethod
    def setUpClass(cls):
        cls.wheels = make_wheelhouse()
        args = daemon_args(cls.wheels, *EXTRA)
        cls.d = None
        try:
            cls._before_and_restart(args)
        except BaseException:
            try:
                if cls.d is not None:
                    cls.d.stop()
                    note_steps(cls.d)
                    shutil.rmtree(cls.d.tmpdir, ignore_errors=True)
            finally:
                remove_containers_of()
            raise

    @classmethod
    def _before_and_restart(cls, args):
        d1 = Daemon(extra_args=args, timeout=60)
        try:
            cls.a, _ = create(d1, python_version="3.11", modules=["numpy"],
                              labels={"owner": "tests"})
            cls.b, _ = create(d1, python_version="3.13", modules=["safeeval_testpkg"])
            # C's worker will be removed while the daemon is down (it has no
            # other record: it must be gone for good).
            cls.c, _ = create(d1, python_version="3.11", modules=["numpy"])
        finally:
            # Its exit status is checked by test_0_first_daemon_exit_status.
            cls.first_rc = d1.stop()
            note_steps(d1)
            cls.first_log = d1.log()[-6000:]
            shutil.rmtree(d1.tmpdir, ignore_errors=True)
        cls.cids_a, cls.cids_b, cls.cids_c = (worker_ids(s.id) for s in (cls.a, cls.b, cls.c))
        assert [len(cls.cids_a), len(cls.cids_b), len(cls.cids_c)] == [1, 1, 1], (
            cls.cids_a, cls.cids_b, cls.cids_c)

        # While the daemon is down: the workers stay (recovery needs them);
        # B's dies (a crash), C's is removed.
        cls.down_workers_a = worker_ids(cls.a.id)
        engine_kill(cls.cids_b[0])
        assert wait_until(lambda: inspect(cls.cids_b[0])["State"]["Running"] is False, 30, 0.1)
        engine_remove(cls.cids_c[0])

        # Restart, at --log-level info; what it reports at once, before any
        # test runs code.
        cls.d = Daemon(extra_args=args + ["--log-level", "info"], timeout=60)
        cls.pb = cls.d.pb
        cls.ls = list(cls.d.stub.ListSandboxes(cls.pb.ListSandboxesRequest(),
                                               timeout=10).sandboxes)
        cls.live = [s.id for s in cls.ls]  # what finish destroys
        cls.workers_a = worker_ids(cls.a.id)
        cls.workers_b = worker_ids(cls.b.id)
        cls.dead_b_exists = container_exists(cls.cids_b[0])
        cls.workers_b_running = [inspect(c)["State"]["Running"] for c in cls.workers_b]

    @classmethod
    def tearDownClass(cls):
        note_steps(cls.d)
        finish(cls.d, destroy=cls.live)

    def listed(self, sb):
        s = [x for x in self.ls if x.id == sb.id]
        self.assertEqual(len(s), 1, ("not listed after the restart", sb.id, self.ls))
        return s[0]

    def test_0_first_daemon_exit_status(self):
        self.assertEqual(self.first_rc, 0, self.first_log)

    def test_0_workers_stay_while_down(self):
        assert self.down_workers_a == self.cids_a, workers_of(self.a.id)

    def test_1_same_sandboxes_listed(self):
        # The same sandboxes, the same ids, the same spec.
        ids = [s.id for s in self.ls]
        sb1 = self.a
        assert ids == [sb1.id, self.b.id], (ids, self.d.log()[-3000:])
        s = self.listed(sb1)
        assert s.python_version == sb1.python_version and s.image == sb1.image
        assert dict(s.labels) == {"owner": "tests"} and s.created_at_ms == sb1.created_at_ms
        assert s.limits == sb1.limits
        assert (s.max_concurrent_runs, s.workers) == (4, 1), s

    def test_2_live_worker_reattached(self):
        # A's worker was alive: re-attached, not replaced, and still running code.
        sid, cids = self.a.id, self.cids_a
        assert self.workers_a == cids, (cids, self.workers_a)
        assert ev(self.d, sid, 'print("Hello World")').stdout == b"Hello World\n"
        assert worker_ids(sid) == cids, (cids, workers_of(sid))

    def test_3_dead_worker_replaced(self):
        # B's worker died: the sandbox lives on in a fresh one (same image,
        # same spec), and the dead container is gone.
        sb3, cids3 = self.b, self.cids_b
        s3 = self.listed(sb3)
        assert (s3.python_version, s3.image, s3.created_at_ms, list(s3.modules)) == (
            sb3.python_version, sb3.image, sb3.created_at_ms, list(sb3.modules)), s3
        new3 = self.workers_b
        assert len(new3) == 1 and new3 != cids3, (cids3, new3)
        assert not self.dead_b_exists, "the dead worker was left"
        assert self.workers_b_running == [True], self.workers_b_running
        r = ev(self.d, sb3.id, "import safeeval_testpkg; print(safeeval_testpkg.VALUE)")
        assert r.stdout == b"42\n", describe(self.pb, r)

    def test_4_removed_worker_forgotten(self):
        # C's only worker was removed: nothing records it any more.
        expect_code(lambda: get(self.d, self.c.id), C.NOT_FOUND)
        assert workers_of(self.c.id) == []

    def test_5_info_log_has_no_code(self):
        # Code, stdin, files, args, env and output: none at info level.
        d, pb, sid = self.d, self.pb, self.a.id
        mk = code_marker()
        r = d.stub.Eval(pb.EvalRequest(
            sandbox_id=sid, stdin=("in-" + mk).encode(), args=["arg-" + mk],
            env={"V": "env-" + mk}, files=[pb.File(path="f.txt", content=("file-" + mk).encode())],
            code="import sys\n# code-%s\nprint(sys.stdin.read(), open('f.txt').read())\n"
                 "print('err-%s', file=sys.stderr)\n" % (mk, mk)), timeout=60).result
        assert r.reason == pb.EXIT_REASON_EXITED and mk.encode() in r.stdout, describe(pb, r)
        r = d.stub.ExecuteFile(pb.ExecuteFileRequest(
            sandbox_id=sid, filename="job.py",
            content=("print('exec-%s')\nraise SystemExit('fail-%s')\n" % (mk, mk)).encode()),
            timeout=60).result
        assert r.exit_code == 1 and mk.encode() in r.stderr, describe(pb, r)
        r = ev(d, sid, "syntax error here %s (" % mk)
        assert r.exit_code == 1 and b"SyntaxError" in r.stderr, describe(pb, r)
        r = ev(d, sid, "print('wall-%s', flush=True)\nwhile True: pass\n" % mk,
               limits=pb.Limits(wall_time_ms=500))
        assert r.reason == pb.EXIT_REASON_WALL_TIMEOUT, describe(pb, r)
        expect_code(lambda: ev(d, sid, "nul-%s\0" % mk), C.INVALID_ARGUMENT)
        expect_code(lambda: ev(d, UNKNOWN, "unknown-%s" % mk), C.NOT_FOUND)
        log = d.log()
        # It is the info log (no debug line) and it does log the calls.
        assert not re.search(r"^\S+ debug ", log, re.M), log[-3000:]
        assert re.search(r"rpc Eval status=OK", log), log[-3000:]
        assert mk not in log, [ln for ln in log.splitlines() if mk in ln]

    def test_6_destroy(self):
        # Destroy: each sandbox's workers go with it; nothing is listed after.
        d, pb = self.d, self.pb
        for sid in list(self.live):
            cids = worker_ids(sid)
            d.stub.DestroySandbox(pb.DestroySandboxRequest(sandbox_id=sid), timeout=60)
            self.live.remove(sid)
            assert not [c for c in cids if container_exists(c)], cids
        assert not d.stub.ListSandboxes(pb.ListSandboxesRequest(), timeout=10).sandboxes


if __name__ == "__main__":
    print("instance", harness.INSTANCE)
    unittest.main(verbosity=2)
