/*
 * The C tests' in-memory sink: a struct heapprof_sink that keeps what it
 * is given (growing with realloc), or refuses every write (fail, for the
 * error paths), and hp_test_gunzip to read a gzip'd profile back (when
 * zlib.h is included first). Header only, public API only, so tests of
 * every kind (unit, attach) share it.
 */
#ifndef HP_TEST_SINK_H
#define HP_TEST_SINK_H

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "heapprof.h"

struct hp_test_sink {
    unsigned char *p;
    size_t n, cap;
    int fail; /* nonzero: every write fails */
};

static inline int
hp_test_sink_write(void *ctx, const void *data, size_t len)
{
    struct hp_test_sink *m = ctx;
    if (m->fail)
        return -1;
    if (m->n + len > m->cap) {
        size_t cap = m->cap ? m->cap : 4096;
        while (cap < m->n + len)
            cap *= 2;
        unsigned char *p = realloc(m->p, cap);
        if (p == NULL)
            return -1;
        m->p = p;
        m->cap = cap;
    }
    memcpy(m->p + m->n, data, len);
    m->n += len;
    return 0;
}

static inline struct heapprof_sink
hp_test_sink(struct hp_test_sink *m)
{
    struct heapprof_sink s = {hp_test_sink_write, m};
    return s;
}

static inline void
hp_test_sink_free(struct hp_test_sink *m)
{
    free(m->p);
    memset(m, 0, sizeof(*m));
}

#ifdef ZLIB_H
/* One gzip member in[0..n) inflated into a malloc'ed buffer (*outlen
 * bytes), or NULL if it is not exactly that. */
static inline unsigned char *
hp_test_gunzip(const unsigned char *in, size_t n, size_t *outlen)
{
    z_stream zs;
    memset(&zs, 0, sizeof(zs));
    *outlen = 0;
    if (inflateInit2(&zs, 15 + 16) != Z_OK)
        return NULL;
    size_t cap = 1 << 16;
    unsigned char *out = malloc(cap);
    zs.next_in = (unsigned char *)in;
    zs.avail_in = (uInt)n;
    int rc = Z_OK;
    while (out != NULL && rc == Z_OK) {
        if (zs.total_out == cap) {
            unsigned char *o = realloc(out, cap * 2);
            if (o == NULL)
                break;
            out = o;
            cap *= 2;
        }
        zs.next_out = out + zs.total_out;
        zs.avail_out = (uInt)(cap - zs.total_out);
        rc = inflate(&zs, Z_NO_FLUSH);
    }
    *outlen = zs.total_out;
    /* Nothing after the one member. */
    bool ok = rc == Z_STREAM_END && zs.avail_in == 0;
    inflateEnd(&zs);
    if (!ok) {
        free(out);
        return NULL;
    }
    return out;
}
#endif

#endif
