/*
 * The Boehm-Demers-Weiser collector (libgc) as an allocator source.
 *
 * heapprof defines libgc's allocation entry points (GC_malloc and friends).
 * Preloaded, or linked before libgc, those definitions win; each forwards
 * to the real function found with dlsym(RTLD_NEXT) on first use, so
 * libheapprof never depends on libgc and costs nothing where it is absent.
 * Allocations are sampled with the same Poisson sampler as malloc.
 *
 * Reclamation: a sampled collectable block gets a "long" disappearing link
 * (GC_register_long_link) on a slot heapprof owns. The collector zeroes
 * the slot when it reclaims the block, after finalization, so finalizers
 * the program registers run and resurrect exactly as without heapprof,
 * and nothing here interposes the finalizer API. A sweep over the slots
 * after each collection (noticed by GC_gc_no moving, checked by every
 * allocation wrapper) accounts the zeroed ones as freed; unsampled blocks cost the
 * collector nothing. Slots live in ialloc memory, which the collector
 * does not scan, and hold the block's address complemented, so heapprof
 * never keeps a block alive.
 *
 * Slot states: FREE (on the free list), LIVE (link registered), DEAD
 * (claimed by whoever saw the block go: the GC_free/GC_realloc wrapper or
 * the sweep). The claim is a compare-and-swap, so a slot is released once.
 *
 * Locks: slot_lock (the slot free list) is a leaf, taken with no other
 * lock held and never held while calling out; chunk_lock serialises slot
 * refills and is held only around ialloc; resolve_lock covers the one-time
 * lookup of libgc. The sweep takes libgc's allocation lock only to read
 * GC_gc_no at a moment no collection is running, and releases it before
 * touching heapprof's tables (whose locks are leaves too): libgc's lock is
 * never wanted while a heapprof lock is held.
 */
#define _GNU_SOURCE /* dl_iterate_phdr, RTLD_NEXT */
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <link.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>

#include "config.h"
#include "front_gc.h"
#include "heapprof.h"
#include "heapprof_gc.h"
#include "ialloc.h"
#include "internal.h"
#include "live.h"
#include "log.h"
#include "record.h"

/* Weak, so that a program linking libheapprof.a with a static libgc.a
 * keeps libgc's definitions instead of failing with duplicate symbols;
 * the dynamic linker does not distinguish weak definitions. */
#define HP_GC_EXPORT __attribute__((visibility("default"), weak))

#define GC_OK 0 /* GC_SUCCESS */

/* ----------------------------------------------------- libgc functions */

/* GC_has_static_roots_func: register this writable segment as roots? */
typedef int (*roots_cb_fn)(const char *name, void *start, size_t size);

/* Forwarding targets (the real entry points), resolved with RTLD_NEXT. */
struct gc_next {
    void *(*malloc)(size_t);
    void *(*malloc_atomic)(size_t);
    void *(*malloc_uncollectable)(size_t);
    void *(*malloc_atomic_uncollectable)(size_t);
    void *(*malloc_ignore_off_page)(size_t);
    void *(*malloc_atomic_ignore_off_page)(size_t);
    void *(*realloc)(void *, size_t);
    void (*free)(void *);
    char *(*strdup)(const char *);
    char *(*strndup)(const char *, size_t);
    void *(*memalign)(size_t, size_t);
    int (*posix_memalign)(void **, size_t, size_t);
    void *(*malloc_explicitly_typed)(size_t, unsigned long);
    void *(*calloc_explicitly_typed)(size_t, size_t, unsigned long);
    void (*gcollect)(void);
    void (*gcollect_and_unmap)(void);
    int (*try_to_collect)(int (*)(void));
    void (*register_has_static_roots_callback)(roots_cb_fn);
};

static struct gc_next next;
/* What the tracking needs: from the process (preload) or the program's
 * heapprof_gc_attach(). Written before `state` is published. */
static struct heapprof_gc_ops ops;
static volatile unsigned long *gc_no_var; /* GC_gc_no, or NULL */

enum { GC_UNRESOLVED, GC_ABSENT, GC_PRESENT };
static int state; /* atomic; GC_UNRESOLVED until the first lookup */
/* The program called heapprof_gc_attach(): it reports its blocks itself
 * and the wrappers below only forward (atomic). */
static int explicit_mode;
/* GC_allow_register_threads() done, so gc=1 may register a thread. */
static int threads_allowed;
/* setup_once() claimed / finished (atomic). */
static int setup_claimed;
static int setup_done;

/*
 * Depth of heapprof's GC wrappers on this thread: libgc calls its own
 * exported functions through the PLT (GC_realloc calls GC_free, GC_strdup
 * calls GC_malloc_atomic), which lands in these wrappers again; the inner
 * call must only forward.
 */
