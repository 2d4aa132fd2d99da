/*
 * heapprof: an always-on sampling heap profiler for C programs that writes
 * Go-compatible pprof profiles.
 *
 * Three ways to turn it on:
 *   - LD_PRELOAD=libheapprof.so CMD   (configured by HEAPPROF_* env vars);
 *   - link with -lheapprof (pkg-config heapprof): profiling is on from load
 *     at the default rate unless HEAPPROF_RATE=0, and this API controls it;
 *   - the nginx module (integrations/nginx).
 *
 * Every function here is safe to call from any thread. Functions returning
 * int return HEAPPROF_OK (0) on success and a negative enum heapprof_err
 * value on failure; heapprof_strerror() gives the one-line reason.
 */
#ifndef HEAPPROF_H
#define HEAPPROF_H

#include <stddef.h>
#include <stdint.h>

/* ---------------------------------------------------------------- version */

#define HEAPPROF_VERSION_MAJOR 0
#define HEAPPROF_VERSION_MINOR 1
#define HEAPPROF_VERSION_PATCH 0
/* MMmmpp: 0.1.0 is 100. */
#define HEAPPROF_VERSION_NUMBER                                                \
    (HEAPPROF_VERSION_MAJOR * 10000 + HEAPPROF_VERSION_MINOR * 100 +           \
     HEAPPROF_VERSION_PATCH)

/* ------------------------------------------------------ export, attributes */

#if defined(__GNUC__)
#define HEAPPROF_API __attribute__((visibility("default")))
#else
#define HEAPPROF_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* HEAPPROF_VERSION_NUMBER of the library. Added in 0.1.0. */
HEAPPROF_API int heapprof_version(void);
/* The version as text, e.g. "0.1.0". Added in 0.1.0. */
HEAPPROF_API const char *heapprof_version_string(void);

/* ----------------------------------------------------------------- errors */

/* Codes keep their numbers forever; a retired code stays as _OBSOLETEnn. */
#define HEAPPROF_ERR_MAP(XX)                                                   \
    XX(OK, 0, "success")                                                       \
    XX(EINVAL, -1, "invalid argument")                                         \
    XX(ENOMEM, -2, "out of memory (or heapprof memory budget reached)")        \
    XX(EIO, -3, "input/output error")                                          \
    XX(ESTATE, -4, "profiler is not in a state that allows this")              \
    XX(ERANGE, -5, "buffer too small")                                         \
    XX(EUNSUPPORTED, -6, "not supported in this build or process")             \
    XX(EBUSY, -7, "already running with a different configuration")            \
    XX(EPROTO, -8, "malformed request")

enum heapprof_err {
#define HEAPPROF_ERR_ENUM_(name, value, text) HEAPPROF_##name = (value),
    HEAPPROF_ERR_MAP(HEAPPROF_ERR_ENUM_)
#undef HEAPPROF_ERR_ENUM_
        HEAPPROF_ERR_LAST = -9 /* sentinel, never returned */
};

/* Static one-line text for a code; never NULL (unknown codes get a text).
 * Added in 0.1.0. */
HEAPPROF_API const char *heapprof_strerror(int err);
/* "HEAPPROF_EINVAL" etc.; never NULL. Added in 0.1.0. */
HEAPPROF_API const char *heapprof_err_name(int err);

/* ----------------------------------------------------------------- config */

#define HEAPPROF_DEFAULT_RATE 524288u /* mean bytes between samples */
#define HEAPPROF_DEFAULT_STACK_DEPTH 64
#define HEAPPROF_MAX_STACK_DEPTH 256
/* The highest rate accepted (1 TiB between samples). Added in 0.1.0. */
#define HEAPPROF_MAX_RATE ((uint64_t)1 << 40)

/* Do not let HEAPPROF_* env vars override the struct (for embedders, tests). */
#define HEAPPROF_CONFIG_NO_ENV 0x1u

