/*
 * A small libmicrohttpd server that serves its own heap profile: the
 * application answers "/" (allocating a little per request, and keeping a
 * record of recent requests), and everything under /debug/pprof/ goes to
 * heapprof_http_handle(). seconds=N is not slept on: the connection is
 * suspended and a timer thread resumes it when the delta is due, so the
 * server keeps answering meanwhile. Uses only the public header.
 *
 *   cc server.c $(pkg-config --cflags --libs heapprof libmicrohttpd) \
 *       -o mhd_server
 *   ./mhd_server 8080 &
 *   go tool pprof -top http://127.0.0.1:8080/debug/pprof/heap
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <heapprof.h>
#include <microhttpd.h>

/* ------------------------------------------------------------ the app */

#define RECENT 4096

/* The application's "state": a ring of recent request records. */
static char *recent[RECENT];
static unsigned recent_next;
static pthread_mutex_t recent_lock = PTHREAD_MUTEX_INITIALIZER;

/* Keeps a 1 KiB record per request: shows in inuse_space. */
__attribute__((noinline)) static void
remember_request(const char *uri)
{
    char *rec = malloc(1024);
    if (rec == NULL)
        return;
    snprintf(rec, 1024, "request %s", uri);
    pthread_mutex_lock(&recent_lock);
    free(recent[recent_next]);
    recent[recent_next] = rec;
    recent_next = (recent_next + 1) % RECENT;
    pthread_mutex_unlock(&recent_lock);
}

/* A response page built per request: shows in alloc_space only once the
 * response is sent and freed. */
__attribute__((noinline)) static char *
render_page(const char *uri, size_t *len)
{
    size_t cap = 4096 + strlen(uri);
    char *page = malloc(cap);
    if (page == NULL)
        return NULL;
    int n = snprintf(page, cap, "hello from %s\n", uri);
    *len = (size_t)n;
    return page;
}

/* ------------------------------------------------------------ requests */

struct request {
    char *uri;                       /* raw target: path?query */
    char *body;
    size_t body_len;
    int started;
    int ready;                       /* pending delta due */
    struct heapprof_http_pending *pending;
    struct MHD_Connection *conn;
};

/* MHD gives the handler a decoded path and parsed arguments; heapprof
 * wants the raw target, which only the URI log callback sees. */
static void *
log_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    (void)cls;
    struct request *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return NULL;
    r->uri = strdup(uri);
    r->conn = conn;
    return r;
}

static void
completed(void *cls, struct MHD_Connection *conn, void **con_cls,
          enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)conn;
    (void)toe;
    struct request *r = *con_cls;
    if (r == NULL)
        return;
    heapprof_http_cancel(r->pending);
    free(r->uri);
    free(r->body);
    free(r);
    *con_cls = NULL;
}

static enum MHD_Result
send_heapprof(struct MHD_Connection *conn, struct heapprof_http_response *hr)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        hr->body_len, hr->body != NULL ? hr->body : (void *)"",
        MHD_RESPMEM_MUST_COPY);
    if (resp == NULL) {
        heapprof_http_response_free(hr);
        return MHD_NO;
    }
    const char *name, *value;
    for (unsigned i = 0;
         (name = heapprof_http_response_header(hr, i, &value)) != NULL; i++)
        MHD_add_response_header(resp, name, value);
    enum MHD_Result ret = MHD_queue_response(conn, (unsigned)hr->status, resp);
    MHD_destroy_response(resp);
    heapprof_http_response_free(hr);
    return ret;
}

/* Resumes a suspended seconds=N request once its delay is over. */
struct waker {
    struct request *r;
    unsigned delay_ms;
};

