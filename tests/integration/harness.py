"""Shared harness for the integration tests: start the real safeevald, talk to
it over a real channel. Keep this API small and stable; every test uses it.

    from harness import Daemon, expect_code, run_daemon, protos, BUILD_DIR, SOURCE_DIR

    with Daemon(extra_args=["--base-image", "safeeval/python:{version}"]) as d:
        d.stub.ListSandboxes(d.pb.ListSandboxesRequest(), timeout=5)
        err = expect_code(lambda: d.stub.GetSandbox(
            d.pb.GetSandboxRequest(sandbox_id="x"), timeout=5), grpc.StatusCode.NOT_FOUND)
        rc = d.stop()          # SIGTERM; returns the exit code
        text = d.log()         # the daemon's stderr so far

Daemon(extra_args=(), listen=None, timeout=30, connect=None)
    Starts build/bin/safeevald on a fresh unix socket in a temp dir (or on
    `listen` if given; the client channel goes to `connect` if given, e.g.
    127.0.0.1:PORT for a daemon listening on 0.0.0.0:PORT) with --log-level debug and --instance INSTANCE (unless
    extra_args names one), and waits until
    grpc.health.v1.Health/Check answers SERVING (raises RuntimeError with the
    daemon's log if it does not within `timeout` s or exits first).
    Attributes: .channel (grpc.Channel), .stub (SandboxServiceStub), .pb (the
    sandbox_pb2 module), .health (HealthStub), .health_pb (health_pb2),
    .address, .proc (subprocess.Popen), .tmpdir.
    .stop(sig=signal.SIGTERM, timeout=30) -> exit code (kills after timeout).
    .log() -> str.
    .close() stops the daemon if still running, removes .tmpdir and raises
    AssertionError (with the log's tail) unless the daemon exited 0: a
    sanitizer build that finds a leak or an error exits non-zero, and a
    daemon that needed SIGKILL after `timeout` is a failure too. The one
    accepted non-zero exit: the test itself called .stop(sig) with a signal
    other than SIGTERM/SIGINT and the daemon died of exactly that signal.
    Leaving the `with` block calls .close(), except that when the block
    already raised it only stops and cleans up (the first failure is the
    one reported). setUpClass/tearDownClass users call .close() themselves.
expect_code(fn, code) -> grpc.RpcError
    Calls fn(); fails unless it raises an RpcError with that status code.
run_daemon(args, timeout=30) -> subprocess.CompletedProcess (text stdout/stderr)
    Runs safeevald to completion with exactly `args` (for start-up refusals).
protos() -> a namespace with sandbox_pb2, sandbox_pb2_grpc, health_pb2,
    health_pb2_grpc: generated once per process with grpc_tools.protoc from
    proto/ into a temp dir (health.proto is written here; Debian may lack the
    grpc_health package).
INSTANCE
    This test program's daemon instance name ("t-" + random hex): every
    daemon it starts owns the same sandboxes (so a restart recovers them), and
    never those of other programs or of a daemon already running here.
    What an instance left in the engine is found by its labels, never by
    log lines: sandbox_engine.containers_of(instance) and
    sandbox_engine.assert_nothing_left(instance) (call it at every
    integration, hostile and interop test's teardown).
Paths: SAFEEVAL_BUILD_DIR (default <repo>/build), SAFEEVAL_SOURCE_DIR
(default: the repo holding this file). Sanitizer builds need nothing special.
"""

import atexit
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import types

import grpc

