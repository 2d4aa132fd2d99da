/*
 * Profile building: turns the bucket table into a pprof profile. Two steps
 * so that delta profiles (HTTP seconds=N, delta_heap) can subtract one
 * collection from another before encoding:
 *   hp_profile_collect()  reads every bucket into a plain array (values
 *                         already unbiased, Go's column order);
 *   hp_profile_encode()   symbolizes, builds profile.proto and gzips it
 *                         into a sink.
 * Both run inside the reentrancy fence and may use malloc.
 */
#ifndef HP_PROFILE_H
#define HP_PROFILE_H

#include "heapprof.h"
#include "internal.h"

enum {
    HP_V_ALLOC_OBJECTS = 0,
    HP_V_ALLOC_SPACE = 1,
    HP_V_INUSE_OBJECTS = 2,
    HP_V_INUSE_SPACE = 3,
    HP_NVALUES = 4
};

struct hp_profile_entry {
    const void *key;         /* the bucket: identity across collections */
    const uintptr_t *pcs;    /* return addresses, leaf first (bucket's) */
    uint32_t nframes;        /* 0 = overflow bucket: "[heapprof: table full]" */
    int64_t v[HP_NVALUES];   /* unbiased values */
    int64_t raw[HP_NVALUES]; /* raw sampled counts/bytes (debug=1 text) */
    const struct hp_labelset *labels; /* the bucket's labels, or NULL */
};

struct hp_profile_data {
    struct hp_profile_entry *e;
    size_t n;
    uint64_t rate;        /* current sampling rate (period) */
    uint64_t time_ns;     /* wall clock at collection */
    uint64_t duration_ns; /* 0 unless a delta */
};

/* Collect all buckets with non-zero values. HEAPPROF_ENOMEM on failure. */
HP_HIDDEN int hp_profile_collect(struct hp_profile_data *out);
HP_HIDDEN void hp_profile_data_free(struct hp_profile_data *d);

/* The in-use values at the last peak capture (see peak.h), in both the
 * alloc and the inuse columns; time_ns is the capture's wall time. */
HP_HIDDEN int hp_profile_collect_peak(struct hp_profile_data *out);

/* Live sampled blocks allocated at least min_age_ns ago, per bucket, in
 * both the alloc and the inuse columns (leak suspects). */
HP_HIDDEN int hp_profile_collect_aged(struct hp_profile_data *out,
                                      uint64_t min_age_ns);

/* Gzip'd profile.proto of d to the sink: heap (default inuse_space) or
 * allocs (default alloc_space). Comments carry the self-report. */
HP_HIDDEN int hp_profile_encode(const struct hp_profile_data *d,
                                enum heapprof_profile which,
                                const struct heapprof_sink *sink);

/* collect + encode. */
HP_HIDDEN int hp_profile_write(enum heapprof_profile which,
                               const struct heapprof_sink *sink);

#endif
