"""The Python SDK against a real safeevald and Docker engine."""
import gc
import os
import subprocess
import sys
import textwrap
import time
from concurrent import futures
from pathlib import Path

import grpc
import pytest

import safeeval
from conftest import MAX_REQUEST, VERSION

HERE = Path(__file__).parent


def test_old_tldr_runs_unchanged_but_the_import(daemon):
    # tldr/tldr.py is the old README's tl;dr with `import safeeval as
    # PythonSafeEval` and version "3.11" (the server has 3.11 and 3.13, not
    # 3.8). It never closes its sandbox: interpreter exit must destroy it.
    before = set(daemon.sandbox_ids())
    r = subprocess.run([sys.executable, str(HERE / "tldr" / "tldr.py")], capture_output=True,
                       text=True, timeout=600, env=dict(os.environ, SAFEEVAL_TARGET=daemon.target))
    assert r.returncode == 0, r.stderr
    assert r.stdout == "Hello World\n\n[3, 5, 7]\n\n", r.stdout
    assert set(daemon.sandbox_ids()) == before, "the tl;dr's sandbox outlived its interpreter"


def test_result_is_a_completed_process_with_every_field(sf):
    code = textwrap.dedent("""\
        import os, sys
        data = sys.stdin.read()
        print("out", data, sys.argv[1:], os.environ["GREETING"], open("in/data.txt").read())
        print("err", file=sys.stderr)
        x = bytearray(20 * 1024 * 1024)
        """)
    r = sf.eval(code, stdin="hi", args=["a", "b"], env={"GREETING": "hello"},
                files={"in/data.txt": b"42"})
    assert isinstance(r, subprocess.CompletedProcess)
    assert isinstance(r, safeeval.Result)
    assert r.args == ["python3", "-c", code, "a", "b"]
    assert r.returncode == 0
    assert r.stdout == "out hi ['a', 'b'] hello 42\n"
    assert r.stderr == "err\n"
    assert r.reason is safeeval.Reason.EXITED and r.reason == "exited"
    assert r.signal == 0
    assert (r.truncated, r.stdout_truncated, r.stderr_truncated) == (False, False, False)
    assert (r.stdout_bytes, r.stderr_bytes) == (len(r.stdout), 4)
    assert r.wall_time > 0 and 0 < r.cpu_time <= r.wall_time + 1
    assert r.max_rss >= 20 * 1024 * 1024
    assert r.files == {} and r.files_truncated is False
    r.check_returncode()


def test_bytes_on_request_and_text_replaces_bad_utf8(sf):
    code = 'import sys; sys.stdout.buffer.write(b"\\xff\\xfe ok"); sys.stderr.write("\\u00e9")'
    b = sf.eval(code, text=False)
    assert (b.stdout, b.stderr) == (b"\xff\xfe ok", "\u00e9".encode())
    t = sf.eval(code)
    assert (t.stdout, t.stderr) == ("\ufffd\ufffd ok", "\u00e9")


def test_exit_status_and_signal_are_results_not_errors(sf):
    r = sf.eval("import sys; sys.exit(3)")
    assert (r.returncode, r.reason, r.signal) == (3, safeeval.Reason.EXITED, 0)
    with pytest.raises(subprocess.CalledProcessError):
        r.check_returncode()
    r = sf.eval("import os, signal; os.kill(os.getpid(), signal.SIGKILL)")
    assert (r.returncode, r.reason, r.signal) == (-9, safeeval.Reason.SIGNALED, 9)


def test_time_limit_in_seconds_is_a_reason(sf):
    # (no check of what it printed: on a loaded machine python3 may not have
    # started within the 0.5 s)
    r = sf.eval("import time; time.sleep(30)", time_limit=0.5)
    assert r.reason is safeeval.Reason.WALL_TIMEOUT
    assert r.returncode < 0 and r.signal > 0
    assert r.wall_time >= 0.45


def test_limits_memory_cpu_output(sf):
    r = sf.eval("x = bytearray(400 * 1024 * 1024)",
                limits=safeeval.Limits(memory=64 * 1024 * 1024))
    assert r.reason is safeeval.Reason.MEMORY_LIMIT
    r = sf.eval("while True: pass", limits=safeeval.Limits(cpu_time=0.3))
    assert r.reason is safeeval.Reason.CPU_TIMEOUT
    r = sf.eval('print("x" * 5000, end="")', limits=safeeval.Limits(max_output=1024))
    assert r.reason is safeeval.Reason.EXITED
    assert r.stdout_truncated and r.truncated and not r.stderr_truncated
    assert (len(r.stdout), r.stdout_bytes) == (1024, 5000)
    r = sf.eval('open("big", "wb").write(b"x" * 100000)', limits=safeeval.Limits(max_file=4096))
    assert r.reason is safeeval.Reason.FILE_SIZE_LIMIT


