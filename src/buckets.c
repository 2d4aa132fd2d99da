/*
 * Stack-bucket table: a fixed array of 2^16 chain heads. Readers walk the
 * chains with acquire loads and no lock; a miss takes insert_lock,
 * re-checks, and publishes a new bucket with a release store. Buckets live
 * in ialloc memory and are never freed; when the budget is reached, new
 * stacks are accounted to the overflow bucket so totals stay right.
 */
#include "buckets.h"

#include <pthread.h>
#include <stdalign.h>
#include <string.h>

#include "ialloc.h"
#include "live.h"

/* Protects insertion (heads' chains and the all-list). Lock order: taken
 * before ialloc_lock, never while a live-table stripe lock is held. */
static pthread_mutex_t insert_lock = PTHREAD_MUTEX_INITIALIZER;
/* The chain heads are static (hp_tables.bucket_heads, on the huge page of
 * live.h): a lookup's first load is the chain head itself. */
static struct hp_bucket *all_list;
static uint64_t nbuckets;
static uint64_t ndropped;
static alignas(64) struct hp_bucket overflow_bucket;

/*
 * A stack's fingerprint: 128 bits from four independent multiply chains
 * (a single chain is one serial multiply per frame, ~110 ns at depth 64;
 * four run in parallel), folded two ways. Buckets are matched on it
 * without comparing the frames, which would read two to four more cold
 * cache lines of the bucket on every sample: two different stacks (or
 * label sets) collide with probability about n^2 / 2^129 for n buckets,
 * never in practice.
 */
static uint64_t
fold(uint64_t a, uint64_t b, uint64_t c, uint64_t d, uint64_t k, int shift)
{
    uint64_t h = a * k;
    h ^= h >> shift;
    h = (h ^ b) * k;
    h ^= h >> shift;
    h = (h ^ c) * k;
    h ^= h >> shift;
    h = (h ^ d) * k;
    return h ^ (h >> 32);
}

void
hp_bucket_key_make(struct hp_bucket_key *key, const uintptr_t *pcs, uint32_t n,
                   const struct hp_labelset *labels)
{
    const uint64_t k = 0x9E3779B97F4A7C15ull, k2 = 0xC2B2AE3D27D4EB4Full;
    uint64_t h0 = 0x243F6A8885A308D3ull ^ n, h1 = 0x13198A2E03707344ull,
             h2 = 0xA4093822299F31D0ull, h3 = 0x082EFA98EC4E6C89ull;
    uint32_t i = 0;
    for (; i + 4 <= n; i += 4) {
        h0 = (h0 ^ pcs[i]) * k;
        h1 = (h1 ^ pcs[i + 1]) * k;
        h2 = (h2 ^ pcs[i + 2]) * k;
        h3 = (h3 ^ pcs[i + 3]) * k;
        h0 ^= h0 >> 29;
        h1 ^= h1 >> 29;
        h2 ^= h2 >> 29;
        h3 ^= h3 >> 29;
    }
    for (; i < n; i++) {
        h0 = (h0 ^ pcs[i]) * k;
        h0 ^= h0 >> 29;
    }
    uintptr_t l = (uintptr_t)labels; /* interned: the address is the set */
    /* Two folds: the chains in opposite orders, two odd multipliers. */
    key->h = fold(h0 ^ l, h1, h2, h3, k, 29);
    key->h2 = fold(h3 ^ l, h2, h1, h0, k2, 31);
    key->nframes = n;
    key->labels = labels;
    /* The chain head is a miss (the table is cold between samples):
     * start it now, the caller has other work before hp_bucket_of. */
    __builtin_prefetch(
        &hp_tables.bucket_heads[key->h >> (64 - HP_BUCKET_HEADS_LG)], 0, 1);
}

static struct hp_bucket *
find(const struct hp_bucket_key *key)
{
    struct hp_bucket *b = __atomic_load_n(
        &hp_tables.bucket_heads[key->h >> (64 - HP_BUCKET_HEADS_LG)],
        __ATOMIC_ACQUIRE);
    for (; b != NULL; b = __atomic_load_n(&b->next, __ATOMIC_ACQUIRE)) {
        if (b->hash == key->h && b->hash2 == key->h2 &&
            b->nframes == key->nframes)
            return b;
    }
    return NULL;
}

struct hp_bucket *
hp_bucket_get(const uintptr_t *pcs, uint32_t nframes)
{
    return hp_bucket_get_labeled(pcs, nframes, NULL);
}

