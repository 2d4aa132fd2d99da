/*
 * ialloc: heapprof's own mmap-backed memory for long-lived tables (buckets,
 * live-block records). Never calls malloc, so it is safe on the hook path.
 * Everything it hands out is counted against the metadata budget.
 */
#ifndef HP_IALLOC_H
#define HP_IALLOC_H

#include "internal.h"

/* Zeroed memory, 16-byte aligned (64-byte aligned from 64 bytes up), or
 * NULL once the budget would be passed. */
HP_HIDDEN void *hp_ialloc(size_t size);
/* Large zeroed region mapped on its own (tables); counted. NULL on failure. */
HP_HIDDEN void *hp_ialloc_region(size_t size);
/* Bytes mapped by ialloc so far (the profiler's own metadata). */
HP_HIDDEN uint64_t hp_ialloc_mapped(void);
/* Resident bytes of the pages under [start, start + len) (mincore), for
 * heapprof's static tables, whose pages exist only once touched. */
HP_HIDDEN uint64_t hp_resident_bytes(const void *start, size_t len);
/* Count size bytes held outside ialloc (a seconds=N request's copy of the
 * profile) against the budget while they live: false, and nothing
 * counted, when they would pass it. Uncharge with the same size. */
HP_HIDDEN bool hp_ialloc_charge(uint64_t size);
HP_HIDDEN void hp_ialloc_uncharge(uint64_t size);
/* The budget until configuration sets one (HEAPPROF_MAX_MEMORY's default). */
#define HP_DEFAULT_MAX_MEMORY ((uint64_t)64 << 20)
HP_HIDDEN void hp_ialloc_set_budget(uint64_t bytes);
HP_HIDDEN uint64_t hp_ialloc_budget(void);
HP_HIDDEN void hp_ialloc_prefork(void);
HP_HIDDEN void hp_ialloc_postfork_parent(void);
HP_HIDDEN void hp_ialloc_postfork_child(void);

#endif
