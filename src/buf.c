/*
 * The growable buffer and array growth (see buf.h).
 */
#include "buf.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool
hp_grow(void **arr, size_t *cap, size_t need, size_t esz)
{
    if (need <= *cap)
        return true;
    size_t ncap = *cap ? *cap : 64;
    while (ncap < need) {
        if (ncap > SIZE_MAX / 2)
            return false;
        ncap *= 2;
    }
    if (esz != 0 && ncap > SIZE_MAX / esz)
        return false;
    void *p = realloc(*arr, ncap * esz);
    if (p == NULL)
        return false;
    *arr = p;
    *cap = ncap;
    return true;
}

bool
hp_buf_reserve(struct hp_buf *b, size_t more)
{
    if (b->oom)
        return false;
    if (more > SIZE_MAX - b->len ||
        !hp_grow((void **)&b->p, &b->cap, b->len + more, 1)) {
        b->oom = true;
        return false;
    }
    return true;
}

void
hp_buf_put(struct hp_buf *b, const void *data, size_t n)
{
    if (n == 0 || !hp_buf_reserve(b, n))
        return;
    memcpy(b->p + b->len, data, n);
    b->len += n;
}

void
hp_buf_puts(struct hp_buf *b, const char *s)
{
    hp_buf_put(b, s, strlen(s));
}

void
hp_buf_printf(struct hp_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->oom = true;
        return;
    }
    if (!hp_buf_reserve(b, (size_t)n + 1))
        return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void
hp_buf_free(struct hp_buf *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

void
hp_buf_put_cb(void *ctx, const char *p, size_t n)
{
    hp_buf_put(ctx, p, n);
}

int
hp_buf_sink_write(void *ctx, const void *data, size_t len)
{
    struct hp_buf *b = ctx;
    hp_buf_put(b, data, len);
    return b->oom ? -1 : 0;
}
