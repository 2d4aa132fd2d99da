/*
 * Unit tests of the /debug/pprof handler (src/http.c) and the debug=1 text
 * encoder (src/text_encode.c): routing and mount prefixes, methods, query
 * validation with Go's messages, headers, the pending seconds=N form, the
 * delta arithmetic (Go's all-column delta and godeltaprof's delta_heap),
 * the text rows' pre-inversion against pprof's own scaling, symbol and
 * cmdline pages, and the gc=1 hook. Linked against the core objects; real
 * samples come from heapprof_on_alloc at rate 1.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "heapprof.h"
#include "http.h"
#include "ialloc.h"
#include "internal.h"
#include "listener.h"
#include "text_encode.h"

#if __has_include(<microhttpd.h>)
#include <microhttpd.h>
#define HAVE_MHD_HEADER 1
#endif

/* ------------------------------------------------------------- helpers */

struct result {
    int rc;
    struct heapprof_http_response r;
};

static struct result
request(const char *method, const char *path, const char *body,
        const char *mount)
{
    struct heapprof_http_request req;
    memset(&req, 0, sizeof(req));
    req.method = method;
    req.method_len = strlen(method);
    req.path = path;
    req.path_len = strlen(path);
    if (body != NULL) {
        req.body = body;
        req.body_len = strlen(body);
    }
    if (mount != NULL) {
        req.mount = mount;
        req.mount_len = strlen(mount);
    }
    req.write_timeout_s = 60;
    struct result res;
    res.rc = heapprof_http_handle(&req, &res.r);
    return res;
}

static struct result
get(const char *path)
{
    return request("GET", path, NULL, NULL);
}

/* Body as a NUL-terminated string (tests only look at text bodies). */
static char *
body_str(const struct heapprof_http_response *r)
{
    char *s = malloc(r->body_len + 1);
    assert_non_null(s);
    if (r->body_len)
        memcpy(s, r->body, r->body_len);
    s[r->body_len] = '\0';
    return s;
}

static const char *
header(const struct heapprof_http_response *r, const char *name)
{
    const char *n, *v;
    for (unsigned i = 0; (n = heapprof_http_response_header(r, i, &v)); i++)
        if (strcmp(n, name) == 0)
            return v;
    return NULL;
}

static void
expect_error(const char *path, int status, const char *msg)
{
    struct result res = get(path);
    assert_int_equal(res.rc, 0);
    assert_int_equal(res.r.status, status);
    assert_string_equal(header(&res.r, "Content-Type"),
                        "text/plain; charset=utf-8");
    assert_string_equal(header(&res.r, "X-Go-Pprof"), "1");
    assert_string_equal(header(&res.r, "X-Content-Type-Options"), "nosniff");
    assert_null(header(&res.r, "Content-Disposition"));
    char *b = body_str(&res.r);
    char want[256];
    snprintf(want, sizeof(want), "%s\n", msg);
    assert_string_equal(b, want);
    free(b);
    heapprof_http_response_free(&res.r);
}

static bool
is_gzip(const struct heapprof_http_response *r)
{
    return r->body_len > 2 && (unsigned char)r->body[0] == 0x1f &&
           (unsigned char)r->body[1] == 0x8b;
}

/* Real samples: rate 1 records every reported allocation. */
static char site_blocks[64][1000];

__attribute__((noinline)) static void
unit_alloc_site(int n)
{
    for (int i = 0; i < n; i++)
        heapprof_on_alloc(site_blocks[i], sizeof(site_blocks[i]));
    __asm__ volatile("" ::: "memory");
}

__attribute__((noinline)) static void
unit_free_site(int n)
{
    for (int i = 0; i < n; i++)
        heapprof_on_free(site_blocks[i]);
    __asm__ volatile("" ::: "memory");
}

static int
group_setup(void **state)
{
    (void)state;
    heapprof_set_rate(1);
    return 0;
}

/* ------------------------------------------------------------- routing */

static void
test_http_index_paths(void **state)
{
    (void)state;
    const char *paths[] = {"/debug/pprof/", "/debug/pprof", ""};
    const char *links[] = {"href=\"heap?debug=1\"",
                           "href=\"pprof/heap?debug=1\"",
                           "href=\"heap?debug=1\""};
    for (size_t i = 0; i < 3; i++) {
        struct result res = get(paths[i]);
        assert_int_equal(res.rc, 0);
        assert_int_equal(res.r.status, 200);
        assert_string_equal(header(&res.r, "Content-Type"),
                            "text/html; charset=utf-8");
        assert_string_equal(header(&res.r, "X-Content-Type-Options"),
                            "nosniff");
        char *b = body_str(&res.r);
        assert_non_null(strstr(b, links[i]));
        assert_non_null(strstr(b, "delta_heap"));
        assert_non_null(strstr(b, "Set debug=1"));
        free(b);
        heapprof_http_response_free(&res.r);
    }
}

static void
test_http_mount_prefix(void **state)
{
    (void)state;
    struct result res = request("GET", "/prof/", NULL, "/prof/");
    assert_int_equal(res.r.status, 200);
    heapprof_http_response_free(&res.r);
    res = request("GET", "/prof", NULL, "/prof/");
    assert_int_equal(res.r.status, 200);
    char *b = body_str(&res.r);
    assert_non_null(strstr(b, "href=\"prof/heap?debug=1\""));
    free(b);
    heapprof_http_response_free(&res.r);
    res = request("GET", "/prof/heap?debug=1", NULL, "/prof/");
    assert_int_equal(res.r.status, 200);
    heapprof_http_response_free(&res.r);
    /* With a mount, the default paths are not served. */
    res = request("GET", "/debug/pprof/heap", NULL, "/prof/");
    assert_int_equal(res.r.status, 404);
    heapprof_http_response_free(&res.r);
    /* Relative names (the server stripped its prefix). */
    res = get("cmdline");
    assert_int_equal(res.r.status, 200);
    heapprof_http_response_free(&res.r);
}

