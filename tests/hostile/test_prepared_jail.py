"""Prepared jails (issue 8), against the real safeevald and dockerd. While a
worker is idle its agent holds the next run's jail ready (bwrap's namespaces
and mounts, the helper as pid 1, python3 started and blocked reading its
script); a Run only delivers the inputs. These tests check that this changes
nothing a run can see, and nothing it can reach:

- a prepared run and a run in a jail made on demand see the same world and
  give the same result (argv, __file__, __main__, sys.path[0], files and
  modes, stdin and its seals, fds, limits, environment, the traceback, the
  exit code);
- what a prepared jail cannot take exactly (environment variables, arguments,
  a coding declaration, inputs over the delivery's size, another file name,
  other limits) runs in a jail made on demand, correctly;
- the next prepared jail does not exist while a run goes on, is made only
  after everything of the previous run is gone, and a run's survivor cannot
  reach it.

Which kind of jail a run had is read from causality, not from timing: the
run prints when its python3 started (from /proc/self/stat); a prepared one
started before the client sent the request (the test first waits until the
prepared python3 is seen in the worker), one made on demand after.
"""
import json
import os
import sys
import threading
import time
import unittest

import grpc

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))
import harness  # noqa: E402, F401
from sandbox_engine import (assert_nothing_left, class_sandbox, describe, finish,  # noqa: E402
                            make_wheelhouse, prepared_jail_pids, processes_in,
                            run_processes_of_sandbox, wait_until, workers_of)

MiB = 1 << 20
LIMITS = dict(wall_time_ms=20000, cpu_time_ms=10800, memory_bytes=256 * MiB,
              max_processes=64, max_output_bytes=1 * MiB, max_file_bytes=16 * MiB)
# The same jail as LIMITS (RLIMIT_CPU is whole seconds) under another key.
LIMITS_B = dict(LIMITS, cpu_time_ms=10500)

# First line of every run: when its python3 started, on the wall clock.
STARTED = (
    "import os as _o, time as _t\n"
    "_st = open('/proc/self/stat').read().rsplit(')', 1)[1].split()\n"
    "_age = _t.clock_gettime(_t.CLOCK_BOOTTIME) - int(_st[19]) / _o.sysconf('SC_CLK_TCK')\n"
    "print('STARTED %.3f' % (_t.time() - _age), flush=True)\n"
    "del _o, _t, _st, _age\n")

PROBE = r"""
import fcntl, json, os, resource, sys
import __main__
out = {}
out['argv'] = sys.argv
out['orig_argv'] = sys.orig_argv
out['file'] = __file__
out['path'] = sys.path
out['main'] = {k: repr(getattr(__main__, k, None))
               for k in ('__file__', '__cached__', '__spec__', '__package__', '__name__',
                         '__builtins__')}
ld = __main__.__loader__
out['loader'] = [type(ld).__name__, getattr(ld, 'name', None), getattr(ld, 'path', None)]
out['flags'] = repr(sys.flags)
out['cwd'] = os.getcwd()
def st(p):
    s = os.lstat(p)
    return [oct(s.st_mode), s.st_uid, s.st_gid, s.st_size, s.st_nlink]
out['stat'] = {p: st(p) for p in ('/work', '/tmp', '/dev/shm')}
for root, dirs, files in os.walk('/work'):
    for n in dirs + files:
        out['stat'][os.path.join(root, n)] = st(os.path.join(root, n))
out['statvfs'] = {p: list(os.statvfs(p))[:3] for p in ('/work', '/tmp', '/dev/shm')}
s0 = os.fstat(0)
out['stdin'] = [oct(s0.st_mode), s0.st_size, os.readlink('/proc/self/fd/0'),
                fcntl.fcntl(0, 1034), os.lseek(0, 0, os.SEEK_CUR)]  # F_GET_SEALS
out['stdin_data'] = sys.stdin.read()
out['stdin_eof'] = sys.stdin.read()
try:
    os.write(0, b'x')
    out['stdin_write'] = 'WROTE'
except OSError as e:
    out['stdin_write'] = e.errno
out['fds'] = sorted(os.listdir('/proc/self/fd'))
out['env'] = dict(os.environ)
out['rlimits'] = {n: resource.getrlimit(getattr(resource, n))
                  for n in sorted(dir(resource)) if n.startswith('RLIMIT_')}
out['status'] = sorted(l.strip() for l in open('/proc/self/status')
                       if l.split(':')[0] in ('Seccomp', 'Seccomp_filters', 'NoNewPrivs',
                                              'CapEff', 'CapPrm', 'CapBnd', 'Uid', 'Gid'))
out['pids'] = sorted(p for p in os.listdir('/proc') if p.isdigit())
out['ids'] = [os.getpid(), os.getppid(), os.getpgrp(), os.getsid(0)]
out['umask'] = os.umask(0o22)
out['modules'] = sorted(sys.modules)
out['oom'] = open('/proc/self/oom_score_adj').read()
out['mounts'] = sorted(' '.join(l.split()[4:]) for l in open('/proc/self/mountinfo'))
out['hostname'] = os.uname().nodename
import linecache
out['line'] = linecache.getline(__file__, 7)
print(json.dumps(out, sort_keys=True))
print('to stderr', file=sys.stderr)
def fail():
    raise ValueError('from the probe')
fail()
"""

