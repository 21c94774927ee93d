"""Helpers for the sandbox integration and hostile tests: the Docker Engine API
over its unix socket (http.client, never the docker CLI), a daemon with the
test recipe, and what "nothing of ours left behind" means.

    from sandbox_engine import containers_of, assert_nothing_left, processes_in
    from sandbox_engine import run_in_sandbox   # one daemon, one sandbox, checked cleanup

What a daemon left behind is found by asking the ENGINE for the containers
labelled safeeval.instance=<instance> (every container the daemon makes
carries safeeval.managed=1, safeeval.instance=<--instance> and
safeeval.sandbox=<sandbox id>), never by reading the daemon's log: a test
that matched log lines would pass without looking once the wording changed.

containers_of(instance=harness.INSTANCE, sandbox=None) -> [container summary]
    Every container (any state) of that instance, or of one of its sandboxes
    (instance None means harness.INSTANCE). Summaries as GET /containers/json gives
    them: "Id", "State", "Labels", "Names", ...
workers_of(sandbox_id) -> [container summary]   (the sandbox's, any instance)
assert_nothing_left(instance=harness.INSTANCE, keep=(), wait_s=0)
    Fails (AssertionError listing id, sandbox and state) when a container of
    the instance exists that does not belong to a sandbox id in `keep`;
    waits up to wait_s for them to go first. It force-removes what it found
    before failing, so one failed test does not leak into the next.
remove_containers_of(instance=harness.INSTANCE) -> [removed ids]
    Force-removes every container of the instance (cleanup after a failure).
engine_kill(cid)
    SIGKILLs a container through the Engine API (POST /containers/{id}/kill),
    as a crash would; fails (AssertionError) unless the engine answers 204.
processes_in(cid) -> [(pid, ppid, command line)]   (GET /containers/{id}/top)
    The processes running in a container, as the host sees them; [] when it
    is not running.
processes_of_sandbox(sandbox_id, marker=None) -> [(cid, pid, ppid, cmdline)]
    The processes in every container of the sandbox whose command line
    contains `marker` (all of them when None).
finish(d, destroy=())
    A test class's end: destroys the sandboxes in `destroy`, asserts nothing
    of the instance is left, closes the daemon (which fails unless it exited
    0) and removes whatever is still there, whatever failed first.
wait_until(fn, timeout, step=0.05) -> fn's last value (polls until true)
describe(pb, result) -> str   (one line about an ExecResult for messages)
assert_exited_ok(tc, pb, result, stdout=None)
    tc (a TestCase) fails unless the run ended by itself with status 0 (and,
    when given, printed exactly `stdout`).
run_in_sandbox(limits, body, ..., runner=, preload=)   one daemon, one 3.11
    sandbox (runner: a Runner name, "RUNNER_ZYGOTE"), checked cleanup
class_sandbox(cls, wheels, limits, **create)   a test class's daemon (cls.d,
    cls.pb) and 3.11 + numpy sandbox (cls.sb), for setUpClass; end it with
    finish(cls.d, destroy=[cls.sb.id])
ours_left(), cleanup_after_failure()   old names kept for older tests: both go
    by the labels now (their log arguments are ignored).
"""
import atexit
import http.client
import json
import os
import shutil
import socket
import sys
import tempfile
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import make_wheel  # noqa: E402

DOCKER_SOCK = "/var/run/docker.sock"
LABEL_MANAGED = "safeeval.managed=1"
LABEL_INSTANCE = "safeeval.instance"
LABEL_SANDBOX = "safeeval.sandbox"


class _UnixConn(http.client.HTTPConnection):
    def __init__(self, path, timeout=30):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self._path)
        self.sock = s


def engine_get(path, params=None):
    """GET an Engine API path; returns (status, parsed JSON or None)."""
    if params:
        path += "?" + urllib.parse.urlencode(params)
    c = _UnixConn(DOCKER_SOCK)
    try:
        c.request("GET", path)
        r = c.getresponse()
        body = r.read()
        try:
            return r.status, json.loads(body) if body else None
        except ValueError:
            return r.status, None
    finally:
        c.close()


def engine_delete(path):
    """DELETE an Engine API path; returns the HTTP status."""
    c = _UnixConn(DOCKER_SOCK, timeout=60)
    try:
        c.request("DELETE", path)
        r = c.getresponse()
        r.read()
        return r.status
    finally:
        c.close()


