/*
 * The query of a /debug/pprof profile request, read as Go's net/http/pprof
 * reads it (r.FormValue: first value wins, unknown keys ignored) and
 * checked in the same order, with the same one-line reasons for a 400.
 * Pure functions: no locks, no globals.
 */
#ifndef HP_QUERY_H
#define HP_QUERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "internal.h"

/* The endpoint a profile query is for (what it may ask for differs). */
enum hp_query_target {
    HP_QUERY_HEAP,
    HP_QUERY_ALLOCS,
    HP_QUERY_DELTA_HEAP,
};

/* A checked profile query; absent parameters are 0. */
struct hp_profile_query {
    long long debug;     /* debug=N: nonzero asks for the text format */
    long long gc;        /* gc=N: positive runs the registered collection */
    long long peak;      /* peak=N (heap only): nonzero serves the peak */
    long long seconds;   /* seconds=N (heap, allocs): a delta over N s */
    bool aged;           /* min_age= given (heap only) */
    uint64_t min_age_ns; /* its value */
};

/*
 * Parse and check q[0..n) for target. write_timeout_s != 0 refuses
 * seconds= at or above it, as Go does with its server's WriteTimeout.
 * Returns NULL with *out filled, or the reason for a 400 (static).
 */
HP_HIDDEN const char *hp_query_profile(const char *q, size_t n,
                                       enum hp_query_target target,
                                       unsigned write_timeout_s,
                                       struct hp_profile_query *out);

/* strconv.ParseInt(s, 10, 64): optional sign, decimal digits, no spaces. */
HP_HIDDEN bool hp_query_parse_int(const char *s, long long *out);

/* min_age=: a Go duration ("90s", "1h30m", "250ms") or whole seconds, in
 * nanoseconds. False if malformed, negative or too large. */
HP_HIDDEN bool hp_http_parse_duration(const char *s, uint64_t *ns);

#endif
