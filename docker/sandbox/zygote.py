# safeeval's pre-forked interpreter (the zygote). Started by the agent in a
# bubblewrap jail of its own (`safeeval-agent --zygote-init`: new user, pid,
# net, ipc, uts and cgroup namespaces, read-only system, non-root, a seccomp
# filter that only lets through what the per-run setup below needs); imports
# the modules named on its command line, then forks one child per run.
#
# What the zygote itself does per run: it receives ONE constant byte and ONE
# fd from the agent (SCM_RIGHTS): its end of a socket pair the agent made for
# the next run. It checks it is still single-threaded, clones the run's pid 1
# into new namespaces with that fd, and closes its copy. The run's own fds
# and data go later from the agent straight to that child over the pair: the
# zygote never holds them, never reads from its children and never waits for
# one, so a run's bytes never enter the zygote's memory and no later run can
# find them in its own (forked) memory.
#
# The agent asks for the next run's processes after a run's Done (never
# during a run: the preparation is not the run's CPU or memory), so a run
# finds them waiting ("prepared"): the clone, the id maps, the mounts and the
# fork of R are done before its data exists. Everything that depends on the
# run (limits, tmpfs sizes, files, fds, environment, the random seeds) is
# applied after its arrival, so every run fits a prepared child; a prepared
# child serves one run or none (the agent closing its end, or the zygote's
# end, ends it).
#
# The run's processes, before any user code (every step checked; any failure
# fails closed: before the run's arrival the child says "E" and why on its
# socket and exits, so the agent refuses the run; after it, the child reports
# FAILED on the run's status fd; a run never starts without its fences):
#   the zygote clones the run's pid 1 straight into new user, mount, pid,
#      net, ipc, uts and cgroup namespaces (a clone that fails is a refused
#      run, never a plain fork);
#   I  (pid 1 of the run's pid namespace), before the run: oom_score_adj
#      1000; uid/gid maps of its own uid only, setgroups denied; mounts
#      private; fresh tmpfs on /work, /tmp, /dev/shm; its namespace's /proc;
#      non-dumpable (the code runs as the same uid: this keeps /proc/1 out of
#      its reach); every signal at its default (an init ignores signals from
#      inside its namespace that it has no handler for); forks R, says ready
#      ("r") and waits for the run. When the run's fds come: the tmpfs sizes
#      of the run (remount), the run's script and files written into /work
#      from the run's input memfd (read by this process itself);
#      RLIMIT_FSIZE, no capability and the run's seccomp filter, like the
#      fresh jail's pid 1; then it tells R "fenced" over their own socket
#      pair (R got the run's fds over it at once, and set itself up
#      meanwhile); reaps every process of the namespace until R ends,
#      reports R's exact wait status and the namespace's rusage, and exits
#      (which ends the namespace).
#   R  (pid 2, the run): before the run, a new session, its parent-death
#      signal and no capability, then it waits for I. Then fds 0-2 = the
#      run's stdin/stdout/stderr and nothing else, the run's rlimits,
#      no_new_privs, the run's seccomp filter (the BPF the agent exported and
#      handed to the zygote once at its start), fresh random seeds, I's
#      "fenced" (nothing goes on without it), a check that every fence is
#      there (namespaces differ from the zygote's, seccomp mode 2,
#      NoNewPrivs, no capability), then STARTED and the code as __main__,
#      as `python3 /work/<file> args...` would.
#
# Shared between runs of one zygote (it is replaced every N runs or M
# minutes by the agent): the hash seed, the address-space layout, and the
# state of every preloaded module as it was after its import. Not shared:
# anything a run does (it happens in a forked copy), Python's and numpy's
# global random state (reseeded in every run from the kernel), sys.modules,
# cwd, environment, signal handlers.
import ctypes
import errno
import gc
import io
import os
import platform
import resource
import signal
import socket
import struct
import sys
import threading
import types

