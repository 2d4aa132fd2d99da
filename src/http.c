/*
 * The /debug/pprof request handler (heapprof_http_* in heapprof.h): routes
 * a borrowed request to an endpoint and builds an owned response body,
 * saying in resp->served which profile it is. seconds=N keeps the first
 * collection in a pending object until the server resumes it. The query
 * is read by query.c, deltas computed by delta.c.
 */
#include "http.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "delta.h"
#include "fileio.h"
#include "gc_registry.h"
#include "ialloc.h"
#include "query.h"
#include "symbolize.h"
#include "text_encode.h"

#define CT_TEXT "text/plain; charset=utf-8"
#define CT_HTML "text/html; charset=utf-8"
#define CT_PROTO "application/octet-stream"

/* ------------------------------------------------------------ responses */

static void
resp_reset(struct heapprof_http_response *resp)
{
    memset(resp, 0, sizeof(*resp));
    resp->status = 500;
    resp->content_type = CT_TEXT;
    resp->headers = HEAPPROF_HTTP_HDR_NOSNIFF;
}

/* Hand the buffer to the response; a buffer that ran out of memory
 * becomes a 503 with no body (there is nothing left to format it in). */
static void
resp_take(struct heapprof_http_response *resp, struct hp_buf *b)
{
    if (b->oom) {
        free(b->p);
        resp->status = 503;
        resp->content_type = CT_TEXT;
        resp->content_disposition = NULL;
        resp->headers = HEAPPROF_HTTP_HDR_NOSNIFF | HEAPPROF_HTTP_HDR_GO_PPROF;
        resp->body = NULL;
        resp->body_len = 0;
    } else {
        resp->body = b->p;
        resp->body_len = b->len;
    }
    memset(b, 0, sizeof(*b));
}

/* Go's serveError: text/plain, X-Go-Pprof: 1 (so go tool pprof prints the
 * body), no Content-Disposition, the message and a newline. */
static void
serve_error(struct heapprof_http_response *resp, int status, const char *msg)
{
    struct hp_buf b = {0};
    free(resp->body);
    resp->body = NULL;
    resp->body_len = 0;
    resp->status = status;
    resp->content_type = CT_TEXT;
    resp->content_disposition = NULL;
    resp->headers = HEAPPROF_HTTP_HDR_NOSNIFF | HEAPPROF_HTTP_HDR_GO_PPROF;
    resp->served = HEAPPROF_HTTP_SERVED_OTHER;
    hp_buf_puts(&b, msg);
    hp_buf_put(&b, "\n", 1);
    resp_take(resp, &b);
    resp->status = status;
}

void
hp_http_error(struct heapprof_http_response *resp, int status, const char *msg)
{
    resp_reset(resp);
    serve_error(resp, status, msg);
}

/* ------------------------------------------------------------ endpoints */

enum ep {
    EP_NONE,
    EP_INDEX,
    EP_HEAP,
    EP_ALLOCS,
    EP_DELTA_HEAP,
    EP_SYMBOL,
    EP_CMDLINE,
    EP_GO_ONLY, /* profile, goroutine, ...: Go has them, we cannot */
    EP_UNKNOWN, /* a name under the mount we do not serve */
};

static bool
name_is(const char *s, size_t n, const char *lit)
{
    return n == strlen(lit) && memcmp(s, lit, n) == 0;
}

#define HP_HEAP_ONLY_MSG                                                       \
    "heapprof serves heap profiles only: /debug/pprof/heap, "                  \
    "/debug/pprof/allocs and /debug/pprof/delta_heap (no CPU, goroutine, "     \
    "mutex, block, threadcreate or trace profile)"

