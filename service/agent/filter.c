/* The jail's seccomp filter, loaded by the jail's pid 1 on itself and so
 * inherited by every process of the jail: default allow (the container's
 * profile is the allowlist), deny with EPERM what a jailed program never
 * needs, what widens the kernel surface, and every way for the code to fake
 * a limit's verdict (a self-sent SIGXCPU or SIGXFSZ, a lowered file-size
 * limit). Built with libseccomp once per agent and exported (a sealed
 * memfd) for the jails' helpers to install with one seccomp(2) call; any
 * failure is fatal to the run (fail closed).
 *
 * Argument checks compare the low 32 bits where the kernel takes an int or
 * an unsigned int (signal numbers, fcntl and ioctl commands, rlimit
 * resources): the kernel drops the high half, so a full 64-bit compare could
 * be dodged with garbage up there. */
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/sched.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "agent/agent.h"

static const char *const deny_names[] = {
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "kcmp",
    "pidfd_getfd",
    "mount",
    "umount",
    "umount2",
    "pivot_root",
    "chroot",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "move_mount",
    "open_tree",
    "mount_setattr",
    "name_to_handle_at",
    "open_by_handle_at",
    "unshare",
    "setns",
    "keyctl",
    "add_key",
    "request_key",
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "reboot",
    "swapon",
    "swapoff",
    "acct",
    "iopl",
    "ioperm",
    "modify_ldt",
    "lookup_dcookie",
    "quotactl",
    "quotactl_fd",
    "settimeofday",
    "clock_settime",
    "clock_adjtime",
    "adjtimex",
    "syslog",
    "vhangup",
    "uselib",
    "sethostname",
    "setdomainname",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "nfsservctl",
    "_sysctl",
    "fanotify_init",
    /* Their signal number is in memory, where BPF cannot look: a timer or a
     * message queue could deliver SIGXCPU/SIGXFSZ. */
    "timer_create",
    "mq_notify",
};

#define LOW32 0xffffffffull

/* The signals whose arrival is a limit's verdict: only the kernel may send
 * them, and only for that limit. */
static const int verdict_signals[] = {SIGXCPU, SIGXFSZ};

/* Syscalls that send a signal the caller names, and where its number is. */
static const struct {
    const char *name;
    unsigned arg;
} signal_senders[] = {
    {"kill", 1},
    {"tkill", 1},
    {"tgkill", 2},
    {"rt_sigqueueinfo", 1},
    {"rt_tgsigqueueinfo", 2},
    {"pidfd_send_signal", 1},
};

/* clone() flags that create namespaces: a jailed program must not nest its
 * own sandbox (and widen the kernel surface) inside ours. */
static const unsigned long ns_flags[] = {
    CLONE_NEWNS,  CLONE_NEWUSER, CLONE_NEWPID,    CLONE_NEWNET,
    CLONE_NEWIPC, CLONE_NEWUTS,  CLONE_NEWCGROUP, 0x00000080 /* CLONE_NEWTIME */,
};

/* personality() bits that weaken the address space. The query value
 * 0xffffffff has bit 31 set, so "flag set and bit 31 clear" leaves it free. */
static const unsigned long bad_persona[] = {
    ADDR_NO_RANDOMIZE,
    READ_IMPLIES_EXEC,
    MMAP_PAGE_ZERO,
    ADDR_COMPAT_LAYOUT,
};

static struct scmp_arg_cmp
low32_eq(unsigned arg, uint64_t value)
{
    return (struct scmp_arg_cmp){
        .arg = arg, .op = SCMP_CMP_MASKED_EQ, .datum_a = LOW32, .datum_b = value};
}

/* A rule for a syscall that may not exist on this architecture (then it
 * needs no rule). */
static int
rule_add(scmp_filter_ctx ctx, const char *name, unsigned n, const struct scmp_arg_cmp *cmp,
         char *msg, size_t msg_len)
{
    int nr = seccomp_syscall_resolve_name(name);
    if (nr == __NR_SCMP_ERROR)
        return 0;
    int r = seccomp_rule_add_array(ctx, SCMP_ACT_ERRNO(EPERM), nr, n, cmp);
    if (r < 0 && r != -EDOM) {
        snprintf(msg, msg_len, "seccomp rule %s: %s", name, strerror(-r));
        return -1;
    }
    return 0;
}

/* SIGXCPU and SIGXFSZ by every road a process can send one: the kill
 * family, an fd's I/O signal (F_SETSIG, which leases and dnotify use too),
 * the parent-death signal, a child's exit signal (clone's low byte), a
 * pty's TIOCSIG. timer_create and mq_notify are denied outright above. */