static __thread int gc_nest __attribute__((tls_model("initial-exec")));

static void collector(void *arg);

static pthread_mutex_t resolve_lock = PTHREAD_MUTEX_INITIALIZER;

/* Every field of gc_next and heapprof_gc_ops is named after its libgc
 * function, GC_<field>: looked up through handle into s.field. */
#define GC_LOOKUP(s, field, handle)                                            \
    (*(void **)&(s).field = hp_symbol(handle, "GC_" #field))

/* Look libgc up once. Safe to race: the loser waits on resolve_lock. */
static bool
resolve_slow(void)
{
    pthread_mutex_lock(&resolve_lock);
    int st = __atomic_load_n(&state, __ATOMIC_ACQUIRE);
    if (st != GC_UNRESOLVED) {
        pthread_mutex_unlock(&resolve_lock);
        return st == GC_PRESENT;
    }
    struct gc_next n;
    memset(&n, 0, sizeof n);
    GC_LOOKUP(n, malloc, RTLD_NEXT);
    GC_LOOKUP(n, malloc_atomic, RTLD_NEXT);
    GC_LOOKUP(n, malloc_uncollectable, RTLD_NEXT);
    GC_LOOKUP(n, malloc_atomic_uncollectable, RTLD_NEXT);
    GC_LOOKUP(n, malloc_ignore_off_page, RTLD_NEXT);
    GC_LOOKUP(n, malloc_atomic_ignore_off_page, RTLD_NEXT);
    GC_LOOKUP(n, realloc, RTLD_NEXT);
    GC_LOOKUP(n, free, RTLD_NEXT);
    GC_LOOKUP(n, strdup, RTLD_NEXT);
    GC_LOOKUP(n, strndup, RTLD_NEXT);
    GC_LOOKUP(n, memalign, RTLD_NEXT);
    GC_LOOKUP(n, posix_memalign, RTLD_NEXT);
    GC_LOOKUP(n, malloc_explicitly_typed, RTLD_NEXT);
    GC_LOOKUP(n, calloc_explicitly_typed, RTLD_NEXT);
    GC_LOOKUP(n, gcollect, RTLD_NEXT);
    GC_LOOKUP(n, gcollect_and_unmap, RTLD_NEXT);
    GC_LOOKUP(n, try_to_collect, RTLD_NEXT);
    GC_LOOKUP(n, register_has_static_roots_callback, RTLD_NEXT);
    next = n;

    /* Functions heapprof does not define: the first definition anywhere. */
    struct heapprof_gc_ops o;
    memset(&o, 0, sizeof o);
    o.size = sizeof o;
    GC_LOOKUP(o, register_long_link, RTLD_DEFAULT);
    GC_LOOKUP(o, unregister_long_link, RTLD_DEFAULT);
    o.gcollect = n.gcollect;
    GC_LOOKUP(o, get_gc_no, RTLD_DEFAULT);
    GC_LOOKUP(o, call_with_alloc_lock, RTLD_DEFAULT);
    GC_LOOKUP(o, is_init_called, RTLD_DEFAULT);
    GC_LOOKUP(o, exclude_static_roots, RTLD_DEFAULT);
    GC_LOOKUP(o, thread_is_registered, RTLD_DEFAULT);
    GC_LOOKUP(o, allow_register_threads, RTLD_DEFAULT);
    GC_LOOKUP(o, get_stack_base, RTLD_DEFAULT);
    GC_LOOKUP(o, register_my_thread, RTLD_DEFAULT);
    GC_LOOKUP(o, unregister_my_thread, RTLD_DEFAULT);
    bool present = n.malloc != NULL && n.free != NULL &&
                   o.register_long_link != NULL &&
                   o.unregister_long_link != NULL && o.gcollect != NULL;
    if (present && !__atomic_load_n(&explicit_mode, __ATOMIC_ACQUIRE)) {
        ops = o;
        /* Read through RTLD_DEFAULT: an executable that refers to GC_gc_no
         * directly owns the variable (copy relocation). */
        gc_no_var = hp_symbol(RTLD_DEFAULT, "GC_gc_no");
    }
    __atomic_store_n(&state, present ? GC_PRESENT : GC_ABSENT,
                     __ATOMIC_RELEASE);
    pthread_mutex_unlock(&resolve_lock);
    if (present)
        heapprof_gc_register(collector, NULL);
    return present;
}

static inline bool
resolved(void)
{
    int st = __atomic_load_n(&state, __ATOMIC_ACQUIRE);
    if (HP_LIKELY(st == GC_PRESENT))
        return true;
    return st == GC_UNRESOLVED && resolve_slow();
}

static void
absent(void)
{
    hp_log_once(gc_absent, "gc: a GC_* function was called but libgc is "
                           "not loaded; the call fails");
}

/* ----------------------------------------------------------- the slots */

enum { SLOT_FREE, SLOT_LIVE, SLOT_DEAD };

struct gc_slot {
    void *link;       /* the collector zeroes it when the block goes */
    uintptr_t hidden; /* ~address of the block: never a pointer to it */
    int state;        /* SLOT_* (atomic) */
    struct gc_slot *next_free;
};

#define HP_GC_CHUNK_SLOTS 1024
#define HP_GC_MAX_CHUNKS 16384 /* 16 Mi sampled collectable blocks live */

/* slot_lock protects free_slots; a leaf lock (see the file comment). */
static pthread_mutex_t slot_lock = PTHREAD_MUTEX_INITIALIZER;
static struct gc_slot *free_slots;
/* Every chunk ever allocated, for the sweep; chunks[i] is written before
 * nchunks covers it (release), and chunks are never freed. */
static struct gc_slot *chunks[HP_GC_MAX_CHUNKS];
static unsigned nchunks;
static pthread_mutex_t chunk_lock = PTHREAD_MUTEX_INITIALIZER;

static struct gc_slot *
slot_get(void)
{
    for (;;) {
        pthread_mutex_lock(&slot_lock);
        struct gc_slot *s = free_slots;
        if (s != NULL)
            free_slots = s->next_free;
        pthread_mutex_unlock(&slot_lock);
        if (s != NULL)
            return s;
        /* Refill outside slot_lock so it stays a leaf (ialloc has its own
         * lock); chunk_lock only serialises refills. */
        pthread_mutex_lock(&chunk_lock);
        unsigned n = __atomic_load_n(&nchunks, __ATOMIC_RELAXED);
        struct gc_slot *c = NULL;
        if (n < HP_GC_MAX_CHUNKS)
            c = hp_ialloc(HP_GC_CHUNK_SLOTS * sizeof(struct gc_slot));
        if (c != NULL) {
            chunks[n] = c;
            __atomic_store_n(&nchunks, n + 1, __ATOMIC_RELEASE);
        }
        pthread_mutex_unlock(&chunk_lock);
        if (c == NULL)
            return NULL;
        pthread_mutex_lock(&slot_lock);
        for (int i = HP_GC_CHUNK_SLOTS - 1; i >= 0; i--) {
            c[i].next_free = free_slots;
            free_slots = &c[i];
        }
        pthread_mutex_unlock(&slot_lock);
    }
}

static void
slot_put_list(struct gc_slot *first, struct gc_slot *last)
{
    pthread_mutex_lock(&slot_lock);
    last->next_free = free_slots;
    free_slots = first;
    pthread_mutex_unlock(&slot_lock);
}

static bool
slot_claim(struct gc_slot *s)
{
    int expect = SLOT_LIVE;
    return __atomic_compare_exchange_n(&s->state, &expect, SLOT_DEAD, false,
                                       __ATOMIC_ACQ_REL, __ATOMIC_RELAXED);
}

/* The block at ptr, whose record carried tag, was freed explicitly. */
static void
slot_release_for(uintptr_t tag, void *ptr)
{
    struct gc_slot *s = (struct gc_slot *)tag;
    if (s == NULL)
        return;
    if (__atomic_load_n(&s->hidden, __ATOMIC_RELAXED) != ~(uintptr_t)ptr ||
        !slot_claim(s))
        return; /* the sweep saw it reclaimed first and owns the slot */
    /* Before the slot can be reused, or the collector would later zero a
     * slot that by then watches another block. */
    ops.unregister_long_link(&s->link);
    slot_put_list(s, s);
}

/* ----------------------------------------------------------- the sweep */

static unsigned long swept_no; /* GC_gc_no the last sweep accounted (atomic) */
static int sweeping;           /* one sweep at a time (atomic flag) */

static void *
read_gc_no(void *arg)
{
    (void)arg;
    return (void *)(uintptr_t)(gc_no_var != NULL ? *gc_no_var
                                                 : ops.get_gc_no());
}

static inline unsigned long
gc_no_now(void)
{
    if (gc_no_var != NULL)
        return *gc_no_var;
    return ops.get_gc_no != NULL ? ops.get_gc_no() : 0;
}

/*
 * Account every slot the collector zeroed. GC_gc_no moves in the middle of
 * a collection, before the links are cleared, so the number is read under
 * the allocation lock: once that returns, the collections up to it are
 * complete and their clears visible. The scan itself runs without libgc's
 * lock; a collection racing with it is simply seen by the next sweep.
 */
static void
sweep(bool wait)
{
    while (__atomic_exchange_n(&sweeping, 1, __ATOMIC_ACQUIRE)) {
        if (!wait)
            return;
        sched_yield();
    }
    unsigned long no = ops.call_with_alloc_lock != NULL
                           ? (unsigned long)(uintptr_t)ops.call_with_alloc_lock(
                                 read_gc_no, NULL)
                           : gc_no_now();
    __atomic_store_n(&swept_no, no, __ATOMIC_RELAXED);
    struct gc_slot *first = NULL, *last = NULL;
    unsigned n = __atomic_load_n(&nchunks, __ATOMIC_ACQUIRE);
    for (unsigned c = 0; c < n; c++) {
        struct gc_slot *chunk = chunks[c];
        for (int i = 0; i < HP_GC_CHUNK_SLOTS; i++) {
            struct gc_slot *s = &chunk[i];
            if (__atomic_load_n(&s->state, __ATOMIC_ACQUIRE) != SLOT_LIVE ||
                __atomic_load_n(&s->link, __ATOMIC_RELAXED) != NULL ||
                !slot_claim(s))
                continue;
            /* The collector already dropped its link entry. The record
             * may be gone (its address reused and recorded anew, which
             * accounted it) or newer: only the one with this tag goes. */
            struct hp_live_rec rec;
            void *ptr = (void *)~__atomic_load_n(&s->hidden, __ATOMIC_RELAXED);
            if (hp_record_take_tagged(ptr, (uintptr_t)s, &rec))
                hp_record_commit_free(&rec);
            s->next_free = first;
            first = s;
            if (last == NULL)
                last = s;
        }
    }
    __atomic_store_n(&sweeping, 0, __ATOMIC_RELEASE);
    if (first != NULL)
        slot_put_list(first, last);
}

/* Cheap check after every wrapper: has a collection happened since? */
static inline void
maybe_sweep(void)
{
    if (HP_UNLIKELY(gc_no_now() !=
                    __atomic_load_n(&swept_no, __ATOMIC_RELAXED)))
        sweep(false);
}

/* ------------------------------------------------------------ tracking */

/* Context for find_own_data: the address to look for, what was found. */
struct own_data {
    uintptr_t probe;
    bool is_main; /* heapprof is linked into the executable */
    int n;
    uintptr_t start[8], end[8];
};

static int
find_own_data(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    struct own_data *d = arg;
    bool mine = false;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
        if (ph->p_type == PT_LOAD && d->probe >= lo &&
            d->probe < lo + ph->p_memsz)
            mine = true;
    }
    if (!mine)
        return 0;
    d->is_main = info->dlpi_name == NULL || info->dlpi_name[0] == '\0';
    for (int i = 0; i < info->dlpi_phnum && d->n < 8; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_W))
            continue;
        d->start[d->n] = info->dlpi_addr + ph->p_vaddr;
        d->end[d->n] = d->start[d->n] + ph->p_memsz;
        d->n++;
    }
    return 1;
}

