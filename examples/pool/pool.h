/*
 * A small nginx/APR-style pool allocator: blocks are carved from chunks
 * obtained with mmap and are all released at once when the pool is
 * destroyed (or reset). It reports to heapprof through the custom-allocator
 * hooks; how depends on how it was built (see pool.c):
 *
 *   POOL_HOOKS_LINKED  <heapprof.h>, linked with libheapprof (the default)
 *   POOL_HOOKS_WEAK    <heapprof_weak.h>, not linked: profiled only when
 *                      libheapprof is preloaded, a null check otherwise
 *   POOL_HOOKS_NONE    no hooks at all (the baseline of the benchmark)
 */
#ifndef EXAMPLE_POOL_H
#define EXAMPLE_POOL_H

#include <stddef.h>

struct pool;

struct pool *pool_create(void);
/* Destroy the pool: every block in it is gone (heapprof_on_free_bulk). */
void pool_destroy(struct pool *p);
/* Forget every block but keep the first chunk for reuse. */
void pool_reset(struct pool *p);
/* 16-byte aligned; aborts when the system is out of memory. */
void *pool_alloc(struct pool *p, size_t size);
/* Grow or shrink: a new block with the old contents (pools never move a
 * block in place). */
void *pool_realloc(struct pool *p, void *old, size_t old_size, size_t size);
/* Give one block back early: heapprof stops counting it in use; its
 * memory returns with the pool. */
void pool_free(struct pool *p, void *ptr);
/* Which hook form this build uses, for the benchmark's report. */
const char *pool_hooks_form(void);

#endif
