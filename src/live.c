/*
 * Live sampled blocks: 2^16 hash chains guarded by 256 striped mutexes,
 * records from a free list refilled from ialloc in batches, and the
 * two-level filter that keeps unsampled frees off the table entirely. The
 * chain index of an address carries the low bits of its coarse filter
 * slot, so every record of one coarse (and so of one fine) slot is under
 * one stripe lock, which then keeps both slots' counts and bits in step
 * without any other synchronisation.
 *
 * Records with an owner (custom allocators: an arena or a pool) are also
 * on a doubly linked list per owner, found through a second, smaller hash
 * (owner -> entry holding the list head), so that a bulk free visits only
 * that owner's sampled blocks.
 */
#include "live.h"

#include <stdalign.h>
#include <sys/mman.h>

#include "ialloc.h"
#include "lock.h"

#define HP_LIVE_STRIPES 256
#define HP_LIVE_BATCH 256
#define HP_OWNER_HEADS_LG 12
#define HP_OWNER_STRIPES 64
#define HP_OWNER_BATCH 128
/* A bulk free retries when a concurrent free removed the record it picked;
 * this many failures in a row means the owner is being filled as fast as
 * it is emptied, and the bulk free stops rather than spin. */
#define HP_OWNER_MAX_RETRIES 1024
/* hp_live_remove_plain leaves a stripe that other threads refill as fast
 * as it empties it after this many rounds. */
#define HP_DRAIN_MAX_ROUNDS 1024

/* Twice the tables' size: a 2 MiB boundary falls in its first half. */
alignas(64) char hp_tables_area[2 * HP_TABLES_ALIGN];
uint64_t *hp_live_coarse = (uint64_t *)(void *)hp_tables_area;
struct hp_fixed_tables *hp_tables_at;

/*
 * Place the tables (live.h) and ask for their huge page (why: above
 * struct hp_fixed_tables). Every caller computes the same address, so racing
 * callers agree; the coarse pointer is published before the tables' own,
 * and both before anything is recorded in them. The huge page is
 * best effort: MADV_COLLAPSE (Linux 6.1; independent of the system's THP
 * setting) folds in the pages already touched; before 6.1 the advice
 * leaves it to khugepaged; without a huge page the tables only cost more
 * TLB misses.
 */
#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif
struct hp_fixed_tables *
hp_tables_place(void)
{
    uintptr_t a = ((uintptr_t)hp_tables_area + HP_TABLES_ALIGN - 1) &
                  ~(uintptr_t)(HP_TABLES_ALIGN - 1);
    struct hp_fixed_tables *t = (struct hp_fixed_tables *)a;
    /* The coarse pointer first: whoever finds hp_tables_at set may record
     * at once, and free must then already look at the real bits. */
    __atomic_store_n(&hp_live_coarse, t->coarse_bits, __ATOMIC_RELEASE);
    if (__atomic_exchange_n(&hp_tables_at, t, __ATOMIC_ACQ_REL) == NULL) {
        if (madvise(t, sizeof *t, MADV_HUGEPAGE) == 0)
            (void)madvise(t, sizeof *t, MADV_COLLAPSE);
    }
    return t;
}

static void __attribute__((constructor)) tables_early(void)
{
    (void)hp_tables_get();
}

/*
 * stripes[i] protects the chains whose index is i mod HP_LIVE_STRIPES.
 * Lock order: a stripe, then an owner stripe (below), then a lane's record
 * cache (rec_lanes), then freelist_lock, then ialloc's lock.
 *
 * A stripe is one cache line: its lock and its share of the live count,
 * kept under the lock, so a sample does no atomic add on a line shared by
 * every thread (the stripe's line is the one it locks anyway).
 */
struct stripe {
    alignas(64) hp_lock_t lock;
    uint64_t nlive; /* records on this stripe's chains (atomic stores) */
};
static struct stripe stripes[HP_LIVE_STRIPES] = {
    [0 ... HP_LIVE_STRIPES - 1] = {.lock = HP_LOCK_INITIALIZER}};
static hp_lock_t freelist_lock = HP_LOCK_INITIALIZER;
_Static_assert(sizeof(struct stripe) == 64, "a stripe is one cache line");

/* One per owner that has at least one live record; freed when its list
 * empties. */
struct owner_ent {
    struct owner_ent *next; /* hash chain */
    uintptr_t owner;
    struct hp_live_rec *head;
};

