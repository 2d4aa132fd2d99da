/*
 * The sample range (range.h): the reservation, its chunk table, and the
 * slot allocator for sampled blocks. One mutex guards it all: only sampled
 * allocations and their frees come here (one in some hundreds of
 * thousands of bytes allocated at the default rate).
 */
#include "range.h"

#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include "lock.h"
#include "log.h"

#define CHUNK_LG 16
#define CHUNK ((size_t)1 << CHUNK_LG)
/* Address space only: untouched pages cost no memory, and the part not yet
 * handed out stays PROT_NONE (no commit charge, nothing in core dumps). */
#define RANGE_MAX ((size_t)64 << 30)
#define RANGE_MIN ((size_t)256 << 20)
#define POOL_BYTES ((size_t)256 << 10)
#define COMMIT_STEP ((size_t)4 << 20)
/* Freed large slots keep their pages up to this many bytes in all, so a
 * program that frees and allocates big blocks in a loop does not pay a
 * page fault per page each time (glibc keeps such memory too). */
#define CACHE_MAX ((uint64_t)4 << 20)
/* Slots that hold blocks a realloc left unsampled (hp_range_keep) take at
 * most this many bytes in all: beyond it such blocks move out. */
#define KEEP_MAX ((uint64_t)1 << 20)

/* Chunk classes: 0 never handed out, 1..NSMALL a run of small slots of
 * 16 << (class - 1) bytes, LARGE_BASE + i the first chunk of a large slot
 * of large_chunks(i) chunks, CLS_TAIL its other chunks, CLS_POOL the
 * bootstrap area. */
#define SMALL_LG_MIN 4
#define SMALL_LG_MAX 15
#define NSMALL (SMALL_LG_MAX - SMALL_LG_MIN + 1)
#define LARGE_BASE 16
#define NLARGE 96
#define CLS_TAIL 0xfe
#define CLS_POOL 0xff

struct chunk_meta {
    uint8_t cls;
    /* A block aligned beyond a chunk starts this many chunks into its
     * slot (the first chunk's; 0 otherwise). */
    uint8_t offset;
    /* The first chunk of a free large slot: the next free one's chunk + 1
     * (0 = end); a CLS_TAIL chunk: its slot's first chunk + 1. */
    uint32_t link;
    uint32_t pages;   /* large slot: pages of the block handed out */
    uint32_t touched; /* large slot: pages from its start that may be
                         resident */
};

static struct {
    hp_lock_t lock;
    uintptr_t lo;
    size_t nchunks;
    size_t page;
    struct chunk_meta *meta;
    size_t frontier;  /* first chunk never handed out */
    size_t committed; /* bytes from lo that are read-write */
    void *small_free[NSMALL];
    uintptr_t run_cur[NSMALL], run_end[NSMALL];
    uint32_t large_free[NLARGE]; /* first free slot's chunk + 1 */
    uint64_t cached;             /* resident bytes of free large slots */
    void *deferred; /* freed by a signal handler while the lock was held */
    bool ok;
} R = {.lock = HP_LOCK_INITIALIZER};

/* Bytes of the slots hp_range_keep let unsampled blocks hold; lock-free,
 * apart from R: a realloc that keeps a block never takes the lock. */
static uint64_t kept;

static pthread_once_t reserve_once = PTHREAD_ONCE_INIT;

/* -------------------------------------------------------- classes */

static uint32_t
large_chunks(unsigned i)
{
    if (i < 3)
        return i + 1;
    unsigned j = i - 3;
    return (uint32_t)(4 + j % 4) << (j / 4);
}

/* The smallest class of at least n chunks (n >= 1). */
static unsigned
large_class(size_t n)
{
    if (n <= 3)
        return (unsigned)n - 1;
    unsigned e = (unsigned)(63 - __builtin_clzll(n)) - 2;
    size_t m = (n + ((size_t)1 << e) - 1) >> e;
    if (m == 8) {
        e++;
        m = 4;
    }
    return 3 + 4 * e + (unsigned)(m - 4);
}

static size_t
pages_of(size_t bytes)
{
    return (bytes + R.page - 1) / R.page;
}

/* ---------------------------------------------------- reservation */

/*
 * As much address space as sampled blocks could ever fill: the machine's
 * memory and swap (blocks beyond it could not be resident), at most
 * RANGE_MAX, and under an address-space limit an eighth of the limit, so
 * the program keeps what it was given.
 */
static size_t
wanted_size(void)
{
    uint64_t want = RANGE_MAX;
    struct sysinfo si;
    if (sysinfo(&si) == 0 && si.mem_unit != 0) {
        uint64_t mem = ((uint64_t)si.totalram + si.totalswap) * si.mem_unit;
        if (mem < want)
            want = mem;
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_AS, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        rl.rlim_cur / 8 < want)
        want = rl.rlim_cur / 8;
    return (size_t)want & ~(CHUNK - 1);
}

