/*
 * C++'s global operator new and delete (every variant), for the shared
 * library only. libstdc++'s operator new calls malloc, which heapprof
 * already sees; but jemalloc and tcmalloc define operator new themselves
 * and go straight to their own allocator, so a C++ program over either
 * would show an empty profile, and its deletes would never reach
 * heapprof's free (sampled blocks would stay "in use" for ever). These
 * definitions come before theirs in the lookup order and route both
 * through heapprof's malloc and free, over whatever allocator is next.
 * A program that defines its own operator new keeps it (the executable
 * comes first).
 *
 * Failure keeps C++'s semantics without a C++ runtime here: when malloc
 * returns NULL the request is handed to the next definition of the same
 * operator, which runs the new-handler loop and throws std::bad_alloc (or
 * returns NULL for the nothrow forms).
 *
 * The functions sit in the heapprof_front section with malloc, so stack
 * capture drops them: the leaf of a sample is the code that said new.
 * Not in the static library, where a program defining some but not all of
 * them would get duplicate definitions.
 */
#define _GNU_SOURCE
#include <stddef.h>
#include <stdlib.h>
#include <unistd.h>

#include "internal.h"

/* The Itanium C++ ABI names: nw/na = new/new[], dl/da = delete/delete[];
 * m = size_t, St11align_val_t = std::align_val_t (a size_t), RKSt9nothrow_t
 * = const std::nothrow_t& (a pointer). */
HP_EXPORT void *_Znwm(size_t);
HP_EXPORT void *_Znam(size_t);
HP_EXPORT void *_ZnwmRKSt9nothrow_t(size_t, const void *);
HP_EXPORT void *_ZnamRKSt9nothrow_t(size_t, const void *);
HP_EXPORT void *_ZnwmSt11align_val_t(size_t, size_t);
HP_EXPORT void *_ZnamSt11align_val_t(size_t, size_t);
HP_EXPORT void *_ZnwmSt11align_val_tRKSt9nothrow_t(size_t, size_t,
                                                   const void *);
HP_EXPORT void *_ZnamSt11align_val_tRKSt9nothrow_t(size_t, size_t,
                                                   const void *);
HP_EXPORT void _ZdlPv(void *);
HP_EXPORT void _ZdaPv(void *);
HP_EXPORT void _ZdlPvm(void *, size_t);
HP_EXPORT void _ZdaPvm(void *, size_t);
HP_EXPORT void _ZdlPvRKSt9nothrow_t(void *, const void *);
HP_EXPORT void _ZdaPvRKSt9nothrow_t(void *, const void *);
HP_EXPORT void _ZdlPvSt11align_val_t(void *, size_t);
HP_EXPORT void _ZdaPvSt11align_val_t(void *, size_t);
HP_EXPORT void _ZdlPvmSt11align_val_t(void *, size_t, size_t);
HP_EXPORT void _ZdaPvmSt11align_val_t(void *, size_t, size_t);
HP_EXPORT void _ZdlPvSt11align_val_tRKSt9nothrow_t(void *, size_t,
                                                   const void *);
HP_EXPORT void _ZdaPvSt11align_val_tRKSt9nothrow_t(void *, size_t,
                                                   const void *);

/* ------------------------------------------------------------- failure */

/* The next definition of the operator named sym, or abort: a program
 * that reached a throwing operator new has a C++ runtime after us, and
 * returning NULL from one would be undefined behaviour in the caller. */
static __attribute__((cold, noinline)) void *
next_operator(const char *sym, void **cache)
{
    void *f = hp_next_symbol(sym, cache);
    if (f == NULL) {
        static const char msg[] =
            "heapprof: out of memory in operator new, and no C++ "
            "runtime after heapprof to throw std::bad_alloc\n";
        (void)!write(2, msg, sizeof msg - 1);
        abort();
    }
    return f;
}

static __attribute__((cold, noinline)) void *
new_failed(const char *sym, void **cache, size_t size)
{
    void *(*f)(size_t) = (void *(*)(size_t))next_operator(sym, cache);
    return f(size);
}

static __attribute__((cold, noinline)) void *
new_nothrow_failed(const char *sym, void **cache, size_t size, const void *tag)
{
    void *(*f)(size_t, const void *) =
        (void *(*)(size_t, const void *))next_operator(sym, cache);
    return f(size, tag);
}

static __attribute__((cold, noinline)) void *
new_aligned_failed(const char *sym, void **cache, size_t size, size_t align)
{
    void *(*f)(size_t, size_t) =
        (void *(*)(size_t, size_t))next_operator(sym, cache);
    return f(size, align);
}

static __attribute__((cold, noinline)) void *
new_aligned_nothrow_failed(const char *sym, void **cache, size_t size,
                           size_t align, const void *tag)
{
    void *(*f)(size_t, size_t, const void *) =
        (void *(*)(size_t, size_t, const void *))next_operator(sym, cache);
    return f(size, align, tag);
}