/*
 * libgc scans the writable segments of every loaded object for pointers.
 * heapprof's hold none that must keep a block alive (slots hide their
 * address), only megabytes of tables (the live filter, the bootstrap
 * pool) that would be scanned at every collection, whose bytes could keep
 * garbage alive by chance, and whose size libgc would count as roots when
 * it paces its collections. So libheapprof.so tells libgc, through the
 * has-static-roots callback, not to register its segments at all; the
 * program's own callback, if it sets one (GC_register_has_static_roots_
 * callback is wrapped below), decides for every other segment. Linked
 * into the executable, heapprof shares its segments with the program:
 * then only its two largest arrays are excluded from scanning.
 */
static uintptr_t own_lo[8], own_hi[8]; /* immutable once filter_on is set */
static int own_n;
static int filter_on;                /* roots_filter installed (atomic) */
static roots_cb_fn program_roots_cb; /* the program's callback (atomic) */

static int
roots_filter(const char *name, void *start, size_t size)
{
    uintptr_t lo = (uintptr_t)start, hi = lo + size;
    for (int i = 0; i < own_n; i++)
        if (lo < own_hi[i] && hi > own_lo[i])
            return 0;
    roots_cb_fn cb = __atomic_load_n(&program_roots_cb, __ATOMIC_ACQUIRE);
    return cb != NULL ? cb(name, start, size) : 1;
}

