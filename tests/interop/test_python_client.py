#!/usr/bin/python3
"""Interop: a Python grpcio client, with stubs generated from the public proto
at test time, runs the whole sandbox cycle against the real daemon and checks
every field it reads.

Cycle (cycle.json, shared with node/client.js): create (3.11 + numpy, 2 runs
at once) -> eval print("Hello World") -> ExecuteFile (numpy script + args +
stdin + env + a data file) -> wall-time limit hit -> get -> list -> destroy ->
get = NOT_FOUND. At the end the engine holds no container of the daemon's
instance (asked by label).
"""
import json
import os
import re
import sys
import time

import grpc
from google.protobuf import message, text_format

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import sandbox_engine  # noqa: E402  (tests/integration, on the path through common)

FIXTURE = json.load(open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "cycle.json")))
ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{7,63}$")
CREATE_TIMEOUT_S = 900  # a cold image build with pip
RUN_TIMEOUT_S = 60

failures = []


def check(cond, what):
    if cond:
        print("ok   " + what)
    else:
        print("FAIL " + what)
        failures.append(what)
    return cond


def show(v):
    if isinstance(v, message.Message):
        return "{" + text_format.MessageToString(v, as_one_line=True) + "}"
    return repr(v)


def check_eq(got, want, what):
    return check(got == want, "%s: got %s, want %s" % (what, show(got), show(want)))


def check_sandbox(pb, sb, want_id, t_before_ms, t_after_ms, where):
    fx = FIXTURE["create"]
    check(ID_RE.match(sb.id) is not None, "%s: id %r is opaque [A-Za-z0-9_.-]{8,64}" % (where, sb.id))
    if want_id is not None:
        check_eq(sb.id, want_id, where + ": id")
    check(sb.python_version.startswith(fx["python_version"] + "."),
          "%s: python_version %r starts with %s." % (where, sb.python_version,
                                                    fx["python_version"]))
    check(re.match(r"^3\.11\.\d+$", sb.python_version) is not None,
          "%s: python_version %r is the interpreter's X.Y.Z" % (where, sb.python_version))
    check_eq(list(sb.modules), fx["modules"], where + ": modules")
    lim = sb.limits
    for name in ("wall_time_ms", "cpu_time_ms", "memory_bytes", "max_processes",
                 "max_output_bytes", "max_file_bytes"):
        check(getattr(lim, name) > 0, "%s: effective limits.%s = %d > 0"
              % (where, name, getattr(lim, name)))
    check(sb.image.startswith("safeeval/sandbox:") and len(sb.image) > len("safeeval/sandbox:"),
          "%s: image %r is safeeval/sandbox:<hash>" % (where, sb.image))
    check(t_before_ms - 2000 <= sb.created_at_ms <= t_after_ms + 2000,
          "%s: created_at_ms %d within the create call [%d, %d] (+-2 s)"
          % (where, sb.created_at_ms, t_before_ms, t_after_ms))
    check(sb.created_at_ms <= sb.last_used_at_ms <= int(time.time() * 1000) + 2000,
          "%s: created_at_ms %d <= last_used_at_ms %d <= now"
          % (where, sb.created_at_ms, sb.last_used_at_ms))
    check_eq(dict(sb.labels), fx["labels"], where + ": labels echoed")
    check(sb.idle_timeout_s > 0, "%s: effective idle_timeout_s %d > 0" % (where, sb.idle_timeout_s))
    check_eq(sb.max_concurrent_runs, fx["max_concurrent_runs"], where + ": max_concurrent_runs")
    if want_id is None:  # a new sandbox starts with one worker
        check_eq(sb.workers, 1, where + ": workers")
    else:
        check(1 <= sb.workers <= sb.max_concurrent_runs, "%s: workers %d in [1, %d]"
              % (where, sb.workers, sb.max_concurrent_runs))