static enum ep
endpoint_of(const char *name, size_t n)
{
    if (n == 0)
        return EP_INDEX;
    if (name_is(name, n, "heap"))
        return EP_HEAP;
    if (name_is(name, n, "allocs"))
        return EP_ALLOCS;
    if (name_is(name, n, "delta_heap"))
        return EP_DELTA_HEAP;
    if (name_is(name, n, "symbol"))
        return EP_SYMBOL;
    if (name_is(name, n, "cmdline"))
        return EP_CMDLINE;
    /* What Go serves and fleet scrapers (Alloy, Parca) ask by default. */
    static const char *const go_only[] = {"profile", "trace", "goroutine",
                                          "mutex",   "block", "threadcreate"};
    for (size_t i = 0; i < sizeof go_only / sizeof go_only[0]; i++)
        if (name_is(name, n, go_only[i]))
            return EP_GO_ONLY;
    return EP_UNKNOWN;
}

/* Where the request lands: endpoint, and for the index the relative link
 * prefix that reaches the endpoints from the requested URL. */
struct route {
    enum ep ep;
    const char *link_prefix; /* points into the path, or "" */
    size_t link_prefix_len;
    bool link_slash; /* append '/' to link_prefix */
};

static bool
starts_with(const char *s, size_t n, const char *p, size_t pn)
{
    return n >= pn && memcmp(s, p, pn) == 0;
}

/* The last path segment plus '/', for an index requested without its
 * trailing slash ("/debug/pprof" links to "pprof/heap"). */
static void
set_dirlink(struct route *r, const char *path, size_t n)
{
    size_t i = n;
    while (i > 0 && path[i - 1] != '/')
        i--;
    r->link_prefix = path + i;
    r->link_prefix_len = n - i;
    r->link_slash = n > i;
}

static struct route
route_of(const struct heapprof_http_request *req, const char *path, size_t n)
{
    struct route r = {.ep = EP_NONE, .link_prefix = ""};
    static const char dp[] = "/debug/pprof/";
    const size_t dpn = sizeof(dp) - 1;
    const char *mount = req->mount;
    size_t mn = req->mount_len;
    if (mount == NULL) {
        mount = dp;
        mn = dpn;
        if (name_is(path, n, "/debug/heap")) {
            r.ep = EP_HEAP;
            return r;
        }
        if (n == 0 || path[0] != '/') {
            /* Relative: the server already stripped its prefix. */
            r.ep = endpoint_of(path, n);
            return r;
        }
    }
    if (starts_with(path, n, mount, mn)) {
        r.ep = endpoint_of(path + mn, n - mn);
        if (memchr(path + mn, '/', n - mn) != NULL)
            r.ep = EP_UNKNOWN;
        return r;
    }
    if (mn > 1 && mount[mn - 1] == '/' && n == mn - 1 &&
        memcmp(path, mount, n) == 0) {
        r.ep = EP_INDEX;
        set_dirlink(&r, path, n);
    }
    return r;
}

static void
html_escape(struct hp_buf *b, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        switch (s[i]) {
        case '&':
            hp_buf_puts(b, "&amp;");
            break;
        case '<':
            hp_buf_puts(b, "&lt;");
            break;
        case '>':
            hp_buf_puts(b, "&gt;");
            break;
        case '"':
            hp_buf_puts(b, "&quot;");
            break;
        case '\'':
            hp_buf_puts(b, "&#39;");
            break;
        default:
            hp_buf_put(b, &s[i], 1);
            break;
        }
    }
}

