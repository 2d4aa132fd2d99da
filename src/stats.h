/*
 * Process-wide counters heapprof reports about itself in every profile.
 */
#ifndef HP_STATS_H
#define HP_STATS_H

#include <stdalign.h>

#include "internal.h"

/* One cache line with every counter a sample updates (peak.c's too), so
 * a sample that finds them cold misses once, and the sampled paths can
 * start that miss early (hp_stats_prefetch). */
struct hp_stats {
    alignas(64) uint64_t samples; /* allocations sampled and recorded */
    uint64_t samples_dropped;     /* sampled but not recorded (budget) */
    uint64_t frees_matched;       /* frees of recorded blocks */
    /* peak.c's, all atomic: */
    uint64_t inuse;        /* estimate of in-use bytes */
    uint64_t highest;      /* the most inuse has been */
    uint64_t captured;     /* inuse at the last peak capture */
    uint64_t peak_trigger; /* inuse that asks for a peak snapshot;
                                 UINT64_MAX = none asked (peak.c) */
};
_Static_assert(sizeof(struct hp_stats) == 64, "one cache line");

HP_HIDDEN extern struct hp_stats hp_stats;

static inline void
hp_stat_add(uint64_t *counter, int64_t delta)
{
    __atomic_fetch_add(counter, (uint64_t)delta, __ATOMIC_RELAXED);
}

static inline void
hp_stats_prefetch(void)
{
    __builtin_prefetch(&hp_stats, 1, 1);
}

static inline uint64_t
hp_stat_get(const uint64_t *counter)
{
    return __atomic_load_n(counter, __ATOMIC_RELAXED);
}

#endif
