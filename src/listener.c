/*
 * The HEAPPROF_HTTP listener. hp_listener_start() binds the socket itself
 * (so "address in use" is reported at once and unix: paths work the same
 * way as TCP), dlopen()s libmicrohttpd and starts one thread that, at the
 * first connection, hands it the socket and drives it in its
 * external-polling mode. Everything MHD does therefore happens on that one
 * fenced thread; seconds=N requests are suspended, not slept on, and
 * resumed by the same loop when due.
 */
#define _GNU_SOURCE
#include "listener.h"

#include <arpa/inet.h>
#include <dlfcn.h>
#include <grp.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "fileio.h"
#include "heapprof.h"
#include "http.h"
#include "log.h"
#include "stack.h"
#include "symbolize.h"
#include "tree.h"

typedef int (*hp_mhd_access_fn)(void *cls, struct MHD_Connection *c,
                                const char *url, const char *method,
                                const char *version, const char *upload,
                                size_t *upload_size, void **con_cls);
typedef void (*hp_mhd_completed_fn)(void *cls, struct MHD_Connection *c,
                                    void **con_cls, int toe);
typedef void *(*hp_mhd_urilog_fn)(void *cls, const char *uri,
                                  struct MHD_Connection *c);
typedef struct MHD_Daemon *(*hp_mhd_start_fn)(unsigned flags, uint16_t port,
                                              void *apc, void *apc_cls,
                                              hp_mhd_access_fn dh, void *dh_cls,
                                              ...);
typedef int (*hp_mhd_run_wait_fn)(struct MHD_Daemon *d, int32_t ms);
typedef struct MHD_Response *(*hp_mhd_from_buffer_fn)(size_t size, void *buf,
                                                      int mode);
typedef int (*hp_mhd_add_header_fn)(struct MHD_Response *r, const char *h,
                                    const char *v);
typedef int (*hp_mhd_queue_fn)(struct MHD_Connection *c, unsigned status,
                               struct MHD_Response *r);
typedef void (*hp_mhd_destroy_fn)(struct MHD_Response *r);
typedef void (*hp_mhd_conn_fn)(struct MHD_Connection *c);
typedef void (*hp_mhd_stop_fn)(struct MHD_Daemon *d);
typedef void (*hp_mhd_panic_fn)(void *cls, const char *file, unsigned line,
                                const char *reason);
typedef void (*hp_mhd_set_panic_fn)(hp_mhd_panic_fn cb, void *cls);
typedef const char *(*hp_mhd_lookup_fn)(struct MHD_Connection *c, int kind,
                                        const char *key);
typedef int (*hp_mhd_kv_fn)(void *cls, int kind, const char *key,
                            const char *value);
typedef int (*hp_mhd_values_fn)(struct MHD_Connection *c, int kind,
                                hp_mhd_kv_fn it, void *it_cls);
typedef const void *(*hp_mhd_info_fn)(struct MHD_Connection *c, int what, ...);
typedef void (*hp_mhd_notify_fn)(void *cls, struct MHD_Connection *c,
                                 void **socket_context, int toe);

static struct {
    hp_mhd_start_fn start;
    hp_mhd_run_wait_fn run_wait;
    hp_mhd_from_buffer_fn from_buffer;
    hp_mhd_add_header_fn add_header;
    hp_mhd_queue_fn queue;
    hp_mhd_destroy_fn destroy;
    hp_mhd_conn_fn suspend;
    hp_mhd_conn_fn resume;
    hp_mhd_lookup_fn lookup;
    hp_mhd_values_fn values;
    hp_mhd_info_fn info;
    hp_mhd_stop_fn stop;
    hp_mhd_set_panic_fn set_panic;
} mhd;

/* Limits against hostile clients: they bound what the listener can cost
 * the host (memory, fds, one thread) and how long a client may stall. */
#define MAX_CONNECTIONS 32u
#define CONN_TIMEOUT_S 15u
#define CONN_MEMORY 65536u    /* per-connection header/read pool */
#define MAX_BODY (1u << 20)   /* POST /symbol body */
#define WRITE_TIMEOUT_S 3600u /* seconds=N must be below this */
#define LISTEN_BACKLOG 64
/* seconds=N requests waiting at once: the other slots stay for others. */
#define MAX_PENDING 8u
/* A request must arrive whole within this from the connection (or the end
 * of the previous request on it), however steadily it trickles in; when
 * every slot is taken, within CROWDED_ARRIVE_NS, so slow clients cannot
 * keep the good ones out. */
#define ARRIVE_NS (10 * 1000000000ull)
#define CROWDED_ARRIVE_NS 1000000000ull
/* How often the loop looks at slow and departed clients. */
#define REAP_MS 250
/* How often an idle listener checks its socket is still its own. */
#define CHECK_MS 1000
/* More query parameters than this get 414 (MHD would run out of its
 * per-connection memory parsing them and drop the connection). */
