"""Contract items of sandbox.proto and the README that had no end-to-end test
(issue 12, "Contract items with no end-to-end test", blind spot 8), against the
real safeevald and dockerd:

  Idle        a run resets the idle clock; an idle sandbox is reaped with its
              containers (--reap-interval-s 1, idle_timeout_s 3).
  Defaults    an empty python_version gets --default-python; "3.11.4" against a
              3.11.2 image answers FAILED_PRECONDITION naming both; modules come
              back in the order given; the sandbox's own limits apply to a run
              that gives none; --default-* reach Sandbox.limits; ExecuteFile
              with limits and with empty content; an empty File.
  Deadline    a create whose image must be built, with a 0.3 s deadline,
              answers DEADLINE_EXCEEDED and leaves no container and no sandbox.
  DeadEngine  the engine behind a proxy that is stopped: UNAVAILABLE; the
              proxy back: the daemon serves again.
  ConfigAndShutdown  --config FILE (listen, log-json, log-level, grace-ms)
              end to end; submitted code not in the info log; health during a
              SIGTERM with a run in flight.
  Tls         TLS and mTLS serving; a TCP address off the loopback refused
              without TLS unless --insecure-listen.
  TcpEngineTls  the engine reached over tcp + TLS with a client certificate
              (a TLS-terminating proxy on 127.0.0.1 in front of the Docker
              socket): create, Eval through the hijacked attach, destroy; no
              client certificate, or one of another CA: the start fails
              naming the engine.

Each class has its own daemon, made in setUpClass and ended with
sandbox_engine.finish (destroy, nothing of the instance left, exit status 0);
the classes that must start safeevald themselves (TLS channels, a listen
address from a config file) do the same steps by hand in RawDaemon.close.
"""
import json
import os
import select
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse

import grpc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Daemon, expect_code, run_daemon  # noqa: E402
from sandbox_engine import (DOCKER_SOCK, _UnixConn, assert_exited_ok,  # noqa: E402
                            assert_nothing_left, containers_of, daemon_args, describe,
                            engine_delete, finish, make_wheel, make_wheelhouse,
                            processes_of_sandbox, remove_containers_of, wait_until)

C = grpc.StatusCode
CREATE_S = 600
MiB = 1 << 20


def free_port():
    """A TCP port nobody listens on now (bind port 0, read it, close)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def engine_tag(src, repo, tag):
    """Tags image src as repo:tag (POST /images/{src}/tag)."""
    c = _UnixConn(DOCKER_SOCK)
    try:
        c.request("POST", "/images/%s/tag?%s" % (src, urllib.parse.urlencode(
            {"repo": repo, "tag": tag})))
        r = c.getresponse()
        r.read()
        if r.status != 201:
            raise AssertionError("tag %s as %s:%s: HTTP %d" % (src, repo, tag, r.status))
    finally:
        c.close()


def marker():
    return "m" + os.urandom(6).hex()


class Base(unittest.TestCase):
    """One daemon per class with the test recipe and EXTRA flags."""
    EXTRA = ()

    @classmethod
    def setUpClass(cls):
        cls.wheels = make_wheelhouse()
        cls.d = Daemon(extra_args=daemon_args(cls.wheels, *cls.EXTRA), timeout=60)
        cls.pb = cls.d.pb
        cls.live = []

    @classmethod
    def tearDownClass(cls):
        finish(cls.d, destroy=cls.live)

    def sandbox(self, **kw):
        """A sandbox (3.11 + numpy unless told), destroyed at the class's end."""
        kw.setdefault("python_version", "3.11")
        kw.setdefault("modules", ["numpy"])
        sb = self.d.stub.CreateSandbox(self.pb.CreateSandboxRequest(**kw),
                                       timeout=CREATE_S).sandbox
        self.live.append(sb.id)
        return sb

    def get(self, sid, timeout=10):
        return self.d.stub.GetSandbox(self.pb.GetSandboxRequest(sandbox_id=sid),
                                      timeout=timeout).sandbox

    def ev(self, sid, code, timeout=60, files=(), **lim):
        req = self.pb.EvalRequest(sandbox_id=sid, code=code, files=list(files))
        if lim:
            req.limits.CopyFrom(self.pb.Limits(**lim))
        return self.d.stub.Eval(req, timeout=timeout).result

    def assert_ok(self, r, stdout=None):
        assert_exited_ok(self, self.pb, r, stdout)


