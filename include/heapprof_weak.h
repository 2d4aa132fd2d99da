/*
 * heapprof_weak.h: optional profiling for libraries and programs that are
 * not linked against libheapprof (the heaptrack_api.h idea). The hooks of
 * <heapprof.h> are declared weak here; the heapprof_weak_* wrappers call
 * them when libheapprof is in the process (LD_PRELOAD, or linked by the
 * final program) and cost one predictable branch on a GOT load when it is
 * not. Do not link with -lheapprof to use this header: that would make the
 * hooks always present.
 *
 * Needs GCC or Clang and position-independent code (a shared library, or
 * a PIE executable, Debian's default): in a -no-pie executable the linker
 * resolves an undefined weak function to 0 for good, so a preloaded
 * libheapprof is never seen. The wrappers are always inlined, so the
 * stack's leaf is their caller, as with the hooks themselves.
 */
#ifndef HEAPPROF_WEAK_H
#define HEAPPROF_WEAK_H

#include <heapprof.h>

#if !defined(__GNUC__)
#error "heapprof_weak.h needs weak symbols (GCC or Clang)"
#endif

#pragma weak heapprof_on_alloc
#pragma weak heapprof_on_free
#pragma weak heapprof_on_realloc
#pragma weak heapprof_on_alloc_owned
#pragma weak heapprof_on_realloc_owned
#pragma weak heapprof_on_free_bulk
#pragma weak heapprof_labels_set
#pragma weak heapprof_label_set
#pragma weak heapprof_labels_clear

#define HEAPPROF_WEAK_INLINE_ static inline __attribute__((always_inline))

#ifdef __cplusplus
extern "C" {
#endif

/* True when libheapprof is in the process. */
HEAPPROF_WEAK_INLINE_ int
heapprof_weak_present(void)
{
    return heapprof_on_alloc != NULL;
}

HEAPPROF_WEAK_INLINE_ void
heapprof_weak_on_alloc(void *ptr, size_t size)
{
    if (heapprof_on_alloc != NULL)
        heapprof_on_alloc(ptr, size);
}

HEAPPROF_WEAK_INLINE_ void
heapprof_weak_on_free(void *ptr)
{
    if (heapprof_on_free != NULL)
        heapprof_on_free(ptr);
}

HEAPPROF_WEAK_INLINE_ void
heapprof_weak_on_realloc(void *old_ptr, void *new_ptr, size_t size)
{
    if (heapprof_on_realloc != NULL)
        heapprof_on_realloc(old_ptr, new_ptr, size);
}

HEAPPROF_WEAK_INLINE_ void
heapprof_weak_on_alloc_owned(void *ptr, size_t size, const void *owner)
{
    if (heapprof_on_alloc_owned != NULL)
        heapprof_on_alloc_owned(ptr, size, owner);
}

/* Labels on heap samples (heapprof_labels_set): HEAPPROF_OK, doing
 * nothing, when libheapprof is not in the process (a 0.1.0 library has
 * the function under its old name, heapprof_label_set). */
HEAPPROF_WEAK_INLINE_ int
heapprof_weak_labels_set(const char *key, const char *value)
{
    if (heapprof_labels_set != NULL)
        return heapprof_labels_set(key, value);
    return heapprof_label_set != NULL ? heapprof_label_set(key, value)
                                      : HEAPPROF_OK;
}

/* Deprecated: heapprof_weak_labels_set's old name. */
HEAPPROF_WEAK_INLINE_ int
heapprof_weak_label_set(const char *key, const char *value)
{
    return heapprof_weak_labels_set(key, value);
}

HEAPPROF_WEAK_INLINE_ void
heapprof_weak_labels_clear(void)
{
    if (heapprof_labels_clear != NULL)
        heapprof_labels_clear();
}

HEAPPROF_WEAK_INLINE_ void
heapprof_weak_on_realloc_owned(void *old_ptr, void *new_ptr, size_t size,
                               const void *owner)
{
    if (heapprof_on_realloc_owned != NULL)
        heapprof_on_realloc_owned(old_ptr, new_ptr, size, owner);
}

HEAPPROF_WEAK_INLINE_ void
heapprof_weak_on_free_bulk(const void *owner)
{
    if (heapprof_on_free_bulk != NULL)
        heapprof_on_free_bulk(owner);
}

#ifdef __cplusplus
}
#endif

#endif /* HEAPPROF_WEAK_H */