/*
 * From the constructor, before libgc's first collection (GC_INIT runs one):
 * root sizes from then on pace libgc's collections, so the filter must be
 * in place before libgc ever counts heapprof's segments.
 */
static void
filter_own_data(void)
{
    if (next.register_has_static_roots_callback == NULL)
        return;
    struct own_data d;
    memset(&d, 0, sizeof d);
    d.probe = (uintptr_t)&chunks;
    hp_fence_enter();
    /* Not through the fork gate: a constructor's walk (stack.h says why). */
    dl_iterate_phdr(find_own_data, &d);
    hp_fence_exit();
    if (d.n == 0 || d.is_main)
        return;
    for (int i = 0; i < d.n; i++) {
        own_lo[i] = d.start[i];
        own_hi[i] = d.end[i];
    }
    own_n = d.n;
    __atomic_store_n(&filter_on, 1, __ATOMIC_RELEASE);
    next.register_has_static_roots_callback(roots_filter);
}

/* Once libgc is initialised: without the filter (heapprof linked into the
 * executable, or a libgc without the callback), exclude what is ours. */
static void
exclude_own_data(void)
{
    if (__atomic_load_n(&filter_on, __ATOMIC_ACQUIRE) ||
        ops.exclude_static_roots == NULL)
        return;
    ops.exclude_static_roots(hp_tables_area,
                             hp_tables_area + sizeof hp_tables_area);
    ops.exclude_static_roots(chunks, chunks + HP_GC_MAX_CHUNKS);
}