static void
test_http_heap_alias_and_headers(void **state)
{
    (void)state;
    const char *paths[] = {"/debug/pprof/heap", "/debug/heap", "heap"};
    for (size_t i = 0; i < 3; i++) {
        struct result res = get(paths[i]);
        assert_int_equal(res.rc, 0);
        assert_int_equal(res.r.status, 200);
        assert_string_equal(header(&res.r, "Content-Type"),
                            "application/octet-stream");
        assert_string_equal(header(&res.r, "Content-Disposition"),
                            "attachment; filename=\"heap\"");
        assert_string_equal(header(&res.r, "X-Content-Type-Options"),
                            "nosniff");
        assert_null(header(&res.r, "X-Go-Pprof"));
        assert_null(header(&res.r, "Content-Encoding"));
        assert_true(is_gzip(&res.r));
        heapprof_http_response_free(&res.r);
    }
    struct result res = get("/debug/pprof/allocs");
    assert_int_equal(res.r.status, 200);
    assert_string_equal(header(&res.r, "Content-Disposition"),
                        "attachment; filename=\"allocs\"");
    heapprof_http_response_free(&res.r);
    res = get("/debug/pprof/delta_heap");
    assert_int_equal(res.r.status, 200);
    assert_string_equal(header(&res.r, "Content-Disposition"),
                        "attachment; filename=\"delta_heap\"");
    assert_true(is_gzip(&res.r));
    heapprof_http_response_free(&res.r);
}

static void
test_http_unknown_paths(void **state)
{
    (void)state;
    expect_error("/", 404, "404 page not found");
    expect_error("/debug", 404, "404 page not found");
    expect_error("/debug/pprofx/heap", 404, "404 page not found");
    expect_error("/debug/pprof/heap/", 404, "Unknown profile");
    expect_error("/debug/pprof/heap/x", 404, "Unknown profile");
    expect_error("/debug/pprof/goroutinex", 404, "Unknown profile");
    /* What fleet scrapers ask by default: a 404 naming what is served. */
    static const char *const go_only[] = {
        "/debug/pprof/profile?seconds=14", "/debug/pprof/trace?seconds=1",
        "/debug/pprof/goroutine",          "/debug/pprof/mutex",
        "/debug/pprof/block",              "/debug/pprof/threadcreate"};
    for (size_t i = 0; i < sizeof go_only / sizeof go_only[0]; i++)
        expect_error(go_only[i], 404,
                     "heapprof serves heap profiles only: /debug/pprof/heap, "
                     "/debug/pprof/allocs and /debug/pprof/delta_heap (no CPU, "
                     "goroutine, mutex, block, threadcreate or trace profile)");
}

static void
test_http_methods(void **state)
{
    (void)state;
    const char *bad[] = {"PUT", "DELETE", "OPTIONS", "", "get"};
    for (size_t i = 0; i < 5; i++) {
        struct result res = request(bad[i], "/debug/pprof/heap", NULL, NULL);
        assert_int_equal(res.r.status, 405);
        assert_string_equal(header(&res.r, "Allow"), "GET, HEAD");
        assert_string_equal(header(&res.r, "X-Go-Pprof"), "1");
        heapprof_http_response_free(&res.r);
    }
    struct result res = request("POST", "/debug/pprof/heap", "x", NULL);
    assert_int_equal(res.r.status, 405);
    heapprof_http_response_free(&res.r);
    res = request("DELETE", "/debug/pprof/symbol", NULL, NULL);
    assert_int_equal(res.r.status, 405);
    assert_string_equal(header(&res.r, "Allow"), "GET, HEAD, POST");
    heapprof_http_response_free(&res.r);
    res = request("HEAD", "/debug/pprof/heap", NULL, NULL);
    assert_int_equal(res.r.status, 200);
    heapprof_http_response_free(&res.r);
    res = request("POST", "/debug/pprof/symbol", "0x1", NULL);
    assert_int_equal(res.r.status, 200);
    heapprof_http_response_free(&res.r);
}

/* ------------------------------------------------------------- queries */

