/*
 * Hostile host: 1000 short-lived threads. Most allocate and exit at once,
 * handing their blocks to the main thread (which verifies and frees them);
 * others free what they allocated, exit through pthread_exit from deep in a
 * call chain, are detached, are cancelled inside an allocation loop, or
 * leave a thread-specific value whose destructor frees (and allocates)
 * while the thread is being torn down. Up to 16 run at once.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_THREADS 1000
#define WAVE 16

static pthread_key_t key;
static int failures;
static unsigned long detached_done;

struct result {
    unsigned char *block;
    size_t size;
    unsigned char fill;
};

static void
key_destructor(void *v)
{
    /* Runs during thread exit, after the thread's start routine. */
    char *p = v;
    if (p[0] != 'k')
        __atomic_fetch_add(&failures, 1, __ATOMIC_RELAXED);
    free(p);
    free(malloc(333));
}

static size_t
size_for(unsigned i)
{
    /* Mostly small, some 600 KiB blocks that the default rate samples. */
    return i % 7 == 0 ? 600 * 1024 + i : 16 + (i * 37) % 4000;
}

static struct result *
make_result(unsigned i)
{
    struct result *r = malloc(sizeof *r);
    if (r == NULL)
        return NULL;
    r->size = size_for(i);
    r->fill = (unsigned char)i;
    r->block = malloc(r->size);
    if (r->block == NULL) {
        free(r);
        return NULL;
    }
    memset(r->block, r->fill, r->size);
    return r;
}

static volatile int exit_now = 1;

static void __attribute__((noinline))
exit_deep(unsigned i, int depth)
{
    if (depth > 0) {
        exit_deep(i, depth - 1);
        __asm__ volatile("" ::: "memory");
        return;
    }
    if (exit_now)
        pthread_exit(make_result(i));
}

static void *
cancel_loop(void *arg)
{
    (void)arg;
    for (;;) {
        void *p = malloc(64);
        free(p);
        pthread_testcancel();
    }
    return NULL;
}

static void *
thread_main(void *arg)
{
    unsigned i = (unsigned)(uintptr_t)arg;
    switch (i % 5) {
    case 0: /* allocate and exit at once */
        return make_result(i);
    case 1: { /* allocate, free, exit */
        for (int k = 0; k < 20; k++)
            free(malloc(size_for(i + (unsigned)k)));
        return make_result(i);
    }
    case 2: /* pthread_exit from deep in a call chain */
        exit_deep(i, 20);
        return NULL;
    case 3: { /* a thread-specific value freed by its destructor */
        char *v = malloc(100);
        if (v != NULL) {
            v[0] = 'k';
            pthread_setspecific(key, v);
        }
        return make_result(i);
    }
    default: { /* detached thread: allocate, free, exit */
        void *p = calloc(1, size_for(i));
        free(p);
        __atomic_fetch_add(&detached_done, 1, __ATOMIC_RELAXED);
        return NULL;
    }
    }
}

int
main(void)
{
    if (pthread_key_create(&key, key_destructor) != 0)
        return 3;
    pthread_attr_t detached;
    pthread_attr_init(&detached);
    pthread_attr_setdetachstate(&detached, PTHREAD_CREATE_DETACHED);

    unsigned long checksum = 0;
    unsigned joined = 0, cancelled = 0;
    for (unsigned base = 0; base < N_THREADS; base += WAVE) {
        pthread_t t[WAVE];
        int joinable[WAVE];
        for (unsigned k = 0; k < WAVE && base + k < N_THREADS; k++) {
            unsigned i = base + k;
            joinable[k] = i % 5 != 4;
            int rc = pthread_create(&t[k], joinable[k] ? NULL : &detached,
                                    thread_main, (void *)(uintptr_t)i);
            if (rc != 0) {
                fprintf(stderr, "pthread_create: %s\n", strerror(rc));
                return 3;
            }
        }
        for (unsigned k = 0; k < WAVE && base + k < N_THREADS; k++) {
            if (!joinable[k])
                continue;
            void *ret = NULL;
            pthread_join(t[k], &ret);
            struct result *r = ret;
            joined++;
            if (r == NULL) {
                failures++;
                continue;
            }
            for (size_t b = 0; b < r->size; b += 97)
                if (r->block[b] != r->fill) {
                    failures++;
                    break;
                }
            checksum = checksum * 31 + r->size + r->fill;
            free(r->block);
            free(r);
        }
        /* Every fourth wave, a thread cancelled in an allocation loop. */
        if ((base / WAVE) % 4 == 0) {
            pthread_t c;
            if (pthread_create(&c, NULL, cancel_loop, NULL) == 0) {
                pthread_cancel(c);
                void *ret;
                pthread_join(c, &ret);
                if (ret == PTHREAD_CANCELED)
                    cancelled++;
            }
        }
    }
    /* Let the detached threads finish (bounded wait: 30 s, for a loaded
     * machine; it normally takes a few ms). */
    for (int spin = 0; spin < 30000; spin++) {
        if (__atomic_load_n(&detached_done, __ATOMIC_RELAXED) == N_THREADS / 5)
            break;
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    printf("joined %u, detached %lu, cancelled %u\n", joined,
           __atomic_load_n(&detached_done, __ATOMIC_RELAXED), cancelled);
    printf("checksum %lu\n", checksum);
    printf("failures %d\n", failures);
    return failures == 0 ? 0 : 1;
}