class Idle(Base):
    EXTRA = ("--reap-interval-s", "1")

    def test_runs_reset_the_idle_clock_then_reaped(self):
        # Catches: a run that does not reset the reaper's clock (the sandbox is
        # reaped 3 s after creation while runs keep coming: NOT_FOUND mid-way);
        # last_used_at_ms not moved by a run; GetSandbox counted as use (the
        # polling below would keep it alive forever); a reaper that never
        # runs or reaps early; a reaped sandbox whose containers stay.
        pb = self.pb
        sb = self.sandbox(idle_timeout_s=3)
        self.assertEqual(sb.idle_timeout_s, 3, sb)
        t0 = time.monotonic()
        last_run_ms = 0
        while time.monotonic() - t0 < 5.5:
            before_ms = int(time.time() * 1000)
            self.assert_ok(self.ev(sb.id, "pass"))
            last_run_ms = before_ms
            time.sleep(1.0)
        got = self.get(sb.id)  # 5.5 s after creation, more than the 3 s timeout
        self.assertGreaterEqual(got.last_used_at_ms, last_run_ms - 50,
                                "last_used_at_ms not moved by the last run: %s" % got)
        self.assertGreater(got.last_used_at_ms, got.created_at_ms, got)
        idle_from = time.monotonic()
        # Still there 2 s into the idle time (timeout 3 s): not reaped early.
        time.sleep(max(0.0, 2.0 - (time.monotonic() - idle_from)))
        self.get(sb.id)

        def gone():
            try:
                self.get(sb.id)
                return False
            except grpc.RpcError as e:
                self.assertEqual(e.code(), C.NOT_FOUND, e.details())
                return True
        # 3 s idle + a 1 s reap interval + margin for a loaded machine.
        if not wait_until(gone, 10, 0.2):
            self.fail("sandbox idle for 10 s with idle_timeout_s 3 still there: %s"
                      % self.get(sb.id))
        self.live.remove(sb.id)
        listed = self.d.stub.ListSandboxes(pb.ListSandboxesRequest(), timeout=10).sandboxes
        self.assertNotIn(sb.id, [s.id for s in listed])
        expect_code(lambda: self.ev(sb.id, "pass"), C.NOT_FOUND)
        assert_nothing_left(keep=self.live, wait_s=10)


class Defaults(Base):
    """The base images come from a repository of this program's own
    (BASE_REPO), holding safeeval/python:3.11 under the tags 3.11 and 3.11.4:
    a create for "3.11.4" then finds a base whose interpreter is 3.11.2."""
    EXTRA = ("--default-python", "3.11", "--default-wall-ms", "4000",
             "--default-memory-bytes", "200M")
    BASE_REPO = "safeeval-" + harness.INSTANCE + "/python"

    @classmethod
    def setUpClass(cls):
        for tag in ("3.11", "3.11.4"):
            engine_tag("safeeval/python:3.11", cls.BASE_REPO, tag)
        try:
            cls.wheels = make_wheelhouse()
            cls.d = Daemon(extra_args=daemon_args(cls.wheels, *cls.EXTRA) + [
                "--base-image", cls.BASE_REPO + ":{version}"], timeout=60)
        except BaseException:
            cls._untag()
            raise
        cls.pb = cls.d.pb
        cls.live = []

    @classmethod
    def _untag(cls):
        for tag in ("3.11", "3.11.4"):
            engine_delete("/images/%s:%s?noprune=1" % (cls.BASE_REPO, tag))

    @classmethod
    def tearDownClass(cls):
        try:
            finish(cls.d, destroy=cls.live)
        finally:
            cls._untag()

    def test_empty_version_and_default_limits(self):
        # Catches: an empty python_version refused or not mapped to
        # --default-python; Sandbox.python_version not the interpreter's own
        # x.y.z; --default-wall-ms / --default-memory-bytes not reaching the
        # limits of a create that gives none (or a 0 left in a field).
        sb = self.sandbox(python_version="")
        self.assertTrue(sb.python_version.startswith("3.11."), sb)
        self.assertEqual(sb.limits.wall_time_ms, 4000, sb.limits)
        self.assertEqual(sb.limits.memory_bytes, 200 * MiB, sb.limits)
        for f in ("cpu_time_ms", "max_processes", "max_output_bytes", "max_file_bytes"):
            self.assertNotEqual(getattr(sb.limits, f), 0, "%s is 0: %s" % (f, sb.limits))
        r = self.ev(sb.id, "import platform; print(platform.python_version())")
        self.assert_ok(r, (sb.python_version + "\n").encode())

    def test_patch_version_mismatch(self):
        # Catches: "3.11.4" served by the 3.11.2 image (a silent mismatch), a
        # wrong status, a message that does not say what was asked and what
        # was found, a container left by the failed create.
        before = {c["Id"] for c in containers_of()}
        e = expect_code(lambda: self.d.stub.CreateSandbox(self.pb.CreateSandboxRequest(
            python_version="3.11.4", modules=["numpy"]), timeout=CREATE_S),
            C.FAILED_PRECONDITION)
        self.assertIn("3.11.4", e.details())
        self.assertIn("3.11.2", e.details())
        # No base image at all for the version: the same status, naming it.
        e = expect_code(lambda: self.d.stub.CreateSandbox(self.pb.CreateSandboxRequest(
            python_version="3.11.9", modules=["numpy"]), timeout=CREATE_S),
            C.FAILED_PRECONDITION)
        self.assertIn("3.11.9", e.details())
        after = {c["Id"] for c in containers_of()}
        self.assertEqual(after - before, set(), "containers left by a refused create")

    def test_modules_in_the_order_given(self):
        # Catches: modules returned sorted or deduplicated (the image tag sorts
        # them; the Sandbox must not), or not installed.
        mods = ["safeeval_testpkg", "numpy"]  # reverse alphabetical on purpose
        sb = self.sandbox(modules=mods)
        self.assertEqual(list(sb.modules), mods, sb)
        self.assertEqual(list(self.get(sb.id).modules), mods)
        r = self.ev(sb.id, "import safeeval_testpkg, numpy; print(safeeval_testpkg.VALUE)")
        self.assert_ok(r, b"42\n")

    def test_sandbox_limits_apply_to_a_run_without_limits(self):
        # Catches: a run without limits getting the service default (4 s here)
        # instead of its sandbox's 1500 ms; a wall limit enforced late.
        sb = self.sandbox(limits=self.pb.Limits(wall_time_ms=1500))
        self.assertEqual(sb.limits.wall_time_ms, 1500, sb.limits)
        r = self.ev(sb.id, "while True: pass")
        self.assertEqual(r.reason, self.pb.EXIT_REASON_WALL_TIMEOUT, describe(self.pb, r))
        self.assertGreaterEqual(r.wall_time_us, 1_500_000, describe(self.pb, r))
        self.assertLess(r.wall_time_us, 3_000_000, describe(self.pb, r))

    def test_execute_file_limits_empty_content_empty_file(self):
        # Catches: ExecuteFile ignoring its limits (ends at the 4 s wall, or
        # the 2 s RLIMIT_CPU backstop instead of 300 ms of CPU); empty content
        # accepted or refused without naming the field; an empty File dropped
        # or given bytes.
        pb = self.pb
        sb = self.sandbox()
        r = self.d.stub.ExecuteFile(pb.ExecuteFileRequest(
            sandbox_id=sb.id, filename="spin.py", content=b"while True: pass\n",
            limits=pb.Limits(cpu_time_ms=300)), timeout=60).result
        self.assertEqual(r.reason, pb.EXIT_REASON_CPU_TIMEOUT, describe(pb, r))
        self.assertGreaterEqual(r.cpu_time_us, 300_000, describe(pb, r))
        self.assertLess(r.cpu_time_us, 1_500_000, describe(pb, r))
        e = expect_code(lambda: self.d.stub.ExecuteFile(pb.ExecuteFileRequest(
            sandbox_id=sb.id, filename="empty.py", content=b""), timeout=30),
            C.INVALID_ARGUMENT)
        self.assertIn("content", e.details())
        code = ("import os, sys\nst = os.stat('e.txt')\nprint(os.path.isfile('e.txt'), st.st_size,"
                " open('e.txt','rb').read())\nprint(open(sys.argv[0]).read() != '')\n")
        r = self.d.stub.ExecuteFile(pb.ExecuteFileRequest(
            sandbox_id=sb.id, filename="job.py", content=code.encode(),
            files=[pb.File(path="e.txt")]), timeout=60).result
        self.assert_ok(r, b"True 0 b''\nTrue\n")


