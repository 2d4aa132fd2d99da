/*
 * Builds the protobuf-c object graph of one profile and streams it, packed,
 * through gzip into a sink. Phases: dedup return addresses into locations
 * (address = pc - 1), attach mappings, symbolize each location once (under
 * the symbolizer lock, copying strings out), then pack. Ids are 1..N in
 * table order; string_table[0] is "".
 */
#include "pprof_encode.h"

#include "labels.h"

#include <stdlib.h>
#include <string.h>

#include "gzip_sink.h"
#include "log.h"
#include "maps.h"
#include "profile.pb-c.h"
#include "symbolize.h"
#include "utf8.h"

#define ARENA_CHUNK 65536
#define PACK_BUF 65536

/* ------------------------------------------------------------- arena */

struct achunk {
    struct achunk *next;
    size_t used, cap;
    char data[];
};

static char *
arena_strdup(struct achunk **head, const char *s)
{
    size_t len = strlen(s) + 1;
    struct achunk *c = *head;
    if (c == NULL || c->cap - c->used < len) {
        size_t cap = len > ARENA_CHUNK ? len : ARENA_CHUNK;
        c = malloc(sizeof(*c) + cap);
        if (c == NULL)
            return NULL;
        c->cap = cap;
        c->used = 0;
        c->next = *head;
        *head = c;
    }
    char *p = c->data + c->used;
    memcpy(p, s, len);
    c->used += len;
    return p;
}

static void
arena_free(struct achunk **head)
{
    while (*head != NULL) {
        struct achunk *next = (*head)->next;
        free(*head);
        *head = next;
    }
}

/* ------------------------------------------------------------- context */

struct loc {
    uint64_t addr;
    long map;                   /* index into maps.m, -1 = none */
    uint32_t line0, nlines;     /* slice of enc.lines */
};

struct lslot {
    uint64_t pc;                /* 0 = empty */
    uint64_t id;
};

struct pline {
    uint64_t func_id;
    int64_t line;
};

struct pfunc {
    int64_t name, file, start_line;
};

struct mapflags {
    uint32_t nlocs;
    bool all_funcs, all_files, all_lines;
};

struct enc {
    bool oom;
    /* String table: v[i] are arena copies; slot holds index + 1. */
    char **strs;
    size_t nstrs, capstrs;
    uint32_t *sslot;
    size_t sslotcap;
    struct achunk *arena;
    /* Locations, keyed by return address (pc); value = index + 1. */
    struct loc *locs;
    size_t nlocs, caplocs;
    struct lslot *lslots;       /* key and value side by side: one miss */
    size_t lcap;
    long overflow_loc;          /* -1 until the overflow entry is seen */
    /* Lines and functions. */
    struct pline *lines;
    size_t nlines, caplines;
    struct pfunc *funcs;
    size_t nfuncs, capfuncs;
    uint32_t *fslot;            /* function id, 0 = empty */
    size_t fslotcap;
    int64_t bytes_key;          /* string index of "bytes" */
    struct hp_maps maps;
    struct mapflags *mflags;
};

/* Grow *arr (of *cap elements of size sz) to hold need elements. */
static bool
grow(struct enc *e, void **arr, size_t *cap, size_t need, size_t sz)
{
    if (need <= *cap)
        return true;
    size_t ncap = *cap ? *cap : 64;
    while (ncap < need)
        ncap *= 2;
    void *p = realloc(*arr, ncap * sz);
    if (p == NULL) {
        e->oom = true;
        return false;
    }
    *arr = p;
    *cap = ncap;
    return true;
}

static uint64_t
hash_bytes(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static inline uint64_t
mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return x;
}

/* Slot of a return address in a table of 2^k slots (mask = 2^k - 1):
 * Fibonacci hashing keeps the top bits, which every pc bit reaches. */
static inline size_t
pc_slot(uint64_t pc, size_t mask)
{
    return (size_t)((pc * 0x9e3779b97f4a7c15ull) >> 32) & mask;
}

/* ------------------------------------------------------------- strings */

static bool
str_rehash(struct enc *e)
{
    size_t ncap = e->sslotcap ? e->sslotcap * 2 : 1024;
    uint32_t *n = calloc(ncap, sizeof(*n));
    if (n == NULL) {
        e->oom = true;
        return false;
    }
    for (size_t i = 0; i < e->nstrs; i++) {
        size_t j = hash_bytes(e->strs[i]) & (ncap - 1);
        while (n[j] != 0)
            j = (j + 1) & (ncap - 1);
        n[j] = (uint32_t)i + 1;
    }
    free(e->sslot);
    e->sslot = n;
    e->sslotcap = ncap;
    return true;
}

