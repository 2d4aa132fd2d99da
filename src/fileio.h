/*
 * Reading whole /proc files, whose size is not known in advance.
 */
#ifndef HP_FILEIO_H
#define HP_FILEIO_H

#include "internal.h"

/* Copy the whole file at path to put(ctx, bytes, n), chunk by chunk.
 * -1 if it cannot be opened, else 0 (a read error ends the copy early). */
HP_HIDDEN int hp_file_copy(const char *path,
                           void (*put)(void *ctx, const char *p, size_t n),
                           void *ctx);

#endif
