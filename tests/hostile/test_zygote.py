"""The zygote's hazards (issue 8), each against the real safeevald and dockerd
with a RUNNER_ZYGOTE sandbox (preload numpy and random), plus its contract
(preload and runner validated, an import that fails named) and its fail-closed
setup (zygote.py's per-run code with a kernel that refuses a namespace).

Each test states the bug it catches; every run prints a positive line per
check, so a run that dies early never passes. The jail attacks of issue 7
run against zygote sandboxes in test_jail_attacks.py (the *Zygote classes)
and test_sandbox_attacks.py (both runners).
"""
import os
import re
import struct
import subprocess
import sys
import textwrap
import unittest

import grpc

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))
import harness  # noqa: E402
import make_wheel  # noqa: E402
from harness import Daemon  # noqa: E402
from sandbox_engine import (class_sandbox, daemon_args, describe, finish,  # noqa: E402
                            make_wheelhouse, processes_of_sandbox, wait_until)

C = grpc.StatusCode
MiB = 1 << 20
CREATE_S = 600
ZYGOTE_PY = os.path.join(harness.SOURCE_DIR, "docker", "sandbox", "zygote.py")
# service/agent/agent.h: AGENT_ZYGOTE_MAX_RUNS.
MAX_RUNS = int(re.search(r"#define AGENT_ZYGOTE_MAX_RUNS (\d+)", open(os.path.join(
    harness.SOURCE_DIR, "service", "agent", "agent.h")).read()).group(1))
LIMITS = dict(wall_time_ms=20000, cpu_time_ms=20000, memory_bytes=256 * MiB, max_processes=32,
              max_output_bytes=1 * MiB, max_file_bytes=16 * MiB)


def code(text):
    return textwrap.dedent(text).lstrip("\n")


