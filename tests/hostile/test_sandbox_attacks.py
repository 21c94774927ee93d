"""Code an attacker would send, each case with the result it must get. One
sandbox, reused; after every attack the sandbox must still answer, with no
process of the attack left in its workers (engine top) and no container
beyond its workers (engine labels).

Every case prints a positive line per attempt ("denied /etc/shadow") and its
check requires each of them and the reason (most end EXITED 0), so a run
that dies early, or prints nothing, fails. Failures are collected: one
failing case does not hide the others.
"""
import os
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))
from sandbox_engine import (describe, processes_of_sandbox, run_in_sandbox,  # noqa: E402
                            run_processes_of_sandbox, wait_until, workers_of)

EXITED, SIGNALED, WALL_TIMEOUT, MEMORY_LIMIT = 1, 2, 3, 5

HOST_FILES = ('/etc/shadow', '/var/run/docker.sock', '/run/docker.sock', '/root/.bash_history',
              '/proc/kcore', '/sys/kernel/security/lsm')
WRITE_FILES = ('/usr/evil', '/usr/lib/python3/evil.py', '/evil', '/etc/passwd')
MASKED = ('/proc/timer_list', '/proc/keys', '/proc/sched_debug', '/proc/kcore',
          '/proc/latency_stats', '/proc/timer_stats', '/proc/sysrq-trigger', '/sys/firmware')

# (name, code, request extras, check(result) -> None or raises). Extras:
# limits, and env / files (a list of (path, bytes)) for the request.
CASES = []


def case(name, env=None, files=(), **limits):
    def deco(fn):
        code = fn.__doc__
        for const in ("HOST_FILES", "WRITE_FILES", "MASKED"):
            code = code.replace(const, repr(globals()[const]))
        CASES.append((name, code, dict(limits=limits, env=env or {}, files=list(files)), fn))
        return fn
    return deco


def out(r):
    return r.stdout.decode("utf-8", "replace")


def lines(r):
    return out(r).splitlines()


def require(r, wanted, reason=EXITED, exit_code=0, forbidden=()):
    """Each wanted line printed (a str: that line; a tuple: one of them),
    no line containing a forbidden word, and the reason and exit code."""
    got = lines(r)
    for w in wanted:
        alts = w if isinstance(w, tuple) else (w,)
        assert any(a in got for a in alts), "missing %r in %r; %s" % (w, got, r.stderr[-300:])
    bad = [x for x in got if any(f in x for f in forbidden)]
    assert not bad, bad
    assert r.reason == reason, "reason %d, not %d: %r" % (r.reason, reason, got)
    if exit_code is not None:
        assert r.exit_code == exit_code, (r.exit_code, got, r.stderr[-300:])


@case("read /proc/1/environ")
def _(r):
    """
import os
try:
    data = open('/proc/1/environ', 'rb').read()
    print('READ', len(data), b'SAFEEVAL' in data, b'HOSTNAME' in data)
except OSError as e:
    print('denied', e.errno)
"""
    # pid 1 is the jail's helper, not dumpable: its environment (and so
    # anything of the daemon's, which runs with a SAFEEVAL_ canary, or the
    # container's HOSTNAME) cannot be read.
    require(r, ["denied 13"], forbidden=("READ",))


@case("read host files")
def _(r):
    """
import os
for p in HOST_FILES:
    try:
        with open(p, 'rb') as f:
            f.read(16)
        print(p, 'READ')
    except OSError as e:
        print(p, 'denied')
"""
    require(r, ["%s denied" % p for p in HOST_FILES], forbidden=("READ",))


@case("write to /usr and /")
def _(r):
    """
for p in WRITE_FILES:
    try:
        open(p, 'w').write('x')
        print(p, 'WROTE')
    except OSError as e:
        print(p, 'denied')
"""
    require(r, ["%s denied" % p for p in WRITE_FILES], forbidden=("WROTE",))


@case("socket to 1.1.1.1")
def _(r):
    """
import socket
for fam, addr in ((socket.AF_INET, ('1.1.1.1', 53)), (socket.AF_INET6, ('2606:4700::1111', 53))):
    try:
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.settimeout(2)
        s.connect(addr)
        print('CONNECTED')
    except OSError as e:
        print('failed', e.errno)
try:
    socket.getaddrinfo('example.com', 80)
    print('RESOLVED')
except OSError as e:
    print('no dns', e)
"""
    require(r, [], forbidden=("CONNECTED", "RESOLVED"))
    got = lines(r)
    assert len(got) == 3 and got[0].startswith("failed") and got[1].startswith("failed") \
        and got[2].startswith("no dns"), got