static void *
wake_later(void *arg)
{
    struct waker *w = arg;
    struct timespec ts = {w->delay_ms / 1000,
                          (long)(w->delay_ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
    w->r->ready = 1;
    MHD_resume_connection(w->r->conn);
    free(w);
    return NULL;
}

static enum MHD_Result
serve_pprof(struct request *r, const char *method)
{
    if (r->ready) {
        struct heapprof_http_response hr;
        struct heapprof_http_pending *p = r->pending;
        r->pending = NULL;
        r->ready = 0;
        heapprof_http_resume(p, &hr);
        return send_heapprof(r->conn, &hr);
    }
    struct heapprof_http_request req = {
        .method = method, .method_len = strlen(method),
        .path = r->uri, .path_len = strlen(r->uri),
        .body = r->body, .body_len = r->body_len,
        .write_timeout_s = 600};
    struct heapprof_http_response hr;
    if (heapprof_http_handle(&req, &hr) == HEAPPROF_HTTP_PENDING) {
        struct waker *w = malloc(sizeof(*w));
        pthread_t t;
        r->pending = hr.pending;
        hr.pending = NULL;
        if (w == NULL)
            return MHD_NO;
        w->r = r;
        w->delay_ms = hr.delay_ms;
        heapprof_http_response_free(&hr);
        MHD_suspend_connection(r->conn);
        if (pthread_create(&t, NULL, wake_later, w) != 0) {
            free(w);
            r->ready = 1;
            MHD_resume_connection(r->conn);
        } else {
            pthread_detach(t);
        }
        return MHD_YES;
    }
    return send_heapprof(r->conn, &hr);
}

static enum MHD_Result
serve_app(struct MHD_Connection *conn, const char *uri)
{
    size_t len = 0;
    remember_request(uri);
    char *page = render_page(uri, &len);
    if (page == NULL)
        return MHD_NO;
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, page, MHD_RESPMEM_MUST_FREE);
    if (resp == NULL) {
        free(page);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", "text/plain");
    enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_OK, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result
handle(void *cls, struct MHD_Connection *conn, const char *url,
       const char *method, const char *version, const char *upload,
       size_t *upload_size, void **con_cls)
{
    (void)cls;
    (void)url;
    (void)version;
    struct request *r = *con_cls;
    if (r == NULL || r->uri == NULL)
        return MHD_NO;
    if (!r->started) {
        r->started = 1;
        return MHD_YES;
    }
    if (*upload_size > 0) {
        /* Bodies matter only for POST /debug/pprof/symbol; cap them. */
        if (r->body_len + *upload_size > (1u << 20))
            return MHD_NO;
        char *nb = realloc(r->body, r->body_len + *upload_size);
        if (nb == NULL)
            return MHD_NO;
        memcpy(nb + r->body_len, upload, *upload_size);
        r->body = nb;
        r->body_len += *upload_size;
        *upload_size = 0;
        return MHD_YES;
    }
    if (strncmp(r->uri, "/debug/pprof", 12) == 0)
        return serve_pprof(r, method);
    return serve_app(conn, r->uri);
}

int
main(int argc, char **argv)
{
    unsigned port = argc > 1 ? (unsigned)atoi(argv[1]) : 8080;
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);

    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
            MHD_ALLOW_SUSPEND_RESUME,
        (uint16_t)port, NULL, NULL, handle, NULL,
        MHD_OPTION_SOCK_ADDR, &sa,
        MHD_OPTION_URI_LOG_CALLBACK, log_uri, NULL,
        MHD_OPTION_NOTIFY_COMPLETED, completed, NULL,
        MHD_OPTION_CONNECTION_LIMIT, 64u,
        MHD_OPTION_CONNECTION_TIMEOUT, 15u,
        MHD_OPTION_END);
    if (d == NULL) {
        fprintf(stderr, "cannot start libmicrohttpd on 127.0.0.1:%u\n", port);
        return 1;
    }
    printf("listening on http://127.0.0.1:%u/ (profiles under "
           "/debug/pprof/)\n", port);
    fflush(stdout);
    int sig;
    sigwait(&stop, &sig);
    /* Exit without MHD_stop_daemon: it must not run while a seconds=N
     * request is suspended. */
    return 0;
}
