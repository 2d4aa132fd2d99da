/*
 * Delta profiles. seconds=N subtracts two collections entry by entry
 * (matched by bucket key); delta_heap keeps the previous scrape's alloc
 * columns in a table sorted by key.
 */
#include "delta.h"

#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* Both struct hp_profile_entry and struct prev_entry start with their
 * bucket key: sort and search either by it. */
static int
key_cmp(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t) * (const void *const *)a;
    uintptr_t y = (uintptr_t) * (const void *const *)b;
    return x < y ? -1 : x > y;
}
_Static_assert(offsetof(struct hp_profile_entry, key) == 0,
               "key_cmp reads the key first");

static bool
entry_zero(const struct hp_profile_entry *e)
{
    for (int k = 0; k < HP_NVALUES; k++)
        if (e->v[k] != 0)
            return false;
    return true;
}

static void
drop_zero(struct hp_profile_data *d)
{
    size_t o = 0;
    for (size_t i = 0; i < d->n; i++)
        if (!entry_zero(&d->e[i]))
            d->e[o++] = d->e[i];
    d->n = o;
}

int
hp_http_delta(struct hp_profile_data *p1, struct hp_profile_data *p0,
              unsigned mask)
{
    if (p0->n > 1)
        qsort(p0->e, p0->n, sizeof(*p0->e), key_cmp);
    bool *seen = calloc(p0->n ? p0->n : 1, sizeof(*seen));
    if (seen == NULL)
        return HEAPPROF_ENOMEM;
    size_t extra = 0;
    for (size_t i = 0; i < p1->n; i++) {
        struct hp_profile_entry *e = &p1->e[i];
        struct hp_profile_entry *o =
            p0->n ? bsearch(e, p0->e, p0->n, sizeof(*p0->e), key_cmp) : NULL;
        if (o == NULL)
            continue;
        seen[o - p0->e] = true;
        for (int k = 0; k < HP_NVALUES; k++) {
            if (mask & (1u << k)) {
                e->v[k] -= o->v[k];
                e->raw[k] -= o->raw[k];
            }
        }
    }
    if (mask == HP_DELTA_ALL) {
        /* Stacks that vanished since p0: Merge(p0 scaled by -1, p1) keeps
         * them as negative samples. */
        for (size_t i = 0; i < p0->n; i++)
            extra += !seen[i];
        if (extra > 0) {
            struct hp_profile_entry *ne =
                realloc(p1->e, (p1->n + extra) * sizeof(*ne));
            if (ne == NULL) {
                free(seen);
                return HEAPPROF_ENOMEM;
            }
            p1->e = ne;
            for (size_t i = 0; i < p0->n; i++) {
                if (seen[i])
                    continue;
                struct hp_profile_entry *e = &p1->e[p1->n++];
                *e = p0->e[i];
                for (int k = 0; k < HP_NVALUES; k++) {
                    e->v[k] = -e->v[k];
                    e->raw[k] = -e->raw[k];
                }
            }
        }
    }
    free(seen);
    drop_zero(p1);
    return HEAPPROF_OK;
}

/* delta_heap state: alloc columns of the previous scrape, sorted by key. */
struct prev_entry {
    const void *key; /* first, as in struct hp_profile_entry (key_cmp) */
    int64_t v[2];
    int64_t raw[2];
};

/* Protects prev and prev_n. Lock order: delta_lock, then the profile
 * module's locks (hp_profile_collect runs under it). */
static pthread_mutex_t delta_lock = PTHREAD_MUTEX_INITIALIZER;
static struct prev_entry *prev;
static size_t prev_n;

static int
delta_heap_locked(struct hp_profile_data *d)
{
    struct prev_entry *next = malloc((d->n ? d->n : 1) * sizeof(*next));
    if (next == NULL)
        return HEAPPROF_ENOMEM;
    for (size_t i = 0; i < d->n; i++) {
        next[i].key = d->e[i].key;
        for (int k = 0; k < 2; k++) {
            next[i].v[k] = d->e[i].v[k];
            next[i].raw[k] = d->e[i].raw[k];
        }
    }
    if (d->n > 1)
        qsort(next, d->n, sizeof(*next), key_cmp);

    for (size_t i = 0; i < d->n; i++) {
        struct hp_profile_entry *e = &d->e[i];
        struct prev_entry key = {.key = e->key};
        struct prev_entry *o =
            prev_n ? bsearch(&key, prev, prev_n, sizeof(*prev), key_cmp) : NULL;
        /* Alloc columns only grow; if one went down the key must name a
         * different bucket than before, so report it whole. */
        if (o == NULL || e->v[0] < o->v[0] || e->v[1] < o->v[1])
            continue;
        for (int k = 0; k < 2; k++) {
            e->v[k] -= o->v[k];
            e->raw[k] = e->raw[k] >= o->raw[k] ? e->raw[k] - o->raw[k] : 0;
        }
    }
    free(prev);
    prev = next;
    prev_n = d->n;
    drop_zero(d);
    return HEAPPROF_OK;
}

int
hp_http_delta_heap(struct hp_profile_data *d)
{
    pthread_mutex_lock(&delta_lock);
    int err = delta_heap_locked(d);
    pthread_mutex_unlock(&delta_lock);
    return err;
}

void
hp_http_reset(void)
{
    pthread_mutex_lock(&delta_lock);
    free(prev);
    prev = NULL;
    prev_n = 0;
    pthread_mutex_unlock(&delta_lock);
}

int
hp_delta_heap_collect(struct hp_profile_data *d)
{
    pthread_mutex_lock(&delta_lock);
    int err = hp_profile_collect(d);
    if (err == 0)
        err = delta_heap_locked(d);
    pthread_mutex_unlock(&delta_lock);
    return err;
}

void
hp_delta_postfork_child(void)
{
    pthread_mutex_init(&delta_lock, NULL);
}