/*
 * Let gc=1 register heapprof's HTTP listener thread with the collector:
 * that needs GC_allow_register_threads(), which must be called from a
 * thread the collector knows, once it is initialised. It is not free:
 * libgc then locks its allocations and starts its parallel marker
 * threads, as in any multi-threaded program. So it is done only when the
 * listener is configured (HEAPPROF_HTTP); a program serving the endpoints
 * itself calls heapprof_http_handle() from its own threads.
 */
static void
allow_threads(void)
{
    if (ops.allow_register_threads == NULL || ops.thread_is_registered == NULL)
        return;
    hp_ensure_configured();
    if (hp_settings.http[0] == '\0')
        return;
    if (!ops.thread_is_registered())
        return; /* a program bug libgc reports itself; gc=1 will log */
    /* Marker threads are created here: their TLS is heapprof's doing. */
    hp_fence_enter();
    ops.allow_register_threads();
    hp_fence_exit();
    __atomic_store_n(&threads_allowed, 1, __ATOMIC_RELEASE);
}

/*
 * Once the collector is initialised (never earlier: the program may still
 * be setting options that must precede GC_INIT), from the first hook on a
 * thread the collector knows.
 */
static void
setup_once(void)
{
    if (ops.is_init_called == NULL || !ops.is_init_called())
        return; /* GC_is_init_called only reads a flag: try next time */
    if (__atomic_exchange_n(&setup_claimed, 1, __ATOMIC_ACQ_REL))
        return;
    exclude_own_data();
    allow_threads();
    __atomic_store_n(&setup_done, 1, __ATOMIC_RELEASE);
}

/* Record a sampled block; collectable ones get a link slot. */
static HP_FRONT void
track(void *p, size_t size, uint64_t rate, bool collectable)
{
    int saved = errno;
    uintptr_t tag = 0;
    if (collectable) {
        struct gc_slot *s = slot_get();
        if (s != NULL) {
            __atomic_store_n(&s->link, (void *)1, __ATOMIC_RELAXED);
            __atomic_store_n(&s->hidden, ~(uintptr_t)p, __ATOMIC_RELAXED);
            __atomic_store_n(&s->state, SLOT_LIVE, __ATOMIC_RELEASE);
            if (ops.register_long_link(&s->link, p) == GC_OK) {
                tag = (uintptr_t)s;
            } else {
                __atomic_store_n(&s->state, SLOT_FREE, __ATOMIC_RELEASE);
                slot_put_list(s, s);
            }
        }
        if (tag == 0)
            hp_log_once(gc_noslot, "gc: cannot watch a sampled block for "
                                   "reclamation (out of slots or libgc "
                                   "memory); it stays in use");
    }
    hp_record_alloc_ex(p, size, rate, 0, tag);
    errno = saved;
}

/* The block at p is being freed explicitly. */
static void
untrack(void *p)
{
    struct hp_live_rec rec;
    if (hp_record_take(p, &rec)) {
        int saved = errno;
        slot_release_for(rec.tag, p);
        hp_record_commit_free(&rec);
        errno = saved;
    }
}

static inline bool
sampling_here(void)
{
    return gc_nest == 0 && !__atomic_load_n(&explicit_mode, __ATOMIC_RELAXED);
}

static HP_FRONT void
after_alloc(void *p, size_t size, uint64_t rate, bool collectable)
{
    if (HP_UNLIKELY(rate != 0) && p != NULL)
        track(p, size, rate, collectable);
    if (HP_UNLIKELY(!__atomic_load_n(&setup_done, __ATOMIC_RELAXED)))
        setup_once();
    maybe_sweep();
}

/* ------------------------------------------------------- entry points */