class ZygoteBase(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.wheels = make_wheelhouse()
        # A package whose import starts a thread: a zygote must refuse it.
        make_wheel.make_wheel(cls.wheels, name="safeeval_threadpkg", init_source=(
            "import threading, time\n"
            "threading.Thread(target=time.sleep, args=(3600,), daemon=True).start()\n"))
        class_sandbox(cls, cls.wheels, LIMITS, max_concurrent_runs=1, runner="RUNNER_ZYGOTE",
                      preload=["numpy", "random"])

    @classmethod
    def tearDownClass(cls):
        finish(cls.d, destroy=[cls.sb.id])

    def ev(self, text, stdin=b"", env=None, args=(), **limits):
        return self.d.stub.Eval(self.pb.EvalRequest(
            sandbox_id=self.sb.id, code=code(text), stdin=stdin, env=env or {}, args=list(args),
            limits=self.pb.Limits(**limits)), timeout=120).result

    def ok(self, r):
        self.assertEqual(r.reason, self.pb.EXIT_REASON_EXITED, describe(self.pb, r))
        self.assertEqual(r.exit_code, 0, describe(self.pb, r))
        return r.stdout.decode().splitlines()


# The scan of a run's own memory: every readable mapping through
# /proc/self/mem. It looks for MARK followed by 32 hex digits and prints
# every such suffix it finds; the test, not the run, knows the secret. Its own
# secret (made here, kept in a variable) must be found: the scan works.
SCAN = r"""
import os, re
MARK = b'zygote' + b'-secret:'
mine = MARK + os.urandom(16).hex().encode()
found, scanned = set(), 0
with open('/proc/self/maps') as f:
    maps = f.read().splitlines()
fd = os.open('/proc/self/mem', os.O_RDONLY)
for line in maps:
    addr, perms = line.split()[:2]
    if not perms.startswith('r') or line.endswith('[vvar]') or line.endswith('[vsyscall]'):
        continue
    lo, hi = (int(x, 16) for x in addr.split('-'))
    for off in range(lo, hi, 1 << 22):
        try:
            chunk = os.pread(fd, min(1 << 22, hi - off), off)
        except OSError:
            break
        scanned += len(chunk)
        for m in re.finditer(re.escape(MARK) + rb'[0-9a-f]{32}', chunk):
            found.add(m.group(0)[len(MARK):].decode())
print('scanned', scanned > 10 * (1 << 20))
print('own secret found', mine[len(MARK):].decode() in found)
for s in sorted(found):
    print('found', s)
"""


class Hazards(ZygoteBase):
    def test_no_earlier_run_data_in_memory(self):
        # Catches: a zygote that relays a run's code, input or output (then
        # forks the next run with those bytes in its heap): the probe of
        # issue 8 found an earlier run's output by scanning its own memory.
        secret = os.urandom(16).hex()
        mark = "zygote-" + "secret:"
        r = self.ev("""
            import os, sys
            s = sys.stdin.read()
            print(s, os.environ['S'], sys.argv[1], %r)
            """ % (mark + secret), stdin=(mark + secret).encode(), env={"S": mark + secret},
            args=[mark + secret])
        self.assertIn(secret, self.ok(r)[0])
        lines = self.ok(self.ev(SCAN))
        self.assertIn("scanned True", lines)
        self.assertIn("own secret found True", lines)
        self.assertNotIn("found " + secret, lines)

    def test_random_state_differs(self):
        # Catches: runs forked from one interpreter sharing Python's and
        # numpy's global random state (numpy seeds its global RandomState
        # once, at import, in the zygote).
        probe = """
            import random, numpy, os
            print('py', random.random(), 'np', numpy.random.random(), 'pid', os.getpid())
            """
        a, b = self.ok(self.ev(probe)), self.ok(self.ev(probe))
        pa, pb_ = a[0].split(), b[0].split()
        self.assertEqual(pa[5], pb_[5])  # both pid 2: the same kind of process
        self.assertNotEqual(pa[1], pb_[1], "python's random repeats")
        self.assertNotEqual(pa[3], pb_[3], "numpy's global random repeats")

    def test_state_does_not_carry_over(self):
        # Catches: per-run state living on in the zygote: modules, module
        # attributes, cwd, environment, signal handlers, umask, files.
        self.ok(self.ev("""
            import os, sys, signal, numpy
            sys.modules['zz_planted'] = sys
            numpy.zz_planted = 1
            os.environ['ZZ_PLANTED'] = '1'
            os.chdir('/tmp')
            open('/tmp/zz_planted', 'w').write('x')
            signal.signal(signal.SIGUSR1, lambda *a: None)
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            os.umask(0o777)
            print('planted')
            """))
        lines = self.ok(self.ev("""
            import os, sys, signal, numpy
            print('module', 'zz_planted' in sys.modules)
            print('attr', hasattr(numpy, 'zz_planted'))
            print('env', 'ZZ_PLANTED' in os.environ)
            print('cwd', os.getcwd())
            print('tmp', os.listdir('/tmp'))
            print('usr1', signal.getsignal(signal.SIGUSR1) is signal.SIG_DFL)
            print('int', signal.getsignal(signal.SIGINT) is signal.default_int_handler)
            old = os.umask(0o22)
            print('umask', oct(old))
            print('main', sys.modules['__main__'].__file__, sys.argv)
            """))
        self.assertEqual(lines, ["module False", "attr False", "env False", "cwd /work",
                                 "tmp []", "usr1 True", "int True", "umask 0o22",
                                 "main /work/main.py ['/work/main.py']"])

    def test_only_fds_0_to_2(self):
        # Catches: the zygote's control socket (or the run's input memfd,
        # the status pipe) inherited by the code: the probe's leak.
        lines = self.ok(self.ev("""
            import os
            print('listed', sorted(int(x) for x in os.listdir('/proc/self/fd'))[:3])
            open_fds = []
            for fd in range(3, 4096):
                try:
                    os.fstat(fd)
                    open_fds.append((fd, os.readlink('/proc/self/fd/%d' % fd)))
                except OSError:
                    pass
            print('open beyond 2', open_fds)
            """))
        self.assertEqual(lines, ["listed [0, 1, 2]", "open beyond 2 []"])

    def test_zygote_unreachable(self):
        # Catches: a run that can name, signal, ptrace or write the zygote
        # (or its own pid 1): the zygote must be outside the run's pid
        # namespace, pid 1 not dumpable, ptrace and process_vm_* filtered.
        lines = self.ok(self.ev(r"""
            import ctypes, errno, os, signal
            libc = ctypes.CDLL(None, use_errno=True)
            me = os.getpid()
            print('pids', sorted(int(p) for p in os.listdir('/proc') if p.isdigit()), me)
            alive = []
            for pid in range(1, 65536):
                if pid in (1, me):
                    continue
                try:
                    os.kill(pid, 0)
                    alive.append(pid)
                except ProcessLookupError:
                    pass
                except PermissionError:
                    alive.append(pid)
            print('other pids', alive)
            for what in ('mem', 'environ', 'maps', 'fd'):
                try:
                    if what == 'fd':
                        os.listdir('/proc/1/fd')
                    else:
                        open('/proc/1/' + what, 'rb').read(1)
                    print('READ /proc/1/' + what)
                except OSError:
                    print('denied /proc/1/' + what)
            try:
                open('/proc/1/oom_score_adj', 'w').write('-1000')
                print('WROTE pid 1 oom_score_adj')
            except OSError:
                print('denied pid 1 oom_score_adj')
            PTRACE_ATTACH = 16
            for pid in (1, 2, 3):
                r = libc.ptrace(PTRACE_ATTACH, pid, None, None)
                print('ptrace', pid, r, errno.errorcode.get(ctypes.get_errno()))
            class iovec(ctypes.Structure):
                _fields_ = [('base', ctypes.c_void_p), ('len', ctypes.c_size_t)]
            buf = ctypes.create_string_buffer(8)
            iov = iovec(ctypes.addressof(buf), 8)
            libc.process_vm_writev.restype = ctypes.c_ssize_t
            r = libc.process_vm_writev(1, ctypes.byref(iov), 1, ctypes.byref(iov), 1, 0)
            print('process_vm_writev', r, errno.errorcode.get(ctypes.get_errno()))
            os.kill(1, signal.SIGKILL)
            print('alive after kill 1')
            st = dict(l.split(':', 1) for l in open('/proc/self/status').read().splitlines())
            print('seccomp', st['Seccomp'].strip(), 'nnp', st['NoNewPrivs'].strip(),
                  'caps', st['CapEff'].strip(), st['CapPrm'].strip(), st['CapBnd'].strip())
            print('uid_map', open('/proc/self/uid_map').read().split())
            """))
        self.assertEqual(lines[0], "pids [1, 2] 2")
        self.assertIn("other pids []", lines)
        for what in ("mem", "environ", "maps", "fd"):
            self.assertIn("denied /proc/1/" + what, lines)
        self.assertIn("denied pid 1 oom_score_adj", lines)
        for pid in (1, 2, 3):
            self.assertIn("ptrace %d -1 EPERM" % pid, lines)
        self.assertIn("process_vm_writev -1 EPERM", lines)
        self.assertIn("alive after kill 1", lines)
        self.assertIn("seccomp 2 nnp 1 caps 0000000000000000 0000000000000000 "
                      "0000000000000000", lines)
        self.assertIn("uid_map ['10001', '10001', '1']", lines)

    def test_fences_of_a_fresh_jail(self):
        # Catches: a fork that skips part of the per-run setup: a writable
        # system, a shared /work or /tmp, network, the zygote's hostname
        # namespace or SysV IPC, nested namespaces.
        lines = self.ok(self.ev(r"""
            import ctypes, os, socket
            libc = ctypes.CDLL(None, use_errno=True)
            for p in ('/usr/evil', '/opt/safeeval/evil', '/evil', '/etc/evil'):
                try:
                    open(p, 'w')
                    print('WROTE', p)
                except OSError:
                    print('denied', p)
            for p in ('/work/ok', '/tmp/ok', '/dev/shm/ok'):
                open(p, 'w').write('x')
                print('wrote', p)
            print('work', sorted(os.listdir('/work')))
            print('ifaces', sorted(n for _, n in socket.if_nameindex()))
            print('unshare', libc.unshare(0x10000000), ctypes.get_errno())
            print('mount', libc.mount(b'none', b'/tmp', b'tmpfs', 0, None), ctypes.get_errno())
            """))
        for p in ("/usr/evil", "/opt/safeeval/evil", "/evil", "/etc/evil"):
            self.assertIn("denied " + p, lines)
        self.assertIn("work ['main.py', 'ok']", lines)
        self.assertIn("ifaces ['lo']", lines)
        self.assertIn("unshare -1 1", lines)
        self.assertIn("mount -1 1", lines)

    def test_limits_of_the_run(self):
        # Catches: rlimits or CPU accounting of the zygote instead of the
        # run's: the run's own file size and CPU limits end it with their
        # reasons; a plain run's CPU is small (the zygote's is not counted).
        pb = self.pb
        r = self.ev("open('/tmp/f', 'wb').write(b'x' * (2 << 20))", max_file_bytes=1 << 20)
        self.assertEqual(r.reason, pb.EXIT_REASON_FILE_SIZE_LIMIT, describe(pb, r))
        r = self.ev("while True: pass", cpu_time_ms=500, wall_time_ms=20000)
        self.assertEqual(r.reason, pb.EXIT_REASON_CPU_TIMEOUT, describe(pb, r))
        r = self.ev("x = bytearray(200 << 20)\nprint(len(x))", memory_bytes=64 * MiB)
        self.assertEqual(r.reason, pb.EXIT_REASON_MEMORY_LIMIT, describe(pb, r))
        r = self.ev("x = bytearray(40 << 20)\nprint(len(x))", memory_bytes=64 * MiB)
        self.assertEqual(self.ok(r), [str(40 << 20)])


def fd_links(pid):
    """{fd: target} of a process of a worker, read from the host (root)."""
    out = {}
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            out[int(fd)] = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            pass
    return out


class Prepared(ZygoteBase):
    """The run's processes are made before the run (after the previous
    run's Done) and wait for it: each serves one run, holds nothing of the
    handshake once the run's code runs, and dies with its zygote."""

    def procs(self):
        return [(p, pp, c) for _, p, pp, c in processes_of_sandbox(self.sb.id)]

    def waiting(self):
        """(zygote, I, R): the zygote and the one prepared pair waiting."""
        found = []

        def one():
            ps = self.procs()
            # The zygote's python (bwrap's command line names zygote.py too).
            zy = [p for p, _, c in ps if c.split()[0].endswith("/python3") and "zygote.py" in c]
            init = [(p, pp) for p, pp, c in ps if "safeeval-run-init" in c]
            run = [(p, pp) for p, pp, c in ps if "safeeval-run-prepared" in c]
            if len(zy) == 1 and len(init) == 1 and len(run) == 1:
                found[:] = [zy[0], init[0], run[0]]
                return True
            return False
        self.assertTrue(wait_until(one, 30), self.procs())
        zy, (i, ipp), (r, rpp) = found
        self.assertEqual((ipp, rpp), (zy, i), "I is the zygote's child, R is I's")
        return zy, i, r

    def test_each_run_its_own_processes(self):
        # Catches: a prepared child used for two runs: each run's pid 1 and
        # its own process are new (their start times), what a run leaves in
        # its mounts is not in the next one, and the processes that waited
        # before a run are gone after it while a new pair waits. (Namespace
        # inode numbers are no proof: the kernel reuses a freed one.)
        probe = """
            import os
            def start(pid):
                return open('/proc/%d/stat' % pid).read().rsplit(')', 1)[1].split()[19]
            print(start(1), start(os.getpid()))
            print(sorted(os.listdir('/work')), sorted(os.listdir('/dev/shm')))
            for d in ('/work', '/dev/shm', '/tmp'):
                open(d + '/planted', 'w').write('x')
            """
        self.ok(self.ev("print(1)"))
        _, i1, r1 = self.waiting()
        a = self.ok(self.ev(probe))
        _, i2, r2 = self.waiting()
        b = self.ok(self.ev(probe))
        _, i3, r3 = self.waiting()
        self.assertEqual(a[1], "['main.py'] []")
        self.assertEqual(b[1], "['main.py'] []", "a run found the previous run's files")
        (ia, ra), (ib, rb) = (map(int, x[0].split()) for x in (a, b))
        self.assertLess(ia, ib, "the same pid 1 served two runs")
        self.assertLess(ra, rb, "the same process served two runs")
        self.assertEqual(len({i1, i2, i3}), 3, (i1, i2, i3))
        left = {p for p, _, _ in self.procs()}
        self.assertFalse({i1, r1, i2, r2} & left, "a prepared process outlived its run")

    def test_handshake_fds_gone_in_the_run(self):
        # Catches: the prepared child's socket to the agent (or I's socket
        # to R) still open while the run's code runs: R must hold only the
        # run's 0-2, I nothing but the status pipe of its own. Waiting, the
        # pair does hold them (so this test sees sockets when they are
        # there).
        import threading
        _, i, r = self.waiting()
        self.assertEqual(sum("socket:" in t for t in fd_links(i).values()), 2, fd_links(i))
        self.assertEqual(sum("socket:" in t for t in fd_links(r).values()), 1, fd_links(r))
        out = {}
        t = threading.Thread(target=lambda: out.setdefault("r", self.ev(
            "import time\nprint('running', flush=True)\ntime.sleep(4)")))
        t.start()
        try:
            self.assertTrue(wait_until(lambda: any(
                p == r and "/work/main.py" in c for p, _, c in self.procs()), 30), self.procs())
            run_fds, init_fds = fd_links(r), fd_links(i)
        finally:
            t.join()
        self.assertEqual(self.ok(out["r"]), ["running"])
        self.assertEqual(sorted(run_fds), [0, 1, 2], run_fds)
        self.assertFalse([t for t in init_fds.values() if "socket:" in t], init_fds)
        self.assertFalse([t for t in run_fds.values() if "socket:" in t], run_fds)

    def test_zygote_killed_prepared_gone(self):
        # Catches: prepared processes that outlive their zygote (a pair
        # made by a replaced or dead zygote must never serve a run): they
        # die with it, the next run comes from a new zygote and a new pair.
        seed = "print(hash('safeeval-seed'))"
        before = self.ok(self.ev(seed))
        zy, i, r = self.waiting()
        os.kill(zy, 9)
        self.assertTrue(wait_until(lambda: not {zy, i, r} & {p for p, _, _ in self.procs()},
                                   30), self.procs())
        after = self.ok(self.ev(seed))
        self.assertNotEqual(before, after, "the run did not come from a new zygote")
        zy2, i2, r2 = self.waiting()
        self.assertNotEqual(zy2, zy)


class Replacement(ZygoteBase):
    def test_replaced_after_max_runs(self):
        # Catches: a zygote kept forever: its children share its hash seed
        # and address layout. Runs 1..N come from one zygote (one hash
        # seed), run N+1 from a new one.
        seeds = []
        for _ in range(MAX_RUNS + 2):
            seeds.append(self.ok(self.ev("print(hash('safeeval-seed'), id(None))"))[0])
        first = seeds[:MAX_RUNS]
        self.assertEqual(len(set(first)), 1, "one zygote, one seed: %r" % sorted(set(first)))
        self.assertNotEqual(seeds[MAX_RUNS], seeds[0], "not replaced after %d runs" % MAX_RUNS)
        self.assertEqual(seeds[MAX_RUNS], seeds[MAX_RUNS + 1])


class Contract(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.wheels = make_wheelhouse()
        make_wheel.make_wheel(cls.wheels, name="safeeval_threadpkg", init_source=(
            "import threading, time\n"
            "threading.Thread(target=time.sleep, args=(3600,), daemon=True).start()\n"))
        cls.d = Daemon(extra_args=daemon_args(cls.wheels), timeout=60)
        cls.pb = cls.d.pb

    @classmethod
    def tearDownClass(cls):
        finish(cls.d)

    def create(self, **kw):
        return self.d.stub.CreateSandbox(self.pb.CreateSandboxRequest(
            python_version="3.11", **kw), timeout=CREATE_S).sandbox

    def refused(self, code, field, **kw):
        with self.assertRaises(grpc.RpcError) as cm:
            self.create(**kw)
        self.assertEqual(cm.exception.code(), code, cm.exception.details())
        self.assertIn(field, cm.exception.details())
        return cm.exception.details()

    def test_preload_validated(self):
        pb = self.pb
        self.refused(C.INVALID_ARGUMENT, "preload[1]", preload=["numpy", "1numpy"])
        self.refused(C.INVALID_ARGUMENT, "preload[0]", preload=["numpy..linalg"])
        self.refused(C.INVALID_ARGUMENT, "preload[0]", preload=["os; import x"])
        self.refused(C.INVALID_ARGUMENT, "preload[0]", preload=[""])
        self.refused(C.INVALID_ARGUMENT, "preload[0]", preload=["a" * 129])
        self.refused(C.INVALID_ARGUMENT, "preload[1]", preload=["json", "json"])
        self.refused(C.INVALID_ARGUMENT, "preload:", preload=["m%d" % i for i in range(33)])
        self.refused(C.INVALID_ARGUMENT, "runner", runner=7)
        del pb

    def test_import_failure_named(self):
        d = self.refused(C.FAILED_PRECONDITION, "preload",
                         runner=self.pb.RUNNER_ZYGOTE, preload=["json", "safeeval_no_such_mod"])
        self.assertIn("ModuleNotFoundError: No module named 'safeeval_no_such_mod'", d)

    def test_threaded_preload_refused(self):
        # Catches: a zygote that forks with a second thread (its locks held
        # forever in every child).
        d = self.refused(C.FAILED_PRECONDITION, "single-threaded", modules=["safeeval_threadpkg"],
                         runner=self.pb.RUNNER_ZYGOTE, preload=["safeeval_threadpkg"])
        del d

    def test_runner_and_preload_reported(self):
        pb = self.pb
        sb = self.create(runner=pb.RUNNER_ZYGOTE, preload=["json", "xml.dom"])
        try:
            self.assertEqual((sb.runner, list(sb.preload)),
                             (pb.RUNNER_ZYGOTE, ["json", "xml.dom"]))
            got = self.d.stub.GetSandbox(pb.GetSandboxRequest(sandbox_id=sb.id), timeout=30)
            got = getattr(got, "sandbox", got)
            self.assertEqual((got.runner, list(got.preload)),
                             (pb.RUNNER_ZYGOTE, ["json", "xml.dom"]))
            r = self.d.stub.Eval(pb.EvalRequest(sandbox_id=sb.id, code=(
                "import sys\nprint('json' in sys.modules, 'xml.dom' in sys.modules)")),
                timeout=60).result
            self.assertEqual(r.stdout, b"True True\n", describe(pb, r))
            # The zygote and its jail are the worker's, between runs.
            cmds = [c for _, _, _, c in processes_of_sandbox(sb.id)]
            self.assertTrue(any("zygote.py" in c for c in cmds), cmds)
        finally:
            self.d.stub.DestroySandbox(pb.DestroySandboxRequest(sandbox_id=sb.id), timeout=60)
        # The service's choice: the zygote with something to preload, the
        # fresh jail without (no zygote process then).
        sb = self.create(preload=["json"])
        try:
            self.assertEqual(sb.runner, pb.RUNNER_ZYGOTE)
            self.assertTrue(wait_until(lambda: any(
                "zygote.py" in c for _, _, _, c in processes_of_sandbox(sb.id)), 30))
        finally:
            self.d.stub.DestroySandbox(pb.DestroySandboxRequest(sandbox_id=sb.id), timeout=60)
        sb = self.create()
        try:
            self.assertEqual(sb.runner, pb.RUNNER_FRESH)
            cmds = [c for _, _, _, c in processes_of_sandbox(sb.id)]
            self.assertFalse(any("zygote.py" in c for c in cmds), cmds)
        finally:
            self.d.stub.DestroySandbox(pb.DestroySandboxRequest(sandbox_id=sb.id), timeout=60)


# ---- fail closed: zygote.py's per-run code when the kernel refuses ----

def run_setup_with(tmp, patch):
    """Runs zygote.py's spawn (what the zygote does for one run: it prepares
    the run's processes, which then get the run's fds the way the agent
    sends them) in a subprocess (no daemon, no jail) with `patch` applied to
    the module first, on a run whose code would create tmp/RAN. Returns
    (the prepared child's first word, status records, whether the code ran,
    stderr's tail)."""
    ran = os.path.join(tmp, "RAN")
    driver = textwrap.dedent(r"""
        import importlib.util, os, socket, struct, sys
        spec = importlib.util.spec_from_file_location('zygote', %(zy)r)
        z = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(z)
        %(patch)s
        script = b"open(%(ran)r, 'w').write('x')\n"
        def blob(b):
            return struct.pack('=I', len(b)) + b
        data = (b'SEZ1' + struct.pack('=7Q', 1000, 1000, 64 << 20, 8, 1 << 20, 1 << 20, 64)
                + blob(b'main.py') + blob(script) + struct.pack('=I', 0) + struct.pack('=I', 0)
                + struct.pack('=I', 0))
        inp = os.memfd_create('in')
        os.write(inp, data)
        stdin = os.memfd_create('stdin')
        st_r, st_w = os.pipe()
        z.ZYGOTE.ns = z.ns_ids()
        z.ZYGOTE.uid, z.ZYGOTE.gid = os.getuid(), os.getgid()
        agent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        z.spawn(child.detach())
        first = agent.recv(256)
        if first == b'r':
            socket.send_fds(agent, [b'R'], [inp, stdin, 1, 2, st_w])
        agent.close()
        os.close(st_w)
        out = b''
        while True:
            b = os.read(st_r, 4096)
            if not b:
                break
            out += b
        sys.stdout.buffer.write(struct.pack('=I', len(first)) + first + out)
        """) % {"zy": ZYGOTE_PY, "patch": patch, "ran": ran}
    p = subprocess.run([sys.executable, "-c", driver], capture_output=True, timeout=60)
    first, out = b"", p.stdout
    if len(out) >= 4:
        n = struct.unpack("=I", out[:4])[0]
        first, out = out[4:4 + n], out[4 + n:]
    recs = []
    for off in range(0, len(out) - 127, 128):
        magic, kind, ws, err, _, _, msg = struct.unpack("=IIiiqq96s", out[off:off + 128])
        recs.append((kind, err, msg.rstrip(b"\0").decode()))
    return first.decode("ascii", "replace"), recs, os.path.exists(ran), p.stderr.decode()[-500:]


class FailClosed(unittest.TestCase):
    # Catches: a run that starts without its namespaces when the kernel
    # refuses them, or that goes on when its namespaces turn out to be the
    # zygote's: the prepared child must fail (before the run: it says why;
    # after: FAILED) and never run the code.

    def setUp(self):
        import tempfile
        self.tmp = tempfile.mkdtemp(prefix="zygote-failclosed-")
        os.chmod(self.tmp, 0o777)

    def tearDown(self):
        import shutil
        shutil.rmtree(self.tmp, True)

    def test_clone_refused(self):
        # The kernel refuses the clone into new namespaces: the zygote
        # reports the run FAILED and never falls back to a plain fork.
        first, recs, ran, err = run_setup_with(self.tmp, textwrap.dedent("""
            import ctypes
            _libc = z.libc
            class _L:
                def __getattr__(self, n):
                    return getattr(_libc, n)
                def syscall(self, nr, *a):
                    if nr.value == z.SYS_CLONE[z.platform.machine()]:
                        ctypes.set_errno(1)
                        return -1
                    return _libc.syscall(nr, *a)
            z.libc = _L()
            """))
        self.assertFalse(ran, "the code ran without its namespaces")
        # The prepared child never came: the zygote says why (EPERM) on
        # the child's socket, the agent refuses the run; no status at all.
        self.assertEqual(first, "Ezygote: clone into new namespaces: Operation not permitted",
                         err)
        self.assertEqual(recs, [])

    def test_namespaces_not_new(self):
        # A clone that gives no new namespaces (a plain fork) and setup
        # steps that 'succeed' but do nothing: the final check sees the
        # zygote's own namespaces and refuses.
        first, recs, ran, err = run_setup_with(self.tmp, textwrap.dedent("""
            z.clone_run = z.os.fork
            _libc = z.libc
            class _L:
                def __getattr__(self, n):
                    return getattr(_libc, n)
                def mount(self, *a):
                    return 0
                def prctl(self, op, *a):
                    # PR_CAPBSET_DROP for real; every other prctl a no-op
                    return _libc.prctl(op, *a) if op == 24 else 0
                def syscall(self, *a):
                    return 0
            z.libc = _L()
            z.write_file = lambda path, data: None
            z.WORK = %r
            z.ZYGOTE.bpf = bytes(8)  # one instruction; its load is a no-op above
            z.os.getpid = lambda: 1
            """ % self.tmp))
        self.assertFalse(ran, "the code ran in the zygote's namespaces")
        self.assertEqual(first, "r", err)
        self.assertTrue(recs, err)
        self.assertEqual(recs[0][0], 3, recs)
        self.assertIn("namespaces shared with the zygote", recs[0][2])


if __name__ == "__main__":
    print("instance", harness.INSTANCE)
    unittest.main(verbosity=2)
