/*
 * Recording of sampled allocations and their frees. The slow path captures
 * the stack with no heapprof lock held (libunwind may take the loader
 * lock), then updates the bucket and the live table.
 */
#include "record.h"

#include <errno.h>
#include <signal.h>
#include <stdalign.h>
#include <stdint.h>

#include "buckets.h"
#include "config.h"
#include "ialloc.h"
#include "labels.h"
#include "live.h"
#include "log.h"
#include "peak.h"
#include "stack.h"
#include "stats.h"

/* Stack a sample may need below record_alloc's caller: about 740 bytes
 * measured when the frame cache walks, 4.4 KiB when libunwind walks (a
 * return address not cached yet) and reads the unwind tables. */
#define SAMPLE_STACK_NEED (16 * 1024)

/* Changes of alternate stacks seen (front_signal.c), from 1 so that a new
 * thread's zeroed cache is stale; 0 while changes may go unseen. */
static uint32_t altstack_changes;

void
hp_record_altstack_changed(void)
{
    __atomic_fetch_add(&altstack_changes, 1, __ATOMIC_RELEASE);
}

void
hp_record_altstack_tracked(void)
{
    __atomic_store_n(&altstack_changes, 1, __ATOMIC_RELEASE);
}

/*
 * True on an alternate signal stack with less than SAMPLE_STACK_NEED left:
 * a handler that allocates on a SIGSTKSZ stack would overflow it (and, if
 * that stack was malloc'ed, the heap below it). Where the thread's stack is
 * is read with sigaltstack and kept until the program changes one; on the
 * sampled path only; inlined so that it costs no frame of its own.
 */
static bool
altstack_read(uint32_t changes)
{
    stack_t ss;
    if (sigaltstack(NULL, &ss) != 0)
        return false;
    /* Disabled, or disarmed while a handler runs on it (SS_AUTODISARM):
     * the kernel no longer says where; it is not used by this sample. */
    bool none = (ss.ss_flags & SS_DISABLE) != 0;
    hp_tls.altstack_lo = none ? 0 : (uintptr_t)ss.ss_sp;
    hp_tls.altstack_hi = none ? 0 : (uintptr_t)ss.ss_sp + ss.ss_size;
    hp_tls.altstack_seen = changes;
    return true;
}

void
hp_record_altstack_refresh(void)
{
    (void)altstack_read(__atomic_load_n(&altstack_changes, __ATOMIC_ACQUIRE));
}

static inline __attribute__((always_inline)) bool
on_small_altstack(void)
{
    uintptr_t sp = (uintptr_t)__builtin_frame_address(0);
    uint32_t changes = __atomic_load_n(&altstack_changes, __ATOMIC_ACQUIRE);
    if (changes == 0 || hp_tls.altstack_seen != changes) {
        /* Under a seccomp filter sigaltstack may kill: not knowing where
         * the stack is, the sample is skipped. */
        if (__atomic_load_n(&hp_sandboxed, __ATOMIC_RELAXED))
            return true;
        if (!altstack_read(changes))
            return false;
    }
    return sp >= hp_tls.altstack_lo && sp < hp_tls.altstack_hi &&
           sp < hp_tls.altstack_lo + SAMPLE_STACK_NEED;
}

/*
 * Frame buffers for samples in flight, kept off the caller's stack (which
 * may be a small signal stack; a full-depth buffer is 2 KiB), one per lane
 * (internal.h): a thread asks for its own first, and a buffer's busy flag
 * shares a line with its frames and nothing else; when every one is busy
 * the buffer falls back to the stack. No nesting on one thread: the fence
 * keeps a signal handler's allocation during a sample from being sampled.
 * Not thread-local: 2 KiB of initial-exec TLS would not fit glibc's
 * static TLS surplus when the library is dlopen'ed (heapprof attach).
 */
static struct {
    alignas(64) uint32_t busy;
    uintptr_t pcs[HEAPPROF_MAX_STACK_DEPTH + HP_STACK_SLACK];
} scratch[HP_LANES];

static inline bool
scratch_take(unsigned i)
{
    return __atomic_load_n(&scratch[i].busy, __ATOMIC_RELAXED) == 0 &&
           __atomic_exchange_n(&scratch[i].busy, 1, __ATOMIC_ACQUIRE) == 0;
}