/*
 * ostripes[i] protects the owner chains whose index is i mod
 * HP_OWNER_STRIPES, the entries on them and the onext/oprev links of their
 * records. Lock order: a stripe, then an owner stripe, then a lane's record
 * cache, then freelist_lock (which also protects both shared free lists),
 * then ialloc's lock. Never held while calling out of heapprof.
 */
static hp_lock_t ostripes[HP_OWNER_STRIPES] = {[0 ... HP_OWNER_STRIPES - 1] =
                                                   HP_LOCK_INITIALIZER};
static void *oheads;     /* struct owner_ent *[2^HP_OWNER_HEADS_LG] */
static uint64_t nowned;  /* records with an owner (atomic) */
static uint64_t nowners; /* entries in use (atomic) */

/* Chain of an address: hashed high bits, and low bits equal to those of
 * its coarse filter slot, so that chain % HP_LIVE_STRIPES (its stripe)
 * depends on the coarse slot alone. A fine slot lies inside one coarse
 * slot's residue class (the fine window is a quarter of the coarse one,
 * granules nest), so every address of a fine slot is under that stripe
 * too. */
_Static_assert(HP_LIVE_STRIPES == 256,
               "stripe = low 8 bits of the coarse slot");
_Static_assert(HP_LIVE_COARSE_GRANULE_LG >= HP_LIVE_GRANULE_LG &&
                   HP_LIVE_COARSE_GRANULE_LG + 8 <=
                       HP_LIVE_GRANULE_LG + HP_LIVE_FILTER_LG,
               "the address bits of a coarse slot's low 8 bits are within "
               "those of the fine slot");
static uint32_t
head_index(uintptr_t ptr)
{
    uint32_t hashed =
        (uint32_t)(((uint64_t)(ptr >> 4) * 0xC2B2AE3D27D4EB4Full) >>
                   (64 - (HP_LIVE_HEADS_LG - 8)));
    return (hashed << 8) | (hp_live_coarse_slot(ptr) & 0xffu);
}

/* A table of 2^lg chain heads, mapped on first use (freelist_lock
 * serialises the mapping); NULL when the budget refuses it. */
static void *
lazy_heads(void **slot, unsigned lg)
{
    void *h = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
    if (h != NULL)
        return h;
    hp_lock(&freelist_lock);
    if (*slot == NULL) {
        h = hp_ialloc_region((size_t)(1u << lg) * sizeof(void *));
        if (h != NULL)
            __atomic_store_n(slot, h, __ATOMIC_RELEASE);
    }
    h = *slot;
    hp_unlock(&freelist_lock);
    return h;
}

/*
 * Fixed-size records on a free list (linked through their first word),
 * refilled from ialloc a batch at a time; never returned to ialloc.
 */
struct batch_list {
    void *head;
    size_t size;
    unsigned batch;
};

static void *
batch_get(struct batch_list *l)
{
    hp_lock(&freelist_lock);
    if (l->head == NULL) {
        char *batch = hp_ialloc(l->batch * l->size);
        for (unsigned i = 0; batch != NULL && i < l->batch; i++) {
            *(void **)(void *)(batch + i * l->size) = l->head;
            l->head = batch + i * l->size;
        }
    }
    void *r = l->head;
    if (r != NULL)
        l->head = *(void **)r;
    hp_unlock(&freelist_lock);
    return r;
}

static void
batch_put(struct batch_list *l, void *r)
{
    hp_lock(&freelist_lock);
    *(void **)r = l->head;
    l->head = r;
    hp_unlock(&freelist_lock);
}

static struct batch_list recs = {NULL, sizeof(struct hp_live_rec),
                                 HP_LIVE_BATCH};

/*
 * Each lane (internal.h) keeps up to HP_LIVE_LANE_RECS freed records for
 * its thread's next samples, behind a lock of its own: the last record a
 * thread freed is the warmest it can reuse, and threads sampling at once
 * take no lock and touch no list head in common. Beyond that, records go
 * back to the shared list. Taken with no other lock of this file held.
 */
#define HP_LIVE_LANE_RECS 16
struct rec_lane {
    alignas(64) hp_lock_t lock;
    struct hp_live_rec *head;
    unsigned n;
};
static struct rec_lane rec_lanes[HP_LANES] = {
    [0 ... HP_LANES - 1] = {.lock = HP_LOCK_INITIALIZER}};

