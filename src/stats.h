/*
 * Process-wide counters heapprof reports about itself in every profile.
 */
#ifndef HP_STATS_H
#define HP_STATS_H

#include "internal.h"

struct hp_stats {
    uint64_t samples;         /* allocations sampled and recorded */
    uint64_t samples_dropped; /* sampled but not recorded (budget) */
    uint64_t frees_matched;   /* frees of recorded blocks */
};

HP_HIDDEN extern struct hp_stats hp_stats;

static inline void
hp_stat_add(uint64_t *counter, int64_t delta)
{
    __atomic_fetch_add(counter, (uint64_t)delta, __ATOMIC_RELAXED);
}

static inline uint64_t
hp_stat_get(const uint64_t *counter)
{
    return __atomic_load_n(counter, __ATOMIC_RELAXED);
}

#endif
