/*
 * Stack capture. unw_backtrace walks with libunwind's cached tables and
 * never calls back into the unwound code; heapprof's own frames are
 * recognised by address (the "heapprof_front" section, whose bounds the
 * linker provides) rather than by a fixed skip count, which inlining and
 * tail calls would break.
 */
#define UNW_LOCAL_ONLY
#include "stack.h"

#include <libunwind.h>
#include <string.h>

#include "heapprof.h"

extern const char __start_heapprof_front[] HP_HIDDEN;
extern const char __stop_heapprof_front[] HP_HIDDEN;

static bool
own_frame(uintptr_t pc)
{
    /* pc is a return address: pc - 1 is inside the calling instruction. */
    return pc - 1 >= (uintptr_t)__start_heapprof_front &&
           pc - 1 < (uintptr_t)__stop_heapprof_front;
}

HP_FRONT int
hp_stack_capture(uintptr_t *pcs, int max)
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