#define MAX_QUERY_PARAMS 64u

/* Listener state. Written by hp_listener_start (lifecycle lock held by the
 * caller) before the thread starts, read-only afterwards; the fork child
 * resets it. */
static int listen_fd = -1;
static bool running;
static char where[HP_ADDR_MAX];
/* Serialises hp_listener_start (start-up, and the tree agent taking
 * over an address its holder let go). */
static pthread_mutex_t start_lock = PTHREAD_MUTEX_INITIALIZER;
static int stop_requested; /* atomic: hp_listener_stop was called */

/* Per-socket state (MHD's socket context), owned by the listener thread:
 * how long the request now arriving on it has taken. */
struct sock {
    int fd;
    uint64_t since_ns; /* accepted, or the previous request done */
    bool busy;         /* a whole request arrived, being served */
    struct sock *next;
};

/* Per-request state, owned by the listener thread. */
struct conn {
    char *uri; /* raw request target, NUL-terminated */
    char *body;
    size_t body_len;
    bool started;
    bool ready; /* pending delta due, resume it */
    bool gone;  /* its client left while it waited */
    bool too_many_params;
    struct hp_tree_pending *pending;
    uint64_t due_ns; /* monotonic */
    struct MHD_Connection *mc;
    struct sock *sock;
    struct conn *next; /* waiting list (suspended requests) */
};

/* Suspended seconds=N requests and open sockets; touched by the listener
 * thread only. */
static struct conn *waiting;
static unsigned n_waiting;
static struct sock *socks;
static unsigned n_socks;

static void
on_connection(void *cls, struct MHD_Connection *mc, void **socket_context,
              int toe)
{
    (void)cls;
    struct sock *s = *socket_context;
    if (toe == HP_MHD_CONNECTION_NOTIFY_STARTED) {
        const void *fd = mhd.info(mc, HP_MHD_CONNECTION_INFO_CONNECTION_FD);
        s = calloc(1, sizeof(*s));
        if (s == NULL || fd == NULL) {
            free(s);
            return; /* not watched: the idle timeout still applies */
        }
        memcpy(&s->fd, fd, sizeof(s->fd));
        s->since_ns = hp_now_mono_ns();
        s->next = socks;
        socks = s;
        n_socks++;
        *socket_context = s;
        return;
    }
    if (s == NULL)
        return;
    for (struct sock **pp = &socks; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == s) {
            *pp = s->next;
            n_socks--;
            break;
        }
    }
    free(s);
    *socket_context = NULL;
}

static unsigned
count_params(const char *uri)
{
    const char *q = strchr(uri, '?');
    if (q == NULL || q[1] == '\0')
        return 0;
    unsigned n = 1;
    for (q++; *q != '\0'; q++)
        n += *q == '&';
    return n;
}

static void *
on_uri(void *cls, const char *uri, struct MHD_Connection *mc)
{
    (void)cls;
    struct conn *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->uri = strdup(uri != NULL ? uri : "");
    c->mc = mc;
    if (c->uri == NULL) {
        free(c);
        return NULL;
    }
    const void *sc = mhd.info(mc, HP_MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    if (sc != NULL)
        memcpy(&c->sock, sc, sizeof(c->sock));
    if (uri != NULL && count_params(uri) > MAX_QUERY_PARAMS) {
        /* MHD parses the query into its connection pool right after this
         * call, from this very buffer: end it at the '?' so it parses
         * nothing, and answer 414 from our copy. */
        c->too_many_params = true;
        char *q = strchr(uri, '?');
        q[1] = '\0';
    }
    return c;
}

static void
unlink_waiting(struct conn *c)
{
    for (struct conn **pp = &waiting; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == c) {
            *pp = c->next;
            n_waiting--;
            return;
        }
    }
}

static void
on_completed(void *cls, struct MHD_Connection *mc, void **con_cls, int toe)
{
    (void)cls;
    (void)mc;
    (void)toe;
    struct conn *c = *con_cls;
    if (c == NULL)
        return;
    if (c->sock != NULL) {
        /* The next request on this connection starts its clock now. */
        c->sock->busy = false;
        c->sock->since_ns = hp_now_mono_ns();
    }
    unlink_waiting(c);
    hp_tree_cancel(c->pending);
    free(c->uri);
    free(c->body);
    free(c);
    *con_cls = NULL;
}

