/*
 * heapprof_profile_merge(): several encoded profiles in, one out, the way
 * `go tool pprof` merges files. Each part is inflated and unpacked with
 * protobuf-c; its strings, mappings, functions, locations and samples are
 * interned into the output through hash maps keyed by their content (with
 * ids already translated to the output's), so equal things are shared and
 * equal samples (stack + labels) are summed. The unpacked parts stay alive
 * until the output is packed: output strings point into them.
 */
#include <protobuf-c/protobuf-c.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "gzip_sink.h"
#include "heapprof.h"
#include "internal.h"
#include "profile.pb-c.h"

typedef Perftools__Profiles__Profile pb_profile;
typedef Perftools__Profiles__Sample pb_sample;
typedef Perftools__Profiles__Label pb_label;
typedef Perftools__Profiles__Mapping pb_mapping;
typedef Perftools__Profiles__Location pb_location;
typedef Perftools__Profiles__Line pb_line;
typedef Perftools__Profiles__Function pb_function;
typedef Perftools__Profiles__ValueType pb_value_type;

/* An inflated profile larger than this is refused (a bad part must not
 * exhaust the host's memory). */
#define MERGE_MAX_RAW ((size_t)1 << 30)
#define MERGE_MAX_COMMENTS 64

/* ------------------------------------------------------------ blob map */

/* Content-keyed hash map: byte string -> uint64 (an output id). */
struct blob {
    struct blob *next;
    uint64_t hash;
    uint64_t value;
    size_t len;
    unsigned char data[];
};

struct blobmap {
    struct blob **slots;
    size_t nslots; /* power of two */
    size_t n;
};

static uint64_t
hash_bytes(const void *p, size_t len)
{
    /* FNV-1a, then a final mix so the low bits used for slots spread. */
    const unsigned char *b = p;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < len; i++)
        h = (h ^ b[i]) * 0x100000001b3ull;
    h ^= h >> 31;
    h *= 0x9e3779b97f4a7c15ull;
    return h ^ (h >> 29);
}

static void
blobmap_free(struct blobmap *m)
{
    for (size_t i = 0; i < m->nslots; i++) {
        struct blob *b = m->slots[i];
        while (b != NULL) {
            struct blob *next = b->next;
            free(b);
            b = next;
        }
    }
    free(m->slots);
    memset(m, 0, sizeof *m);
}

static int
blobmap_grow(struct blobmap *m)
{
    size_t ns = m->nslots == 0 ? 256 : m->nslots * 2;
    struct blob **slots = calloc(ns, sizeof *slots);
    if (slots == NULL)
        return HEAPPROF_ENOMEM;
    for (size_t i = 0; i < m->nslots; i++) {
        struct blob *b = m->slots[i];
        while (b != NULL) {
            struct blob *next = b->next;
            size_t s = b->hash & (ns - 1);
            b->next = slots[s];
            slots[s] = b;
            b = next;
        }
    }
    free(m->slots);
    m->slots = slots;
    m->nslots = ns;
    return HEAPPROF_OK;
}

/*
 * Find key; if absent insert it with value *val. Either way *val ends up
 * holding the stored value and *found says which. 0 or HEAPPROF_ENOMEM.
 */
static int
blobmap_intern(struct blobmap *m, const void *key, size_t len, uint64_t *val,
               bool *found)
{
    uint64_t h = hash_bytes(key, len);
    if (m->nslots != 0) {
        for (struct blob *b = m->slots[h & (m->nslots - 1)]; b != NULL;
             b = b->next) {
            if (b->hash == h && b->len == len && memcmp(b->data, key, len) == 0) {
                *val = b->value;
                *found = true;
                return HEAPPROF_OK;
            }
        }
    }
    if (m->n * 4 >= m->nslots * 3 && blobmap_grow(m) != 0)
        return HEAPPROF_ENOMEM;
    struct blob *b = malloc(sizeof *b + len);
    if (b == NULL)
        return HEAPPROF_ENOMEM;
    b->hash = h;
    b->value = *val;
    b->len = len;
    memcpy(b->data, key, len);
    size_t s = h & (m->nslots - 1);
    b->next = m->slots[s];
    m->slots[s] = b;
    m->n++;
    *found = false;
    return HEAPPROF_OK;
}