static inline int
scratch_claim(void)
{
    unsigned own = hp_lane();
    for (unsigned k = 0; k < HP_LANES; k++) {
        unsigned i = (own + k) % HP_LANES;
        if (scratch_take(i))
            return (int)i;
    }
    return -1;
}

static inline void
scratch_release(int i)
{
    if (i >= 0)
        __atomic_store_n(&scratch[i].busy, 0, __ATOMIC_RELEASE);
}

void
hp_record_postfork_child(void)
{
    for (int i = 0; i < HP_LANES; i++)
        __atomic_store_n(&scratch[i].busy, 0, __ATOMIC_RELAXED);
}

/* Accounts a sample whose stack was taken. Not inlined: its locals (key,
 * records) would otherwise sit on the stack below which the unwinder runs. */
static __attribute__((noinline)) void
record_sample(void *ptr, size_t size, uint64_t rate, uintptr_t owner,
              uintptr_t tag, bool filtered, const uintptr_t *pcs, int n)
{
    /* The bucket's chain head loads while the record is filled in. */
    struct hp_bucket_key key;
    if (n > 0)
        hp_bucket_key_make(&key, pcs, (uint32_t)n, hp_labels_current());
    struct hp_live_rec rec = {.ptr = (uintptr_t)ptr,
                              .size = size,
                              .birth_ns = hp_now_mono_ns(),
                              .owner = owner,
                              .tag = tag,
                              .filtered = filtered};
    hp_sample_weights(size, rate, &rec.count_fx, &rec.bytes);
    struct hp_bucket *b =
        n > 0 ? hp_bucket_of(&key, pcs) : hp_bucket_overflow();
    rec.bucket = b;
    struct hp_live_rec stale;
    bool had_stale;
    hp_tls.holding++;
    bool inserted = hp_live_insert(&rec, &stale, &had_stale);
    hp_tls.holding--;
    if (inserted) {
        if (had_stale) {
            /* heapprof missed this address's free (released by a path it
             * does not see); the block is gone, account it now. */
            hp_record_commit_free(&stale);
        }
        hp_bucket_add_alloc(b, rec.count_fx, rec.bytes, size);
        hp_peak_note_alloc(rec.bytes);
        hp_stat_add(&hp_stats.samples, 1);
    } else {
        hp_stat_add(&hp_stats.samples_dropped, 1);
        /* hp_log formats on the stack and writes once: fine here. */
        hp_log_once(live_budget_full,
                    "the live-block table is full (HEAPPROF_MAX_MEMORY="
                    "%llu bytes): new samples are dropped from now on and "
                    "in-use values come out too low; raise "
                    "HEAPPROF_MAX_MEMORY or HEAPPROF_RATE",
                    (unsigned long long)hp_ialloc_budget());
    }
}

/* Shared by both entry points and inlined into each, so a sample's stack
 * holds one heapprof frame less. */
static inline __attribute__((always_inline)) void
record_alloc(void *ptr, size_t size, uint64_t rate, uintptr_t owner,
             uintptr_t tag, bool filtered, const struct hp_stack_from *from)
{
    int saved = errno;
    if (on_small_altstack()) {
        /* Skipped, not deferred: counted as dropped. */
        hp_stat_add(&hp_stats.samples_dropped, 1);
        errno = saved;
        return;
    }
    hp_fence_enter();
    /* lands during the stack capture */
    hp_live_prefetch((uintptr_t)ptr, filtered);
    hp_stats_prefetch();
    /* A fork child whose background threads are gone restarts them here,
     * on a sampled allocation (never in the atfork handler). */
    hp_restart_poll();
    int depth =
        (int)__atomic_load_n(&hp_settings.stack_depth, __ATOMIC_RELAXED);
    if (depth < 1 || depth > HEAPPROF_MAX_STACK_DEPTH)
        depth = HEAPPROF_DEFAULT_STACK_DEPTH;
    int slot = scratch_claim();
    uintptr_t fallback[slot < 0 ? depth + HP_STACK_SLACK : 1];
    uintptr_t *pcs = slot < 0 ? fallback : scratch[slot].pcs;
    int n = hp_stack_capture(pcs, depth, from);
    if (n < 0) {
        /* A fork is being prepared: no stack can be taken safely now. */
        scratch_release(slot);
        hp_stat_add(&hp_stats.samples_dropped, 1);
        hp_fence_exit();
        errno = saved;
        return;
    }
    record_sample(ptr, size, rate, owner, tag, filtered, pcs, n);
    scratch_release(slot);
    hp_fence_exit();
    errno = saved;
}