class Deadline(Base):
    """A wheelhouse with one more wheel of a fresh name, so the image of a
    create asking for it cannot exist yet."""

    @classmethod
    def setUpClass(cls):
        cls.pkg = "safeeval_dl_" + os.urandom(5).hex()
        cls.wheels = make_wheelhouse()
        make_wheel.make_wheel(cls.wheels, name=cls.pkg, version="1.0", value=7)
        cls.d = Daemon(extra_args=daemon_args(cls.wheels), timeout=60)
        cls.pb = cls.d.pb
        cls.live = []

    def test_create_deadline(self):
        # Catches: a create past its deadline that answers something else
        # (or OK after the fact); the abandoned create leaving a container or
        # a registered sandbox nobody knows the id of once its build ends.
        pb = self.pb
        req = pb.CreateSandboxRequest(python_version="3.11", modules=[self.pkg])
        t0 = time.monotonic()
        expect_code(lambda: self.d.stub.CreateSandbox(req, timeout=0.3), C.DEADLINE_EXCEEDED)
        self.assertLess(time.monotonic() - t0, 5)
        # The same create without a tight deadline waits for (or redoes) the
        # build and succeeds: by its end the abandoned create had every
        # chance to make its container.
        sb = self.d.stub.CreateSandbox(req, timeout=CREATE_S).sandbox
        self.live.append(sb.id)
        self.assert_ok(self.ev(sb.id, "import %s as p; print(p.VALUE)" % self.pkg), b"7\n")
        time.sleep(2)
        listed = [s.id for s in self.d.stub.ListSandboxes(pb.ListSandboxesRequest(),
                                                          timeout=10).sandboxes]
        self.assertEqual(listed, [sb.id], "the abandoned create registered a sandbox")
        assert_nothing_left(keep=[sb.id])


