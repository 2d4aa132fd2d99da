/*
 * The HEAPPROF_HTTP listener. hp_listener_start() binds the socket itself
 * (so "address in use" is reported at once and unix: paths work the same
 * way as TCP) and starts one thread that dlopen()s libmicrohttpd, hands it
 * the socket and drives it in its external-polling mode. Everything MHD
 * does therefore happens on that one fenced thread; seconds=N requests are
 * suspended, not slept on, and resumed by the same loop when due.
 */
#define _GNU_SOURCE /* pthread_setname_np */
#include "listener.h"

#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "heapprof.h"
#include "http.h"
#include "log.h"
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
                                              hp_mhd_access_fn dh,
                                              void *dh_cls, ...);
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
typedef const char *(*hp_mhd_lookup_fn)(struct MHD_Connection *c, int kind,
                                        const char *key);

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
    hp_mhd_stop_fn stop;
} mhd;

/* Limits against hostile clients: they bound what the listener can cost
 * the host (memory, fds, one thread) and how long a client may stall. */
#define MAX_CONNECTIONS 32u
#define CONN_TIMEOUT_S 15u
#define CONN_MEMORY 65536u      /* per-connection header/read pool */
#define MAX_BODY (1u << 20)      /* POST /symbol body */
#define WRITE_TIMEOUT_S 3600u   /* seconds=N must be below this */
#define LISTEN_BACKLOG 64

/* Listener state. Written by hp_listener_start (lifecycle lock held by the
 * caller) before the thread starts, read-only afterwards; the fork child
 * resets it. */
static int listen_fd = -1;
static bool running;
static char where[HP_ADDR_MAX];
/* Serialises hp_listener_start (start-up, and the tree agent taking
 * over an address its holder let go). */
static pthread_mutex_t start_lock = PTHREAD_MUTEX_INITIALIZER;
static int stop_requested;       /* atomic: hp_listener_stop was called */

/* Per-request state, owned by the listener thread. */
struct conn {
    char *uri;                  /* raw request target, NUL-terminated */
    char *body;
    size_t body_len;
    bool started;
    bool ready;                 /* pending delta due, resume it */
    struct hp_tree_pending *pending;
    uint64_t due_ns;            /* monotonic */
    struct MHD_Connection *mc;
    struct conn *next;          /* waiting list (suspended requests) */
};

/* Suspended seconds=N requests; touched by the listener thread only. */
static struct conn *waiting;

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
    return c;
}

