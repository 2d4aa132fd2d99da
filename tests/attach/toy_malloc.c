/*
 * A minimal allocator that replaces malloc for the whole process (linked
 * ahead of libc): a bump pointer over a static arena, never reusing
 * memory. It leaves out posix_memalign, which libc then answers:
 * heapprof mixes posix_memalign with free, so heapprof_attach() (which
 * forwards to the process's own allocator) must refuse.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define ARENA (64u << 20)

static _Alignas(4096) unsigned char arena[ARENA];
static size_t used;

void *malloc(size_t n);
void free(void *p);
void *calloc(size_t a, size_t b);
void *realloc(void *p, size_t n);
void *aligned_alloc(size_t align, size_t n);
void *memalign(size_t align, size_t n);
size_t malloc_usable_size(void *p);

static void *
bump(size_t n, size_t align)
{
    if (align < 16)
        align = 16;
    size_t off = __atomic_load_n(&used, __ATOMIC_RELAXED), start, end;
    do {
        start = (off + 16 + align - 1) & ~(align - 1);
        end = start + ((n + 15) & ~(size_t)15);
        if (end > ARENA || n > ARENA) {
            errno = ENOMEM;
            return NULL;
        }
    } while (!__atomic_compare_exchange_n(&used, &off, end, 1,
                                          __ATOMIC_RELAXED, __ATOMIC_RELAXED));
    memcpy(arena + start - 16, &n, sizeof n);
    return arena + start;
}

void *
malloc(size_t n)
{
    return bump(n, 16);
}

void
free(void *p)
{
    (void)p;
}

void *
calloc(size_t a, size_t b)
{
    size_t n;
    if (__builtin_mul_overflow(a, b, &n)) {
        errno = ENOMEM;
        return NULL;
    }
    return bump(n, 16); /* never reused: still zero */
}

size_t
malloc_usable_size(void *p)
{
    size_t n = 0;
    if (p != NULL)
        memcpy(&n, (unsigned char *)p - 16, sizeof n);
    return n;
}

void *
realloc(void *p, size_t n)
{
    void *q = bump(n, 16);
    if (q != NULL && p != NULL) {
        size_t old = malloc_usable_size(p);
        memcpy(q, p, old < n ? old : n);
    }
    return q;
}

void *
aligned_alloc(size_t align, size_t n)
{
    return bump(n, align);
}

void *
memalign(size_t align, size_t n)
{
    return bump(n, align);
}
