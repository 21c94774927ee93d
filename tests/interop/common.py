"""Shared pieces of the interop tests: paths, the daemon, the stubs.

The daemon and the stubs (grpc_tools.protoc on the public proto, once per
process) come from tests/integration/harness.py (one daemon per test
program). Nothing here talks gRPC: that is each client's job.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "integration"))
import harness  # noqa: E402  (needs the sys.path entry above)

SOURCE_DIR = harness.SOURCE_DIR

# The service builds sandboxes from these local images on this machine and in CI.
DAEMON_ARGS = ["--base-image", "safeeval/python:{version}"]


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


def stubs():
    """The Python stubs generated from the public proto:
    (sandbox_pb2, sandbox_pb2_grpc)."""
    p = harness.protos()
    return p.sandbox_pb2, p.sandbox_pb2_grpc
