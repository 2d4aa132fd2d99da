/*
 * Unit tests of the frame cache (src/frame_cache.c): the rules derived
 * from two frames as libunwind reports them, over a stack built here, and
 * the table (learn, lookup, a second shape refused, flush).
 */
#define _GNU_SOURCE /* REG_RIP */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>
#include <sys/wait.h>
#include <ucontext.h>
#include <unistd.h>

#include "frame_cache.h"

/* A fake stack: frames are laid out in it by each test. */
static uintptr_t stack[256];

static uintptr_t
at(int word)
{
    return (uintptr_t)&stack[word];
}

/* A frame at word `sp` whose caller's frame starts at word `cfa` and
 * resumes at ret: the return address sits just below the CFA. */
static void
lay_out_x86_64(struct hp_frame_seen *f, struct hp_frame_seen *caller, int sp,
               int cfa, uintptr_t ret)
{
#if !defined(__x86_64__)
    skip(); /* the rules are x86-64's */
#endif
    memset(stack, 0, sizeof stack);
    *f =
        (struct hp_frame_seen){.ip = 0x401000, .sp = at(sp), .cacheable = true};
    *caller = (struct hp_frame_seen){.ip = ret, .sp = at(cfa)};
    stack[cfa - 1] = ret;
}

static void
rsp_frame_without_rbp(void **state)
{
    (void)state;
    struct hp_frame_seen f, c;
    lay_out_x86_64(&f, &c, 10, 30, 0x402345);
    f.rbp = c.rbp = 0x1234; /* left alone */
    uint32_t r = hp_frame_rule_of(&f, &c);
    assert_int_equal(HP_FRAME_KIND(r), HP_FRAME_RSP);
    assert_int_equal(HP_FRAME_CFA_OFFSET(r), 20 * 8);
    assert_int_equal(HP_FRAME_RBP_SLOT(r), 0);
}

static void
rsp_frame_saving_rbp(void **state)
{
    (void)state;
    struct hp_frame_seen f, c;
    lay_out_x86_64(&f, &c, 10, 30, 0x402345);
    /* push rbp after three other pushes: the caller's rbp at CFA - 40. */
    stack[25] = 0x7777;
    f.rbp = 0x9999; /* used as a general register here */
    f.rbp_loc = at(100);
    c.rbp = 0x7777;
    c.rbp_loc = at(25);
    uint32_t r = hp_frame_rule_of(&f, &c);
    assert_int_equal(HP_FRAME_KIND(r), HP_FRAME_RSP);
    assert_int_equal(HP_FRAME_RBP_SLOT(r), 5);
}

static void
frame_pointer_frame(void **state)
{
    (void)state;
    struct hp_frame_seen f, c;
    lay_out_x86_64(&f, &c, 10, 30, 0x402345);
    stack[28] = 0x5555; /* push rbp; mov rsp, rbp */
    f.rbp = at(28);
    f.rbp_loc = at(100);
    c.rbp = 0x5555;
    c.rbp_loc = at(28);
    uint32_t r = hp_frame_rule_of(&f, &c);
    assert_int_equal(HP_FRAME_KIND(r), HP_FRAME_RBP);
    assert_int_equal(HP_FRAME_CFA_OFFSET(r), 16);
    assert_int_equal(HP_FRAME_RBP_SLOT(r), 2);
}

static void
realigned_frame_refused(void **state)
{
    (void)state;
    struct hp_frame_seen f, c;
    lay_out_x86_64(&f, &c, 10, 30, 0x402345);
    /* rsp rounded down, a copy of the return address pushed, then rbp:
     * the frame pointer points at the saved rbp 48 bytes below the CFA. */
    stack[24] = 0x5555;
    stack[25] = 0x402345;
    f.rbp = at(24);
    f.rbp_loc = at(100);
    c.rbp = 0x5555;
    c.rbp_loc = at(24);
    assert_int_equal(hp_frame_rule_of(&f, &c), HP_FRAME_NONE);
}

static void
unprovable_frames_refused(void **state)
{
    (void)state;
    struct hp_frame_seen f, c;
    lay_out_x86_64(&f, &c, 10, 30, 0x402345);
    f.rbp = c.rbp = 1;
    struct hp_frame_seen g = f;
    g.cacheable = false; /* a signal frame, or no unwind tables */
    assert_int_equal(hp_frame_rule_of(&g, &c), HP_FRAME_NONE);
    c.ip = 0x402346; /* the return address is not below the CFA */
    assert_int_equal(hp_frame_rule_of(&f, &c), HP_FRAME_NONE);
    c.ip = 0x402345;
    c.rbp = 2; /* rbp changed, and no save location says where from */
    assert_int_equal(hp_frame_rule_of(&f, &c), HP_FRAME_NONE);
    c.rbp = 1;
    c.sp = f.sp; /* the CFA must be above the frame */
    assert_int_equal(hp_frame_rule_of(&f, &c), HP_FRAME_NONE);
}

