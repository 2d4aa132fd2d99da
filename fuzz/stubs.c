/*
 * What http.c and text_encode.c need from the rest of heapprof, as small
 * deterministic stand-ins for the fuzzer: a three-bucket profile whose
 * values grow on every collection, an encoder that writes a few bytes, a
 * symbolizer that knows one address range.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ialloc.h"
#include "live.h"
#include "profile.h"
#include "stats.h"
#include "symbolize.h"

/* seconds=N copies are charged to the budget: every other one is refused,
 * so the fuzzer reaches both answers. */
bool
hp_ialloc_charge(uint64_t size)
{
    static unsigned n;
    (void)size;
    return n++ % 2 == 0;
}

void
hp_ialloc_uncharge(uint64_t size)
{
    (void)size;
}

uint64_t
hp_live_count(void)
{
    return 3;
}

static const uintptr_t pcs_a[] = {0x401000, 0x402000, 0x403000};
static const uintptr_t pcs_b[] = {0x404000};
static int64_t tick;

const char *
heapprof_version_string(void)
{
    return "0.0.0-fuzz";
}

int
hp_profile_collect(struct hp_profile_data *out)
{
    memset(out, 0, sizeof(*out));
    out->e = calloc(3, sizeof(*out->e));
    if (out->e == NULL)
        return HEAPPROF_ENOMEM;
    tick++;
    int64_t vals[3][4] = {
        {10 * tick, 10240 * tick, 5, 5120},
        {65536, 524292, 65536, 524292},
        {1, 829411 + tick, 0, 0},
    };
    for (int i = 0; i < 3; i++) {
        struct hp_profile_entry *e = &out->e[i];
        e->key = &pcs_a[i];
        e->pcs = i == 1 ? pcs_b : pcs_a;
        e->nframes = i == 2 ? 0 : (i == 1 ? 1 : 3);
        memcpy(e->v, vals[i], sizeof(e->v));
        memcpy(e->raw, vals[i], sizeof(e->raw));
    }
    out->n = 3;
    out->rate = (tick % 3 == 0) ? 1 : 524288;
    out->time_ns = (uint64_t)tick * 1000000000u;
    return 0;
}

/* The heap profile's other views reach the encoder the same way. */
int
hp_profile_collect_aged(struct hp_profile_data *out, uint64_t min_age_ns)
{
    (void)min_age_ns;
    return hp_profile_collect(out);
}

int
hp_profile_collect_peak(struct hp_profile_data *out)
{
    return hp_profile_collect(out);
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
    char b[64];
    int n = snprintf(b, sizeof(b), "\x1f\x8b proto %zu %d", d->n, (int)which);
    return sink->write(sink->ctx, b, (size_t)n) ? HEAPPROF_EIO : 0;
}

int
hp_symbolize_name(uintptr_t addr, char *buf, size_t cap)
{
    if (addr < 0x400000 || addr >= 0x410000)
        return -1;
    snprintf(buf, cap, "func_%lx", (unsigned long)(addr >> 12));
    return 0;
}

int
hp_symbolize_begin(void)
{
    return 0;
}

void
hp_symbolize_lookup(uint64_t addr, struct hp_symres *out)
{
    static struct hp_symframe f = {"stub_function", "stub.c", 7, 1};
    out->frames = &f;
    out->nframes = addr >= 0x402000 ? 1 : 0;
}

int
hp_symbolize_where(uint64_t addr, const char **file, uint64_t *vaddr)
{
    /* Unnamed addresses of the fake program have a file, half of them. */
    if ((addr & 1) != 0)
        return -1;
    *file = "/stub/program";
    *vaddr = addr - 0x400000;
    return 0;
}

uint32_t
hp_symbolize_entry_frames(const uintptr_t *pcs, uint32_t n)
{
    (void)pcs;
    (void)n;
    return 0;
}

void
hp_symbolize_end(void)
{
}
