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
#include <time.h>
#include <unistd.h>

#include "buckets.h"
#include "buf.h"
#include "frame_cache.h"
#include "ialloc.h"
#include "labels.h"
#include "live.h"
#include "log.h"
#include "peak.h"
#include "pprof_encode.h"
#include "range.h"
#include "stack.h"
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

/* The entry's identity: its bucket, stack and labels. */
static void
entry_of(struct hp_profile_entry *e, const struct hp_bucket *b)
{
    memset(e, 0, sizeof(*e));
    e->key = b;
    e->pcs = b->pcs;
    e->nframes = b->nframes;
    e->labels = b->labels;
}

/* One bucket's values (hp_bucket_read orders the loads). */
static void
fill_entry(struct hp_profile_entry *e, const struct hp_bucket *b)
{
    struct hp_bucket_counts c;
    hp_bucket_read(b, &c);
    entry_of(e, b);
    /* Already unbiased per sample (Horvitz-Thompson weights): Go's
     * scaleHeapSample must not be applied again. */
    e->v[HP_V_ALLOC_OBJECTS] = round_fx(c.alloc_fx);
    e->v[HP_V_ALLOC_SPACE] = (int64_t)c.alloc_bytes;
    e->v[HP_V_INUSE_OBJECTS] =
        c.alloc_fx > c.free_fx ? round_fx(c.alloc_fx - c.free_fx) : 0;
    e->v[HP_V_INUSE_SPACE] = sub_clamped(c.alloc_bytes, c.free_bytes);
    e->raw[HP_V_ALLOC_OBJECTS] = (int64_t)c.alloc_samples;
    e->raw[HP_V_ALLOC_SPACE] = (int64_t)c.alloc_raw_bytes;
    e->raw[HP_V_INUSE_OBJECTS] = sub_clamped(c.alloc_samples, c.free_samples);
    e->raw[HP_V_INUSE_SPACE] = sub_clamped(c.alloc_raw_bytes, c.free_raw_bytes);
}

/* An entry of blocks that were all live (the peak and the age-filtered
 * profiles): the same values in both pairs of columns. */
