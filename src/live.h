/*
 * The table of live sampled blocks: address -> (bucket, weights, size,
 * birth time), so a free can be attributed to the stack that allocated it.
 * A free of an unsampled block must cost almost nothing, so the table sits
 * behind a filter: one bit per 256-byte granule of address space (folded
 * into 2^19 slots), set while some recorded block starts in that granule.
 * A clear bit proves the block was not sampled without taking a lock or
 * touching the table.
 */
#ifndef HP_LIVE_H
#define HP_LIVE_H

#include "buckets.h"
#include "internal.h"

#define HP_LIVE_FILTER_LG 19
/*
 * Frees of a program's heap are scattered, and the filter word is then
 * the one cache miss heapprof adds to free, so the filter is dense: a bit
 * per 256-byte granule puts 128 KiB of heap under one 64-byte line (a
 * 40 MiB heap touches 20 KiB of filter; a heap spread over more than the
 * 128 MiB window, all 64 KiB of it). The price
 * is that neighbours of a live sampled block within its granule take the
 * slow path: about granule / rate of frees, 0.05 % at the default rate.
 */
#define HP_LIVE_GRANULE_LG 8

/*
 * In front of it, a coarse filter: a bit per 4 KiB granule (2^17 slots, a
 * 512 MiB window), set while any recorded block starts in the granule.
 * A 40 MiB heap touches 1.25 KiB of it (20 cache lines) instead of 20 KiB,
 * which is what stays cached while a program streams through its buffers:
 * in bench/'s memset-heavy mixed workload heapprof's free took 1.85 % of
 * the time with the fine filter alone, a forwarding shim's 0.37 %. Only
 * frees whose coarse bit is set, about 4 KiB / rate of them plus the
 * sampled ones, read the fine filter.
 */
#define HP_LIVE_COARSE_LG 17
#define HP_LIVE_COARSE_GRANULE_LG 12

struct hp_live_rec {
    struct hp_live_rec *next;
    uintptr_t ptr;
    struct hp_bucket *bucket;
    uint64_t count_fx; /* weights added to the bucket at allocation */
    uint64_t bytes;
    uint64_t size;     /* requested size */
    uint64_t birth_ns; /* monotonic clock at allocation */
    /* Custom allocators: records sharing a non-zero owner (an arena or a
     * pool) are chained on a per-owner list so that destroying the owner
     * visits only its sampled blocks. onext/oprev belong to the table. */
    uintptr_t owner;
    uintptr_t tag; /* front end's private word (Boehm: link slot) */
    struct hp_live_rec *onext;
    struct hp_live_rec *oprev;
    /* Counted in the filter (hp_live_maybe). Not for blocks of the sample
     * range, whose frees are known by their address: four cache lines
     * fewer to touch on each of their allocations and frees. */
    bool filtered;
};

#define HP_LIVE_HEADS_LG 16

/*
 * heapprof's fixed tables (this table's and the bucket table's), together
 * in one 2 MiB object on a 2 MiB boundary (hp_tables_place) that live.c
 * asks the kernel to back with one huge page: a sample reaches into five
 * of them (and every free into the coarse bits) at addresses spread over
 * 1.8 MiB, which on 4 KiB pages is a TLB miss each, with a page walk that
 * is itself cold.
 */
struct hp_fixed_tables {
    /* The coarse filter's fast-path bits, read by every free. */
    uint64_t coarse_bits[1u << (HP_LIVE_COARSE_LG - 6)];
    /* The fine filter's bits, and per slot the number of recorded blocks
     * (a byte that saturates at 255 and then stays: a permanent "maybe",
     * which only costs lookups). Both change only under the live table's
     * stripe lock of the slot; the bits are read without any lock. */
    uint64_t bits[1u << (HP_LIVE_FILTER_LG - 6)];
    uint8_t filter[1u << HP_LIVE_FILTER_LG];
    /* The coarse filter's counts, the same way (16 bits, 65535 sticky).
     * Every address of a coarse slot has its fine slot, and its chain,
     * under the same stripe lock (see live.c), which keeps both levels in
     * step. */
    uint16_t coarse[1u << HP_LIVE_COARSE_LG];
    /* The chain heads (under the stripe locks; see live.c). */
    struct hp_live_rec *heads[1u << HP_LIVE_HEADS_LG];
    /* The bucket table's chain heads (see buckets.c). */
    struct hp_bucket *bucket_heads[HP_BUCKET_HEADS];
    /* The rest of the huge page. */
    char pad[(2u << 20) - (1u << (HP_LIVE_COARSE_LG - 3)) -
             (1u << (HP_LIVE_FILTER_LG - 3)) - (1u << HP_LIVE_FILTER_LG) -
             (2u << HP_LIVE_COARSE_LG) - (8u << HP_LIVE_HEADS_LG) -
             8u * HP_BUCKET_HEADS];
};
#define HP_TABLES_ALIGN ((size_t)2 << 20)
_Static_assert(sizeof(struct hp_fixed_tables) == HP_TABLES_ALIGN,
               "the fixed tables fill one huge page");

/*
 * Where the tables are. They live in a static area twice their size, at
 * its first 2 MiB boundary, found at run time: a 2 MiB-aligned static
 * object would make the linker give it a program header of its own with
 * no file behind it, and valgrind then reads no symbols at all from the
 * object holding it (the whole program, when linked with libheapprof.a).
 *
 * hp_live_coarse is what free's fast path reads: until the tables are
 * placed it points at zeros (nothing is recorded before then), afterwards
 * at their coarse bits. Every other access goes through hp_tables, which
 * places them on first use (from the bootstrap pool's first block, the
 * first sample, or live.c's constructor, whichever comes first).
 */
