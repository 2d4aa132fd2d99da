/*
 * Public entry points and the process lifecycle: configuration at load
 * (profiling is on from load, Go's default), start/stop, rate control,
 * fork handlers, errors and version, and the custom-allocator hooks.
 */
#include "heapprof.h"

#include <pthread.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buckets.h"
#include "config.h"
#include "ialloc.h"
#include "live.h"
#include "labels.h"
#include "log.h"
#include "peak.h"
#include "retired.h"
#include "record.h"
#include "sampler.h"
#include "stack.h"

#if __has_include("listener.h")
#include "listener.h"
#define HP_HAVE_LISTENER 1
#endif
#if __has_include("symbolize.h")
#include "symbolize.h"
#define HP_HAVE_SYMBOLIZE 1
#endif
#if __has_include("snapshot.h")
#include "snapshot.h"
#define HP_HAVE_SNAPSHOT 1
#endif

extern char **environ;

__thread struct hp_thread hp_tls __attribute__((tls_model("initial-exec")));

/* Serialises start/stop/configuration (never taken on allocation paths). */
static pthread_mutex_t lifecycle_lock = PTHREAD_MUTEX_INITIALIZER;
static int config_state; /* 0 none, 1 in progress, 2 done (atomic) */
static bool explicit_start;
static bool services_started;
static struct hp_settings started_with;

uint64_t
hp_now_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t
hp_now_wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* At a rate this low nearly every block has a live record (about 100
 * bytes each): the 64 MiB default holds some 700 000, a fraction of a real
 * server's heap. The default alone (not a budget the operator chose) is
 * raised there; it is a ceiling, mapped only as records need it. */
#define HP_EXHAUSTIVE_RATE 4096u
#define HP_EXHAUSTIVE_MAX_MEMORY (1ull << 30)

static void
apply_settings(const struct hp_settings *s)
{
    hp_settings = *s;
    uint64_t budget = s->max_memory;
    if (budget == (64u << 20) && s->rate > 0 && s->rate <= HP_EXHAUSTIVE_RATE)
        budget = HP_EXHAUSTIVE_MAX_MEMORY;
    hp_ialloc_set_budget(budget);
    hp_rate_set(s->rate);
}

/*
 * Read HEAPPROF_* once. Safe from any context (no allocation), including
 * the first sampled malloc before constructors ran.
 */
