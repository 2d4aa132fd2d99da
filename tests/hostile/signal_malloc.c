/*
 * Hostile host: SIGALRM handlers that call malloc, calloc, realloc and free
 * while the interrupted thread is itself in a malloc/free loop. Two threads
 * each get a per-thread POSIX timer (SIGEV_THREAD_ID) firing every 200 us.
 *
 * malloc is not async-signal-safe, and glibc's malloc really can deadlock or
 * corrupt its per-thread cache if a handler allocates while the interrupted
 * code is inside libc. So that the bare run is deterministic, the handler
 * looks at the interrupted program counter and does nothing when it lies in
 * libc or the dynamic loader. Everywhere else, including anywhere inside an
 * interposing allocator such as heapprof, the handler allocates: an
 * interposer must survive that, as glibc's lock-free fast paths do.
 *
 * usage: hostile_signal_malloc own|foreign
 *   own      the handler allocates and frees its own blocks
 *   foreign  it also frees blocks the interrupted loop allocated (handed
 *            over through a per-thread slot), as a handler that drops a
 *            cache does
 */
#define _GNU_SOURCE
#include <errno.h>
#include <link.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#define TARGET_HANDLED 400
#define INTERVAL_NS 200000

/* Executable ranges of libc and ld.so, where the handler stays away. */
#define MAX_RANGES 16
static uintptr_t range_lo[MAX_RANGES], range_hi[MAX_RANGES];
static int nranges;

static int
collect_ranges(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    (void)arg;
    const char *name = info->dlpi_name;
    if (name == NULL || (strstr(name, "/libc.so") == NULL &&
                         strstr(name, "/ld-linux") == NULL &&
                         strstr(name, "/libc-") == NULL))
        return 0;
    for (int i = 0; i < info->dlpi_phnum && nranges < MAX_RANGES; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X)) {
            range_lo[nranges] = info->dlpi_addr + ph->p_vaddr;
            range_hi[nranges] = range_lo[nranges] + ph->p_memsz;
            nranges++;
        }
    }
    return 0;
}