static void
reserve(void)
{
    long page = sysconf(_SC_PAGESIZE);
    int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE;
    char *m = MAP_FAILED;
    size_t len;
    if (page <= 0 || (size_t)page > CHUNK)
        return;
    /* Smaller when refused: valgrind, for one, grants a few GiB. */
    for (len = wanted_size(); len >= RANGE_MIN && m == MAP_FAILED; len /= 4)
        m = mmap(NULL, len + CHUNK, PROT_NONE, flags, -1, 0);
    if (m == MAP_FAILED)
        return;
    len *= 4;
    uintptr_t lo = ((uintptr_t)m + CHUNK - 1) & ~(uintptr_t)(CHUNK - 1);
    size_t head = lo - (uintptr_t)m;
    if (head != 0)
        munmap(m, head);
    munmap((char *)lo + len, CHUNK - head);
    size_t nchunks = len >> CHUNK_LG;
    void *meta = mmap(NULL, nchunks * sizeof(struct chunk_meta),
                      PROT_READ | PROT_WRITE, flags, -1, 0);
    if (meta == MAP_FAILED ||
        mprotect((void *)lo, COMMIT_STEP, PROT_READ | PROT_WRITE) != 0) {
        munmap((void *)lo, len);
        if (meta != MAP_FAILED)
            munmap(meta, nchunks * sizeof(struct chunk_meta));
        return;
    }
    R.lo = lo;
    R.nchunks = nchunks;
    R.page = (size_t)page;
    R.meta = meta;
    R.committed = COMMIT_STEP;
    R.frontier = POOL_BYTES >> CHUNK_LG;
    for (size_t i = 0; i < R.frontier; i++)
        R.meta[i].cls = CLS_POOL;
    __atomic_store_n(&R.ok, true, __ATOMIC_RELEASE);
}

bool
hp_range_reserve(uintptr_t *lo, size_t *len)
{
    pthread_once(&reserve_once, reserve);
    if (!__atomic_load_n(&R.ok, __ATOMIC_ACQUIRE))
        return false;
    *lo = R.lo;
    *len = R.nchunks << CHUNK_LG;
    return true;
}

void *
hp_range_pool(size_t *size)
{
    if (!__atomic_load_n(&R.ok, __ATOMIC_ACQUIRE))
        return NULL;
    *size = POOL_BYTES;
    return (void *)R.lo;
}

/* --------------------------------------------------------- locking */

/*
 * The flag goes up before the mutex is taken and down after it is
 * released: a signal handler on this thread that frees a range block in
 * between finds it up and queues the block instead of locking again.
 */
static void free_locked(void *ptr);

static void
range_lock(void)
{
    hp_tls.range_locked = 1;
    hp_lock(&R.lock);
    void *p = __atomic_exchange_n(&R.deferred, NULL, __ATOMIC_ACQUIRE);
    while (p != NULL) {
        void *next = *(void **)p;
        free_locked(p);
        p = next;
    }
}

static void
range_unlock(void)
{
    hp_unlock(&R.lock);
    hp_tls.range_locked = 0;
}

/* ------------------------------------------------------ allocation */

/* n fresh chunks from the frontier, committed; SIZE_MAX when full. */
static size_t
take_chunks(size_t n)
{
    if (n > R.nchunks - R.frontier)
        return SIZE_MAX;
    size_t end = (R.frontier + n) << CHUNK_LG;
    if (end > R.committed) {
        size_t total = R.nchunks << CHUNK_LG;
        size_t want = (end + COMMIT_STEP - 1) & ~(COMMIT_STEP - 1);
        if (want > total)
            want = total;
        if (mprotect((char *)R.lo + R.committed, want - R.committed,
                     PROT_READ | PROT_WRITE) != 0)
            return SIZE_MAX;
        R.committed = want;
    }
    size_t idx = R.frontier;
    R.frontier += n;
    return idx;
}

static void *
small_alloc(unsigned k, size_t size, bool zero)
{
    void *p = R.small_free[k];
    if (p != NULL) {
        R.small_free[k] = *(void **)p;
        if (zero)
            memset(p, 0, size);
        return p;
    }
    if (R.run_cur[k] == R.run_end[k]) {
        size_t idx = take_chunks(1);
        if (idx == SIZE_MAX)
            return NULL;
        R.meta[idx].cls = (uint8_t)(1 + k);
        R.run_cur[k] = R.lo + (idx << CHUNK_LG);
        R.run_end[k] = R.run_cur[k] + CHUNK;
    }
    p = (void *)R.run_cur[k];
    R.run_cur[k] += (size_t)1 << (k + SMALL_LG_MIN);
    return p; /* never used: still zero */
}