/* Send resp (taking its body) on mc. */
static int
send_response(struct MHD_Connection *mc, struct heapprof_http_response *resp)
{
    struct MHD_Response *r;
    if (resp->body != NULL && resp->body_len > 0) {
        r = mhd.from_buffer(resp->body_len, resp->body,
                            HP_MHD_RESPMEM_MUST_FREE);
        if (r != NULL)
            resp->body = NULL; /* MHD frees it with free() */
    } else {
        r = mhd.from_buffer(0, (void *)"", HP_MHD_RESPMEM_PERSISTENT);
    }
    if (r == NULL) {
        heapprof_http_response_free(resp);
        return HP_MHD_NO;
    }
    const char *name, *value;
    for (unsigned i = 0;
         (name = heapprof_http_response_header(resp, i, &value)) != NULL; i++)
        mhd.add_header(r, name, value);
    int rc = mhd.queue(mc, (unsigned)resp->status, r);
    mhd.destroy(r);
    heapprof_http_response_free(resp);
    return rc;
}

static int
send_error(struct MHD_Connection *mc, unsigned status, const char *msg)
{
    struct heapprof_http_response resp;
    hp_http_error(&resp, (int)status, msg);
    return send_response(mc, &resp);
}

static int check_headers(struct MHD_Connection *mc, struct conn *c);

static int
on_access(void *cls, struct MHD_Connection *mc, const char *url,
          const char *method, const char *version, const char *upload,
          size_t *upload_size, void **con_cls)
{
    (void)cls;
    (void)url;
    (void)version;
    struct conn *c = *con_cls;
    if (c == NULL)
        return send_error(mc, 503, "heapprof: out of memory");

    if (c->ready) {
        /* A resumed seconds=N request: its delay is over, or its client
         * left (then no delta is computed, and the socket is closed). */
        struct heapprof_http_response resp;
        struct hp_tree_pending *p = c->pending;
        c->pending = NULL;
        c->ready = false;
        if (c->gone) {
            hp_tree_cancel(p);
            return HP_MHD_NO;
        }
        hp_tree_resume(p, &resp);
        return send_response(mc, &resp);
    }
    if (!c->started) {
        c->started = true;
        return check_headers(mc, c);
    }
    if (*upload_size > 0) {
        /* A chunked body that grows past the cap: drop the connection. */
        if (c->body_len + *upload_size > MAX_BODY)
            return HP_MHD_NO;
        char *nb = realloc(c->body, c->body_len + *upload_size);
        if (nb == NULL)
            return send_error(mc, 503, "heapprof: out of memory");
        memcpy(nb + c->body_len, upload, *upload_size);
        c->body = nb;
        c->body_len += *upload_size;
        *upload_size = 0;
        return HP_MHD_YES;
    }

    struct heapprof_http_request req;
    memset(&req, 0, sizeof(req));
    req.method = method;
    req.method_len = strlen(method);
    req.path = c->uri;
    req.path_len = strlen(c->uri);
    req.body = c->body;
    req.body_len = c->body_len;
    req.write_timeout_s = WRITE_TIMEOUT_S;
    struct heapprof_http_response resp;
    if (c->sock != NULL)
        c->sock->busy = true;
    /* This process's profile merged with its descendants' (tree.h). */
    int rc = hp_tree_handle(&req, &resp, &c->pending);
    if (rc == HEAPPROF_HTTP_PENDING && n_waiting >= MAX_PENDING) {
        hp_tree_cancel(c->pending); /* drops its first profiles */
        c->pending = NULL;
        heapprof_http_response_free(&resp);
        return send_error(mc, 503,
                          "too many seconds=N requests waiting "
                          "(at most 8); try again later");
    }
    if (rc == HEAPPROF_HTTP_PENDING) {
        c->due_ns = hp_now_mono_ns() + (uint64_t)resp.delay_ms * 1000000u;
        heapprof_http_response_free(&resp);
        c->next = waiting;
        waiting = c;
        n_waiting++;
        mhd.suspend(mc);
        return HP_MHD_YES;
    }
    return send_response(mc, &resp);
}

/* HEAPPROF_HTTP_TOKEN_FILE's token (read once at start); "" = none. */
static char token[256];

/* Read the bearer token: its first line, trailing blanks dropped. 0, or
 * -1 with a static reason (the listener then refuses to start: a token
 * that was asked for is never silently absent). */
static int
load_token(const char *path, const char **why)
{
    token[0] = '\0';
    if (path[0] == '\0')
        return 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    char buf[sizeof token + 1];
    ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf) : -1;
    if (fd >= 0)
        close(fd);
    if (n < 0) {
        *why = "HEAPPROF_HTTP_TOKEN_FILE cannot be read";
        return -1;
    }
    size_t len =
        strcspn(buf, "\r\n") < (size_t)n ? strcspn(buf, "\r\n") : (size_t)n;
    while (len > 0 && (buf[len - 1] == ' ' || buf[len - 1] == '\t'))
        len--;
    if (len < 16 || len >= sizeof token) {
        *why = "HEAPPROF_HTTP_TOKEN_FILE must hold a token of 16 to 255 "
               "bytes on its first line";
        return -1;
    }
    memcpy(token, buf, len);
    token[len] = '\0';
    return 0;
}

