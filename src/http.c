/*
 * The /debug/pprof request handler (heapprof_http_* in heapprof.h): routes
 * a borrowed request to an endpoint, parses the query as Go's
 * net/http/pprof does, and builds an owned response body. Delta profiles:
 * seconds=N keeps the first collection in a pending object until the
 * server resumes it; delta_heap keeps the previous scrape's alloc columns
 * in a process-wide table keyed by bucket (buckets are never freed).
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

#include "fileio.h"
#include "ialloc.h"
#include "symbolize.h"
#include "text_encode.h"

#define CT_TEXT "text/plain; charset=utf-8"
#define CT_HTML "text/html; charset=utf-8"
#define CT_PROTO "application/octet-stream"

/* ------------------------------------------------------------ buffers */

struct hbuf {
    char *p;
    size_t len, cap;
    bool oom;
};

static void
hb_reserve(struct hbuf *b, size_t more)
{
    if (b->oom || b->cap - b->len >= more)
        return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < more) {
        if (cap > SIZE_MAX / 2) {
            b->oom = true;
            return;
        }
        cap *= 2;
    }
    char *p = realloc(b->p, cap);
    if (p == NULL) {
        b->oom = true;
        return;
    }
    b->p = p;
    b->cap = cap;
}

static void
hb_put(struct hbuf *b, const void *s, size_t n)
{
    hb_reserve(b, n);
    if (b->oom)
        return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

static void
hb_puts(struct hbuf *b, const char *s)
{
    hb_put(b, s, strlen(s));
}

static void __attribute__((format(printf, 2, 3)))
hb_printf(struct hbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->oom = true;
        return;
    }
    hb_reserve(b, (size_t)n + 1);
    if (b->oom)
        return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

static int
hb_sink_write(void *ctx, const void *data, size_t len)
{
    struct hbuf *b = ctx;
    hb_put(b, data, len);
    return b->oom ? -1 : 0;
}

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
 * becomes a 500 with no body (there is nothing left to format it in). */
static void
resp_take(struct heapprof_http_response *resp, struct hbuf *b)
{
    if (b->oom) {
        free(b->p);
        resp->status = 500;
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
    struct hbuf b = {0};
    free(resp->body);
    resp->body = NULL;
    resp->body_len = 0;
    resp->status = status;
    resp->content_type = CT_TEXT;
    resp->content_disposition = NULL;
    resp->headers = HEAPPROF_HTTP_HDR_NOSNIFF | HEAPPROF_HTTP_HDR_GO_PPROF;
    hb_puts(&b, msg);
    hb_put(&b, "\n", 1);
    resp_take(resp, &b);
    resp->status = status;
}

/* ------------------------------------------------------------ queries */

static int
hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/*
 * application/x-www-form-urlencoded decoding of s[0..n) into out (cap
 * bytes, NUL-terminated). Returns the decoded length, -1 for a malformed
 * escape, -2 when it does not fit (longer than anything we look for).
 */
static long
form_decode(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            if (n - i < 3)
                return -1;
            int h = hexval(s[i + 1]), l = hexval(s[i + 2]);
            if (h < 0 || l < 0)
                return -1;
            c = (char)(h * 16 + l);
            i += 2;
        }
        if (o + 1 >= cap)
            return -2;
        out[o++] = c;
    }
    out[o] = '\0';
    return (long)o;
}

struct query {
    bool has_debug, has_gc, has_seconds, has_min_age, has_peak;
    char debug[32], gc[32], seconds[32], min_age[32], peak[32];
};

/*
 * Split on '&' and keep the first value of debug, gc and seconds, as
 * r.FormValue does. Unknown keys are ignored (Go ignores them too).
 * Returns NULL, or the one-line reason for a 400.
 */
