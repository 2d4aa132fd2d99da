/*
 * A server that confines itself after start-up, as haproxy's `chroot`
 * does: allocates at site_before_chroot, chroots into argv[1] (an empty
 * directory: no /proc, no libraries), allocates at site_after_chroot,
 * writes a heap profile from inside with heapprof_write_path (found with
 * dlsym: the library is preloaded), forks a child that allocates at
 * site_in_child and writes CHILD_PROFILE, and exits (the exit snapshot,
 * when HEAPPROF_SNAPSHOT_DIR is set, is written inside too). With
 * "serve", parent and child print "ready" and stay until stdin closes,
 * for HEAPPROF_HTTP to be asked meanwhile.
 *
 *   chroot_workload ROOT PROFILE CHILD_PROFILE [serve]
 *                   (profiles: paths as seen inside ROOT)
 *
 * Exit 77 when the process may not chroot (not root).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdbool.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define BLOCKS 32
#define BLOCK (64 << 10)

/* Not static: the stores, and so the allocations, are not dead code. */
void *kept[3 * BLOCKS];

__attribute__((noinline)) static void
site_before_chroot(void)
{
    for (int i = 0; i < BLOCKS; i++)
        kept[i] = malloc(BLOCK);
}

__attribute__((noinline)) static void
site_after_chroot(void)
{
    for (int i = 0; i < BLOCKS; i++)
        kept[BLOCKS + i] = malloc(BLOCK);
}

__attribute__((noinline)) static void
site_in_child(void)
{
    for (int i = 0; i < BLOCKS; i++)
        kept[2 * BLOCKS + i] = malloc(BLOCK);
}

static void
wait_for_eof(void)
{
    char buf[64];
    while (read(0, buf, sizeof buf) > 0)
        ;
}

/* The child: allocates, writes its profile, then serves or exits. */
static int
child(int (*write_path)(const char *, int), const char *profile, bool serve)
{
    site_in_child();
    if (write_path(profile, 0) != 0)
        return 1;
    if (serve) {
        printf("child ready %d\n", (int)getpid());
        fflush(stdout);
        wait_for_eof();
    }
    return 0;
}

int
main(int argc, char **argv)
{
    if (argc != 4 && !(argc == 5 && strcmp(argv[4], "serve") == 0)) {
        fprintf(stderr, "usage: %s ROOT PROFILE CHILD_PROFILE [serve]\n",
                argv[0]);
        return 2;
    }
    bool serve = argc == 5;
    int (*write_path)(const char *, int);
    *(void **)&write_path = dlsym(RTLD_DEFAULT, "heapprof_write_path");
    if (write_path == NULL) {
        fprintf(stderr, "heapprof is not preloaded\n");
        return 2;
    }
    site_before_chroot();
    if (chroot(argv[1]) != 0) {
        int e = errno;
        printf("skipped: chroot(%s): %s\n", argv[1], strerror(e));
        return e == EPERM ? 77 : 1;
    }
    if (chdir("/") != 0)
        return 1;
    printf("proc %s\n",
           open("/proc/self/maps", O_RDONLY) >= 0 ? "visible" : "hidden");
    site_after_chroot();
    int rc = write_path(argv[2], 0 /* HEAPPROF_PROFILE_HEAP */);
    printf("write %d\n", rc);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0)
        _exit(child(write_path, argv[3], serve));
    if (pid < 0)
        return 1;
    if (serve) {
        printf("parent ready\n");
        fflush(stdout);
        wait_for_eof();
    }
    int status;
    if (waitpid(pid, &status, 0) < 0)
        return 1;
    printf("child exit %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    return rc == 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}
