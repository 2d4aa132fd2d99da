/*
 * libFuzzer target for heapprof's request handler: every input becomes one
 * request to heapprof_http_handle() (and, for seconds=N, a resume or a
 * cancel), over stub profile data (stubs.c). Input layout:
 *   byte 0        flags: 1 mount "/m/", 2 query passed apart from the
 *                 path, 4 no write timeout, 8 cancel a pending delta
 *   up to '\n'    method
 *   up to '\n'    request target (path?query)
 *   the rest      body
 * Checks the response's invariants: a known status, a content type, a
 * body that matches its length, headers that end.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "heapprof.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *
take_line(const char **p, const char *end, size_t *len)
{
    const char *s = *p;
    const char *nl = memchr(s, '\n', (size_t)(end - s));
    if (nl == NULL)
        nl = end;
    *len = (size_t)(nl - s);
    *p = nl < end ? nl + 1 : end;
    return s;
}

static void
check(const struct heapprof_http_response *r)
{
    if (r->status < 200 || r->status > 599 || r->content_type == NULL)
        abort();
    if (r->body == NULL && r->body_len != 0)
        abort();
    if (r->body_len > 0) {
        /* Touch both ends: ASan checks the length is really owned. */
        volatile char first = r->body[0], last = r->body[r->body_len - 1];
        (void)first;
        (void)last;
    }
    unsigned i = 0;
    const char *v;
    while (heapprof_http_response_header(r, i, &v) != NULL) {
        if (v == NULL || ++i > 8)
            abort();
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned flags = data[0];
    /* Own copies, so ASan sees any read past the borrowed lengths. */
    char *buf = malloc(size);
    if (buf == NULL)
        return 0;
    memcpy(buf, data + 1, size - 1);
    const char *p = buf, *end = buf + size - 1;
    struct heapprof_http_request req;
    memset(&req, 0, sizeof(req));
    req.method = take_line(&p, end, &req.method_len);
    req.path = take_line(&p, end, &req.path_len);
    if (flags & 2) {
        const char *q = memchr(req.path, '?', req.path_len);
        if (q != NULL) {
            req.query = q + 1;
            req.query_len = req.path_len - (size_t)(q + 1 - req.path);
            req.path_len = (size_t)(q - req.path);
        }
    }
    if (p < end) {
        req.body = p;
        req.body_len = (size_t)(end - p);
    }
    if (flags & 1) {
        req.mount = "/m/";
        req.mount_len = 3;
    }
    req.write_timeout_s = (flags & 4) ? 0 : 30;

    struct heapprof_http_response resp;
    int rc = heapprof_http_handle(&req, &resp);
    if (rc == HEAPPROF_HTTP_PENDING) {
        if (resp.pending == NULL || resp.body != NULL)
            abort();
        struct heapprof_http_pending *pend = resp.pending;
        resp.pending = NULL;
        heapprof_http_response_free(&resp);
        if (flags & 8) {
            heapprof_http_cancel(pend);
        } else {
            heapprof_http_resume(pend, &resp);
            check(&resp);
            heapprof_http_response_free(&resp);
        }
    } else {
        if (rc != 0)
            abort();
        check(&resp);
        heapprof_http_response_free(&resp);
    }
    free(buf);
    return 0;
}
