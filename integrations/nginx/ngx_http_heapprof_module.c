/*
 * ngx_http_heapprof_module: pprof heap profiles of nginx's own workers,
 * without LD_PRELOAD. Each worker turns heapprof on in init_process
 * (heapprof_attach() points the malloc family of the loaded objects at
 * heapprof) and reads requests for its profile from a FIFO named after its
 * pid in heapprof_temp_path. A location with "heapprof;" answers through
 * heapprof's HTTP handler API; for the heap and allocs profiles the worker
 * that got the request writes a request id into every other worker's FIFO,
 * collects the profiles they write next to it with a timer (never
 * blocking), and merges them, labelling each sample with its worker's pid.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <ngx_channel.h>

#include <dirent.h>

#include <heapprof.h>


/* Milliseconds between checks for the other workers' profiles. */
#define NGX_HTTP_HEAPPROF_POLL        10

/* heapprof_set_rate() accepts at most 2^40. */

/* Largest POST body (/symbol) read from a temporary file. */
#define NGX_HTTP_HEAPPROF_MAX_BODY    (1024 * 1024)

/* Leftover profile files older than this (seconds) are removed. */
#define NGX_HTTP_HEAPPROF_STALE       300

#define NGX_HTTP_HEAPPROF_COLLECT     1
#define NGX_HTTP_HEAPPROF_SLEEP       2


typedef struct {
    ngx_flag_t                     enabled;
    size_t                         rate;
    ngx_str_t                      snapshot_dir;
    time_t                         snapshot_interval;
    ngx_int_t                      snapshot_keep;
    ngx_msec_t                     collect_timeout;
    ngx_path_t                    *temp_path;
} ngx_http_heapprof_main_conf_t;


typedef struct {
    ngx_pid_t                      pid;
    ngx_uint_t                     done;
    u_char                        *data;
    size_t                         len;
} ngx_http_heapprof_peer_t;


/* A directory read with getdents64 (ngx_http_heapprof_dir_next). */
typedef struct {
    int                            fd;
    size_t                         pos;
    size_t                         len;
    u_char                         buf[4096]
                                       __attribute__((aligned(8)));
} ngx_http_heapprof_dir_t;


typedef struct {
    ngx_http_request_t            *request;
    ngx_event_t                    timer;
    ngx_uint_t                     phase;
    enum heapprof_profile          which;
    const char                    *name;        /* "heap" or "allocs" */
    ngx_pid_t                      only;        /* ?pid=N; 0: all workers */
    ngx_msec_t                     seconds;     /* delta length; 0: none */
    ngx_msec_t                     started;
    ngx_msec_t                     deadline;
    uint64_t                       reqid;
    ngx_array_t                   *peers;       /* the current collection */
    ngx_array_t                   *base;        /* a delta's first one */
} ngx_http_heapprof_ctx_t;


/* Output of heapprof's sinks: a chain of pool buffers. */
typedef struct {
    ngx_pool_t                    *pool;
    ngx_chain_t                   *first;
    ngx_chain_t                   *last;
    size_t                         size;
} ngx_http_heapprof_out_t;


static ngx_int_t ngx_http_heapprof_handler(ngx_http_request_t *r);
static void ngx_http_heapprof_body_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_heapprof_serve(ngx_http_request_t *r,
    u_char *body, size_t body_len);
static void ngx_http_heapprof_request(ngx_http_request_t *r, u_char *body,
    size_t body_len, struct heapprof_http_request *req);
static ngx_int_t ngx_http_heapprof_send_api(ngx_http_request_t *r,
    struct heapprof_http_response *resp);
static ngx_int_t ngx_http_heapprof_send(ngx_http_request_t *r,
    ngx_uint_t status, const char *type, ngx_chain_t *body, size_t len);
static ngx_int_t ngx_http_heapprof_send_text(ngx_http_request_t *r,
    ngx_uint_t status, const char *text);
static ngx_int_t ngx_http_heapprof_add_header(ngx_http_request_t *r,
    const char *name, const char *value);
static ngx_int_t ngx_http_heapprof_start_multi(ngx_http_request_t *r,
    ngx_http_heapprof_ctx_t *ctx, u_char *own, size_t own_len);
static ngx_int_t ngx_http_heapprof_collect_start(ngx_http_heapprof_ctx_t *ctx,
    u_char *own, size_t own_len);
static ngx_uint_t ngx_http_heapprof_collect_poll(
    ngx_http_heapprof_ctx_t *ctx);
static ngx_int_t ngx_http_heapprof_finish(ngx_http_heapprof_ctx_t *ctx);
static void ngx_http_heapprof_timer_handler(ngx_event_t *ev);
static void ngx_http_heapprof_cleanup(void *data);
static int ngx_http_heapprof_sink_write(void *ctx, const void *data,
    size_t len);
static u_char *ngx_http_heapprof_flatten(ngx_pool_t *pool,
    ngx_http_heapprof_out_t *out);
static u_char *ngx_http_heapprof_own_profile(ngx_http_request_t *r,
    enum heapprof_profile which, size_t *len);
static void ngx_http_heapprof_file_name(u_char *buf, size_t size,
    ngx_pid_t pid, uint64_t reqid);

static ngx_int_t ngx_http_heapprof_init_process(ngx_cycle_t *cycle);
static void ngx_http_heapprof_exit_process(ngx_cycle_t *cycle);
static void ngx_http_heapprof_fifo_handler(ngx_event_t *ev);

