/*
 * A host that confines itself the ways daemons do, then allocates from
 * call sites no stack walk has seen yet (so heapprof must learn them):
 *
 *   closefrom       closes every descriptor above stderr, as sshd's
 *                   re-executed child and many daemons do at start, then
 *                   opens socket pairs under the freed numbers and checks
 *                   each still carries exactly what is sent through it
 *                   (libunwind 1.6 keeps a pipe by number to check
 *                   memory: its walks read from, wrote into and closed the
 *                   host's sockets, or blocked on them);
 *   seccomp-prctl   installs a seccomp filter that kills the process for
 *   seccomp-syscall any system call but an allocator's and stdio's, as
 *                   OpenSSH's pre-authentication sandbox does (with prctl,
 *                   or with syscall(SYS_seccomp) as libseccomp does);
 *   closefrom-serve closefrom(3) as varnishd does at start, the same
 *                   socket pairs, then says "ready" and waits for stdin
 *                   to close before checking them (check_closefrom.py asks
 *                   heapprof's HTTP endpoint meanwhile);
 *   rlimit-as       limits its address space to 1 GiB, as vsftpd's
 *                   sessions do, then maps 64 blocks of 1 MiB (heapprof's
 *                   reservation of the machine's memory made them fail);
 *   stderr-socket   has a TCP connection as stderr, as an inetd-style
 *                   server's child does, and makes heapprof want to say
 *                   something (a chroot with HEAPPROF_SNAPSHOT_DIR set;
 *                   root only): the peer must get only what the program
 *                   wrote.
 *
 * The same output bare and under heapprof (run_compare.sh). Exit 77 for
 * the seccomp modes where the filter cannot be built (not x86-64).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>

#define PAIRS 16

/* Fresh call sites, a chain of distinct frames deep: each level is its
 * own function, so the frame cache has not seen these return addresses. */
#define LEVEL(n, next)                                                         \
    __attribute__((noinline)) static size_t level##n(int k)                    \
    {                                                                          \
        char *p = malloc(4096 + (size_t)k * 64);                               \
        if (p == NULL)                                                         \
            return 0;                                                          \
        memset(p, k, 64);                                                      \
        size_t sum = (size_t)p[k % 64] + next(k);                              \
        free(p);                                                               \
        __asm__ volatile("" ::: "memory");                                     \
        return sum;                                                            \
    }
static size_t
level0(int k)
{
    return (size_t)k;
}
LEVEL(1, level0)
LEVEL(2, level1)
LEVEL(3, level2)
LEVEL(4, level3)
LEVEL(5, level4)
LEVEL(6, level5)
LEVEL(7, level6)
LEVEL(8, level7)

static size_t
allocate_everywhere(void)
{
    size_t sum = 0;
    for (int k = 0; k < 2000; k++)
        sum += level8(k);
    return sum;
}

static int
closefrom_mode(bool serve)
{
    if (serve) {
        closefrom(3);
    } else {
        for (int fd = 3; fd < 1024; fd++)
            close(fd);
    }
    int pairs[PAIRS][2];
    for (int i = 0; i < PAIRS; i++)
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pairs[i]) != 0)
            return 1;
    size_t sum = allocate_everywhere();
    if (serve) {
        printf("ready\n");
        fflush(stdout);
        char buf[64];
        while (read(0, buf, sizeof buf) > 0)
            ;
    }
    int bad = 0;
    for (int i = 0; i < PAIRS; i++) {
        char msg[32], got[64];
        int len = snprintf(msg, sizeof msg, "pair %d", i);
        if (write(pairs[i][0], msg, (size_t)len) != len) {
            printf("pair %d: write: %s\n", i, strerror(errno));
            bad++;
            continue;
        }
        ssize_t n = recv(pairs[i][1], got, sizeof got, MSG_DONTWAIT);
        if (n != len || memcmp(got, msg, (size_t)len) != 0) {
            printf("pair %d: read %zd bytes, not \"%s\"\n", i, n, msg);
            bad++;
        }
    }
    printf("sum %zu, %d of %d socket pairs intact\n", sum, PAIRS - bad, PAIRS);
    return bad != 0;
}

#if defined(__x86_64__)
#define ALLOW(nr)                                                              \
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (nr), 0, 1),                           \
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)

