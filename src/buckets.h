/*
 * The stack-bucket table: one bucket per unique call stack, holding the
 * sampled allocations and frees seen at that stack as unbiased weights
 * (each sample adds 1/p objects and size/p bytes, p = 1 - exp(-size/rate),
 * so sites with mixed sizes stay unbiased). Lookup is lock-free; inserts
 * take one mutex. Buckets are never freed, so pointers to them stay valid
 * for the life of the process.
 */
#ifndef HP_BUCKETS_H
#define HP_BUCKETS_H

#include "internal.h"

/*
 * Laid out by cache line, because a sample finds its bucket cold (the
 * program has evicted it since the last sample at that stack): a sampled
 * allocation reads and writes line 0 only (its identity is the 128-bit
 * fingerprint, so the stack itself is never compared), the sampled free
 * writes line 1 only. 64-byte aligned.
 */
struct hp_bucket {
    /* line 0: lookup and the allocation columns */
    struct hp_bucket *next; /* hash chain (atomic loads/stores) */
    uint64_t hash;          /* fingerprint of stack + labels: 128 bits */
    uint64_t hash2;
    uint32_t nframes; /* 0 only for the overflow bucket */
    uint32_t flags;
    /* Unbiased weights, updated with atomic adds. */
    uint64_t alloc_count_fx; /* objects x HP_COUNT_ONE */
    uint64_t alloc_bytes;
    uint64_t alloc_samples;   /* raw sample count (debug=1 text, comments) */
    uint64_t alloc_raw_bytes; /* sum of sampled sizes */
    /* line 1: the free columns, then what only readers use */
    uint64_t free_count_fx;
    uint64_t free_bytes;
    uint64_t free_samples;
    uint64_t free_raw_bytes;
    const struct hp_labelset *labels; /* the thread's labels (labels.h) */
    struct hp_bucket *all_next;       /* list of every bucket, newest first */
    /* In use at the last peak capture (peak.c): weights and raw. */
    uint64_t peak_count_fx;
    uint64_t peak_bytes;
    uint64_t peak_samples;
    uint64_t peak_raw_bytes;
    uintptr_t pcs[]; /* return addresses, leaf first */
};
_Static_assert(__builtin_offsetof(struct hp_bucket, free_count_fx) == 64,
               "a sampled allocation touches one line of its bucket");

/* The table's chain heads are static, in hp_tables (live.h). */
#define HP_BUCKET_HEADS_LG 16
#define HP_BUCKET_HEADS (1u << HP_BUCKET_HEADS_LG)

/* Bucket for this stack, created if needed. When the table cannot grow
 * (budget), returns the overflow bucket (nframes == 0) and counts a drop.
 * Never NULL. May be called concurrently. */
HP_HIDDEN struct hp_bucket *hp_bucket_get(const uintptr_t *pcs,
                                          uint32_t nframes);
/* The same for a stack sampled under a (interned) label set; NULL is no
 * labels, and is what hp_bucket_get uses. */
struct hp_labelset;
HP_HIDDEN struct hp_bucket *
hp_bucket_get_labeled(const uintptr_t *pcs, uint32_t nframes,
                      const struct hp_labelset *labels);
HP_HIDDEN struct hp_bucket *hp_bucket_overflow(void);

/* The same in two steps, for the sampled path: make the stack's key (its
 * fingerprint; this starts loading its chain head), do other work, then
 * find or create the bucket. nframes > 0. */
struct hp_bucket_key {
    uint64_t h, h2;
    uint32_t nframes;
    const struct hp_labelset *labels;
};
HP_HIDDEN void hp_bucket_key_make(struct hp_bucket_key *key,
                                  const uintptr_t *pcs, uint32_t nframes,
                                  const struct hp_labelset *labels);
HP_HIDDEN struct hp_bucket *hp_bucket_of(const struct hp_bucket_key *key,
                                         const uintptr_t *pcs);

