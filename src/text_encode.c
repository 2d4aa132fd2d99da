/*
 * debug=1 legacy text heap profile. Layout (runtime/pprof writeHeapInternal
 * with jemalloc's heap_v2 tag):
 *   heap profile: I: IB [A: AB] @ heap_v2/R
 *   i: ib [a: ab] @ 0xpc 0xpc ...        one row per bucket, by inuse desc
 *   #\t0xpc\tfunc\tfile:line              symbol comments (ignored by readers)
 *   MAPPED_LIBRARIES:
 *   <contents of /proc/self/maps>
 */
#include "text_encode.h"

#include "live.h"
#include "fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "stats.h"
#include "symbolize.h"

/* Small buffered writer over the sink, so rows cost no sink call each. */
struct tw {
    const struct heapprof_sink *sink;
    int err;
    size_t len;
    char buf[8192];
};

static void
tw_flush(struct tw *w)
{
    if (w->err == 0 && w->len > 0 &&
        w->sink->write(w->sink->ctx, w->buf, w->len) != 0)
        w->err = HEAPPROF_EIO;
    w->len = 0;
}

static void
tw_put(struct tw *w, const char *s, size_t n)
{
    while (n > 0 && w->err == 0) {
        if (w->len == sizeof(w->buf))
            tw_flush(w);
        size_t k = sizeof(w->buf) - w->len;
        if (k > n)
            k = n;
        memcpy(w->buf + w->len, s, k);
        w->len += k;
        s += k;
        n -= k;
    }
}

static void __attribute__((format(printf, 2, 3)))
tw_printf(struct tw *w, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof(line))
        n = sizeof(line) - 1; /* only symbol comments can be this long */
    tw_put(w, line, (size_t)n);
}

void
hp_text_scale(int64_t count, int64_t size, uint64_t rate, int64_t *c_out,
              int64_t *s_out)
{
    /* Bit for bit what pprof does: exp() in double, then truncation. */
    if (count == 0 || size == 0) {
        *c_out = 0;
        *s_out = 0;
        return;
    }
    if (rate <= 1) {
        *c_out = count;
        *s_out = size;
        return;
    }
    double avg = (double)size / (double)count;
    double scale = 1 / (1 - exp(-avg / (double)rate));
    *c_out = (int64_t)((double)count * scale);
    *s_out = (int64_t)((double)size * scale);
}

static double
rel_err(int64_t got, int64_t want)
{
    double d = (double)got - (double)want;
    return fabs(d) / (want != 0 ? fabs((double)want) : 1.0);
}

void
hp_text_preinvert(int64_t c_out, int64_t s_out, uint64_t rate, int64_t *c_in,
                  int64_t *s_in)
{
    /* Readers reject "count 0, bytes > 0" and cannot show negative or
     * zero-byte rows through scaleHeapSample anyway. */
    if (c_out <= 0 || s_out <= 0) {
        *c_in = c_out > 0 ? c_out : 0;
        *s_in = 0;
        return;
    }
    if (rate <= 1) {
        *c_in = c_out;
        *s_in = s_out;
        return;
    }
    /*
     * The reader multiplies a row by 1/p(x), p(x) = 1 - exp(-x/R) with x
     * its average size s/c. Both outputs scale by the same factor, so the
     * ideal row keeps the average x = s_out/c_out and carries c_out * p(x)
     * objects (jemalloc prof_do_unbias). Rows are integers, so for each of
     * the two counts around c_out * p(x) try two byte totals: c * x (the
     * row's average stays the object size, pprof's "bytes" label) and the
     * one whose scaled bytes hit s_out (exact bytes when the count had to
     * be rounded a long way, e.g. one sample of a large block), and keep
     * the candidate whose scaled values land closest to the target.
     */
    double x = (double)s_out / (double)c_out;
    double p = -expm1(-x / (double)rate);
    double cf = (double)c_out * p;
    int64_t best_c = 1, best_s = s_out;
    double best = INFINITY;
    int64_t c_lo = (int64_t)floor(cf);
    for (int64_t c = c_lo; c <= c_lo + 1; c++) {
        if (c < 1)
            continue;
        int64_t cand[3];
        cand[0] = llround((double)c * x);
        /* Largest s whose scaled bytes do not exceed s_out, and the next:
         * scaled bytes grow with s (s / p(s / c) is increasing). */
        int64_t lo = 1, hi = s_out;
        while (lo < hi) {
            int64_t mid = lo + (hi - lo + 1) / 2, gc, gs;
            hp_text_scale(c, mid, rate, &gc, &gs);
            if (gs <= s_out)
                lo = mid;
            else
                hi = mid - 1;
        }
        cand[1] = lo;
        cand[2] = lo + 1;
        for (int k = 0; k < 3; k++) {
            int64_t sv = cand[k] < 1 ? 1 : cand[k], gc, gs;
            hp_text_scale(c, sv, rate, &gc, &gs);
            double e = rel_err(gc, c_out) + rel_err(gs, s_out);
            if (e < best) {
                best = e;
                best_c = c;
                best_s = sv;
            }
        }
    }
    *c_in = best_c;
    *s_in = best_s;
}

struct row {
    const struct hp_profile_entry *e;
    int64_t in_c, in_s, al_c, al_s;
};

static int
row_cmp(const void *a, const void *b)
{
    const struct row *x = a, *y = b;
    /* Go's order: in-use bytes, largest first; then a stable key order. */
    if (x->e->v[HP_V_INUSE_SPACE] != y->e->v[HP_V_INUSE_SPACE])
        return x->e->v[HP_V_INUSE_SPACE] > y->e->v[HP_V_INUSE_SPACE] ? -1 : 1;
    if (x->e->v[HP_V_ALLOC_SPACE] != y->e->v[HP_V_ALLOC_SPACE])
        return x->e->v[HP_V_ALLOC_SPACE] > y->e->v[HP_V_ALLOC_SPACE] ? -1 : 1;
    uintptr_t kx = (uintptr_t)x->e->key, ky = (uintptr_t)y->e->key;
    return kx < ky ? -1 : kx > ky;
}

