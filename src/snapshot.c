/*
 * Snapshots to disk. State: a copy of the snapshot settings (conf), the
 * writer thread's existence, a wake-up semaphore and the failure-report
 * memory. One write at a time (write_lock): choose a name, write a
 * temporary nobody else can have prepared and publish it without replacing
 * anything (publish.c), then rotate this pid's files. The writer thread sleeps on the
 * semaphore with CLOCK_MONOTONIC deadlines between writes.
 */
#define _GNU_SOURCE
#include "snapshot.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "heapprof.h"
#include "log.h"
#include "peak.h"
#include "profile.h"
#include "publish.h"
#include "stats.h"
#include "symbolize.h"

#define NS_PER_S 1000000000ull
/* How long exit waits for a write in progress before giving up on it. */
#define EXIT_WAIT_NS (5 * NS_PER_S)
/* Same-second collisions tried before a write gives up on a name. */
#define MAX_SEQ 1000

struct snap_conf {
    char dir[HP_PATH_MAX];
    unsigned interval;
    unsigned keep;
    bool at_exit;
    int signal;
    bool peak;          /* HEAPPROF_SNAPSHOT_PEAK */
    uint64_t peak_step; /* 0 = automatic (peak_step_for) */
};

/*
 * Protects conf, configured, generation, thread_alive, signal_installed.
 * Held only for copies and flag changes, never while writing or while
 * another heapprof lock is taken. Lock order: write_lock, then state_lock.
 */
static pthread_mutex_t state_lock = PTHREAD_MUTEX_INITIALIZER;
static struct snap_conf conf;
static bool configured;
static uint64_t generation; /* bumped by each reconfiguration */
static bool thread_alive;
static int signal_installed; /* signal our handler is installed on */

/*
 * Serialises whole writes (writer thread, heapprof_snapshot_now, signal
 * and exit snapshots) and protects the naming and failure-report state
 * below. Taken by no allocation path; held while writing, when only the
 * export's own locks (symbolizer) are taken under it.
 */
static pthread_mutex_t write_lock = PTHREAD_MUTEX_INITIALIZER;
static int last_pid;
static int64_t last_sec = -1;
static unsigned last_seq;
static unsigned failing_kinds; /* bit per failure kind logged this streak */
/* Peak snapshots (also under write_lock): the in-use bytes of the peak
 * last written and its file, replaced by the next one. */
static uint64_t peak_written;
static char peak_file[128];

/*
 * The writer sleeps on a semaphore rather than a condition variable
 * because the snapshot signal's handler must wake it, and sem_post is
 * async-signal-safe where pthread_cond_signal is not; sem_clockwait gives
 * the CLOCK_MONOTONIC deadline (wall-clock steps do not move snapshots).
 */
static sem_t wake;
static int wake_ready;           /* atomic: sem_init done */
static int signal_pending;       /* atomic: set by the signal handler */
static int peak_pending;         /* atomic: set by the peak trigger */
static int exiting;              /* atomic: exit began, writer stops */
int hp_snapshot_restart_pending; /* atomic: fork child wants a writer */

static uint64_t n_written, n_failed, n_removed; /* atomic counters */

/* ------------------------------------------------------------------ names */

int
hp_snapshot_name(char *buf, size_t cap, int pid, int64_t t, unsigned seq)
{
    struct tm tm;
    time_t tt = (time_t)t;
    char ts[32];
    if (gmtime_r(&tt, &tm) == NULL ||
        strftime(ts, sizeof ts, "%Y%m%dT%H%M%SZ", &tm) != 16)
        return -1;
    int n = seq == 0 ? snprintf(buf, cap, "heap-%d-%s.pb.gz", pid, ts)
                     : snprintf(buf, cap, "heap-%d-%s-%u.pb.gz", pid, ts, seq);
    return n < 0 || (size_t)n >= cap ? -1 : n;
}

/* Parses a decimal without sign or leading zero; end at the first
 * non-digit. 0 on success. */