/* "Bearer <token>", compared in constant time. */
static bool
authorized(struct MHD_Connection *mc)
{
    if (token[0] == '\0')
        return true;
    const char *a = mhd.lookup(mc, HP_MHD_HEADER_KIND, "Authorization");
    if (a == NULL || strncasecmp(a, "Bearer ", 7) != 0)
        return false;
    a += 7;
    size_t n = strlen(token);
    if (strlen(a) != n)
        return false;
    unsigned char diff = 0;
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)(a[i] ^ token[i]);
    return diff == 0;
}

static int
count_content_length(void *cls, int kind, const char *key, const char *value)
{
    (void)kind;
    (void)value;
    if (strcasecmp(key, "Content-Length") == 0)
        ++*(unsigned *)cls;
    return HP_MHD_YES;
}

/* The first call for a request, headers complete: refuse what must not be
 * read on. */
static int
check_headers(struct MHD_Connection *mc, struct conn *c)
{
    if (!authorized(mc))
        return send_error(mc, 401,
                          "missing or wrong bearer token "
                          "(Authorization: Bearer ..., see "
                          "HEAPPROF_HTTP_TOKEN_FILE)");
    if (c->too_many_params)
        return send_error(mc, 414, "too many query parameters (at most 64)");
    /* Two lengths make the body's end ambiguous (request smuggling behind
     * a proxy that picks the other one). */
    unsigned n_cl = 0;
    mhd.values(mc, HP_MHD_HEADER_KIND, count_content_length, &n_cl);
    if (n_cl > 1)
        return send_error(mc, 400, "duplicate Content-Length header");
    /* MHD takes a response only before the body or after all of it:
     * refuse an announced oversized body now, unread. */
    const char *cl = mhd.lookup(mc, HP_MHD_HEADER_KIND, "Content-Length");
    if (cl != NULL && strtoull(cl, NULL, 10) > MAX_BODY)
        return send_error(mc, 413, "request body too large");
    return HP_MHD_YES; /* headers only; body chunks (if any) follow */
}

/* Resume the requests that are due; returns ms until the next one (or a
 * second, so the loop still turns over now and then), rounded up so that
 * nothing is resumed before its time (a delta must cover all N seconds). */
static int32_t
resume_due(void)
{
    uint64_t now = hp_now_mono_ns();
    uint64_t next = now + 1000000000u;
    for (struct conn **pp = &waiting; *pp != NULL;) {
        struct conn *c = *pp;
        if (c->due_ns <= now) {
            *pp = c->next;
            n_waiting--;
            c->next = NULL;
            c->ready = true;
            mhd.resume(c->mc);
            continue;
        }
        if (c->due_ns < next)
            next = c->due_ns;
        pp = &c->next;
    }
    return (int32_t)((next - now + 999999u) / 1000000u);
}

/*
 * Cut the sockets whose request has taken too long to arrive (shutdown:
 * MHD then sees the end of the stream and closes them), and notice the
 * clients of waiting seconds=N requests that left (MHD does not watch a
 * suspended socket): they are resumed at once and closed.
 */
