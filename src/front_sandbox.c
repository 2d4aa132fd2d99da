/*
 * What a program does to confine itself, interposed (LD_PRELOAD or
 * -lheapprof); each call itself is the next definition's, unchanged.
 *
 * - prctl(PR_SET_SECCOMP), as OpenSSH's sandbox calls it, and
 *   syscall(SYS_seccomp), as libseccomp's seccomp_load does: once a
 *   filter is in force heapprof keeps to the system calls an allocator
 *   makes (internal.h, hp_sandboxed; OpenSSH's pre-authentication child
 *   was killed by SIGSYS on libunwind's mincore). A filter installed with
 *   an inline system call is not seen; one in force at start is
 *   (heapprof.c, hp_self_seccomp).
 * - setrlimit and prlimit: an address-space limit (vsftpd's sessions)
 *   first shrinks the sample range (range.h, hp_range_fit).
 * - closefrom and close_range: heapprof's services step aside
 *   (heapprof.c, hp_lifecycle_around_close).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/seccomp.h>
#include <stdarg.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "config.h"
#include "front_attach.h"
#include "internal.h"
#include "log.h"
#include "record.h"

static void *next_prctl, *next_syscall;
static void *next_setrlimit, *next_setrlimit64, *next_prlimit, *next_prlimit64;
static void *next_closefrom, *next_close_range;

/* dlsym may allocate: resolved before the program runs. */
static int (*resolve_prctl(void))(int, ...)
{
    int (*f)(int, ...);
    *(void **)&f = hp_next_symbol("prctl", &next_prctl);
    return f;
}

static long (*resolve_syscall(void))(long, ...)
{
    long (*f)(long, ...);
    *(void **)&f = hp_next_symbol("syscall", &next_syscall);
    return f;
}

__attribute__((constructor(103))) static void
sandbox_front_init(void)
{
    resolve_prctl();
    resolve_syscall();
}

HP_EXPORT int
prctl(int option, ...)
{
    va_list ap;
    va_start(ap, option);
    unsigned long a2 = va_arg(ap, unsigned long);
    unsigned long a3 = va_arg(ap, unsigned long);
    unsigned long a4 = va_arg(ap, unsigned long);
    unsigned long a5 = va_arg(ap, unsigned long);
    va_end(ap);
    int (*real)(int, ...) = resolve_prctl();
    if (real == NULL) {
        hp_log_no_next("prctl");
        return -1;
    }
    if (option == PR_SET_SECCOMP)
        hp_record_altstack_refresh();
    int rc = real(option, a2, a3, a4, a5);
    if (rc == 0 && option == PR_SET_SECCOMP)
        hp_sandbox_note();
    return rc;
}

HP_EXPORT long
syscall(long number, ...)
{
    va_list ap;
    va_start(ap, number);
    long a[6];
    for (int i = 0; i < 6; i++)
        a[i] = va_arg(ap, long);
    va_end(ap);
    long (*real)(long, ...) = resolve_syscall();
    if (real == NULL) {
        hp_log_no_next("syscall");
        return -1;
    }
#ifdef SYS_seccomp
    bool confining =
        number == SYS_seccomp &&
        (a[0] == SECCOMP_SET_MODE_STRICT || a[0] == SECCOMP_SET_MODE_FILTER);
#else
    bool confining = false;
#endif
    if (confining)
        hp_record_altstack_refresh();
    long rc = real(number, a[0], a[1], a[2], a[3], a[4], a[5]);
    if (rc >= 0 && confining)
        hp_sandbox_note();
    return rc;
}

/* ------------------------------------------------- resource limits */

/* The 64-bit forms are the same calls with the same layout on 64-bit
 * systems, and with wider fields on 32-bit ones: the soft limit is read
 * from whichever the program passed. */
static void
before_limit(int resource, const rlim64_t *soft)
{
    if (resource == RLIMIT_AS && soft != NULL && *soft != RLIM64_INFINITY)
        hp_front_fit_range((uint64_t)*soft);
}

