#include "fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

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
