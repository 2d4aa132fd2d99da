/*
 * Known-truth server workload for the HTTP end-to-end tests. It makes a
 * fixed set of allocations from distinctively named sites, writes what
 * each site allocated (and still holds) as JSON, then keeps running like a
 * server: every 10 ms site_tick allocates and frees 32 KiB, so delta
 * profiles have something to show. It never exits on its own; the test
 * stops it by PID (SIGTERM), on which it returns from main, so that what
 * heapprof does at exit (removing its unix socket) runs.
 *
 * usage: http_workload TRUTH.json [fork]
 * TRUTH.json appears (atomically, by rename) once the setup is done. With
 * "fork", a child forked after the setup (no exec) runs the same loop; its
 * PID is in the JSON ("child") so the test can stop it too.
 */
#include <stdint.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

struct site {
    const char *name;
    uint64_t alloc_objects, alloc_space, inuse_objects, inuse_space;
};

enum { HOLD_SMALL, HOLD_LARGE, CHURN, MIXED, NSITES };

static struct site sites[NSITES] = {
    [HOLD_SMALL] = {.name = "site_hold_small"},
    [HOLD_LARGE] = {.name = "site_hold_large"},
    [CHURN] = {.name = "site_churn"},
    [MIXED] = {.name = "site_mixed"},
};

/* Book-keeping after the site's own malloc call (the site must be the
 * caller of malloc: it is the leaf of its samples). */
static void *
note(void *p, int s, size_t size, int keep)
{
    if (p == NULL) {
        perror("malloc");
        exit(1);
    }
    memset(p, 0x5a, size);
    sites[s].alloc_objects++;
    sites[s].alloc_space += size;
    if (keep) {
        sites[s].inuse_objects++;
        sites[s].inuse_space += size;
    }
    return p;
}

/* noinline + a compiler barrier: each site stays a real frame, the leaf of
 * its samples. The arrays that keep blocks live are main's allocations. */
__attribute__((noinline)) static void
site_hold_small(void **v, int n)
{
    for (int i = 0; i < n; i++)
        v[i] = note(malloc(1024), HOLD_SMALL, 1024, 1);
    __asm__ volatile("" ::: "memory");
}

__attribute__((noinline)) static void
site_hold_large(void **v, int n)
{
    for (int i = 0; i < n; i++)
        v[i] = note(malloc(65536), HOLD_LARGE, 65536, 1);
    __asm__ volatile("" ::: "memory");
}

__attribute__((noinline)) static void
site_churn(int n)
{
    for (int i = 0; i < n; i++)
        free(note(malloc(2048), CHURN, 2048, 0));
    __asm__ volatile("" ::: "memory");
}

/* Sizes 256..8192 in a fixed cycle; every other block is freed. */
__attribute__((noinline)) static void
site_mixed(void **v, int n)
{
    for (int i = 0; i < n; i++) {
        size_t size = 256 + (size_t)(i % 32) * 248;
        int keep = i % 2 == 0;
        v[i] = note(malloc(size), MIXED, size, keep);
        if (!keep) {
            free(v[i]);
            v[i] = NULL;
        }
    }
    __asm__ volatile("" ::: "memory");
}

__attribute__((noinline)) static void
site_tick(void)
{
    char *p = malloc(32768);
    if (p != NULL) {
        memset(p, 1, 32768);
        __asm__ volatile("" : : "r"(p) : "memory");
        free(p);
    }
}

static pid_t child;

static void
write_truth(const char *path)
{
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (f == NULL) {
        perror(tmp);
        exit(1);
    }
    fprintf(f, "{\"pid\": %d, \"child\": %d, \"sites\": {",
            (int)getpid(), (int)child);
    for (int s = 0; s < NSITES; s++)
        fprintf(f,
                "%s\"%s\": {\"alloc_objects\": %llu, \"alloc_space\": %llu, "
                "\"inuse_objects\": %llu, \"inuse_space\": %llu}",
                s ? ", " : "", sites[s].name,
                (unsigned long long)sites[s].alloc_objects,
                (unsigned long long)sites[s].alloc_space,
                (unsigned long long)sites[s].inuse_objects,
                (unsigned long long)sites[s].inuse_space);
    fprintf(f, "}}\n");
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        perror(path);
        exit(1);
    }
}

static volatile sig_atomic_t stop;

static void
on_term(int sig)
{
    (void)sig;
    stop = 1;
}

int
main(int argc, char **argv)
{
    if (argc != 2 && !(argc == 3 && strcmp(argv[2], "fork") == 0)) {
        fprintf(stderr, "usage: %s TRUTH.json [fork]\n", argv[0]);
        return 2;
    }
    void **a = calloc(20000, sizeof(void *));
    void **b = calloc(500, sizeof(void *));
    void **c = calloc(20000, sizeof(void *));
    if (a == NULL || b == NULL || c == NULL)
        return 1;
    site_hold_small(a, 20000);
    site_hold_large(b, 500);
    site_churn(40000);
    site_mixed(c, 20000);
    if (argc == 3) {
        child = fork();
        if (child < 0) {
            perror("fork");
            return 1;
        }
    }
    if (child != 0 || argc == 2)
        write_truth(argv[1]);
    signal(SIGTERM, on_term);
    while (!stop) {
        site_tick();
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
        __asm__ volatile("" : : "r"(a), "r"(b), "r"(c) : "memory");
    }
    return 0;
}
