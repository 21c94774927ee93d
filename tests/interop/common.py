"""Shared pieces of the interop tests: paths, the daemon, the stub generator.

The daemon comes from tests/integration/harness.py (one daemon per test
program). Nothing here talks gRPC: that is each client's job.
"""
import os
import shutil
import subprocess
import sys
import tempfile

SOURCE_DIR = os.environ.get(
    "SAFEEVAL_SOURCE_DIR",
    os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
BUILD_DIR = os.environ.get("SAFEEVAL_BUILD_DIR", os.path.join(SOURCE_DIR, "build"))
PROTO_ROOT = os.path.join(SOURCE_DIR, "proto")
PROTO_FILE = "safeeval/v1/sandbox.proto"

# The service builds sandboxes from these local images on this machine and in CI.
DAEMON_ARGS = ["--base-image", "safeeval/python:{version}"]

sys.path.insert(0, os.path.join(SOURCE_DIR, "tests", "integration"))
import harness  # noqa: E402  (needs the sys.path entry above)


def daemon():
    """A harness.Daemon context manager for the interop tests."""
    return harness.Daemon(extra_args=list(DAEMON_ARGS))


def socket_path(d):
    """The unix socket path the harness daemon listens on."""
    if not d.address.startswith("unix:"):
        raise AssertionError("harness daemon is not on a unix socket: %r" % d.address)
    return d.address[len("unix:"):]


def log_tail(d, lines=60):
    """The last lines of the daemon's log, for a failure report."""
    return "\n".join(d.log().splitlines()[-lines:])


def generate_stubs():
    """Generates the Python stubs from the proto into a fresh temp dir and
    puts it first on sys.path. Returns (sandbox_pb2, sandbox_pb2_grpc, dir)."""
    out = tempfile.mkdtemp(prefix="safeeval-interop-stubs-")
    cmd = [sys.executable, "-m", "grpc_tools.protoc", "-I", PROTO_ROOT,
           "--python_out=" + out, "--grpc_python_out=" + out, PROTO_FILE]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        shutil.rmtree(out, ignore_errors=True)
        raise AssertionError("protoc failed (%d): %s" % (r.returncode, r.stderr))
    sys.path.insert(0, out)
    from safeeval.v1 import sandbox_pb2, sandbox_pb2_grpc  # noqa: E402
    return sandbox_pb2, sandbox_pb2_grpc, out
