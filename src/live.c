/*
 * Live sampled blocks: 2^16 hash chains guarded by 256 striped mutexes,
 * records from a free list refilled from ialloc in batches, and the
 * counting filter that keeps unsampled frees off the table entirely.
 * Filter counters saturate at 255 and then stay (a permanent "maybe"),
 * which only costs lookups, never correctness.
 */
#include "live.h"

#include <pthread.h>

#include "ialloc.h"

#define HP_LIVE_HEADS_LG 16
#define HP_LIVE_STRIPES 256
#define HP_LIVE_BATCH 256

uint8_t hp_live_filter[1u << HP_LIVE_FILTER_LG];

/* stripes[i] protects the chains whose index is i mod HP_LIVE_STRIPES.
 * Lock order: a stripe, then freelist_lock, then ialloc's lock. */
static pthread_mutex_t stripes[HP_LIVE_STRIPES];
static pthread_once_t stripes_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t freelist_lock = PTHREAD_MUTEX_INITIALIZER;
static struct hp_live_rec *freelist;
static struct hp_live_rec **heads;
static uint64_t nlive;

static void
init_stripes(void)
{
    for (int i = 0; i < HP_LIVE_STRIPES; i++)
        pthread_mutex_init(&stripes[i], NULL);
}

static uint32_t
head_index(uintptr_t ptr)
{
    return (uint32_t)(((uint64_t)(ptr >> 4) * 0xC2B2AE3D27D4EB4Full) >>
                      (64 - HP_LIVE_HEADS_LG));
}

static struct hp_live_rec **
get_heads(void)
{
    struct hp_live_rec **h = __atomic_load_n(&heads, __ATOMIC_ACQUIRE);
    if (h != NULL)
        return h;
    pthread_mutex_lock(&freelist_lock);
    if (heads == NULL) {
        h = hp_ialloc_region((size_t)(1u << HP_LIVE_HEADS_LG) * sizeof *h);
        if (h != NULL)
            __atomic_store_n(&heads, h, __ATOMIC_RELEASE);
    }
    h = heads;
    pthread_mutex_unlock(&freelist_lock);
    return h;
}

static struct hp_live_rec *
rec_alloc(void)
{
    pthread_mutex_lock(&freelist_lock);
    if (freelist == NULL) {
        struct hp_live_rec *batch =
            hp_ialloc(HP_LIVE_BATCH * sizeof(struct hp_live_rec));
        if (batch != NULL) {
            for (int i = 0; i < HP_LIVE_BATCH; i++) {
                batch[i].next = freelist;
                freelist = &batch[i];
            }
        }
    }
    struct hp_live_rec *r = freelist;
    if (r != NULL)
        freelist = r->next;
    pthread_mutex_unlock(&freelist_lock);
    return r;
}

static void
rec_free(struct hp_live_rec *r)
{
    pthread_mutex_lock(&freelist_lock);
    r->next = freelist;
    freelist = r;
    pthread_mutex_unlock(&freelist_lock);
}

static void
filter_inc(uintptr_t ptr)
{
    uint8_t *c = &hp_live_filter[hp_live_filter_slot(ptr)];
    uint8_t v = __atomic_load_n(c, __ATOMIC_RELAXED);
    while (v != 255 &&
           !__atomic_compare_exchange_n(c, &v, (uint8_t)(v + 1), true,
                                        __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
    }
}

static void
filter_dec(uintptr_t ptr)
{
    uint8_t *c = &hp_live_filter[hp_live_filter_slot(ptr)];
    uint8_t v = __atomic_load_n(c, __ATOMIC_RELAXED);
    while (v != 255 && v != 0 &&
           !__atomic_compare_exchange_n(c, &v, (uint8_t)(v - 1), true,
                                        __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
    }
}

bool
hp_live_insert(const struct hp_live_rec *rec, struct hp_live_rec *stale,
               bool *had_stale)
{
    *had_stale = false;
    pthread_once(&stripes_once, init_stripes);
    struct hp_live_rec **hs = get_heads();
    if (hs == NULL)
        return false;
    struct hp_live_rec *r = rec_alloc();
    if (r == NULL)
        return false;
    *r = *rec;
    uint32_t i = head_index(rec->ptr);
    pthread_mutex_t *lock = &stripes[i % HP_LIVE_STRIPES];
    pthread_mutex_lock(lock);
    struct hp_live_rec *old = NULL;
    for (struct hp_live_rec **pp = &hs[i]; *pp != NULL; pp = &(*pp)->next) {
        if ((*pp)->ptr == rec->ptr) {
            old = *pp;
            *pp = old->next;
            break;
        }
    }
    r->next = hs[i];
    hs[i] = r;
    pthread_mutex_unlock(lock);
    if (old != NULL) {
        *stale = *old;
        *had_stale = true;
        rec_free(old);
    } else {
        filter_inc(rec->ptr);
        __atomic_fetch_add(&nlive, 1, __ATOMIC_RELAXED);
    }
    return true;
}

bool
hp_live_remove(uintptr_t ptr, struct hp_live_rec *out)
{
    struct hp_live_rec **hs = __atomic_load_n(&heads, __ATOMIC_ACQUIRE);
    if (hs == NULL)
        return false;
    pthread_once(&stripes_once, init_stripes);
    uint32_t i = head_index(ptr);
    pthread_mutex_t *lock = &stripes[i % HP_LIVE_STRIPES];
    struct hp_live_rec *found = NULL;
    pthread_mutex_lock(lock);
    for (struct hp_live_rec **pp = &hs[i]; *pp != NULL; pp = &(*pp)->next) {
        if ((*pp)->ptr == ptr) {
            found = *pp;
            *pp = found->next;
            break;
        }
    }
    pthread_mutex_unlock(lock);
    if (found == NULL)
        return false;
    *out = *found;
    rec_free(found);
    filter_dec(ptr);
    __atomic_fetch_sub(&nlive, 1, __ATOMIC_RELAXED);
    return true;
}

uint64_t
hp_live_count(void)
{
    return __atomic_load_n(&nlive, __ATOMIC_RELAXED);
}

void
hp_live_foreach(void (*fn)(const struct hp_live_rec *, void *), void *arg)
{
    struct hp_live_rec **hs = __atomic_load_n(&heads, __ATOMIC_ACQUIRE);
    if (hs == NULL)
        return;
    pthread_once(&stripes_once, init_stripes);
    for (uint32_t i = 0; i < (1u << HP_LIVE_HEADS_LG); i++) {
        if (__atomic_load_n(&hs[i], __ATOMIC_RELAXED) == NULL)
            continue;
        pthread_mutex_lock(&stripes[i % HP_LIVE_STRIPES]);
        for (struct hp_live_rec *r = hs[i]; r != NULL; r = r->next)
            fn(r, arg);
        pthread_mutex_unlock(&stripes[i % HP_LIVE_STRIPES]);
    }
}

void
hp_live_prefork(void)
{
    pthread_once(&stripes_once, init_stripes);
    for (int i = 0; i < HP_LIVE_STRIPES; i++)
        pthread_mutex_lock(&stripes[i]);
    pthread_mutex_lock(&freelist_lock);
}

void
hp_live_postfork_parent(void)
{
    pthread_mutex_unlock(&freelist_lock);
    for (int i = HP_LIVE_STRIPES - 1; i >= 0; i--)
        pthread_mutex_unlock(&stripes[i]);
}

void
hp_live_postfork_child(void)
{
    pthread_mutex_init(&freelist_lock, NULL);
    for (int i = 0; i < HP_LIVE_STRIPES; i++)
        pthread_mutex_init(&stripes[i], NULL);
}
