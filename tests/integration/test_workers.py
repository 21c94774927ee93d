"""Worker containers, the per-sandbox queue and server-side deadlines, against
the real safeevald and dockerd (issue 7): 20 parallel Evals on a 4-worker
sandbox all succeed and never run more than 4 at once; a full queue answers
RESOURCE_EXHAUSTED and a queued run whose deadline passes DEADLINE_EXCEEDED
(and gives its place back); a run nobody waits for still ends at wall +
grace; a cancel frees the worker at once and leaves no process; destroy
during a run answers and leaves nothing; what a run printed before a kill is
in its result; the host memory budget.

Each test makes its own sandbox (3.11 + numpy, the image the other tests use)
and checks at its end that the engine holds no container of this program's
daemon instance beyond the class's sandboxes (by label, never by log).
"""
import os
import sys
import threading
import time
import unittest

import grpc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Daemon, expect_code  # noqa: E402
from sandbox_engine import (assert_exited_ok, assert_nothing_left,  # noqa: E402
                            container_exists, daemon_args, describe, finish,
                            make_wheelhouse, processes_of_sandbox, remove_containers_of,
                            wait_until, workers_of)

C = grpc.StatusCode
CREATE_S = 600        # a create may build the image
MiB = 1 << 20
# A server-side deadline is the run's wall limit plus a small grace; how long
# past the wall limit an answer may take on a loaded 2-core machine.
GRACE_S = 5.0

SLEEPER = "import time\nprint('started', flush=True)\ntime.sleep(600)\n"


def marker():
    """A unique argument: the run's command line carries it (engine top)."""
    return "m" + os.urandom(6).hex()


class Base(unittest.TestCase):
    """A daemon per class with EXTRA flags; each test's sandboxes destroyed at
    its end, then nothing of the instance may be left in the engine."""
    EXTRA = ()

    @classmethod
    def setUpClass(cls):
        cls.wheels = make_wheelhouse()
        cls.d = Daemon(extra_args=daemon_args(cls.wheels, *cls.EXTRA), timeout=60)
        cls.pb = cls.d.pb

    @classmethod
    def tearDownClass(cls):
        finish(cls.d)

    def setUp(self):
        self.addCleanup(self._nothing_left)  # runs last (cleanups are LIFO)

    def _nothing_left(self):
        assert_nothing_left()

    def sandbox(self, **kw):
        """A 3.11 + numpy sandbox, destroyed when the test ends."""
        kw.setdefault("python_version", "3.11")
        kw.setdefault("modules", ["numpy"])
        sb = self.d.stub.CreateSandbox(self.pb.CreateSandboxRequest(**kw),
                                       timeout=CREATE_S).sandbox
        self.addCleanup(self._destroy, sb.id)
        return sb

    def _destroy(self, sid):
        try:
            self.d.stub.DestroySandbox(self.pb.DestroySandboxRequest(sandbox_id=sid),
                                       timeout=60)
        except grpc.RpcError as e:
            if e.code() != C.NOT_FOUND:  # the test destroyed it itself
                raise

    def eval_req(self, sid, code, args=(), **lim):
        return self.pb.EvalRequest(sandbox_id=sid, code=code, args=list(args),
                                   limits=self.pb.Limits(**lim))

    def ev(self, sid, code, args=(), timeout=120, **lim):
        return self.d.stub.Eval(self.eval_req(sid, code, args, **lim), timeout=timeout).result

    def wait_started(self, sid, mark, fut=None, timeout=60):
        """Waits until a process carrying `mark` runs in one of the sandbox's
        workers (the victim said it started: no fixed sleeps)."""
        found = wait_until(lambda: processes_of_sandbox(sid, mark) or
                           (fut is not None and fut.done()), timeout, 0.1)
        if fut is not None and fut.done():
            self.fail("the run ended before it was seen running: %r" % (fut.result(),))
        self.assertTrue(found, "the run carrying %s never showed up in the workers (log:\n%s)"
                        % (mark, self.d.log()[-3000:]))

    def assert_ok(self, r, stdout=None):
        assert_exited_ok(self, self.pb, r, stdout)


