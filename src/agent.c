/*
 * The tree agent (agent.h). One thread, one listening socket, one request
 * at a time: the owner asks each child once per profile request and gives
 * up on it after its deadline, so a slow answer here delays only this
 * process's part. seconds=N deltas are kept here under an id (a few at
 * most) until the owner asks for their end.
 */
#define _GNU_SOURCE
#include "agent.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "http.h"
#include "listener.h"
#include "fileio.h"
#include "log.h"
#include "tree.h"

#define AGENT_DELTAS 8        /* seconds=N deltas kept at once */
#define AGENT_IO_TIMEOUT_S 10 /* per request, either direction */
#define DELTA_TTL_NS (4000ull * 1000000000ull) /* > the longest seconds=N */
#define WATCH_MS 1000                          /* how often a watcher checks */

enum watch {
    WATCH_NONE,   /* this process listens, or gave up */
    WATCH_PARENT, /* parent holds the address: take it if parent goes */
    WATCH_FREE,   /* someone holds it: take it when it is free */
};

struct delta {
    unsigned id; /* 0 = free slot */
    struct heapprof_http_pending *p;
    uint64_t expires; /* monotonic ns */
};

/* Written before the thread starts (start-up, or the fork child's single
 * thread); afterwards the agent thread's alone. */
static char addr[HP_ADDR_MAX];
static bool running;       /* atomic once the thread runs */
static int stop_requested; /* atomic: hp_agent_stop was called */
static int sock = -1;
static struct hp_fd_id sock_id = {-1, 0, 0};
static enum watch watch;
static pid_t watched;
static struct delta deltas[AGENT_DELTAS];
static unsigned last_id;
static bool wanted; /* fork child: start at the restart */

static void
send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

/* The request line (NUL-terminated, without '\n'), or false. */
static bool
read_line(int fd, char *line, size_t cap)
{
    size_t n = 0;
    while (n + 1 < cap) {
        ssize_t r = recv(fd, line + n, cap - 1 - n, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return false;
        char *nl = memchr(line + n, '\n', (size_t)r);
        n += (size_t)r;
        if (nl != NULL) {
            *nl = '\0';
            return true;
        }
    }
    return false;
}

/* Keep a pending delta; its id in resp's body (status 202). */
static void
keep_delta(struct heapprof_http_response *resp)
{
    struct heapprof_http_pending *p = resp->pending;
    resp->pending = NULL;
    uint64_t now = hp_now_mono_ns();
    struct delta *slot = NULL;
    for (size_t i = 0; i < AGENT_DELTAS; i++) {
        if (deltas[i].id != 0 && deltas[i].expires <= now) {
            heapprof_http_cancel(deltas[i].p);
            deltas[i].id = 0;
        }
        if (deltas[i].id == 0 && slot == NULL)
            slot = &deltas[i];
    }
    if (slot == NULL) {
        heapprof_http_cancel(p);
        hp_http_error(resp, 503, "heapprof: too many deltas at once");
        return;
    }
    if (++last_id == 0)
        last_id = 1;
    *slot = (struct delta){last_id, p, now + DELTA_TTL_NS};
    char id[16];
    int n = snprintf(id, sizeof(id), "%u", last_id);
    enum heapprof_http_served served = resp->served;
    hp_http_error(resp, 202, "");
    free(resp->body);
    resp->body = malloc((size_t)n);
    resp->body_len = resp->body != NULL ? (size_t)n : 0;
    if (resp->body != NULL)
        memcpy(resp->body, id, (size_t)n);
    resp->served = served;
}

static void
resume_delta(unsigned id, struct heapprof_http_response *resp)
{
    for (size_t i = 0; i < AGENT_DELTAS; i++) {
        if (id != 0 && deltas[i].id == id) {
            deltas[i].id = 0;
            heapprof_http_resume(deltas[i].p, resp);
            return;
        }
    }
    hp_http_error(resp, 404, "heapprof: no such delta");
}

/* Only root and this process's own user may read its profiles. */
static bool
peer_allowed(int fd)
{
    struct ucred cr;
    socklen_t len = sizeof(cr);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) != 0)
        return false;
    return cr.uid == 0 || cr.uid == geteuid() || cr.uid == getuid();
}