/* Newest-first list of all buckets (acquire load); walk with all_next.
 * The overflow bucket is not in the list. */
HP_HIDDEN struct hp_bucket *hp_buckets_all(void);
HP_HIDDEN uint64_t hp_buckets_count(void);
HP_HIDDEN uint64_t hp_buckets_dropped(void); /* stacks sent to overflow */

/* A bucket's counters as one reading. */
struct hp_bucket_counts {
    uint64_t alloc_fx, alloc_bytes, alloc_samples, alloc_raw_bytes;
    uint64_t free_fx, free_bytes, free_samples, free_raw_bytes;
};

/* Frees are read before allocations: a free is always recorded after its
 * allocation, so this order never sees more freed than allocated for
 * blocks recorded before the read (readers clamp the rest). */
static inline void
hp_bucket_read(const struct hp_bucket *b, struct hp_bucket_counts *c)
{
    c->free_fx = __atomic_load_n(&b->free_count_fx, __ATOMIC_RELAXED);
    c->free_bytes = __atomic_load_n(&b->free_bytes, __ATOMIC_RELAXED);
    c->free_samples = __atomic_load_n(&b->free_samples, __ATOMIC_RELAXED);
    c->free_raw_bytes = __atomic_load_n(&b->free_raw_bytes, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    c->alloc_fx = __atomic_load_n(&b->alloc_count_fx, __ATOMIC_RELAXED);
    c->alloc_bytes = __atomic_load_n(&b->alloc_bytes, __ATOMIC_RELAXED);
    c->alloc_samples = __atomic_load_n(&b->alloc_samples, __ATOMIC_RELAXED);
    c->alloc_raw_bytes = __atomic_load_n(&b->alloc_raw_bytes, __ATOMIC_RELAXED);
}

static inline void
hp_bucket_add_alloc(struct hp_bucket *b, uint64_t count_fx, uint64_t bytes,
                    uint64_t raw_size)
{
    __atomic_fetch_add(&b->alloc_count_fx, count_fx, __ATOMIC_RELAXED);
    __atomic_fetch_add(&b->alloc_bytes, bytes, __ATOMIC_RELAXED);
    __atomic_fetch_add(&b->alloc_samples, 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&b->alloc_raw_bytes, raw_size, __ATOMIC_RELAXED);
}

static inline void
hp_bucket_add_free(struct hp_bucket *b, uint64_t count_fx, uint64_t bytes,
                   uint64_t raw_size)
{
    __atomic_fetch_add(&b->free_count_fx, count_fx, __ATOMIC_RELAXED);
    __atomic_fetch_add(&b->free_bytes, bytes, __ATOMIC_RELAXED);
    __atomic_fetch_add(&b->free_samples, 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&b->free_raw_bytes, raw_size, __ATOMIC_RELAXED);
}

/*
 * heapprof_reset(): the allocation columns restart from what is live now.
 * For every bucket (and the overflow bucket) alloc := alloc - free and
 * free := 0, for the weights and the raw counts alike, so in-use values
 * are unchanged and the next profile's alloc_* columns count only what is
 * still live plus what is allocated from now on. Lock-free towards the
 * allocation paths (atomic subtractions; a concurrent free or allocation
 * is never lost). Resets are serialised among themselves.
 *
 * A reader that takes a bucket's free columns and then its alloc columns
 * while a reset passes over that bucket may see alloc - free too low for
 * that one collection; profile.c clamps in-use at zero, so it never goes
 * negative. A reader that wants an exact view retries while
 * hp_buckets_reset_seq() is odd or has changed across its read (a seqlock
 * bumped before and after each reset).
 */
HP_HIDDEN void hp_buckets_reset_allocs(void);
HP_HIDDEN uint64_t hp_buckets_reset_seq(void);

HP_HIDDEN void hp_buckets_prefork(void);
HP_HIDDEN void hp_buckets_postfork_parent(void);
HP_HIDDEN void hp_buckets_postfork_child(void);

#endif