/* ------------------------------------------------------- growing arrays */

struct vec {
    void *p;
    size_t n, cap;
};

static void *
vec_push(struct vec *v, size_t esz)
{
    if (v->n == v->cap) {
        size_t nc = v->cap == 0 ? 64 : v->cap * 2;
        void *np = realloc(v->p, nc * esz);
        if (np == NULL)
            return NULL;
        v->p = np;
        v->cap = nc;
    }
    void *e = (char *)v->p + v->n * esz;
    memset(e, 0, esz);
    v->n++;
    return e;
}

/* A key under construction: a run of 64-bit words. */
struct key {
    uint64_t *w;
    size_t n, cap;
};

static int
key_add(struct key *k, uint64_t x)
{
    if (k->n == k->cap) {
        size_t nc = k->cap == 0 ? 64 : k->cap * 2;
        uint64_t *nw = realloc(k->w, nc * sizeof *nw);
        if (nw == NULL)
            return HEAPPROF_ENOMEM;
        k->w = nw;
        k->cap = nc;
    }
    k->w[k->n++] = x;
    return HEAPPROF_OK;
}

/* ------------------------------------------------------------ the merge */

struct osample {
    uint64_t *locs;
    size_t nlocs;
    pb_label *labels;
    size_t nlabels;
    int64_t *values;
};

struct olocation {
    pb_location loc;
    pb_line *lines;
    pb_line **line_ptrs;
};

struct merge {
    size_t nvalues;
    struct blobmap strs, maps, funcs, locs, samples;
    struct vec strings;   /* const char * (borrowed) */
    struct vec mappings;  /* pb_mapping */
    struct vec functions; /* pb_function */
    struct vec locations; /* struct olocation */
    struct vec osamples;  /* struct osample */
    struct vec comments;  /* int64_t string indexes */
    struct blobmap comment_seen;
    struct key key;
    int64_t sample_type[8][2]; /* output string indexes of type, unit */
    int64_t period_type[2];
    int64_t period;
    int64_t drop_frames, keep_frames, doc_url;
    bool have_first;
    /* Time span. */
    int64_t pos_min, pos_max, pos_end, neg_min;
    bool have_pos, have_neg;
};

/* Output index of string s (borrowed; must outlive the merge). */
static int
intern_str(struct merge *m, const char *s, int64_t *out)
{
    uint64_t v = m->strings.n;
    bool found;
    if (blobmap_intern(&m->strs, s, strlen(s), &v, &found) != 0)
        return HEAPPROF_ENOMEM;
    if (!found) {
        const char **slot = vec_push(&m->strings, sizeof(const char *));
        if (slot == NULL)
            return HEAPPROF_ENOMEM;
        *slot = s;
    }
    *out = (int64_t)v;
    return HEAPPROF_OK;
}

/* Part-local string index -> output index, validated. */
static int
str_of(const int64_t *smap, const pb_profile *p, int64_t i, int64_t *out)
{
    if (i < 0 || (size_t)i >= p->n_string_table)
        return HEAPPROF_EPROTO;
    *out = smap[i];
    return HEAPPROF_OK;
}

/* Part-local id -> output id, through a small map keyed by the id. */
static int
id_put(struct blobmap *m, uint64_t id, uint64_t out)
{
    bool found;
    uint64_t v = out;
    int rc = blobmap_intern(m, &id, sizeof id, &v, &found);
    if (rc == 0 && found)
        return HEAPPROF_EPROTO; /* duplicate id in one part */
    return rc;
}

static bool
id_get(const struct blobmap *m, uint64_t id, uint64_t *out)
{
    if (m->nslots == 0)
        return false;
    uint64_t h = hash_bytes(&id, sizeof id);
    for (struct blob *b = m->slots[h & (m->nslots - 1)]; b != NULL; b = b->next)
        if (b->hash == h && b->len == sizeof id &&
            memcmp(b->data, &id, sizeof id) == 0) {
            *out = b->value;
            return true;
        }
    return false;
}

