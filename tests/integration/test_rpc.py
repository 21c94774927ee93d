"""The gRPC server layer of safeevald: health, unknown methods, request size
(the default and a configured --max-request-bytes, at its boundary), status
mapping, deadlines and cancellation, the bounded queue, graceful shutdown
and the listen policy. The tests that run code need the whole stack (docker
engine, base image safeeval/python:3.11). Every class ends by asking the
engine that no container of this program's daemon instance is left."""

import os
import re
import signal
import socket
import sys
import threading
import time
import unittest

import grpc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Daemon, expect_code, run_daemon  # noqa: E402
from sandbox_engine import (assert_nothing_left, finish, processes_of_sandbox,  # noqa: E402
                            remove_containers_of, wait_until)

BASE = ["--base-image", "safeeval/python:{version}"]
SLOW = 120  # seconds a CreateSandbox may take (the first one builds the image)
DEADLINE_S = 3.0  # a client deadline a run starts well within on a loaded machine


class ServerOnly(unittest.TestCase):
    """No sandbox needed."""

    @classmethod
    def setUpClass(cls):
        cls.d = Daemon(extra_args=BASE)

    @classmethod
    def tearDownClass(cls):
        finish(cls.d)  # nothing left, the daemon exited 0

    def test_health_serving(self):
        d = self.d
        r = d.health.Check(d.health_pb.HealthCheckRequest(), timeout=5)
        self.assertEqual(r.status, d.health_pb.HealthCheckResponse.SERVING)
        r = d.health.Check(d.health_pb.HealthCheckRequest(service="safeeval.v1.SandboxService"),
                           timeout=5)
        self.assertEqual(r.status, d.health_pb.HealthCheckResponse.SERVING)
        expect_code(lambda: d.health.Check(d.health_pb.HealthCheckRequest(service="nope"),
                                           timeout=5), grpc.StatusCode.NOT_FOUND)

    def test_unknown_method(self):
        call = self.d.channel.unary_unary("/safeeval.v1.SandboxService/Nope")
        t = time.monotonic()
        expect_code(lambda: call(b"", timeout=5), grpc.StatusCode.UNIMPLEMENTED)
        # Catches: an unknown method left unanswered (a hang until the 5 s
        # deadline fails expect_code); 3 s is slack for a loaded 2-core ASan
        # run, still under that deadline.
        self.assertLess(time.monotonic() - t, 3.0)
        call = self.d.channel.unary_unary("/other.Service/X")
        expect_code(lambda: call(b"\x01\x02", timeout=5), grpc.StatusCode.UNIMPLEMENTED)

    def test_oversized_request(self):
        d = self.d
        req = d.pb.EvalRequest(sandbox_id="x", code="#" * (17 << 20))
        expect_code(lambda: d.stub.Eval(req, timeout=20), grpc.StatusCode.RESOURCE_EXHAUSTED)
        # The server is still fine afterwards.
        d.health.Check(d.health_pb.HealthCheckRequest(), timeout=5)

    def test_garbage_request(self):
        call = self.d.channel.unary_unary("/safeeval.v1.SandboxService/Eval")
        e = expect_code(lambda: call(b"\xff\xff\xff\xff", timeout=5),
                        grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("EvalRequest", e.details())

    def test_not_found(self):
        d = self.d
        for fn in (lambda: d.stub.GetSandbox(d.pb.GetSandboxRequest(sandbox_id="nope"), timeout=5),
                   lambda: d.stub.Eval(d.pb.EvalRequest(sandbox_id="nope", code="1"), timeout=5),
                   lambda: d.stub.DestroySandbox(d.pb.DestroySandboxRequest(sandbox_id="nope"),
                                                 timeout=5)):
            expect_code(fn, grpc.StatusCode.NOT_FOUND)

    def test_list(self):
        d = self.d
        r = d.stub.ListSandboxes(d.pb.ListSandboxesRequest(), timeout=10)
        # A fresh instance name (harness.INSTANCE): nothing to recover, none made.
        self.assertEqual(list(r.sandboxes), [])

    def test_calls_are_logged(self):
        d = self.d
        expect_code(lambda: d.stub.GetSandbox(d.pb.GetSandboxRequest(sandbox_id="logme"),
                                              timeout=5), grpc.StatusCode.NOT_FOUND)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if re.search(r"rpc GetSandbox status=NOT_FOUND duration_ms=[0-9.]+", d.log()):
                return
            time.sleep(0.05)
        self.fail("no log line for the call:\n" + d.log())


class RequestLimit(unittest.TestCase):
    """A configured --max-request-bytes, far below gRPC's own 4 MiB default
    and the service's 16 MiB: the configured number is the boundary."""
    LIMIT = 65536

    @classmethod
    def setUpClass(cls):
        cls.d = Daemon(extra_args=BASE + ["--max-request-bytes", str(cls.LIMIT)])

    @classmethod
    def tearDownClass(cls):
        finish(cls.d)

    def eval_of_size(self, size):
        """An EvalRequest for an unknown sandbox that packs to `size` bytes."""
        pb = self.d.pb
        req = pb.EvalRequest(sandbox_id="0" * 24, code="")
        req.code = "#" * (size - req.ByteSize() - 4)  # 4: code's tag and length
        while req.ByteSize() < size:
            req.code += "#"
        self.assertEqual(req.ByteSize(), size)
        return req

    def test_boundary(self):
        # Catches: the flag not reaching gRPC core or the decoder (the 4 MiB
        # or 16 MiB default answering instead), an off-by-one at the limit.
        d = self.d
        for size in (self.LIMIT - 1, self.LIMIT):
            # Accepted and decoded: the unknown sandbox is the answer.
            e = expect_code(lambda: d.stub.Eval(self.eval_of_size(size), timeout=10),
                            grpc.StatusCode.NOT_FOUND)
            self.assertIn("0" * 24, e.details())
        for size in (self.LIMIT + 1, 2 * self.LIMIT):
            e = expect_code(lambda: d.stub.Eval(self.eval_of_size(size), timeout=10),
                            grpc.StatusCode.RESOURCE_EXHAUSTED)
            self.assertIn(str(self.LIMIT), e.details())
        # A small request after the refusals: the server is fine.
        expect_code(lambda: d.stub.GetSandbox(d.pb.GetSandboxRequest(sandbox_id="nope"),
                                              timeout=5), grpc.StatusCode.NOT_FOUND)
        r = d.health.Check(d.health_pb.HealthCheckRequest(), timeout=5)
        self.assertEqual(r.status, d.health_pb.HealthCheckResponse.SERVING)

    def test_unknown_method_stays_unimplemented(self):
        call = self.d.channel.unary_unary("/safeeval.v1.SandboxService/Nope")
        expect_code(lambda: call(b"", timeout=5), grpc.StatusCode.UNIMPLEMENTED)
        expect_code(lambda: call(b"\x0a" * (self.LIMIT // 2), timeout=5),
                    grpc.StatusCode.UNIMPLEMENTED)


def free_port():
    """A loopback TCP port nobody listens on now (no fixed port numbers)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class StartUp(unittest.TestCase):
    def tearDown(self):
        assert_nothing_left()

    def test_tcp_off_loopback_refused(self):
        r = run_daemon(["--listen", "0.0.0.0:0"] + BASE)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("without TLS", r.stderr)
        r = run_daemon(["--listen", "[::]:0"] + BASE)
        self.assertNotEqual(r.returncode, 0)

    def test_tls_key_without_cert_refused(self):
        r = run_daemon(["--listen", "127.0.0.1:0", "--tls-key", "/nonexistent"])
        self.assertEqual(r.returncode, 2)

    def test_bad_flags(self):
        for args in (["--workers", "0"], ["--nope"], ["--max-request-bytes=12Q"],
                     ["--log-level", "loud"], ["--default-wall-ms=400000"], ["stray"]):
            r = run_daemon(args)
            self.assertEqual(r.returncode, 2, args)
            self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
            self.assertTrue(r.stderr.startswith("safeevald: "), r.stderr)

    def test_help(self):
        r = run_daemon(["--help"])
        self.assertEqual(r.returncode, 0)
        for flag in ("--listen", "--max-request-bytes", "--grace-ms", "--default-wall-ms"):
            self.assertIn(flag, r.stdout)

    def test_loopback_tcp(self):
        with Daemon(extra_args=BASE, listen="127.0.0.1:%d" % free_port()) as d:
            r = d.health.Check(d.health_pb.HealthCheckRequest(), timeout=5)
            self.assertEqual(r.status, d.health_pb.HealthCheckResponse.SERVING)
            self.assertEqual(d.stop(), 0)


def create_sandbox(d):
    r = d.stub.CreateSandbox(d.pb.CreateSandboxRequest(python_version="3.11"), timeout=SLOW)
    return r.sandbox.id


def destroy_everywhere(ids):
    """Destroys sandboxes made by a daemon that may be gone: a new daemon
    recovers them by their labels."""
    if not ids:
        return
    with Daemon(extra_args=BASE) as d:
        for sid in ids:
            try:
                d.stub.DestroySandbox(d.pb.DestroySandboxRequest(sandbox_id=sid), timeout=60)
            except grpc.RpcError as e:
                if e.code() != grpc.StatusCode.NOT_FOUND:
                    raise


def eval_code(d, sid, code, timeout):
    return d.stub.Eval(d.pb.EvalRequest(sandbox_id=sid, code=code), timeout=timeout)


class WithSandbox(unittest.TestCase):
    """Runs code: needs the docker, image and sandbox layers."""

    def setUp(self):
        self.ids = []
        self.daemons = []

    def tearDown(self):
        try:
            for d in self.daemons:
                if d.proc.poll() is None:
                    left = []
                    for sid in self.ids:
                        try:
                            d.stub.DestroySandbox(d.pb.DestroySandboxRequest(sandbox_id=sid),
                                                  timeout=60)
                        except grpc.RpcError as e:
                            if e.code() != grpc.StatusCode.NOT_FOUND:
                                left.append(sid)  # a daemon that recovers it destroys it
                    self.ids = left
                d.close()  # fails unless the daemon exited 0
            destroy_everywhere(self.ids)
            assert_nothing_left()
        except BaseException:
            remove_containers_of()
            raise

    def start(self, *args):
        d = Daemon(extra_args=BASE + list(args))
        self.daemons.append(d)
        return d

    def sandbox(self, d):
        sid = create_sandbox(d)
        self.ids.append(sid)
        return sid

    def test_deadline(self):
        d = self.start()
        sid = self.sandbox(d)
        r = eval_code(d, sid, "print('hi')", 60)
        self.assertEqual(r.result.stdout, b"hi\n")
        # A sleeper seen running (a victim, not a run that never started)
        # when its call's deadline passes.
        mark = "m" + os.urandom(6).hex()
        t = time.monotonic()
        fut = d.stub.Eval.future(d.pb.EvalRequest(
            sandbox_id=sid, code="import time; time.sleep(8)", args=[mark]), timeout=DEADLINE_S)
        seen = wait_until(lambda: processes_of_sandbox(sid, mark) or fut.done(), DEADLINE_S, 0.05)
        self.assertFalse(fut.done(), "the call ended before its run was seen: %r" % (fut,))
        self.assertTrue(seen)
        e = fut.exception(timeout=DEADLINE_S + 5)
        self.assertIsNotNone(e, "the call succeeded past its deadline")
        self.assertEqual(e.code(), grpc.StatusCode.DEADLINE_EXCEEDED, e)
        self.assertLess(time.monotonic() - t, DEADLINE_S + 1.0, e)
        # Observed, not inferred: the run's processes go from the worker.
        gone = wait_until(lambda: not processes_of_sandbox(sid, mark), 2.5, 0.05)
        self.assertTrue(gone, "the run outlived its call's deadline: %r"
                        % processes_of_sandbox(sid, mark))
        # The server ends the call too, instead of letting it sleep 8 s.
        end = time.monotonic() + 10
        pat = re.compile(r"rpc Eval status=(DEADLINE_EXCEEDED|CANCELLED) duration_ms=([0-9.]+)")
        while time.monotonic() < end:
            m = pat.search(d.log())
            if m:
                self.assertLess(float(m.group(2)), DEADLINE_S * 1000 + 2500, m.group(0))
                break
            time.sleep(0.1)
        else:
            self.fail("the Eval was not stopped at its deadline:\n" + d.log())
        # The sandbox still works.
        r = eval_code(d, sid, "print(6*7)", 60)
        self.assertEqual(r.result.stdout, b"42\n")

    def test_sigterm_lets_inflight_finish(self):
        d = self.start()
        sid = self.sandbox(d)
        out = {}

        def run():
            try:
                out["r"] = eval_code(d, sid, "import time; time.sleep(1.5); print('done')", 30)
            except grpc.RpcError as e:
                out["e"] = e

        th = threading.Thread(target=run)
        th.start()
        time.sleep(0.3)
        d.proc.send_signal(signal.SIGTERM)
        th.join(30)
        self.assertNotIn("e", out, out.get("e"))
        self.assertEqual(out["r"].result.stdout, b"done\n")
        self.assertEqual(d.proc.wait(30), 0, d.log())

    def test_grace_over_cancels(self):
        d = self.start("--grace-ms", "500")
        sid = self.sandbox(d)
        out = {}

        def run():
            try:
                out["r"] = eval_code(d, sid, "import time; time.sleep(20)", 60)
            except grpc.RpcError as e:
                out["e"] = e

        th = threading.Thread(target=run)
        th.start()
        time.sleep(0.5)
        t = time.monotonic()
        d.proc.send_signal(signal.SIGTERM)
        self.assertEqual(d.proc.wait(15), 0, d.log())
        self.assertLess(time.monotonic() - t, 8, d.log())
        th.join(30)
        self.assertIn("e", out)
        self.assertIn(out["e"].code(), (grpc.StatusCode.CANCELLED, grpc.StatusCode.UNAVAILABLE))

    def test_full_queue(self):
        RUN_S = 5  # each run's length: what the timing bounds below are measured against
        d = self.start("--workers", "1", "--queue-depth", "1")
        sid = self.sandbox(d)
        results = []
        lock = threading.Lock()

        def run():
            t = time.monotonic()
            try:
                eval_code(d, sid, "import time; time.sleep(%d)" % RUN_S, 60)
                res = ("ok", time.monotonic() - t)
            except grpc.RpcError as e:
                res = (e.code(), time.monotonic() - t)
            with lock:
                results.append(res)

        threads = [threading.Thread(target=run) for _ in range(4)]
        for th in threads:
            th.start()
        time.sleep(0.3)
        # Health is answered by the poller even though the only worker is busy.
        # Catches: health served by the (busy) worker, answered only once the
        # RUN_S run ends (~RUN_S - 0.3 s): the bound is well under that, and
        # the deadline well over it so such a wait shows as slow, not lost.
        t = time.monotonic()
        d.health.Check(d.health_pb.HealthCheckRequest(), timeout=4 * RUN_S)
        self.assertLess(time.monotonic() - t, 2.0)
        for th in threads:
            th.join(60)
        exhausted = [r for r in results if r[0] == grpc.StatusCode.RESOURCE_EXHAUSTED]
        ok = [r for r in results if r[0] == "ok"]
        self.assertGreaterEqual(len(exhausted), 1, results)
        self.assertGreaterEqual(len(ok), 1, results)
        for r in exhausted:
            # Refused at once, not after waiting for the RUN_S run (~RUN_S s).
            self.assertLess(r[1], 2.5, results)


if __name__ == "__main__":
    unittest.main(verbosity=2)