/*
 * Index of s in the string table, adding a sanitized copy if new. On
 * allocation failure sets e->oom and returns 0 (the empty string), so
 * callers need not check each call.
 */
static int64_t
str_index(struct enc *e, const char *s)
{
    if (s == NULL || s[0] == '\0')
        return 0;
    if (!hp_utf8_valid(s)) {
        /* Rare (odd paths): intern the sanitized form instead. */
        char *tmp = strdup(s);
        if (tmp == NULL) {
            e->oom = true;
            return 0;
        }
        hp_utf8_sanitize(tmp);
        int64_t idx = str_index(e, tmp);
        free(tmp);
        return idx;
    }
    if ((e->nstrs + 1) * 2 > e->sslotcap && !str_rehash(e))
        return 0;
    size_t j = hash_bytes(s) & (e->sslotcap - 1);
    while (e->sslot[j] != 0) {
        if (strcmp(e->strs[e->sslot[j] - 1], s) == 0)
            return e->sslot[j] - 1;
        j = (j + 1) & (e->sslotcap - 1);
    }
    if (!grow(e, (void **)&e->strs, &e->capstrs, e->nstrs + 1,
              sizeof(*e->strs)))
        return 0;
    char *copy = arena_strdup(&e->arena, s);
    if (copy == NULL) {
        e->oom = true;
        return 0;
    }
    e->strs[e->nstrs] = copy;
    e->sslot[j] = (uint32_t)++e->nstrs;
    return (int64_t)e->nstrs - 1;
}

/* ------------------------------------------------------------- locations */

static bool
loc_rehash(struct enc *e)
{
    size_t ncap = e->lcap ? e->lcap * 2 : 4096;
    struct lslot *n = calloc(ncap, sizeof(*n));
    if (n == NULL) {
        e->oom = true;
        return false;
    }
    for (size_t i = 0; i < e->lcap; i++) {
        if (e->lslots[i].pc == 0)
            continue;
        size_t j = pc_slot(e->lslots[i].pc, ncap - 1);
        while (n[j].pc != 0)
            j = (j + 1) & (ncap - 1);
        n[j] = e->lslots[i];
    }
    free(e->lslots);
    e->lslots = n;
    e->lcap = ncap;
    return true;
}

static long
new_loc(struct enc *e, uint64_t addr)
{
    if (!grow(e, (void **)&e->locs, &e->caplocs, e->nlocs + 1,
              sizeof(*e->locs)))
        return -1;
    e->locs[e->nlocs] = (struct loc){ addr, -1, 0, 0 };
    return (long)e->nlocs++;
}

/* Location id (1-based) for return address pc; 0 on allocation failure. */
static inline uint64_t
loc_id(struct enc *e, uintptr_t pc)
{
    if ((e->nlocs + 1) * 2 > e->lcap && !loc_rehash(e))
        return 0;
    size_t j = pc_slot(pc, e->lcap - 1);
    while (e->lslots[j].pc != 0) {
        if (e->lslots[j].pc == pc)
            return e->lslots[j].id;
        j = (j + 1) & (e->lcap - 1);
    }
    /* A return address points after the call: pc - 1 is inside it. */
    long i = new_loc(e, (uint64_t)pc - 1);
    if (i < 0)
        return 0;
    e->lslots[j].pc = pc;
    e->lslots[j].id = (uint64_t)i + 1;
    return (uint64_t)i + 1;
}

/* ------------------------------------------------------------- functions */

static uint64_t
func_hash(int64_t name, int64_t file, int64_t start)
{
    return mix64((uint64_t)name * 0x9e3779b97f4a7c15ull ^
                 (uint64_t)file * 0xc2b2ae3d27d4eb4full ^ (uint64_t)start);
}

static bool
func_rehash(struct enc *e)
{
    size_t ncap = e->fslotcap ? e->fslotcap * 2 : 1024;
    uint32_t *n = calloc(ncap, sizeof(*n));
    if (n == NULL) {
        e->oom = true;
        return false;
    }
    for (size_t i = 0; i < e->nfuncs; i++) {
        const struct pfunc *f = &e->funcs[i];
        size_t j = func_hash(f->name, f->file, f->start_line) & (ncap - 1);
        while (n[j] != 0)
            j = (j + 1) & (ncap - 1);
        n[j] = (uint32_t)i + 1;
    }
    free(e->fslot);
    e->fslot = n;
    e->fslotcap = ncap;
    return true;
}