def test_execute_file_path_and_content(sf, tmp_path):
    p = tmp_path / "job.py"
    p.write_text('import sys; print(sys.argv[0].endswith("job.py"), sys.argv[1:])')
    r = sf.execute_file(p, args=["4"])
    assert r.stdout == "True ['4']\n" and r.args == ["python3", "job.py", "4"]
    r = sf.execute_file("named.py", content=b'print(__file__.endswith("named.py"))')
    assert r.stdout == "True\n"
    with pytest.raises(safeeval.InvalidArgument, match="cannot read"):
        sf.execute_file(tmp_path / "missing.py")


def test_sandbox_info(sf):
    assert sf.sandbox.python_version.startswith(VERSION + ".")
    assert sf.sandbox.modules == ["numpy"]
    assert sf.sandbox.limits.wall_time > 0 and sf.sandbox.limits.memory > 0
    i = sf.info()
    assert i.id == sf.id and i.workers >= 1 and i.image.startswith("safeeval/sandbox:")


# -- errors -----------------------------------------------------------------

def test_invalid_argument_from_server_and_sdk(sf):
    with pytest.raises(safeeval.InvalidArgument) as e:
        sf.eval("pass", files={"../escape": b"x"})
    assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT and "files" in e.value.details
    assert isinstance(e.value, ValueError) and isinstance(e.value, safeeval.SafeEvalError)
    with pytest.raises(safeeval.InvalidArgument, match="time_limit"):
        sf.eval("pass", time_limit=-1)
    with pytest.raises(safeeval.InvalidArgument, match="args"):
        sf.eval("pass", args="a b")
    with pytest.raises(safeeval.InvalidArgument, match="idle_timeout"):
        safeeval.SafeEval(version=VERSION, idle_timeout=-1)
    with pytest.raises(safeeval.InvalidArgument, match="runner"):
        safeeval.SafeEval(version=VERSION, runner="constructor")


def test_sandbox_not_found(daemon):
    s = safeeval.SafeEval(version=VERSION, modules=["numpy"])
    daemon.stub.DestroySandbox(daemon.pb.DestroySandboxRequest(sandbox_id=s.id), timeout=30)
    with pytest.raises(safeeval.SandboxNotFound) as e:
        s.eval("pass")
    assert e.value.code == grpc.StatusCode.NOT_FOUND and isinstance(e.value, LookupError)
    s.close()  # already gone: not an error
    with pytest.raises(safeeval.SandboxNotFound, match="closed"):
        s.eval("pass")


def test_resource_exhausted(sf):
    with pytest.raises(safeeval.ResourceExhausted) as e:
        sf.eval("#" * (2 * MAX_REQUEST))
    assert e.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_deadline_exceeded(sf):
    with pytest.raises(safeeval.DeadlineExceeded) as e:
        sf.eval("import time; time.sleep(10)", timeout=0.5)
    assert isinstance(e.value, TimeoutError)


def test_unavailable(tmp_path):
    with pytest.raises(safeeval.Unavailable) as e:
        safeeval.SafeEval(version=VERSION, target="unix:" + str(tmp_path / "none.sock"),
                          create_timeout=10)
    assert e.value.code == grpc.StatusCode.UNAVAILABLE and isinstance(e.value, ConnectionError)


def test_version_the_server_lacks(daemon):
    with pytest.raises(safeeval.VersionNotAvailable) as e:
        safeeval.SafeEval(version="3.8", modules=["numpy"])
    err = e.value
    assert isinstance(err, safeeval.FailedPrecondition) and err.version == "3.8"
    assert "3.8" in str(err)
    if daemon.unimplemented("GetServerInfo"):
        assert err.available is None and "cannot list its versions" in str(err)
    else:
        assert {"3.11", "3.13"} <= set(err.available)
        assert "3.11" in str(err) and "3.13" in str(err)


class _StatusServer:
    """A gRPC server that answers every call with one status code and records
    the metadata it got: for the codes the daemon cannot be made to answer."""

    def __init__(self):
        self.code = grpc.StatusCode.OK
        self.metadata = []
        me = self

        class Handler(grpc.GenericRpcHandler):
            def service(self, details):
                def unary(request, context):
                    me.metadata.append(dict(context.invocation_metadata()))
                    context.abort(me.code, "status server says " + me.code.name)
                return grpc.unary_unary_rpc_method_handler(unary)

        self.server = grpc.server(futures.ThreadPoolExecutor(2), handlers=[Handler()])
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()


