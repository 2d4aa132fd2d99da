/*
 * The peak-heap profile: the in-use profile as it was when heapprof's
 * (sampled, unbiased) estimate of in-use bytes was highest since start or
 * since heapprof_reset(). Every recorded allocation and free moves a
 * running total; when the total passes the last capture by a margin
 * (1/64 of it, at least two sampling periods), the thread that saw it
 * copies every bucket's in-use values into the bucket's peak fields. So
 * the profile served is within that margin of the true peak, and a
 * capture costs one pass over the buckets, a few hundred times over a
 * heap's growth from megabytes to gigabytes.
 */
#ifndef HP_PEAK_H
#define HP_PEAK_H

#include "internal.h"

/* A recorded allocation / free of `bytes` unbiased bytes (sampled path,
 * inside the fence). Never blocks: a capture in progress makes others skip
 * theirs. Never calls malloc. */
HP_HIDDEN void hp_peak_note_alloc(uint64_t bytes);
HP_HIDDEN void hp_peak_note_free(uint64_t bytes);

/* Restart the peak from the current state (heapprof_reset). */
HP_HIDDEN void hp_peak_reset(void);

/* The running in-use estimate, the most it has been (exact, unlike the
 * capture, which lags it by up to the margin), and the capture's total
 * and wall time. */
HP_HIDDEN uint64_t hp_peak_inuse_bytes(void);
HP_HIDDEN uint64_t hp_peak_highest_bytes(void);
HP_HIDDEN void hp_peak_captured(uint64_t *bytes, uint64_t *wall_ns);
/* The same after hp_peak_refresh_locked(): what a reader is served now. */
HP_HIDDEN void hp_peak_refreshed(uint64_t *bytes, uint64_t *wall_ns);

/* Readers of the buckets' peak fields hold the capture lock. */
HP_HIDDEN void hp_peak_lock(void);
HP_HIDDEN void hp_peak_unlock(void);
HP_HIDDEN void hp_peak_captured_locked(uint64_t *bytes, uint64_t *wall_ns);
/* Capture now if more is in use now than at the last capture (readers of
 * the peak profile call it first, with the lock held). */
HP_HIDDEN void hp_peak_refresh_locked(void);

HP_HIDDEN void hp_peak_postfork_child(void);

/*
 * Peak snapshots (HEAPPROF_SNAPSHOT_PEAK, written by snapshot.c's writer):
 * hp_peak_arm(bytes) asks for hook() once in-use reaches bytes (UINT64_MAX
 * disarms). The recording thread that crosses it disarms the trigger and
 * calls hook, which must only raise a flag and wake the writer: it runs
 * on the sampled path, inside the fence, possibly with locks held.
 */
HP_HIDDEN void hp_peak_set_hook(void (*hook)(void));
HP_HIDDEN void hp_peak_arm(uint64_t bytes);

#endif
