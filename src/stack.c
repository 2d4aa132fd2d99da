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

/* Frames of heapprof itself above the host's caller: capture, record,
 * the malloc family, calloc->malloc style nesting. Generous on purpose. */
#define HP_MAX_OWN_FRAMES 12

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
    void *buf[HEAPPROF_MAX_STACK_DEPTH + HP_MAX_OWN_FRAMES];
    if (max > HEAPPROF_MAX_STACK_DEPTH)
        max = HEAPPROF_MAX_STACK_DEPTH;
    int n = unw_backtrace(buf, max + HP_MAX_OWN_FRAMES);
    if (n <= 0)
        return 0;
    /* The first entries may belong to libunwind itself; drop everything up
     * to and including the run of heapprof frames. */
    int first_own = 0;
    while (first_own < n && !own_frame((uintptr_t)buf[first_own]))
        first_own++;
    int skip = first_own == n ? 0 : first_own;
    while (skip < n && own_frame((uintptr_t)buf[skip]))
        skip++;
    int kept = n - skip;
    if (kept > max)
        kept = max;
    for (int i = 0; i < kept; i++)
        pcs[i] = (uintptr_t)buf[skip + i];
    return kept;
}
