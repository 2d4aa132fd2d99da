/*
 * heapprof_profile_merge(): several encoded profiles in, one out, the way
 * `go tool pprof` merges files. Each part is inflated and unpacked with
 * protobuf-c; its strings, mappings, functions and locations are interned
 * into the profile builder (builder.h) by content, with ids translated to
 * the output's, so equal things are shared; equal samples (stack + labels)
 * are summed here, then streamed to the builder.
 */
#include <protobuf-c/protobuf-c.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "buf.h"
#include "builder.h"
#include "heapprof.h"
#include "internal.h"
#include "profile.pb-c.h"
#include "table.h"

typedef Perftools__Profiles__Profile pb_profile;
typedef Perftools__Profiles__Sample pb_sample;
typedef Perftools__Profiles__Label pb_label;
typedef Perftools__Profiles__Location pb_location;

/* An inflated profile larger than this is refused (a bad part must not
 * exhaust the host's memory). */
#define MERGE_MAX_RAW ((size_t)1 << 30)
#define MERGE_MAX_COMMENTS 64

/* A summed sample. Its key, [nlocs, location ids..., labels as 4 words
 * each], is kept in the arena; locs and labels point into it. */
struct msample {
    const uint64_t *key;
    size_t nkey, nlocs, nlabels;
    int64_t *values;
};

struct merge {
    struct hp_builder b;
    size_t nvalues;
    struct hp_arena arena;  /* sample keys and values */
    struct hp_itab samples; /* key hash -> index + 1 in os */
    struct msample *os;
    size_t nos, capos;
    int64_t *comments; /* output string indexes */
    size_t ncomments, capcomments;
    struct hp_itab comment_seen;
    uint64_t *key; /* the key under construction */
    size_t nkey, capkey;
    int64_t sample_type[8][2]; /* output string indexes of type, unit */
    int64_t period_type[2];
    int64_t period;
    int64_t drop_frames, keep_frames, doc_url;
    bool have_first;
    /* Time span. */
    int64_t pos_min, pos_max, pos_end, neg_min;
    bool pos_spans; /* a positive part has a duration */
    bool have_pos, have_neg;
};

/* One part being merged: its string and id translations. */
struct part {
    const pb_profile *p;
    const struct heapprof_profile_part *in;
    int64_t *smap;                          /* string index -> output's */
    struct hp_itab mapids, funcids, locids; /* part id -> output id */
};

/* Part-local string index -> output index, validated. */
static int
str_of(const int64_t *smap, const pb_profile *p, int64_t i, int64_t *out)
{
    if (i < 0 || (size_t)i >= p->n_string_table)
        return HEAPPROF_EPROTO;
    *out = smap[i];
    return HEAPPROF_OK;
}

/* Part-local id -> output id (not 0). A duplicate id in one part, or an
 * output id of 0 (the builder failed), is refused. */
static int
id_put(struct hp_builder *b, struct hp_itab *t, uint64_t id, uint64_t out)
{
    if (out == 0)
        return b->err != 0 ? b->err : HEAPPROF_ENOMEM;
    if (!hp_itab_reserve(t))
        return HEAPPROF_ENOMEM;
    struct hp_islot *s = hp_itab_find(t, id, NULL, NULL);
    if (s->val != 0)
        return HEAPPROF_EPROTO;
    hp_itab_set(t, s, id, out);
    return HEAPPROF_OK;
}

static int
key_add(struct merge *m, uint64_t x)
{
    if (!hp_grow((void **)&m->key, &m->capkey, m->nkey + 1, sizeof(*m->key)))
        return HEAPPROF_ENOMEM;
    m->key[m->nkey++] = x;
    return HEAPPROF_OK;
}

static int
label_cmp(const void *a, const void *b)
{
    const struct hp_blabel *x = a, *y = b;
    if (x->key != y->key)
        return x->key < y->key ? -1 : 1;
    if (x->str != y->str)
        return x->str < y->str ? -1 : 1;
    if (x->num != y->num)
        return x->num < y->num ? -1 : 1;
    if (x->num_unit != y->num_unit)
        return x->num_unit < y->num_unit ? -1 : 1;
    return 0;
}

