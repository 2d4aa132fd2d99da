/*
 * The forwarding floor of issue 7: an LD_PRELOAD malloc family that does
 * nothing but forward to the next definition (dlsym RTLD_NEXT), the least
 * any interposer over someone else's allocator pays. bench/run.sh measures
 * it beside heapprof so that "heapprof's own cost" is heapprof minus this.
 * Allocations made while dlsym runs come from a small static buffer.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

static void *(*next_malloc)(size_t);
static void (*next_free)(void *);
static void *(*next_calloc)(size_t, size_t);
static void *(*next_realloc)(void *, size_t);
static int (*next_posix_memalign)(void **, size_t, size_t);
static void *(*next_aligned_alloc)(size_t, size_t);
static void *(*next_memalign)(size_t, size_t);

static _Alignas(64) char boot[64 * 1024];
static size_t boot_used;
static int resolving;

static int
in_boot(const void *p)
{
    return (const char *)p >= boot && (const char *)p < boot + sizeof boot;
}

static void *
boot_alloc(size_t size)
{
    size_t start = (boot_used + 15) & ~(size_t)15;
    if (size > sizeof boot - start)
        return NULL;
    boot_used = start + size;
    return boot + start;
}

static void
resolve(void)
{
    if (resolving)
        return;
    resolving = 1;
    *(void **)&next_malloc = dlsym(RTLD_NEXT, "malloc");
    *(void **)&next_free = dlsym(RTLD_NEXT, "free");
    *(void **)&next_calloc = dlsym(RTLD_NEXT, "calloc");
    *(void **)&next_realloc = dlsym(RTLD_NEXT, "realloc");
    *(void **)&next_posix_memalign = dlsym(RTLD_NEXT, "posix_memalign");
    *(void **)&next_aligned_alloc = dlsym(RTLD_NEXT, "aligned_alloc");
    *(void **)&next_memalign = dlsym(RTLD_NEXT, "memalign");
    resolving = 0;
}

void *
malloc(size_t size)
{
    if (__builtin_expect(next_malloc == NULL, 0)) {
        resolve();
        if (next_malloc == NULL)
            return boot_alloc(size);
    }
    return next_malloc(size);
}

void
free(void *ptr)
{
    if (__builtin_expect(in_boot(ptr), 0))
        return;
    if (__builtin_expect(next_free == NULL, 0))
        resolve();
    next_free(ptr);
}

void *
calloc(size_t nmemb, size_t size)
{
    if (__builtin_expect(next_calloc == NULL, 0)) {
        resolve();
        if (next_calloc == NULL) {
            size_t total;
            if (__builtin_mul_overflow(nmemb, size, &total))
                return NULL;
            return boot_alloc(total); /* static memory is zero */
        }
    }
    return next_calloc(nmemb, size);
}

void *
realloc(void *ptr, size_t size)
{
    if (__builtin_expect(in_boot(ptr), 0)) {
        size_t avail = (size_t)(boot + sizeof boot - (char *)ptr);
        void *p = malloc(size);
        if (p != NULL)
            memcpy(p, ptr, size < avail ? size : avail);
        return p;
    }
    if (__builtin_expect(next_realloc == NULL, 0))
        resolve();
    return next_realloc(ptr, size);
}

int
posix_memalign(void **out, size_t align, size_t size)
{
    if (next_posix_memalign == NULL)
        resolve();
    return next_posix_memalign(out, align, size);
}

void *
aligned_alloc(size_t align, size_t size)
{
    if (next_aligned_alloc == NULL)
        resolve();
    return next_aligned_alloc(align, size);
}

void *
memalign(size_t align, size_t size)
{
    if (next_memalign == NULL)
        resolve();
    return next_memalign(align, size);
}
