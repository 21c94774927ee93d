"""pytest fixtures for the Python SDK's tests: the INSTALLED safeeval package
(ctest installs it into a venv first: tests/run.py) against a real safeevald
started by tests/integration/harness.py, with the real Docker engine.

Tests for the RPCs of issue 11 (EvalStream, ExecuteFileStream,
CreateSandboxStream, GetServerInfo, and `collect`, which only a server with
GetServerInfo implements) skip when, and only when, this server answers
UNIMPLEMENTED for the method (see `needs`).
"""
import os
import sys

# The SDK first: the harness generates its own stubs under the same
# `safeeval.v1` name, and the already-imported package must win.
import safeeval  # noqa: E402
import grpc
import pytest

SOURCE_DIR = os.environ.get("SAFEEVAL_SOURCE_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", "..", ".."))
sys.path.insert(0, os.path.join(SOURCE_DIR, "tests", "integration"))
import harness  # noqa: E402
import sandbox_engine  # noqa: E402

VERSION = "3.11"  # the old tl;dr said 3.8: this server builds 3.11 and 3.13
MAX_REQUEST = 1024 * 1024  # the daemon's --max-request-bytes, for ResourceExhausted


def pytest_configure(config):
    src = os.path.join(SOURCE_DIR, "client", "python", "src")
    if os.path.abspath(safeeval.__file__).startswith(src):
        raise pytest.UsageError("testing the source tree, not the installed package")


class Daemon:
    """The session's daemon: a harness.Daemon plus raw stubs for probes."""

    def __init__(self, d):
        self.d = d
        self.target = d.address
        self.pb = d.pb
        self.stub = d.stub

    def sandbox_ids(self):
        return [s.id for s in safeeval.list_sandboxes(self.target)]

    def unimplemented(self, method):
        """Whether this server answers UNIMPLEMENTED for `method` (probed with
        a request every implementation refuses cheaply or answers)."""
        pb = self.pb
        probes = {
            "GetServerInfo": lambda: self.stub.GetServerInfo(pb.GetServerInfoRequest(),
                                                             timeout=10),
            "EvalStream": lambda: list(self.stub.EvalStream(
                pb.EvalRequest(sandbox_id="no-such-sandbox-0", code="pass"), timeout=10)),
            "ExecuteFileStream": lambda: list(self.stub.ExecuteFileStream(
                pb.ExecuteFileRequest(sandbox_id="no-such-sandbox-0", filename="a.py",
                                      content=b"pass"), timeout=10)),
            "CreateSandboxStream": lambda: list(self.stub.CreateSandboxStream(
                pb.CreateSandboxRequest(python_version="3.11\0"), timeout=10)),
        }
        try:
            probes[method]()
        except grpc.RpcError as e:
            return e.code() == grpc.StatusCode.UNIMPLEMENTED
        return False


@pytest.fixture(scope="session")
def daemon():
    d = harness.Daemon(extra_args=["--base-image", "safeeval/python:{version}",
                                   "--max-request-bytes", str(MAX_REQUEST)])
    os.environ["SAFEEVAL_TARGET"] = d.address
    os.environ.pop("SAFEEVAL_TOKEN", None)
    try:
        yield Daemon(d)
        sandbox_engine.assert_nothing_left(harness.INSTANCE, wait_s=10)
    except BaseException:
        d.stop()
        sandbox_engine.remove_containers_of(harness.INSTANCE)
        raise
    d.close()


@pytest.fixture
def needs(daemon):
    """needs("EvalStream"): skip this test when the server answers
    UNIMPLEMENTED for that method (a server from before issue 11)."""
    def check(method, why=""):
        if daemon.unimplemented(method):
            pytest.skip("server answers UNIMPLEMENTED for %s%s (the server side of issue 11 "
                        "is not in this build)" % (method, why))
    return check


@pytest.fixture(scope="module")
def sf(daemon):
    """One 3.11 + numpy sandbox for a test module (the image is cached)."""
    with safeeval.SafeEval(version=VERSION, modules=["numpy"]) as s:
        yield s
    assert s.id not in daemon.sandbox_ids()
