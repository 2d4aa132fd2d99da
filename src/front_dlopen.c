/*
 * dlopen, interposed (LD_PRELOAD or -lheapprof), for RTLD_DEEPBIND: an
 * object loaded that way binds its allocator calls to its own
 * dependencies (the C library) instead of heapprof, and a sampled block
 * (which lives in heapprof's sample range) freed there made the C
 * library's free abort the program. After such a load the new objects'
 * slots are pointed at heapprof's wrappers (front_attach.c).
 *
 * Every other call must reach the C library's dlopen as if heapprof were
 * not there: dlopen searches a bare file name through its caller's
 * DT_RPATH and DT_RUNPATH, and takes its caller from the return address.
 * So the entry is a jump, not a call (x86-64 and aarch64, below): only a
 * RTLD_DEEPBIND load, or one before the next definition is known, goes
 * through C, where heapprof is the caller.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>

#include "front_attach.h"
#include "internal.h"
#include "log.h"

/* The next dlopen (the C library's); read by the entry below. */
HP_HIDDEN void *hp_next_dlopen;

HP_HIDDEN void *hp_dlopen_slow(const char *file, int flags);

void *
hp_dlopen_slow(const char *file, int flags)
{
    void *(*real)(const char *, int);
    *(void **)&real = hp_next_symbol("dlopen", &hp_next_dlopen);
    if (real == NULL) {
        hp_log_no_next("dlopen");
        return NULL;
    }
    void *h = real(file, flags);
    if (h != NULL && (flags & RTLD_DEEPBIND) != 0) {
        int saved = errno;
        hp_attach_bind_deep();
        errno = saved;
    }
    return h;
}

/* dlsym may allocate: resolved before the program runs. */
__attribute__((constructor(103))) static void
dlopen_front_init(void)
{
    (void)hp_next_symbol("dlopen", &hp_next_dlopen);
}

#if defined(__x86_64__)
/* RTLD_DEEPBIND is 8 (glibc, both architectures). endbr64 and bti c: the
 * entry is reached through PLT and GOT jumps. */
__asm__(".text\n"
        ".globl dlopen\n"
        ".type dlopen, @function\n"
        "dlopen:\n"
        "    endbr64\n"
        "    testl $8, %esi\n"
        "    jnz 1f\n"
        "    movq hp_next_dlopen(%rip), %rax\n"
        "    testq %rax, %rax\n"
        "    jz 1f\n"
        "    jmp *%rax\n"
        "1:  jmp hp_dlopen_slow\n"
        ".size dlopen, .-dlopen\n");
#elif defined(__aarch64__)
__asm__(".text\n"
        ".globl dlopen\n"
        ".type dlopen, %function\n"
        "dlopen:\n"
        "    hint #34\n"
        "    tbnz w1, #3, 1f\n"
        "    adrp x16, hp_next_dlopen\n"
        "    ldr x16, [x16, :lo12:hp_next_dlopen]\n"
        "    cbz x16, 1f\n"
        "    br x16\n"
        "1:  b hp_dlopen_slow\n"
        ".size dlopen, .-dlopen\n");
#endif
