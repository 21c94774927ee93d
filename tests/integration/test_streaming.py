"""EvalStream / ExecuteFileStream, CreateSandboxStream and GetServerInfo over
a real channel (python grpcio) against the real daemon and dockerd: chunk
order and totals, the first chunk long before the run's end, caps, a client
that reads nothing for a while (the daemon's memory stays flat and the run
still ends at its wall limit), a client that cancels mid-stream (the run is
cancelled, the worker reused), create progress, server info."""

import os
import re
import sys
import threading
import time
import unittest

import grpc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import SOURCE_DIR, Daemon, expect_code  # noqa: E402
from sandbox_engine import describe, finish, workers_of  # noqa: E402

BASE = ["--base-image", "safeeval/python:{version}", "--max-sandboxes", "7"]
SLOW = 300

# Prints a numbered line every 100 ms for 3 s, on stdout and (every fifth)
# on stderr.
TICKER = r"""
import sys, time
for i in range(30):
    print("out %02d" % i, flush=True)
    if i % 5 == 0:
        print("err %02d" % i, file=sys.stderr, flush=True)
    time.sleep(0.1)
"""


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def project_version():
    with open(os.path.join(SOURCE_DIR, "CMakeLists.txt")) as f:
        return re.search(r"project\(safeeval VERSION ([0-9.]+)", f.read()).group(1)


