/*
 * A plugin the attach host dlopen's after heapprof_attach(): its malloc
 * slot is bound at load time, so only the dlopen wrapper can have pointed
 * it at heapprof before plugin_alloc_site runs.
 */
#include <stdlib.h>
#include <string.h>

void *plugin_alloc_site(size_t n);

__attribute__((noinline)) void *
plugin_alloc_site(size_t n)
{
    void *p = malloc(n);
    if (p != NULL)
        memset(p, 0, n);
    return p;
}
