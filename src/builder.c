/*
 * The profile builder (builder.h): interning tables over table.h, the
 * streamed samples, and the protobuf-c object graph of everything else,
 * packed through one batching adapter into gzip.
 */
#include "builder.h"

#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "gzip_sink.h"
#include "utf8.h"

#define PACK_BUF 65536

/* ------------------------------------------------------------- output */

/* protobuf-c hands out many tiny pieces: batch them before deflate. */
struct hp_pbgz {
    ProtobufCBuffer base;
    struct hp_gzip gz;
    bool open; /* deflateInit2 done, finish or abort due */
    size_t n;
    uint8_t buf[PACK_BUF];
};

static void
pbgz_flush(struct hp_pbgz *p)
{
    if (p->n > 0)
        hp_gzip_write(&p->gz, p->buf, p->n);
    p->n = 0;
}

static void
pbgz_append(ProtobufCBuffer *base, size_t len, const uint8_t *data)
{
    struct hp_pbgz *p = (struct hp_pbgz *)base;
    if (p->n + len > sizeof(p->buf))
        pbgz_flush(p);
    if (len >= sizeof(p->buf)) {
        hp_gzip_write(&p->gz, data, len);
        return;
    }
    memcpy(p->buf + p->n, data, len);
    p->n += len;
}

int
hp_builder_init(struct hp_builder *b, const struct heapprof_sink *sink)
{
    memset(b, 0, sizeof(*b));
    if (sink == NULL || sink->write == NULL)
        return b->err = HEAPPROF_EINVAL;
    /* string_table[0] must be "". */
    if (!hp_grow((void **)&b->strs, &b->capstrs, 64, sizeof(*b->strs)) ||
        (b->out = malloc(sizeof(*b->out))) == NULL)
        return b->err = HEAPPROF_ENOMEM;
    b->strs[0] = "";
    b->nstrs = 1;
    b->out->base.append = pbgz_append;
    b->out->n = 0;
    b->out->open = false;
    /* Level 1 is Go's gzip.BestSpeed. */
    int rc = hp_gzip_init(&b->out->gz, sink, 1);
    if (rc != 0)
        return b->err = rc;
    b->out->open = true;
    return 0;
}

static bool
oom(struct hp_builder *b)
{
    if (b->err == 0)
        b->err = HEAPPROF_ENOMEM;
    return false;
}

/* ------------------------------------------------------------- strings */

static bool
str_eq(const void *ctx, uint64_t val)
{
    const struct hp_builder *b = ((const void *const *)ctx)[0];
    return strcmp(b->strs[val - 1], ((const char *const *)ctx)[1]) == 0;
}

int64_t
hp_builder_str(struct hp_builder *b, const char *s)
{
    if (s == NULL || s[0] == '\0' || b->err != 0)
        return 0;
    if (!hp_utf8_valid(s)) {
        /* Rare (odd paths): intern the sanitized form instead. */
        char *tmp = strdup(s);
        if (tmp == NULL)
            return oom(b);
        hp_utf8_sanitize(tmp);
        int64_t idx = hp_builder_str(b, tmp);
        free(tmp);
        return idx;
    }
    if (!hp_itab_reserve(&b->str_tab))
        return oom(b);
    uint64_t h = hp_hash_str(s);
    const void *ctx[2] = {b, s};
    struct hp_islot *slot = hp_itab_find(&b->str_tab, h, str_eq, ctx);
    if (slot->val != 0)
        return (int64_t)slot->val - 1;
    if (!hp_grow((void **)&b->strs, &b->capstrs, b->nstrs + 1,
                 sizeof(*b->strs)))
        return oom(b);
    char *copy = hp_arena_strdup(&b->arena, s);
    if (copy == NULL)
        return oom(b);
    b->strs[b->nstrs] = copy;
    hp_itab_set(&b->str_tab, slot, h, ++b->nstrs);
    return (int64_t)b->nstrs - 1;
}

/* ------------------------------------------------- functions, mappings */