static int
merge_header(struct merge *m, const pb_profile *p, const int64_t *smap)
{
    int rc;
    if (!m->have_first) {
        if (p->n_sample_type == 0 || p->n_sample_type > 8)
            return HEAPPROF_EPROTO;
        m->nvalues = p->n_sample_type;
        for (size_t i = 0; i < p->n_sample_type; i++) {
            if ((rc = str_of(smap, p, p->sample_type[i]->type,
                             &m->sample_type[i][0])) != 0 ||
                (rc = str_of(smap, p, p->sample_type[i]->unit,
                             &m->sample_type[i][1])) != 0)
                return rc;
        }
        if (p->period_type != NULL &&
            ((rc = str_of(smap, p, p->period_type->type, &m->period_type[0])) !=
                 0 ||
             (rc = str_of(smap, p, p->period_type->unit, &m->period_type[1])) !=
                 0))
            return rc;
        m->period = p->period;
        if ((rc = str_of(smap, p, p->drop_frames, &m->drop_frames)) != 0 ||
            (rc = str_of(smap, p, p->keep_frames, &m->keep_frames)) != 0 ||
            (rc = str_of(smap, p, p->doc_url, &m->doc_url)) != 0)
            return rc;
        m->have_first = true;
        return HEAPPROF_OK;
    }
    if (p->n_sample_type != m->nvalues)
        return HEAPPROF_EPROTO;
    for (size_t i = 0; i < p->n_sample_type; i++) {
        int64_t t, u;
        if ((rc = str_of(smap, p, p->sample_type[i]->type, &t)) != 0 ||
            (rc = str_of(smap, p, p->sample_type[i]->unit, &u)) != 0)
            return rc;
        if (t != m->sample_type[i][0] || u != m->sample_type[i][1])
            return HEAPPROF_EPROTO;
    }
    if (p->period > m->period)
        m->period = p->period;
    return HEAPPROF_OK;
}

/* The part's strings, each interned once: smap translates its indexes. */
static int
merge_strings(struct merge *m, struct part *pt)
{
    const pb_profile *p = pt->p;
    if (p->n_string_table == 0 || p->string_table[0][0] != '\0')
        return HEAPPROF_EPROTO;
    pt->smap = malloc(p->n_string_table * sizeof(*pt->smap));
    if (pt->smap == NULL)
        return HEAPPROF_ENOMEM;
    for (size_t i = 0; i < p->n_string_table; i++)
        pt->smap[i] = hp_builder_str(&m->b, p->string_table[i]);
    return m->b.err;
}

/* Time span: Go's delta keeps the later profile's time and measures the
 * duration from the earlier one. */
static void
merge_span(struct merge *m, const pb_profile *p, bool negate)
{
    if (negate) {
        if (!m->have_neg || p->time_nanos < m->neg_min)
            m->neg_min = p->time_nanos;
        m->have_neg = true;
        return;
    }
    if (!m->have_pos || p->time_nanos < m->pos_min)
        m->pos_min = p->time_nanos;
    if (!m->have_pos || p->time_nanos > m->pos_max)
        m->pos_max = p->time_nanos;
    if (!m->have_pos || p->time_nanos + p->duration_nanos > m->pos_end)
        m->pos_end = p->time_nanos + p->duration_nanos;
    m->pos_spans |= p->duration_nanos > 0;
    m->have_pos = true;
}