HP_HIDDEN extern char hp_tables_area[2 * HP_TABLES_ALIGN];
HP_HIDDEN extern uint64_t *hp_live_coarse;
HP_HIDDEN extern struct hp_fixed_tables *hp_tables_at;
HP_HIDDEN struct hp_fixed_tables *hp_tables_place(void);

static inline struct hp_fixed_tables *
hp_tables_get(void)
{
    struct hp_fixed_tables *t =
        __atomic_load_n(&hp_tables_at, __ATOMIC_ACQUIRE);
    return HP_LIKELY(t != NULL) ? t : hp_tables_place();
}
#define hp_tables (*hp_tables_get())

/*
 * Slot of an address: its granule within a 128 MiB window. Neighbouring
 * blocks land in the same or neighbouring bits, so the frees of a program
 * walking its heap touch few filter cache lines (a hashed index cost a
 * cache miss on most frees). Blocks at the same offset of two windows
 * share a bit, which only sends some frees to the slow path (about
 * windows spanned x granule / rate of them); folding the window number in
 * cost three instructions on every free.
 */
static inline uint32_t
hp_live_filter_slot(uintptr_t ptr)
{
    return (uint32_t)(ptr >> HP_LIVE_GRANULE_LG) &
           ((1u << HP_LIVE_FILTER_LG) - 1);
}

static inline uint32_t
hp_live_coarse_slot(uintptr_t ptr)
{
    return (uint32_t)(ptr >> HP_LIVE_COARSE_GRANULE_LG) &
           ((1u << HP_LIVE_COARSE_LG) - 1);
}

static inline bool
hp_live_bit(const uint64_t *bits, uint32_t slot)
{
    return (__atomic_load_n(&bits[slot >> 6], __ATOMIC_RELAXED) >>
            (slot & 63)) &
           1;
}

/* False means "certainly not a recorded block". The fine bit is read only
 * when the coarse one is set (rarely: the compiler keeps it out of line). */
static inline bool
hp_live_maybe(const void *ptr)
{
    if (HP_LIKELY(
            !hp_live_bit(__atomic_load_n(&hp_live_coarse, __ATOMIC_RELAXED),
                         hp_live_coarse_slot((uintptr_t)ptr))))
        return false;
    return hp_live_bit(hp_tables.bits, hp_live_filter_slot((uintptr_t)ptr));
}

/* Make ptr's slot answer "maybe" for good (the bootstrap pool's blocks,
 * which free() must recognise on its slow path). */
HP_HIDDEN void hp_live_filter_pin(uintptr_t ptr);

/* Start loading what hp_live_insert(ptr) will touch (its chain head,
 * stripe lock and, for a filtered record, filter counts: independent
 * cache misses on a big heap) while the caller does something slow, such
 * as capturing the stack. */
HP_HIDDEN void hp_live_prefetch(uintptr_t ptr, bool filtered);

/* Record a live block (a copy of *rec, ptr must be set). If the address is
 * already recorded (a free heapprof did not see), the stale record is
 * returned through *stale (true) so the caller can account it as freed.
 * Returns false when out of budget. Never calls malloc. */
HP_HIDDEN bool hp_live_insert(const struct hp_live_rec *rec,
                              struct hp_live_rec *stale, bool *had_stale);
/* Remove ptr's record, copying it to *out. False if ptr is not recorded. */
HP_HIDDEN bool hp_live_remove(uintptr_t ptr, struct hp_live_rec *out);
HP_HIDDEN uint64_t hp_live_count(void);
/* Resident bytes of the static tables (filters, chain heads of this table
 * and the bucket table): the part of heapprof's metadata not in ialloc. */
HP_HIDDEN uint64_t hp_tables_resident(void);

/* Remove ptr's record only if its tag equals tag (a front end that keeps
 * per-block state must not remove a newer record at a reused address).
 * False if there is no such record. Never calls malloc. */
HP_HIDDEN bool hp_live_remove_tagged(uintptr_t ptr, uintptr_t tag,
                                     struct hp_live_rec *out);
/* Remove one record whose owner is owner (any one), copying it to *out.
 * False when the owner has no record left. O(1) expected; a bulk free
 * calls it until it returns false. Never calls malloc. */
HP_HIDDEN bool hp_live_remove_owned(uintptr_t owner, struct hp_live_rec *out);
/* Remove every plain record (no owner, no tag: the malloc family's and
 * heapprof_on_alloc's), calling fn on a copy of each with no lock of the
 * table held (fn may not call into it). Returns how many. Never calls
 * malloc. */
HP_HIDDEN uint64_t hp_live_remove_plain(void (*fn)(const struct hp_live_rec *,
                                                   void *),
                                        void *arg);
/* Live records with a non-zero owner, and distinct owners holding them. */
HP_HIDDEN uint64_t hp_live_owned_count(void);
HP_HIDDEN uint64_t hp_live_owner_count(void);

/* Calls fn for every live record under its stripe lock (fn must not call
 * into the live table). */
HP_HIDDEN void hp_live_foreach(void (*fn)(const struct hp_live_rec *, void *),
                               void *arg);

HP_HIDDEN void hp_live_prefork(void);
HP_HIDDEN void hp_live_postfork_parent(void);
HP_HIDDEN void hp_live_postfork_child(void);

#endif