struct heapprof_config {
    size_t size;    /* sizeof(struct heapprof_config); set by _init */
    unsigned flags; /* HEAPPROF_CONFIG_* */
    uint64_t
        rate; /* mean bytes between samples; 0 off, 1 all; HEAPPROF_RATE, default 524288 */
    unsigned
        stack_depth; /* frames kept per sample, 1..256; HEAPPROF_STACK_DEPTH, default 64 */
    uint64_t
        max_memory; /* bytes of profiler metadata before samples are dropped; HEAPPROF_MAX_MEMORY, default 64 MiB */
    const char *http;         /* listener address or NULL; HEAPPROF_HTTP */
    const char *snapshot_dir; /* NULL = no snapshots; HEAPPROF_SNAPSHOT_DIR */
    unsigned
        snapshot_interval; /* seconds; HEAPPROF_SNAPSHOT_INTERVAL, default 60 */
    unsigned
        snapshot_keep; /* newest files kept; HEAPPROF_SNAPSHOT_KEEP, default 10 */
};

/* Fill *cfg with the compiled defaults (no env vars read). Added in 0.1.0. */
HEAPPROF_API void heapprof_config_init(struct heapprof_config *cfg);

/* -------------------------------------------------------------- lifecycle */

/*
 * Start (or re-configure) profiling. cfg may be NULL for the defaults. Unless
 * cfg->flags has HEAPPROF_CONFIG_NO_ENV, HEAPPROF_* env vars override the
 * struct (the operator wins). Starting again with an equal config is OK;
 * with a different one while running is HEAPPROF_EBUSY. Added in 0.1.0.
 */
HEAPPROF_API int heapprof_start(const struct heapprof_config *cfg);
/* Stop sampling new allocations; what was recorded stays and frees of
 * recorded blocks are still noticed. Added in 0.1.0. */
HEAPPROF_API int heapprof_stop(void);
/* Non-zero while sampling (started and the rate is not 0). Added in 0.1.0. */
HEAPPROF_API int heapprof_is_running(void);

/* ------------------------------------------------------- run-time control */

/* Mean bytes between samples; 0 turns sampling off, 1 samples everything.
 * Estimates stay unbiased across a change: each sample is weighted with the
 * rate its distance was drawn with. At most HEAPPROF_MAX_RATE. Added in
 * 0.1.0. */
HEAPPROF_API int heapprof_set_rate(uint64_t rate);
/* The rate in force. Added in 0.1.0. */
HEAPPROF_API uint64_t heapprof_get_rate(void);

/* ----------------------------------------------------------------- output */

enum heapprof_profile {
    HEAPPROF_PROFILE_HEAP = 0, /* default sample type inuse_space */
    HEAPPROF_PROFILE_ALLOCS =
        1, /* same data, default sample type alloc_space */
    /* The in-use profile as it was when heapprof's estimate of in-use
     * bytes was highest since start or heapprof_reset() (within 1/64 of
     * it); both pairs of columns hold what was live then. */
    HEAPPROF_PROFILE_PEAK = 2
};

/* Where output goes: write() returns 0 on success, non-zero to abort. */
struct heapprof_sink {
    int (*write)(void *ctx, const void *data, size_t len);
    void *ctx;
};

/* Write a gzip-compressed profile.proto to the sink. Added in 0.1.0. */
HEAPPROF_API int heapprof_write(enum heapprof_profile which,
                                const struct heapprof_sink *sink);
/* The same to a file descriptor. Added in 0.1.0. */
HEAPPROF_API int heapprof_write_fd(int fd, enum heapprof_profile which);
/* Atomic: written to a hidden temporary file in the same directory, fsynced,
 * then renamed over path; no partial file is ever visible. Added in 0.1.0. */
HEAPPROF_API int heapprof_write_path(const char *path,
                                     enum heapprof_profile which);
/* Go's n/ok contract: if cap is too small nothing is written, *needed gets
 * the size and HEAPPROF_ERANGE is returned. needed may be NULL. Added in
 * 0.1.0. */
HEAPPROF_API int heapprof_write_buffer(void *buf, size_t cap, size_t *needed,
                                       enum heapprof_profile which);

/*
 * Leak suspects: the in-use profile of the sampled blocks allocated at
 * least min_age_ms milliseconds ago and still live, in the format of
 * HEAPPROF_PROFILE_HEAP; both pairs of columns hold those blocks. (HTTP:
 * /debug/pprof/heap?min_age=10m.) Added in 0.1.0.
 */
HEAPPROF_API int heapprof_write_aged(uint64_t min_age_ms,
                                     const struct heapprof_sink *sink);

/* ----------------------------------------------------------------- labels */