/* Function id for (name, file, start_line) string indices; 0 on OOM. */
static uint64_t
func_id(struct enc *e, int64_t name, int64_t file, int64_t start)
{
    if ((e->nfuncs + 1) * 2 > e->fslotcap && !func_rehash(e))
        return 0;
    size_t j = func_hash(name, file, start) & (e->fslotcap - 1);
    while (e->fslot[j] != 0) {
        const struct pfunc *f = &e->funcs[e->fslot[j] - 1];
        if (f->name == name && f->file == file && f->start_line == start)
            return e->fslot[j];
        j = (j + 1) & (e->fslotcap - 1);
    }
    if (!grow(e, (void **)&e->funcs, &e->capfuncs, e->nfuncs + 1,
              sizeof(*e->funcs)))
        return 0;
    e->funcs[e->nfuncs] = (struct pfunc){ name, file, start };
    e->fslot[j] = (uint32_t)++e->nfuncs;
    return e->nfuncs;
}

static void
add_line(struct enc *e, struct loc *l, uint64_t fid, int64_t line)
{
    if (fid == 0 ||
        !grow(e, (void **)&e->lines, &e->caplines, e->nlines + 1,
              sizeof(*e->lines)))
        return;
    if (l->nlines == 0)
        l->line0 = (uint32_t)e->nlines;
    e->lines[e->nlines++] = (struct pline){ fid, line };
    l->nlines++;
}

/* ------------------------------------------------------------- phases */

/*
 * Phases 2 and 3: mappings and names for every location. A location no
 * symbol covers stays address-only (no Line) rather than getting a made-up
 * "<object>+0x<offset>" name: pprof shows it as [object], its mapping is
 * not marked has_functions, so pprof can still symbolize it itself (from
 * the binary on disk, or remotely through /debug/pprof/symbol), and such
 * names would never merge with a properly symbolized profile.
 */
static void
symbolize_locations(struct enc *e)
{
    e->mflags = calloc(e->maps.n ? e->maps.n : 1, sizeof(*e->mflags));
    if (e->mflags == NULL) {
        e->oom = true;
        return;
    }
    for (size_t m = 0; m < e->maps.n; m++)
        e->mflags[m] = (struct mapflags){ 0, true, true, true };

    hp_symbolize_begin();
    for (size_t i = 0; i < e->nlocs && !e->oom; i++) {
        struct loc *l = &e->locs[i];
        if ((long)i == e->overflow_loc) {
            int64_t name = str_index(e, HP_OVERFLOW_FRAME);
            add_line(e, l, func_id(e, name, 0, 0), 0);
            continue;
        }
        l->map = hp_maps_find(&e->maps, l->addr);
        struct hp_symres r;
        hp_symbolize_lookup(l->addr, &r);
        bool files = r.nframes > 0, lines = r.nframes > 0;
        for (uint32_t f = 0; f < r.nframes; f++) {
            const struct hp_symframe *sf = &r.frames[f];
            int64_t name = str_index(e, sf->func);
            int64_t file = str_index(e, sf->file);
            add_line(e, l, func_id(e, name, file, sf->start_line), sf->line);
            files = files && file != 0;
            lines = lines && sf->line > 0;
        }
        if (l->map >= 0) {
            struct mapflags *mf = &e->mflags[l->map];
            mf->nlocs++;
            mf->all_funcs = mf->all_funcs && l->nlines > 0;
            mf->all_files = mf->all_files && files;
            mf->all_lines = mf->all_lines && lines;
        }
    }
    hp_symbolize_end();
}

/* ------------------------------------------------------------- packing */

struct packbuf {
    ProtobufCBuffer base;
    struct hp_gzip gz;
    size_t n;
    uint8_t buf[PACK_BUF];
};

static void
pack_flush(struct packbuf *p)
{
    if (p->n > 0)
        hp_gzip_write(&p->gz, p->buf, p->n);
    p->n = 0;
}

/* protobuf-c hands out many tiny pieces: batch them before deflate. */
static void
pack_append(ProtobufCBuffer *b, size_t len, const uint8_t *data)
{
    struct packbuf *p = (struct packbuf *)b;
    if (p->n + len > sizeof(p->buf))
        pack_flush(p);
    if (len >= sizeof(p->buf)) {
        hp_gzip_write(&p->gz, data, len);
        return;
    }
    memcpy(p->buf + p->n, data, len);
    p->n += len;
}