static const char *
parse_query(const char *q, size_t n, struct query *out)
{
    memset(out, 0, sizeof(*out));
    size_t i = 0;
    while (i < n) {
        size_t j = i;
        while (j < n && q[j] != '&')
            j++;
        const char *kv = q + i;
        size_t kvn = j - i;
        i = j + 1;
        if (kvn == 0)
            continue;
        if (memchr(kv, ';', kvn) != NULL)
            return "malformed query: ';' is not a separator";
        const char *eq = memchr(kv, '=', kvn);
        size_t kn = eq ? (size_t)(eq - kv) : kvn;
        char key[32];
        long kl = form_decode(kv, kn, key, sizeof(key));
        if (kl == -1)
            return "malformed query: bad %-escape";
        if (kl < 0)
            continue; /* a key longer than ours: not one of ours */
        bool *has;
        char *val;
        if (strcmp(key, "debug") == 0) {
            has = &out->has_debug;
            val = out->debug;
        } else if (strcmp(key, "gc") == 0) {
            has = &out->has_gc;
            val = out->gc;
        } else if (strcmp(key, "seconds") == 0) {
            has = &out->has_seconds;
            val = out->seconds;
        } else if (strcmp(key, "min_age") == 0) {
            has = &out->has_min_age;
            val = out->min_age;
        } else if (strcmp(key, "peak") == 0) {
            has = &out->has_peak;
            val = out->peak;
        } else {
            continue;
        }
        if (*has)
            continue; /* first value wins */
        *has = true;
        if (eq == NULL)
            continue;
        long vl = form_decode(eq + 1, kvn - kn - 1, val, 32);
        if (vl == -1)
            return "malformed query: bad %-escape";
        if (vl == -2) {
            /* Too long to be a number we accept: fail its own check. */
            snprintf(val, 32, "x");
        }
    }
    return NULL;
}

/* strconv.ParseInt(s, 10, 64): optional sign, decimal digits, no spaces. */
static bool
parse_int(const char *s, long long *out)
{
    if (*s == '\0')
        return false;
    errno = 0;
    char *end;
    if (s[0] != '+' && s[0] != '-' && (s[0] < '0' || s[0] > '9'))
        return false;
    if ((s[0] == '+' || s[0] == '-') && (s[1] < '0' || s[1] > '9'))
        return false;
    long long v = strtoll(s, &end, 10);
    if (*end != '\0' || errno == ERANGE)
        return false;
    *out = v;
    return true;
}

/*
 * A duration as Go's time.ParseDuration reads it ("90s", "1h30m", "1.5h",
 * "250ms"; units ns us µs ms s m h), or a bare integer of seconds as in
 * "seconds=". Negative and overflowing values are refused.
 */
bool
hp_http_parse_duration(const char *s, uint64_t *ns)
{
    static const struct {
        const char *name;
        uint64_t ns;
    } units[] = {{"ns", 1},          {"us", 1000},       {"\xc2\xb5s", 1000},
                 {"\xce\xbcs", 1000}, {"ms", 1000000},   {"s", 1000000000},
                 {"m", 60000000000}, {"h", 3600000000000}};
    long long whole;
    if (parse_int(s, &whole)) {
        if (whole < 0 || (unsigned long long)whole > UINT64_MAX / 1000000000u)
            return false;
        *ns = (uint64_t)whole * 1000000000u;
        return true;
    }
    if (*s == '+')
        s++;
    if (*s == '\0')
        return false;
    double total = 0;
    while (*s != '\0') {
        const char *num = s;
        double v = 0, scale = 1;
        bool digits = false;
        while (*s >= '0' && *s <= '9') {
            v = v * 10 + (*s++ - '0');
            digits = true;
        }
        if (*s == '.') {
            s++;
            while (*s >= '0' && *s <= '9') {
                scale /= 10;
                v += (*s++ - '0') * scale;
                digits = true;
            }
        }
        if (!digits || s == num)
            return false;
        size_t u = 0, nu = sizeof(units) / sizeof(units[0]), best = 0;
        for (size_t i = 0; i < nu; i++) {
            size_t len = strlen(units[i].name);
            if (strncmp(s, units[i].name, len) == 0 && len > best) {
                best = len;
                u = i;
            }
        }
        if (best == 0)
            return false;
        s += best;
        total += v * (double)units[u].ns;
    }
    if (!(total < 18e18))
        return false;
    *ns = (uint64_t)total;
    return true;
}

/* ------------------------------------------------------------ gc hook */

