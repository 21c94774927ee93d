"""The attacks of issue 7, each against the real safeevald and dockerd: the
jail's pid 1 and every other jail process must not be writable, readable
through /proc, ptraceable or killable; memory held outside a process's RSS
(SysV shm, memfds, tmpfs files) counts; memory shared by forked processes
counts once; a fast allocate-and-exit is caught; a memory hog does not kill
its neighbour; reasons cannot be faked with self-sent signals; nothing of a
run survives it; a NUL byte in any string field is refused, naming the
field; `.` path components are normalised; output written before a kill is
kept.

Every attempt prints a positive line ("denied mem 1", "held 48") and each
test requires every line, so a run that dies early never passes. Every
test states the bug it catches. After each test the class's sandbox must
still answer and hold no process of a past run (engine top); at the end no
container of this program's daemon instance may be left (engine labels).
"""
import ast
import os
import sys
import textwrap
import threading
import time
import unittest

import grpc

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))
import harness  # noqa: E402
from sandbox_engine import (assert_nothing_left, class_sandbox, describe, finish,  # noqa: E402
                            make_wheelhouse, processes_of_sandbox, remove_containers_of,
                            run_processes_of_sandbox, wait_until)

C = grpc.StatusCode
MiB = 1 << 20
CREATE_S = 600
# The class sandbox's limits; each run lowers what it needs.
SANDBOX_LIMITS = dict(wall_time_ms=20000, cpu_time_ms=20000, memory_bytes=256 * MiB,
                      max_processes=64, max_output_bytes=1 * MiB, max_file_bytes=16 * MiB)


def code(text):
    return textwrap.dedent(text).lstrip("\n")


class JailBase(unittest.TestCase):
    MAX_CONCURRENT = 1
    # How the sandbox starts runs: every class below runs once per runner
    # (the *Zygote classes at the end: the same attacks on forks of a warm
    # interpreter that imported numpy).
    RUNNER = "RUNNER_FRESH"
    PRELOAD = ()

    @classmethod
    def setUpClass(cls):
        cls.wheels = make_wheelhouse()
        class_sandbox(cls, cls.wheels, SANDBOX_LIMITS, max_concurrent_runs=cls.MAX_CONCURRENT,
                      runner=cls.RUNNER, preload=list(cls.PRELOAD))
        try:
            # An idle worker runs its init, the agent, and (fresh runner)
            # the prepared jail for the next run or (zygote runner) the
            # zygote: anything else between runs is left of a run
            # (sandbox_engine.run_processes_of_sandbox).
            r = cls.d.stub.Eval(cls.pb.EvalRequest(sandbox_id=cls.sb.id, code="print(1)"),
                                timeout=120).result
            assert r.stdout == b"1\n", r
            time.sleep(0.5)
            print("idle worker processes:",
                  sorted(cmd[:120] for _, _, _, cmd in processes_of_sandbox(cls.sb.id)))
        except BaseException:
            cls.d.stop()
            remove_containers_of()
            raise

    @classmethod
    def tearDownClass(cls):
        finish(cls.d, destroy=[cls.sb.id])

    def tearDown(self):
        # Nothing of any run is left in the workers, the sandbox still
        # answers, and no container beyond the class's sandbox exists.
        left = wait_until(lambda: self.run_processes(self.sb.id) == [], 2.0, 0.1)
        self.assertTrue(left, "processes of a finished run remain: %s"
                        % self.run_processes(self.sb.id))
        r = self.ev("print('alive')")
        self.assertEqual((r.reason, r.stdout), (self.pb.EXIT_REASON_EXITED, b"alive\n"),
                         "the sandbox no longer answers: " + describe(self.pb, r))
        assert_nothing_left(keep=[self.sb.id])

    def run_processes(self, sid, mark=None):
        """Processes in the sandbox's workers carrying `mark` on their command
        line, or (no mark) every process an idle worker does not have."""
        if mark is None:
            return [(pid, cmd[:200]) for _, pid, _, cmd in run_processes_of_sandbox(sid)]
        return [(pid, cmd[:200]) for _, pid, _, cmd in processes_of_sandbox(sid) if mark in cmd]

    def ev(self, text, args=(), files=(), sid=None, timeout=120, **lim):
        req = self.pb.EvalRequest(sandbox_id=sid or self.sb.id, code=code(text),
                                  args=list(args), files=list(files),
                                  limits=self.pb.Limits(**lim))
        return self.d.stub.Eval(req, timeout=timeout).result

    def out(self, r):
        return r.stdout.decode("utf-8", "replace")

    def require(self, r, lines, forbidden=(), reason=None, exit_code=None):
        """Every line in `lines` printed, none containing a word in
        `forbidden`, and (if given) the reason and exit code."""
        text = self.out(r)
        got = text.splitlines()
        msg = describe(self.pb, r)
        missing = [x for x in lines if x not in got]
        self.assertEqual(missing, [], "missing lines; " + msg)
        bad = [x for x in got if any(w in x for w in forbidden)]
        self.assertEqual(bad, [], "forbidden lines; " + msg)
        if reason is not None:
            self.assertEqual(self.pb.ExitReason.Name(r.reason), self.pb.ExitReason.Name(reason),
                             msg)
        if exit_code is not None:
            self.assertEqual(r.exit_code, exit_code, msg)

    def assert_memory_limit(self, r, limit, held_max_mib=None):
        """MEMORY_LIMIT, killed by SIGKILL (the OOM killer), and, when the run
        printed 'held N' lines, it never got much past the limit."""
        pb = self.pb
        msg = describe(pb, r)
        self.assertEqual(pb.ExitReason.Name(r.reason), "EXIT_REASON_MEMORY_LIMIT", msg)
        self.assertEqual((r.signal, r.exit_code), (9, -9), msg)
        self.assertTrue(0 < r.max_rss_bytes <= limit + 32 * MiB, msg)
        if held_max_mib is not None:
            held = [int(x.split()[1]) for x in self.out(r).splitlines() if x.startswith("held ")]
            self.assertTrue(held, "it never held anything: " + msg)
            self.assertLessEqual(max(held), held_max_mib, msg)


