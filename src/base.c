/*
 * The bottom layer's state: per-thread state, the clocks, the process-wide
 * counters and the restart-after-fork hook. Everything in src/ may use it;
 * it calls nothing above it (the serve layer registers its restart here).
 */
#define _GNU_SOURCE /* pthread_setname_np, RTLD_NEXT */
#include "internal.h"

#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <time.h>

#include "stats.h"

__thread struct hp_thread hp_tls __attribute__((tls_model("initial-exec")));

struct hp_stats hp_stats = {.peak_trigger = UINT64_MAX};

int hp_restart_pending;
static void (*restart_hook)(void);
bool hp_sandboxed;

uint64_t
hp_clock_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t (*HP_SEAM hp_now_mono)(void) = hp_clock_mono_ns;

uint64_t
hp_now_wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int
hp_thread_start(void *(*fn)(void *), void *arg, const char *name)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_t t;
    int rc = pthread_create(&t, &attr, fn, arg);
    pthread_attr_destroy(&attr);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc == 0 && name != NULL)
        pthread_setname_np(t, name);
    return rc;
}

void
hp_restart_hook_set(void (*fn)(void))
{
    __atomic_store_n(&restart_hook, fn, __ATOMIC_RELEASE);
}

void
hp_sandbox_note(void)
{
    __atomic_store_n(&hp_sandboxed, true, __ATOMIC_RELAXED);
}

void
hp_restart_run(void)
{
    /* Threads and sockets are what a filter most often forbids. */
    if (__atomic_load_n(&hp_sandboxed, __ATOMIC_RELAXED))
        return;
    if (!__atomic_exchange_n(&hp_restart_pending, 0, __ATOMIC_ACQ_REL))
        return;
    void (*fn)(void) = __atomic_load_n(&restart_hook, __ATOMIC_ACQUIRE);
    if (fn != NULL)
        fn();
}

uint8_t
hp_lane_assign(void)
{
    static uint32_t given;
    return (uint8_t)(1 + __atomic_fetch_add(&given, 1, __ATOMIC_RELAXED) %
                             HP_LANES);
}

void *
hp_symbol(void *handle, const char *name)
{
    hp_fence_enter();
    void *f = dlsym(handle, name);
    hp_fence_exit();
    return f;
}

void *
hp_next_symbol(const char *name, void **cache)
{
    void *f = __atomic_load_n(cache, __ATOMIC_ACQUIRE);
    if (f != NULL)
        return f;
    f = hp_symbol(RTLD_NEXT, name);
    if (f != NULL)
        __atomic_store_n(cache, f, __ATOMIC_RELEASE);
    return f;
}
