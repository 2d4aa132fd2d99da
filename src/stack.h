/*
 * Stack capture for samples: the frame cache's walk on x86-64, libunwind
 * where it does not know a frame (and on other architectures), with every leading frame that belongs to
 * heapprof's front section removed so the leaf is the allocator's caller.
 */
#ifndef HP_STACK_H
#define HP_STACK_H

#include "internal.h"

struct dl_phdr_info;

/* Frames of heapprof itself (and libunwind) that may sit above the host's
 * caller: capture, record, realloc->malloc nesting. Generous on purpose. */
#define HP_STACK_SLACK 12

/* Where a walk may start instead of its own frame: the frame of a function
 * of heapprof's front section that is still running (its return address,
 * its caller's sp at the call and the caller's rbp), so that the frames
 * below it (recording, capture, the walk itself) are not walked only to
 * be dropped. HP_STACK_FROM_HERE() takes it in the calling function. */
struct hp_stack_from {
    uintptr_t ip, sp, rbp;
};
#if defined(__x86_64__)
/* __builtin_frame_address(0) gives the function a frame pointer: the
 * caller's rbp is saved at it, the return address above, the CFA above
 * that. */
#define HP_STACK_FROM_HERE(f)                                                  \
    do {                                                                       \
        const uintptr_t *fp_ = __builtin_frame_address(0);                     \
        (f)->ip = fp_[1];                                                      \
        (f)->sp = (uintptr_t)(fp_ + 2);                                        \
        (f)->rbp = fp_[0];                                                     \
    } while (0)
#else
#define HP_STACK_FROM_HERE(f) (*(f) = (struct hp_stack_from){0}) /* own frame */
#endif

/* Fills pcs (capacity max + HP_STACK_SLACK) with up to max return
 * addresses, leaf first, walking from `from` (NULL or ip 0: from the walk's
 * own frame). Returns the count (0 if unwinding failed). Must run inside
 * the reentrancy fence. */
HP_HIDDEN int hp_stack_capture(uintptr_t *pcs, int max,
                               const struct hp_stack_from *from);
/* Returns -1 instead while a fork is being prepared (see stack.c). */

/*
 * The same fork gate around other work of heapprof's own threads that
 * takes the loader's lock (dlopen, dlmopen, dlsym: loading libdw or
 * libmicrohttpd) or a lock of heapprof's held across it: the gate's
 * enter waits (yielding) while a fork is being prepared, and a fork's
 * prepare waits for the work to leave. Without it, a fork while the
 * listener thread loads libdw left children whose first export waited
 * forever on the loader's lock (e2e.tree.idle, 1 run in 25 under load).
 */
HP_HIDDEN void hp_stack_gate_enter(void);
HP_HIDDEN void hp_stack_gate_exit(void);

/*
 * dl_iterate_phdr(cb, data) inside the same fork gate, for heapprof's own
 * walks of the loaded objects (maps, symbolizer, dlclose tracking): glibc
 * does not reset the lock dl_iterate_phdr holds in a fork child, so a fork
 * during such a walk on another thread would leave the child's first
 * unwind or walk waiting forever. Waits (yielding) while a fork is being
 * prepared. Returns what dl_iterate_phdr returns.
 *
 * For every walk that can run while another thread forks: the exporters'
 * and front_attach's (heapprof_attach, its dlopen hook). Not for the two
 * constructors' walks (front_gc's filter_own_data, front_preload's
 * check_interposition): preloaded or linked in they run before main, with
 * no other thread; in a library loaded with dlopen (heapprof attach) they
 * run inside dlopen, which holds the loader's lock, and waiting here would
 * deadlock against a fork whose later prepare handlers need that lock
 * (dlsym). Their walk is a once-per-process window inside dlopen's own.
 */
HP_HIDDEN int hp_stack_phdr_iterate(int (*cb)(struct dl_phdr_info *, size_t,
                                              void *),
                                    void *data);

/* Stacks walked by libunwind since start: where the frame cache did not
 * know a frame (every stack on other architectures). */
HP_HIDDEN uint64_t hp_stack_slow_walks(void);
/* Stacks cut short because libunwind could not run (unwind_guard.h). */
HP_HIDDEN uint64_t hp_stack_cut_walks(void);

/* Once, from the constructor: libunwind's own set-up, before the
 * program's threads can race into it. */
HP_HIDDEN void hp_stack_init(void);

/* Fork handlers: close the capture gate and wait for captures and walks
 * in flight; open it again in parent and child. */
HP_HIDDEN void hp_stack_prefork(void);
HP_HIDDEN void hp_stack_postfork(void);
/* And in the child: its counts (hp_stack_slow_walks, the frame cache's)
 * start from zero, so that its profiles tell its own story. */
HP_HIDDEN void hp_stack_postfork_child(void);

#endif
