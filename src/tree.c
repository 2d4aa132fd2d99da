/*
 * Process trees, the owner's side (see tree.h). The descendants are found
 * by walking /proc's parent links, not remembered at fork: that costs the
 * forks nothing, sees processes exec'd anywhere below (a launcher's shell
 * script that starts the server) and never holds anything for children
 * that died. They are asked TREE_PARALLEL at a time (bounded fds) within
 * one deadline for the whole request (a stuck child costs at most that),
 * and their answers are merged TREE_BATCH at a time into one growing
 * profile (bounded memory however many children there are).
 *
 * A process that chroots loses /proc: from then on (hp_tree_confine) the
 * children it forks are remembered instead, with the descendants /proc
 * showed just before, and are what it asks.
 */
#define _GNU_SOURCE
#include "tree.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include "buf.h"
#include "http.h"

#define TREE_TIMEOUT_MS 5000 /* one request's collection, all parts */
#define TREE_PARALLEL 32     /* children asked at once */
#define TREE_BATCH 32        /* answers merged at once */
#define TREE_MAX_DEPTH 64    /* ancestors walked */
#define TREE_MAX_ANSWER (256u << 20)
#define TREE_KNOWN_MAX 512 /* processes remembered in a chroot */

/* ------------------------------------------------------------- naming */

socklen_t
hp_tree_addr(pid_t pid, struct sockaddr_un *sa)
{
    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    int n = snprintf(sa->sun_path + 1, sizeof(sa->sun_path) - 1,
                     "heapprof-tree-%ld", (long)pid);
    return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
}

pid_t
hp_tree_ppid(pid_t pid)
{
    char path[48], buf[512];
    snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    /* The command name may hold spaces and parentheses: skip to its end. */
    const char *p = strrchr(buf, ')');
    char state;
    long ppid;
    if (p == NULL || sscanf(p + 1, " %c %ld", &state, &ppid) != 2)
        return -1;
    return (pid_t)ppid;
}

/* Connected (blocking) socket to pid's agent, or -1. */
static int
agent_connect(pid_t pid, bool nonblock)
{
    struct sockaddr_un sa;
    socklen_t len = hp_tree_addr(pid, &sa);
    int fd =
        socket(AF_UNIX,
               SOCK_STREAM | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0), 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&sa, len) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

pid_t
hp_tree_member_ancestor(void)
{
    pid_t p = getppid();
    for (int depth = 0; p > 1 && depth < TREE_MAX_DEPTH; depth++) {
        int fd = agent_connect(p, true);
        if (fd >= 0) {
            close(fd);
            return p;
        }
        p = hp_tree_ppid(p);
    }
    return 0;
}

/* ------------------------------------------------------- descendants */

struct proc {
    pid_t pid, ppid;
};

static int
by_ppid(const void *a, const void *b)
{
    const struct proc *x = a, *y = b;
    return (x->ppid > y->ppid) - (x->ppid < y->ppid);
}

/*
 * The live descendants of this process, nearest first, in a malloc'd
 * array (*out, count returned; 0 and NULL when there are none or on
 * failure). A process that exits meanwhile is simply not answered.
 */
static size_t known_descendants(pid_t **out);

static size_t
descendants(pid_t **out)
{
    *out = NULL;
    DIR *d = opendir("/proc");
    if (d == NULL)
        return known_descendants(out);
    struct proc *v = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        char *end;
        long pid = strtol(de->d_name, &end, 10);
        if (*end != '\0' || pid <= 0)
            continue;
        pid_t pp = hp_tree_ppid((pid_t)pid);
        if (pp <= 0)
            continue;
        if (!hp_grow((void **)&v, &cap, n + 1, sizeof(*v)))
            break;
        v[n].pid = (pid_t)pid;
        v[n].ppid = pp;
        n++;
    }
    closedir(d);
    pid_t *q = n ? malloc((n + 1) * sizeof(*q)) : NULL;
    if (q == NULL) {
        free(v);
        return 0;
    }
    qsort(v, n, sizeof(*v), by_ppid);
    /* Breadth first from this process: children of q[i] are appended. */
    size_t head = 0, tail = 0;
    q[tail++] = getpid();
    while (head < tail && tail <= n) {
        pid_t parent = q[head++];
        size_t lo = 0, hi = n;
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (v[mid].ppid < parent)
                lo = mid + 1;
            else
                hi = mid;
        }
        for (; lo < n && v[lo].ppid == parent && tail <= n; lo++)
            q[tail++] = v[lo].pid;
    }
    free(v);
    memmove(q, q + 1, (tail - 1) * sizeof(*q));
    *out = q;
    return tail - 1;
}

