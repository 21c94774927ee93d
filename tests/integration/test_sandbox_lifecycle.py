"""Sandbox lifecycle against the real daemon and dockerd: the old library's
example (3.11 + numpy, Hello World, a numpy file, 3.13), a module from a local
wheel with no network, image reuse, the worker container a sandbox starts
with, bad input that leaves nothing behind, --max-sandboxes, ListSandboxes
oldest first, the idle clock and the reaper, SIGNALED over gRPC, recovery
after a restart (a live worker kept, a dead one replaced, a removed one's
sandbox gone), code and output never in the info log, destroy.

What is left behind is asked of the engine by our labels (sandbox_engine),
never read from the daemon's log."""
import json
import os
import re
import sys
import threading
import time
import urllib.parse

import grpc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import sandbox_engine  # noqa: E402
from harness import Daemon, expect_code  # noqa: E402
from sandbox_engine import (assert_nothing_left, container_exists, daemon_args,  # noqa: E402
                            dangling_ours, describe, engine_get, make_wheelhouse,
                            processes_of_sandbox, remove_containers_of, wait_until, workers_of)

C = grpc.StatusCode
T = 600  # create may build an image
AGENT = "/usr/local/bin/safeeval-agent"


def image_tags():
    st, js = engine_get("/images/json", {"filters": '{"label":["safeeval.managed=1"]}'})
    assert st == 200
    return {t for i in js for t in (i.get("RepoTags") or [])}


def engine_kill(cid):
    """SIGKILLs a container through the Engine API (as a crash would)."""
    c = sandbox_engine._UnixConn(sandbox_engine.DOCKER_SOCK)
    try:
        c.request("POST", "/containers/%s/kill?signal=KILL" % urllib.parse.quote(cid))
        r = c.getresponse()
        r.read()
        assert r.status == 204, "kill %s: HTTP %d" % (cid, r.status)
    finally:
        c.close()


def inspect(cid):
    st, js = engine_get("/containers/%s/json" % urllib.parse.quote(cid))
    assert st == 200, (cid, st)
    return js


def worker_ids(sid):
    return sorted(c["Id"] for c in workers_of(sid))


def create(d, **kw):
    t = time.monotonic()
    r = d.stub.CreateSandbox(d.pb.CreateSandboxRequest(**kw), timeout=T)
    return r.sandbox, time.monotonic() - t


def ev(d, sid, code, **kw):
    return d.stub.Eval(d.pb.EvalRequest(sandbox_id=sid, code=code, **kw), timeout=60).result


def get(d, sid):
    return d.stub.GetSandbox(d.pb.GetSandboxRequest(sandbox_id=sid), timeout=10).sandbox


def now_ms():
    return int(time.time() * 1000)


def check_worker(sb):
    """A fresh sandbox has exactly one worker container, named, labelled and
    configured for the resident agent."""
    ws = workers_of(sb.id)
    assert len(ws) == 1 and sb.workers == 1, (sb.workers, ws)
    c = ws[0]
    assert c["State"] == "running", c
    assert len(c["Names"]) == 1 and re.fullmatch(
        "/safeeval-%s-[0-9a-f]{8}" % sb.id, c["Names"][0]), c["Names"]
    js = inspect(c["Id"])
    cfg, hc = js["Config"], js["HostConfig"]
    want = {"safeeval.managed": "1", "safeeval.instance": harness.INSTANCE,
            "safeeval.sandbox": sb.id, "safeeval.worker": "1"}
    labels = cfg.get("Labels") or {}
    assert {k: labels.get(k) for k in want} == want, labels
    # The agent is the main process (under the engine's init) and serves
    # runs over the attached stdin/stdout: stdin stays open across attaches,
    # no TTY mangles the frames, nothing goes to the engine's log store.
    assert cfg["Cmd"] == [AGENT, "--serve"], cfg["Cmd"]
    assert (cfg["OpenStdin"], cfg["StdinOnce"], cfg["Tty"]) == (True, False, False), cfg
    assert hc["Init"] is True, hc.get("Init")
    assert hc["LogConfig"]["Type"] == "none", hc["LogConfig"]
    # One run at a time: the container's limits are the run's plus a small
    # reserve for the agent and init, and swap is not extra memory.
    lim = sb.limits
    assert hc["Memory"] == hc["MemorySwap"], (hc["Memory"], hc["MemorySwap"])
    assert lim.memory_bytes < hc["Memory"] <= lim.memory_bytes + (64 << 20), (
        lim.memory_bytes, hc["Memory"])
    assert lim.max_processes < hc["PidsLimit"] <= lim.max_processes + 16, (
        lim.max_processes, hc["PidsLimit"])
    return c["Id"]