static int
label_cmp(const void *a, const void *b)
{
    const pb_label *x = a, *y = b;
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

static int
merge_part(struct merge *m, const pb_profile *p,
           const struct heapprof_profile_part *part)
{
    int rc = HEAPPROF_OK;
    struct blobmap mapids = {0}, funcids = {0}, locids = {0};
    int64_t *smap = NULL;
    if (p->n_string_table == 0 || p->string_table[0][0] != '\0')
        return HEAPPROF_EPROTO;
    smap = malloc(p->n_string_table * sizeof *smap);
    if (smap == NULL)
        return HEAPPROF_ENOMEM;
    for (size_t i = 0; i < p->n_string_table; i++)
        if ((rc = intern_str(m, p->string_table[i], &smap[i])) != 0)
            goto out;
    if ((rc = merge_header(m, p, smap)) != 0)
        goto out;

    /* Time span: Go's delta keeps the later profile's time and measures
     * the duration from the earlier one. */
    if (part->negate) {
        if (!m->have_neg || p->time_nanos < m->neg_min)
            m->neg_min = p->time_nanos;
        m->have_neg = true;
    } else {
        if (!m->have_pos || p->time_nanos < m->pos_min)
            m->pos_min = p->time_nanos;
        if (!m->have_pos || p->time_nanos > m->pos_max)
            m->pos_max = p->time_nanos;
        if (!m->have_pos || p->time_nanos + p->duration_nanos > m->pos_end)
            m->pos_end = p->time_nanos + p->duration_nanos;
        m->have_pos = true;
    }

    /* A subtracted part's comments describe the earlier state: left out. */
    for (size_t i = 0; !part->negate && i < p->n_comment &&
                       m->comments.n < MERGE_MAX_COMMENTS;
         i++) {
        int64_t s;
        if ((rc = str_of(smap, p, p->comment[i], &s)) != 0)
            goto out;
        uint64_t v = 0;
        bool found;
        if ((rc = blobmap_intern(&m->comment_seen, &s, sizeof s, &v, &found)) !=
            0)
            goto out;
        if (!found) {
            int64_t *c = vec_push(&m->comments, sizeof *c);
            if (c == NULL) {
                rc = HEAPPROF_ENOMEM;
                goto out;
            }
            *c = s;
        }
    }

    for (size_t i = 0; i < p->n_mapping; i++) {
        const pb_mapping *mp = p->mapping[i];
        int64_t fn, bid;
        if ((rc = str_of(smap, p, mp->filename, &fn)) != 0 ||
            (rc = str_of(smap, p, mp->build_id, &bid)) != 0)
            goto out;
        uint64_t k[6] = {mp->memory_start, mp->memory_limit, mp->file_offset,
                         (uint64_t)fn, (uint64_t)bid,
                         (uint64_t)(mp->has_functions | mp->has_filenames << 1 |
                                    mp->has_line_numbers << 2 |
                                    mp->has_inline_frames << 3)};
        uint64_t id = m->mappings.n + 1;
        bool found;
        if ((rc = blobmap_intern(&m->maps, k, sizeof k, &id, &found)) != 0)
            goto out;
        if (!found) {
            pb_mapping *om = vec_push(&m->mappings, sizeof *om);
            if (om == NULL) {
                rc = HEAPPROF_ENOMEM;
                goto out;
            }
            perftools__profiles__mapping__init(om);
            om->id = id;
            om->memory_start = mp->memory_start;
            om->memory_limit = mp->memory_limit;
            om->file_offset = mp->file_offset;
            om->filename = fn;
            om->build_id = bid;
            om->has_functions = mp->has_functions;
            om->has_filenames = mp->has_filenames;
            om->has_line_numbers = mp->has_line_numbers;
            om->has_inline_frames = mp->has_inline_frames;
        }
        if ((rc = id_put(&mapids, mp->id, id)) != 0)
            goto out;
    }

    for (size_t i = 0; i < p->n_function; i++) {
        const pb_function *f = p->function[i];
        int64_t name, sys, file;
        if ((rc = str_of(smap, p, f->name, &name)) != 0 ||
            (rc = str_of(smap, p, f->system_name, &sys)) != 0 ||
            (rc = str_of(smap, p, f->filename, &file)) != 0)
            goto out;
        uint64_t k[4] = {(uint64_t)name, (uint64_t)sys, (uint64_t)file,
                         (uint64_t)f->start_line};
        uint64_t id = m->functions.n + 1;
        bool found;
        if ((rc = blobmap_intern(&m->funcs, k, sizeof k, &id, &found)) != 0)
            goto out;
        if (!found) {
            pb_function *of = vec_push(&m->functions, sizeof *of);
            if (of == NULL) {
                rc = HEAPPROF_ENOMEM;
                goto out;
            }
            perftools__profiles__function__init(of);
            of->id = id;
            of->name = name;
            of->system_name = sys;
            of->filename = file;
            of->start_line = f->start_line;
        }
        if ((rc = id_put(&funcids, f->id, id)) != 0)
            goto out;
    }

    for (size_t i = 0; i < p->n_location; i++) {
        const pb_location *l = p->location[i];
        uint64_t mapid = 0;
        if (l->mapping_id != 0 && !id_get(&mapids, l->mapping_id, &mapid)) {
            rc = HEAPPROF_EPROTO;
            goto out;
        }
        m->key.n = 0;
        rc = key_add(&m->key, mapid);
        rc |= key_add(&m->key, l->address);
        rc |= key_add(&m->key, l->is_folded);
        for (size_t j = 0; j < l->n_line && rc == 0; j++) {
            uint64_t fid = 0;
            if (l->line[j]->function_id != 0 &&
                !id_get(&funcids, l->line[j]->function_id, &fid)) {
                rc = HEAPPROF_EPROTO;
                goto out;
            }
            rc |= key_add(&m->key, fid);
            rc |= key_add(&m->key, (uint64_t)l->line[j]->line);
            rc |= key_add(&m->key, (uint64_t)l->line[j]->column);
        }
        if (rc != 0) {
            rc = HEAPPROF_ENOMEM;
            goto out;
        }
        uint64_t id = m->locations.n + 1;
        bool found;
        if ((rc = blobmap_intern(&m->locs, m->key.w, m->key.n * 8, &id,
                                 &found)) != 0)
            goto out;
        if (!found) {
            struct olocation *ol = vec_push(&m->locations, sizeof *ol);
            if (ol == NULL) {
                rc = HEAPPROF_ENOMEM;
                goto out;
            }
            perftools__profiles__location__init(&ol->loc);
            ol->loc.id = id;
            ol->loc.mapping_id = mapid;
            ol->loc.address = l->address;
            ol->loc.is_folded = l->is_folded;
            if (l->n_line > 0) {
                ol->lines = calloc(l->n_line, sizeof *ol->lines);
                ol->line_ptrs = calloc(l->n_line, sizeof *ol->line_ptrs);
                if (ol->lines == NULL || ol->line_ptrs == NULL) {
                    rc = HEAPPROF_ENOMEM;
                    goto out;
                }
                for (size_t j = 0; j < l->n_line; j++) {
                    perftools__profiles__line__init(&ol->lines[j]);
                    ol->lines[j].function_id = m->key.w[3 + 3 * j];
                    ol->lines[j].line = l->line[j]->line;
                    ol->lines[j].column = l->line[j]->column;
                    ol->line_ptrs[j] = &ol->lines[j];
                }
                ol->loc.n_line = l->n_line;
                ol->loc.line = ol->line_ptrs;
            }
        }
        if ((rc = id_put(&locids, l->id, id)) != 0)
            goto out;
    }

    int64_t lkey = 0, lval = 0;
    if (part->label_key != NULL &&
        ((rc = intern_str(m, part->label_key, &lkey)) != 0 ||
         (part->label_str != NULL &&
          (rc = intern_str(m, part->label_str, &lval)) != 0)))
        goto out;

    for (size_t i = 0; i < p->n_sample; i++) {
        const pb_sample *s = p->sample[i];
        if (s->n_value != m->nvalues) {
            rc = HEAPPROF_EPROTO;
            goto out;
        }
        size_t nlabels = s->n_label + (part->label_key != NULL);
        pb_label *labels = calloc(nlabels > 0 ? nlabels : 1, sizeof *labels);
        if (labels == NULL) {
            rc = HEAPPROF_ENOMEM;
            goto out;
        }
        size_t nl = 0;
        for (size_t j = 0; j < s->n_label; j++) {
            const pb_label *lb = s->label[j];
            pb_label *o = &labels[nl];
            perftools__profiles__label__init(o);
            if ((rc = str_of(smap, p, lb->key, &o->key)) != 0 ||
                (rc = str_of(smap, p, lb->str, &o->str)) != 0 ||
                (rc = str_of(smap, p, lb->num_unit, &o->num_unit)) != 0) {
                free(labels);
                goto out;
            }
            o->num = lb->num;
            /* The part's label replaces one of the same key. */
            if (part->label_key == NULL || o->key != lkey)
                nl++;
        }
        if (part->label_key != NULL) {
            perftools__profiles__label__init(&labels[nl]);
            labels[nl].key = lkey;
            labels[nl].str = lval;
            if (part->label_str == NULL)
                labels[nl].num = part->label_num;
            nl++;
        }
        qsort(labels, nl, sizeof *labels, label_cmp);

        m->key.n = 0;
        rc = key_add(&m->key, s->n_location_id);
        for (size_t j = 0; j < s->n_location_id && rc == 0; j++) {
            uint64_t lid;
            if (!id_get(&locids, s->location_id[j], &lid)) {
                free(labels);
                rc = HEAPPROF_EPROTO;
                goto out;
            }
            rc = key_add(&m->key, lid);
        }
        for (size_t j = 0; j < nl && rc == 0; j++) {
            rc |= key_add(&m->key, (uint64_t)labels[j].key);
            rc |= key_add(&m->key, (uint64_t)labels[j].str);
            rc |= key_add(&m->key, (uint64_t)labels[j].num);
            rc |= key_add(&m->key, (uint64_t)labels[j].num_unit);
        }
        if (rc != 0) {
            free(labels);
            rc = HEAPPROF_ENOMEM;
            goto out;
        }
        uint64_t idx = m->osamples.n;
        bool found;
        if ((rc = blobmap_intern(&m->samples, m->key.w, m->key.n * 8, &idx,
                                 &found)) != 0) {
            free(labels);
            goto out;
        }
        struct osample *os;
        if (found) {
            free(labels);
            os = (struct osample *)m->osamples.p + idx;
        } else {
            os = vec_push(&m->osamples, sizeof *os);
            if (os == NULL) {
                free(labels);
                rc = HEAPPROF_ENOMEM;
                goto out;
            }
            os->labels = labels;
            os->nlabels = nl;
            os->values = calloc(m->nvalues, sizeof *os->values);
            os->locs = malloc((s->n_location_id + 1) * sizeof *os->locs);
            if (os->values == NULL || os->locs == NULL) {
                rc = HEAPPROF_ENOMEM;
                goto out;
            }
            os->nlocs = s->n_location_id;
            memcpy(os->locs, m->key.w + 1, os->nlocs * sizeof *os->locs);
        }
        for (size_t j = 0; j < m->nvalues; j++)
            os->values[j] += part->negate ? -s->value[j] : s->value[j];
    }
out:
    free(smap);
    blobmap_free(&mapids);
    blobmap_free(&funcids);
    blobmap_free(&locids);
    return rc;
}

static void
merge_free(struct merge *m)
{
    blobmap_free(&m->strs);
    blobmap_free(&m->maps);
    blobmap_free(&m->funcs);
    blobmap_free(&m->locs);
    blobmap_free(&m->samples);
    blobmap_free(&m->comment_seen);
    struct olocation *ol = m->locations.p;
    for (size_t i = 0; i < m->locations.n; i++) {
        free(ol[i].lines);
        free(ol[i].line_ptrs);
    }
    struct osample *os = m->osamples.p;
    for (size_t i = 0; i < m->osamples.n; i++) {
        free(os[i].locs);
        free(os[i].labels);
        free(os[i].values);
    }
    free(m->strings.p);
    free(m->mappings.p);
    free(m->functions.p);
    free(m->locations.p);
    free(m->osamples.p);
    free(m->comments.p);
    free(m->key.w);
}

/* ------------------------------------------------------ input and output */

/* Inflate a gzip'd part into *out (malloc'd); plain parts are borrowed. */
static int
inflate_part(const void *data, size_t len, unsigned char **out,
             size_t *outlen)
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

struct gz_buffer {
    ProtobufCBuffer base;
    struct hp_gzip *gz;
};

static void
gz_append(ProtobufCBuffer *buffer, size_t len, const uint8_t *data)
{
    struct gz_buffer *b = (struct gz_buffer *)buffer;
    hp_gzip_write(b->gz, data, len);
}

static int
emit(struct merge *m, enum heapprof_profile which,
     const struct heapprof_sink *sink)
{
    pb_profile prof = PERFTOOLS__PROFILES__PROFILE__INIT;
    pb_value_type st[8], pt = PERFTOOLS__PROFILES__VALUE_TYPE__INIT;
    pb_value_type *stp[8];
    int rc = HEAPPROF_ENOMEM;
    size_t nmaps = m->mappings.n, nfuncs = m->functions.n;
    size_t nlocs = m->locations.n, nsamples = 0;
    pb_mapping **maps = calloc(nmaps + 1, sizeof *maps);
    pb_function **funcs = calloc(nfuncs + 1, sizeof *funcs);
    pb_location **locs = calloc(nlocs + 1, sizeof *locs);
    pb_sample *samples = calloc(m->osamples.n + 1, sizeof *samples);
    pb_sample **sptrs = calloc(m->osamples.n + 1, sizeof *sptrs);
    pb_label **lptrs = NULL;
    size_t nlabels = 0;
    struct osample *os = m->osamples.p;
    for (size_t i = 0; i < m->osamples.n; i++)
        nlabels += os[i].nlabels;
    lptrs = calloc(nlabels + 1, sizeof *lptrs);
    if (maps == NULL || funcs == NULL || locs == NULL || samples == NULL ||
        sptrs == NULL || lptrs == NULL)
        goto out;

    for (size_t i = 0; i < m->nvalues; i++) {
        perftools__profiles__value_type__init(&st[i]);
        st[i].type = m->sample_type[i][0];
        st[i].unit = m->sample_type[i][1];
        stp[i] = &st[i];
    }
    prof.n_sample_type = m->nvalues;
    prof.sample_type = stp;
    pt.type = m->period_type[0];
    pt.unit = m->period_type[1];
    prof.period_type = &pt;
    prof.period = m->period;
    for (size_t i = 0; i < nmaps; i++)
        maps[i] = (pb_mapping *)m->mappings.p + i;
    for (size_t i = 0; i < nfuncs; i++)
        funcs[i] = (pb_function *)m->functions.p + i;
    for (size_t i = 0; i < nlocs; i++)
        locs[i] = &((struct olocation *)m->locations.p)[i].loc;
    size_t li = 0;
    for (size_t i = 0; i < m->osamples.n; i++) {
        bool zero = true;
        for (size_t j = 0; j < m->nvalues; j++)
            zero = zero && os[i].values[j] == 0;
        if (zero)
            continue; /* cancelled out (deltas), as Go drops them */
        pb_sample *s = &samples[nsamples];
        perftools__profiles__sample__init(s);
        s->n_location_id = os[i].nlocs;
        s->location_id = os[i].locs;
        s->n_value = m->nvalues;
        s->value = os[i].values;
        s->n_label = os[i].nlabels;
        s->label = &lptrs[li];
        for (size_t j = 0; j < os[i].nlabels; j++)
            lptrs[li++] = &os[i].labels[j];
        sptrs[nsamples++] = s;
    }
    prof.n_sample = nsamples;
    prof.sample = sptrs;
    prof.n_mapping = nmaps;
    prof.mapping = maps;
    prof.n_location = nlocs;
    prof.location = locs;
    prof.n_function = nfuncs;
    prof.function = funcs;
    prof.n_string_table = m->strings.n;
    prof.string_table = (char **)m->strings.p;
    prof.drop_frames = m->drop_frames;
    prof.keep_frames = m->keep_frames;
    prof.doc_url = m->doc_url;
    prof.n_comment = m->comments.n;
    prof.comment = m->comments.p;
    if (m->have_neg && m->have_pos) {
        prof.time_nanos = m->pos_max;
        prof.duration_nanos =
            m->pos_max > m->neg_min ? m->pos_max - m->neg_min : 0;
    } else if (m->have_pos) {
        prof.time_nanos = m->pos_min;
        prof.duration_nanos = m->pos_end - m->pos_min;
    }
    if (which == HEAPPROF_PROFILE_ALLOCS) {
        for (size_t i = 0; i < m->nvalues; i++) {
            const char *t = ((const char **)m->strings.p)[m->sample_type[i][0]];
            if (strcmp(t, "alloc_space") == 0)
                prof.default_sample_type = m->sample_type[i][0];
        }
    }

    struct hp_gzip *gz = malloc(sizeof *gz);
    if (gz == NULL)
        goto out;
    rc = hp_gzip_init(gz, sink, 1);
    if (rc == HEAPPROF_OK) {
        struct gz_buffer b = {.base = {.append = gz_append}, .gz = gz};
        perftools__profiles__profile__pack_to_buffer(&prof, &b.base);
        rc = hp_gzip_finish(gz);
    }
    free(gz);
out:
    free(maps);
    free(funcs);
    free(locs);
    free(samples);
    free(sptrs);
    free(lptrs);
    return rc;
}

int
heapprof_profile_merge(const struct heapprof_profile_part *parts,
                       size_t nparts, enum heapprof_profile which,
                       const struct heapprof_sink *sink)
{
    if (parts == NULL || nparts == 0 || sink == NULL || sink->write == NULL)
        return HEAPPROF_EINVAL;
    for (size_t i = 0; i < nparts; i++)
        if (parts[i].data == NULL && parts[i].len != 0)
            return HEAPPROF_EINVAL;
    /* heapprof's own work: never sampled, whatever malloc resolves to. */
    hp_fence_enter();
    int rc = HEAPPROF_OK;
    struct merge m;
    memset(&m, 0, sizeof m);
    pb_profile **unpacked = calloc(nparts, sizeof *unpacked);
    if (unpacked == NULL) {
        rc = HEAPPROF_ENOMEM;
        goto out;
    }
    /* string_table[0] is "" in the output too. */
    int64_t empty;
    if ((rc = intern_str(&m, "", &empty)) != 0)
        goto out;
    for (size_t i = 0; i < nparts && rc == HEAPPROF_OK; i++) {
        unsigned char *raw;
        size_t rawlen;
        rc = inflate_part(parts[i].data, parts[i].len, &raw, &rawlen);
        if (rc != HEAPPROF_OK)
            break;
        unpacked[i] = perftools__profiles__profile__unpack(
            NULL, rawlen, raw != NULL ? raw : parts[i].data);
        free(raw);
        if (unpacked[i] == NULL) {
            rc = HEAPPROF_EPROTO;
            break;
        }
        rc = merge_part(&m, unpacked[i], &parts[i]);
    }
    if (rc == HEAPPROF_OK)
        rc = emit(&m, which, sink);
out:
    merge_free(&m);
    if (unpacked != NULL) {
        for (size_t i = 0; i < nparts; i++)
            if (unpacked[i] != NULL)
                perftools__profiles__profile__free_unpacked(unpacked[i], NULL);
        free(unpacked);
    }
    hp_fence_exit();
    return rc;
}
