/*
 * The malloc-family interposer (LD_PRELOAD or -lheapprof). Every entry
 * point forwards to the next definition in the lookup order (dlsym
 * RTLD_NEXT: glibc, or jemalloc in a program linked against it; never
 * __libc_*, which would mix allocators), samples with the inline
 * countdown and records sampled blocks. Until the real functions are
 * known (dlsym itself may allocate), requests are served from a small
 * static bootstrap pool whose blocks are recognised by address.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1 /* dladdr, dl_iterate_phdr */
#endif
#include <dlfcn.h>
#include <link.h>
#include <errno.h>
#include <malloc.h>
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "heapprof.h"
#include "internal.h"
#include "log.h"
#include "frame_cache.h"
#include "front_attach.h"
#include "range.h"
#include "record.h"
#include "stats.h"

/* The hot entry points start on a cache line: malloc's few instructions
 * straddling two lines made the small-allocation loop measurably slower
 * for the same instruction count (bench/, docs/PERFORMANCE.md). */
#define HP_HOT_ENTRY __attribute__((aligned(64)))

/*
 * A static link takes an archive member only for a symbol it needs; this
 * reference brings in the lifecycle (heapprof.c), whose constructor
 * configures heapprof and starts its services, with the malloc front.
 */
HP_HIDDEN extern const char hp_lifecycle_anchor;
__attribute__((used)) static const char *const lifecycle_anchor =
    &hp_lifecycle_anchor;

/* ------------------------------------------------------- bootstrap pool */

#define HP_POOL_SIZE (256u * 1024)

/* Blocks carry their size in a 16-byte header so realloc and
 * malloc_usable_size work on them; they are never reused. The pool is the
 * sample range's bootstrap area when there is a range (free() then finds
 * its blocks by the range's bounds), else this static array, whose blocks
 * the live filter finds. Chosen before the first pool block is made. */
static alignas(64) char static_pool[HP_POOL_SIZE];
static char *pool = static_pool;
static size_t pool_used;

static bool
in_pool(const void *p)
{
    return (uintptr_t)p - (uintptr_t)pool < HP_POOL_SIZE;
}

static void *
pool_alloc(size_t size, size_t align)
{
    if (align < 16)
        align = 16;
    if (size > HP_POOL_SIZE || (align & (align - 1)) != 0)
        return NULL;
    size_t off = __atomic_load_n(&pool_used, __ATOMIC_RELAXED);
    size_t start, end;
    do {
        start = (off + 16 + align - 1) & ~(align - 1);
        end = start + ((size + 15) & ~(size_t)15);
        if (end > HP_POOL_SIZE) {
            hp_log_once(pool_full,
                        "bootstrap pool exhausted: early "
                        "allocation of %zu bytes refused",
                        size);
            return NULL;
        }
    } while (!__atomic_compare_exchange_n(&pool_used, &off, end, true,
                                          __ATOMIC_RELAXED, __ATOMIC_RELAXED));
    *(size_t *)(void *)(pool + start - 16) = size;
    /* Without a range, free() tests the live filter: a pinned slot sends
     * the block to its slow path, which recognises pool blocks. */
    if (pool == static_pool)
        hp_live_filter_pin((uintptr_t)(pool + start));
    return pool + start;
}

static size_t
pool_size_of(const void *p)
{
    return *(const size_t *)(const void *)((const char *)p - 16);
}

/* ------------------------------------------------- the next allocator */

/*
 * Until resolve() succeeds, the hot entries (malloc, free, calloc,
 * realloc) point at boot_* functions that resolve or fall back to the
 * pool, so their fast paths need no "resolved yet?" test: one indirect
 * jump, like a forwarding shim. Fields are written and read atomically
 * (relaxed: a stale boot_* pointer just resolves again).
 */
static void *boot_malloc(size_t size);
static void boot_free(void *ptr);
static void *boot_calloc(size_t nmemb, size_t size);
static void *boot_realloc(void *ptr, size_t size);
static void free_filtered(void *ptr);
static void *realloc_filtered(void *ptr, size_t size);