static void
test_http_query_validation(void **state)
{
    (void)state;
    const char *sec = "invalid value for \"seconds\" - must be a positive "
                      "integer";
    expect_error("/debug/pprof/heap?seconds=0", 400, sec);
    expect_error("/debug/pprof/heap?seconds=-3", 400, sec);
    expect_error("/debug/pprof/heap?seconds=abc", 400, sec);
    expect_error("/debug/pprof/heap?seconds=1.5", 400, sec);
    expect_error("/debug/pprof/heap?seconds=%201", 400, sec);
    expect_error("/debug/pprof/heap?seconds=99999999999999999999999", 400,
                 sec);
    expect_error("/debug/pprof/heap?seconds=60", 400,
                 "profile duration exceeds server's WriteTimeout");
    expect_error("/debug/pprof/heap?seconds=2&debug=1", 400,
                 "seconds and debug params are incompatible");
    expect_error("/debug/pprof/delta_heap?seconds=2", 400,
                 "\"seconds\" parameter is not supported for this profile "
                 "type");
    expect_error("/debug/pprof/heap?debug=yes", 400,
                 "invalid value for \"debug\" - must be an integer");
    expect_error("/debug/pprof/heap?gc=true", 400,
                 "invalid value for \"gc\" - must be an integer");
    expect_error("/debug/pprof/heap?debug=%zz", 400,
                 "malformed query: bad %-escape");
    expect_error("/debug/pprof/heap?debug=%4", 400,
                 "malformed query: bad %-escape");
    expect_error("/debug/pprof/heap?debug=1;gc=1", 400,
                 "malformed query: ';' is not a separator");

    /* Accepted: empty values, unknown keys, first value wins, escapes. */
    const char *ok[] = {"/debug/pprof/heap?seconds=",
                        "/debug/pprof/heap?debug=",
                        "/debug/pprof/heap?foo=%zz&x",
                        "/debug/pprof/heap?debug=0&debug=bogus",
                        "/debug/pprof/heap?%64ebug=%31",
                        "/debug/pprof/heap?&&gc=1&",
                        "/debug/pprof/heap?debug=%2B1"};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        struct result res = get(ok[i]);
        assert_int_equal(res.rc, 0);
        assert_int_equal(res.r.status, 200);
        heapprof_http_response_free(&res.r);
    }
    struct result res = get("/debug/pprof/heap?%64ebug=%31");
    assert_string_equal(header(&res.r, "Content-Type"),
                        "text/plain; charset=utf-8");
    heapprof_http_response_free(&res.r);

    /* The query may also come separately from the path. */
    struct heapprof_http_request req = {
        .method = "GET", .method_len = 3,
        .path = "/debug/pprof/heap", .path_len = 17,
        .query = "debug=1", .query_len = 7};
    assert_int_equal(heapprof_http_handle(&req, &res.r), 0);
    assert_int_equal(res.r.status, 200);
    char *b = body_str(&res.r);
    assert_true(strncmp(b, "heap profile: ", 14) == 0);
    free(b);
    heapprof_http_response_free(&res.r);
}

static void
test_http_null_args(void **state)
{
    (void)state;
    struct heapprof_http_response r;
    assert_int_equal(heapprof_http_handle(NULL, &r), HEAPPROF_EINVAL);
    assert_int_equal(r.status, 500);
    heapprof_http_response_free(&r);
    assert_int_equal(heapprof_http_handle(NULL, NULL), HEAPPROF_EINVAL);
    heapprof_http_response_free(NULL);
    heapprof_http_cancel(NULL);
    assert_int_equal(heapprof_http_resume(NULL, &r), HEAPPROF_EINVAL);
    heapprof_http_response_free(&r);
    assert_null(heapprof_http_response_header(NULL, 0, NULL));
}

/* ------------------------------------------------------------- pending */

static void
test_http_seconds_pending(void **state)
{
    (void)state;
    struct result res = get("/debug/pprof/heap?seconds=2");
    assert_int_equal(res.rc, HEAPPROF_HTTP_PENDING);
    assert_non_null(res.r.pending);
    assert_int_equal(res.r.delay_ms, 2000);
    assert_null(res.r.body);
    struct heapprof_http_pending *p = res.r.pending;
    res.r.pending = NULL;
    heapprof_http_response_free(&res.r);

    unit_alloc_site(8); /* something to see in the delta */
    struct heapprof_http_response r;
    assert_int_equal(heapprof_http_resume(p, &r), 0);
    assert_int_equal(r.status, 200);
    assert_true(is_gzip(&r));
    assert_string_equal(header(&r, "Content-Disposition"),
                        "attachment; filename=\"heap-delta\"");
    assert_string_equal(header(&r, "Content-Type"),
                        "application/octet-stream");
    heapprof_http_response_free(&r);
    unit_free_site(8);

    res = get("/debug/pprof/allocs?seconds=1");
    assert_int_equal(res.rc, HEAPPROF_HTTP_PENDING);
    p = res.r.pending;
    res.r.pending = NULL;
    assert_int_equal(heapprof_http_resume(p, &r), 0);
    assert_string_equal(header(&r, "Content-Disposition"),
                        "attachment; filename=\"allocs-delta\"");
    heapprof_http_response_free(&r);

    /* Cancelled, or freed with the response: no leak (ASan builds). */
    res = get("/debug/pprof/heap?seconds=1");
    heapprof_http_cancel(res.r.pending);
    res.r.pending = NULL;
    heapprof_http_response_free(&res.r);
    res = get("/debug/pprof/heap?seconds=1");
    heapprof_http_response_free(&res.r);
}

/* A waiting seconds=N request's first profile counts in
 * HEAPPROF_MAX_MEMORY while it waits; with no room, 503 at once. */
static void
test_http_seconds_charged_to_budget(void **state)
{
    (void)state;
    unit_alloc_site(8);
    uint64_t budget = hp_ialloc_budget(), before = hp_ialloc_mapped();
    struct result res = get("/debug/pprof/heap?seconds=2");
    assert_int_equal(res.rc, HEAPPROF_HTTP_PENDING);
    assert_true(hp_ialloc_mapped() > before);
    heapprof_http_response_free(&res.r); /* cancels it */
    assert_int_equal(hp_ialloc_mapped(), before);

    hp_ialloc_set_budget(before);
    res = get("/debug/pprof/heap?seconds=2");
    hp_ialloc_set_budget(budget);
    assert_int_equal(res.rc, 0);
    assert_int_equal(res.r.status, 503);
    char *b = body_str(&res.r);
    assert_non_null(strstr(b, "HEAPPROF_MAX_MEMORY"));
    free(b);
    heapprof_http_response_free(&res.r);
    assert_int_equal(hp_ialloc_mapped(), before);
    unit_free_site(8);
}