def engine_remove(cid):
    st = engine_delete("/containers/%s?force=1&v=1" % urllib.parse.quote(cid))
    if st not in (204, 404):
        raise AssertionError("remove container %s: HTTP %d" % (cid, st))


def engine_kill(cid):
    """SIGKILLs a container through the Engine API (as a crash would)."""
    c = _UnixConn(DOCKER_SOCK)
    try:
        c.request("POST", "/containers/%s/kill?signal=KILL" % urllib.parse.quote(cid))
        r = c.getresponse()
        r.read()
        if r.status != 204:
            raise AssertionError("kill %s: HTTP %d" % (cid, r.status))
    finally:
        c.close()


def container_exists(cid):
    st, _ = engine_get("/containers/%s/json" % urllib.parse.quote(cid))
    if st == 404:
        return False
    if st != 200:
        raise AssertionError("inspect %s: HTTP %d" % (cid, st))
    return True


def _list_containers(labels):
    st, js = engine_get("/containers/json", {"all": "1",
                                             "filters": json.dumps({"label": labels})})
    if st != 200 or not isinstance(js, list):
        raise AssertionError("list containers %s: HTTP %d %r" % (labels, st, js))
    return js


def containers_of(instance=None, sandbox=None):
    """Every container (any state) of the instance (None: this test
    program's, harness.INSTANCE), optionally only the sandbox's."""
    labels = [LABEL_MANAGED, "%s=%s" % (LABEL_INSTANCE, instance or harness.INSTANCE)]
    if sandbox is not None:
        labels.append("%s=%s" % (LABEL_SANDBOX, sandbox))
    return _list_containers(labels)


def workers_of(sandbox_id):
    """The sandbox's containers (its workers), any state, of any instance."""
    return _list_containers([LABEL_MANAGED, "%s=%s" % (LABEL_SANDBOX, sandbox_id)])


def container_of_sandbox(sandbox_id):
    """One container of this sandbox, or None (a sandbox may have several
    workers: see workers_of)."""
    js = workers_of(sandbox_id)
    return js[0] if js else None


def _describe(c):
    return "%s (sandbox %s, %s)" % (c["Id"][:12], (c.get("Labels") or {}).get(LABEL_SANDBOX),
                                   c.get("State"))


def remove_containers_of(instance=None):
    """Force-removes every container of the instance; returns their ids."""
    gone = []
    for c in containers_of(instance=instance or harness.INSTANCE):
        engine_remove(c["Id"])
        gone.append(c["Id"])
    return gone


def left_of(instance=None, keep=()):
    """Containers of the instance not belonging to a sandbox in `keep`."""
    keep = set(keep)
    return [c for c in containers_of(instance=instance or harness.INSTANCE)
            if (c.get("Labels") or {}).get(LABEL_SANDBOX) not in keep]


def assert_nothing_left(instance=None, keep=(), wait_s=0):
    """Fails when the instance has a container outside the sandboxes in
    `keep` (after waiting up to wait_s for it to go); removes them first."""
    end = time.monotonic() + wait_s
    left = left_of(instance, keep)
    while left and time.monotonic() < end:
        time.sleep(0.2)
        left = left_of(instance, keep)
    if left:
        text = ", ".join(_describe(c) for c in left)
        for c in left:
            engine_remove(c["Id"])
        raise AssertionError("containers of instance %s left behind (now removed): %s"
                             % (instance or harness.INSTANCE, text))


def processes_in(cid):
    """[(pid, ppid, command line)] of the processes in a running container."""
    st, js = engine_get("/containers/%s/top" % urllib.parse.quote(cid),
                        {"ps_args": "-eo pid,ppid,args"})
    if st in (404, 409):  # gone, or not running
        return []
    if st != 200 or not js:
        raise AssertionError("top %s: HTTP %d %r" % (cid, st, js))
    titles = js["Titles"]
    ipid, ippid = titles.index("PID"), titles.index("PPID")
    icmd = len(titles) - 1
    return [(int(p[ipid]), int(p[ippid]), p[icmd]) for p in js.get("Processes") or []]


def processes_of_sandbox(sandbox_id, marker=None):
    """[(cid, pid, ppid, cmdline)] in the sandbox's containers (with marker)."""
    out = []
    for c in workers_of(sandbox_id):
        for pid, ppid, cmd in processes_in(c["Id"]):
            if marker is None or marker in cmd:
                out.append((c["Id"], pid, ppid, cmd))
    return out


