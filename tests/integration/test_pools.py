"""Warm pools against the real safeevald and dockerd (issue 8): a create of a
pooled spec is served by a ready pool worker (the sandbox's worker is a
former pool container, and the sandbox has the id that container was
labelled with) and the pool refills; a create of another spec is not served
from it; a pool-served sandbox survives a restart exactly (spec, limits,
labels, timeouts, created_at) and still runs code, its pids fence applied;
after a restart pool workers are back in their pool, or removed when no pool
wants them: never orphans; pool workers count in --max-memory-total and give
way to a create that needs the room.

What is in a pool is read from the ENGINE (containers labelled safeeval.pool
whose sandbox id is no live sandbox's). The daemon's debug log is read only
to wait until a pool worker is ready (synced), never to decide a result.
"""
import os
import shutil
import sys
import tempfile
import time
import unittest

import grpc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Daemon  # noqa: E402
from sandbox_engine import (assert_exited_ok, assert_nothing_left, containers_of,  # noqa: E402
                            daemon_args, engine_get, make_wheelhouse, remove_containers_of,
                            wait_until, workers_of)

C = grpc.StatusCode
CREATE_S = 600
MiB = 1 << 20
LABEL_POOL = "safeeval.pool"
LABEL_SANDBOX = "safeeval.sandbox"
POOL_SPEC = "3.11:numpy"
FILL_S = 180  # a loaded 2-core machine makes a worker in well under this


def live_ids(d):
    return {s.id for s in d.stub.ListSandboxes(d.pb.ListSandboxesRequest(), timeout=30).sandboxes}


def pool_containers(d):
    """{container id: its sandbox label} of the running pool workers (no live
    sandbox has their id)."""
    live = live_ids(d)
    out = {}
    for c in containers_of():
        labels = c.get("Labels") or {}
        if LABEL_POOL in labels and labels.get(LABEL_SANDBOX) not in live \
                and c.get("State") == "running":
            out[c["Id"]] = labels.get(LABEL_SANDBOX)
    return out


def wait_pool(tc, d, n, timeout=FILL_S):
    """Waits until the engine holds exactly n pool workers and the daemon has
    them ready; returns them."""
    def ready():
        pc = pool_containers(d)
        log = d.log()
        if len(pc) == n and all(("worker %s ready" % cid[:12]) in log or
                                ("worker %s back in its pool" % cid[:12]) in log for cid in pc):
            return pc
        return None
    pc = wait_until(ready, timeout, step=0.2)
    tc.assertIsNotNone(pc, "the pool did not reach %d ready workers: %r" % (n, pool_containers(d)))
    return pc


def state_files(state_dir):
    path = os.path.join(state_dir, harness.INSTANCE)
    return sorted(os.listdir(path)) if os.path.isdir(path) else []


