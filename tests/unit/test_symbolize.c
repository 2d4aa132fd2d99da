/*
 * Symbolizer: names of exported and static functions of this binary,
 * file:line and inline frames from its DWARF (tests build with -g),
 * "not found" for unmapped memory, the file and address of a frame
 * (hp_symbolize_where), the symbol-endpoint helper, UTF-8.
 */
#define _GNU_SOURCE 1
#include <dlfcn.h>
#include <link.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <fcntl.h>
#include <gelf.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cmocka.h>

#include "symbolize.h"
#include "utf8.h"

/* Keeps the compiler from turning calls into tail jumps or folding them. */
static volatile int opaque = 1;

__attribute__((noinline)) static uintptr_t
return_address(void)
{
    return (uintptr_t)__builtin_return_address(0);
}

__attribute__((noinline)) int
hp_test_named_function(int x)
{
    return x * opaque + 3;
}

__attribute__((noinline)) static int
static_helper_function(int x)
{
    return x * opaque + 5;
}

/* Aligned so that it is followed by padding (functions start on 16-byte
 * boundaries and this one is shorter than that). */
__attribute__((noinline, aligned(64))) int
hp_test_sized_function(int x)
{
    return x + opaque;
}

static int call_line;

/* A return address inside this function, at a known source line. */
__attribute__((noinline)) uintptr_t
hp_test_line_function(void)
{
    call_line = __LINE__ + 1;
    uintptr_t ra = return_address();
    return ra + (uintptr_t)(opaque - 1);
}

static int inline_call_line;

static inline __attribute__((always_inline)) uintptr_t
inlined_into_caller(void)
{
    inline_call_line = __LINE__ + 1;
    uintptr_t ra = return_address();
    return ra + (uintptr_t)(opaque - 1);
}

__attribute__((noinline)) uintptr_t
hp_test_inline_host(void)
{
    uintptr_t ra = inlined_into_caller();
    return ra + (uintptr_t)(opaque - 1);
}

/* A lookup copied out of the session, so that a failed assertion (which
 * longjmps) never leaves the symbolizer lock held. */
struct copy {
    uint32_t n;
    struct {
        char func[128], file[256];
        int64_t line, start_line;
    } f[4];
};

static void
lookup_copy(uintptr_t addr, struct copy *c)
{
    struct hp_symres r;
    memset(c, 0, sizeof(*c));
    hp_symbolize_begin();
    hp_symbolize_lookup(addr, &r);
    c->n = r.nframes;
    for (uint32_t i = 0; i < r.nframes && i < 4; i++) {
        snprintf(c->f[i].func, sizeof(c->f[i].func), "%s", r.frames[i].func);
        snprintf(c->f[i].file, sizeof(c->f[i].file), "%s",
                 r.frames[i].file ? r.frames[i].file : "");
        c->f[i].line = r.frames[i].line;
        c->f[i].start_line = r.frames[i].start_line;
    }
    hp_symbolize_end();
}