struct next_fns {
    /* The cache line every malloc and free reads. */
    void *(*malloc)(size_t);
    void (*free)(void *);
    void *(*calloc)(size_t, size_t);
    void *(*realloc)(void *, size_t);
    /* What free and realloc do with a block outside the sample range:
     * hand it to the next allocator, or (without a range) test the live
     * filter first (free_filtered, realloc_filtered). */
    void (*free_unranged)(void *);
    void *(*realloc_unranged)(void *, size_t);
    /* The sample range (range.h); 0, 0 without one. Set before its first
     * block exists; the length only shrinks after (hp_front_fit_range). */
    uintptr_t range_lo;
    uintptr_t range_len;
    /* The rest. */
    int (*posix_memalign)(void **, size_t, size_t);
    void *(*aligned_alloc)(size_t, size_t);
    void *(*memalign)(size_t, size_t);
    void *(*valloc)(size_t);
    void *(*pvalloc)(size_t);
    size_t (*malloc_usable_size)(void *);
};

static alignas(64) struct next_fns next = {
    .malloc = boot_malloc,
    .free = boot_free,
    .calloc = boot_calloc,
    .realloc = boot_realloc,
    .free_unranged = boot_free,
    .realloc_unranged = boot_realloc,
};
static int resolved; /* 0 no, 1 yes (atomic) */

#define NEXT(fn) __atomic_load_n(&next.fn, __ATOMIC_RELAXED)

static inline bool
in_range(const void *p)
{
    return (uintptr_t)p - NEXT(range_lo) < NEXT(range_len);
}

static inline bool
ranged(void)
{
    return NEXT(range_len) != 0;
}

/*
 * Reserve the sample range, once, before the first pool block: only a
 * process whose malloc this is gets here (heapprof_attach's forwarding
 * goes through hp_front_use_next and keeps the filter).
 */
static void
setup_range(void)
{
    static int tried;
    if (__atomic_exchange_n(&tried, 1, __ATOMIC_ACQ_REL))
        return;
    uintptr_t lo;
    size_t len, pool_size;
    if (!hp_range_reserve(&lo, &len))
        return;
    char *area = hp_range_pool(&pool_size);
    if (area == NULL || pool_size < HP_POOL_SIZE ||
        __atomic_load_n(&pool_used, __ATOMIC_RELAXED) != 0)
        return;
    pool = area;
    __atomic_store_n(&next.range_lo, lo, __ATOMIC_RELAXED);
    __atomic_store_n(&next.range_len, len, __ATOMIC_RELAXED);
}

static void
publish_range_len(size_t len)
{
    __atomic_store_n(&next.range_len, len, __ATOMIC_RELAXED);
}

void
hp_front_fit_range(uint64_t as_limit)
{
    if (ranged())
        (void)hp_range_fit(as_limit, publish_range_len);
}

static void *
lookup(const char *name)
{
    return dlsym(RTLD_NEXT, name);
}

/* Publish n as the next allocator. */
static void
publish_next(const struct next_fns *n)
{
    /* The rarely used forms first: readers of those test `resolved`. */
    __atomic_store_n(&next.posix_memalign, n->posix_memalign, __ATOMIC_RELAXED);
    __atomic_store_n(&next.aligned_alloc, n->aligned_alloc, __ATOMIC_RELAXED);
    __atomic_store_n(&next.memalign, n->memalign, __ATOMIC_RELAXED);
    __atomic_store_n(&next.valloc, n->valloc, __ATOMIC_RELAXED);
    __atomic_store_n(&next.pvalloc, n->pvalloc, __ATOMIC_RELAXED);
    __atomic_store_n(&next.malloc_usable_size, n->malloc_usable_size,
                     __ATOMIC_RELAXED);
    __atomic_store_n(&resolved, 1, __ATOMIC_RELEASE);
    __atomic_store_n(&next.malloc, n->malloc, __ATOMIC_RELAXED);
    __atomic_store_n(&next.free, n->free, __ATOMIC_RELAXED);
    __atomic_store_n(&next.calloc, n->calloc, __ATOMIC_RELAXED);
    __atomic_store_n(&next.realloc, n->realloc, __ATOMIC_RELAXED);
    bool r = ranged();
    __atomic_store_n(&next.free_unranged, r ? n->free : free_filtered,
                     __ATOMIC_RELAXED);
    __atomic_store_n(&next.realloc_unranged, r ? n->realloc : realloc_filtered,
                     __ATOMIC_RELAXED);
}