@pytest.fixture(scope="module")
def status_server():
    s = _StatusServer()
    yield s
    s.server.stop(None)


@pytest.mark.parametrize("code,cls", [
    (grpc.StatusCode.INVALID_ARGUMENT, safeeval.InvalidArgument),
    (grpc.StatusCode.NOT_FOUND, safeeval.SandboxNotFound),
    (grpc.StatusCode.RESOURCE_EXHAUSTED, safeeval.ResourceExhausted),
    (grpc.StatusCode.FAILED_PRECONDITION, safeeval.FailedPrecondition),
    (grpc.StatusCode.UNAVAILABLE, safeeval.Unavailable),
    (grpc.StatusCode.DEADLINE_EXCEEDED, safeeval.DeadlineExceeded),
    (grpc.StatusCode.ABORTED, safeeval.Aborted),
    (grpc.StatusCode.PERMISSION_DENIED, safeeval.PermissionDenied),
    (grpc.StatusCode.UNAUTHENTICATED, safeeval.Unauthenticated),
    (grpc.StatusCode.UNIMPLEMENTED, safeeval.Unimplemented),
    (grpc.StatusCode.CANCELLED, safeeval.Cancelled),
    (grpc.StatusCode.INTERNAL, safeeval.Internal),
    (grpc.StatusCode.DATA_LOSS, safeeval.SafeEvalError),
])
def test_every_status_code_has_its_class(status_server, code, cls):
    status_server.code = code
    with pytest.raises(cls) as e:
        safeeval.SafeEval(target="127.0.0.1:%d" % status_server.port)
    assert type(e.value) is cls or code == grpc.StatusCode.FAILED_PRECONDITION
    assert e.value.code == code and e.value.details == "status server says " + code.name
    assert str(e.value) == "%s: status server says %s" % (code.name, code.name)


def test_token_is_sent_as_bearer(status_server, monkeypatch):
    status_server.code = grpc.StatusCode.UNAUTHENTICATED
    target = "127.0.0.1:%d" % status_server.port
    with pytest.raises(safeeval.Unauthenticated):
        safeeval.SafeEval(target=target, token="s3cret")
    assert status_server.metadata[-1].get("authorization") == "Bearer s3cret"
    monkeypatch.setenv("SAFEEVAL_TOKEN", "from-env")
    with pytest.raises(safeeval.PermissionDenied):  # Unauthenticated is one
        safeeval.SafeEval(target=target)
    assert status_server.metadata[-1].get("authorization") == "Bearer from-env"


# -- cleanup ----------------------------------------------------------------

def test_context_manager_destroys_on_exception(daemon):
    with pytest.raises(ZeroDivisionError):
        with safeeval.SafeEval(version=VERSION, modules=["numpy"]) as s:
            assert s.id in daemon.sandbox_ids()
            1 / 0
    assert s.closed and s.id not in daemon.sandbox_ids()


def test_garbage_collection_destroys(daemon):
    s = safeeval.SafeEval(version=VERSION, modules=["numpy"])
    sid = s.id
    assert sid in daemon.sandbox_ids()
    del s
    gc.collect()
    assert sid not in daemon.sandbox_ids()


# -- issue 11: streaming, files back, server info, create progress -----------

STREAM_CODE = textwrap.dedent("""\
    import sys, time
    for i in range(10):
        print("out %d" % i, flush=True)
        print("err %d" % i, file=sys.stderr, flush=True)
        time.sleep(0.3)
    """)


def test_stream_order_totals_and_first_chunk_early(sf, needs):
    needs("EvalStream")
    t0 = time.monotonic()
    s = sf.stream(STREAM_CODE)
    chunks, first = [], None
    for c in s:
        if first is None:
            first = time.monotonic() - t0
        chunks.append(c)
    total = time.monotonic() - t0
    assert {c.stream for c in chunks} == {"stdout", "stderr"}
    out = "".join(c.data for c in chunks if c.stream == "stdout")
    err = "".join(c.data for c in chunks if c.stream == "stderr")
    assert out == "".join("out %d\n" % i for i in range(10))
    assert err == "".join("err %d\n" % i for i in range(10))
    r = s.result
    assert r.reason is safeeval.Reason.EXITED and r.returncode == 0
    assert (r.stdout, r.stderr) == (out, err)
    assert (r.stdout_bytes, r.stderr_bytes) == (len(out), len(err))
    assert total >= 2.7
    assert first < total - 1.5, "first chunk at %.2f s of a %.2f s run" % (first, total)
    print("stream: first chunk after %.3f s of %.3f s" % (first, total))