HP_FRONT void
hp_record_alloc(void *ptr, size_t size, uint64_t rate)
{
    record_alloc(ptr, size, rate, 0, 0, true, NULL);
}

HP_FRONT void
hp_record_alloc_ex(void *ptr, size_t size, uint64_t rate, uintptr_t owner,
                   uintptr_t tag)
{
    record_alloc(ptr, size, rate, owner, tag, true, NULL);
}

HP_FRONT void
hp_record_alloc_ranged(void *ptr, size_t size, uint64_t rate,
                       const struct hp_stack_from *from)
{
    record_alloc(ptr, size, rate, 0, 0, false, from);
}

static inline bool
take(void *ptr, bool filtered, struct hp_live_rec *out)
{
    /* A free from a signal handler that interrupted a live-table operation
     * on this thread must not take its locks again: the record stays (the
     * block is reported live), which is the safe side. */
    if (hp_tls.holding)
        return false;
    int saved = errno;
    hp_fence_enter();
    /* The stripe lock, the chain head and the filter counts are
     * independent misses on a big heap: start them together, not one after
     * another. */
    hp_live_prefetch((uintptr_t)ptr, filtered);
    hp_stats_prefetch();
    hp_tls.holding++;
    bool found = hp_live_remove((uintptr_t)ptr, out);
    hp_tls.holding--;
    hp_fence_exit();
    errno = saved;
    return found;
}

bool
hp_record_take_slow(void *ptr, struct hp_live_rec *out)
{
    return take(ptr, true, out);
}

void
hp_record_commit_free(const struct hp_live_rec *rec)
{
    hp_bucket_add_free(rec->bucket, rec->count_fx, rec->bytes, rec->size);
    hp_peak_note_free(rec->bytes);
    hp_stat_add(&hp_stats.frees_matched, 1);
}

void
hp_record_restore(const struct hp_live_rec *rec)
{
    int saved = errno;
    hp_fence_enter();
    struct hp_live_rec stale;
    bool had_stale;
    hp_tls.holding++;
    bool inserted = hp_live_insert(rec, &stale, &had_stale);
    hp_tls.holding--;
    if (inserted && had_stale)
        hp_record_commit_free(&stale);
    if (!inserted) {
        /* Cannot keep tracking it: account it as freed so in-use does not
         * keep a block heapprof can no longer match. */
        hp_record_commit_free(rec);
        hp_stat_add(&hp_stats.samples_dropped, 1);
    }
    hp_fence_exit();
    errno = saved;
}

static inline bool
free_record(void *ptr, bool filtered)
{
    struct hp_live_rec rec;
    bool found = take(ptr, filtered, &rec);
    if (found)
        hp_record_commit_free(&rec);
    return found;
}

void
hp_record_free(void *ptr)
{
    free_record(ptr, true);
}

bool
hp_record_free_ranged(void *ptr)
{
    return free_record(ptr, false);
}

bool
hp_record_take_tagged(void *ptr, uintptr_t tag, struct hp_live_rec *out)
{
    if (!hp_live_maybe(ptr) || hp_tls.holding)
        return false;
    int saved = errno;
    hp_fence_enter();
    hp_tls.holding++;
    bool found = hp_live_remove_tagged((uintptr_t)ptr, tag, out);
    hp_tls.holding--;
    hp_fence_exit();
    errno = saved;
    return found;
}

static void
commit_forgotten(const struct hp_live_rec *rec, void *arg)
{
    (void)arg;
    hp_record_commit_free(rec);
}

uint64_t
hp_record_forget_plain(void)
{
    if (hp_tls.holding)
        return 0;
    int saved = errno;
    hp_fence_enter();
    hp_tls.holding++;
    uint64_t n = hp_live_remove_plain(commit_forgotten, NULL);
    hp_tls.holding--;
    hp_fence_exit();
    errno = saved;
    return n;
}

uint64_t
hp_record_free_owner(uintptr_t owner)
{
    if (owner == 0 || hp_tls.holding)
        return 0;
    int saved = errno;
    hp_fence_enter();
    uint64_t n = 0;
    struct hp_live_rec rec;
    for (;;) {
        hp_tls.holding++;
        bool found = hp_live_remove_owned(owner, &rec);
        hp_tls.holding--;
        if (!found)
            break;
        hp_record_commit_free(&rec);
        n++;
    }
    hp_fence_exit();
    errno = saved;
    return n;
}