/* ------------------------------------------------------------- deltas */

static struct hp_profile_entry
ent(uintptr_t key, int64_t a0, int64_t a1, int64_t i0, int64_t i1)
{
    struct hp_profile_entry e;
    memset(&e, 0, sizeof(e));
    e.key = (const void *)key;
    e.v[0] = a0;
    e.v[1] = a1;
    e.v[2] = i0;
    e.v[3] = i1;
    for (int k = 0; k < 4; k++)
        e.raw[k] = e.v[k] / 10;
    return e;
}

static struct hp_profile_data
data_of(const struct hp_profile_entry *e, size_t n)
{
    struct hp_profile_data d;
    memset(&d, 0, sizeof(d));
    d.e = malloc((n ? n : 1) * sizeof(*d.e));
    assert_non_null(d.e);
    memcpy(d.e, e, n * sizeof(*e));
    d.n = n;
    d.rate = 524288;
    return d;
}

static const struct hp_profile_entry *
find_key(const struct hp_profile_data *d, uintptr_t key)
{
    for (size_t i = 0; i < d->n; i++)
        if ((uintptr_t)d->e[i].key == key)
            return &d->e[i];
    return NULL;
}

static void
test_http_delta_all_columns(void **state)
{
    (void)state;
    struct hp_profile_entry e0[] = {
        ent(0x30, 10, 1000, 5, 500),  /* grows */
        ent(0x10, 4, 400, 4, 400),    /* unchanged: dropped */
        ent(0x20, 7, 700, 7, 700),    /* gone from p1 */
    };
    struct hp_profile_entry e1[] = {
        ent(0x10, 4, 400, 4, 400),
        ent(0x30, 15, 1500, 2, 200),  /* inuse went down: negative */
        ent(0x40, 1, 100, 1, 100),    /* new */
    };
    struct hp_profile_data p0 = data_of(e0, 3), p1 = data_of(e1, 3);
    assert_int_equal(hp_http_delta(&p1, &p0, HP_DELTA_ALL), 0);
    assert_int_equal(p1.n, 3);
    assert_null(find_key(&p1, 0x10));
    const struct hp_profile_entry *e = find_key(&p1, 0x30);
    assert_non_null(e);
    assert_int_equal(e->v[0], 5);
    assert_int_equal(e->v[1], 500);
    assert_int_equal(e->v[2], -3);
    assert_int_equal(e->v[3], -300);
    assert_int_equal(e->raw[1], 50);
    e = find_key(&p1, 0x40);
    assert_int_equal(e->v[1], 100);
    e = find_key(&p1, 0x20);
    assert_non_null(e);
    assert_int_equal(e->v[0], -7);
    assert_int_equal(e->v[3], -700);
    hp_profile_data_free(&p0);
    hp_profile_data_free(&p1);

    /* Alloc-only mask: inuse stays absolute, vanished keys stay out. */
    p0 = data_of(e0, 3);
    p1 = data_of(e1, 3);
    assert_int_equal(hp_http_delta(&p1, &p0, HP_DELTA_ALLOC), 0);
    e = find_key(&p1, 0x10);
    assert_non_null(e); /* alloc 0 but inuse 400 */
    assert_int_equal(e->v[0], 0);
    assert_int_equal(e->v[3], 400);
    e = find_key(&p1, 0x30);
    assert_int_equal(e->v[1], 500);
    assert_int_equal(e->v[3], 200);
    assert_null(find_key(&p1, 0x20));
    hp_profile_data_free(&p0);
    hp_profile_data_free(&p1);
}

static void
test_http_delta_heap_state(void **state)
{
    (void)state;
    hp_http_reset();
    struct hp_profile_entry s1[] = {
        ent(0x10, 10, 1000, 10, 1000),
        ent(0x20, 5, 500, 0, 0),
    };
    struct hp_profile_data d = data_of(s1, 2);
    /* First scrape: everything since start. */
    assert_int_equal(hp_http_delta_heap(&d), 0);
    assert_int_equal(d.n, 2);
    assert_int_equal(find_key(&d, 0x10)->v[1], 1000);
    hp_profile_data_free(&d);

    struct hp_profile_entry s2[] = {
        ent(0x10, 10, 1000, 10, 1000), /* no new allocs, still in use */
        ent(0x20, 5, 500, 0, 0),       /* nothing: dropped */
        ent(0x30, 2, 200, 2, 200),     /* new bucket */
    };
    d = data_of(s2, 3);
    assert_int_equal(hp_http_delta_heap(&d), 0);
    assert_int_equal(d.n, 2);
    const struct hp_profile_entry *e = find_key(&d, 0x10);
    assert_non_null(e);
    assert_int_equal(e->v[0], 0);
    assert_int_equal(e->v[1], 0);
    assert_int_equal(e->v[2], 10);
    assert_int_equal(e->v[3], 1000);
    assert_null(find_key(&d, 0x20));
    assert_int_equal(find_key(&d, 0x30)->v[1], 200);
    hp_profile_data_free(&d);

    struct hp_profile_entry s3[] = {
        ent(0x10, 13, 1300, 3, 300),
        ent(0x30, 1, 100, 1, 100), /* went down: a different bucket */
    };
    d = data_of(s3, 2);
    assert_int_equal(hp_http_delta_heap(&d), 0);
    e = find_key(&d, 0x10);
    assert_int_equal(e->v[0], 3);
    assert_int_equal(e->v[1], 300);
    assert_int_equal(e->v[3], 300);
    assert_int_equal(find_key(&d, 0x30)->v[1], 100);
    hp_profile_data_free(&d);
    hp_http_reset();
}

