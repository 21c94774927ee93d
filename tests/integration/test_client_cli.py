"""The C client side against the real safeevald: the `safeeval` command
(create/eval/exec/get/ls/destroy/run, --max-runs and the workers shown, exit
codes, --json, errors, Ctrl-C during run), the tl;dr example, and
libsafeeval's Eval latency. After every test the engine holds no container
of this program's daemon instance but the class sandbox's (by label)."""

import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import BUILD_DIR, SOURCE_DIR, Daemon  # noqa: E402
from sandbox_engine import (assert_nothing_left, finish, processes_of_sandbox,  # noqa: E402
                            wait_until, workers_of)

BASE = ["--base-image", "safeeval/python:{version}"]
CLI = os.path.join(BUILD_DIR, "bin", "safeeval")
TLDR = os.path.join(BUILD_DIR, "bin", "safeeval_tldr")
LATENCY = os.path.join(BUILD_DIR, "bin", "safeeval_eval_latency")
NUMPY_JOB = os.path.join(SOURCE_DIR, "examples", "numpy_job.py")
SLOW = 300  # seconds a create may take (the first one builds the image)
MAX_RUNS = 2  # the class sandbox's --max-runs (the service's default is 4)


class ClientCli(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = Daemon(extra_args=BASE)
        cls.env = dict(os.environ, SAFEEVAL_TARGET=cls.d.address)
        cls.tmp = tempfile.mkdtemp(prefix="safeeval-cli-")
        r = cls.cli("create", "--python", "3.11", "--module", "numpy", "--label", "team=ml",
                    "--idle-timeout", "300", "--wall-ms", "5000", "--max-runs", str(MAX_RUNS),
                    timeout=SLOW)
        if r.returncode != 0:
            cls.d.close()
            raise AssertionError(r.stderr)
        cls.sid = r.stdout.decode().strip()

    @classmethod
    def tearDownClass(cls):
        try:
            destroyed = cls.cli("destroy", cls.sid)
            assert destroyed.returncode == 0, destroyed.stderr
        finally:
            shutil.rmtree(cls.tmp, ignore_errors=True)
            finish(cls.d)  # nothing left, the daemon exited 0

    def tearDown(self):
        # Asked of the engine: `run`, the tl;dr example and failed creates
        # leave no container behind.
        assert_nothing_left(keep=[self.sid])

    @classmethod
    def cli(cls, *args, stdin=b"", timeout=120, env=None):
        return subprocess.run([CLI] + list(args), input=stdin, capture_output=True,
                              timeout=timeout, env=env or cls.env)

    def live_ids(self):
        r = self.d.stub.ListSandboxes(self.d.pb.ListSandboxesRequest(), timeout=30)
        return {s.id: s for s in r.sandboxes}

    def write(self, name, data):
        path = os.path.join(self.tmp, name)
        with open(path, "wb") as f:
            f.write(data)
        return path

    # ---- the sandbox commands ----

    def test_create_get_ls(self):
        self.assertRegex(self.sid, r"^[A-Za-z0-9_-]+$")
        r = self.cli("get", self.sid, "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        sb = json.loads(r.stdout)
        self.assertEqual(sb["id"], self.sid)
        self.assertTrue(sb["python_version"].startswith("3.11"), sb)
        self.assertEqual(sb["modules"], ["numpy"])
        self.assertEqual(sb["labels"], {"team": "ml"})
        self.assertEqual(sb["idle_timeout_s"], 300)
        self.assertEqual(sb["limits"]["wall_time_ms"], 5000)
        self.assertGreater(sb["limits"]["memory_bytes"], 0)
        self.assertTrue(sb["image"])
        self.assertGreater(sb["created_at_ms"], 1600000000000)
        # --max-runs reached the service; workers is what the engine has.
        self.assertEqual(sb["max_concurrent_runs"], MAX_RUNS, sb)
        running = [c for c in workers_of(self.sid) if c["State"] == "running"]
        self.assertEqual(sb["workers"], len(running), (sb, running))
        self.assertTrue(1 <= sb["workers"] <= MAX_RUNS, sb)
        r = self.cli("get", self.sid)
        self.assertEqual(r.returncode, 0)
        self.assertIn(b"python:          3.11", r.stdout)
        self.assertIn(b"\nmax_runs:        %d\n" % MAX_RUNS, r.stdout)
        self.assertRegex(r.stdout.decode(), r"\nworkers:         [1-%d]\n" % MAX_RUNS)
        r = self.cli("ls")
        self.assertEqual(r.returncode, 0)
        self.assertIn(self.sid.encode(), r.stdout)
        self.assertIn(b"WORKERS", r.stdout.splitlines()[0])
        line = [ln for ln in r.stdout.decode().splitlines() if ln.startswith(self.sid)]
        self.assertRegex(line[0], r" [1-%d]/%d " % (MAX_RUNS, MAX_RUNS))
        r = self.cli("--json", "ls")
        ls = {s["id"]: s for s in json.loads(r.stdout)}
        self.assertIn(self.sid, ls)
        self.assertEqual(ls[self.sid]["max_concurrent_runs"], MAX_RUNS)

    def test_max_runs(self):
        # The default is the service's (4); above it the service refuses;
        # not a number is a usage error. None of them leaves a container.
        r = self.cli("--json", "create", "--python", "3.11", "--module", "numpy", timeout=SLOW)
        self.assertEqual(r.returncode, 0, r.stderr)
        sb = json.loads(r.stdout)
        try:
            self.assertEqual((sb["max_concurrent_runs"], sb["workers"]), (4, 1), sb)
        finally:
            self.assertEqual(self.cli("destroy", sb["id"]).returncode, 0)
        r = self.cli("create", "--python", "3.11", "--max-runs", "5", timeout=SLOW)
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertIn(b"INVALID_ARGUMENT", r.stderr)
        self.assertIn(b"max_concurrent_runs", r.stderr)
        r = self.cli("create", "--python", "3.11", "--max-runs", "two")
        self.assertEqual(r.returncode, 2, r.stderr)
        r = self.cli("eval", self.sid, "--max-runs", "2", "-c", "1")  # create only
        self.assertEqual(r.returncode, 2, r.stderr)

    def test_eval(self):
        r = self.cli("eval", self.sid, "-c", 'print("Hello World")')
        self.assertEqual((r.returncode, r.stdout, r.stderr), (0, b"Hello World\n", b""))
        # Code on stdin; the exit status passes through; stderr stays stderr.
        r = self.cli("eval", self.sid, stdin=b"import sys\nprint('out')\n"
                     b"print('err', file=sys.stderr)\nsys.exit(7)\n")
        self.assertEqual((r.returncode, r.stdout, r.stderr), (7, b"out\n", b"err\n"))
        # --stdin-file, --env, --file, --arg
        data = self.write("in.txt", b"line1\nline2\n")
        extra = self.write("extra.csv", b"a,b\n1,2\n")
        code = ("import os, sys\n"
                "print(sys.stdin.read().count('line'), os.environ['K'], sys.argv[1:])\n"
                "print(open('data/e.csv').read().strip().replace('\\n', '|'))\n")
        r = self.cli("eval", self.sid, "-c", code, "--stdin-file", data, "--env", "K=v=1",
                     "--file", extra + ":data/e.csv", "--arg", "x", "--arg", "-y")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, b"2 v=1 ['x', '-y']\na,b|1,2\n")

    def test_exec(self):
        r = self.cli("exec", self.sid, NUMPY_JOB, "4")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b"numpy ", r.stdout)
        self.assertIn(b"trace: 30\n", r.stdout)
        # The script runs under its base name; args after FILE are the script's,
        # dashes included; --stdin - passes our own stdin through.
        job = self.write("who.py", b"import os, sys\n"
                         b"print(os.path.basename(sys.argv[0]), sys.argv[1:], sys.stdin.read())\n")
        r = self.cli("exec", "--stdin", "-", self.sid, job, "--json", "-x", stdin=b"piped")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, b"who.py ['--json', '-x'] piped\n")
        # Without --stdin the run's stdin is empty, not ours.
        r = self.cli("exec", self.sid, job, stdin=b"not passed")
        self.assertEqual(r.stdout, b"who.py [] \n")

    def test_exit_codes(self):
        r = self.cli("eval", self.sid, "-c", "import sys; sys.exit(3)")
        self.assertEqual(r.returncode, 3)
        r = self.cli("eval", self.sid, "-c",
                     "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)")
        self.assertEqual(r.returncode, 128 + signal.SIGSEGV, r.stderr)
        t = time.monotonic()
        r = self.cli("eval", "--wall-ms", "400", self.sid, "-c", "while True: pass")
        self.assertEqual(r.returncode, 124, r.stderr)
        self.assertIn(b"wall-time limit", r.stderr)
        self.assertLess(time.monotonic() - t, 10)
        r = self.cli("eval", "--cpu-ms", "300", "--wall-ms", "4000", self.sid, "-c",
                     "while True: pass")
        # The CPU limit, measured: never the wall time as a stand-in.
        self.assertEqual(r.returncode, 152, r.stderr)
        self.assertIn(b"CPU-time limit", r.stderr)
        r = self.cli("eval", "--memory", "64M", self.sid, "-c",
                     "x = []\nwhile True: x.append(' ' * 10**6)")
        self.assertEqual(r.returncode, 125, r.stderr)
        self.assertIn(b"memory limit", r.stderr)
        r = self.cli("eval", "--max-file", "64K", self.sid, "-c",
                     "open('big', 'w').write('x' * 10**6)")
        self.assertEqual(r.returncode, 153, r.stderr)
        # A plain SIGKILL stays distinguishable from the memory limit.
        r = self.cli("eval", self.sid, "-c", "import os; os.kill(os.getpid(), 9)")
        self.assertEqual(r.returncode, 128 + signal.SIGKILL, r.stderr)

    def test_json(self):
        r = self.cli("eval", "--json", self.sid, "-c",
                     "import sys; print('hé'); sys.stderr.buffer.write(b'\\xff\\x00z')")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stderr, b"")
        j = json.loads(r.stdout)
        self.assertEqual(j["reason"], "EXITED")
        self.assertEqual(j["exit_code"], 0)
        self.assertEqual(j["signal"], 0)
        self.assertEqual((j["stdout"], j["stdout_encoding"]), ("hé\n", "utf-8"))
        self.assertEqual(j["stderr_encoding"], "base64")
        self.assertEqual(base64.b64decode(j["stderr"]), b"\xff\x00z")
        self.assertEqual(j["stdout_bytes"], len("hé\n".encode()))
        for k in ("stdout_truncated", "stderr_truncated", "wall_time_us", "cpu_time_us",
                  "max_rss_bytes", "stderr_bytes"):
            self.assertIn(k, j)
        self.assertGreater(j["wall_time_us"], 0)
        # The exit status stays the script's with --json.
        r = self.cli("eval", "--json", "--wall-ms", "300", self.sid, "-c", "while True: pass")
        self.assertEqual(r.returncode, 124)
        self.assertEqual(json.loads(r.stdout)["reason"], "WALL_TIMEOUT")
        # Truncation is reported.
        r = self.cli("eval", "--json", "--max-output", "1K", self.sid, "-c", "print('x' * 5000)")
        j = json.loads(r.stdout)
        self.assertTrue(j["stdout_truncated"])
        self.assertEqual(len(j["stdout"]), 1024)
        self.assertEqual(j["stdout_bytes"], 5001)

    # ---- errors ----

    def test_errors(self):
        r = self.cli("eval", "0123456789abcdef01234567", "-c", "print(1)")
        self.assertEqual(r.returncode, 3)
        line = r.stderr.decode()
        self.assertTrue(line.startswith("safeeval: eval: NOT_FOUND: "), line)
        self.assertEqual(line.count("\n"), 1)
        r = self.cli("--json", "get", "0123456789abcdef01234567")
        self.assertEqual(r.returncode, 3)
        self.assertEqual(json.loads(r.stdout)["error"]["status"], "NOT_FOUND")
        r = self.cli("eval", self.sid)  # no -c and empty stdin: the service refuses
        self.assertEqual(r.returncode, 3)
        self.assertIn(b"INVALID_ARGUMENT", r.stderr)
        r = self.cli("exec", self.sid, os.path.join(self.tmp, "missing.py"))
        self.assertEqual(r.returncode, 4)
        r = self.cli("eval", self.sid, "--memory", "12X", "-c", "1")
        self.assertEqual(r.returncode, 2)
        r = self.cli("--target", "unix:" + os.path.join(self.tmp, "none.sock"), "ls")
        self.assertEqual(r.returncode, 3)
        self.assertIn(b"UNAVAILABLE", r.stderr)
        r = self.cli("--timeout", "300ms", "eval", self.sid, "-c", "import time; time.sleep(3)")
        self.assertEqual(r.returncode, 3)
        self.assertIn(b"DEADLINE_EXCEEDED", r.stderr)
        r = self.cli("exec", "--help")
        self.assertEqual(r.returncode, 0)
        self.assertIn(b"usage: safeeval exec", r.stdout)

    # ---- run: create, run, destroy ----

    def run_sandboxes(self):
        return [s for s in self.live_ids().values() if "safeeval-cli-run" in s.labels]

    def test_run(self):
        r = self.cli("run", "--python", "3.11", "--module", "numpy", NUMPY_JOB, "2",
                     timeout=SLOW)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b"trace: 3\n", r.stdout)
        job = self.write("fail.py", b"import sys\nprint('bye', file=sys.stderr)\nsys.exit(5)\n")
        r = self.cli("run", "-p", "3.11", job, timeout=SLOW)
        self.assertEqual((r.returncode, r.stderr), (5, b"bye\n"))
        self.assertEqual(self.run_sandboxes(), [])

    def test_run_interrupted(self):
        job = self.write("sleep.py", b"import time\nprint('started', flush=True)\n"
                         b"time.sleep(30)\n")
        mark = "m" + os.urandom(6).hex()
        p = subprocess.Popen([CLI, "run", "-p", "3.11", "--wall-ms", "60000", job, mark],
                             env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        sbs = wait_until(self.run_sandboxes, SLOW, 0.1)
        self.assertTrue(sbs, "the run's sandbox never appeared")
        sid = sbs[0].id
        # The victim is seen running (not a fixed sleep).
        self.assertTrue(wait_until(lambda: processes_of_sandbox(sid, mark), 60, 0.1),
                        "the run never showed up in the sandbox's worker")
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=120)
        self.assertEqual(p.returncode, 130, err)
        self.assertIn(b"interrupted", err)
        self.assertEqual(self.run_sandboxes(), [])
        self.assertEqual(workers_of(sid), [], "the interrupted run's sandbox left containers")

    # ---- the C example and latency ----

    def test_tldr_example(self):
        before = set(self.live_ids())
        r = subprocess.run([TLDR, self.d.address], capture_output=True, timeout=SLOW)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b"\nHello World\n", r.stdout)
        self.assertIn(b"trace: 30\n", r.stdout)
        self.assertEqual(set(self.live_ids()) - before, set())  # it destroyed its sandbox

    def test_eval_latency(self):
        r = subprocess.run([LATENCY, self.d.address, self.sid, "20"], capture_output=True,
                           timeout=300)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        print("\n" + r.stdout.decode().strip(), file=sys.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
