/*
 * A small libevent evhttp server that serves its own heap profile: the
 * application answers "/" (allocating a little per request and keeping a
 * record of recent requests) and everything under /debug/pprof/ goes to
 * heapprof_http_handle(). seconds=N uses the pending form and an event
 * timer, so the single-threaded event loop never blocks. Uses only the
 * public header.
 *
 *   cc server.c $(pkg-config --cflags --libs heapprof libevent) -o ev_server
 *   ./ev_server 8080 &
 *   go tool pprof -top http://127.0.0.1:8080/debug/pprof/heap
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include <heapprof.h>

/* ------------------------------------------------------------ the app */

#define RECENT 4096

static char *recent[RECENT];
static unsigned recent_next;

/* Keeps a 1 KiB record per request: shows in inuse_space. */
__attribute__((noinline)) static void
remember_request(const char *uri)
{
    char *rec = malloc(1024);
    if (rec == NULL)
        return;
    snprintf(rec, 1024, "request %s", uri);
    free(recent[recent_next]);
    recent[recent_next] = rec;
    recent_next = (recent_next + 1) % RECENT;
}

/* A page built and freed per request: alloc_space only. */
__attribute__((noinline)) static char *
render_page(const char *uri, size_t *len)
{
    size_t cap = 4096 + strlen(uri);
    char *page = malloc(cap);
    if (page == NULL)
        return NULL;
    *len = (size_t)snprintf(page, cap, "hello from %s\n", uri);
    return page;
}

static void
serve_app(struct evhttp_request *req, const char *uri)
{
    size_t len = 0;
    remember_request(uri);
    char *page = render_page(uri, &len);
    struct evbuffer *out = evbuffer_new();
    if (page != NULL && out != NULL) {
        evbuffer_add(out, page, len);
        evhttp_add_header(evhttp_request_get_output_headers(req),
                          "Content-Type", "text/plain");
        evhttp_send_reply(req, HTTP_OK, "OK", out);
    } else {
        evhttp_send_error(req, HTTP_INTERNAL, NULL);
    }
    free(page);
    if (out != NULL)
        evbuffer_free(out);
}

/* ------------------------------------------------------------ pprof */

static const char *
reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 413: return "Payload Too Large";
    case 501: return "Not Implemented";
    default: return "Internal Server Error";
    }
}

static void
send_heapprof(struct evhttp_request *req, struct heapprof_http_response *hr)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    const char *name, *value;
    for (unsigned i = 0;
         (name = heapprof_http_response_header(hr, i, &value)) != NULL; i++)
        evhttp_add_header(h, name, value);
    struct evbuffer *out = evbuffer_new();
    if (out != NULL && hr->body_len > 0)
        evbuffer_add(out, hr->body, hr->body_len);
    evhttp_send_reply(req, hr->status, reason(hr->status), out);
    if (out != NULL)
        evbuffer_free(out);
    heapprof_http_response_free(hr);
}

/* A seconds=N request waiting for its timer. If the client goes away
 * first, the connection's close callback drops it. */
struct pending_req {
    struct evhttp_request *req;
    struct evhttp_connection *conn;
    struct heapprof_http_pending *pending;
    struct event *timer;
};

static void
pending_free(struct pending_req *p)
{
    evhttp_connection_set_closecb(p->conn, NULL, NULL);
    event_free(p->timer);
    free(p);
}

static void
on_due(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct pending_req *p = arg;
    struct heapprof_http_response hr;
    struct evhttp_request *req = p->req;
    heapprof_http_resume(p->pending, &hr);
    pending_free(p);
    send_heapprof(req, &hr);
}

static void
on_close(struct evhttp_connection *conn, void *arg)
{
    (void)conn;
    struct pending_req *p = arg;
    heapprof_http_cancel(p->pending);
    pending_free(p);
}