class Pool(Base):
    EXTRA = ("--max-concurrent-runs", "4")

    def test_concurrency_field(self):
        # Catches: max_concurrent_runs ignored, unchecked against the flag, or
        # not reported; a sandbox made with more than one worker up front.
        pb = self.pb
        try:
            sb = self.d.stub.CreateSandbox(pb.CreateSandboxRequest(
                python_version="3.11", modules=["numpy"], max_concurrent_runs=5),
                timeout=CREATE_S).sandbox
            self._destroy(sb.id)
            self.fail("max_concurrent_runs 5 above --max-concurrent-runs 4 was accepted")
        except grpc.RpcError as e:
            self.assertEqual(e.code(), C.INVALID_ARGUMENT, e.details())
            self.assertIn("max_concurrent_runs", e.details())
        sb = self.sandbox()  # 0 = the service's --max-concurrent-runs
        self.assertEqual(sb.max_concurrent_runs, 4, sb)
        self.assertEqual(sb.workers, 1, "a sandbox starts with one worker: %s" % sb)
        self.assertEqual(len(workers_of(sb.id)), 1, workers_of(sb.id))
        got = self.d.stub.GetSandbox(pb.GetSandboxRequest(sandbox_id=sb.id), timeout=10).sandbox
        self.assertEqual((got.max_concurrent_runs, got.workers), (4, 1), got)

    def test_twenty_parallel_evals(self):
        # Catches: runs beyond the busy workers refused (RESOURCE_EXHAUSTED)
        # instead of queued; more runs at once than max_concurrent_runs (two
        # runs sharing a worker, or extra workers); a result delivered to the
        # wrong call; Sandbox.workers not matching the engine.
        pb = self.pb
        sb = self.sandbox(max_concurrent_runs=4)
        self.assertEqual(sb.max_concurrent_runs, 4, sb)
        code = ("import sys, time\nt0 = time.time()\ntime.sleep(1.0)\n"
                "print('run', sys.argv[1], repr(t0), repr(time.time()))\n")
        peak = {"containers": 0, "reported": 0}
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                peak["containers"] = max(peak["containers"], len(workers_of(sb.id)))
                s = self.d.stub.GetSandbox(pb.GetSandboxRequest(sandbox_id=sb.id),
                                           timeout=10).sandbox
                peak["reported"] = max(peak["reported"], s.workers)
                time.sleep(0.1)
        th = threading.Thread(target=sample)
        th.start()
        try:
            futs = [self.d.stub.Eval.future(self.eval_req(sb.id, code, [str(i)]), timeout=180)
                    for i in range(20)]
            results, errors = [], []
            for i, f in enumerate(futs):
                try:
                    results.append((i, f.result()))
                except grpc.RpcError as e:
                    errors.append((i, e.code(), e.details()))
        finally:
            stop.set()
            th.join()
        self.assertEqual(errors, [], "every one of 20 parallel runs must succeed")
        spans = []
        for i, resp in results:
            r = resp.result
            self.assert_ok(r)
            words = r.stdout.decode().split()
            self.assertEqual(words[:2], ["run", str(i)], "run %d got %r" % (i, r.stdout))
            spans.append((float(words[2]), float(words[3])))
        # How many ran at once, from the runs' own clocks (the host's clock).
        events = sorted([(a, 1) for a, _ in spans] + [(b, -1) for _, b in spans])
        now = most = 0
        for _, step in events:
            now += step
            most = max(most, now)
        print("20 runs: at most %d at once, %d worker containers, %d reported" % (
            most, peak["containers"], peak["reported"]))
        self.assertLessEqual(most, 4, "more runs at once than max_concurrent_runs")
        self.assertGreaterEqual(most, 2, "the runs were serialised: no worker was added")
        self.assertLessEqual(peak["containers"], 4, "more workers than max_concurrent_runs")
        self.assertGreaterEqual(peak["containers"], 2)
        self.assertTrue(1 <= peak["reported"] <= 4, peak)

        # Sandbox.workers is what the engine has (idle extras may be going).
        def agree():
            s = self.d.stub.GetSandbox(pb.GetSandboxRequest(sandbox_id=sb.id),
                                       timeout=10).sandbox
            running = [c for c in workers_of(sb.id) if c["State"] == "running"]
            return s.workers == len(running) and 1 <= s.workers <= 4
        self.assertTrue(wait_until(agree, 15, 0.2),
                        "Sandbox.workers never matched the engine's running workers")

    def test_wall_deadline_without_client_deadline(self):
        # Catches: no server-side deadline (a call with no client deadline
        # hangs while its run spins or sleeps), the wrong reason, a wall time
        # far past the limit, a killed run's processes left in the worker.
        pb = self.pb
        sb = self.sandbox(max_concurrent_runs=1)
        for name, code, cpu_max_ms in (("spin", "while True: pass\n", 3000),
                                       ("sleep", "import time\ntime.sleep(100)\n", 500)):
            t = time.monotonic()
            mark = marker()
            fut = self.d.stub.Eval.future(self.eval_req(sb.id, code, [mark], wall_time_ms=2000,
                                                        cpu_time_ms=10000))  # no timeout
            try:
                r = fut.result(timeout=2.0 + GRACE_S).result
            except grpc.FutureTimeoutError:
                fut.cancel()
                self.fail("%s: no answer %.0f s after a 2 s wall limit" % (name, GRACE_S))
            dt = time.monotonic() - t
            print("%s: answered in %.2f s: %s" % (name, dt, describe(pb, r)))
            self.assertEqual(r.reason, pb.EXIT_REASON_WALL_TIMEOUT, describe(pb, r))
            self.assertIn(r.signal, (9, 15), describe(pb, r))
            self.assertEqual(r.exit_code, -r.signal, describe(pb, r))
            self.assertTrue(2.0e6 <= r.wall_time_us <= 3.5e6, describe(pb, r))
            self.assertLessEqual(r.cpu_time_us, cpu_max_ms * 1000, describe(pb, r))
            self.assertGreaterEqual(dt, 1.9)
            self.assertEqual(processes_of_sandbox(sb.id, mark), [],
                             "%s: the killed run's processes remain" % name)
        # The worker is free again.
        self.assert_ok(self.ev(sb.id, "print('next')", timeout=30), b"next\n")

    def test_cancel_frees_worker(self):
        # Catches: a cancelled call whose run goes on (holding the only
        # worker, so the next run waits, and leaving its processes), a cancel
        # that takes longer than promised, a worker replaced slowly instead of
        # the run being killed.
        pb = self.pb
        sb = self.sandbox(max_concurrent_runs=1, limits=pb.Limits(wall_time_ms=60000))
        self.assert_ok(self.ev(sb.id, "print(1)"), b"1\n")  # the worker is warm
        mark = marker()
        fut = self.d.stub.Eval.future(self.eval_req(sb.id, SLEEPER, [mark], wall_time_ms=15000),
                                      timeout=120)
        self.wait_started(sb.id, mark, fut)
        time.sleep(1.0)
        t_cancel = time.time()
        self.assertTrue(fut.cancel(), "the call had already ended")
        t = time.monotonic()
        r = self.ev(sb.id, "import time\nprint(repr(time.time()))\n", timeout=60)
        answered = time.monotonic() - t
        self.assert_ok(r)
        started = float(r.stdout.decode()) - t_cancel
        print("cancel: the next run started %.2f s after the cancel, answered in %.2f s"
              % (started, answered))
        self.assertLess(started, 1.5, "the next run waited for the cancelled one")
        left = [(pid, cmd[-120:]) for _, pid, _, cmd in processes_of_sandbox(sb.id, mark)]
        self.assertEqual(left, [], "processes of the cancelled run are still running")

    def test_destroy_during_runs(self):
        # Catches: destroy leaving an in-flight or queued call hanging until
        # its wall limit (or forever), a worker container or a run's process
        # left behind.
        pb = self.pb
        sb = self.sandbox(max_concurrent_runs=1, limits=pb.Limits(wall_time_ms=60000))
        mark = marker()
        running = self.d.stub.Eval.future(self.eval_req(sb.id, SLEEPER, [mark],
                                                        wall_time_ms=60000), timeout=120)
        self.wait_started(sb.id, mark, running)
        queued = self.d.stub.Eval.future(self.eval_req(sb.id, SLEEPER, [mark + "q"],
                                                       wall_time_ms=60000), timeout=120)
        time.sleep(0.5)
        cids = [c["Id"] for c in workers_of(sb.id)]
        t = time.monotonic()
        self.d.stub.DestroySandbox(pb.DestroySandboxRequest(sandbox_id=sb.id), timeout=60)
        self.assertEqual(workers_of(sb.id), [], "destroy answered with containers left")
        for name, fut in (("running", running), ("queued", queued)):
            try:
                r = fut.result(timeout=10).result
                # The run's own end (killed with its sandbox) is an answer too.
                self.assertNotEqual(r.reason, pb.EXIT_REASON_EXITED, describe(pb, r))
                got = "result " + describe(pb, r)
            except grpc.FutureTimeoutError:
                fut.cancel()
                self.fail("the %s call did not answer within 10 s of destroy" % name)
            except grpc.RpcError as e:
                self.assertIn(e.code(), (C.NOT_FOUND, C.ABORTED),
                              "%s: %s %s" % (name, e.code(), e.details()))
                got = "%s %s" % (e.code(), e.details())
            print("destroy: %s call -> %s after %.2f s" % (name, got, time.monotonic() - t))
        self.assertEqual([c for c in cids if container_exists(c)], [],
                         "worker containers left after destroy")
        expect_code(lambda: self.ev(sb.id, "print(1)", timeout=10), C.NOT_FOUND)

    def test_output_before_a_kill(self):
        # Catches: block-buffered stdout lost at a kill (no PYTHONUNBUFFERED),
        # output collected only at the end and dropped on a kill, chunks lost
        # when a run is killed while streaming.
        pb = self.pb
        sb = self.sandbox(max_concurrent_runs=1)
        r = self.ev(sb.id, "import sys, time\nprint('before', flush=False)\n"
                           "sys.stderr.write('err-before\\n')\ntime.sleep(100)\n",
                    wall_time_ms=1500)
        self.assertEqual(r.reason, pb.EXIT_REASON_WALL_TIMEOUT, describe(pb, r))
        self.assertEqual((r.stdout, r.stderr), (b"before\n", b"err-before\n"), describe(pb, r))
        # Several 64 KiB output events' worth, then a CPU kill.
        r = self.ev(sb.id, "import sys\nsys.stdout.write('y' * 300000)\nwhile True: pass\n",
                    cpu_time_ms=1000, wall_time_ms=10000)
        self.assertEqual(r.reason, pb.EXIT_REASON_CPU_TIMEOUT, describe(pb, r))
        self.assertEqual((r.stdout, r.stdout_bytes, r.stdout_truncated),
                         (b"y" * 300000, 300000, False),
                         (len(r.stdout), r.stdout_bytes, r.stdout_truncated))