/*
 * The body every allocating entry point shares: libgc's function `field`
 * (absent: one line, fail), straight through when `skip` holds or this
 * thread is not sampling, else the countdown for `size` bytes, the call
 * and the record of the block `ptr` (an expression of the call's result,
 * named r_). With `nest`, gc_nest is raised around the call: libgc's
 * strdup, memalign and typed allocators call GC_malloc, which must not
 * sample the same block again. The plain GC_malloc family does not raise
 * it: libgc 8.2 reaches no other wrapped function from them, and a
 * finalizer that libgc runs inside the call and that allocates must be
 * sampled like any other code of the program.
 */
#define HP_GC_WRAP(field, fail, skip, size, call, ptr, nest, collectable)      \
    do {                                                                       \
        if (HP_UNLIKELY(!resolved()) || next.field == NULL) {                  \
            absent();                                                          \
            return fail;                                                       \
        }                                                                      \
        if ((skip) || !sampling_here())                                        \
            return call;                                                       \
        size_t size_ = (size);                                                 \
        uint64_t rate_ = hp_sample_check(size_);                               \
        if (nest)                                                              \
            gc_nest++;                                                         \
        __typeof__(call) r_ = call;                                            \
        if (nest)                                                              \
            gc_nest--;                                                         \
        after_alloc((ptr), size_, rate_, collectable);                         \
        return r_;                                                             \
    } while (0)

#define HP_GC_ALLOC_FN(name, field, collectable)                               \
    HP_GC_EXPORT HP_FRONT void *name(size_t size)                              \
    {                                                                          \
        HP_GC_WRAP(field, NULL, false, size, next.field(size), r_, false,      \
                   collectable);                                               \
    }

void *GC_malloc(size_t size) HP_GC_EXPORT;
void *GC_malloc_atomic(size_t size) HP_GC_EXPORT;
void *GC_malloc_uncollectable(size_t size) HP_GC_EXPORT;
void *GC_malloc_atomic_uncollectable(size_t size) HP_GC_EXPORT;
void *GC_malloc_ignore_off_page(size_t size) HP_GC_EXPORT;
void *GC_malloc_atomic_ignore_off_page(size_t size) HP_GC_EXPORT;

HP_GC_ALLOC_FN(GC_malloc, malloc, true)
HP_GC_ALLOC_FN(GC_malloc_atomic, malloc_atomic, true)
HP_GC_ALLOC_FN(GC_malloc_uncollectable, malloc_uncollectable, false)
HP_GC_ALLOC_FN(GC_malloc_atomic_uncollectable, malloc_atomic_uncollectable,
               false)
HP_GC_ALLOC_FN(GC_malloc_ignore_off_page, malloc_ignore_off_page, true)
HP_GC_ALLOC_FN(GC_malloc_atomic_ignore_off_page, malloc_atomic_ignore_off_page,
               true)

void *GC_realloc(void *ptr, size_t size) HP_GC_EXPORT;
void GC_free(void *ptr) HP_GC_EXPORT;
char *GC_strdup(const char *s) HP_GC_EXPORT;
char *GC_strndup(const char *s, size_t n) HP_GC_EXPORT;
void *GC_memalign(size_t align, size_t size) HP_GC_EXPORT;
int GC_posix_memalign(void **out, size_t align, size_t size) HP_GC_EXPORT;
void *GC_malloc_explicitly_typed(size_t size, unsigned long d) HP_GC_EXPORT;
void *GC_calloc_explicitly_typed(size_t n, size_t size,
                                 unsigned long d) HP_GC_EXPORT;
void GC_gcollect(void) HP_GC_EXPORT;
void GC_gcollect_and_unmap(void) HP_GC_EXPORT;
int GC_try_to_collect(int (*stop)(void)) HP_GC_EXPORT;

/* Shared by GC_realloc and heapprof_gc_on_realloc: the old record leaves
 * the table before the resize and comes back if it fails. */
static HP_FRONT void *
realloc_tracked(void *ptr, size_t size, void *(*fn)(void *, size_t), void *done)
{
    struct hp_live_rec rec;
    bool had = hp_record_take(ptr, &rec);
    uint64_t rate = size != 0 ? hp_sample_check(size) : 0;
    void *p = done;
    if (fn != NULL) {
        gc_nest++;
        p = fn(ptr, size);
        gc_nest--;
    }
    if (p == NULL && size != 0) {
        if (had)
            hp_record_restore(&rec);
        return NULL;
    }
    if (had) {
        slot_release_for(rec.tag, ptr);
        hp_record_commit_free(&rec);
    }
    if (HP_UNLIKELY(rate != 0) && p != NULL)
        track(p, size, rate, true);
    maybe_sweep();
    return p;
}