static int
parse_uint(const char **p, unsigned long long *out)
{
    const char *s = *p;
    if (*s < '0' || *s > '9' || (*s == '0' && s[1] >= '0' && s[1] <= '9'))
        return -1;
    unsigned long long v = 0;
    for (; *s >= '0' && *s <= '9'; s++) {
        if (v > 1000000000ull)
            return -1;
        v = v * 10 + (unsigned)(*s - '0');
    }
    *p = s;
    *out = v;
    return 0;
}

int
hp_snapshot_parse_name(const char *name, int pid, char ts[17], unsigned *seq)
{
    const char *p = name;
    unsigned long long v;
    if (strncmp(p, "heap-", 5) != 0)
        return -1;
    p += 5;
    if (parse_uint(&p, &v) != 0 || v != (unsigned long long)pid || *p != '-')
        return -1;
    p++;
    /* yyyymmddThhmmssZ */
    for (int i = 0; i < 16; i++) {
        bool digit = p[i] >= '0' && p[i] <= '9';
        if ((i == 8 && p[i] != 'T') || (i == 15 && p[i] != 'Z') ||
            (i != 8 && i != 15 && !digit))
            return -1;
    }
    memcpy(ts, p, 16);
    ts[16] = '\0';
    p += 16;
    *seq = 0;
    if (*p == '-') {
        p++;
        if (parse_uint(&p, &v) != 0 || v == 0 || v > MAX_SEQ)
            return -1;
        *seq = (unsigned)v;
    }
    return strcmp(p, ".pb.gz") == 0 ? 0 : -1;
}

/* A snapshot's name, "-peak" before ".pb.gz" for a peak snapshot. */
static int
kind_name(char *buf, size_t cap, int pid, int64_t t, unsigned seq, bool peak)
{
    int n = hp_snapshot_name(buf, cap, pid, t, seq);
    if (n < 0 || !peak)
        return n;
    if ((size_t)n + 5 >= cap)
        return -1;
    memmove(buf + n - 6 + 5, buf + n - 6, 7); /* ".pb.gz" and its NUL */
    memcpy(buf + n - 6, "-peak", 5);
    return n + 5;
}

/* --------------------------------------------------------------- rotation */

struct own_file {
    char ts[17];
    unsigned seq;
    char name[96];
};

static int
own_file_cmp(const void *pa, const void *pb)
{
    const struct own_file *a = pa, *b = pb;
    int c = strcmp(a->ts, b->ts);
    if (c != 0)
        return c;
    return a->seq < b->seq ? -1 : a->seq > b->seq;
}

/* Rotation on an open directory; see hp_snapshot_rotate. */
static int
rotate_fd(int dirfd, int pid, unsigned keep)
{
    int fd = dup(dirfd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (d == NULL) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    struct own_file *files = NULL;
    size_t n = 0, cap = 0;
    int removed = 0;
    struct dirent *de;
    uid_t uid = geteuid();
    while ((de = readdir(d)) != NULL) {
        struct own_file f;
        struct stat st;
        /* Only our own regular files: a link or a file someone else put
         * under one of our names is left alone. */
        if (strlen(de->d_name) >= sizeof f.name ||
            hp_snapshot_parse_name(de->d_name, pid, f.ts, &f.seq) != 0 ||
            fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
            !S_ISREG(st.st_mode) || st.st_uid != uid)
            continue;
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 32;
            struct own_file *nf = realloc(files, ncap * sizeof *nf);
            if (nf == NULL)
                break; /* rotate what we have; the rest goes next time */
            files = nf;
            cap = ncap;
        }
        strcpy(f.name, de->d_name);
        files[n++] = f;
    }
    closedir(d);
    if (n > keep) {
        qsort(files, n, sizeof *files, own_file_cmp);
        for (size_t i = 0; i < n - keep; i++)
            if (unlinkat(dirfd, files[i].name, 0) == 0)
                removed++;
    }
    free(files);
    return removed;
}