static void
serve(int fd)
{
    struct timeval tv = {AGENT_IO_TIMEOUT_S, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    char line[HP_TREE_REQUEST_MAX];
    if (!peer_allowed(fd) || !read_line(fd, line, sizeof(line)))
        return;
    /* A request its asker gave up on while this process could not answer
     * (stopped, busy): no profile for nobody. */
    struct pollfd hup = {fd, POLLRDHUP, 0};
    if (poll(&hup, 1, 0) == 1 && (hup.revents & (POLLRDHUP | POLLHUP)))
        return;
    struct heapprof_http_response resp;
    memset(&resp, 0, sizeof(resp));
    if (strncmp(line, "GET ", 4) == 0) {
        struct heapprof_http_request req;
        memset(&req, 0, sizeof(req));
        req.method = "GET";
        req.method_len = 3;
        req.path = line + 4;
        req.path_len = strlen(line + 4);
        if (heapprof_http_handle(&req, &resp) == HEAPPROF_HTTP_PENDING)
            keep_delta(&resp);
    } else if (strncmp(line, HP_TREE_RESUME " ", 7) == 0) {
        resume_delta((unsigned)strtoul(line + 7, NULL, 10), &resp);
    } else {
        hp_http_error(&resp, 400, "heapprof: bad agent request");
    }
    char head[64];
    int n = snprintf(head, sizeof(head), HP_TREE_MAGIC " %d %d\n", resp.status,
                     (int)resp.served);
    send_all(fd, head, (size_t)n);
    if (resp.body != NULL)
        send_all(fd, resp.body, resp.body_len);
    heapprof_http_response_free(&resp);
}

/* Once a second while watching: take the address if its holder is gone. */
static void
check_address(void)
{
    if (watch == WATCH_PARENT && getppid() == watched)
        return;
    int rc = hp_listener_start(addr);
    if (rc == HEAPPROF_EBUSY) {
        watch = WATCH_FREE; /* the parent is gone but someone holds it */
        return;
    }
    if (rc == HEAPPROF_OK)
        hp_log("http: listening on %s (the process that held it let it "
               "go)",
               addr);
    watch = WATCH_NONE;
}

static void *
agent_main(void *arg)
{
    (void)arg;
    /* Fenced for life: nothing this thread allocates is the host's. */
    hp_fence_enter();
    pthread_setname_np(pthread_self(), "heapprof-tree");
    while (!__atomic_load_n(&stop_requested, __ATOMIC_ACQUIRE)) {
        struct pollfd p = {sock, POLLIN, 0};
        int rc = poll(&p, 1, watch != WATCH_NONE ? WATCH_MS : -1);
        if (rc == 0)
            check_address();
        if (rc <= 0)
            continue;
        /* Checked before accepting: the number may hold the program's own
         * listening socket now, whose clients are not ours to take. */
        if (!hp_fd_id_held(&sock_id)) {
            hp_log("http: the program closed heapprof's process-tree socket "
                   "(closing its descriptors one by one, or dup2 over it); "
                   "this process leaves the merged profile");
            break;
        }
        int fd = accept4(sock, NULL, NULL, SOCK_CLOEXEC);
        if (fd >= 0) {
            serve(fd);
            close(fd);
        }
    }
    /* hp_agent_stop: gone, so a later hp_agent_start launches anew. Not a
     * number the program has taken since. */
    if (hp_fd_id_held(&sock_id))
        close(sock);
    sock = -1;
    __atomic_store_n(&stop_requested, 0, __ATOMIC_RELEASE);
    __atomic_store_n(&running, false, __ATOMIC_RELEASE);
    return NULL;
}

void
hp_agent_stop(void)
{
    if (!__atomic_load_n(&running, __ATOMIC_ACQUIRE))
        return;
    __atomic_store_n(&stop_requested, 1, __ATOMIC_RELEASE);
    /* Wakes the thread's poll (the socket reports a hang-up). */
    shutdown(sock, SHUT_RDWR);
}

/* Bind this process's agent socket and start the thread; quiet on
 * failure (the process is then only missing from the merge). */
static void
launch(void)
{
    struct sockaddr_un sa;
    socklen_t len = hp_tree_addr(getpid(), &sa);
    sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (sock < 0)
        return;
    if (bind(sock, (struct sockaddr *)&sa, len) != 0 || listen(sock, 16) != 0) {
        close(sock);
        sock = -1;
        return;
    }
    hp_fd_id_note(&sock_id, sock);
    /* Named by itself: a fork child's own thread pays no /proc file. */
    if (hp_thread_start(agent_main, NULL, NULL) != 0) {
        close(sock);
        sock = -1;
        return;
    }
    __atomic_store_n(&running, true, __ATOMIC_RELEASE);
}

void
hp_agent_start(const char *a, bool in_use)
{
    /* An agent asked to stop (heapprof detach, or attach replacing one
     * started from the environment) exits at once: wait for it. */
    const struct timespec step = {0, 10 * 1000 * 1000};
    for (int i = 0; i < 300 && __atomic_load_n(&running, __ATOMIC_ACQUIRE) &&
                    __atomic_load_n(&stop_requested, __ATOMIC_ACQUIRE);
         i++)
        nanosleep(&step, NULL);
    if (__atomic_load_n(&running, __ATOMIC_ACQUIRE))
        return;
    snprintf(addr, sizeof(addr), "%s", a);
    watch = WATCH_NONE;
    if (in_use) {
        watched = getppid();
        /* A process started inside a tree (a script chain, a server
         * exec'd by a launcher) is part of it: no line of its own. */
        watch = hp_tree_member_ancestor() != 0 ? WATCH_PARENT : WATCH_FREE;
        if (watch == WATCH_FREE)
            hp_log("http: %s is in use; listening there once it is free, "
                   "profiling continues",
                   addr);
    }
    launch();
}

void
hp_agent_postfork_child(void)
{
    if (!running)
        return;
    /* The parent's thread is gone and its socket is the parent's. Its
     * deltas are forgotten (their memory is a copy of the parent's). */
    close(sock);
    sock = -1;
    running = false;
    memset(deltas, 0, sizeof(deltas));
    watch = WATCH_PARENT;
    watched = getppid();
    wanted = true;
}

void
hp_agent_restart(void)
{
    if (!wanted)
        return;
    wanted = false;
    hp_fence_enter();
    launch();
    hp_fence_exit();
}

bool
hp_agent_pause(void)
{
    if (!__atomic_load_n(&running, __ATOMIC_ACQUIRE))
        return false;
    hp_agent_stop();
    /* It exits as soon as its poll sees the hang-up. */
    const struct timespec step = {0, 1000 * 1000};
    for (int i = 0; i < 3000 && __atomic_load_n(&running, __ATOMIC_ACQUIRE);
         i++)
        nanosleep(&step, NULL);
    return !__atomic_load_n(&running, __ATOMIC_ACQUIRE);
}

void
hp_agent_resume(void)
{
    hp_fence_enter();
    launch();
    hp_fence_exit();
}
