/*
 * Unit tests of the Poisson sampler (src/sampler.c): the distance draw
 * against the exponential distribution, the rate 0 / 1 / fenced / paused
 * corner cases, the Horvitz-Thompson weights, and the unbiasedness of the
 * whole countdown as the front ends run it (hp_sample_check on this
 * thread's real TLS state, seeded with a fixed value).
 *
 * Statistical tests use fixed seeds, so they are deterministic; the
 * comment on each states the chance that it would fail a correct sampler
 * for a random seed. Each also checks that its tolerance is at least 4.5
 * standard deviations of the estimator it tests, computed from the truth.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "heapprof.h"
#include "internal.h"
#include "sampler.h"

/* ------------------------------------------------------------- helpers */

/* splitmix64: the test's own generator for sizes (never the sampler's). */
static uint64_t
mix_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double
mix_unit(uint64_t *s)
{
    return (double)(mix_next(s) >> 11) * (1.0 / 9007199254740992.0);
}

/* Put this thread's sampler into a known state: fixed seed, no distance
 * drawn yet (so the next check draws afresh at the current rate). */
static void
reset_thread_sampler(uint64_t seed, uint64_t rate)
{
    hp_rate_set(rate);
    hp_sampling_pause(false);
    hp_tls.rng = seed;
    hp_tls.bytes_until_sample = 0;
    hp_tls.draw_rate = 0;
    hp_tls.depth = 0;
}

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/*
 * Limiting distribution of the Anderson-Darling statistic for a fully
 * specified null (Marsaglia & Marsaglia, "Evaluating the Anderson-Darling
 * distribution", J. Stat. Software 9(2), 2004, function ADinf; accurate
 * to about 1e-6, and the limit is reached well before n = 10^5).
 */
static double
ad_cdf(double z)
{
    if (z <= 0.0)
        return 0.0;
    if (z < 2.0)
        return exp(-1.2337141 / z) / sqrt(z) *
               (2.00012 +
                (.247105 -
                 (.0649821 - (.0347962 - (.0116720 - .00168691 * z) * z) * z) *
                     z) *
                    z);
    return exp(-exp(1.0776 -
                    (2.30695 -
                     (.43424 - (.082433 - (.008056 - .0003146 * z) * z) * z) *
                         z) *
                        z));
}

/* A^2 of sorted u[0..n) against U(0,1). */
static double
ad_statistic(const double *u, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += (double)(2 * i + 1) * (log(u[i]) + log1p(-u[n - 1 - i]));
    return -(double)n - s / (double)n;
}

/* sqrt(n) * D_n (Kolmogorov-Smirnov) of sorted u[0..n) against U(0,1). */
static double
ks_statistic(const double *u, size_t n)
{
    double d = 0.0;
    for (size_t i = 0; i < n; i++) {
        double lo = u[i] - (double)i / (double)n;
        double hi = (double)(i + 1) / (double)n - u[i];
        if (lo > d)
            d = lo;
        if (hi > d)
            d = hi;
    }
    return d * sqrt((double)n);
}

/* Probability-integral transform of draws under Exp(mean), sorted. */
static void
exp_pit_sorted(const int64_t *x, size_t n, double mean, double *u)
{
    for (size_t i = 0; i < n; i++) {
        double v = -expm1(-(double)x[i] / mean);
        if (v < 1e-300)
            v = 1e-300;
        if (v > 1.0 - 1e-16)
            v = 1.0 - 1e-16;
        u[i] = v;
    }
    qsort(u, n, sizeof *u, cmp_double);
}

/* ------------------------------------------------------ distance draws */

#define DRAW_N 100000

/*
 * hp_sampler_draw at rate 2^19 and 2^12 with a fixed seed: the sample mean
 * is within 5 standard errors of the rate (false failure for a random seed
 * about 5.7e-7 per rate), the Anderson-Darling p-value against Exp(rate)
 * is above 1e-6 and sqrt(n)*KS is below 2.70 (each a false-failure chance
 * of about 1e-6). The draws are integers; at these rates truncation moves
 * F by at most 1/rate, far below what n = 10^5 can resolve.
 *
 * Power: the same draws tested against Exp(1.05 * rate) must be rejected
 * by both statistics, so the test can tell a 5 % scale error.
 */
