/*
 * Atomic publish that never goes through someone else's name (see
 * publish.h). The temporary's hidden name, when it needs one, is
 * ".heapprof-<pid>-<64 random bits>.tmp": the pid lets a later process
 * tell a dead writer's leftover from a live one's work in progress, the
 * random part keeps other users from planting it in advance.
 */
#define _GNU_SOURCE
#include "publish.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#define TMP_PREFIX ".heapprof-"

/* 64 unpredictable bits; the clock and a counter if the kernel has no
 * entropy to give without blocking (early boot). */
static uint64_t
random_bits(void)
{
    static uint64_t counter;
    uint64_t v;
    if (getrandom(&v, sizeof v, GRND_NONBLOCK) == (ssize_t)sizeof v)
        return v;
    v = hp_now_mono_ns() ^ (hp_now_wall_ns() << 17) ^
        __atomic_add_fetch(&counter, 0x9e3779b97f4a7c15ull, __ATOMIC_RELAXED);
    return v * 0xbf58476d1ce4e5b9ull;
}

static int
fresh_name(char *buf, size_t cap)
{
    int n = snprintf(buf, cap, TMP_PREFIX "%d-%016llx.tmp", (int)getpid(),
                     (unsigned long long)random_bits());
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

/* O_CREAT|O_EXCL|O_NOFOLLOW on a fresh name: a name someone planted (file
 * or link) is never opened, a collision just draws another. */
static int
open_named(struct hp_publish *p)
{
    for (int tries = 0; tries < 16; tries++) {
        if (fresh_name(p->tmp, sizeof p->tmp) != 0)
            return ENAMETOOLONG;
        p->fd =
            openat(p->dfd, p->tmp,
                   O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (p->fd >= 0)
            return 0;
        if (errno != EEXIST)
            return errno;
    }
    return EEXIST;
}

int
hp_publish_open(struct hp_publish *p, int dfd)
{
    p->dfd = dfd;
    p->err = 0;
    p->tmp[0] = '\0';
    /* An O_TMPFILE file is linked in through /proc/self/fd (linkat with
     * AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH): without /proc, use a
     * name. */
    p->fd = access("/proc/self/fd", X_OK) == 0
                ? openat(dfd, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, 0644)
                : -1;
    p->anon = p->fd >= 0;
    if (p->anon)
        return 0;
    return open_named(p);
}

int
hp_publish_sink_write(void *ctx, const void *data, size_t len)
{
    struct hp_publish *p = ctx;
    const char *b = data;
    while (len > 0) {
        ssize_t w = write(p->fd, b, len);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (p->err == 0)
                p->err = errno;
            return -1;
        }
        b += w;
        len -= (size_t)w;
    }
    return 0;
}

/* Give the anonymous temporary the name `name`; never replaces. */
static int
link_anon(struct hp_publish *p, const char *name)
{
    char proc[48];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", p->fd);
    return linkat(AT_FDCWD, proc, p->dfd, name, AT_SYMLINK_FOLLOW) == 0 ? 0
                                                                        : errno;
}

/* Rename the named temporary to name without replacing anything. */
static int
rename_noreplace(struct hp_publish *p, const char *name)
{
    if (renameat2(p->dfd, p->tmp, p->dfd, name, RENAME_NOREPLACE) == 0)
        return 0;
    if (errno != EINVAL && errno != ENOSYS)
        return errno;
    /* No RENAME_NOREPLACE on this file system: a hard link never replaces
     * either; then the temporary name goes. */
    if (linkat(p->dfd, p->tmp, p->dfd, name, 0) != 0)
        return errno;
    unlinkat(p->dfd, p->tmp, 0);
    return 0;
}

/* Publish over name (replacing a file or link there, never following
 * it): an anonymous temporary gets a fresh hidden name first. */
static int
publish_replace(struct hp_publish *p, const char *name)
{
    if (p->anon) {
        int err = EEXIST;
        for (int tries = 0; tries < 16 && err == EEXIST; tries++) {
            if (fresh_name(p->tmp, sizeof p->tmp) != 0)
                return ENAMETOOLONG;
            err = link_anon(p, p->tmp);
        }
        if (err != 0) {
            p->tmp[0] = '\0';
            return err;
        }
        p->anon = false;
    }
    return renameat(p->dfd, p->tmp, p->dfd, name) == 0 ? 0 : errno;
}

int
hp_publish_commit(struct hp_publish *p, const char *name, bool replace,
                  const char **what)
{
    *what = "write";
    if (p->err != 0)
        return p->err;
    *what = "fsync";
    if (fsync(p->fd) != 0)
        return errno;
    *what = "rename";
    int err = replace   ? publish_replace(p, name)
              : p->anon ? link_anon(p, name)
                        : rename_noreplace(p, name);
    if (err != 0)
        return err;
    close(p->fd);
    p->fd = -1;
    p->tmp[0] = '\0';
    /* The new name is durable only once the directory is. */
    fsync(p->dfd);
    return 0;
}

void
hp_publish_abort(struct hp_publish *p)
{
    if (p->fd >= 0)
        close(p->fd);
    p->fd = -1;
    if (!p->anon && p->tmp[0] != '\0')
        unlinkat(p->dfd, p->tmp, 0);
    p->tmp[0] = '\0';
}

/*
 * The writer pid of a hidden temporary of ours: ".heapprof-<pid>-..." or
 * the older ".heap-<pid>-<UTC>.pb.gz.<pid>.tmp"; 0 if it is not one.
 */
static long
temp_writer(const char *name)
{
    size_t len = strlen(name);
    if (name[0] != '.' || len < 6 || strcmp(name + len - 4, ".tmp") != 0)
        return 0;
    const char *digits;
    if (strncmp(name, TMP_PREFIX, strlen(TMP_PREFIX)) == 0) {
        digits = name + strlen(TMP_PREFIX);
    } else if (strncmp(name, ".heap-", 6) == 0) {
        digits = name + len - 5;
        while (digits > name && digits[-1] >= '0' && digits[-1] <= '9')
            digits--;
        if (digits[-1] != '.')
            return 0;
    } else {
        return 0;
    }
    char *end;
    long pid = strtol(digits, &end, 10);
    return end != digits && pid > 0 && (*end == '-' || *end == '.') ? pid : 0;
}

int
hp_publish_clean_stale(int dfd)
{
    int fd = dup(dfd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (d == NULL) {
        if (fd >= 0)
            close(fd);
        return 0;
    }
    long self = (long)getpid();
    uid_t uid = geteuid();
    int removed = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        long pid = temp_writer(de->d_name);
        struct stat st;
        if (pid == 0 || pid == self || kill((pid_t)pid, 0) == 0 ||
            errno != ESRCH ||
            fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
            !S_ISREG(st.st_mode) || st.st_uid != uid)
            continue;
        if (unlinkat(dfd, de->d_name, 0) == 0)
            removed++;
    }
    closedir(d);
    return removed;
}

bool
hp_publish_dir_shared(int dfd, unsigned *mode)
{
    struct stat st;
    if (fstat(dfd, &st) != 0)
        return false;
    *mode = (unsigned)(st.st_mode & 07777);
    /* Another owner (but root) can chmod it at will. */
    return ((st.st_mode & S_IWOTH) != 0 && (st.st_mode & S_ISVTX) == 0) ||
           (st.st_uid != geteuid() && st.st_uid != 0);
}