/* A subtracted part's comments describe the earlier state: left out. */
static int
merge_comments(struct merge *m, const struct part *pt)
{
    const pb_profile *p = pt->p;
    for (size_t i = 0; !pt->in->negate && i < p->n_comment &&
                       m->ncomments < MERGE_MAX_COMMENTS;
         i++) {
        int64_t s;
        int rc = str_of(pt->smap, p, p->comment[i], &s);
        if (rc != 0)
            return rc;
        if (!hp_itab_reserve(&m->comment_seen) ||
            !hp_grow((void **)&m->comments, &m->capcomments, m->ncomments + 1,
                     sizeof(*m->comments)))
            return HEAPPROF_ENOMEM;
        struct hp_islot *slot =
            hp_itab_find(&m->comment_seen, (uint64_t)s, NULL, NULL);
        if (slot->val != 0)
            continue;
        hp_itab_set(&m->comment_seen, slot, (uint64_t)s, 1);
        m->comments[m->ncomments++] = s;
    }
    return HEAPPROF_OK;
}

static int
merge_mappings(struct merge *m, struct part *pt)
{
    const pb_profile *p = pt->p;
    for (size_t i = 0; i < p->n_mapping; i++) {
        hp_pb_mapping om = *p->mapping[i];
        /* Its fields only, not the part's unknown ones (freed with it). */
        om.base = ((hp_pb_mapping)PERFTOOLS__PROFILES__MAPPING__INIT).base;
        int rc;
        if ((rc = str_of(pt->smap, p, om.filename, &om.filename)) != 0 ||
            (rc = str_of(pt->smap, p, om.build_id, &om.build_id)) != 0 ||
            (rc = id_put(&m->b, &pt->mapids, om.id,
                         hp_builder_mapping(&m->b, &om))) != 0)
            return rc;
    }
    return HEAPPROF_OK;
}

static int
merge_functions(struct merge *m, struct part *pt)
{
    const pb_profile *p = pt->p;
    for (size_t i = 0; i < p->n_function; i++) {
        const hp_pb_function *f = p->function[i];
        int64_t name, sys, file;
        int rc;
        if ((rc = str_of(pt->smap, p, f->name, &name)) != 0 ||
            (rc = str_of(pt->smap, p, f->system_name, &sys)) != 0 ||
            (rc = str_of(pt->smap, p, f->filename, &file)) != 0 ||
            (rc = id_put(&m->b, &pt->funcids, f->id,
                         hp_builder_function(&m->b, name, sys, file,
                                             f->start_line))) != 0)
            return rc;
    }
    return HEAPPROF_OK;
}

/* One location, its mapping and functions translated to the output's. */
static int
merge_location(struct merge *m, struct part *pt, const pb_location *l,
               struct hp_bline *lines)
{
    struct hp_bloc ol = {.addr = l->address, .folded = l->is_folded};
    if (l->mapping_id != 0 &&
        (ol.mapping_id = hp_itab_get(&pt->mapids, l->mapping_id)) == 0)
        return HEAPPROF_EPROTO;
    for (size_t j = 0; j < l->n_line; j++) {
        const Perftools__Profiles__Line *ln = l->line[j];
        uint64_t fid = 0;
        if (ln->function_id != 0 &&
            (fid = hp_itab_get(&pt->funcids, ln->function_id)) == 0)
            return HEAPPROF_EPROTO;
        lines[j] = (struct hp_bline){fid, ln->line, ln->column};
    }
    return id_put(&m->b, &pt->locids, l->id,
                  hp_builder_location(&m->b, &ol, lines, l->n_line));
}

static int
merge_locations(struct merge *m, struct part *pt)
{
    const pb_profile *p = pt->p;
    size_t maxl = 1;
    for (size_t i = 0; i < p->n_location; i++)
        if (p->location[i]->n_line > maxl)
            maxl = p->location[i]->n_line;
    struct hp_bline *lines = malloc(maxl * sizeof(*lines));
    if (lines == NULL)
        return HEAPPROF_ENOMEM;
    int rc = HEAPPROF_OK;
    for (size_t i = 0; i < p->n_location && rc == 0; i++)
        rc = merge_location(m, pt, p->location[i], lines);
    free(lines);
    return rc;
}

/*
 * The sample's labels, translated and sorted, into labels (room for
 * n_label + 1): the part's own label replaces one of the same key.
 * Returns the count, or -1 for a bad string index.
 */