@case("ptrace/mount/unshare via ctypes")
def _(r):
    """
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
def show(name, rc):
    print(name, rc, os.strerror(ctypes.get_errno()) if rc != 0 else 'OK')
show('ptrace', libc.ptrace(16, 1, None, None))              # PTRACE_ATTACH to pid 1
show('mount', libc.mount(b'none', b'/tmp', b'tmpfs', 0, None))
show('unshare-user', libc.unshare(0x10000000))               # CLONE_NEWUSER
show('unshare-ns', libc.unshare(0x00020000))                 # CLONE_NEWNS
show('setns', libc.setns(0, 0))
show('chroot', libc.chroot(b'/tmp'))
show('setuid0', libc.setuid(0))
"""
    got = lines(r)
    require(r, [], forbidden=(" OK",))
    assert len(got) == 7, got
    for name in ("ptrace", "mount", "unshare-user", "unshare-ns", "setns", "chroot", "setuid0"):
        line = [x for x in got if x.startswith(name + " -1 ")]
        assert line, (name, got)
    for name in ("ptrace", "mount", "unshare-user", "unshare-ns", "chroot"):
        line = [x for x in got if x.startswith(name + " ")][0]
        assert "Operation not permitted" in line, line


@case("kill -9 -1", wall_time_ms=5000)
def _(r):
    """
import os, signal, time
child = os.fork()
if child == 0:
    time.sleep(30)
    os._exit(0)
os.kill(-1, signal.SIGKILL)
_, status = os.waitpid(child, 0)
print('child killed' if os.WIFSIGNALED(status) and os.WTERMSIG(status) == 9 else 'child lived')
time.sleep(0.2)
print('survived')
"""
    # kill(-1) reaches every process the run may signal except itself and
    # the jail's pid 1: only the run's own child, so the run goes on and
    # its result comes.
    require(r, ["child killed", "survived"])


@case("fork bomb, uncaught", max_processes=16, wall_time_ms=5000)
def _(r):
    """
import os
while True:
    os.fork()
"""
    # Whatever the bomb ends with, it ends within its wall limit, and the
    # checks after every case (sandbox answers, no process left) matter.
    assert r.reason in (EXITED, SIGNALED, WALL_TIMEOUT), r


@case("children that outlive the script", wall_time_ms=5000)
def _(r):
    """
import subprocess, os
for _ in range(3):
    subprocess.Popen(['sleep', '1000'], start_new_session=True)
if os.fork() == 0:
    os.setsid()
    import time
    time.sleep(1000)
print('parent done')
"""
    require(r, ["parent done"])
    assert r.wall_time_us < 3e6, r.wall_time_us  # not held open by the children


@case("closing stdout then spinning", wall_time_ms=1000)
def _(r):
    """
import os
print('before', flush=True)
os.close(1)
os.close(2)
while True:
    pass
"""
    require(r, ["before"], reason=WALL_TIMEOUT, exit_code=None)
    assert r.stdout == b"before\n", r.stdout


@case("huge stderr", max_output_bytes=4096, wall_time_ms=20000)
def _(r):
    """
import sys
chunk = 'E' * (1 << 20)
for _ in range(64):
    sys.stderr.write(chunk)
sys.stderr.flush()
print('done')
"""
    require(r, ["done"])
    assert len(r.stderr) == 4096 and r.stderr_truncated and r.stderr_bytes == 64 << 20, (
        len(r.stderr), r.stderr_bytes)
    assert r.stdout == b"done\n"


@case("setrlimit raise attempts")
def _(r):
    """
import resource
for name in ('RLIMIT_CPU', 'RLIMIT_AS', 'RLIMIT_NPROC', 'RLIMIT_FSIZE', 'RLIMIT_NOFILE'):
    res = getattr(resource, name)
    soft, hard = resource.getrlimit(res)
    try:
        resource.setrlimit(res, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        print(name, 'RAISED' if hard != resource.RLIM_INFINITY else 'was-unlimited')
    except (ValueError, OSError) as e:
        print(name, 'refused')
"""
    # One line per limit: refused, or there was no limit to raise.
    names = ('RLIMIT_CPU', 'RLIMIT_AS', 'RLIMIT_NPROC', 'RLIMIT_FSIZE', 'RLIMIT_NOFILE')
    require(r, [(n + " refused", n + " was-unlimited") for n in names], forbidden=("RAISED",))
    # The limits the jail enforces with them are never unlimited.
    for n in ('RLIMIT_NPROC', 'RLIMIT_FSIZE', 'RLIMIT_NOFILE'):
        require(r, [n + " refused"], forbidden=("RAISED",))


@case("/dev/shm")
def _(r):
    """
import os
try:
    open('/dev/shm/planted', 'w').write('x')
    open('/tmp/planted', 'w').write('x')
    print('wrote')
except OSError as e:
    print('denied', e.errno)
"""
    # What matters is the next run (see below); this one must have run.
    require(r, [("wrote", "denied 13", "denied 30")])