PROC_ATTACK = r"""
import ctypes, errno, os, signal, time
libc = ctypes.CDLL(None, use_errno=True)
me = os.getpid()
others = sorted(int(p) for p in os.listdir('/proc') if p.isdigit() and int(p) != me)
print('others', others)
def err(e):
    return errno.errorcode.get(e, str(e))
def first_address(pid):
    try:
        line = open('/proc/%d/maps' % pid).readline()
        return int(line.split('-')[0], 16)
    except OSError:
        return 0x400000
for pid in others:
    # Write into its memory (pid 1 was taken over this way).
    try:
        f = open('/proc/%d/mem' % pid, 'r+b', buffering=0)
        try:
            addr = first_address(pid)
            f.seek(addr)
            b = f.read(1)
            f.seek(addr)
            f.write(b)  # the same byte back: proves the write, changes nothing
            print('WROTE mem', pid)
        except OSError as e:
            print('OPENED mem', pid, err(e.errno))
        f.close()
    except OSError as e:
        print('denied mem', pid)
    for name in ('environ', 'syscall', 'stack', 'auxv'):
        try:
            data = open('/proc/%d/%s' % (pid, name), 'rb').read()
            print('READ', name, pid, len(data))
        except OSError as e:
            print('denied', name, pid)
    # ptrace: attach and seize.
    for req, name in ((16, 'attach'), (0x4206, 'seize')):
        rc = libc.ptrace(req, pid, None, None)
        if rc == 0:
            print('TRACED', name, pid)
            libc.ptrace(17, pid, None, None)  # PTRACE_DETACH
        else:
            print('denied ptrace', name, pid)
    # process_vm_readv of one byte.
    class iovec(ctypes.Structure):
        _fields_ = [('base', ctypes.c_void_p), ('len', ctypes.c_size_t)]
    buf = ctypes.create_string_buffer(1)
    local = iovec(ctypes.cast(buf, ctypes.c_void_p), 1)
    remote = iovec(first_address(pid), 1)
    n = libc.process_vm_readv(pid, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)
    print('READ vm' if n == 1 else 'denied vm', pid)
    # Every process of the jail runs under the run's seccomp filter: at
    # least as many filters as this process (the container's + the run's).
    def status(p):
        text = open('/proc/%s/status' % p).read()
        return {k: v.strip() for k, v in (l.split(':', 1) for l in text.splitlines())}
    st, mine = status(pid), status('self')
    print('seccomp', pid, st.get('Seccomp'), 'nnp', st.get('NoNewPrivs'))
    a, b = int(st.get('Seccomp_filters', -1)), int(mine.get('Seccomp_filters', 0))
    print('filters ok %d' % pid if a >= b else 'FEWER filters %d: %d < %d' % (pid, a, b))
"""


