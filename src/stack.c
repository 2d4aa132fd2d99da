/*
 * Stack capture. On x86-64 a sample's stack is walked with the frame
 * cache (frame_cache.h): two loads per frame while every return address
 * on it is known; the first time one is not, libunwind walks the whole
 * stack and teaches the cache what each frame looked like. Elsewhere
 * unw_backtrace walks with libunwind's own cached tables. Neither calls
 * back into the unwound code. heapprof's own frames are recognised by
 * address (the "heapprof_front" section, whose bounds the linker
 * provides) rather than by a fixed skip count, which inlining and tail
 * calls would break.
 */
#define _GNU_SOURCE /* dl_iterate_phdr */
#define UNW_LOCAL_ONLY
#include "stack.h"

#include <libunwind.h>
#include <link.h>
#include <pthread.h>
#include <sched.h>
#include <stdalign.h>
#include <string.h>
#include <ucontext.h>

#include "frame_cache.h"
#include "heapprof.h"
#include "unwind_guard.h"

extern const char __start_heapprof_front[] HP_HIDDEN;
extern const char __stop_heapprof_front[] HP_HIDDEN;

static int capture(uintptr_t *pcs, int max, const struct hp_stack_from *from);

/* Stacks walked by libunwind (a return address not in the frame cache). */
static uint64_t slow_walks;
/* Stacks cut where the frame cache's knowledge ended because libunwind
 * could not run (unwind_guard.h). */
static uint64_t cut_walks;

uint64_t
hp_stack_slow_walks(void)
{
    return __atomic_load_n(&slow_walks, __ATOMIC_RELAXED);
}

uint64_t
hp_stack_cut_walks(void)
{
    return __atomic_load_n(&cut_walks, __ATOMIC_RELAXED);
}

static bool
own_frame(uintptr_t pc)
{
    /* pc is a return address: pc - 1 is inside the calling instruction. */
    return pc - 1 >= (uintptr_t)__start_heapprof_front &&
           pc - 1 < (uintptr_t)__stop_heapprof_front;
}

/*
 * Fork gate. libunwind holds its global cache lock (with every signal
 * blocked) and glibc's dl_iterate_phdr lock while it walks; a fork in the
 * middle leaves the child with a lock whose owner does not exist there,
 * and the child's first sampled allocation would hang. So the prefork
 * handler closes the gate and waits for captures in flight to finish;
 * while it is closed, captures are refused (the sample is dropped). The
 * walks of loaded objects by heapprof's own threads pass the same gate
 * (hp_stack_phdr_iterate), waiting instead of being refused.
 * Dekker-style: both sides use sequentially consistent operations. The
 * count of captures in flight is kept per lane (internal.h): a thread
 * counts itself in its own, and the prefork handler adds them up.
 */
static int gate_closed;
static struct {
    alignas(64) int n;
} in_flight[HP_LANES];
static __thread int capturing __attribute__((tls_model("initial-exec")));

static inline int *
own_count(void)
{
    return &in_flight[hp_lane()].n;
}

static int
total_in_flight(void)
{
    int total = 0;
    for (int i = 0; i < HP_LANES; i++)
        total += __atomic_load_n(&in_flight[i].n, __ATOMIC_SEQ_CST);
    return total;
}

void
hp_stack_prefork(void)
{
    __atomic_store_n(&gate_closed, 1, __ATOMIC_SEQ_CST);
    /* A fork from a signal handler that interrupted a capture on this
     * thread must not wait for itself. Bounded: never hang the fork. */
    int own = capturing;
    for (int spins = 0; total_in_flight() > own && spins < 200000; spins++)
        sched_yield();
}

void
hp_stack_postfork(void)
{
    __atomic_store_n(&gate_closed, 0, __ATOMIC_SEQ_CST);
}

/*
 * libunwind's first use, where it sets up its globals (the signal masks
 * its locks install, the pipe unwind_guard.h watches): once, so that two
 * threads' first walks do not race there (TSan: sigfillset against
 * sigprocmask), and before any walk, which may come before hp_stack_init
 * (a sample in another library's constructor).
 */
static pthread_once_t unw_once = PTHREAD_ONCE_INIT;

static void
unw_first_use(void)
{
    unw_context_t ctx;
    unw_cursor_t cur;
    hp_unwind_guard_before_init();
    if (unw_getcontext(&ctx) == 0)
        (void)unw_init_local(&cur, &ctx);
    hp_unwind_guard_after_init();
}

/* Whether a libunwind walk may run now (unwind_guard.h); counted when
 * not. */
static bool
libunwind_ready(void)
{
    pthread_once(&unw_once, unw_first_use);
    if (hp_unwind_guard_usable())
        return true;
    __atomic_fetch_add(&cut_walks, 1, __ATOMIC_RELAXED);
    return false;
}

