"""Code an attacker would send, each case with the result it must get. One
sandbox, reused; after every attack the sandbox must still answer."""
import os
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))
from sandbox_engine import container_of_sandbox, run_in_sandbox  # noqa: E402

# (name, code, limits, check(result) -> None or raises)
CASES = []


def case(name, **limits):
    def deco(fn):
        CASES.append((name, fn.__doc__, limits, fn))
        return fn
    return deco


def out(r):
    return r.stdout.decode("utf-8", "replace")


@case("read /proc/1/environ")
def _(r):
    """
import os
try:
    data = open('/proc/1/environ', 'rb').read()
    print('read', len(data), b'SAFEEVAL' in data, b'HOSTNAME' in data)
except OSError as e:
    print('denied', e.errno)
"""
    # pid 1 is the jail's own init (bwrap), started with an empty
    # environment: nothing of the daemon (which runs with a SAFEEVAL_ canary)
    # or the container (HOSTNAME) shows.
    assert out(r).strip() in ("read 0 False False", "denied 13"), out(r)


@case("read host files")
def _(r):
    """
import os
for p in ('/etc/shadow', '/var/run/docker.sock', '/run/docker.sock', '/root/.bash_history',
          '/proc/kcore', '/sys/kernel/security'):
    try:
        with open(p, 'rb') as f:
            f.read(16)
        print(p, 'READ')
    except OSError as e:
        print(p, 'denied', e.errno)
"""
    assert "READ" not in out(r), out(r)


@case("write to /usr and /")
def _(r):
    """
for p in ('/usr/evil', '/usr/lib/python3/evil.py', '/evil', '/etc/passwd'):
    try:
        open(p, 'w').write('x')
        print(p, 'WROTE')
    except OSError as e:
        print(p, 'denied', e.errno)
"""
    assert "WROTE" not in out(r), out(r)


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
    assert "CONNECTED" not in out(r) and "RESOLVED" not in out(r), out(r)
    assert out(r).count("failed") == 2, out(r)


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
    lines = out(r).splitlines()
    assert len(lines) == 7, out(r) + r.stderr.decode()
    for line in lines:
        assert not line.endswith(" OK") and " 0 OK" not in line, line
    for name in ("ptrace", "mount", "unshare-user", "unshare-ns", "chroot"):
        line = [x for x in lines if x.startswith(name + " ")][0]
        assert "Operation not permitted" in line, line


@case("kill -9 -1", wall_time_ms=5000)
def _(r):
    """
import os, signal, time
os.kill(-1, signal.SIGKILL)
time.sleep(0.2)
print('survived')
"""
    # Only the jail's processes can be signalled; the run ends either way.
    assert r.reason in (1, 2), r


@case("fork bomb, uncaught", max_processes=16, wall_time_ms=5000)
def _(r):
    """
import os
while True:
    os.fork()
"""
    assert r.reason in (1, 2, 3), r


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
    assert r.reason == 1 and r.exit_code == 0, r
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
    assert r.reason == 3, r  # WALL_TIMEOUT
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
    assert r.reason == 1, r
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
    text = out(r)
    assert "RAISED" not in text, text
    assert text.count("refused") >= 3, text


@case("/dev/shm")
def _(r):
    """
import os
try:
    open('/dev/shm/planted', 'w').write('x')
    print('wrote')
except OSError as e:
    print('denied', e.errno)
"""
    pass  # what matters is the next run (see below)


SHM_NEXT = """
import os
print(os.path.exists('/dev/shm/planted'), os.path.exists('/tmp/planted'))
"""


def main():
    os.environ["SAFEEVAL_CANARY"] = "daemon-secret"  # the daemon's environment
    run_in_sandbox(dict(wall_time_ms=30000, max_processes=32, max_output_bytes=1 << 20), attack)
    print("OK")


def attack(d, sb):
    pb = d.pb
    cid = container_of_sandbox(sb.id)["Id"]

    def ev(code, **lim):
        return d.stub.Eval(pb.EvalRequest(sandbox_id=sb.id, code=code,
                                          limits=pb.Limits(**lim)), timeout=120).result

    probe = ("import os\nprint(len([p for p in os.listdir('/proc') if p.isdigit()]),"
             " sorted(os.listdir('.')))")
    baseline = ev(probe).stdout  # the jail's own processes and files
    assert baseline.endswith(b" ['main.py']\n"), baseline
    failures = []
    for name, code, limits, check in CASES:
        t = time.monotonic()
        r = ev(code, **limits)
        dt = time.monotonic() - t
        try:
            check(r)
            status = "ok"
        except AssertionError as e:
            status = "FAIL: %s" % (e,)
            failures.append(name)
        print("%-34s %-26s %5.2fs %s" % (name, pb.ExitReason.Name(r.reason), dt, status))
        # The sandbox still answers, with nothing left of the attack.
        a = ev(probe)
        if a.reason != 1 or a.stdout != baseline:
            failures.append(name + " (after)")
            print("   after %s: %r %r" % (name, a.stdout, a.stderr[-300:]))
        assert container_of_sandbox(sb.id)["Id"] == cid

    r = ev(SHM_NEXT)
    ok = r.stdout == b"False False\n"
    print("%-34s %s" % ("/dev/shm, /tmp: next run", "ok" if ok else "FAIL %r" % r.stdout))
    if not ok:
        failures.append("/dev/shm next run")

    # Another run's working directory, while it runs.
    holder = {}

    def victim():
        holder["r"] = ev("import os, time\nopen('secret.txt', 'w').write('s3cret')\n"
                         "print(os.getcwd(), flush=True)\ntime.sleep(3)\n")
    th = threading.Thread(target=victim)
    th.start()
    time.sleep(1.2)
    r = ev("import os, glob\nfound = []\n"
           "for top in ('/', '/tmp', '/work', '/run', '/var', '/home'):\n"
           "    for p in glob.glob(top + '/*/secret.txt') + glob.glob(top + '/secret.txt'):\n"
           "        found.append(p)\n"
           "for pid in os.listdir('/proc'):\n"
           "    if pid.isdigit():\n"
           "        try: found += [x for x in os.listdir('/proc/%s/cwd' % pid) "
           "if x == 'secret.txt']\n"
           "        except OSError: pass\n"
           "print(found)\n")
    th.join()
    ok = r.stdout == b"[]\n" and holder["r"].reason == 1
    print("%-34s %s" % ("another run's /work", "ok" if ok else "FAIL %r %r" % (
        r.stdout, holder["r"])))
    if not ok:
        failures.append("another run's work dir")

    if failures:
        print("FAILED:", failures)
        sys.exit(1)


if __name__ == "__main__":
    main()
