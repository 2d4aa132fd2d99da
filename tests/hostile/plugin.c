/*
 * A tiny plugin for hostile_mt_fork_dlopen: it allocates in its
 * constructor, its destructor and its entry point, and uses dynamic TLS
 * (which glibc allocates with malloc on first use in each thread).
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

static char *held;
static __thread char tls_buf[2048];

__attribute__((constructor)) static void
plugin_init(void)
{
    held = malloc(3000);
    if (held != NULL)
        memset(held, 'p', 3000);
}

__attribute__((destructor)) static void
plugin_fini(void)
{
    free(held);
    held = NULL;
    free(strdup("plugin destructor"));
}

unsigned long hostile_plugin_work(int i);

unsigned long
hostile_plugin_work(int i)
{
    unsigned long sum = 0;
    memset(tls_buf, i, sizeof tls_buf);
    for (int k = 0; k < 50; k++) {
        size_t n = (size_t)(i * 50 + k) % 700 + 1;
        unsigned char *p = malloc(n);
        if (p == NULL)
            return 0;
        memset(p, k, n);
        p = realloc(p, n * 3);
        if (p == NULL)
            return 0;
        sum += p[n - 1] + n + (unsigned char)tls_buf[k];
        free(p);
    }
    return sum + (held != NULL && held[2999] == 'p');
}