static void
serve_index(const struct route *r, struct heapprof_http_response *resp)
{
    static const struct {
        const char *name, *query, *desc;
    } rows[] = {
        {"allocs", "?debug=1",
         "A sampling of all past memory allocations (default sample type "
         "alloc_space)."},
        {"cmdline", "",
         "The command line invocation of the current "
         "program."},
        {"delta_heap", "",
         "Allocations since the previous scrape of this page and memory in "
         "use now (godeltaprof's delta heap, for continuous profilers)."},
        {"heap", "?debug=1",
         "A sampling of memory allocations of live objects. You can specify "
         "the gc GET parameter to run a registered collection before the "
         "heap sample, min_age=10m for the live objects allocated at least "
         "that long ago (leak suspects), or peak=1 for the heap as it was "
         "at its highest."},
        {"symbol", "",
         "Address to function name lookups (pprof's remote "
         "symbolization)."},
    };
    struct hp_buf b = {0};
    hp_buf_puts(&b, "<html>\n<head>\n<title>/debug/pprof/</title>\n"
                    "<style>\n.profile-name{\n\tdisplay:inline-block;\n"
                    "\twidth:6rem;\n}\n</style>\n</head>\n<body>\n"
                    "/debug/pprof/<br>\n<br>\n"
                    "Heap profiles served by heapprof ");
    hp_buf_puts(&b, heapprof_version_string());
    hp_buf_puts(&b, ".<br>\n<br>\nTypes of profiles available:\n"
                    "<table>\n<thead><td>Profile</td></thead>\n");
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        hp_buf_puts(&b, "<tr><td><a href=\"");
        html_escape(&b, r->link_prefix, r->link_prefix_len);
        if (r->link_slash)
            hp_buf_put(&b, "/", 1);
        hp_buf_printf(&b, "%s%s\">%s</a></td></tr>\n", rows[i].name,
                      rows[i].query, rows[i].name);
    }
    hp_buf_puts(&b, "</table>\n<br>\n<p>\nProfile Descriptions:\n<ul>\n");
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
        hp_buf_printf(&b, "<li><div class=profile-name>%s: </div> %s</li>\n",
                      rows[i].name, rows[i].desc);
    hp_buf_puts(&b,
                "</ul>\n</p>\n<p>Set debug=1 as a query parameter to export "
                "in legacy text format. Fetch a profile with\n"
                "<code>go tool pprof http://HOST:PORT/debug/pprof/heap"
                "</code>.</p>\n</body>\n</html>\n");
    resp->status = 200;
    resp->content_type = CT_HTML;
    resp->headers = HEAPPROF_HTTP_HDR_NOSNIFF;
    resp_take(resp, &b);
}

static void
serve_cmdline(struct heapprof_http_response *resp)
{
    struct hp_buf b = {0};
    hp_self_cmdline(hp_buf_put_cb, &b);
    /* The kernel ends every argument with NUL; Go joins with NUL. */
    if (!b.oom && b.len > 0 && b.p[b.len - 1] == '\0')
        b.len--;
    resp->status = 200;
    resp->content_type = CT_TEXT;
    resp->headers = HEAPPROF_HTTP_HDR_NOSNIFF;
    resp_take(resp, &b);
}

static bool
is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Bounds on one /debug/pprof/symbol request, which runs on the only
 * listener thread: addresses looked up, and time spent. What is past
 * them is left out of the answer (pprof shows those addresses bare). */
#define SYMBOL_MAX_ADDRS 16384u
#define SYMBOL_MAX_NS (5 * 1000000000ull)

/* pprof's symbolz protocol: "num_symbols: 1" (we can symbolize), then
 * "0x<addr> <name>" for each '+'-separated address we know. One
 * symbolizer session for the whole list. */
static void
serve_symbol(const char *list, size_t n, struct heapprof_http_response *resp)
{
    struct hp_buf b = {0};
    hp_buf_puts(&b, "num_symbols: 1\n");
    size_t i = 0;
    unsigned looked_up = 0;
    uint64_t deadline = hp_now_mono_ns() + SYMBOL_MAX_NS;
    hp_symbolize_begin();
    while (i < n && !b.oom && looked_up < SYMBOL_MAX_ADDRS &&
           (looked_up % 64 != 0 || hp_now_mono_ns() < deadline)) {
        size_t j = i;
        while (j < n && list[j] != '+')
            j++;
        size_t s = i, e = j;
        i = j + 1;
        while (s < e && is_space(list[s]))
            s++;
        while (e > s && is_space(list[e - 1]))
            e--;
        char tok[32];
        if (e == s || e - s >= sizeof(tok))
            continue;
        memcpy(tok, list + s, e - s);
        tok[e - s] = '\0';
        if (tok[0] == '-' || tok[0] == '+')
            continue;
        errno = 0;
        char *end;
        unsigned long long pc = strtoull(tok, &end, 0);
        if (*end != '\0' || errno == ERANGE || pc == 0 || pc > UINTPTR_MAX)
            continue;
        char name[512];
        looked_up++;
        if (hp_symbolize_name((uintptr_t)pc, name, sizeof(name)) != 0)
            continue;
        hp_buf_printf(&b, "%#llx %s\n", pc, name);
    }
    hp_symbolize_end();
    resp->status = 200;
    resp->content_type = CT_TEXT;
    resp->headers = HEAPPROF_HTTP_HDR_NOSNIFF;
    resp_take(resp, &b);
}