int
hp_snapshot_rotate(const char *dir, int pid, unsigned keep)
{
    int saved = errno;
    hp_fence_enter();
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = -1;
    if (dfd >= 0) {
        rc = rotate_fd(dfd, pid, keep);
        close(dfd);
    }
    hp_fence_exit();
    errno = saved;
    return rc;
}

/* ----------------------------------------------------- failure reporting */

enum fail_kind {
    FK_NODIR,   /* directory missing (never created, or removed) */
    FK_NOTDIR,  /* a path component is not a directory */
    FK_ACCESS,  /* permission denied, read-only file system */
    FK_FULL,    /* no space or quota */
    FK_IO,      /* any other system error */
    FK_PROFILE, /* the profile itself could not be built */
    FK_NAME,    /* no free name (path too long, too many per second) */
};

static enum fail_kind
classify(int err)
{
    switch (err) {
    case ENOENT:
        return FK_NODIR;
    case ENOTDIR:
        return FK_NOTDIR;
    case EACCES:
    case EPERM:
    case EROFS:
        return FK_ACCESS;
    case ENOSPC:
    case EDQUOT:
        return FK_FULL;
    default:
        return FK_IO;
    }
}

static const char *
kind_text(enum fail_kind k)
{
    switch (k) {
    case FK_NODIR:
        return "the directory does not exist";
    case FK_NOTDIR:
        return "the path is not a directory";
    case FK_ACCESS:
        return "the directory is not writable";
    case FK_FULL:
        return "the disk is full";
    case FK_IO:
        return "I/O error";
    case FK_PROFILE:
        return "the profile could not be built";
    case FK_NAME:
        return "no usable file name";
    }
    return "error";
}

/*
 * One line per kind of failure per failure streak, and one line when
 * snapshots succeed again: a directory that stays unwritable for a month
 * costs one line, not one per interval. write_lock held.
 */
static void
log_failure(const struct snap_conf *c, enum fail_kind k, const char *what,
            const char *detail)
{
    if (failing_kinds & (1u << k))
        return;
    failing_kinds |= 1u << k;
    hp_log("snapshots to %s failing: %s (%s: %s); retrying every %u s, "
           "quietly",
           c->dir, kind_text(k), what, detail, c->interval);
}

static void
report_failure(const struct snap_conf *c, enum fail_kind k, const char *what,
               const char *detail)
{
    __atomic_fetch_add(&n_failed, 1, __ATOMIC_RELAXED);
    log_failure(c, k, what, detail);
}

static void
report_success(const struct snap_conf *c)
{
    __atomic_fetch_add(&n_written, 1, __ATOMIC_RELAXED);
    if (failing_kinds != 0)
        hp_log("snapshots to %s resumed", c->dir);
    failing_kinds = 0;
}

/* ------------------------------------------------------------------ write */

/* The first free name of this second from *seq on (a same-pid file from
 * before, or the clock went back, can hold one). 0, or -1. */
static int
free_name(int dfd, char name[128], int pid, int64_t sec, unsigned *seq,
          bool peak)
{
    for (;; (*seq)++) {
        struct stat st;
        if (*seq > MAX_SEQ || kind_name(name, 128, pid, sec, *seq, peak) < 0)
            return -1;
        if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
            return 0;
    }
}

/* Write the profile through p and publish it under a free name of this
 * second, never replacing one. 0, or an errno value with *what. */
static int
write_publish(struct hp_publish *p, char name[128], int pid, int64_t sec,
              unsigned *seq, bool peak, int *rc, const char **what)
{
    struct heapprof_sink sink = {hp_publish_sink_write, p};
    *rc = hp_profile_write(peak ? HEAPPROF_PROFILE_PEAK : HEAPPROF_PROFILE_HEAP,
                           &sink);
    *what = "write";
    if (*rc != HEAPPROF_OK)
        return p->err;
    int err;
    /* A name taken meanwhile (only a same-pid leftover can be): the next
     * sequence. */
    while ((err = hp_publish_commit(p, name, false, what)) == EEXIST) {
        (*seq)++;
        if (free_name(p->dfd, name, pid, sec, seq, peak) != 0)
            break;
    }
    return err;
}