/* Protects gc_fn and gc_arg; leaf lock, never held while calling out. */
static pthread_mutex_t gc_lock = PTHREAD_MUTEX_INITIALIZER;
static void (*gc_fn)(void *);
static void *gc_arg;

int
heapprof_gc_register(void (*collect)(void *arg), void *arg)
{
    pthread_mutex_lock(&gc_lock);
    gc_fn = collect;
    gc_arg = collect != NULL ? arg : NULL;
    pthread_mutex_unlock(&gc_lock);
    return HEAPPROF_OK;
}

static void
run_gc(void)
{
    pthread_mutex_lock(&gc_lock);
    void (*fn)(void *) = gc_fn;
    void *arg = gc_arg;
    pthread_mutex_unlock(&gc_lock);
    if (fn == NULL)
        return;
    /*
     * The collector is the host's code: its allocations are the host's and
     * the frees it triggers must reach the live table, so it runs with the
     * fence fully lowered even on the listener thread (fenced for life).
     */
    int depth = hp_tls.depth;
    hp_tls.depth = 0;
    fn(arg);
    hp_tls.depth = depth;
}

/* ------------------------------------------------------------ deltas */

static int
entry_key_cmp(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t)((const struct hp_profile_entry *)a)->key;
    uintptr_t y = (uintptr_t)((const struct hp_profile_entry *)b)->key;
    return x < y ? -1 : x > y;
}

static bool
entry_zero(const struct hp_profile_entry *e)
{
    for (int k = 0; k < HP_NVALUES; k++)
        if (e->v[k] != 0)
            return false;
    return true;
}

static void
drop_zero(struct hp_profile_data *d)
{
    size_t o = 0;
    for (size_t i = 0; i < d->n; i++)
        if (!entry_zero(&d->e[i]))
            d->e[o++] = d->e[i];
    d->n = o;
}

int
hp_http_delta(struct hp_profile_data *p1, struct hp_profile_data *p0,
              unsigned mask)
{
    if (p0->n > 1)
        qsort(p0->e, p0->n, sizeof(*p0->e), entry_key_cmp);
    bool *seen = calloc(p0->n ? p0->n : 1, sizeof(*seen));
    if (seen == NULL)
        return HEAPPROF_ENOMEM;
    size_t extra = 0;
    for (size_t i = 0; i < p1->n; i++) {
        struct hp_profile_entry *e = &p1->e[i];
        struct hp_profile_entry *o =
            p0->n ? bsearch(e, p0->e, p0->n, sizeof(*p0->e), entry_key_cmp)
                  : NULL;
        if (o == NULL)
            continue;
        seen[o - p0->e] = true;
        for (int k = 0; k < HP_NVALUES; k++) {
            if (mask & (1u << k)) {
                e->v[k] -= o->v[k];
                e->raw[k] -= o->raw[k];
            }
        }
    }
    if (mask == HP_DELTA_ALL) {
        /* Stacks that vanished since p0: Merge(p0 scaled by -1, p1) keeps
         * them as negative samples. */
        for (size_t i = 0; i < p0->n; i++)
            extra += !seen[i];
        if (extra > 0) {
            struct hp_profile_entry *ne =
                realloc(p1->e, (p1->n + extra) * sizeof(*ne));
            if (ne == NULL) {
                free(seen);
                return HEAPPROF_ENOMEM;
            }
            p1->e = ne;
            for (size_t i = 0; i < p0->n; i++) {
                if (seen[i])
                    continue;
                struct hp_profile_entry *e = &p1->e[p1->n++];
                *e = p0->e[i];
                for (int k = 0; k < HP_NVALUES; k++) {
                    e->v[k] = -e->v[k];
                    e->raw[k] = -e->raw[k];
                }
            }
        }
    }
    free(seen);
    drop_zero(p1);
    return HEAPPROF_OK;
}

/* delta_heap state: alloc columns of the previous scrape, sorted by key. */
struct prev_entry {
    const void *key;
    int64_t v[2];
    int64_t raw[2];
};

/* Protects prev and prev_n. Lock order: delta_lock, then the profile
 * module's locks (hp_profile_collect runs under it). */