def check_times(res, where, max_wall_us=30_000_000):
    check(0 < res.wall_time_us <= max_wall_us,
          "%s: wall_time_us %d in (0, %d]" % (where, res.wall_time_us, max_wall_us))
    # 2 cores here; the jail's processes cannot use more CPU than that.
    check(0 < res.cpu_time_us <= 2 * res.wall_time_us + 50_000,
          "%s: cpu_time_us %d in (0, 2*wall+50ms]" % (where, res.cpu_time_us))
    check(1 << 20 < res.max_rss_bytes < 8 << 30,
          "%s: max_rss_bytes %d in (1 MiB, 8 GiB)" % (where, res.max_rss_bytes))


def check_output(res, stdout, stderr, where):
    check_eq(res.stdout, stdout, where + ": stdout")
    check_eq(res.stderr, stderr, where + ": stderr")
    check_eq(res.stdout_truncated, False, where + ": stdout_truncated")
    check_eq(res.stderr_truncated, False, where + ": stderr_truncated")
    check_eq(res.stdout_bytes, len(stdout), where + ": stdout_bytes")
    check_eq(res.stderr_bytes, len(stderr), where + ": stderr_bytes")


def expect_code(fn, code, what):
    try:
        fn()
    except grpc.RpcError as e:
        return check_eq(e.code(), code, what)
    return check(False, "%s: succeeded, want %s" % (what, code))


