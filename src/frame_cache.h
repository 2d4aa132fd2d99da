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
 * Lock-free to read (one table of two-word entries, published with
 * release stores); filled under a try-lock (a thread that finds it taken
 * does not wait); emptied when an object is unloaded.
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
/* The outermost frame: the walk ends here. With HP_FRAME_SIGNAL_MARK (an
 * offset of 1), the kernel's signal frame instead: the interrupted code's
 * registers are in the ucontext at its sp. */
#define HP_FRAME_END 3u
#define HP_FRAME_KIND(r) ((r)&3u)
#define HP_FRAME_RBP_SLOT(r) (((r) >> 2) & 0xffu)
#define HP_FRAME_CFA_OFFSET(r) ((uintptr_t)((r) >> 10))
#define HP_FRAME_MAX_OFFSET ((1u << 22) - 1)
#define HP_FRAME_SIGNAL_MARK (1u << 10)
#define HP_FRAME_SIGNAL (HP_FRAME_END | HP_FRAME_SIGNAL_MARK)

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

/* The table, for the inline lookup: word = rule | (low 32 bits of ip)
 * << 32; a reader that matched ip checks that tag too, since the entry may
 * have been emptied and refilled for another address between its loads. */
#define HP_FRAME_TABLE_LG 13 /* 8192 entries, 128 KiB, touched as filled */
#define HP_FRAME_PROBES 8
struct hp_frame_entry {
    uintptr_t ip; /* 0 = empty */
    uint64_t word;
};
HP_HIDDEN extern struct hp_frame_entry hp_frame_table[1u << HP_FRAME_TABLE_LG];

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
    uint64_t w = __atomic_load_n(&e->word, __ATOMIC_RELAXED);
    return (uint32_t)(w >> 32) == (uint32_t)ip ? (uint32_t)w : HP_FRAME_NONE;
}

/* Past the first slot (out of line: most addresses sit in their first). */
HP_HIDDEN uint32_t hp_frame_lookup_probe(uintptr_t ip, uint32_t slot);

/* The rule of the frame at ip; HP_FRAME_NONE if not cached. */
static inline uint32_t
hp_frame_lookup(uintptr_t ip)
{
    uint32_t s = hp_frame_slot(ip);
    uintptr_t seen = __atomic_load_n(&hp_frame_table[s].ip, __ATOMIC_ACQUIRE);
    if (__builtin_expect(seen == ip, 1))
        return hp_frame_entry_rule(&hp_frame_table[s], ip);
    return seen == 0 ? HP_FRAME_NONE : hp_frame_lookup_probe(ip, s);
}

/* Remembers ip's rule (HP_FRAME_NONE is not stored). An address seen with
 * two different rules is never cached again. Skipped when another thread
 * is filling the table or the probe sequence is full. */
HP_HIDDEN void hp_frame_learn(uintptr_t ip, uint32_t rule);

/* Forgets every rule: code was unloaded, and an address may now hold
 * other code. Waits for a filling thread (which holds no other lock). */
HP_HIDDEN void hp_frame_cache_flush(void);

/* Fork child: the fill lock's holder may not exist there. */
HP_HIDDEN void hp_frame_cache_postfork_child(void);

/* Entries filled and rules refused (reported in profile comments). */
HP_HIDDEN void hp_frame_cache_counts(uint64_t *filled, uint64_t *refused);

#endif