static void
check_draw_distribution(uint64_t rate, uint64_t seed)
{
    int64_t *x = malloc(DRAW_N * sizeof *x);
    double *u = malloc(DRAW_N * sizeof *u);
    assert_non_null(x);
    assert_non_null(u);
    uint64_t rng = seed;
    double sum = 0.0;
    for (size_t i = 0; i < DRAW_N; i++) {
        x[i] = hp_sampler_draw(&rng, rate);
        assert_true(x[i] >= 1);
        sum += (double)x[i];
    }
    double mean = sum / DRAW_N;
    double se = (double)rate / sqrt((double)DRAW_N);
    print_message("rate %llu: mean %.1f (%.2f SE)\n", (unsigned long long)rate,
                  mean, (mean - (double)rate) / se);
    assert_true(fabs(mean - (double)rate) < 5.0 * se);

    exp_pit_sorted(x, DRAW_N, (double)rate, u);
    double a2 = ad_statistic(u, DRAW_N);
    double p = 1.0 - ad_cdf(a2);
    double ks = ks_statistic(u, DRAW_N);
    print_message("rate %llu: A^2 %.3f p %.4g, sqrt(n)D %.3f\n",
                  (unsigned long long)rate, a2, p, ks);
    assert_true(p > 1e-6);
    assert_true(ks < 2.70);

    exp_pit_sorted(x, DRAW_N, 1.05 * (double)rate, u);
    a2 = ad_statistic(u, DRAW_N);
    assert_true(1.0 - ad_cdf(a2) < 1e-6);
    assert_true(ks_statistic(u, DRAW_N) > 2.70);
    free(x);
    free(u);
}

static void
test_sampler_draw_exponential(void **state)
{
    (void)state;
    check_draw_distribution(524288, 0x0123456789ABCDEFull);
    check_draw_distribution(4096, 0x5EED5EED5EED5EEDull);
}

/* Rate 1 means "every allocation": the distance is 0. Rate 0 draws 0 too
 * (sampling off is decided by the slow path, tested below). Distances for
 * rate > 1 are >= 1 and never overflow, whatever the generator state. */
static void
test_sampler_draw_edges(void **state)
{
    (void)state;
    uint64_t rng = 42;
    for (int i = 0; i < 1000; i++) {
        assert_int_equal(hp_sampler_draw(&rng, 1), 0);
        assert_int_equal(hp_sampler_draw(&rng, 0), 0);
    }
    for (int i = 0; i < 100000; i++) {
        int64_t d = hp_sampler_draw(&rng, 2);
        assert_true(d >= 1);
        assert_true(d < 1000);
        d = hp_sampler_draw(&rng, (uint64_t)1 << 40);
        assert_true(d >= 1);
        assert_true(d <= (int64_t)4e18);
    }
    /* Same seed, same sequence (the statistics tests rely on it). */
    uint64_t a = 7, b = 7;
    for (int i = 0; i < 100; i++)
        assert_int_equal(hp_sampler_draw(&a, 65536), hp_sampler_draw(&b, 65536));
    /* The state advances: not a constant sequence. */
    int64_t first = hp_sampler_draw(&a, 65536);
    int differ = 0;
    for (int i = 0; i < 10; i++)
        differ |= hp_sampler_draw(&a, 65536) != first;
    assert_true(differ);
}

/* -------------------------------------------------- slow-path decisions */

static void
test_sampler_rate_one_samples_everything(void **state)
{
    (void)state;
    reset_thread_sampler(0x1111, 1);
    static const size_t sizes[] = {0, 1, 2, 7, 4096, 1u << 20, 3, 0};
    for (int round = 0; round < 1000; round++)
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
            assert_int_equal(hp_sample_check(sizes[i]), 1);
    hp_rate_set(HEAPPROF_DEFAULT_RATE);
}

static void
test_sampler_rate_zero_samples_nothing(void **state)
{
    (void)state;
    reset_thread_sampler(0x2222, 0);
    for (int i = 0; i < 100000; i++)
        assert_int_equal(hp_sample_check((size_t)1 << 20), 0);
    /* Turning it back on is noticed within the revisit distance. */
    hp_rate_set(1);
    int sampled = 0;
    for (int i = 0; i < 16 && !sampled; i++)
        sampled = hp_sample_check((size_t)1 << 20) != 0;
    assert_true(sampled);
    hp_rate_set(HEAPPROF_DEFAULT_RATE);
}