class Queue(Base):
    EXTRA = ("--max-concurrent-runs", "4", "--max-queued-runs", "1")

    def test_queue_full(self):
        # Catches: an unbounded queue (the third call waits instead), a
        # refusal that does not say which limit, queued runs lost.
        sb = self.sandbox(max_concurrent_runs=1)
        mark = marker()
        code = "import time\nprint('started', flush=True)\ntime.sleep(4)\nprint('end')\n"
        first = self.d.stub.Eval.future(self.eval_req(sb.id, code, [mark]), timeout=120)
        self.wait_started(sb.id, mark, first)
        second = self.d.stub.Eval.future(self.eval_req(sb.id, "print('second')"), timeout=120)
        time.sleep(0.5)  # let it reach the queue
        self.assertFalse(second.done(), "the queued run answered while the worker was busy")
        t = time.monotonic()
        e = expect_code(lambda: self.ev(sb.id, "print('third')", timeout=30),
                        C.RESOURCE_EXHAUSTED)
        self.assertLess(time.monotonic() - t, 2.0, "a full queue must refuse, not wait")
        self.assertIn("queue", e.details().lower(), e.details())
        print("queue full: %s" % e.details())
        self.assert_ok(first.result().result, b"started\nend\n")
        self.assert_ok(second.result().result, b"second\n")

    def test_queued_deadline(self):
        # Catches: a queued run that outlives its caller's deadline (it still
        # runs later, or keeps its place so the next caller is refused).
        sb = self.sandbox(max_concurrent_runs=1)
        mark = marker()
        code = "import time\nprint('started', flush=True)\ntime.sleep(5)\n"
        first = self.d.stub.Eval.future(self.eval_req(sb.id, code, [mark]), timeout=120)
        self.wait_started(sb.id, mark, first)
        late = marker()
        t = time.monotonic()
        expect_code(lambda: self.ev(sb.id, "import time\ntime.sleep(30)\n", [late], timeout=1.5),
                    C.DEADLINE_EXCEEDED)
        self.assertLess(time.monotonic() - t, 3.0)
        # Its place in the queue (of 1) is free again (give the server a
        # moment: it sees the deadline on its own clock): this one waits, not
        # refused.
        time.sleep(0.3)
        third = self.d.stub.Eval.future(self.eval_req(sb.id, "print('third')"), timeout=120)
        self.assert_ok(first.result().result)
        try:
            self.assert_ok(third.result().result, b"third\n")
        except grpc.RpcError as e:
            self.fail("after a queued run's deadline passed: %s %s" % (e.code(), e.details()))
        # The expired run never started.
        self.assertFalse(wait_until(lambda: processes_of_sandbox(sb.id, late), 1.5, 0.1),
                         "the run whose deadline passed in the queue ran anyway")