/* The newest peak snapshot only: the previous one of this pid goes. */
static void
replace_peak_file(int dfd, int pid, const char *name)
{
    (void)pid;
    if (peak_file[0] != '\0' && strcmp(peak_file, name) != 0 &&
        unlinkat(dfd, peak_file, 0) == 0)
        __atomic_fetch_add(&n_removed, 1, __ATOMIC_RELAXED);
    snprintf(peak_file, sizeof peak_file, "%s", name);
}

/* Report a failed write (p open unless the failure was its creation). */
static int
write_failed(const struct snap_conf *c, struct hp_publish *p, bool opened,
             int err, const char *what, int rc)
{
    if (opened)
        hp_publish_abort(p);
    if (err != 0)
        report_failure(c, classify(err), what, strerror(err));
    else
        report_failure(c, FK_PROFILE, "profile", heapprof_strerror(rc));
    return rc == HEAPPROF_OK ? HEAPPROF_EIO : rc;
}

/*
 * Write and publish one snapshot (peak: the peak profile, replacing the
 * previous peak file) with the settings in *c. write_lock held, fence
 * raised. HEAPPROF_OK or an error code; failures are reported, and old
 * snapshots are rotated after a failure too (on a full disk, one more, to
 * make room for the next).
 */
static int
write_locked(const struct snap_conf *c, bool peak)
{
    int pid = (int)getpid();
    int64_t sec = (int64_t)(hp_now_wall_ns() / NS_PER_S);
    unsigned seq = pid == last_pid && sec == last_sec ? last_seq + 1 : 0;

    int dfd = open(c->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        int err = errno;
        report_failure(c, classify(err), "open", strerror(err));
        return HEAPPROF_EIO;
    }
    char name[128];
    int rc = HEAPPROF_EIO;
    unsigned keep = c->keep;
    struct hp_publish p;
    const char *what = "create";
    int err = 0;
    if (free_name(dfd, name, pid, sec, &seq, peak) != 0) {
        report_failure(c, FK_NAME, "name", "too many snapshots per second");
    } else if ((err = hp_publish_open(&p, dfd)) == 0 &&
               (err = write_publish(&p, name, pid, sec, &seq, peak, &rc,
                                    &what)) == 0 &&
               rc == HEAPPROF_OK) {
        last_pid = pid;
        last_sec = sec;
        last_seq = seq;
        report_success(c);
        if (peak)
            replace_peak_file(dfd, pid, name);
    } else {
        rc = write_failed(c, &p, strcmp(what, "create") != 0, err, what, rc);
        if (classify(err) == FK_FULL && keep > 1)
            keep--;
    }
    int removed = peak ? 0 : rotate_fd(dfd, pid, keep);
    if (removed > 0)
        __atomic_fetch_add(&n_removed, (uint64_t)removed, __ATOMIC_RELAXED);
    close(dfd);
    return rc;
}

enum why { WHY_TIMER, WHY_SIGNAL, WHY_API, WHY_EXIT, WHY_PEAK, WHY_EXIT_PEAK };

/*
 * How far in-use must rise over the last written peak for the next one:
 * HEAPPROF_SNAPSHOT_PEAK_STEP, or by default an eighth of it and at least
 * 4 MiB, so a heap growing from 4 MiB to 4 GiB writes about 60 files, not
 * one per new high, and one that stays flat writes none.
 */
static uint64_t
peak_step_for(const struct snap_conf *c, uint64_t written)
{
    if (c->peak_step != 0)
        return c->peak_step;
    uint64_t step = written / 8;
    return step > ((uint64_t)4 << 20) ? step : (uint64_t)4 << 20;
}

/* Arm the peak trigger one step above the last written peak. write_lock
 * held (peak_written). */