/* The handler's delta_heap over real buckets, read back as text. */
static void
test_http_delta_heap_endpoint(void **state)
{
    (void)state;
    hp_http_reset();
    unit_alloc_site(16);
    struct result res = get("/debug/pprof/delta_heap?debug=1");
    char *b = body_str(&res.r);
    assert_non_null(strstr(b, "unit_alloc_site"));
    free(b);
    heapprof_http_response_free(&res.r);

    /* Still in use, nothing new: in-use row, alloc columns zero. */
    res = get("/debug/pprof/delta_heap?debug=1");
    b = body_str(&res.r);
    char *site = strstr(b, "unit_alloc_site");
    assert_non_null(site);
    /* Its row is the last line starting with a digit before the symbol. */
    char *row = site;
    while (row > b && !(row[-1] == '\n' && row[0] >= '0' && row[0] <= '9'))
        row--;
    long long ic, is, ac, as;
    assert_int_equal(sscanf(row, "%lld: %lld [%lld: %lld]", &ic, &is, &ac,
                            &as), 4);
    assert_int_equal(ic, 16);
    assert_int_equal(is, 16000);
    assert_int_equal(ac, 0);
    assert_int_equal(as, 0);
    free(b);
    heapprof_http_response_free(&res.r);

    /* Freed and nothing new: the row disappears. */
    unit_free_site(16);
    res = get("/debug/pprof/delta_heap?debug=1");
    b = body_str(&res.r);
    assert_null(strstr(b, "unit_alloc_site"));
    free(b);
    heapprof_http_response_free(&res.r);
    hp_http_reset();
}

/* ------------------------------------------------------------- text */

static void
test_text_preinvert_roundtrip(void **state)
{
    (void)state;
    /*
     * Targets as the profile holds them: k samples of size s unbiased
     * (k/p, k*s/p with p = 1 - exp(-s/R)), and rows mixing two sizes the
     * way a stack-keyed bucket does. Anything else (3 objects of 8 bytes
     * at R=4096, when one sample alone weighs 512) cannot come out of a
     * sampler and is not representable as an integer row either.
     */
    const uint64_t rates[] = {4096, 524288, 1 << 20};
    const int64_t sizes[] = {8, 24, 1000, 4096, 65536, 524288, 4 << 20};
    const int64_t counts[] = {1, 2, 3, 10, 1000, 100000};
    for (size_t r = 0; r < sizeof(rates) / sizeof(rates[0]); r++) {
        double R = (double)rates[r];
        for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
            for (size_t k = 0; k < sizeof(counts) / sizeof(counts[0]); k++) {
                double p1 = -expm1(-(double)sizes[i] / R);
                size_t j = (i + 3) % (sizeof(sizes) / sizeof(sizes[0]));
                double p2 = -expm1(-(double)sizes[j] / R);
                for (int mixed = 0; mixed < 2; mixed++) {
                    double c = (double)counts[k] / p1;
                    double sz = (double)(counts[k] * sizes[i]) / p1;
                    if (mixed) {
                        c += 1 / p2;
                        sz += (double)sizes[j] / p2;
                    }
                    int64_t co_t = llround(c), so_t = llround(sz);
                    int64_t ci, si, co, so;
                    hp_text_preinvert(co_t, so_t, rates[r], &ci, &si);
                    assert_true(ci >= 1 && si >= 1);
                    hp_text_scale(ci, si, rates[r], &co, &so);
                    /* The row's count is an integer near c * p(x): both
                     * values can be off by the rounding, half an object
                     * in c * p(x) >= ci - 0.5 (rows with many samples are
                     * close). */
                    double ec = fabs((double)co - (double)co_t) / (double)co_t;
                    double es = fabs((double)so - (double)so_t) / (double)so_t;
                    double tol = 0.5 / ((double)ci - 0.5) + 0.01;
                    if (ec > tol || es > tol)
                        fail_msg("rate %" PRIu64 " target %" PRId64
                                 "/%" PRId64 " row %" PRId64 "/%" PRId64
                                 " back %" PRId64 "/%" PRId64,
                                 rates[r], co_t, so_t, ci, si, co, so);
                }
            }
        }
    }
    /* Go's worked values at R=524288 reproduce exactly from one sample. */
    int64_t ci, si, co, so;
    hp_text_preinvert(65536, 524292, 524288, &ci, &si);
    assert_int_equal(ci, 1);
    assert_int_equal(si, 8);
    hp_text_scale(ci, si, 524288, &co, &so);
    assert_int_equal(co, 65536);
    assert_int_equal(so, 524292);
    /* Rate 1: no scaling either way; zero and negative rows. */
    hp_text_preinvert(5, 50, 1, &ci, &si);
    assert_int_equal(ci, 5);
    assert_int_equal(si, 50);
    hp_text_preinvert(0, 0, 4096, &ci, &si);
    assert_int_equal(ci, 0);
    assert_int_equal(si, 0);
    hp_text_preinvert(-3, -300, 4096, &ci, &si);
    assert_int_equal(ci, 0);
    assert_int_equal(si, 0);
}

struct strbuf {
    char *p;
    size_t n;
};

