/*
 * The lifecycle, the top of the tree: the constructor (configuration at
 * load; profiling is on from load, Go's default), start/stop, rate
 * control, snapshots and reset on demand, and fork handling, registered
 * here only and ordered across every module (see prefork below).
 */
#include "heapprof.h"

#include <pthread.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "buckets.h"
#include "config.h"
#include "front_attach.h"
#include "fileio.h"
#include "front_gc.h"
#include "http.h"
#include "ialloc.h"
#include "live.h"
#include "labels.h"
#include "leak_report.h"
#include "listener.h"
#include "log.h"
#include "peak.h"
#include "range.h"
#include "retired.h"
#include "record.h"
#include "sampler.h"
#include "snapshot.h"
#include "stack.h"
#include "symbolize.h"
#include "tree.h"
#include "unwind_guard.h"

extern char **environ;

/*
 * The fronts are not part of heapprof_core (the unit tests link the core
 * alone), and the static library links front_gc.o or front_attach.o only
 * when the program uses them: their fork functions are weak references,
 * NULL when the object is absent (then it has no state to protect).
 */
#pragma weak hp_gc_front_prefork
#pragma weak hp_gc_front_postfork_parent
#pragma weak hp_gc_front_postfork_child
#pragma weak hp_attach_postfork_child

/* Referenced by the malloc front so that a static link keeps this file. */
HP_HIDDEN extern const char hp_lifecycle_anchor;
const char hp_lifecycle_anchor = 1;

/* Serialises start/stop/configuration (never taken on allocation paths). */
static pthread_mutex_t lifecycle_lock = PTHREAD_MUTEX_INITIALIZER;
static bool explicit_start;
static bool services_started;
static struct hp_settings started_with;

/*
 * Fork handling, the one place it is registered (pthread_atfork in the
 * constructor). Before fork every lock a sample or an export can hold is
 * taken in lock order (front_gc's first: it holds chunk_lock while taking
 * ialloc's, the innermost lock); the parent releases them in reverse; the
 * child re-initialises them and marks its background threads gone, to be
 * restarted lazily (hp_restart_poll), never from the handler.
 */
/* The process whose memory this is: a vfork child runs in its parent's
 * memory under another pid (hp_lifecycle_around_close). */
static pid_t image_pid;

static void
prefork(void)
{
    if (hp_gc_front_prefork != NULL)
        hp_gc_front_prefork();
    hp_fence_enter();
    hp_stack_prefork();
    hp_buckets_prefork();
    hp_live_prefork();
    hp_ialloc_prefork();
    hp_range_prefork(); /* innermost: nothing is taken while it is held */
}

static void
postfork_parent(void)
{
    hp_range_postfork_parent();
    hp_ialloc_postfork_parent();
    hp_live_postfork_parent();
    hp_buckets_postfork_parent();
    hp_stack_postfork();
    hp_fence_exit();
    if (hp_gc_front_postfork_parent != NULL)
        hp_gc_front_postfork_parent();
}

static void
postfork_child(void)
{
    __atomic_store_n(&image_pid, getpid(), __ATOMIC_RELAXED);
    hp_range_postfork_child();
    hp_ialloc_postfork_child();
    hp_peak_postfork_child();
    hp_labels_postfork_child();
    hp_retired_postfork_child();
    hp_live_postfork_child();
    hp_buckets_postfork_child();
    hp_record_postfork_child();
    hp_stack_postfork();
    hp_stack_postfork_child();
    pthread_mutex_init(&lifecycle_lock, NULL);
    hp_symbolize_postfork_child();
    hp_listener_postfork_child();
    hp_http_postfork_child();
    hp_snapshot_postfork_child();
    __atomic_store_n(&hp_restart_pending, 1, __ATOMIC_RELEASE);
    hp_fence_exit();
    if (hp_gc_front_postfork_child != NULL)
        hp_gc_front_postfork_child();
    if (hp_attach_postfork_child != NULL)
        hp_attach_postfork_child();
    hp_agent_postfork_child();
    hp_tree_postfork_child();
    /* The restart runs at the child's next allocation, sampled or not. */
    hp_sampler_revisit();
}

/* The restart a fork child's first allocation (sent to the slow path by
 * hp_sampler_revisit) or public call asks for: each service restarts if it
 * was running in the parent. */