static void
configure_from_env(void)
{
    int expected = 0;
    if (!__atomic_compare_exchange_n(&config_state, &expected, 1, false,
                                     __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
        return;
    struct hp_settings s;
    hp_settings_defaults(&s);
    hp_settings_apply_env(&s, environ);
    apply_settings(&s);
    __atomic_store_n(&config_state, 2, __ATOMIC_RELEASE);
}

static void
prefork(void)
{
    hp_fence_enter();
    hp_stack_prefork();
    hp_buckets_prefork();
    hp_live_prefork();
    hp_ialloc_prefork();
}

static void
postfork_parent(void)
{
    hp_ialloc_postfork_parent();
    hp_live_postfork_parent();
    hp_buckets_postfork_parent();
    hp_stack_postfork();
    hp_fence_exit();
}

static void
postfork_child(void)
{
    hp_ialloc_postfork_child();
    hp_peak_postfork_child();
    hp_labels_postfork_child();
    hp_retired_postfork_child();
    hp_live_postfork_child();
    hp_buckets_postfork_child();
    hp_stack_postfork();
    pthread_mutex_init(&lifecycle_lock, NULL);
#ifdef HP_HAVE_SYMBOLIZE
    hp_symbolize_postfork_child();
#endif
#ifdef HP_HAVE_LISTENER
    hp_listener_postfork_child();
#endif
#ifdef HP_HAVE_SNAPSHOT
    hp_snapshot_postfork_child();
#endif
    hp_fence_exit();
}

/* Background services (listener, snapshots): started from the constructor
 * or heapprof_start, never from inside an allocation. Lifecycle lock held. */
static void
start_services(void)
{
    if (services_started)
        return;
    services_started = true;
    hp_fence_enter();
#ifdef HP_HAVE_LISTENER
    if (hp_settings.http[0] != '\0')
        hp_listener_start(hp_settings.http);
#endif
#ifdef HP_HAVE_SNAPSHOT
    if (hp_settings.snapshot_dir[0] != '\0')
        hp_snapshot_start();
#endif
    hp_fence_exit();
}

__attribute__((constructor(101))) static void
heapprof_process_init(void)
{
    configure_from_env();
    pthread_atfork(prefork, postfork_parent, postfork_child);
    pthread_mutex_lock(&lifecycle_lock);
    start_services();
    pthread_mutex_unlock(&lifecycle_lock);
}

/* Called by the sampler's first slow path if it ran before the
 * constructor (allocations in other libraries' constructors). */
void
hp_ensure_configured(void)
{
    if (__atomic_load_n(&config_state, __ATOMIC_ACQUIRE) != 2)
        configure_from_env();
}

/* ------------------------------------------------------------- public API */

int
heapprof_version(void)
{
    return HEAPPROF_VERSION_NUMBER;
}

const char *
heapprof_version_string(void)
{
    return "0.1.0";
}

const char *
heapprof_strerror(int err)
{
    switch (err) {
#define HP_STRERROR_(name, value, text)                                       \
    case value:                                                               \
        return text;
        HEAPPROF_ERR_MAP(HP_STRERROR_)
#undef HP_STRERROR_
    default:
        return "unknown heapprof error";
    }
}

const char *
heapprof_err_name(int err)
{
    switch (err) {
#define HP_ERRNAME_(name, value, text)                                        \
    case value:                                                               \
        return "HEAPPROF_" #name;
        HEAPPROF_ERR_MAP(HP_ERRNAME_)
#undef HP_ERRNAME_
    default:
        return "HEAPPROF_UNKNOWN";
    }
}

void
heapprof_config_init(struct heapprof_config *cfg)
{
    if (cfg == NULL)
        return;
    memset(cfg, 0, sizeof *cfg);
    cfg->size = sizeof *cfg;
    cfg->rate = HEAPPROF_DEFAULT_RATE;
    cfg->stack_depth = HEAPPROF_DEFAULT_STACK_DEPTH;
    cfg->max_memory = 64u << 20;
    cfg->snapshot_interval = 60;
    cfg->snapshot_keep = 10;
}

static bool
settings_equal(const struct hp_settings *a, const struct hp_settings *b)
{
    return a->rate == b->rate && a->stack_depth == b->stack_depth &&
           a->max_memory == b->max_memory && strcmp(a->http, b->http) == 0 &&
           strcmp(a->snapshot_dir, b->snapshot_dir) == 0 &&
           a->snapshot_interval == b->snapshot_interval &&
           a->snapshot_keep == b->snapshot_keep;
}

int
heapprof_start(const struct heapprof_config *cfg)
{
    struct hp_settings s;
    hp_settings_defaults(&s);
    int rc = hp_settings_from_config(&s, cfg);
    if (rc != HEAPPROF_OK)
        return rc;
    if (cfg == NULL || !(cfg->flags & HEAPPROF_CONFIG_NO_ENV)) {
        hp_fence_enter();
        hp_settings_apply_env(&s, environ);
        hp_fence_exit();
    }
    hp_ensure_configured();
    pthread_mutex_lock(&lifecycle_lock);
    if (explicit_start && !hp_sampling_paused()) {
        bool same = settings_equal(&s, &started_with);
        pthread_mutex_unlock(&lifecycle_lock);
        return same ? HEAPPROF_OK : HEAPPROF_EBUSY;
    }
    /* The automatic start at load used env/defaults; an explicit start may
     * change anything, except that a listener already running stays. */
    bool http_changed = strcmp(s.http, hp_settings.http) != 0 ||
                        strcmp(s.snapshot_dir, hp_settings.snapshot_dir) != 0;
    apply_settings(&s);
    started_with = s;
    explicit_start = true;
    hp_sampling_pause(false);
    if (http_changed)
        services_started = false;
    start_services();
    pthread_mutex_unlock(&lifecycle_lock);
    return HEAPPROF_OK;
}

int
heapprof_stop(void)
{
    hp_sampling_pause(true);
    pthread_mutex_lock(&lifecycle_lock);
    explicit_start = false;
    pthread_mutex_unlock(&lifecycle_lock);
    return HEAPPROF_OK;
}

int
heapprof_is_running(void)
{
    hp_ensure_configured();
    return !hp_sampling_paused() && hp_rate_get() != 0;
}

int
heapprof_set_rate(uint64_t rate)
{
    if (rate > ((uint64_t)1 << 40))
        return HEAPPROF_EINVAL;
    hp_ensure_configured();
    hp_rate_set(rate);
    __atomic_store_n(&hp_settings.rate, rate, __ATOMIC_RELAXED);
    /* Other threads pick the new rate up at their next mark (or within
     * 4 MiB when sampling was off); the caller applies it at once. */
    hp_tls.bytes_until_sample = 0;
    hp_tls.draw_rate = 0;
    return HEAPPROF_OK;
}

uint64_t
heapprof_get_rate(void)
{
    hp_ensure_configured();
    return hp_rate_get();
}

/* ------------------------------------------------------ custom allocators */

HP_FRONT void
heapprof_on_alloc(void *ptr, size_t size)
{
    if (ptr == NULL)
        return;
    uint64_t rate = hp_sample_check(size);
    if (HP_UNLIKELY(rate != 0))
        hp_record_alloc(ptr, size, rate);
}

void
heapprof_on_free(void *ptr)
{
    if (ptr != NULL)
        hp_record_free_check(ptr);
}

/* ------------------------------------------- snapshots, run-time control */

int
heapprof_snapshot_now(void)
{
    hp_ensure_configured();
#ifdef HP_HAVE_SNAPSHOT
    return hp_snapshot_write_now();
#else
    return HEAPPROF_EUNSUPPORTED;
#endif
}

int
heapprof_reset(void)
{
    hp_ensure_configured();
#ifdef HP_HAVE_SNAPSHOT
    /* A public call is also a fork child's chance to restart its writer
     * and its listener. */
    hp_snapshot_poll();
#endif
#ifdef HP_HAVE_LISTENER
    hp_listener_poll();
#endif
    hp_buckets_reset_allocs();
    hp_peak_reset();
    return HEAPPROF_OK;
}
