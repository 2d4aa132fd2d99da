/*
 * The one home for writing a file into a directory others may share and
 * publishing it atomically: the temporary is a file nobody else can have
 * prepared (O_TMPFILE, else O_CREAT|O_EXCL|O_NOFOLLOW on an unpredictable
 * hidden name), it is fsynced, published without following links
 * (linkat / renameat2 RENAME_NOREPLACE / renameat over the name itself),
 * and the directory is fsynced. Used by heapprof_write_path (output.c) and
 * the snapshots (snapshot.c).
 */
#ifndef HP_PUBLISH_H
#define HP_PUBLISH_H

#include <stdbool.h>
#include <stddef.h>

#include "internal.h"

/* One file being written; the caller keeps dfd open until commit/abort. */
struct hp_publish {
    int dfd;      /* the directory */
    int fd;       /* the temporary, open for writing */
    int err;      /* errno of the first failed sink write, else 0 */
    bool anon;    /* O_TMPFILE: it has no name until published */
    char tmp[64]; /* its hidden name when !anon */
};

/* Create the temporary in dfd. 0, or an errno value. */
HP_HIDDEN int hp_publish_open(struct hp_publish *p, int dfd);

/* A heapprof_sink write function over p (ctx = p): writes everything,
 * records the first errno in p->err. */
HP_HIDDEN int hp_publish_sink_write(void *ctx, const void *data, size_t len);

/*
 * fsync the temporary and publish it as name in the directory; replace
 * says whether an existing name is replaced (heapprof_write_path) or kept
 * (snapshots: EEXIST, and p stays open so the caller can try another
 * name). On success p is closed and the directory fsynced. 0, or an errno
 * value; *what names the step that failed.
 */
HP_HIDDEN int hp_publish_commit(struct hp_publish *p, const char *name,
                                bool replace, const char **what);

/* Close and remove the temporary (an unpublished p). */
HP_HIDDEN void hp_publish_abort(struct hp_publish *p);

/*
 * Remove the hidden temporaries that processes which have exited (kill -9
 * during a write) left in dfd: our naming, our uid, regular files, writer
 * pid gone. Returns how many were removed.
 */
HP_HIDDEN int hp_publish_clean_stale(int dfd);

/*
 * True (with *mode) when other users can remove or replace what is
 * published in the directory at dfd: writable by all without the sticky
 * bit, or owned by another user than us and root.
 */
HP_HIDDEN bool hp_publish_dir_shared(int dfd, unsigned *mode);

#endif