static void
restart_services(void)
{
    hp_snapshot_poll();
    hp_agent_restart();
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
    if (hp_settings.http[0] != '\0') {
        int rc = hp_listener_start(hp_settings.http);
        if (rc == HEAPPROF_OK || rc == HEAPPROF_EBUSY)
            hp_agent_start(hp_settings.http, rc == HEAPPROF_EBUSY);
    }
    if (hp_settings.snapshot_dir[0] != '\0')
        hp_snapshot_start();
    hp_fence_exit();
}

/* Ask the background services to stop; lifecycle lock held. */
static void
stop_services(void)
{
    if (!services_started)
        return;
    services_started = false;
    hp_fence_enter();
    hp_listener_stop();
    hp_agent_stop();
    hp_snapshot_stop();
    hp_fence_exit();
}

void
hp_lifecycle_apply(const struct hp_settings *s)
{
    hp_ensure_configured();
    pthread_mutex_lock(&lifecycle_lock);
    /* A listener or writer started from the environment at load (rare:
     * HEAPPROF_* in the target's environment) gives way to s. */
    if (strcmp(s->http, hp_settings.http) != 0 ||
        strcmp(s->snapshot_dir, hp_settings.snapshot_dir) != 0)
        stop_services();
    hp_settings_apply(s);
    started_with = *s;
    explicit_start = true;
    hp_sampling_pause(false);
    services_started = false;
    start_services();
    pthread_mutex_unlock(&lifecycle_lock);
}

void
hp_lifecycle_stop(void)
{
    hp_sampling_pause(true);
    pthread_mutex_lock(&lifecycle_lock);
    stop_services();
    explicit_start = false;
    pthread_mutex_unlock(&lifecycle_lock);
}

__attribute__((constructor(101))) static void
heapprof_process_init(void)
{
    __atomic_store_n(&image_pid, getpid(), __ATOMIC_RELAXED);
    if (hp_self_seccomp()) /* a filter in force from the start */
        hp_sandbox_note();
    hp_ensure_configured();
    hp_stack_init();
    if (hp_settings.leak_report)
        hp_leak_report_prepare();
    hp_restart_hook_set(restart_services);
    pthread_atfork(prefork, postfork_parent, postfork_child);
    pthread_mutex_lock(&lifecycle_lock);
    start_services();
    pthread_mutex_unlock(&lifecycle_lock);
}

/*
 * Around the program's closefrom or close_range (front_sandbox.c): the
 * services holding descriptors (the listener, the tree agent, a snapshot
 * being written) stop first and start again after, so that none uses or
 * closes a number the program gives to a file of its own meanwhile
 * (sshd and varnishd close every descriptor at start, their children
 * before exec); libunwind's pipe is opened again under its numbers. Not in
 * a vfork child, whose services are its parent's.
 */
void
hp_lifecycle_around_close(void (*close_fn)(void *), void *arg)
{
    if (getpid() != __atomic_load_n(&image_pid, __ATOMIC_RELAXED)) {
        close_fn(arg);
        return;
    }
    bool listener = hp_listener_pause();
    bool agent = hp_agent_pause();
    hp_snapshot_pause();
    close_fn(arg);
    (void)hp_unwind_guard_usable();
    hp_snapshot_resume();
    if (agent)
        hp_agent_resume();
    if (listener)
        (void)hp_listener_start(hp_settings.http);
}

/* ------------------------------------------------------------- public API */

void
heapprof_config_init(struct heapprof_config *cfg)
{
    if (cfg == NULL)
        return;
    struct hp_settings d;
    hp_settings_defaults(&d);
    memset(cfg, 0, sizeof *cfg);
    cfg->size = sizeof *cfg;
    cfg->rate = d.rate;
    cfg->stack_depth = d.stack_depth;
    cfg->max_memory = d.max_memory;
    cfg->snapshot_interval = d.snapshot_interval;
    cfg->snapshot_keep = d.snapshot_keep;
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
    hp_settings_apply(&s);
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
    if (rate > HEAPPROF_MAX_RATE)
        return HEAPPROF_EINVAL;
    hp_ensure_configured();
    hp_rate_set(rate);
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

/* ------------------------------------------- snapshots, run-time control */

int
heapprof_snapshot_now(void)
{
    hp_ensure_configured();
    return hp_snapshot_write_now();
}

int
heapprof_reset(void)
{
    hp_ensure_configured();
    /* A public call is also a fork child's chance to restart its writer. */
    restart_services();
    hp_buckets_reset_allocs();
    hp_peak_reset();
    return HEAPPROF_OK;
}
