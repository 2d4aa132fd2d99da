/*
 * A mutex for the short critical sections a sample passes through (the
 * sample range, the live table's stripes and record caches): one word,
 * one atomic read-modify-write to lock and one to unlock when uncontended,
 * else a brief spin, then the kernel's futex. glibc's pthread_mutex_lock/unlock pair costs ~55
 * instructions (type checks, owner and user counts), six pairs a sample.
 *
 * The word is 0 (free), 1 (held) or 2 (held, maybe with sleepers); the
 * protocol is the third mutex of Drepper's "Futexes Are Tricky". Not
 * recursive. In a fork child, hp_lock_init() what the parent held.
 */
#ifndef HP_LOCK_H
#define HP_LOCK_H

#include <stdint.h>

#include "internal.h"

typedef struct {
    uint32_t word;
} hp_lock_t;

#define HP_LOCK_INITIALIZER                                                    \
    {                                                                          \
        0                                                                      \
    }

HP_HIDDEN void hp_lock_contended(hp_lock_t *l);
HP_HIDDEN void hp_lock_wake(hp_lock_t *l);

static inline void
hp_lock_init(hp_lock_t *l)
{
    __atomic_store_n(&l->word, 0, __ATOMIC_RELAXED);
}

static inline void
hp_lock(hp_lock_t *l)
{
    uint32_t free_word = 0;
    if (HP_UNLIKELY(!__atomic_compare_exchange_n(&l->word, &free_word, 1, false,
                                                 __ATOMIC_ACQUIRE,
                                                 __ATOMIC_RELAXED)))
        hp_lock_contended(l);
}

static inline void
hp_unlock(hp_lock_t *l)
{
    if (HP_UNLIKELY(__atomic_exchange_n(&l->word, 0, __ATOMIC_RELEASE) == 2))
        hp_lock_wake(l);
}

#endif