STATUS_MAGIC = 0x53455354
STATUS_STARTED, STATUS_DONE, STATUS_FAILED = 1, 2, 3
STATUS_FMT = "=IIiiqq96s"  # struct agent_status (agent.h): 128 bytes, one write

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_NOSUID, MS_NODEV, MS_NOEXEC = 2, 4, 8
MS_REMOUNT, MS_REC, MS_PRIVATE = 0x20, 0x4000, 1 << 18
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_SECCOMP = 22
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 47, 4
SECCOMP_MODE_FILTER = 2
WALL = 0x40000000
SYS_CAPSET = {"x86_64": 126, "aarch64": 90}
SYS_CLONE = {"x86_64": 56, "aarch64": 220}
# Every namespace a fresh jail has, entered by the clone that makes a run.
RUN_NAMESPACES = (CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC |
                  CLONE_NEWUTS | CLONE_NEWCGROUP)
NAMESPACES = ("user", "pid", "net", "ipc", "uts", "mnt", "cgroup")
INPUT_MAGIC = b"SEZ1"
# The run's working directory (a fresh tmpfs per run).
WORK = "/work"
# Every fd a run carries, in this order (zygote.c sends them to the
# prepared child, which hands them to R).
FD_INPUT, FD_STDIN, FD_STDOUT, FD_STDERR, FD_STATUS = range(5)
N_FDS = 5
# The messages (one constant byte each, SOCK_SEQPACKET): agent -> zygote
# "prepare the next run" with the child's end of its socket pair; prepared
# child -> agent "ready" (or "E" and why it failed); agent -> child "the run"
# with its N_FDS fds; I -> R the same fds at once, then "fenced" once I's own
# fences are up and the run's files written (R's set-up runs meanwhile).
MSG_PREPARE, MSG_READY, MSG_FAILED, MSG_RUN, MSG_GO = b"P", b"r", b"E", b"R", b"G"
MSG_FENCED = b"F"
# A prepared child's tmpfs size until the run's is known (then a remount).
PREPARED_TMPFS = 4096

libc = ctypes.CDLL(None, use_errno=True)
libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
libc.mount.argtypes = [ctypes.c_char_p] * 3 + [ctypes.c_ulong, ctypes.c_char_p]
libc.syscall.restype = ctypes.c_long


class Fail(Exception):
    """A fence could not be put up: the run must not start."""

    def __init__(self, what, err=0):
        super().__init__(what)
        self.what = what
        self.err = err


def check(rc, what):
    if rc != 0:
        raise Fail(what, ctypes.get_errno())


def prctl(op, a=0, b=0, c=0, d=0):
    check(libc.prctl(op, a, b, c, d), "prctl %d" % op)


def status_send(fd, kind, wait_status=0, err=0, maxrss_kb=0, cpu_us=0, msg=""):
    rec = struct.pack(STATUS_FMT, STATUS_MAGIC, kind, wait_status, err, maxrss_kb, cpu_us,
                      msg.encode("ascii", "replace")[:95])
    try:
        os.write(fd, rec)
    except OSError:
        pass


def fail_exit(status_fd, e):
    fail_record(status_fd, e)
    os._exit(127)


def failure(e):
    """(errno, message) of a failed step: our Fail's own words, else where in
    this file it failed and the exception's type -- never the run's data."""
    if isinstance(e, Fail):
        return e.err, "zygote: " + e.what
    tb, line = e.__traceback__, 0
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == __file__:
            line = tb.tb_lineno
        tb = tb.tb_next
    return getattr(e, "errno", 0) or 0, "zygote.py:%d: %s" % (line, type(e).__name__)


def fail_record(status_fd, e):
    err, msg = failure(e)
    status_send(status_fd, STATUS_FAILED, err=err, msg=msg)


def write_file(path, data):
    with open(path, "w") as f:
        f.write(data)


def ns_ids():
    return {n: os.readlink("/proc/self/ns/" + n) for n in NAMESPACES}


# ---- the run's input (read by the child from its memfd) ----