class EngineProxy:
    """A unix socket forwarding every connection to the Docker socket, byte
    for byte both ways (threads). stop() closes the listener and every open
    connection; start() listens again on the same path. With `hang` set, new
    connections are accepted and held without an answer (a hung engine)."""

    def __init__(self, path):
        self.path = path
        self.lock = threading.Lock()
        self.conns = []
        self.srv = None
        self.hang = False

    def start(self):
        if os.path.exists(self.path):
            os.unlink(self.path)
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(self.path)
        self.srv.listen(64)
        threading.Thread(target=self._accept, args=(self.srv,), daemon=True).start()

    def _accept(self, srv):
        while True:
            try:
                c, _ = srv.accept()
            except OSError:
                return
            if self.hang:
                with self.lock:
                    self.conns.append(c)
                continue
            try:
                u = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                u.connect("/var/run/docker.sock")
            except OSError:
                c.close()
                continue
            with self.lock:
                self.conns += [c, u]
            threading.Thread(target=self._pipe, args=(c, u), daemon=True).start()
            threading.Thread(target=self._pipe, args=(u, c), daemon=True).start()

    @staticmethod
    def _pipe(a, b):
        try:
            while True:
                data = a.recv(65536)
                if not data:
                    break
                b.sendall(data)
        except OSError:
            pass
        try:
            b.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def stop(self):
        srv, self.srv = self.srv, None
        if srv is not None:
            srv.close()
        try:
            if self.path is not None:
                os.unlink(self.path)
        except FileNotFoundError:
            pass
        with self.lock:
            conns, self.conns = self.conns, []
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()


class DeadEngine(Base):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="safeeval-proxy-")
        cls.proxy = EngineProxy(os.path.join(cls.tmp, "docker.sock"))
        cls.proxy.start()
        cls.wheels = make_wheelhouse()
        try:
            cls.d = Daemon(extra_args=daemon_args(
                cls.wheels, "--docker-host", "unix://" + cls.proxy.path,
                "--docker-timeout-ms", "3000"), timeout=60)
        except BaseException:
            cls.proxy.stop()
            raise
        cls.pb = cls.d.pb
        cls.live = []

    @classmethod
    def tearDownClass(cls):
        try:
            cls.proxy.start() if cls.proxy.srv is None else None
            finish(cls.d, destroy=[])
        finally:
            cls.proxy.stop()
            remove_containers_of()
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_unavailable_then_serves_again(self):
        # Catches: an engine that does not answer mapped to INTERNAL/UNKNOWN
        # (or a hang until the client's deadline) instead of UNAVAILABLE; a
        # daemon that does not recover once the engine answers again.
        pb = self.pb
        sb = self.sandbox()
        self.assert_ok(self.ev(sb.id, "print(1)"), b"1\n")
        self.proxy.stop()
        # Contract (sandbox.proto header): UNAVAILABLE = the Docker engine does
        # not answer. A create needs the engine for its container; an Eval of a
        # sandbox whose engine connections were cut cannot reach its worker.
        t0 = time.monotonic()
        e = expect_code(lambda: self.d.stub.CreateSandbox(pb.CreateSandboxRequest(
            python_version="3.11", modules=["numpy"]), timeout=60), C.UNAVAILABLE)
        self.assertLess(time.monotonic() - t0, 20, "UNAVAILABLE took too long: %s" % e.details())
        t0 = time.monotonic()
        e = expect_code(lambda: self.ev(sb.id, "print(2)", timeout=60), C.UNAVAILABLE)
        self.assertLess(time.monotonic() - t0, 20, "UNAVAILABLE took too long: %s" % e.details())
        self.proxy.start()
        sb2 = self.sandbox()
        self.assert_ok(self.ev(sb2.id, "print(3)"), b"3\n")
        # The first sandbox is served again, or at least destroyable.
        try:
            r = self.ev(sb.id, "print(4)")
            self.old_sandbox_after = describe(pb, r)
        except grpc.RpcError as err:
            self.old_sandbox_after = "%s: %s" % (err.code(), err.details())
        sys.stderr.write("\n[DeadEngine] Eval of the first sandbox after the engine came "
                         "back: %s\n" % self.old_sandbox_after)
        for sid in (sb.id, sb2.id):
            self.d.stub.DestroySandbox(pb.DestroySandboxRequest(sandbox_id=sid), timeout=60)
            self.live.remove(sid)
        left = [(c["Id"][:12], c["Labels"].get("safeeval.sandbox"), c["State"])
                for c in containers_of()]
        if left:
            ids = {x[1] for x in left}
            cids = {x[0] for x in left}
            lines = [ln for ln in self.d.log().splitlines()
                     if any(i in ln for i in ids | cids) or " warn " in ln or " error " in ln]
            sys.stderr.write("\n[DeadEngine] first sandbox %s, second %s; left after both "
                             "destroys: %s\nlog lines naming them:\n%s\n"
                             % (sb.id, sb2.id, left, "\n".join(lines[-40:])))
        assert_nothing_left(wait_s=5)


