/*
 * The out-of-line parts of table.h: growing a table, the arena's chunks.
 */
#include "table.h"

#include <stdlib.h>
#include <string.h>

#define ITAB_MIN 256
#define ARENA_CHUNK 65536

bool
hp_itab_grow(struct hp_itab *t)
{
    size_t ncap = t->cap ? t->cap * 2 : ITAB_MIN;
    struct hp_islot *n = calloc(ncap, sizeof(*n));
    if (n == NULL)
        return false;
    for (size_t i = 0; i < t->cap; i++) {
        if (t->s[i].val == 0)
            continue;
        size_t j = hp_itab_slot(t->s[i].key, ncap - 1);
        while (n[j].val != 0)
            j = (j + 1) & (ncap - 1);
        n[j] = t->s[i];
    }
    free(t->s);
    t->s = n;
    t->cap = ncap;
    return true;
}

void
hp_itab_free(struct hp_itab *t)
{
    free(t->s);
    memset(t, 0, sizeof(*t));
}

struct hp_achunk {
    struct hp_achunk *next;
    size_t used, cap;
    max_align_t data[];
};

void *
hp_arena_alloc(struct hp_arena *a, size_t n)
{
    n = (n + sizeof(max_align_t) - 1) & ~(sizeof(max_align_t) - 1);
    struct hp_achunk *c = a->head;
    if (c == NULL || c->cap - c->used < n) {
        size_t cap = n > ARENA_CHUNK ? n : ARENA_CHUNK;
        c = malloc(sizeof(*c) + cap);
        if (c == NULL)
            return NULL;
        c->cap = cap;
        c->used = 0;
        if (n > ARENA_CHUNK && a->head != NULL) {
            c->next = a->head->next;
            a->head->next = c;
        } else {
            c->next = a->head;
            a->head = c;
        }
    }
    void *p = (char *)c->data + c->used;
    c->used += n;
    return p;
}

char *
hp_arena_strdup(struct hp_arena *a, const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = hp_arena_alloc(a, n);
    if (p != NULL)
        memcpy(p, s, n);
    return p;
}

void
hp_arena_free(struct hp_arena *a)
{
    while (a->head != NULL) {
        struct hp_achunk *next = a->head->next;
        free(a->head);
        a->head = next;
    }
}