static void
arm_peak(const struct snap_conf *c)
{
    uint64_t step = peak_step_for(c, peak_written);
    hp_peak_arm(c->peak && peak_written <= UINT64_MAX - step
                    ? peak_written + step
                    : UINT64_MAX);
}

/*
 * Lock m, giving up after max_ns. A try-and-sleep loop rather than
 * pthread_mutex_clocklock: the sanitizers do not know that call, and a
 * 10 ms granularity is plenty for an exit path.
 */
static int
lock_bounded(pthread_mutex_t *m, uint64_t max_ns)
{
    const struct timespec step = {0, 10 * 1000 * 1000};
    for (uint64_t waited = 0;; waited += (uint64_t)step.tv_nsec) {
        int rc = pthread_mutex_trylock(m);
        if (rc != EBUSY || waited >= max_ns)
            return rc;
        nanosleep(&step, NULL);
    }
}

/*
 * One snapshot: takes write_lock (bounded wait at exit, so a writer stuck
 * on a dead NFS server cannot hang the host's exit), copies the settings,
 * writes. Callable from any thread but not from a signal handler.
 */
static int
write_snapshot(enum why why)
{
    int saved = errno;
    hp_fence_enter();
    int rc = why == WHY_EXIT ? lock_bounded(&write_lock, EXIT_WAIT_NS)
                             : pthread_mutex_lock(&write_lock);
    if (rc != 0) {
        hp_fence_exit();
        errno = saved;
        return HEAPPROF_EBUSY;
    }
    pthread_mutex_lock(&state_lock);
    struct snap_conf c = conf;
    bool ok = configured;
    pthread_mutex_unlock(&state_lock);
    /* A later heapprof_start without a directory turned snapshots off. */
    ok = ok && __atomic_load_n(&hp_settings.snapshot_dir[0],
                               __ATOMIC_RELAXED) != '\0';
    /* Once exit began only the exit snapshot itself is written. */
    if (why != WHY_EXIT && why != WHY_EXIT_PEAK &&
        __atomic_load_n(&exiting, __ATOMIC_ACQUIRE))
        ok = false;
    bool peak = why == WHY_PEAK || why == WHY_EXIT_PEAK;
    /* The capture before the write: the file holds at least that (the
     * profile refreshes it), so the exit check never skips a higher peak. */
    uint64_t before = 0, wall;
    if (peak)
        hp_peak_captured(&before, &wall);
    rc = ok ? write_locked(&c, peak) : HEAPPROF_ESTATE;
    if (ok && peak && rc == HEAPPROF_OK)
        __atomic_store_n(&peak_written, before, __ATOMIC_RELAXED);
    if (ok && peak && why == WHY_PEAK)
        arm_peak(&c);
    pthread_mutex_unlock(&write_lock);
    hp_fence_exit();
    errno = saved;
    return rc;
}

/* ----------------------------------------------------------- the writer */

static void
timespec_from_ns(struct timespec *ts, uint64_t ns)
{
    ts->tv_sec = (time_t)(ns / NS_PER_S);
    ts->tv_nsec = (long)(ns % NS_PER_S);
}

/*
 * Periodic snapshots keep the contract's plain name. When a write was
 * delayed past a second boundary and the next one comes on time, both
 * would fall in the same UTC second; wait (under a second) for the next
 * one instead of adding a suffix. Writer thread only, no lock held.
 */