class Jail(JailBase):
    def test_other_jail_processes_untouchable(self):
        # Catches: a jail pid 1 (bwrap's init) that is dumpable and runs
        # without the run's seccomp filter: /proc/1/mem writable, environ /
        # syscall readable, ptrace or process_vm_readv allowed, or a process
        # with fewer seccomp filters than the run's own (pid 1 outside the
        # run's filter).
        r = self.ev(PROC_ATTACK)
        first = (self.out(r).splitlines() or [""])[0]
        others = ast.literal_eval(first[len("others "):]) if first.startswith("others [") else []
        self.assertIn(1, others, "no pid 1 seen: " + describe(self.pb, r))
        lines = []
        for pid in others:
            lines += ["denied mem %d" % pid, "denied environ %d" % pid,
                      "denied syscall %d" % pid, "denied stack %d" % pid,
                      "denied ptrace attach %d" % pid, "denied ptrace seize %d" % pid,
                      "denied auxv %d" % pid, "denied vm %d" % pid,
                      "seccomp %d 2 nnp 1" % pid, "filters ok %d" % pid]
        self.require(r, lines, ("WROTE", "OPENED", "READ", "TRACED", "FEWER"),
                     self.pb.EXIT_REASON_EXITED, 0)

    def test_signals_to_pid1(self):
        # Catches: a pid 1 the code can stop or kill (a stopped pid 1 never
        # reaps, so the run hangs to its wall limit; a killed one takes the
        # run's result with it), or that reports the run wrongly after.
        r = self.ev(r"""
            import os, signal, time
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1,
                        signal.SIGSEGV, signal.SIGSTOP, signal.SIGKILL):
                try:
                    os.kill(1, sig)
                    print('sent', sig.name)
                except OSError as e:
                    print('denied', sig.name)
            time.sleep(0.3)
            state = [l for l in open('/proc/1/status') if l.startswith('State:')][0].split()[1]
            print('pid1 state', 'stopped' if state in 'Tt' else 'running')
            if os.fork() == 0:
                os._exit(0)  # an orphan-to-be for pid 1 to reap
            print('alive')
            """, wall_time_ms=8000)
        self.require(r, ["pid1 state running", "alive"], (), self.pb.EXIT_REASON_EXITED, 0)
        self.assertLess(r.wall_time_us, 4e6, describe(self.pb, r))

    def _escape(self, final):
        mark = "esc" + os.urandom(5).hex()
        r = self.ev(r"""
            import ctypes, os, sys, time
            libc = ctypes.CDLL(None, use_errno=True)
            mark = sys.argv[1]
            rfd, wfd = os.pipe()
            if os.fork() == 0:
                os.setsid()
                rc = libc.prctl(1, 0, 0, 0, 0)  # PR_SET_PDEATHSIG 0
                print('pdeathsig', 'cleared' if rc == 0 else 'refused', flush=True)
                if os.fork() == 0:
                    libc.prctl(1, 0, 0, 0, 0)
                    os.close(rfd)
                    os.set_inheritable(wfd, True)
                    os.execv(sys.executable, [sys.executable, '-c',
                             'import os, time; os.write(%d, b"x"); time.sleep(1000)' % wfd,
                             mark])
                os._exit(0)
            os.close(wfd)
            os.read(rfd, 1)
            print('sleeper started', flush=True)
            """ + final, args=[mark], wall_time_ms=3000)
        return r, mark

    def test_double_fork_survivor_after_exit(self):
        # Catches: processes of a run left in the worker after the run
        # ended EXITED (a cleared parent-death signal and a double fork out
        # of the main process's tree), alive until the sandbox is destroyed.
        r, mark = self._escape("print('main exits')\n")
        self.require(r, ["sleeper started", "main exits"], (), self.pb.EXIT_REASON_EXITED, 0)
        self.assertLess(r.wall_time_us, 2.5e6, "held open by the sleeper: "
                        + describe(self.pb, r))
        self.assertEqual(self.run_processes(self.sb.id, mark), [],
                         "the double-forked sleeper outlived its run")

    def test_double_fork_survivor_after_wall_kill(self):
        # Catches: the same survivor when the run is killed at its wall limit.
        r, mark = self._escape("time.sleep(100)\n")
        self.require(r, ["sleeper started"], (), self.pb.EXIT_REASON_WALL_TIMEOUT)
        self.assertEqual(self.run_processes(self.sb.id, mark), [],
                         "the double-forked sleeper outlived its run")


