/*
 * The collection gc=1 runs before a heap profile is taken
 * (heapprof_gc_register in heapprof.h).
 */
#ifndef HP_GC_REGISTRY_H
#define HP_GC_REGISTRY_H

#include "internal.h"

/* Run the registered collection, if any, on this thread with the
 * reentrancy fence lowered; takes and drops the registry's leaf lock
 * before calling out. */
HP_HIDDEN void hp_gc_run(void);

/* Fork child: re-initialise the lock another thread may have held. */
HP_HIDDEN void hp_gc_postfork_child(void);

#endif