def run_cycle(pb, pbg, stub):
    fx = FIXTURE

    # Create
    req = pb.CreateSandboxRequest(python_version=fx["create"]["python_version"],
                                  modules=fx["create"]["modules"], labels=fx["create"]["labels"],
                                  max_concurrent_runs=fx["create"]["max_concurrent_runs"])
    t0 = int(time.time() * 1000)
    sb = stub.CreateSandbox(req, timeout=CREATE_TIMEOUT_S).sandbox
    t1 = int(time.time() * 1000)
    print("created %s (%s, %s) in %d ms" % (sb.id, sb.python_version, sb.image, t1 - t0))
    check_sandbox(pb, sb, None, t0, t1, "create")
    sid = sb.id
    created = sb

    # Eval
    res = stub.Eval(pb.EvalRequest(sandbox_id=sid, code=fx["eval"]["code"]),
                    timeout=RUN_TIMEOUT_S).result
    check_eq(res.reason, pb.EXIT_REASON_EXITED, "eval: reason")
    check_eq(res.exit_code, 0, "eval: exit_code")
    check_eq(res.signal, 0, "eval: signal")
    check_output(res, fx["eval"]["stdout"].encode(), b"", "eval")
    check_times(res, "eval")

    # ExecuteFile
    f = fx["file"]
    freq = pb.ExecuteFileRequest(
        sandbox_id=sid, filename=f["filename"], content=f["content"].encode(),
        stdin=f["stdin"].encode(), args=f["args"], env=f["env"],
        files=[pb.File(path=x["path"], content=x["content"].encode()) for x in f["files"]])
    res = stub.ExecuteFile(freq, timeout=RUN_TIMEOUT_S).result
    if res.stderr and res.exit_code != f["exit_code"]:
        print("execute-file stderr:\n" + res.stderr.decode(errors="replace"))
    check_eq(res.reason, pb.EXIT_REASON_EXITED, "execute-file: reason")
    check_eq(res.exit_code, f["exit_code"], "execute-file: exit_code")
    check_eq(res.signal, 0, "execute-file: signal")
    check_output(res, f["stdout"].encode(), f["stderr"].encode(), "execute-file")
    check_times(res, "execute-file")

    # A limit hit: endless loop, 300 ms of wall time.
    lf = fx["limit"]
    res = stub.Eval(pb.EvalRequest(sandbox_id=sid, code=lf["code"],
                                   limits=pb.Limits(wall_time_ms=lf["wall_time_ms"])),
                    timeout=RUN_TIMEOUT_S).result
    check_eq(res.reason, pb.EXIT_REASON_WALL_TIMEOUT, "limit: reason")
    check(res.signal in (9, 15), "limit: signal %d is SIGKILL or SIGTERM" % res.signal)
    check_eq(res.exit_code, -res.signal, "limit: exit_code = -signal")
    check_output(res, b"", b"", "limit")
    check(lf["min_wall_us"] <= res.wall_time_us <= lf["max_wall_us"],
          "limit: wall_time_us %d in [%d, %d]" % (res.wall_time_us, lf["min_wall_us"],
                                                  lf["max_wall_us"]))
    check(lf["min_cpu_us"] <= res.cpu_time_us <= 2 * res.wall_time_us + 50_000,
          "limit: cpu_time_us %d in [%d, 2*wall+50ms] (it ran Python)"
          % (res.cpu_time_us, lf["min_cpu_us"]))
    check(1 << 20 < res.max_rss_bytes < 8 << 30,
          "limit: max_rss_bytes %d in (1 MiB, 8 GiB)" % res.max_rss_bytes)

    # Get
    sb = stub.GetSandbox(pb.GetSandboxRequest(sandbox_id=sid), timeout=RUN_TIMEOUT_S).sandbox
    check_sandbox(pb, sb, sid, t0, t1, "get")
    check_eq(sb.created_at_ms, created.created_at_ms, "get: created_at_ms unchanged")
    check_eq(sb.image, created.image, "get: image unchanged")
    check_eq(sb.python_version, created.python_version, "get: python_version unchanged")
    check_eq(sb.limits, created.limits, "get: limits unchanged")
    check(sb.last_used_at_ms >= created.last_used_at_ms and sb.last_used_at_ms >= t1 - 2000,
          "get: last_used_at_ms %d moved on with the runs (create: %d)"
          % (sb.last_used_at_ms, created.last_used_at_ms))

    # List
    lst = stub.ListSandboxes(pb.ListSandboxesRequest(), timeout=RUN_TIMEOUT_S).sandboxes
    mine = [s for s in lst if s.id == sid]
    check_eq(len(mine), 1, "list: contains %s once" % sid)
    if mine:
        check_eq(mine[0], sb, "list: entry equals get")

    # Errors the contract promises.
    expect_code(lambda: stub.Eval(pb.EvalRequest(sandbox_id=sid, code=""), timeout=RUN_TIMEOUT_S),
                grpc.StatusCode.INVALID_ARGUMENT, "eval with empty code")

    # Destroy: the sandbox and its worker containers (asked of the engine).
    stub.DestroySandbox(pb.DestroySandboxRequest(sandbox_id=sid), timeout=RUN_TIMEOUT_S)
    check_eq([c["Id"][:12] for c in sandbox_engine.workers_of(sid)], [],
             "destroy: worker containers left")
    expect_code(lambda: stub.GetSandbox(pb.GetSandboxRequest(sandbox_id=sid),
                                        timeout=RUN_TIMEOUT_S),
                grpc.StatusCode.NOT_FOUND, "get after destroy")
    expect_code(lambda: stub.Eval(pb.EvalRequest(sandbox_id=sid, code="print(1)"),
                                  timeout=RUN_TIMEOUT_S),
                grpc.StatusCode.NOT_FOUND, "eval after destroy")
    lst = stub.ListSandboxes(pb.ListSandboxesRequest(), timeout=RUN_TIMEOUT_S).sandboxes
    check(all(s.id != sid for s in lst), "list after destroy: %s gone" % sid)


def main():
    pb, pbg = common.stubs()
    with common.daemon() as d:
        path = common.socket_path(d)
        with grpc.insecure_channel("unix:" + path) as ch:
            grpc.channel_ready_future(ch).result(timeout=30)
            try:
                run_cycle(pb, pbg, pbg.SandboxServiceStub(ch))
            except BaseException:
                print("---- daemon log (tail) ----\n" + common.log_tail(d))
                raise
            if failures:
                print("---- daemon log (tail) ----\n" + common.log_tail(d))
    try:
        sandbox_engine.assert_nothing_left(common.harness.INSTANCE)
        check(True, "nothing of instance %s left in the engine" % common.harness.INSTANCE)
    except AssertionError as e:
        check(False, str(e))
    if failures:
        print("%d check(s) failed:" % len(failures))
        for f in failures:
            print("  " + f)
        return 1
    print("python interop: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
