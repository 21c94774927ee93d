"""SafeEval: one sandbox on a safeeval server, with the old PythonSafeEval
library's API (eval / execute_file returning a CompletedProcess)."""
import codecs
import logging
import os
import weakref
from typing import (Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence,
                    Tuple, Union)

import grpc

from ._errors import (FailedPrecondition, Internal, InvalidArgument, SafeEvalError,
                      SandboxNotFound, Unimplemented, VersionNotAvailable, error_from_rpc)
from ._types import (UINT32_MAX, Chunk, Limits, Result, SandboxInfo, ServerInfo, _count,
                     reason_from_pb, seconds_to_ms)
from .v1 import sandbox_pb2 as pb
from .v1 import sandbox_pb2_grpc as pb_grpc

log = logging.getLogger("safeeval")

#: Where a server listens when neither `target` nor $SAFEEVAL_TARGET says.
DEFAULT_TARGET = "unix:/run/safeeval/safeevald.sock"
#: Largest reply accepted (stdout + stderr + collected files of one run).
MAX_RECEIVE_BYTES = 256 * 1024 * 1024
#: Seconds a create may take by default (a cold image build runs pip).
CREATE_TIMEOUT_S = 900.0
#: Seconds a destroy, get, or server_info may take.
SHORT_TIMEOUT_S = 30.0

FileContent = Union[bytes, str]
Files = Union[Mapping[str, FileContent], Iterable[Tuple[str, FileContent]]]
PathLike = Union[str, "os.PathLike[str]"]


def _channel(target: Optional[str], credentials: Optional[grpc.ChannelCredentials],
             options: Sequence[Tuple[str, object]]) -> grpc.Channel:
    t = target or os.environ.get("SAFEEVAL_TARGET") or DEFAULT_TARGET
    opts = [("grpc.max_receive_message_length", MAX_RECEIVE_BYTES),
            ("grpc.max_send_message_length", -1),
            # Our calls are not idempotent: a retried create could make two sandboxes.
            ("grpc.enable_retries", 0)] + list(options)
    if credentials is not None:
        return grpc.secure_channel(t, credentials, options=opts)
    return grpc.insecure_channel(t, options=opts)


def _metadata(token: Optional[str]) -> Tuple[Tuple[str, str], ...]:
    t = token if token is not None else os.environ.get("SAFEEVAL_TOKEN")
    return (("authorization", "Bearer " + t),) if t else ()


def _call(fn, request, timeout: Optional[float], metadata):
    try:
        return fn(request, timeout=timeout, metadata=metadata)
    except grpc.RpcError as e:
        raise error_from_rpc(e) from None


def server_info(target: Optional[str] = None, token: Optional[str] = None, *,
                credentials: Optional[grpc.ChannelCredentials] = None,
                timeout: Optional[float] = SHORT_TIMEOUT_S) -> ServerInfo:
    """What the server offers: its version, the Python versions it can create
    (ServerInfo.pythons), its default and largest limits.

    target and token default as in SafeEval. Raises Unimplemented on a server
    older than GetServerInfo.
    """
    ch = _channel(target, credentials, ())
    try:
        stub = pb_grpc.SandboxServiceStub(ch)
        r = _call(stub.GetServerInfo, pb.GetServerInfoRequest(), timeout, _metadata(token))
        return ServerInfo.from_pb(r.info)
    finally:
        ch.close()


def list_sandboxes(target: Optional[str] = None, token: Optional[str] = None, *,
                   credentials: Optional[grpc.ChannelCredentials] = None,
                   timeout: Optional[float] = SHORT_TIMEOUT_S) -> List[SandboxInfo]:
    """Every live sandbox on the server, oldest first (target and token as in
    SafeEval)."""
    ch = _channel(target, credentials, ())
    try:
        stub = pb_grpc.SandboxServiceStub(ch)
        r = _call(stub.ListSandboxes, pb.ListSandboxesRequest(), timeout, _metadata(token))
        return [SandboxInfo.from_pb(pb, s) for s in r.sandboxes]
    finally:
        ch.close()