class RawDaemon:
    """safeevald started with exactly `args` (no --listen/--log-level added),
    reached at `target` with `creds` (None: plain text). close() stops it,
    fails unless it exited 0, and removes the instance's containers."""

    def __init__(self, args, target, creds=None, timeout=60):
        self.tmpdir = tempfile.mkdtemp(prefix="safeevald-raw-")
        self.logpath = os.path.join(self.tmpdir, "stderr.log")
        self.target, self.creds = target, creds
        p = harness.protos()
        self.pb, self.health_pb = p.sandbox_pb2, p.health_pb2
        self._logf = open(self.logpath, "wb")
        self.proc = subprocess.Popen([harness.DAEMON] + list(args), stdin=subprocess.DEVNULL,
                                     stdout=self._logf, stderr=self._logf)
        end = time.monotonic() + timeout
        while True:
            # A fresh channel per attempt: one that failed to connect before
            # the daemon listened backs off for seconds before it retries.
            ch = self.new_channel()
            if self.check(ch) == "SERVING":
                break
            ch.close()
            if self.proc.poll() is not None or time.monotonic() > end:
                self.proc.kill()
                self.proc.wait()
                self._logf.close()
                text = self.log()
                shutil.rmtree(self.tmpdir, ignore_errors=True)
                raise RuntimeError("safeevald did not serve (exit %s):\n%s"
                                   % (self.proc.returncode, text))
            time.sleep(0.05)
        self.channel = ch
        self.stub = p.sandbox_pb2_grpc.SandboxServiceStub(self.channel)

    def new_channel(self):
        if self.creds is None:
            return grpc.insecure_channel(self.target, options=harness.FAST_RECONNECT)
        return grpc.secure_channel(self.target, self.creds, options=harness.FAST_RECONNECT)

    def check(self, channel, timeout=1):
        """Health/Check: the status name, or the RpcError's code name."""
        stub = harness.protos().health_pb2_grpc.HealthStub(channel)
        try:
            r = stub.Check(self.health_pb.HealthCheckRequest(), timeout=timeout)
            return self.health_pb.HealthCheckResponse.ServingStatus.Name(r.status)
        except grpc.RpcError as e:
            return e.code().name

    def log(self):
        with open(self.logpath, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def close(self):
        try:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(30)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
                    raise AssertionError("safeevald ignored SIGTERM for 30 s:\n%s"
                                         % self.log()[-4000:])
            self.channel.close()
            if self.proc.returncode != 0:
                raise AssertionError("safeevald exited with %d:\n%s"
                                     % (self.proc.returncode, self.log()[-6000:]))
        finally:
            self._logf.close()
            remove_containers_of()
            shutil.rmtree(self.tmpdir, ignore_errors=True)


class ConfigAndShutdown(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.wheels = make_wheelhouse()
        cls.cfgdir = tempfile.mkdtemp(prefix="safeeval-cfg-")
        cls.sock = os.path.join(cls.cfgdir, "from-config.sock")
        cfg = os.path.join(cls.cfgdir, "safeevald.conf")
        a = daemon_args(cls.wheels)
        lines = ["# written by test_contract", "listen = unix:" + cls.sock, "log-json = true",
                 "log-level = info", "grace-ms = 5000", "instance = " + harness.INSTANCE]
        lines += ["%s = %s" % (a[i][2:], a[i + 1]) for i in range(0, len(a), 2)]
        with open(cfg, "w") as f:
            f.write("\n".join(lines) + "\n")
        cls.d = RawDaemon(["--config", cfg], "unix:" + cls.sock)
        cls.pb = cls.d.pb

    @classmethod
    def tearDownClass(cls):
        try:
            cls.d.close()
        finally:
            shutil.rmtree(cls.cfgdir, ignore_errors=True)

    def test_config_json_log_and_shutdown_health(self):
        # Catches: --config lines not applied (listen: the daemon would not
        # answer on the socket named only in the file; log-json: text lines);
        # submitted code or its output in the info log; Health/Check answering
        # SERVING (or never NOT_SERVING) after SIGTERM while a run is in
        # flight; the in-flight run
        # cut short although --grace-ms (from the file) covers it; a non-zero
        # exit after the grace.
        pb = self.pb
        secret = marker()
        sb = self.d.stub.CreateSandbox(pb.CreateSandboxRequest(
            python_version="3.11", modules=["numpy"]), timeout=CREATE_S).sandbox
        r = self.d.stub.Eval(pb.EvalRequest(
            sandbox_id=sb.id, code="print('%s-out')  # %s-code\n" % (secret, secret)),
            timeout=60).result
        self.assertEqual(r.stdout, ("%s-out\n" % secret).encode(), describe(pb, r))
        mark = marker()
        result = {}

        def run():
            try:
                result["r"] = self.d.stub.Eval(pb.EvalRequest(
                    sandbox_id=sb.id, code="import time\ntime.sleep(3)\nprint('slept')\n",
                    args=[mark]), timeout=60).result
            except grpc.RpcError as e:
                result["err"] = e
        th = threading.Thread(target=run)
        th.start()
        self.assertTrue(wait_until(lambda: processes_of_sandbox(sb.id, mark), 30, 0.1),
                        "the sleeping run never showed up")
        t_sig = time.monotonic()
        self.d.proc.send_signal(signal.SIGTERM)
        seen = []  # (seconds after SIGTERM, answer) from a fresh channel each time
        # Each check may take 2 s: a loaded 2-core ASan daemon can answer a
        # fresh channel's first check later than 0.5 s, and a DEADLINE_EXCEEDED
        # would fail the answers' check below. The drain lasts ~3 s (the run's
        # sleep), so polls still land inside it.
        while self.d.proc.poll() is None:
            ch = self.d.new_channel()
            seen.append((round(time.monotonic() - t_sig, 2), self.d.check(ch, timeout=2)))
            ch.close()
            time.sleep(0.1)
        t_exit = time.monotonic() - t_sig
        th.join(30)
        sys.stderr.write("\n[ConfigAndShutdown] health after SIGTERM: %s; exit after %.2f s\n"
                         % (seen, t_exit))
        self.assertIn("r", result, "in-flight run failed during the grace: %r"
                      % result.get("err"))
        self.assertEqual(result["r"].stdout, b"slept\n", describe(pb, result["r"]))
        self.assertEqual(self.d.proc.returncode, 0, self.d.log()[-3000:])
        late = [(t, s) for t, s in seen if t >= 0.5]
        self.assertTrue(late, "the daemon exited %.2f s after SIGTERM: no time to poll" % t_exit)
        self.assertFalse([x for x in late if x[1] == "SERVING"],
                         "Health/Check answered SERVING during shutdown: %s" % seen)
        # CANCELLED: a check that raced the server's final stop.
        self.assertTrue(all(s in ("NOT_SERVING", "UNAVAILABLE", "CANCELLED") for _, s in late),
                        seen)
        # While the run drains, health says so (a probe or balancer moves
        # away) instead of only refusing connections.
        self.assertTrue([x for x in late if x[1] == "NOT_SERVING"],
                        "no NOT_SERVING while the in-flight run drained: %s" % seen)
        log = self.d.log()
        lines = [ln for ln in log.splitlines() if ln.strip()]
        self.assertTrue(lines, "no log lines at all")
        for ln in lines:
            try:
                json.loads(ln)
            except ValueError:
                self.fail("not a JSON line with log-json = true in the config: %r" % ln)
        self.assertNotIn(secret, log, "code or output logged at info level")


def make_pki(dirname, prefix=""):
    """A test CA and two certificates it signs, written into dirname as
    PREFIXca.pem/.key, PREFIXsrv.pem/.key (SAN IP 127.0.0.1) and
    PREFIXcli.pem/.key (clientAuth). Another prefix makes an unrelated CA."""
    def ossl(*args):
        subprocess.run(["openssl"] + list(args), cwd=dirname, check=True,
                       capture_output=True)
    ca = prefix + "ca"
    ossl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
         "/CN=safeeval test CA %s" % prefix, "-keyout", ca + ".key", "-out", ca + ".pem")
    with open(os.path.join(dirname, prefix + "srv.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\n")
    with open(os.path.join(dirname, prefix + "cli.ext"), "w") as f:
        f.write("extendedKeyUsage=clientAuth\n")
    for name in (prefix + "srv", prefix + "cli"):
        ossl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=%s" % name,
             "-keyout", name + ".key", "-out", name + ".csr")
        ossl("x509", "-req", "-in", name + ".csr", "-CA", ca + ".pem", "-CAkey", ca + ".key",
             "-CAcreateserial", "-days", "2", "-extfile", name + ".ext",
             "-out", name + ".pem")


class Tls(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="safeeval-tls-")
        cls.pb = harness.protos().sandbox_pb2
        make_pki(cls.dir)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def read(self, name):
        with open(os.path.join(self.dir, name), "rb") as f:
            return f.read()

    def path(self, name):
        return os.path.join(self.dir, name)

    def list_ok(self, channel):
        stub = harness.protos().sandbox_pb2_grpc.SandboxServiceStub(channel)
        stub.ListSandboxes(self.pb.ListSandboxesRequest(), timeout=5)

    def list_fails(self, channel):
        stub = harness.protos().sandbox_pb2_grpc.SandboxServiceStub(channel)
        try:
            stub.ListSandboxes(self.pb.ListSandboxesRequest(), timeout=3)
        except grpc.RpcError as e:
            return e.code()
        self.fail("the call succeeded")

    def start(self, port, creds, *extra):
        return RawDaemon(["--listen", "127.0.0.1:%d" % port, "--instance", harness.INSTANCE,
                          "--tls-cert", self.path("srv.pem"), "--tls-key", self.path("srv.key")]
                         + list(extra), "127.0.0.1:%d" % port, creds)

    def test_tls(self):
        # Catches: --tls-cert/--tls-key ignored (plain text served: the
        # plaintext client would succeed, the TLS one fail).
        port = free_port()
        creds = grpc.ssl_channel_credentials(root_certificates=self.read("ca.pem"))
        d = self.start(port, creds)
        try:
            self.list_ok(d.channel)
            plain = grpc.insecure_channel("127.0.0.1:%d" % port)
            self.assertIsNotNone(self.list_fails(plain))
            plain.close()
        finally:
            d.close()

    def test_mtls(self):
        # Catches: --tls-client-ca not requiring a client certificate (the
        # client without one would get through); a valid client cert refused.
        port = free_port()
        with_cert = grpc.ssl_channel_credentials(
            root_certificates=self.read("ca.pem"), private_key=self.read("cli.key"),
            certificate_chain=self.read("cli.pem"))
        d = self.start(port, with_cert, "--tls-client-ca", self.path("ca.pem"))
        try:
            self.list_ok(d.channel)
            no_cert = grpc.secure_channel("127.0.0.1:%d" % port, grpc.ssl_channel_credentials(
                root_certificates=self.read("ca.pem")))
            self.assertIsNotNone(self.list_fails(no_cert))
            no_cert.close()
        finally:
            d.close()

    def test_off_loopback_needs_tls_or_insecure_listen(self):
        # Catches: plain text served on 0.0.0.0 without --insecure-listen; the
        # flag not honoured (the second start would fail).
        port = free_port()
        r = run_daemon(["--listen", "0.0.0.0:%d" % port, "--instance", harness.INSTANCE])
        self.assertNotEqual(r.returncode, 0, "plain text on 0.0.0.0 accepted:\n" + r.stderr)
        self.assertIn("insecure-listen", r.stderr)
        # The client talks to it over the loopback only.
        with Daemon(listen="0.0.0.0:%d" % port, connect="127.0.0.1:%d" % port,
                    extra_args=["--insecure-listen"]) as d:
            d.stub.ListSandboxes(d.pb.ListSandboxesRequest(), timeout=5)
        assert_nothing_left()


class TlsEngineProxy(EngineProxy):
    """The Docker engine as a tcp + TLS engine on 127.0.0.1:.port: EngineProxy's
    listener bookkeeping and stop(), with a TLS server in front (srv.pem, SAN
    IP 127.0.0.1; a client certificate signed by ca.pem is required) and each
    accepted connection forwarded to the Docker socket. One thread per
    connection moves both directions: an SSL object must not be read and
    written from two threads at once, so EngineProxy._pipe's two threads would
    not do here. Half-closes are kept until both directions ended (an attach is
    a long-lived hijacked connection): the client's close_notify or FIN
    becomes shutdown(SHUT_WR) towards the engine and the engine's output keeps
    flowing; the engine's EOF becomes a close_notify to the client and the
    client's bytes keep flowing. Like dockerd (Go's TLS), a FIN without
    close_notify is taken as the client's EOF, not as an error.
    .accepted counts the connections whose handshake succeeded, .refused holds
    the errors of those whose handshake failed, .requests the first line of
    each accepted connection's first request."""

    def __init__(self, certdir):
        super().__init__(None)
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(os.path.join(certdir, "srv.pem"),
                                 os.path.join(certdir, "srv.key"))
        self.ctx.load_verify_locations(os.path.join(certdir, "ca.pem"))
        self.ctx.verify_mode = ssl.CERT_REQUIRED
        self.ctx.options |= getattr(ssl, "OP_IGNORE_UNEXPECTED_EOF", 0)
        self.accepted, self.refused, self.requests = 0, [], []

    def start(self):
        self.srv = socket.socket()
        self.srv.bind(("127.0.0.1", 0))
        self.port = self.srv.getsockname()[1]
        self.srv.listen(64)
        threading.Thread(target=self._accept, args=(self.srv,), daemon=True).start()

    def _accept(self, srv):
        while True:
            try:
                raw, _ = srv.accept()
            except OSError:
                return
            with self.lock:
                self.conns.append(raw)
            threading.Thread(target=self._serve, args=(raw,), daemon=True).start()

    def _serve(self, raw):
        raw.settimeout(10)
        try:
            c = self.ctx.wrap_socket(raw, server_side=True)  # the handshake
        except (OSError, ValueError) as e:
            with self.lock:
                self.refused.append(str(e))
            raw.close()
            return
        u = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            u.connect(DOCKER_SOCK)
        except OSError:
            c.close()
            u.close()
            return
        with self.lock:
            self.accepted += 1
            self.conns += [c, u]
        c.setblocking(False)  # read when select or pending() says so
        from_client = from_engine = True
        first = b""
        try:
            while from_client or from_engine:
                if from_client and c.pending():
                    ready = [c]
                else:
                    ready = select.select([s for s, on in ((c, from_client), (u, from_engine))
                                           if on], [], [], 5)[0]
                if c in ready:
                    try:
                        data = c.recv(65536)
                    except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                        data = None  # no whole record yet, or no application data in it
                    except ssl.SSLError:
                        data = b""
                    if data == b"":
                        from_client = False
                        u.shutdown(socket.SHUT_WR)
                    elif data:
                        if b"\n" not in first and len(first) < 4096:
                            first += data
                            if b"\n" in first:
                                with self.lock:
                                    self.requests.append(first.split(b"\r\n")[0].decode(
                                        "latin-1"))
                        u.sendall(data)
                if u in ready:
                    data = u.recv(65536)
                    if data:
                        self._send(c, data)
                    else:
                        from_engine = False
                        try:
                            c.unwrap()  # sends close_notify, then would wait for the client's
                        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                            pass
                        if c._sslobj is None:  # the client had ended too
                            from_client = False
        except OSError:
            pass
        finally:
            c.close()
            u.close()

    @staticmethod
    def _send(c, data):
        view = memoryview(data)
        while view:
            try:
                view = view[c.send(view):]
            except (ssl.SSLWantWriteError, ssl.SSLWantReadError):
                select.select([], [c], [], 5)


class TcpEngineTls(unittest.TestCase):
    """safeevald with --docker-host tcp://127.0.0.1:PORT and --docker-tls-ca,
    -cert, -key, the engine being TlsEngineProxy in front of the Docker
    socket."""

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="safeeval-tls-engine-")
        try:
            make_pki(cls.dir)
            make_pki(cls.dir, "other-")
            cls.proxy = TlsEngineProxy(cls.dir)
            cls.proxy.start()
        except BaseException:
            shutil.rmtree(cls.dir, ignore_errors=True)
            raise
        cls.engine = "tcp://127.0.0.1:%d" % cls.proxy.port
        cls.wheels = make_wheelhouse()

    @classmethod
    def tearDownClass(cls):
        try:
            cls.proxy.stop()
        finally:
            remove_containers_of()
            shutil.rmtree(cls.dir, ignore_errors=True)

    def engine_args(self, cert=None, key=None):
        a = ["--docker-host", self.engine, "--docker-tls-ca", os.path.join(self.dir, "ca.pem")]
        if cert:
            a += ["--docker-tls-cert", os.path.join(self.dir, cert),
                  "--docker-tls-key", os.path.join(self.dir, key)]
        return a

    def test_client_certificate_serves_a_sandbox(self):
        # Catches: --docker-host tcp:// or the --docker-tls-* files ignored
        # (the daemon would not start against a TLS engine that requires a
        # client certificate, or would go to the unix socket behind the
        # proxy's back: no attach through it); the hijacked attach broken
        # over TLS (the agent's frames through curl_easy_send/recv on a TLS
        # connection: the create or the Eval fails or hangs); a destroy over
        # TLS that leaves a container.
        d = Daemon(extra_args=daemon_args(self.wheels, *self.engine_args("cli.pem", "cli.key")),
                   timeout=60)
        sid = None
        try:
            pb = d.pb
            sid = d.stub.CreateSandbox(pb.CreateSandboxRequest(
                python_version="3.11", modules=["numpy"]), timeout=CREATE_S).sandbox.id
            r = d.stub.Eval(pb.EvalRequest(sandbox_id=sid, code="print(1)"), timeout=60).result
            self.assertEqual((r.reason, r.exit_code, r.stdout), (pb.EXIT_REASON_EXITED, 0, b"1\n"),
                             describe(pb, r))
            attaches = [q for q in self.proxy.requests if "/attach?" in q]
            self.assertTrue(attaches, "no attach through the TLS engine: %s" % self.proxy.requests)
        except BaseException:
            sys.stderr.write("\n[TcpEngineTls] proxy: accepted %d, refused %s, requests %s\n"
                             "daemon log tail:\n%s\n" % (
                                 self.proxy.accepted, self.proxy.refused[-5:],
                                 self.proxy.requests[-20:], d.log()[-4000:]))
            raise
        finally:
            finish(d, destroy=[sid] if sid else [])

    def test_no_or_foreign_client_certificate_refused(self):
        # Catches: a daemon that starts although the engine refused it (a
        # failed /version taken for an old engine, or the engine checked
        # lazily), or whose message does not name the engine; and, through
        # the proxy's refused handshakes, a daemon that failed for some other
        # reason before reaching the engine (these checks would pass vacuously).
        for what, cert in (("no client certificate", None),
                           ("a client certificate of another CA",
                            ("other-cli.pem", "other-cli.key"))):
            with self.subTest(what):
                sock = os.path.join(self.dir, "refused.sock")
                before = len(self.proxy.refused)
                t0 = time.monotonic()
                try:
                    r = run_daemon(["--listen", "unix:" + sock, "--instance", harness.INSTANCE,
                                    "--docker-timeout-ms", "3000"]
                                   + self.engine_args(*(cert or ())), timeout=10)
                except subprocess.TimeoutExpired as e:
                    self.fail("%s: the daemon started and ran for 10 s:\n%s" % (
                        what, (e.stderr or b"")[-3000:].decode("utf-8", "replace")))
                took = time.monotonic() - t0
                self.assertNotEqual(r.returncode, 0, "%s: the daemon started:\n%s"
                                    % (what, r.stderr[-3000:]))
                self.assertIn(self.engine, r.stderr, "%s: the message does not name the engine"
                              % what)
                self.assertGreater(len(self.proxy.refused), before,
                                   "%s: the proxy refused no handshake:\n%s" % (what, r.stderr))
                self.assertLess(took, 8, "%s: refusal took %.1f s" % (what, took))
                sys.stderr.write("\n[TcpEngineTls] %s: exit %d in %.2f s: %s\n" % (
                    what, r.returncode, took, r.stderr.strip().splitlines()[-1:]))
        assert_nothing_left()


if __name__ == "__main__":
    unittest.main(verbosity=2)