static struct hp_live_rec *
rec_alloc(void)
{
    struct rec_lane *lane = &rec_lanes[hp_lane()];
    hp_lock(&lane->lock);
    struct hp_live_rec *r = lane->head;
    if (r != NULL) {
        lane->head = r->next;
        lane->n--;
    }
    hp_unlock(&lane->lock);
    return r != NULL ? r : batch_get(&recs);
}

static void
rec_free(struct hp_live_rec *r)
{
    struct rec_lane *lane = &rec_lanes[hp_lane()];
    hp_lock(&lane->lock);
    bool kept = lane->n < HP_LIVE_LANE_RECS;
    if (kept) {
        r->next = lane->head;
        lane->head = r;
        lane->n++;
    }
    hp_unlock(&lane->lock);
    if (!kept)
        batch_put(&recs, r);
}

static void
nlive_add(struct stripe *st, int delta)
{
    __atomic_store_n(&st->nlive, st->nlive + (uint64_t)(int64_t)delta,
                     __ATOMIC_RELAXED);
}

static uint32_t
owner_index(uintptr_t owner)
{
    return (uint32_t)(((uint64_t)(owner >> 4) * 0x9E3779B97F4A7C15ull) >>
                      (64 - HP_OWNER_HEADS_LG));
}

static hp_lock_t *
owner_lock(uint32_t oi)
{
    return &ostripes[oi % HP_OWNER_STRIPES];
}

static struct batch_list ents = {NULL, sizeof(struct owner_ent),
                                 HP_OWNER_BATCH};

static struct owner_ent **
get_oheads(void)
{
    return lazy_heads(&oheads, HP_OWNER_HEADS_LG);
}

static struct owner_ent *
ent_alloc(void)
{
    return batch_get(&ents);
}

static void
ent_free(struct owner_ent *e)
{
    batch_put(&ents, e);
}

/*
 * Put r (already in the address table, its stripe lock held) on its
 * owner's list, creating the owner's entry from *spare if it has none
 * (*spare is then set to NULL).
 */
static void
owner_link(struct owner_ent **ohs, struct hp_live_rec *r,
           struct owner_ent **spare)
{
    uint32_t oi = owner_index(r->owner);
    hp_lock_t *lock = owner_lock(oi);
    hp_lock(lock);
    struct owner_ent *e = ohs[oi];
    while (e != NULL && e->owner != r->owner)
        e = e->next;
    if (e == NULL) {
        e = *spare;
        *spare = NULL;
        e->owner = r->owner;
        e->head = NULL;
        e->next = ohs[oi];
        ohs[oi] = e;
        __atomic_fetch_add(&nowners, 1, __ATOMIC_RELAXED);
    }
    r->oprev = NULL;
    r->onext = e->head;
    if (e->head != NULL)
        e->head->oprev = r;
    e->head = r;
    hp_unlock(lock);
    __atomic_fetch_add(&nowned, 1, __ATOMIC_RELAXED);
}

/* Take r (its stripe lock held) off its owner's list; the entry goes when
 * the list empties. */
static void
owner_unlink(struct hp_live_rec *r)
{
    struct owner_ent **ohs = __atomic_load_n(&oheads, __ATOMIC_ACQUIRE);
    uint32_t oi = owner_index(r->owner);
    hp_lock_t *lock = owner_lock(oi);
    struct owner_ent *dead = NULL;
    hp_lock(lock);
    struct owner_ent **ep = &ohs[oi];
    while (*ep != NULL && (*ep)->owner != r->owner)
        ep = &(*ep)->next;
    struct owner_ent *e = *ep;
    if (e != NULL) {
        if (r->oprev != NULL)
            r->oprev->onext = r->onext;
        else
            e->head = r->onext;
        if (r->onext != NULL)
            r->onext->oprev = r->oprev;
        if (e->head == NULL) {
            *ep = e->next;
            dead = e;
        }
    }
    hp_unlock(lock);
    r->onext = r->oprev = NULL;
    __atomic_fetch_sub(&nowned, 1, __ATOMIC_RELAXED);
    if (dead != NULL) {
        __atomic_fetch_sub(&nowners, 1, __ATOMIC_RELAXED);
        ent_free(dead);
    }
}

static void
set_bit(uint64_t *bits, uint32_t slot)
{
    __atomic_fetch_or(&bits[slot >> 6], 1ull << (slot & 63), __ATOMIC_RELAXED);
}