static void
signal_frame(void **state)
{
    (void)state;
    struct hp_frame_seen f, c;
    lay_out_x86_64(&f, &c, 10, 30, 0x402345);
#if defined(__x86_64__)
    /* __restore_rt's sp is the kernel's ucontext: the interrupted code's
     * registers, on whatever stack it ran. */
    static ucontext_t uc;
    f.sp = (uintptr_t)&uc;
    f.signal = true;
    c = (struct hp_frame_seen){.ip = 0x403001, .sp = at(200), .rbp = 0x42};
    uc.uc_mcontext.gregs[REG_RIP] = 0x403001;
    uc.uc_mcontext.gregs[REG_RSP] = (greg_t)at(200);
    uc.uc_mcontext.gregs[REG_RBP] = 0x42;
    assert_int_equal(hp_frame_rule_of(&f, &c), HP_FRAME_SIGNAL);
    uc.uc_mcontext.gregs[REG_RBP] = 0x43; /* not what libunwind found */
    assert_int_equal(hp_frame_rule_of(&f, &c), HP_FRAME_NONE);
#endif
}

static uint32_t
lookup(uintptr_t ip)
{
    return hp_frame_lookup(hp_frame_shared_table(), ip);
}

static void
learn_lookup_refuse_flush(void **state)
{
    (void)state;
    hp_frame_cache_unloaded(0, UINTPTR_MAX); /* all, before any sharing */
    uint64_t filled, refused;
    uint32_t rsp20 = HP_FRAME_RSP | 20u << 10,
             rbp = HP_FRAME_RBP | 2u << 2 | 16u << 10;
    assert_int_equal(lookup(0x401000), HP_FRAME_NONE);
    /* Addresses that share a slot probe on. */
    for (uintptr_t ip = 0x401000; ip < 0x401000 + 64; ip++)
        hp_frame_learn(ip, ip % 2 ? rsp20 : rbp);
    for (uintptr_t ip = 0x401000; ip < 0x401000 + 64; ip++)
        assert_int_equal(lookup(ip), ip % 2 ? rsp20 : rbp);
    hp_frame_learn(0x401000, rbp); /* the same answer again: kept */
    assert_int_equal(lookup(0x401000), rbp);
    hp_frame_learn(0x401000, rsp20); /* another: never trusted again */
    assert_int_equal(HP_FRAME_KIND(lookup(0x401000)), HP_FRAME_NONE);
    hp_frame_learn(0x401000, rbp);
    assert_int_equal(HP_FRAME_KIND(lookup(0x401000)), HP_FRAME_NONE);
    hp_frame_cache_counts(&filled, &refused);
    assert_int_equal(filled, 64);
    assert_int_equal(refused, 1);
    hp_frame_learn(0x402000, HP_FRAME_NONE); /* nothing to keep */
    assert_int_equal(lookup(0x402000), HP_FRAME_NONE);
    hp_frame_cache_unloaded(0, UINTPTR_MAX); /* all, before any sharing */
    assert_int_equal(lookup(0x401001), HP_FRAME_NONE);
    hp_frame_learn(0x401000, rsp20); /* unloaded: a fresh start */
    assert_int_equal(lookup(0x401000), rsp20);
}

/* Rules for code loaded at start reach every process of the fork tree;
 * the rest stay in the process that learned them. */
static void
shared_across_fork(void **state)
{
    (void)state;
#if !defined(__x86_64__)
    skip(); /* nothing is learned elsewhere (and qemu-user hangs in fork) */
#endif
    hp_frame_cache_share();
    uintptr_t at_start = (uintptr_t)&shared_across_fork + 3;
    uintptr_t later = 0x1000; /* in no object */
    uint32_t rule = HP_FRAME_RSP | 24u << 10;
    hp_frame_learn(at_start, rule);
    assert_int_equal(lookup(at_start), rule);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* The child sees the parent's rule and teaches it two more. */
        int ok = lookup(at_start) == rule;
        hp_frame_learn(at_start + 1, rule);
        hp_frame_learn(later, rule);
        _exit(ok ? 0 : 1);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_int_equal(lookup(at_start + 1), rule);
    assert_int_equal(lookup(later), HP_FRAME_NONE);
    /* An object loaded at start unloaded: its addresses may hold other
     * code here, so this process stops reading the shared rules. */
    hp_frame_cache_unloaded(at_start - 3, at_start + 64);
    assert_int_equal(lookup(at_start), HP_FRAME_NONE);
    hp_frame_learn(at_start, HP_FRAME_RBP | 2u << 2 | 16u << 10);
    assert_int_equal(HP_FRAME_KIND(lookup(at_start)), HP_FRAME_RBP);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(rsp_frame_without_rbp),
        cmocka_unit_test(rsp_frame_saving_rbp),
        cmocka_unit_test(frame_pointer_frame),
        cmocka_unit_test(realigned_frame_refused),
        cmocka_unit_test(unprovable_frames_refused),
        cmocka_unit_test(signal_frame),
        cmocka_unit_test(learn_lookup_refuse_flush),
        cmocka_unit_test(shared_across_fork), /* last: stops sharing */
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
