/*
 * A host that does not preload heapprof: it loads libheapprof.so with
 * dlopen(RTLD_LOCAL), as a plugin host loads a plugin that links it, and
 * attaches while its own threads allocate and free. Blocks allocated
 * before attach are freed and reallocated after it; a plugin dlopen'ed
 * after attach must be profiled too; after detach nothing is sampled.
 *
 * usage: attach_host LIBHEAPPROF PLUGIN OUT_DIR
 * Writes OUT_DIR/attached.pb.gz (after attach and the plugin) and
 * OUT_DIR/detached.pb.gz (after detach); run_attach.sh reads them with
 * go tool pprof. Exit status 0 = every in-process check passed.
 */
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <heapprof.h>

#define NPRE 2000
#define NPOST 500
#define NTHREADS 4

static int failures;

#define CHECK(cond)                                                           \
    do {                                                                      \
        if (!(cond)) {                                                        \
            fprintf(stderr, "attach_host: %s:%d: check failed: %s\n",         \
                    __FILE__, __LINE__, #cond);                               \
            failures++;                                                       \
        }                                                                     \
    } while (0)

static __typeof__(heapprof_attach) *p_attach;
static __typeof__(heapprof_detach) *p_detach;
static __typeof__(heapprof_attach_stats) *p_stats;
static __typeof__(heapprof_write_path) *p_write_path;
static __typeof__(heapprof_strerror) *p_strerror;

static void *pre[NPRE];
static void *post[NPOST];
static int stop_threads;
static unsigned long churn_rounds; /* all threads' allocations so far */

/* Sites: never inlined, so each is a frame of its own in the profile. */
void *site_before_attach(size_t n);
void *site_after_attach(size_t n);
void *site_calloc_after_attach(size_t n);
void *site_memalign_after_attach(size_t n);
void *site_after_detach(size_t n);
void *site_after_reattach(size_t n);

__attribute__((noinline)) void *
site_before_attach(size_t n)
{
    void *p = malloc(n);
    __asm__ volatile("" ::: "memory");
    return p;
}

__attribute__((noinline)) void *
site_after_attach(size_t n)
{
    void *p = malloc(n);
    __asm__ volatile("" ::: "memory");
    return p;
}

__attribute__((noinline)) void *
site_calloc_after_attach(size_t n)
{
    void *p = calloc(1, n);
    __asm__ volatile("" ::: "memory");
    return p;
}

__attribute__((noinline)) void *
site_memalign_after_attach(size_t n)
{
    void *p = NULL;
    if (posix_memalign(&p, 64, n) != 0)
        return NULL;
    __asm__ volatile("" ::: "memory");
    return p;
}

__attribute__((noinline)) void *
site_after_detach(size_t n)
{
    void *p = malloc(n);
    __asm__ volatile("" ::: "memory");
    return p;
}

__attribute__((noinline)) void *
site_after_reattach(size_t n)
{
    void *p = malloc(n);
    __asm__ volatile("" ::: "memory");
    return p;
}

__attribute__((noinline)) static void *
churn(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    void *ring[64] = {0};
    unsigned i = 0;
    while (!__atomic_load_n(&stop_threads, __ATOMIC_RELAXED)) {
        seed = seed * 1103515245u + 12345u;
        unsigned k = i++ % 64;
        free(ring[k]);
        ring[k] = malloc(16 + (seed >> 16) % 4096);
        if (ring[k] != NULL)
            memset(ring[k], 1, 16);
        __atomic_add_fetch(&churn_rounds, 1, __ATOMIC_RELAXED);
    }
    for (unsigned k = 0; k < 64; k++)
        free(ring[k]);
    return NULL;
}

static void *
sym(void *h, const char *name)
{
    void *p = dlsym(h, name);
    if (p == NULL) {
        fprintf(stderr, "attach_host: dlsym %s: %s\n", name, dlerror());
        exit(2);
    }
    return p;
}

int
main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: attach_host LIBHEAPPROF PLUGIN OUT_DIR\n");
        return 2;
    }
    char path[4096];

    /* Allocations from before heapprof is even loaded. */
    for (int i = 0; i < NPRE; i++)
        pre[i] = site_before_attach(100 + (size_t)i % 300);

    void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (h == NULL) {
        fprintf(stderr, "attach_host: dlopen: %s\n", dlerror());
        return 2;
    }
    *(void **)&p_attach = sym(h, "heapprof_attach");
    *(void **)&p_detach = sym(h, "heapprof_detach");
    *(void **)&p_stats = sym(h, "heapprof_attach_stats");
    *(void **)&p_write_path = sym(h, "heapprof_write_path");
    *(void **)&p_strerror = sym(h, "heapprof_strerror");

    /* Loaded but not attached: malloc is still libc's. */
    CHECK(dlsym(RTLD_DEFAULT, "malloc") != dlsym(h, "malloc"));
    struct heapprof_attach_stats st;
    CHECK(p_stats(&st) == HEAPPROF_OK && st.state == HEAPPROF_ATTACH_NONE);

    pthread_t th[NTHREADS];
    for (int i = 0; i < NTHREADS; i++)
        pthread_create(&th[i], NULL, churn, (void *)(uintptr_t)(i + 1));
    /* Attach while they are allocating. */
    while (__atomic_load_n(&churn_rounds, __ATOMIC_RELAXED) < 1000u * NTHREADS)
        sched_yield();

    int rc = p_attach();
    if (rc != HEAPPROF_OK)
        fprintf(stderr, "attach_host: heapprof_attach: %s\n", p_strerror(rc));
    CHECK(rc == HEAPPROF_OK);
    CHECK(p_stats(&st) == HEAPPROF_OK);
    CHECK(st.state == HEAPPROF_ATTACH_PATCHED);
    CHECK(st.slots > 0 && st.objects > 0);
    unsigned slots = st.slots;
    fprintf(stderr, "attach_host: attached: %u slots in %u objects, %u "
                    "failed\n", st.slots, st.objects, st.failed);
    /* Idempotent. */
    CHECK(p_attach() == HEAPPROF_OK);
    CHECK(p_stats(&st) == HEAPPROF_OK && st.slots == slots);

    /* Blocks from before attach: freed and reallocated through the
     * wrappers, which hand them to the allocator they came from. */
    for (int i = 0; i < NPRE; i += 2) {
        free(pre[i]);
        pre[i] = NULL;
    }
    for (int i = 1; i < NPRE; i += 4) {
        pre[i] = realloc(pre[i], 5000);
        CHECK(pre[i] != NULL);
        CHECK(malloc_usable_size(pre[i]) >= 5000);
    }

    for (int i = 0; i < NPOST; i++) {
        switch (i % 3) {
        case 0: post[i] = site_after_attach(1000); break;
        case 1: post[i] = site_calloc_after_attach(1000); break;
        default: post[i] = site_memalign_after_attach(1000); break;
        }
        CHECK(post[i] != NULL);
    }
    /* Half of them freed again: in-use keeps the other half. */
    for (int i = 0; i < NPOST; i += 2) {
        free(post[i]);
        post[i] = NULL;
    }

    /* A plugin loaded after attach goes through the dlopen wrapper. */
    void *plug = dlopen(argv[2], RTLD_NOW | RTLD_LOCAL);
    CHECK(plug != NULL);
    if (plug != NULL) {
        void *(*plugin_alloc)(size_t);
        *(void **)&plugin_alloc = sym(plug, "plugin_alloc_site");
        for (int i = 0; i < 100; i++)
            CHECK(plugin_alloc(2048) != NULL); /* kept: in use */
    }

    /* Writing a profile loads heapprof's own libraries (libdw into a
     * namespace of its own): the slots pointing at heapprof stay as many
     * (heapprof's own pointers to the allocator are not patched). */
    CHECK(p_stats(&st) == HEAPPROF_OK);
    slots = st.slots;
    snprintf(path, sizeof path, "%s/attached.pb.gz", argv[3]);
    CHECK(p_write_path(path, HEAPPROF_PROFILE_HEAP) == HEAPPROF_OK);
    CHECK(p_stats(&st) == HEAPPROF_OK);
    if (st.slots != slots)
        fprintf(stderr, "attach_host: %u GOT slots before writing a profile, "
                        "%u after\n", slots, st.slots);
    CHECK(st.slots == slots);

    CHECK(p_detach() == HEAPPROF_OK);
    CHECK(p_stats(&st) == HEAPPROF_OK && st.state == HEAPPROF_ATTACH_NONE);
    CHECK(dlsym(RTLD_DEFAULT, "malloc") != dlsym(h, "malloc"));
    for (int i = 0; i < 200; i++)
        free(site_after_detach(3000));
    /* Blocks from the attached period freed after detach: straight to
     * libc, which allocated them. */
    for (int i = 1; i < NPOST; i += 2)
        free(post[i]);

    /* Attach again after detach works. The blocks sampled before the
     * detach were all freed since: the in-use profile starts afresh, with
     * what is sampled from now on. */
    CHECK(p_attach() == HEAPPROF_OK);
    CHECK(p_stats(&st) == HEAPPROF_OK && st.state == HEAPPROF_ATTACH_PATCHED);
    void *kept[50];
    for (int i = 0; i < 50; i++)
        CHECK((kept[i] = site_after_reattach(4000)) != NULL);
    snprintf(path, sizeof path, "%s/reattached.pb.gz", argv[3]);
    CHECK(p_write_path(path, HEAPPROF_PROFILE_HEAP) == HEAPPROF_OK);
    for (int i = 0; i < 50; i++)
        free(kept[i]);
    CHECK(p_detach() == HEAPPROF_OK);

    snprintf(path, sizeof path, "%s/detached.pb.gz", argv[3]);
    CHECK(p_write_path(path, HEAPPROF_PROFILE_ALLOCS) == HEAPPROF_OK);

    __atomic_store_n(&stop_threads, 1, __ATOMIC_RELAXED);
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < NPRE; i++)
        free(pre[i]);

    if (failures != 0) {
        fprintf(stderr, "attach_host: %d check(s) failed\n", failures);
        return 1;
    }
    printf("attach_host: ok\n");
    return 0;
}
