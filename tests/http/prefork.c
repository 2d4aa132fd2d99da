/*
 * A pre-fork server's shape for the process-tree tests: the parent
 * allocates at parent_site, forks N workers (argv[2]) that each allocate
 * at worker_site and then wait without allocating again (an idle worker
 * must still be seen), and writes {"pid": P, "workers": [...]} to argv[1]
 * once every worker is ready. The test stops them by pid. With a third
 * argument "idle" the workers never call malloc after the fork at all
 * (write and pause only): heapprof must see them without it.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BLOCK 65536
#define PARENT_BLOCKS 64   /* 4 MiB */
#define WORKER_BLOCKS 32   /* 2 MiB each */

static void *volatile keep[PARENT_BLOCKS + WORKER_BLOCKS];

__attribute__((noinline)) static void
parent_site(void)
{
    for (int i = 0; i < PARENT_BLOCKS; i++) {
        keep[i] = malloc(BLOCK);
        memset(keep[i], 1, BLOCK);
    }
}

__attribute__((noinline)) static void
worker_site(void)
{
    for (int i = 0; i < WORKER_BLOCKS; i++) {
        keep[PARENT_BLOCKS + i] = malloc(BLOCK);
        memset(keep[PARENT_BLOCKS + i], 2, BLOCK);
    }
}

int
main(int argc, char **argv)
{
    if (argc != 3 && !(argc == 4 && strcmp(argv[3], "idle") == 0))
        return 2;
    int idle = argc == 4;
    int n = atoi(argv[2]);
    if (n < 1 || n > 64)
        return 2;
    parent_site();
    int ready[2];
    if (pipe(ready) != 0)
        return 1;
    pid_t workers[64];
    for (int i = 0; i < n; i++) {
        workers[i] = fork();
        if (workers[i] < 0)
            return 1;
        if (workers[i] == 0) {
            close(ready[0]);
            if (!idle)
                worker_site();
            if (write(ready[1], "x", 1) != 1)
                _exit(1);
            for (;;)
                pause();
        }
    }
    close(ready[1]);
    for (int got = 0; got < n;) {
        char c;
        if (read(ready[0], &c, 1) != 1)
            return 1;
        got++;
    }
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp", argv[1]);
    FILE *f = fopen(tmp, "w");
    if (f == NULL)
        return 1;
    fprintf(f, "{\"pid\": %d, \"workers\": [", (int)getpid());
    for (int i = 0; i < n; i++)
        fprintf(f, "%s%d", i ? ", " : "", (int)workers[i]);
    fprintf(f, "]}\n");
    fclose(f);
    rename(tmp, argv[1]);
    for (;;)
        pause();
}