def _destroy_quietly(channel: grpc.Channel, sandbox_id: str, metadata) -> None:
    # The finalizer: at garbage collection or interpreter exit. It must not
    # raise, and must not hold a reference to the SafeEval.
    try:
        pb_grpc.SandboxServiceStub(channel).DestroySandbox(
            pb.DestroySandboxRequest(sandbox_id=sandbox_id), timeout=SHORT_TIMEOUT_S,
            metadata=metadata)
    except grpc.RpcError as e:
        if e.code() != grpc.StatusCode.NOT_FOUND:
            log.warning("safeeval: destroying sandbox %s at exit failed: %s: %s", sandbox_id,
                        e.code().name, e.details())
    except Exception as e:  # interpreter teardown: report, never raise
        log.warning("safeeval: destroying sandbox %s at exit failed: %r", sandbox_id, e)
    finally:
        channel.close()


def _files_pb(files: Optional[Files]) -> List[object]:
    if files is None:
        return []
    items = files.items() if isinstance(files, Mapping) else files
    out = []
    for path, content in items:
        if not isinstance(path, str):
            raise InvalidArgument("files: a path must be a str, got %r" % (path,))
        if isinstance(content, str):
            content = content.encode("utf-8")
        elif not isinstance(content, (bytes, bytearray, memoryview)):
            raise InvalidArgument("files[%r]: content must be bytes or str" % path)
        out.append(pb.File(path=path, content=bytes(content)))
    return out


def _bytes_arg(v: Optional[Union[bytes, str]], what: str) -> bytes:
    if v is None:
        return b""
    if isinstance(v, str):
        return v.encode("utf-8")
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v)
    raise InvalidArgument("%s must be bytes or str, got %s" % (what, type(v).__name__))


def _str_list(v: Optional[Iterable[str]], what: str) -> List[str]:
    if v is None:
        return []
    if isinstance(v, (str, bytes)):
        raise InvalidArgument("%s must be a list of str, not a single string" % what)
    out = list(v)
    for s in out:
        if not isinstance(s, str):
            raise InvalidArgument("%s: %r is not a str" % (what, s))
    return out


