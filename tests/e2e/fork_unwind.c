/*
 * Frame rules shared by a fork tree, for check_fork_unwind.py: the parent
 * forks CHILDREN children one after another; each runs code the parent
 * never ran (like a postgres backend or a prefork worker), allocating
 * PER_CHILD blocks at the bottom of a call chain, and writes its own
 * profile to DIR/child-N.pb.gz. The first child's stacks are new to the
 * tree and walked by libunwind; the later ones should find every frame
 * rule the first learned. Prints "truth childN COUNT BYTES" per child.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <heapprof.h>

#define CHILDREN 4
#define PER_CHILD 200
#define BLOCK 512
#define NOINLINE __attribute__((noinline, noclone))

static void *volatile kept[PER_CHILD];

NOINLINE static void
child_site(int i)
{
    kept[i] = malloc(BLOCK);
}

NOINLINE static void
handle_request(int i)
{
    child_site(i);
    __asm__ volatile("" ::: "memory");
}

NOINLINE static int
child_main(const char *dir, int n)
{
    for (int i = 0; i < PER_CHILD; i++)
        handle_request(i);
    char path[4096];
    snprintf(path, sizeof path, "%s/child-%d.pb.gz", dir, n);
    return heapprof_write_path(path, HEAPPROF_PROFILE_HEAP) == 0 ? 0 : 1;
}

int
main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    kept[0] = malloc(BLOCK); /* the parent samples too, elsewhere */
    for (int n = 0; n < CHILDREN; n++) {
        fflush(stdout);
        pid_t pid = fork();
        if (pid < 0) {
            perror("fork");
            return 1;
        }
        if (pid == 0)
            _exit(child_main(argv[1], n));
        int status;
        if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
            WEXITSTATUS(status) != 0) {
            fprintf(stderr, "child %d failed\n", n);
            return 1;
        }
        printf("truth child%d %d %d\n", n, PER_CHILD, PER_CHILD * BLOCK);
    }
    return 0;
}
