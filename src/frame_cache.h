/*
 * The frame cache: for a code address where a frame can stand (a return
 * address, or the capture's own point), how to find the caller's frame
 * (x86-64). libunwind answers that by reading DWARF call-frame tables;
 * stack.c asks it once per address and keeps the answer here, so a warm
 * sample walks its stack with two loads per frame and never enters
 * libunwind (whose cached walk costs about 85 instructions a frame).
 *
 * Only the shapes an x86-64 frame has where its CFA (the caller's stack
 * pointer) is a register plus a constant are kept: CFA = rsp + k, or
 * CFA = rbp + 16 with the caller's rbp saved at CFA - 16; the return
 * address at CFA - 8; the caller's rbp either untouched or saved at a
 * fixed distance below the CFA. And the kernel's signal frame, whose
 * caller's registers are in the ucontext at its sp. Anything else
 * (realigned stacks, frames without unwind tables, two different answers
 * for one address) is never cached, and a walk that meets it goes to
 * libunwind.
 *
 * Lock-free to read and to fill (two-word entries: a slot is claimed by
 * compare-and-swap on the address, then its rule published), also across
 * the processes of a fork tree that share a table; emptied when an object
 * is unloaded.
 */
#ifndef HP_FRAME_CACHE_H
#define HP_FRAME_CACHE_H

#include "internal.h"

/* A rule, 32 bits: kind in the low 2 bits, the saved rbp's distance
 * below the CFA in 8-byte units in the next 8 (0 = not saved by this
 * frame), the CFA's offset from its base register in the top 22. */
#define HP_FRAME_NONE 0u /* not known: ask libunwind */
#define HP_FRAME_RSP 1u  /* CFA = rsp + offset */
#define HP_FRAME_RBP 2u  /* CFA = rbp + offset (16) */
/* The outermost frame: the walk ends here. With an offset of 1
 * (HP_FRAME_SIGNAL), the kernel's signal frame instead: the interrupted
 * code's registers are in the ucontext at its sp. */
#define HP_FRAME_END 3u
#define HP_FRAME_KIND(r) ((r)&3u)
#define HP_FRAME_RBP_SLOT(r) (((r) >> 2) & 0xffu)
#define HP_FRAME_CFA_OFFSET(r) ((uintptr_t)((r) >> 10))
#define HP_FRAME_MAX_OFFSET ((1u << 22) - 1)
#define HP_FRAME_SIGNAL (HP_FRAME_END | 1u << 10)

/* One frame as libunwind saw it: where it stands and its registers. */
struct hp_frame_seen {
    uintptr_t ip, sp, rbp;
    uintptr_t rbp_loc; /* where this frame's rbp value is stored, 0 = in
                          the register (libunwind's save location) */
    bool cacheable;    /* has unwind tables */
    bool signal;       /* the kernel's signal frame (__restore_rt) */
};

/*
 * The rule for frame `f` whose caller is `caller` (both as libunwind
 * stepped them), or HP_FRAME_NONE if it has no cacheable shape. Reads the
 * return address and saved rbp the rule names, to check it reproduces the
 * caller: they are in live frames of this thread's stack.
 */
HP_HIDDEN uint32_t hp_frame_rule_of(const struct hp_frame_seen *f,
                                    const struct hp_frame_seen *caller);

/* The tables, for the inline lookup: word = rule | (low 32 bits of ip)
 * << 32; a reader that matched ip checks that tag too, since the entry may
 * have been emptied and refilled for another address between its loads. */
#define HP_FRAME_TABLE_LG 13 /* 8192 entries, 128 KiB, touched as filled */
#define HP_FRAME_PROBES 8
struct hp_frame_entry {
    uintptr_t ip; /* 0 = empty */
    uint64_t word;
};
/* Rules for the code of the objects loaded at start: shared with every
 * process forked from this one (hp_frame_cache_share), since they run the
 * same code at the same addresses; and rules for the rest (objects loaded
 * later, which a dlclose may replace), this process's own. */
