/*
 * An allocator that fails: preloaded after libheapprof.so
 * (LD_PRELOAD=libheapprof.so:hostile_failing_malloc.so), so heapprof's
 * malloc forwards to it, it makes every HP_FAIL_EVERYth malloc, calloc or
 * realloc of the process fail with ENOMEM and forwards the rest to the C
 * library. Everything that allocates through the process's malloc meets
 * the failures: the host, heapprof's export, and the libraries it uses.
 * With HP_FAIL_LATE=1 the failures start when the host calls
 * hostile_failing_malloc_start() (after a first export: glibc allocates a
 * thread's copy of a dlopen'ed library's thread-local state with malloc on
 * the thread's first use and aborts the process when that fails, before
 * heapprof can do anything; heapprof's own threads take theirs at start).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

static void *(*real_malloc)(size_t);
static void *(*real_calloc)(size_t, size_t);
static void *(*real_realloc)(void *, size_t);
static void (*real_free)(void *);
static unsigned long every, count;
static char boot[4096];
static size_t boot_used;
static int resolving;
static int started = 1;

void hostile_failing_malloc_start(void);

void
hostile_failing_malloc_start(void)
{
    __atomic_store_n(&started, 1, __ATOMIC_RELEASE);
}

static void
init(void)
{
    if (real_malloc != NULL || resolving)
        return;
    resolving = 1;
    real_calloc = dlsym(RTLD_NEXT, "calloc");
    real_realloc = dlsym(RTLD_NEXT, "realloc");
    real_free = dlsym(RTLD_NEXT, "free");
    real_malloc = dlsym(RTLD_NEXT, "malloc");
    const char *e = getenv("HP_FAIL_EVERY");
    every = e ? strtoul(e, NULL, 10) : 0;
    const char *late = getenv("HP_FAIL_LATE");
    if (late != NULL && strcmp(late, "1") == 0)
        started = 0;
    resolving = 0;
}

static int
fail_now(void)
{
    if (every == 0 || !__atomic_load_n(&started, __ATOMIC_ACQUIRE))
        return 0;
    return __atomic_add_fetch(&count, 1, __ATOMIC_RELAXED) % every == 0;
}

void *
malloc(size_t n)
{
    init();
    if (real_malloc == NULL)
        return NULL;
    if (fail_now()) {
        errno = ENOMEM;
        return NULL;
    }
    return real_malloc(n);
}

void *
calloc(size_t a, size_t b)
{
    init();
    if (real_calloc == NULL) { /* dlsym's own calloc while resolving */
        size_t n = (a * b + 15) & ~(size_t)15;
        if (boot_used + n > sizeof(boot))
            return NULL;
        void *p = boot + boot_used;
        boot_used += n;
        return p;
    }
    if (fail_now()) {
        errno = ENOMEM;
        return NULL;
    }
    return real_calloc(a, b);
}

void *
realloc(void *p, size_t n)
{
    init();
    if (real_realloc == NULL)
        return NULL;
    if (n != 0 && fail_now()) {
        errno = ENOMEM;
        return NULL;
    }
    return real_realloc(p, n);
}

void
free(void *p)
{
    if ((char *)p >= boot && (char *)p < boot + sizeof(boot))
        return;
    init();
    if (real_free != NULL)
        real_free(p);
}