static void
test_sampler_paused_and_fenced_sample_nothing(void **state)
{
    (void)state;
    reset_thread_sampler(0x3333, 1);
    hp_sampling_pause(true);
    for (int i = 0; i < 10000; i++)
        assert_int_equal(hp_sample_check((size_t)1 << 20), 0);
    hp_sampling_pause(false);
    int sampled = 0;
    for (int i = 0; i < 16 && !sampled; i++)
        sampled = hp_sample_check((size_t)1 << 20) != 0;
    assert_true(sampled);

    /* heapprof's own allocations (inside the fence) are never sampled. */
    reset_thread_sampler(0x4444, 1);
    hp_fence_enter();
    for (int i = 0; i < 10000; i++)
        assert_int_equal(hp_sample_check(64), 0);
    hp_fence_exit();
    assert_int_equal(hp_sample_check(64), 1);
    hp_rate_set(HEAPPROF_DEFAULT_RATE);
}

/* The sampler's own logarithm against libm's: every binade of (0, 1],
 * both sides of the sqrt(2) fold, and the ends. */
static void
test_sampler_neg_log_accuracy(void **state)
{
    (void)state;
    double worst = 0.0;
    uint64_t rng = 0x9E3779B97F4A7C15ull;
    for (int i = 0; i < 1000000; i++) {
        rng ^= rng >> 12;
        rng ^= rng << 25;
        rng ^= rng >> 27;
        double u = (double)(((rng * 0x2545F4914F6CDD1Dull) >> 11) + 1) *
                   (1.0 / 9007199254740992.0);
        if (i % 4 == 1)
            u = ldexp(u, -(i % 60)); /* small u: long distances */
        double want = -log(u), got = hp_sampler_neg_log(u);
        double err = fabs(got - want) / (want > 1e-300 ? want : 1.0);
        if (want < 1e-12)
            err = fabs(got - want);
        if (err > worst)
            worst = err;
    }
    const double edges[] = {1.0, 0x1.fffffffffffffp-1, 0.5, 0.70710678118654746,
                            0.70710678118654757, 1.0 / 9007199254740992.0};
    for (size_t i = 0; i < sizeof edges / sizeof *edges; i++) {
        double want = -log(edges[i]), got = hp_sampler_neg_log(edges[i]);
        double err = want > 1e-12 ? fabs(got - want) / want : fabs(got - want);
        if (err > worst)
            worst = err;
    }
    print_message("worst relative error %.3g\n", worst);
    assert_true(worst < 1e-9);
}

/* ---------------------------------------------------------------- weights */

static void
check_weights(size_t size, uint64_t rate, double want_count, double want_bytes)
{
    uint64_t c = 0, b = 0;
    hp_sample_weights(size, rate, &c, &b);
    double wc = want_count * HP_COUNT_ONE;
    print_message("size %zu rate %llu: count_fx %llu (want %.2f) bytes %llu "
                  "(want %.2f)\n",
                  size, (unsigned long long)rate, (unsigned long long)c, wc,
                  (unsigned long long)b, want_bytes);
    assert_true(fabs((double)c - wc) <= 1.0);
    assert_true(fabs((double)b - want_bytes) <= 1.0);
}

static void
test_sampler_weights_exact(void **state)
{
    (void)state;
    const double e = exp(1.0);
    /* size = rate: p = 1 - 1/e. */
    check_weights(4096, 4096, e / (e - 1.0), 4096.0 * e / (e - 1.0));
    check_weights(524288, 524288, e / (e - 1.0), 524288.0 * e / (e - 1.0));
    /* size = rate / 2: p = 1 - e^-1/2. */
    check_weights(2048, 4096, 1.0 / (1.0 - exp(-0.5)),
                  2048.0 / (1.0 - exp(-0.5)));
    /* size << rate: 1/p = R/s + 1/2 + s/(12R) + ... */
    check_weights(1, 524288, 524288.5, 524288.5);
    check_weights(16, 524288, 32768.5, 16.0 * 32768.5);
    /* size >> rate: p = 1 to double precision. */
    check_weights(100 * 4096, 4096, 1.0, 409600.0);
    /* rate 1 (every allocation) and 0: weight 1, bytes = size. */
    check_weights(12345, 1, 1.0, 12345.0);
    check_weights(12345, 0, 1.0, 12345.0);
    /* size 0 is never sampled at rate > 1; its weight is harmless. */
    uint64_t c, b;
    hp_sample_weights(0, 4096, &c, &b);
    assert_int_equal(b, 0);
    assert_int_equal(c, HP_COUNT_ONE);
}

/* ------------------------------------------------------- unbiasedness */

#define NCLASS 18            /* [1,2), [2,4), ... [2^17, 2^18] = 1 B .. 256 KiB */
#define MAX_SIZE (1u << 18)

struct acc {
    double true_count[NCLASS], true_bytes[NCLASS];
    double est_count[NCLASS], est_bytes[NCLASS];
    double var_count[NCLASS], var_bytes[NCLASS];
    double samples[NCLASS];
    uint64_t bad_rate;   /* sample weighted with a rate other than current */
    uint64_t other_rate; /* ... and other than 512 or 8192 either */
};