/*
 * Labels on heap samples: the allocations this thread makes while a label
 * is set carry it into the profile as a pprof tag, so that
 * `go tool pprof -tagfocus=route=/api -top URL` shows one request type's
 * allocations. Frees are credited to the labels of the allocation, so
 * in-use values stay exact. At most 8 keys per thread; keys of 1-63 bytes,
 * values of up to 255 (invalid UTF-8 is replaced). value NULL removes the
 * key. Returns HEAPPROF_OK, HEAPPROF_EINVAL (key NULL or empty),
 * HEAPPROF_ERANGE (too long, or a 9th key; labels unchanged) or
 * HEAPPROF_ENOMEM (HEAPPROF_MAX_MEMORY reached; labels unchanged). Each
 * distinct set of labels is kept for the life of the process: label with
 * bounded values (routes, not request ids). Not async-signal-safe (a new
 * set takes a lock); the sampled allocations of a signal handler carry the
 * interrupted thread's labels. Added in 0.1.0 (as heapprof_label_set).
 */
HEAPPROF_API int heapprof_labels_set(const char *key, const char *value);
/* Remove all of this thread's labels. Added in 0.1.0. */
HEAPPROF_API void heapprof_labels_clear(void);
/* Deprecated: the name heapprof_labels_set had in 0.1.0, kept so that
 * programs using it build and run unchanged. Added in 0.1.0. */
HEAPPROF_API int heapprof_label_set(const char *key, const char *value);

/* ------------------------------------------------------ custom allocators */

/*
 * Report allocations of an allocator heapprof does not interpose (arenas,
 * pools, slabs); the contracts are in docs/custom-allocators.md. Callable
 * from any thread, also while the caller holds its own allocator lock:
 * they never call malloc, never block on a lock that heapprof holds while
 * calling out, and keep errno. The sampling decision is the same Poisson
 * sampler that malloc uses, and the stack's leaf is their caller. With
 * HEAPPROF_RATE=0 they cost a call and a thread-local subtraction; for
 * libraries that want optional profiling without linking heapprof,
 * <heapprof_weak.h> turns them into a null check when heapprof is absent.
 * Boehm GC programs need no hooks (heapprof wraps libgc's GC_* entry
 * points); <heapprof_gc.h> is the explicit form.
 */

/* A block of size bytes at ptr was allocated. Added in 0.1.0. */
HEAPPROF_API void heapprof_on_alloc(void *ptr, size_t size);
/* The block at ptr is being freed. Added in 0.1.0. */
HEAPPROF_API void heapprof_on_free(void *ptr);

/*
 * heapprof_on_alloc for a block that belongs to owner: any non-NULL address
 * that names the arena or pool (usually the pool's own handle). owner NULL
 * is heapprof_on_alloc. Added in 0.1.0.
 */
HEAPPROF_API void heapprof_on_alloc_owned(void *ptr, size_t size,
                                          const void *owner);

/*
 * The caller's allocator resized old_ptr into size bytes at new_ptr (which
 * may equal old_ptr): old_ptr's record, if it was sampled, is freed and the
 * new block is sampled afresh. old_ptr NULL is heapprof_on_alloc(new_ptr,
 * size); new_ptr NULL with size 0 is heapprof_on_free(old_ptr); new_ptr
 * NULL with size != 0 (the resize failed, old_ptr is intact) does nothing.
 * The new block has no owner. Call it after the resize succeeded and
 * before another thread could be handed old_ptr. Added in 0.1.0.
 */
HEAPPROF_API void heapprof_on_realloc(void *old_ptr, void *new_ptr,
                                      size_t size);

/* heapprof_on_realloc whose new block belongs to owner. Added in 0.1.0. */
HEAPPROF_API void heapprof_on_realloc_owned(void *old_ptr, void *new_ptr,
                                            size_t size, const void *owner);

/*
 * Every sampled block of owner still live is freed, as if heapprof_on_free
 * had been called on each: call it when a pool is destroyed or reset,
 * before its memory can be handed out again. Costs O(sampled blocks of
 * owner), not O(allocations): a pool with no sampled block costs one hash
 * lookup. Blocks freed one by one earlier (heapprof_on_free) are simply no
 * longer there. owner NULL does nothing. Added in 0.1.0.
 */
HEAPPROF_API void heapprof_on_free_bulk(const void *owner);

/* ------------------------------------------------------------------- HTTP */

