/*
 * A program that exports functions under zlib's names with its own
 * meaning, as varnishd does (it carries its own zlib and exports its
 * symbols for its modules): zlib's internal calls (deflateInit2_ calls
 * deflateReset) must not land here when heapprof writes a profile. Before
 * heapprof loaded zlib deep-bound, its stream was corrupted (varnishd's
 * listener crashed) or its writes failed. Built with -rdynamic.
 *
 *   own_zlib PROFILE    writes PROFILE with heapprof_write_path
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Not zlib's: a program's own function that happens to have its name. */
int
deflateReset(void *stream)
{
    if (stream != NULL)
        memset(stream, 0, 16);
    return -2; /* Z_STREAM_ERROR */
}

void *kept[256];

int
main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s PROFILE\n", argv[0]);
        return 2;
    }
    int (*write_path)(const char *, int);
    *(void **)&write_path = dlsym(RTLD_DEFAULT, "heapprof_write_path");
    if (write_path == NULL) {
        fprintf(stderr, "heapprof is not preloaded\n");
        return 2;
    }
    for (int i = 0; i < 256; i++)
        kept[i] = malloc(4096);
    int rc = write_path(argv[1], 0);
    printf("heapprof_write_path: %d\n", rc);
    return rc == 0 ? 0 : 1;
}
