#include "fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"

int
hp_file_copy(const char *path, void (*put)(void *ctx, const char *p, size_t n),
             void *ctx)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    char buf[4096];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        put(ctx, buf, (size_t)n);
    }
    close(fd);
    return 0;
}

/* ------------------------------------------------ the process itself */

#define EXE_MAX 4096

/* Set once, by the thread about to chroot; read after it by any. */
static char *remembered_exe;
static struct hp_buf *remembered_cmdline;

static bool
read_exe(char *buf, size_t cap)
{
    ssize_t n = readlink("/proc/self/exe", buf, cap - 1);
    if (n <= 0 || (size_t)n >= cap - 1)
        return false;
    buf[n] = '\0';
    return true;
}

void
hp_self_remember(void)
{
    char exe[EXE_MAX];
    if (__atomic_load_n(&remembered_exe, __ATOMIC_ACQUIRE) == NULL &&
        read_exe(exe, sizeof exe))
        __atomic_store_n(&remembered_exe, strdup(exe), __ATOMIC_RELEASE);
    struct hp_buf *b = calloc(1, sizeof *b);
    if (b == NULL)
        return;
    if (hp_file_copy("/proc/self/cmdline", hp_buf_put_cb, b) == 0 && !b->oom &&
        b->len > 0) {
        /* Kept for the process's life: a newer copy (a second chroot)
         * replaces the old without freeing what a reader may hold. */
        __atomic_store_n(&remembered_cmdline, b, __ATOMIC_RELEASE);
    } else {
        hp_buf_free(b);
        free(b);
    }
}

bool
hp_self_exe(char *buf, size_t cap)
{
    if (read_exe(buf, cap))
        return true;
    const char *kept = __atomic_load_n(&remembered_exe, __ATOMIC_ACQUIRE);
    if (kept == NULL || strlen(kept) >= cap)
        return false;
    strcpy(buf, kept);
    return true;
}

int
hp_self_cmdline(void (*put)(void *ctx, const char *p, size_t n), void *ctx)
{
    if (hp_file_copy("/proc/self/cmdline", put, ctx) == 0)
        return 0;
    const struct hp_buf *b =
        __atomic_load_n(&remembered_cmdline, __ATOMIC_ACQUIRE);
    if (b == NULL)
        return -1;
    put(ctx, b->p, b->len);
    return 0;
}

/* The status file, into a fixed buffer (NUL-terminated, cut if longer). */
struct fixed {
    char buf[8192];
    size_t n;
};

static void
put_fixed(void *ctx, const char *p, size_t n)
{
    struct fixed *f = ctx;
    size_t room = sizeof f->buf - 1 - f->n;
    if (n > room)
        n = room;
    memcpy(f->buf + f->n, p, n);
    f->n += n;
    f->buf[f->n] = '\0';
}

bool
hp_self_seccomp(void)
{
    struct fixed f = {.n = 0};
    f.buf[0] = '\0';
    if (hp_file_copy("/proc/self/status", put_fixed, &f) != 0)
        return false;
    const char *line = strstr(f.buf, "\nSeccomp:");
    if (line == NULL)
        return false;
    line += strlen("\nSeccomp:");
    while (*line == ' ' || *line == '\t')
        line++;
    return *line != '0';
}

/* -------------------------------------------------- own descriptors */

void
hp_fd_id_note(struct hp_fd_id *id, int fd)
{
    struct stat st;
    id->fd = fd >= 0 && fstat(fd, &st) == 0 ? fd : -1;
    id->dev = id->fd >= 0 ? (uint64_t)st.st_dev : 0;
    id->ino = id->fd >= 0 ? (uint64_t)st.st_ino : 0;
}

bool
hp_fd_id_held(const struct hp_fd_id *id)
{
    struct stat st;
    int saved = errno;
    bool held = id->fd >= 0 && fstat(id->fd, &st) == 0 &&
                (uint64_t)st.st_dev == id->dev &&
                (uint64_t)st.st_ino == id->ino;
    errno = saved;
    return held;
}
