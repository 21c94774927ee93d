"""The C side of issue 11 against the real daemon: libsafeeval's streamed
runs (order and totals, the first chunk long before the end, a callback
that stops the run, first-chunk latency), the CLI printing live, --collect
into --out-dir (nested, binary, never outside it), `safeeval info`, and
create progress lines (--progress)."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import BUILD_DIR, SOURCE_DIR, Daemon  # noqa: E402
from sandbox_engine import finish, workers_of  # noqa: E402

BASE = ["--base-image", "safeeval/python:{version}"]
CLI = os.path.join(BUILD_DIR, "bin", "safeeval")
PROBE = os.path.join(BUILD_DIR, "bin", "safeeval_stream_probe")
SLOW = 300


class ClientStream(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = Daemon(extra_args=BASE)
        cls.env = dict(os.environ, SAFEEVAL_TARGET=cls.d.address)
        cls.tmp = tempfile.mkdtemp(prefix="safeeval-stream-")
        r = cls.cli("create", "--python", "3.11", "--max-runs", "1", timeout=SLOW)
        if r.returncode != 0:
            finish(cls.d)
            raise AssertionError(r.stderr)
        cls.sid = r.stdout.decode().strip()

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)
        finish(cls.d, destroy=[cls.sid])

    @classmethod
    def cli(cls, *args, timeout=120):
        return subprocess.run([CLI] + list(args), capture_output=True, timeout=timeout,
                              env=cls.env, stdin=subprocess.DEVNULL)

    def probe(self, *args):
        r = subprocess.run([PROBE, self.d.address, self.sid] + list(args), capture_output=True,
                           timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        return json.loads(r.stdout)

    def test_lib_stream_order_totals_and_timing(self):
        s = self.probe("ticker")
        self.assertEqual((s["reason"], s["exit_code"]), ("EXITED", 0), s)
        self.assertEqual((s["lines"], s["order_ok"]), (30, 1), s)
        self.assertEqual(s["out_bytes"], 30 * 7)
        self.assertEqual(s["err_bytes"], 3 * 2)
        self.assertEqual((s["stdout_bytes"], s["stderr_bytes"]), (30 * 7, 6), s)
        self.assertEqual((s["stdout_len"], s["stderr_len"]), (0, 0), s)
        self.assertGreater(s["chunks"], 10, s)
        # The run lasts 3 s: its first output came long before its end.
        self.assertGreater(s["end_ms"] - s["first_ms"], 1500, s)

    def test_lib_callback_stops_the_run_and_the_worker_stays(self):
        before = [w["Id"] for w in workers_of(self.sid)]
        s = self.probe("stop", "5")
        self.assertEqual((s["rc"], s["status"], s["chunks"]), (-1, "CANCELLED", 5), s)
        t = time.monotonic()
        r = self.cli("eval", self.sid, "-c", "print(4)")
        self.assertEqual((r.returncode, r.stdout), (0, b"4\n"), r.stderr)
        self.assertLess(time.monotonic() - t, 10)
        self.assertEqual([w["Id"] for w in workers_of(self.sid)], before)

    def test_first_chunk_latency(self):
        s = self.probe("latency", "20")
        print("\nstreamed print(1): first chunk p50 %.2f ms, max %.2f ms (n=%d)"
              % (s["first_chunk_ms_p50"], s["first_chunk_ms_max"], s["n"]), file=sys.stderr)

    def test_cli_prints_live(self):
        code = ("import sys, time\nprint('first', flush=True)\n"
                "print('to stderr', file=sys.stderr, flush=True)\n"
                "time.sleep(3)\nprint('last')\n")
        t0 = time.monotonic()
        p = subprocess.Popen([CLI, "eval", self.sid, "-c", code], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, env=self.env, stdin=subprocess.DEVNULL)
        first = p.stdout.readline()
        t_first = time.monotonic() - t0
        rest, err = p.communicate(timeout=60)
        t_end = time.monotonic() - t0
        self.assertEqual((p.returncode, first, rest, err), (0, b"first\n", b"last\n",
                                                            b"to stderr\n"))
        self.assertGreater(t_end - t_first, 1.5, (t_first, t_end))
        # --json keeps the output in the JSON (no live printing).
        r = self.cli("--json", "eval", self.sid, "-c", "print('j')")
        self.assertEqual(json.loads(r.stdout)["stdout"], "j\n")

    def test_cli_exec_live_and_truncation_note(self):
        path = os.path.join(self.tmp, "big.py")
        with open(path, "w") as f:
            f.write("import sys\nsys.stdout.write('x' * 5000)\n")
        r = self.cli("exec", self.sid, "--max-output", "1K", path)
        self.assertEqual((r.returncode, r.stdout), (0, b"x" * 1024), r.stderr)
        self.assertIn(b"stdout truncated: 1024 of 5000 bytes kept", r.stderr)

    def test_cli_collect_into_out_dir(self):
        out = os.path.join(self.tmp, "collected")
        code = ("import os\nos.makedirs('res/sub')\nopen('res/a.csv','w').write('a')\n"
                "open('res/sub/b.bin','wb').write(bytes(range(256)))\n"
                "os.symlink('/etc/passwd', 'res/p.csv')\n")
        r = self.cli("eval", self.sid, "-c", code, "--collect", "res/*.csv", "--collect",
                     "res/sub/*", "--out-dir", out)
        self.assertEqual(r.returncode, 0, r.stderr)
        got = {}
        for root, _, files in os.walk(out):
            for name in files:
                p = os.path.join(root, name)
                with open(p, "rb") as f:
                    got[os.path.relpath(p, out)] = f.read()
        self.assertEqual(got, {"res/a.csv": b"a", "res/sub/b.bin": bytes(range(256))})
        # A symlink already in the out dir is not written through.
        victim = os.path.join(self.tmp, "victim.txt")
        with open(victim, "w") as f:
            f.write("keep")
        os.unlink(os.path.join(out, "res", "a.csv"))
        os.symlink(victim, os.path.join(out, "res", "a.csv"))
        r = self.cli("eval", self.sid, "-c", code, "--collect", "res/a.csv", "--out-dir", out)
        self.assertEqual(r.returncode, 4, r.stderr)
        self.assertIn(b"write ", r.stderr)
        with open(victim) as f:
            self.assertEqual(f.read(), "keep")
        # --json lists them; the cap note.
        r = self.cli("--json", "eval", self.sid, "-c", code, "--collect", "res/sub/*",
                     "--out-dir", os.path.join(self.tmp, "j"))
        j = json.loads(r.stdout)
        self.assertEqual((j["files"], j["files_truncated"]),
                         ([{"path": "res/sub/b.bin", "bytes": 256}], False))
        r = self.cli("eval", self.sid, "-c", code, "--collect", "res/*", "--collect", "res/sub/*",
                     "--max-collect-files", "1", "--out-dir", os.path.join(self.tmp, "k"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b"collected files truncated: 1 brought back", r.stderr)
        r = self.cli("eval", self.sid, "-c", "1", "--collect", "../x")
        self.assertEqual(r.returncode, 3)
        self.assertIn(b"INVALID_ARGUMENT", r.stderr)
        self.assertIn(b"collect[0]", r.stderr)

    def test_cli_info(self):
        r = self.cli("info")
        self.assertEqual(r.returncode, 0, r.stderr)
        text = r.stdout.decode()
        self.assertIn("api:                 safeeval.v1", text)
        self.assertRegex(text, r"\n  3\.11     3\.11\.\d+ +safeeval/python:3\.11\n")
        self.assertIn("max_collect_bytes", text)
        r = self.cli("--json", "info")
        j = json.loads(r.stdout)
        self.assertEqual(j["api_version"], "safeeval.v1")
        self.assertEqual(j["default_python_version"], "3.11")
        self.assertIn("3.11", [p["version"] for p in j["pythons"]])
        self.assertEqual(j["max_limits"]["max_collect_files"], 1024)

    def test_cli_create_progress(self):
        # A spec never built: its build's steps come as progress lines on
        # stderr (--progress, as stderr is not a terminal here).
        mod = "numpy>=1.0.%d" % (1000 + os.getpid() % 1000)
        r = self.cli("--json", "create", "--python", "3.11", "--module", mod, "--progress",
                     timeout=SLOW)
        self.assertEqual(r.returncode, 0, r.stderr)
        sb = json.loads(r.stdout)
        try:
            lines = r.stderr.decode().splitlines()
            self.assertTrue(any(ln.startswith("safeeval: Step ") for ln in lines), lines[:20])
            # Without --progress and without a terminal: quiet.
            r2 = self.cli("--json", "create", "--python", "3.11", "--module", mod,
                          timeout=SLOW)
            self.assertEqual((r2.returncode, r2.stderr), (0, b""))
            self.assertEqual(self.cli("destroy", json.loads(r2.stdout)["id"]).returncode, 0)
        finally:
            self.assertEqual(self.cli("destroy", sb["id"]).returncode, 0)
            from sandbox_engine import engine_delete
            engine_delete("/images/" + sb["image"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
