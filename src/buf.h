/*
 * The growable buffer (buf.c), the one every layer uses: bytes appended
 * at the end, the memory from malloc (callers run inside the fence), and
 * a sticky out-of-memory flag instead of a return code on every append,
 * so a builder appends freely and checks once at the end.
 *
 *     struct hp_buf b = {0};
 *     hp_buf_puts(&b, "x=");
 *     hp_buf_printf(&b, "%d\n", 42);
 *     if (b.oom) ...;            (b.p holds b.len bytes, not terminated)
 *     hp_buf_free(&b);
 *
 * hp_grow is the same growth for an array of fixed-size elements.
 */
#ifndef HP_BUF_H
#define HP_BUF_H

#include "heapprof.h"
#include "internal.h"

struct hp_buf {
    char *p; /* malloc'ed; NULL while empty */
    size_t len, cap;
    bool oom; /* an append failed; later ones do nothing */
};

/* Room for `more` bytes past len (false, and oom set, if there is none). */
HP_HIDDEN bool hp_buf_reserve(struct hp_buf *b, size_t more);
HP_HIDDEN void hp_buf_put(struct hp_buf *b, const void *data, size_t n);
HP_HIDDEN void hp_buf_puts(struct hp_buf *b, const char *s);
HP_HIDDEN void hp_buf_printf(struct hp_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Free the memory and reset *b to empty. */
HP_HIDDEN void hp_buf_free(struct hp_buf *b);

/* A heapprof_sink's write over a struct hp_buf (ctx): -1 once out of
 * memory, so encoders stop early. */
HP_HIDDEN int hp_buf_sink_write(void *ctx, const void *data, size_t len);
/* hp_buf_put for a (ctx, bytes, n) callback, such as hp_file_copy's. */
HP_HIDDEN void hp_buf_put_cb(void *ctx, const char *p, size_t n);

static inline struct heapprof_sink
hp_buf_sink(struct hp_buf *b)
{
    struct heapprof_sink s = {hp_buf_sink_write, b};
    return s;
}

/*
 * Grow *arr, an array of *cap elements of esz bytes, to hold at least need
 * elements (capacity doubles, from 64). False on overflow or when realloc
 * fails; *arr and *cap are then unchanged.
 */
HP_HIDDEN bool hp_grow(void **arr, size_t *cap, size_t need, size_t esz);

#endif