static int
strbuf_write(void *ctx, const void *data, size_t len)
{
    struct strbuf *b = ctx;
    b->p = realloc(b->p, b->n + len + 1);
    memcpy(b->p + b->n, data, len);
    b->n += len;
    b->p[b->n] = '\0';
    return 0;
}

static int
failing_write(void *ctx, const void *data, size_t len)
{
    (void)ctx;
    (void)data;
    (void)len;
    return -1;
}

static void
test_text_encode_format(void **state)
{
    (void)state;
    static const uintptr_t pcs1[] = {0x401001, 0x402002};
    static const uintptr_t pcs2[] = {0x403003};
    struct hp_profile_entry e[3];
    memset(e, 0, sizeof(e));
    e[0] = ent(0x1, 65536, 524292, 0, 0); /* freed 8-byte objects */
    e[0].pcs = pcs1;
    e[0].nframes = 2;
    e[1] = ent(0x2, 8, 557738, 8, 557738); /* 64 KiB, live */
    e[1].pcs = pcs2;
    e[1].nframes = 1;
    e[2] = ent(0x3, 1, 829411, 1, 829411); /* overflow bucket */
    e[2].nframes = 0;
    struct hp_profile_data d = data_of(e, 3);
    char maps[] = "/tmp/hp_test_maps_XXXXXX";
    int fd = mkstemp(maps);
    assert_true(fd >= 0);
    const char *m = "00400000-00405000 r-xp 00000000 fe:00 42 /bin/x\n";
    assert_int_equal(write(fd, m, strlen(m)), (ssize_t)strlen(m));
    close(fd);

    struct strbuf out = {0};
    struct heapprof_sink sink = {strbuf_write, &out};
    assert_int_equal(hp_text_encode(&d, &sink, maps), 0);
    unlink(maps);

    /* Header totals: the rows' sums; the alloc pair differs from inuse. */
    long long h[4];
    unsigned long long rate;
    assert_int_equal(sscanf(out.p,
                            "heap profile: %lld: %lld [%lld: %lld] @ "
                            "heap_v2/%llu\n",
                            &h[0], &h[1], &h[2], &h[3], &rate), 5);
    assert_int_equal(rate, 524288);
    assert_int_equal(h[0], 2);        /* 1 + 1 live rows */
    assert_int_equal(h[2], 3);        /* 1 + 1 + 1 */
    /* Rows sorted by in-use bytes: the 512 KiB one first; each row is the
     * pre-inverted pair. */
    int64_t c2, s2, c1, s1;
    hp_text_preinvert(1, 829411, 524288, &c2, &s2);
    hp_text_preinvert(8, 557738, 524288, &c1, &s1);
    char w1[128], w2[128];
    snprintf(w1, sizeof(w1), "\n%" PRId64 ": %" PRId64 " [%" PRId64
             ": %" PRId64 "] @\n", c2, s2, c2, s2);
    snprintf(w2, sizeof(w2), "\n%" PRId64 ": %" PRId64 " [%" PRId64
             ": %" PRId64 "] @ 0x403003\n", c1, s1, c1, s1);
    const char *r1 = strstr(out.p, w1);
    const char *r2 = strstr(out.p, w2);
    const char *r3 = strstr(out.p, "\n0: 0 [1: 8] @ 0x401001 0x402002\n");
    assert_non_null(r1);
    assert_non_null(r2);
    assert_non_null(r3);
    assert_true(r1 < r2 && r2 < r3);
    assert_non_null(strstr(out.p, "#\t[heapprof: table full]"));
    /* A frame with no name, in no file of this process either. */
    assert_non_null(strstr(out.p, "\n#\t0x401001\t?\n"));
    const char *mp = strstr(out.p, "\nMAPPED_LIBRARIES:\n");
    assert_non_null(mp);
    assert_non_null(strstr(mp, m));
    free(out.p);

    /* Equal alloc and in-use totals: alloc bytes bumped (Go does too). */
    d.e[0] = ent(0x1, 1, 829411, 1, 829411);
    d.e[0].pcs = pcs1;
    d.e[0].nframes = 2;
    d.n = 1;
    out.p = NULL;
    out.n = 0;
    assert_int_equal(hp_text_encode(&d, &sink, maps), 0);
    snprintf(w1, sizeof(w1), "heap profile: %" PRId64 ": %" PRId64
             " [%" PRId64 ": %" PRId64 "] @ heap_v2/524288\n", c2, s2, c2,
             s2 + 1);
    assert_non_null(strstr(out.p, w1));
    free(out.p);

    struct heapprof_sink bad = {failing_write, NULL};
    assert_int_equal(hp_text_encode(&d, &bad, maps), HEAPPROF_EIO);
    hp_profile_data_free(&d);
}

/* ------------------------------------------------------------- pages */

static void
test_http_symbol(void **state)
{
    (void)state;
    char want[128], q[256];
    uintptr_t a = (uintptr_t)&unit_alloc_site;
    snprintf(want, sizeof(want), "%#" PRIxPTR " unit_alloc_site\n", a);

    struct result res = get("/debug/pprof/symbol");
    char *b = body_str(&res.r);
    assert_string_equal(b, "num_symbols: 1\n");
    assert_string_equal(header(&res.r, "Content-Type"),
                        "text/plain; charset=utf-8");
    free(b);
    heapprof_http_response_free(&res.r);

    /* GET: the raw query is the address list. */
    snprintf(q, sizeof(q), "/debug/pprof/symbol?%#" PRIxPTR "+0+junk", a);
    res = get(q);
    b = body_str(&res.r);
    assert_non_null(strstr(b, want));
    assert_true(strncmp(b, "num_symbols: 1\n", 15) == 0);
    free(b);
    heapprof_http_response_free(&res.r);

    /* POST, as pprof sends it: '+'-joined, decimal accepted too. */
    snprintf(q, sizeof(q), "0x1+%" PRIuPTR "+-5+ +%#" PRIxPTR "\n", a, a + 1);
    res = request("POST", "/debug/pprof/symbol", q, NULL);
    b = body_str(&res.r);
    assert_non_null(strstr(b, want));
    snprintf(want, sizeof(want), "%#" PRIxPTR " unit_alloc_site\n", a + 1);
    assert_non_null(strstr(b, want));
    free(b);
    heapprof_http_response_free(&res.r);
}

