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
 *
 * "sampled": a 64 KiB alternate stack, where heapprof takes its samples
 * (at HEAPPROF_RATE=1, every allocation). The first round warms caches
 * (libunwind walks the new stacks, about 4.4 KiB); in the second the
 * frame cache walks them, across the signal frame, and must stay within
 * WARM_LIMIT (about 740 bytes measured), and at rate 1 show that a sample
 * was taken (over WARM_FLOOR: glibc's malloc and free alone use 344), so
 * the test cannot pass without samples.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GUARD 8192
#define PAINT 0xa5
#define LIMIT 4096
#define WARM_LIMIT 2048
#define WARM_FLOOR 512

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

/* Paints the stack and its guard, raises the signal 20 times on it and
 * returns how far below the handler's frame the stack was touched. */
static long
measure(unsigned char *mem, size_t alt, size_t *guard_hit)
{
    memset(mem, PAINT, GUARD + alt);
    stack_t ss = {.ss_sp = mem + GUARD, .ss_size = alt, .ss_flags = 0};
    if (sigaltstack(&ss, NULL) != 0) {
        perror("sigaltstack");
        exit(1);
    }
    for (int i = 0; i < 20; i++)
        raise(SIGUSR1);
    /* Stop using the stack before reading it. */
    stack_t off = {.ss_flags = SS_DISABLE};
    sigaltstack(&off, NULL);
    size_t hit = 0, untouched = 0;
    for (size_t i = 0; i < GUARD; i++)
        hit += mem[i] != PAINT;
    while (untouched < alt && mem[GUARD + untouched] == PAINT)
        untouched++;
    *guard_hit = hit;
    fprintf(stderr,
            "small_altstack: %zu of %zu bytes used, %ld below the "
            "handler's frame, guard %zu\n",
            alt - untouched, alt,
            (long)(handler_frame - (mem + GUARD + untouched)), hit);
    return handler_frame - (mem + GUARD + untouched);
}

/* True when heapprof is loaded and samples every allocation. */
static int
rate_one(void)
{
    uint64_t (*get_rate)(void) =
        (uint64_t(*)(void))dlsym(RTLD_DEFAULT, "heapprof_get_rate");
    return get_rate != NULL && get_rate() == 1;
}

int
main(int argc, char **argv)
{
    int sampled = argc > 1 && strcmp(argv[1], "sampled") == 0;
    size_t alt = sampled ? 65536 : 8192;
    unsigned char *mem = malloc(GUARD + alt);
    if (mem == NULL)
        return 1;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sa.sa_flags = SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGUSR1, &sa, NULL) != 0) {
        perror("sigaction");
        return 1;
    }
    size_t guard_hit;
    long below = 0;
    /* Sampled: a first round warms the unwinder's caches, from the same
     * call site (a new return address anywhere in the chain is a miss). */
    for (int round = 0; round < (sampled ? 2 : 1); round++)
        below = measure(mem, alt, &guard_hit);
    int expected = sampled ? 40 : 20;
    if (handled != expected || guard_hit != 0 ||
        below > (sampled ? WARM_LIMIT : LIMIT))
        printf("handled %d, guard bytes hit %zu, %ld below the handler\n",
               (int)handled, guard_hit, below);
    else if (sampled && rate_one() && below < WARM_FLOOR)
        printf("no sample taken: %ld below the handler\n", below);
    else
        printf("ok\n");
    free(mem);
    return 0;
}
