/*
 * Whether libunwind may walk a stack now. libunwind 1.6 (x86-64) checks
 * each address it reads by writing a byte from it into a pipe it opens on
 * its first use and keeps by descriptor number for the life of the
 * process; when a read from that pipe fails it closes both numbers and
 * opens a new pipe. A program that closes every descriptor (sshd's
 * re-executed child, daemons calling closefrom) and opens its own under
 * the same numbers would then have libunwind block reading its socket,
 * write stack bytes into it, or close it. And under a seccomp filter its
 * mincore may kill the process (internal.h, hp_sandboxed).
 *
 * So before each libunwind walk the two numbers are checked (two fstat):
 * still libunwind's pipe, the walk runs; both closed, the pipe is opened
 * again under them if they are the lowest free numbers; anything else, no
 * walk: stacks end where the frame cache's knowledge ends, counted. A
 * program closing and reusing the numbers between that check and the
 * walk, on another thread, is not caught.
 */
#ifndef HP_UNWIND_GUARD_H
#define HP_UNWIND_GUARD_H

#include "internal.h"

/* Around libunwind's first use (hp_stack_init, in the constructor): finds
 * the pipe it opens there. If libunwind was in use before, the pipe is
 * not known and walks run as they always did. */
HP_HIDDEN void hp_unwind_guard_before_init(void);
HP_HIDDEN void hp_unwind_guard_after_init(void);

/* Whether a libunwind walk may run now. */
HP_HIDDEN bool hp_unwind_guard_usable(void);

#endif