class PoolServe(unittest.TestCase):
    """One pool of 2 (3.11 + numpy); the restart test restarts the daemon
    with the same pool, and the class ends with a restart without any pool
    (which must remove the pool workers)."""

    @classmethod
    def setUpClass(cls):
        cls.wheels = make_wheelhouse()
        cls.state = tempfile.mkdtemp(prefix="safeeval-state-")
        cls.args = daemon_args(cls.wheels, "--state-dir", cls.state)
        cls.d = Daemon(extra_args=cls.args + ["--pool", POOL_SPEC + "=2"], timeout=60)
        cls.pb = cls.d.pb

    @classmethod
    def tearDownClass(cls):
        try:
            # Without --pool, the pool workers have no pool: a restart must
            # remove them, and nothing of the instance may be left.
            cls.d.close()
            cls.d = Daemon(extra_args=cls.args, timeout=60)
            for sid in live_ids(cls.d):
                cls.d.stub.DestroySandbox(cls.d.pb.DestroySandboxRequest(sandbox_id=sid),
                                          timeout=60)
            assert_nothing_left()
            if state_files(cls.state):
                raise AssertionError("state files left: %r" % state_files(cls.state))
        finally:
            try:
                cls.d.close()
            finally:
                remove_containers_of()
                shutil.rmtree(cls.state, ignore_errors=True)

    def create(self, **kw):
        kw.setdefault("python_version", "3.11")
        kw.setdefault("modules", ["numpy"])
        return self.d.stub.CreateSandbox(self.pb.CreateSandboxRequest(**kw),
                                         timeout=CREATE_S).sandbox

    def destroy(self, sid):
        self.d.stub.DestroySandbox(self.pb.DestroySandboxRequest(sandbox_id=sid), timeout=60)

    def eval_ok(self, sid, code="import numpy; print(numpy.__name__)", stdout=b"numpy\n"):
        r = self.d.stub.Eval(self.pb.EvalRequest(sandbox_id=sid, code=code), timeout=120).result
        assert_exited_ok(self, self.pb, r, stdout)

    def test_1_served_from_the_pool_and_refilled(self):
        pool = wait_pool(self, self.d, 2)
        sb = self.create()
        # The fast path: the sandbox took a pool container and its id.
        self.assertIn(sb.id, pool.values())
        ws = workers_of(sb.id)
        self.assertEqual(len(ws), 1, ws)
        self.assertIn(ws[0]["Id"], pool)
        self.assertEqual(len(state_files(self.state)), 1)
        self.eval_ok(sb.id)
        # The pool refills to 2 in the background, with a new container.
        after = wait_pool(self, self.d, 2)
        self.assertNotIn(ws[0]["Id"], after)
        self.assertEqual(len(set(after) & set(pool)), 1, (pool, after))
        self.destroy(sb.id)
        self.assertEqual(state_files(self.state), [])
        self.assertEqual(workers_of(sb.id), [])

    def test_2_other_spec_not_served(self):
        pool = wait_pool(self, self.d, 2)
        sb = self.create(modules=[])  # 3.11 without numpy: another image
        self.assertNotIn(sb.id, pool.values())
        ws = workers_of(sb.id)
        self.assertEqual(len(ws), 1)
        self.assertNotIn(ws[0]["Id"], pool)
        self.assertNotIn(LABEL_POOL, ws[0]["Labels"])
        self.assertEqual(state_files(self.state), [])
        # The pool is untouched.
        self.assertEqual(pool_containers(self.d), pool)
        self.eval_ok(sb.id, "print(1)", b"1\n")
        self.destroy(sb.id)

    def test_3_restart_recovers_a_pool_served_sandbox(self):
        cls = type(self)
        pool = wait_pool(self, self.d, 2)
        sb = self.create(limits=self.pb.Limits(memory_bytes=200 * MiB, max_processes=20),
                         labels={"team": "pools"}, idle_timeout_s=999, max_concurrent_runs=2)
        self.assertIn(sb.id, pool.values())
        before = self.d.stub.GetSandbox(self.pb.GetSandboxRequest(sandbox_id=sb.id),
                                        timeout=30).sandbox
        wait_pool(self, self.d, 2)
        self.assertEqual(self.d.stop(), 0)
        cls.d = Daemon(extra_args=cls.args + ["--pool", POOL_SPEC + "=2"], timeout=60)
        self.d = cls.d
        after = self.d.stub.GetSandbox(self.pb.GetSandboxRequest(sandbox_id=sb.id),
                                       timeout=30).sandbox
        for f in ("id", "python_version", "modules", "limits", "image", "created_at_ms",
                  "labels", "idle_timeout_s", "max_concurrent_runs", "workers"):
            self.assertEqual(getattr(after, f), getattr(before, f), f)
        # The sandbox's fence is its own, not the pool's default (64 + 4).
        cid = workers_of(sb.id)[0]["Id"]
        st, js = engine_get("/containers/%s/json" % cid)
        self.assertEqual(st, 200)
        self.assertEqual(js["HostConfig"]["PidsLimit"], 20 + 4)
        self.eval_ok(sb.id)
        # No orphan: the 2 pool workers are back in the pool (or replaced);
        # every container of the instance is the sandbox's or the pool's.
        now = wait_pool(self, self.d, 2)
        for c in containers_of():
            sid = (c.get("Labels") or {}).get(LABEL_SANDBOX)
            self.assertTrue(sid == sb.id or c["Id"] in now, c["Id"])
        self.destroy(sb.id)
        self.assertEqual(state_files(self.state), [])


