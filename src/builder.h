/*
 * The profile builder: the one place that interns strings, functions,
 * mappings and locations into pprof's tables and writes profile.proto,
 * gzip'd, to a sink (tcmalloc's internal/profile_builder plays this part).
 * The encoder (pprof_encode.c) feeds it collected buckets, the merge
 * (merge.c) the contents of other profiles.
 *
 * Samples are streamed: each hp_builder_sample() packs one Profile.sample
 * field and deflates it at once, so memory grows with the distinct
 * addresses, not with the samples. A protobuf message may list its fields
 * in any order and repeated fields accumulate, so those records followed by
 * the rest of the Profile (hp_builder_finish) are exactly the packed
 * Profile (Go's encoder also writes samples first).
 *
 * Ids are 1..N in first-intern order; string 0 is "". Errors are sticky in
 * b->err: a call that fails returns 0 (string 0, no id) so callers may
 * check once at the end. Not thread-safe; runs inside the fence.
 */
#ifndef HP_BUILDER_H
#define HP_BUILDER_H

#include "heapprof.h"
#include "internal.h"
#include "profile.pb-c.h"
#include "table.h"

typedef Perftools__Profiles__Mapping hp_pb_mapping;
typedef Perftools__Profiles__Function hp_pb_function;

struct hp_bline {
    uint64_t func_id;
    int64_t line, column;
};

struct hp_bloc {
    uint64_t addr;
    uint64_t mapping_id; /* 0 = none */
    bool folded;
    uint32_t line0, nlines; /* slice of the builder's lines */
};

struct hp_blabel {
    int64_t key, str, num, num_unit; /* string indexes, but num */
};

/* The Profile's scalar fields; strings as string indexes. */
struct hp_bheader {
    int64_t sample_type[8][2]; /* type, unit */
    size_t nsample_types;
    int64_t period_type[2];
    int64_t period, time_ns, duration_ns;
    int64_t default_sample_type, drop_frames, keep_frames, doc_url;
    const int64_t *comments;
    size_t ncomments;
};

struct hp_pbgz;

struct hp_builder {
    int err; /* first error: HEAPPROF_ENOMEM, or the sink's */
    struct hp_arena arena;
    char **strs;
    size_t nstrs, capstrs;
    struct hp_itab str_tab;
    hp_pb_function *funcs;
    size_t nfuncs, capfuncs;
    struct hp_itab func_tab;
    hp_pb_mapping *maps;
    size_t nmaps, capmaps;
    struct hp_itab map_tab;
    /* Locations: keyed by return address (hp_builder_location_at) or by
     * content (hp_builder_location), never both in one profile. */
    struct hp_bloc *locs;
    size_t nlocs, caplocs;
    struct hp_itab loc_tab;
    struct hp_bline *lines;
    size_t nlines, caplines;
    /* One packed Sample at a time. */
    uint8_t *sbuf;
    size_t sbufcap;
    Perftools__Profiles__Label *lbuf, **lpbuf;
    size_t lbufcap;
    struct hp_pbgz *out;
};

/* Start a profile written to sink (gzip level 1, Go's BestSpeed).
 * 0, HEAPPROF_ENOMEM or HEAPPROF_EINVAL; hp_builder_free() either way. */
HP_HIDDEN int hp_builder_init(struct hp_builder *b,
                              const struct heapprof_sink *sink);

/* Index of s (NULL and "" are 0); stored as a copy, invalid UTF-8
 * replaced with '?' as Go's pprof wants valid strings. */
HP_HIDDEN int64_t hp_builder_str(struct hp_builder *b, const char *s);

/* Function id for these string indexes. */
HP_HIDDEN uint64_t hp_builder_function(struct hp_builder *b, int64_t name,
                                       int64_t system_name, int64_t file,
                                       int64_t start_line);

/* Mapping id for *m's content (its id field is ignored). */
HP_HIDDEN uint64_t hp_builder_mapping(struct hp_builder *b,
                                      const hp_pb_mapping *m);

/* A new location at addr, keyed by nothing (a synthetic frame). */
HP_HIDDEN uint64_t hp_builder_location_new(struct hp_builder *b, uint64_t addr);

HP_HIDDEN uint64_t hp_builder_location_slow(struct hp_builder *b,
                                            struct hp_islot *s, uint64_t pc);

/*
 * Location id for return address pc (not 0): a new one gets address
 * pc - 1, inside the call, and no mapping or lines yet (see
 * hp_builder_loc and hp_builder_line). Inline: it runs for every frame.
 */
static inline uint64_t
hp_builder_location_at(struct hp_builder *b, uint64_t pc)
{
    if (!hp_itab_reserve(&b->loc_tab)) {
        b->err = HEAPPROF_ENOMEM;
        return 0;
    }
    struct hp_islot *s = hp_itab_find(&b->loc_tab, pc, NULL, NULL);
    return s->val != 0 ? s->val : hp_builder_location_slow(b, s, pc);
}

/* Location id for this content, lines included. */
HP_HIDDEN uint64_t hp_builder_location(struct hp_builder *b,
                                       const struct hp_bloc *l,
                                       const struct hp_bline *lines,
                                       size_t nlines);

/* Location id's record (ids from this builder only). */
static inline struct hp_bloc *
hp_builder_loc(struct hp_builder *b, uint64_t id)
{
    return &b->locs[id - 1];
}

/* Append a line to location id; a location's lines must be added one
 * after another (they form one slice). */
HP_HIDDEN void hp_builder_line(struct hp_builder *b, uint64_t id,
                               uint64_t func_id, int64_t line);

/* Write one sample (location ids leaf first). 0 or the sticky error. */
HP_HIDDEN int hp_builder_sample(struct hp_builder *b, const uint64_t *locs,
                                size_t nlocs, const int64_t *values,
                                size_t nvalues, const struct hp_blabel *labels,
                                size_t nlabels);

/* Write the rest of the profile and the gzip trailer. 0 or the first
 * error (a sink failure wins over what it caused). */
HP_HIDDEN int hp_builder_finish(struct hp_builder *b,
                                const struct hp_bheader *h);

/* Release everything (a stream never finished gets no trailer). */
HP_HIDDEN void hp_builder_free(struct hp_builder *b);

#endif
