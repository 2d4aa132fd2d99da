/*
 * Labels on heap samples: per-thread key/value pairs (a request's route,
 * a tenant) that the allocations sampled while they are set carry into
 * the profile as pprof string labels, for `go tool pprof -tagfocus`.
 * A thread's labels are an interned, immutable set: the sampled path only
 * copies a pointer, buckets are keyed by (stack, set) with a pointer
 * compare, and sets are never freed (memory from ialloc, counted against
 * HEAPPROF_MAX_MEMORY).
 */
#ifndef HP_LABELS_H
#define HP_LABELS_H

#include "internal.h"

#define HP_LABELS_MAX 8     /* keys per thread */
#define HP_LABEL_KEY_MAX 63 /* bytes, without the NUL */
#define HP_LABEL_VALUE_MAX 255

struct hp_label {
    const char *key, *value;
};

struct hp_labelset {
    struct hp_labelset *next; /* interning chain (atomic) */
    uint64_t hash;
    uint32_t n;           /* >= 1; the empty set is NULL */
    struct hp_label kv[]; /* sorted by key; strings follow the array */
};

/* The calling thread's set (NULL: none). */
HP_HIDDEN const struct hp_labelset *hp_labels_current(void);

/* Interned sets made so far (self-report, tests). */
HP_HIDDEN uint64_t hp_labelsets_count(void);

HP_HIDDEN void hp_labels_postfork_child(void);

#endif
