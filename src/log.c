/*
 * Diagnostics: one line per message on fd 2, formatted on the stack so that
 * logging never allocates and can run on the hook path.
 */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

void
hp_log(const char *fmt, ...)
{
    int saved = errno;
    char line[512];
    int off = snprintf(line, sizeof line, "heapprof[%d]: ", (int)getpid());
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line + off, sizeof line - (size_t)off - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)off + (n < 0 ? 0 : (size_t)n);
    if (len > sizeof line - 2)
        len = sizeof line - 2;
    line[len++] = '\n';
    for (size_t done = 0; done < len;) {
        ssize_t w = write(2, line + done, len - done);
        if (w <= 0 && errno != EINTR)
            break;
        if (w > 0)
            done += (size_t)w;
    }
    errno = saved;
}
