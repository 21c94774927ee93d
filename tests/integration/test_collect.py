"""Files back (`collect`) against the real daemon and dockerd: binary files,
nested directories and globs, path order, the count and byte caps
(files_truncated), symlinks never followed (to /etc/passwd, through a
symlinked directory), a killed run, validation of the patterns and of the
new limits, the streamed form, and the cost of bringing 1 MiB back."""

import os
import sys
import time
import unittest

import grpc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Daemon, expect_code  # noqa: E402
from sandbox_engine import assert_exited_ok, describe, finish  # noqa: E402

BASE = ["--base-image", "safeeval/python:{version}"]
SLOW = 300

WRITER = r"""
import os
os.makedirs("out/sub", exist_ok=True)
os.makedirs("deep/a/b", exist_ok=True)
open("blob.bin", "wb").write(bytes(range(256)) * 1000)
open("out/b.csv", "w").write("b\n")
open("out/a.csv", "w").write("a\n")
open("out/x.txt", "w").write("x\n")
open("out/sub/c.csv", "w").write("c\n")
open("deep/a/b/c.bin", "wb").write(b"\0\1\2")
open("empty.dat", "w").close()
"""


class Collect(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = Daemon(extra_args=BASE)
        pb = cls.d.pb
        try:
            cls.sb = cls.d.stub.CreateSandbox(pb.CreateSandboxRequest(
                python_version="3.11", limits=pb.Limits(max_collect_files=8)),
                timeout=SLOW).sandbox
        except BaseException:
            finish(cls.d)
            raise

    @classmethod
    def tearDownClass(cls):
        finish(cls.d, destroy=[cls.sb.id])

    def eval(self, code, collect, **kw):
        pb = self.d.pb
        return self.d.stub.Eval(pb.EvalRequest(sandbox_id=self.sb.id, code=code,
                                               collect=collect, **kw), timeout=60).result

    def test_sandbox_limits_have_the_collect_defaults(self):
        self.assertEqual(self.sb.limits.max_collect_files, 8)
        self.assertEqual(self.sb.limits.max_collect_bytes, 1 << 20)

    def test_binary_nested_glob_and_order(self):
        pb = self.d.pb
        r = self.eval(WRITER, ["out/*.csv", "blob.bin", "deep/a/b/c.bin", "empty.dat",
                               "missing.txt"])
        assert_exited_ok(self, pb, r)
        self.assertEqual([f.path for f in r.files],
                         ["blob.bin", "deep/a/b/c.bin", "empty.dat", "out/a.csv", "out/b.csv"])
        got = {f.path: f.content for f in r.files}
        self.assertEqual(got["blob.bin"], bytes(range(256)) * 1000)
        self.assertEqual(got["deep/a/b/c.bin"], b"\0\1\2")
        self.assertEqual(got["empty.dat"], b"")
        self.assertEqual(got["out/a.csv"], b"a\n")
        self.assertFalse(r.files_truncated)
        # '*' does not cross '/': out/sub/c.csv is not out/*.csv.
        self.assertNotIn("out/sub/c.csv", got)

    def test_nothing_asked_nothing_back(self):
        r = self.eval(WRITER, [])
        self.assertEqual(len(r.files), 0)
        self.assertFalse(r.files_truncated)

    def test_count_cap_truncates_in_path_order(self):
        pb = self.d.pb
        r = self.eval(WRITER, ["out/*", "out/sub/*"], limits=pb.Limits(max_collect_files=2))
        assert_exited_ok(self, pb, r)
        self.assertEqual([f.path for f in r.files], ["out/a.csv", "out/b.csv"])
        self.assertTrue(r.files_truncated)

    def test_byte_cap_truncates(self):
        pb = self.d.pb
        r = self.eval(WRITER, ["*.bin", "out/a.csv"], limits=pb.Limits(max_collect_bytes=100000))
        assert_exited_ok(self, pb, r)
        # blob.bin (256000 bytes) is first in path order and over the cap.
        self.assertEqual([f.path for f in r.files], [])
        self.assertTrue(r.files_truncated)
        r = self.eval(WRITER, ["deep/a/b/c.bin", "out/*.csv"], limits=pb.Limits(
            max_collect_bytes=5))
        self.assertEqual([f.path for f in r.files], ["deep/a/b/c.bin", "out/a.csv"])
        self.assertTrue(r.files_truncated)

    def test_symlinks_are_never_followed(self):
        pb = self.d.pb
        code = ("import os\nos.symlink('/etc/passwd', 'leak.txt')\nos.symlink('/etc', 'etcdir')\n"
                "os.makedirs('real')\nopen('real/ok.txt', 'w').write('ok')\n"
                "os.symlink('real', 'linkdir')\n"
                "print(len(open('leak.txt').read()) > 0)\n")
        r = self.eval(code, ["leak.txt", "*.txt", "etcdir/passwd", "etcdir/*", "linkdir/ok.txt",
                             "real/ok.txt"])
        assert_exited_ok(self, pb, r, stdout=b"True\n")
        self.assertEqual([(f.path, f.content) for f in r.files], [("real/ok.txt", b"ok")])
        self.assertFalse(r.files_truncated)

    def test_no_escape_through_a_swapped_directory(self):
        """A process left behind keeps swapping out/ for a symlink to /etc:
        it is killed before the walk, and whatever state it left, nothing
        is read through the symlink."""
        pb = self.d.pb
        code = ("import os\nos.makedirs('out')\nopen('out/passwd', 'w').write('mine')\n"
                "if os.fork() == 0:\n"
                "    os.setsid()\n"
                "    while True:\n"
                "        try:\n"
                "            os.rename('out', 'o2'); os.symlink('/etc', 'out')\n"
                "            os.unlink('out'); os.rename('o2', 'out')\n"
                "        except OSError:\n"
                "            pass\n"
                "import time\ntime.sleep(0.3)\n")
        for _ in range(3):
            r = self.eval(code, ["out/passwd", "o2/passwd"])
            self.assertEqual(r.reason, pb.EXIT_REASON_EXITED, describe(pb, r))
            for f in r.files:
                self.assertEqual(f.content, b"mine", f.path)

    def test_killed_run_brings_nothing_back(self):
        pb = self.d.pb
        r = self.eval("open('a.txt','w').write('a')\nimport time\ntime.sleep(30)\n", ["a.txt"],
                      limits=pb.Limits(wall_time_ms=1000))
        self.assertEqual(r.reason, pb.EXIT_REASON_WALL_TIMEOUT, describe(pb, r))
        self.assertEqual(len(r.files), 0)
        self.assertTrue(r.files_truncated)

    def test_failed_run_still_collects(self):
        pb = self.d.pb
        r = self.eval("open('a.txt','w').write('a')\nraise SystemExit(3)\n", ["a.txt"])
        self.assertEqual((r.reason, r.exit_code), (pb.EXIT_REASON_EXITED, 3), describe(pb, r))
        self.assertEqual([(f.path, f.content) for f in r.files], [("a.txt", b"a")])

    def test_patterns_are_validated(self):
        pb = self.d.pb
        for bad, why in ((["../x"], "collect[0]"), (["ok", "/etc/passwd"], "collect[1]"),
                         (["a/../b"], "collect[0]"), ([""], "collect[0]"),
                         (["x"] * 65, "collect")):
            e = expect_code(lambda: self.eval("print(1)", bad), grpc.StatusCode.INVALID_ARGUMENT)
            self.assertIn(why, e.details())
        e = expect_code(lambda: self.eval("print(1)", ["a"], limits=pb.Limits(max_collect_files=9)),
                        grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("max_collect_files", e.details())
        # "./x" names the same file as "x".
        r = self.eval("open('x','w').write('1')\n", ["./x"])
        self.assertEqual([f.path for f in r.files], ["x"])

    def test_streamed_result_carries_the_files(self):
        pb = self.d.pb
        evs = list(self.d.stub.EvalStream(pb.EvalRequest(
            sandbox_id=self.sb.id, code=WRITER + "print('done')\n", collect=["out/*.csv"]),
            timeout=60))
        self.assertEqual(b"".join(e.stdout for e in evs[:-1]), b"done\n")
        self.assertEqual([f.path for f in evs[-1].result.files], ["out/a.csv", "out/b.csv"])

    def test_execute_file_collects(self):
        pb = self.d.pb
        r = self.d.stub.ExecuteFile(pb.ExecuteFileRequest(
            sandbox_id=self.sb.id, filename="job.py", content=b"open('r.txt','w').write('r')\n",
            collect=["r.txt"]), timeout=60).result
        self.assertEqual([(f.path, f.content) for f in r.files], [("r.txt", b"r")])

    def test_cost_of_one_mib_back(self):
        pb = self.d.pb
        code = "open('m.bin', 'wb').write(b'Z' * ((1 << 20) - 4096))\n"
        times = {}
        for name, collect in (("without", []), ("with", ["m.bin"])):
            best = None
            for _ in range(5):
                t = time.monotonic()
                r = self.eval(code, collect)
                dt = time.monotonic() - t
                best = dt if best is None else min(best, dt)
            times[name] = best
            if collect:
                self.assertEqual(len(r.files[0].content), (1 << 20) - 4096)
        print("\nEval writing 1 MiB: best of 5 without collect %.1f ms, with collect %.1f ms"
              % (times["without"] * 1e3, times["with"] * 1e3), file=sys.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
