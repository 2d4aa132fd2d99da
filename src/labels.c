#define _GNU_SOURCE
#include "labels.h"

#include <pthread.h>
#include <string.h>

#include "heapprof.h"
#include "ialloc.h"
#include "utf8.h"

#define HEADS_LG 10

/* Lookups are lock-free (chains only grow, published with release
 * stores); inserts take the mutex. */
static pthread_mutex_t insert_lock = PTHREAD_MUTEX_INITIALIZER;
static struct hp_labelset *heads[1u << HEADS_LG];
static uint64_t nsets;

/* The thread's set lives beside the sampler's state (initial-exec TLS, so
 * reading it never allocates). */
static __thread const struct hp_labelset *current
    __attribute__((tls_model("initial-exec")));

const struct hp_labelset *
hp_labels_current(void)
{
    return current;
}

uint64_t
hp_labelsets_count(void)
{
    return __atomic_load_n(&nsets, __ATOMIC_RELAXED);
}

static uint64_t
hash_str(uint64_t h, const char *s)
{
    for (; *s != '\0'; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001B3ull;
    return (h ^ 0xff) * 0x100000001B3ull; /* end marker: "ab","c" != "a","bc" */
}

static uint64_t
set_hash(const struct hp_label *kv, uint32_t n)
{
    uint64_t h = 0xCBF29CE484222325ull ^ n;
    for (uint32_t i = 0; i < n; i++)
        h = hash_str(hash_str(h, kv[i].key), kv[i].value);
    return h;
}

static bool
set_equal(const struct hp_labelset *s, const struct hp_label *kv, uint32_t n)
{
    if (s->n != n)
        return false;
    for (uint32_t i = 0; i < n; i++)
        if (strcmp(s->kv[i].key, kv[i].key) != 0 ||
            strcmp(s->kv[i].value, kv[i].value) != 0)
            return false;
    return true;
}

static const struct hp_labelset *
find(uint64_t h, const struct hp_label *kv, uint32_t n)
{
    for (const struct hp_labelset *s =
             __atomic_load_n(&heads[h >> (64 - HEADS_LG)], __ATOMIC_ACQUIRE);
         s != NULL; s = __atomic_load_n(&s->next, __ATOMIC_ACQUIRE))
        if (s->hash == h && set_equal(s, kv, n))
            return s;
    return NULL;
}

/* The interned set equal to kv[0..n) (sorted), made if needed; NULL when
 * out of budget. */
static const struct hp_labelset *
intern(const struct hp_label *kv, uint32_t n)
{
    uint64_t h = set_hash(kv, n);
    const struct hp_labelset *s = find(h, kv, n);
    if (s != NULL)
        return s;
    pthread_mutex_lock(&insert_lock);
    s = find(h, kv, n);
    if (s == NULL) {
        size_t size = sizeof(struct hp_labelset) + n * sizeof(struct hp_label);
        for (uint32_t i = 0; i < n; i++)
            size += strlen(kv[i].key) + strlen(kv[i].value) + 2;
        struct hp_labelset *ns = hp_ialloc(size);
        if (ns != NULL) {
            char *p = (char *)&ns->kv[n];
            for (uint32_t i = 0; i < n; i++) {
                size_t kl = strlen(kv[i].key) + 1, vl = strlen(kv[i].value) + 1;
                memcpy(p, kv[i].key, kl);
                ns->kv[i].key = p;
                p += kl;
                memcpy(p, kv[i].value, vl);
                ns->kv[i].value = p;
                p += vl;
            }
            ns->n = n;
            ns->hash = h;
            struct hp_labelset **slot = &heads[h >> (64 - HEADS_LG)];
            ns->next = *slot;
            __atomic_store_n(slot, ns, __ATOMIC_RELEASE);
            __atomic_fetch_add(&nsets, 1, __ATOMIC_RELAXED);
            s = ns;
        }
    }
    pthread_mutex_unlock(&insert_lock);
    return s;
}

int
heapprof_labels_set(const char *key, const char *value)
{
    if (key == NULL || key[0] == '\0')
        return HEAPPROF_EINVAL;
    size_t kl = strnlen(key, HP_LABEL_KEY_MAX + 1);
    size_t vl = value != NULL ? strnlen(value, HP_LABEL_VALUE_MAX + 1) : 0;
    if (kl > HP_LABEL_KEY_MAX || vl > HP_LABEL_VALUE_MAX)
        return HEAPPROF_ERANGE;
    /* pprof strings are UTF-8: keep what the profile will show. */
    char k[HP_LABEL_KEY_MAX + 1], v[HP_LABEL_VALUE_MAX + 1];
    memcpy(k, key, kl + 1);
    hp_utf8_sanitize(k);
    if (value != NULL) {
        memcpy(v, value, vl + 1);
        hp_utf8_sanitize(v);
    }
    /* The new set: the current one with key replaced, added or removed,
     * kept sorted by key so equal sets intern to one. */
    struct hp_label kv[HP_LABELS_MAX + 1];
    uint32_t n = 0;
    bool placed = false;
    const struct hp_labelset *cur = current;
    for (uint32_t i = 0; cur != NULL && i < cur->n; i++) {
        int c = strcmp(cur->kv[i].key, k);
        if (c > 0 && !placed) {
            if (value != NULL)
                kv[n++] = (struct hp_label){k, v};
            placed = true;
        }
        if (c == 0) {
            if (value != NULL)
                kv[n++] = (struct hp_label){k, v};
            placed = true;
            continue;
        }
        kv[n++] = cur->kv[i];
    }
    if (!placed && value != NULL)
        kv[n++] = (struct hp_label){k, v};
    if (n > HP_LABELS_MAX)
        return HEAPPROF_ERANGE;
    if (n == 0) {
        current = NULL;
        return HEAPPROF_OK;
    }
    hp_fence_enter();
    const struct hp_labelset *s = intern(kv, n);
    hp_fence_exit();
    if (s == NULL)
        return HEAPPROF_ENOMEM;
    current = s;
    return HEAPPROF_OK;
}

void
heapprof_labels_clear(void)
{
    current = NULL;
}

/* 0.1.0's name, kept exported for the programs built against it. */
int
heapprof_label_set(const char *key, const char *value)
{
    return heapprof_labels_set(key, value);
}

void
hp_labels_postfork_child(void)
{
    pthread_mutex_init(&insert_lock, NULL);
}
