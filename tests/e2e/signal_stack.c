/*
 * Allocations made in signal handlers, for check_signal_stack.py: a timer
 * interrupts interrupted_work() (and, in the second phase, the handler
 * runs on an alternate signal stack); each handler allocates from its own
 * site. The profile must show handler site -> handler -> the signal
 * return trampoline -> interrupted_work -> main: stacks cross the signal
 * frame (and the switch of stacks). Prints "truth SITE COUNT BYTES".
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <heapprof.h>

#define PER_PHASE 100
#define BLOCK 4096

static void *volatile kept[2 * PER_PHASE];
static volatile sig_atomic_t nkept;

__attribute__((noinline)) static void
handler_site(void)
{
    if (nkept < PER_PHASE) {
        kept[nkept] = malloc(BLOCK);
        nkept++;
    }
}

__attribute__((noinline)) static void
altstack_site(void)
{
    if (nkept < 2 * PER_PHASE) {
        kept[nkept] = malloc(BLOCK);
        nkept++;
    }
}

static void
on_alarm(int sig)
{
    (void)sig;
    handler_site();
}

static void
on_alarm_altstack(int sig)
{
    (void)sig;
    altstack_site();
}

__attribute__((noinline)) static void
interrupted_work(int until)
{
    volatile unsigned long x = 0;
    while (nkept < until)
        x++;
}

static void
run_phase(void (*handler)(int), int flags, int until)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler;
    sa.sa_flags = SA_RESTART | flags;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval it = { { 0, 1000 }, { 0, 1000 } };
    setitimer(ITIMER_REAL, &it, NULL);
    interrupted_work(until);
    struct itimerval off = { { 0, 0 }, { 0, 0 } };
    setitimer(ITIMER_REAL, &off, NULL);
}

int
main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    run_phase(on_alarm, 0, PER_PHASE);

    stack_t ss;
    memset(&ss, 0, sizeof ss);
    ss.ss_size = 256 * 1024;
    ss.ss_sp = malloc(ss.ss_size);
    if (ss.ss_sp == NULL || sigaltstack(&ss, NULL) != 0) {
        perror("sigaltstack");
        return 1;
    }
    run_phase(on_alarm_altstack, SA_ONSTACK, 2 * PER_PHASE);

    char path[4096];
    snprintf(path, sizeof path, "%s/signal.pb.gz", argv[1]);
    int rc = heapprof_write_path(path, HEAPPROF_PROFILE_HEAP);
    if (rc != 0) {
        fprintf(stderr, "heapprof_write_path: %d\n", rc);
        return 1;
    }
    printf("truth handler_site %d %d\n", PER_PHASE, PER_PHASE * BLOCK);
    printf("truth altstack_site %d %d\n", PER_PHASE, PER_PHASE * BLOCK);
    return 0;
}
