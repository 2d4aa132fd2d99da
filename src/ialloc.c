/*
 * ialloc: a bump allocator over 1 MiB mmap'ed chunks for heapprof's own
 * long-lived records. Nothing is ever returned to it (callers keep free
 * lists of their fixed-size records), which keeps it tiny and lock-light.
 * All mapped bytes count against the metadata budget (HEAPPROF_MAX_MEMORY).
 */
#include "ialloc.h"

#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

#define HP_CHUNK_SIZE (1u << 20)

/* Protects cur/cur_left; the innermost lock of heapprof (taken last). */
static pthread_mutex_t ialloc_lock = PTHREAD_MUTEX_INITIALIZER;
static char *cur;
static size_t cur_left;
static uint64_t mapped;
static uint64_t budget = HP_DEFAULT_MAX_MEMORY; /* until configured */

static void *
map_zeroed(size_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

static bool
charge(uint64_t size)
{
    uint64_t now = __atomic_load_n(&mapped, __ATOMIC_RELAXED);
    do {
        if (now + size > __atomic_load_n(&budget, __ATOMIC_RELAXED))
            return false;
    } while (!__atomic_compare_exchange_n(&mapped, &now, now + size, true,
                                          __ATOMIC_RELAXED, __ATOMIC_RELAXED));
    return true;
}

void *
hp_ialloc_region(size_t size)
{
    size = (size + 4095) & ~(size_t)4095;
    if (!charge(size))
        return NULL;
    void *p = map_zeroed(size);
    if (p == NULL)
        __atomic_fetch_sub(&mapped, size, __ATOMIC_RELAXED);
    return p;
}

void *
hp_ialloc(size_t size)
{
    size = (size + 15) & ~(size_t)15;
    if (size > HP_CHUNK_SIZE / 4)
        return hp_ialloc_region(size);
    /* Objects of a cache line or more start on a line: a sampled path
     * that finds them cold then misses once per line it needs, not twice. */
    uintptr_t align = size >= 64 ? 64 : 16;
    pthread_mutex_lock(&ialloc_lock);
    size_t pad = (size_t)(-(uintptr_t)cur & (align - 1));
    if (cur_left < size + pad) {
        char *chunk = hp_ialloc_region(HP_CHUNK_SIZE);
        if (chunk == NULL) {
            pthread_mutex_unlock(&ialloc_lock);
            return NULL;
        }
        cur = chunk;
        cur_left = HP_CHUNK_SIZE;
        pad = 0;
    }
    void *p = cur + pad;
    cur += size + pad;
    cur_left -= size + pad;
    pthread_mutex_unlock(&ialloc_lock);
    return p;
}

uint64_t
hp_resident_bytes(const void *start, size_t len)
{
    /* mincore is what a seccomp filter is least likely to allow. */
    if (__atomic_load_n(&hp_sandboxed, __ATOMIC_RELAXED))
        return 0;
    /* The kernel's page size: mincore wants an address aligned to it and
     * reports one byte per page (16 or 64 KiB on many arm64 kernels). */
    uintptr_t page = (uintptr_t)getpagesize(),
              lo = (uintptr_t)start & ~(page - 1),
              hi = ((uintptr_t)start + len + page - 1) & ~(page - 1);
    unsigned char vec[256];
    uint64_t bytes = 0;
    for (uintptr_t a = lo; a < hi; a += sizeof vec * page) {
        size_t n = (hi - a) / page < sizeof vec ? (size_t)((hi - a) / page)
                                                : sizeof vec;
        if (mincore((void *)a, n * page, vec) != 0)
            return bytes;
        for (size_t i = 0; i < n; i++)
            bytes += (vec[i] & 1) ? page : 0;
    }
    return bytes;
}

bool
hp_ialloc_charge(uint64_t size)
{
    return charge(size);
}

void
hp_ialloc_uncharge(uint64_t size)
{
    __atomic_fetch_sub(&mapped, size, __ATOMIC_RELAXED);
}

uint64_t
hp_ialloc_mapped(void)
{
    return __atomic_load_n(&mapped, __ATOMIC_RELAXED);
}

void
hp_ialloc_set_budget(uint64_t bytes)
{
    __atomic_store_n(&budget, bytes, __ATOMIC_RELAXED);
}

uint64_t
hp_ialloc_budget(void)
{
    return __atomic_load_n(&budget, __ATOMIC_RELAXED);
}

void
hp_ialloc_prefork(void)
{
    pthread_mutex_lock(&ialloc_lock);
}

void
hp_ialloc_postfork_parent(void)
{
    pthread_mutex_unlock(&ialloc_lock);
}

void
hp_ialloc_postfork_child(void)
{
    pthread_mutex_init(&ialloc_lock, NULL);
}