class Budget(Base):
    # Two 300 MiB workers fit in 700 MiB (with a small reserve each), a third
    # does not.
    EXTRA = ("--max-concurrent-runs", "4", "--max-memory-total", str(700 * MiB))

    def test_memory_budget(self):
        # Catches: --max-memory-total not enforced on create, a refusal that
        # does not name the budget, a destroyed sandbox's memory never given
        # back to the budget.
        pb = self.pb
        lim = dict(memory_bytes=300 * MiB)
        a = self.sandbox(max_concurrent_runs=1, limits=pb.Limits(**lim))
        b = self.sandbox(max_concurrent_runs=1, limits=pb.Limits(**lim))
        t = time.monotonic()
        try:
            c = self.d.stub.CreateSandbox(pb.CreateSandboxRequest(
                python_version="3.11", modules=["numpy"], limits=pb.Limits(**lim)),
                timeout=15).sandbox
            self.addCleanup(self._destroy, c.id)
            self.fail("a third 300 MiB sandbox fit in a 700 MiB budget")
        except grpc.RpcError as e:
            self.assertIn(e.code(), (C.RESOURCE_EXHAUSTED, C.DEADLINE_EXCEEDED),
                          "%s %s" % (e.code(), e.details()))
            if e.code() == C.RESOURCE_EXHAUSTED:
                self.assertIn("memory", e.details().lower(), e.details())
            print("over the budget: %s %s after %.1f s" % (e.code(), e.details(),
                                                           time.monotonic() - t))
        self.assertEqual(len([s for s in self.d.stub.ListSandboxes(
            pb.ListSandboxesRequest(), timeout=10).sandboxes]), 2)
        self.assertEqual(len(workers_of(a.id)) + len(workers_of(b.id)), 2)
        self.d.stub.DestroySandbox(pb.DestroySandboxRequest(sandbox_id=b.id), timeout=60)
        c = self.sandbox(max_concurrent_runs=1, limits=pb.Limits(**lim))
        self.assert_ok(self.ev(c.id, "print('fits')"), b"fits\n")


