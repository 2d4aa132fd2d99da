/*
 * Workload for HEAPPROF_SNAPSHOT_PEAK and HEAPPROF_LEAK_REPORT (run under
 * LD_PRELOAD by check_peak_leak.py).
 *
 *   climb  64 blocks of 1 MiB at peak_site_climb, all held, then freed;
 *          1 MiB at peak_site_after kept: the peak is the 64 MiB.
 *   leak   3 MiB at leak_site_big and 1 MiB at leak_site_small kept, the
 *          rest freed; a thread still allocating when main returns; stderr
 *          closed first, as coreutils do.
 *   clean  allocates and frees everything (no stdio, whose buffer libc
 *          keeps), exits with exit(4).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MIB (1u << 20)

static volatile void *sink;

__attribute__((noinline)) static void *
peak_site_climb(void)
{
    return memset(malloc(MIB), 1, MIB);
}

__attribute__((noinline)) static void *
peak_site_after(void)
{
    return memset(malloc(MIB), 2, MIB);
}

__attribute__((noinline)) static void *
leak_site_big(void)
{
    return memset(malloc(MIB), 3, MIB);
}

__attribute__((noinline)) static void *
leak_site_small(void)
{
    return memset(malloc(MIB / 4), 4, MIB / 4);
}

__attribute__((noinline)) static void *
freed_site(void)
{
    return memset(malloc(MIB / 2), 5, MIB / 2);
}

static void *
churn(void *arg)
{
    (void)arg;
    for (;;) {
        void *p = malloc(4096);
        sink = p;
        free(p);
    }
    return NULL;
}

static int
climb(void)
{
    void *blocks[64];
    for (int i = 0; i < 64; i++) {
        blocks[i] = peak_site_climb();
        usleep(2000);
    }
    for (int i = 0; i < 64; i++)
        free(blocks[i]);
    sink = peak_site_after();
    printf("climbed\n");
    return 0;
}

static int
leak(void)
{
    pthread_t t;
    if (pthread_create(&t, NULL, churn, NULL) != 0)
        return 2;
    for (int i = 0; i < 3; i++)
        sink = leak_site_big();
    for (int i = 0; i < 4; i++)
        sink = leak_site_small();
    for (int i = 0; i < 8; i++)
        free(freed_site());
    printf("leaked\n");
    fflush(stdout);
    fclose(stderr);
    return 0;
}

static void
clean(void)
{
    for (int i = 0; i < 8; i++)
        free(freed_site());
    /* write(2), not stdio: stdout's buffer would stay in use. */
    if (write(1, "clean\n", 6) != 6)
        exit(2);
    exit(4);
}

int
main(int argc, char **argv)
{
    if (argc != 2)
        return 2;
    if (strcmp(argv[1], "climb") == 0)
        return climb();
    if (strcmp(argv[1], "leak") == 0)
        return leak();
    if (strcmp(argv[1], "clean") == 0)
        clean();
    return 2;
}