class Streaming(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = Daemon(extra_args=BASE)
        pb = cls.d.pb
        try:
            cls.sb = cls.d.stub.CreateSandbox(pb.CreateSandboxRequest(
                python_version="3.11", max_concurrent_runs=1,
                limits=pb.Limits(wall_time_ms=10000, max_output_bytes=16 << 20)),
                timeout=SLOW).sandbox
        except BaseException:
            finish(cls.d)
            raise

    @classmethod
    def tearDownClass(cls):
        finish(cls.d, destroy=[cls.sb.id])

    def stream(self, code, **kw):
        """(events with their arrival time, request time)."""
        pb = self.d.pb
        t0 = time.monotonic()
        evs = []
        for ev in self.d.stub.EvalStream(pb.EvalRequest(sandbox_id=self.sb.id, code=code, **kw),
                                         timeout=60):
            evs.append((time.monotonic(), ev))
        return evs, t0

    def test_order_totals_and_first_chunk_early(self):
        pb = self.d.pb
        evs, t0 = self.stream(TICKER)
        kinds = [ev.WhichOneof("event") for _, ev in evs]
        self.assertEqual(kinds[-1], "result")
        self.assertNotIn("result", kinds[:-1])
        res = evs[-1][1].result
        self.assertEqual((res.reason, res.exit_code), (pb.EXIT_REASON_EXITED, 0), describe(pb, res))
        out = b"".join(ev.stdout for _, ev in evs if ev.WhichOneof("event") == "stdout")
        err = b"".join(ev.stderr for _, ev in evs if ev.WhichOneof("event") == "stderr")
        self.assertEqual(out, b"".join(b"out %02d\n" % i for i in range(30)))
        self.assertEqual(err, b"".join(b"err %02d\n" % i for i in range(0, 30, 5)))
        self.assertEqual((res.stdout, res.stderr), (b"", b""))
        self.assertEqual((res.stdout_bytes, res.stderr_bytes), (len(out), len(err)))
        self.assertFalse(res.stdout_truncated or res.stderr_truncated)
        self.assertTrue(all(len(ev.stdout) <= 65536 and len(ev.stderr) <= 65536 for _, ev in evs))
        # Output came as it was written: many chunks, the first one long
        # before the result (the run lasts 3 s).
        self.assertGreater(len(evs), 10)
        first = evs[0][0]
        end = evs[-1][0]
        self.assertGreater(end - first, 1.5, "first chunk %.3f s, result %.3f s after the request"
                           % (first - t0, end - t0))
        print("\nfirst chunk after %.1f ms; result after %.1f ms"
              % ((first - t0) * 1e3, (end - t0) * 1e3), file=sys.stderr)

    def test_execute_file_stream_and_caps(self):
        pb = self.d.pb
        code = b"import sys\nsys.stdout.write('x' * 300000)\nsys.stderr.write('y' * 10)\n"
        evs = list(self.d.stub.ExecuteFileStream(pb.ExecuteFileRequest(
            sandbox_id=self.sb.id, filename="job.py", content=code,
            limits=pb.Limits(max_output_bytes=100000)), timeout=60))
        res = evs[-1].result
        out = b"".join(ev.stdout for ev in evs[:-1])
        self.assertEqual(out, b"x" * 100000)
        self.assertEqual(b"".join(ev.stderr for ev in evs[:-1]), b"y" * 10)
        self.assertEqual(res.stdout_bytes, 300000)
        self.assertTrue(res.stdout_truncated)
        self.assertFalse(res.stderr_truncated)
        self.assertTrue(all(len(ev.stdout) <= 65536 for ev in evs[:-1]))

    def test_errors_end_the_stream(self):
        pb = self.d.pb
        expect_code(lambda: list(self.d.stub.EvalStream(pb.EvalRequest(
            sandbox_id="0" * 24, code="print(1)"), timeout=10)), grpc.StatusCode.NOT_FOUND)
        expect_code(lambda: list(self.d.stub.EvalStream(pb.EvalRequest(
            sandbox_id=self.sb.id, code=""), timeout=10)), grpc.StatusCode.INVALID_ARGUMENT)

    def test_slow_reader_bounded_and_run_ends_at_its_limit(self):
        """A client that reads nothing for 6 s while the run writes as fast
        as it can for its 3 s: the daemon's RSS stays flat (it holds one
        message, the agent stops reading the pipes), the run still ends at
        its wall limit, and everything it did write arrives afterwards."""
        pb = self.d.pb
        pid = self.d.proc.pid
        before = rss_kib(pid)
        call = self.d.stub.EvalStream(pb.EvalRequest(
            sandbox_id=self.sb.id, limits=pb.Limits(wall_time_ms=3000),
            code="import sys\nb = b'z' * 65536\nwhile True:\n    sys.stdout.buffer.write(b)\n"),
            timeout=120)
        peak = before
        t_end = time.monotonic() + 6
        while time.monotonic() < t_end:
            peak = max(peak, rss_kib(pid))
            time.sleep(0.2)
        n = 0
        res = None
        for ev in call:
            if ev.WhichOneof("event") == "stdout":
                self.assertEqual(ev.stdout, b"z" * len(ev.stdout))
                n += len(ev.stdout)
            else:
                res = ev.result
        self.assertEqual(res.reason, pb.EXIT_REASON_WALL_TIMEOUT, describe(pb, res))
        self.assertLess(res.wall_time_us, 6_000_000, describe(pb, res))
        self.assertEqual(res.stdout_bytes, n)
        self.assertGreater(n, 0)
        # The run was held back: with nothing buffering for the client it
        # would have written its whole 16 MiB cap in those 3 s.
        self.assertLess(n, 12 << 20)
        print("\nslow reader: daemon RSS %d -> peak %d KiB; %d bytes streamed"
              % (before, peak, n), file=sys.stderr)
        # A daemon that kept what the client did not read would grow by up
        # to 16 MiB. (Under ASan, freed memory sits in its quarantine: RSS
        # says nothing there.)
        with open("/proc/%d/maps" % pid) as f:
            sanitized = "libasan" in f.read()
        if not sanitized:
            self.assertLess(peak - before, 8 << 10)
        # The worker is the same and serves the next run.
        r = self.d.stub.Eval(pb.EvalRequest(sandbox_id=self.sb.id, code="print(2)"),
                             timeout=60).result
        self.assertEqual(r.stdout, b"2\n", describe(pb, r))

    def test_cancel_mid_stream_cancels_the_run_and_keeps_the_worker(self):
        pb = self.d.pb
        workers = [w["Id"] for w in workers_of(self.sb.id)]
        self.assertEqual(len(workers), 1)
        call = self.d.stub.EvalStream(pb.EvalRequest(
            sandbox_id=self.sb.id,
            code="import time\nwhile True:\n    print('tick', flush=True)\n    time.sleep(0.05)\n"),
            timeout=60)
        got = 0
        for ev in call:
            got += 1
            if got == 5:
                break
        t = time.monotonic()
        call.cancel()
        # max_concurrent_runs=1: this waits for the cancelled run's worker.
        r = self.d.stub.Eval(pb.EvalRequest(sandbox_id=self.sb.id, code="print(3)"),
                             timeout=60).result
        took = time.monotonic() - t
        self.assertEqual(r.stdout, b"3\n", describe(pb, r))
        self.assertLess(took, 5.0, "the cancelled run held the worker for %.1f s" % took)
        self.assertEqual([w["Id"] for w in workers_of(self.sb.id)], workers)

    def test_server_info(self):
        pb = self.d.pb
        info = self.d.stub.GetServerInfo(pb.GetServerInfoRequest(), timeout=30).info
        self.assertEqual(info.version, project_version())
        self.assertTrue(info.build_id)
        self.assertEqual(info.api_version, "safeeval.v1")
        self.assertEqual(info.default_python_version, "3.11")
        self.assertEqual(info.max_sandboxes, 7)
        self.assertEqual(info.max_concurrent_runs, 4)
        self.assertEqual(info.max_limits.max_output_bytes, 16 << 20)
        self.assertEqual(info.default_limits.max_output_bytes, 1 << 20)
        self.assertEqual((info.default_limits.max_collect_files,
                          info.default_limits.max_collect_bytes), (64, 1 << 20))
        self.assertEqual((info.max_limits.max_collect_files, info.max_limits.max_collect_bytes),
                         (1024, 64 << 20))
        self.assertGreater(info.default_limits.wall_time_ms, 0)
        self.assertGreaterEqual(info.max_limits.wall_time_ms, info.default_limits.wall_time_ms)
        pys = {p.version: p for p in info.pythons}
        self.assertIn("3.11", pys)
        self.assertEqual(pys["3.11"].base_image, "safeeval/python:3.11")
        # A 3.11 sandbox lives (the class's): its interpreter said which.
        self.assertEqual(pys["3.11"].full_version, self.sb.python_version)
        self.assertTrue(re.fullmatch(r"3\.11\.\d+", pys["3.11"].full_version))
        self.assertEqual(list(pys), sorted(pys, key=lambda v: [int(x) for x in v.split(".")]))


class ServerInfoLabels(unittest.TestCase):
    def test_base_images_and_their_version_label(self):
        """Base images found by the template, their exact version from the
        label build-base sets, "" without one; other tags are not bases."""
        import io
        import tarfile
        import urllib.parse
        from sandbox_engine import DOCKER_SOCK, _UnixConn, engine_delete
        repo = "safeeval-test/py-" + os.urandom(4).hex()
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as t:
            info = tarfile.TarInfo("marker")
            t.addfile(info, io.BytesIO(b""))
        made = []
        try:
            for tag, label in (("3.12", "3.12.7"), ("3.9", None), ("3.x", None),
                               ("latest", None)):
                q = [("fromSrc", "-"), ("repo", repo), ("tag", tag)]
                if label:
                    q.append(("changes", "LABEL safeeval.python.version=" + label))
                c = _UnixConn(DOCKER_SOCK, timeout=60)
                c.request("POST", "/images/create?" + urllib.parse.urlencode(q),
                          body=buf.getvalue(), headers={"Content-Type": "application/x-tar"})
                r = c.getresponse()
                r.read()
                c.close()
                self.assertEqual(r.status, 200)
                made.append("%s:%s" % (repo, tag))
            with Daemon(extra_args=["--base-image", repo + ":{version}"]) as d:
                info = d.stub.GetServerInfo(d.pb.GetServerInfoRequest(), timeout=30).info
                self.assertEqual([(p.version, p.full_version, p.base_image) for p in info.pythons],
                                 [("3.9", "", repo + ":3.9"), ("3.12", "3.12.7", repo + ":3.12")])
                finish(d)
        finally:
            for ref in made:
                engine_delete("/images/" + urllib.parse.quote(ref, safe=""))


class CreateProgress(unittest.TestCase):
    def test_progress_lines_then_the_sandbox(self):
        """A spec never built before (a requirement spelled uniquely, that
        Debian's numpy satisfies offline) builds, and the build's steps come
        as progress lines before the sandbox."""
        with Daemon(extra_args=BASE) as d:
            pb = d.pb
            req = pb.CreateSandboxRequest(python_version="3.11",
                                          modules=["numpy>=1.0.%d" % (os.getpid() % 1000)])
            evs = list(d.stub.CreateSandboxStream(req, timeout=SLOW))
            kinds = [ev.WhichOneof("event") for ev in evs]
            self.assertEqual(kinds[-1], "sandbox")
            self.assertNotIn("sandbox", kinds[:-1])
            lines = [ev.progress for ev in evs[:-1]]
            self.assertTrue(any(line.startswith("Step ") for line in lines), lines[:20])
            self.assertTrue(all(0 < len(line) <= 400 + 64 for line in lines))
            self.assertTrue(all(line.isprintable() for line in lines))
            sb = evs[-1].sandbox
            r = d.stub.Eval(pb.EvalRequest(sandbox_id=sb.id, code="import numpy; print(1)"),
                            timeout=60).result
            self.assertEqual(r.stdout, b"1\n", describe(pb, r))
            # The same spec again: cached, no build step, only the sandbox.
            evs2 = list(d.stub.CreateSandboxStream(req, timeout=SLOW))
            self.assertEqual([ev.WhichOneof("event") for ev in evs2], ["sandbox"])
            finish(d, destroy=[sb.id, evs2[-1].sandbox.id])
            from sandbox_engine import engine_delete
            engine_delete("/images/" + sb.image)

    def test_errors_end_the_create_stream(self):
        with Daemon(extra_args=BASE) as d:
            pb = d.pb
            expect_code(lambda: list(d.stub.CreateSandboxStream(pb.CreateSandboxRequest(
                python_version="3.10"), timeout=60)), grpc.StatusCode.FAILED_PRECONDITION)
            expect_code(lambda: list(d.stub.CreateSandboxStream(pb.CreateSandboxRequest(
                modules=["x; rm -rf /"]), timeout=60)), grpc.StatusCode.INVALID_ARGUMENT)
            finish(d)


if __name__ == "__main__":
    unittest.main(verbosity=2)