class ZygoteBudget(Base):
    # A zygote worker holds its run's memory + the reserve + the room its
    # zygote starts with (256 MiB, service/sandbox/internal.h
    # SANDBOX_ZYGOTE_START_MEMORY): 64 + 4 + 256 = 324 MiB of these 400.
    EXTRA = ("--max-memory-total", str(400 * MiB))

    def test_zygote_counts_in_the_budget(self):
        # Catches: a zygote sandbox charged like a fresh one (its zygote's
        # memory outside --max-memory-total), and that charge not given back
        # when it is destroyed.
        pb = self.pb
        z = self.sandbox(modules=[], preload=["random"], max_concurrent_runs=1,
                         limits=pb.Limits(memory_bytes=64 * MiB))
        self.assertEqual(z.runner, pb.RUNNER_ZYGOTE)
        self.assert_ok(self.ev(z.id, "import random\nprint('z')"), b"z\n")
        lim = pb.Limits(memory_bytes=128 * MiB)
        try:
            c = self.d.stub.CreateSandbox(pb.CreateSandboxRequest(
                python_version="3.11", limits=lim), timeout=60).sandbox
            self.addCleanup(self._destroy, c.id)
            self.fail("324 MiB (zygote) + 132 MiB fit in a 400 MiB budget")
        except grpc.RpcError as e:
            self.assertEqual(e.code(), C.RESOURCE_EXHAUSTED, e.details())
            self.assertIn("max-memory-total", e.details())
            print("over the budget:", e.details())
        self.d.stub.DestroySandbox(pb.DestroySandboxRequest(sandbox_id=z.id), timeout=60)
        c = self.sandbox(modules=[], max_concurrent_runs=1, limits=lim)
        self.assert_ok(self.ev(c.id, "print('fits')"), b"fits\n")


if __name__ == "__main__":
    print("instance", harness.INSTANCE)
    unittest.main(verbosity=2)