static double
p_sample(double size, double rate)
{
    return rate <= 1.0 ? 1.0 : -expm1(-size / rate);
}

static size_t
class_size(int c, uint64_t *rng)
{
    uint64_t lo = (uint64_t)1 << c;
    uint64_t span = c == NCLASS - 1 ? lo + 1 : lo; /* 256 KiB inclusive */
    return (size_t)(lo + mix_next(rng) % span);
}

/* One allocation through the real fast/slow path; truth and estimate. */
static inline void
one_alloc(struct acc *a, int c, size_t s, uint64_t rate)
{
    double p = p_sample((double)s, (double)rate);
    a->true_count[c] += 1.0;
    a->true_bytes[c] += (double)s;
    /* Variance of the Horvitz-Thompson terms: (1-p)/p and s^2 (1-p)/p. */
    a->var_count[c] += (1.0 - p) / p;
    a->var_bytes[c] += (double)s * (double)s * (1.0 - p) / p;
    uint64_t r = hp_sample_check(s);
    if (r != 0) {
        if (r != rate)
            a->bad_rate++;
        if (r != rate && r != 512 && r != 8192)
            a->other_rate++;
        uint64_t cf, b;
        hp_sample_weights(s, r, &cf, &b);
        a->est_count[c] += (double)cf / HP_COUNT_ONE;
        a->est_bytes[c] += (double)b;
        a->samples[c] += 1.0;
    }
}

static double
sum(const double *v)
{
    double s = 0.0;
    for (int c = 0; c < NCLASS; c++)
        s += v[c];
    return s;
}

/* Checks |est/true - 1| <= tol, and that tol >= 4.5 sigma (design). */
static void
check_estimate(const char *what, int c, double truth, double est, double var,
               double tol)
{
    double rel = est / truth - 1.0;
    double sigma = sqrt(var) / truth;
    print_message("%-6s class %2d: true %.4g est %.4g err %+.3f%% sigma %.3f%%\n",
                  what, c, truth, est, 100.0 * rel, 100.0 * sigma);
    assert_true(tol >= 4.5 * sigma);
    assert_true(fabs(rel) <= tol);
}

static void
check_acc(const struct acc *a, double class_tol, double total_tol)
{
    assert_int_equal(a->bad_rate, 0);
    for (int c = 0; c < NCLASS; c++) {
        if (a->true_count[c] == 0.0)
            continue;
        check_estimate("count", c, a->true_count[c], a->est_count[c],
                       a->var_count[c], class_tol);
        check_estimate("bytes", c, a->true_bytes[c], a->est_bytes[c],
                       a->var_bytes[c], class_tol);
    }
    check_estimate("count", -1, sum(a->true_count), sum(a->est_count),
                   sum(a->var_count), total_tol);
    check_estimate("bytes", -1, sum(a->true_bytes), sum(a->est_bytes),
                   sum(a->var_bytes), total_tol);
}

/*
 * A stream of allocations of mixed sizes, 1 B .. 256 KiB, interleaved at
 * random (fixed seed), run through hp_sample_check at rate 1024. Size
 * classes are drawn with probability proportional to 1/p, so every class
 * expects about 10 000 samples (>= 1000). The summed weights of the
 * sampled allocations must estimate the true count and bytes within
 * +-10 % per size class and +-3 % in total (SPEC accuracy bars).
 * The tolerances are >= 4.5 sigma (asserted), so with 40 estimates a
 * correct sampler fails for a random seed with probability < 3e-4; the
 * fixed seed makes the outcome deterministic.
 */
static void
test_sampler_unbiased_mixed_sizes(void **state)
{
    (void)state;
    const uint64_t rate = 1024;
    const double per_class = 10000.0;
    double w[NCLASS], cum[NCLASS], wsum = 0.0;
    for (int c = 0; c < NCLASS; c++) {
        double mid = c == 0 ? 1.0 : 1.5 * (double)((uint64_t)1 << c);
        w[c] = 1.0 / p_sample(mid, (double)rate);
        wsum += w[c];
    }
    double run = 0.0;
    for (int c = 0; c < NCLASS; c++) {
        run += w[c] / wsum;
        cum[c] = run;
    }
    cum[NCLASS - 1] = 1.0;
    uint64_t n = (uint64_t)(per_class * wsum);
    print_message("%llu allocations\n", (unsigned long long)n);

    static struct acc a;
    uint64_t rng = 0xC0FFEE0DDF00Dull;
    reset_thread_sampler(0xFEEDFACECAFEBEEFull, rate);
    for (uint64_t i = 0; i < n; i++) {
        double u = mix_unit(&rng);
        int c = 0;
        while (u >= cum[c])
            c++;
        one_alloc(&a, c, class_size(c, &rng), rate);
    }
    for (int c = 0; c < NCLASS; c++)
        assert_true(a.samples[c] >= 1000.0);
    check_acc(&a, 0.10, 0.03);
    hp_rate_set(HEAPPROF_DEFAULT_RATE);
}