class Input:
    def __init__(self, fd):
        size = os.fstat(fd).st_size
        buf = bytearray(size)
        view = memoryview(buf)
        got = 0
        while got < size:
            n = os.preadv(fd, [view[got:]], got)
            if n <= 0:
                raise Fail("input memfd: short read")
            got += n
        self.b = bytes(buf)
        self.off = 0
        if self.take(4) != INPUT_MAGIC:
            raise Fail("input memfd: bad magic")
        (self.wall_ms, self.cpu_ms, self.memory, self.nproc, self.max_output,
         self.fsize, self.nofile) = self.unpack("=7Q")
        self.filename = self.string()
        self.script = self.blob()
        self.args = [self.blob() for _ in range(self.u32())]
        self.env = [(self.blob(), self.blob()) for _ in range(self.u32())]
        self.files = [(self.string(), self.blob()) for _ in range(self.u32())]
        if self.off != len(self.b):
            raise Fail("input memfd: trailing bytes")

    def take(self, n):
        if n > len(self.b) - self.off:
            raise Fail("input memfd: truncated")
        v = self.b[self.off:self.off + n]
        self.off += n
        return v

    def unpack(self, fmt):
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))

    def u32(self):
        return self.unpack("=I")[0]

    def blob(self):
        return self.take(self.u32())

    def string(self):
        s = self.blob().decode("utf-8")
        # The agent validated it; this process writes with it, so again.
        parts = s.split("/")
        if not s or len(s) > 1024 or any(p in ("", ".", "..") for p in parts) or "\0" in s:
            raise Fail("input memfd: bad path")
        return s


# ---- C: the namespaces and the file system ----


def tmpfs_size(size):
    return b"size=%d" % ((size + 4095) & ~4095)


def mount_tmpfs(dest, size):
    check(libc.mount(b"tmpfs", dest.encode(), b"tmpfs", MS_NOSUID | MS_NODEV,
                     tmpfs_size(size) + b",mode=0755"), "mount tmpfs " + dest)


def resize_tmpfs(dest, size):
    check(libc.mount(None, dest.encode(), None, MS_REMOUNT | MS_NOSUID | MS_NODEV,
                     tmpfs_size(size)), "resize tmpfs " + dest)


def recv_msg(sock, max_fds):
    """One message of at most one byte and max_fds fds from `sock`:
    (byte, fds, flags)."""
    while True:
        try:
            msg, anc, flags, _addr = sock.recvmsg(1, socket.CMSG_SPACE(max_fds * 4))
            break
        except InterruptedError:
            continue
    fds = []
    for level, kind, data in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            n = len(data) // 4
            fds.extend(struct.unpack("=%di" % n, data[:n * 4]))
    return msg, fds, flags


def recv_fds(sock, want):
    """One message of `sock`: (True, fds) for the constant byte `want` with
    N_FDS fds, (False, None) at the end of the stream (the sender dropped
    this prepared child). Anything else fails; fds of a bad message are
    closed."""
    msg, fds, flags = recv_msg(sock, N_FDS)
    if not msg and not fds:
        return False, None
    if msg != want or len(fds) != N_FDS or flags & (socket.MSG_CTRUNC | socket.MSG_TRUNC):
        for fd in fds:
            os.close(fd)
        raise Fail("not the agent's protocol")
    return True, fds


def put_files(inp):
    def create(path, data):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)

    create(WORK + "/" + inp.filename, inp.script)
    for path, data in inp.files:
        parts = path.split("/")
        d = WORK
        for p in parts[:-1]:
            d += "/" + p
            try:
                os.mkdir(d, 0o755)
            except FileExistsError:
                pass
        create(WORK + "/" + path, data)


def clone_run():
    """fork() straight into the run's new namespaces (one process fewer
    than fork + unshare + fork): the child is pid 1 of its own pid
    namespace. Python's own fork bookkeeping (import lock, at-fork hooks)
    around the raw clone, as os.fork() does it."""
    nr = SYS_CLONE.get(platform.machine())
    if nr is None:
        raise Fail("clone: unknown architecture")
    api = ctypes.pythonapi
    api.PyOS_BeforeFork()
    pid = libc.syscall(ctypes.c_long(nr), ctypes.c_ulong(RUN_NAMESPACES | signal.SIGCHLD),
                       ctypes.c_void_p(0), ctypes.c_void_p(0), ctypes.c_void_p(0),
                       ctypes.c_void_p(0))
    if pid == 0:
        api.PyOS_AfterFork_Child()
        return 0
    err = ctypes.get_errno()
    api.PyOS_AfterFork_Parent()
    if pid < 0:
        raise Fail("clone into new namespaces", err)
    return pid


def tell_failed(psock, e):
    """Before the run: why the prepared child failed, to the agent (which
    refuses the run). Never the run's data: there is none yet."""
    err, msg = failure(e)
    if isinstance(e, Fail) and err:
        msg += ": " + os.strerror(err)
    try:
        os.write(psock, MSG_FAILED + msg.encode("ascii", "replace")[:120])
    except OSError:
        pass


