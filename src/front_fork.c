/*
 * fork, interposed (LD_PRELOAD or -lheapprof): the child's tree agent
 * (agent.h) starts as soon as the real fork returns in the child, so a
 * child that never allocates after the fork (an idle backend, a pre-fork
 * worker waiting for work) is still answered. Not from the atfork child
 * handler: an allocator registered after heapprof (jemalloc preloaded
 * behind it) has not reset its locks when heapprof's handler runs, and a
 * thread's creation allocates; here every handler has run. A child made
 * without this fork (glibc's daemon(), a raw clone, heapprof loaded with
 * dlopen) starts its agent at its first allocation instead.
 */
#include <errno.h>
#include <unistd.h>

#include "agent.h"
#include "internal.h"
#include "log.h"
#include "tree.h"

static void *next_fork;

/* dlsym may allocate: resolved before the program runs. */
static pid_t (*resolve(void))(void)
{
    pid_t (*f)(void);
    *(void **)&f = hp_next_symbol("fork", &next_fork);
    return f;
}

__attribute__((constructor(103))) static void
fork_front_init(void)
{
    resolve();
}

HP_EXPORT pid_t
fork(void)
{
    pid_t (*real)(void) = resolve();
    if (real == NULL) {
        hp_log_no_next("fork");
        return -1;
    }
    pid_t pid = real();
    if (pid > 0)
        hp_tree_note_child(pid);
    if (pid == 0) {
        int saved = errno;
        hp_agent_restart();
        errno = saved;
    }
    return pid;
}