class Memory(JailBase):
    def test_sysv_shm(self):
        # Catches: detached SysV segments not counted (384 MiB held under a
        # 64 MiB limit ended EXITED), and segments outliving the run (the
        # next run would find the worker's memory taken).
        r = self.ev(r"""
            import ctypes
            libc = ctypes.CDLL(None, use_errno=True)
            libc.shmat.restype = ctypes.c_void_p
            held = 0
            for i in range(24):
                sid = libc.shmget(0, 16 << 20, 0o1600)  # IPC_PRIVATE, IPC_CREAT|0600
                if sid < 0:
                    print('shmget refused', ctypes.get_errno()); break
                addr = libc.shmat(sid, None, 0)
                if addr in (None, ctypes.c_void_p(-1).value):
                    print('shmat refused', ctypes.get_errno()); break
                ctypes.memset(addr, 1, 16 << 20)
                libc.shmdt(ctypes.c_void_p(addr))  # detached; the segment stays
                held += 16
                print('held', held, flush=True)
            print('HELD ALL', held)
            """, memory_bytes=64 * MiB)
        self.assert_memory_limit(r, 64 * MiB, 64)
        # The segments died with the run: 40 MiB fits in the next 64 MiB run.
        r = self.ev("b = b'x' * (40 << 20)\nprint('fits')", memory_bytes=64 * MiB)
        self.require(r, ["fits"], (), self.pb.EXIT_REASON_EXITED, 0)

    def test_memfds(self):
        # Catches: unmapped memfd pages not counted (1 GiB held under 64 MiB).
        r = self.ev(r"""
            import os
            chunk = b'\1' * (1 << 20)
            fds, held = [], 0
            for i in range(128):
                fd = os.memfd_create('m%d' % i)
                for _ in range(8):
                    os.write(fd, chunk)
                fds.append(fd)
                held += 8
                print('held', held, flush=True)
            print('HELD ALL', held)
            """, memory_bytes=64 * MiB)
        self.assert_memory_limit(r, 64 * MiB, 64)

    def _tmpfs_fill(self, where):
        return self.ev(r"""
            import os, sys
            d = sys.argv[1]
            chunk = b'\1' * (1 << 20)
            held = 0
            try:
                for i in range(32):
                    with open(os.path.join(d, 'fill%d' % i), 'wb') as f:
                        for _ in range(8):
                            f.write(chunk)
                    held += 8
                    print('held', held, flush=True)
            except OSError as e:
                print('write failed', e.errno, 'at', held, flush=True)
                raise
            print('HELD ALL', held)
            """, args=[where], memory_bytes=64 * MiB)

    def test_tmpfs_tmp(self):
        # Catches: files in /tmp (tmpfs) held outside the run's memory.
        self.assert_memory_limit(self._tmpfs_fill("/tmp"), 64 * MiB, 64)

    def test_tmpfs_dev_shm(self):
        # Catches: files in /dev/shm held outside the run's memory.
        self.assert_memory_limit(self._tmpfs_fill("/dev/shm"), 64 * MiB, 64)

    def test_tmpfs_work(self):
        # Catches: filling the working directory (tmpfs) beyond the memory.
        self.assert_memory_limit(self._tmpfs_fill("/work"), 64 * MiB, 64)

    def test_tmpfs_all_three(self):
        # Catches: tmpfs mounts each capped on their own (ENOSPC) but
        # together, plus the process, holding more than the run's memory.
        r = self.ev(r"""
            import itertools, os
            chunk = b'\1' * (1 << 20)
            held = 0
            for i, d in zip(range(48), itertools.cycle(('/tmp', '/dev/shm', '/work'))):
                with open(os.path.join(d, 'f%d' % i), 'wb') as f:
                    for _ in range(4):
                        f.write(chunk)
                held += 4
                print('held', held, flush=True)
            print('HELD ALL', held)
            """, memory_bytes=64 * MiB)
        self.assert_memory_limit(r, 64 * MiB, 64)

    def test_fast_allocate_and_exit(self):
        # Catches: a peak between RSS samples: 78 MiB touched and exit at
        # once under a 70 MiB limit was reported EXITED. The other bound: a
        # 30 MiB peak under the same limit is fine.
        r = self.ev("b = b'\\1' * (78 << 20)\n", memory_bytes=70 * MiB)
        self.assert_memory_limit(r, 70 * MiB)
        # A child killed by the OOM killer while the main process exits 0
        # is a MEMORY_LIMIT too (the cgroup's OOM kill counter rose): four
        # children hold 20 MiB each at once (80 MiB under 70 MiB).
        r = self.ev(r"""
            import mmap, os, time
            pids = []
            for i in range(4):
                pid = os.fork()
                if pid == 0:
                    m = mmap.mmap(-1, 20 << 20, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS
                                  | mmap.MAP_POPULATE)
                    time.sleep(1)
                    os._exit(0)
                pids.append(pid)
            print('statuses', sorted(os.waitpid(p, 0)[1] for p in pids))
            """, memory_bytes=70 * MiB)
        self.assertEqual(self.pb.ExitReason.Name(r.reason), "EXIT_REASON_MEMORY_LIMIT",
                         describe(self.pb, r))
        # (the main process may be killed with the run or print the child's
        # status: either way no child got all it asked for)
        self.assertNotEqual(self.out(r), "statuses [0, 0, 0, 0]\n", describe(self.pb, r))
        r = self.ev("b = b'\\1' * (30 << 20)\nprint('ok')\n", memory_bytes=70 * MiB)
        self.require(r, ["ok"], (), self.pb.EXIT_REASON_EXITED, 0)
        self.assertGreaterEqual(r.max_rss_bytes, 30 * MiB, describe(self.pb, r))
        self.assertLess(r.max_rss_bytes, 70 * MiB, describe(self.pb, r))

    def test_pool_after_numpy(self):
        # Catches: memory summed over processes' RSS, counting pages shared
        # by forked workers once per process (Pool(4) after `import numpy`
        # was killed at 70 MiB; the kernel's cgroup counts them once). The
        # summed RSS is ~115 MiB, so 100 MiB fails with per-process sums.
        for mib in (200, 100):
            with self.subTest(memory_mib=mib):
                r = self.ev(r"""
                    import multiprocessing, numpy
                    def f(x):
                        return int(numpy.arange(x).sum())
                    if __name__ == '__main__':
                        with multiprocessing.Pool(4) as p:
                            print('pool', p.map(f, range(8)))
                    """, memory_bytes=mib * MiB)
                self.require(r, ["pool [0, 0, 1, 3, 6, 10, 15, 21]"], (),
                             self.pb.EXIT_REASON_EXITED, 0)

    def test_shared_memory_block(self):
        # Catches: the file-size limit (RLIMIT_FSIZE) or a small /dev/shm
        # forbidding, with the service's default limits, a 40 MiB
        # multiprocessing.shared_memory block that fits the run's memory.
        # (A sandbox of its own: the class's gives explicit limits.)
        pb = self.pb
        sb = self.d.stub.CreateSandbox(pb.CreateSandboxRequest(
            python_version="3.11", modules=["numpy"]), timeout=CREATE_S).sandbox
        try:
            r = self.ev(r"""
                from multiprocessing import shared_memory
                s = shared_memory.SharedMemory(create=True, size=40 << 20)
                mb = b'\7' * (1 << 20)
                for i in range(40):
                    s.buf[i << 20:(i + 1) << 20] = mb
                print('shm ok', s.size >= 40 << 20, s.buf[(40 << 20) - 1])
                s.close()
                s.unlink()
                """, sid=sb.id)
        finally:
            self.d.stub.DestroySandbox(pb.DestroySandboxRequest(sandbox_id=sb.id), timeout=60)
        self.require(r, ["shm ok True 7"], (), self.pb.EXIT_REASON_EXITED, 0)