static bool
resolve(void)
{
    if (__atomic_load_n(&resolved, __ATOMIC_ACQUIRE))
        return true;
    if (hp_tls.resolving)
        return false;
    hp_tls.resolving++;
    setup_range();
    struct next_fns n;
    *(void **)&n.malloc = lookup("malloc");
    *(void **)&n.free = lookup("free");
    *(void **)&n.calloc = lookup("calloc");
    *(void **)&n.realloc = lookup("realloc");
    *(void **)&n.posix_memalign = lookup("posix_memalign");
    *(void **)&n.aligned_alloc = lookup("aligned_alloc");
    *(void **)&n.memalign = lookup("memalign");
    *(void **)&n.valloc = lookup("valloc");
    *(void **)&n.pvalloc = lookup("pvalloc");
    *(void **)&n.malloc_usable_size = lookup("malloc_usable_size");
    hp_tls.resolving--;
    if (n.malloc == NULL || n.free == NULL || n.calloc == NULL ||
        n.realloc == NULL || n.posix_memalign == NULL) {
        hp_log_once(no_next,
                    "cannot find the next allocator (dlsym "
                    "RTLD_NEXT failed); serving from the bootstrap pool");
        return false;
    }
    publish_next(&n);
    return true;
}

bool
hp_front_use_next(const void *const fns[HP_FRONT_NEXT_COUNT])
{
    if (__atomic_load_n(&resolved, __ATOMIC_ACQUIRE))
        return (const void *)NEXT(malloc) == fns[0] &&
               (const void *)NEXT(free) == fns[1];
    struct next_fns n;
    *(const void **)&n.malloc = fns[0];
    *(const void **)&n.free = fns[1];
    *(const void **)&n.calloc = fns[2];
    *(const void **)&n.realloc = fns[3];
    *(const void **)&n.posix_memalign = fns[4];
    *(const void **)&n.aligned_alloc = fns[5];
    *(const void **)&n.memalign = fns[6];
    *(const void **)&n.valloc = fns[7];
    *(const void **)&n.pvalloc = fns[8];
    *(const void **)&n.malloc_usable_size = fns[9];
    publish_next(&n);
    return true;
}

static inline bool
ready(void)
{
    return HP_LIKELY(__atomic_load_n(&resolved, __ATOMIC_ACQUIRE)) || resolve();
}

static void *realloc_slow(void *ptr, size_t size);

static void *
boot_malloc(size_t size)
{
    return resolve() ? NEXT(malloc)(size) : pool_alloc(size, 16);
}

static void
boot_free(void *ptr)
{
    /* Pool blocks are never reused; without a next allocator, other
     * blocks can only be leaked. */
    if (!in_pool(ptr) && resolve())
        NEXT(free_unranged)(ptr);
}

static void *
boot_calloc(size_t nmemb, size_t size)
{
    if (resolve())
        return NEXT(calloc)(nmemb, size);
    /* pool memory is zero and never reused; the product cannot overflow
     * here (calloc checked it) */
    return pool_alloc(nmemb * size, 16);
}

static void *
boot_realloc(void *ptr, size_t size)
{
    if (ptr != NULL && in_pool(ptr))
        return realloc_slow(ptr, size);
    if (resolve())
        return NEXT(realloc_unranged)(ptr, size);
    /* realloc(NULL, n) is malloc(n). */
    return ptr == NULL ? pool_alloc(size, 16) : NULL;
}

/* ------------------------------------------------------ sampled blocks */

/*
 * A sampled request is served from the sample range when there is one;
 * NULL (no range, or it cannot serve this one) sends the caller to the
 * next allocator. Fenced: an allocation by a signal handler meanwhile is
 * not sampled.
 */