class SafeEval:
    """A sandbox on a safeeval server: a Python version plus pip modules.

    The constructor creates it (building or reusing its image); it is
    destroyed by close(), at the end of a `with` block, when the object is
    garbage-collected, or at interpreter exit, whichever comes first.

        with safeeval.SafeEval(version="3.11", modules=["numpy"]) as sf:
            print(sf.eval('print("Hello World")').stdout)

    Args:
        version: "3.11" or "3.11.4"; None = the server's default. A version
            the server lacks raises VersionNotAvailable naming the ones it
            has; it is never swapped for another.
        modules: pip requirements ("numpy", "requests==2.31.0").
        target: the server: "unix:/path" or "host:port"; default
            $SAFEEVAL_TARGET, then unix:/run/safeeval/safeevald.sock.
        token: a bearer token sent with every call; default $SAFEEVAL_TOKEN.
        credentials: grpc.ssl_channel_credentials(...) for TLS / mTLS.
        limits: the sandbox's default limits for every run (Limits).
        idle_timeout: seconds unused before the server reaps it (0 = default).
        labels: your own tags, returned by SafeEval.info().
        max_concurrent_runs: runs at once, each in its own worker (0 = default).
        preload: import names a warm interpreter imports once ("numpy").
        runner: "fresh", "zygote" or None (the server's choice).
        progress: called with each line of the image build (pip's output)
            while the sandbox is created; a server without CreateSandboxStream
            creates it without progress lines.
        create_timeout: seconds the create may take.
        timeout: default seconds any run call may take in all, queue wait
            included (None = no client deadline: the run's own wall-time
            limit still ends it).
        channel_options: extra grpc channel options.
    """

    def __init__(self, version: Optional[str] = None, modules: Optional[Sequence[str]] = None,
                 *, target: Optional[str] = None, token: Optional[str] = None,
                 credentials: Optional[grpc.ChannelCredentials] = None,
                 limits: Optional[Limits] = None, idle_timeout: int = 0,
                 labels: Optional[Mapping[str, str]] = None, max_concurrent_runs: int = 0,
                 preload: Optional[Sequence[str]] = None, runner: Optional[str] = None,
                 progress: Optional[Callable[[str], None]] = None,
                 create_timeout: Optional[float] = CREATE_TIMEOUT_S,
                 timeout: Optional[float] = None,
                 channel_options: Sequence[Tuple[str, object]] = ()) -> None:
        self._closed = True
        self._finalizer = None
        if version is not None and not isinstance(version, str):
            raise InvalidArgument("version must be a str like \"3.11\", got %r" % (version,))
        if runner not in (None, "fresh", "zygote"):
            raise InvalidArgument("runner must be \"fresh\", \"zygote\" or None, got %r"
                                  % (runner,))
        req = pb.CreateSandboxRequest(
            python_version=version or "", modules=_str_list(modules, "modules"),
            idle_timeout_s=_count(idle_timeout, "idle_timeout", UINT32_MAX),
            labels=dict(labels or {}),
            max_concurrent_runs=_count(max_concurrent_runs, "max_concurrent_runs", UINT32_MAX),
            preload=_str_list(preload, "preload"),
            runner={None: pb.RUNNER_DEFAULT, "fresh": pb.RUNNER_FRESH,
                    "zygote": pb.RUNNER_ZYGOTE}[runner])
        if limits is not None:
            req.limits.CopyFrom(limits.to_pb(pb))
        self._timeout = timeout
        self._metadata = _metadata(token)
        self._channel = _channel(target, credentials, channel_options)
        self._stub = pb_grpc.SandboxServiceStub(self._channel)
        try:
            sb = self._create(req, progress, create_timeout)
        except FailedPrecondition as e:
            err = self._version_error(e, version)
            self._channel.close()
            raise err from None
        except BaseException:
            self._channel.close()
            raise
        self.id: str = sb.id
        self.sandbox: SandboxInfo = SandboxInfo.from_pb(pb, sb)
        self._closed = False
        self._finalizer = weakref.finalize(self, _destroy_quietly, self._channel, self.id,
                                           self._metadata)

    def _create(self, req, progress, timeout):
        if progress is None:
            return _call(self._stub.CreateSandbox, req, timeout, self._metadata).sandbox
        call = self._stub.CreateSandboxStream(req, timeout=timeout, metadata=self._metadata)
        try:
            for ev in call:
                which = ev.WhichOneof("event")
                if which == "progress":
                    progress(ev.progress)
                elif which == "sandbox":
                    return ev.sandbox
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.UNIMPLEMENTED:  # an older server
                return _call(self._stub.CreateSandbox, req, timeout, self._metadata).sandbox
            raise error_from_rpc(e) from None
        finally:
            call.cancel()
        raise Internal("CreateSandboxStream ended without a sandbox")

    def _version_error(self, e: FailedPrecondition, version: Optional[str]) -> SafeEvalError:
        """A create's FAILED_PRECONDITION, as VersionNotAvailable when the
        server has no such Python (asked through GetServerInfo)."""
        if not version:
            return e
        try:
            info = ServerInfo.from_pb(_call(self._stub.GetServerInfo, pb.GetServerInfoRequest(),
                                            SHORT_TIMEOUT_S, self._metadata).info)
        except Unimplemented:
            return VersionNotAvailable(
                "Python %s: %s (this server cannot list its versions: it predates "
                "GetServerInfo)" % (version, e.details), version, None)
        except SafeEvalError:
            return e
        have = info.python_versions
        for p in info.pythons:
            if version == p.version or (p.full_version and version == p.full_version):
                return e  # the version exists: the failure is something else (pip, ...)
        return VersionNotAvailable(
            "Python %s is not available on this server; it offers %s (server: %s)"
            % (version, ", ".join(have) or "none", e.details), version, have)

    # -- lifecycle -----------------------------------------------------------

    def close(self) -> None:
        """Destroys the sandbox (idempotent). A sandbox already gone (reaped,
        destroyed elsewhere) is not an error."""
        if self._closed:
            return
        self._closed = True
        if self._finalizer is not None:
            self._finalizer.detach()
        try:
            _call(self._stub.DestroySandbox, pb.DestroySandboxRequest(sandbox_id=self.id),
                  SHORT_TIMEOUT_S, self._metadata)
        except SandboxNotFound:
            pass
        finally:
            self._channel.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> "SafeEval":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return "SafeEval(id=%r, python=%s%s)" % (getattr(self, "id", None),
                                                 getattr(getattr(self, "sandbox", None),
                                                         "python_version", "?"),
                                                 ", closed" if self._closed else "")

    def info(self) -> SandboxInfo:
        """The sandbox as the server sees it now (workers, last use, ...)."""
        self._check_open()
        r = _call(self._stub.GetSandbox, pb.GetSandboxRequest(sandbox_id=self.id),
                  SHORT_TIMEOUT_S, self._metadata)
        return SandboxInfo.from_pb(pb, r.sandbox)

    def _check_open(self) -> None:
        if self._closed:
            raise SandboxNotFound("this SafeEval is closed (sandbox %s destroyed)"
                                  % getattr(self, "id", "?"))

    # -- runs ----------------------------------------------------------------

    def _run_fields(self, time_limit, stdin, args, env, files, collect, limits):
        lim = (limits or Limits()).to_pb(pb)
        if time_limit:
            lim.wall_time_ms = seconds_to_ms(time_limit, "time_limit")
        elif time_limit != 0:
            raise InvalidArgument("time_limit must be a number of seconds >= 0")
        if env is not None and not isinstance(env, Mapping):
            raise InvalidArgument("env must be a mapping of str to str")
        for k, v in (env or {}).items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise InvalidArgument("env: %r=%r: keys and values must be str" % (k, v))
        return dict(stdin=_bytes_arg(stdin, "stdin"), args=_str_list(args, "args"),
                    env=dict(env or {}), limits=lim, files=_files_pb(files),
                    collect=_str_list(collect, "collect"))

    def _eval_request(self, code, fields):
        self._check_open()
        if not isinstance(code, str):
            raise InvalidArgument("code must be a str, got %s" % type(code).__name__)
        return pb.EvalRequest(sandbox_id=self.id, code=code, **fields)

    def _file_request(self, filename, content, fields):
        self._check_open()
        name = os.path.basename(os.fspath(filename))
        if content is None:
            try:
                with open(filename, "rb") as f:
                    content = f.read()
            except OSError as e:
                raise InvalidArgument("execute_file: cannot read %s: %s"
                                      % (os.fspath(filename), e.strerror)) from None
        return name, pb.ExecuteFileRequest(sandbox_id=self.id, filename=name,
                                           content=_bytes_arg(content, "content"), **fields)

    def eval(self, code: str, time_limit: float = 0, stdin: Optional[Union[bytes, str]] = None,
             args: Sequence[str] = (), env: Optional[Mapping[str, str]] = None,
             files: Optional[Files] = None, collect: Optional[Sequence[str]] = None,
             text: bool = True, *, limits: Optional[Limits] = None,
             timeout: Optional[float] = None) -> Result:
        """Runs a code string as the script __main__ in a fresh jail.

        Args:
            code: Python source.
            time_limit: wall-time limit in seconds; 0 = the sandbox's.
            stdin: the run's standard input (str is encoded as UTF-8).
            args: sys.argv[1:].
            env: extra environment variables.
            files: {path: bytes or str} placed in the working directory first.
            collect: paths or globs under the working directory whose files
                come back in Result.files (regular files only, symlinks not
                followed, capped by max_collect_files / max_collect_bytes).
            text: stdout/stderr as str (UTF-8, bad bytes replaced); False = bytes.
            limits: more limits for this run (may lower, never raise, the
                sandbox's); time_limit, when given, sets limits.wall_time.
            timeout: seconds the call may take in all (default: SafeEval's).

        Returns a Result; a hit limit is Result.reason, not an exception.
        Raises a SafeEvalError subclass when the service refuses or fails.
        """
        req = self._eval_request(code, self._run_fields(time_limit, stdin, args, env, files,
                                                        collect, limits))
        r = _call(self._stub.Eval, req, self._timeout_for(timeout), self._metadata)
        return _result(("python3", "-c", code) + tuple(req.args), r.result, text)

    def execute_file(self, filename: PathLike, time_limit: float = 0,
                     stdin: Optional[Union[bytes, str]] = None, args: Sequence[str] = (),
                     env: Optional[Mapping[str, str]] = None, files: Optional[Files] = None,
                     collect: Optional[Sequence[str]] = None, text: bool = True, *,
                     content: Optional[Union[bytes, str]] = None,
                     limits: Optional[Limits] = None,
                     timeout: Optional[float] = None) -> Result:
        """Runs a local file's content as a script under its base name.

        filename: the local file (str or Path); with `content`, only its base
        name is used and nothing is read. The other arguments are eval's.
        """
        name, req = self._file_request(filename, content,
                                       self._run_fields(time_limit, stdin, args, env, files,
                                                        collect, limits))
        r = _call(self._stub.ExecuteFile, req, self._timeout_for(timeout), self._metadata)
        return _result(("python3", name) + tuple(req.args), r.result, text)

    def stream(self, code: str, time_limit: float = 0,
               stdin: Optional[Union[bytes, str]] = None, args: Sequence[str] = (),
               env: Optional[Mapping[str, str]] = None, files: Optional[Files] = None,
               collect: Optional[Sequence[str]] = None, text: bool = True, *,
               limits: Optional[Limits] = None,
               timeout: Optional[float] = None) -> "RunStream":
        """eval(), with the output as it is written:

            s = sf.stream(code)
            for chunk in s:            # Chunk(stream="stdout"|"stderr", data)
                print(chunk.data, end="")
            s.result                   # the Result (stdout/stderr: all the chunks)

        Leaving the loop early cancels the run. Raises Unimplemented (on
        iteration) when the server has no EvalStream.
        """
        req = self._eval_request(code, self._run_fields(time_limit, stdin, args, env, files,
                                                        collect, limits))
        return RunStream(lambda: self._stub.EvalStream(req, timeout=self._timeout_for(timeout),
                                                       metadata=self._metadata),
                         ("python3", "-c", code) + tuple(req.args), text)

    def stream_file(self, filename: PathLike, time_limit: float = 0,
                    stdin: Optional[Union[bytes, str]] = None, args: Sequence[str] = (),
                    env: Optional[Mapping[str, str]] = None, files: Optional[Files] = None,
                    collect: Optional[Sequence[str]] = None, text: bool = True, *,
                    content: Optional[Union[bytes, str]] = None,
                    limits: Optional[Limits] = None,
                    timeout: Optional[float] = None) -> "RunStream":
        """execute_file(), streamed like stream()."""
        name, req = self._file_request(filename, content,
                                       self._run_fields(time_limit, stdin, args, env, files,
                                                        collect, limits))
        return RunStream(lambda: self._stub.ExecuteFileStream(
            req, timeout=self._timeout_for(timeout), metadata=self._metadata),
            ("python3", name) + tuple(req.args), text)

    def _timeout_for(self, timeout: Optional[float]) -> Optional[float]:
        return timeout if timeout is not None else self._timeout