static void
reap(void)
{
    uint64_t now = hp_now_mono_ns();
    uint64_t limit = n_socks >= MAX_CONNECTIONS ? CROWDED_ARRIVE_NS : ARRIVE_NS;
    for (struct sock *s = socks; s != NULL; s = s->next)
        if (!s->busy && now - s->since_ns > limit)
            shutdown(s->fd, SHUT_RDWR);
    for (struct conn *c = waiting; c != NULL; c = c->next) {
        struct pollfd pfd = {c->sock != NULL ? c->sock->fd : -1, POLLRDHUP, 0};
        if (pfd.fd >= 0 && poll(&pfd, 1, 0) == 1 &&
            (pfd.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0) {
            c->gone = true;
            c->due_ns = 0;
        }
    }
}

static int
load_mhd(void)
{
    if (mhd.start != NULL)
        return 0; /* a listener started before loaded it */
    void *h = dlopen(HP_MHD_SONAME, RTLD_NOW | RTLD_LOCAL);
    if (h == NULL) {
        const char *e = dlerror();
        hp_log("http: cannot load " HP_MHD_SONAME " (%s); install "
               "libmicrohttpd12 for HEAPPROF_HTTP. No listener; profiling "
               "continues",
               e != NULL ? e : "not found");
        return -1;
    }
    /* POSIX dlsym returns void *; these are function pointers. */
#define LOAD(field, sym)                                                       \
    do {                                                                       \
        void *p_ = dlsym(h, sym);                                              \
        if (p_ == NULL)                                                        \
            goto missing;                                                      \
        memcpy(&mhd.field, &p_, sizeof(p_));                                   \
    } while (0)
    LOAD(start, "MHD_start_daemon");
    LOAD(run_wait, "MHD_run_wait");
    LOAD(from_buffer, "MHD_create_response_from_buffer");
    LOAD(add_header, "MHD_add_response_header");
    LOAD(queue, "MHD_queue_response");
    LOAD(destroy, "MHD_destroy_response");
    LOAD(suspend, "MHD_suspend_connection");
    LOAD(resume, "MHD_resume_connection");
    LOAD(lookup, "MHD_lookup_connection_value");
    LOAD(values, "MHD_get_connection_values");
    LOAD(info, "MHD_get_connection_info");
    LOAD(stop, "MHD_stop_daemon");
    LOAD(set_panic, "MHD_set_panic_func");
#undef LOAD
    return 0;
missing:
    hp_log("http: " HP_MHD_SONAME " is too old (needs MHD_run_wait, "
           "0.9.72 or later). No listener; profiling continues");
    /* Keep it loaded: unloading a library that may have started threads
     * is not worth the risk for one mapping. */
    return -1;
}

static int open_listener(const char *addr, bool *loopback, const char **why,
                         int *err);

/* The one line for an address that cannot be listened on: a bad value
 * (why, static) or a system error (err). */
static void
log_no_listener(const char *addr, const char *why, int err)
{
    if (why != NULL)
        hp_log("http: HEAPPROF_HTTP='%s' not usable: %s. No listener; "
               "profiling continues",
               addr, why);
    else
        hp_log("http: cannot listen on %s: %s. No listener; profiling "
               "continues",
               addr, strerror(err));
}

/*
 * hp_listener_stop's end of the thread: suspended seconds=N requests are
 * answered now (libmicrohttpd refuses to stop with any suspended), then
 * the daemon stops, closing the listening socket and every connection;
 * a unix socket's file goes too.
 */
static void remove_unix_socket(void);

static void
stop_daemon(struct MHD_Daemon *d)
{
    for (struct conn *c = waiting; c != NULL; c = c->next)
        c->due_ns = 0;
    resume_due();
    mhd.run_wait(d, 0);
    mhd.stop(d);
    remove_unix_socket();
    __atomic_store_n(&listen_fd, -1, __ATOMIC_RELAXED);
    __atomic_store_n(&running, false, __ATOMIC_RELEASE);
}

/*
 * libmicrohttpd's default on an internal error (a descriptor it cannot
 * close) is abort(): the host's. It happens when the program closes every
 * descriptor after heapprof started (sshd's closefrom at start), and the
 * numbers may hold the program's own files by now: the listener stops
 * without closing anything (the daemon is leaked) and says so.
 */
static int broken; /* atomic */
/* The listening socket as bound, to tell it from a program's file that
 * took its number after closing it. */
static struct hp_fd_id listen_id = {-1, 0, 0};

static void
on_mhd_panic(void *cls, const char *file, unsigned line, const char *reason)
{
    (void)cls;
    if (reason == NULL)
        reason = "?";
    int len = (int)strcspn(reason, "\n"); /* its messages end in one */
    if (!__atomic_exchange_n(&broken, 1, __ATOMIC_RELAXED))
        hp_log("http: libmicrohttpd failed (%s:%u: %.*s), most likely the "
               "program closed heapprof's descriptors; the listener stops "
               "and the program carries on",
               file != NULL ? file : "?", line, len, reason);
}

static void
abandon_daemon(void)
{
    __atomic_store_n(&listen_fd, -1, __ATOMIC_RELAXED);
    __atomic_store_n(&running, false, __ATOMIC_RELEASE);
}

/*
 * Until the first connection the thread only watches its socket
 * (libmicrohttpd was loaded by hp_listener_start, before the program's
 * main when started from the constructor): a program that closes every descriptor in a loop at
 * start (older daemons) would otherwise close libmicrohttpd's and libdw's
 * under them while they are being made, then reuse the numbers, which
 * they could close again.
 * 1: a connection waits; 0: a stop was asked for; -1: the program closed
 * the socket.
 */
static int
wait_first_connection(void)
{
    for (;;) {
        if (__atomic_load_n(&stop_requested, __ATOMIC_ACQUIRE))
            return 0;
        if (!hp_fd_id_held(&listen_id))
            return -1;
        struct pollfd p = {__atomic_load_n(&listen_fd, __ATOMIC_RELAXED),
                           POLLIN, 0};
        if (poll(&p, 1, CHECK_MS) > 0 && p.revents == POLLIN)
            return 1;
    }
}

static void
say_socket_taken(void)
{
    hp_log("http: the program closed heapprof's listening socket (closing "
           "its descriptors one by one, or dup2 over it); the listener on %s "
           "stops and the program carries on",
           where);
}

static void *
listener_main(void *arg)
{
    (void)arg;
    /* Fenced for life: nothing this thread allocates is the host's. */
    hp_fence_enter();
    int first = wait_first_connection();
    if (first < 0) {
        say_socket_taken();
        abandon_daemon();
        return NULL;
    }
    if (first == 0) {
        remove_unix_socket();
        goto fail;
    }
    hp_symbolize_thread_init();
    mhd.set_panic(on_mhd_panic, NULL);
    struct MHD_Daemon *d =
        mhd.start(HP_MHD_USE_EPOLL | HP_MHD_ALLOW_SUSPEND_RESUME, 0, NULL, NULL,
                  on_access, NULL, HP_MHD_OPTION_LISTEN_SOCKET, listen_fd,
                  HP_MHD_OPTION_CONNECTION_LIMIT, MAX_CONNECTIONS,
                  HP_MHD_OPTION_CONNECTION_TIMEOUT, CONN_TIMEOUT_S,
                  HP_MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONN_MEMORY,
                  HP_MHD_OPTION_URI_LOG_CALLBACK, on_uri, NULL,
                  HP_MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
                  HP_MHD_OPTION_NOTIFY_CONNECTION, on_connection, NULL,
                  HP_MHD_OPTION_END);
    if (d == NULL) {
        hp_log("http: libmicrohttpd refused to start on %s. No listener; "
               "profiling continues",
               where);
        goto fail;
    }
    while (!__atomic_load_n(&stop_requested, __ATOMIC_ACQUIRE)) {
        if (__atomic_load_n(&broken, __ATOMIC_RELAXED)) {
            abandon_daemon();
            return NULL;
        }
        if (!hp_fd_id_held(&listen_id)) {
            say_socket_taken();
            abandon_daemon();
            return NULL;
        }
        reap();
        int32_t ms = resume_due();
        if (n_socks > 0 && ms > REAP_MS)
            ms = REAP_MS;
        if (ms < 0 || ms > CHECK_MS)
            ms = CHECK_MS;
        if (mhd.run_wait(d, ms) != HP_MHD_YES) {
            /* Only on a broken daemon; do not spin. */
            usleep(100000);
        }
    }
    stop_daemon(d);
    return NULL;
fail:
    /* Refuse connections rather than let them hang in the backlog; not a
     * number the program has taken since (its closefrom). Closed before
     * `running` drops: a listener started after that has its own. */
    int fd = __atomic_exchange_n(&listen_fd, -1, __ATOMIC_RELAXED);
    if (hp_fd_id_held(&listen_id))
        close(fd);
    __atomic_store_n(&running, false, __ATOMIC_RELEASE);
    return NULL;
}

/* The unix socket this process made, removed at its exit. */
static char bound_path[108];
static dev_t bound_dev;
static ino_t bound_ino;
static pid_t bound_pid;

/* Mode and group from HEAPPROF_HTTP_SOCKET_MODE/_GROUP, set before
 * listen() so that nobody connects under the umask's mode meanwhile. */
static int
set_socket_access(const char *path, const char **why, int *err)
{
    if (chmod(path, hp_settings.http_socket_mode) != 0) {
        *err = errno;
        return -1;
    }
    const char *g = hp_settings.http_socket_group;
    if (g[0] == '\0')
        return 0;
    char *end;
    unsigned long gid = strtoul(g, &end, 10);
    if (*end != '\0') {
        struct group gr, *res = NULL;
        char buf[4096];
        if (getgrnam_r(g, &gr, buf, sizeof buf, &res) != 0 || res == NULL) {
            *why = "HEAPPROF_HTTP_SOCKET_GROUP names no group";
            return -1;
        }
        gid = res->gr_gid;
    }
    if (lchown(path, (uid_t)-1, (gid_t)gid) != 0) {
        *err = errno;
        return -1;
    }
    return 0;
}

/* Bind a unix socket at path; a stale socket file (nobody accepting) left
 * by an earlier run is replaced, a live one is "in use", anything else
 * there is not ours to replace. */
static int
bind_unix(const char *path, const char **why, int *err)
{
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sa.sun_path)) {
        *err = ENAMETOOLONG;
        return -1;
    }
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        *err = errno;
        return -1;
    }
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        if (errno != EADDRINUSE) {
            *err = errno;
            close(fd);
            return -1;
        }
        struct stat st;
        if (lstat(path, &st) == 0 && !S_ISSOCK(st.st_mode)) {
            *why = "the path exists and is not a socket";
            close(fd);
            return -1;
        }
        int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        bool stale = probe >= 0 && lstat(path, &st) == 0 &&
                     S_ISSOCK(st.st_mode) &&
                     connect(probe, (struct sockaddr *)&sa, sizeof(sa)) != 0 &&
                     errno == ECONNREFUSED;
        if (probe >= 0)
            close(probe);
        if (!stale) {
            *err = EADDRINUSE;
            close(fd);
            return -1;
        }
        unlink(path);
        if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
            *err = errno;
            close(fd);
            return -1;
        }
    }
    struct stat st;
    if (set_socket_access(path, why, err) != 0 || lstat(path, &st) != 0 ||
        listen(fd, LISTEN_BACKLOG) != 0) {
        if (*why == NULL && *err == 0)
            *err = errno;
        unlink(path);
        close(fd);
        return -1;
    }
    snprintf(bound_path, sizeof bound_path, "%s", path);
    bound_dev = st.st_dev;
    bound_ino = st.st_ino;
    bound_pid = getpid();
    return fd;
}