void
hp_stack_init(void)
{
    hp_fence_enter();
    pthread_once(&unw_once, unw_first_use);
    hp_fence_exit();
}

void
hp_stack_postfork_child(void)
{
    __atomic_store_n(&slow_walks, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&cut_walks, 0, __ATOMIC_RELAXED);
    hp_frame_cache_postfork_child();
}

HP_FRONT int
hp_stack_capture(uintptr_t *pcs, int max, const struct hp_stack_from *from)
{
    int *count = own_count();
    __atomic_fetch_add(count, 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&gate_closed, __ATOMIC_SEQ_CST)) {
        __atomic_fetch_sub(count, 1, __ATOMIC_SEQ_CST);
        return -1;
    }
    capturing++;
    int n = capture(pcs, max, from);
    capturing--;
    __atomic_fetch_sub(count, 1, __ATOMIC_SEQ_CST);
    return n;
}

void
hp_stack_gate_enter(void)
{
    /* Nested (a gated load that walks the objects): already counted, and
     * waiting here would make a fork's prepare wait for this thread. */
    int *count = own_count();
    for (bool nested = capturing > 0;;) {
        __atomic_fetch_add(count, 1, __ATOMIC_SEQ_CST);
        if (nested || !__atomic_load_n(&gate_closed, __ATOMIC_SEQ_CST))
            break;
        __atomic_fetch_sub(count, 1, __ATOMIC_SEQ_CST);
        sched_yield();
    }
    capturing++;
}

void
hp_stack_gate_exit(void)
{
    capturing--;
    __atomic_fetch_sub(own_count(), 1, __ATOMIC_SEQ_CST);
}

int
hp_stack_phdr_iterate(int (*cb)(struct dl_phdr_info *, size_t, void *),
                      void *data)
{
    hp_stack_gate_enter();
    int rc = dl_iterate_phdr(cb, data);
    hp_stack_gate_exit();
    return rc;
}

#if defined(__x86_64__)
/*
 * The highest stack address a libunwind walk on this thread reached: a
 * cached walk never reads above it, so even a wrong rule (frame_cache.h
 * refuses the shapes it knows to vary) cannot read past the stack's top.
 * Still 0 before the thread's first walk, so that one goes to libunwind.
 */
static __thread uintptr_t walk_top __attribute__((tls_model("initial-exec")));

/* The frame under libunwind's cursor, as the frame cache wants it. */
static void
frame_seen(unw_cursor_t *cur, struct hp_frame_seen *f)
{
    unw_word_t ip = 0, sp = 0, rbp = 0;
    unw_save_loc_t loc;
    unw_proc_info_t pi;
    unw_get_reg(cur, UNW_REG_IP, &ip);
    unw_get_reg(cur, UNW_REG_SP, &sp);
    unw_get_reg(cur, UNW_X86_64_RBP, &rbp);
    f->ip = ip;
    f->sp = sp;
    f->rbp = rbp;
    f->rbp_loc = unw_get_save_loc(cur, UNW_X86_64_RBP, &loc) == 0 &&
                         loc.type == UNW_SLT_MEMORY
                     ? (uintptr_t)loc.u.addr
                     : 0;
    f->cacheable = unw_get_proc_info(cur, &pi) == 0;
    /* The kernel returns from a handler into the C library's restorer,
     * `mov $15, %rax; syscall` (rt_sigreturn). Read only inside the
     * function libunwind found ip in (a return address can be its end). */
    static const unsigned char restorer[9] = {0x48, 0xc7, 0xc0, 0x0f, 0x00,
                                              0x00, 0x00, 0x0f, 0x05};
    f->signal = f->cacheable && ip >= pi.start_ip &&
                ip + sizeof restorer <= pi.end_ip &&
                memcmp((const void *)ip, restorer, sizeof restorer) == 0;
}

/*
 * Walks the stack with libunwind, from its own frame, into pcs (up to
 * cap), and teaches the frame cache each frame's rule, HP_STACK_SLACK
 * frames past the last kept: a cached walk that starts above its own
 * frame (struct hp_stack_from) reaches that much further. The frame whose
 * sp is walk_sp is walk()'s: its rule is also learned for walk_ip, the
 * point where walk() starts its cached walks.
 */