static void
wait_for_fresh_second(void)
{
    pthread_mutex_lock(&write_lock);
    int64_t prev_sec = last_pid == (int)getpid() ? last_sec : -1;
    pthread_mutex_unlock(&write_lock);
    uint64_t now = hp_now_wall_ns();
    if ((int64_t)(now / NS_PER_S) != prev_sec)
        return;
    uint64_t left = NS_PER_S - now % NS_PER_S + 1000000;
    struct timespec ts = {(time_t)(left / NS_PER_S), (long)(left % NS_PER_S)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static void *
writer_main(void *arg)
{
    (void)arg;
    /* Everything this thread allocates (export, zlib, libdw) is heapprof's
     * own work: never sampled. The fence is never lowered. */
    hp_fence_enter();
    hp_symbolize_thread_init();
    uint64_t seen = 0, due = 0, peak_not_before = 0;
    for (;;) {
        if (__atomic_load_n(&exiting, __ATOMIC_ACQUIRE))
            break;
        pthread_mutex_lock(&state_lock);
        if (!configured) {
            /* hp_snapshot_stop: gone in the same step, so a start that
             * sees thread_alive false creates the next writer. */
            thread_alive = false;
            pthread_mutex_unlock(&state_lock);
            return NULL;
        }
        uint64_t gen = generation;
        uint64_t interval_ns = (uint64_t)conf.interval * NS_PER_S;
        pthread_mutex_unlock(&state_lock);
        uint64_t now = hp_now_mono_ns();
        if (gen != seen) {
            /* New settings (or a new thread): the first snapshot comes one
             * interval from now; an empty profile at start helps nobody. */
            seen = gen;
            due = now + interval_ns;
        }
        bool by_signal = __atomic_load_n(&signal_pending, __ATOMIC_ACQUIRE);
        uint64_t wake_at = due;
        if (__atomic_load_n(&peak_pending, __ATOMIC_ACQUIRE)) {
            /* A new high: at most one peak file a second however fast
             * memory climbs (the trigger is re-armed after each). */
            if (now >= peak_not_before) {
                __atomic_store_n(&peak_pending, 0, __ATOMIC_RELEASE);
                write_snapshot(WHY_PEAK);
                peak_not_before = hp_now_mono_ns() + NS_PER_S;
                continue;
            }
            if (peak_not_before < wake_at)
                wake_at = peak_not_before;
        }
        if (!by_signal && now < due) {
            struct timespec ts;
            timespec_from_ns(&ts, wake_at);
            /* EINTR cannot happen (every signal is blocked here); a
             * timeout or a post both lead back to the checks above. */
            sem_clockwait(&wake, CLOCK_MONOTONIC, &ts);
            continue;
        }
        __atomic_store_n(&signal_pending, 0, __ATOMIC_RELEASE);
        if (now >= due) {
            /* Keep the cadence; after a long stall (suspend, slow disk)
             * start again from now instead of writing a burst. */
            due += interval_ns;
            if (due <= now)
                due = now + interval_ns;
        }
        if (!by_signal)
            wait_for_fresh_second();
        write_snapshot(by_signal ? WHY_SIGNAL : WHY_TIMER);
    }
    pthread_mutex_lock(&state_lock);
    thread_alive = false;
    pthread_mutex_unlock(&state_lock);
    return NULL;
}

/* state_lock held, fence raised. */
static void
start_thread_locked(void)
{
    if (thread_alive || !configured ||
        __atomic_load_n(&exiting, __ATOMIC_ACQUIRE))
        return;
    /* Every signal blocked: the host's signals (and the snapshot signal)
     * are always delivered to the host's own threads. */
    int err = hp_thread_start(writer_main, NULL, "heapprof-snap");
    if (err != 0) {
        hp_log("snapshots: cannot start the writer thread: %s; "
               "heapprof_snapshot_now() still works",
               strerror(err));
        return;
    }
    thread_alive = true;
}

void
hp_snapshot_restart(void)
{
    if (!__atomic_exchange_n(&hp_snapshot_restart_pending, 0, __ATOMIC_ACQ_REL))
        return;
    hp_fence_enter();
    pthread_mutex_lock(&state_lock);
    start_thread_locked();
    pthread_mutex_unlock(&state_lock);
    hp_fence_exit();
}

/* ----------------------------------------------------------------- signal */

static void
on_snapshot_signal(int sig)
{
    (void)sig;
    /* Only a flag and a post: both async-signal-safe, no lock, no I/O. */
    int saved = errno;
    __atomic_store_n(&signal_pending, 1, __ATOMIC_RELEASE);
    if (__atomic_load_n(&wake_ready, __ATOMIC_ACQUIRE))
        sem_post(&wake);
    errno = saved;
}

/*
 * Install the handler on sig unless the program already handles it: the
 * host's signals are never taken from it. state_lock held.
 */
static void
install_signal_locked(int sig)
{
    if (sig == 0 || sig == signal_installed)
        return;
    struct sigaction old;
    if (sigaction(sig, NULL, &old) != 0)
        return;
    if ((old.sa_flags & SA_SIGINFO) ||
        (old.sa_handler != SIG_DFL && old.sa_handler != SIG_IGN)) {
        hp_log("HEAPPROF_SNAPSHOT_SIGNAL: signal %d (%s) already has a "
               "handler in this program; not taken, no snapshot on it",
               sig, strsignal(sig));
        return;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_snapshot_signal;
    sigemptyset(&sa.sa_mask);
    /* SA_RESTART: the host's blocking calls do not see EINTR from us. */
    sa.sa_flags = SA_RESTART;
    if (sigaction(sig, &sa, NULL) == 0)
        signal_installed = sig;
}

/* ---------------------------------------------------------------- control */

/* peak.c's trigger, on the sampled path: a flag and a post, nothing else. */
static void
on_peak(void)
{
    __atomic_store_n(&peak_pending, 1, __ATOMIC_RELEASE);
    if (__atomic_load_n(&wake_ready, __ATOMIC_ACQUIRE))
        sem_post(&wake);
}

static void
wake_writer(void)
{
    if (__atomic_load_n(&wake_ready, __ATOMIC_ACQUIRE))
        sem_post(&wake);
}

/* Report an unusable or shared directory at start rather than one
 * interval later, and clean up after earlier writers that were killed. */
static void
probe_dir(const struct snap_conf *c)
{
    struct stat st;
    int err = 0;
    if (stat(c->dir, &st) != 0)
        err = errno;
    else if (!S_ISDIR(st.st_mode))
        err = ENOTDIR;
    else if (access(c->dir, W_OK | X_OK) != 0)
        err = errno;
    if (err != 0) {
        pthread_mutex_lock(&write_lock);
        log_failure(c, classify(err), "check", strerror(err));
        pthread_mutex_unlock(&write_lock);
        return;
    }
    int dfd = open(c->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return;
    unsigned mode;
    if (hp_publish_dir_shared(dfd, &mode))
        hp_log("snapshots: %s can be written by other users (mode %04o): "
               "they can remove or replace snapshots (heapprof never "
               "follows their links)",
               c->dir, mode);
    /* Left by a writer killed mid-write (kill -9). */
    hp_publish_clean_stale(dfd);
    close(dfd);
}

void
hp_snapshot_start(void)
{
    hp_fence_enter();
    pthread_mutex_lock(&state_lock);
    if (!__atomic_load_n(&wake_ready, __ATOMIC_ACQUIRE)) {
        sem_init(&wake, 0, 0);
        __atomic_store_n(&wake_ready, 1, __ATOMIC_RELEASE);
    }
    snprintf(conf.dir, sizeof conf.dir, "%s", hp_settings.snapshot_dir);
    conf.interval =
        hp_settings.snapshot_interval ? hp_settings.snapshot_interval : 60;
    conf.keep = hp_settings.snapshot_keep ? hp_settings.snapshot_keep : 1;
    conf.at_exit = hp_settings.snapshot_at_exit;
    conf.signal = hp_settings.snapshot_signal;
    conf.peak = hp_settings.snapshot_peak;
    conf.peak_step = hp_settings.snapshot_peak_step;
    configured = conf.dir[0] != '\0';
    generation++;
    struct snap_conf c = conf;
    if (configured) {
        install_signal_locked(conf.signal);
        start_thread_locked();
    }
    pthread_mutex_unlock(&state_lock);
    hp_peak_set_hook(on_peak);
    pthread_mutex_lock(&write_lock);
    c.peak = c.peak && configured;
    arm_peak(&c);
    pthread_mutex_unlock(&write_lock);
    wake_writer();
    if (c.dir[0] != '\0')
        probe_dir(&c);
    hp_fence_exit();
}

void
hp_snapshot_stop(void)
{
    hp_fence_enter();
    pthread_mutex_lock(&state_lock);
    configured = false;
    generation++;
    pthread_mutex_unlock(&state_lock);
    hp_peak_arm(UINT64_MAX);
    wake_writer();
    hp_fence_exit();
}

int
hp_snapshot_write_now(void)
{
    hp_snapshot_poll();
    return write_snapshot(WHY_API);
}

void
hp_snapshot_postfork_child(void)
{
    /* The parent's writer may have held either lock at fork time. */
    pthread_mutex_init(&state_lock, NULL);
    pthread_mutex_init(&write_lock, NULL);
    if (__atomic_load_n(&wake_ready, __ATOMIC_ACQUIRE))
        sem_init(&wake, 0, 0);
    thread_alive = false;
    /* New pid: new names, and the child's own failure reports. */
    last_pid = 0;
    last_sec = -1;
    failing_kinds = 0;
    n_written = n_failed = n_removed = 0;
    /* The parent's peak file stays the parent's; the child's own peak
     * starts from what it inherited. */
    peak_file[0] = '\0';
    peak_written = 0;
    __atomic_store_n(&hp_snapshot_restart_pending,
                     configured && !__atomic_load_n(&exiting, __ATOMIC_RELAXED),
                     __ATOMIC_RELEASE);
}

void
hp_snapshot_get_stats(struct hp_snapshot_stats *out)
{
    out->written = __atomic_load_n(&n_written, __ATOMIC_RELAXED);
    out->failed = __atomic_load_n(&n_failed, __ATOMIC_RELAXED);
    out->removed = __atomic_load_n(&n_removed, __ATOMIC_RELAXED);
    pthread_mutex_lock(&state_lock);
    out->thread_alive = thread_alive;
    pthread_mutex_unlock(&state_lock);
}

/*
 * At exit (exit() or a return from main; not _exit or a fatal signal):
 * stop the writer from starting another write, wait a bounded time for
 * one in progress so no temporary is left behind, and write the exit
 * snapshot if asked. No join: the writer may be blocked in a write that
 * never ends, and the process is going away anyway. Shared-object
 * destructors run after the program's atexit handlers, so the exit
 * snapshot shows what the program still held at the very end.
 */
__attribute__((destructor)) static void
snapshot_at_exit(void)
{
    if (!__atomic_load_n(&wake_ready, __ATOMIC_ACQUIRE))
        return;
    hp_fence_enter();
    __atomic_store_n(&exiting, 1, __ATOMIC_RELEASE);
    __atomic_store_n(&hp_snapshot_restart_pending, 0, __ATOMIC_RELEASE);
    wake_writer();
    pthread_mutex_lock(&state_lock);
    bool at_exit = configured && (conf.at_exit || hp_settings.leak_report);
    bool peak = configured && conf.peak;
    pthread_mutex_unlock(&state_lock);
    /* A process that sampled nothing (most short-lived children of a
     * build: below one sampling period of allocation) has an empty
     * profile: no exit file for it, and no exit cost. */
    bool sampled = hp_stat_get(&hp_stats.samples) > 0;
    if (peak && sampled &&
        hp_peak_highest_bytes() >
            __atomic_load_n(&peak_written, __ATOMIC_RELAXED))
        write_snapshot(WHY_EXIT_PEAK); /* the peak not written yet */
    if (at_exit && sampled) {
        write_snapshot(WHY_EXIT);
    } else {
        /* Only wait for a write in progress to finish. */
        if (lock_bounded(&write_lock, EXIT_WAIT_NS) == 0)
            pthread_mutex_unlock(&write_lock);
    }
    hp_fence_exit();
}

void
hp_snapshot_pause(void)
{
    pthread_mutex_lock(&write_lock);
}

void
hp_snapshot_resume(void)
{
    pthread_mutex_unlock(&write_lock);
}