static void *
range_take(size_t size, size_t align, bool zero)
{
    /* The first allocation of all may be sampled: resolving first sets
     * the range up. */
    if (!ready() || !ranged())
        return NULL;
    int saved = errno;
    hp_fence_enter();
    void *p = hp_range_alloc(size, align, zero);
    hp_fence_exit();
    errno = saved;
    return p;
}

/* Record a sampled block. With a range, a block that is not in it (the
 * range was full) cannot be told apart at free, so it is dropped. */
static HP_FRONT void
note_sample(void *p, size_t size, uint64_t rate)
{
    if (in_pool(p))
        return;
    if (ranged() && !in_range(p)) {
        hp_stat_add(&hp_stats.samples_dropped, 1);
        hp_log_once(range_full,
                    "the sample range cannot hold a sampled block of %zu "
                    "bytes (address space or memory refused): such "
                    "samples are dropped",
                    size);
        return;
    }
    if (ranged()) {
        /* Walked from the front function that called this one. */
        struct hp_stack_from from;
        HP_STACK_FROM_HERE(&from);
        hp_record_alloc_ranged(p, size, rate, &from);
    } else {
        hp_record_alloc(p, size, rate);
    }
}

static bool
pow2(size_t x)
{
    return x != 0 && (x & (x - 1)) == 0;
}

/* ------------------------------------------------------ the entry points */

/*
 * Each hot entry point is a countdown (or range) test and a tail jump to
 * the next allocator; everything else lives in a *_slow function, also in
 * the heapprof_front section so that its frame is dropped from stacks.
 */

/* malloc(size) of a sampled request. */
static HP_FRONT void *
malloc_sampled(size_t size, uint64_t rate)
{
    void *p = range_take(size, 0, false);
    if (p == NULL)
        p = NEXT(malloc)(size);
    if (p != NULL)
        note_sample(p, size, rate);
    return p;
}

static HP_FRONT void *
malloc_slow(size_t size)
{
    uint64_t rate = hp_sample_slow(size);
    return rate != 0 ? malloc_sampled(size, rate) : NEXT(malloc)(size);
}

HP_EXPORT HP_FRONT HP_HOT_ENTRY void *
malloc(size_t size)
{
    if (HP_UNLIKELY(hp_sample_countdown(size)))
        return malloc_slow(size);
    return NEXT(malloc)(size);
}

/* A range block leaves the profile: its record is accounted as freed or,
 * when it has none, it is a block a realloc kept unsampled (hp_range_keep)
 * and stops being counted as one. */
static HP_FRONT void
range_block_done(void *ptr)
{
    if (!hp_record_free_ranged(ptr))
        hp_range_unkeep(ptr);
}

/* A block that may be recorded: its record is accounted as freed, and it
 * goes back where it came from. */
static HP_FRONT void
free_slow(void *ptr)
{
    if (in_pool(ptr))
        return; /* pool blocks are never reused */
    if (in_range(ptr)) {
        range_block_done(ptr);
        /* Fenced: a signal handler's allocation meanwhile is not sampled,
         * so it never needs the range this thread may be holding. */
        int saved = errno;
        hp_fence_enter();
        hp_range_free(ptr);
        hp_fence_exit();
        errno = saved;
    } else {
        hp_record_free(ptr);
        NEXT(free)(ptr);
    }
}

/* free() of a block outside the range when there is no range. */
static HP_FRONT void
free_filtered(void *ptr)
{
    if (HP_UNLIKELY(hp_live_maybe(ptr)))
        free_slow(ptr);
    else
        NEXT(free)(ptr);
}

HP_EXPORT HP_FRONT HP_HOT_ENTRY void
free(void *ptr)
{
    /* Two compares against the line that holds the next free: a sampled
     * block is known by its address alone. free(NULL) is forwarded. */
    if (HP_UNLIKELY(in_range(ptr)))
        free_slow(ptr);
    else
        NEXT(free_unranged)(ptr);
}