/* ------------------------------------------- remembered, in a chroot */

static pthread_mutex_t known_lock = PTHREAD_MUTEX_INITIALIZER;
static pid_t known[TREE_KNOWN_MAX];
static size_t nknown;
static bool keeping; /* this process chrooted: remember its forks */

static bool
alive(pid_t pid)
{
    return kill(pid, 0) == 0 || errno == EPERM;
}

/* When full, the gone are dropped, else the oldest. known_lock held. */
static void
keep_locked(pid_t pid)
{
    if (nknown == TREE_KNOWN_MAX) {
        size_t j = 0;
        for (size_t i = 0; i < nknown; i++)
            if (alive(known[i]))
                known[j++] = known[i];
        nknown = j;
    }
    if (nknown == TREE_KNOWN_MAX)
        memmove(known, known + 1, --nknown * sizeof(*known));
    known[nknown++] = pid;
}

void
hp_tree_confine(void)
{
    if (__atomic_load_n(&keeping, __ATOMIC_RELAXED))
        return; /* a second chroot: /proc is gone already */
    pid_t *d;
    size_t n = descendants(&d);
    pthread_mutex_lock(&known_lock);
    for (size_t i = 0; i < n; i++)
        keep_locked(d[i]);
    __atomic_store_n(&keeping, true, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&known_lock);
    free(d);
}

void
hp_tree_note_child(pid_t pid)
{
    if (!__atomic_load_n(&keeping, __ATOMIC_RELAXED))
        return;
    pthread_mutex_lock(&known_lock);
    keep_locked(pid);
    pthread_mutex_unlock(&known_lock);
}

void
hp_tree_postfork_child(void)
{
    /* The parent's children are this one's siblings; it keeps its own. */
    pthread_mutex_init(&known_lock, NULL);
    nknown = 0;
}

static size_t
known_descendants(pid_t **out)
{
    pthread_mutex_lock(&known_lock);
    pid_t *q = nknown > 0 ? malloc(nknown * sizeof(*q)) : NULL;
    size_t n = 0;
    for (size_t i = 0; q != NULL && i < nknown; i++)
        if (alive(known[i]))
            q[n++] = known[i];
    pthread_mutex_unlock(&known_lock);
    if (n == 0) {
        free(q);
        q = NULL;
    }
    *out = q;
    return n;
}

/* ------------------------------------------------------------- merging */

/*
 * Parts merged TREE_BATCH at a time into one profile (acc): acc itself
 * is the first part of the next merge, its labels already set.
 */
struct merger {
    enum heapprof_profile which;
    struct hp_buf acc;
    bool have_acc;
    struct heapprof_profile_part parts[TREE_BATCH + 1];
    struct hp_buf bodies[TREE_BATCH];
    size_t n;
    unsigned merged; /* processes in acc */
};

static int
merge_into_acc(struct merger *m, const struct heapprof_profile_part *parts,
               size_t n)
{
    struct hp_buf out = {0};
    struct heapprof_sink sink = hp_buf_sink(&out);
    int rc = heapprof_profile_merge(parts, n, m->which, &sink);
    if (rc != HEAPPROF_OK || out.oom) {
        hp_buf_free(&out);
        return rc;
    }
    hp_buf_free(&m->acc);
    m->acc = out;
    m->have_acc = true;
    return HEAPPROF_OK;
}

