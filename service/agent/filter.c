/* The jail's seccomp filter: default allow (the container's profile is the
 * allowlist), deny with EPERM what a jailed program never needs and what
 * widens the kernel surface. Built with libseccomp; any failure is fatal to
 * the run (fail closed). */
#include <errno.h>
#include <linux/sched.h>
#include <seccomp.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/personality.h>

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

int
agent_filter_load(char *msg, size_t msg_len)
{
    int rc = -1;
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
    if (!ctx) {
        snprintf(msg, msg_len, "seccomp_init failed");
        return -1;
    }
    /* Foreign architectures (i386 via int 0x80, x32) are killed outright. */
    if (seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS) < 0) {
        snprintf(msg, msg_len, "seccomp badarch attr failed");
        goto out;
    }
    for (size_t i = 0; i < sizeof deny_names / sizeof deny_names[0]; i++) {
        int nr = seccomp_syscall_resolve_name(deny_names[i]);
        if (nr == __NR_SCMP_ERROR)
            continue; /* not a syscall on this architecture */
        int r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0);
        if (r < 0 && r != -EDOM) {
            snprintf(msg, msg_len, "seccomp rule %s: %s", deny_names[i], strerror(-r));
            goto out;
        }
    }
    for (size_t i = 0; i < sizeof ns_flags / sizeof ns_flags[0]; i++) {
        int r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
                                 SCMP_A0(SCMP_CMP_MASKED_EQ, ns_flags[i], ns_flags[i]));
        if (r < 0) {
            snprintf(msg, msg_len, "seccomp clone rule: %s", strerror(-r));
            goto out;
        }
    }
    /* clone3 passes its flags in memory that BPF cannot read: ENOSYS makes
     * glibc fall back to clone(), whose flags the rules above can see. */
    int r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
    if (r < 0) {
        snprintf(msg, msg_len, "seccomp clone3 rule: %s", strerror(-r));
        goto out;
    }
    for (size_t i = 0; i < sizeof bad_persona / sizeof bad_persona[0]; i++) {
        r = seccomp_rule_add(
            ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(personality), 1,
            SCMP_A0(SCMP_CMP_MASKED_EQ, bad_persona[i] | 0x80000000ul, bad_persona[i]));
        if (r < 0) {
            snprintf(msg, msg_len, "seccomp personality rule: %s", strerror(-r));
            goto out;
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
            goto out;
        }
    }
    r = seccomp_load(ctx);
    if (r < 0) {
        snprintf(msg, msg_len, "seccomp_load: %s", strerror(-r));
        goto out;
    }
    rc = 0;
out:
    seccomp_release(ctx);
    return rc;
}
