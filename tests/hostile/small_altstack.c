/*
 * Allocation in a signal handler running on a small alternate stack (8 KiB,
 * SIGSTKSZ on most systems), malloc'ed as programs usually do, with an
 * 8 KiB guard painted below it. Prints "ok" when the guard is untouched and
 * the handler and what it called (malloc, free, heapprof below them) used
 * at most 4 KiB below the handler's frame; otherwise the figures (the
 * output then differs from the bare run's, which run_compare.sh reports).
 * The bytes are measured by painting and printed on stderr. The kernel's
 * signal frame, above the handler's, is not counted: its size follows the
 * CPU's extended register state, not the program.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef ALT_SIZE
#define ALT_SIZE 8192 /* -DALT_SIZE=65536 measures a sample taken */
#endif
#define GUARD 8192
#define PAINT 0xa5
#define LIMIT 4096

static volatile sig_atomic_t handled;
static unsigned char *volatile handler_frame;

static void
on_usr1(int sig)
{
    (void)sig;
    /* Sizes that reach glibc's tcache, bins and mmap threshold. */
    static const size_t sizes[] = {16, 100, 1000, 5000, 70000, 300000};
    for (int round = 0; round < 50; round++)
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            void *p = malloc(sizes[i]);
            if (p != NULL)
                ((volatile char *)p)[0] = 1;
            free(p);
        }
    handler_frame = __builtin_frame_address(0);
    handled++;
}

int
main(void)
{
    unsigned char *mem = malloc(GUARD + ALT_SIZE);
    if (mem == NULL)
        return 1;
    memset(mem, PAINT, GUARD + ALT_SIZE);
    stack_t ss = {.ss_sp = mem + GUARD, .ss_size = ALT_SIZE, .ss_flags = 0};
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sa.sa_flags = SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    if (sigaltstack(&ss, NULL) != 0 || sigaction(SIGUSR1, &sa, NULL) != 0) {
        perror("setup");
        return 1;
    }
    for (int i = 0; i < 20; i++)
        raise(SIGUSR1);
    /* Stop using the stack before reading it. */
    stack_t off = {.ss_flags = SS_DISABLE};
    sigaltstack(&off, NULL);
    size_t guard_hit = 0, untouched = 0;
    for (size_t i = 0; i < GUARD; i++)
        guard_hit += mem[i] != PAINT;
    while (untouched < ALT_SIZE && mem[GUARD + untouched] == PAINT)
        untouched++;
    size_t used = ALT_SIZE - untouched;
    long below = handler_frame - (mem + GUARD + untouched);
    fprintf(stderr, "small_altstack: %zu of %d bytes used, %ld below the "
            "handler's frame, guard %zu\n", used, ALT_SIZE, below, guard_hit);
    if (handled != 20 || guard_hit != 0 || below > LIMIT)
        printf("handled %d, guard bytes hit %zu, %ld below the handler\n",
               (int)handled, guard_hit, below);
    else
        printf("ok\n");
    free(mem);
    return 0;
}