static void
merger_flush(struct merger *m)
{
    if (m->n == 0)
        return;
    size_t k = 0;
    struct heapprof_profile_part parts[TREE_BATCH + 1];
    if (m->have_acc)
        parts[k++] = (struct heapprof_profile_part){m->acc.p, m->acc.len, NULL,
                                                    NULL,     0,          0};
    memcpy(parts + k, m->parts, m->n * sizeof(parts[0]));
    if (merge_into_acc(m, parts, k + m->n) == HEAPPROF_OK) {
        m->merged += (unsigned)m->n;
    } else {
        /* One bad answer must not lose the others: one at a time. */
        for (size_t i = 0; i < m->n; i++) {
            k = 0;
            if (m->have_acc)
                parts[k++] = parts[0];
            parts[k++] = m->parts[i];
            if (merge_into_acc(m, parts, k) == HEAPPROF_OK) {
                m->merged++;
                parts[0] = (struct heapprof_profile_part){
                    m->acc.p, m->acc.len, NULL, NULL, 0, 0};
            }
        }
    }
    for (size_t i = 0; i < m->n; i++)
        hp_buf_free(&m->bodies[i]);
    m->n = 0;
}

/* Add body (taken) as pid's part. */
static void
merger_add(struct merger *m, struct hp_buf *body, pid_t pid)
{
    if (m->n == TREE_BATCH)
        merger_flush(m);
    m->bodies[m->n] = *body;
    memset(body, 0, sizeof(*body));
    m->parts[m->n] = (struct heapprof_profile_part){
        m->bodies[m->n].p, m->bodies[m->n].len, "pid", NULL, pid, 0};
    m->n++;
}

static void
merger_free(struct merger *m)
{
    for (size_t i = 0; i < m->n; i++)
        hp_buf_free(&m->bodies[i]);
    hp_buf_free(&m->acc);
}

/* ---------------------------------------------------------- collecting */

struct ask {
    pid_t pid;
    int fd;
    struct hp_buf in;
};

/* A finished answer: "HPT1 status served\n" then the body. */
struct answer {
    pid_t pid;
    int status;
    int served;
    struct hp_buf body;
};

typedef void (*answer_fn)(void *ctx, struct answer *a);

static bool
ask_start(struct ask *a, pid_t pid, const char *line, size_t len)
{
    a->pid = pid;
    memset(&a->in, 0, sizeof(a->in));
    a->fd = agent_connect(pid, true);
    if (a->fd < 0)
        return false;
    /* A few bytes into an empty socket buffer: never short. */
    if (send(a->fd, line, len, MSG_NOSIGNAL) != (ssize_t)len) {
        close(a->fd);
        a->fd = -1;
        return false;
    }
    return true;
}

/* Parse a complete answer; false when malformed. */
static bool
answer_parse(struct ask *k, struct answer *out)
{
    char *nl = memchr(k->in.p, '\n', k->in.len);
    if (nl == NULL)
        return false;
    *nl = '\0';
    if (sscanf(k->in.p, HP_TREE_MAGIC " %d %d", &out->status, &out->served) !=
        2)
        return false;
    size_t skip = (size_t)(nl + 1 - k->in.p);
    memmove(k->in.p, nl + 1, k->in.len - skip);
    k->in.len -= skip;
    out->pid = k->pid;
    out->body = k->in;
    memset(&k->in, 0, sizeof(k->in));
    return true;
}