HP_GC_EXPORT HP_FRONT void *
GC_realloc(void *ptr, size_t size)
{
    if (ptr == NULL)
        HP_GC_WRAP(realloc, NULL, false, size, next.realloc(NULL, size), r_,
                   true, true);
    if (HP_UNLIKELY(!resolved()) || next.realloc == NULL) {
        absent();
        return NULL;
    }
    if (!sampling_here())
        return next.realloc(ptr, size);
    return realloc_tracked(ptr, size, next.realloc, NULL);
}

HP_GC_EXPORT HP_FRONT void
GC_free(void *ptr)
{
    if (HP_UNLIKELY(!resolved())) {
        absent();
        return;
    }
    if (ptr != NULL && sampling_here())
        untrack(ptr);
    next.free(ptr);
}

HP_GC_EXPORT HP_FRONT char *
GC_strdup(const char *s)
{
    HP_GC_WRAP(strdup, NULL, s == NULL, strlen(s) + 1, next.strdup(s), r_, true,
               true);
}

HP_GC_EXPORT HP_FRONT char *
GC_strndup(const char *s, size_t n)
{
    HP_GC_WRAP(strndup, NULL, s == NULL, strnlen(s, n) + 1, next.strndup(s, n),
               r_, true, true);
}

HP_GC_EXPORT HP_FRONT void *
GC_memalign(size_t align, size_t size)
{
    HP_GC_WRAP(memalign, NULL, false, size, next.memalign(align, size), r_,
               true, true);
}

HP_GC_EXPORT HP_FRONT int
GC_posix_memalign(void **out, size_t align, size_t size)
{
    HP_GC_WRAP(posix_memalign, ENOMEM, false, size,
               next.posix_memalign(out, align, size), r_ == 0 ? *out : NULL,
               true, true);
}

HP_GC_EXPORT HP_FRONT void *
GC_malloc_explicitly_typed(size_t size, unsigned long d)
{
    HP_GC_WRAP(malloc_explicitly_typed, NULL, false, size,
               next.malloc_explicitly_typed(size, d), r_, true, true);
}

HP_GC_EXPORT HP_FRONT void *
GC_calloc_explicitly_typed(size_t n, size_t size, unsigned long d)
{
    size_t total;
    HP_GC_WRAP(calloc_explicitly_typed, NULL,
               __builtin_mul_overflow(n, size, &total), total,
               next.calloc_explicitly_typed(n, size, d), r_, true, true);
}

/* Explicit collections: the sweep runs right after, so a profile taken
 * next already shows what the collection reclaimed (not when called from
 * inside another wrapper, which sweeps on its way out). */
HP_GC_EXPORT void
GC_gcollect(void)
{
    if (HP_UNLIKELY(!resolved())) {
        absent();
        return;
    }
    next.gcollect();
    if (gc_nest == 0)
        sweep(true);
}

HP_GC_EXPORT void
GC_gcollect_and_unmap(void)
{
    if (HP_UNLIKELY(!resolved()) || next.gcollect_and_unmap == NULL) {
        absent();
        return;
    }
    next.gcollect_and_unmap();
    if (gc_nest == 0)
        sweep(true);
}

HP_GC_EXPORT int
GC_try_to_collect(int (*stop)(void))
{
    if (HP_UNLIKELY(!resolved()) || next.try_to_collect == NULL) {
        absent();
        return 0;
    }
    int rc = next.try_to_collect(stop);
    if (gc_nest == 0)
        sweep(true);
    return rc;
}

void GC_register_has_static_roots_callback(roots_cb_fn cb) HP_GC_EXPORT;

/* The program's callback is kept and asked about every segment that is
 * not heapprof's (see filter_own_data). */
HP_GC_EXPORT void
GC_register_has_static_roots_callback(roots_cb_fn cb)
{
    if (HP_UNLIKELY(!resolved()) ||
        next.register_has_static_roots_callback == NULL) {
        absent();
        return;
    }
    __atomic_store_n(&program_roots_cb, cb, __ATOMIC_RELEASE);
    if (!__atomic_load_n(&filter_on, __ATOMIC_ACQUIRE))
        next.register_has_static_roots_callback(cb);
}

/* ------------------------------------------------- gc=1 and the API */

/* Run a collection from any thread; see heapprof_gc_collect(). */
static int
collect_now(void)
{
    int st = __atomic_load_n(&state, __ATOMIC_ACQUIRE);
    if (st == GC_UNRESOLVED &&
        !__atomic_load_n(&explicit_mode, __ATOMIC_ACQUIRE))
        resolve_slow();
    if (ops.gcollect == NULL || ops.is_init_called == NULL ||
        !ops.is_init_called())
        return HEAPPROF_ESTATE;
    bool registered_here = false;
    if (ops.thread_is_registered != NULL && !ops.thread_is_registered()) {
        /* struct GC_stack_base is one or two pointers; heapprof only
         * passes it from one libgc call to the next. */
        void *sb[4] = {0};
        if (!__atomic_load_n(&threads_allowed, __ATOMIC_ACQUIRE) ||
            ops.get_stack_base == NULL || ops.register_my_thread == NULL ||
            ops.unregister_my_thread == NULL ||
            ops.get_stack_base(sb) != GC_OK ||
            ops.register_my_thread(sb) != GC_OK) {
            hp_log_once(gc_thread, "gc: cannot register this thread with "
                                   "libgc; gc=1 skipped the collection");
            return HEAPPROF_ESTATE;
        }
        registered_here = true;
    }
    ops.gcollect();
    sweep(true);
    if (registered_here)
        ops.unregister_my_thread();
    return HEAPPROF_OK;
}

