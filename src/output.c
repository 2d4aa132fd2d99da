/*
 * Output adapters over the sink-first encoder: fd, path (atomic publish:
 * hidden temporary in the same directory, fsync, rename, fsync of the
 * directory) and caller buffer (Go's n/ok contract: all or nothing).
 */
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

static int
fd_sink_write(void *ctx, const void *data, size_t len)
{
    int fd = *(int *)ctx;
    const char *p = data;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int
heapprof_write_fd(int fd, enum heapprof_profile which)
{
    if (fd < 0)
        return HEAPPROF_EINVAL;
    struct heapprof_sink sink = {fd_sink_write, &fd};
    return heapprof_write(which, &sink);
}

int
heapprof_write_path(const char *path, enum heapprof_profile which)
{
    if (path == NULL || path[0] == '\0' || !valid_kind(which))
        return HEAPPROF_EINVAL;
    int saved = errno;
    hp_fence_enter();
    int rc = HEAPPROF_EIO;
    size_t len = strlen(path);
    const char *slash = strrchr(path, '/');
    size_t dirlen = slash ? (size_t)(slash - path) : 0;
    const char *base = slash ? slash + 1 : path;
    char *tmp = malloc(len + 64);
    char *dir = malloc(dirlen + 2);
    if (tmp == NULL || dir == NULL || *base == '\0') {
        rc = tmp && dir ? HEAPPROF_EINVAL : HEAPPROF_ENOMEM;
        goto out;
    }
    if (slash) {
        memcpy(dir, path, dirlen);
        dir[dirlen] = '\0';
        if (dirlen == 0)
            strcpy(dir, "/");
    } else {
        strcpy(dir, ".");
    }
    snprintf(tmp, len + 64, "%.*s.%s.%d.tmp", (int)(base - path), path, base,
             (int)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        hp_log("cannot write %s: %s", tmp, strerror(errno));
        goto out;
    }
    struct heapprof_sink sink = {fd_sink_write, &fd};
    rc = hp_profile_write(which, &sink);
    if (rc == HEAPPROF_OK && fsync(fd) != 0)
        rc = HEAPPROF_EIO;
    if (close(fd) != 0 && rc == HEAPPROF_OK)
        rc = HEAPPROF_EIO;
    if (rc == HEAPPROF_OK && rename(tmp, path) != 0) {
        hp_log("cannot rename %s to %s: %s", tmp, path, strerror(errno));
        rc = HEAPPROF_EIO;
    }
    if (rc != HEAPPROF_OK) {
        unlink(tmp);
    } else {
        int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            fsync(dfd);
            close(dfd);
        }
    }
out:
    free(tmp);
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