static const char *
basename_of(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

static void
test_symbolize_named_function(void **state)
{
    (void)state;
    struct copy c;
    lookup_copy((uintptr_t)&hp_test_named_function + 1, &c);
    assert_int_equal(c.n, 1);
    assert_string_equal(c.f[0].func, "hp_test_named_function");
    assert_int_equal(hp_test_named_function(1), 4);
}

static void
test_symbolize_static_function(void **state)
{
    (void)state;
    struct copy c;
    lookup_copy((uintptr_t)&static_helper_function + 1, &c);
    assert_int_equal(c.n, 1);
    assert_string_equal(c.f[0].func, "static_helper_function");
    assert_int_equal(static_helper_function(1), 6);
}

static void
test_symbolize_file_and_line(void **state)
{
    (void)state;
    uintptr_t ra = hp_test_line_function();
    struct copy c;
    /* Like the encoder: the call instruction is at return address - 1. */
    lookup_copy(ra - 1, &c);
    assert_int_equal(c.n, 1);
    assert_string_equal(c.f[0].func, "hp_test_line_function");
    assert_string_equal(basename_of(c.f[0].file), "test_symbolize.c");
    assert_int_equal(c.f[0].line, call_line);
    assert_true(c.f[0].start_line > 0 && c.f[0].start_line < call_line);
}

static void
test_symbolize_inline_frames(void **state)
{
    (void)state;
    uintptr_t ra = hp_test_inline_host();
    struct copy c;
    lookup_copy(ra - 1, &c);
    /* Innermost first: the inlined function, then its physical host. */
    assert_int_equal(c.n, 2);
    assert_string_equal(c.f[0].func, "inlined_into_caller");
    assert_string_equal(basename_of(c.f[0].file), "test_symbolize.c");
    assert_int_equal(c.f[0].line, inline_call_line);
    assert_string_equal(c.f[1].func, "hp_test_inline_host");
    assert_string_equal(basename_of(c.f[1].file), "test_symbolize.c");
    assert_true(c.f[1].line > inline_call_line);
}

/* hp_symbolize_where: this test program's file, and the function's address
 * as its ELF file has it (the load base taken off, which dladdr knows). */
static void
test_symbolize_where(void **state)
{
    (void)state;
    uintptr_t addr = (uintptr_t)&static_helper_function + 1;
    Dl_info di;
    assert_true(dladdr((void *)addr, &di) != 0);
    const char *file = NULL;
    uint64_t vaddr = 0;
    char got[512] = "";
    hp_symbolize_begin();
    int rc = hp_symbolize_where(addr, &file, &vaddr);
    if (rc == 0)
        snprintf(got, sizeof got, "%s", file);
    int unmapped = hp_symbolize_where(0, &file, &vaddr);
    hp_symbolize_end();
    assert_int_equal(rc, 0);
    assert_int_equal(unmapped, -1);
    assert_string_equal(basename_of(got), "test_symbolize");
    uint64_t first_load = 0;
    const ElfW(Ehdr) *eh = (const ElfW(Ehdr) *)di.dli_fbase;
    if (eh->e_type == ET_EXEC) /* not PIE: addresses are the file's own */
        first_load = (uint64_t)(uintptr_t)di.dli_fbase;
    assert_int_equal(vaddr, addr - (uintptr_t)di.dli_fbase + first_load);
}

static void
test_symbolize_unmapped_not_found(void **state)
{
    (void)state;
    size_t len = 1 << 16;
    void *p = mmap(NULL, len, PROT_READ | PROT_EXEC,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(p != MAP_FAILED);
    munmap(p, len);
    uintptr_t addr = (uintptr_t)p + 128;
    struct copy c;
    lookup_copy(addr, &c);
    assert_int_equal(c.n, 0);
    lookup_copy(0, &c);
    assert_int_equal(c.n, 0);
    char buf[64];
    hp_symbolize_begin();
    int rc = hp_symbolize_name(addr, buf, sizeof(buf));
    hp_symbolize_end();
    assert_int_equal(rc, -1);
}

/* st_value and st_size of a symbol of this executable's .symtab. */
static int
own_symbol(const char *name, uint64_t *value, uint64_t *size)
{
    int found = -1;
    elf_version(EV_CURRENT);
    int fd = open("/proc/self/exe", O_RDONLY);
    if (fd < 0)
        return -1;
    Elf *elf = elf_begin(fd, ELF_C_READ, NULL);
    Elf_Scn *scn = NULL;
    while (elf != NULL && found != 0 && (scn = elf_nextscn(elf, scn))) {
        GElf_Shdr sh;
        if (gelf_getshdr(scn, &sh) == NULL || sh.sh_type != SHT_SYMTAB)
            continue;
        Elf_Data *data = elf_getdata(scn, NULL);
        for (size_t i = 0; data && i < sh.sh_size / sh.sh_entsize; i++) {
            GElf_Sym sym;
            if (gelf_getsym(data, (int)i, &sym) == NULL)
                continue;
            const char *n = elf_strptr(elf, sh.sh_link, sym.st_name);
            if (n != NULL && strcmp(n, name) == 0) {
                *value = sym.st_value;
                *size = sym.st_size;
                found = 0;
                break;
            }
        }
    }
    if (elf != NULL)
        elf_end(elf);
    close(fd);
    return found;
}

/*
 * Symbol sizes are respected: the first byte after a function (alignment
 * padding here; in a stripped object, possibly a static function) is not
 * credited to it.
 */
static void
test_symbolize_respects_symbol_size(void **state)
{
    (void)state;
    uint64_t value = 0, size = 0;
    assert_int_equal(own_symbol("hp_test_sized_function", &value, &size), 0);
    assert_true(size > 0 && size < 64);
    uintptr_t start = (uintptr_t)&hp_test_sized_function;
    if (size % 16 == 0)
        skip(); /* no padding to probe */
    struct copy c;
    lookup_copy(start + size - 1, &c);
    assert_int_equal(c.n, 1);
    assert_string_equal(c.f[0].func, "hp_test_sized_function");
    lookup_copy(start + size, &c);
    assert_int_equal(c.n, 0);
    assert_int_equal(hp_test_sized_function(1), 2);
    (void)value;
}

static void
test_symbolize_name(void **state)
{
    (void)state;
    char buf[128];
    /* Truncated to the buffer, still terminated. */
    char small[8];
    hp_symbolize_begin();
    int rc = hp_symbolize_name((uintptr_t)&hp_test_named_function + 2, buf,
                               sizeof(buf));
    int rc_small = hp_symbolize_name((uintptr_t)&hp_test_named_function + 2,
                                     small, sizeof(small));
    hp_symbolize_end();
    assert_int_equal(rc, 0);
    assert_string_equal(buf, "hp_test_named_function");
    assert_int_equal(rc_small, 0);
    assert_string_equal(small, "hp_test");
}

static void
test_symbolize_cache_is_stable(void **state)
{
    (void)state;
    struct hp_symres a, b;
    hp_symbolize_begin();
    hp_symbolize_lookup((uintptr_t)&static_helper_function + 1, &a);
    hp_symbolize_lookup((uintptr_t)&static_helper_function + 1, &b);
    hp_symbolize_end();
    assert_ptr_equal(a.frames, b.frames);
}

/* libdw's state lives for one session (an export) and is made again for
 * the next miss; answers cached in between stay, and the symbol indexes of
 * the dropped modules are freed with them (LeakSanitizer checks that in
 * the ASan build). */
static void
test_symbolize_sessions_reopen_modules(void **state)
{
    (void)state;
    for (int round = 0; round < 3; round++) {
        struct copy c;
        /* A new address each round: a miss that needs libdw again. */
        lookup_copy((uintptr_t)&hp_test_named_function + 3 + (uintptr_t)round, &c);
        assert_int_equal(c.n, 1);
        assert_string_equal(c.f[0].func, "hp_test_named_function");
        /* An address cached in an earlier round still answers, with file
         * and line, without libdw. */
        uintptr_t ra = hp_test_line_function();
        lookup_copy(ra - 1, &c);
        assert_string_equal(c.f[0].func, "hp_test_line_function");
        assert_string_equal(basename_of(c.f[0].file), "test_symbolize.c");
        assert_int_equal(c.f[0].line, call_line);
        /* A static function of this object and one of libc, both misses. */
        lookup_copy((uintptr_t)&static_helper_function + 2 + (uintptr_t)round, &c);
        assert_string_equal(c.f[0].func, "static_helper_function");
        /* (its name depends on glibc's build: close, __close, ...) */
        lookup_copy((uintptr_t)&close + 1 + (uintptr_t)round, &c);
        assert_true(c.n >= 1);
        assert_true(strstr(c.f[0].func, "close") != NULL);
    }
}

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define HP_TEST_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define HP_TEST_SANITIZED 1
#endif
#endif

/*
 * Under an address-space limit with less than 8 MiB to spare, a session
 * never opens modules (libdw and libelf abort or crash in some of their
 * out-of-memory paths): a new address comes back unnamed, and is named
 * once memory is back. Not under the sanitizers, whose allocators abort
 * on a failed allocation.
 */
static void
test_symbolize_low_memory_cache_only(void **state)
{
    (void)state;
#ifdef HP_TEST_SANITIZED
    skip();
#else
    long pages = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    assert_non_null(f);
    assert_int_equal(fscanf(f, "%ld", &pages), 1);
    fclose(f);
    struct rlimit old, low;
    assert_int_equal(getrlimit(RLIMIT_AS, &old), 0);
    low = old;
    low.rlim_cur = (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE) + (2u << 20);
    uintptr_t addr = (uintptr_t)&static_helper_function + 7;
    struct hp_symres r;
    hp_symbolize_postfork_child(); /* a fresh cache: addr is a miss */
    assert_int_equal(setrlimit(RLIMIT_AS, &low), 0);
    /* qemu-user (scripts/cross.sh) accepts but does not enforce
     * RLIMIT_AS: without a limit there is nothing to test. */
    void *probe = mmap(NULL, 8u << 20, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS,
                       -1, 0);
    if (probe != MAP_FAILED) {
        munmap(probe, 8u << 20);
        assert_int_equal(setrlimit(RLIMIT_AS, &old), 0);
        skip();
    }
    hp_symbolize_begin();
    hp_symbolize_lookup(addr, &r);
    uint32_t n_low = r.nframes;
    hp_symbolize_end();
    assert_int_equal(setrlimit(RLIMIT_AS, &old), 0);
    assert_int_equal(n_low, 0);
    hp_symbolize_begin();
    hp_symbolize_lookup(addr, &r);
    assert_true(r.nframes >= 1);
    assert_string_equal(r.frames[r.nframes - 1].func,
                        "static_helper_function");
    hp_symbolize_end();
#endif
}

static void
test_symbolize_postfork_child_rebuilds(void **state)
{
    (void)state;
    hp_symbolize_postfork_child();
    char buf[128];
    hp_symbolize_begin();
    int rc = hp_symbolize_name((uintptr_t)&hp_test_named_function + 1, buf,
                               sizeof(buf));
    hp_symbolize_end();
    assert_int_equal(rc, 0);
    assert_string_equal(buf, "hp_test_named_function");
}

static void
test_symbolize_utf8_sanitize(void **state)
{
    (void)state;
    char ok[] = "caf\xc3\xa9_\xe2\x82\xac_\xf0\x9f\x98\x80";
    assert_true(hp_utf8_valid(ok));
    hp_utf8_sanitize(ok);
    assert_string_equal(ok, "caf\xc3\xa9_\xe2\x82\xac_\xf0\x9f\x98\x80");

    char bad[] = "a\xff" "b\xc3" "c\xc0\xaf" "d\xed\xa0\x80" "e\x80";
    assert_false(hp_utf8_valid(bad));
    hp_utf8_sanitize(bad);
    assert_true(hp_utf8_valid(bad));
    assert_string_equal(bad, "a?b?c??d???e?");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_symbolize_named_function),
        cmocka_unit_test(test_symbolize_static_function),
        cmocka_unit_test(test_symbolize_file_and_line),
        cmocka_unit_test(test_symbolize_inline_frames),
        cmocka_unit_test(test_symbolize_where),
        cmocka_unit_test(test_symbolize_unmapped_not_found),
        cmocka_unit_test(test_symbolize_respects_symbol_size),
        cmocka_unit_test(test_symbolize_name),
        cmocka_unit_test(test_symbolize_cache_is_stable),
        cmocka_unit_test(test_symbolize_sessions_reopen_modules),
        cmocka_unit_test(test_symbolize_postfork_child_rebuilds),
        cmocka_unit_test(test_symbolize_low_memory_cache_only),
        cmocka_unit_test(test_symbolize_utf8_sanitize),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
