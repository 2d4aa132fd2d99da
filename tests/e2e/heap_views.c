/*
 * Workload for heapprof's own views of the heap (check_heap_views.py):
 * blocks kept from long ago (old_site), blocks kept from just now
 * (young_site), and a burst that peaks and is freed (peak_site). Writes
 * the age-filtered, peak and plain heap profiles through the API, prints
 * the truth and when the two kept sites were allocated, then waits (HTTP
 * fetches) until stdin closes.
 *
 * usage: heap_views OUTDIR
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "heapprof.h"

#define BLOCK 4096
#define OLD_N 8000
#define YOUNG_N 4000
#define PEAK_N 12000

static void *old_blocks[OLD_N], *young_blocks[YOUNG_N], *peak_blocks[PEAK_N];

__attribute__((noinline)) static void *
old_site(size_t n)
{
    void *p = malloc(n);
    if (p != NULL)
        memset(p, 1, n);
    return p;
}

__attribute__((noinline)) static void *
young_site(size_t n)
{
    void *p = malloc(n);
    if (p != NULL)
        memset(p, 2, n);
    return p;
}

__attribute__((noinline)) static void *
peak_site(size_t n)
{
    void *p = malloc(n);
    if (p != NULL)
        memset(p, 3, n);
    return p;
}

static int
fd_write(void *ctx, const void *data, size_t len)
{
    int fd = *(int *)ctx;
    const char *p = data;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int
write_aged(const char *path, uint64_t min_age_ms)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    struct heapprof_sink sink = {fd_write, &fd};
    int rc = heapprof_write_aged(min_age_ms, &sink);
    close(fd);
    return rc;
}

static uint64_t
mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/*
 * A min_age that keeps old_site and leaves young_site out however slow
 * the machine is: old_site's age now less 100 ms (young_site came 1.5 s
 * after it).
 */
static uint64_t
min_age_ms(uint64_t old_end_ns)
{
    return (mono_ns() - old_end_ns) / 1000000u - 100;
}

int
main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: heap_views OUTDIR\n");
        return 2;
    }
    char path[4096];
    for (int i = 0; i < OLD_N; i++)
        old_blocks[i] = old_site(BLOCK);
    uint64_t old_end_ns = mono_ns();
    /* The age gap between the two sites (min_age_ms). */
    struct timespec ts = {1, 500000000};
    nanosleep(&ts, NULL);
    uint64_t young_start_ns = mono_ns();
    for (int i = 0; i < YOUNG_N; i++)
        young_blocks[i] = young_site(BLOCK);
    for (int i = 0; i < PEAK_N; i++)
        peak_blocks[i] = peak_site(BLOCK);
    for (int i = 0; i < PEAK_N; i++)
        free(peak_blocks[i]);

    int rc = 0;
    snprintf(path, sizeof(path), "%s/aged.pb.gz", argv[1]);
    rc |= write_aged(path, min_age_ms(old_end_ns));
    snprintf(path, sizeof(path), "%s/peak.pb.gz", argv[1]);
    rc |= heapprof_write_path(path, HEAPPROF_PROFILE_PEAK);
    snprintf(path, sizeof(path), "%s/heap.pb.gz", argv[1]);
    rc |= heapprof_write_path(path, HEAPPROF_PROFILE_HEAP);
    /* Bad input is refused, never a crash. */
    struct heapprof_sink none = {NULL, NULL};
    if (heapprof_write_aged(1000, &none) != HEAPPROF_EINVAL ||
        heapprof_write_aged(UINT64_MAX, NULL) != HEAPPROF_EINVAL)
        rc |= 1;

    printf("truth old_site %d %d\n", OLD_N, OLD_N * BLOCK);
    printf("truth young_site %d %d\n", YOUNG_N, YOUNG_N * BLOCK);
    printf("truth peak_site %d %d\n", PEAK_N, PEAK_N * BLOCK);
    /* CLOCK_MONOTONIC, the age filter's clock, for the checker's own
     * min_age (Python's time.monotonic_ns reads the same clock). */
    printf("times %llu %llu\n", (unsigned long long)old_end_ns,
           (unsigned long long)young_start_ns);
    printf("ready %d\n", rc);
    fflush(stdout);
    /* Serve HTTP (HEAPPROF_HTTP) until the checker closes stdin. */
    char buf[64];
    while (fread(buf, 1, sizeof(buf), stdin) > 0) {
    }
    for (int i = 0; i < OLD_N; i++)
        free(old_blocks[i]);
    for (int i = 0; i < YOUNG_N; i++)
        free(young_blocks[i]);
    return rc == 0 ? 0 : 1;
}