static struct sock_filter filter[] = {
    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
    ALLOW(SYS_brk),
    ALLOW(SYS_mmap),
    ALLOW(SYS_munmap),
    ALLOW(SYS_mremap),
    ALLOW(SYS_mprotect),
    ALLOW(SYS_madvise),
    ALLOW(SYS_futex),
    ALLOW(SYS_write),
    ALLOW(SYS_exit),
    ALLOW(SYS_exit_group),
    ALLOW(SYS_rt_sigreturn),
    ALLOW(SYS_clock_gettime),
    ALLOW(SYS_getrandom),
    ALLOW(SYS_getpid),
    ALLOW(SYS_gettid),
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
};

static int
seccomp_mode(bool with_syscall)
{
    struct sock_fprog prog = {sizeof filter / sizeof filter[0], filter};
    printf("confining\n");
    fflush(stdout);
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        return 1;
    int rc = with_syscall
                 ? (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog)
                 : prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0);
    if (rc != 0)
        return 1;
    size_t sum = allocate_everywhere();
    printf("sum %zu under the filter\n", sum);
    fflush(stdout);
    return 0;
}
#else
static int
seccomp_mode(bool with_syscall)
{
    (void)with_syscall;
    printf("skipped: the filter is written for x86-64\n");
    return 77;
}
#endif

static int
rlimit_mode(void)
{
    struct rlimit rl = {1ul << 30, 1ul << 30};
    if (setrlimit(RLIMIT_AS, &rl) != 0)
        return 1;
    void *blocks[64];
    int got = 0;
    for (int i = 0; i < 64; i++) {
        blocks[i] = malloc(1u << 20);
        if (blocks[i] != NULL) {
            memset(blocks[i], i, 4096);
            got++;
        }
    }
    for (int i = 0; i < 64; i++)
        free(blocks[i]);
    printf("%d of 64 blocks of 1 MiB under a 1 GiB address-space limit\n", got);
    return 0;
}

/* A connected pair of TCP sockets on the loopback: [0] is given to the
 * program as stderr, [1] is its peer. */
static int
tcp_pair(int fds[2])
{
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        listen(lfd, 1) != 0 || getsockname(lfd, (struct sockaddr *)&sa, &len))
        return -1;
    fds[0] = socket(AF_INET, SOCK_STREAM, 0);
    if (fds[0] < 0 || connect(fds[0], (struct sockaddr *)&sa, sizeof sa) != 0)
        return -1;
    fds[1] = accept(lfd, NULL, NULL);
    close(lfd);
    return fds[1] < 0 ? -1 : 0;
}

static int
stderr_socket_mode(void)
{
    int fds[2];
    if (tcp_pair(fds) != 0 || dup2(fds[0], 2) != 2)
        return 1;
    /* Into "/": confined to where it was, as far as paths go. */
    if (chroot("/") != 0) {
        int e = errno;
        printf("skipped: chroot: %s\n", strerror(e));
        return e == EPERM ? 77 : 1;
    }
    static const char mine[] = "the program's own line\n";
    if (write(2, mine, sizeof mine - 1) != (ssize_t)sizeof mine - 1)
        return 1;
    shutdown(2, SHUT_WR);
    char got[4096];
    size_t n = 0;
    for (ssize_t r;
         n < sizeof got && (r = read(fds[1], got + n, sizeof got - n)) > 0;)
        n += (size_t)r;
    printf("the peer got %zu bytes: %.*s", n, (int)n, got);
    return 0;
}

int
main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "";
    if (strcmp(mode, "closefrom") == 0)
        return closefrom_mode(false);
    if (strcmp(mode, "closefrom-serve") == 0)
        return closefrom_mode(true);
    if (strcmp(mode, "seccomp-prctl") == 0)
        return seccomp_mode(false);
    if (strcmp(mode, "seccomp-syscall") == 0)
        return seccomp_mode(true);
    if (strcmp(mode, "rlimit-as") == 0)
        return rlimit_mode();
    if (strcmp(mode, "stderr-socket") == 0)
        return stderr_socket_mode();
    fprintf(stderr,
            "usage: %s closefrom|closefrom-serve|seccomp-prctl|"
            "seccomp-syscall|rlimit-as|stderr-socket\n",
            argv[0]);
    return 2;
}