static HP_FRONT void *
calloc_slow(size_t nmemb, size_t size)
{
    size_t total = nmemb * size; /* calloc() checked the product */
    uint64_t rate = hp_sample_slow(total);
    void *p = rate != 0 ? range_take(total, 0, true) : NULL;
    if (p == NULL)
        p = NEXT(calloc)(nmemb, size);
    if (rate != 0 && p != NULL)
        note_sample(p, total, rate);
    return p;
}

HP_EXPORT HP_FRONT HP_HOT_ENTRY void *
calloc(size_t nmemb, size_t size)
{
    size_t total;
    if (__builtin_mul_overflow(nmemb, size, &total)) {
        errno = ENOMEM;
        return NULL;
    }
    if (HP_UNLIKELY(hp_sample_countdown(total)))
        return calloc_slow(nmemb, size);
    return NEXT(calloc)(nmemb, size);
}

static void *
realloc_pool_block(void *ptr, size_t size)
{
    size_t old = pool_size_of(ptr);
    if (size == 0)
        return NULL; /* freed: pool blocks are simply abandoned */
    void *p = malloc(size);
    if (p != NULL)
        memcpy(p, ptr, old < size ? old : size);
    return p;
}

/* Without a range: the block stays where the next allocator put it; its
 * record leaves the live table before the real realloc so that its
 * address, if reused at once by another thread, cannot collide, and is
 * put back if the realloc fails. */
static HP_FRONT void *
realloc_in_place(void *ptr, size_t size, uint64_t rate)
{
    struct hp_live_rec rec;
    bool had = ptr != NULL && hp_record_take(ptr, &rec);
    void *p = NEXT(realloc)(ptr, size);
    if (p == NULL && size != 0) {
        if (had)
            hp_record_restore(&rec);
        return NULL;
    }
    if (had)
        hp_record_commit_free(&rec);
    if (rate != 0 && p != NULL)
        note_sample(p, size, rate);
    return p;
}

/* Usable bytes of a block outside the range; 0 when unknown. */
static size_t
next_usable(void *ptr)
{
    size_t (*fn)(void *) = NEXT(malloc_usable_size);
    return fn != NULL ? fn(ptr) : 0;
}

/* A range block that a realloc leaves unsampled stays in its slot when
 * it fits and the range allows (hp_range_keep): copying it out would cost
 * the bytes a glibc realloc in place does not. Its record is accounted
 * as freed. */
static HP_FRONT bool
keep_in_slot(void *ptr, size_t size)
{
    if (!hp_range_keep(ptr, size))
        return false;
    range_block_done(ptr); /* kept before: counted once */
    return true;
}

/* With a range: a block that leaves it or enters it (a new sample) moves:
 * a new block, a copy, the old one freed where it came from. realloc(p, 0)
 * of a range block frees it and returns NULL, as glibc, jemalloc (5.3) and
 * tcmalloc do. */
static HP_FRONT void *
realloc_moving(void *ptr, size_t size, uint64_t rate)
{
    bool from_range = in_range(ptr);
    if (!from_range && (rate == 0 || ptr == NULL))
        return rate == 0 ? NEXT(realloc)(ptr, size)
                         : malloc_sampled(size, rate);
    if (from_range && size == 0) {
        free_slow(ptr);
        return NULL;
    }
    if (from_range && rate == 0 && keep_in_slot(ptr, size))
        return ptr;
    size_t old = from_range ? hp_range_usable(ptr) : next_usable(ptr);
    if (old == 0) /* cannot copy what we cannot size: not moved */
        return NEXT(realloc)(ptr, size);
    void *p = rate != 0 ? range_take(size, 0, false) : NULL;
    if (p == NULL)
        p = NEXT(malloc)(size);
    if (p == NULL)
        return NULL; /* the old block stays, as realloc's contract says */
    memcpy(p, ptr, old < size ? old : size);
    if (from_range)
        free_slow(ptr);
    else
        NEXT(free)(ptr);
    if (rate != 0)
        note_sample(p, size, rate);
    return p;
}