/* Large blocks aligned beyond a chunk get a slot with room to slide the
 * block up to an aligned chunk (never more than 255 chunks in). */
static void *
large_alloc(size_t size, size_t align, bool zero)
{
    size_t slide = align > CHUNK ? (align >> CHUNK_LG) - 1 : 0;
    if (slide > 255)
        return NULL;
    unsigned i = large_class(((size + CHUNK - 1) >> CHUNK_LG) + slide);
    if (i >= NLARGE)
        return NULL;
    size_t idx;
    struct chunk_meta *m;
    size_t dirty = 0; /* bytes from the slot's start that may not be zero */
    if (R.large_free[i] != 0) {
        idx = R.large_free[i] - 1;
        m = &R.meta[idx];
        R.large_free[i] = m->link;
        R.cached -= (uint64_t)m->touched * R.page;
        dirty = (size_t)m->touched * R.page;
    } else {
        idx = take_chunks(large_chunks(i));
        if (idx == SIZE_MAX)
            return NULL;
        m = &R.meta[idx];
        m->cls = (uint8_t)(LARGE_BASE + i);
        m->touched = 0;
        for (size_t t = 1; t < large_chunks(i); t++) {
            R.meta[idx + t].cls = CLS_TAIL;
            R.meta[idx + t].link = (uint32_t)idx + 1;
        }
    }
    uintptr_t base = R.lo + (idx << CHUNK_LG);
    uintptr_t p =
        align > CHUNK ? (base + align - 1) & ~(uintptr_t)(align - 1) : base;
    m->offset = (uint8_t)((p - base) >> CHUNK_LG);
    /* The block's own bytes only: the rest of the slot is not the
     * caller's, and pages past the dirty ones are still zero. */
    if (zero && p - base < dirty)
        memset((void *)p, 0,
               size < dirty - (p - base) ? size : dirty - (p - base));
    m->pages = (uint32_t)pages_of(size);
    uint32_t reach = (uint32_t)pages_of(p - base) + m->pages;
    if (m->touched < reach)
        m->touched = reach;
    return (void *)p;
}

void *
hp_range_alloc(size_t size, size_t align, bool zero)
{
    /* A signal handler's sample while this thread holds the range. */
    if (!__atomic_load_n(&R.ok, __ATOMIC_ACQUIRE) || hp_tls.range_locked ||
        size > (R.nchunks << CHUNK_LG))
        return NULL;
    size_t need = size > align ? size : align;
    if (need == 0)
        need = 1;
    void *p;
    range_lock();
    if (need <= ((size_t)1 << SMALL_LG_MAX) && align <= CHUNK) {
        unsigned lg = need <= 16 ? 4 : 64 - (unsigned)__builtin_clzll(need - 1);
        p = small_alloc(lg - SMALL_LG_MIN, size, zero);
    } else {
        p = large_alloc(size, align, zero);
    }
    range_unlock();
    return p;
}

size_t
hp_range_fit(uint64_t as_limit, void (*publish)(size_t len))
{
    if (!__atomic_load_n(&R.ok, __ATOMIC_ACQUIRE))
        return 0;
    range_lock();
    size_t old = R.nchunks;
    size_t keep = (size_t)((as_limit / 8) >> CHUNK_LG);
    if (keep < R.frontier) /* what holds blocks stays */
        keep = R.frontier;
    if (keep < old) {
        R.nchunks = keep;
        if (R.committed > keep << CHUNK_LG)
            R.committed = keep << CHUNK_LG;
    }
    size_t len = R.nchunks << CHUNK_LG;
    range_unlock();
    if (keep < old) {
        /* Published first: once unmapped, the next allocator may map its
         * own blocks there, which free must not take for heapprof's. */
        publish(len);
        munmap((char *)R.lo + len, (old - keep) << CHUNK_LG);
    }
    return len;
}

/* ------------------------------------------------------------ free */

/* The first chunk of the large slot whose block starts at offset off of
 * the range, or SIZE_MAX when no block starts there. */
static size_t
large_slot_of(uintptr_t off)
{
    if ((off & (CHUNK - 1)) != 0)
        return SIZE_MAX;
    size_t idx = off >> CHUNK_LG;
    const struct chunk_meta *m = &R.meta[idx];
    size_t head = m->cls == CLS_TAIL ? (size_t)m->link - 1 : idx;
    if (head >= R.nchunks)
        return SIZE_MAX;
    const struct chunk_meta *h = &R.meta[head];
    if (h->cls < LARGE_BASE || h->cls >= LARGE_BASE + NLARGE ||
        head + h->offset != idx)
        return SIZE_MAX;
    return head;
}

