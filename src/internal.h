/*
 * Shared internal definitions of the bottom layer (base.c): visibility,
 * branch hints, the reentrancy fence, per-thread state, the clocks and the
 * restart-after-fork hook. Every src/ module includes this first.
 */
#ifndef HP_INTERNAL_H
#define HP_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HP_HIDDEN __attribute__((visibility("hidden")))
/* The symbols a front defines for the program (malloc, fork, ...). */
#define HP_EXPORT __attribute__((visibility("default")))
#define HP_LIKELY(x) __builtin_expect(!!(x), 1)
#define HP_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define HP_NOINLINE __attribute__((noinline))
/*
 * Functions that sit between the host's call to an allocator and the stack
 * capture live in their own section; the stack capture drops every leading
 * frame inside it, so the leaf of a sample is the allocator's caller whether
 * heapprof is a shared object or linked statically into the executable.
 */
#define HP_FRONT __attribute__((section("heapprof_front"), noinline))

/* Fixed-point scale of sampled object-count weights (1/p can be < 2). */
#define HP_COUNT_ONE 65536u

/*
 * Per-thread state, initial-exec TLS so that touching it never allocates
 * (a dlopen'ed copy uses glibc's surplus static TLS; keep it small).
 */
struct hp_thread {
    int64_t bytes_until_sample; /* fast path: subtract, sample when <= 0 */
    uint64_t rng;               /* xorshift64* state, 0 = not seeded */
    uint64_t draw_rate;         /* rate the current distance was drawn with */
    int depth;                  /* reentrancy fence: >0 = inside heapprof */
    int resolving;              /* inside dlsym of the real allocator */
    int holding;                /* inside a live-table operation (a signal
                                   handler's free must not re-enter it) */
    int range_locked;           /* holding, or taking, the sample range's
                                   lock (range.c) */
    uint8_t lane;               /* 1 + this thread's lane (hp_lane), 0 =
                                   none yet */
    uint32_t altstack_seen;     /* record.c: the change count when this */
    uintptr_t altstack_lo;      /* thread's alternate signal stack was */
    uintptr_t altstack_hi;      /* [lo, hi), 0 = none, last read */
};

extern __thread struct hp_thread hp_tls
    __attribute__((tls_model("initial-exec"))) HP_HIDDEN;

/*
 * Lanes: state that threads would otherwise all write on every sample (a
 * frame buffer and its busy flag, the fork gate's count of captures, a
 * cache of freed live records) is kept HP_LANES times, a cache line each,
 * and a thread uses its own lane (handed out in turn on first use), so
 * that threads sampling at the same time move no line between their
 * cores. Threads beyond HP_LANES share.
 */
#define HP_LANES 32
HP_HIDDEN uint8_t hp_lane_assign(void);

static inline unsigned
hp_lane(void)
{
    if (__builtin_expect(hp_tls.lane == 0, 0))
        hp_tls.lane = hp_lane_assign();
    return hp_tls.lane - 1u;
}

/*
 * Reentrancy fence: raised around everything that might allocate while
 * heapprof works (libunwind, libdw, zlib, protobuf-c, stdio). Allocations
 * made inside it go straight to the real allocator and are never sampled.
 */
static inline void
hp_fence_enter(void)
{
    hp_tls.depth++;
}

static inline void
hp_fence_exit(void)
{
    hp_tls.depth--;
}

static inline bool
hp_fenced(void)
{
    return hp_tls.depth > 0;
}

/*
 * Seams (jemalloc's JET_MUTABLE): function pointers that are const in the
 * library and writable in the unit tests' build of the core (compiled with
 * HP_TEST_SEAMS), so a test sets the clock instead of waiting for it.
 */
#ifdef HP_TEST_SEAMS
#define HP_SEAM
#else
#define HP_SEAM const
#endif

/* The monotonic clock in ns (birth times, the age filter, intervals),
 * through its seam; hp_clock_mono_ns is the real one. */
HP_HIDDEN uint64_t hp_clock_mono_ns(void);
extern uint64_t (*HP_SEAM hp_now_mono)(void) HP_HIDDEN;

static inline uint64_t
hp_now_mono_ns(void)
{
    return hp_now_mono();
}

/* The wall clock in ns. */
HP_HIDDEN uint64_t hp_now_wall_ns(void);

/*
 * Restart after fork. A fork child's background threads (listener,
 * snapshot writer) are gone, and an atfork handler must not start them.
 * The lifecycle sets hp_restart_pending in the child and registers the
 * hook that restarts them; the record path, which must not call the serve
 * layer itself, polls here on a sampled allocation: one relaxed load when
 * nothing is pending. The hook runs once per fork, in the fence.
 */
/*
 * Start fn(arg) on a detached thread named name (at most 15 characters)
 * with every signal blocked, so it takes none meant for the host. 0, or
 * pthread_create's error. name NULL: the thread names itself (one prctl
 * in the thread, not /proc's file opened by the caller).
 */
HP_HIDDEN int hp_thread_start(void *(*fn)(void *), void *arg, const char *name);

/* dlsym(handle, name) inside the reentrancy fence: dlsym may allocate,
 * and that is heapprof's own work, never a sample. */
HP_HIDDEN void *hp_symbol(void *handle, const char *name);

/*
 * The next definition of name after heapprof's (dlsym RTLD_NEXT), for an
 * interposer that forwards: looked up once (hp_symbol) and kept in
 * *cache; NULL if there is none (the lookup is then repeated).
 */
HP_HIDDEN void *hp_next_symbol(const char *name, void **cache);

/*
 * Seccomp. A filter the program installs (front_sandbox.c) or runs under
 * from the start may kill the process for a system call its allocator
 * never makes: libunwind's mincore, starting a thread. Once set, heapprof
 * makes none of those on the host's threads: stacks the frame cache does
 * not know end where its knowledge ends, fork children start no threads,
 * and heapprof's own accounting skips mincore. Process-wide, since a
 * filter is inherited by the threads and children made after it.
 */
HP_HIDDEN extern bool hp_sandboxed;
HP_HIDDEN void hp_sandbox_note(void);

HP_HIDDEN extern int hp_restart_pending;
HP_HIDDEN void hp_restart_hook_set(void (*fn)(void));
HP_HIDDEN void hp_restart_run(void);

static inline void
hp_restart_poll(void)
{
    if (HP_UNLIKELY(__atomic_load_n(&hp_restart_pending, __ATOMIC_RELAXED)))
        hp_restart_run();
}

#endif
