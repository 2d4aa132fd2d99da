/*
 * The interning toolbox of the export layer: one hash, one open-addressing
 * table and one bump arena, shared by the profile builder (builder.c), the
 * merge (merge.c) and the symbol cache (symbolize.c). Not thread-safe: each
 * user owns its tables and arenas and locks them as it needs.
 */
#ifndef HP_TABLE_H
#define HP_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "internal.h"

/* ------------------------------------------------------------- hash */

/* FNV-1a (http://www.isthe.com/chongo/tech/comp/fnv/) over bytes, then
 * one multiply-xorshift round so every input bit reaches the top bits the
 * table's slot is taken from. */
static inline uint64_t
hp_hash_finish(uint64_t h)
{
    h ^= h >> 31;
    h *= 0x9e3779b97f4a7c15ull;
    return h ^ (h >> 29);
}

static inline uint64_t
hp_hash_bytes(const void *p, size_t n)
{
    const unsigned char *b = p;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ull;
    return hp_hash_finish(h);
}

/* hp_hash_bytes(s, strlen(s)) in one pass. */
static inline uint64_t
hp_hash_str(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s != '\0'; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return hp_hash_finish(h);
}

/* ------------------------------------------------------------- table */

/*
 * Open addressing with linear probing over (key, val) pairs side by side,
 * so a hit costs one cache miss. val 0 marks an empty slot: store ids or
 * index + 1. key is either the key itself (a return address, a part's id:
 * pass eq = NULL) or a hash of the content, compared by eq on a match.
 * The load stays at most 1/2.
 */
struct hp_islot {
    uint64_t key;
    uint64_t val; /* 0 = empty */
};

struct hp_itab {
    struct hp_islot *s;
    size_t cap; /* a power of two, or 0 before the first insert */
    size_t n;
};

/* Does the entry stored as val have the content ctx describes? */
typedef bool (*hp_itab_eq_fn)(const void *ctx, uint64_t val);

/* Double the table (rehashing the stored keys). False when out of memory
 * (the table is unchanged). */
HP_HIDDEN bool hp_itab_grow(struct hp_itab *t);

/* Make room for one more entry; call before hp_itab_find when it may
 * insert (growing moves the slots). False when out of memory. */
static inline bool
hp_itab_reserve(struct hp_itab *t)
{
    return (t->n + 1) * 2 <= t->cap || hp_itab_grow(t);
}

/* Fibonacci hashing: the top half of key x golden ratio, which every key
 * bit reaches (return addresses differ in their low bits). */
static inline size_t
hp_itab_slot(uint64_t key, size_t mask)
{
    return (size_t)((key * 0x9e3779b97f4a7c15ull) >> 32) & mask;
}

/*
 * The slot holding key (and, with eq, content equal to ctx), or the empty
 * slot where it belongs. The table must have a free slot (cap > 0).
 */
static inline struct hp_islot *
hp_itab_find(const struct hp_itab *t, uint64_t key, hp_itab_eq_fn eq,
             const void *ctx)
{
    size_t mask = t->cap - 1;
    for (size_t j = hp_itab_slot(key, mask);; j = (j + 1) & mask) {
        struct hp_islot *s = &t->s[j];
        if (s->val == 0 || (s->key == key && (eq == NULL || eq(ctx, s->val))))
            return s;
    }
}

/* Fill the empty slot s that hp_itab_find returned. */
static inline void
hp_itab_set(struct hp_itab *t, struct hp_islot *s, uint64_t key, uint64_t val)
{
    s->key = key;
    s->val = val;
    t->n++;
}

/* The value stored for an exact key, or 0. */
static inline uint64_t
hp_itab_get(const struct hp_itab *t, uint64_t key)
{
    return t->cap == 0 ? 0 : hp_itab_find(t, key, NULL, NULL)->val;
}

HP_HIDDEN void hp_itab_free(struct hp_itab *t);

/* ------------------------------------------------------------- arena */

/* Bump allocation in 64 KiB chunks, freed all at once. */
struct hp_achunk;
struct hp_arena {
    struct hp_achunk *head;
};

/* n bytes aligned for any type, or NULL when out of memory. A request
 * larger than a chunk gets its own chunk behind the current one, so the
 * current one keeps filling. */
HP_HIDDEN void *hp_arena_alloc(struct hp_arena *a, size_t n);
/* A copy of s, or NULL. */
HP_HIDDEN char *hp_arena_strdup(struct hp_arena *a, const char *s);
HP_HIDDEN void hp_arena_free(struct hp_arena *a);

#endif