/*
 * A server-agnostic handler for Go's /debug/pprof endpoints: the server
 * passes a request in and sends back the status, headers and body that come
 * out. Used by the built-in listener (HEAPPROF_HTTP), the nginx module and
 * the examples; docs/http.md has the endpoint list.
 *
 * Paths: with mount == NULL the handler accepts "/debug/pprof/<name>" (and
 * "/debug/pprof/" for the index), the alias "/debug/heap", and a relative
 * "<name>" for servers that strip their own prefix. With mount set (e.g.
 * "/prof/"), the path must start with it and the rest is the name.
 */

/* heapprof_http_handle() returned a pending delta (seconds=N). */
#define HEAPPROF_HTTP_PENDING 1

/* Extra header flags in heapprof_http_response.headers. */
#define HEAPPROF_HTTP_HDR_NOSNIFF 0x1u  /* X-Content-Type-Options: nosniff */
#define HEAPPROF_HTTP_HDR_GO_PPROF 0x2u /* X-Go-Pprof: 1 (error bodies) */

/* All strings are borrowed for the call and need no NUL terminator. */
struct heapprof_http_request {
    const char *method; /* "GET", "HEAD" or "POST" */
    size_t method_len;
    const char *path; /* URL path; if query is NULL, a '?' here
                                 starts the query */
    size_t path_len;
    const char *query; /* raw query without '?', or NULL */
    size_t query_len;
    const char *body; /* request body (POST /symbol), or NULL */
    size_t body_len;
    const char *mount; /* mount prefix, or NULL for the defaults */
    size_t mount_len;
    unsigned write_timeout_s; /* seconds=N >= this is refused, as Go does
                                 with its server's WriteTimeout; 0 = none */
};

struct heapprof_http_pending; /* opaque: a delta profile waiting to finish */

/*
 * Which profile a response carries (heapprof_http_response.served), so a
 * server that treats profiles specially (the nginx module merges its
 * workers' heap and allocs profiles) need not look at the path or the
 * body. Added in 0.1.0.
 */
enum heapprof_http_served {
    HEAPPROF_HTTP_SERVED_OTHER = 0,     /* index, symbol, cmdline, debug=1
                                           text, errors */
    HEAPPROF_HTTP_SERVED_HEAP = 1,      /* /heap as pprof (with min_age= or
                                           peak= too), or its seconds=N
                                           delta pending */
    HEAPPROF_HTTP_SERVED_ALLOCS = 2,    /* /allocs likewise */
    HEAPPROF_HTTP_SERVED_DELTA_HEAP = 3 /* /delta_heap as pprof */
};

struct heapprof_http_response {
    int status;                      /* HTTP status code */
    const char *content_type;        /* static string, never NULL */
    const char *content_disposition; /* static string or NULL */
    const char *allow;               /* Allow header for 405, or NULL */
    unsigned headers;                /* HEAPPROF_HTTP_HDR_* */
    char *body;                      /* owned; heapprof_http_response_free */
    size_t body_len;
    /* Set when heapprof_http_handle() returns HEAPPROF_HTTP_PENDING. */
    struct heapprof_http_pending *pending;
    unsigned delay_ms;                /* call heapprof_http_resume() after */
    enum heapprof_http_served served; /* what the body is (or will be) */
};

/*
 * Handle one request. Returns 0 with *resp filled (any status, errors
 * included: send it as is), HEAPPROF_HTTP_PENDING for seconds=N with
 * resp->pending and resp->delay_ms set and nothing to send yet, or
 * HEAPPROF_EINVAL (NULL arguments; *resp then holds a 500). Never blocks
 * for seconds=N. Thread-safe; must not be called from an allocator hook
 * or a signal handler. Added in 0.1.0.
 */
HEAPPROF_API int heapprof_http_handle(const struct heapprof_http_request *req,
                                      struct heapprof_http_response *resp);

/*
 * Finish a pending delta: fills *resp (0) and releases pending. May be
 * called early (the delta then covers less time). Added in 0.1.0.
 */
HEAPPROF_API int heapprof_http_resume(struct heapprof_http_pending *pending,
                                      struct heapprof_http_response *resp);

/* Drop a pending delta without answering (client gone). Added in 0.1.0. */
HEAPPROF_API void heapprof_http_cancel(struct heapprof_http_pending *pending);

/* Release resp->body (and a pending delta never resumed); resp is reset.
 * Added in 0.1.0. */
HEAPPROF_API void
heapprof_http_response_free(struct heapprof_http_response *resp);