/* ------------------------------------------------------------- new */

static HP_FRONT void *
aligned(size_t size, size_t align)
{
    /* As libstdc++: at least pointer alignment (posix_memalign's rule). */
    if (align < sizeof(void *))
        align = sizeof(void *);
    void *p;
    return posix_memalign(&p, align, size) == 0 ? p : NULL;
}

#define HP_DEFINE_NEW(sym)                                                     \
    static void *next_##sym;                                                   \
    HP_EXPORT HP_FRONT void *sym(size_t size)                                  \
    {                                                                          \
        void *p = malloc(size);                                                \
        if (HP_UNLIKELY(p == NULL))                                            \
            return new_failed(#sym, &next_##sym, size);                        \
        return p;                                                              \
    }

#define HP_DEFINE_NEW_NOTHROW(sym)                                             \
    static void *next_##sym;                                                   \
    HP_EXPORT HP_FRONT void *sym(size_t size, const void *tag)                 \
    {                                                                          \
        void *p = malloc(size);                                                \
        if (HP_UNLIKELY(p == NULL))                                            \
            return new_nothrow_failed(#sym, &next_##sym, size, tag);           \
        return p;                                                              \
    }

#define HP_DEFINE_NEW_ALIGNED(sym)                                             \
    static void *next_##sym;                                                   \
    HP_EXPORT HP_FRONT void *sym(size_t size, size_t align)                    \
    {                                                                          \
        void *p = aligned(size, align);                                        \
        if (HP_UNLIKELY(p == NULL))                                            \
            return new_aligned_failed(#sym, &next_##sym, size, align);         \
        return p;                                                              \
    }

#define HP_DEFINE_NEW_ALIGNED_NOTHROW(sym)                                     \
    static void *next_##sym;                                                   \
    HP_EXPORT HP_FRONT void *sym(size_t size, size_t align, const void *tag)   \
    {                                                                          \
        void *p = aligned(size, align);                                        \
        if (HP_UNLIKELY(p == NULL))                                            \
            return new_aligned_nothrow_failed(#sym, &next_##sym, size, align,  \
                                              tag);                            \
        return p;                                                              \
    }

HP_DEFINE_NEW(_Znwm)
HP_DEFINE_NEW(_Znam)
HP_DEFINE_NEW_NOTHROW(_ZnwmRKSt9nothrow_t)
HP_DEFINE_NEW_NOTHROW(_ZnamRKSt9nothrow_t)
HP_DEFINE_NEW_ALIGNED(_ZnwmSt11align_val_t)
HP_DEFINE_NEW_ALIGNED(_ZnamSt11align_val_t)
HP_DEFINE_NEW_ALIGNED_NOTHROW(_ZnwmSt11align_val_tRKSt9nothrow_t)
HP_DEFINE_NEW_ALIGNED_NOTHROW(_ZnamSt11align_val_tRKSt9nothrow_t)

/* ------------------------------------------------------------- delete */

/* Every form is free(): the sizes and alignments are hints that free
 * does not need. */
HP_EXPORT HP_FRONT void
_ZdlPv(void *p)
{
    free(p);
}
HP_EXPORT HP_FRONT void
_ZdaPv(void *p)
{
    free(p);
}
HP_EXPORT HP_FRONT void
_ZdlPvm(void *p, size_t n)
{
    (void)n;
    free(p);
}
HP_EXPORT HP_FRONT void
_ZdaPvm(void *p, size_t n)
{
    (void)n;
    free(p);
}
HP_EXPORT HP_FRONT void
_ZdlPvRKSt9nothrow_t(void *p, const void *t)
{
    (void)t;
    free(p);
}
HP_EXPORT HP_FRONT void
_ZdaPvRKSt9nothrow_t(void *p, const void *t)
{
    (void)t;
    free(p);
}
HP_EXPORT HP_FRONT void
_ZdlPvSt11align_val_t(void *p, size_t a)
{
    (void)a;
    free(p);
}
HP_EXPORT HP_FRONT void
_ZdaPvSt11align_val_t(void *p, size_t a)
{
    (void)a;
    free(p);
}
HP_EXPORT HP_FRONT void
_ZdlPvmSt11align_val_t(void *p, size_t n, size_t a)
{
    (void)n;
    (void)a;
    free(p);
}
HP_EXPORT HP_FRONT void
_ZdaPvmSt11align_val_t(void *p, size_t n, size_t a)
{
    (void)n;
    (void)a;
    free(p);
}
HP_EXPORT HP_FRONT void
_ZdlPvSt11align_val_tRKSt9nothrow_t(void *p, size_t a, const void *t)
{
    (void)a;
    (void)t;
    free(p);
}
HP_EXPORT HP_FRONT void
_ZdaPvSt11align_val_tRKSt9nothrow_t(void *p, size_t a, const void *t)
{
    (void)a;
    (void)t;
    free(p);
}