/*
 * The rate changes between 512 and 8192 (as heapprof_set_rate does at run
 * time) every 2000 allocations of 8 B .. 64 KiB, i.e. every ~15 MB, so the
 * old countdown never outlives a phase: each sample must be weighted with
 * a rate that was in force (the one its distance was drawn with or the
 * new one) and the totals must stay within +-3 % (>= 4.5 sigma, asserted;
 * false failure < 1e-5 for a random seed).
 */
static void
test_sampler_unbiased_across_rate_changes(void **state)
{
    (void)state;
    static struct acc a;
    uint64_t rng = 0xABCDEF12345ull;
    reset_thread_sampler(0x7777777777777777ull, 512);
    uint64_t rate = 512;
    for (uint64_t i = 0; i < 4000000; i++) {
        if (i % 2000 == 0) {
            rate = rate == 512 ? 8192 : 512;
            hp_rate_set(rate);
        }
        /* Log-uniform over classes 3..15 (8 B .. 64 KiB). */
        int c = 3 + (int)(mix_next(&rng) % 13);
        one_alloc(&a, c, class_size(c, &rng), rate);
    }
    /* one_alloc counted weights at a rate other than the current one;
     * only 512 and 8192 were ever in force. */
    assert_int_equal(a.other_rate, 0);
    a.bad_rate = 0;
    check_acc(&a, 1.0, 0.03);
    hp_rate_set(HEAPPROF_DEFAULT_RATE);
}

/*
 * Tiny sizes at tiny rates, where an off-by-one in the countdown shows:
 * at rate 8 a 1-byte allocation must be sampled with p = 1 - e^(-1/8); an
 * estimated count off by more than 2 % (>= 4.5 sigma, asserted) means the
 * distance and the weight disagree about p (the draw once returned
 * floor(d) instead of floor(d) + 1: +11 % here). Byte weights are whole
 * bytes (up to 0.5 B of rounding per sample, 1/(2 rate) relative), so
 * bytes are checked only at rate 64, where rounding stays below 0.8 %.
 */
static void
check_tiny(uint64_t rate, int max_size, uint64_t n, bool check_bytes)
{
    static struct acc a;
    memset(&a, 0, sizeof a);
    uint64_t rng = 0x1234ull + rate;
    reset_thread_sampler(0x9999999999999999ull ^ rate, rate);
    for (uint64_t i = 0; i < n; i++) {
        size_t s = 1 + (size_t)(mix_next(&rng) % (uint64_t)max_size);
        one_alloc(&a, 0, s, rate);
    }
    print_message("rate %llu sizes 1..%d:\n", (unsigned long long)rate,
                  max_size);
    assert_int_equal(a.bad_rate, 0);
    check_estimate("count", 0, a.true_count[0], a.est_count[0],
                   a.var_count[0], 0.02);
    if (check_bytes)
        check_estimate("bytes", 0, a.true_bytes[0], a.est_bytes[0],
                       a.var_bytes[0], 0.02);
    hp_rate_set(HEAPPROF_DEFAULT_RATE);
}

static void
test_sampler_unbiased_tiny_rate(void **state)
{
    (void)state;
    check_tiny(8, 1, 1000000, false);
    check_tiny(2, 1, 1000000, false);
    check_tiny(64, 8, 4000000, true);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sampler_draw_exponential),
        cmocka_unit_test(test_sampler_draw_edges),
        cmocka_unit_test(test_sampler_rate_one_samples_everything),
        cmocka_unit_test(test_sampler_rate_zero_samples_nothing),
        cmocka_unit_test(test_sampler_paused_and_fenced_sample_nothing),
        cmocka_unit_test(test_sampler_weights_exact),
        cmocka_unit_test(test_sampler_neg_log_accuracy),
        cmocka_unit_test(test_sampler_unbiased_mixed_sizes),
        cmocka_unit_test(test_sampler_unbiased_across_rate_changes),
        cmocka_unit_test(test_sampler_unbiased_tiny_rate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