static void
serve_encoded(const struct hp_profile_data *d, enum heapprof_profile which,
              bool text, const char *disposition,
              struct heapprof_http_response *resp)
{
    struct hp_buf b = {0};
    struct heapprof_sink sink = {hp_buf_sink_write, &b};
    int err = text ? hp_text_encode(d, &sink, NULL)
                   : hp_profile_encode(d, which, &sink);
    if (err != 0) {
        free(b.p);
        serve_error(resp, 503, "failed to write profile (out of memory)");
        return;
    }
    resp->status = 200;
    resp->headers = HEAPPROF_HTTP_HDR_NOSNIFF;
    if (text) {
        resp->content_type = CT_TEXT;
        resp->content_disposition = NULL;
    } else {
        resp->content_type = CT_PROTO;
        resp->content_disposition = disposition;
    }
    resp_take(resp, &b);
}

struct heapprof_http_pending {
    struct hp_profile_data p0;
    enum heapprof_profile which;
    enum heapprof_http_served served;
    const char *disposition;
    uint64_t charged; /* bytes counted against HEAPPROF_MAX_MEMORY */
};

/* Free a pending request and give back what it counted in the budget. */
static void
pending_free(struct heapprof_http_pending *p)
{
    if (p == NULL)
        return;
    hp_ialloc_uncharge(p->charged);
    hp_profile_data_free(&p->p0);
    free(p);
}

/* seconds=N: the first collection, kept until the server resumes. */
static int
start_delta(enum ep ep, long long sec, struct heapprof_http_response *resp)
{
    struct heapprof_http_pending *p = calloc(1, sizeof(*p));
    if (p == NULL || hp_profile_collect(&p->p0) != 0) {
        pending_free(p);
        serve_error(resp, 503, "failed to collect profile (out of memory)");
        return 0;
    }
    /* The first profile waits N seconds: it counts in the budget, so
     * waiting requests cannot pin memory beyond it. */
    uint64_t size = sizeof(*p) + p->p0.n * sizeof(p->p0.e[0]);
    if (!hp_ialloc_charge(size)) {
        pending_free(p);
        serve_error(resp, 503,
                    "seconds=N: no room for its first profile "
                    "in HEAPPROF_MAX_MEMORY; try again later");
        return 0;
    }
    p->charged = size;
    bool heap = ep == EP_HEAP;
    p->which = heap ? HEAPPROF_PROFILE_HEAP : HEAPPROF_PROFILE_ALLOCS;
    p->served = heap ? HEAPPROF_HTTP_SERVED_HEAP : HEAPPROF_HTTP_SERVED_ALLOCS;
    p->disposition = heap ? "attachment; filename=\"heap-delta\""
                          : "attachment; filename=\"allocs-delta\"";
    resp->pending = p;
    resp->delay_ms = (unsigned)sec * 1000u;
    resp->status = 200;
    resp->served = p->served;
    return HEAPPROF_HTTP_PENDING;
}

/* The collection the endpoint and its query ask for. */
static int
collect(enum ep ep, const struct hp_profile_query *q, struct hp_profile_data *d)
{
    memset(d, 0, sizeof(*d));
    if (ep == EP_DELTA_HEAP)
        return hp_delta_heap_collect(d);
    if (q->aged)
        return hp_profile_collect_aged(d, q->min_age_ns);
    if (q->peak != 0)
        return hp_profile_collect_peak(d);
    return hp_profile_collect(d);
}

