/*
 * Hostile host: fork while heapprof exports a profile on another thread.
 * The export walks the loaded objects with dl_iterate_phdr, whose glibc
 * lock a fork child inherits held when the walk was in progress on a
 * thread the child does not have; the child's own dl_iterate_phdr (or its
 * first unwind) then waits forever. Seen with postgres: a backend forked
 * while the postmaster's listener answered a profile request hung.
 *
 * One thread writes profiles without pause through heapprof_write_path
 * (found with dlsym: absent in the bare run, where the thread only
 * waits); the main thread forks 1000 children one after another, each of
 * which walks the loaded objects, allocates and exits with a known code.
 * A child still running after 3 s is killed and counted as hung, so a
 * deadlock shows as a count in the output instead of a test timeout.
 *
 * With LIBHEAPPROF (a path), the program loads heapprof itself with
 * dlopen and the thread attaches and detaches without pause instead
 * (heapprof_attach's walk of the loaded objects, not an export's).
 *
 * With "cold", every export resolves its addresses afresh (the thread
 * loads and unloads a library before each, which empties the symbolizer's
 * cache), so forks land while libdw runs in heapprof's namespace, with its
 * own C library whose locks a fork does not reset; and each child writes
 * a profile of its own, which needs libdw and that C library. The host
 * keeps its own dlopen apart from its forks, as a careful program must.
 *
 * usage: hostile_fork_during_export WORKDIR [LIBHEAPPROF|cold]
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <link.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define N_FORKS 1000

static volatile int stop;
static char path[4096];
static int (*attach)(void), (*detach)(void);
static int cold;
static pthread_mutex_t host_dl_lock = PTHREAD_MUTEX_INITIALIZER;

static void
host_dl_prepare(void)
{
    pthread_mutex_lock(&host_dl_lock);
}

static void
host_dl_release(void)
{
    pthread_mutex_unlock(&host_dl_lock);
}

/* Empty the symbolizer's cache: the set of loaded objects changed. */
static void
load_and_unload(void)
{
    host_dl_prepare();
    void *h = dlopen("libutil.so.1", RTLD_NOW | RTLD_LOCAL);
    if (h != NULL)
        dlclose(h);
    host_dl_release();
}

static void *
exporter(void *arg)
{
    int (*write_path)(const char *, int) =
        (int (*)(const char *, int))dlsym(RTLD_DEFAULT, "heapprof_write_path");
    (void)arg;
    while (!stop) {
        if (attach != NULL) {
            (void)attach();
            (void)detach();
        } else if (write_path != NULL) {
            if (cold)
                load_and_unload();
            (void)write_path(path, 0);
        } else
            sched_yield();
    }
    return NULL;
}

static int
count_object(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)info;
    (void)size;
    ++*(int *)data;
    return 0;
}

/* 1 if the child exited with 7 within 3 s; otherwise kill it, 0. */
static int
child_done(pid_t pid)
{
    struct timespec nap = {0, 1000000};
    for (int i = 0; i < 3000; i++) {
        int st;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            return WIFEXITED(st) && WEXITSTATUS(st) == 7;
        nanosleep(&nap, NULL);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return 0;
}

int
main(int argc, char **argv)
{
    if (argc != 2 && argc != 3) {
        fprintf(stderr, "usage: %s WORKDIR [LIBHEAPPROF]\n", argv[0]);
        return 2;
    }
    cold = argc == 3 && strcmp(argv[2], "cold") == 0;
    if (cold) {
        pthread_atfork(host_dl_prepare, host_dl_release, host_dl_release);
        /* Samples for the exports to resolve (a 1 MiB block is sampled
         * 86 % of the time at the default rate); kept for the run. */
        for (int i = 0; i < 32; i++) {
            void *volatile keep = malloc(1 << 20);
            (void)keep;
        }
    }
    if (argc == 3 && !cold) {
        void *h = dlopen(argv[2], RTLD_NOW | RTLD_LOCAL);
        if (h == NULL) {
            fprintf(stderr, "dlopen: %s\n", dlerror());
            return 1;
        }
        *(void **)&attach = dlsym(h, "heapprof_attach");
        *(void **)&detach = dlsym(h, "heapprof_detach");
        if (attach == NULL || detach == NULL || attach() != 0) {
            fprintf(stderr, "heapprof_attach failed\n");
            return 1;
        }
    }
    snprintf(path, sizeof path, "%s/profile.pb.gz", argv[1]);
    pthread_t t;
    if (pthread_create(&t, NULL, exporter, NULL) != 0)
        return 1;
    int ok = 0;
    /* A cold export takes tens of milliseconds in every child. */
    int forks = cold ? N_FORKS / 10 : N_FORKS;
    for (int i = 0; i < forks; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            int n = 0;
            dl_iterate_phdr(count_object, &n);
            free(malloc(64 + (size_t)n));
            int (*write_path)(const char *, int) =
                (int (*)(const char *, int))dlsym(RTLD_DEFAULT,
                                                  "heapprof_write_path");
            if (cold && write_path != NULL) {
                char own[4200];
                snprintf(own, sizeof own, "%s.child", path);
                (void)write_path(own, 0);
            }
            _exit(7);
        }
        if (pid > 0)
            ok += child_done(pid);
    }
    stop = 1;
    pthread_join(t, NULL);
    printf("children exited: %d of %d\n", ok, forks);
    return ok == forks ? 0 : 1;
}