static void
serve_pprof(struct evhttp_request *req, const char *uri,
            struct event_base *base)
{
    const char *method;
    switch (evhttp_request_get_command(req)) {
    case EVHTTP_REQ_GET: method = "GET"; break;
    case EVHTTP_REQ_HEAD: method = "HEAD"; break;
    case EVHTTP_REQ_POST: method = "POST"; break;
    case EVHTTP_REQ_PUT: method = "PUT"; break;
    case EVHTTP_REQ_DELETE: method = "DELETE"; break;
    default: method = "OTHER"; break;
    }
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t body_len = evbuffer_get_length(in);
    struct heapprof_http_request hreq = {
        .method = method, .method_len = strlen(method),
        .path = uri, .path_len = strlen(uri),
        .body = body_len ? (const char *)evbuffer_pullup(in, -1) : NULL,
        .body_len = body_len,
        .write_timeout_s = 600};
    struct heapprof_http_response hr;
    if (heapprof_http_handle(&hreq, &hr) != HEAPPROF_HTTP_PENDING) {
        send_heapprof(req, &hr);
        return;
    }
    struct pending_req *p = calloc(1, sizeof(*p));
    if (p == NULL || (p->timer = evtimer_new(base, on_due, p)) == NULL) {
        free(p);
        heapprof_http_response_free(&hr); /* also drops the pending delta */
        evhttp_send_error(req, HTTP_INTERNAL, NULL);
        return;
    }
    p->req = req;
    p->conn = evhttp_request_get_connection(req);
    p->pending = hr.pending;
    hr.pending = NULL;
    struct timeval tv = {hr.delay_ms / 1000, (hr.delay_ms % 1000) * 1000};
    heapprof_http_response_free(&hr);
    evhttp_connection_set_closecb(p->conn, on_close, p);
    /* libevent measures timers from the time it cached when this loop
     * iteration began; building the first profile took some of that, so
     * refresh it or the delta would come out a little short. */
    event_base_update_cache_time(base);
    evtimer_add(p->timer, &tv);
}

static void
on_request(struct evhttp_request *req, void *arg)
{
    const char *uri = evhttp_request_get_uri(req); /* raw path?query */
    if (strncmp(uri, "/debug/pprof", 12) == 0)
        serve_pprof(req, uri, arg);
    else
        serve_app(req, uri);
}

static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    event_base_loopbreak(arg);
}

int
main(int argc, char **argv)
{
    unsigned port = argc > 1 ? (unsigned)atoi(argv[1]) : 8080;
    /* Precise timers: by default libevent reads a coarse clock (a few ms
     * of resolution), so a seconds=N delta could come out a hair short. */
    struct event_config *cfg = event_config_new();
    if (cfg != NULL)
        event_config_set_flag(cfg, EVENT_BASE_FLAG_PRECISE_TIMER);
    struct event_base *base = cfg ? event_base_new_with_config(cfg) : NULL;
    if (cfg != NULL)
        event_config_free(cfg);
    struct evhttp *http = base ? evhttp_new(base) : NULL;
    if (http == NULL) {
        fprintf(stderr, "cannot set up libevent\n");
        return 1;
    }
    /* Bounds for hostile clients: body (POST /symbol), headers, idle. */
    evhttp_set_max_body_size(http, 1 << 20);
    evhttp_set_max_headers_size(http, 64 * 1024);
    evhttp_set_timeout(http, 15);
    evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD |
                                         EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
                                         EVHTTP_REQ_DELETE);
    evhttp_set_gencb(http, on_request, base);
    if (evhttp_bind_socket(http, "127.0.0.1", (ev_uint16_t)port) != 0) {
        fprintf(stderr, "cannot listen on 127.0.0.1:%u\n", port);
        return 1;
    }
    struct event *sigint = evsignal_new(base, SIGINT, on_signal, base);
    struct event *sigterm = evsignal_new(base, SIGTERM, on_signal, base);
    evsignal_add(sigint, NULL);
    evsignal_add(sigterm, NULL);
    printf("listening on http://127.0.0.1:%u/ (profiles under "
           "/debug/pprof/)\n", port);
    fflush(stdout);
    event_base_dispatch(base);
    event_free(sigint);
    event_free(sigterm);
    evhttp_free(http);
    event_base_free(base);
    return 0;
}