FILES = (("d/e/f.txt", b"deep\n"), ("g.bin", bytes(range(256)) * 4), ("d/h", b""))


def code(text):
    """STARTED first, after a coding declaration (Python reads it in the
    first two lines only)."""
    if text.startswith("# -*- coding"):
        first, rest = text.split("\n", 1)
        return first + "\n" + STARTED + rest
    return STARTED + text


class Prepared(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.wheels = make_wheelhouse()
        class_sandbox(cls, cls.wheels, LIMITS, max_concurrent_runs=1)

    @classmethod
    def tearDownClass(cls):
        finish(cls.d, destroy=[cls.sb.id])

    def tearDown(self):
        left = wait_until(lambda: run_processes_of_sandbox(self.sb.id) == [], 2.0, 0.1)
        self.assertTrue(left, "processes of a finished run remain: %s"
                        % run_processes_of_sandbox(self.sb.id))
        assert_nothing_left(keep=[self.sb.id])

    # ---- helpers ----

    def prepared_chain(self):
        """The pids of the worker's prepared jail once python3 runs in it."""
        workers = workers_of(self.sb.id)
        self.assertEqual(len(workers), 1)
        pids = prepared_jail_pids(processes_in(workers[0]["Id"]))
        return pids if len(pids) == 3 else set()

    def wait_prepared(self):
        self.assertTrue(wait_until(self.prepared_chain, 60, 0.05),
                        "no prepared jail after 60 s: %s"
                        % processes_in(workers_of(self.sb.id)[0]["Id"]))

    def run_code(self, text, filename=None, stdin=b"", files=(), env=None, args=(), collect=(),
                 **lim):
        """(result, wall clock when the request was sent, python3's start)."""
        pb = self.pb
        limits = pb.Limits(**dict(LIMITS, **lim))
        fl = [pb.File(path=p, content=c) for p, c in files]
        t = time.time()
        if filename:
            r = self.d.stub.ExecuteFile(pb.ExecuteFileRequest(
                sandbox_id=self.sb.id, filename=filename, content=code(text).encode("latin-1"),
                stdin=stdin, files=fl, env=env or {}, args=list(args), collect=list(collect),
                limits=limits), timeout=120).result
        else:
            r = self.d.stub.Eval(pb.EvalRequest(
                sandbox_id=self.sb.id, code=code(text), stdin=stdin, files=fl, env=env or {},
                args=list(args), collect=list(collect), limits=limits), timeout=120).result
        first = r.stdout.split(b"\n", 1)[0].decode()
        self.assertTrue(first.startswith("STARTED "), describe(pb, r))
        return r, t, float(first.split()[1])

    def assert_prepared(self, sent, started, r):
        self.assertLess(started, sent, "python3 started after the request was sent: a jail "
                        "made on demand, not the prepared one: " + describe(self.pb, r))

    def assert_on_demand(self, sent, started, r):
        # The start time is whole clock ticks (10 ms), rounded down.
        self.assertGreaterEqual(started, sent - 0.05, "python3 started before the request: "
                                "the prepared jail took a run it cannot run exactly: "
                                + describe(self.pb, r))

    def body(self, r):
        return r.stdout.split(b"\n", 1)[1]

    # ---- tests ----

    def test_same_world_and_result(self):
        # Catches: a prepared run that differs from one made on demand in
        # anything it can see (argv, __file__ and __main__, sys.path[0], a
        # file's mode or size, the FIFO left in place of the script, stdin's
        # content, seals or offset, an extra fd such as the delivery pipe,
        # limits, the environment, the mounts) or in its result (the
        # traceback's file and line, stderr, the exit code).
        pb = self.pb
        self.run_code("print(1)\n", stdin=b"warm")
        runs = []
        for lim, want_prepared in ((LIMITS, True), (LIMITS_B, False), (LIMITS_B, True)):
            if want_prepared:
                self.wait_prepared()
            r, sent, started = self.run_code(PROBE, stdin=b"in\n", files=FILES,
                                             cpu_time_ms=lim["cpu_time_ms"])
            (self.assert_prepared if want_prepared else self.assert_on_demand)(sent, started, r)
            self.assertEqual((r.reason, r.exit_code), (pb.EXIT_REASON_EXITED, 1), describe(pb, r))
            runs.append(r)
        seen = [json.loads(self.body(r)) for r in runs]
        prepared, on_demand = seen[0], seen[1]
        self.assertEqual(prepared["argv"], ["/work/main.py"])
        self.assertEqual(prepared["path"][0], "/work")
        self.assertEqual(prepared["stat"]["/work/main.py"][0], "0o100666")
        self.assertEqual((prepared["stdin_data"], prepared["stdin_eof"]), ("in\n", ""))
        self.assertEqual(prepared["stdin"][3], 0xf)  # SHRINK|GROW|WRITE|SEAL
        self.assertNotEqual(prepared["stdin_write"], "WROTE")
        self.assertEqual(prepared["line"], "import fcntl, json, os, resource, sys\n")
        for key in sorted(set(prepared) | set(on_demand)):
            self.assertEqual(prepared.get(key), on_demand.get(key),
                             "prepared and on-demand runs differ in %s" % key)
        self.assertEqual(seen[2], on_demand)
        for r in runs[1:]:
            self.assertEqual(self.body(r), self.body(runs[0]))
            self.assertEqual(r.stderr, runs[0].stderr)
            self.assertEqual((r.stdout_bytes, r.stderr_bytes, r.signal),
                             (runs[0].stdout_bytes, runs[0].stderr_bytes, runs[0].signal))
        self.assertIn(b'File "/work/main.py", line', runs[0].stderr)
        self.assertIn(b"ValueError: from the probe", runs[0].stderr)
        # The exit status of a prepared run is the script's own.
        self.wait_prepared()
        r, sent, started = self.run_code("raise SystemExit(3)\n",
                                         cpu_time_ms=LIMITS_B["cpu_time_ms"])
        self.assert_prepared(sent, started, r)
        self.assertEqual((r.reason, r.exit_code), (pb.EXIT_REASON_EXITED, 3), describe(pb, r))
        # The CPU of its preparation (python3's start) is not the run's.
        self.wait_prepared()
        r, sent, started = self.run_code("pass\n", cpu_time_ms=LIMITS_B["cpu_time_ms"])
        self.assert_prepared(sent, started, r)
        print("prepared pass: wall %.1f ms cpu %.1f ms" % (r.wall_time_us / 1e3,
                                                             r.cpu_time_us / 1e3))

    def test_what_a_prepared_jail_cannot_take(self):
        # Catches: a run delivered to a prepared jail that cannot run it as a
        # jail made on demand would: its environment read by Python at start,
        # its arguments, a coding declaration (read through a seek), inputs
        # bigger than the delivery takes, another script name, other limits.
        pb = self.pb
        self.run_code("print(1)\n")
        cases = [
            ("coding", dict(filename="main.py"),
             "# -*- coding: latin-1 -*-\nprint('\xe9')\n", "\xe9\n".encode()),
            ("big file", dict(files=[("big.bin", b"z" * (2 * MiB))]),
             "import os\nprint(os.path.getsize('big.bin'))\n", b"2097152\n"),
            ("big script", {}, "x = %r\nprint(len(x))\n" % ("y" * 100000), b"100000\n"),
            ("other name", dict(filename="job.py"), "print(__file__)\n", b"/work/job.py\n"),
            ("other limits", dict(memory_bytes=128 * MiB),
             "import os\ns = os.statvfs('/tmp')\nprint(s.f_blocks * s.f_frsize)\n",
             b"134217728\n"),
        ]
        for name, kw, text, want in cases:
            self.wait_prepared()
            r, sent, started = self.run_code(text, **kw)
            self.assert_on_demand(sent, started, r)
            self.assertEqual((r.reason, r.exit_code, self.body(r)),
                             (pb.EXIT_REASON_EXITED, 0, want), name + ": " + describe(pb, r))
        # An environment, arguments and files back (`collect`: the pid 1 of
        # a jail made with the patterns gathers them); no jail is prepared
        # after such a run: it could not have taken it.
        for kw, text, want in (
                (dict(env={"PYTHONHASHSEED": "0", "X": "y"}),
                 "import os, sys\nprint(sys.flags.hash_randomization, os.environ['X'])\n",
                 b"0 y\n"),
                (dict(args=["a", "b"]), "import sys\nprint(sys.argv)\n",
                 b"['/work/main.py', 'a', 'b']\n"),
                (dict(collect=["out/*.txt"]),
                 "import os\nos.mkdir('out')\nopen('out/a.txt', 'w').write('back')\n"
                 "print(sorted(os.listdir('.')))\n", b"['main.py', 'out']\n")):
            self.run_code("print(1)\n")
            self.wait_prepared()
            r, sent, started = self.run_code(text, **kw)
            self.assert_on_demand(sent, started, r)
            self.assertEqual(self.body(r), want, describe(pb, r))
            if "collect" in kw:
                self.assertEqual([(f.path, f.content) for f in r.files],
                                 [("out/a.txt", b"back")], describe(pb, r))
                self.assertFalse(r.files_truncated, describe(pb, r))
            # Nothing was prepared after it: the next run is on demand.
            time.sleep(0.5)
            self.assertEqual(prepared_jail_pids(processes_in(workers_of(self.sb.id)[0]["Id"])),
                             set(), "a jail was prepared after a run that could not have "
                             "taken one (%s)" % sorted(kw))
            r, sent, started = self.run_code("print(3)\n")
            self.assert_on_demand(sent, started, r)
            self.assertEqual(self.body(r), b"3\n", describe(pb, r))
        r, _, _ = self.run_code("print(2)\n", memory_bytes=128 * MiB)
        self.assertEqual(self.body(r), b"2\n", describe(pb, r))
        # The next run like the last gets a prepared jail again, made for it.
        self.wait_prepared()
        r, sent, started = self.run_code(
            "import os\ns = os.statvfs('/tmp')\nprint(s.f_blocks * s.f_frsize)\n",
            memory_bytes=128 * MiB)
        self.assert_prepared(sent, started, r)
        self.assertEqual(self.body(r), b"134217728\n", describe(pb, r))
        self.wait_prepared()
        r, sent, started = self.run_code("print(__file__)\n", filename="job.py")
        self.assert_on_demand(sent, started, r)  # limits back to the sandbox's
        self.wait_prepared()
        r, sent, started = self.run_code("print(__file__)\n", filename="job.py")
        self.assert_prepared(sent, started, r)
        self.assertEqual(self.body(r), b"/work/job.py\n", describe(pb, r))

    def test_run_cannot_reach_the_next_jail(self):
        # Catches: a next jail prepared while a run (or what it left) still
        # lives, where the run could signal, trace or read it: during a run
        # the worker holds exactly one jail; a double-forked survivor that
        # kills every pid it can see is gone before the next jail exists,
        # and the next (prepared) run is whole and sees only itself.
        pb = self.pb
        self.run_code("print(1)\n")
        self.wait_prepared()
        r, _, _ = self.run_code(r"""
import ctypes, os, signal, sys, time
libc = ctypes.CDLL(None, use_errno=True)
main = os.getpid()
if os.fork() == 0:
    os.setsid()
    libc.prctl(1, 0, 0, 0, 0)  # no parent-death signal
    if os.fork() == 0:
        for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            signal.signal(s, signal.SIG_IGN)
        while os.path.exists('/proc/%d' % main):  # the run's own end first
            time.sleep(0.001)
        end = time.time() + 8
        while time.time() < end:
            for p in os.listdir('/proc'):
                if p.isdigit() and int(p) != os.getpid():
                    try:
                        os.kill(int(p), signal.SIGKILL)
                    except OSError:
                        pass
            try:
                os.kill(-1, signal.SIGKILL)
            except OSError:
                pass
            time.sleep(0.005)
        os._exit(0)
    os._exit(0)
time.sleep(0.2)
print('survivor started')
""")
        self.assertEqual((r.reason, self.body(r)), (pb.EXIT_REASON_EXITED, b"survivor started\n"),
                         describe(pb, r))
        self.wait_prepared()
        self.assertEqual(run_processes_of_sandbox(self.sb.id), [],
                         "something of the last run lives beside the prepared jail")
        # While a prepared run goes on, no other jail exists in the worker.
        box = {}
        mark = "mk" + os.urandom(5).hex()

        def victim():
            box["r"] = self.run_code(
                "import os, subprocess, sys, time\n"
                "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)', %r])\n"
                "time.sleep(3)\n"
                "print(sorted(x for x in os.listdir('/proc') if x.isdigit()))\n"
                "p.kill()\n" % mark)
        th = threading.Thread(target=victim)
        th.start()
        try:
            cid = workers_of(self.sb.id)[0]["Id"]
            seen = wait_until(lambda: [p for p in processes_in(cid) if mark in p[2]], 30, 0.05)
            self.assertTrue(seen, "the run never started")
            procs = processes_in(cid)
            bwraps = [p for p in procs if p[2].startswith("/usr/bin/bwrap ")]
            helpers = [p for p in procs if "--jail-child" in p[2] and not
                       p[2].startswith("/usr/bin/bwrap ")]
            self.assertEqual((len(bwraps), len(helpers)), (1, 1),
                             "more than the running jail in the worker: %s" % procs)
        finally:
            th.join(60)
        r, sent, started = box["r"]
        self.assert_prepared(sent, started, r)
        self.assertEqual((r.reason, r.exit_code), (pb.EXIT_REASON_EXITED, 0), describe(pb, r))
        # pid 1 (the helper), python3 (2) and its child: nothing of the
        # survivor, nothing of another jail.
        self.assertEqual(self.body(r), b"['1', '2', '3']\n", describe(pb, r))


if __name__ == "__main__":
    unittest.main(verbosity=2)