class Neighbours(JailBase):
    MAX_CONCURRENT = 2

    def test_hog_beside_honest_run(self):
        # Catches: runs sharing one memory fence: a hog holding memory
        # outside its RSS (memfds) made the container's OOM killer take the
        # honest neighbour (100 of 256 MiB), reported SIGNALED.
        mark = "honest" + os.urandom(4).hex()
        box = {}

        def honest():
            try:
                box["r"] = self.ev(r"""
                    import time
                    b = b'\1' * (100 << 20)
                    print('honest started', flush=True)
                    time.sleep(4)
                    print('honest done', len(b) >> 20)
                    """, args=[mark])
            except grpc.RpcError as e:
                box["e"] = e
        th = threading.Thread(target=honest)
        th.start()
        try:
            self.assertTrue(wait_until(lambda: self.run_processes(self.sb.id, mark), 30, 0.1),
                            "the honest run never started")
            time.sleep(0.5)  # it has touched its 100 MiB
            hog = self.ev(r"""
                import os
                chunk = b'\1' * (1 << 20)
                fds, held = [], 0
                while True:
                    fd = os.memfd_create('hog')
                    for _ in range(8):
                        os.write(fd, chunk)
                    fds.append(fd)
                    held += 8
                    print('held', held, flush=True)
                """)
        finally:
            th.join()
        self.assertNotIn("e", box, box.get("e"))
        self.require(box["r"], ["honest started", "honest done 100"], (),
                     self.pb.EXIT_REASON_EXITED, 0)
        self.assert_memory_limit(hog, 256 * MiB, 256)