def spawn(psock):
    """In the zygote: the next run's processes, given the child's end of the
    agent's socket pair (never read here)."""
    try:
        pid = clone_run()
    except BaseException as e:  # noqa: B036 -- no namespaces, no run
        tell_failed(psock, e)
        pid = -1
    if pid == 0:
        # The child never returns into the zygote's loop, whatever happens.
        try:
            # The agent's socket is the zygote's alone.
            if ZYGOTE.sock is not None:
                fd = ZYGOTE.sock.detach()
                ZYGOTE.sock = None
                os.close(fd)
            run_init(psock, ZYGOTE.ns)
        except BaseException as e:  # noqa: B036
            tell_failed(psock, e)
        os._exit(127)
    os.close(psock)


# ---- I: the run's pid 1 ----


def run_init(psock, zygote_ns):
    """I: the clone's child; never returns. Exceptions before the run's
    arrival go to the caller (the agent hears why)."""
    if os.getpid() != 1:
        raise Fail("not the init of a new pid namespace")
    # Nothing of the run exists yet; this process's own /proc files must
    # be writable to it for its oom_score_adj and its id maps (the
    # zygote's /proc: the run's is not mounted yet).
    prctl(PR_SET_DUMPABLE, 1)
    write_file("/proc/self/oom_score_adj", "1000")
    write_file("/proc/self/setgroups", "deny")
    write_file("/proc/self/uid_map", "%d %d 1\n" % (ZYGOTE.uid, ZYGOTE.uid))
    write_file("/proc/self/gid_map", "%d %d 1\n" % (ZYGOTE.gid, ZYGOTE.gid))
    prctl(PR_SET_DUMPABLE, 0)
    check(libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None), "mount private")
    for d in (WORK, "/tmp", "/dev/shm"):
        mount_tmpfs(d, PREPARED_TMPFS)
    check(libc.mount(b"proc", b"/proc", b"proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None),
          "mount proc")
    for sig in range(1, signal.NSIG):
        if sig not in (signal.SIGKILL, signal.SIGSTOP):
            try:
                signal.signal(sig, signal.SIG_DFL)
            except (OSError, ValueError, RuntimeError):
                pass
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    set_cmdline([b"safeeval-run-init"])
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    i_end, r_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    pid = os.fork()
    if pid == 0:
        i_end.close()
        os.close(psock)
        run_wait(r_end, zygote_ns)
    r_end.close()
    os.write(psock, MSG_READY)
    # The run (or the end of the stream: this child is dropped unused).
    ps = socket.socket(fileno=psock)
    got, fds = recv_fds(ps, MSG_RUN)
    ps.close()
    if not got:
        os._exit(0)
    st = fds[FD_STATUS]
    try:
        # R sets itself up meanwhile, and waits for MSG_FENCED before the
        # code.
        socket.send_fds(i_end, [MSG_GO], fds)
        for fd in fds:
            if fd not in (st, fds[FD_INPUT]):
                os.close(fd)
        inp = Input(fds[FD_INPUT])
        os.close(fds[FD_INPUT])
        resize_tmpfs(WORK, inp.memory + len(inp.script) + 4096 +
                     sum(len(d) + 4096 for _, d in inp.files))
        resize_tmpfs("/tmp", inp.memory)
        resize_tmpfs("/dev/shm", inp.memory)
        put_files(inp)
        # Like the fresh jail's pid 1: no capability, RLIMIT_FSIZE set (the
        # run's filter then forbids changing it), under the run's filter
        # itself, so no process of the run's namespace is outside it, before
        # R may go on.
        resource.setrlimit(resource.RLIMIT_FSIZE, (inp.fsize, inp.fsize))
        drop_caps()
        load_filter(ZYGOTE.bpf)
        i_end.send(MSG_FENCED)
        i_end.close()
        del inp
        while True:
            try:
                w, status = os.waitpid(-1, WALL)
            except InterruptedError:
                continue
            if w == pid:
                break
        ru = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu_us = int((ru.ru_utime + ru.ru_stime) * 1e6)
        status_send(st, STATUS_DONE, wait_status=status, maxrss_kb=ru.ru_maxrss, cpu_us=cpu_us)
    except BaseException as e:  # noqa: B036
        fail_exit(st, e)
    os._exit(0)


# ---- R: the run ----


class CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def drop_caps():
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
    # Every capability the kernel knows, until it says EINVAL (no such cap).
    cap = 0
    while cap < 64 and libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) == 0:
        cap += 1
    if cap < 32 or cap == 64 or ctypes.get_errno() != errno.EINVAL:
        raise Fail("PR_CAPBSET_DROP %d" % cap, ctypes.get_errno())
    nr = SYS_CAPSET.get(platform.machine())
    if nr is None:
        raise Fail("capset: unknown architecture")
    hdr = CapHeader(0x20080522, 0)
    data = (CapData * 2)()
    check(libc.syscall(ctypes.c_long(nr), ctypes.c_void_p(ctypes.addressof(hdr)),
                       ctypes.c_void_p(ctypes.addressof(data))), "capset")


