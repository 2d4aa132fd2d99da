/*
 * heapprof_gc.h: explicit integration with the Boehm-Demers-Weiser garbage
 * collector (libgc), for programs that prefer to report their collected
 * allocations themselves instead of relying on heapprof's interposed GC_*
 * entry points (for instance because libgc is linked statically, or
 * before libheapprof, so the interposition cannot take effect).
 *
 * Most programs need none of this: run them under
 * LD_PRELOAD=libheapprof.so (or link -lheapprof before -lgc) and
 * GC_malloc, GC_malloc_atomic, GC_malloc_uncollectable, GC_realloc,
 * GC_free, ... are profiled with no code change; docs/custom-allocators.md
 * describes both ways.
 *
 * This header depends only on <heapprof.h>. HEAPPROF_GC_ATTACH() names
 * libgc's functions, so <gc.h> must be included where it is used.
 */
#ifndef HEAPPROF_GC_H
#define HEAPPROF_GC_H

#include <heapprof.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * The libgc functions heapprof needs, passed by the program (the collector
 * may be linked statically, where heapprof cannot look them up). Fill it
 * with HEAPPROF_GC_ATTACH() rather than by hand. register_long_link to
 * call_with_alloc_lock are required, the rest may be NULL. Without
 * is_init_called heapprof cannot tell when libgc is ready and gc=1 does
 * nothing; without the thread functions gc=1 collects only when asked from
 * a thread the collector knows (not from heapprof's HTTP listener).
 */
struct heapprof_gc_ops {
    size_t size; /* sizeof(struct heapprof_gc_ops) */
    int (*register_long_link)(void **link, const void *obj);
    int (*unregister_long_link)(void **link);
    void (*gcollect)(void);
    unsigned long (*get_gc_no)(void);
    void *(*call_with_alloc_lock)(void *(*fn)(void *), void *arg);
    int (*is_init_called)(void);
    /* Optional: keeps heapprof's own data out of the collector's roots. */
    void (*exclude_static_roots)(void *start, void *end);
    int (*thread_is_registered)(void);
    void (*allow_register_threads)(void);
    int (*get_stack_base)(void *sb);           /* struct GC_stack_base * */
    int (*register_my_thread)(const void *sb); /* struct GC_stack_base * */
    int (*unregister_my_thread)(void);
};

/*
 * Switch heapprof to explicit mode: from now on the program reports its
 * collected allocations with heapprof_gc_on_alloc() and friends, and
 * heapprof's own GC_* wrappers (if they are in effect) stop sampling so
 * nothing is counted twice. ops NULL looks the functions up in the
 * process (libgc as a shared library). Also registers heapprof_gc_collect
 * as the gc=1 collection (heapprof_gc_register). Call it once, after
 * GC_INIT(), from a thread registered with the collector.
 * HEAPPROF_EINVAL for an ops struct missing a required function,
 * HEAPPROF_EUNSUPPORTED when ops is NULL and libgc is not in the process.
 * Added in 0.1.0.
 */
HEAPPROF_API int heapprof_gc_attach(const struct heapprof_gc_ops *ops);

/*
 * A collectable block (GC_MALLOC, GC_MALLOC_ATOMIC, ...) of size bytes was
 * allocated at obj. If it is sampled, heapprof registers a disappearing
 * link on it and reports it freed after the collection that reclaims it.
 * Does nothing before heapprof_gc_attach() succeeded (the GC_* wrappers
 * count the blocks then).
 * Blocks that are never collected (GC_MALLOC_UNCOLLECTABLE) go to
 * heapprof_on_alloc() instead. Any thread; never blocks on a lock held
 * while calling out; the leaf of the stack is the caller. Added in 0.1.0.
 */
HEAPPROF_API void heapprof_gc_on_alloc(void *obj, size_t size);

/* Call before GC_FREE(obj) (any kind of block). Added in 0.1.0. */
HEAPPROF_API void heapprof_gc_on_free(void *obj);

/*
 * Call after GC_REALLOC(old_obj, size) returned new_obj (may equal
 * old_obj; NULL with size 0 means old_obj was freed, NULL otherwise that
 * the resize failed and old_obj is intact). Added in 0.1.0.
 */
HEAPPROF_API void heapprof_gc_on_realloc(void *old_obj, void *new_obj,
                                         size_t size);

/*
 * Account now the sampled blocks reclaimed by the collections so far
 * (heapprof also notices a new collection on its next GC hook or GC_*
 * call). Call after GC_gcollect() when a profile is taken right away.
 * Waits for a sweep running on another thread. Added in 0.1.0.
 */
HEAPPROF_API void heapprof_gc_collected(void);

/*
 * What gc=1 runs: a full collection (GC_gcollect), registering the
 * calling thread with the collector for the duration if it must, then
 * heapprof_gc_collected(). Program finalizers may run on the calling
 * thread, as with any GC_gcollect(). HEAPPROF_ESTATE if libgc is not
 * initialised or the thread cannot collect. Added in 0.1.0.
 */
HEAPPROF_API int heapprof_gc_collect(void);

/*
 * struct heapprof_gc_ops for the libgc this translation unit sees: include
 * this header after <gc.h> (with GC_THREADS defined as for gc.h, or the
 * thread functions are left NULL). HEAPPROF_GC_ATTACH() is
 * heapprof_gc_attach() with them. The casts through void (*)(void) only
 * change the pointee type of struct GC_stack_base pointers.
 */
#if defined(GC_THREADS)
#define HEAPPROF_GC_THREAD_OPS_                                                \
    GC_thread_is_registered, GC_allow_register_threads,                        \
        (int (*)(void *))(void (*)(void))GC_get_stack_base,                    \
        (int (*)(const void *))(void (*)(void))GC_register_my_thread,          \
        GC_unregister_my_thread
#else
#define HEAPPROF_GC_THREAD_OPS_ NULL, NULL, NULL, NULL, NULL
#endif

#define HEAPPROF_GC_OPS_INITIALIZER                                            \
    {                                                                          \
        sizeof(struct heapprof_gc_ops), GC_register_long_link,                 \
            GC_unregister_long_link, GC_gcollect, GC_get_gc_no,                \
            GC_call_with_alloc_lock, GC_is_init_called,                        \
            GC_exclude_static_roots, HEAPPROF_GC_THREAD_OPS_                   \
    }

#define HEAPPROF_GC_ATTACH()                                                   \
    heapprof_gc_attach(                                                        \
        &(const struct heapprof_gc_ops)HEAPPROF_GC_OPS_INITIALIZER)

#ifdef __cplusplus
}
#endif

#endif /* HEAPPROF_GC_H */
