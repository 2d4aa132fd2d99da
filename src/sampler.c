/*
 * Poisson sampler: per-thread exponential countdown of bytes (see
 * sampler.h). Distances come from a per-thread xorshift64* generator and
 * the inverse CDF of the exponential distribution, d = -rate * ln(U) with
 * U uniform in (0, 1], so E[d] = rate and, by memorylessness, an
 * allocation of s bytes is sampled with probability 1 - exp(-s/rate)
 * whatever happened before it.
 */
#include "sampler.h"

#include <math.h>
#include <pthread.h>
#include <string.h>

#include "config.h"
#include "heapprof.h"

/* While sampling is off or paused, threads come back this often (bytes) to
 * notice a rate change; the cost is one slow-path call per 4 MiB. */
#define HP_REVISIT_BYTES ((int64_t)4 << 20)

static bool paused;

/* The rate is stored once, in the effective settings (config.c). */
uint64_t
hp_rate_get(void)
{
    return __atomic_load_n(&hp_settings.rate, __ATOMIC_RELAXED);
}

void
hp_rate_set(uint64_t rate)
{
    __atomic_store_n(&hp_settings.rate, rate, __ATOMIC_RELAXED);
}

bool
hp_sampling_paused(void)
{
    return __atomic_load_n(&paused, __ATOMIC_RELAXED);
}

void
hp_sampling_pause(bool p)
{
    __atomic_store_n(&paused, p, __ATOMIC_RELAXED);
}

static uint64_t
splitmix64(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

static uint64_t
next_random(uint64_t *state)
{
    /* xorshift64* (Vigna 2016): full period 2^64 - 1 for a non-zero state. */
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1Dull;
}

/*
 * -ln(u) for u in (0, 1], without libm: a sample is rare, so libm's code
 * and tables are cold every time, and log() was the costliest line of the
 * sampled path after the unwinder and the tables. u = m * 2^e with m in
 * [sqrt(1/2), sqrt(2)); ln m = 2 atanh(t), t = (m - 1) / (m + 1), |t| <
 * 0.172, from its series to t^13 (relative error below 1e-10, far below
 * what a sampling distance could show).
 */
double
hp_sampler_neg_log(double u)
{
    uint64_t bits;
    memcpy(&bits, &u, sizeof bits);
    int e = (int)((bits >> 52) & 0x7ff) - 1023;
    bits = (bits & 0x000fffffffffffffull) |
           0x3ff0000000000000ull; /* m in [1, 2) */
    double m;
    memcpy(&m, &bits, sizeof m);
    if (m > 1.4142135623730951) {
        m *= 0.5;
        e++;
    }
    double t = (m - 1.0) / (m + 1.0), t2 = t * t;
    double series =
        1.0 +
        t2 * (1.0 / 3 +
              t2 * (1.0 / 5 +
                    t2 * (1.0 / 7 +
                          t2 * (1.0 / 9 + t2 * (1.0 / 11 + t2 * (1.0 / 13))))));
    return -(2.0 * t * series + (double)e * 0.6931471805599453);
}

int64_t
hp_sampler_draw(uint64_t *rng, uint64_t rate)
{
    if (rate <= 1)
        return 0;
    /* 53 random bits give U in (0, 1]; U never 0, so log(U) is finite. */
    double u =
        (double)((next_random(rng) >> 11) + 1) * (1.0 / 9007199254740992.0);
    double d = hp_sampler_neg_log(u) * (double)rate;
    if (d < 1.0)
        return 1;
    if (d > 4.0e18)
        return (int64_t)4e18;
    /* floor(d) + 1: the countdown samples s bytes when the distance is
     * <= s, and P(floor(d) + 1 <= s) = P(d < s) = 1 - exp(-s/rate), the p
     * the weights use (floor(d) alone over-samples tiny sizes). */
    return (int64_t)d + 1;
}

static void
seed(struct hp_thread *t)
{
    uint64_t s = splitmix64((uint64_t)(uintptr_t)t ^ hp_now_mono_ns() ^
                            ((uint64_t)(uintptr_t)pthread_self() << 17));
    t->rng = s ? s : 0x853C49E6748FEA9Bull;
}

void
hp_sampler_revisit(void)
{
    hp_tls.bytes_until_sample = 0;
    hp_tls.draw_rate = 0;
}

uint64_t
hp_sample_slow(size_t size)
{
    struct hp_thread *t = &hp_tls;
    if (t->depth == 0 && !t->resolving) {
        /* A fork child's services (hp_sampler_revisit sent it here). */
        hp_fence_enter();
        hp_restart_poll();
        hp_fence_exit();
    }
    if (t->rng == 0) {
        seed(t);
        hp_ensure_configured();
    }
    uint64_t rate = hp_rate_get();
    if (rate == 0 || hp_sampling_paused()) {
        t->bytes_until_sample = HP_REVISIT_BYTES;
        t->draw_rate = 0;
        return 0;
    }
    if (t->depth > 0 || t->resolving) {
        /* heapprof's own allocation reached the mark: never sample it, just
         * start a new distance for the host's allocations. */
        t->bytes_until_sample = hp_sampler_draw(&t->rng, rate);
        t->draw_rate = rate;
        return 0;
    }
    if (t->draw_rate != 0 && t->draw_rate != rate) {
        /* The rate changed while this countdown ran: the mark it reached
         * was drawn with the old rate, so this allocation is a genuine
         * sample of that process and is weighted with it (tcmalloc does
         * the same); the next distance uses the new rate. */
        uint64_t weight_rate = t->draw_rate;
        t->draw_rate = rate;
        t->bytes_until_sample = hp_sampler_draw(&t->rng, rate);
        return weight_rate;
    }
    if (t->draw_rate == 0) {
        /* No distance was drawn (first use, or re-arm after sampling was
         * off): draw one and let this allocation consume it.
         * Memorylessness keeps P(sample) = 1 - exp(-s/rate). */
        t->draw_rate = rate;
        int64_t d = hp_sampler_draw(&t->rng, rate) - (int64_t)size;
        if (d > 0) {
            t->bytes_until_sample = d;
            return 0;
        }
    }
    t->bytes_until_sample = hp_sampler_draw(&t->rng, rate);
    return rate;
}

/* 1 - exp(-x) for x >= 0: its Taylor series while x < 1/2 (terms to
 * x^9, relative error below 1e-8), libm beyond, where sizes are a good
 * part of the rate and samples of them are rarer. */
static double
sample_probability(double x)
{
    if (x >= 0.5)
        return -expm1(-x);
    return x *
           (1.0 - x * (1.0 / 2 -
                       x * (1.0 / 6 -
                            x * (1.0 / 24 -
                                 x * (1.0 / 120 -
                                      x * (1.0 / 720 -
                                           x * (1.0 / 5040 -
                                                x * (1.0 / 40320 -
                                                     x * (1.0 / 362880)))))))));
}

void
hp_sample_weights(size_t size, uint64_t rate, uint64_t *count_fx,
                  uint64_t *bytes)
{
    if (rate <= 1) {
        *count_fx = HP_COUNT_ONE;
        *bytes = size;
        return;
    }
    double p = sample_probability((double)size / (double)rate);
    if (!(p > 0.0)) {
        *count_fx = HP_COUNT_ONE;
        *bytes = size;
        return;
    }
    /* Rounded to nearest (both are positive and far below 2^63). */
    *count_fx = (uint64_t)((double)HP_COUNT_ONE / p + 0.5);
    *bytes = (uint64_t)((double)size / p + 0.5);
}
