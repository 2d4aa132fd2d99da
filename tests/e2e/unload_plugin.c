/* The plugin unload_workload.c loads, uses and unloads: the blocks it
 * allocates outlive its code. */
#include <stdlib.h>

void *plugin_alloc(int i);
void plugin_run(void **out, int n);

__attribute__((noinline)) void *
plugin_alloc(int i)
{
    return malloc(1000 + (size_t)i);
}

void
plugin_run(void **out, int n)
{
    for (int i = 0; i < n; i++)
        out[i] = plugin_alloc(i);
}