static void
write_symbols(struct tw *w, const struct hp_profile_entry *e, uint32_t first)
{
    if (e->nframes == 0) {
        tw_printf(w, "#\t[heapprof: table full]\n");
        return;
    }
    for (uint32_t i = first; i < e->nframes; i++) {
        struct hp_symres r;
        uintptr_t pc = e->pcs[i];
        /* Return addresses: the call instruction is at pc - 1. */
        hp_symbolize_lookup(pc > 0 ? pc - 1 : 0, &r);
        const char *file;
        uint64_t vaddr;
        if (r.nframes == 0 && pc > 0 &&
            hp_symbolize_where(pc - 1, &file, &vaddr) == 0) {
            /* No name: the call's file and address there (addr2line). */
            tw_printf(w, "#\t%#" PRIxPTR "\t?\t%s+%#" PRIx64 "\n", pc, file,
                      vaddr);
            continue;
        }
        if (r.nframes == 0) {
            tw_printf(w, "#\t%#" PRIxPTR "\t?\n", pc);
            continue;
        }
        for (uint32_t k = 0; k < r.nframes; k++) {
            const struct hp_symframe *f = &r.frames[k];
            if (f->file != NULL)
                tw_printf(w, "#\t%#" PRIxPTR "\t%s\t%s:%" PRId64 "\n", pc,
                          f->func, f->file, f->line);
            else
                tw_printf(w, "#\t%#" PRIxPTR "\t%s\n", pc, f->func);
        }
    }
}

static void
tw_put_cb(void *w, const char *p, size_t n)
{
    tw_put(w, p, n);
}

/* Readers then build no mappings if it cannot be read; the rows still
 * parse. */
static void
copy_maps(struct tw *w, const char *path)
{
    hp_file_copy(path != NULL ? path : "/proc/self/maps", tw_put_cb, w);
}

int
hp_text_encode(const struct hp_profile_data *d,
               const struct heapprof_sink *sink, const char *maps_path)
{
    struct tw *w = malloc(sizeof(*w));
    struct row *rows = calloc(d->n ? d->n : 1, sizeof(*rows));
    if (w == NULL || rows == NULL) {
        free(w);
        free(rows);
        return HEAPPROF_ENOMEM;
    }
    w->sink = sink;
    w->err = 0;
    w->len = 0;

    int64_t t_in_c = 0, t_in_s = 0, t_al_c = 0, t_al_s = 0;
    for (size_t i = 0; i < d->n; i++) {
        struct row *r = &rows[i];
        const struct hp_profile_entry *e = &d->e[i];
        r->e = e;
        hp_text_preinvert(e->v[HP_V_INUSE_OBJECTS], e->v[HP_V_INUSE_SPACE],
                          d->rate, &r->in_c, &r->in_s);
        hp_text_preinvert(e->v[HP_V_ALLOC_OBJECTS], e->v[HP_V_ALLOC_SPACE],
                          d->rate, &r->al_c, &r->al_s);
        t_in_c += r->in_c;
        t_in_s += r->in_s;
        t_al_c += r->al_c;
        t_al_s += r->al_s;
    }
    if (d->n > 1)
        qsort(rows, d->n, sizeof(*rows), row_cmp);

    /*
     * pprof reads four columns only when the header's alloc pair differs
     * from the in-use pair and is not "0" (legacy_profile.go
     * parseHeapHeader); Go bumps alloc bytes by one for the same reason.
     * The header totals are not used for anything else.
     */
    int64_t h_al_s = t_al_s;
    while ((t_al_c == t_in_c || t_al_c == 0) &&
           (h_al_s == t_in_s || h_al_s == 0))
        h_al_s++;
    tw_printf(w,
              "heap profile: %" PRId64 ": %" PRId64 " [%" PRId64 ": %" PRId64
              "] @ heap_v2/%" PRIu64 "\n",
              t_in_c, t_in_s, t_al_c, h_al_s, d->rate);

    hp_symbolize_begin();
    for (size_t i = 0; i < d->n && w->err == 0; i++) {
        const struct row *r = &rows[i];
        tw_printf(w, "%" PRId64 ": %" PRId64 " [%" PRId64 ": %" PRId64 "] @",
                  r->in_c, r->in_s, r->al_c, r->al_s);
        /* operator new's frames are left out of both lists. */
        uint32_t first = hp_symbolize_entry_frames(r->e->pcs, r->e->nframes);
        for (uint32_t k = first; k < r->e->nframes; k++)
            tw_printf(w, " %#" PRIxPTR, r->e->pcs[k]);
        tw_put(w, "\n", 1);
        write_symbols(w, r->e, first);
        tw_put(w, "\n", 1);
    }
    hp_symbolize_end();

    /* Self-report, as comments: readers skip lines starting with '#'. */
    tw_printf(w, "# heapprof: rate = %" PRIu64 "\n", d->rate);
    tw_printf(w, "# heapprof: samples = %" PRIu64 "\n",
              hp_stat_get(&hp_stats.samples));
    tw_printf(w, "# heapprof: samples_dropped = %" PRIu64 "\n",
              hp_stat_get(&hp_stats.samples_dropped));
    tw_printf(w, "# heapprof: live_samples = %" PRIu64 "\n", hp_live_count());
    tw_printf(w, "\nMAPPED_LIBRARIES:\n");
    copy_maps(w, maps_path);
    tw_flush(w);

    int err = w->err;
    free(w);
    free(rows);
    return err;
}
