/*
 * chroot, interposed (LD_PRELOAD or -lheapprof): servers confine
 * themselves after start-up (haproxy's `chroot`, lighttpd's server.chroot,
 * bind's -t), after which neither heapprof's lazily loaded libraries nor
 * the objects' files nor /proc are where they were. While heapprof is
 * running with somewhere for profiles to go, what they need is made ready
 * first (confine.h); the call itself is the next definition's, unchanged.
 */
#include <errno.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "config.h"
#include "confine.h"
#include "heapprof.h"
#include "internal.h"

static void *next_chroot;

/* dlsym may allocate: resolved before the program runs. */
static int (*resolve(void))(const char *)
{
    int (*f)(const char *);
    *(void **)&f = hp_next_symbol("chroot", &next_chroot);
    return f;
}

__attribute__((constructor(103))) static void
chroot_front_init(void)
{
    resolve();
}

HP_EXPORT int
chroot(const char *path)
{
    /* Only where profiles may be asked for or written on their own (HTTP,
     * snapshots, the leak report): a chroot per connection (sshd's
     * privsep child) would otherwise pay it for nothing. */
    bool ready =
        heapprof_is_running() &&
        (hp_settings.http[0] != '\0' || hp_settings.snapshot_dir[0] != '\0' ||
         hp_settings.leak_report);
    if (ready) {
        int saved = errno;
        hp_confine_begin(path);
        errno = saved;
    }
    int (*real)(const char *) = resolve();
    /* No next definition (a static program): the system call itself. */
    int rc = real != NULL ? real(path) : (int)syscall(SYS_chroot, path);
    if (ready) {
        int saved = errno;
        hp_confine_end(rc == 0);
        errno = saved;
    }
    return rc;
}