@case("masked /proc and /sys paths")
def _(r):
    """
import os
for p in MASKED:
    try:
        with open(p, 'rb') as f:
            data = f.read(4096)
        print(p, 'empty' if not data else 'READ %d' % len(data))
    except OSError as e:
        print(p, 'denied')
for p in ('/proc/sys/kernel/hostname', '/proc/sys/vm/drop_caches', '/proc/sysrq-trigger',
          '/sys/kernel/mm/transparent_hugepage/enabled'):
    try:
        with open(p, 'w') as f:
            f.write('1')
        print(p, 'WROTE')
    except OSError as e:
        print(p, 'denied write')
"""
    # Docker masks these in a container (MaskedPaths); the jail's own /proc
    # must not show them either: host-wide timers and tasks (other tenants'
    # process names), keys, kernel memory. Nothing under /proc/sys or /sys
    # is writable.
    require(r, [(p + " denied", p + " empty") for p in MASKED] +
            [p + " denied write" for p in ('/proc/sys/kernel/hostname',
                                           '/proc/sys/vm/drop_caches', '/proc/sysrq-trigger',
                                           '/sys/kernel/mm/transparent_hugepage/enabled')],
            forbidden=("READ", "WROTE"))


@case("thread bomb", max_processes=16, wall_time_ms=10000)
def _(r):
    """
import threading, time
n = 0
try:
    for _ in range(10000):
        threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
        n += 1
except RuntimeError:
    print('threads refused', n < 16, flush=True)
import os
os._exit(0)
"""
    # Threads count against max_processes (16): refused well before 10000.
    require(r, ["threads refused True"])


@case("filling /work", memory_bytes=64 << 20, wall_time_ms=20000)
def _(r):
    """
chunk = b'w' * (1 << 20)
n = 0
try:
    while True:
        with open('fill%d' % n, 'wb') as f:
            for _ in range(4):
                f.write(chunk)
        n += 1
        print('held', n * 4, flush=True)
except OSError as e:
    print('write failed', e.errno, flush=True)
"""
    # /work is memory (tmpfs): filling it ends at the run's memory limit.
    require(r, ["held 4"], reason=MEMORY_LIMIT, exit_code=None)
    held = [int(x.split()[1]) for x in lines(r) if x.startswith("held ")]
    assert max(held) <= 64, max(held)


@case("LD_PRELOAD and PYTHONPATH through env",
      env={"LD_PRELOAD": "/work/p/not-a-library.so", "PYTHONPATH": "/work/p"},
      files=[("p/sitecustomize.py", b"import os\nprint('sitecustomize in', os.getpid())\n"),
             ("p/not-a-library.so", b"junk")])
def _(r):
    """
import os
print('main ran', os.environ.get('PYTHONPATH'))
try:
    open('/proc/1/environ', 'rb').read()
    print('READ pid 1 environ')
except OSError:
    print('denied pid 1 environ')
"""
    # The run's own environment reaches only the run's own Python (its
    # sitecustomize runs once, in the run); the jail still starts (ld.so's
    # complaint about the junk preload goes to the run's stderr) and pid 1
    # (static, not dumpable) is untouched. A zygote's run is a fork of an
    # interpreter that started before the run's environment existed: its
    # sitecustomize never runs (and never in the zygote), PYTHONPATH only
    # joins sys.path.
    require(r, ["main ran /work/p", "denied pid 1 environ"], forbidden=("READ",))
    want = 0 if RUNNER == "RUNNER_ZYGOTE" else 1
    assert sum(1 for x in lines(r) if x.startswith("sitecustomize in")) == want, lines(r)


SHM_NEXT = """
import os
print(os.path.exists('/dev/shm/planted'), os.path.exists('/tmp/planted'))
"""


# Every case runs once per runner: a fresh jail per run, then forks of a
# zygote that imported numpy (issue 8).
RUNNERS = ("RUNNER_FRESH", "RUNNER_ZYGOTE")
RUNNER = None
FAILED = []  # of every runner: one runner's failures do not skip the next


def main():
    global RUNNER
    os.environ["SAFEEVAL_CANARY"] = "daemon-secret"  # the daemon's environment
    for RUNNER in RUNNERS:
        print("== runner", RUNNER)
        run_in_sandbox(dict(wall_time_ms=30000, max_processes=32, max_output_bytes=1 << 20),
                       attack, max_concurrent_runs=2, runner=RUNNER,
                       preload=("numpy",) if RUNNER == "RUNNER_ZYGOTE" else ())
    if FAILED:
        print("FAILED:", FAILED)
        sys.exit(1)
    print("OK")