static void
bad_free(void *ptr)
{
    hp_log_once(range_bad_free,
                "free of %p, inside heapprof's sample range but not a "
                "block it gave out: ignored (a double or invalid free in "
                "the program)",
                ptr);
}

static void
large_free(size_t idx)
{
    struct chunk_meta *m = &R.meta[idx];
    unsigned i = m->cls - LARGE_BASE;
    uint64_t bytes = (uint64_t)m->touched * R.page;
    if (R.cached + bytes <= CACHE_MAX) {
        R.cached += bytes;
    } else {
        /* The pages go back to the kernel; the slot reads as zeros. */
        (void)madvise((char *)R.lo + (idx << CHUNK_LG), bytes, MADV_DONTNEED);
        m->touched = 0;
    }
    m->link = R.large_free[i];
    R.large_free[i] = (uint32_t)idx + 1;
}

static void
free_locked(void *ptr)
{
    uintptr_t off = (uintptr_t)ptr - R.lo;
    size_t idx = off >> CHUNK_LG;
    uint8_t cls = R.meta[idx].cls;
    if (cls == CLS_POOL)
        return; /* the bootstrap area is never reused */
    if (cls >= 1 && cls <= NSMALL) {
        size_t slot = (size_t)1 << (cls - 1 + SMALL_LG_MIN);
        if ((off & (slot - 1)) != 0) {
            bad_free(ptr);
            return;
        }
        *(void **)ptr = R.small_free[cls - 1];
        R.small_free[cls - 1] = ptr;
        return;
    }
    size_t head = large_slot_of(off);
    if (head != SIZE_MAX) {
        large_free(head);
        return;
    }
    bad_free(ptr);
}

void
hp_range_free(void *ptr)
{
    if (hp_tls.range_locked) {
        void *head = __atomic_load_n(&R.deferred, __ATOMIC_RELAXED);
        do
            *(void **)ptr = head;
        while (!__atomic_compare_exchange_n(
            &R.deferred, &head, ptr, true, __ATOMIC_RELEASE, __ATOMIC_RELAXED));
        return;
    }
    range_lock();
    free_locked(ptr);
    range_unlock();
}

size_t
hp_range_usable(const void *ptr)
{
    uintptr_t off = (uintptr_t)ptr - R.lo;
    if (!__atomic_load_n(&R.ok, __ATOMIC_ACQUIRE) ||
        off >= (R.nchunks << CHUNK_LG))
        return 0;
    const struct chunk_meta *m = &R.meta[off >> CHUNK_LG];
    if (m->cls >= 1 && m->cls <= NSMALL)
        return (size_t)1 << (m->cls - 1 + SMALL_LG_MIN);
    size_t head = large_slot_of(off);
    return head != SIZE_MAX ? (size_t)R.meta[head].pages * R.page : 0;
}

bool
hp_range_keep(const void *ptr, size_t size)
{
    uint64_t usable = hp_range_usable(ptr);
    if (size == 0 || size > usable)
        return false;
    uint64_t now = __atomic_load_n(&kept, __ATOMIC_RELAXED);
    do
        if (now + usable > KEEP_MAX)
            return false;
    while (!__atomic_compare_exchange_n(&kept, &now, now + usable, true,
                                        __ATOMIC_RELAXED, __ATOMIC_RELAXED));
    return true;
}

void
hp_range_unkeep(const void *ptr)
{
    uint64_t usable = hp_range_usable(ptr);
    uint64_t now = __atomic_load_n(&kept, __ATOMIC_RELAXED);
    /* Never below 0: a block whose record heapprof_stop() dropped was
     * never counted. */
    while (!__atomic_compare_exchange_n(&kept, &now,
                                        now > usable ? now - usable : 0, true,
                                        __ATOMIC_RELAXED, __ATOMIC_RELAXED))
        ;
}

uint64_t
hp_range_kept_bytes(void)
{
    return __atomic_load_n(&kept, __ATOMIC_RELAXED);
}

uint64_t
hp_range_cached_bytes(void)
{
    return __atomic_load_n(&R.cached, __ATOMIC_RELAXED);
}

uint64_t
hp_range_committed_bytes(void)
{
    return __atomic_load_n(&R.committed, __ATOMIC_RELAXED);
}

/* ------------------------------------------------------------ fork */

void
hp_range_prefork(void)
{
    range_lock();
}

void
hp_range_postfork_parent(void)
{
    range_unlock();
}

void
hp_range_postfork_child(void)
{
    hp_lock_init(&R.lock);
    hp_tls.range_locked = 0;
}
