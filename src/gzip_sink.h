/*
 * A gzip stream over a struct heapprof_sink: bytes go in, gzip members
 * (zlib deflate, windowBits 15+16, Go's BestSpeed by default) come out in
 * fixed-size chunks. Used by the profile encoder; runs inside the fence.
 */
#ifndef HP_GZIP_SINK_H
#define HP_GZIP_SINK_H

#include <zlib.h>

#include "heapprof.h"
#include "internal.h"

#define HP_GZIP_CHUNK 16384

struct hp_gzip {
    z_stream zs;
    const struct heapprof_sink *sink;
    int err;   /* first error (HEAPPROF_E*), sticky */
    bool open; /* deflateInit2 succeeded, deflateEnd due */
    unsigned char out[HP_GZIP_CHUNK];
};

/*
 * Start a gzip stream to sink at zlib level (1 = Go's BestSpeed).
 * 0, or HEAPPROF_ENOMEM / HEAPPROF_EINVAL.
 */
HP_HIDDEN int hp_gzip_init(struct hp_gzip *g, const struct heapprof_sink *sink,
                           int level);
/* Compress len bytes; output is written to the sink as chunks fill.
 * Returns 0 or the sticky error (HEAPPROF_EIO when the sink failed). */
HP_HIDDEN int hp_gzip_write(struct hp_gzip *g, const void *data, size_t len);
/* Flush the trailer and release zlib state. Returns 0 or the first error.
 * Always releases, so call it (or hp_gzip_abort) exactly once. */
HP_HIDDEN int hp_gzip_finish(struct hp_gzip *g);
/* Release zlib state without writing the trailer. */
HP_HIDDEN void hp_gzip_abort(struct hp_gzip *g);

#endif