static void
clear_bit(uint64_t *bits, uint32_t slot)
{
    __atomic_fetch_and(&bits[slot >> 6], ~(1ull << (slot & 63)),
                       __ATOMIC_RELAXED);
}

/* Both under the stripe lock of ptr's slot. The coarse bit is set before
 * the fine one and cleared after it: a reader that sees the fine bit set
 * also sees the coarse one. */
static void
filter_inc(uintptr_t ptr)
{
    uint32_t c = hp_live_coarse_slot(ptr);
    uint16_t cv = __atomic_load_n(&hp_tables.coarse[c], __ATOMIC_RELAXED);
    if (cv != UINT16_MAX) {
        __atomic_store_n(&hp_tables.coarse[c], (uint16_t)(cv + 1),
                         __ATOMIC_RELAXED);
        if (cv == 0)
            set_bit(hp_tables.coarse_bits, c);
    }
    uint32_t slot = hp_live_filter_slot(ptr);
    uint8_t v = __atomic_load_n(&hp_tables.filter[slot], __ATOMIC_RELAXED);
    if (v == 255)
        return;
    __atomic_store_n(&hp_tables.filter[slot], (uint8_t)(v + 1),
                     __ATOMIC_RELAXED);
    if (v == 0)
        set_bit(hp_tables.bits, slot);
}

static void
filter_dec(uintptr_t ptr)
{
    uint32_t slot = hp_live_filter_slot(ptr);
    uint8_t v = __atomic_load_n(&hp_tables.filter[slot], __ATOMIC_RELAXED);
    if (v != 255 && v != 0) {
        __atomic_store_n(&hp_tables.filter[slot], (uint8_t)(v - 1),
                         __ATOMIC_RELAXED);
        if (v == 1)
            clear_bit(hp_tables.bits, slot);
    }
    uint32_t c = hp_live_coarse_slot(ptr);
    uint16_t cv = __atomic_load_n(&hp_tables.coarse[c], __ATOMIC_RELAXED);
    if (cv == UINT16_MAX || cv == 0)
        return;
    __atomic_store_n(&hp_tables.coarse[c], (uint16_t)(cv - 1),
                     __ATOMIC_RELAXED);
    if (cv == 1)
        clear_bit(hp_tables.coarse_bits, c);
}

static struct stripe *
stripe_of(uintptr_t ptr)
{
    return &stripes[head_index(ptr) % HP_LIVE_STRIPES];
}

void
hp_live_filter_pin(uintptr_t ptr)
{
    /* 255 is sticky: filter_inc and filter_dec leave it alone. Only the
     * bootstrap pool pins, before the allocator is known: a thread holding
     * a stripe lock is past that point, so no signal handler on it can
     * get here and wait for its own lock. */
    hp_lock_t *lock = &stripe_of(ptr)->lock;
    uint32_t slot = hp_live_filter_slot(ptr);
    uint32_t c = hp_live_coarse_slot(ptr);
    hp_lock(lock);
    __atomic_store_n(&hp_tables.coarse[c], UINT16_MAX, __ATOMIC_RELAXED);
    set_bit(hp_tables.coarse_bits, c);
    __atomic_store_n(&hp_tables.filter[slot], 255, __ATOMIC_RELAXED);
    set_bit(hp_tables.bits, slot);
    hp_unlock(lock);
}

void
hp_live_prefetch(uintptr_t ptr, bool filtered)
{
    uint32_t i = head_index(ptr);
    __builtin_prefetch(&hp_tables.heads[i], 1, 1);
    __builtin_prefetch(&stripes[i % HP_LIVE_STRIPES], 1, 1);
    if (filtered) {
        __builtin_prefetch(&hp_tables.filter[hp_live_filter_slot(ptr)], 1, 1);
        __builtin_prefetch(&hp_tables.coarse[hp_live_coarse_slot(ptr)], 1, 1);
    }
}

