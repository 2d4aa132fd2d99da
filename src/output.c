/*
 * Output adapters over the sink-first encoder: fd, path (atomic publish
 * through publish.c: a temporary nobody else can have prepared, fsync,
 * rename over the name without following it, fsync of the directory) and
 * caller buffer (Go's n/ok contract: all or nothing).
 */
#define _GNU_SOURCE /* strndup */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "heapprof.h"
#include "internal.h"
#include "log.h"
#include "profile.h"
#include "publish.h"

static int
valid_kind(enum heapprof_profile which)
{
    return which == HEAPPROF_PROFILE_HEAP || which == HEAPPROF_PROFILE_ALLOCS ||
           which == HEAPPROF_PROFILE_PEAK;
}

int
heapprof_write(enum heapprof_profile which, const struct heapprof_sink *sink)
{
    if (!valid_kind(which) || sink == NULL || sink->write == NULL)
        return HEAPPROF_EINVAL;
    int saved = errno;
    hp_fence_enter();
    int rc = hp_profile_write(which, sink);
    hp_fence_exit();
    errno = saved;
    return rc;
}

int
heapprof_write_aged(uint64_t min_age_ms, const struct heapprof_sink *sink)
{
    if (sink == NULL || sink->write == NULL ||
        min_age_ms > UINT64_MAX / 1000000u)
        return HEAPPROF_EINVAL;
    int saved = errno;
    hp_fence_enter();
    struct hp_profile_data d;
    int rc = hp_profile_collect_aged(&d, min_age_ms * 1000000u);
    if (rc == 0)
        rc = hp_profile_encode(&d, HEAPPROF_PROFILE_HEAP, sink);
    hp_profile_data_free(&d);
    hp_fence_exit();
    errno = saved;
    return rc;
}

int
heapprof_write_fd(int fd, enum heapprof_profile which)
{
    if (fd < 0)
        return HEAPPROF_EINVAL;
    struct hp_publish p = {.fd = fd};
    struct heapprof_sink sink = {hp_publish_sink_write, &p};
    return heapprof_write(which, &sink);
}

/* heapprof_write_path into the open directory dfd; fence raised. */
static int
write_path_at(int dfd, const char *path, const char *base,
              enum heapprof_profile which)
{
    unsigned mode;
    if (hp_publish_dir_shared(dfd, &mode))
        hp_log_once(write_path_shared,
                    "heapprof_write_path: the directory of %s can be "
                    "written by other users (mode %04o): they can replace "
                    "what is written there (heapprof never follows their "
                    "links)",
                    path, mode);
    struct hp_publish p;
    int err = hp_publish_open(&p, dfd);
    if (err != 0) {
        hp_log("cannot write %s: %s", path, strerror(err));
        return HEAPPROF_EIO;
    }
    struct heapprof_sink sink = {hp_publish_sink_write, &p};
    int rc = hp_profile_write(which, &sink);
    const char *what = "write";
    if (rc == HEAPPROF_OK &&
        (err = hp_publish_commit(&p, base, true, &what)) != 0) {
        hp_log("cannot write %s (%s): %s", path, what, strerror(err));
        rc = HEAPPROF_EIO;
    }
    if (rc != HEAPPROF_OK)
        hp_publish_abort(&p);
    return rc;
}

int
heapprof_write_path(const char *path, enum heapprof_profile which)
{
    if (path == NULL || path[0] == '\0' || !valid_kind(which))
        return HEAPPROF_EINVAL;
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    if (*base == '\0')
        return HEAPPROF_EINVAL;
    int saved = errno;
    hp_fence_enter();
    int rc = HEAPPROF_ENOMEM;
    char *dir = slash == NULL   ? strdup(".")
                : slash == path ? strdup("/")
                                : strndup(path, (size_t)(slash - path));
    if (dir != NULL) {
        int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0) {
            hp_log("cannot write %s: %s", path, strerror(errno));
            rc = HEAPPROF_EIO;
        } else {
            rc = write_path_at(dfd, path, base, which);
            close(dfd);
        }
    }
    free(dir);
    hp_fence_exit();
    errno = saved;
    return rc;
}

int
heapprof_write_buffer(void *buf, size_t cap, size_t *needed,
                      enum heapprof_profile which)
{
    if ((buf == NULL && cap != 0) || !valid_kind(which))
        return HEAPPROF_EINVAL;
    int saved = errno;
    hp_fence_enter();
    struct hp_buf m = {0};
    struct heapprof_sink sink = hp_buf_sink(&m);
    int rc = hp_profile_write(which, &sink);
    if (rc == HEAPPROF_OK) {
        if (needed != NULL)
            *needed = m.len;
        if (m.len > cap)
            rc = HEAPPROF_ERANGE;
        else if (m.len > 0)
            memcpy(buf, m.p, m.len);
    }
    hp_buf_free(&m);
    hp_fence_exit();
    errno = saved;
    return rc;
}