def code_marker():
    return "mk" + os.urandom(8).hex()


def main():
    wheels = make_wheelhouse()
    dangling_before = dangling_ours()
    tags_before = image_tags()
    # The daemon's --instance (harness) keeps other daemons' sandboxes out
    # of its registry, so the max counts only this test's.
    max_sb = 3
    args = daemon_args(wheels, "--max-sandboxes", str(max_sb), "--reap-interval-s", "1")
    with Daemon(extra_args=args, timeout=60) as d:
        pb = d.pb
        # The old library's example.
        sb1, t_first = create(d, python_version="3.11", modules=["numpy"],
                              labels={"owner": "tests"})
        cold = sb1.image not in tags_before
        print("create 3.11+numpy: %.2f s (%s)" % (t_first, "cold" if cold else "cached"))
        assert sb1.python_version.startswith("3.11."), sb1.python_version
        assert list(sb1.modules) == ["numpy"] and dict(sb1.labels) == {"owner": "tests"}
        lim = sb1.limits
        assert all([lim.wall_time_ms, lim.cpu_time_ms, lim.memory_bytes, lim.max_processes,
                    lim.max_output_bytes, lim.max_file_bytes]), lim
        # 0 asked = the service's --max-concurrent-runs (default 4).
        assert sb1.max_concurrent_runs == 4, sb1.max_concurrent_runs
        cid1 = check_worker(sb1)

        t = time.monotonic()
        r = ev(d, sb1.id, 'print("Hello World")')
        print("eval hello: %.1f ms" % ((time.monotonic() - t) * 1000))
        assert r.reason == pb.EXIT_REASON_EXITED and r.exit_code == 0, r
        assert r.stdout == b"Hello World\n", r.stdout
        lat = []
        for _ in range(5):
            t = time.monotonic()
            ev(d, sb1.id, "pass")
            lat.append((time.monotonic() - t) * 1000)
        print("eval latency ms: min %.1f median %.1f" % (min(lat), sorted(lat)[2]))
        # Runs one after the other reuse the one worker.
        assert worker_ids(sb1.id) == [cid1], (cid1, workers_of(sb1.id))

        script = (b"import numpy as np\nimport sys\n"
                  b"a = np.arange(12).reshape(3, 4)\n"
                  b"print(int(a.sum()), a.shape, sys.argv[1:], open('data/x.txt').read())\n")
        r = d.stub.ExecuteFile(pb.ExecuteFileRequest(
            sandbox_id=sb1.id, filename="job.py", content=script, args=["a", "b"],
            files=[pb.File(path="data/x.txt", content=b"hi")]), timeout=60).result
        assert r.reason == pb.EXIT_REASON_EXITED and r.exit_code == 0, r
        assert r.stdout == b"66 (3, 4) ['a', 'b'] hi\n", r.stdout

        # A self-sent signal: SIGNALED, exit_code -N, signal N (over gRPC,
        # as the contract says).
        r = ev(d, sb1.id, "import os, signal\nos.kill(os.getpid(), signal.SIGTERM)\n")
        assert (r.reason, r.exit_code, r.signal) == (pb.EXIT_REASON_SIGNALED, -15, 15), \
            describe(pb, r)

        # The idle clock: a run moves last_used_at_ms on (to the run's time).
        before = get(d, sb1.id).last_used_at_ms
        time.sleep(0.05)  # so that the run's own millisecond is a later one
        t0 = now_ms()
        assert ev(d, sb1.id, "print(3)").stdout == b"3\n"
        t1 = now_ms()
        after = get(d, sb1.id).last_used_at_ms
        print("last_used_at_ms: %d -> %d (run in [%d, %d])" % (before, after, t0, t1))
        assert before < after, (before, after)
        assert t0 - 1000 <= after <= t1 + 1000, (t0, after, t1)

        # Same spec again: the image is reused.
        sb2, t_second = create(d, python_version="3.11", modules=["numpy"])
        print("create again (cached): %.2f s" % t_second)
        assert sb2.image == sb1.image and sb2.id != sb1.id
        assert t_second < 15, t_second
        if cold and t_first > 3:  # a real build (not all layers in the build cache)
            assert t_second < t_first / 2, (t_first, t_second)
        check_worker(sb2)

        # 3.13, with a module from the local wheelhouse (no network anywhere).
        sb3, t3 = create(d, python_version="3.13", modules=["safeeval_testpkg"])
        print("create 3.13+wheel: %.2f s" % t3)
        assert sb3.python_version.startswith("3.13."), sb3.python_version
        r = ev(d, sb3.id, "import sys, safeeval_testpkg\n"
                          "print(sys.version_info[:2], safeeval_testpkg.VALUE)")
        assert r.stdout == b"(3, 13) 42\n", (r.stdout, r.stderr)

        # ListSandboxes: exactly ours, oldest first (a fresh instance: only
        # this program's sandboxes are in its registry).
        ls = d.stub.ListSandboxes(pb.ListSandboxesRequest(), timeout=10).sandboxes
        assert [s.id for s in ls] == [sb1.id, sb2.id, sb3.id], [s.id for s in ls]
        assert [s.created_at_ms for s in ls] == sorted(s.created_at_ms for s in ls), ls
        assert ls[0].created_at_ms < ls[2].created_at_ms, ls
        assert [s.workers for s in ls] == [1, 1, 1], [s.workers for s in ls]

        # --max-sandboxes: one more is refused before any build.
        assert len(ls) == max_sb, len(ls)
        e = expect_code(lambda: create(d, python_version="3.11"), C.RESOURCE_EXHAUSTED)
        assert "max-sandboxes" in e.details(), e.details()

        # Destroy during a run: the run answers NOT_FOUND, its worker is gone.
        cids2 = worker_ids(sb2.id)
        mark = code_marker()
        box = {}

        def long_run():
            try:
                box["r"] = ev(d, sb2.id, "import time\ntime.sleep(8)\nprint('finished')",
                              args=[mark])
            except grpc.RpcError as e:
                box["e"] = e
        th = threading.Thread(target=long_run)
        th.start()
        # The victim is seen running before the destroy (no fixed sleep).
        seen = wait_until(lambda: processes_of_sandbox(sb2.id, mark) or box, 30, 0.1)
        assert seen and not box, ("the run never showed up in the worker", box)
        t = time.monotonic()
        d.stub.DestroySandbox(pb.DestroySandboxRequest(sandbox_id=sb2.id), timeout=60)
        th.join(30)
        print("destroy during a run: %.2f s, run -> %s" % (
            time.monotonic() - t, box["e"].code() if "e" in box else box.get("r")))
        assert "e" in box and box["e"].code() == C.NOT_FOUND, box
        assert workers_of(sb2.id) == [], workers_of(sb2.id)
        assert not [c for c in cids2 if container_exists(c)], cids2
        expect_code(lambda: d.stub.DestroySandbox(
            pb.DestroySandboxRequest(sandbox_id=sb2.id), timeout=10), C.NOT_FOUND)
        expect_code(lambda: ev(d, sb2.id, "print(1)"), C.NOT_FOUND)

        # Bad input: the right code, the field named, nothing left behind.
        unknown = "0" * 24
        expect_code(lambda: ev(d, unknown, "print(1)"), C.NOT_FOUND)
        expect_code(lambda: d.stub.ExecuteFile(pb.ExecuteFileRequest(
            sandbox_id=unknown, filename="a.py", content=b"1"), timeout=10), C.NOT_FOUND)
        expect_code(lambda: d.stub.GetSandbox(pb.GetSandboxRequest(sandbox_id=unknown),
                                              timeout=10), C.NOT_FOUND)
        expect_code(lambda: d.stub.DestroySandbox(pb.DestroySandboxRequest(sandbox_id=unknown),
                                                  timeout=10), C.NOT_FOUND)
        e = expect_code(lambda: ev(d, "../../etc", "print(1)"), C.INVALID_ARGUMENT)
        assert "sandbox_id" in e.details()
        e = expect_code(lambda: create(d, python_version="3.11",
                                       modules=["numpy", "--index-url=http://evil/"]),
                        C.INVALID_ARGUMENT)
        assert "modules[1]" in e.details(), e.details()
        e = expect_code(lambda: create(d, python_version="3.11", modules=["x; rm -rf /"]),
                        C.INVALID_ARGUMENT)
        assert "modules[0]" in e.details(), e.details()
        e = expect_code(lambda: create(d, python_version="3.x"), C.INVALID_ARGUMENT)
        assert "python_version" in e.details(), e.details()
        expect_code(lambda: create(d, python_version="3.99"), C.FAILED_PRECONDITION)
        e = expect_code(lambda: create(d, limits=pb.Limits(memory_bytes=1 << 50)),
                        C.INVALID_ARGUMENT)
        assert "limits.memory_bytes" in e.details(), e.details()
        e = expect_code(lambda: create(d, python_version="3.11", max_concurrent_runs=5),
                        C.INVALID_ARGUMENT)
        assert "max_concurrent_runs" in e.details(), e.details()
        e = expect_code(lambda: ev(d, sb1.id, ""), C.INVALID_ARGUMENT)
        assert "code" in e.details()
        e = expect_code(lambda: ev(d, sb1.id, "1", limits=pb.Limits(
            wall_time_ms=sb1.limits.wall_time_ms + 1)), C.INVALID_ARGUMENT)
        assert "limits.wall_time_ms" in e.details(), e.details()
        e = expect_code(lambda: ev(d, sb1.id, "1", files=[pb.File(path="../x")]),
                        C.INVALID_ARGUMENT)
        assert "files[0].path" in e.details(), e.details()
        e = expect_code(lambda: d.stub.ExecuteFile(pb.ExecuteFileRequest(
            sandbox_id=sb1.id, filename="../job.py", content=b"1"), timeout=10),
            C.INVALID_ARGUMENT)
        assert "filename" in e.details(), e.details()
        e = expect_code(lambda: ev(d, sb1.id, "1", env={"SAFEEVAL_X": "1"}), C.INVALID_ARGUMENT)
        assert "env" in e.details()
        expect_code(lambda: ev(d, sb1.id, "#" * (70 << 20)), C.RESOURCE_EXHAUSTED)
        # By the engine's labels: only sb1's and sb3's workers, sb1's the same.
        assert_nothing_left(keep=[sb1.id, sb3.id])
        assert worker_ids(sb1.id) == [cid1], (cid1, workers_of(sb1.id))
        assert dangling_ours() <= dangling_before, dangling_ours() - dangling_before
        # The sandbox still answers after all that.
        assert ev(d, sb1.id, "print(2)").stdout == b"2\n"

        # The idle reaper: runs keep a sandbox with a 2 s idle timeout alive
        # for twice that; unused for 2 s it goes, workers and all.
        sb4, _ = create(d, python_version="3.11", modules=["numpy"], idle_timeout_s=2)
        cids4 = worker_ids(sb4.id)
        assert len(cids4) == 1, cids4
        end = time.monotonic() + 4.5
        n = 0
        while time.monotonic() < end:
            r = ev(d, sb4.id, "print('busy')")
            assert r.stdout == b"busy\n", describe(pb, r)
            n += 1
            time.sleep(0.7)
        print("idle clock: %d runs over 4.5 s kept a 2 s idle sandbox" % n)
        get(d, sb4.id)  # NOT_FOUND here: a run did not reset the reaper's clock
        end = time.monotonic() + 15

        def alive():
            try:
                get(d, sb4.id)
                return True
            except grpc.RpcError as e:
                assert e.code() == C.NOT_FOUND, e
                return False
        while alive() and time.monotonic() < end:
            time.sleep(0.5)
        assert not alive(), "the reaper did not reap an idle sandbox"
        # The registry goes first, then the workers.
        assert wait_until(lambda: not workers_of(sb4.id), 10, 0.2), workers_of(sb4.id)
        assert not [c for c in cids4 if container_exists(c)], cids4
        # sb1 was used within its (default, long) timeout: still there.
        get(d, sb1.id)

        # For the restart: a sandbox whose worker will be removed while the
        # daemon is down (it has no other record: it must be gone for good).
        sb5, _ = create(d, python_version="3.11", modules=["numpy"])
        cids5 = worker_ids(sb5.id)
        cids3 = worker_ids(sb3.id)
        assert len(cids5) == 1 and len(cids3) == 1, (cids5, cids3)
        rc = d.stop()
        assert rc == 0, (rc, d.log()[-6000:])

    # While the daemon is down: the workers stay (recovery needs them); sb3's
    # dies (a crash), sb5's is removed.
    assert worker_ids(sb1.id) == [cid1], workers_of(sb1.id)
    engine_kill(cids3[0])
    assert wait_until(lambda: inspect(cids3[0])["State"]["Running"] is False, 30, 0.1)
    sandbox_engine.engine_remove(cids5[0])

    # Restart, at --log-level info: the same sandboxes, the same ids, still
    # running code; submitted code and output never reach that log.
    with Daemon(extra_args=args + ["--log-level", "info"], timeout=60) as d:
        pb = d.pb
        ls = d.stub.ListSandboxes(pb.ListSandboxesRequest(), timeout=10).sandboxes
        ids = [s.id for s in ls]
        assert ids == [sb1.id, sb3.id], (ids, d.log()[-3000:])
        assert ls[0].python_version == sb1.python_version and ls[0].image == sb1.image
        assert dict(ls[0].labels) == {"owner": "tests"} and ls[0].created_at_ms == sb1.created_at_ms
        assert ls[0].limits == sb1.limits
        assert (ls[0].max_concurrent_runs, ls[0].workers) == (4, 1), ls[0]
        # sb1's worker was alive: re-attached, not replaced.
        assert worker_ids(sb1.id) == [cid1], (cid1, workers_of(sb1.id))
        assert ev(d, sb1.id, 'print("Hello World")').stdout == b"Hello World\n"
        assert worker_ids(sb1.id) == [cid1], (cid1, workers_of(sb1.id))
        # sb3's worker died: the sandbox lives on in a fresh one (same image,
        # same spec), and the dead container is gone.
        s3 = ls[1]
        assert (s3.python_version, s3.image, s3.created_at_ms, list(s3.modules)) == (
            sb3.python_version, sb3.image, sb3.created_at_ms, list(sb3.modules)), s3
        new3 = worker_ids(sb3.id)
        assert len(new3) == 1 and new3 != cids3, (cids3, workers_of(sb3.id))
        assert not container_exists(cids3[0]), "the dead worker was left"
        assert inspect(new3[0])["State"]["Running"] is True
        r = ev(d, sb3.id, "import safeeval_testpkg; print(safeeval_testpkg.VALUE)")
        assert r.stdout == b"42\n", describe(pb, r)
        # sb5's only worker was removed: nothing records it any more.
        expect_code(lambda: get(d, sb5.id), C.NOT_FOUND)
        assert workers_of(sb5.id) == []

        # Code, stdin, files, args, env and output: none at info level.
        mk = code_marker()
        r = d.stub.Eval(pb.EvalRequest(
            sandbox_id=sb1.id, stdin=("in-" + mk).encode(), args=["arg-" + mk],
            env={"V": "env-" + mk}, files=[pb.File(path="f.txt", content=("file-" + mk).encode())],
            code="import sys\n# code-%s\nprint(sys.stdin.read(), open('f.txt').read())\n"
                 "print('err-%s', file=sys.stderr)\n" % (mk, mk)), timeout=60).result
        assert r.reason == pb.EXIT_REASON_EXITED and mk.encode() in r.stdout, describe(pb, r)
        r = d.stub.ExecuteFile(pb.ExecuteFileRequest(
            sandbox_id=sb1.id, filename="job.py",
            content=("print('exec-%s')\nraise SystemExit('fail-%s')\n" % (mk, mk)).encode()),
            timeout=60).result
        assert r.exit_code == 1 and mk.encode() in r.stderr, describe(pb, r)
        r = ev(d, sb1.id, "syntax error here %s (" % mk)
        assert r.exit_code == 1 and b"SyntaxError" in r.stderr, describe(pb, r)
        r = ev(d, sb1.id, "print('wall-%s', flush=True)\nwhile True: pass\n" % mk,
               limits=pb.Limits(wall_time_ms=500))
        assert r.reason == pb.EXIT_REASON_WALL_TIMEOUT, describe(pb, r)
        expect_code(lambda: ev(d, sb1.id, "nul-%s\0" % mk), C.INVALID_ARGUMENT)
        expect_code(lambda: ev(d, unknown, "unknown-%s" % mk), C.NOT_FOUND)
        log = d.log()
        # It is the info log (no debug line) and it does log the calls.
        assert not re.search(r"^\S+ debug ", log, re.M), log[-3000:]
        assert re.search(r"rpc Eval status=OK", log), log[-3000:]
        assert mk not in log, [ln for ln in log.splitlines() if mk in ln]

        for s in (sb1, sb3):
            cids = worker_ids(s.id)
            d.stub.DestroySandbox(pb.DestroySandboxRequest(sandbox_id=s.id), timeout=60)
            assert not [c for c in cids if container_exists(c)], cids
        assert not d.stub.ListSandboxes(pb.ListSandboxesRequest(), timeout=10).sandboxes
        rc = d.stop()
        assert rc == 0, (rc, d.log()[-6000:])

    assert_nothing_left()
    assert dangling_ours() <= dangling_before, dangling_ours() - dangling_before
    print("OK")


if __name__ == "__main__":
    try:
        main()
    except BaseException:
        # A failing test removes what its daemons made, then reports.
        remove_containers_of()
        raise