bool
hp_live_insert(const struct hp_live_rec *rec, struct hp_live_rec *stale,
               bool *had_stale)
{
    *had_stale = false;
    struct hp_live_rec **hs = hp_tables.heads;
    /* An owned record may need a new owner entry; get it before any table
     * lock so that running out of budget drops the sample cleanly. */
    struct owner_ent **ohs = NULL;
    struct owner_ent *spare = NULL;
    if (rec->owner != 0) {
        ohs = get_oheads();
        spare = ohs != NULL ? ent_alloc() : NULL;
        if (spare == NULL)
            return false;
    }
    struct hp_live_rec *r = rec_alloc();
    if (r == NULL) {
        if (spare != NULL)
            ent_free(spare);
        return false;
    }
    *r = *rec;
    r->onext = r->oprev = NULL;
    uint32_t i = head_index(rec->ptr);
    struct stripe *st = &stripes[i % HP_LIVE_STRIPES];
    hp_lock(&st->lock);
    struct hp_live_rec *old = NULL;
    for (struct hp_live_rec **pp = &hs[i]; *pp != NULL; pp = &(*pp)->next) {
        if ((*pp)->ptr == rec->ptr) {
            old = *pp;
            *pp = old->next;
            break;
        }
    }
    if (old != NULL && old->owner != 0)
        owner_unlink(old);
    r->next = hs[i];
    hs[i] = r;
    if (r->owner != 0)
        owner_link(ohs, r, &spare);
    bool was_filtered = old != NULL && old->filtered;
    if (r->filtered && !was_filtered)
        filter_inc(rec->ptr);
    else if (!r->filtered && was_filtered)
        filter_dec(rec->ptr);
    if (old == NULL)
        nlive_add(st, 1);
    hp_unlock(&st->lock);
    if (spare != NULL)
        ent_free(spare);
    if (old != NULL) {
        *stale = *old;
        *had_stale = true;
        rec_free(old);
    }
    return true;
}

/* Which record at an address remove_matching takes: any, one with the
 * given tag or owner, or a plain one (neither owner nor tag). */
enum match { MATCH_ANY, MATCH_TAG, MATCH_OWNER, MATCH_PLAIN };

static bool
matches(const struct hp_live_rec *r, enum match how, uintptr_t want)
{
    switch (how) {
    case MATCH_TAG:
        return r->tag == want;
    case MATCH_OWNER:
        return r->owner == want;
    case MATCH_PLAIN:
        return r->owner == 0 && r->tag == 0;
    default:
        return true;
    }
}

static bool
remove_matching(uintptr_t ptr, enum match how, uintptr_t want,
                struct hp_live_rec *out)
{
    struct hp_live_rec **hs = hp_tables.heads;
    uint32_t i = head_index(ptr);
    struct stripe *st = &stripes[i % HP_LIVE_STRIPES];
    struct hp_live_rec *found = NULL;
    hp_lock(&st->lock);
    for (struct hp_live_rec **pp = &hs[i]; *pp != NULL; pp = &(*pp)->next) {
        if ((*pp)->ptr == ptr) {
            if (!matches(*pp, how, want))
                break;
            found = *pp;
            *pp = found->next;
            break;
        }
    }
    if (found != NULL && found->owner != 0)
        owner_unlink(found);
    if (found != NULL) {
        if (found->filtered)
            filter_dec(ptr);
        nlive_add(st, -1);
    }
    hp_unlock(&st->lock);
    if (found == NULL)
        return false;
    *out = *found;
    out->next = out->onext = out->oprev = NULL;
    rec_free(found);
    return true;
}

bool
hp_live_remove(uintptr_t ptr, struct hp_live_rec *out)
{
    return remove_matching(ptr, MATCH_ANY, 0, out);
}

bool
hp_live_remove_tagged(uintptr_t ptr, uintptr_t tag, struct hp_live_rec *out)
{
    return remove_matching(ptr, MATCH_TAG, tag, out);
}

bool
hp_live_remove_owned(uintptr_t owner, struct hp_live_rec *out)
{
    struct owner_ent **ohs = __atomic_load_n(&oheads, __ATOMIC_ACQUIRE);
    if (ohs == NULL || owner == 0)
        return false;
    uint32_t oi = owner_index(owner);
    hp_lock_t *lock = owner_lock(oi);
    /*
     * The address table's lock comes before the owner lock, so the record
     * cannot be removed while the owner lock is held: note its address,
     * drop the lock and remove it by address (only if it still belongs to
     * this owner). A failure means a concurrent free took it; try again
     * with the new head.
     */
    for (int tries = 0; tries < HP_OWNER_MAX_RETRIES; tries++) {
        hp_lock(lock);
        struct owner_ent *e = ohs[oi];
        while (e != NULL && e->owner != owner)
            e = e->next;
        uintptr_t ptr = e != NULL ? e->head->ptr : 0;
        hp_unlock(lock);
        if (e == NULL)
            return false;
        if (remove_matching(ptr, MATCH_OWNER, owner, out))
            return true;
    }
    return false;
}