def test_stream_bytes_file_and_early_exit(sf, needs):
    needs("ExecuteFileStream")
    s = sf.stream_file("s.py", content=b'import sys; sys.stdout.buffer.write(b"\\xff")',
                       text=False)
    assert list(s) == [safeeval.Chunk("stdout", b"\xff")]
    assert s.result.stdout == b"\xff" and s.result.args == ["python3", "s.py"]
    t0 = time.monotonic()
    for c in sf.stream('import time\nwhile True: print("x", flush=True); time.sleep(0.1)'):
        break  # leaving the loop cancels the run
    r = sf.eval('print("after")')
    assert r.stdout == "after\n" and time.monotonic() - t0 < 60


def test_stream_text_split_across_chunks_comes_out_whole(sf, needs):
    # 150,000 bytes of 3-byte characters: more than two 64 KiB chunks, whose
    # boundaries cannot all fall between characters.
    needs("EvalStream")
    s = sf.stream('import sys; sys.stdout.write("\u20ac" * 50000)')
    chunks = list(s)
    assert len(chunks) >= 2
    assert "".join(c.data for c in chunks) == "\u20ac" * 50000
    assert s.result.stdout_bytes == 150000 and s.result.stdout == "\u20ac" * 50000


def test_stream_unimplemented_is_an_error(sf, daemon):
    if not daemon.unimplemented("EvalStream"):
        pytest.skip("the server streams: nothing to refuse")
    with pytest.raises(safeeval.Unimplemented):
        list(sf.stream("pass"))


def test_collect_files_back(sf, needs):
    needs("GetServerInfo", ", so `collect` is ignored by this server")
    code = textwrap.dedent("""\
        import os
        os.makedirs("out/deep/er", exist_ok=True)
        open("out/bin.dat", "wb").write(bytes(range(256)))
        open("out/deep/er/n.csv", "w").write("a,b\\n1,2\\n")
        open("out/skip.txt", "w").write("not asked for")
        os.symlink("/etc/passwd", "out/passwd.csv")
        os.symlink("/etc", "out/etc")
        """)
    r = sf.eval(code, collect=["out/bin.dat", "out/deep/*/*.csv", "out/*.csv", "out/etc"])
    assert r.returncode == 0, r.stderr
    assert r.files == {"out/bin.dat": bytes(range(256)), "out/deep/er/n.csv": b"a,b\n1,2\n"}
    assert list(r.files) == sorted(r.files)
    assert not r.files_truncated
    assert not any(b"root:" in v for v in r.files.values())


def test_collect_over_the_caps(sf, needs):
    needs("GetServerInfo", ", so `collect` is ignored by this server")
    code = 'for i in range(5): open("f%d" % i, "wb").write(b"x" * 1000)'
    r = sf.eval(code, collect=["f*"], limits=safeeval.Limits(max_collect_files=2))
    assert len(r.files) == 2 and r.files_truncated
    r = sf.eval(code, collect=["f*"], limits=safeeval.Limits(max_collect_bytes=2500))
    assert sum(map(len, r.files.values())) <= 2500 and r.files_truncated
    r = sf.execute_file("w.py", content=code.encode(), collect=["f1", "f3"])
    assert r.files == {"f1": b"x" * 1000, "f3": b"x" * 1000} and not r.files_truncated


def test_server_info(daemon, needs):
    if daemon.unimplemented("GetServerInfo"):
        with pytest.raises(safeeval.Unimplemented):
            safeeval.server_info()
    needs("GetServerInfo")
    i = safeeval.server_info()
    assert i.api_version == "safeeval.v1" and i.version
    assert {"3.11", "3.13"} <= set(i.python_versions)
    for p in i.pythons:
        assert p.full_version == "" or p.full_version.startswith(p.version + ".")
        assert p.base_image
    assert i.default_python_version in i.python_versions
    assert 0 < i.default_limits.wall_time <= i.max_limits.wall_time
    assert 0 < i.default_limits.memory <= i.max_limits.memory
    assert i.max_concurrent_runs >= 1 and i.max_sandboxes >= 1


def test_create_with_progress(daemon, needs):
    needs("CreateSandboxStream")
    lines = []
    with safeeval.SafeEval(version="3.13", progress=lines.append) as s:
        assert s.sandbox.python_version.startswith("3.13.")
        assert s.eval("import sys; print(sys.version_info[:2])").stdout == "(3, 13)\n"
    assert all(isinstance(x, str) for x in lines)
    assert s.id not in daemon.sandbox_ids()