static HP_FRONT void *
realloc_slow(void *ptr, size_t size)
{
    if (ptr != NULL && in_pool(ptr))
        return realloc_pool_block(ptr, size);
    /* The countdown already ran in realloc(); draw only if it expired. */
    uint64_t rate = 0;
    if (hp_tls.bytes_until_sample <= 0 && size != 0)
        rate = hp_sample_slow(size);
    if (ranged())
        return realloc_moving(ptr, size, rate);
    return realloc_in_place(ptr, size, rate);
}

/* realloc() of a block outside the range when there is no range. */
static HP_FRONT void *
realloc_filtered(void *ptr, size_t size)
{
    if (HP_UNLIKELY(hp_live_maybe(ptr)))
        return realloc_slow(ptr, size);
    return NEXT(realloc)(ptr, size);
}

HP_EXPORT HP_FRONT HP_HOT_ENTRY void *
realloc(void *ptr, size_t size)
{
    /* realloc(NULL, n) is forwarded too: it is malloc(n) in every
     * allocator, and the countdown covers it. */
    bool expired = hp_sample_countdown(size);
    if (HP_UNLIKELY(expired || in_range(ptr)))
        return realloc_slow(ptr, size);
    return NEXT(realloc_unranged)(ptr, size);
}

HP_EXPORT HP_FRONT void *
reallocarray(void *ptr, size_t nmemb, size_t size)
{
    size_t total;
    if (__builtin_mul_overflow(nmemb, size, &total)) {
        errno = ENOMEM;
        return NULL;
    }
    return realloc(ptr, total);
}

HP_EXPORT HP_FRONT int
posix_memalign(void **out, size_t align, size_t size)
{
    if (HP_UNLIKELY(!ready())) {
        if (align < sizeof(void *) || !pow2(align))
            return EINVAL;
        void *p = pool_alloc(size, align);
        if (p == NULL)
            return ENOMEM;
        *out = p;
        return 0;
    }
    uint64_t rate = hp_sample_check(size);
    void *p = NULL;
    if (HP_UNLIKELY(rate != 0) && align >= sizeof(void *) && pow2(align))
        p = range_take(size, align, false);
    int rc = 0;
    if (p != NULL)
        *out = p;
    else
        rc = next.posix_memalign(out, align, size);
    if (HP_UNLIKELY(rate != 0) && rc == 0 && *out != NULL)
        note_sample(*out, size, rate);
    return rc;
}

/* The remaining aligned forms share one path; where the next allocator
 * lacks a form, posix_memalign provides it. */
static HP_FRONT void *
aligned_common(void *(*fn)(size_t, size_t), size_t align, size_t size)
{
    if (HP_UNLIKELY(!ready()))
        return pool_alloc(size, align);
    uint64_t rate = hp_sample_check(size);
    void *p = NULL;
    if (HP_UNLIKELY(rate != 0) && pow2(align))
        p = range_take(size, align, false);
    if (p == NULL && fn != NULL) {
        p = fn(align, size);
    } else if (p == NULL) {
        int rc = next.posix_memalign(
            &p, align < sizeof(void *) ? sizeof(void *) : align, size);
        if (rc != 0) {
            errno = rc;
            p = NULL;
        }
    }
    if (HP_UNLIKELY(rate != 0) && p != NULL)
        note_sample(p, size, rate);
    return p;
}

HP_EXPORT HP_FRONT void *
aligned_alloc(size_t align, size_t size)
{
    return aligned_common(ready() ? next.aligned_alloc : NULL, align, size);
}

HP_EXPORT HP_FRONT void *
memalign(size_t align, size_t size)
{
    return aligned_common(ready() ? next.memalign : NULL, align, size);
}

static size_t
page_size(void)
{
    static size_t cached;
    size_t ps = __atomic_load_n(&cached, __ATOMIC_RELAXED);
    if (ps == 0) {
        long v = sysconf(_SC_PAGESIZE);
        ps = v > 0 ? (size_t)v : 4096;
        __atomic_store_n(&cached, ps, __ATOMIC_RELAXED);
    }
    return ps;
}