static int
deny_verdict_signals(scmp_filter_ctx ctx, char *msg, size_t msg_len)
{
    for (size_t s = 0; s < sizeof(verdict_signals) / sizeof(verdict_signals[0]); s++) {
        uint64_t sig = (uint64_t)verdict_signals[s];
        for (size_t i = 0; i < sizeof(signal_senders) / sizeof(signal_senders[0]); i++) {
            struct scmp_arg_cmp c[] = {low32_eq(signal_senders[i].arg, sig)};
            if (rule_add(ctx, signal_senders[i].name, 1, c, msg, msg_len) < 0)
                return -1;
        }
        struct scmp_arg_cmp setsig[] = {low32_eq(1, F_SETSIG), low32_eq(2, sig)};
        if (rule_add(ctx, "fcntl", 2, setsig, msg, msg_len) < 0)
            return -1;
        struct scmp_arg_cmp pdeath[] = {low32_eq(0, PR_SET_PDEATHSIG), low32_eq(1, sig)};
        if (rule_add(ctx, "prctl", 2, pdeath, msg, msg_len) < 0)
            return -1;
        struct scmp_arg_cmp exitsig[] = {
            {.arg = 0, .op = SCMP_CMP_MASKED_EQ, .datum_a = 0xff /* CSIGNAL */, .datum_b = sig}};
        if (rule_add(ctx, "clone", 1, exitsig, msg, msg_len) < 0)
            return -1;
        struct scmp_arg_cmp ptysig[] = {low32_eq(1, TIOCSIG), low32_eq(2, sig)};
        if (rule_add(ctx, "ioctl", 2, ptysig, msg, msg_len) < 0)
            return -1;
    }
    return 0;
}

/* A lowered RLIMIT_FSIZE makes the kernel send a real SIGXFSZ for a small
 * file: the limit stays what the helper set. Getting it stays allowed
 * (prlimit64 with new == NULL), and so does setting other limits of the
 * caller itself; setting any limit of another process is denied (it could
 * only be the jail's pid 1 or a sibling). */
static int
deny_fsize_change(scmp_filter_ctx ctx, char *msg, size_t msg_len)
{
    struct scmp_arg_cmp set_fsize[] = {low32_eq(0, RLIMIT_FSIZE)};
    if (rule_add(ctx, "setrlimit", 1, set_fsize, msg, msg_len) < 0)
        return -1;
    struct scmp_arg_cmp pl_fsize[] = {low32_eq(1, RLIMIT_FSIZE),
                                      {.arg = 2, .op = SCMP_CMP_NE, .datum_a = 0}};
    if (rule_add(ctx, "prlimit64", 2, pl_fsize, msg, msg_len) < 0)
        return -1;
    struct scmp_arg_cmp pl_other[] = {{.arg = 0, .op = SCMP_CMP_NE, .datum_a = 0},
                                      {.arg = 2, .op = SCMP_CMP_NE, .datum_a = 0}};
    return rule_add(ctx, "prlimit64", 2, pl_other, msg, msg_len);
}

/* Syscalls the zygote's per-run setup makes before the run's own filter is
 * on: the zygote's filter lets them through (the run's, stacked on it, does
 * not). */
static bool
zygote_needs(const char *name)
{
    return strcmp(name, "mount") == 0;
}

/* The filter as a libseccomp context: the run's (zygote = false) or the
 * zygote's (true: the run's minus what the per-run setup needs -- clone into
 * new namespaces, mount, and setting RLIMIT_FSIZE, which the run's filter
 * then forbids). */
static scmp_filter_ctx
filter_build(bool zygote, char *msg, size_t msg_len)
{
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
    if (!ctx) {
        snprintf(msg, msg_len, "seccomp_init failed");
        return NULL;
    }
    /* Foreign architectures (i386 via int 0x80, x32) are killed outright. */
    if (seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS) < 0) {
        snprintf(msg, msg_len, "seccomp badarch attr failed");
        goto fail;
    }
    for (size_t i = 0; i < sizeof deny_names / sizeof deny_names[0]; i++) {
        if (zygote && zygote_needs(deny_names[i]))
            continue;
        int nr = seccomp_syscall_resolve_name(deny_names[i]);
        if (nr == __NR_SCMP_ERROR)
            continue; /* not a syscall on this architecture */
        int r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0);
        if (r < 0 && r != -EDOM) {
            snprintf(msg, msg_len, "seccomp rule %s: %s", deny_names[i], strerror(-r));
            goto fail;
        }
    }
    /* The zygote clones each run into new namespaces. */
    for (size_t i = 0; !zygote && i < sizeof ns_flags / sizeof ns_flags[0]; i++) {
        int r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
                                 SCMP_A0(SCMP_CMP_MASKED_EQ, ns_flags[i], ns_flags[i]));
        if (r < 0) {
            snprintf(msg, msg_len, "seccomp clone rule: %s", strerror(-r));
            goto fail;
        }
    }
    /* clone3 passes its flags in memory that BPF cannot read: ENOSYS makes
     * glibc fall back to clone(), whose flags the rules above can see. */
    int r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
    if (r < 0) {
        snprintf(msg, msg_len, "seccomp clone3 rule: %s", strerror(-r));
        goto fail;
    }
    for (size_t i = 0; i < sizeof bad_persona / sizeof bad_persona[0]; i++) {
        r = seccomp_rule_add(
            ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(personality), 1,
            SCMP_A0(SCMP_CMP_MASKED_EQ, bad_persona[i] | 0x80000000ul, bad_persona[i]));
        if (r < 0) {
            snprintf(msg, msg_len, "seccomp personality rule: %s", strerror(-r));
            goto fail;
        }
    }
    /* Typing into a terminal we might share (the jail has a new session, so
     * this is belt and braces). */
    static const unsigned long bad_ioctls[] = {TIOCSTI, TIOCLINUX};
    for (size_t i = 0; i < sizeof bad_ioctls / sizeof bad_ioctls[0]; i++) {
        r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(ioctl), 1,
                             SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffu, bad_ioctls[i]));
        if (r < 0) {
            snprintf(msg, msg_len, "seccomp ioctl rule: %s", strerror(-r));
            goto fail;
        }
    }
    if (deny_verdict_signals(ctx, msg, msg_len) < 0)
        goto fail;
    if (!zygote && deny_fsize_change(ctx, msg, msg_len) < 0)
        goto fail;
    return ctx;
