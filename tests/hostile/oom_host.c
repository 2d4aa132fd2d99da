/*
 * A host that runs out of memory and carries on: it allocates 1 MiB blocks
 * until malloc fails (under an address-space limit, prlimit --as), then for
 * two seconds keeps allocating and freeing small blocks, tolerating
 * failures, and exits 0. Run bare it always survives; heapprof's writer
 * thread snapshots meanwhile (HEAPPROF_SNAPSHOT_INTERVAL=1) and must not
 * take it down.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int
main(void)
{
    void **blocks = calloc(1 << 16, sizeof(void *));
    if (blocks == NULL)
        return 1;
    size_t n = 0;
    while (n < (1u << 16) && (blocks[n] = malloc(1 << 20)) != NULL) {
        memset(blocks[n], 1, 4096);
        n++;
    }
    struct timespec t0, now, nap = {0, 1000000};
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do {
        for (int i = 0; i < 64; i++) {
            void *p = malloc(64 + (size_t)i * 512);
            free(p);
        }
        nanosleep(&nap, NULL);
        clock_gettime(CLOCK_MONOTONIC, &now);
    } while (now.tv_sec - t0.tv_sec < 2);
    /* Give some back, as a server would after shedding load. */
    for (size_t i = 0; i < n; i += 2)
        free(blocks[i]);
    printf("survived\n");
    return 0;
}
