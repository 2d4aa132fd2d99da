/*
 * Stack capture. unw_backtrace walks with libunwind's cached tables and
 * never calls back into the unwound code; heapprof's own frames are
 * recognised by address (the "heapprof_front" section, whose bounds the
 * linker provides) rather than by a fixed skip count, which inlining and
 * tail calls would break.
 */
#define _GNU_SOURCE /* dl_iterate_phdr */
#define UNW_LOCAL_ONLY
#include "stack.h"

#include <libunwind.h>
#include <link.h>
#include <sched.h>
#include <string.h>

#include "heapprof.h"

extern const char __start_heapprof_front[] HP_HIDDEN;
extern const char __stop_heapprof_front[] HP_HIDDEN;

static int capture(uintptr_t *pcs, int max);

static bool
own_frame(uintptr_t pc)
{
    /* pc is a return address: pc - 1 is inside the calling instruction. */
    return pc - 1 >= (uintptr_t)__start_heapprof_front &&
           pc - 1 < (uintptr_t)__stop_heapprof_front;
}

/*
 * Fork gate. libunwind holds its global cache lock (with every signal
 * blocked) and glibc's dl_iterate_phdr lock while it walks; a fork in the
 * middle leaves the child with a lock whose owner does not exist there,
 * and the child's first sampled allocation would hang. So the prefork
 * handler closes the gate and waits for captures in flight to finish;
 * while it is closed, captures are refused (the sample is dropped). The
 * walks of loaded objects by heapprof's own threads pass the same gate
 * (hp_stack_phdr_iterate), waiting instead of being refused.
 * Dekker-style: both sides use sequentially consistent operations.
 */
static int gate_closed;
static int in_flight;
static __thread int capturing __attribute__((tls_model("initial-exec")));

void
hp_stack_prefork(void)
{
    __atomic_store_n(&gate_closed, 1, __ATOMIC_SEQ_CST);
    /* A fork from a signal handler that interrupted a capture on this
     * thread must not wait for itself. Bounded: never hang the fork. */
    int own = capturing;
    for (int spins = 0;
         __atomic_load_n(&in_flight, __ATOMIC_SEQ_CST) > own && spins < 200000;
         spins++)
        sched_yield();
}

void
hp_stack_postfork(void)
{
    __atomic_store_n(&gate_closed, 0, __ATOMIC_SEQ_CST);
}

HP_FRONT int
hp_stack_capture(uintptr_t *pcs, int max)
{
    __atomic_fetch_add(&in_flight, 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&gate_closed, __ATOMIC_SEQ_CST)) {
        __atomic_fetch_sub(&in_flight, 1, __ATOMIC_SEQ_CST);
        return -1;
    }
    capturing++;
    int n = capture(pcs, max);
    capturing--;
    __atomic_fetch_sub(&in_flight, 1, __ATOMIC_SEQ_CST);
    return n;
}

void
hp_stack_gate_enter(void)
{
    /* Nested (a gated load that walks the objects): already counted, and
     * waiting here would make a fork's prepare wait for this thread. */
    for (bool nested = capturing > 0;;) {
        __atomic_fetch_add(&in_flight, 1, __ATOMIC_SEQ_CST);
        if (nested || !__atomic_load_n(&gate_closed, __ATOMIC_SEQ_CST))
            break;
        __atomic_fetch_sub(&in_flight, 1, __ATOMIC_SEQ_CST);
        sched_yield();
    }
    capturing++;
}

void
hp_stack_gate_exit(void)
{
    capturing--;
    __atomic_fetch_sub(&in_flight, 1, __ATOMIC_SEQ_CST);
}

int
hp_stack_phdr_iterate(int (*cb)(struct dl_phdr_info *, size_t, void *),
                      void *data)
{
    hp_stack_gate_enter();
    int rc = dl_iterate_phdr(cb, data);
    hp_stack_gate_exit();
    return rc;
}

static HP_FRONT int
capture(uintptr_t *pcs, int max)
{
    if (max > HEAPPROF_MAX_STACK_DEPTH)
        max = HEAPPROF_MAX_STACK_DEPTH;
    /* Capture straight into the caller's buffer (max + HP_STACK_SLACK
     * entries), then slide the host's frames to the front: no second
     * buffer on what may be a small thread stack. */
    int n = unw_backtrace((void **)pcs, max + HP_STACK_SLACK);
    if (n <= 0)
        return 0;
    /* The first entries may belong to libunwind itself; drop everything up
     * to and including the run of heapprof frames. */
    int first_own = 0;
    while (first_own < n && !own_frame(pcs[first_own]))
        first_own++;
    int skip = first_own == n ? 0 : first_own;
    while (skip < n && own_frame(pcs[skip]))
        skip++;
    int kept = n - skip;
    if (kept > max)
        kept = max;
    memmove(pcs, pcs + skip, (size_t)kept * sizeof *pcs);
    return kept;
}