static pthread_mutex_t delta_lock = PTHREAD_MUTEX_INITIALIZER;
static struct prev_entry *prev;
static size_t prev_n;

static int
prev_cmp(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t)((const struct prev_entry *)a)->key;
    uintptr_t y = (uintptr_t)((const struct prev_entry *)b)->key;
    return x < y ? -1 : x > y;
}

static int
delta_heap_locked(struct hp_profile_data *d)
{
    struct prev_entry *next = malloc((d->n ? d->n : 1) * sizeof(*next));
    if (next == NULL)
        return HEAPPROF_ENOMEM;
    for (size_t i = 0; i < d->n; i++) {
        next[i].key = d->e[i].key;
        for (int k = 0; k < 2; k++) {
            next[i].v[k] = d->e[i].v[k];
            next[i].raw[k] = d->e[i].raw[k];
        }
    }
    if (d->n > 1)
        qsort(next, d->n, sizeof(*next), prev_cmp);

    for (size_t i = 0; i < d->n; i++) {
        struct hp_profile_entry *e = &d->e[i];
        struct prev_entry key = {.key = e->key};
        struct prev_entry *o =
            prev_n ? bsearch(&key, prev, prev_n, sizeof(*prev), prev_cmp)
                   : NULL;
        /* Alloc columns only grow; if one went down the key must name a
         * different bucket than before, so report it whole. */
        if (o == NULL || e->v[0] < o->v[0] || e->v[1] < o->v[1])
            continue;
        for (int k = 0; k < 2; k++) {
            e->v[k] -= o->v[k];
            e->raw[k] = e->raw[k] >= o->raw[k] ? e->raw[k] - o->raw[k] : 0;
        }
    }
    free(prev);
    prev = next;
    prev_n = d->n;
    drop_zero(d);
    return HEAPPROF_OK;
}

int
hp_http_delta_heap(struct hp_profile_data *d)
{
    pthread_mutex_lock(&delta_lock);
    int err = delta_heap_locked(d);
    pthread_mutex_unlock(&delta_lock);
    return err;
}

void
hp_http_reset(void)
{
    pthread_mutex_lock(&delta_lock);
    free(prev);
    prev = NULL;
    prev_n = 0;
    pthread_mutex_unlock(&delta_lock);
}

void
hp_http_postfork_child(void)
{
    /* The parent's state stays valid (same buckets); only the locks may
     * have been held by a thread that does not exist here. */
    pthread_mutex_init(&delta_lock, NULL);
    pthread_mutex_init(&gc_lock, NULL);
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
    EP_CPU,     /* profile, trace: Go has them, we cannot */
    EP_UNKNOWN, /* a name under the mount we do not serve */
};

static bool
name_is(const char *s, size_t n, const char *lit)
{
    return n == strlen(lit) && memcmp(s, lit, n) == 0;
}

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
    if (name_is(name, n, "profile") || name_is(name, n, "trace"))
        return EP_CPU;
    return EP_UNKNOWN;
}

/* Where the request lands: endpoint, and for the index the relative link
 * prefix that reaches the endpoints from the requested URL. */
