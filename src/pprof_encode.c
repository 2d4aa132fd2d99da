/*
 * The encoder: collected entries in, a Go-style heap profile out, through
 * the profile builder (builder.h). Phases: the samples are streamed first,
 * their return addresses interned as locations on the way (ids in
 * first-use order, address = pc - 1); then mappings are read and each
 * location symbolized once (under the symbolizer lock, strings copied
 * into the builder); then the rest of the profile is packed.
 */
#include "pprof_encode.h"

#include <stdlib.h>
#include <string.h>

#include "builder.h"
#include "labels.h"
#include "log.h"
#include "maps.h"
#include "symbolize.h"

/* What the locations of one mapping got from the symbolizer. */
struct mapflags {
    uint32_t nlocs;
    bool all_funcs, all_files, all_lines;
};

struct enc {
    struct hp_builder b;
    uint64_t overflow_loc; /* 0 until the overflow entry is seen */
    int64_t bytes_key;     /* string index of "bytes" */
    struct hp_maps maps;
    struct mapflags *mflags;
    long *loc_map; /* per location: index into maps.m, -1 = none */
};

/* ------------------------------------------------------------- samples */

/*
 * The location ids of one entry, leaf first, into ids. The overflow bucket
 * (no frames) gets one synthetic frame without an address; a frame of 0 is
 * not a return address and is dropped. Returns the count, or -1 when out
 * of memory.
 */
static long
entry_locations(struct enc *e, const struct hp_profile_entry *en, uint64_t *ids)
{
    size_t n = 0;
    if (en->nframes == 0) {
        if (e->overflow_loc == 0)
            e->overflow_loc = hp_builder_location_new(&e->b, 0);
        if (e->overflow_loc == 0)
            return -1;
        ids[n++] = e->overflow_loc;
    }
    for (uint32_t f = hp_symbolize_entry_frames(en->pcs, en->nframes);
         f < en->nframes; f++) {
        if (en->pcs[f] == 0)
            continue;
        if ((ids[n++] = hp_builder_location_at(&e->b, en->pcs[f])) == 0)
            return -1;
    }
    return (long)n;
}

/*
 * Phase 1: the samples, straight from the entries. Values are Go's four
 * columns; label "bytes" = average sampled size, as Go emits it (with a
 * unit, so that pprof keeps it even when a delta makes it 0), then the
 * bucket's string labels (labels.h).
 */
static int
pack_samples(struct enc *e, const struct hp_profile_data *d)
{
    size_t maxf = 1;
    for (size_t i = 0; i < d->n; i++)
        if (d->e[i].nframes > maxf)
            maxf = d->e[i].nframes;
    uint64_t *ids = malloc(maxf * sizeof(*ids));
    if (ids == NULL)
        return HEAPPROF_ENOMEM;
    int rc = 0;
    for (size_t i = 0; i < d->n && rc == 0; i++) {
        const struct hp_profile_entry *en = &d->e[i];
        struct hp_blabel l[1 + HP_LABELS_MAX];
        size_t nl = 0;
        long n = entry_locations(e, en, ids);
        if (n < 0) {
            rc = HEAPPROF_ENOMEM;
            break;
        }
        int64_t cnt = en->raw[HP_V_ALLOC_OBJECTS];
        int64_t bytes = en->raw[HP_V_ALLOC_SPACE];
        if (cnt > 0 && bytes > 0 && bytes / cnt != 0)
            l[nl++] = (struct hp_blabel){.key = e->bytes_key,
                                         .num = bytes / cnt,
                                         .num_unit = e->bytes_key};
        for (uint32_t k = 0;
             en->labels != NULL && k < en->labels->n && nl < 1 + HP_LABELS_MAX;
             k++)
            l[nl++] = (struct hp_blabel){
                .key = hp_builder_str(&e->b, en->labels->kv[k].key),
                .str = hp_builder_str(&e->b, en->labels->kv[k].value)};
        rc = hp_builder_sample(&e->b, ids, (size_t)n, en->v, HP_NVALUES, l, nl);
    }
    free(ids);
    return rc != 0 ? rc : e->b.err;
}

/* ------------------------------------------------------------- names */

/* Lines for location id from the symbolizer; updates its mapping's flags. */
static void
symbolize_location(struct enc *e, uint64_t id)
{
    struct hp_builder *b = &e->b;
    uint64_t addr = hp_builder_loc(b, id)->addr;
    long map = hp_maps_find(&e->maps, addr);
    e->loc_map[id - 1] = map;
    struct hp_symres r;
    hp_symbolize_lookup(addr, &r);
    bool files = r.nframes > 0, lines = r.nframes > 0;
    for (uint32_t f = 0; f < r.nframes; f++) {
        const struct hp_symframe *sf = &r.frames[f];
        int64_t name = hp_builder_str(b, sf->func);
        int64_t file = hp_builder_str(b, sf->file);
        hp_builder_line(
            b, id, hp_builder_function(b, name, name, file, sf->start_line),
            sf->line);
        files = files && file != 0;
        lines = lines && sf->line > 0;
    }
    if (map >= 0) {
        struct mapflags *mf = &e->mflags[map];
        mf->nlocs++;
        mf->all_funcs = mf->all_funcs && hp_builder_loc(b, id)->nlines > 0;
        mf->all_files = mf->all_files && files;
        mf->all_lines = mf->all_lines && lines;
    }
}

/*
 * Phases 2 and 3: mappings and names for every location. A location no
 * symbol covers stays address-only (no Line) rather than getting a made-up
 * "<object>+0x<offset>" name: pprof shows it as [object], its mapping is
 * not marked has_functions, so pprof can still symbolize it itself (from
 * the binary on disk, or remotely through /debug/pprof/symbol), and such
 * names would never merge with a properly symbolized profile.
 */