static size_t
put_varint(uint8_t *b, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        b[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    b[n++] = (uint8_t)v;
    return n;
}

/*
 * Phase 1: the samples, packed first and straight from the entries; the
 * locations they use are numbered on the way (ids in first-use order,
 * deduplicated by return address), so memory stays proportional to the
 * number of distinct addresses rather than to buckets x depth.
 *
 * Each sample is one Profile.sample field (tag 2, length-delimited) packed
 * by protobuf-c into a reused flat buffer. A protobuf message may list its
 * fields in any order and repeated fields accumulate, so these records
 * followed by the rest of the Profile are exactly the packed Profile (Go's
 * encoder also writes samples first). Values are Go's four columns;
 * location ids leaf first; label "bytes" = average sampled size, as Go
 * emits it (with a unit, so that pprof keeps it even when a delta makes
 * it 0).
 */
static int
pack_samples(struct enc *e, const struct hp_profile_data *d,
             struct packbuf *pk)
{
    /* Bound of one packed Sample: 10 bytes per varint plus field headers
     * and the label; HDR bytes in front for its own tag and length. */
    enum { HDR = 11 };
    size_t maxf = 1;
    for (size_t i = 0; i < d->n; i++)
        if (d->e[i].nframes > maxf)
            maxf = d->e[i].nframes;
    uint64_t *ids = malloc(maxf * sizeof(*ids));
    /* Labels: at most HP_LABELS_MAX pairs of string indexes (varints)
     * with their headers, beside "bytes". */
    uint8_t *buf = malloc(HDR + 10 * maxf + 256 + HP_LABELS_MAX * 32);
    if (ids == NULL || buf == NULL || !loc_rehash(e))
        goto oom;
    for (size_t i = 0; i < d->n && pk->gz.err == 0; i++) {
        const struct hp_profile_entry *en = &d->e[i];
        Perftools__Profiles__Sample s;
        /* "bytes", then the bucket's string labels (labels.h). */
        Perftools__Profiles__Label l[1 + HP_LABELS_MAX], *lp[1 + HP_LABELS_MAX];
        size_t nl = 0;
        int64_t v[HP_NVALUES];
        perftools__profiles__sample__init(&s);
        size_t n = 0;
        if (en->nframes == 0) {
            /* The overflow bucket: one synthetic frame, no address. */
            if (e->overflow_loc < 0)
                e->overflow_loc = new_loc(e, 0);
            if (e->overflow_loc < 0)
                goto oom;
            ids[n++] = (uint64_t)e->overflow_loc + 1;
        }
        for (uint32_t f = hp_symbolize_entry_frames(en->pcs, en->nframes);
             f < en->nframes; f++) {
            /* 0 is not a return address (and is the table's empty key):
             * such frames are dropped. */
            if (en->pcs[f] == 0)
                continue;
            if ((ids[n++] = loc_id(e, en->pcs[f])) == 0)
                goto oom;
        }
        s.n_location_id = n;
        s.location_id = ids;
        memcpy(v, en->v, sizeof(v));
        s.n_value = HP_NVALUES;
        s.value = v;
        int64_t cnt = en->raw[HP_V_ALLOC_OBJECTS];
        int64_t bytes = en->raw[HP_V_ALLOC_SPACE];
        if (cnt > 0 && bytes > 0 && bytes / cnt != 0) {
            perftools__profiles__label__init(&l[nl]);
            l[nl].key = e->bytes_key;
            l[nl].num = bytes / cnt;
            l[nl].num_unit = e->bytes_key;
            nl++;
        }
        for (uint32_t k = 0; en->labels != NULL && k < en->labels->n &&
                             nl < 1 + HP_LABELS_MAX;
             k++) {
            perftools__profiles__label__init(&l[nl]);
            l[nl].key = str_index(e, en->labels->kv[k].key);
            l[nl].str = str_index(e, en->labels->kv[k].value);
            nl++;
        }
        for (size_t k = 0; k < nl; k++)
            lp[k] = &l[k];
        s.n_label = nl;
        s.label = nl > 0 ? lp : NULL;
        size_t len = perftools__profiles__sample__pack(&s, buf + HDR);
        uint8_t hdr[HDR];
        size_t h = 0;
        hdr[h++] = (2 << 3) | PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED;
        h += put_varint(hdr + h, len);
        memcpy(buf + HDR - h, hdr, h);
        pack_append(&pk->base, h + len, buf + HDR - h);
    }
    free(ids);
    free(buf);
    return 0;
oom:
    e->oom = true;
    free(ids);
    free(buf);
    return HEAPPROF_ENOMEM;
}

/* The protobuf-c object graph; all arrays owned here. */
struct pb {
    Perftools__Profiles__ValueType st[4], *stp[4], period_type;
    Perftools__Profiles__Mapping *maps, **mapp;
    Perftools__Profiles__Location *locs, **locp;
    Perftools__Profiles__Line *lines, **linep;
    Perftools__Profiles__Function *funcs, **funcp;
    int64_t *comments;
};

static void
pb_free(struct pb *pb)
{
    free(pb->maps);
    free(pb->mapp);
    free(pb->locs);
    free(pb->locp);
    free(pb->lines);
    free(pb->linep);
    free(pb->funcs);
    free(pb->funcp);
    free(pb->comments);
}

static void *
xcalloc(struct enc *e, size_t n, size_t sz)
{
    void *p = calloc(n ? n : 1, sz);
    if (p == NULL)
        e->oom = true;
    return p;
}

/*
 * Phase 4: the protobuf-c structs of everything but the samples; strings
 * must all be interned before packing.
 */
static void
build(struct enc *e, struct pb *pb, Perftools__Profiles__Profile *prof,
      const struct hp_profile_data *d, const struct hp_encode_opts *o)
{
    static const char *const types[4][2] = {
        { "alloc_objects", "count" },
        { "alloc_space", "bytes" },
        { "inuse_objects", "count" },
        { "inuse_space", "bytes" },
    };
    for (int i = 0; i < 4; i++) {
        perftools__profiles__value_type__init(&pb->st[i]);
        pb->st[i].type = str_index(e, types[i][0]);
        pb->st[i].unit = str_index(e, types[i][1]);
        pb->stp[i] = &pb->st[i];
    }
    perftools__profiles__value_type__init(&pb->period_type);
    pb->period_type.type = str_index(e, "space");
    pb->period_type.unit = str_index(e, "bytes");

    prof->n_sample_type = 4;
    prof->sample_type = pb->stp;
    prof->period_type = &pb->period_type;
    prof->period = (int64_t)d->rate;
    prof->time_nanos = (int64_t)d->time_ns;
    prof->duration_nanos = (int64_t)d->duration_ns;
    if (o->which == HEAPPROF_PROFILE_ALLOCS)
        prof->default_sample_type = str_index(e, "alloc_space");

    if (o->ncomments > 0) {
        pb->comments = xcalloc(e, o->ncomments, sizeof(*pb->comments));
        if (pb->comments == NULL)
            return;
        for (size_t i = 0; i < o->ncomments; i++)
            pb->comments[i] = str_index(e, o->comments[i]);
        prof->n_comment = o->ncomments;
        prof->comment = pb->comments;
    }

    /* Mappings in maps order (main executable first), ids 1..M. */
    size_t nm = e->maps.n;
    pb->maps = xcalloc(e, nm, sizeof(*pb->maps));
    pb->mapp = xcalloc(e, nm, sizeof(*pb->mapp));
    if (e->oom)
        return;
    for (size_t i = 0; i < nm; i++) {
        const struct hp_mapping *hm = &e->maps.m[i];
        const struct mapflags *mf = &e->mflags[i];
        Perftools__Profiles__Mapping *m = &pb->maps[i];
        perftools__profiles__mapping__init(m);
        m->id = i + 1;
        m->memory_start = hm->start;
        m->memory_limit = hm->limit;
        m->file_offset = hm->offset;
        m->filename = str_index(e, hm->path);
        m->build_id = str_index(e, hm->build_id);
        /* Go's rule: a mapping has functions only if every one of its
         * locations got a name; then pprof leaves it alone. */
        m->has_functions = mf->nlocs > 0 && mf->all_funcs;
        m->has_filenames = m->has_functions && mf->all_files;
        m->has_line_numbers = m->has_functions && mf->all_lines;
        /* Inline expansion is done wherever line info was found. */
        m->has_inline_frames = m->has_line_numbers;
        pb->mapp[i] = m;
    }
    prof->n_mapping = nm;
    prof->mapping = pb->mapp;

    pb->lines = xcalloc(e, e->nlines, sizeof(*pb->lines));
    pb->linep = xcalloc(e, e->nlines, sizeof(*pb->linep));
    pb->locs = xcalloc(e, e->nlocs, sizeof(*pb->locs));
    pb->locp = xcalloc(e, e->nlocs, sizeof(*pb->locp));
    pb->funcs = xcalloc(e, e->nfuncs, sizeof(*pb->funcs));
    pb->funcp = xcalloc(e, e->nfuncs, sizeof(*pb->funcp));
    if (e->oom)
        return;
    for (size_t i = 0; i < e->nlines; i++) {
        perftools__profiles__line__init(&pb->lines[i]);
        pb->lines[i].function_id = e->lines[i].func_id;
        pb->lines[i].line = e->lines[i].line;
        pb->linep[i] = &pb->lines[i];
    }
    for (size_t i = 0; i < e->nlocs; i++) {
        const struct loc *l = &e->locs[i];
        Perftools__Profiles__Location *pl = &pb->locs[i];
        perftools__profiles__location__init(pl);
        pl->id = i + 1;
        pl->mapping_id = l->map >= 0 ? (uint64_t)l->map + 1 : 0;
        pl->address = l->addr;
        pl->n_line = l->nlines;
        pl->line = l->nlines ? &pb->linep[l->line0] : NULL;
        pb->locp[i] = pl;
    }
    prof->n_location = e->nlocs;
    prof->location = pb->locp;
    for (size_t i = 0; i < e->nfuncs; i++) {
        Perftools__Profiles__Function *f = &pb->funcs[i];
        perftools__profiles__function__init(f);
        f->id = i + 1;
        f->name = e->funcs[i].name;
        f->system_name = e->funcs[i].name;
        f->filename = e->funcs[i].file;
        f->start_line = e->funcs[i].start_line;
        pb->funcp[i] = f;
    }
    prof->n_function = e->nfuncs;
    prof->function = pb->funcp;
}

static void
enc_free(struct enc *e)
{
    free(e->strs);
    free(e->sslot);
    arena_free(&e->arena);
    free(e->locs);
    free(e->lslots);
    free(e->lines);
    free(e->funcs);
    free(e->fslot);
    free(e->mflags);
    hp_maps_free(&e->maps);
}

int
hp_pprof_encode(const struct hp_profile_data *d,
                const struct hp_encode_opts *opts,
                const struct heapprof_sink *sink)
{
    struct enc e;
    struct pb pb;
    struct packbuf *pk = NULL;
    Perftools__Profiles__Profile prof;
    bool gz_open = false;
    int rc;

    memset(&e, 0, sizeof(e));
    memset(&pb, 0, sizeof(pb));
    e.overflow_loc = -1;
    perftools__profiles__profile__init(&prof);
    if (sink == NULL || sink->write == NULL || d == NULL || opts == NULL)
        return HEAPPROF_EINVAL;

    /* string_table[0] must be "". */
    e.strs = malloc(64 * sizeof(*e.strs));
    e.capstrs = 64;
    if (e.strs == NULL || !str_rehash(&e)) {
        rc = HEAPPROF_ENOMEM;
        goto out;
    }
    e.strs[0] = "";
    e.nstrs = 1;

    e.bytes_key = str_index(&e, "bytes");

    pk = malloc(sizeof(*pk));
    if (pk == NULL) {
        rc = HEAPPROF_ENOMEM;
        goto out;
    }
    pk->base.append = pack_append;
    pk->n = 0;
    /* Level 1 is Go's gzip.BestSpeed. */
    rc = hp_gzip_init(&pk->gz, sink, 1);
    if (rc != 0)
        goto out;
    gz_open = true;
    /* The samples' leaf frames are looked up to skip operator new. */
    hp_symbolize_begin();
    rc = pack_samples(&e, d, pk);
    hp_symbolize_end();
    if (rc != 0 || pk->gz.err != 0)
        goto out;
    rc = hp_maps_read(&e.maps, opts->maps_path);
    if (rc != 0)
        goto out;
    symbolize_locations(&e);
    build(&e, &pb, &prof, d, opts);
    if (e.oom) {
        rc = HEAPPROF_ENOMEM;
        goto out;
    }
    prof.n_string_table = e.nstrs;
    prof.string_table = e.strs;
    protobuf_c_message_pack_to_buffer(&prof.base, &pk->base);
    pack_flush(pk);
    gz_open = false;
    rc = hp_gzip_finish(&pk->gz);
out:
    if (gz_open) {
        /* A sink failure wins over what it caused. */
        if (pk->gz.err != 0)
            rc = pk->gz.err;
        hp_gzip_abort(&pk->gz);
    }
    if (rc == HEAPPROF_ENOMEM)
        hp_log_once(encode_oom, "profile: out of memory while encoding");
    free(pk);
    pb_free(&pb);
    enc_free(&e);
    return rc;
}
