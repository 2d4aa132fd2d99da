/*
 * A long-running multithreaded program for `heapprof attach` (started bare,
 * no LD_PRELOAD): THREADS threads churn through three allocation sites,
 * keeping a ring of blocks alive across iterations (so blocks allocated
 * before attach are freed after it, and blocks sampled while attached are
 * freed after detach), until STOPFILE exists. Its output and exit status
 * (3) do not depend on how long it ran: each thread checks every block it
 * frees and prints one line at the end.
 *
 * usage: attach_workload READYFILE STOPFILE
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define THREADS 4
#define RING 256

static const char *stop_file;
static uint32_t corrupt[THREADS];

struct block {
    uint32_t tag;
    uint32_t len;
    unsigned char data[];
};

static uint32_t
pattern(uint32_t tag, uint32_t i)
{
    return (tag * 2654435761u + i) & 0xff;
}

static struct block *
fill(struct block *b, uint32_t tag, uint32_t len)
{
    if (b == NULL)
        abort();
    b->tag = tag;
    b->len = len;
    for (uint32_t i = 0; i < len; i++)
        b->data[i] = (unsigned char)pattern(tag, i);
    return b;
}

__attribute__((noinline)) static struct block *
attach_site_malloc(uint32_t tag, uint32_t len)
{
    return fill(malloc(sizeof(struct block) + len), tag, len);
}

__attribute__((noinline)) static struct block *
attach_site_calloc(uint32_t tag, uint32_t len)
{
    return fill(calloc(1, sizeof(struct block) + len), tag, len);
}

__attribute__((noinline)) static struct block *
attach_site_realloc(struct block *old, uint32_t tag, uint32_t len)
{
    return fill(realloc(old, sizeof(struct block) + len), tag, len);
}

static int
check(const struct block *b)
{
    for (uint32_t i = 0; i < b->len; i++)
        if (b->data[i] != (unsigned char)pattern(b->tag, i))
            return -1;
    return 0;
}

static void *
worker(void *arg)
{
    uintptr_t id = (uintptr_t)arg;
    struct block *ring[RING] = {0};
    uint32_t x = (uint32_t)id * 7919u + 1, bad = 0;
    for (uint64_t n = 0;; n++) {
        if (n % 4096 == 0 && access(stop_file, F_OK) == 0)
            break;
        x = x * 1103515245u + 12345u;
        unsigned slot = (x >> 8) % RING;
        uint32_t len = 16 + (x >> 16) % 2048;
        struct block *b = ring[slot];
        if (b != NULL && check(b) != 0)
            bad++;
        switch (x % 3) {
        case 0:
            free(b);
            ring[slot] = attach_site_malloc(x, len);
            break;
        case 1:
            free(b);
            ring[slot] = attach_site_calloc(x, len);
            break;
        default:
            ring[slot] = attach_site_realloc(b, x, len);
            break;
        }
    }
    for (unsigned i = 0; i < RING; i++) {
        if (ring[i] != NULL && check(ring[i]) != 0)
            bad++;
        free(ring[i]);
    }
    corrupt[id] = bad;
    return NULL;
}

int
main(int argc, char **argv)
{
    if (argc != 3)
        return 2;
    stop_file = argv[2];
    pthread_t t[THREADS];
    for (uintptr_t i = 0; i < THREADS; i++)
        if (pthread_create(&t[i], NULL, worker, (void *)i) != 0)
            return 2;
    FILE *f = fopen(argv[1], "w");
    if (f == NULL || fclose(f) != 0)
        return 2;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        printf("thread %d: %s\n", i, corrupt[i] == 0 ? "ok" : "CORRUPT");
    }
    printf("done\n");
    fflush(stdout);
    return 3;
}
