/*
 * The only reader of the bucket table on the export side: snapshots every
 * bucket's counters into hp_profile_entry values (Go's column order, the
 * unbiased weights rounded to integers, raw sample counts beside them) and
 * hands them, with heapprof's self-report as comments, to the encoder.
 */
#include "profile.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buckets.h"
#include "ialloc.h"
#include "live.h"
#include "log.h"
#include "pprof_encode.h"
#include "sampler.h"
#include "stats.h"

static uint64_t
load(const uint64_t *p)
{
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}

/* Round a fixed-point object count (x HP_COUNT_ONE) to whole objects. */
static int64_t
round_fx(uint64_t fx)
{
    return (int64_t)((fx + HP_COUNT_ONE / 2) / HP_COUNT_ONE);
}

static int64_t
sub_clamped(uint64_t a, uint64_t b)
{
    return a > b ? (int64_t)(a - b) : 0;
}

/*
 * One bucket's values. Frees are read before allocations: a free is always
 * recorded after its allocation, so this order never sees more freed than
 * allocated for blocks recorded before the read (the clamp covers the
 * rest).
 */
static void
fill_entry(struct hp_profile_entry *e, const struct hp_bucket *b)
{
    uint64_t f_fx = load(&b->free_count_fx);
    uint64_t f_b = load(&b->free_bytes);
    uint64_t f_n = load(&b->free_samples);
    uint64_t f_rb = load(&b->free_raw_bytes);
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    uint64_t a_fx = load(&b->alloc_count_fx);
    uint64_t a_b = load(&b->alloc_bytes);
    uint64_t a_n = load(&b->alloc_samples);
    uint64_t a_rb = load(&b->alloc_raw_bytes);

    e->key = b;
    e->pcs = b->pcs;
    e->nframes = b->nframes;
    /* Already unbiased per sample (Horvitz-Thompson weights): Go's
     * scaleHeapSample must not be applied again. */
    e->v[HP_V_ALLOC_OBJECTS] = round_fx(a_fx);
    e->v[HP_V_ALLOC_SPACE] = (int64_t)a_b;
    e->v[HP_V_INUSE_OBJECTS] = a_fx > f_fx ? round_fx(a_fx - f_fx) : 0;
    e->v[HP_V_INUSE_SPACE] = sub_clamped(a_b, f_b);
    e->raw[HP_V_ALLOC_OBJECTS] = (int64_t)a_n;
    e->raw[HP_V_ALLOC_SPACE] = (int64_t)a_rb;
    e->raw[HP_V_INUSE_OBJECTS] = sub_clamped(a_n, f_n);
    e->raw[HP_V_INUSE_SPACE] = sub_clamped(a_rb, f_rb);
}

static bool
entry_empty(const struct hp_profile_entry *e)
{
    for (int i = 0; i < HP_NVALUES; i++)
        if (e->v[i] != 0 || e->raw[i] != 0)
            return false;
    return true;
}

/* In-use bytes, largest first; then allocated bytes; then the stack, so
 * the order is the same from one collection to the next. */
static int
entry_cmp(const void *pa, const void *pb)
{
    const struct hp_profile_entry *a = pa, *b = pb;
    if (a->v[HP_V_INUSE_SPACE] != b->v[HP_V_INUSE_SPACE])
        return a->v[HP_V_INUSE_SPACE] > b->v[HP_V_INUSE_SPACE] ? -1 : 1;
    if (a->v[HP_V_ALLOC_SPACE] != b->v[HP_V_ALLOC_SPACE])
        return a->v[HP_V_ALLOC_SPACE] > b->v[HP_V_ALLOC_SPACE] ? -1 : 1;
    uint32_t n = a->nframes < b->nframes ? a->nframes : b->nframes;
    for (uint32_t i = 0; i < n; i++)
        if (a->pcs[i] != b->pcs[i])
            return a->pcs[i] < b->pcs[i] ? -1 : 1;
    return a->nframes < b->nframes ? -1 : a->nframes > b->nframes;
}

struct collector {
    struct hp_profile_entry *e;
    size_t n, cap;
};

