/* libunwind's memory-check pipe, kept its own (see unwind_guard.h). */
#define _GNU_SOURCE /* pipe2 */
#include "unwind_guard.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

/* The two numbers libunwind holds (-1: not known) and the pipe's inode. */
static int pipe_fd[2] = {-1, -1};
static uint64_t pipe_dev, pipe_ino;
static int probe[2] = {-1, -1};

void
hp_unwind_guard_before_init(void)
{
    /* libunwind's pipe2 will take the lowest free numbers: these. */
    if (pipe2(probe, O_CLOEXEC) != 0) {
        probe[0] = probe[1] = -1;
        return;
    }
    close(probe[0]);
    close(probe[1]);
}

/* Both numbers hold one pipe (its two ends share an inode), as libunwind
 * opens it: non-blocking. */
static bool
one_pipe(int r, int w, struct stat *st)
{
    struct stat other;
    return fstat(r, st) == 0 && fstat(w, &other) == 0 &&
           S_ISFIFO(st->st_mode) && st->st_dev == other.st_dev &&
           st->st_ino == other.st_ino && (fcntl(r, F_GETFL) & O_NONBLOCK) != 0;
}

static void
remember(int r, int w, const struct stat *st)
{
    __atomic_store_n(&pipe_dev, (uint64_t)st->st_dev, __ATOMIC_RELAXED);
    __atomic_store_n(&pipe_ino, (uint64_t)st->st_ino, __ATOMIC_RELAXED);
    __atomic_store_n(&pipe_fd[1], w, __ATOMIC_RELEASE);
    __atomic_store_n(&pipe_fd[0], r, __ATOMIC_RELEASE);
}

void
hp_unwind_guard_after_init(void)
{
    struct stat st;
    if (probe[0] >= 0 && one_pipe(probe[0], probe[1], &st))
        remember(probe[0], probe[1], &st);
}

/* Both numbers closed: a new pipe under them, if pipe2 gives exactly
 * those (never moved onto them: another thread may be opening one). */
static bool
reopen(int r, int w)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC | O_NONBLOCK) != 0)
        return false;
    struct stat st;
    if (p[0] == r && p[1] == w && one_pipe(r, w, &st)) {
        remember(r, w, &st);
        return true;
    }
    close(p[0]);
    close(p[1]);
    return false;
}

bool
hp_unwind_guard_usable(void)
{
    if (__atomic_load_n(&hp_sandboxed, __ATOMIC_RELAXED))
        return false;
    int r = __atomic_load_n(&pipe_fd[0], __ATOMIC_ACQUIRE);
    int w = __atomic_load_n(&pipe_fd[1], __ATOMIC_ACQUIRE);
    if (r < 0)
        return true;
    int saved = errno;
    struct stat st;
    bool ok;
    if (one_pipe(r, w, &st))
        ok =
            (uint64_t)st.st_dev ==
                __atomic_load_n(&pipe_dev, __ATOMIC_RELAXED) &&
            (uint64_t)st.st_ino == __atomic_load_n(&pipe_ino, __ATOMIC_RELAXED);
    else
        ok = fcntl(r, F_GETFD) < 0 && errno == EBADF && fcntl(w, F_GETFD) < 0 &&
             errno == EBADF && reopen(r, w);
    errno = saved;
    return ok;
}
