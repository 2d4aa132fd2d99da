/*
 * Diagnostics: one line per message on fd 2, formatted on the stack so that
 * logging never allocates and can run on the hook path.
 */
#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

/* The capture (hp_log_capture): the thread whose lines go to buf. */
static char *capture_buf;
static size_t capture_cap;
static pthread_t capture_owner;

void
hp_log_capture(char *buf, size_t cap)
{
    if (buf != NULL && cap > 0) {
        buf[0] = '\0';
        capture_owner = pthread_self();
        capture_cap = cap;
    }
    __atomic_store_n(&capture_buf, cap > 0 ? buf : NULL, __ATOMIC_RELEASE);
}

/* Append line (no newline) to the capture if this thread owns it. */
static bool
captured(const char *line, size_t len)
{
    char *buf = __atomic_load_n(&capture_buf, __ATOMIC_ACQUIRE);
    if (buf == NULL || !pthread_equal(capture_owner, pthread_self()))
        return false;
    size_t used = strlen(buf);
    if (used > 0 && used + 2 < capture_cap)
        buf[used++] = '\n';
    size_t room = capture_cap - used - 1;
    if (len > room)
        len = room;
    memcpy(buf + used, line, len);
    buf[used + len] = '\0';
    return true;
}

/*
 * A network connection on fd 2: an inetd-style server hands its client's
 * socket to the process as stdin, stdout and stderr (vsftpd's sessions),
 * where a line would become part of the protocol; it is not written. A
 * unix socket (journald, a container's log driver) is written to. Not
 * probed under a seccomp filter, which may forbid fstat.
 */
static bool
stderr_is_network(void)
{
    if (__atomic_load_n(&hp_sandboxed, __ATOMIC_RELAXED))
        return false;
    struct stat st;
    if (fstat(2, &st) != 0 || !S_ISSOCK(st.st_mode))
        return false;
    int domain = AF_UNIX;
    socklen_t len = sizeof domain;
    if (getsockopt(2, SOL_SOCKET, SO_DOMAIN, &domain, &len) != 0)
        return false;
    return domain == AF_INET || domain == AF_INET6;
}

void
hp_log(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    hp_vlog(fmt, ap);
    va_end(ap);
}

void
hp_vlog(const char *fmt, va_list ap)
{
    int saved = errno;
    char line[512];
    int off = snprintf(line, sizeof line, "heapprof[%d]: ", (int)getpid());
    int n = vsnprintf(line + off, sizeof line - (size_t)off - 1, fmt, ap);
    size_t len = (size_t)off + (n < 0 ? 0 : (size_t)n);
    if (len > sizeof line - 2)
        len = sizeof line - 2;
    if (captured(line + off, len - (size_t)off)) {
        errno = saved;
        return;
    }
    line[len++] = '\n';
    if (stderr_is_network()) {
        errno = saved;
        return;
    }
    for (size_t done = 0; done < len;) {
        ssize_t w = write(2, line + done, len - done);
        if (w <= 0 && errno != EINTR)
            break;
        if (w > 0)
            done += (size_t)w;
    }
    errno = saved;
}

void
hp_log_profile_oom(const char *what)
{
    static int logged;
    if (!__atomic_exchange_n(&logged, 1, __ATOMIC_RELAXED))
        hp_log("profile: out of memory %s", what);
}

void
hp_log_no_next(const char *name)
{
    hp_log_once(no_next,
                "%s: the next definition cannot be found; the call "
                "fails",
                name);
    errno = ENOSYS;
}
