/*
 * Linked against libheapprof.so (LD_PRELOAD does not reach set-user-ID
 * programs) for secure_env.sh: allocates a little, prints whether the
 * kernel marked this execution secure (AT_SECURE), and exits, which
 * writes a snapshot when HEAPPROF_SNAPSHOT_AT_EXIT is honoured.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/auxv.h>

int
main(void)
{
    void *keep[64];
    for (int i = 0; i < 64; i++)
        keep[i] = malloc(4096);
    printf("secure %lu\n", getauxval(AT_SECURE));
    for (int i = 0; i < 64; i++)
        free(keep[i]);
    return 0;
}
