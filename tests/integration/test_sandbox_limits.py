"""Every limit, both bounds, in one reused sandbox: a run under a limit is not
stopped by it, a run over it is stopped with the right reason soon after the
limit (not at a backstop), with exit_code, signal and max_rss_bytes as the
contract says. Wall time, CPU time (summed over processes), memory (summed
over processes), file size, processes and threads (the run's own limit
below the sandbox's), output (exact totals). Runs have no network and see
nothing of another run.

Margins hold on a loaded 2-core machine: a limit may be overshot by at most
1 s (CPU, wall) or a few MiB; nothing is timed below 1 s.
"""
import os
import sys
import threading
import time
import unittest

import grpc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from sandbox_engine import (assert_nothing_left, class_sandbox, describe, finish,  # noqa: E402
                            make_wheelhouse, processes_of_sandbox, run_processes_of_sandbox,
                            wait_until)

MiB = 1 << 20
SANDBOX = dict(wall_time_ms=20000, cpu_time_ms=20000, memory_bytes=256 * MiB,
               max_processes=32, max_output_bytes=1 * MiB, max_file_bytes=8 * MiB)
OVERSHOOT_US = 1000e3  # how far past a time limit a kill may land


class Limits(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.wheels = make_wheelhouse()
        class_sandbox(cls, cls.wheels, SANDBOX, max_concurrent_runs=2)

    @classmethod
    def tearDownClass(cls):
        finish(cls.d, destroy=[cls.sb.id])

    def tearDown(self):
        assert_nothing_left(keep=[self.sb.id])

    def ev(self, code, args=(), **lim):
        t = time.monotonic()
        r = self.d.stub.Eval(self.pb.EvalRequest(sandbox_id=self.sb.id, code=code,
                                                 args=list(args),
                                                 limits=self.pb.Limits(**lim)),
                             timeout=120).result
        return r, time.monotonic() - t

    def reason(self, r, name):
        self.assertEqual(self.pb.ExitReason.Name(r.reason), "EXIT_REASON_" + name,
                         describe(self.pb, r))

    def exited(self, r, code=0):
        self.reason(r, "EXITED")
        self.assertEqual((r.exit_code, r.signal), (code, 0), describe(self.pb, r))
        self.assertGreater(r.max_rss_bytes, 1 * MiB, describe(self.pb, r))

    def killed(self, r, name, signals):
        """Stopped by a limit: the reason, a signal in `signals`, exit_code
        = -signal, a plausible peak memory."""
        self.reason(r, name)
        self.assertIn(r.signal, signals, describe(self.pb, r))
        self.assertEqual(r.exit_code, -r.signal, describe(self.pb, r))
        self.assertGreater(r.max_rss_bytes, 1 * MiB, describe(self.pb, r))

    def test_wall(self):
        # Catches: a run killed before its wall limit or long after it; the
        # wrong reason/signal; a wall limit counted as CPU.
        r, t = self.ev("import time\ntime.sleep(0.6)\nprint('slept')\n", wall_time_ms=1500)
        self.exited(r)
        self.assertEqual(r.stdout, b"slept\n")
        r, t = self.ev("import time\ntime.sleep(100)\n", wall_time_ms=1500, cpu_time_ms=10000)
        self.killed(r, "WALL_TIMEOUT", (9, 15))
        self.assertTrue(1500e3 <= r.wall_time_us <= 1500e3 + OVERSHOOT_US, describe(self.pb, r))
        self.assertLess(r.cpu_time_us, 500e3, describe(self.pb, r))
        self.assertTrue(1.5 <= t < 1.5 + 5, t)
        self.assertLess(r.max_rss_bytes, 64 * MiB, describe(self.pb, r))

    def test_cpu(self):
        # Catches: the CPU limit enforced only by the 2 s RLIMIT_CPU backstop
        # or the wall limit (cpu far past 500 ms), killed early, or counted
        # for one process only (two spinning processes).
        r, _ = self.ev("import time\nt = time.process_time()\n"
                       "while time.process_time() - t < 0.3: pass\nprint('done')\n",
                       cpu_time_ms=1000)
        self.exited(r)
        self.assertEqual(r.stdout, b"done\n")
        self.assertTrue(300e3 <= r.cpu_time_us < 1000e3, describe(self.pb, r))
        r, _ = self.ev("while True: pass\n", cpu_time_ms=500, wall_time_ms=10000)
        self.killed(r, "CPU_TIMEOUT", (9, 24))
        self.assertTrue(500e3 <= r.cpu_time_us <= 500e3 + OVERSHOOT_US, describe(self.pb, r))
        self.assertLess(r.wall_time_us, 500e3 + 3 * OVERSHOOT_US, describe(self.pb, r))
        r, _ = self.ev("import os\nos.fork()\nwhile True: pass\n", cpu_time_ms=1000,
                       wall_time_ms=10000)
        self.killed(r, "CPU_TIMEOUT", (9, 24))
        self.assertTrue(1000e3 <= r.cpu_time_us <= 1000e3 + OVERSHOOT_US, describe(self.pb, r))

    def test_memory(self):
        # Catches: memory killed below its limit or not at all; memory
        # counted per process instead of summed (3 x 30 MiB under 64 MiB);
        # MEMORY_LIMIT without SIGKILL or with a peak far past the limit.
        r, _ = self.ev("b = b'x' * (40 << 20)\nprint(len(b) >> 20)\n", memory_bytes=64 * MiB)
        self.exited(r)
        self.assertEqual(r.stdout, b"40\n")
        self.assertTrue(40 * MiB <= r.max_rss_bytes < 64 * MiB, describe(self.pb, r))
        r, _ = self.ev("b = []\nwhile True: b.append(b'x' * (16 << 20))\n",
                       memory_bytes=64 * MiB)
        self.killed(r, "MEMORY_LIMIT", (9,))
        self.assertTrue(32 * MiB <= r.max_rss_bytes <= 64 * MiB + 32 * MiB, describe(self.pb, r))
        r, _ = self.ev("import os, time\n"
                       "for _ in range(2):\n"
                       "    if os.fork() == 0:\n"
                       "        break\n"
                       "b = b'x' * (30 << 20)\nprint('holding', flush=True)\ntime.sleep(3)\n",
                       memory_bytes=64 * MiB)
        self.reason(r, "MEMORY_LIMIT")

    def test_file_size(self):
        # Catches: a file of exactly max_file_bytes refused, one byte more
        # allowed, or the wrong reason/signal.
        write = ("import sys\nn = int(sys.argv[1])\n"
                 "with open('f', 'wb') as f:\n"
                 "    f.write(b'x' * (n - 1))\n    f.flush()\n"
                 "    print('almost', flush=True)\n    f.write(b'x')\n"
                 "import os\nprint('size', os.path.getsize('f'))\n")
        r, _ = self.ev(write, [str(1 * MiB)], max_file_bytes=1 * MiB)
        self.exited(r)
        self.assertEqual(r.stdout, b"almost\nsize %d\n" % MiB, describe(self.pb, r))
        r, _ = self.ev(write, [str(1 * MiB + 1)], max_file_bytes=1 * MiB)
        self.killed(r, "FILE_SIZE_LIMIT", (25,))
        self.assertEqual(r.stdout, b"almost\n", describe(self.pb, r))

    FORK_LOOP = ("import os, sys, time\nn = 0\n"
                 "for _ in range(200):\n"
                 "    try:\n"
                 "        if os.fork() == 0:\n"
                 "            time.sleep(30); os._exit(0)\n"
                 "        n += 1\n"
                 "    except OSError:\n"
                 "        break\n"
                 "print('forked', n)\n")

    def forked(self, r):
        self.exited(r)
        words = r.stdout.decode().split()
        self.assertEqual(words[:1], ["forked"], describe(self.pb, r))
        return int(words[1])

    def test_processes(self):
        # Catches: a run's own max_processes ignored (the sandbox's 32
        # stopping the fork loop instead), a limit far below what was asked,
        # threads not counted; the sleeping children outliving the run.
        r, t = self.ev(self.FORK_LOOP, max_processes=8)
        n = self.forked(r)
        print("max_processes 8: %d children" % n)
        self.assertTrue(8 - 3 <= n < 8, describe(self.pb, r))
        self.assertLess(t, 10)
        r, _ = self.ev(self.FORK_LOOP)  # the sandbox's 32
        n = self.forked(r)
        print("max_processes 32 (sandbox): %d children" % n)
        self.assertTrue(32 - 3 <= n < 32, describe(self.pb, r))
        r, _ = self.ev("import threading, time\nn = 0\ntry:\n"
                       "    for _ in range(200):\n"
                       "        threading.Thread(target=time.sleep, args=(30,), daemon=True)"
                       ".start()\n"
                       "        n += 1\n"
                       "except RuntimeError:\n    pass\nprint('threads', n, flush=True)\n"
                       "import os\nos._exit(0)\n", max_processes=8)
        self.exited(r)
        words = r.stdout.decode().split()
        self.assertEqual(words[:1], ["threads"], describe(self.pb, r))
        n = int(words[1])
        print("max_processes 8: %d threads" % n)
        self.assertTrue(8 - 3 <= n < 8, describe(self.pb, r))
        # Nothing of them is left; the sandbox answers at once.
        self.assertEqual([p for p in run_processes_of_sandbox(self.sb.id)
                          if "/work/main.py" in p[3]], [])
        r, t = self.ev("print('alive')")
        self.assertEqual(r.stdout, b"alive\n")
        self.assertLess(t, 5)

    def test_output(self):
        # Catches: output cut at the wrong length, truncation flags or
        # totals wrong (totals count beyond the kept bytes), an exact fit
        # flagged as truncated.
        r, _ = self.ev("import sys\nsys.stdout.write('x' * 300000)\nsys.stderr.write('e' * 5000)\n",
                       max_output_bytes=1024)
        self.exited(r)
        self.assertEqual((r.stdout, r.stdout_truncated, r.stdout_bytes),
                         (b"x" * 1024, True, 300000), (len(r.stdout), r.stdout_bytes))
        self.assertEqual((r.stderr, r.stderr_truncated, r.stderr_bytes),
                         (b"e" * 1024, True, 5000), (len(r.stderr), r.stderr_bytes))
        r, _ = self.ev("import sys\nsys.stdout.write('x' * 1024)\nsys.stderr.write('e' * 1023)\n",
                       max_output_bytes=1024)
        self.exited(r)
        self.assertEqual((r.stdout, r.stdout_truncated, r.stdout_bytes),
                         (b"x" * 1024, False, 1024))
        self.assertEqual((r.stderr, r.stderr_truncated, r.stderr_bytes),
                         (b"e" * 1023, False, 1023))

    def test_no_network(self):
        # Catches: a run reaching the network or seeing the host's interfaces.
        r, _ = self.ev("import socket\n"
                       "s = socket.socket()\ns.settimeout(2)\n"
                       "try:\n    s.connect(('1.1.1.1', 80)); print('CONNECTED')\n"
                       "except OSError as e:\n    print('refused', e.errno)\n"
                       "print(sorted(n for i, n in socket.if_nameindex()))\n")
        self.exited(r)
        lines = r.stdout.decode().splitlines()
        self.assertEqual(len(lines), 2, describe(self.pb, r))
        self.assertTrue(lines[0].startswith("refused"), describe(self.pb, r))
        self.assertNotIn("eth0", lines[1])

    def test_runs_do_not_see_each_other(self):
        # Catches: a concurrent run's files or processes visible to another.
        # The victim is seen running with its secret written before the probe
        # starts (no fixed sleep: a slow victim would leave nothing to find).
        mark = "victim" + os.urandom(4).hex()
        holder = {}

        def victim():
            holder["r"], _ = self.ev(
                "import subprocess, sys, time\nopen('secret.txt', 'w').write('s3cret')\n"
                "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)',"
                " sys.argv[1] + '-ready'])\n"
                "time.sleep(4)\np.kill()\nprint('done')\n", [mark])
        th = threading.Thread(target=victim)
        th.start()
        try:
            seen = wait_until(lambda: processes_of_sandbox(self.sb.id, mark + "-ready"), 30, 0.1)
            self.assertTrue(seen, "the victim never started")
            r, _ = self.ev("import os, glob\n"
                           "hits = []\n"
                           "for top in ('/tmp', '/work', '/home', '/run', '/dev/shm', '/var/tmp',"
                           " '.'):\n"
                           "    hits += glob.glob(top + '/**/secret.txt', recursive=True)\n"
                           "print(hits)\n"
                           "print(len([p for p in os.listdir('/proc') if p.isdigit()]))\n"
                           "print(os.listdir('.'))\n")
            self.assertTrue(th.is_alive(), "the victim ended before the probe did")
        finally:
            th.join()
        self.exited(holder["r"])
        self.assertEqual(holder["r"].stdout, b"done\n")
        self.exited(r)
        lines = r.stdout.decode().splitlines()
        self.assertEqual(len(lines), 3, describe(self.pb, r))
        self.assertEqual(lines[0], "[]", describe(self.pb, r))
        self.assertLessEqual(int(lines[1]), 3, "more than the jail's own processes")
        self.assertNotIn("secret.txt", lines[2])


if __name__ == "__main__":
    print("instance", harness.INSTANCE)
    try:
        unittest.main(verbosity=2)
    except grpc.RpcError as e:
        print("RPC error:", e.code(), e.details())
        raise
