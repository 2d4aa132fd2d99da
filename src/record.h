/*
 * Recording: the glue between the allocator front ends and the tables.
 * Front ends call hp_sample_check() (inline) before an allocation and, if
 * it returned a rate, hp_record_alloc() after it succeeded; before a block
 * is released they call hp_record_free_check(). Both preserve errno and run
 * heapprof's work inside the reentrancy fence.
 */
#ifndef HP_RECORD_H
#define HP_RECORD_H

#include "internal.h"
#include "live.h"
#include "sampler.h"
#include "stack.h"

/* Record a sampled allocation of size bytes at ptr, weighted with rate. */
HP_HIDDEN void hp_record_alloc(void *ptr, size_t size, uint64_t rate);
/* The same with an owner (0 = none; indexed for hp_record_free_owner) and
 * a front end's private tag (0 = none; see hp_record_take_tagged). */
HP_HIDDEN void hp_record_alloc_ex(void *ptr, size_t size, uint64_t rate,
                                  uintptr_t owner, uintptr_t tag);
/* A block of the sample range (front_preload.c): its record is found by
 * address alone, so the filter is not told of it; its free must come to
 * hp_record_free_ranged, which says whether it had a record. The stack is
 * walked from `from` (stack.h; NULL: from the recording's own frame). */
HP_HIDDEN void hp_record_alloc_ranged(void *ptr, size_t size, uint64_t rate,
                                      const struct hp_stack_from *from);
HP_HIDDEN bool hp_record_free_ranged(void *ptr);
/* Like hp_record_take, but only a record carrying tag. */
HP_HIDDEN bool hp_record_take_tagged(void *ptr, uintptr_t tag,
                                     struct hp_live_rec *out);
/* Account every live record of owner as freed: O(records of owner).
 * Returns how many there were. Never calls malloc; takes only heapprof's
 * leaf locks, one at a time. */
HP_HIDDEN uint64_t hp_record_free_owner(uintptr_t owner);
/* Account every plain live record (the malloc family's, heapprof_on_alloc's;
 * not those with an owner or a tag) as freed, for a front that can no
 * longer see their frees. Returns how many. Never calls malloc. */
HP_HIDDEN uint64_t hp_record_forget_plain(void);
/* Slow part of the free check: ptr passed the filter. */
HP_HIDDEN void hp_record_free(void *ptr);
/* Slow part of hp_record_take: ptr passed the filter. */
HP_HIDDEN bool hp_record_take_slow(void *ptr, struct hp_live_rec *out);
/* Account a taken record as freed, or put it back. */
HP_HIDDEN void hp_record_commit_free(const struct hp_live_rec *rec);
HP_HIDDEN void hp_record_restore(const struct hp_live_rec *rec);
/* The program changed a thread's alternate signal stack (front_signal.c);
 * and, once, that every such change is seen, so the place of each thread's
 * alternate stack can be kept until the next one. Async-signal-safe. */
HP_HIDDEN void hp_record_altstack_changed(void);
HP_HIDDEN void hp_record_altstack_tracked(void);
/* Reads the calling thread's alternate stack now, while it may: before a
 * seccomp filter (front_sandbox.c), after which a sample that would need
 * to read it is skipped. */
HP_HIDDEN void hp_record_altstack_refresh(void);
/* In a fork child: frees the frame buffers that threads which do not exist
 * there held. */
HP_HIDDEN void hp_record_postfork_child(void);

/* Remove ptr's record without accounting it (realloc keeps it until the
 * real realloc succeeded). True if there was one. The filter test is
 * inline so that an unsampled block costs no call. */
static inline bool
hp_record_take(void *ptr, struct hp_live_rec *out)
{
    return HP_UNLIKELY(hp_live_maybe(ptr)) && hp_record_take_slow(ptr, out);
}

static inline void
hp_record_free_check(void *ptr)
{
    if (HP_UNLIKELY(hp_live_maybe(ptr)))
        hp_record_free(ptr);
}

#endif