static void
unlink_waiting(struct conn *c)
{
    for (struct conn **pp = &waiting; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == c) {
            *pp = c->next;
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
        /* A resumed seconds=N request: its delay is over. */
        struct heapprof_http_response resp;
        struct hp_tree_pending *p = c->pending;
        c->pending = NULL;
        c->ready = false;
        hp_tree_resume(p, &resp);
        return send_response(mc, &resp);
    }
    if (!c->started) {
        c->started = true;
        /* MHD takes a response only before the body or after all of it:
         * refuse an announced oversized body now, unread. */
        const char *cl = mhd.lookup(mc, HP_MHD_HEADER_KIND, "Content-Length");
        if (cl != NULL && strtoull(cl, NULL, 10) > MAX_BODY)
            return send_error(mc, 413, "request body too large");
        return HP_MHD_YES; /* headers only; body chunks (if any) follow */
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
    /* This process's profile merged with its descendants' (tree.h). */
    int rc = hp_tree_handle(&req, &resp, &c->pending);
    if (rc == HEAPPROF_HTTP_PENDING) {
        c->due_ns = hp_now_mono_ns() + (uint64_t)resp.delay_ms * 1000000u;
        heapprof_http_response_free(&resp);
        c->next = waiting;
        waiting = c;
        mhd.suspend(mc);
        return HP_MHD_YES;
    }
    return send_response(mc, &resp);
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

static int
load_mhd(void)
{
    void *h = dlopen(HP_MHD_SONAME, RTLD_NOW | RTLD_LOCAL);
    if (h == NULL) {
        const char *e = dlerror();
        hp_log("http: cannot load " HP_MHD_SONAME " (%s); install "
               "libmicrohttpd12 for HEAPPROF_HTTP. No listener; profiling "
               "continues", e != NULL ? e : "not found");
        return -1;
    }
    /* POSIX dlsym returns void *; these are function pointers. */
#define LOAD(field, sym)                                                      \
    do {                                                                      \
        void *p_ = dlsym(h, sym);                                             \
        if (p_ == NULL)                                                       \
            goto missing;                                                     \
        memcpy(&mhd.field, &p_, sizeof(p_));                                  \
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
    LOAD(stop, "MHD_stop_daemon");
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
               "profiling continues", addr, why);
    else
        hp_log("http: cannot listen on %s: %s. No listener; profiling "
               "continues", addr, strerror(err));
}

/*
 * hp_listener_stop's end of the thread: suspended seconds=N requests are
 * answered now (libmicrohttpd refuses to stop with any suspended), then
 * the daemon stops, closing the listening socket and every connection.
 */
static void
stop_daemon(struct MHD_Daemon *d)
{
    for (struct conn *c = waiting; c != NULL; c = c->next)
        c->due_ns = 0;
    resume_due();
    mhd.run_wait(d, 0);
    mhd.stop(d);
    __atomic_store_n(&listen_fd, -1, __ATOMIC_RELAXED);
    __atomic_store_n(&running, false, __ATOMIC_RELEASE);
}

static void *
listener_main(void *arg)
{
    (void)arg;
    /* Fenced for life: nothing this thread allocates is the host's. */
    hp_fence_enter();
    if (load_mhd() != 0)
        goto fail;
    struct MHD_Daemon *d = mhd.start(
        HP_MHD_USE_EPOLL | HP_MHD_ALLOW_SUSPEND_RESUME, 0, NULL, NULL,
        on_access, NULL,
        HP_MHD_OPTION_LISTEN_SOCKET, listen_fd,
        HP_MHD_OPTION_CONNECTION_LIMIT, MAX_CONNECTIONS,
        HP_MHD_OPTION_CONNECTION_TIMEOUT, CONN_TIMEOUT_S,
        HP_MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONN_MEMORY,
        HP_MHD_OPTION_URI_LOG_CALLBACK, on_uri, NULL,
        HP_MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
        HP_MHD_OPTION_END);
    if (d == NULL) {
        hp_log("http: libmicrohttpd refused to start on %s. No listener; "
               "profiling continues", where);
        goto fail;
    }
    while (!__atomic_load_n(&stop_requested, __ATOMIC_ACQUIRE)) {
        int32_t ms = resume_due();
        if (mhd.run_wait(d, ms) != HP_MHD_YES) {
            /* Only on a broken daemon; do not spin. */
            usleep(100000);
        }
    }
    stop_daemon(d);
    return NULL;
fail:
    /* Refuse connections rather than let them hang in the backlog. */
    __atomic_store_n(&running, false, __ATOMIC_RELAXED);
    close(__atomic_exchange_n(&listen_fd, -1, __ATOMIC_RELAXED));
    return NULL;
}

/* Bind a unix socket at path; a stale socket file (nobody accepting) left
 * by an earlier run is replaced, a live one is "in use". */
static int
bind_unix(const char *path, int *err)
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
    if (listen(fd, LISTEN_BACKLOG) != 0) {
        *err = errno;
        close(fd);
        return -1;
    }
    return fd;
}

static int
bind_inet(const struct sockaddr *sa, socklen_t len, int *err)
{
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
                    0);
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
        return bind_unix(a.host, err);
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

static int
start_locked(const char *addr)
{
    if (__atomic_load_n(&running, __ATOMIC_ACQUIRE))
        return HEAPPROF_OK;
    __atomic_store_n(&stop_requested, 0, __ATOMIC_RELEASE);
    bool loopback = true;
    const char *why = NULL;
    int err = 0;
    int fd = open_listener(addr, &loopback, &why, &err);
    if (fd < 0 && why == NULL && err == EADDRINUSE)
        return HEAPPROF_EBUSY; /* the caller (agent.c) says so, or not */
    if (fd < 0) {
        log_no_listener(addr, why, err);
        return why != NULL ? HEAPPROF_EINVAL : HEAPPROF_EIO;
    }
    if (fd >= 0 && !loopback)
        hp_log("http: listening on %s, which is not a loopback address: "
               "anyone who can reach it can read this process's heap "
               "profiles", where);
    listen_fd = fd;

    /* The thread takes no signals meant for the host. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_t t;
    int rc = pthread_create(&t, &attr, listener_main, NULL);
    pthread_attr_destroy(&attr);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        hp_log("http: cannot start the listener thread: %s. No listener; "
               "profiling continues", strerror(rc));
        if (fd >= 0)
            close(fd);
        listen_fd = -1;
        return HEAPPROF_EIO;
    }
    pthread_setname_np(t, "heapprof-http");
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
    pthread_mutex_init(&start_lock, NULL);
}