static void
test_http_cmdline(void **state)
{
    (void)state;
    char want[4096];
    int fd = open("/proc/self/cmdline", O_RDONLY);
    ssize_t n = read(fd, want, sizeof(want));
    close(fd);
    assert_true(n > 0);
    struct result res = get("/debug/pprof/cmdline");
    assert_int_equal(res.r.status, 200);
    assert_int_equal(res.r.body_len, (size_t)n - 1);
    assert_memory_equal(res.r.body, want, (size_t)n - 1);
    assert_string_equal(header(&res.r, "Content-Type"),
                        "text/plain; charset=utf-8");
    heapprof_http_response_free(&res.r);
}

static int gc_calls;
static int gc_depth_seen;

static void
count_gc(void *arg)
{
    gc_calls += *(int *)arg;
    gc_depth_seen = hp_tls.depth;
}

static void
test_http_gc_hook(void **state)
{
    (void)state;
    static int one = 1;
    assert_int_equal(heapprof_gc_register(count_gc, &one), 0);
    gc_calls = 0;
    gc_depth_seen = -1;
    struct result res = get("/debug/pprof/heap?gc=1");
    assert_int_equal(res.r.status, 200);
    heapprof_http_response_free(&res.r);
    assert_int_equal(gc_calls, 1);
    assert_int_equal(gc_depth_seen, 0); /* fence lowered for the host */
    res = get("/debug/pprof/allocs?gc=1"); /* Go: heap only */
    heapprof_http_response_free(&res.r);
    res = get("/debug/pprof/heap?gc=0");
    heapprof_http_response_free(&res.r);
    assert_int_equal(gc_calls, 1);
    res = get("/debug/pprof/delta_heap?gc=2");
    heapprof_http_response_free(&res.r);
    assert_int_equal(gc_calls, 2);
    assert_int_equal(heapprof_gc_register(NULL, NULL), 0);
    res = get("/debug/pprof/heap?gc=1");
    heapprof_http_response_free(&res.r);
    assert_int_equal(gc_calls, 2);
}

/* Text served over the handler names the real site and reproduces the
 * proto's unbiased values row by row at rate 1 (no scaling). */
static void
test_http_debug1_real(void **state)
{
    (void)state;
    unit_alloc_site(4);
    struct result res = get("/debug/pprof/heap?debug=1");
    assert_int_equal(res.r.status, 200);
    assert_null(header(&res.r, "Content-Disposition"));
    char *b = body_str(&res.r);
    assert_true(strncmp(b, "heap profile: ", 14) == 0);
    assert_non_null(strstr(b, "@ heap_v2/1\n"));
    assert_non_null(strstr(b, "unit_alloc_site"));
    assert_non_null(strstr(b, "\nMAPPED_LIBRARIES:\n"));
    free(b);
    heapprof_http_response_free(&res.r);
    unit_free_site(4);
}

#ifdef HAVE_MHD_HEADER
/* listener.h declares libmicrohttpd's ABI by hand; it must match. */
static void
test_listener_mhd_abi(void **state)
{
    (void)state;
    assert_int_equal(HP_MHD_NO, MHD_NO);
    assert_int_equal(HP_MHD_YES, MHD_YES);
    assert_int_equal(HP_MHD_USE_EPOLL, MHD_USE_EPOLL);
    assert_int_equal(HP_MHD_ALLOW_SUSPEND_RESUME, MHD_ALLOW_SUSPEND_RESUME);
    assert_int_equal(HP_MHD_OPTION_END, MHD_OPTION_END);
    assert_int_equal(HP_MHD_OPTION_CONNECTION_MEMORY_LIMIT,
                     MHD_OPTION_CONNECTION_MEMORY_LIMIT);
    assert_int_equal(HP_MHD_OPTION_CONNECTION_LIMIT,
                     MHD_OPTION_CONNECTION_LIMIT);
    assert_int_equal(HP_MHD_OPTION_CONNECTION_TIMEOUT,
                     MHD_OPTION_CONNECTION_TIMEOUT);
    assert_int_equal(HP_MHD_OPTION_NOTIFY_COMPLETED,
                     MHD_OPTION_NOTIFY_COMPLETED);
    assert_int_equal(HP_MHD_OPTION_URI_LOG_CALLBACK,
                     MHD_OPTION_URI_LOG_CALLBACK);
    assert_int_equal(HP_MHD_OPTION_LISTEN_SOCKET, MHD_OPTION_LISTEN_SOCKET);
    assert_int_equal(HP_MHD_RESPMEM_PERSISTENT, MHD_RESPMEM_PERSISTENT);
    assert_int_equal(HP_MHD_RESPMEM_MUST_FREE, MHD_RESPMEM_MUST_FREE);
    assert_int_equal(HP_MHD_HEADER_KIND, MHD_HEADER_KIND);
}
#endif

