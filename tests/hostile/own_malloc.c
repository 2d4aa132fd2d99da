/*
 * A program with its own malloc family (here a thin layer over glibc's
 * __libc_* entry points), which LD_PRELOAD cannot interpose: the
 * executable comes first in the lookup order. shadowed_malloc.sh checks
 * that heapprof says so in one line instead of serving empty profiles.
 */
#include <stddef.h>
#include <stdio.h>

extern void *__libc_malloc(size_t);
extern void __libc_free(void *);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);

void *malloc(size_t n) { return __libc_malloc(n); }
void free(void *p) { __libc_free(p); }
void *calloc(size_t a, size_t b) { return __libc_calloc(a, b); }
void *realloc(void *p, size_t n) { return __libc_realloc(p, n); }

int
main(void)
{
    void *volatile p = malloc(100);
    free(p);
    puts("ok");
    return 0;
}