def prepared_jail_pids(procs):
    """The pids of a worker's prepared jail in procs ([(pid, ppid, cmd)] of one
    container): while no run goes on, the agent holds the next run's jail
    ready, a bwrap it started for the helper in `--prepared` mode, that helper
    (bwrap's only child) and python3 on /work/NAME (the helper's only child,
    with no children), or the first part of that chain while it starts. Any
    other process beside the engine's init and the agent is left of a run."""
    kids = {}
    for pid, ppid, cmd in procs:
        kids.setdefault(ppid, []).append((pid, cmd))
    agents = [pid for pid, _, cmd in procs
              if cmd.endswith("safeeval-agent --serve") and "docker-init" not in cmd]
    found = set()
    for agent in agents:
        for bw, cmd in kids.get(agent, []):
            if not cmd.startswith("/usr/bin/bwrap ") or " --prepared " not in cmd:
                continue
            chain, node = [bw], bw
            for want in (("--jail-child", "/usr/bin/bwrap "), ("/work/",)):
                below = kids.get(node, [])
                if not below:
                    break
                if len(below) != 1 or not any(w in below[0][1] for w in want):
                    chain = None
                    break
                node = below[0][0]
                chain.append(node)
            if chain and not (len(chain) == 3 and kids.get(chain[2])):
                found.update(chain)
    return found


def zygote_pids(procs):
    """The pids of a zygote worker's zygote in procs ([(pid, ppid, cmd)] of one
    container): a bwrap the agent started with `--zygote-init`, and the chain
    of only children below it down to python3 running zygote.py (or the first
    part of that chain while it starts), and the next run's prepared pair
    waiting below it. The zygote's other children are runs: never part of
    the idle worker."""
    kids = {}
    for pid, ppid, cmd in procs:
        kids.setdefault(ppid, []).append((pid, cmd))
    # The agent of a zygote worker: `--serve --zygote MODULE...`.
    agents = [pid for pid, _, cmd in procs
              if "safeeval-agent --serve --zygote" in cmd and "docker-init" not in cmd]
    found = set()
    for agent in agents:
        for bw, cmd in kids.get(agent, []):
            if not cmd.startswith("/usr/bin/bwrap ") or " --zygote-init " not in cmd:
                continue
            node = bw
            found.add(bw)
            # bwrap (its command line names zygote.py too), then the helper
            # (--zygote-init) until it execs python3 on zygote.py: the end.
            while True:
                below = kids.get(node, [])
                if len(below) != 1 or not any(
                        w in below[0][1] for w in ("--zygote-init", "/usr/bin/bwrap ",
                                                   "/opt/safeeval/lib/zygote.py")):
                    break
                node, cmd_at = below[0]
                found.add(node)
                if "--zygote-init" not in cmd_at and not cmd_at.startswith("/usr/bin/bwrap "):
                    break
            # The next run's prepared processes, waiting (zygote.py): one
            # child of the zygote named safeeval-run-init whose only child,
            # safeeval-run-prepared, has none. Only one such pair can be the
            # zygote's; any more are left of runs.
            pairs = []
            for init, icmd in kids.get(node, []):
                below = kids.get(init, [])
                if ("safeeval-run-init" in icmd and len(below) == 1
                        and "safeeval-run-prepared" in below[0][1]
                        and not kids.get(below[0][0])):
                    pairs.append((init, below[0][0]))
            if len(pairs) == 1:
                found.update(pairs[0])
    return found


def run_processes_of_sandbox(sandbox_id):
    """[(cid, pid, ppid, cmdline)] in the sandbox's workers that are neither the
    engine's init, the agent, a prepared jail nor a zygote: what is left of
    runs."""
    out = []
    for c in workers_of(sandbox_id):
        procs = processes_in(c["Id"])
        prep = prepared_jail_pids(procs) | zygote_pids(procs)
        for pid, ppid, cmd in procs:
            if pid in prep or "safeeval-agent --serve" in cmd:
                continue
            out.append((c["Id"], pid, ppid, cmd))
    return out


def dangling_ours():
    st, js = engine_get("/images/json", {
        "filters": json.dumps({"dangling": ["true"], "label": [LABEL_MANAGED]})})
    assert st == 200, st
    return {i["Id"] for i in js}


def make_wheelhouse():
    """A temp wheelhouse with the test package (make_wheel.py, stdlib only)."""
    d = tempfile.mkdtemp(prefix="safeeval-wheels-")
    atexit.register(shutil.rmtree, d, True)
    make_wheel.make_wheel(d)
    return d