/* Up to max addresses of plain records on stripe s's chains. */
static unsigned
plain_on_stripe(uint32_t s, uintptr_t *ptrs, unsigned max)
{
    struct hp_live_rec **hs = hp_tables.heads;
    unsigned n = 0;
    hp_lock(&stripes[s].lock);
    for (uint32_t i = s; i < (1u << HP_LIVE_HEADS_LG) && n < max;
         i += HP_LIVE_STRIPES)
        for (struct hp_live_rec *r = hs[i]; r != NULL && n < max; r = r->next)
            if (matches(r, MATCH_PLAIN, 0))
                ptrs[n++] = r->ptr;
    hp_unlock(&stripes[s].lock);
    return n;
}

uint64_t
hp_live_remove_plain(void (*fn)(const struct hp_live_rec *, void *), void *arg)
{
    /* Addresses noted under the stripe lock, removed one by one as a free
     * would: fn runs with no lock of this file held. */
    enum { BATCH = 64 };
    uintptr_t ptrs[BATCH];
    uint64_t removed = 0;
    for (uint32_t s = 0; s < HP_LIVE_STRIPES; s++) {
        unsigned n;
        for (int round = 0; round < HP_DRAIN_MAX_ROUNDS &&
                            (n = plain_on_stripe(s, ptrs, BATCH)) > 0;
             round++) {
            for (unsigned k = 0; k < n; k++) {
                struct hp_live_rec out;
                if (remove_matching(ptrs[k], MATCH_PLAIN, 0, &out)) {
                    fn(&out, arg);
                    removed++;
                }
            }
        }
    }
    return removed;
}

uint64_t
hp_live_owned_count(void)
{
    return __atomic_load_n(&nowned, __ATOMIC_RELAXED);
}

uint64_t
hp_live_owner_count(void)
{
    return __atomic_load_n(&nowners, __ATOMIC_RELAXED);
}

uint64_t
hp_tables_resident(void)
{
    /* The whole object, padding included: on a huge page it is all
     * resident. */
    return hp_resident_bytes(&hp_tables, sizeof hp_tables);
}

uint64_t
hp_live_count(void)
{
    uint64_t n = 0;
    for (int s = 0; s < HP_LIVE_STRIPES; s++)
        n += __atomic_load_n(&stripes[s].nlive, __ATOMIC_RELAXED);
    return n;
}

void
hp_live_foreach(void (*fn)(const struct hp_live_rec *, void *), void *arg)
{
    struct hp_live_rec **hs = hp_tables.heads;
    /* Stripe by stripe: every chain head is read under its lock (the
     * chains are written under it, without atomics). */
    for (uint32_t s = 0; s < HP_LIVE_STRIPES; s++) {
        hp_lock(&stripes[s].lock);
        for (uint32_t i = s; i < (1u << HP_LIVE_HEADS_LG); i += HP_LIVE_STRIPES)
            for (struct hp_live_rec *r = hs[i]; r != NULL; r = r->next)
                fn(r, arg);
        hp_unlock(&stripes[s].lock);
    }
}

void
hp_live_prefork(void)
{
    for (int i = 0; i < HP_LIVE_STRIPES; i++)
        hp_lock(&stripes[i].lock);
    for (int i = 0; i < HP_OWNER_STRIPES; i++)
        hp_lock(&ostripes[i]);
    for (int i = 0; i < HP_LANES; i++)
        hp_lock(&rec_lanes[i].lock);
    hp_lock(&freelist_lock);
}

void
hp_live_postfork_parent(void)
{
    hp_unlock(&freelist_lock);
    for (int i = HP_LANES - 1; i >= 0; i--)
        hp_unlock(&rec_lanes[i].lock);
    for (int i = HP_OWNER_STRIPES - 1; i >= 0; i--)
        hp_unlock(&ostripes[i]);
    for (int i = HP_LIVE_STRIPES - 1; i >= 0; i--)
        hp_unlock(&stripes[i].lock);
}

void
hp_live_postfork_child(void)
{
    hp_lock_init(&freelist_lock);
    for (int i = 0; i < HP_LANES; i++)
        hp_lock_init(&rec_lanes[i].lock);
    for (int i = 0; i < HP_LIVE_STRIPES; i++)
        hp_lock_init(&stripes[i].lock);
    for (int i = 0; i < HP_OWNER_STRIPES; i++)
        hp_lock_init(&ostripes[i]);
}