def _decode(b: bytes, text: bool):
    return b.decode("utf-8", "replace") if text else b


def _result(args, r, text: bool, stdout: Optional[bytes] = None,
            stderr: Optional[bytes] = None) -> Result:
    return Result(args, r.exit_code,
                  _decode(r.stdout if stdout is None else stdout, text),
                  _decode(r.stderr if stderr is None else stderr, text),
                  reason=reason_from_pb(r.reason), signal=r.signal,
                  stdout_truncated=r.stdout_truncated, stderr_truncated=r.stderr_truncated,
                  stdout_bytes=r.stdout_bytes, stderr_bytes=r.stderr_bytes,
                  wall_time=r.wall_time_us / 1e6, cpu_time=r.cpu_time_us / 1e6,
                  max_rss=r.max_rss_bytes, files={f.path: f.content for f in r.files},
                  files_truncated=r.files_truncated)


class RunStream:
    """The output of a streamed run, as an iterable of Chunk; after the loop,
    .result is the run's Result (its stdout and stderr are all the chunks
    joined). Text is decoded incrementally, so a character split across two
    chunks comes out whole."""

    def __init__(self, start: Callable[[], Any], args: Tuple[str, ...], text: bool) -> None:
        self._start = start
        self._args = args
        self._text = text
        self._started = False
        self.result: Optional[Result] = None

    def __iter__(self) -> Iterator[Chunk]:
        if self._started:
            raise RuntimeError("a RunStream can be iterated once")
        self._started = True
        return self._events()

    def _events(self) -> Iterator[Chunk]:
        call = self._start()
        out: Dict[str, List[bytes]] = {"stdout": [], "stderr": []}
        dec = {k: codecs.getincrementaldecoder("utf-8")("replace") for k in out}
        try:
            for ev in call:
                which = ev.WhichOneof("event")
                if which in ("stdout", "stderr"):
                    data = getattr(ev, which)
                    out[which].append(data)
                    if self._text:
                        s = dec[which].decode(data)
                        if s:
                            yield Chunk(which, s)
                    elif data:
                        yield Chunk(which, data)
                elif which == "result":
                    if self._text:
                        for k in out:
                            tail = dec[k].decode(b"", final=True)
                            if tail:
                                yield Chunk(k, tail)
                    self.result = _result(self._args, ev.result, self._text,
                                          b"".join(out["stdout"]), b"".join(out["stderr"]))
                    return
        except grpc.RpcError as e:
            raise error_from_rpc(e) from None
        finally:
            call.cancel()  # no-op when the call ended; ends the run when the loop was left
        raise Internal("the run's stream ended without a result")