class PoolFlags(unittest.TestCase):
    """A bad --pool stops the daemon at start with a line that names it."""

    def test_bad_pool_specs_refused(self):
        state = tempfile.mkdtemp(prefix="safeeval-state-")
        try:
            for bad, why in (("3.11", "expected VERSION"), ("3.11=0", "expected VERSION"),
                             ("3.11= 2", "expected VERSION"), ("3.11=65", "expected VERSION"),
                             ("3.11:num py=1", "whitespace"), ("=1", "expected VERSION"),
                             (":numpy=1", "no Python version"),
                             ("3.11:numpy,numpy=1", "duplicate")):
                r = harness.run_daemon(["--listen", "unix:" + os.path.join(state, "s.sock"),
                                        "--instance", harness.INSTANCE, "--state-dir", state,
                                        "--pool", bad])
                self.assertNotEqual(r.returncode, 0, bad)
                self.assertIn(why, r.stderr, (bad, r.stderr[-500:]))
            r = harness.run_daemon(["--listen", "unix:" + os.path.join(state, "s.sock"),
                                    "--instance", harness.INSTANCE, "--state-dir", state,
                                    "--pool", "3.11=1", "--pool", "3.11=2"])
            self.assertIn("given twice", r.stderr)
        finally:
            shutil.rmtree(state, ignore_errors=True)


class PoolAuto(unittest.TestCase):
    """--auto-pool 1: a created spec gets a pool of 1, which serves the next
    create of it, and goes when no create of it came for the window."""

    def test_auto_pool(self):
        wheels = make_wheelhouse()
        state = tempfile.mkdtemp(prefix="safeeval-state-")
        d = Daemon(extra_args=daemon_args(wheels, "--state-dir", state, "--auto-pool", "1",
                                          "--auto-pool-window-s", "8"), timeout=60)
        try:
            req = d.pb.CreateSandboxRequest(python_version="3.11")
            first = d.stub.CreateSandbox(req, timeout=CREATE_S).sandbox
            self.assertNotIn(LABEL_POOL, workers_of(first.id)[0]["Labels"])
            pool = wait_pool(self, d, 1)
            second = d.stub.CreateSandbox(req, timeout=CREATE_S).sandbox
            self.assertIn(second.id, pool.values())
            for sb in (first, second):
                d.stub.DestroySandbox(d.pb.DestroySandboxRequest(sandbox_id=sb.id), timeout=60)
            # Refilled after the second create, then gone after the window.
            self.assertTrue(wait_until(lambda: len(pool_containers(d)) == 1, FILL_S))
            self.assertTrue(wait_until(lambda: containers_of() == [], 60),
                            "the auto pool outlived its window")
        finally:
            try:
                d.close()
            finally:
                remove_containers_of()
                shutil.rmtree(state, ignore_errors=True)


class PoolBudget(unittest.TestCase):
    """--max-memory-total holds 2 default workers (260 MiB each) but not 3:
    a pool of 3 stops at 2, and a create of another spec evicts one."""

    def test_pool_respects_and_yields_the_budget(self):
        wheels = make_wheelhouse()
        state = tempfile.mkdtemp(prefix="safeeval-state-")
        args = daemon_args(wheels, "--state-dir", state, "--max-memory-total", "600M")
        d = Daemon(extra_args=args + ["--pool", POOL_SPEC + "=3"], timeout=60)
        try:
            wait_pool(self, d, 2)
            time.sleep(2)  # it must not make a third
            self.assertEqual(len(pool_containers(d)), 2)
            sb = d.stub.CreateSandbox(d.pb.CreateSandboxRequest(python_version="3.11"),
                                      timeout=CREATE_S).sandbox
            self.assertNotIn(LABEL_POOL, workers_of(sb.id)[0]["Labels"])
            # 2 x 260 + 260 > 600: one pool worker gave way, and none comes
            # back while the sandbox holds its memory.
            wait_until(lambda: len(pool_containers(d)) == 1, 60)
            time.sleep(2)
            self.assertEqual(len(pool_containers(d)), 1)
            d.stub.DestroySandbox(d.pb.DestroySandboxRequest(sandbox_id=sb.id), timeout=60)
            wait_pool(self, d, 2)
            d.close()
            # Restarted without a pool: its workers are removed.
            d = Daemon(extra_args=args, timeout=60)
            self.assertEqual(pool_containers(d), {})
            assert_nothing_left()
        finally:
            try:
                d.close()
            finally:
                remove_containers_of()
                shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    unittest.main(verbosity=2)
