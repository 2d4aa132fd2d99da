/*
 * heapprof_gc_register: one callback and its argument, read by the HTTP
 * handler for gc=1.
 */
#include "gc_registry.h"

#include <pthread.h>

#include "heapprof.h"

/* Protects gc_fn and gc_arg; leaf lock, never held while calling out. */
static pthread_mutex_t gc_lock = PTHREAD_MUTEX_INITIALIZER;
static void (*gc_fn)(void *);
static void *gc_arg;

int
heapprof_gc_register(void (*collect)(void *arg), void *arg)
{
    pthread_mutex_lock(&gc_lock);
    gc_fn = collect;
    gc_arg = collect != NULL ? arg : NULL;
    pthread_mutex_unlock(&gc_lock);
    return HEAPPROF_OK;
}

void
hp_gc_run(void)
{
    pthread_mutex_lock(&gc_lock);
    void (*fn)(void *) = gc_fn;
    void *arg = gc_arg;
    pthread_mutex_unlock(&gc_lock);
    if (fn == NULL)
        return;
    /*
     * The collector is the host's code: its allocations are the host's and
     * the frees it triggers must reach the live table, so it runs with the
     * fence fully lowered even on the listener thread (fenced for life).
     */
    int depth = hp_tls.depth;
    hp_tls.depth = 0;
    fn(arg);
    hp_tls.depth = depth;
}

void
hp_gc_postfork_child(void)
{
    pthread_mutex_init(&gc_lock, NULL);
}