/* Read what is there; true when the ask is over (answered or failed). */
static bool
ask_read(struct ask *k, answer_fn fn, void *ctx)
{
    char buf[65536];
    for (;;) {
        ssize_t n = recv(k->fd, buf, sizeof(buf), 0);
        if (n > 0) {
            hp_buf_put(&k->in, buf, (size_t)n);
            if (k->in.oom || k->in.len > TREE_MAX_ANSWER)
                return true;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return false;
        if (n == 0 && k->in.len > 0) {
            struct answer a;
            if (answer_parse(k, &a))
                fn(ctx, &a);
        }
        return true;
    }
}

static void
ask_end(struct ask *k)
{
    if (k->fd >= 0)
        close(k->fd);
    k->fd = -1;
    hp_buf_free(&k->in);
}

/*
 * Ask every pid in pids for uri (or, with ids, to finish its delta
 * ids[i]), TREE_PARALLEL at a time, until TREE_TIMEOUT_MS from now; each
 * complete answer goes to fn (which owns its body).
 */
static void
collect(const pid_t *pids, const unsigned *ids, size_t n, const char *uri,
        answer_fn fn, void *ctx)
{
    uint64_t deadline = hp_now_mono_ns() + TREE_TIMEOUT_MS * 1000000ull;
    char line[HP_TREE_REQUEST_MAX];
    int len = snprintf(line, sizeof(line), "GET %s\n", uri);
    if (len < 0 || (size_t)len >= sizeof(line))
        return;
    struct ask asks[TREE_PARALLEL];
    struct pollfd pfd[TREE_PARALLEL];
    size_t active = 0, next = 0;
    for (;;) {
        while (active < TREE_PARALLEL && next < n) {
            if (ids != NULL)
                len = snprintf(line, sizeof(line), HP_TREE_RESUME " %u\n",
                               ids[next]);
            if (ask_start(&asks[active], pids[next++], line, (size_t)len))
                active++;
        }
        if (active == 0)
            return;
        uint64_t now = hp_now_mono_ns();
        if (now >= deadline)
            break;
        for (size_t i = 0; i < active; i++)
            pfd[i] = (struct pollfd){asks[i].fd, POLLIN, 0};
        int ms = (int)((deadline - now + 999999u) / 1000000u);
        if (poll(pfd, active, ms) < 0 && errno != EINTR)
            break;
        for (size_t i = 0; i < active;) {
            if (pfd[i].revents != 0 && ask_read(&asks[i], fn, ctx)) {
                ask_end(&asks[i]);
                asks[i] = asks[--active];
                pfd[i] = pfd[active];
                continue;
            }
            i++;
        }
    }
    for (size_t i = 0; i < active; i++)
        ask_end(&asks[i]);
}

/* ------------------------------------------------------------- queries */

/* The value of key in query q (first one), as a positive pid. 0 when the
 * key is absent, -1 when its value is not a pid. */
static long
query_pid(const char *q)
{
    for (const char *p = q; p != NULL && *p != '\0';) {
        const char *amp = strchr(p, '&');
        size_t n = amp ? (size_t)(amp - p) : strlen(p);
        if (n > 4 && strncmp(p, "pid=", 4) == 0) {
            long long v;
            char num[24];
            if (n - 4 >= sizeof(num))
                return -1;
            memcpy(num, p + 4, n - 4);
            num[n - 4] = '\0';
            if (!hp_query_parse_int(num, &v) || v <= 0 || v > 0x7fffffff)
                return -1;
            return (long)v;
        }
        if (n == 3 && strncmp(p, "pid", 3) == 0)
            return -1;
        p = amp ? amp + 1 : NULL;
    }
    return 0;
}

/* path (up to '?') and query without the keys named in drop (NULL
 * terminated) into out; false if it does not fit. */
static bool
uri_without(const char *path, size_t plen, const char *q,
            const char *const *drop, char *out, size_t cap)
{
    if (plen >= cap)
        return false;
    memcpy(out, path, plen);
    size_t o = plen;
    char sep = '?';
    for (const char *p = q; p != NULL && *p != '\0';) {
        const char *amp = strchr(p, '&');
        size_t n = amp ? (size_t)(amp - p) : strlen(p);
        bool keep = n > 0;
        for (const char *const *d = drop; keep && *d != NULL; d++) {
            size_t dl = strlen(*d);
            if (n >= dl && strncmp(p, *d, dl) == 0 && (n == dl || p[dl] == '='))
                keep = false;
        }
        if (keep) {
            if (o + 1 + n >= cap)
                return false;
            out[o++] = sep;
            memcpy(out + o, p, n);
            o += n;
            sep = '&';
        }
        p = amp ? amp + 1 : NULL;
    }
    out[o] = '\0';
    return true;
}

static enum heapprof_profile
which_of(int served)
{
    return served == HEAPPROF_HTTP_SERVED_ALLOCS ? HEAPPROF_PROFILE_ALLOCS
                                                 : HEAPPROF_PROFILE_HEAP;
}

/* ------------------------------------------------------------ handling */

/* A delta over the tree: this process's own, and each child's kept in
 * that child (its agent holds it under an id until asked to finish it). */
struct hp_tree_pending {
    struct heapprof_http_pending *own;
    pid_t only; /* ?pid=N of another process */
    enum heapprof_profile which;
    pid_t *pids;   /* the children that started one */
    unsigned *ids; /* and its id in each */
    size_t n;
};

struct gather {
    struct merger *m;          /* profiles merged here, or */
    struct answer one;         /* the one answer of a proxy */
    struct hp_tree_pending *p; /* deltas started, with their ids */
};

static void
on_answer(void *ctx, struct answer *a)
{
    struct gather *g = ctx;
    if (g->p != NULL) {
        unsigned id;
        hp_buf_put(&a->body, "", 1);
        if (a->status == 202 && !a->body.oom &&
            sscanf(a->body.p, "%u", &id) == 1) {
            g->p->pids[g->p->n] = a->pid;
            g->p->ids[g->p->n++] = id;
        }
        hp_buf_free(&a->body);
    } else if (g->m == NULL) {
        hp_buf_free(&g->one.body);
        g->one = *a;
    } else if (a->status == 200 && a->served != HEAPPROF_HTTP_SERVED_OTHER) {
        merger_add(g->m, &a->body, a->pid);
    } else {
        hp_buf_free(&a->body);
    }
}

/* The targets: pid only if it is a descendant, or all of them. */
static size_t
targets(pid_t only, pid_t **out)
{
    size_t n = descendants(out);
    if (only == 0)
        return n;
    for (size_t i = 0; i < n; i++) {
        if ((*out)[i] == only) {
            (*out)[0] = only;
            return 1;
        }
    }
    free(*out);
    *out = NULL;
    return 0;
}

/* resp becomes an error answer; what it held (a body, a pending delta)
 * is released first. */
static void
set_error(struct heapprof_http_response *resp, int status, const char *msg)
{
    heapprof_http_response_free(resp);
    hp_http_error(resp, status, msg);
}

static void
not_in_tree(struct heapprof_http_response *resp)
{
    set_error(resp, 404,
              "pid: no process with that pid runs heapprof "
              "under this one");
}

/* Replace resp's body by m's merged profile (500 when it failed). */
static void
finish_merge(struct merger *m, struct heapprof_http_response *resp)
{
    merger_flush(m);
    if (!m->have_acc) {
        set_error(resp, 500,
                  "heapprof: merging the processes' "
                  "profiles failed");
    } else {
        free(resp->body);
        resp->body = m->acc.p;
        resp->body_len = m->acc.len;
        memset(&m->acc, 0, sizeof(m->acc));
    }
    merger_free(m);
}

/* resp's own profile (taken) as this process's part, unless only names
 * another process. */
static void
add_own(struct merger *m, pid_t only, struct heapprof_http_response *resp)
{
    if (only != 0)
        return;
    struct hp_buf own = {resp->body, resp->body_len, resp->body_len, false};
    resp->body = NULL;
    merger_add(m, &own, getpid());
}

/* ?pid=N of another process, not a profile: its answer in resp. */
static void
proxy_one(pid_t only, const char *uri, struct heapprof_http_response *resp)
{
    pid_t *pids;
    if (targets(only, &pids) == 0)
        return not_in_tree(resp);
    free(pids);
    struct gather g = {0};
    collect(&only, NULL, 1, uri, on_answer, &g);
    struct hp_buf *b = &g.one.body;
    if (g.one.pid == 0) {
        set_error(resp, 504,
                  "heapprof: that process did not answer in "
                  "time");
    } else if (g.one.status != resp->status) {
        /* An error of its own: text, one line. */
        while (b->len > 0 && b->p[b->len - 1] == '\n')
            b->len--;
        hp_buf_put(b, "", 1);
        set_error(resp, g.one.status, !b->oom ? b->p : "heapprof: error");
    } else {
        free(resp->body);
        resp->body = b->p;
        resp->body_len = b->len;
        memset(b, 0, sizeof(*b));
    }
    hp_buf_free(b);
}

/* A profile from this process (resp, taken) and the targets, merged. */
static void
merge_profiles(pid_t only, const char *uri, struct heapprof_http_response *resp)
{
    pid_t *pids;
    size_t n = targets(only, &pids);
    if (only != 0 && n == 0)
        return not_in_tree(resp);
    struct merger m = {.which = which_of(resp->served)};
    add_own(&m, only, resp);
    struct gather g = {.m = &m};
    collect(pids, NULL, n, uri, on_answer, &g);
    free(pids);
    finish_merge(&m, resp);
}

/* seconds=N: every target starts its own delta; resp's pending is ours. */
static int
start_delta(pid_t only, const char *uri, struct heapprof_http_response *resp,
            struct hp_tree_pending **pending)
{
    pid_t *pids;
    size_t n = targets(only, &pids);
    if (only != 0 && n == 0)
        return not_in_tree(resp), HEAPPROF_OK;
    struct hp_tree_pending *p = calloc(1, sizeof(*p));
    unsigned *ids = n > 0 ? malloc(n * sizeof(*ids)) : NULL;
    pid_t *started = n > 0 ? malloc(n * sizeof(*started)) : NULL;
    if (p == NULL || (n > 0 && (ids == NULL || started == NULL))) {
        free(p), free(ids), free(started), free(pids);
        set_error(resp, 503, "heapprof: out of memory");
        return HEAPPROF_OK;
    }
    p->own = resp->pending;
    resp->pending = NULL;
    p->only = only;
    p->which = which_of(resp->served);
    p->pids = started;
    p->ids = ids;
    struct gather g = {.p = p};
    collect(pids, NULL, n, uri, on_answer, &g);
    free(pids);
    *pending = p;
    return HEAPPROF_HTTP_PENDING;
}

int
hp_tree_handle(const struct heapprof_http_request *req,
               struct heapprof_http_response *resp,
               struct hp_tree_pending **pending)
{
    *pending = NULL;
    memset(resp, 0, sizeof(*resp));
    const char *path = req->path, *q = req->query;
    size_t plen = req->path_len, qlen = req->query_len;
    const char *qm = q == NULL ? memchr(path, '?', plen) : NULL;
    if (qm != NULL) {
        q = qm + 1;
        qlen = (size_t)(path + plen - q);
        plen = (size_t)(qm - path);
    }
    char qs[HP_TREE_REQUEST_MAX], local[HP_TREE_REQUEST_MAX];
    static const char *const no_pid[] = {"pid", NULL};
    if (qlen >= sizeof(qs) ||
        (memcpy(qs, q != NULL ? q : "", qlen), qs[qlen] = '\0',
         !uri_without(path, plen, qs, no_pid, local, sizeof(local)))) {
        set_error(resp, 414, "request URI too long");
        return HEAPPROF_OK;
    }
    long only = query_pid(qs);
    if (only < 0) {
        set_error(resp, 400, "pid: not a process id");
        return HEAPPROF_OK;
    }
    struct heapprof_http_request r = *req;
    r.path = local;
    r.path_len = strlen(local);
    r.query = NULL;
    r.query_len = 0;
    int rc = heapprof_http_handle(&r, resp);
    if (rc < 0 || only == getpid())
        return rc;
    if (rc == HEAPPROF_HTTP_PENDING)
        return start_delta((pid_t)only, local, resp, pending);
    if (resp->served != HEAPPROF_HTTP_SERVED_OTHER && resp->status == 200)
        merge_profiles((pid_t)only, local, resp);
    else if (only != 0 && strcmp(req->method, "GET") == 0)
        proxy_one((pid_t)only, local, resp);
    else if (only != 0)
        set_error(resp, 400, "pid: selects a process for GET requests");
    return HEAPPROF_OK;
}

void
hp_tree_resume(struct hp_tree_pending *p, struct heapprof_http_response *resp)
{
    heapprof_http_resume(p->own, resp);
    p->own = NULL;
    if (resp->status == 200) {
        struct merger m = {.which = p->which};
        add_own(&m, p->only, resp);
        struct gather g = {.m = &m};
        collect(p->pids, p->ids, p->n, "", on_answer, &g);
        finish_merge(&m, resp);
    }
    hp_tree_cancel(p);
}

void
hp_tree_cancel(struct hp_tree_pending *p)
{
    if (p == NULL)
        return;
    heapprof_http_cancel(p->own);
    free(p->pids);
    free(p->ids);
    free(p);
}
