/*
 * Delta profiles: the arithmetic behind seconds=N (Go's serveDeltaProfile:
 * p1 - p0) and /delta_heap (godeltaprof: alloc columns since the previous
 * scrape, in-use columns absolute). The delta_heap state is process-wide,
 * keyed by bucket (buckets are never freed) and locked.
 */
#ifndef HP_DELTA_H
#define HP_DELTA_H

#include "internal.h"
#include "profile.h"

/* Column masks for hp_http_delta(). */
#define HP_DELTA_ALLOC 0x3u /* alloc_objects, alloc_space */
#define HP_DELTA_ALL 0xfu   /* all four (Go's seconds=N) */

/*
 * p1 -= p0 for the columns in mask, matching entries by key; with
 * HP_DELTA_ALL, keys only in p0 are appended negated. Entries whose four
 * values end up zero are dropped. Sorts p0->e by key. 0 or HEAPPROF_ENOMEM.
 */
HP_HIDDEN int hp_http_delta(struct hp_profile_data *p1,
                            struct hp_profile_data *p0, unsigned mask);

/*
 * godeltaprof's delta_heap step: alloc columns of d become the change since
 * the previous call (the first call sees everything), in-use columns stay
 * absolute, all-zero entries are dropped. The previous state is
 * process-wide and locked. 0 or HEAPPROF_ENOMEM (state kept).
 */
HP_HIDDEN int hp_http_delta_heap(struct hp_profile_data *d);

/*
 * Collect the profile into *d and take the delta_heap step on it under one
 * lock, so two scrapers racing each other still see every allocation
 * exactly once. Lock order: the delta lock, then the profile module's.
 * 0 or an error (d then holds whatever must still be freed).
 */
HP_HIDDEN int hp_delta_heap_collect(struct hp_profile_data *d);

/* Forget the delta_heap state (tests). */
HP_HIDDEN void hp_http_reset(void);

/* Fork child: re-initialise the lock another thread may have held; the
 * parent's state stays valid (same buckets). */
HP_HIDDEN void hp_delta_postfork_child(void);

#endif