fail:
    seccomp_release(ctx);
    return NULL;
}

int
agent_filter_load_zygote(char *msg, size_t msg_len)
{
    scmp_filter_ctx ctx = filter_build(true, msg, msg_len);
    if (!ctx)
        return -1;
    int r = seccomp_load(ctx);
    seccomp_release(ctx);
    if (r < 0) {
        snprintf(msg, msg_len, "seccomp_load: %s", strerror(-r));
        return -1;
    }
    return 0;
}

static int
filter_export(int fd, char *msg, size_t msg_len)
{
    scmp_filter_ctx ctx = filter_build(false, msg, msg_len);
    if (!ctx)
        return -1;
    int r = seccomp_export_bpf(ctx, fd);
    seccomp_release(ctx);
    if (r < 0) {
        snprintf(msg, msg_len, "seccomp_export_bpf: %s", strerror(-r));
        return -1;
    }
    return 0;
}

int
agent_filter_export_sealed(char *msg, size_t msg_len)
{
    int fd = memfd_create("safeeval-bpf", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0) {
        snprintf(msg, msg_len, "memfd_create: %s", strerror(errno));
        return -1;
    }
    if (filter_export(fd, msg, msg_len) < 0)
        goto fail;
    if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0) {
        snprintf(msg, msg_len, "seal the seccomp program: %s", strerror(errno));
        goto fail;
    }
    return fd;
fail:
    close(fd);
    return -1;
}

int
agent_filter_read(int fd, agent_bpf *out, char *msg, size_t msg_len)
{
    struct stat st;
    if (fstat(fd, &st) < 0) {
        snprintf(msg, msg_len, "seccomp program: %s", strerror(errno));
        return -1;
    }
    if (st.st_size <= 0 || st.st_size % sizeof(struct sock_filter) != 0 ||
        (uint64_t)st.st_size > sizeof(out->insn)) {
        snprintf(msg, msg_len, "seccomp program: %lld bytes", (long long)st.st_size);
        return -1;
    }
    size_t len = (size_t)st.st_size, off = 0;
    while (off < len) {
        ssize_t n = pread(fd, (uint8_t *)out->insn + off, len - off, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            snprintf(msg, msg_len, "seccomp program: %s", n < 0 ? strerror(errno) : "short");
            return -1;
        }
        off += (size_t)n;
    }
    out->n = len / sizeof(struct sock_filter);
    return 0;
}

int
agent_filter_install(const agent_bpf *prog, char *msg, size_t msg_len)
{
    _Static_assert(sizeof(struct sock_filter) == sizeof(prog->insn[0]), "one instruction");
    _Static_assert(AGENT_BPF_MAX_INSNS == BPF_MAXINSNS, "the kernel's limit");
    struct sock_fprog fp = {
        .len = (unsigned short)prog->n,
        .filter = (struct sock_filter *)(uintptr_t)prog->insn,
    };
    if (prog->n == 0 || prog->n > AGENT_BPF_MAX_INSNS) {
        snprintf(msg, msg_len, "seccomp program: %zu instructions", prog->n);
        return -1;
    }
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
        snprintf(msg, msg_len, "PR_SET_NO_NEW_PRIVS: %s", strerror(errno));
        return -1;
    }
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &fp) < 0) {
        snprintf(msg, msg_len, "seccomp: %s", strerror(errno));
        return -1;
    }
    return 0;
}