static long
sample_labels(const struct part *pt, const pb_sample *s, int64_t lkey,
              int64_t lval, struct hp_blabel *labels)
{
    const struct heapprof_profile_part *in = pt->in;
    size_t nl = 0;
    for (size_t j = 0; j < s->n_label; j++) {
        const pb_label *lb = s->label[j];
        struct hp_blabel *o = &labels[nl];
        if (str_of(pt->smap, pt->p, lb->key, &o->key) != 0 ||
            str_of(pt->smap, pt->p, lb->str, &o->str) != 0 ||
            str_of(pt->smap, pt->p, lb->num_unit, &o->num_unit) != 0)
            return -1;
        o->num = lb->num;
        if (in->label_key == NULL || o->key != lkey)
            nl++;
    }
    if (in->label_key != NULL)
        labels[nl++] = (struct hp_blabel){
            .key = lkey,
            .str = lval,
            .num = in->label_str == NULL ? in->label_num : 0};
    qsort(labels, nl, sizeof(*labels), label_cmp);
    return (long)nl;
}

/* m->key = [nlocs, output location ids..., labels]. */
static int
sample_key(struct merge *m, const struct part *pt, const pb_sample *s,
           const struct hp_blabel *labels, size_t nl)
{
    m->nkey = 0;
    int rc = key_add(m, s->n_location_id);
    for (size_t j = 0; j < s->n_location_id && rc == 0; j++) {
        uint64_t lid = hp_itab_get(&pt->locids, s->location_id[j]);
        if (lid == 0)
            return HEAPPROF_EPROTO;
        rc = key_add(m, lid);
    }
    for (size_t j = 0; j < nl && rc == 0; j++) {
        rc |= key_add(m, (uint64_t)labels[j].key);
        rc |= key_add(m, (uint64_t)labels[j].str);
        rc |= key_add(m, (uint64_t)labels[j].num);
        rc |= key_add(m, (uint64_t)labels[j].num_unit);
    }
    return rc != 0 ? HEAPPROF_ENOMEM : HEAPPROF_OK;
}

static bool
sample_eq(const void *ctx, uint64_t val)
{
    const struct merge *m = ctx;
    const struct msample *o = &m->os[val - 1];
    return o->nkey == m->nkey &&
           memcmp(o->key, m->key, m->nkey * sizeof(*m->key)) == 0;
}

/* The summed sample whose key is m->key, added with zero values if new. */
static struct msample *
sample_of(struct merge *m, size_t nl)
{
    uint64_t h = hp_hash_bytes(m->key, m->nkey * sizeof(*m->key));
    if (!hp_itab_reserve(&m->samples))
        return NULL;
    struct hp_islot *s = hp_itab_find(&m->samples, h, sample_eq, m);
    if (s->val != 0)
        return &m->os[s->val - 1];
    uint64_t *key = hp_arena_alloc(&m->arena, m->nkey * sizeof(*key));
    int64_t *values = hp_arena_alloc(&m->arena, m->nvalues * sizeof(*values));
    if (key == NULL || values == NULL ||
        !hp_grow((void **)&m->os, &m->capos, m->nos + 1, sizeof(*m->os)))
        return NULL;
    memcpy(key, m->key, m->nkey * sizeof(*key));
    memset(values, 0, m->nvalues * sizeof(*values));
    struct msample *o = &m->os[m->nos++];
    *o = (struct msample){key, m->nkey, key[0], nl, values};
    hp_itab_set(&m->samples, s, h, m->nos);
    return o;
}

