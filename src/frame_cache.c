/*
 * The frame cache (see frame_cache.h): rules derived from what libunwind
 * saw, in two open-addressed tables read and filled without locks.
 */
#define _GNU_SOURCE /* REG_RIP */
#include "frame_cache.h"

#include "elf_util.h"

#include <link.h>
#include <sys/mman.h>
#include <ucontext.h>

#define TABLE_SIZE (1u << HP_FRAME_TABLE_LG)

/* Kind NONE with a mark: an address whose frames disagreed. */
#define RULE_NEVER (1u << 2)

/* The shared table is this array until hp_frame_cache_share maps one. */
static struct hp_frame_entry shared_until_mapped[TABLE_SIZE];
struct hp_frame_entry *hp_frame_shared = shared_until_mapped;
struct hp_frame_entry hp_frame_private[TABLE_SIZE];
bool hp_frame_use_shared = true;
static uint64_t filled, refused;

/* The executable segments of the objects loaded at start, whose rules
 * go to the shared table. */
#define START_RANGES 64
static struct {
    uintptr_t lo, hi;
} start_ranges[START_RANGES];
static int nstart_ranges;

uint32_t
hp_frame_lookup_probe(const struct hp_frame_entry *table, uintptr_t ip,
                      uint32_t slot)
{
    for (int i = 1; i < HP_FRAME_PROBES; i++) {
        uint32_t s = (slot + (uint32_t)i) & (TABLE_SIZE - 1);
        uintptr_t seen = __atomic_load_n(&table[s].ip, __ATOMIC_ACQUIRE);
        if (seen == ip)
            return hp_frame_entry_rule(&table[s], ip);
        if (seen == 0)
            break;
    }
    return HP_FRAME_NONE;
}

static inline uint64_t
word_of(uintptr_t ip, uint32_t rule)
{
    return (uint64_t)rule | (uint64_t)(uint32_t)ip << 32;
}

#if defined(__x86_64__)
/* The rbp part of frame f's rule: its slot, or -1 if f's effect on rbp
 * has no cacheable shape. */
static int
rbp_slot_of(const struct hp_frame_seen *f, const struct hp_frame_seen *caller,
            uintptr_t cfa)
{
    if (caller->rbp_loc == 0 || caller->rbp_loc == f->rbp_loc)
        return caller->rbp == f->rbp ? 0 : -1; /* f left rbp alone */
    uintptr_t below = cfa - caller->rbp_loc;
    if (caller->rbp_loc >= cfa || below % 8 != 0 || below / 8 > 0xff ||
        caller->rbp_loc < f->sp ||
        *(const uintptr_t *)caller->rbp_loc != caller->rbp)
        return -1;
    return (int)(below / 8);
}

uint32_t
hp_frame_rule_of(const struct hp_frame_seen *f,
                 const struct hp_frame_seen *caller)
{
    if (f->signal) {
        /* __restore_rt: the kernel's frame, sp at its ucontext. */
        const ucontext_t *uc = (const ucontext_t *)f->sp;
        const greg_t *g = uc->uc_mcontext.gregs;
        return (uintptr_t)g[REG_RIP] == caller->ip &&
                       (uintptr_t)g[REG_RSP] == caller->sp &&
                       (uintptr_t)g[REG_RBP] == caller->rbp
                   ? HP_FRAME_SIGNAL
                   : HP_FRAME_NONE;
    }
    uintptr_t cfa = caller->sp; /* x86-64: the caller's sp is the CFA */
    if (!f->cacheable || cfa <= f->sp || cfa % 8 != 0 ||
        cfa - f->sp > HP_FRAME_MAX_OFFSET ||
        *(const uintptr_t *)(cfa - 8) != caller->ip)
        return HP_FRAME_NONE;
    int slot = rbp_slot_of(f, caller, cfa);
    if (slot < 0)
        return HP_FRAME_NONE;
    /* A frame-pointer frame: its rbp is CFA - 16, where it saved the
     * caller's; the CFA then does not depend on how far rsp moved. */
    if (slot == 2 && f->rbp + 16 == cfa)
        return HP_FRAME_RBP | 2u << 2 | 16u << 10;
    /* rbp points at the saved rbp, yet not at CFA - 16: GCC's realigned
     * stack (the frame pointer set after rounding rsp down), whose CFA
     * moves with the caller's alignment. */
    if (slot != 0 && f->rbp == caller->rbp_loc)
        return HP_FRAME_NONE;
    return HP_FRAME_RSP | (uint32_t)slot << 2 | (uint32_t)(cfa - f->sp) << 10;
}

#else
uint32_t
hp_frame_rule_of(const struct hp_frame_seen *f,
                 const struct hp_frame_seen *caller)
{
    (void)f;
    (void)caller;
    return HP_FRAME_NONE; /* the rules above are x86-64's */
}
#endif