/* The id of the record elem (sz bytes, its id already set to *n + 1):
 * an equal one's found through hash h and eq, or elem appended. */
static uint64_t
intern_record(struct hp_builder *b, struct hp_itab *t, uint64_t h,
              hp_itab_eq_fn eq, const void *ctx, void **arr, size_t *n,
              size_t *cap, const void *elem, size_t sz)
{
    if (b->err != 0 || !hp_itab_reserve(t))
        return oom(b);
    struct hp_islot *s = hp_itab_find(t, h, eq, ctx);
    if (s->val != 0)
        return s->val;
    if (!hp_grow(arr, cap, *n + 1, sz))
        return oom(b);
    memcpy((char *)*arr + *n * sz, elem, sz);
    hp_itab_set(t, s, h, ++*n);
    return *n;
}

static bool
func_eq(const void *ctx, uint64_t val)
{
    const struct hp_builder *b = ((const void *const *)ctx)[0];
    const hp_pb_function *x = &b->funcs[val - 1];
    const hp_pb_function *y = ((const void *const *)ctx)[1];
    return x->name == y->name && x->system_name == y->system_name &&
           x->filename == y->filename && x->start_line == y->start_line;
}

uint64_t
hp_builder_function(struct hp_builder *b, int64_t name, int64_t system_name,
                    int64_t file, int64_t start_line)
{
    hp_pb_function f;
    perftools__profiles__function__init(&f);
    f.id = b->nfuncs + 1;
    f.name = name;
    f.system_name = system_name;
    f.filename = file;
    f.start_line = start_line;
    int64_t k[4] = {name, system_name, file, start_line};
    const void *ctx[2] = {b, &f};
    return intern_record(b, &b->func_tab, hp_hash_bytes(k, sizeof(k)), func_eq,
                         ctx, (void **)&b->funcs, &b->nfuncs, &b->capfuncs, &f,
                         sizeof(f));
}

/* A mapping's content as words, for hashing and comparing. */
static void
mapping_key(const hp_pb_mapping *m, uint64_t k[6])
{
    k[0] = m->memory_start;
    k[1] = m->memory_limit;
    k[2] = m->file_offset;
    k[3] = (uint64_t)m->filename;
    k[4] = (uint64_t)m->build_id;
    k[5] = (uint64_t)(m->has_functions | m->has_filenames << 1 |
                      m->has_line_numbers << 2 | m->has_inline_frames << 3);
}

static bool
mapping_eq(const void *ctx, uint64_t val)
{
    const struct hp_builder *b = ((const void *const *)ctx)[0];
    uint64_t k[6];
    mapping_key(&b->maps[val - 1], k);
    return memcmp(k, ((const void *const *)ctx)[1], sizeof(k)) == 0;
}

uint64_t
hp_builder_mapping(struct hp_builder *b, const hp_pb_mapping *m)
{
    uint64_t k[6];
    mapping_key(m, k);
    hp_pb_mapping o = *m;
    o.id = b->nmaps + 1;
    const void *ctx[2] = {b, k};
    return intern_record(b, &b->map_tab, hp_hash_bytes(k, sizeof(k)),
                         mapping_eq, ctx, (void **)&b->maps, &b->nmaps,
                         &b->capmaps, &o, sizeof(o));
}

/* ------------------------------------------------------------ locations */

uint64_t
hp_builder_location_new(struct hp_builder *b, uint64_t addr)
{
    if (b->err != 0 || !hp_grow((void **)&b->locs, &b->caplocs, b->nlocs + 1,
                                sizeof(*b->locs)))
        return oom(b);
    b->locs[b->nlocs] = (struct hp_bloc){.addr = addr};
    return ++b->nlocs;
}

uint64_t
hp_builder_location_slow(struct hp_builder *b, struct hp_islot *s, uint64_t pc)
{
    /* A return address points after the call: pc - 1 is inside it. */
    uint64_t id = hp_builder_location_new(b, pc - 1);
    if (id != 0)
        hp_itab_set(&b->loc_tab, s, pc, id);
    return id;
}