/* The socket file goes with the process that made it (not with its fork
 * children, and not if someone replaced it meanwhile). */
__attribute__((destructor)) static void
remove_unix_socket(void)
{
    struct stat st;
    if (bound_path[0] != '\0' && bound_pid == getpid() &&
        lstat(bound_path, &st) == 0 && S_ISSOCK(st.st_mode) &&
        st.st_dev == bound_dev && st.st_ino == bound_ino)
        unlink(bound_path);
}

static int
bind_inet(const struct sockaddr *sa, socklen_t len, int *err)
{
    int fd =
        socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        *err = errno;
        return -1;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (sa->sa_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, sa, len) != 0 || listen(fd, LISTEN_BACKLOG) != 0) {
        *err = errno;
        close(fd);
        return -1;
    }
    return fd;
}

/* Socket for addr; on failure -1 with *why (static) or *err (errno). */
static int
open_listener(const char *addr, bool *loopback, const char **why, int *err)
{
    *loopback = true;
    struct hp_addr a;
    if (hp_parse_http_addr(addr, &a, why) != 0)
        return -1;
    if (a.is_unix) {
        snprintf(where, sizeof(where), "%s", addr);
        return bind_unix(a.host, why, err);
    }
    const char *host = a.host;
    uint16_t port = a.port;

    struct sockaddr_in6 s6;
    struct sockaddr_in s4;
    memset(&s6, 0, sizeof(s6));
    memset(&s4, 0, sizeof(s4));
    int fd;
    if (a.is_v6) {
        s6.sin6_family = AF_INET6;
        s6.sin6_port = htons(port);
        if (inet_pton(AF_INET6, host, &s6.sin6_addr) != 1) {
            *why = "not an IPv6 address";
            return -1;
        }
        *loopback = IN6_IS_ADDR_LOOPBACK(&s6.sin6_addr);
        fd = bind_inet((struct sockaddr *)&s6, sizeof(s6), err);
    } else {
        s4.sin_family = AF_INET;
        s4.sin_port = htons(port);
        /* No DNS from inside a profiled process: literals and localhost. */
        if (strcmp(host, "localhost") == 0) {
            s4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        } else if (inet_pton(AF_INET, host, &s4.sin_addr) != 1) {
            *why = "not an IP address (host names other than localhost "
                   "are not resolved)";
            return -1;
        }
        *loopback = (ntohl(s4.sin_addr.s_addr) >> 24) == 127;
        fd = bind_inet((struct sockaddr *)&s4, sizeof(s4), err);
    }
    if (fd < 0)
        return -1;

    /* The address as the kernel has it, for messages. */
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    char ip[INET6_ADDRSTRLEN] = "?";
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET6)
            inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, ip,
                      sizeof(ip));
        else
            inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, ip,
                      sizeof(ip));
    }
    if (a.is_v6)
        snprintf(where, sizeof(where), "[%s]:%u", ip, (unsigned)port);
    else
        snprintf(where, sizeof(where), "%s:%u", ip, (unsigned)port);
    return fd;
}