static void
fill_live_entry(struct hp_profile_entry *e, const struct hp_bucket *b,
                uint64_t count_fx, uint64_t bytes, uint64_t samples,
                uint64_t raw_bytes)
{
    entry_of(e, b);
    e->v[HP_V_ALLOC_OBJECTS] = e->v[HP_V_INUSE_OBJECTS] = round_fx(count_fx);
    e->v[HP_V_ALLOC_SPACE] = e->v[HP_V_INUSE_SPACE] = (int64_t)bytes;
    e->raw[HP_V_ALLOC_OBJECTS] = e->raw[HP_V_INUSE_OBJECTS] = (int64_t)samples;
    e->raw[HP_V_ALLOC_SPACE] = e->raw[HP_V_INUSE_SPACE] = (int64_t)raw_bytes;
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
collect_with(struct collector *c, const struct hp_bucket *b,
             void (*fill)(struct hp_profile_entry *, const struct hp_bucket *))
{
    if (!hp_grow((void **)&c->e, &c->cap, c->n + 1, sizeof(*c->e)))
        return HEAPPROF_ENOMEM;
    fill(&c->e[c->n], b);
    if (!entry_empty(&c->e[c->n]))
        c->n++;
    return 0;
}

/* Every bucket (and the overflow bucket, which is not in the list) through
 * fill, sorted; time_ns is now. */
static int
collect_all(struct hp_profile_data *out,
            void (*fill)(struct hp_profile_entry *, const struct hp_bucket *))
{
    memset(out, 0, sizeof(*out));
    /* The list only grows (newest first) while we walk it: size the array
     * for what is there now, and grow if more appears. */
    struct collector c = {NULL, 0, (size_t)hp_buckets_count() + 16};
    c.e = malloc(c.cap * sizeof(*c.e));
    if (c.e == NULL)
        goto oom;
    for (const struct hp_bucket *b = hp_buckets_all(); b != NULL;
         b = __atomic_load_n(&b->all_next, __ATOMIC_ACQUIRE))
        if (collect_with(&c, b, fill) != 0)
            goto oom;
    const struct hp_bucket *ov = hp_bucket_overflow();
    if (ov != NULL && collect_with(&c, ov, fill) != 0)
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
    hp_log_profile_oom("collecting buckets");
    return HEAPPROF_ENOMEM;
}

int
hp_profile_collect(struct hp_profile_data *out)
{
    return collect_all(out, fill_entry);
}

/* ------------------------------------------------ the peak-heap profile */

/* A bucket's values at the last peak capture, in both pairs of columns
 * (what was live at the peak). */
static void
fill_peak_entry(struct hp_profile_entry *e, const struct hp_bucket *b)
{
    fill_live_entry(e, b, load(&b->peak_count_fx), load(&b->peak_bytes),
                    load(&b->peak_samples), load(&b->peak_raw_bytes));
}

int
hp_profile_collect_peak(struct hp_profile_data *out)
{
    /* Under the capture lock: a capture in progress finishes first, and
     * none starts while the peak fields are read. */
    uint64_t total, when;
    hp_peak_lock();
    hp_peak_refresh_locked();
    hp_peak_captured_locked(&total, &when);
    int rc = collect_all(out, fill_peak_entry);
    hp_peak_unlock();
    if (rc == 0 && when != 0)
        out->time_ns = when; /* the profile's time is the peak's */
    return rc;
}

/* ------------------------------------------------- the age-filtered heap */

/* Per-bucket sums of old live blocks, in a table sized before the walk:
 * the callback runs under live-table locks and must not allocate. */
struct aged_slot {
    const struct hp_bucket *b;
    uint64_t count_fx, bytes, n, raw;
};

struct aged {
    struct aged_slot *t;
    size_t mask, used;
    uint64_t born_by; /* monotonic ns: older blocks only */
    uint64_t skipped; /* blocks that found the table full */
};

static void
aged_visit(const struct hp_live_rec *r, void *arg)
{
    struct aged *a = arg;
    if (r->birth_ns > a->born_by || r->bucket == NULL)
        return;
    size_t i =
        (size_t)(((uintptr_t)r->bucket >> 4) * 0x9E3779B97F4A7C15ull >> 20) &
        a->mask;
    while (a->t[i].b != NULL && a->t[i].b != r->bucket)
        i = (i + 1) & a->mask;
    if (a->t[i].b == NULL) {
        if ((a->used + 1) * 4 > (a->mask + 1) * 3) {
            a->skipped++;
            return;
        }
        a->t[i].b = r->bucket;
        a->used++;
    }
    a->t[i].count_fx += r->count_fx;
    a->t[i].bytes += r->bytes;
    a->t[i].n++;
    a->t[i].raw += r->size;
}

int
hp_profile_collect_aged(struct hp_profile_data *out, uint64_t min_age_ns)
{
    memset(out, 0, sizeof(*out));
    /* Every live block's bucket is among the buckets counted now or made
     * during the walk; room for twice as many keeps the table sparse. */
    size_t cap = 64;
    while (cap < 2 * (hp_buckets_count() + 2) * 4 / 3)
        cap *= 2;
    struct aged a = {calloc(cap, sizeof(struct aged_slot)), cap - 1, 0, 0, 0};
    if (a.t == NULL)
        goto oom;
    uint64_t now = hp_now_mono_ns();
    a.born_by = now > min_age_ns ? now - min_age_ns : 0;
    hp_live_foreach(aged_visit, &a);
    if (a.skipped != 0)
        hp_log_once(aged_full,
                    "profile: %llu live blocks left out of an "
                    "age-filtered profile (buckets grew during it)",
                    (unsigned long long)a.skipped);
    out->e = malloc((a.used ? a.used : 1) * sizeof(*out->e));
    if (out->e == NULL)
        goto oom;
    for (size_t i = 0; i <= a.mask; i++) {
        const struct aged_slot *s = &a.t[i];
        if (s->b == NULL)
            continue;
        fill_live_entry(&out->e[out->n++], s->b, s->count_fx, s->bytes, s->n,
                        s->raw);
    }
    free(a.t);
    qsort(out->e, out->n, sizeof(*out->e), entry_cmp);
    out->rate = hp_rate_get();
    out->time_ns = hp_now_wall_ns();
    return 0;
oom:
    free(a.t);
    free(out->e);
    memset(out, 0, sizeof(*out));
    hp_log_once(collect_aged_oom,
                "profile: out of memory collecting old blocks");
    return HEAPPROF_ENOMEM;
}

void
hp_profile_data_free(struct hp_profile_data *d)
{
    free(d->e);
    memset(d, 0, sizeof(*d));
}

int
hp_profile_encode(const struct hp_profile_data *d, enum heapprof_profile which,
                  const struct heapprof_sink *sink)
{
    /* Self-report, so that a reader can judge how far to trust the
     * numbers: sampling rate, samples lost to the budget, stacks folded
     * into the overflow bucket, and heapprof's own memory. */
    char c[8][256];
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
             "heapprof metadata: %" PRIu64 " bytes (budget %" PRIu64
             "); fixed tables: %" PRIu64 " bytes resident",
             hp_ialloc_mapped(), hp_ialloc_budget(), hp_tables_resident());
    /* The process's own totals, to set the estimates against. */
    unsigned long long vm_pages = 0, rss_pages = 0;
    FILE *statm = fopen("/proc/self/statm", "re");
    bool known =
        statm != NULL && fscanf(statm, "%llu %llu", &vm_pages, &rss_pages) == 2;
    if (statm != NULL)
        fclose(statm);
    unsigned long long page = (unsigned long long)sysconf(_SC_PAGESIZE);
    if (known)
        snprintf(c[4], sizeof(c[4]), "process: rss=%llu bytes vm=%llu bytes",
                 rss_pages * page, vm_pages * page);
    else /* a chroot without /proc */
        snprintf(c[4], sizeof(c[4]),
                 "process: rss and vm unknown (no /proc/self/statm)");
    /* The running in-use estimate and the peak (?peak=1), its time in
     * UTC as a reader compares it with logs. */
    uint64_t peak_bytes, peak_wall;
    hp_peak_refreshed(&peak_bytes, &peak_wall);
    char when[40] = "none yet";
    time_t peak_sec = (time_t)(peak_wall / 1000000000u);
    struct tm tm;
    char day[24];
    if (peak_wall != 0 && gmtime_r(&peak_sec, &tm) != NULL &&
        strftime(day, sizeof day, "%Y-%m-%dT%H:%M:%S", &tm) != 0)
        snprintf(when, sizeof when, "at %s.%03uZ", day,
                 (unsigned)(peak_wall / 1000000u % 1000u));
    snprintf(c[5], sizeof(c[5]),
             "heapprof in use: %" PRIu64 " bytes (sampled estimate); highest "
             "%" PRIu64 " bytes; peak profile: %" PRIu64
             " bytes %s (labels: %" PRIu64 " sets)",
             hp_peak_inuse_bytes(), hp_peak_highest_bytes(), peak_bytes, when,
             hp_labelsets_count());
    /* Sampled blocks of the malloc front live in the sample range: its
     * pages are the host's blocks, except freed ones kept for reuse and
     * the rest of slots whose blocks a realloc shrank in place. */
    snprintf(c[6], sizeof(c[6]),
             "heapprof sample range: %" PRIu64 " bytes committed, %" PRIu64
             " bytes of freed blocks kept resident, %" PRIu64
             " bytes of slots holding blocks a realloc left unsampled",
             hp_range_committed_bytes(), hp_range_cached_bytes(),
             hp_range_kept_bytes());
    /* How samples' stacks were walked (stack.c, frame_cache.h). */
    uint64_t rules, refused;
    hp_frame_cache_counts(&rules, &refused);
    uint64_t cut = hp_stack_cut_walks();
    char cut_text[96] = "";
    if (cut != 0) /* unwind_guard.h; docs/operations.md */
        snprintf(cut_text, sizeof cut_text,
                 "; %" PRIu64 " cut short where libunwind could not run", cut);
    snprintf(c[7], sizeof(c[7]),
             "heapprof unwinding: %" PRIu64 " stacks walked by libunwind; "
             "frame cache: %" PRIu64 " return addresses, %" PRIu64 " refused%s",
             hp_stack_slow_walks(), rules, refused, cut_text);
    const char *const comments[8] = {c[0], c[1], c[2], c[3],
                                     c[4], c[5], c[6], c[7]};
    struct hp_encode_opts o = {
        .which = which,
        .comments = comments,
        .ncomments = sizeof(comments) / sizeof(comments[0]),
        .maps_path = NULL,
    };
    return hp_pprof_encode(d, &o, sink);
}

int
hp_profile_write(enum heapprof_profile which, const struct heapprof_sink *sink)
{
    struct hp_profile_data d;
    int rc = which == HEAPPROF_PROFILE_PEAK ? hp_profile_collect_peak(&d)
                                            : hp_profile_collect(&d);
    if (rc != 0)
        return rc;
    rc = hp_profile_encode(&d, which, sink);
    hp_profile_data_free(&d);
    return rc;
}
