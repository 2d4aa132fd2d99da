/*
 * Hostile host: fork while other threads are inside heapprof's sampled
 * path, right after start-up. A lock that a sampling thread holds at the
 * moment of fork (heapprof's own, or one inside the unwinder) stays held in
 * the child, whose first sampled allocation then waits forever.
 *
 * The unwinder's slow paths (and their locks) run mostly while its caches
 * are cold, so the test needs fresh processes: the outer process execs
 * itself 30 times; each inner process starts 3 threads that allocate
 * without pause from a recursive call chain (under HEAPPROF_RATE=1 every
 * allocation is sampled) and forks 8 children at once; each child
 * allocates and exits with a known code. A child still running after 3 s
 * is killed and counted as hung, so a deadlock shows as a count in the
 * output instead of a test timeout.
 *
 * usage: hostile_fork_during_sample
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define N_PROCESSES 30
#define N_THREADS 3
#define N_FORKS 8

static volatile int stop;

static void *__attribute__((noinline))
alloc_at_depth(int depth, size_t size)
{
    if (depth > 0) {
        void *p = alloc_at_depth(depth - 1, size);
        __asm__ volatile("" ::: "memory"); /* no tail call */
        return p;
    }
    return malloc(size);
}

static void *
spinner(void *arg)
{
    unsigned seed = (unsigned)(size_t)arg;
    while (!stop) {
        seed = seed * 1103515245u + 12345u;
        char *p = alloc_at_depth((int)(seed >> 28), 16 + (seed >> 20) % 2000);
        if (p != NULL)
            p[0] = 1;
        free(p);
    }
    return NULL;
}

/* 0 exited, 1 still running after 3 s (killed), -1 error. */
static int
wait_child(pid_t pid, int *status)
{
    for (int ms = 0; ms < 3000; ms++) {
        pid_t r = waitpid(pid, status, WNOHANG);
        if (r == pid)
            return 0;
        if (r < 0)
            return -1;
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    kill(pid, SIGKILL);
    waitpid(pid, status, 0);
    return 1;
}

/* Exit code: hung children * 10 + children with a wrong exit. */
static int
inner(void)
{
    pthread_t t[N_THREADS];
    for (int i = 0; i < N_THREADS; i++)
        if (pthread_create(&t[i], NULL, spinner, (void *)(size_t)(i + 1)) != 0)
            return 99;
    /* All forks back to back, while the unwinder's caches are cold. */
    pid_t pids[N_FORKS];
    for (int i = 0; i < N_FORKS; i++) {
        pid_t pid = fork();
        if (pid < 0)
            return 99;
        if (pid == 0) {
            char *p = alloc_at_depth(20, 100 + (size_t)i);
            char *q = calloc(10, 10);
            char *r = realloc(p, 5000);
            free(q);
            free(r);
            _exit(10 + i);
        }
        pids[i] = pid;
    }
    int hung = 0, bad = 0;
    for (int i = 0; i < N_FORKS; i++) {
        int st = 0;
        int w = wait_child(pids[i], &st);
        if (w == 1)
            hung++;
        else if (w < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 10 + i)
            bad++;
    }
    stop = 1;
    for (int i = 0; i < N_THREADS; i++)
        pthread_join(t[i], NULL);
    return hung * 10 + bad;
}

int
main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "inner") == 0)
        return inner();

    int hung = 0, bad = 0;
    for (int k = 0; k < N_PROCESSES; k++) {
        pid_t pid = fork();
        if (pid < 0) {
            perror("fork");
            return 3;
        }
        if (pid == 0) {
            execl("/proc/self/exe", argv[0], "inner", (char *)NULL);
            _exit(99);
        }
        int st = 0;
        if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) ||
            WEXITSTATUS(st) == 99) {
            fprintf(stderr, "process %d failed to run\n", k);
            return 3;
        }
        int code = WEXITSTATUS(st);
        if (code != 0)
            fprintf(stderr, "process %d: %d children hung, %d bad exits\n", k,
                    code / 10, code % 10);
        hung += code / 10;
        bad += code % 10;
    }
    printf("processes %d, forks %d, hung children %d, bad exits %d\n",
           N_PROCESSES, N_PROCESSES * N_FORKS, hung, bad);
    return hung == 0 && bad == 0 ? 0 : 1;
}
