/*
 * The garbage-collector front (front_gc.c): wrappers of Boehm GC's
 * allocation calls, declared in include/heapprof_gc.h. Here only what the
 * lifecycle calls: its fork functions, which heapprof.c orders with the
 * others (front_gc's locks come before ialloc's, the innermost).
 */
#ifndef HP_FRONT_GC_H
#define HP_FRONT_GC_H

#include "internal.h"

HP_HIDDEN void hp_gc_front_prefork(void);
HP_HIDDEN void hp_gc_front_postfork_parent(void);
HP_HIDDEN void hp_gc_front_postfork_child(void);

#endif