SOURCE_DIR = os.environ.get(
    "SAFEEVAL_SOURCE_DIR",
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
BUILD_DIR = os.environ.get("SAFEEVAL_BUILD_DIR", os.path.join(SOURCE_DIR, "build"))
DAEMON = os.path.join(BUILD_DIR, "bin", "safeevald")

_HEALTH_PROTO = """syntax = "proto3";
package grpc.health.v1;
message HealthCheckRequest { string service = 1; }
message HealthCheckResponse {
  enum ServingStatus { UNKNOWN = 0; SERVING = 1; NOT_SERVING = 2; SERVICE_UNKNOWN = 3; }
  ServingStatus status = 1;
}
service Health { rpc Check(HealthCheckRequest) returns (HealthCheckResponse); }
"""

_protos = None


INSTANCE = "t-" + os.urandom(6).hex()

# Channel options for a server that is about to start listening.
FAST_RECONNECT = [("grpc.initial_reconnect_backoff_ms", 50),
                  ("grpc.min_reconnect_backoff_ms", 50),
                  ("grpc.max_reconnect_backoff_ms", 250)]

def protos():
    """The generated modules (built once per process)."""
    global _protos
    if _protos is not None:
        return _protos
    out = tempfile.mkdtemp(prefix="safeeval-pb-")
    atexit.register(shutil.rmtree, out, True)
    with open(os.path.join(out, "health.proto"), "w") as f:
        f.write(_HEALTH_PROTO)
    proto_dir = os.path.join(SOURCE_DIR, "proto")
    for include, rel in ((proto_dir, "safeeval/v1/sandbox.proto"), (out, "health.proto")):
        r = subprocess.run(
            [sys.executable, "-m", "grpc_tools.protoc", "-I" + include, "--python_out=" + out,
             "--grpc_python_out=" + out, os.path.join(include, rel)],
            capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError("protoc %s failed: %s" % (rel, r.stderr))
    sys.path.insert(0, out)
    from safeeval.v1 import sandbox_pb2, sandbox_pb2_grpc  # noqa: E402
    import health_pb2  # noqa: E402
    import health_pb2_grpc  # noqa: E402
    _protos = types.SimpleNamespace(sandbox_pb2=sandbox_pb2, sandbox_pb2_grpc=sandbox_pb2_grpc,
                                    health_pb2=health_pb2, health_pb2_grpc=health_pb2_grpc)
    return _protos


def expect_code(fn, code):
    """Runs fn(); returns its RpcError if it has `code`, else fails."""
    try:
        fn()
    except grpc.RpcError as e:
        if e.code() != code:
            raise AssertionError("expected %s, got %s: %s" % (code, e.code(), e.details()))
        return e
    raise AssertionError("expected %s, the call succeeded" % (code,))


def run_daemon(args, timeout=30):
    """Runs safeevald with `args` to completion."""
    return subprocess.run([DAEMON] + list(args), capture_output=True, text=True, timeout=timeout)


class Daemon:
    def __init__(self, extra_args=(), listen=None, timeout=30, connect=None):
        self.tmpdir = tempfile.mkdtemp(prefix="safeevald-")
        self.address = listen or "unix:" + os.path.join(self.tmpdir, "safeevald.sock")
        self._connect = connect or self.address
        self._logpath = os.path.join(self.tmpdir, "stderr.log")
        p = protos()
        self.pb = p.sandbox_pb2
        self.health_pb = p.health_pb2
        self.proc = None
        self.channel = None
        self._stop_signal = None
        self._killed_after_timeout = False
        self._start(list(extra_args), timeout)

    def _start(self, extra_args, timeout):
        args = [DAEMON, "--listen", self.address, "--log-level", "debug"] + extra_args
        if "--instance" not in extra_args:
            args += ["--instance", INSTANCE]
        self._logf = open(self._logpath, "wb")
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=self._logf,
                                     stderr=self._logf)
        # The daemon is not listening yet: with gRPC's default reconnect
        # backoff (1 s, then x1.6) the first answer would come seconds late.
        self.channel = grpc.insecure_channel(self._connect, options=FAST_RECONNECT)
        p = protos()
        self.stub = p.sandbox_pb2_grpc.SandboxServiceStub(self.channel)
        self.health = p.health_pb2_grpc.HealthStub(self.channel)
        end = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                self._cleanup()
                text = self.log()
                shutil.rmtree(self.tmpdir, ignore_errors=True)
                raise RuntimeError("safeevald exited with %d before serving:\n%s"
                                   % (self.proc.returncode, text))
            try:
                r = self.health.Check(self.health_pb.HealthCheckRequest(), timeout=1)
                if r.status == self.health_pb.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            if time.monotonic() > end:
                self.stop(signal.SIGKILL)
                text = self.log()
                shutil.rmtree(self.tmpdir, ignore_errors=True)
                raise RuntimeError("safeevald did not serve within %d s:\n%s"
                                   % (timeout, text))
            time.sleep(0.05)

    def log(self):
        with open(self._logpath, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop(self, sig=signal.SIGTERM, timeout=30):
        """Signals the daemon and waits; returns its exit code."""
        if self.proc.poll() is None:
            self._stop_signal = sig
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._killed_after_timeout = True
                self.proc.kill()
                self.proc.wait()
        self._cleanup()
        return self.proc.returncode

    def _exit_problem(self, rc):
        """Why exit code rc is a failure, or None."""
        if self._killed_after_timeout:
            return ("safeevald did not stop within the timeout after signal %s; killed "
                    "(exit %d)" % (self._stop_signal, rc))
        if rc == 0:
            return None
        sig = self._stop_signal
        if sig not in (None, signal.SIGTERM, signal.SIGINT) and rc == -sig:
            return None  # the test killed it on purpose
        return ("safeevald exited with %d (a sanitizer report, a crash or a failed "
                "shutdown)" % rc)

    def close(self):
        """Stops the daemon, removes its temp dir; fails unless it exited cleanly."""
        rc = self.stop()
        problem = self._exit_problem(rc)
        tail = self.log()[-8000:] if problem else ""
        shutil.rmtree(self.tmpdir, ignore_errors=True)
        if problem:
            raise AssertionError("%s; its log ends:\n%s" % (problem, tail))

    def _cleanup(self):
        if self.channel is not None:
            self.channel.close()
            self.channel = None
        if not self._logf.closed:
            self._logf.close()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            # The block failed already: report that, not the shutdown.
            self.stop()
            shutil.rmtree(self.tmpdir, ignore_errors=True)
            return False
        self.close()
        return False