struct hp_bucket *
hp_bucket_get_labeled(const uintptr_t *pcs, uint32_t nframes,
                      const struct hp_labelset *labels)
{
    struct hp_bucket_key key;
    hp_bucket_key_make(&key, pcs, nframes, labels);
    return hp_bucket_of(&key, pcs);
}

struct hp_bucket *
hp_bucket_of(const struct hp_bucket_key *key, const uintptr_t *pcs)
{
    uint32_t nframes = key->nframes;
    struct hp_bucket *b = find(key);
    if (b != NULL)
        return b;

    pthread_mutex_lock(&insert_lock);
    b = find(key);
    if (b == NULL && nframes > 0) {
        b = hp_ialloc(sizeof *b + nframes * sizeof *pcs);
        if (b != NULL) {
            b->hash = key->h;
            b->hash2 = key->h2;
            b->nframes = nframes;
            b->labels = key->labels;
            memcpy(b->pcs, pcs, nframes * sizeof *pcs);
            struct hp_bucket **slot =
                &hp_tables.bucket_heads[key->h >> (64 - HP_BUCKET_HEADS_LG)];
            b->next = *slot;
            b->all_next = all_list;
            __atomic_store_n(slot, b, __ATOMIC_RELEASE);
            __atomic_store_n(&all_list, b, __ATOMIC_RELEASE);
            __atomic_fetch_add(&nbuckets, 1, __ATOMIC_RELAXED);
        }
    }
    pthread_mutex_unlock(&insert_lock);
    if (b == NULL) {
        __atomic_fetch_add(&ndropped, 1, __ATOMIC_RELAXED);
        b = &overflow_bucket;
    }
    return b;
}

struct hp_bucket *
hp_bucket_overflow(void)
{
    return &overflow_bucket;
}

struct hp_bucket *
hp_buckets_all(void)
{
    return __atomic_load_n(&all_list, __ATOMIC_ACQUIRE);
}

uint64_t
hp_buckets_count(void)
{
    return __atomic_load_n(&nbuckets, __ATOMIC_RELAXED);
}

uint64_t
hp_buckets_dropped(void)
{
    return __atomic_load_n(&ndropped, __ATOMIC_RELAXED);
}

/* Serialises resets; taken by heapprof_reset() and the fork handlers only,
 * never on an allocation path; no other heapprof lock is taken while a
 * reset holds it (lock order: reset_lock before insert_lock). */
static pthread_mutex_t reset_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t reset_seq;

/* Move what was freed out of both columns of one counter pair. free is
 * lowered first: a reader in between sees in-use too high, not negative;
 * frees and allocations that land meanwhile only add and are kept. */
static void
reset_pair(uint64_t *alloc, uint64_t *freed)
{
    uint64_t f = __atomic_load_n(freed, __ATOMIC_ACQUIRE);
    __atomic_fetch_sub(freed, f, __ATOMIC_ACQ_REL);
    __atomic_fetch_sub(alloc, f, __ATOMIC_ACQ_REL);
}

static void
reset_bucket(struct hp_bucket *b)
{
    reset_pair(&b->alloc_count_fx, &b->free_count_fx);
    reset_pair(&b->alloc_bytes, &b->free_bytes);
    reset_pair(&b->alloc_samples, &b->free_samples);
    reset_pair(&b->alloc_raw_bytes, &b->free_raw_bytes);
}

void
hp_buckets_reset_allocs(void)
{
    pthread_mutex_lock(&reset_lock);
    __atomic_fetch_add(&reset_seq, 1, __ATOMIC_ACQ_REL);
    for (struct hp_bucket *b = hp_buckets_all(); b != NULL;
         b = __atomic_load_n(&b->all_next, __ATOMIC_ACQUIRE))
        reset_bucket(b);
    reset_bucket(&overflow_bucket);
    __atomic_fetch_add(&reset_seq, 1, __ATOMIC_ACQ_REL);
    pthread_mutex_unlock(&reset_lock);
}

uint64_t
hp_buckets_reset_seq(void)
{
    return __atomic_load_n(&reset_seq, __ATOMIC_ACQUIRE);
}

void
hp_buckets_prefork(void)
{
    /* No fork in the middle of a reset: the child would keep half-reset
     * counters. Lock order: reset_lock, then insert_lock. */
    pthread_mutex_lock(&reset_lock);
    pthread_mutex_lock(&insert_lock);
}

void
hp_buckets_postfork_parent(void)
{
    pthread_mutex_unlock(&insert_lock);
    pthread_mutex_unlock(&reset_lock);
}

void
hp_buckets_postfork_child(void)
{
    pthread_mutex_init(&insert_lock, NULL);
    pthread_mutex_init(&reset_lock, NULL);
}
