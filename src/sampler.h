/*
 * The Poisson sampler. Bytes allocated by a thread form a stream in which
 * each byte is marked with probability 1/rate; an allocation is sampled iff
 * it covers a marked byte, so P(sample | size s) = 1 - exp(-s/rate) and the
 * distance between marks is exponential with mean rate (tcmalloc's model,
 * Go's MemProfileRate). The fast path is a thread-local subtraction and a
 * branch; hp_sample_slow() redraws the distance and decides.
 */
#ifndef HP_SAMPLER_H
#define HP_SAMPLER_H

#include "internal.h"

/* Current global rate (mean bytes between samples; 0 off, 1 everything). */
HP_HIDDEN uint64_t hp_rate_get(void);
HP_HIDDEN void hp_rate_set(uint64_t rate);
/* Sampling paused (heapprof_stop) without changing the rate. */
HP_HIDDEN bool hp_sampling_paused(void);
HP_HIDDEN void hp_sampling_pause(bool paused);

/*
 * Out-of-line part: called when the countdown ran out. Returns the rate the
 * sampled allocation must be weighted with (>= 1), or 0 if this allocation
 * is not sampled (fenced, off, paused, or a re-arm after a rate change).
 */
HP_HIDDEN uint64_t hp_sample_slow(size_t size);

/*
 * The calling thread's next allocation takes hp_sample_slow (which runs
 * a pending restart after fork, hp_restart_poll) and starts a fresh
 * distance there, with the odds of a sample unchanged (memorylessness).
 * For the fork child handler.
 */
HP_HIDDEN void hp_sampler_revisit(void);

/* Count size bytes down; true when the countdown ran out and the caller
 * must ask hp_sample_slow(size) (front ends that keep their fast path
 * free of calls test this and call the slow path out of line). */
static inline bool
hp_sample_countdown(size_t size)
{
#if defined(__x86_64__) && defined(__GCC_ASM_FLAG_OUTPUTS__)
    /* One read-modify-write subtraction whose flags are the answer
     * ("le": the old count was <= size, i.e. the new one is <= 0, exact
     * even on signed overflow): 4 instructions for all of malloc's fast
     * path instead of 7 (load, subtract, store, test). */
    bool expired;
    __asm__("subq %2, %0"
            : "+m"(hp_tls.bytes_until_sample), "=@ccle"(expired)
            : "r"((int64_t)size)
            : "cc");
    return expired;
#else
    struct hp_thread *t = &hp_tls;
    t->bytes_until_sample -= (int64_t)size;
    return t->bytes_until_sample <= 0;
#endif
}

/* Returns the weighting rate if this allocation is sampled, else 0. */
static inline uint64_t
hp_sample_check(size_t size)
{
    if (HP_LIKELY(!hp_sample_countdown(size)))
        return 0;
    return hp_sample_slow(size);
}

/* Exponential distance with mean rate drawn from *rng (seeded, != 0);
 * >= 1 for rate > 1, 0 for rate == 1. Exposed for the statistics tests. */
HP_HIDDEN int64_t hp_sampler_draw(uint64_t *rng, uint64_t rate);
/* -ln(u) for u in (0, 1], the draw's logarithm (no libm); exposed for its
 * accuracy test. */
HP_HIDDEN double hp_sampler_neg_log(double u);

/*
 * Unbiased weights of one sampled allocation of `size` bytes taken at
 * `rate`: p = 1 - exp(-size/rate); objects = 1/p (fixed point, x
 * HP_COUNT_ONE) and bytes = size/p (Horvitz-Thompson; exact in expectation
 * for every size, so a site mixing sizes is still unbiased).
 */
HP_HIDDEN void hp_sample_weights(size_t size, uint64_t rate, uint64_t *count_fx,
                                 uint64_t *bytes);

#endif
