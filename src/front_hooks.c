/*
 * Custom-allocator hooks: heapprof_on_alloc/heapprof_on_free, realloc,
 * owner-aware allocation and the bulk free of arenas and pools. A pool is an owner address; its sampled blocks
 * are chained in the live table (live.c), so destroying a pool touches only
 * what was sampled in it. Everything here runs on the caller's thread,
 * possibly under the caller's allocator lock: only heapprof's leaf locks
 * are taken and nothing allocates outside ialloc.
 */
#include "heapprof.h"
#include "internal.h"
#include "record.h"

HP_FRONT void
heapprof_on_alloc(void *ptr, size_t size)
{
    if (ptr == NULL)
        return;
    uint64_t rate = hp_sample_check(size);
    if (HP_UNLIKELY(rate != 0))
        hp_record_alloc(ptr, size, rate);
}

void
heapprof_on_free(void *ptr)
{
    if (ptr != NULL)
        hp_record_free_check(ptr);
}

HP_FRONT void
heapprof_on_alloc_owned(void *ptr, size_t size, const void *owner)
{
    if (ptr == NULL)
        return;
    uint64_t rate = hp_sample_check(size);
    if (HP_UNLIKELY(rate != 0))
        hp_record_alloc_ex(ptr, size, rate, (uintptr_t)owner, 0);
}

/*
 * The old record leaves the table before the new one is inserted: with
 * new_ptr == old_ptr the new record would otherwise find the old one as a
 * "stale" entry, which would be accounted right but counted as a missed
 * free.
 */
static HP_FRONT void
realloc_common(void *old_ptr, void *new_ptr, size_t size, uintptr_t owner)
{
    if (new_ptr == NULL) {
        if (size == 0 && old_ptr != NULL)
            hp_record_free_check(old_ptr);
        return;
    }
    if (old_ptr != NULL)
        hp_record_free_check(old_ptr);
    uint64_t rate = hp_sample_check(size);
    if (HP_UNLIKELY(rate != 0))
        hp_record_alloc_ex(new_ptr, size, rate, owner, 0);
}

HP_FRONT void
heapprof_on_realloc(void *old_ptr, void *new_ptr, size_t size)
{
    realloc_common(old_ptr, new_ptr, size, 0);
}

HP_FRONT void
heapprof_on_realloc_owned(void *old_ptr, void *new_ptr, size_t size,
                          const void *owner)
{
    realloc_common(old_ptr, new_ptr, size, (uintptr_t)owner);
}

void
heapprof_on_free_bulk(const void *owner)
{
    if (owner != NULL)
        (void)hp_record_free_owner((uintptr_t)owner);
}
