/*
 * For secure_env.sh: allocates a little, prints whether the kernel marked
 * this execution secure (AT_SECURE), and exits, which writes a snapshot
 * when HEAPPROF_SNAPSHOT_AT_EXIT is honoured. Linked with libheapprof.a:
 * LD_PRELOAD does not reach set-user-ID programs, and the script's copy
 * must load even where "nobody" cannot read the build tree.
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