/*
 * Header number i (0, 1, ...) of resp as name and *value, Content-Type
 * first; NULL past the last one. Lets a server copy every header in one
 * loop without knowing the flags. Added in 0.1.0.
 */
HEAPPROF_API const char *
heapprof_http_response_header(const struct heapprof_http_response *resp,
                              unsigned i, const char **value);

/* ----------------------------------------------- garbage-collected programs */

/*
 * Register the collection that gc=1 runs before /heap and /delta_heap are
 * taken (e.g. a Boehm GC_gcollect wrapper); NULL unregisters. The callback
 * runs on the requesting thread, outside heapprof's reentrancy fence, so
 * what it frees is seen. Added in 0.1.0.
 */
HEAPPROF_API int heapprof_gc_register(void (*collect)(void *arg), void *arg);

/* ------------------------------------------ snapshots and run-time control */

/*
 * Periodic snapshots are configured by HEAPPROF_SNAPSHOT_DIR, _INTERVAL and
 * _KEEP (or the snapshot_* fields of struct heapprof_config), plus
 * HEAPPROF_SNAPSHOT_AT_EXIT and HEAPPROF_SNAPSHOT_SIGNAL; docs/operations.md
 * has the details. Files are DIR/heap-<pid>-<UTC yyyymmddThhmmssZ>.pb.gz,
 * published atomically; only this process's own files are rotated.
 *
 * Pause and resume are heapprof_stop() and heapprof_start(): while stopped
 * no new allocation is sampled, frees of recorded blocks are still seen,
 * and snapshots and the HTTP endpoints keep serving what was recorded.
 */

/*
 * Write one heap snapshot into the snapshot directory now, from the calling
 * thread (also when the periodic interval is long, or while stopped).
 * HEAPPROF_ESTATE if no snapshot directory is configured, HEAPPROF_EIO if
 * the file could not be written (the reason is logged once). Not for
 * signal handlers: name a signal with HEAPPROF_SNAPSHOT_SIGNAL instead.
 * Added in 0.1.0.
 */
HEAPPROF_API int heapprof_snapshot_now(void);

/*
 * Restart the allocation columns from what is live now: afterwards
 * alloc_objects/alloc_space count the blocks still in use plus everything
 * allocated from here on, while inuse_* are unchanged. Useful to look at
 * one phase of a long-running server with the allocs profile. The
 * self-report counters in the comments are not reset. Added in 0.1.0.
 */
HEAPPROF_API int heapprof_reset(void);

/* ----------------------------------------------------------------- attach */

/*
 * Attach without preload, for plugin hosts (the nginx module) that load
 * libheapprof with dlopen: heapprof_attach() points the malloc-family GOT
 * slots (JUMP_SLOT, GLOB_DAT and absolute relocations; RELRO pages are
 * made writable for the store and protected again) of every object loaded
 * in the main link-map namespace at heapprof's wrappers, which forward to
 * the allocator those slots were bound to. dlopen is redirected the same
 * way, so objects loaded later through it are patched as they arrive;
 * calling heapprof_attach() again patches objects loaded by other means
 * (cheap when nothing was loaded since). Memory allocated before attach
 * and freed after goes back to the same allocator and is never counted as
 * a profiled free; function pointers the host copied before attach keep
 * calling the allocator directly (not sampled, never wrong).
 *
 * Returns HEAPPROF_OK, also when heapprof already is the process's malloc
 * (LD_PRELOAD, or -lheapprof linked into the program: nothing to patch),
 * or HEAPPROF_EUNSUPPORTED with one log line: another platform than
 * x86-64/aarch64 Linux, the process's malloc is not the allocator below
 * heapprof (mixing them would free blocks into the wrong allocator), or
 * the main program's relocations cannot be read. Idempotent and
 * thread-safe while other threads allocate; not from an allocator hook or
 * a signal handler. Added in 0.1.0.
 */
HEAPPROF_API int heapprof_attach(void);

/*
 * Undo heapprof_attach(): slots pointing at heapprof get their allocator
 * back. Sampled blocks freed after detach are not seen: they stay in the
 * in-use columns until the next heapprof_attach(), which forgets them
 * (one log line says how many) so that in-use starts afresh, as at a
 * first attach (blocks of pools and GC heaps, whose frees heapprof still
 * sees, are kept). HEAPPROF_OK (also when not attached), or
 * HEAPPROF_EUNSUPPORTED when heapprof is the process's malloc by preload
 * or link order (nothing can be undone). Added in 0.1.0.
 */
