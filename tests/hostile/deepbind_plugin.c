/* Loaded with RTLD_DEEPBIND by deepbind.c: its malloc and free bind to
 * the C library, not to what the program was preloaded with. */
#include <stdlib.h>

void
plugin_free(void *p)
{
    free(p);
}

void *
plugin_alloc(size_t n)
{
    return malloc(n);
}
