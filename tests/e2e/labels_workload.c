/*
 * Workload for labels on heap samples (check_labels.py): one allocation
 * site, handle(), called under different per-thread labels, some blocks
 * freed under other labels than they were allocated with. Writes the heap
 * profile to OUTDIR/labels.pb.gz and prints the truth.
 *
 * usage: labels_workload OUTDIR
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "heapprof.h"

/* Every figure checked is >= 16 MB: >= 4000 expected samples at
 * HEAPPROF_RATE=4096, so +-10 % is over 6 standard deviations. */
#define N_A 32000   /* route=/a: 32000 x 1000 B, half freed later */
#define N_B 6000    /* route=/b: 6000 x 3000 B (main thread) */
#define N_T 2000    /* route=/b on a second thread: 2000 x 3000 B */
#define N_AX 32000  /* route=/a tenant=x: 32000 x 500 B */
#define N_NONE 8000 /* no labels: 8000 x 2000 B */

static void *a[N_A], *b[N_B], *t[N_T], *ax[N_AX], *none[N_NONE];
static int errors;

__attribute__((noinline)) static void *
handle(size_t n)
{
    void *p = malloc(n);
    if (p != NULL)
        memset(p, 7, n);
    return p;
}

static void
expect(int got, int want, const char *what)
{
    if (got != want) {
        fprintf(stderr, "labels_workload: %s returned %d, want %d\n", what, got, want);
        errors++;
    }
}

static void *
other_thread(void *arg)
{
    (void)arg;
    /* A new thread starts without labels. */
    for (int i = 0; i < 10; i++)
        free(handle(100000)); /* unlabelled, freed: in use 0 */
    expect(heapprof_label_set("route", "/b"), HEAPPROF_OK, "thread set");
    for (int i = 0; i < N_T; i++)
        t[i] = handle(3000);
    return NULL;
}

int
main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: labels_workload OUTDIR\n");
        return 2;
    }
    expect(heapprof_label_set("route", "/a"), HEAPPROF_OK, "set /a");
    for (int i = 0; i < N_A; i++)
        a[i] = handle(1000);
    expect(heapprof_label_set("route", "/b"), HEAPPROF_OK, "set /b");
    for (int i = 0; i < N_B; i++)
        b[i] = handle(3000);
    /* Half of /a's blocks freed while /b is set: credited to /a. */
    for (int i = 0; i < N_A / 2; i++)
        free(a[i]);
    pthread_t th;
    if (pthread_create(&th, NULL, other_thread, NULL) != 0 ||
        pthread_join(th, NULL) != 0)
        errors++;
    expect(heapprof_label_set("route", "/a"), HEAPPROF_OK, "set /a again");
    expect(heapprof_label_set("tenant", "x"), HEAPPROF_OK, "set tenant");
    for (int i = 0; i < N_AX; i++)
        ax[i] = handle(500);
    heapprof_labels_clear();
    for (int i = 0; i < N_NONE; i++)
        none[i] = handle(2000);

    /* Bad input: refused, labels unchanged, never a crash. */
    char longkey[80], longval[300];
    memset(longkey, 'k', sizeof(longkey) - 1);
    longkey[sizeof(longkey) - 1] = '\0';
    memset(longval, 'v', sizeof(longval) - 1);
    longval[sizeof(longval) - 1] = '\0';
    expect(heapprof_label_set(NULL, "x"), HEAPPROF_EINVAL, "NULL key");
    expect(heapprof_label_set("", "x"), HEAPPROF_EINVAL, "empty key");
    expect(heapprof_label_set(longkey, "x"), HEAPPROF_ERANGE, "long key");
    expect(heapprof_label_set("k", longval), HEAPPROF_ERANGE, "long value");
    char key[8];
    for (int i = 0; i < 8; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        expect(heapprof_label_set(key, "v"), HEAPPROF_OK, "8 keys");
    }
    expect(heapprof_label_set("k8", "v"), HEAPPROF_ERANGE, "9th key");
    expect(heapprof_label_set("k0", "w"), HEAPPROF_OK, "replace a key");
    expect(heapprof_label_set("k0", NULL), HEAPPROF_OK, "remove a key");
    expect(heapprof_label_set("k8", "v"), HEAPPROF_OK, "8th key again");
    heapprof_labels_clear();

    char path[4096];
    snprintf(path, sizeof(path), "%s/labels.pb.gz", argv[1]);
    expect(heapprof_write_path(path, HEAPPROF_PROFILE_HEAP), 0, "write");
    /* truth LABELS ALLOCATED_BYTES INUSE_BYTES (handle() only) */
    printf("truth route=/a %d %d\n", N_A * 1000, N_A / 2 * 1000);
    printf("truth route=/b %d %d\n", (N_B + N_T) * 3000, (N_B + N_T) * 3000);
    printf("truth route=/a,tenant=x %d %d\n", N_AX * 500, N_AX * 500);
    printf("truth - %d %d\n", N_NONE * 2000 + 10 * 100000, N_NONE * 2000);
    printf("errors %d\n", errors);
    return errors == 0 ? 0 : 1;
}