static void
collector(void *arg)
{
    (void)arg;
    (void)collect_now();
}

int
heapprof_gc_collect(void)
{
    int saved = errno;
    int rc = collect_now();
    errno = saved;
    return rc;
}

void
heapprof_gc_collected(void)
{
    if (ops.register_long_link == NULL)
        return;
    int saved = errno;
    sweep(true);
    errno = saved;
}

int
heapprof_gc_attach(const struct heapprof_gc_ops *o)
{
    struct heapprof_gc_ops want;
    memset(&want, 0, sizeof want);
    if (o == NULL) {
        GC_LOOKUP(want, register_long_link, RTLD_DEFAULT);
        if (want.register_long_link == NULL)
            return HEAPPROF_EUNSUPPORTED;
        /* Make sure the lookups ran (they fill ops) before taking over. */
        if (!resolved())
            return HEAPPROF_EUNSUPPORTED;
        __atomic_store_n(&explicit_mode, 1, __ATOMIC_RELEASE);
    } else {
        if (o->size < offsetof(struct heapprof_gc_ops, is_init_called) ||
            o->register_long_link == NULL || o->unregister_long_link == NULL ||
            o->gcollect == NULL || o->get_gc_no == NULL ||
            o->call_with_alloc_lock == NULL)
            return HEAPPROF_EINVAL;
        size_t n = o->size < sizeof want ? o->size : sizeof want;
        memcpy(&want, o, n);
        want.size = sizeof want;
        pthread_mutex_lock(&resolve_lock);
        __atomic_store_n(&explicit_mode, 1, __ATOMIC_RELEASE);
        ops = want;
        gc_no_var = NULL;
        pthread_mutex_unlock(&resolve_lock);
    }
    setup_once();
    heapprof_gc_register(collector, NULL);
    return HEAPPROF_OK;
}

/* The explicit hooks count only in explicit mode: otherwise the wrappers
 * already saw the block, and counting it here would count it twice. */
static inline bool
explicit_ready(void)
{
    return __atomic_load_n(&explicit_mode, __ATOMIC_ACQUIRE) &&
           ops.register_long_link != NULL;
}

HP_FRONT void
heapprof_gc_on_alloc(void *obj, size_t size)
{
    if (obj == NULL || !explicit_ready())
        return;
    uint64_t rate = hp_sample_check(size);
    if (HP_UNLIKELY(rate != 0))
        track(obj, size, rate, true);
    maybe_sweep();
}

void
heapprof_gc_on_free(void *obj)
{
    if (obj != NULL && explicit_ready())
        untrack(obj);
}

HP_FRONT void
heapprof_gc_on_realloc(void *old_obj, void *new_obj, size_t size)
{
    if (!explicit_ready())
        return;
    if (old_obj == NULL) {
        heapprof_gc_on_alloc(new_obj, size);
        return;
    }
    if (new_obj == NULL && size != 0)
        return;
    (void)realloc_tracked(old_obj, size, NULL, new_obj);
}

/* ------------------------------------------------------------ set-up */

void
hp_gc_front_prefork(void)
{
    pthread_mutex_lock(&chunk_lock);
    pthread_mutex_lock(&slot_lock);
}

void
hp_gc_front_postfork_parent(void)
{
    pthread_mutex_unlock(&slot_lock);
    pthread_mutex_unlock(&chunk_lock);
}

void
hp_gc_front_postfork_child(void)
{
    pthread_mutex_init(&slot_lock, NULL);
    pthread_mutex_init(&chunk_lock, NULL);
    pthread_mutex_init(&resolve_lock, NULL);
    __atomic_store_n(&sweeping, 0, __ATOMIC_RELAXED);
}

/*
 * If libgc is already in the process, register gc=1's collection now, so
 * it works even before the program's first GC allocation. (libgc loaded
 * later with dlopen is found on the first GC_* call instead.)
 */
__attribute__((constructor)) static void
gc_front_init(void)
{
    if (hp_symbol(RTLD_DEFAULT, "GC_register_long_link") != NULL && resolved())
        filter_own_data();
}