static bool
loaded_at_start(uintptr_t ip)
{
    int n = __atomic_load_n(&nstart_ranges, __ATOMIC_ACQUIRE);
    for (int i = 0; i < n; i++)
        if (ip >= start_ranges[i].lo && ip < start_ranges[i].hi)
            return true;
    return false;
}

/* Lock-free, also across processes: a slot is claimed by its ip with a
 * compare-and-swap, then its word is published. */
void
hp_frame_learn(uintptr_t ip, uint32_t rule)
{
    if (ip == 0 || rule == HP_FRAME_NONE)
        return;
    struct hp_frame_entry *table =
        __atomic_load_n(&hp_frame_use_shared, __ATOMIC_RELAXED) &&
                loaded_at_start(ip)
            ? __atomic_load_n(&hp_frame_shared, __ATOMIC_ACQUIRE)
            : hp_frame_private;
    uint32_t s = hp_frame_slot(ip);
    for (int i = 0; i < HP_FRAME_PROBES; i++, s = (s + 1) & (TABLE_SIZE - 1)) {
        struct hp_frame_entry *e = &table[s];
        uintptr_t seen = __atomic_load_n(&e->ip, __ATOMIC_ACQUIRE);
        if (seen == 0 &&
            __atomic_compare_exchange_n(&e->ip, &seen, ip, false,
                                        __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
            __atomic_store_n(&e->word, word_of(ip, rule), __ATOMIC_RELEASE);
            __atomic_fetch_add(&filled, 1, __ATOMIC_RELAXED);
            return;
        }
        if (seen != ip)
            continue;
        uint32_t old = (uint32_t)__atomic_load_n(&e->word, __ATOMIC_ACQUIRE);
        if (old == 0) /* emptied by a flush while it was claimed */
            __atomic_store_n(&e->word, word_of(ip, rule), __ATOMIC_RELEASE);
        else if (old != rule && old != RULE_NEVER) {
            /* Two shapes at one address (a realigned stack, code
             * replaced without dlclose): never trust it again. */
            __atomic_store_n(&e->word, word_of(ip, RULE_NEVER),
                             __ATOMIC_RELEASE);
            __atomic_fetch_add(&refused, 1, __ATOMIC_RELAXED);
        }
        return;
    }
}

static void
empty(struct hp_frame_entry *table)
{
    for (uint32_t s = 0; s < TABLE_SIZE; s++) {
        if (__atomic_load_n(&table[s].ip, __ATOMIC_RELAXED) == 0)
            continue;
        __atomic_store_n(&table[s].ip, 0, __ATOMIC_RELEASE);
        __atomic_store_n(&table[s].word, 0, __ATOMIC_RELEASE);
    }
}

void
hp_frame_cache_unloaded(uintptr_t lo, uintptr_t hi)
{
    empty(hp_frame_private);
    int n = __atomic_load_n(&nstart_ranges, __ATOMIC_ACQUIRE);
    for (int i = 0; i < n; i++)
        if (lo < start_ranges[i].hi && start_ranges[i].lo < hi)
            /* The shared rules for it stay right for the processes that
             * still have it; this one stops reading them. */
            __atomic_store_n(&hp_frame_use_shared, false, __ATOMIC_RELAXED);
}

static int
note_start_object(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    (void)data;
    struct hp_exec_segs seg;
    hp_elf_phdr_exec_segs(info, &seg);
    for (int i = 0; i < seg.n; i++) {
        if (nstart_ranges == START_RANGES)
            return 1;
        start_ranges[nstart_ranges].lo = (uintptr_t)seg.start[i];
        start_ranges[nstart_ranges].hi = (uintptr_t)seg.limit[i];
        nstart_ranges++;
    }
    return 0;
}

void
hp_frame_cache_share(void)
{
    /* Before main: no other thread walks the objects or the table. */
    dl_iterate_phdr(note_start_object, NULL);
    void *at = mmap(NULL, sizeof shared_until_mapped, PROT_READ | PROT_WRITE,
                    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (at != MAP_FAILED) /* else the table stays this process's own */
        __atomic_store_n(&hp_frame_shared, (struct hp_frame_entry *)at,
                         __ATOMIC_RELEASE);
}

void
hp_frame_cache_postfork_child(void)
{
    __atomic_store_n(&filled, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&refused, 0, __ATOMIC_RELAXED);
}

void
hp_frame_cache_counts(uint64_t *filled_out, uint64_t *refused_out)
{
    *filled_out = __atomic_load_n(&filled, __ATOMIC_RELAXED);
    *refused_out = __atomic_load_n(&refused, __ATOMIC_RELAXED);
}