def daemon_args(wheelhouse, *extra):
    return ["--base-image", "safeeval/python:{version}",
            "--recipe-dir", os.path.join(harness.SOURCE_DIR, "docker", "sandbox"),
            "--wheelhouse", wheelhouse] + list(extra)


def run_in_sandbox(limits, body, max_concurrent_runs=0, extra_args=(), modules=("numpy",),
                   runner="RUNNER_DEFAULT", preload=()):
    """Starts a daemon with the test recipe, creates one 3.11 (+ numpy)
    sandbox with these limits and calls body(d, sb). The sandbox is destroyed
    either way; then no container of the instance may be left (a failing body
    first removes them) and the daemon must exit 0 (a sanitizer build that
    finds a leak exits non-zero)."""
    wheels = make_wheelhouse()
    with harness.Daemon(extra_args=daemon_args(wheels, *extra_args), timeout=60) as d:
        pb = d.pb
        sb = d.stub.CreateSandbox(pb.CreateSandboxRequest(
            python_version="3.11", modules=list(modules), limits=pb.Limits(**limits),
            max_concurrent_runs=max_concurrent_runs, runner=getattr(pb, runner),
            preload=list(preload)), timeout=600).sandbox
        try:
            body(d, sb)
        except BaseException:
            try:
                d.stub.DestroySandbox(pb.DestroySandboxRequest(sandbox_id=sb.id), timeout=60)
            except Exception:  # the body's failure is the one to report
                pass
            remove_containers_of()
            raise
        d.stub.DestroySandbox(pb.DestroySandboxRequest(sandbox_id=sb.id), timeout=60)
        assert_nothing_left()


def class_sandbox(cls, wheels, limits, **create):
    """setUpClass's daemon and sandbox: cls.d (the test recipe and wheels),
    cls.pb, and cls.sb, a 3.11 + numpy sandbox with these limits (a dict)
    and the other CreateSandboxRequest fields in `create` (runner by name).
    If the create fails, the daemon is stopped and the instance's
    containers removed before the error goes on."""
    cls.d = harness.Daemon(extra_args=daemon_args(wheels), timeout=60)
    cls.pb = cls.d.pb
    try:
        cls.sb = cls.d.stub.CreateSandbox(cls.pb.CreateSandboxRequest(
            python_version="3.11", modules=["numpy"], limits=cls.pb.Limits(**limits), **create),
            timeout=600).sandbox
    except BaseException:
        cls.d.stop()
        remove_containers_of()
        raise


# Compatibility for tests written against the old log-parsing helpers: the
# log arguments are ignored, the engine's labels are what count.

def ours_left(logs=(), live_ids=()):
    """Ids of this instance's containers outside the live sandboxes."""
    return sorted(c["Id"] for c in left_of(None, live_ids))


def cleanup_after_failure(logs=()):
    """A failed test removes every container of its instance."""
    remove_containers_of()


def wait_until(fn, timeout, step=0.05):
    """Calls fn() until it returns something true or timeout s pass; returns
    the last value."""
    end = time.monotonic() + timeout
    while True:
        v = fn()
        if v or time.monotonic() >= end:
            return v
        time.sleep(step)


def describe(pb, r):
    """One line about an ExecResult, for failure messages."""
    return ("reason=%s exit=%d signal=%d wall=%.0fms cpu=%.0fms rss=%dKiB stdout=%r%s "
            "stderr=%r%s" % (
                pb.ExitReason.Name(r.reason), r.exit_code, r.signal, r.wall_time_us / 1e3,
                r.cpu_time_us / 1e3, r.max_rss_bytes >> 10, r.stdout[:300],
                "..." if len(r.stdout) > 300 else "", r.stderr[-600:],
                " (tail)" if len(r.stderr) > 600 else ""))


def finish(d, destroy=()):
    """A test class's end: see the module's docstring."""
    try:
        for sid in destroy:
            d.stub.DestroySandbox(d.pb.DestroySandboxRequest(sandbox_id=sid), timeout=60)
        assert_nothing_left()
    finally:
        try:
            d.close()
        finally:
            remove_containers_of()


def assert_exited_ok(tc, pb, r, stdout=None):
    """See the module's docstring."""
    tc.assertEqual((r.reason, r.exit_code, r.signal), (pb.EXIT_REASON_EXITED, 0, 0),
                   describe(pb, r))
    if stdout is not None:
        tc.assertEqual(r.stdout, stdout, describe(pb, r))