struct loc_ctx {
    const struct hp_builder *b;
    const struct hp_bloc *l;
    const struct hp_bline *lines;
};

static bool
location_eq(const void *ctx, uint64_t val)
{
    const struct loc_ctx *c = ctx;
    const struct hp_bloc *x = &c->b->locs[val - 1];
    if (x->addr != c->l->addr || x->mapping_id != c->l->mapping_id ||
        x->folded != c->l->folded || x->nlines != c->l->nlines)
        return false;
    const struct hp_bline *xl = c->b->lines + x->line0;
    for (uint32_t i = 0; i < x->nlines; i++)
        if (xl[i].func_id != c->lines[i].func_id ||
            xl[i].line != c->lines[i].line ||
            xl[i].column != c->lines[i].column)
            return false;
    return true;
}

static uint64_t
location_hash(const struct hp_bloc *l, const struct hp_bline *lines,
              size_t nlines)
{
    uint64_t k[3] = {l->mapping_id, l->addr, l->folded};
    uint64_t h = hp_hash_bytes(k, sizeof(k));
    if (nlines > 0)
        h ^= hp_hash_bytes(lines, nlines * sizeof(*lines)) * 31;
    return h;
}

uint64_t
hp_builder_location(struct hp_builder *b, const struct hp_bloc *l,
                    const struct hp_bline *lines, size_t nlines)
{
    struct hp_bloc want = *l;
    want.nlines = (uint32_t)nlines;
    uint64_t h = location_hash(&want, lines, nlines);
    struct loc_ctx ctx = {b, &want, lines};
    if (b->err != 0 || !hp_itab_reserve(&b->loc_tab))
        return oom(b);
    struct hp_islot *s = hp_itab_find(&b->loc_tab, h, location_eq, &ctx);
    if (s->val != 0)
        return s->val;
    if (!hp_grow((void **)&b->lines, &b->caplines, b->nlines + nlines,
                 sizeof(*b->lines)))
        return oom(b);
    uint64_t id = hp_builder_location_new(b, l->addr);
    if (id == 0)
        return 0;
    struct hp_bloc *o = hp_builder_loc(b, id);
    o->mapping_id = l->mapping_id;
    o->folded = l->folded;
    o->line0 = (uint32_t)b->nlines;
    o->nlines = (uint32_t)nlines;
    if (nlines > 0)
        memcpy(b->lines + b->nlines, lines, nlines * sizeof(*lines));
    b->nlines += nlines;
    hp_itab_set(&b->loc_tab, s, h, id);
    return id;
}

void
hp_builder_line(struct hp_builder *b, uint64_t id, uint64_t func_id,
                int64_t line)
{
    if (func_id == 0 || b->err != 0 ||
        !hp_grow((void **)&b->lines, &b->caplines, b->nlines + 1,
                 sizeof(*b->lines))) {
        if (func_id != 0)
            oom(b);
        return;
    }
    struct hp_bloc *l = hp_builder_loc(b, id);
    if (l->nlines == 0)
        l->line0 = (uint32_t)b->nlines;
    b->lines[b->nlines++] = (struct hp_bline){func_id, line, 0};
    l->nlines++;
}

/* ------------------------------------------------------------- samples */