class Reasons(JailBase):
    # Each way of raising the signal: kill(2), tgkill(2) (raise_signal),
    # rt_sigqueueinfo(2) (sigqueue), and the kernel's own, after lowering the
    # rlimit. If the jail refuses a way, the code says so and exits 42.
    WAYS = {
        "kill": "os.kill(os.getpid(), SIG)",
        "tgkill": "signal.raise_signal(SIG)",
        "sigqueue": "ctypes.CDLL(None, use_errno=True).sigqueue(os.getpid(), SIG, 0) == 0 "
                    "or raise_errno()",
    }
    PRELUDE = r"""
        import ctypes, os, resource, signal, sys, time
        SIG = signal.%s
        def raise_errno():
            e = ctypes.get_errno()
            raise OSError(e, os.strerror(e))
        try:
            %s
            time.sleep(1)
            print('not delivered')
        except OSError as e:
            print('refused', e.errno)
            sys.exit(42)
        """

    def check_honest(self, r, sig, name):
        pb = self.pb
        msg = "%s %s: %s" % (sig, name, describe(pb, r))
        if r.reason == pb.EXIT_REASON_EXITED:
            # Refused by the jail (exit 42), or ignored by the process (0).
            want = {42: "refused", 0: "not delivered"}
            self.assertIn(r.exit_code, want, msg)
            self.assertTrue(self.out(r).startswith(want[r.exit_code]), msg)
        else:
            num = {"SIGXCPU": 24, "SIGXFSZ": 25}[sig]
            self.assertEqual(pb.ExitReason.Name(r.reason), "EXIT_REASON_SIGNALED", msg)
            self.assertEqual((r.signal, r.exit_code), (num, -num), msg)
        self.assertLess(r.cpu_time_us, 3e6, msg)
        print("  %s by %s -> %s exit %d" % (sig, name, pb.ExitReason.Name(r.reason), r.exit_code))

    def test_self_sent_sigxcpu_sigxfsz(self):
        # Catches: a self-sent SIGXCPU reported CPU_TIMEOUT (34 ms of a 10 s
        # limit) and SIGXFSZ with nothing written reported FILE_SIZE_LIMIT.
        for sig in ("SIGXCPU", "SIGXFSZ"):
            for name, how in self.WAYS.items():
                with self.subTest(signal=sig, way=name):
                    r = self.ev(self.PRELUDE % (sig, how), cpu_time_ms=10000)
                    self.check_honest(r, sig, name)

    def test_lowered_rlimits(self):
        # Catches: the kernel's SIGXCPU after the code lowered RLIMIT_CPU to
        # 1 s (of a 10 s limit) reported CPU_TIMEOUT; SIGXFSZ after lowering
        # RLIMIT_FSIZE to 10 bytes (of 16 MiB) reported FILE_SIZE_LIMIT.
        r = self.ev(r"""
            import resource, sys
            try:
                resource.setrlimit(resource.RLIMIT_CPU, (1, 2))  # SIGXCPU at 1 s
            except (OSError, ValueError) as e:
                print('refused', e)
                sys.exit(42)
            while True:
                pass
            """, cpu_time_ms=10000)
        self.check_honest(r, "SIGXCPU", "RLIMIT_CPU")
        r = self.ev(r"""
            import resource, sys
            try:
                resource.setrlimit(resource.RLIMIT_FSIZE, (10, 10))
            except (OSError, ValueError) as e:
                print('refused', e)
                sys.exit(42)
            open('f', 'wb').write(b'x' * 100)
            print('not delivered')
            """)
        self.check_honest(r, "SIGXFSZ", "RLIMIT_FSIZE")

    def test_real_file_size_limit(self):
        # Catches: a real write past max_file_bytes reported as anything but
        # FILE_SIZE_LIMIT (the honest-reason change must keep the real one).
        r = self.ev(r"""
            f = open('big', 'wb', buffering=0)
            n = 0
            while True:
                f.write(b'x' * 65536)
                n += 65536
                print('wrote', n, flush=True)
            """, max_file_bytes=1 * MiB)
        pb = self.pb
        self.assertEqual(pb.ExitReason.Name(r.reason), "EXIT_REASON_FILE_SIZE_LIMIT",
                         describe(pb, r))
        self.assertIn(self.out(r).splitlines()[-1], ("wrote %d" % (1 * MiB),),
                      "it stopped before the limit: " + describe(pb, r))
        self.assertEqual((r.signal, r.exit_code), (25, -25), describe(pb, r))

    def test_real_cpu_limit(self):
        # Catches: a real CPU burn not reported CPU_TIMEOUT, or killed far
        # past the limit (the 2 s RLIMIT_CPU backstop) or before it.
        r = self.ev("while True: pass\n", cpu_time_ms=1500, wall_time_ms=15000)
        pb = self.pb
        self.assertEqual(pb.ExitReason.Name(r.reason), "EXIT_REASON_CPU_TIMEOUT",
                         describe(pb, r))
        self.assertTrue(1500e3 <= r.cpu_time_us <= 2500e3, describe(pb, r))
        self.assertGreater(r.signal, 0, describe(pb, r))
        self.assertEqual(r.exit_code, -r.signal, describe(pb, r))