struct route {
    enum ep ep;
    const char *link_prefix; /* points into the path, or "" */
    size_t link_prefix_len;
    bool link_slash;         /* append '/' to link_prefix */
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
html_escape(struct hbuf *b, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        switch (s[i]) {
        case '&': hb_puts(b, "&amp;"); break;
        case '<': hb_puts(b, "&lt;"); break;
        case '>': hb_puts(b, "&gt;"); break;
        case '"': hb_puts(b, "&quot;"); break;
        case '\'': hb_puts(b, "&#39;"); break;
        default: hb_put(b, &s[i], 1); break;
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
        {"cmdline", "", "The command line invocation of the current "
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
        {"symbol", "", "Address to function name lookups (pprof's remote "
                       "symbolization)."},
    };
    struct hbuf b = {0};
    hb_puts(&b, "<html>\n<head>\n<title>/debug/pprof/</title>\n"
                "<style>\n.profile-name{\n\tdisplay:inline-block;\n"
                "\twidth:6rem;\n}\n</style>\n</head>\n<body>\n"
                "/debug/pprof/<br>\n<br>\n"
                "Heap profiles served by heapprof ");
    hb_puts(&b, heapprof_version_string());
    hb_puts(&b, ".<br>\n<br>\nTypes of profiles available:\n"
                "<table>\n<thead><td>Profile</td></thead>\n");
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        hb_puts(&b, "<tr><td><a href=\"");
        html_escape(&b, r->link_prefix, r->link_prefix_len);
        if (r->link_slash)
            hb_put(&b, "/", 1);
        hb_printf(&b, "%s%s\">%s</a></td></tr>\n", rows[i].name,
                  rows[i].query, rows[i].name);
    }
    hb_puts(&b, "</table>\n<br>\n<p>\nProfile Descriptions:\n<ul>\n");
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
        hb_printf(&b,
                  "<li><div class=profile-name>%s: </div> %s</li>\n",
                  rows[i].name, rows[i].desc);
    hb_puts(&b, "</ul>\n</p>\n<p>Set debug=1 as a query parameter to export "
                "in legacy text format. Fetch a profile with\n"
                "<code>go tool pprof http://HOST:PORT/debug/pprof/heap"
                "</code>.</p>\n</body>\n</html>\n");
    resp->status = 200;
    resp->content_type = CT_HTML;
    resp->headers = HEAPPROF_HTTP_HDR_NOSNIFF;
    resp_take(resp, &b);
}

static void
hb_put_cb(void *b, const char *p, size_t n)
{
    hb_put(b, p, n);
}

static void
serve_cmdline(struct heapprof_http_response *resp)
{
    struct hbuf b = {0};
    hp_file_copy("/proc/self/cmdline", hb_put_cb, &b);
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

/* pprof's symbolz protocol: "num_symbols: 1" (we can symbolize), then
 * "0x<addr> <name>" for each '+'-separated address we know. */
static void
serve_symbol(const char *list, size_t n, struct heapprof_http_response *resp)
{
    struct hbuf b = {0};
    hb_puts(&b, "num_symbols: 1\n");
    size_t i = 0;
    while (i < n && !b.oom) {
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
        if (*end != '\0' || errno == ERANGE || pc == 0 ||
            pc > UINTPTR_MAX)
            continue;
        char name[512];
        if (hp_symbolize_name((uintptr_t)pc, name, sizeof(name)) != 0)
            continue;
        hb_printf(&b, "%#llx %s\n", pc, name);
    }
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
    struct hbuf b = {0};
    struct heapprof_sink sink = {hb_sink_write, &b};
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
    const char *disposition;
    uint64_t charged;   /* bytes counted against HEAPPROF_MAX_MEMORY */
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

static int
serve_profile(enum ep ep, const char *query, size_t qn,
              unsigned write_timeout_s, struct heapprof_http_response *resp)
{
    struct query q;
    const char *why = parse_query(query, qn, &q);
    if (why != NULL) {
        serve_error(resp, 400, why);
        return 0;
    }
    long long debug = 0, gc = 0;
    if (q.has_debug && q.debug[0] != '\0' && !parse_int(q.debug, &debug)) {
        serve_error(resp, 400,
                    "invalid value for \"debug\" - must be an integer");
        return 0;
    }
    if (q.has_gc && q.gc[0] != '\0' && !parse_int(q.gc, &gc)) {
        serve_error(resp, 400, "invalid value for \"gc\" - must be an integer");
        return 0;
    }
    enum heapprof_profile which =
        ep == EP_ALLOCS ? HEAPPROF_PROFILE_ALLOCS : HEAPPROF_PROFILE_HEAP;

    /* heapprof's own views of the heap profile: leak suspects and the
     * peak. */
    bool aged = q.has_min_age && q.min_age[0] != '\0';
    uint64_t min_age_ns = 0;
    long long peak = 0;
    if (aged && !hp_http_parse_duration(q.min_age, &min_age_ns)) {
        serve_error(resp, 400, "invalid value for \"min_age\" - must be a "
                               "duration such as 90s, 10m or 2h, or seconds");
        return 0;
    }
    if (q.has_peak && q.peak[0] != '\0' && !parse_int(q.peak, &peak)) {
        serve_error(resp, 400, "invalid value for \"peak\" - must be an integer");
        return 0;
    }
    if ((aged || peak != 0) && ep != EP_HEAP) {
        serve_error(resp, 400, aged ? "\"min_age\" parameter is only supported "
                                      "for the heap profile"
                                    : "\"peak\" parameter is only supported "
                                      "for the heap profile");
        return 0;
    }
    if (aged && peak != 0) {
        serve_error(resp, 400, "min_age and peak params are incompatible");
        return 0;
    }
    if ((aged || peak != 0) && q.has_seconds && q.seconds[0] != '\0') {
        serve_error(resp, 400, aged ? "seconds and min_age params are incompatible"
                                    : "seconds and peak params are incompatible");
        return 0;
    }

    if (q.has_seconds && q.seconds[0] != '\0') {
        /* net/http/pprof serveDeltaProfile, check for check. */
        long long sec;
        if (!parse_int(q.seconds, &sec) || sec <= 0) {
            serve_error(resp, 400, "invalid value for \"seconds\" - must be "
                                   "a positive integer");
            return 0;
        }
        if (ep != EP_HEAP && ep != EP_ALLOCS) {
            serve_error(resp, 400, "\"seconds\" parameter is not supported "
                                   "for this profile type");
            return 0;
        }
        if (write_timeout_s != 0 && sec >= (long long)write_timeout_s) {
            serve_error(resp, 400,
                        "profile duration exceeds server's WriteTimeout");
            return 0;
        }
        if (sec > (long long)(UINT_MAX / 1000)) {
            serve_error(resp, 400, "invalid value for \"seconds\" - too large");
            return 0;
        }
        if (debug != 0) {
            serve_error(resp, 400, "seconds and debug params are incompatible");
            return 0;
        }
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
            serve_error(resp, 503, "seconds=N: no room for its first "
                                   "profile in HEAPPROF_MAX_MEMORY; try "
                                   "again later");
            return 0;
        }
        p->charged = size;
        p->which = which;
        p->disposition = ep == EP_HEAP ? "attachment; filename=\"heap-delta\""
                                       : "attachment; filename=\"allocs-delta\"";
        resp->pending = p;
        resp->delay_ms = (unsigned)sec * 1000u;
        resp->status = 200;
        return HEAPPROF_HTTP_PENDING;
    }

    if (gc > 0 && (ep == EP_HEAP || ep == EP_DELTA_HEAP))
        run_gc();

    struct hp_profile_data d;
    memset(&d, 0, sizeof(d));
    int err;
    if (ep == EP_DELTA_HEAP) {
        /* Collect and diff under one lock so two scrapers racing each
         * other still see every allocation exactly once. */
        pthread_mutex_lock(&delta_lock);
        err = hp_profile_collect(&d);
        if (err == 0)
            err = delta_heap_locked(&d);
        pthread_mutex_unlock(&delta_lock);
    } else if (aged) {
        err = hp_profile_collect_aged(&d, min_age_ns);
    } else if (peak != 0) {
        err = hp_profile_collect_peak(&d);
    } else {
        err = hp_profile_collect(&d);
    }
    if (err != 0) {
        hp_profile_data_free(&d);
        serve_error(resp, 503, "failed to collect profile (out of memory)");
        return 0;
    }
    const char *disp = ep == EP_HEAP     ? "attachment; filename=\"heap\""
                       : ep == EP_ALLOCS ? "attachment; filename=\"allocs\""
                                         : "attachment; filename=\"delta_heap\"";
    serve_encoded(&d, which, debug != 0, disp, resp);
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
            serve_symbol(req->body ? req->body : "", req->body ? req->body_len : 0,
                         resp);
        else
            serve_symbol(query, qn, resp);
        return 0;
    case EP_CPU:
        serve_error(resp, 501,
                    "heapprof serves heap profiles only: fetch "
                    "/debug/pprof/heap or /debug/pprof/allocs");
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
        p1.duration_ns = p1.time_ns > p->p0.time_ns
                             ? p1.time_ns - p->p0.time_ns
                             : 1;
        serve_encoded(&p1, p->which, false, p->disposition, resp);
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
