/*
 * The pool allocator of pool.h. The heapprof hooks are called under the
 * pool's own lock, as most allocators would: heapprof's hooks never call
 * malloc and never wait on a lock of heapprof's that is held while it
 * calls out, so this cannot deadlock.
 *
 * The hooks see pool_alloc as the allocating function: it is the caller of
 * heapprof_on_alloc_owned, so it is the leaf of every sample. Read the
 * profile with `go tool pprof -hide='^pool_'` to make the pool's callers
 * the leaves (or make pool_alloc an inline function in a header).
 */
#include "pool.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#if defined(POOL_HOOKS_NONE)
#define HOOK_ALLOC(ptr, size, owner) ((void)(ptr), (void)(size), (void)(owner))
#define HOOK_REALLOC(old, ptr, size, owner)                                   \
    ((void)(old), (void)(ptr), (void)(size), (void)(owner))
#define HOOK_FREE(ptr) ((void)(ptr))
#define HOOK_FREE_BULK(owner) ((void)(owner))
#define HOOKS_FORM "none"
#elif defined(POOL_HOOKS_WEAK)
#include <heapprof_weak.h>
#define HOOK_ALLOC(ptr, size, owner)                                          \
    heapprof_weak_on_alloc_owned(ptr, size, owner)
#define HOOK_REALLOC(old, ptr, size, owner)                                   \
    heapprof_weak_on_realloc_owned(old, ptr, size, owner)
#define HOOK_FREE(ptr) heapprof_weak_on_free(ptr)
#define HOOK_FREE_BULK(owner) heapprof_weak_on_free_bulk(owner)
#define HOOKS_FORM (heapprof_weak_present() ? "weak, heapprof present"        \
                                            : "weak, heapprof absent")
#else
#include <heapprof.h>
#define HOOK_ALLOC(ptr, size, owner) heapprof_on_alloc_owned(ptr, size, owner)
#define HOOK_REALLOC(old, ptr, size, owner)                                   \
    heapprof_on_realloc_owned(old, ptr, size, owner)
#define HOOK_FREE(ptr) heapprof_on_free(ptr)
#define HOOK_FREE_BULK(owner) heapprof_on_free_bulk(owner)
#define HOOKS_FORM "linked"
#endif

#define CHUNK_SIZE ((size_t)1 << 20)

struct chunk {
    struct chunk *next;
    size_t size;
    size_t used;
    char pad[8];
    char data[]; /* 32-byte header keeps data 16-byte aligned */
};

struct pool {
    pthread_mutex_t lock;
    struct chunk *chunks;
};

static void *
map(size_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        abort();
    return p;
}

struct pool *
pool_create(void)
{
    struct pool *p = map(sizeof *p);
    pthread_mutex_init(&p->lock, NULL);
    p->chunks = NULL;
    return p;
}

/* Caller holds p->lock. */
static void *
carve(struct pool *p, size_t size)
{
    size = (size + 15) & ~(size_t)15;
    struct chunk *c = p->chunks;
    if (c == NULL || c->used + size > c->size) {
        size_t want = size + sizeof *c > CHUNK_SIZE ? size + sizeof *c
                                                    : CHUNK_SIZE;
        c = map(want);
        c->size = want - sizeof *c;
        c->used = 0;
        c->next = p->chunks;
        p->chunks = c;
    }
    void *r = c->data + c->used;
    c->used += size;
    return r;
}

void *
pool_alloc(struct pool *p, size_t size)
{
    pthread_mutex_lock(&p->lock);
    void *r = carve(p, size);
    HOOK_ALLOC(r, size, p);
    pthread_mutex_unlock(&p->lock);
    return r;
}

void *
pool_realloc(struct pool *p, void *old, size_t old_size, size_t size)
{
    pthread_mutex_lock(&p->lock);
    void *r = carve(p, size);
    if (old != NULL)
        memcpy(r, old, old_size < size ? old_size : size);
    HOOK_REALLOC(old, r, size, p);
    pthread_mutex_unlock(&p->lock);
    return r;
}

void
pool_free(struct pool *p, void *ptr)
{
    pthread_mutex_lock(&p->lock);
    HOOK_FREE(ptr);
    pthread_mutex_unlock(&p->lock);
}

static void
unmap_chunk(struct chunk *c)
{
    munmap(c, c->size + sizeof *c);
}

void
pool_reset(struct pool *p)
{
    pthread_mutex_lock(&p->lock);
    /* Before the memory can be handed out again. */
    HOOK_FREE_BULK(p);
    struct chunk *keep = p->chunks;
    if (keep != NULL) {
        for (struct chunk *c = keep->next, *n; c != NULL; c = n) {
            n = c->next;
            unmap_chunk(c);
        }
        keep->next = NULL;
        keep->used = 0;
    }
    pthread_mutex_unlock(&p->lock);
}

void
pool_destroy(struct pool *p)
{
    pthread_mutex_lock(&p->lock);
    HOOK_FREE_BULK(p);
    pthread_mutex_unlock(&p->lock);
    for (struct chunk *c = p->chunks, *n; c != NULL; c = n) {
        n = c->next;
        unmap_chunk(c);
    }
    pthread_mutex_destroy(&p->lock);
    munmap(p, sizeof *p);
}

const char *
pool_hooks_form(void)
{
    return HOOKS_FORM;
}