static int
merge_samples(struct merge *m, const struct part *pt)
{
    const struct heapprof_profile_part *in = pt->in;
    int64_t lkey = 0, lval = 0;
    if (in->label_key != NULL) {
        lkey = hp_builder_str(&m->b, in->label_key);
        if (in->label_str != NULL)
            lval = hp_builder_str(&m->b, in->label_str);
        if (m->b.err != 0)
            return m->b.err;
    }
    struct hp_blabel *labels = NULL;
    size_t cap = 0;
    int rc = HEAPPROF_OK;
    for (size_t i = 0; i < pt->p->n_sample && rc == 0; i++) {
        const pb_sample *s = pt->p->sample[i];
        if (s->n_value != m->nvalues) {
            rc = HEAPPROF_EPROTO;
            break;
        }
        if (!hp_grow((void **)&labels, &cap, s->n_label + 1, sizeof(*labels))) {
            rc = HEAPPROF_ENOMEM;
            break;
        }
        long nl = sample_labels(pt, s, lkey, lval, labels);
        if (nl < 0) {
            rc = HEAPPROF_EPROTO;
            break;
        }
        rc = sample_key(m, pt, s, labels, (size_t)nl);
        struct msample *o = rc == 0 ? sample_of(m, (size_t)nl) : NULL;
        if (rc == 0 && o == NULL)
            rc = HEAPPROF_ENOMEM;
        for (size_t j = 0; rc == 0 && j < m->nvalues; j++)
            o->values[j] += in->negate ? -s->value[j] : s->value[j];
    }
    free(labels);
    return rc;
}

static int
merge_part(struct merge *m, const pb_profile *p,
           const struct heapprof_profile_part *in)
{
    struct part pt = {.p = p, .in = in};
    int rc = merge_strings(m, &pt);
    if (rc == 0)
        rc = merge_header(m, p, pt.smap);
    if (rc == 0) {
        merge_span(m, p, in->negate);
        rc = merge_comments(m, &pt);
    }
    if (rc == 0)
        rc = merge_mappings(m, &pt);
    if (rc == 0)
        rc = merge_functions(m, &pt);
    if (rc == 0)
        rc = merge_locations(m, &pt);
    if (rc == 0)
        rc = merge_samples(m, &pt);
    free(pt.smap);
    hp_itab_free(&pt.mapids);
    hp_itab_free(&pt.funcids);
    hp_itab_free(&pt.locids);
    return rc;
}

static void
merge_free(struct merge *m)
{
    hp_builder_free(&m->b);
    hp_arena_free(&m->arena);
    hp_itab_free(&m->samples);
    hp_itab_free(&m->comment_seen);
    free(m->os);
    free(m->comments);
    free(m->key);
}

/* ------------------------------------------------------ input and output */