def attack(d, sb):
    pb = d.pb

    def ev(code, limits=None, env=None, files=(), args=()):
        return d.stub.Eval(pb.EvalRequest(
            sandbox_id=sb.id, code=code, limits=pb.Limits(**(limits or {})), env=env or {},
            args=list(args), files=[pb.File(path=p, content=c) for p, c in files]),
            timeout=120).result

    probe = ("import os\nprint(len([p for p in os.listdir('/proc') if p.isdigit()]),"
             " sorted(os.listdir('.')))")
    baseline = ev(probe).stdout  # the jail's own processes and files
    assert baseline.endswith(b" ['main.py']\n"), baseline
    time.sleep(0.5)
    # What idle workers run (init, agent, the next run's prepared jail):
    # anything else between runs is left of a run.
    print("idle worker processes:",
          sorted(cmd[:120] for _, _, _, cmd in processes_of_sandbox(sb.id)))

    def leftovers():
        return [(pid, cmd[:160]) for _, pid, _, cmd in run_processes_of_sandbox(sb.id)]

    failures = []
    for name, code, extras, check in CASES:
        t = time.monotonic()
        r = ev(code, **extras)
        dt = time.monotonic() - t
        try:
            check(r)
            status = "ok"
        except Exception as e:  # every case is reported, the first hides none
            status = "FAIL: %s: %s\n      %s" % (type(e).__name__, e, describe(pb, r))
            failures.append(name)
        print("%-38s %-26s %5.2fs %s" % (name, pb.ExitReason.Name(r.reason), dt, status))
        # Nothing of the attack is left in the workers; the sandbox answers
        # as before; it has no more workers than its concurrency.
        left = wait_until(lambda: not leftovers(), 2.0, 0.1) or leftovers()
        if left is not True:
            failures.append(name + " (processes left)")
            print("   after %s: processes left: %s" % (name, left))
        a = ev(probe)
        if a.reason != EXITED or a.stdout != baseline:
            failures.append(name + " (after)")
            print("   after %s: %r %r" % (name, a.stdout, a.stderr[-300:]))
        n = len(workers_of(sb.id))
        if not 1 <= n <= 2:
            failures.append(name + " (workers)")
            print("   after %s: %d worker containers" % (name, n))

    r = ev(SHM_NEXT)
    ok = r.stdout == b"False False\n"
    print("%-38s %s" % ("/dev/shm, /tmp: next run", "ok" if ok else "FAIL %r" % r.stdout))
    if not ok:
        failures.append("/dev/shm next run")

    # Another run's working directory and processes, while it runs: the
    # victim is seen running (its helper process started after the secret
    # was written) before the probe starts, so a slow victim cannot make the
    # probe pass with nothing to find.
    holder = {}
    mark = "victim" + os.urandom(4).hex()

    def victim():
        holder["r"] = ev("import subprocess, sys, time\nopen('secret.txt', 'w').write('s3cret')\n"
                         "p = subprocess.Popen([sys.executable, '-c', 'import time; "
                         "time.sleep(30)', sys.argv[1] + '-ready'])\n"
                         "time.sleep(4)\np.kill()\nprint('done')\n", args=[mark])
    th = threading.Thread(target=victim)
    th.start()
    try:
        seen = wait_until(lambda: processes_of_sandbox(sb.id, mark + "-ready"), 30, 0.1)
        r = ev("import os, glob\nfound = []\n"
               "for top in ('/', '/tmp', '/work', '/run', '/var', '/home'):\n"
               "    for p in glob.glob(top + '/*/secret.txt') + glob.glob(top + '/secret.txt'):\n"
               "        found.append(p)\n"
               "for pid in os.listdir('/proc'):\n"
               "    if pid.isdigit():\n"
               "        try: found += [x for x in os.listdir('/proc/%s/cwd' % pid) "
               "if x == 'secret.txt']\n"
               "        except OSError: pass\n"
               "        try: found += ['cmdline ' + pid for x in [open('/proc/%s/cmdline' % pid)"
               ".read()] if 'victim' in x]\n"
               "        except OSError: pass\n"
               "print('found', found)\n")
        alive = th.is_alive()
    finally:
        th.join()
    ok = (seen and alive and r.stdout == b"found []\n" and holder["r"].reason == EXITED
          and holder["r"].stdout == b"done\n")
    print("%-38s %s" % ("another run's /work", "ok" if ok else "FAIL seen=%s alive=%s %r %r" % (
        bool(seen), alive, r.stdout, describe(pb, holder["r"]))))
    if not ok:
        failures.append("another run's work dir")

    if failures:
        print("FAILED:", failures)
    FAILED.extend("%s: %s" % (RUNNER, f) for f in failures)


if __name__ == "__main__":
    main()
