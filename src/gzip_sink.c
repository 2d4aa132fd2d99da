/*
 * zlib gzip stream feeding a struct heapprof_sink in HP_GZIP_CHUNK pieces.
 * The first failure (zlib or sink) is remembered and turns every later call
 * into a no-op returning it, so callers check once at the end.
 */
#include "gzip_sink.h"

#include <string.h>

int
hp_gzip_init(struct hp_gzip *g, const struct heapprof_sink *sink, int level)
{
    memset(&g->zs, 0, sizeof(g->zs));
    g->sink = sink;
    g->err = 0;
    g->open = false;
    if (sink == NULL || sink->write == NULL)
        return g->err = HEAPPROF_EINVAL;
    /* 15 + 16: largest window, gzip header and trailer instead of zlib's. */
    int rc =
        deflateInit2(&g->zs, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
    if (rc != Z_OK)
        return g->err = (rc == Z_MEM_ERROR ? HEAPPROF_ENOMEM : HEAPPROF_EINVAL);
    g->open = true;
    g->zs.next_out = g->out;
    g->zs.avail_out = sizeof(g->out);
    return 0;
}

/* Hand the filled part of the output buffer to the sink. */
static int
drain(struct hp_gzip *g)
{
    size_t n = sizeof(g->out) - g->zs.avail_out;
    if (n > 0 && g->sink->write(g->sink->ctx, g->out, n) != 0)
        return g->err = HEAPPROF_EIO;
    g->zs.next_out = g->out;
    g->zs.avail_out = sizeof(g->out);
    return 0;
}

static int
run(struct hp_gzip *g, int flush)
{
    for (;;) {
        int rc = deflate(&g->zs, flush);
        if (rc == Z_STREAM_ERROR)
            return g->err = HEAPPROF_EINVAL;
        if (g->zs.avail_out == 0 || rc == Z_STREAM_END) {
            if (drain(g) != 0)
                return g->err;
        }
        if (rc == Z_STREAM_END)
            return 0;
        /* Without finishing, deflate is done once it has consumed the input
         * and left room in the output buffer. */
        if (flush == Z_NO_FLUSH && g->zs.avail_in == 0 && g->zs.avail_out > 0)
            return 0;
        if (rc == Z_BUF_ERROR && g->zs.avail_out > 0)
            return 0;
    }
}

int
hp_gzip_write(struct hp_gzip *g, const void *data, size_t len)
{
    if (g->err != 0)
        return g->err;
    const unsigned char *p = data;
    /* avail_in is a uInt: feed huge buffers in slices. */
    while (len > 0) {
        size_t n = len > (1u << 30) ? (1u << 30) : len;
        g->zs.next_in = (unsigned char *)p;
        g->zs.avail_in = (uInt)n;
        if (run(g, Z_NO_FLUSH) != 0)
            return g->err;
        p += n;
        len -= n;
    }
    return 0;
}

int
hp_gzip_finish(struct hp_gzip *g)
{
    if (!g->open)
        return g->err != 0 ? g->err : HEAPPROF_EINVAL;
    if (g->err == 0) {
        g->zs.next_in = NULL;
        g->zs.avail_in = 0;
        run(g, Z_FINISH);
    }
    deflateEnd(&g->zs);
    g->open = false;
    return g->err;
}

void
hp_gzip_abort(struct hp_gzip *g)
{
    if (g->open)
        deflateEnd(&g->zs);
    g->open = false;
}