/* Inflate a gzip'd part into *out (malloc'd); plain parts are borrowed. */
static int
inflate_part(const void *data, size_t len, unsigned char **out, size_t *outlen)
{
    const unsigned char *b = data;
    if (len < 2 || b[0] != 0x1f || b[1] != 0x8b) {
        *out = NULL;
        *outlen = len;
        return HEAPPROF_OK;
    }
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (inflateInit2(&zs, 15 + 32) != Z_OK)
        return HEAPPROF_ENOMEM;
    size_t cap = len * 4 + 4096, n = 0;
    unsigned char *buf = malloc(cap);
    int rc = buf ? HEAPPROF_OK : HEAPPROF_ENOMEM;
    zs.next_in = (unsigned char *)b;
    zs.avail_in = len > UINT32_MAX ? UINT32_MAX : (uInt)len;
    while (rc == HEAPPROF_OK) {
        if (n == cap) {
            if (cap >= MERGE_MAX_RAW) {
                rc = HEAPPROF_EPROTO;
                break;
            }
            unsigned char *nb = realloc(buf, cap * 2);
            if (nb == NULL) {
                rc = HEAPPROF_ENOMEM;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        zs.next_out = buf + n;
        zs.avail_out = (uInt)(cap - n > UINT32_MAX ? UINT32_MAX : cap - n);
        uInt before = zs.avail_out;
        int zr = inflate(&zs, Z_NO_FLUSH);
        n += before - zs.avail_out;
        if (zr == Z_STREAM_END)
            break;
        if (zr == Z_MEM_ERROR)
            rc = HEAPPROF_ENOMEM;
        else if (zr != Z_OK && !(zr == Z_BUF_ERROR && n == cap))
            rc = HEAPPROF_EPROTO;
    }
    inflateEnd(&zs);
    if (rc != HEAPPROF_OK) {
        free(buf);
        return rc;
    }
    *out = buf;
    *outlen = n;
    return HEAPPROF_OK;
}

/* The summed samples (those that cancelled out are dropped, as Go does),
 * then the header. */
static int
emit(struct merge *m, enum heapprof_profile which)
{
    for (size_t i = 0; i < m->nos; i++) {
        const struct msample *o = &m->os[i];
        bool zero = true;
        for (size_t j = 0; j < m->nvalues; j++)
            zero = zero && o->values[j] == 0;
        if (zero)
            continue;
        const uint64_t *locs = o->key + 1;
        const struct hp_blabel *labels =
            (const struct hp_blabel *)(o->key + 1 + o->nlocs);
        int rc = hp_builder_sample(&m->b, locs, o->nlocs, o->values, m->nvalues,
                                   labels, o->nlabels);
        if (rc != 0)
            return rc;
    }
    struct hp_bheader h;
    memset(&h, 0, sizeof(h));
    memcpy(h.sample_type, m->sample_type, sizeof(h.sample_type));
    h.nsample_types = m->nvalues;
    h.period_type[0] = m->period_type[0];
    h.period_type[1] = m->period_type[1];
    h.period = m->period;
    h.drop_frames = m->drop_frames;
    h.keep_frames = m->keep_frames;
    h.doc_url = m->doc_url;
    h.comments = m->comments;
    h.ncomments = m->ncomments;
    if (m->have_neg && m->have_pos) {
        h.time_ns = m->pos_max;
        h.duration_ns = m->pos_max > m->neg_min ? m->pos_max - m->neg_min : 0;
    } else if (m->have_pos && m->pos_spans) {
        h.time_ns = m->pos_min;
        h.duration_ns = m->pos_end - m->pos_min;
    } else if (m->have_pos) {
        /* Snapshots (heap profiles, Go's have no duration) taken moments
         * apart: a point in time, the latest, not a span. */
        h.time_ns = m->pos_max;
    }
    for (size_t i = 0; which == HEAPPROF_PROFILE_ALLOCS && i < m->nvalues; i++)
        if (strcmp(m->b.strs[m->sample_type[i][0]], "alloc_space") == 0)
            h.default_sample_type = m->sample_type[i][0];
    return hp_builder_finish(&m->b, &h);
}

int
heapprof_profile_merge(const struct heapprof_profile_part *parts, size_t nparts,
                       enum heapprof_profile which,
                       const struct heapprof_sink *sink)
{
    if (parts == NULL || nparts == 0 || sink == NULL || sink->write == NULL)
        return HEAPPROF_EINVAL;
    for (size_t i = 0; i < nparts; i++)
        if (parts[i].data == NULL && parts[i].len != 0)
            return HEAPPROF_EINVAL;
    /* heapprof's own work: never sampled, whatever malloc resolves to. */
    hp_fence_enter();
    struct merge m;
    memset(&m, 0, sizeof m);
    /* Nothing reaches the sink before the samples are streamed (emit). */
    int rc = hp_builder_init(&m.b, sink);
    for (size_t i = 0; i < nparts && rc == HEAPPROF_OK; i++) {
        unsigned char *raw;
        size_t rawlen;
        rc = inflate_part(parts[i].data, parts[i].len, &raw, &rawlen);
        if (rc != HEAPPROF_OK)
            break;
        pb_profile *p = perftools__profiles__profile__unpack(
            NULL, rawlen, raw != NULL ? raw : parts[i].data);
        free(raw);
        if (p == NULL) {
            rc = HEAPPROF_EPROTO;
            break;
        }
        rc = merge_part(&m, p, &parts[i]);
        perftools__profiles__profile__free_unpacked(p, NULL);
    }
    if (rc == HEAPPROF_OK)
        rc = emit(&m, which);
    merge_free(&m);
    hp_fence_exit();
    return rc;
}
