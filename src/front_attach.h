/*
 * Attach without preload (front_attach.c): heapprof_attach() points the
 * malloc-family GOT slots of the loaded ELF objects at the wrappers of
 * front_preload.c. The wrappers are reached through the hidden aliases
 * declared here (defined at the end of front_preload.c), because inside
 * the library the exported names bind to the process's first malloc.
 */
#ifndef HP_FRONT_ATTACH_H
#define HP_FRONT_ATTACH_H

#include <stddef.h>

#include "internal.h"

/* Fork child: re-initialise the attach lock (called by heapprof.c). */
HP_HIDDEN void hp_attach_postfork_child(void);

HP_HIDDEN void *hp_front_malloc(size_t size);
HP_HIDDEN void hp_front_free(void *ptr);
HP_HIDDEN void *hp_front_calloc(size_t nmemb, size_t size);
HP_HIDDEN void *hp_front_realloc(void *ptr, size_t size);
HP_HIDDEN void *hp_front_reallocarray(void *ptr, size_t nmemb, size_t size);
HP_HIDDEN int hp_front_posix_memalign(void **out, size_t align, size_t size);
HP_HIDDEN void *hp_front_aligned_alloc(size_t align, size_t size);
HP_HIDDEN void *hp_front_memalign(size_t align, size_t size);
HP_HIDDEN void *hp_front_valloc(size_t size);
HP_HIDDEN void *hp_front_pvalloc(size_t size);
HP_HIDDEN size_t hp_front_malloc_usable_size(void *ptr);

/*
 * Have the wrappers forward to fns: malloc, free, calloc, realloc,
 * posix_memalign, aligned_alloc, memalign, valloc, pvalloc,
 * malloc_usable_size, in that order (NULL where the allocator lacks the
 * form). True when they now do, or already did; false when they were
 * resolved earlier to another malloc (then nothing changes).
 */
#define HP_FRONT_NEXT_COUNT 10
HP_HIDDEN bool hp_front_use_next(const void *const fns[HP_FRONT_NEXT_COUNT]);

/* After a dlopen with RTLD_DEEPBIND (preload): the loaded objects' slots
 * bound to the next allocator point at the wrappers (front_attach.c). */
HP_HIDDEN void hp_attach_bind_deep(void);

/* The program limited its address space: the sample range shrinks to fit
 * (range.h, hp_range_fit). */
HP_HIDDEN void hp_front_fit_range(uint64_t as_limit);

#endif