static int start_locked(const char *addr);

int
hp_listener_start(const char *addr)
{
    if (addr == NULL || addr[0] == '\0')
        return HEAPPROF_EINVAL;
    hp_fence_enter();
    pthread_mutex_lock(&start_lock);
    int rc = start_locked(addr);
    pthread_mutex_unlock(&start_lock);
    hp_fence_exit();
    return rc;
}

void
hp_listener_stop(void)
{
    hp_fence_enter();
    pthread_mutex_lock(&start_lock);
    if (__atomic_load_n(&running, __ATOMIC_ACQUIRE))
        __atomic_store_n(&stop_requested, 1, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&start_lock);
    hp_fence_exit();
}

/* Wakes the thread's wait (a connection to its own socket), so that a
 * stop is seen at once rather than at the next check. */
static void
wake_listener(void)
{
    struct sockaddr_storage sa;
    socklen_t len = sizeof sa;
    int fd = __atomic_load_n(&listen_fd, __ATOMIC_RELAXED);
    if (fd < 0 || !hp_fd_id_held(&listen_id) ||
        getsockname(fd, (struct sockaddr *)&sa, &len) != 0)
        return;
    int c = socket(sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (c < 0)
        return;
    (void)connect(c, (struct sockaddr *)&sa, len);
    close(c);
}

/* A listener asked to stop (heapprof detach, or attach replacing one
 * started from the environment) is gone within a second or so: wait for
 * it (3 s at most) instead of taking it for the running one. */
static void
wait_stopped(void)
{
    const struct timespec step = {0, 1000 * 1000};
    for (int i = 0; i < 3000 && __atomic_load_n(&running, __ATOMIC_ACQUIRE) &&
                    __atomic_load_n(&stop_requested, __ATOMIC_ACQUIRE);
         i++)
        nanosleep(&step, NULL);
}

static int
start_locked(const char *addr)
{
    wait_stopped();
    if (__atomic_load_n(&running, __ATOMIC_ACQUIRE))
        return HEAPPROF_OK;
    __atomic_store_n(&stop_requested, 0, __ATOMIC_RELEASE);
    __atomic_store_n(&broken, 0, __ATOMIC_RELAXED); /* a new daemon */
    bool loopback = true;
    const char *why = NULL;
    int err = 0;
    if (load_token(hp_settings.http_token_file, &why) != 0) {
        log_no_listener(addr, why, 0);
        return HEAPPROF_EINVAL;
    }
    int fd = open_listener(addr, &loopback, &why, &err);
    if (fd < 0 && why == NULL && err == EADDRINUSE)
        return HEAPPROF_EBUSY; /* the caller (agent.c) says so, or not */
    if (fd < 0) {
        log_no_listener(addr, why, err);
        return why != NULL ? HEAPPROF_EINVAL : HEAPPROF_EIO;
    }
    if (fd >= 0 && !loopback && token[0] == '\0')
        hp_log("http: listening on %s, which is not a loopback address: "
               "anyone who can reach it can read this process's heap "
               "profiles (see HEAPPROF_HTTP_TOKEN_FILE)",
               where);
    /* Loaded here, not on the thread: a missing library is said at once,
     * and the loader's files are opened before the program runs (before
     * a close loop at its start, or a chroot). dlopen beside the
     * host's forks: inside the fork gate (stack.h). */
    hp_stack_gate_enter();
    int loaded = load_mhd();
    hp_stack_gate_exit();
    if (loaded != 0) {
        close(fd);
        return HEAPPROF_EIO;
    }
    listen_fd = fd;
    hp_fd_id_note(&listen_id, fd);

    int rc = hp_thread_start(listener_main, NULL, "heapprof-http");
    if (rc != 0) {
        hp_log("http: cannot start the listener thread: %s. No listener; "
               "profiling continues",
               strerror(rc));
        if (fd >= 0)
            close(fd);
        listen_fd = -1;
        return HEAPPROF_EIO;
    }
    running = true;
    return HEAPPROF_OK;
}

void
hp_listener_postfork_child(void)
{
    /* The thread is gone in the child and its MHD state may be mid-update:
     * leak it, and let go of the socket so the port belongs to the parent
     * alone once the child execs or exits. */
    int fd = __atomic_exchange_n(&listen_fd, -1, __ATOMIC_RELAXED);
    if (fd >= 0)
        close(fd);
    /* A child that outlives its parent (a daemon) serves in its place:
     * its tree agent takes the address over (agent.h). */
    running = false;
    waiting = NULL;
    n_waiting = 0;
    socks = NULL;
    n_socks = 0;
    pthread_mutex_init(&start_lock, NULL);
}

bool
hp_listener_pause(void)
{
    if (!__atomic_load_n(&running, __ATOMIC_ACQUIRE))
        return false; /* most processes: no listener of their own */
    hp_fence_enter();
    pthread_mutex_lock(&start_lock);
    bool was = __atomic_load_n(&running, __ATOMIC_ACQUIRE);
    if (was) {
        __atomic_store_n(&stop_requested, 1, __ATOMIC_RELEASE);
        wake_listener();
        wait_stopped();
    }
    pthread_mutex_unlock(&start_lock);
    hp_fence_exit();
    return was;
}