static uintptr_t
interrupted_pc(void *ucv)
{
    ucontext_t *uc = ucv;
#if defined(__x86_64__)
    return (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
#elif defined(__aarch64__)
    return (uintptr_t)uc->uc_mcontext.pc;
#else
#error "interrupted_pc: unsupported architecture"
#endif
}

static int
in_libc(uintptr_t pc)
{
    for (int i = 0; i < nranges; i++)
        if (pc >= range_lo[i] && pc < range_hi[i])
            return 1;
    return 0;
}

static int foreign_mode;
static int failures;

static __thread volatile long handled, skipped;
static __thread unsigned char *volatile handoff;
static __thread size_t handoff_size;

static void
fail(const char *what)
{
    (void)!write(2, what, strlen(what));
    __atomic_fetch_add(&failures, 1, __ATOMIC_RELAXED);
}

static void
on_alarm(int sig, siginfo_t *si, void *ucv)
{
    (void)sig;
    (void)si;
    int saved = errno;
    if (in_libc(interrupted_pc(ucv))) {
        skipped++;
        errno = saved;
        return;
    }
    size_t n = 24 + (size_t)(handled % 2000);
    unsigned char *p = malloc(n);
    if (p == NULL) {
        fail("handler: malloc failed\n");
        goto out;
    }
    memset(p, 0x5a, n);
    unsigned char *q = realloc(p, n + 700);
    if (q == NULL) {
        free(p);
        fail("handler: realloc failed\n");
        goto out;
    }
    if (q[n - 1] != 0x5a)
        fail("handler: realloc lost data\n");
    unsigned char *z = calloc(1, n);
    if (z == NULL || z[n - 1] != 0)
        fail("handler: calloc\n");
    free(z);
    free(q);
    if (foreign_mode) {
        unsigned char *f = handoff;
        if (f != NULL) {
            handoff = NULL;
            if (f[0] != 0xa5 || f[handoff_size - 1] != 0xa5)
                fail("handler: handed-over block damaged\n");
            free(f);
        }
    }
    handled++;
out:
    errno = saved;
}

/* The loop's own work, written so that it stays in this executable (a
 * memset would be a call into libc, where the handler does nothing). */
static void
fill(unsigned char *p, unsigned char c, size_t n)
{
    volatile unsigned char *v = p;
    for (size_t i = 0; i < n; i++)
        v[i] = c;
}

static void *
loop_main(void *arg)
{
    const char *who = arg;
    timer_t timer;
    struct sigevent sev;
    memset(&sev, 0, sizeof sev);
    sev.sigev_notify = SIGEV_THREAD_ID;
    sev.sigev_signo = SIGALRM;
    sev._sigev_un._tid = (pid_t)syscall(SYS_gettid);
    if (timer_create(CLOCK_MONOTONIC, &sev, &timer) != 0) {
        perror("timer_create");
        exit(3);
    }
    struct itimerspec its = {{0, INTERVAL_NS}, {0, INTERVAL_NS}};
    timer_settime(timer, 0, &its, NULL);

    sigset_t alarm_set;
    sigemptyset(&alarm_set);
    sigaddset(&alarm_set, SIGALRM);
    pthread_sigmask(SIG_UNBLOCK, &alarm_set, NULL);

    unsigned long iter = 0;
    while (handled < TARGET_HANDLED) {
        for (int k = 0; k < 64; k++) {
            size_t n = 16 + (size_t)((k * 40 + iter) % 3000);
            unsigned char *p = malloc(n);
            if (p == NULL) {
                fail("loop: malloc failed\n");
                continue;
            }
            fill(p, (unsigned char)k, n);
            if (k % 8 == 0) {
                unsigned char *q = realloc(p, n * 2);
                if (q == NULL) {
                    fail("loop: realloc failed\n");
                } else {
                    if (q[n - 1] != (unsigned char)k)
                        fail("loop: realloc lost data\n");
                    p = q;
                }
            }
            free(p);
        }
        if (foreign_mode && handoff == NULL) {
            size_t n = 64 + iter % 5000;
            unsigned char *f = malloc(n);
            if (f != NULL) {
                memset(f, 0xa5, n);
                handoff_size = n;
                handoff = f;
            }
        }
        iter++;
    }
    pthread_sigmask(SIG_BLOCK, &alarm_set, NULL);
    timer_delete(timer);
    free(handoff);
    handoff = NULL;
    if (getenv("HOSTILE_VERBOSE") != NULL)
        fprintf(stderr, "%s: %lu iterations, %ld handled, %ld skipped\n", who,
                iter, (long)handled, (long)skipped);
    return NULL;
}

int
main(int argc, char **argv)
{
    if (argc != 2 || (strcmp(argv[1], "own") != 0 &&
                      strcmp(argv[1], "foreign") != 0)) {
        fprintf(stderr, "usage: %s own|foreign\n", argv[0]);
        return 2;
    }
    foreign_mode = strcmp(argv[1], "foreign") == 0;
    dl_iterate_phdr(collect_ranges, NULL);
    if (nranges == 0) {
        fprintf(stderr, "cannot find libc's text\n");
        return 3;
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_alarm;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, NULL);

    /* Each thread unblocks SIGALRM for itself once its timer is set. */
    sigset_t alarm_set;
    sigemptyset(&alarm_set);
    sigaddset(&alarm_set, SIGALRM);
    pthread_sigmask(SIG_BLOCK, &alarm_set, NULL);

    pthread_t t;
    if (pthread_create(&t, NULL, loop_main, "worker") != 0) {
        perror("pthread_create");
        return 3;
    }
    loop_main("main");
    pthread_join(t, NULL);
    printf("main and worker each handled at least %d signals\n",
           TARGET_HANDLED);
    printf("failures %d\n", failures);
    return failures == 0 ? 0 : 1;
}
