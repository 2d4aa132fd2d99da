/*
 * HEAPPROF_LEAK_REPORT=1: at exit (exit() or a return from main; _exit
 * and fatal signals run no destructor), a summary of what is still in use
 * on stderr, as LeakSanitizer and jemalloc's prof_leak print one: the
 * estimated bytes and objects, then the top sites with a few frames each.
 * Estimates come from the sampled blocks still live, un-sampled as in the
 * heap profile; threads still running keep allocating meanwhile, which
 * the numbers may or may not include. Programs that close stderr before
 * exiting (coreutils do) would lose the report, so the descriptor is
 * duplicated at start (hp_leak_report_prepare) and the report goes there.
 */
#define _GNU_SOURCE 1
#include "leak_report.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "profile.h"
#include "stats.h"
#include "symbolize.h"

#define TOP_SITES 5
#define TOP_FRAMES 4
/* Below the descriptors a program usually numbers itself (shells use 10). */
#define FD_MIN 100

static int report_fd = -1;
static char report[8192];
static size_t report_len;

void
hp_leak_report_prepare(void)
{
    if (report_fd >= 0)
        return;
    int saved = errno;
    report_fd = fcntl(2, F_DUPFD_CLOEXEC, FD_MIN);
    errno = saved;
}

static void put(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
put(const char *fmt, ...)
{
    if (report_len >= sizeof report - 1)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(report + report_len, sizeof report - report_len, fmt, ap);
    va_end(ap);
    if (n > 0)
        report_len += (size_t)n < sizeof report - report_len
                          ? (size_t)n
                          : sizeof report - report_len - 1;
}

static void
put_bytes(int64_t b)
{
    if (b >= 1 << 20)
        put("%.1f MiB", (double)b / (1 << 20));
    else if (b >= 1 << 10)
        put("%.1f KiB", (double)b / (1 << 10));
    else
        put("%lld bytes", (long long)b);
}

static int
by_inuse_desc(const void *pa, const void *pb)
{
    const struct hp_profile_entry *a = pa, *b = pb;
    int64_t x = a->v[HP_V_INUSE_SPACE], y = b->v[HP_V_INUSE_SPACE];
    return x < y ? 1 : x > y ? -1 : 0;
}

static int
by_stack(const void *pa, const void *pb)
{
    const struct hp_profile_entry *a = pa, *b = pb;
    if (a->nframes != b->nframes)
        return a->nframes < b->nframes ? -1 : 1;
    return memcmp(a->pcs, b->pcs, a->nframes * sizeof *a->pcs);
}

/*
 * The live entries of d, one per stack (buckets also differ by size and
 * labels), largest first, in place; returns how many, and the totals.
 */
static size_t
live_sites(struct hp_profile_data *d, int64_t *bytes, int64_t *objects)
{
    size_t n = 0;
    *bytes = *objects = 0;
    for (size_t i = 0; i < d->n; i++) {
        if (d->e[i].v[HP_V_INUSE_SPACE] <= 0)
            continue;
        *bytes += d->e[i].v[HP_V_INUSE_SPACE];
        *objects += d->e[i].v[HP_V_INUSE_OBJECTS];
        d->e[n++] = d->e[i];
    }
    qsort(d->e, n, sizeof *d->e, by_stack);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (m > 0 && by_stack(&d->e[m - 1], &d->e[i]) == 0) {
            d->e[m - 1].v[HP_V_INUSE_SPACE] += d->e[i].v[HP_V_INUSE_SPACE];
            d->e[m - 1].v[HP_V_INUSE_OBJECTS] += d->e[i].v[HP_V_INUSE_OBJECTS];
        } else {
            d->e[m++] = d->e[i];
        }
    }
    qsort(d->e, m, sizeof *d->e, by_inuse_desc);
    return m;
}

/* A site's first frames, symbolized (symbolizer session open). */
static void
put_site(const struct hp_profile_entry *e, int64_t total)
{
    put("  ");
    put_bytes(e->v[HP_V_INUSE_SPACE]);
    put(" in %lld objects (%.0f%%) allocated at:\n",
        (long long)e->v[HP_V_INUSE_OBJECTS],
        total > 0 ? 100.0 * (double)e->v[HP_V_INUSE_SPACE] / (double)total : 0);
    if (e->nframes == 0) {
        put("    [heapprof: table full]\n");
        return;
    }
    uint32_t skip = hp_symbolize_entry_frames(e->pcs, e->nframes);
    for (uint32_t i = skip, shown = 0; i < e->nframes && shown < TOP_FRAMES;
         i++, shown++) {
        struct hp_symres r;
        uint64_t call = (uint64_t)e->pcs[i] - 1; /* before the return */
        hp_symbolize_lookup(call, &r);
        const char *file;
        uint64_t vaddr;
        if (r.nframes == 0 && hp_symbolize_where(call, &file, &vaddr) == 0) {
            /* The call's own address in its file, for addr2line -e. */
            put("    #%u 0x%llx (%s+0x%llx)\n", shown,
                (unsigned long long)e->pcs[i], file, (unsigned long long)vaddr);
        } else if (r.nframes == 0) {
            put("    #%u 0x%llx\n", shown, (unsigned long long)e->pcs[i]);
        } else if (r.frames[0].file != NULL) {
            put("    #%u %s (%s:%lld)\n", shown, r.frames[0].func,
                r.frames[0].file, (long long)r.frames[0].line);
        } else {
            put("    #%u %s\n", shown, r.frames[0].func);
        }
    }
}

/* The whole report into `report`; the profile data is collected here. */
static void
build_report(void)
{
    struct hp_profile_data d;
    if (hp_profile_collect(&d) != HEAPPROF_OK) {
        put("heapprof[%d]: leak report: out of memory\n", (int)getpid());
        return;
    }
    int64_t bytes, objects;
    size_t n = live_sites(&d, &bytes, &objects);
    put("heapprof[%d]: leak report: ", (int)getpid());
    if (bytes == 0) {
        put("nothing in use at exit (%llu allocations sampled)\n",
            (unsigned long long)hp_stat_get(&hp_stats.samples));
    } else {
        put_bytes(bytes);
        put(" in %lld objects still in use at exit (estimated from samples, "
            "rate %llu)\n",
            (long long)objects, (unsigned long long)d.rate);
        hp_symbolize_begin();
        for (size_t i = 0; i < n && i < TOP_SITES; i++)
            put_site(&d.e[i], bytes);
        hp_symbolize_end();
        if (n > TOP_SITES)
            put("  ... and %zu more sites\n", n - TOP_SITES);
    }
    hp_profile_data_free(&d);
}

__attribute__((destructor)) static void
leak_report_at_exit(void)
{
    if (!__atomic_load_n(&hp_settings.leak_report, __ATOMIC_RELAXED))
        return;
    int saved = errno;
    hp_fence_enter();
    build_report();
    /* The descriptor kept from start, else stderr if it is still open. */
    int fd = report_fd >= 0 ? report_fd : 2;
    for (size_t done = 0; done < report_len;) {
        ssize_t w = write(fd, report + done, report_len - done);
        if (w <= 0 && errno != EINTR)
            break;
        if (w > 0)
            done += (size_t)w;
    }
    hp_fence_exit();
    errno = saved;
}
