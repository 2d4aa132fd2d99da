/*
 * profile.proto encoder: collected entries in, gzip'd Go-style heap profile
 * out (sample types alloc_objects, alloc_space, inuse_objects, inuse_space;
 * period_type space/bytes). Symbolizes every unique address once, builds
 * mappings from /proc/self/maps, packs with protobuf-c and gzips with zlib.
 * Knows nothing about buckets or malloc; runs inside the fence.
 */
#ifndef HP_PPROF_ENCODE_H
#define HP_PPROF_ENCODE_H

#include "heapprof.h"
#include "internal.h"
#include "profile.h"

/* Function name of the overflow bucket's synthetic frame. */
#define HP_OVERFLOW_FRAME "[heapprof: bucket table full]"

struct hp_encode_opts {
    /* HEAP: default sample type unset (pprof takes the last, inuse_space);
     * ALLOCS: "alloc_space". */
    enum heapprof_profile which;
    const char *const *comments; /* Profile.comment lines (may be NULL) */
    size_t ncomments;
    const char *maps_path; /* NULL = /proc/self/maps (tests only) */
};

/*
 * Encode d into the sink as a gzip'd profile.proto. 0, HEAPPROF_ENOMEM, or
 * HEAPPROF_EIO when the sink reported a failure (the sink may then have
 * received a partial stream).
 */
HP_HIDDEN int hp_pprof_encode(const struct hp_profile_data *d,
                              const struct hp_encode_opts *opts,
                              const struct heapprof_sink *sink);

#endif