static HP_FRONT int
learn(uintptr_t walk_sp, uintptr_t walk_ip, uintptr_t *pcs, int cap)
{
    __atomic_fetch_add(&slow_walks, 1, __ATOMIC_RELAXED);
    unw_context_t ctx;
    unw_cursor_t cur;
    if (unw_getcontext(&ctx) != 0 || unw_init_local(&cur, &ctx) != 0)
        return 0;
    struct hp_frame_seen prev, f;
    int n = 0;
    for (int seen = 0;; seen++) {
        frame_seen(&cur, &f);
        if (seen > 0) {
            uint32_t rule = hp_frame_rule_of(&prev, &f);
            hp_frame_learn(prev.ip, rule);
            if (prev.sp == walk_sp)
                hp_frame_learn(walk_ip, rule);
        }
        if (f.sp > walk_top)
            walk_top = f.sp;
        /* One frame past the last learned: learn's own frame is one more
         * than walk()'s, and a cached walk reads the return address of
         * its last frame below this frame's sp. */
        if (seen == cap + HP_STACK_SLACK)
            return n;
        if (n < cap)
            pcs[n++] = f.ip;
        prev = f;
        int more = unw_step(&cur);
        if (more <= 0) {
            if (more == 0)
                hp_frame_learn(f.ip, HP_FRAME_END);
            return n;
        }
    }
}

/*
 * Fills pcs (up to cap) from this function's own frame outwards, or from
 * `from` when it names one: through the frame cache while it knows every
 * frame, else through learn(). Reads only the stack between this frame
 * and walk_top.
 */
static HP_FRONT int
walk(uintptr_t *pcs, int cap, const struct hp_stack_from *from)
{
    uintptr_t ip, sp, rbp;
    __asm__ volatile("leaq 0(%%rip), %0\n\tmovq %%rsp, %1\n\tmovq %%rbp, %2"
                     : "=r"(ip), "=r"(sp), "=r"(rbp));
    const uintptr_t walk_ip = ip, walk_sp = sp, top = walk_top;
    if (from != NULL && from->ip != 0 && from->sp > sp) {
        ip = from->ip;
        sp = from->sp;
        rbp = from->rbp;
    }
    const struct hp_frame_entry *shared = hp_frame_shared_table();
    int n = 0;
    while (sp <= top) {
        pcs[n++] = ip;
        uint32_t rule = hp_frame_lookup(shared, ip);
        unsigned kind = HP_FRAME_KIND(rule);
        if (rule == HP_FRAME_SIGNAL && n < cap) {
            /* Into the interrupted code, maybe on another stack. */
            const greg_t *g = ((const ucontext_t *)sp)->uc_mcontext.gregs;
            ip = (uintptr_t)g[REG_RIP];
            sp = (uintptr_t)g[REG_RSP];
            rbp = (uintptr_t)g[REG_RBP];
            continue;
        }
        if (kind == HP_FRAME_END || n == cap)
            return n;
        if (kind == HP_FRAME_NONE)
            break;
        uintptr_t cfa =
            (kind == HP_FRAME_RSP ? sp : rbp) + HP_FRAME_CFA_OFFSET(rule);
        if (cfa <= sp || cfa > top)
            break;
        if (HP_FRAME_RBP_SLOT(rule) != 0)
            rbp = *(const uintptr_t *)(cfa - 8 * HP_FRAME_RBP_SLOT(rule));
        ip = *(const uintptr_t *)(cfa - 8);
        sp = cfa;
    }
    if (!libunwind_ready())
        return n;
    n = learn(walk_sp, walk_ip, pcs, cap);
    __asm__ volatile("" ::: "memory"); /* no tail call: walk's frame stays */
    return n;
}
#else
static int
walk(uintptr_t *pcs, int cap, const struct hp_stack_from *from)
{
    (void)from;
    if (!libunwind_ready())
        return 0;
    __atomic_fetch_add(&slow_walks, 1, __ATOMIC_RELAXED);
    return unw_backtrace((void **)pcs, cap);
}
#endif

static HP_FRONT int
capture(uintptr_t *pcs, int max, const struct hp_stack_from *from)
{
    if (max > HEAPPROF_MAX_STACK_DEPTH)
        max = HEAPPROF_MAX_STACK_DEPTH;
    /* Capture straight into the caller's buffer (max + HP_STACK_SLACK
     * entries), then slide the host's frames to the front: no second
     * buffer on what may be a small thread stack. */
    int n = walk(pcs, max + HP_STACK_SLACK, from);
    if (n <= 0)
        return 0;
    /* The first entries belong to heapprof's capture (and on other
     * architectures libunwind); drop everything up to and including the
     * run of heapprof frames. */
    int first_own = 0;
    while (first_own < n && !own_frame(pcs[first_own]))
        first_own++;
    int skip = first_own == n ? 0 : first_own;
    while (skip < n && own_frame(pcs[skip]))
        skip++;
    int kept = n - skip;
    if (kept > max)
        kept = max;
    memmove(pcs, pcs + skip, (size_t)kept * sizeof *pcs);
    return kept;
}