/* min_age=: Go durations and whole seconds; nothing else. */
/* resp.served names the profile in the body, whatever the path looked
 * like, so servers (the nginx module) need not sniff it. */
static void
test_http_served(void **state)
{
    (void)state;
    static const struct {
        const char *path;
        enum heapprof_http_served want;
    } cases[] = {
        {"/debug/pprof/heap", HEAPPROF_HTTP_SERVED_HEAP},
        {"/debug/heap", HEAPPROF_HTTP_SERVED_HEAP},
        {"heap?min_age=1s", HEAPPROF_HTTP_SERVED_HEAP},
        {"/debug/pprof/heap?peak=1", HEAPPROF_HTTP_SERVED_HEAP},
        {"/debug/pprof/allocs", HEAPPROF_HTTP_SERVED_ALLOCS},
        {"/debug/pprof/delta_heap", HEAPPROF_HTTP_SERVED_DELTA_HEAP},
        {"/debug/pprof/heap?debug=1", HEAPPROF_HTTP_SERVED_OTHER},
        {"/debug/pprof/allocs?debug=2", HEAPPROF_HTTP_SERVED_OTHER},
        {"/debug/pprof/", HEAPPROF_HTTP_SERVED_OTHER},
        {"/debug/pprof/cmdline", HEAPPROF_HTTP_SERVED_OTHER},
        {"/debug/pprof/heap?debug=x", HEAPPROF_HTTP_SERVED_OTHER},
        {"/debug/pprof/heap/x", HEAPPROF_HTTP_SERVED_OTHER},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct result res = get(cases[i].path);
        assert_int_equal(res.rc, 0);
        if (res.r.served != cases[i].want)
            fail_msg("%s: served %d, want %d", cases[i].path,
                     (int)res.r.served, (int)cases[i].want);
        heapprof_http_response_free(&res.r);
    }

    struct result res = get("/debug/pprof/allocs?seconds=5");
    assert_int_equal(res.rc, HEAPPROF_HTTP_PENDING);
    assert_int_equal(res.r.served, HEAPPROF_HTTP_SERVED_ALLOCS);
    struct heapprof_http_response done;
    assert_int_equal(heapprof_http_resume(res.r.pending, &done), 0);
    assert_int_equal(done.status, 200);
    assert_int_equal(done.served, HEAPPROF_HTTP_SERVED_ALLOCS);
    heapprof_http_response_free(&done);
}

/* The error answer the listener shares with the handler. */
static void
test_http_error_shared(void **state)
{
    (void)state;
    struct heapprof_http_response r;
    memset(&r, 0xa5, sizeof(r)); /* garbage in: nothing of it is used */
    hp_http_error(&r, 503, "busy");
    assert_int_equal(r.status, 503);
    assert_int_equal(r.served, HEAPPROF_HTTP_SERVED_OTHER);
    assert_null(r.pending);
    assert_null(r.allow);
    assert_string_equal(header(&r, "Content-Type"),
                        "text/plain; charset=utf-8");
    assert_string_equal(header(&r, "X-Go-Pprof"), "1");
    assert_null(header(&r, "Content-Disposition"));
    char *b = body_str(&r);
    assert_string_equal(b, "busy\n");
    free(b);
    heapprof_http_response_free(&r);
}

static void
test_http_parse_duration(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        uint64_t ns;
    } good[] = {{"0", 0},
                {"90", 90000000000ull},
                {"90s", 90000000000ull},
                {"1h30m", 5400000000000ull},
                {"1.5h", 5400000000000ull},
                {"250ms", 250000000ull},
                {"2m0.5s", 120500000000ull},
                {"10us", 10000ull},
                {"7ns", 7ull},
                {"+3s", 3000000000ull}};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        uint64_t ns = 1;
        assert_true(hp_http_parse_duration(good[i].s, &ns));
        assert_int_equal(ns, good[i].ns);
    }
    static const char *bad[] = {"", "s", "-5s", "-5", "5 s", "5sec",
                                "h1", "1..5s", ".s", "99999999999999999999",
                                "9999999999h", "1e3s", "5S"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint64_t ns;
        assert_false(hp_http_parse_duration(bad[i], &ns));
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_http_index_paths),
        cmocka_unit_test(test_http_mount_prefix),
        cmocka_unit_test(test_http_heap_alias_and_headers),
        cmocka_unit_test(test_http_unknown_paths),
        cmocka_unit_test(test_http_methods),
        cmocka_unit_test(test_http_query_validation),
        cmocka_unit_test(test_http_null_args),
        cmocka_unit_test(test_http_seconds_pending),
        cmocka_unit_test(test_http_seconds_charged_to_budget),
        cmocka_unit_test(test_http_delta_all_columns),
        cmocka_unit_test(test_http_delta_heap_state),
        cmocka_unit_test(test_http_delta_heap_endpoint),
        cmocka_unit_test(test_text_preinvert_roundtrip),
        cmocka_unit_test(test_text_encode_format),
        cmocka_unit_test(test_http_symbol),
        cmocka_unit_test(test_http_cmdline),
        cmocka_unit_test(test_http_parse_duration),
        cmocka_unit_test(test_http_served),
        cmocka_unit_test(test_http_error_shared),
        cmocka_unit_test(test_http_gc_hook),
        cmocka_unit_test(test_http_debug1_real),
#ifdef HAVE_MHD_HEADER
        cmocka_unit_test(test_listener_mhd_abi),
#endif
    };
    return cmocka_run_group_tests(tests, group_setup, NULL);
}