HP_HIDDEN extern struct hp_frame_entry *hp_frame_shared;
HP_HIDDEN extern struct hp_frame_entry
    hp_frame_private[1u << HP_FRAME_TABLE_LG];
/* False once an object loaded at start was unloaded (by a dlclose of an
 * object a constructor had dlopen'ed): its addresses may hold other code
 * here, while the shared rules still describe the old code elsewhere. */
HP_HIDDEN extern bool hp_frame_use_shared;

static inline uint32_t
hp_frame_slot(uintptr_t ip)
{
    return (uint32_t)(((uint64_t)ip * 0x9e3779b97f4a7c15ull) >>
                      (64 - HP_FRAME_TABLE_LG));
}

/* The rule in an entry that holds ip, HP_FRAME_NONE if it changed. */
static inline uint32_t
hp_frame_entry_rule(const struct hp_frame_entry *e, uintptr_t ip)
{
    uint64_t w = __atomic_load_n(&e->word, __ATOMIC_ACQUIRE);
    return (uint32_t)(w >> 32) == (uint32_t)ip ? (uint32_t)w : HP_FRAME_NONE;
}

/* Past the first slot (out of line: most addresses sit in their first). */
HP_HIDDEN uint32_t hp_frame_lookup_probe(const struct hp_frame_entry *table,
                                         uintptr_t ip, uint32_t slot);

static inline uint32_t
hp_frame_lookup_in(const struct hp_frame_entry *table, uintptr_t ip, uint32_t s)
{
    uintptr_t seen = __atomic_load_n(&table[s].ip, __ATOMIC_ACQUIRE);
    if (__builtin_expect(seen == ip, 1))
        return hp_frame_entry_rule(&table[s], ip);
    return seen == 0 ? HP_FRAME_NONE : hp_frame_lookup_probe(table, ip, s);
}

/* The shared table a walk reads (hp_frame_lookup's first argument), or
 * NULL when this process does not read it. */
static inline const struct hp_frame_entry *
hp_frame_shared_table(void)
{
    return __atomic_load_n(&hp_frame_use_shared, __ATOMIC_RELAXED)
               ? __atomic_load_n(&hp_frame_shared, __ATOMIC_ACQUIRE)
               : NULL;
}

/* The rule of the frame at ip; HP_FRAME_NONE if not cached. */
static inline uint32_t
hp_frame_lookup(const struct hp_frame_entry *shared, uintptr_t ip)
{
    uint32_t s = hp_frame_slot(ip);
    if (shared != NULL) {
        uint32_t rule = hp_frame_lookup_in(shared, ip, s);
        if (rule != HP_FRAME_NONE)
            return rule;
    }
    return hp_frame_lookup_in(hp_frame_private, ip, s);
}

/* Remembers ip's rule (HP_FRAME_NONE is not stored), in the shared table
 * if ip is in an object loaded at start. An address seen with two
 * different rules is never cached again. Skipped when ip's probe sequence
 * is full. */
HP_HIDDEN void hp_frame_learn(uintptr_t ip, uint32_t rule);

/* An object at [lo, hi) was unloaded: its addresses may now hold other
 * code. Forgets this process's own rules, and stops reading the shared
 * ones if the object was loaded at start. */
HP_HIDDEN void hp_frame_cache_unloaded(uintptr_t lo, uintptr_t hi);

/* Once, before main, when heapprof is the process's malloc (so was loaded
 * at start): notes the objects loaded now and maps the shared table, which
 * fork children inherit. */
HP_HIDDEN void hp_frame_cache_share(void);

/* Fork child: its counts start from zero. */
HP_HIDDEN void hp_frame_cache_postfork_child(void);

/* Entries this process filled and rules it refused (reported in profile
 * comments). */
HP_HIDDEN void hp_frame_cache_counts(uint64_t *filled, uint64_t *refused);

#endif
