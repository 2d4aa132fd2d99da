/*
 * Workload for labels on heap samples (check_labels.py): one allocation
 * site, handle(), called under different per-thread labels, some blocks
 * freed under other labels than they were allocated with. Writes the heap
 * profile to OUTDIR/labels.pb.gz and prints the truth.
 *
 * Built twice: linked with -lheapprof, and with HP_LABELS_WEAK through
 * <heapprof_weak.h> without linking (run under LD_PRELOAD), the form a
 * server uses to label only when heapprof is there.
 *
 * usage: labels_workload OUTDIR
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef HP_LABELS_WEAK
#include "heapprof_weak.h"
#define LABEL_SET heapprof_weak_labels_set
#define LABELS_CLEAR heapprof_weak_labels_clear
#else
#include "heapprof.h"
#define LABEL_SET heapprof_labels_set
#define LABELS_CLEAR heapprof_labels_clear
#endif

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
    expect(LABEL_SET("route", "/b"), HEAPPROF_OK, "thread set");
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
    expect(LABEL_SET("route", "/a"), HEAPPROF_OK, "set /a");
    for (int i = 0; i < N_A; i++)
        a[i] = handle(1000);
    expect(LABEL_SET("route", "/b"), HEAPPROF_OK, "set /b");
    for (int i = 0; i < N_B; i++)
        b[i] = handle(3000);
    /* Half of /a's blocks freed while /b is set: credited to /a. */
    for (int i = 0; i < N_A / 2; i++)
        free(a[i]);
    pthread_t th;
    if (pthread_create(&th, NULL, other_thread, NULL) != 0 ||
        pthread_join(th, NULL) != 0)
        errors++;
    expect(LABEL_SET("route", "/a"), HEAPPROF_OK, "set /a again");
    expect(LABEL_SET("tenant", "x"), HEAPPROF_OK, "set tenant");
    for (int i = 0; i < N_AX; i++)
        ax[i] = handle(500);
    LABELS_CLEAR();
    for (int i = 0; i < N_NONE; i++)
        none[i] = handle(2000);

    /* Bad input: refused, labels unchanged, never a crash. */
    char longkey[80], longval[300];
    memset(longkey, 'k', sizeof(longkey) - 1);
    longkey[sizeof(longkey) - 1] = '\0';
    memset(longval, 'v', sizeof(longval) - 1);
    longval[sizeof(longval) - 1] = '\0';
    expect(LABEL_SET(NULL, "x"), HEAPPROF_EINVAL, "NULL key");
    expect(LABEL_SET("", "x"), HEAPPROF_EINVAL, "empty key");
    expect(LABEL_SET(longkey, "x"), HEAPPROF_ERANGE, "long key");
    expect(LABEL_SET("k", longval), HEAPPROF_ERANGE, "long value");
    char key[8];
    for (int i = 0; i < 8; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        expect(LABEL_SET(key, "v"), HEAPPROF_OK, "8 keys");
    }
    expect(LABEL_SET("k8", "v"), HEAPPROF_ERANGE, "9th key");
    expect(LABEL_SET("k0", "w"), HEAPPROF_OK, "replace a key");
    expect(LABEL_SET("k0", NULL), HEAPPROF_OK, "remove a key");
    expect(LABEL_SET("k8", "v"), HEAPPROF_OK, "8th key again");
    LABELS_CLEAR();

    char path[4096];
    snprintf(path, sizeof(path), "%s/labels.pb.gz", argv[1]);
#ifdef HP_LABELS_WEAK
    int (*write_path)(const char *, enum heapprof_profile) =
        (int (*)(const char *, enum heapprof_profile))dlsym(RTLD_DEFAULT,
                                                            "heapprof_write_path");
    if (write_path == NULL || !heapprof_weak_present()) {
        fprintf(stderr, "labels_workload: heapprof is not preloaded\n");
        return 1;
    }
#else
    int (*write_path)(const char *, enum heapprof_profile) = heapprof_write_path;
#endif
    expect(write_path(path, HEAPPROF_PROFILE_HEAP), 0, "write");
    /* truth LABELS ALLOCATED_BYTES INUSE_BYTES (handle() only) */
    printf("truth route=/a %d %d\n", N_A * 1000, N_A / 2 * 1000);
    printf("truth route=/b %d %d\n", (N_B + N_T) * 3000, (N_B + N_T) * 3000);
    printf("truth route=/a,tenant=x %d %d\n", N_AX * 500, N_AX * 500);
    printf("truth - %d %d\n", N_NONE * 2000 + 10 * 100000, N_NONE * 2000);
    printf("errors %d\n", errors);
    return errors == 0 ? 0 : 1;
}