HEAPPROF_API int heapprof_detach(void);

enum heapprof_attach_state {
    HEAPPROF_ATTACH_NONE = 0,      /* malloc calls do not reach heapprof */
    HEAPPROF_ATTACH_PATCHED = 1,   /* by heapprof_attach() */
    HEAPPROF_ATTACH_INTERPOSED = 2 /* preloaded or linked first */
};

struct heapprof_attach_stats {
    enum heapprof_attach_state state;
    unsigned objects; /* loaded objects with a slot pointing at heapprof */
    unsigned slots;   /* GOT slots pointing at heapprof */
    unsigned failed;  /* objects whose relocations were not understood */
};

/* Fill *st (counted now, from the objects' GOTs). HEAPPROF_EINVAL for
 * NULL. Added in 0.1.0. */
HEAPPROF_API int heapprof_attach_stats(struct heapprof_attach_stats *st);

/*
 * What `heapprof attach PID` and `heapprof detach PID` call inside the
 * target through gdb, after loading libheapprof there with dlopen (any
 * program may call them too). heapprof_remote_attach takes the settings
 * as "HEAPPROF_RATE=1\nHEAPPROF_HTTP=127.0.0.1:6060" lines, parsed as the
 * environment variables are, over the defaults and never from the
 * process's own environment; it refuses (nothing changed) when already
 * attached (HEAPPROF_EBUSY), when heapprof is the process's malloc by
 * preload (HEAPPROF_EBUSY), on a bad value (HEAPPROF_EINVAL) or as
 * heapprof_attach() does; otherwise it attaches, applies the settings and
 * starts the listener and snapshot writer they name. heapprof_remote_detach
 * undoes it: heapprof_detach(), sampling paused, listener and writer asked
 * to stop (gone within a second); HEAPPROF_ESTATE when not attached.
 * Neither writes to stderr: heapprof_remote_message() returns what the
 * last call had to say (one line per message; never NULL). Added in
 * 0.1.0.
 */
HEAPPROF_API int heapprof_remote_attach(const char *settings);
HEAPPROF_API int heapprof_remote_detach(void);
HEAPPROF_API const char *heapprof_remote_message(void);

/* ------------------------------------------------------------------ merge */

/*
 * Merge profiles into one, as `go tool pprof` merges several files:
 * samples with the same stack (by mapping, address and symbolized lines)
 * and the same labels are summed, functions, locations, mappings and
 * strings are shared. Used by the nginx module to answer one request with
 * the profiles of all its workers.
 *
 * Each part is a profile.proto as heapprof_write() produces it (gzip'd or
 * not); all parts must have the same sample types. A part may add a label
 * to every one of its samples, replacing one of the same key: numeric
 * (e.g. pid 1234, which `go tool pprof -tagfocus=pid=1234` selects) or a
 * string; and it may be subtracted (negate: a delta over time is the later
 * profile merged with the earlier one negated; samples whose values all
 * cancel are dropped). The output is gzip'd, with the default sample type
 * of `which` (heap: inuse_space, allocs: alloc_space), time and duration
 * spanning the parts, and the comments of all parts.
 *
 * Returns HEAPPROF_OK, HEAPPROF_EINVAL (NULL, nparts == 0), HEAPPROF_EPROTO
 * (a part does not decode, or sample types differ), HEAPPROF_ENOMEM, or
 * HEAPPROF_EIO (the sink failed; it may have received part of the
 * stream). Thread-safe; uses malloc (not sampled), so not from an
 * allocator hook or a signal handler. Added in 0.1.0.
 */
struct heapprof_profile_part {
    const void *data; /* the encoded profile */
    size_t len;
    const char *label_key; /* NUL-terminated, or NULL for no label */
    const char *label_str; /* string value, or NULL for label_num */
    int64_t label_num;     /* numeric value when label_str is NULL */
    int negate;            /* non-zero: subtract this part */
};

/* Merge nparts parts into sink (see above). Added in 0.1.0. */
HEAPPROF_API int
heapprof_profile_merge(const struct heapprof_profile_part *parts, size_t nparts,
                       enum heapprof_profile which,
                       const struct heapprof_sink *sink);

#ifdef __cplusplus
}
#endif

#endif /* HEAPPROF_H */