def load_filter(bpf):
    if not bpf or len(bpf) % 8:
        raise Fail("seccomp program missing")
    buf = ctypes.create_string_buffer(bpf, len(bpf))
    prog = SockFprog(len(bpf) // 8, ctypes.addressof(buf))
    prctl(PR_SET_NO_NEW_PRIVS, 1)
    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(prog))


def set_cmdline(parts):
    """What /proc/<pid>/cmdline (ps, the engine's top) shows for this
    process: the run's command line (cut to the room the zygote's had),
    not the zygote's, so a process of a run is never taken for it."""
    with open("/proc/self/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    start, end = int(fields[45]), int(fields[46])  # arg_start, arg_end (48, 49)
    room = end - start
    if room <= 1:
        return
    data = b"\0".join(parts)[:room - 1]
    ctypes.memmove(start, data + b"\0" * (room - len(data)), room)


def verify_fences(zygote_ns):
    """Fail closed: the code runs only inside every fence a fresh jail has."""
    mine = ns_ids()
    same = [n for n in NAMESPACES if mine[n] == zygote_ns[n]]
    if same:
        raise Fail("namespaces shared with the zygote: " + ",".join(same))
    fields = {}
    with open("/proc/self/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            fields[k] = v.strip()
    if fields.get("Seccomp") != "2" or fields.get("NoNewPrivs") != "1":
        raise Fail("seccomp filter not in place")
    for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        if int(fields.get(k, "1"), 16) != 0:
            raise Fail("capabilities left: " + k)
    if os.getpid() != 2 or os.getppid() != 1:
        raise Fail("not pid 2 of the run's namespace")


def run_wait(r_end, zygote_ns):
    """R, prepared: waits for its fds from I; never returns."""
    try:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        os.setsid()
        set_cmdline([b"safeeval-run-prepared"])
        # R needs no capability (it only lowers its limits): none from here.
        drop_caps()
        got, fds = recv_fds(r_end, MSG_GO)
    except BaseException:  # noqa: B036 -- I reports the run FAILED (R is gone)
        os._exit(127)
    if not got:
        os._exit(0)
    run_exec(fds, r_end, zygote_ns)


def run_exec(fds, r_end, zygote_ns):
    st = fds[FD_STATUS]
    try:
        inp = Input(fds[FD_INPUT])
        os.dup2(fds[FD_STDIN], 0)
        os.dup2(fds[FD_STDOUT], 1)
        os.dup2(fds[FD_STDERR], 2)
        # Only 0-2, the status fd and I's socket (both closed before the
        # code runs).
        if st < 3:
            raise Fail("status fd below 3")
        wait = r_end.detach()
        keep = sorted((st, wait))
        os.closerange(3, keep[0])
        os.closerange(keep[0] + 1, keep[1])
        os.closerange(keep[1] + 1, 1 << 20)
        os.chdir(WORK)
        lim = [
            (resource.RLIMIT_CPU, (inp.cpu_ms + 999) // 1000 + 1, (inp.cpu_ms + 999) // 1000 + 2),
            (resource.RLIMIT_NPROC, inp.nproc + 1, inp.nproc + 1),
            (resource.RLIMIT_NOFILE, inp.nofile, inp.nofile),
            (resource.RLIMIT_MEMLOCK, 0, 0),
            (resource.RLIMIT_MSGQUEUE, 0, 0),
            (resource.RLIMIT_RTPRIO, 0, 0),
            (resource.RLIMIT_FSIZE, inp.fsize, inp.fsize),
        ]
        for res, soft, hard in lim:
            resource.setrlimit(res, (soft, hard))
        # R was forked before I loaded its filter: R loads it itself (its
        # capabilities went before the run came).
        load_filter(ZYGOTE.bpf)
        # The run's own /proc files are its own again (the jail's python is
        # dumpable too); pid 1 and the zygote stay non-dumpable.
        prctl(PR_SET_DUMPABLE, 1)
        set_cmdline([os.fsencode(sys.executable), os.fsencode(WORK + "/" + inp.filename)] +
                    list(inp.args))
        prepare_python(inp)
        # I is fenced and the run's files are there, or the run never goes
        # on (I's end of the stream: I failed and reports it).
        while True:
            try:
                word = os.read(wait, 1)
                break
            except InterruptedError:
                continue
        if word != MSG_FENCED:
            raise Fail("the run's pid 1 did not get ready")
        os.close(wait)
        verify_fences(zygote_ns)
    except BaseException as e:  # noqa: B036
        fail_exit(st, e)
    status_send(st, STATUS_STARTED)
    os.close(st)
    run_main(inp)


def prepare_python(inp):
    """The interpreter state a fresh `python3 /work/<file> args` would have,
    as far as a fork can give it."""
    ZYGOTE.forget()
    for sig, handler in ZYGOTE.signals.items():
        if signal.getsignal(sig) is not handler:
            signal.signal(sig, handler)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    env = dict(ZYGOTE.base_env)
    for k, v in inp.env:
        env[k] = v
    os.environ.clear()
    for k, v in env.items():
        os.environb[k] = v
    path = WORK + "/" + inp.filename
    sys.argv = [path] + [os.fsdecode(a) for a in inp.args]
    sys.path[0] = WORK
    # The interpreter started before this environment: of what python3
    # reads from it at start, PYTHONPATH is the one a run can still get.
    pp = env.get(b"PYTHONPATH")
    if pp:
        sys.path[1:1] = [os.fsdecode(p) for p in pp.split(b":") if p]
    # Keep the zygote's stream objects alive: collecting them would close
    # fds 0-2, which are the run's now.
    ZYGOTE.old_streams = (sys.stdin, sys.stdout, sys.stderr)
    sys.stdin = sys.__stdin__ = io.TextIOWrapper(
        io.BufferedReader(io.FileIO(0, "r", closefd=False)), encoding="utf-8", errors="strict")
    sys.stdout = sys.__stdout__ = io.TextIOWrapper(
        io.FileIO(1, "w", closefd=False), encoding="utf-8", errors="strict", write_through=True)
    sys.stderr = sys.__stderr__ = io.TextIOWrapper(
        io.FileIO(2, "w", closefd=False), encoding="utf-8", errors="backslashreplace",
        write_through=True)
    # Fresh randomness: the zygote's state was drawn once at its start.
    if "random" in sys.modules:
        sys.modules["random"].seed()
    nr = sys.modules.get("numpy.random")
    if nr is not None and hasattr(nr, "seed"):
        nr.seed()
    main = types.ModuleType("__main__")
    main.__file__ = path
    main.__builtins__ = __builtins__
    main.__cached__ = None
    sys.modules["__main__"] = main
    ZYGOTE.main = main


def run_main(inp):
    code = 0
    try:
        try:
            src = inp.script
            del inp
            exec(compile(src, ZYGOTE.main.__file__, "exec"), ZYGOTE.main.__dict__)
        except SystemExit as e:
            code = exit_code(e)
        except BaseException:
            t, v, tb = sys.exc_info()
            # Drop this file's frames: the traceback starts at the script,
            # as python3's does.
            while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
                tb = tb.tb_next
            try:
                sys.excepthook(t, v.with_traceback(tb), tb)
            except BaseException:  # noqa: B036
                pass
            if t is KeyboardInterrupt:
                code = -signal.SIGINT
            else:
                code = 1
        try:
            import atexit

            atexit._run_exitfuncs()
        except BaseException:  # noqa: B036
            pass
        for s in (sys.stdout, sys.stderr):
            try:
                s.flush()
            except BaseException:  # noqa: B036
                if code == 0:
                    code = 120
    finally:
        if code < 0:
            signal.signal(-code, signal.SIG_DFL)
            os.kill(os.getpid(), -code)
        os._exit(code & 0xFF)


def exit_code(e):
    c = e.code
    if c is None:
        return 0
    if isinstance(c, int):
        return c
    try:
        print(c, file=sys.stderr)
    except BaseException:  # noqa: B036
        pass
    return 1


# ---- the zygote ----


class Zygote:
    def __init__(self):
        self.bpf = b""
        self.signals = {}
        self.base_env = {}
        self.ns = {}
        self.sock = None
        self.uid = self.gid = -1
        self.main = None
        self.old_streams = None

    def forget(self):
        """In the run: what of the zygote the run has no use for."""
        if self.sock is not None:
            self.sock.detach()
            self.sock = None


ZYGOTE = Zygote()


def die(why):
    """Gives up this zygote (the agent starts another), saying why on the
    agent's stderr."""
    try:
        os.write(2, ("safeeval zygote: %s\n" % why).encode())
    finally:
        os._exit(3)


def threads():
    return len(os.listdir("/proc/self/task"))


def serve():
    sock = ZYGOTE.sock
    while True:
        msg, fds, flags = recv_msg(sock, 1)
        if not msg:
            for fd in fds:
                os.close(fd)
            os._exit(0)  # the agent is gone or replaces this zygote
        if msg != MSG_PREPARE or len(fds) != 1 or flags & socket.MSG_CTRUNC:
            die("not the agent's protocol (%d bytes, %d fds)" % (len(msg), len(fds)))
        # Forked children share what the zygote has; a second thread (a
        # thread pool a module started) would leave its locks held in them.
        if threads() != 1 or threading.active_count() != 1:
            for fd in fds:
                os.close(fd)
            die("not single-threaded: %d threads" % threads())
        spawn(fds[0])


def main():
    # argv: zygote.py SOCK_FD BPF_FD [module...]
    # Before anything else: this process's /proc files belong to nobody in
    # reach, and it is not the OOM killer's first choice (its runs are).
    prctl(PR_SET_DUMPABLE, 0)
    sock_fd, bpf_fd = int(sys.argv[1]), int(sys.argv[2])
    modules = sys.argv[3:]
    # The agent's one sealed copy, shared by every jail: read at offset 0,
    # never from (or moving) the shared file position.
    ZYGOTE.bpf = b""
    while True:
        chunk = os.pread(bpf_fd, 1 << 16, len(ZYGOTE.bpf))
        if not chunk or len(ZYGOTE.bpf) > 1 << 20:
            break
        ZYGOTE.bpf += chunk
    os.close(bpf_fd)
    ZYGOTE.sock = socket.socket(fileno=sock_fd)
    # The handlers python3 starts with (safeeval.pth included), for the
    # runs: the zygote changes SIGCHLD's, the run's pid 1 all of them.
    for sig in signal.valid_signals():
        if sig in (signal.SIGKILL, signal.SIGSTOP):
            continue
        h = signal.getsignal(sig)
        if h is not None:
            ZYGOTE.signals[sig] = h
    ZYGOTE.base_env = dict(os.environb)
    ZYGOTE.ns = ns_ids()
    ZYGOTE.uid, ZYGOTE.gid = os.getuid(), os.getgid()
    # Imports see what a run's script sees: its directory first.
    sys.path[0] = WORK
    sys.argv = [""]
    try:
        for m in modules:
            parts = m.split(".")
            if len(m) > 128 or not all(p.isidentifier() for p in parts):
                raise ValueError("not a module name: %r" % m)
            __import__(m)
    except BaseException as e:  # noqa: B036 -- whatever the import raised, say it
        line = ("%s: %s" % (type(e).__name__, e)).splitlines() or [type(e).__name__]
        ZYGOTE.sock.sendall(b"E" + line[-1].encode("utf-8", "replace")[:480])
        os._exit(1)
    # Orphaned run inits come to this process (the zygote jail's pid 1):
    # the kernel reaps them, the zygote never waits for a run.
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    gc.collect()
    gc.freeze()
    if threads() != 1:
        ZYGOTE.sock.sendall(b"Ethe zygote is not single-threaded after its imports")
        os._exit(1)
    ZYGOTE.sock.sendall(b"R")
    serve()


if __name__ == "__main__":
    main()