HP_EXPORT HP_FRONT void *
valloc(size_t size)
{
    if (ready() && next.valloc != NULL && !ranged()) {
        uint64_t rate = hp_sample_check(size);
        void *p = next.valloc(size);
        if (HP_UNLIKELY(rate != 0) && p != NULL)
            note_sample(p, size, rate);
        return p;
    }
    return aligned_common(NULL, page_size(), size);
}

HP_EXPORT HP_FRONT void *
pvalloc(size_t size)
{
    size_t ps = page_size();
    size_t rounded;
    if (__builtin_add_overflow(size, ps - 1, &rounded)) {
        errno = ENOMEM;
        return NULL;
    }
    rounded &= ~(ps - 1);
    if (rounded == 0)
        rounded = ps;
    if (ready() && next.pvalloc != NULL && !ranged()) {
        uint64_t rate = hp_sample_check(rounded);
        void *p = next.pvalloc(size);
        if (HP_UNLIKELY(rate != 0) && p != NULL)
            note_sample(p, rounded, rate);
        return p;
    }
    return aligned_common(NULL, ps, rounded);
}

HP_EXPORT size_t
malloc_usable_size(void *ptr)
{
    if (ptr == NULL)
        return 0;
    if (in_pool(ptr))
        return pool_size_of(ptr);
    if (in_range(ptr))
        return hp_range_usable(ptr);
    if (!ready() || next.malloc_usable_size == NULL)
        return 0;
    return next.malloc_usable_size(ptr);
}

/* ------------------------------------------------- aliases for attach */

/*
 * Hidden aliases of the wrappers: front_attach.c points GOT slots at
 * these. Inside the library the exported names bind through its own GOT
 * to whatever the process's lookup order finds first (libc's malloc when
 * heapprof was loaded without preload), never reliably to the wrappers.
 */
