/*
 * Reading whole /proc files, whose size is not known in advance; and this
 * process's own facts from /proc (its executable, its command line),
 * remembered before a chroot hides /proc (hp_self_remember), so that
 * profiles written inside still name them.
 */
#ifndef HP_FILEIO_H
#define HP_FILEIO_H

#include "internal.h"

/* Copy the whole file at path to put(ctx, bytes, n), chunk by chunk.
 * -1 if it cannot be opened, else 0 (a read error ends the copy early). */
HP_HIDDEN int hp_file_copy(const char *path,
                           void (*put)(void *ctx, const char *p, size_t n),
                           void *ctx);

/* Reads and keeps the executable's path and the command line while /proc
 * is still there (before a chroot). */
HP_HIDDEN void hp_self_remember(void);

/* The executable's path (" (deleted)" kept) into buf: /proc/self/exe, or
 * what hp_self_remember kept. False if neither is known or it does not
 * fit. */
HP_HIDDEN bool hp_self_exe(char *buf, size_t cap);

/* Whether a seccomp filter is in force (/proc/self/status's Seccomp), for
 * a program started under one. No malloc: for the constructor. */
HP_HIDDEN bool hp_self_seccomp(void);

/* /proc/self/cmdline to put, as hp_file_copy; the copy hp_self_remember
 * kept when /proc cannot be read. */
HP_HIDDEN int hp_self_cmdline(void (*put)(void *ctx, const char *p, size_t n),
                              void *ctx);

/*
 * A descriptor heapprof opened, as it was: a program that closes every
 * descriptor (closefrom) may since have given the number to a file of its
 * own, which heapprof must then neither use nor close.
 */
struct hp_fd_id {
    int fd;
    uint64_t dev, ino;
};
/* Notes fd's identity (fd -1 when fstat fails: never held). */
HP_HIDDEN void hp_fd_id_note(struct hp_fd_id *id, int fd);
/* Whether id's number still holds the file it was noted with. */
HP_HIDDEN bool hp_fd_id_held(const struct hp_fd_id *id);

#endif