static size_t
put_varint(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

/* Room for one packed Sample: 10 bytes per varint, a tag and a length per
 * field, 4 fields per label; HDR bytes in front for its own tag and
 * length. */
enum { HDR = 11 };

static bool
sample_room(struct hp_builder *b, size_t nlocs, size_t nvalues, size_t nlabels)
{
    size_t need = HDR + 3 * 11 + 10 * (nlocs + nvalues) + 64 * nlabels;
    if (need > b->sbufcap) {
        free(b->sbuf);
        b->sbufcap = need * 2;
        b->sbuf = malloc(b->sbufcap);
        if (b->sbuf == NULL) {
            b->sbufcap = 0;
            return oom(b);
        }
    }
    if (nlabels > b->lbufcap) {
        free(b->lbuf);
        free(b->lpbuf);
        b->lbufcap = nlabels * 2;
        b->lbuf = malloc(b->lbufcap * sizeof(*b->lbuf));
        b->lpbuf = malloc(b->lbufcap * sizeof(*b->lpbuf));
        if (b->lbuf == NULL || b->lpbuf == NULL) {
            b->lbufcap = 0;
            return oom(b);
        }
    }
    return true;
}

int
hp_builder_sample(struct hp_builder *b, const uint64_t *locs, size_t nlocs,
                  const int64_t *values, size_t nvalues,
                  const struct hp_blabel *labels, size_t nlabels)
{
    if (b->err != 0 || b->out->gz.err != 0 ||
        !sample_room(b, nlocs, nvalues, nlabels))
        return b->err != 0 ? b->err : b->out->gz.err;
    Perftools__Profiles__Sample s;
    perftools__profiles__sample__init(&s);
    s.n_location_id = nlocs;
    s.location_id = (uint64_t *)locs;
    s.n_value = nvalues;
    s.value = (int64_t *)values;
    for (size_t i = 0; i < nlabels; i++) {
        Perftools__Profiles__Label *l = &b->lbuf[i];
        perftools__profiles__label__init(l);
        l->key = labels[i].key;
        l->str = labels[i].str;
        l->num = labels[i].num;
        l->num_unit = labels[i].num_unit;
        b->lpbuf[i] = l;
    }
    s.n_label = nlabels;
    s.label = nlabels > 0 ? b->lpbuf : NULL;
    size_t len = perftools__profiles__sample__pack(&s, b->sbuf + HDR);
    uint8_t hdr[HDR];
    size_t h = 0;
    hdr[h++] = (2 << 3) | PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED;
    h += put_varint(hdr + h, len);
    memcpy(b->sbuf + HDR - h, hdr, h);
    pbgz_append(&b->out->base, h + len, b->sbuf + HDR - h);
    if (b->out->gz.err != 0)
        b->err = b->out->gz.err;
    return b->err;
}

/* ---------------------------------------------------- the rest, packed */

/* The protobuf-c object graph's pointer arrays and records. */
struct pb {
    Perftools__Profiles__ValueType st[8], *stp[8], period_type;
    Perftools__Profiles__Mapping **mapp;
    Perftools__Profiles__Location *locs, **locp;
    Perftools__Profiles__Line *lines, **linep;
    Perftools__Profiles__Function **funcp;
};

static void
pb_free(struct pb *pb)
{
    free(pb->mapp);
    free(pb->locs);
    free(pb->locp);
    free(pb->lines);
    free(pb->linep);
    free(pb->funcp);
}

static void
pb_header(struct pb *pb, Perftools__Profiles__Profile *prof,
          const struct hp_bheader *h)
{
    for (size_t i = 0; i < h->nsample_types && i < 8; i++) {
        perftools__profiles__value_type__init(&pb->st[i]);
        pb->st[i].type = h->sample_type[i][0];
        pb->st[i].unit = h->sample_type[i][1];
        pb->stp[i] = &pb->st[i];
    }
    perftools__profiles__value_type__init(&pb->period_type);
    pb->period_type.type = h->period_type[0];
    pb->period_type.unit = h->period_type[1];
    prof->n_sample_type = h->nsample_types < 8 ? h->nsample_types : 8;
    prof->sample_type = pb->stp;
    prof->period_type = &pb->period_type;
    prof->period = h->period;
    prof->time_nanos = h->time_ns;
    prof->duration_nanos = h->duration_ns;
    prof->default_sample_type = h->default_sample_type;
    prof->drop_frames = h->drop_frames;
    prof->keep_frames = h->keep_frames;
    prof->doc_url = h->doc_url;
    prof->n_comment = h->ncomments;
    prof->comment = (int64_t *)h->comments;
}

static void *
xcalloc(struct hp_builder *b, size_t n, size_t sz)
{
    void *p = calloc(n ? n : 1, sz);
    if (p == NULL)
        oom(b);
    return p;
}

/* Mappings, locations, lines and functions, ids 1..N in table order. */
static void
pb_tables(struct hp_builder *b, struct pb *pb,
          Perftools__Profiles__Profile *prof)
{
    pb->mapp = xcalloc(b, b->nmaps, sizeof(*pb->mapp));
    pb->funcp = xcalloc(b, b->nfuncs, sizeof(*pb->funcp));
    pb->lines = xcalloc(b, b->nlines, sizeof(*pb->lines));
    pb->linep = xcalloc(b, b->nlines, sizeof(*pb->linep));
    pb->locs = xcalloc(b, b->nlocs, sizeof(*pb->locs));
    pb->locp = xcalloc(b, b->nlocs, sizeof(*pb->locp));
    if (b->err != 0)
        return;
    for (size_t i = 0; i < b->nmaps; i++)
        pb->mapp[i] = &b->maps[i];
    for (size_t i = 0; i < b->nfuncs; i++)
        pb->funcp[i] = &b->funcs[i];
    for (size_t i = 0; i < b->nlines; i++) {
        perftools__profiles__line__init(&pb->lines[i]);
        pb->lines[i].function_id = b->lines[i].func_id;
        pb->lines[i].line = b->lines[i].line;
        pb->lines[i].column = b->lines[i].column;
        pb->linep[i] = &pb->lines[i];
    }
    for (size_t i = 0; i < b->nlocs; i++) {
        const struct hp_bloc *l = &b->locs[i];
        Perftools__Profiles__Location *pl = &pb->locs[i];
        perftools__profiles__location__init(pl);
        pl->id = i + 1;
        pl->mapping_id = l->mapping_id;
        pl->address = l->addr;
        pl->is_folded = l->folded;
        pl->n_line = l->nlines;
        pl->line = l->nlines ? &pb->linep[l->line0] : NULL;
        pb->locp[i] = pl;
    }
    prof->n_mapping = b->nmaps;
    prof->mapping = pb->mapp;
    prof->n_location = b->nlocs;
    prof->location = pb->locp;
    prof->n_function = b->nfuncs;
    prof->function = pb->funcp;
    prof->n_string_table = b->nstrs;
    prof->string_table = b->strs;
}

int
hp_builder_finish(struct hp_builder *b, const struct hp_bheader *h)
{
    Perftools__Profiles__Profile prof;
    struct pb pb;
    memset(&pb, 0, sizeof(pb));
    perftools__profiles__profile__init(&prof);
    if (b->err == 0) {
        pb_header(&pb, &prof, h);
        pb_tables(b, &pb, &prof);
    }
    int rc = b->err;
    if (rc == 0 && b->out->gz.err == 0) {
        protobuf_c_message_pack_to_buffer(&prof.base, &b->out->base);
        pbgz_flush(b->out);
        b->out->open = false;
        rc = hp_gzip_finish(&b->out->gz);
    }
    /* A sink failure wins over what it caused. */
    if (b->out != NULL && b->out->gz.err != 0)
        rc = b->out->gz.err;
    pb_free(&pb);
    return rc;
}

void
hp_builder_free(struct hp_builder *b)
{
    if (b->out != NULL && b->out->open)
        hp_gzip_abort(&b->out->gz);
    free(b->out);
    free(b->strs);
    hp_itab_free(&b->str_tab);
    hp_arena_free(&b->arena);
    free(b->funcs);
    hp_itab_free(&b->func_tab);
    free(b->maps);
    hp_itab_free(&b->map_tab);
    free(b->locs);
    hp_itab_free(&b->loc_tab);
    free(b->lines);
    free(b->sbuf);
    free(b->lbuf);
    free(b->lpbuf);
    memset(b, 0, sizeof(*b));
}
