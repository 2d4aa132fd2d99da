/*
 * Getting ready for a chroot (front_chroot.c): what heapprof will need
 * from the filesystem to write profiles is loaded or opened while the
 * paths still lead to it: its lazily loaded libraries, the objects' files
 * and debug information for names, the program's path and command line.
 * Profiles then keep working inside a chroot without /proc or /usr (the
 * mappings come from the loader's list, fileio.h and maps.c).
 */
#ifndef HP_CONFINE_H
#define HP_CONFINE_H

#include "internal.h"

/* Before the real chroot(root). Loads libraries: not in a fork child of a
 * threaded program while another thread may have been loading one. */
HP_HIDDEN void hp_confine_begin(const char *root);

/* After the real chroot: done, where snapshots go now is said (one
 * line); failed, the symbolizer drops its files after each profile again. */
HP_HIDDEN void hp_confine_end(bool done);

/* Loads every library the shared library loads lazily (lazy_deps.c);
 * nothing to do where they are linked (weak default in confine.c). */
HP_HIDDEN void hp_lazy_deps_preload(void);

#endif
