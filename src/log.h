/*
 * One-line diagnostics on stderr, prefixed "heapprof: ". Never allocates
 * (formats into a stack buffer, one write(2)), keeps errno.
 */
#ifndef HP_LOG_H
#define HP_LOG_H

#include <stdarg.h>

#include "internal.h"

HP_HIDDEN void hp_log(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
HP_HIDDEN void hp_vlog(const char *fmt, va_list ap)
    __attribute__((format(printf, 1, 0)));

/*
 * Until hp_log_capture(NULL, 0), the calling thread's lines are appended
 * to buf (without the "heapprof[pid]: " prefix, one per line, truncated
 * to cap) instead of stderr: heapprof attach reports them in the
 * attaching terminal, not on the target's stderr. Other threads still
 * log to stderr. One capture at a time (the caller serialises).
 */
HP_HIDDEN void hp_log_capture(char *buf, size_t cap);

/* One line per process for a profile that could not be built for want of
 * memory, whichever stage (what) met it first: a host short of memory
 * sees one line, not one per stage. */
HP_HIDDEN void hp_log_profile_oom(const char *what);

/* Like hp_log but at most once per process for the given flag. */
/* An interposer without a next definition to forward to (a static
 * program): one line for the process, and errno ENOSYS for the call,
 * which fails. */
HP_HIDDEN void hp_log_no_next(const char *name);

#define hp_log_once(flag, ...)                                                 \
    do {                                                                       \
        static int flag##_logged_;                                             \
        if (!__atomic_exchange_n(&flag##_logged_, 1, __ATOMIC_RELAXED))        \
            hp_log(__VA_ARGS__);                                               \
    } while (0)

#endif