static int
collect_one(struct collector *c, const struct hp_bucket *b)
{
    if (c->n == c->cap) {
        size_t cap = c->cap * 2;
        struct hp_profile_entry *ne = realloc(c->e, cap * sizeof(*ne));
        if (ne == NULL)
            return HEAPPROF_ENOMEM;
        c->e = ne;
        c->cap = cap;
    }
    fill_entry(&c->e[c->n], b);
    if (!entry_empty(&c->e[c->n]))
        c->n++;
    return 0;
}

int
hp_profile_collect(struct hp_profile_data *out)
{
    memset(out, 0, sizeof(*out));
    /* The list only grows (newest first) while we walk it: size the array
     * for what is there now, and grow if more appears. */
    struct collector c = { NULL, 0, (size_t)hp_buckets_count() + 16 };
    c.e = malloc(c.cap * sizeof(*c.e));
    if (c.e == NULL)
        goto oom;
    for (const struct hp_bucket *b = hp_buckets_all(); b != NULL;
         b = __atomic_load_n(&b->all_next, __ATOMIC_ACQUIRE))
        if (collect_one(&c, b) != 0)
            goto oom;
    /* The overflow bucket is not in the list. */
    const struct hp_bucket *ov = hp_bucket_overflow();
    if (ov != NULL && collect_one(&c, ov) != 0)
        goto oom;
    qsort(c.e, c.n, sizeof(*c.e), entry_cmp);
    out->e = c.e;
    out->n = c.n;
    out->rate = hp_rate_get();
    out->time_ns = hp_now_wall_ns();
    out->duration_ns = 0;
    return 0;
oom:
    free(c.e);
    hp_log_once(collect_oom, "profile: out of memory collecting buckets");
    return HEAPPROF_ENOMEM;
}

void
hp_profile_data_free(struct hp_profile_data *d)
{
    free(d->e);
    memset(d, 0, sizeof(*d));
}

int
hp_profile_encode(const struct hp_profile_data *d,
                  enum heapprof_profile which,
                  const struct heapprof_sink *sink)
{
    /* Self-report, so that a reader can judge how far to trust the
     * numbers: sampling rate, samples lost to the budget, stacks folded
     * into the overflow bucket, and heapprof's own memory. */
    char c[5][160];
    snprintf(c[0], sizeof(c[0]), "heapprof %d.%d.%d rate=%" PRIu64,
             HEAPPROF_VERSION_MAJOR, HEAPPROF_VERSION_MINOR,
             HEAPPROF_VERSION_PATCH, d->rate);
    snprintf(c[1], sizeof(c[1]),
             "heapprof samples: taken=%" PRIu64 " dropped=%" PRIu64
             " live=%" PRIu64,
             hp_stat_get(&hp_stats.samples),
             hp_stat_get(&hp_stats.samples_dropped), hp_live_count());
    snprintf(c[2], sizeof(c[2]),
             "heapprof buckets: %" PRIu64 " (stacks sent to overflow: %" PRIu64
             ")",
             hp_buckets_count(), hp_buckets_dropped());
    snprintf(c[3], sizeof(c[3]),
             "heapprof metadata: %" PRIu64 " bytes (budget %" PRIu64 ")",
             hp_ialloc_mapped(), hp_ialloc_budget());
    /* The process's own totals, to set the estimates against. */
    unsigned long long vm_pages = 0, rss_pages = 0;
    FILE *statm = fopen("/proc/self/statm", "re");
    if (statm != NULL) {
        if (fscanf(statm, "%llu %llu", &vm_pages, &rss_pages) != 2)
            vm_pages = rss_pages = 0;
        fclose(statm);
    }
    unsigned long long page = (unsigned long long)sysconf(_SC_PAGESIZE);
    snprintf(c[4], sizeof(c[4]),
             "process: rss=%llu bytes vm=%llu bytes", rss_pages * page,
             vm_pages * page);
    const char *const comments[5] = { c[0], c[1], c[2], c[3], c[4] };
    struct hp_encode_opts o = {
        .which = which,
        .comments = comments,
        .ncomments = 5,
        .maps_path = NULL,
    };
    return hp_pprof_encode(d, &o, sink);
}

int
hp_profile_write(enum heapprof_profile which,
                 const struct heapprof_sink *sink)
{
    struct hp_profile_data d;
    int rc = hp_profile_collect(&d);
    if (rc != 0)
        return rc;
    rc = hp_profile_encode(&d, which, sink);
    hp_profile_data_free(&d);
    return rc;
}