static void *ngx_http_heapprof_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_heapprof_init_main_conf(ngx_conf_t *cf, void *conf);
static char *ngx_http_heapprof(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_heapprof_set_rate(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_heapprof_check_interval(ngx_conf_t *cf, void *post,
    void *data);
static char *ngx_http_heapprof_check_keep(ngx_conf_t *cf, void *post,
    void *data);


static ngx_conf_post_t  ngx_http_heapprof_interval_post =
    { ngx_http_heapprof_check_interval };

static ngx_conf_post_t  ngx_http_heapprof_keep_post =
    { ngx_http_heapprof_check_keep };


static ngx_command_t  ngx_http_heapprof_commands[] = {

    { ngx_string("heapprof"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_heapprof,
      0,
      0,
      NULL },

    { ngx_string("heapprof_enabled"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_heapprof_main_conf_t, enabled),
      NULL },

    { ngx_string("heapprof_rate"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_heapprof_set_rate,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_heapprof_main_conf_t, rate),
      NULL },

    { ngx_string("heapprof_snapshot_dir"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_heapprof_main_conf_t, snapshot_dir),
      NULL },

    { ngx_string("heapprof_snapshot_interval"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_heapprof_main_conf_t, snapshot_interval),
      &ngx_http_heapprof_interval_post },

    { ngx_string("heapprof_snapshot_keep"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_heapprof_main_conf_t, snapshot_keep),
      &ngx_http_heapprof_keep_post },

    { ngx_string("heapprof_collect_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_heapprof_main_conf_t, collect_timeout),
      NULL },

    { ngx_string("heapprof_temp_path"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_path_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_heapprof_main_conf_t, temp_path),
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_heapprof_module_ctx = {
    NULL,                                  /* preconfiguration */
    NULL,                                  /* postconfiguration */

    ngx_http_heapprof_create_main_conf,    /* create main configuration */
    ngx_http_heapprof_init_main_conf,      /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    NULL,                                  /* create location configuration */
    NULL                                   /* merge location configuration */
};


ngx_module_t  ngx_http_heapprof_module = {
    NGX_MODULE_V1,
    &ngx_http_heapprof_module_ctx,         /* module context */
    ngx_http_heapprof_commands,            /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_heapprof_init_process,        /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_heapprof_exit_process,        /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_path_init_t  ngx_http_heapprof_temp_path = {
    ngx_string("heapprof_temp"), { 0, 0, 0 }
};


/* Per worker process: set in init_process, read by handlers. */
static ngx_str_t         ngx_http_heapprof_dir;     /* NUL-terminated */
static ngx_uint_t        ngx_http_heapprof_fifo;    /* FIFO is listening */
static ngx_uint_t        ngx_http_heapprof_attached;
static uint32_t          ngx_http_heapprof_seq;


/* ------------------------------------------------------------ requests */


static ngx_int_t
ngx_http_heapprof_handler(ngx_http_request_t *r)
{
    ngx_int_t  rc;

    if (r->method == NGX_HTTP_POST) {
        /* /symbol takes the addresses in the body. */
        r->request_body_in_single_buf = 1;

        rc = ngx_http_read_client_request_body(r,
                                            ngx_http_heapprof_body_handler);
        if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
            return rc;
        }

        return NGX_DONE;
    }

    rc = ngx_http_discard_request_body(r);

    if (rc != NGX_OK) {
        return rc;
    }

    return ngx_http_heapprof_serve(r, NULL, 0);
}


static void
ngx_http_heapprof_body_handler(ngx_http_request_t *r)
{
    u_char       *body, *p;
    size_t        len;
    ssize_t       n;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    len = 0;

    if (r->request_body != NULL) {
        for (cl = r->request_body->bufs; cl; cl = cl->next) {
            b = cl->buf;
            len += b->in_file ? (size_t) (b->file_last - b->file_pos)
                              : (size_t) (b->last - b->pos);
        }
    }

    if (len > NGX_HTTP_HEAPPROF_MAX_BODY) {
        ngx_http_finalize_request(r, NGX_HTTP_REQUEST_ENTITY_TOO_LARGE);
        return;
    }

    body = ngx_pnalloc(r->pool, len + 1);
    if (body == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    p = body;

    if (r->request_body != NULL) {
        for (cl = r->request_body->bufs; cl; cl = cl->next) {
            b = cl->buf;

            if (b->in_file) {
                n = ngx_read_file(b->file, p, b->file_last - b->file_pos,
                                  b->file_pos);
                if (n != b->file_last - b->file_pos) {
                    ngx_http_finalize_request(r,
                                             NGX_HTTP_INTERNAL_SERVER_ERROR);
                    return;
                }

                p += n;

            } else {
                p = ngx_cpymem(p, b->pos, b->last - b->pos);
            }
        }
    }

    ngx_http_finalize_request(r, ngx_http_heapprof_serve(r, body, len));
}


static void
ngx_http_heapprof_request(ngx_http_request_t *r, u_char *body,
    size_t body_len, struct heapprof_http_request *req)
{
    ngx_http_core_loc_conf_t  *clcf;

    ngx_memzero(req, sizeof(*req));

    req->method = (const char *) r->method_name.data;
    req->method_len = r->method_name.len;
    req->path = (const char *) r->uri.data;
    req->path_len = r->uri.len;

    /* Never NULL: the handler would look for a '?' in the decoded path. */
    req->query = r->args.len ? (const char *) r->args.data : "";
    req->query_len = r->args.len;

    req->body = (const char *) body;
    req->body_len = body_len;

    /*
     * The location's prefix is the mount, with its slash even when the
     * location was written without one ("location /debug/pprof").
     */
    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    if (!clcf->exact_match && clcf->name.len > 0
        && r->uri.len >= clcf->name.len
        && ngx_strncmp(r->uri.data, clcf->name.data, clcf->name.len) == 0)
    {
        req->mount = (const char *) r->uri.data;
        req->mount_len = clcf->name.len;

        if (clcf->name.data[clcf->name.len - 1] != '/'
            && r->uri.len > clcf->name.len
            && r->uri.data[clcf->name.len] == '/')
        {
            req->mount_len++;
        }
    }
}


/*
 * The "pid" argument: 0 when absent, -1 (and a 400 sent by the caller)
 * when it is not a process id.
 */
static ngx_int_t
ngx_http_heapprof_pid_arg(ngx_http_request_t *r)
{
    ngx_int_t  pid;
    ngx_str_t  value;

    if (ngx_http_arg(r, (u_char *) "pid", 3, &value) != NGX_OK) {
        return 0;
    }

    pid = ngx_atoi(value.data, value.len);

    if (pid == NGX_ERROR || pid <= 0 || pid > 0x7fffffff) {
        return -1;
    }

    return pid;
}


/*
 * The context of a heap or allocs request answered by every worker (the
 * one named by pid alone when pid is not 0), freed with the request; NULL
 * when out of memory.
 */
static ngx_http_heapprof_ctx_t *
ngx_http_heapprof_ctx_create(ngx_http_request_t *r, ngx_int_t pid,
    int served)
{
    ngx_pool_cleanup_t       *cln;
    ngx_http_heapprof_ctx_t  *ctx;

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_heapprof_ctx_t));
    if (ctx == NULL) {
        return NULL;
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NULL;
    }

    cln->handler = ngx_http_heapprof_cleanup;
    cln->data = ctx;

    ctx->request = r;
    ctx->timer.handler = ngx_http_heapprof_timer_handler;
    ctx->timer.data = ctx;
    ctx->timer.log = r->connection->log;
    ctx->only = (ngx_pid_t) pid;
    ctx->started = ngx_current_msec;

    if (served == HEAPPROF_HTTP_SERVED_ALLOCS) {
        ctx->which = HEAPPROF_PROFILE_ALLOCS;
        ctx->name = "allocs";

    } else {
        ctx->which = HEAPPROF_PROFILE_HEAP;
        ctx->name = "heap";
    }

    return ctx;
}


/*
 * This worker's part of a profile answered by every worker, in the
 * request's pool: the profile the handler encoded, or for seconds=N
 * (HEAPPROF_HTTP_PENDING) the first of the two collected at both ends.
 * Frees *resp; NULL when out of memory.
 */
static u_char *
ngx_http_heapprof_own_part(ngx_http_request_t *r,
    ngx_http_heapprof_ctx_t *ctx, int hrc,
    struct heapprof_http_response *resp, size_t *len)
{
    u_char  *own;

    if (hrc == HEAPPROF_HTTP_PENDING) {
        ctx->seconds = resp->delay_ms;
        heapprof_http_response_free(resp);    /* and resp->pending */

        return ngx_http_heapprof_own_profile(r, ctx->which, len);
    }

    *len = resp->body_len;
    own = ngx_pnalloc(r->pool, *len + 1);

    if (own != NULL) {
        ngx_memcpy(own, resp->body, *len);
    }

    heapprof_http_response_free(resp);

    return own;
}


static ngx_int_t
ngx_http_heapprof_serve(ngx_http_request_t *r, u_char *body, size_t body_len)
{
    int                              hrc;
    u_char                          *own;
    size_t                           own_len;
    ngx_int_t                        rc, pid, multi;
    ngx_http_heapprof_ctx_t         *ctx;
    struct heapprof_http_request     req;
    struct heapprof_http_response    resp;
    ngx_http_heapprof_main_conf_t   *hmcf;

    hmcf = ngx_http_get_module_main_conf(r, ngx_http_heapprof_module);

    if (!hmcf->enabled) {
        return ngx_http_heapprof_send_text(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                               "heapprof: profiling is off "
                               "(heapprof_enabled off)\n");
    }

    if (ngx_http_heapprof_attached) {
        /* Objects loaded since (not through dlopen, e.g. by libc for NSS)
         * are patched now; nearly free when nothing was loaded. */
        (void) heapprof_attach();
    }

    pid = ngx_http_heapprof_pid_arg(r);

    if (pid < 0) {
        return ngx_http_heapprof_send_text(r, NGX_HTTP_BAD_REQUEST,
                               "invalid value for \"pid\" - must be the "
                               "process id of a worker\n");
    }

    ngx_http_heapprof_request(r, body, body_len, &req);
    ngx_memzero(&resp, sizeof(resp));

    hrc = heapprof_http_handle(&req, &resp);

    if (hrc != 0 && hrc != HEAPPROF_HTTP_PENDING) {
        heapprof_http_response_free(&resp);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /*
     * The pprof profiles of heap and allocs cover every worker. They are
     * also the only ones seconds=N applies to (HEAPPROF_HTTP_PENDING).
     */
    multi = resp.served == HEAPPROF_HTTP_SERVED_HEAP
            || resp.served == HEAPPROF_HTTP_SERVED_ALLOCS;

    if (pid != 0 && pid != ngx_pid && !multi) {
        heapprof_http_response_free(&resp);
        return ngx_http_heapprof_send_text(r, NGX_HTTP_BAD_REQUEST,
                               "\"pid\" selects a worker for the heap and "
                               "allocs profiles (debug=0) only\n");
    }

    if (!multi) {
        rc = ngx_http_heapprof_send_api(r, &resp);
        heapprof_http_response_free(&resp);
        return rc;
    }

    ctx = ngx_http_heapprof_ctx_create(r, pid, resp.served);
    if (ctx == NULL) {
        heapprof_http_response_free(&resp);    /* and resp.pending */
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    own = ngx_http_heapprof_own_part(r, ctx, hrc, &resp, &own_len);
    if (own == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_heapprof_start_multi(r, ctx, own, own_len);
}


static ngx_int_t
ngx_http_heapprof_start_multi(ngx_http_request_t *r,
    ngx_http_heapprof_ctx_t *ctx, u_char *own, size_t own_len)
{
    ngx_int_t  rc;

    rc = ngx_http_heapprof_collect_start(ctx, own, own_len);

    if (rc == NGX_DECLINED) {
        return ngx_http_heapprof_send_text(r, NGX_HTTP_NOT_FOUND,
                               "no nginx worker with that pid\n");
    }

    if (rc != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->phase = NGX_HTTP_HEAPPROF_COLLECT;

    if (ngx_http_heapprof_collect_poll(ctx) && ctx->seconds == 0) {
        return ngx_http_heapprof_finish(ctx);
    }

    ngx_add_timer(&ctx->timer, NGX_HTTP_HEAPPROF_POLL);
    r->main->count++;

    return NGX_DONE;
}


static void
ngx_http_heapprof_timer_handler(ngx_event_t *ev)
{
    u_char                         *own;
    size_t                          own_len;
    ngx_int_t                       rc;
    ngx_msec_t                      elapsed;
    ngx_connection_t               *c;
    ngx_http_request_t             *r;
    ngx_http_heapprof_ctx_t        *ctx;

    ctx = ev->data;
    r = ctx->request;
    c = r->connection;

    switch (ctx->phase) {

    case NGX_HTTP_HEAPPROF_SLEEP:
        own = ngx_http_heapprof_own_profile(r, ctx->which, &own_len);
        if (own == NULL) {
            rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
            break;
        }

        rc = ngx_http_heapprof_collect_start(ctx, own, own_len);
        if (rc != NGX_OK) {
            rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
            break;
        }

        ctx->phase = NGX_HTTP_HEAPPROF_COLLECT;
        ngx_add_timer(ev, NGX_HTTP_HEAPPROF_POLL);
        return;

    default: /* NGX_HTTP_HEAPPROF_COLLECT */
        if (!ngx_http_heapprof_collect_poll(ctx)
            && (ngx_msec_int_t) (ctx->deadline - ngx_current_msec) > 0)
        {
            ngx_add_timer(ev, NGX_HTTP_HEAPPROF_POLL);
            return;
        }

        if (ctx->seconds != 0 && ctx->base == NULL) {
            /* First end of a delta: wait for the second. */
            ctx->base = ctx->peers;
            ctx->peers = NULL;
            ctx->phase = NGX_HTTP_HEAPPROF_SLEEP;

            elapsed = ngx_current_msec - ctx->started;
            ngx_add_timer(ev, elapsed < ctx->seconds
                              ? ctx->seconds - elapsed : 1);
            return;
        }

        rc = ngx_http_heapprof_finish(ctx);
        break;
    }

    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}


static void
ngx_http_heapprof_cleanup(void *data)
{
    ngx_http_heapprof_ctx_t  *ctx = data;

    if (ctx->timer.timer_set) {
        ngx_del_timer(&ctx->timer);
    }
}


/* This worker's profile now, in one pool buffer. */
static u_char *
ngx_http_heapprof_own_profile(ngx_http_request_t *r,
    enum heapprof_profile which, size_t *len)
{
    struct heapprof_sink     sink;
    ngx_http_heapprof_out_t  out;

    ngx_memzero(&out, sizeof(out));
    out.pool = r->pool;
    sink.write = ngx_http_heapprof_sink_write;
    sink.ctx = &out;

    if (heapprof_write(which, &sink) != HEAPPROF_OK) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "heapprof: cannot encode this worker's profile");
        return NULL;
    }

    *len = out.size;

    return ngx_http_heapprof_flatten(r->pool, &out);
}


/* ---------------------------------------------- collecting from workers */


static void
ngx_http_heapprof_file_name(u_char *buf, size_t size, ngx_pid_t pid,
    uint64_t reqid)
{
    u_char  *p;

    p = ngx_snprintf(buf, size - 1, "%V/%P-%016xL.pb.gz",
                     &ngx_http_heapprof_dir, pid, reqid);
    *p = '\0';
}


/*
 * The exchange directory's entries without opendir(), whose 32 KiB buffer
 * comes from malloc: heapprof samples that malloc, and its own work must
 * never show in nginx's profile. getdents64 fills a buffer on the stack.
 */
static struct dirent64 *
ngx_http_heapprof_dir_next(ngx_http_heapprof_dir_t *dir)
{
    ssize_t           n;
    struct dirent64  *de;

    if (dir->pos >= dir->len) {
        n = getdents64(dir->fd, dir->buf, sizeof(dir->buf));
        if (n <= 0) {
            return NULL;
        }

        dir->pos = 0;
        dir->len = (size_t) n;
    }

    de = (struct dirent64 *) (dir->buf + dir->pos);
    dir->pos += de->d_reclen;

    return de;
}


/*
 * Ask the workers for their profiles: one 8-byte request id written into
 * each FIFO (atomic, below PIPE_BUF). This worker's part is own.
 * NGX_DECLINED when ?pid=N names no worker.
 */
static ngx_int_t
ngx_http_heapprof_peer_add(ngx_http_heapprof_ctx_t *ctx, ngx_pid_t pid,
    u_char *data, size_t len)
{
    ngx_http_heapprof_peer_t  *peer;

    peer = ngx_array_push(ctx->peers);
    if (peer == NULL) {
        return NGX_ERROR;
    }

    peer->pid = pid;
    peer->done = data != NULL;
    peer->data = data;
    peer->len = len;

    return NGX_OK;
}


/*
 * One entry of the exchange directory: a profile nobody collected (its
 * asker gave up) is removed once clearly stale; another worker's fifo
 * (PID.fifo; the one asked for, if any) gets the request id. Returns the
 * pid of the worker asked, 0 when none was.
 */
static ngx_pid_t
ngx_http_heapprof_ask_entry(ngx_http_heapprof_ctx_t *ctx, const char *name)
{
    int           fd;
    u_char       *dot, path[NGX_MAX_PATH];
    ssize_t       n;
    ngx_int_t     pid;
    struct stat   st;

    dot = (u_char *) ngx_strchr(name, '.');
    if (dot == NULL || dot == (u_char *) name) {
        return 0;
    }

    ngx_snprintf(path, sizeof(path) - 1, "%V/%s%Z",
                 &ngx_http_heapprof_dir, name);

    if (ngx_strcmp(dot, ".pb.gz") == 0) {
        if (stat((char *) path, &st) == 0
            && st.st_mtime + NGX_HTTP_HEAPPROF_STALE < ngx_time())
        {
            (void) unlink((char *) path);
        }

        return 0;
    }

    if (ngx_strcmp(dot, ".fifo") != 0) {
        return 0;
    }

    pid = ngx_atoi((u_char *) name, dot - (u_char *) name);

    if (pid == NGX_ERROR || pid == ngx_pid
        || (ctx->only != 0 && pid != ctx->only))
    {
        return 0;
    }

    fd = open((char *) path, O_WRONLY|O_NONBLOCK|O_CLOEXEC);

    if (fd == -1) {
        if (ngx_errno == ENXIO) {
            /* Nobody reads it: the worker is gone. */
            (void) unlink((char *) path);
        }

        return 0;
    }

    n = write(fd, &ctx->reqid, sizeof(ctx->reqid));
    (void) close(fd);

    return n == (ssize_t) sizeof(ctx->reqid) ? (ngx_pid_t) pid : 0;
}


static ngx_int_t
ngx_http_heapprof_collect_start(ngx_http_heapprof_ctx_t *ctx, u_char *own,
    size_t own_len)
{
    ngx_pid_t                        pid;
    struct dirent64                 *de;
    ngx_http_heapprof_dir_t          dir;
    ngx_http_request_t              *r;
    ngx_http_heapprof_main_conf_t   *hmcf;

    r = ctx->request;
    hmcf = ngx_http_get_module_main_conf(r, ngx_http_heapprof_module);

    ctx->peers = ngx_array_create(r->pool, 4,
                                  sizeof(ngx_http_heapprof_peer_t));
    if (ctx->peers == NULL) {
        return NGX_ERROR;
    }

    ctx->reqid = ((uint64_t) ngx_pid << 32) | ++ngx_http_heapprof_seq;
    ctx->deadline = ngx_current_msec + hmcf->collect_timeout;

    if ((ctx->only == 0 || ctx->only == ngx_pid)
        && ngx_http_heapprof_peer_add(ctx, ngx_pid, own, own_len) != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (ctx->only == ngx_pid || !ngx_http_heapprof_fifo) {
        return NGX_OK;
    }

    dir.fd = open((char *) ngx_http_heapprof_dir.data,
                  O_RDONLY|O_DIRECTORY|O_CLOEXEC);
    if (dir.fd == -1) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, ngx_errno,
                      "heapprof: open(\"%V\") failed",
                      &ngx_http_heapprof_dir);
        return ctx->only ? NGX_DECLINED : NGX_OK;
    }

    dir.pos = 0;
    dir.len = 0;

    while ((de = ngx_http_heapprof_dir_next(&dir)) != NULL) {
        pid = ngx_http_heapprof_ask_entry(ctx, de->d_name);

        if (pid != 0
            && ngx_http_heapprof_peer_add(ctx, pid, NULL, 0) != NGX_OK)
        {
            (void) close(dir.fd);
            return NGX_ERROR;
        }
    }

    (void) close(dir.fd);

    if (ctx->only != 0 && ctx->peers->nelts == 0) {
        return NGX_DECLINED;
    }

    return NGX_OK;
}


/* Read the profiles that arrived; 1 when every worker answered. */
static ngx_uint_t
ngx_http_heapprof_collect_poll(ngx_http_heapprof_ctx_t *ctx)
{
    int                        fd;
    u_char                     path[NGX_MAX_PATH];
    ssize_t                    n;
    size_t                     got;
    ngx_uint_t                 i, all;
    struct stat                st;
    ngx_http_heapprof_peer_t  *peer;

    all = 1;
    peer = ctx->peers->elts;

    for (i = 0; i < ctx->peers->nelts; i++) {
        if (peer[i].done) {
            continue;
        }

        ngx_http_heapprof_file_name(path, sizeof(path), peer[i].pid,
                                    ctx->reqid);

        fd = open((char *) path, O_RDONLY|O_CLOEXEC);

        if (fd == -1) {
            if (kill(peer[i].pid, 0) == -1 && ngx_errno == ESRCH) {
                peer[i].done = 1;  /* exited meanwhile */
                continue;
            }

            all = 0;
            continue;
        }

        /* The file appears by rename(): it is complete. */
        peer[i].done = 1;

        if (fstat(fd, &st) == -1 || st.st_size <= 0) {
            (void) close(fd);
            (void) unlink((char *) path);
            continue;
        }

        peer[i].data = ngx_pnalloc(ctx->request->pool, st.st_size);

        for (got = 0; peer[i].data != NULL && got < (size_t) st.st_size;
             got += n)
        {
            n = read(fd, peer[i].data + got, st.st_size - got);
            if (n <= 0) {
                break;
            }
        }

        (void) close(fd);
        (void) unlink((char *) path);

        if (peer[i].data != NULL && got == (size_t) st.st_size) {
            peer[i].len = got;

        } else {
            peer[i].data = NULL;
        }
    }

    return all;
}


/* Merge what was collected and send it. */
/*
 * The parts to merge, in the request's pool: each answering worker's
 * profile, then (seconds=N) each base profile negated. *n gets their
 * number, *answered that of the workers who answered; the file a worker
 * given up on may still write is removed. NULL when out of memory.
 */
static struct heapprof_profile_part *
ngx_http_heapprof_parts(ngx_http_heapprof_ctx_t *ctx, ngx_uint_t *n,
    ngx_uint_t *answered)
{
    u_char                         path[NGX_MAX_PATH];
    ngx_uint_t                     i, j;
    ngx_array_t                   *sets[2];
    ngx_http_heapprof_peer_t      *peer;
    struct heapprof_profile_part  *parts;

    sets[0] = ctx->peers;
    sets[1] = ctx->base;

    *n = ctx->peers->nelts + (ctx->base ? ctx->base->nelts : 0);

    parts = ngx_pcalloc(ctx->request->pool, (*n + 1) * sizeof(*parts));
    if (parts == NULL) {
        return NULL;
    }

    *n = 0;
    *answered = 0;

    for (j = 0; j < 2; j++) {
        if (sets[j] == NULL) {
            continue;
        }

        peer = sets[j]->elts;

        for (i = 0; i < sets[j]->nelts; i++) {
            if (peer[i].data == NULL) {
                if (j == 0 && !peer[i].done) {
                    /* Gave up on it: a late answer must not linger. */
                    ngx_http_heapprof_file_name(path, sizeof(path),
                                                peer[i].pid, ctx->reqid);
                    (void) unlink((char *) path);
                }

                continue;
            }

            if (j == 0) {
                (*answered)++;
            }

            parts[*n].data = peer[i].data;
            parts[*n].len = peer[i].len;
            parts[*n].label_key = "pid";
            parts[*n].label_num = peer[i].pid;
            parts[*n].negate = (j == 1);
            (*n)++;
        }
    }

    return parts;
}


/* The merged profile's headers: its file name, and how many workers are
 * in it out of how many were asked. */
static ngx_int_t
ngx_http_heapprof_merged_headers(ngx_http_heapprof_ctx_t *ctx,
    ngx_uint_t answered)
{
    u_char              *name, *workers;
    ngx_http_request_t  *r;

    r = ctx->request;
    name = ngx_pnalloc(r->pool, 64);
    workers = ngx_pnalloc(r->pool, 64);

    if (name == NULL || workers == NULL) {
        return NGX_ERROR;
    }

    *ngx_snprintf(name, 63, "attachment; filename=\"%s%s\"", ctx->name,
                  ctx->seconds ? "-delta" : "") = '\0';
    *ngx_snprintf(workers, 63, "%ui/%ui", answered, ctx->peers->nelts) = '\0';

    if (ngx_http_heapprof_add_header(r, "Content-Disposition",
                                     (const char *) name) != NGX_OK
        || ngx_http_heapprof_add_header(r, "X-Content-Type-Options",
                                        "nosniff") != NGX_OK
        || ngx_http_heapprof_add_header(r, "X-Heapprof-Workers",
                                        (const char *) workers) != NGX_OK)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_heapprof_finish(ngx_http_heapprof_ctx_t *ctx)
{
    int                            rc;
    ngx_uint_t                     n, answered;
    ngx_http_request_t            *r;
    struct heapprof_sink           sink;
    ngx_http_heapprof_out_t        out;
    struct heapprof_profile_part  *parts;

    r = ctx->request;

    parts = ngx_http_heapprof_parts(ctx, &n, &answered);
    if (parts == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (answered < ctx->peers->nelts) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "heapprof: %ui of %ui workers sent their profile "
                      "within heapprof_collect_timeout",
                      answered, ctx->peers->nelts);
    }

    ngx_memzero(&out, sizeof(out));
    out.pool = r->pool;
    sink.write = ngx_http_heapprof_sink_write;
    sink.ctx = &out;

    rc = heapprof_profile_merge(parts, n, ctx->which, &sink);

    if (rc != HEAPPROF_OK) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "heapprof: merging the workers' profiles failed: %s",
                      heapprof_strerror(rc));
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_http_heapprof_merged_headers(ctx, answered) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_heapprof_send(r, NGX_HTTP_OK, "application/octet-stream",
                                  out.first, out.size);
}


/* --------------------------------------------------------------- output */


static int
ngx_http_heapprof_sink_write(void *data, const void *buf, size_t len)
{
    ngx_http_heapprof_out_t  *out = data;

    size_t        n;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    while (len > 0) {
        cl = out->last;

        if (cl == NULL || cl->buf->last == cl->buf->end) {
            b = ngx_create_temp_buf(out->pool, ngx_max(len, 65536));
            if (b == NULL) {
                return -1;
            }

            cl = ngx_alloc_chain_link(out->pool);
            if (cl == NULL) {
                return -1;
            }

            cl->buf = b;
            cl->next = NULL;

            if (out->last != NULL) {
                out->last->next = cl;

            } else {
                out->first = cl;
            }

            out->last = cl;
        }

        b = cl->buf;
        n = ngx_min(len, (size_t) (b->end - b->last));
        b->last = ngx_cpymem(b->last, buf, n);
        buf = (const u_char *) buf + n;
        len -= n;
        out->size += n;
    }

    return 0;
}


static u_char *
ngx_http_heapprof_flatten(ngx_pool_t *pool, ngx_http_heapprof_out_t *out)
{
    u_char       *data, *p;
    ngx_chain_t  *cl;

    if (out->first != NULL && out->first->next == NULL) {
        return out->first->buf->pos;
    }

    data = ngx_pnalloc(pool, out->size + 1);
    if (data == NULL) {
        return NULL;
    }

    p = data;

    for (cl = out->first; cl; cl = cl->next) {
        p = ngx_cpymem(p, cl->buf->pos, cl->buf->last - cl->buf->pos);
    }

    return data;
}


static ngx_int_t
ngx_http_heapprof_add_header(ngx_http_request_t *r, const char *name,
    const char *value)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    h->key.len = ngx_strlen(name);
    h->key.data = ngx_pnalloc(r->pool, h->key.len);
    h->value.len = ngx_strlen(value);
    h->value.data = ngx_pnalloc(r->pool, h->value.len);

    if (h->key.data == NULL || h->value.data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(h->key.data, name, h->key.len);
    ngx_memcpy(h->value.data, value, h->value.len);

    return NGX_OK;
}


/* A response of heapprof's handler, headers and body copied to the pool. */
static ngx_int_t
ngx_http_heapprof_send_api(ngx_http_request_t *r,
    struct heapprof_http_response *resp)
{
    ngx_uint_t                i;
    const char               *name, *value, *type;
    ngx_http_heapprof_out_t   out;

    type = "text/plain; charset=utf-8";

    for (i = 0; (name = heapprof_http_response_header(resp, i, &value));
         i++)
    {
        if (ngx_strcasecmp((u_char *) name, (u_char *) "Content-Type") == 0) {
            type = value;
            continue;
        }

        if (ngx_strcasecmp((u_char *) name, (u_char *) "Content-Length")
            == 0)
        {
            continue;
        }

        if (ngx_http_heapprof_add_header(r, name, value) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    ngx_memzero(&out, sizeof(out));
    out.pool = r->pool;

    if (resp->body_len > 0
        && ngx_http_heapprof_sink_write(&out, resp->body, resp->body_len)
           != 0)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_heapprof_send(r, resp->status ? resp->status
                                                  : NGX_HTTP_INTERNAL_SERVER_ERROR,
                                  type, out.first, out.size);
}


static ngx_int_t
ngx_http_heapprof_send_text(ngx_http_request_t *r, ngx_uint_t status,
    const char *text)
{
    ngx_http_heapprof_out_t  out;

    ngx_memzero(&out, sizeof(out));
    out.pool = r->pool;

    if (ngx_http_heapprof_sink_write(&out, text, ngx_strlen(text)) != 0) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_heapprof_send(r, status, "text/plain; charset=utf-8",
                                  out.first, out.size);
}


static ngx_int_t
ngx_http_heapprof_send(ngx_http_request_t *r, ngx_uint_t status,
    const char *type, ngx_chain_t *body, size_t len)
{
    ngx_int_t     rc;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    r->headers_out.status = status;
    r->headers_out.content_type.len = ngx_strlen(type);
    r->headers_out.content_type.data = (u_char *) type;
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;
    r->headers_out.content_length_n = len;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    if (body == NULL) {
        b = ngx_calloc_buf(r->pool);
        if (b == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        body = ngx_alloc_chain_link(r->pool);
        if (body == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        body->buf = b;
        body->next = NULL;
    }

    for (cl = body; cl->next; cl = cl->next) { /* void */ }

    cl->buf->last_buf = (r == r->main) ? 1 : 0;
    cl->buf->last_in_chain = 1;

    return ngx_http_output_filter(r, body);
}


/* ------------------------------------------------------ worker process */


/*
 * A fresh worker: what heapprof recorded in the master (only if it was
 * preloaded there) stays, as those blocks are still in this worker's
 * heap; settings come from nginx.conf, and HEAPPROF_* variables passed
 * with the "env" directive override them.
 */
static void
ngx_http_heapprof_start_worker(ngx_cycle_t *cycle,
    ngx_http_heapprof_main_conf_t *hmcf)
{
    int                            rc;
    u_char                        *snap;
    struct heapprof_config         cfg;
    struct heapprof_attach_stats   st;

    heapprof_config_init(&cfg);
    cfg.rate = hmcf->rate;
    cfg.snapshot_interval = (unsigned) hmcf->snapshot_interval;
    cfg.snapshot_keep = (unsigned) hmcf->snapshot_keep;

    if (hmcf->snapshot_dir.len) {
        snap = ngx_pnalloc(cycle->pool, hmcf->snapshot_dir.len + 1);
        if (snap == NULL) {
            return;
        }

        (void) ngx_cpystrn(snap, hmcf->snapshot_dir.data,
                           hmcf->snapshot_dir.len + 1);
        cfg.snapshot_dir = (const char *) snap;
    }

    rc = heapprof_start(&cfg);

    if (rc != HEAPPROF_OK) {
        ngx_log_error(NGX_LOG_ERR, cycle->log, 0,
                      "heapprof: start failed: %s", heapprof_strerror(rc));
        (void) heapprof_set_rate(hmcf->rate);
    }

    rc = heapprof_attach();
    ngx_http_heapprof_attached = (rc == HEAPPROF_OK);

    if (rc != HEAPPROF_OK) {
        ngx_log_error(NGX_LOG_ERR, cycle->log, 0,
                      "heapprof: attach failed, nginx's allocations are not "
                      "profiled: %s", heapprof_strerror(rc));

    } else if (heapprof_attach_stats(&st) == HEAPPROF_OK) {
        ngx_log_error(NGX_LOG_INFO, cycle->log, 0,
                      "heapprof: profiling worker %P at rate %uz: %s "
                      "(%ud GOT slots in %ud objects)", ngx_pid, hmcf->rate,
                      st.state == HEAPPROF_ATTACH_INTERPOSED
                          ? "preloaded" : "attached",
                      st.slots, st.objects);
    }
}


/* The FIFO other workers write profile requests into; without it, a
 * profile covers only the worker that answers. */
static void
ngx_http_heapprof_open_fifo(ngx_cycle_t *cycle,
    ngx_http_heapprof_main_conf_t *hmcf)
{
    int         fd;
    u_char      path[NGX_MAX_PATH];
    ngx_str_t   dir;

    dir = hmcf->temp_path->name;

    ngx_http_heapprof_dir.data = ngx_pnalloc(cycle->pool, dir.len + 1);
    if (ngx_http_heapprof_dir.data == NULL) {
        return;
    }

    (void) ngx_cpystrn(ngx_http_heapprof_dir.data, dir.data, dir.len + 1);
    ngx_http_heapprof_dir.len = dir.len;

    *ngx_snprintf(path, sizeof(path) - 1, "%V/%P.fifo",
                  &ngx_http_heapprof_dir, ngx_pid) = '\0';

    (void) unlink((char *) path);

    if (mkfifo((char *) path, 0600) == -1) {
        ngx_log_error(NGX_LOG_ERR, cycle->log, ngx_errno,
                      "heapprof: mkfifo(\"%s\") failed: profiles will cover "
                      "only the worker that answers", path);
        return;
    }

    /* Read-write, so the FIFO never reports end of file. */
    fd = open((char *) path, O_RDWR|O_NONBLOCK|O_CLOEXEC);

    if (fd == -1) {
        ngx_log_error(NGX_LOG_ERR, cycle->log, ngx_errno,
                      "heapprof: open(\"%s\") failed", path);
        (void) unlink((char *) path);
        return;
    }

    if (ngx_add_channel_event(cycle, fd, NGX_READ_EVENT,
                              ngx_http_heapprof_fifo_handler)
        != NGX_OK)
    {
        (void) close(fd);
        (void) unlink((char *) path);
        return;
    }

    ngx_http_heapprof_fifo = 1;
}


static ngx_int_t
ngx_http_heapprof_init_process(ngx_cycle_t *cycle)
{
    ngx_http_heapprof_main_conf_t  *hmcf;

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    hmcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_heapprof_module);

    if (hmcf == NULL || !hmcf->enabled) {
        return NGX_OK;
    }

    ngx_http_heapprof_start_worker(cycle, hmcf);
    ngx_http_heapprof_open_fifo(cycle, hmcf);

    return NGX_OK;
}


static void
ngx_http_heapprof_exit_process(ngx_cycle_t *cycle)
{
    u_char  path[NGX_MAX_PATH];

    if (!ngx_http_heapprof_fifo) {
        return;
    }

    *ngx_snprintf(path, sizeof(path) - 1, "%V/%P.fifo",
                  &ngx_http_heapprof_dir, ngx_pid) = '\0';

    (void) unlink((char *) path);
    ngx_http_heapprof_fifo = 0;
}


/* Another worker wants this worker's profile: write it next to the FIFO. */
static void
ngx_http_heapprof_fifo_handler(ngx_event_t *ev)
{
    int                rc;
    u_char             path[NGX_MAX_PATH];
    ssize_t            n, i;
    uint64_t           ids[64], last;
    ngx_connection_t  *c;

    c = ev->data;
    last = 0;

    if (ngx_http_heapprof_attached) {
        (void) heapprof_attach();
    }

    for ( ;; ) {
        n = read(c->fd, ids, sizeof(ids));

        if (n == -1) {
            if (ngx_errno == NGX_EINTR) {
                continue;
            }

            if (ngx_errno != NGX_EAGAIN) {
                ngx_log_error(NGX_LOG_ERR, ev->log, ngx_errno,
                              "heapprof: read() of the request FIFO failed");
            }

            return;
        }

        if (n == 0) {
            return;
        }

        for (i = 0; i < n / (ssize_t) sizeof(uint64_t); i++) {
            if (ids[i] == last) {
                continue;
            }

            last = ids[i];

            ngx_http_heapprof_file_name(path, sizeof(path), ngx_pid,
                                        ids[i]);

            /* Atomic: the asker sees the whole file or none. */
            rc = heapprof_write_path((const char *) path,
                                     HEAPPROF_PROFILE_HEAP);
            if (rc != HEAPPROF_OK) {
                ngx_log_error(NGX_LOG_ERR, ev->log, 0,
                              "heapprof: writing \"%s\" failed: %s",
                              path, heapprof_strerror(rc));
            }
        }
    }
}


/* -------------------------------------------------------- configuration */


static void *
ngx_http_heapprof_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_heapprof_main_conf_t  *hmcf;

    hmcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_heapprof_main_conf_t));
    if (hmcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     hmcf->snapshot_dir = { 0, NULL };
     *     hmcf->temp_path = NULL;
     */

    hmcf->enabled = NGX_CONF_UNSET;
    hmcf->rate = NGX_CONF_UNSET_SIZE;
    hmcf->snapshot_interval = NGX_CONF_UNSET;
    hmcf->snapshot_keep = NGX_CONF_UNSET;
    hmcf->collect_timeout = NGX_CONF_UNSET_MSEC;

    return hmcf;
}


static char *
ngx_http_heapprof_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_heapprof_main_conf_t  *hmcf = conf;

    ngx_conf_init_value(hmcf->enabled, 1);
    ngx_conf_init_size_value(hmcf->rate, HEAPPROF_DEFAULT_RATE);
    ngx_conf_init_value(hmcf->snapshot_interval, 60);
    ngx_conf_init_value(hmcf->snapshot_keep, 10);
    ngx_conf_init_msec_value(hmcf->collect_timeout, 2000);

    if (hmcf->snapshot_dir.len
        && ngx_conf_full_name(cf->cycle, &hmcf->snapshot_dir, 0) != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    /* Created (mode 0700, owned by the workers' user) by nginx itself. */
    if (ngx_conf_merge_path_value(cf, &hmcf->temp_path, NULL,
                                  &ngx_http_heapprof_temp_path)
        != NGX_CONF_OK)
    {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_heapprof(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_heapprof_handler;

    return NGX_CONF_OK;
}


/* A size as nginx writes them (512k, 1m), with a message saying so. */
static char *
ngx_http_heapprof_set_rate(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_heapprof_main_conf_t *hmcf = conf;

    ssize_t     n;
    ngx_str_t  *value;

    if (hmcf->rate != NGX_CONF_UNSET_SIZE) {
        return "is duplicate";
    }

    value = cf->args->elts;
    n = ngx_parse_size(&value[1]);

    if (n == NGX_ERROR || (uint64_t) n > HEAPPROF_MAX_RATE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid value \"%V\" in \"%V\" directive, it "
                           "must be the mean bytes between samples, at most "
                           "1048576m (e.g. 512k; 0 turns sampling off, 1 "
                           "samples every allocation)",
                           &value[1], &cmd->name);
        return NGX_CONF_ERROR;
    }

    hmcf->rate = (size_t) n;

    return NGX_CONF_OK;
}


static char *
ngx_http_heapprof_check_interval(ngx_conf_t *cf, void *post, void *data)
{
    time_t  *sec = data;

    if (*sec < 1) {
        return "must be at least 1s";
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_heapprof_check_keep(ngx_conf_t *cf, void *post, void *data)
{
    ngx_int_t  *keep = data;

    if (*keep < 1 || *keep > 100000) {
        return "must be between 1 and 100000 (snapshot files kept)";
    }

    return NGX_CONF_OK;
}