static int
serve_profile(enum ep ep, const char *query, size_t qn,
              unsigned write_timeout_s, struct heapprof_http_response *resp)
{
    enum hp_query_target target = ep == EP_HEAP     ? HP_QUERY_HEAP
                                  : ep == EP_ALLOCS ? HP_QUERY_ALLOCS
                                                    : HP_QUERY_DELTA_HEAP;
    struct hp_profile_query q;
    const char *why = hp_query_profile(query, qn, target, write_timeout_s, &q);
    if (why != NULL) {
        serve_error(resp, 400, why);
        return 0;
    }
    if (q.seconds > 0)
        return start_delta(ep, q.seconds, resp);
    if (q.gc > 0 && (ep == EP_HEAP || ep == EP_DELTA_HEAP))
        hp_gc_run();

    struct hp_profile_data d;
    if (collect(ep, &q, &d) != 0) {
        hp_profile_data_free(&d);
        serve_error(resp, 503, "failed to collect profile (out of memory)");
        return 0;
    }
    enum heapprof_profile which =
        ep == EP_ALLOCS ? HEAPPROF_PROFILE_ALLOCS : HEAPPROF_PROFILE_HEAP;
    const char *disp = ep == EP_HEAP ? "attachment; filename=\"heap\""
                       : ep == EP_ALLOCS
                           ? "attachment; filename=\"allocs\""
                           : "attachment; filename=\"delta_heap\"";
    serve_encoded(&d, which, q.debug != 0, disp, resp);
    if (q.debug == 0 && resp->status == 200)
        resp->served = ep == EP_HEAP     ? HEAPPROF_HTTP_SERVED_HEAP
                       : ep == EP_ALLOCS ? HEAPPROF_HTTP_SERVED_ALLOCS
                                         : HEAPPROF_HTTP_SERVED_DELTA_HEAP;
    hp_profile_data_free(&d);
    return 0;
}

static int
handle(const struct heapprof_http_request *req,
       struct heapprof_http_response *resp)
{
    const char *path = req->path;
    size_t pn = req->path_len;
    const char *query = req->query;
    size_t qn = req->query_len;
    if (query == NULL) {
        const char *qm = memchr(path, '?', pn);
        if (qm != NULL) {
            query = qm + 1;
            qn = pn - (size_t)(qm + 1 - path);
            pn = (size_t)(qm - path);
        } else {
            query = "";
            qn = 0;
        }
    }

    struct route r = route_of(req, path, pn);
    if (r.ep == EP_NONE) {
        serve_error(resp, 404, "404 page not found");
        return 0;
    }
    if (r.ep == EP_UNKNOWN) {
        serve_error(resp, 404, "Unknown profile");
        return 0;
    }

    const char *m = req->method ? req->method : "";
    size_t mn = req->method ? req->method_len : 0;
    bool get = name_is(m, mn, "GET") || name_is(m, mn, "HEAD");
    bool post = name_is(m, mn, "POST");
    if (!get && !(post && r.ep == EP_SYMBOL)) {
        serve_error(resp, 405, "method not allowed");
        resp->allow = r.ep == EP_SYMBOL ? "GET, HEAD, POST" : "GET, HEAD";
        return 0;
    }

    switch (r.ep) {
    case EP_INDEX:
        serve_index(&r, resp);
        return 0;
    case EP_CMDLINE:
        serve_cmdline(resp);
        return 0;
    case EP_SYMBOL:
        if (post)
            serve_symbol(req->body ? req->body : "",
                         req->body ? req->body_len : 0, resp);
        else
            serve_symbol(query, qn, resp);
        return 0;
    case EP_GO_ONLY:
        /* 404 (a scraper's log says "not found", not "server error"),
         * with what to ask instead. */
        serve_error(resp, 404, HP_HEAP_ONLY_MSG);
        return 0;
    case EP_HEAP:
    case EP_ALLOCS:
    case EP_DELTA_HEAP:
        return serve_profile(r.ep, query, qn, req->write_timeout_s, resp);
    default:
        serve_error(resp, 404, "Unknown profile");
        return 0;
    }
}