class Input(JailBase):
    def expect_invalid(self, call, field):
        try:
            res = call()
        except grpc.RpcError as e:
            self.assertEqual(e.code(), C.INVALID_ARGUMENT, "%s: %s %s" % (field, e.code(),
                                                                          e.details()))
            self.assertIn(field, e.details(), "the message must name %s" % field)
            return
        # Whatever got through is cleaned up before failing.
        sb = getattr(res, "sandbox", None)
        if sb is not None and sb.id and sb.id != self.sb.id:
            self.d.stub.DestroySandbox(self.pb.DestroySandboxRequest(sandbox_id=sb.id),
                                       timeout=60)
        self.fail("a NUL/bad %s was accepted: %s" % (field, str(res)[:400]))

    def test_nul_in_every_string_field(self):
        # Catches: protobuf-c's C strings silently truncating at a NUL (code
        # after it not run, `etc/passwd\0` written as `etc/passwd`, `a\0b`
        # as `a`, a module `numpy\0--index-url=...` building numpy), in
        # top-level, repeated, map and nested-message fields alike.
        pb, s, sid = self.pb, self.d.stub, self.sb.id
        F = pb.File
        ev = [
            ("sandbox_id", dict(sandbox_id=sid + "\0x", code="print(1)")),
            ("code", dict(code="print(1)\0print(2)")),
            ("args[1]", dict(code="print(1)", args=["ok", "a\0b"])),
            ("env", dict(code="print(1)", env={"K\0X": "v"})),
            ("env", dict(code="print(1)", env={"K": "v\0w"})),
            ("files[1].path", dict(code="print(1)", files=[F(path="ok.txt"),
                                                            F(path="etc/passwd\0x")])),
        ]
        for field, kw in ev:
            kw.setdefault("sandbox_id", sid)
            with self.subTest(rpc="Eval", field=field, request=repr(kw)[:80]):
                self.expect_invalid(lambda: s.Eval(pb.EvalRequest(**kw), timeout=30), field)
        ex = [
            ("sandbox_id", dict(sandbox_id=sid + "\0x")),
            ("filename", dict(filename="job.py\0.sh")),
            ("args[0]", dict(args=["a\0b"])),
            ("env", dict(env={"K\0X": "v"})),
            ("env", dict(env={"K": "v\0w"})),
            ("files[0].path", dict(files=[F(path="a\0b")])),
        ]
        for field, kw in ex:
            kw.setdefault("sandbox_id", sid)
            kw.setdefault("filename", "job.py")
            with self.subTest(rpc="ExecuteFile", field=field, request=repr(kw)[:80]):
                self.expect_invalid(lambda: s.ExecuteFile(pb.ExecuteFileRequest(
                    content=b"print(1)", **kw), timeout=30), field)
        cr = [
            ("python_version", dict(python_version="3.11\0x")),
            ("modules[0]", dict(modules=["numpy\0--index-url=http://evil/"])),
            ("labels", dict(labels={"k\0x": "v"})),
            ("labels", dict(labels={"k": "v\0x"})),
        ]
        for field, kw in cr:
            kw.setdefault("python_version", "3.11")
            with self.subTest(rpc="CreateSandbox", field=field, request=repr(kw)[:80]):
                self.expect_invalid(lambda: s.CreateSandbox(pb.CreateSandboxRequest(**kw),
                                                            timeout=CREATE_S), field)
        with self.subTest(rpc="GetSandbox"):
            self.expect_invalid(lambda: s.GetSandbox(pb.GetSandboxRequest(
                sandbox_id=sid + "\0"), timeout=30), "sandbox_id")
        # Destroy on a sandbox of its own: a truncated id must not destroy it.
        victim = s.CreateSandbox(pb.CreateSandboxRequest(python_version="3.11",
                                                         modules=["numpy"]),
                                 timeout=CREATE_S).sandbox
        try:
            with self.subTest(rpc="DestroySandbox"):
                self.expect_invalid(lambda: s.DestroySandbox(pb.DestroySandboxRequest(
                    sandbox_id=victim.id + "\0x"), timeout=30), "sandbox_id")
                s.GetSandbox(pb.GetSandboxRequest(sandbox_id=victim.id), timeout=30)
        finally:
            try:
                s.DestroySandbox(pb.DestroySandboxRequest(sandbox_id=victim.id), timeout=60)
            except grpc.RpcError as e:
                if e.code() != C.NOT_FOUND:
                    raise

    def test_dot_components(self):
        # Catches: `./a.txt` and `a/./b` refused (the contract forbids only
        # `..`), or written somewhere else than a.txt and a/b.
        F = self.pb.File
        r = self.ev(r"""
            import os
            print(open('a.txt').read(), open('a/b').read(), sorted(os.listdir('.')),
                  os.listdir('a'))
            """, files=[F(path="./a.txt", content=b"A"), F(path="a/./b", content=b"B")])
        self.require(r, ["A B ['a', 'a.txt', 'main.py'] ['b']"], (),
                     self.pb.EXIT_REASON_EXITED, 0)

    def test_path_at_or_under_the_script(self):
        # Catches: a file replacing the script (`main.py`, `./main.py`), or a
        # path under the script's name answered INTERNAL (`job.py/x`).
        pb, s, sid = self.pb, self.d.stub, self.sb.id
        for path in ("main.py", "./main.py", "main.py/x"):
            with self.subTest(rpc="Eval", path=path):
                self.expect_invalid(lambda: s.Eval(pb.EvalRequest(
                    sandbox_id=sid, code="print(1)", files=[pb.File(path=path, content=b"x")]),
                    timeout=30), "files[0].path")
        for path in ("job.py", "job.py/x", "./job.py/x"):
            with self.subTest(rpc="ExecuteFile", path=path):
                self.expect_invalid(lambda: s.ExecuteFile(pb.ExecuteFileRequest(
                    sandbox_id=sid, filename="job.py", content=b"print(1)",
                    files=[pb.File(path=path, content=b"x")]), timeout=30), "files[0].path")

    def test_output_before_a_kill(self):
        # Catches: block-buffered stdout (lost at a kill) and a non-UTF-8
        # stdout encoding: a partial line with no flush must arrive.
        r = self.ev(r"""
            import sys, time
            print('caf\u00e9 \u4e2d')
            sys.stdout.write('partial')
            time.sleep(100)
            """, wall_time_ms=1500)
        pb = self.pb
        self.assertEqual(pb.ExitReason.Name(r.reason), "EXIT_REASON_WALL_TIMEOUT",
                         describe(pb, r))
        self.assertEqual(r.stdout, "caf\u00e9 \u4e2d\npartial".encode(), describe(pb, r))


# The same attacks against zygote sandboxes (issue 8): each class again,
# its runs forked from a warm interpreter that imported numpy.
for _cls in (Jail, Memory, Neighbours, Reasons, Input):
    _name = _cls.__name__ + "Zygote"
    globals()[_name] = type(_name, (_cls,), {"RUNNER": "RUNNER_ZYGOTE", "PRELOAD": ("numpy",),
                                             "__doc__": _cls.__doc__})
del _cls, _name


if __name__ == "__main__":
    print("instance", harness.INSTANCE)
    unittest.main(verbosity=2)
