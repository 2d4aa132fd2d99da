/*
 * heapprof_profile_merge(): this process's own profile merged with itself
 * under two "pid" labels, subtracted from itself, and refused when a part
 * is not a profile. Writes OUT_DIR/merged.pb.gz and OUT_DIR/cancelled.pb.gz
 * for run_merge.sh to read with go tool pprof.
 *
 * usage: attach_merge OUT_DIR
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <heapprof.h>

#include "test_sink.h"

static void *kept[64];

void *merge_site(size_t n);

__attribute__((noinline)) void *
merge_site(size_t n)
{
    void *p = malloc(n);
    __asm__ volatile("" ::: "memory");
    return p;
}

static int
save(const char *dir, const char *name, const struct hp_test_sink *b)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(b->p, 1, b->n, f) != b->n) {
        perror(path);
        return -1;
    }
    return fclose(f);
}

int
main(int argc, char **argv)
{
    if (argc != 2)
        return 2;
    for (int i = 0; i < 64; i++)
        kept[i] = merge_site(4096);

    struct hp_test_sink own = {0}, merged = {0}, cancelled = {0}, junk = {0};
    struct heapprof_sink s = {hp_test_sink_write, &own};
    if (heapprof_write(HEAPPROF_PROFILE_HEAP, &s) != HEAPPROF_OK) {
        fprintf(stderr, "attach_merge: heapprof_write failed\n");
        return 1;
    }

    struct heapprof_profile_part parts[2] = {
        {own.p, own.n, "pid", NULL, 101, 0},
        {own.p, own.n, "pid", NULL, 202, 0},
    };
    s.ctx = &merged;
    int rc = heapprof_profile_merge(parts, 2, HEAPPROF_PROFILE_ALLOCS, &s);
    if (rc != HEAPPROF_OK) {
        fprintf(stderr, "attach_merge: merge: %s\n", heapprof_strerror(rc));
        return 1;
    }
    parts[1].label_num = 101;
    parts[1].negate = 1;
    /* A string label: "worker" = "a" on every sample. */
    struct heapprof_profile_part str = {own.p, own.n, "worker", "a", 0, 0};
    struct hp_test_sink strbuf = {0};
    s.ctx = &strbuf;
    if (heapprof_profile_merge(&str, 1, HEAPPROF_PROFILE_HEAP, &s) !=
        HEAPPROF_OK) {
        fprintf(stderr, "attach_merge: string label failed\n");
        return 1;
    }
    s.ctx = &cancelled;
    rc = heapprof_profile_merge(parts, 2, HEAPPROF_PROFILE_HEAP, &s);
    if (rc != HEAPPROF_OK) {
        fprintf(stderr, "attach_merge: delta: %s\n", heapprof_strerror(rc));
        return 1;
    }

    /* Not a profile: refused, nothing usable written. */
    static const unsigned char garbage[] = {0x1f, 0x8b, 8, 0, 1, 2, 3, 4};
    struct heapprof_profile_part bad = {garbage, sizeof garbage, NULL, NULL,
                                        0, 0};
    s.ctx = &junk;
    if (heapprof_profile_merge(&bad, 1, HEAPPROF_PROFILE_HEAP, &s) !=
            HEAPPROF_EPROTO ||
        heapprof_profile_merge(NULL, 0, HEAPPROF_PROFILE_HEAP, &s) !=
            HEAPPROF_EINVAL) {
        fprintf(stderr, "attach_merge: bad input not refused\n");
        return 1;
    }
    if (save(argv[1], "own.pb.gz", &own) != 0 ||
        save(argv[1], "merged.pb.gz", &merged) != 0 ||
        save(argv[1], "cancelled.pb.gz", &cancelled) != 0 ||
        save(argv[1], "strlabel.pb.gz", &strbuf) != 0)
        return 1;
    for (int i = 0; i < 64; i++)
        free(kept[i]);
    free(own.p);
    free(merged.p);
    free(cancelled.p);
    free(junk.p);
    free(strbuf.p);
    printf("attach_merge: ok\n");
    return 0;
}