static int
symbolize_locations(struct enc *e)
{
    size_t nlocs = e->b.nlocs;
    e->mflags = calloc(e->maps.n ? e->maps.n : 1, sizeof(*e->mflags));
    e->loc_map = malloc((nlocs ? nlocs : 1) * sizeof(*e->loc_map));
    if (e->mflags == NULL || e->loc_map == NULL)
        return HEAPPROF_ENOMEM;
    for (size_t m = 0; m < e->maps.n; m++)
        e->mflags[m] = (struct mapflags){0, true, true, true};

    hp_symbolize_begin();
    for (uint64_t id = 1; id <= nlocs && e->b.err == 0; id++) {
        if (id == e->overflow_loc) {
            int64_t name = hp_builder_str(&e->b, HP_OVERFLOW_FRAME);
            e->loc_map[id - 1] = -1;
            hp_builder_line(&e->b, id,
                            hp_builder_function(&e->b, name, name, 0, 0), 0);
            continue;
        }
        symbolize_location(e, id);
    }
    hp_symbolize_end();
    return e->b.err;
}

/* The mappings in maps order (main executable first), and each location
 * pointed at its own. */
static void
add_mappings(struct enc *e)
{
    uint64_t *ids = calloc(e->maps.n ? e->maps.n : 1, sizeof(*ids));
    if (ids == NULL) {
        e->b.err = HEAPPROF_ENOMEM;
        return;
    }
    for (size_t i = 0; i < e->maps.n; i++) {
        const struct hp_mapping *hm = &e->maps.m[i];
        const struct mapflags *mf = &e->mflags[i];
        hp_pb_mapping m;
        perftools__profiles__mapping__init(&m);
        m.memory_start = hm->start;
        m.memory_limit = hm->limit;
        m.file_offset = hm->offset;
        m.filename = hp_builder_str(&e->b, hm->path);
        m.build_id = hp_builder_str(&e->b, hm->build_id);
        /* Go's rule: a mapping has functions only if every one of its
         * locations got a name; then pprof leaves it alone. */
        m.has_functions = mf->nlocs > 0 && mf->all_funcs;
        m.has_filenames = m.has_functions && mf->all_files;
        m.has_line_numbers = m.has_functions && mf->all_lines;
        /* Inline expansion is done wherever line info was found. */
        m.has_inline_frames = m.has_line_numbers;
        ids[i] = hp_builder_mapping(&e->b, &m);
    }
    for (size_t i = 0; i < e->b.nlocs && e->b.err == 0; i++)
        if (e->loc_map[i] >= 0)
            e->b.locs[i].mapping_id = ids[e->loc_map[i]];
    free(ids);
}

/* Phase 4: Go's four sample types, the period and the comments. */
static int
finish(struct enc *e, const struct hp_profile_data *d,
       const struct hp_encode_opts *o)
{
    static const char *const types[4][2] = {
        {"alloc_objects", "count"},
        {"alloc_space", "bytes"},
        {"inuse_objects", "count"},
        {"inuse_space", "bytes"},
    };
    struct hp_bheader h;
    memset(&h, 0, sizeof(h));
    for (int i = 0; i < 4; i++) {
        h.sample_type[i][0] = hp_builder_str(&e->b, types[i][0]);
        h.sample_type[i][1] = hp_builder_str(&e->b, types[i][1]);
    }
    h.nsample_types = 4;
    h.period_type[0] = hp_builder_str(&e->b, "space");
    h.period_type[1] = hp_builder_str(&e->b, "bytes");
    h.period = (int64_t)d->rate;
    h.time_ns = (int64_t)d->time_ns;
    h.duration_ns = (int64_t)d->duration_ns;
    /* HEAP leaves it unset: pprof then takes the last, inuse_space. */
    if (o->which == HEAPPROF_PROFILE_ALLOCS)
        h.default_sample_type = hp_builder_str(&e->b, "alloc_space");
    int64_t *comments = NULL;
    if (o->ncomments > 0) {
        comments = calloc(o->ncomments, sizeof(*comments));
        if (comments == NULL)
            return HEAPPROF_ENOMEM;
        for (size_t i = 0; i < o->ncomments; i++)
            comments[i] = hp_builder_str(&e->b, o->comments[i]);
        h.comments = comments;
        h.ncomments = o->ncomments;
    }
    add_mappings(e);
    int rc = hp_builder_finish(&e->b, &h);
    free(comments);
    return rc;
}

int
hp_pprof_encode(const struct hp_profile_data *d,
                const struct hp_encode_opts *opts,
                const struct heapprof_sink *sink)
{
    if (sink == NULL || sink->write == NULL || d == NULL || opts == NULL)
        return HEAPPROF_EINVAL;
    struct enc e;
    memset(&e, 0, sizeof(e));
    int rc = hp_builder_init(&e.b, sink);
    if (rc == 0) {
        e.bytes_key = hp_builder_str(&e.b, "bytes");
        /* The samples' leaf frames are looked up to skip operator new. */
        hp_symbolize_begin();
        rc = pack_samples(&e, d);
        hp_symbolize_end();
    }
    if (rc == 0)
        rc = hp_maps_read(&e.maps, opts->maps_path);
    if (rc == 0)
        rc = symbolize_locations(&e);
    if (rc == 0)
        rc = finish(&e, d, opts);
    if (rc == HEAPPROF_ENOMEM)
        hp_log_profile_oom("while encoding");
    hp_builder_free(&e.b);
    free(e.mflags);
    free(e.loc_map);
    hp_maps_free(&e.maps);
    return rc;
}