/* ------------------------------------------------------------ public API */

int
heapprof_http_handle(const struct heapprof_http_request *req,
                     struct heapprof_http_response *resp)
{
    if (resp == NULL)
        return HEAPPROF_EINVAL;
    hp_fence_enter();
    resp_reset(resp);
    int rc;
    if (req == NULL || (req->path == NULL && req->path_len != 0)) {
        serve_error(resp, 500, "heapprof: invalid request");
        rc = HEAPPROF_EINVAL;
    } else {
        struct heapprof_http_request r = *req;
        if (r.path == NULL)
            r.path = "";
        if (r.mount == NULL)
            r.mount_len = 0;
        rc = handle(&r, resp);
    }
    hp_fence_exit();
    return rc;
}

int
heapprof_http_resume(struct heapprof_http_pending *p,
                     struct heapprof_http_response *resp)
{
    if (resp == NULL) {
        heapprof_http_cancel(p);
        return HEAPPROF_EINVAL;
    }
    hp_fence_enter();
    resp_reset(resp);
    if (p == NULL) {
        serve_error(resp, 500, "heapprof: no pending profile");
        hp_fence_exit();
        return HEAPPROF_EINVAL;
    }
    struct hp_profile_data p1;
    memset(&p1, 0, sizeof(p1));
    if (hp_profile_collect(&p1) != 0) {
        hp_profile_data_free(&p1);
        serve_error(resp, 503, "failed to collect profile (out of memory)");
    } else if (hp_http_delta(&p1, &p->p0, HP_DELTA_ALL) != 0) {
        serve_error(resp, 503, "failed to compute delta (out of memory)");
    } else {
        p1.duration_ns =
            p1.time_ns > p->p0.time_ns ? p1.time_ns - p->p0.time_ns : 1;
        serve_encoded(&p1, p->which, false, p->disposition, resp);
        if (resp->status == 200)
            resp->served = p->served;
    }
    hp_profile_data_free(&p1);
    pending_free(p);
    hp_fence_exit();
    return 0;
}

void
heapprof_http_cancel(struct heapprof_http_pending *p)
{
    if (p == NULL)
        return;
    hp_fence_enter();
    pending_free(p);
    hp_fence_exit();
}

void
heapprof_http_response_free(struct heapprof_http_response *resp)
{
    if (resp == NULL)
        return;
    hp_fence_enter();
    free(resp->body);
    pending_free(resp->pending);
    hp_fence_exit();
    memset(resp, 0, sizeof(*resp));
}

const char *
heapprof_http_response_header(const struct heapprof_http_response *resp,
                              unsigned i, const char **value)
{
    const char *names[5], *values[5];
    unsigned n = 0;
    if (resp == NULL)
        return NULL;
    names[n] = "Content-Type";
    values[n++] = resp->content_type ? resp->content_type : CT_TEXT;
    if (resp->content_disposition != NULL) {
        names[n] = "Content-Disposition";
        values[n++] = resp->content_disposition;
    }
    if (resp->headers & HEAPPROF_HTTP_HDR_NOSNIFF) {
        names[n] = "X-Content-Type-Options";
        values[n++] = "nosniff";
    }
    if (resp->headers & HEAPPROF_HTTP_HDR_GO_PPROF) {
        names[n] = "X-Go-Pprof";
        values[n++] = "1";
    }
    if (resp->allow != NULL) {
        names[n] = "Allow";
        values[n++] = resp->allow;
    }
    if (i >= n)
        return NULL;
    if (value != NULL)
        *value = values[i];
    return names[i];
}

void
hp_http_postfork_child(void)
{
    /* Only the locks may have been held by a thread that does not exist
     * here; the state stays valid. */
    hp_delta_postfork_child();
    hp_gc_postfork_child();
}
