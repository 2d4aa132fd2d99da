/*
 * The server-agnostic /debug/pprof handler behind heapprof_http_handle():
 * routing, query parsing, delta profiles (seconds=N and delta_heap), the
 * index, cmdline and symbol pages. No sockets here; listener.c and the
 * integrations feed it requests. The pieces below are exposed for tests.
 */
#ifndef HP_HTTP_H
#define HP_HTTP_H

#include "heapprof.h"
#include "internal.h"
#include "profile.h"

/* Column masks for hp_http_delta(). */
#define HP_DELTA_ALLOC 0x3u /* alloc_objects, alloc_space */
#define HP_DELTA_ALL 0xfu   /* all four (Go's seconds=N) */

/*
 * p1 -= p0 for the columns in mask, matching entries by key; with
 * HP_DELTA_ALL, keys only in p0 are appended negated. Entries whose four
 * values end up zero are dropped. Sorts p0->e by key. 0 or HEAPPROF_ENOMEM.
 */
HP_HIDDEN int hp_http_delta(struct hp_profile_data *p1,
                            struct hp_profile_data *p0, unsigned mask);

/*
 * godeltaprof's delta_heap step: alloc columns of d become the change since
 * the previous call (the first call sees everything), in-use columns stay
 * absolute, all-zero entries are dropped. The previous state is
 * process-wide and locked. 0 or HEAPPROF_ENOMEM (state kept).
 */
HP_HIDDEN int hp_http_delta_heap(struct hp_profile_data *d);

/* min_age=: a Go duration ("90s", "1h30m", "250ms") or whole seconds, in
 * nanoseconds. False if malformed, negative or too large. */
HP_HIDDEN bool hp_http_parse_duration(const char *s, uint64_t *ns);

/* Forget the delta_heap state (tests). */
HP_HIDDEN void hp_http_reset(void);

/* Fork child: re-initialise the locks another thread may have held. */
HP_HIDDEN void hp_http_postfork_child(void);

#endif
