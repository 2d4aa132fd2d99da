/*
 * The sample range: one reserved stretch of address space where the malloc
 * front puts the blocks it samples (GWP-ASan's design). "Was this block
 * sampled?" is then two compares against the range's bounds, which free()
 * reads from the cache line that holds the next allocator's functions: no
 * load that can miss, whatever the heap looks like. A block the range gave
 * out never reaches the next allocator, nor the other way round.
 *
 * Inside, 64 KiB chunks: small blocks (up to 32 KiB) in power-of-two slots
 * packed into runs of one chunk; larger ones in slots of whole chunks
 * (four sizes per doubling), whose pages are returned to the kernel when
 * freed beyond a small resident cache. Only pages a block touched are
 * resident, so a sampled block costs its size rounded up to pages.
 */
#ifndef HP_RANGE_H
#define HP_RANGE_H

#include <stddef.h>
#include <stdint.h>

#include "internal.h"

/* Reserve the range (once; later calls return the first answer). False
 * when the address space cannot be had (RLIMIT_AS, a 32-bit process,
 * overcommit refused): the malloc front then keeps sampled blocks in the
 * next allocator and finds them with the live table's filter. Never
 * allocates; safe before the allocator is resolved. */
HP_HIDDEN bool hp_range_reserve(uintptr_t *lo, size_t *len);

/* The range's bootstrap area (front_preload.c's pool before the next
 * allocator is known): *size bytes at the returned address, writable;
 * frees of blocks in it are ignored. NULL without a range. */
HP_HIDDEN void *hp_range_pool(size_t *size);

/* A block of size bytes aligned to align (a power of two), zeroed if
 * zero; NULL when the range cannot serve it (full, alignment above 16 MiB,
 * the kernel refused pages), and the caller then allocates elsewhere. */
HP_HIDDEN void *hp_range_alloc(size_t size, size_t align, bool zero);

/* Give back a block hp_range_alloc returned (a pool block is ignored, an
 * address it never returned is reported once and ignored). Safe from a
 * signal handler that interrupted the range on the same thread: the block
 * is then queued and reused later. */
HP_HIDDEN void hp_range_free(void *ptr);

/* Bytes usable at ptr (at least what was asked for): the slot for a small
 * block, the size rounded up to pages for a large one. 0 for an address
 * the range did not give out. */
HP_HIDDEN size_t hp_range_usable(const void *ptr);

/* A realloc to size bytes that was not sampled may leave a range block in
 * its slot instead of copying it out: true (and the slot counted) when
 * size fits the slot and the slots so held stay within a small bound.
 * hp_range_unkeep, before the block is freed, stops counting it. Both
 * lock-free. */
HP_HIDDEN bool hp_range_keep(const void *ptr, size_t size);
HP_HIDDEN void hp_range_unkeep(const void *ptr);
HP_HIDDEN uint64_t hp_range_kept_bytes(void);

/* Resident bytes of freed blocks kept for reuse, and the range's
 * committed bytes (for the profile's comments and the tests). */
HP_HIDDEN uint64_t hp_range_cached_bytes(void);
HP_HIDDEN uint64_t hp_range_committed_bytes(void);

/*
 * The program limited its address space to as_limit (setrlimit
 * RLIMIT_AS): the reservation beyond as_limit / 8 that never held a block
 * is given back, as it is not taken at start under such a limit
 * (vsftpd's sessions set one: every mmap of theirs failed beside a range
 * of the machine's memory). publish(new length) runs before the tail is
 * unmapped. Returns the range's length.
 */
HP_HIDDEN size_t hp_range_fit(uint64_t as_limit, void (*publish)(size_t len));

HP_HIDDEN void hp_range_prefork(void);
HP_HIDDEN void hp_range_postfork_parent(void);
HP_HIDDEN void hp_range_postfork_child(void);

#endif