#define HP_ATTACH_ALIAS(name)                                                  \
    extern __typeof__(name) hp_front_##name                                    \
        __attribute__((alias(#name), copy(name), visibility("hidden")))
HP_ATTACH_ALIAS(malloc);
HP_ATTACH_ALIAS(free);
HP_ATTACH_ALIAS(calloc);
HP_ATTACH_ALIAS(realloc);
HP_ATTACH_ALIAS(reallocarray);
HP_ATTACH_ALIAS(posix_memalign);
HP_ATTACH_ALIAS(aligned_alloc);
HP_ATTACH_ALIAS(memalign);
HP_ATTACH_ALIAS(valloc);
HP_ATTACH_ALIAS(pvalloc);
HP_ATTACH_ALIAS(malloc_usable_size);

/* ------------------------------------------- who answers malloc here */

/* Whether path names the same file as st (LD_PRELOAD entries may be
 * symlinks or relative). */
static bool
same_file(const char *path, size_t len, const struct stat *st)
{
    char buf[4096];
    struct stat other;
    if (len == 0 || len >= sizeof(buf))
        return false;
    memcpy(buf, path, len);
    buf[len] = '\0';
    return stat(buf, &other) == 0 && other.st_dev == st->st_dev &&
           other.st_ino == st->st_ino;
}

extern char **environ;

/* Whether LD_PRELOAD lists heapprof's file (path self, basename base). */
static bool
listed_in_preload(const char *self, const char *base)
{
    struct stat st;
    const char *list = NULL;
    for (char **e = environ; e != NULL && *e != NULL; e++)
        if (strncmp(*e, "LD_PRELOAD=", 11) == 0)
            list = *e + 11;
    if (list == NULL || stat(self, &st) != 0)
        return false;
    while (*list != '\0') {
        size_t n = strcspn(list, ": ");
        /* A bare name is looked up in the library path: match the name. */
        bool bare = memchr(list, '/', n) == NULL;
        if (bare ? strlen(base) == n && memcmp(list, base, n) == 0
                 : same_file(list, n, &st))
            return true;
        list += n;
        list += strspn(list, ": ");
    }
    return false;
}

/* What check_interposition needs of the main program (listed first by
 * dl_iterate_phdr): where it starts in memory, as dladdr's dli_fbase
 * gives it (its lowest segment, page-aligned, with the load bias: 0 for
 * a non-PIE program), and whether its DT_NEEDED entries name heapprof's
 * file (linked in with -lheapprof). */
struct main_program {
    const char *self_name; /* basename of heapprof's file, libheapprof.so.0 */
    uintptr_t base;
    bool needs_self;
};

static int
read_main_program(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    struct main_program *m = data;
    uintptr_t low = UINTPTR_MAX;
    const ElfW(Dyn) *dyn = NULL;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type == PT_LOAD && ph->p_vaddr < low)
            low = ph->p_vaddr;
        else if (ph->p_type == PT_DYNAMIC)
            dyn = (const ElfW(Dyn) *)(info->dlpi_addr + ph->p_vaddr);
    }
    if (low != UINTPTR_MAX)
        m->base = (uintptr_t)info->dlpi_addr +
                  (low & ~((uintptr_t)getpagesize() - 1));
    uintptr_t strtab = 0;
    for (const ElfW(Dyn) *d = dyn; d != NULL && d->d_tag != DT_NULL; d++)
        if (d->d_tag == DT_STRTAB)
            strtab = d->d_un.d_ptr;
    if (strtab == 0)
        return 1;
    /* The dynamic loader rewrites DT_STRTAB to an address where the
     * section is writable; where it is not, it is still relative. */
    if (strtab < (uintptr_t)info->dlpi_addr)
        strtab += (uintptr_t)info->dlpi_addr;
    for (const ElfW(Dyn) *d = dyn; d->d_tag != DT_NULL; d++)
        if (d->d_tag == DT_NEEDED &&
            strcmp((const char *)strtab + d->d_un.d_val, m->self_name) == 0)
            m->needs_self = true;
    return 1; /* the main program only */
}

/*
 * Once the objects of a preloaded (or -lheapprof) process are in place:
 * if the process's malloc is not heapprof's, something ahead of it in the
 * lookup order defines malloc (the program itself, a library preloaded
 * before heapprof, or one the program links before it), and its
 * allocations never pass here. Say so, once, instead of serving empty
 * profiles. A library loaded later with dlopen
 * (heapprof_attach's case) is expected to find another malloc first.
 */
__attribute__((constructor(102))) static void
check_interposition(void)
{
    void *global = dlsym(RTLD_DEFAULT, "malloc");
    if (global == (void *)hp_front_malloc) {
        /* Loaded at start: fork children run the same code. */
        hp_frame_cache_share();
        return;
    }
    if (global == NULL)
        return;
    Dl_info def, self;
    const ElfW(Sym) *sym = NULL;
    if (dladdr1(global, &def, (void **)&sym, RTLD_DL_SYMENT) == 0 ||
        dladdr((void *)hp_front_malloc, &self) == 0)
        return;
    /* A program that takes malloc's address without being PIE gets a
     * "canonical PLT" entry, an undefined symbol whose address dlsym
     * returns: it jumps to the real definition, not a definition. */
    if (sym != NULL && sym->st_shndx == SHN_UNDEF)
        return;
    const char *base = strrchr(self.dli_fname, '/');
    struct main_program m = {base != NULL ? base + 1 : self.dli_fname, 0,
                             false};
    dl_iterate_phdr(read_main_program, &m);
    if ((uintptr_t)def.dli_fbase == m.base) {
        hp_log("malloc here is the program's own, not heapprof's: its "
               "allocations are not profiled (report them with "
               "heapprof_on_alloc/heapprof_on_free)");
        return;
    }
    if (listed_in_preload(self.dli_fname, m.self_name)) {
        hp_log("malloc here is %s's, which comes before heapprof in "
               "LD_PRELOAD: unless it passes allocations on, they are not "
               "profiled (put libheapprof.so first)",
               def.dli_fname);
        return;
    }
    if (m.needs_self)
        hp_log("malloc here is %s's, which the program is linked with "
               "before heapprof: unless it passes allocations on, they are "
               "not profiled (link -lheapprof before it)",
               def.dli_fname);
}
