/*
 * Snapshots to disk (HEAPPROF_SNAPSHOT_*): one detached writer thread per
 * process that, every interval, publishes the heap profile as
 * DIR/heap-<pid>-<UTC yyyymmddThhmmssZ>.pb.gz (hidden temporary, fsync,
 * rename, directory fsync) and keeps the newest KEEP files of its own pid.
 * Also on demand (heapprof_snapshot_now), on a user-named signal and at
 * exit. The writer lives inside the reentrancy fence and blocks every
 * signal, so the host never notices it.
 */
#ifndef HP_SNAPSHOT_H
#define HP_SNAPSHOT_H

#include "internal.h"

/*
 * Start, or re-configure, snapshots from hp_settings (dir, interval, keep,
 * at-exit, signal). A second call updates the running writer and restarts
 * its interval from now. Called by heapprof.c with the lifecycle lock held
 * and the fence raised; never from an allocator hook. Logs, never fails
 * the host: a directory that cannot be written is reported once and
 * retried every interval.
 */
HP_HIDDEN void hp_snapshot_start(void);

/*
 * Stop snapshots (heapprof detach): the writer thread exits at its next
 * wake-up, which this call triggers, and no exit snapshot is written.
 * Returns at once, without waiting for the thread. hp_snapshot_start
 * starts them again.
 */
HP_HIDDEN void hp_snapshot_stop(void);

/* No snapshot is being written between these (write_lock): its file's
 * descriptor is closed. */
HP_HIDDEN void hp_snapshot_pause(void);
HP_HIDDEN void hp_snapshot_resume(void);

/*
 * Fork child: the writer thread did not survive the fork. Re-initialises
 * the locks, forgets the thread and, if snapshots are configured, asks for
 * a lazy restart (hp_snapshot_poll). Creates no thread and takes no lock:
 * it runs inside the atfork child handler.
 */
HP_HIDDEN void hp_snapshot_postfork_child(void);

/*
 * One snapshot now, written by the calling thread (heapprof_snapshot_now).
 * HEAPPROF_OK, HEAPPROF_ESTATE when no directory is configured, or the
 * write's error (HEAPPROF_EIO, HEAPPROF_ENOMEM). Serialised with the
 * writer thread; keeps errno. Not async-signal-safe.
 */
HP_HIDDEN int hp_snapshot_write_now(void);

/*
 * Lazy restart after fork. A pthread_atfork child handler runs before the
 * other libraries' child handlers and may be followed at once by exec, so
 * the writer is re-created at the child's next opportunity instead: its
 * next sampled allocation (the record path calls hp_snapshot_poll), or any
 * heapprof_start / heapprof_snapshot_now / heapprof_reset call. The check
 * is one relaxed load; safe inside the fence with no heapprof lock held.
 */
HP_HIDDEN extern int hp_snapshot_restart_pending;
HP_HIDDEN void hp_snapshot_restart(void);

static inline void
hp_snapshot_poll(void)
{
    if (HP_UNLIKELY(
            __atomic_load_n(&hp_snapshot_restart_pending, __ATOMIC_RELAXED)))
        hp_snapshot_restart();
}

/* Counters for tests and diagnostics. */
struct hp_snapshot_stats {
    uint64_t written; /* snapshots published */
    uint64_t failed;  /* attempts that failed */
    uint64_t removed; /* old snapshots (and stale temporaries) removed */
    int thread_alive; /* writer thread running in this process */
};
HP_HIDDEN void hp_snapshot_get_stats(struct hp_snapshot_stats *out);

/*
 * Names, exposed for the unit tests. hp_snapshot_name() formats the file
 * name for pid, wall-clock second t and sequence number seq (0 for the
 * first file of that second: the contract name; n > 0 adds "-n" so two
 * snapshots in one second never overwrite each other). Returns the length,
 * or -1 if cap is too small.
 * hp_snapshot_parse_name() accepts exactly the names hp_snapshot_name()
 * makes for pid, giving the 16-character timestamp and seq; 0 on a match.
 */
HP_HIDDEN int hp_snapshot_name(char *buf, size_t cap, int pid, int64_t t,
                               unsigned seq);
HP_HIDDEN int hp_snapshot_parse_name(const char *name, int pid, char ts[17],
                                     unsigned *seq);

/*
 * Rotation, exposed for the unit tests: in dir, keep the newest `keep`
 * snapshots of pid (by timestamp, then sequence), remove the older ones
 * and pid's stale hidden temporaries; touch nothing else. Returns the
 * number of files removed, or -1 if dir cannot be listed.
 */
HP_HIDDEN int hp_snapshot_rotate(const char *dir, int pid, unsigned keep);

#endif