static void
before_limit32(int resource, const struct rlimit *new)
{
    if (new != NULL &&new->rlim_cur != RLIM_INFINITY) {
        rlim64_t soft = new->rlim_cur;
        before_limit(resource, &soft);
    }
}

static void
before_limit64(int resource, const struct rlimit64 *new)
{
    before_limit(resource, new != NULL ? &new->rlim_cur : NULL);
}

HP_EXPORT int
setrlimit(__rlimit_resource_t resource, const struct rlimit *rlim)
{
    int (*real)(__rlimit_resource_t, const struct rlimit *);
    *(void **)&real = hp_next_symbol("setrlimit", &next_setrlimit);
    if (real == NULL) {
        hp_log_no_next("setrlimit");
        return -1;
    }
    before_limit32((int)resource, rlim);
    return real(resource, rlim);
}

HP_EXPORT int
setrlimit64(__rlimit_resource_t resource, const struct rlimit64 *rlim)
{
    int (*real)(__rlimit_resource_t, const struct rlimit64 *);
    *(void **)&real = hp_next_symbol("setrlimit64", &next_setrlimit64);
    if (real == NULL) {
        hp_log_no_next("setrlimit64");
        return -1;
    }
    before_limit64((int)resource, rlim);
    return real(resource, rlim);
}

HP_EXPORT int
prlimit(pid_t pid, __rlimit_resource_t resource, const struct rlimit *new,
        struct rlimit *old)
{
    int (*real)(pid_t, __rlimit_resource_t, const struct rlimit *,
                struct rlimit *);
    *(void **)&real = hp_next_symbol("prlimit", &next_prlimit);
    if (real == NULL) {
        hp_log_no_next("prlimit");
        return -1;
    }
    if (pid == 0 || pid == getpid())
        before_limit32((int)resource, new);
    return real(pid, resource, new, old);
}

HP_EXPORT int
prlimit64(pid_t pid, __rlimit_resource_t resource, const struct rlimit64 *new,
          struct rlimit64 *old)
{
    int (*real)(pid_t, __rlimit_resource_t, const struct rlimit64 *,
                struct rlimit64 *);
    *(void **)&real = hp_next_symbol("prlimit64", &next_prlimit64);
    if (real == NULL) {
        hp_log_no_next("prlimit64");
        return -1;
    }
    if (pid == 0 || pid == getpid())
        before_limit64((int)resource, new);
    return real(pid, resource, new, old);
}

/* ------------------------------------------------- mass closes */

struct close_call {
    bool range; /* close_range, else closefrom */
    unsigned first, last;
    int flags;
    int rc, err;
};

static void
do_close(void *arg)
{
    struct close_call *c = arg;
    if (c->range) {
        int (*real)(unsigned, unsigned, int);
        *(void **)&real = hp_next_symbol("close_range", &next_close_range);
        c->rc = real != NULL ? real(c->first, c->last, c->flags)
                             : (int)syscall(SYS_close_range, c->first, c->last,
                                            c->flags);
    } else {
        void (*real)(int);
        *(void **)&real = hp_next_symbol("closefrom", &next_closefrom);
        if (real != NULL)
            real((int)c->first);
        else
            c->rc = (int)syscall(SYS_close_range, c->first, ~0u, 0);
    }
    c->err = errno;
}

HP_EXPORT void
closefrom(int lowfd)
{
    struct close_call c = {.range = false, .first = (unsigned)lowfd};
    int saved = errno;
    hp_lifecycle_around_close(do_close, &c);
    errno = saved;
}

HP_EXPORT int
close_range(unsigned first, unsigned last, int flags)
{
    struct close_call c = {true, first, last, flags, 0, 0};
    int saved = errno;
    /* Only marks them close-on-exec: nothing is closed now. */
    if ((flags & CLOSE_RANGE_CLOEXEC) != 0)
        do_close(&c);
    else
        hp_lifecycle_around_close(do_close, &c);
    errno = c.rc == 0 ? saved : c.err;
    return c.rc;
}
