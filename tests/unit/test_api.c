/*
 * Unit tests of the public API in include/heapprof.h as a linking program
 * sees it: error names and texts, version, heapprof_config_init, rate
 * control, the start/stop/is_running state machine, and the output calls
 * (Go's n/ok contract of heapprof_write_buffer, write_fd, the atomic
 * write_path and a failing sink), with the gzip'd profile.proto decoded
 * to check that it is one.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "heapprof.h"
#include "profile.pb-c.h"

/* ----------------------------------------------------------- errors */

struct code {
    int value;
    const char *name;
    const char *text;
};

static const struct code codes[] = {
#define XX(name, value, text) {value, "HEAPPROF_" #name, text},
    HEAPPROF_ERR_MAP(XX)
#undef XX
};
#define NCODES (sizeof codes / sizeof codes[0])

static void
test_api_errors_every_code(void **state)
{
    (void)state;
    /* The codes SPEC/STYLE promise, with their fixed numbers. */
    assert_int_equal(HEAPPROF_OK, 0);
    assert_int_equal(HEAPPROF_EINVAL, -1);
    assert_int_equal(HEAPPROF_ENOMEM, -2);
    assert_int_equal(HEAPPROF_EIO, -3);
    assert_int_equal(HEAPPROF_ESTATE, -4);
    assert_int_equal(HEAPPROF_ERANGE, -5);
    assert_int_equal(HEAPPROF_EUNSUPPORTED, -6);
    assert_int_equal(HEAPPROF_EBUSY, -7);
    assert_int_equal(HEAPPROF_EPROTO, -8);
    assert_true(NCODES >= 9);
    for (size_t i = 0; i < NCODES; i++) {
        const char *t = heapprof_strerror(codes[i].value);
        const char *n = heapprof_err_name(codes[i].value);
        assert_non_null(t);
        assert_non_null(n);
        assert_string_equal(t, codes[i].text);
        assert_string_equal(n, codes[i].name);
        assert_true(t[0] != '\0');
        assert_null(strchr(t, '\n'));
        /* Failures are negative, all distinct, and none is the sentinel. */
        assert_true(codes[i].value <= 0);
        assert_true(codes[i].value > HEAPPROF_ERR_LAST);
        for (size_t j = 0; j < i; j++) {
            assert_int_not_equal(codes[i].value, codes[j].value);
            assert_string_not_equal(heapprof_strerror(codes[j].value), t);
            assert_string_not_equal(heapprof_err_name(codes[j].value), n);
        }
    }
}

static void
test_api_errors_unknown_code(void **state)
{
    (void)state;
    const int unknown[] = {1, 2, HEAPPROF_ERR_LAST, -100, INT_MIN, INT_MAX};
    for (size_t u = 0; u < sizeof unknown / sizeof unknown[0]; u++) {
        const char *t = heapprof_strerror(unknown[u]);
        const char *n = heapprof_err_name(unknown[u]);
        assert_non_null(t);
        assert_non_null(n);
        assert_true(t[0] != '\0');
        assert_true(n[0] != '\0');
        for (size_t i = 0; i < NCODES; i++) {
            assert_string_not_equal(t, codes[i].text);
            assert_string_not_equal(n, codes[i].name);
        }
    }
}

static void
test_api_version(void **state)
{
    (void)state;
    assert_int_equal(heapprof_version(), HEAPPROF_VERSION_NUMBER);
    char want[32];
    snprintf(want, sizeof want, "%d.%d.%d", HEAPPROF_VERSION_MAJOR,
             HEAPPROF_VERSION_MINOR, HEAPPROF_VERSION_PATCH);
    assert_string_equal(heapprof_version_string(), want);
}

/* ----------------------------------------------------------- config */

static void
test_api_config_init(void **state)
{
    (void)state;
    struct heapprof_config cfg;
    memset(&cfg, 0xA5, sizeof cfg);
    heapprof_config_init(&cfg);
    assert_int_equal(cfg.size, sizeof cfg);
    assert_int_equal(cfg.flags, 0);
    assert_int_equal(cfg.rate, HEAPPROF_DEFAULT_RATE);
    assert_int_equal(cfg.rate, 524288);
    assert_int_equal(cfg.stack_depth, HEAPPROF_DEFAULT_STACK_DEPTH);
    assert_int_equal(cfg.stack_depth, 64);
    assert_int_equal(cfg.max_memory, 64u << 20);
    assert_null(cfg.http);
    assert_null(cfg.snapshot_dir);
    assert_int_equal(cfg.snapshot_interval, 60);
    assert_int_equal(cfg.snapshot_keep, 10);
    heapprof_config_init(NULL); /* harmless */
}

/* ------------------------------------------------------ rate control */

static void
test_api_set_get_rate(void **state)
{
    (void)state;
    uint64_t saved = heapprof_get_rate();
    assert_int_equal(heapprof_set_rate(4096), HEAPPROF_OK);
    assert_int_equal(heapprof_get_rate(), 4096);
    assert_int_equal(heapprof_set_rate(1), HEAPPROF_OK);
    assert_int_equal(heapprof_get_rate(), 1);
    assert_int_equal(heapprof_set_rate(1ull << 40), HEAPPROF_OK);
    assert_int_equal(heapprof_get_rate(), 1ull << 40);
    /* Out of range: refused, rate unchanged. */
    assert_int_equal(heapprof_set_rate((1ull << 40) + 1), HEAPPROF_EINVAL);
    assert_int_equal(heapprof_set_rate(UINT64_MAX), HEAPPROF_EINVAL);
    assert_int_equal(heapprof_get_rate(), 1ull << 40);
    /* 0 = off: not running; back on: running. */
    assert_int_equal(heapprof_set_rate(0), HEAPPROF_OK);
    assert_int_equal(heapprof_get_rate(), 0);
    assert_false(heapprof_is_running());
    assert_int_equal(heapprof_set_rate(524288), HEAPPROF_OK);
    assert_true(heapprof_is_running());
    assert_int_equal(heapprof_set_rate(saved), HEAPPROF_OK);
}

/* --------------------------------------------------------- lifecycle */

static void
cfg_with(struct heapprof_config *c, uint64_t rate, unsigned depth)
{
    heapprof_config_init(c);
    c->flags = HEAPPROF_CONFIG_NO_ENV;
    c->rate = rate;
    c->stack_depth = depth;
}

static void
test_api_start_stop_semantics(void **state)
{
    (void)state;
    struct heapprof_config a, b, c;
    cfg_with(&a, 4096, 32);
    cfg_with(&b, 8192, 32);
    cfg_with(&c, 4096, 16);

    /* Profiling is on from load (Go's default). */
    assert_true(heapprof_is_running());

    assert_int_equal(heapprof_start(&a), HEAPPROF_OK);
    assert_true(heapprof_is_running());
    assert_int_equal(heapprof_get_rate(), 4096);
    /* Same config again: OK. An equal copy is equal too. */
    assert_int_equal(heapprof_start(&a), HEAPPROF_OK);
    struct heapprof_config a2;
    cfg_with(&a2, 4096, 32);
    assert_int_equal(heapprof_start(&a2), HEAPPROF_OK);
    /* A different one while running: EBUSY, nothing changes. */
    assert_int_equal(heapprof_start(&b), HEAPPROF_EBUSY);
    assert_int_equal(heapprof_start(&c), HEAPPROF_EBUSY);
    assert_int_equal(heapprof_get_rate(), 4096);
    assert_true(heapprof_is_running());
    /* An invalid config is EINVAL whatever the state. */
    struct heapprof_config bad;
    cfg_with(&bad, 4096, 0);
    assert_int_equal(heapprof_start(&bad), HEAPPROF_EINVAL);
    cfg_with(&bad, 4096, 32);
    bad.http = "host";
    assert_int_equal(heapprof_start(&bad), HEAPPROF_EINVAL);
    cfg_with(&bad, 4096, 32);
    bad.size = 4;
    assert_int_equal(heapprof_start(&bad), HEAPPROF_EINVAL);
    assert_int_equal(heapprof_get_rate(), 4096);

    /* Stop: not running; the rate setting is kept; stop is idempotent. */
    assert_int_equal(heapprof_stop(), HEAPPROF_OK);
    assert_false(heapprof_is_running());
    assert_int_equal(heapprof_stop(), HEAPPROF_OK);
    assert_false(heapprof_is_running());

    /* After stop, a new start with another config works. */
    assert_int_equal(heapprof_start(&b), HEAPPROF_OK);
    assert_true(heapprof_is_running());
    assert_int_equal(heapprof_get_rate(), 8192);
    assert_int_equal(heapprof_start(&a), HEAPPROF_EBUSY);
    assert_int_equal(heapprof_start(&b), HEAPPROF_OK);

    /* Rate 0 in the config: started but not sampling. */
    assert_int_equal(heapprof_stop(), HEAPPROF_OK);
    struct heapprof_config off;
    cfg_with(&off, 0, 32);
    assert_int_equal(heapprof_start(&off), HEAPPROF_OK);
    assert_false(heapprof_is_running());
    assert_int_equal(heapprof_stop(), HEAPPROF_OK);

    /* Leave it running with the defaults for the tests that follow. */
    struct heapprof_config def;
    cfg_with(&def, HEAPPROF_DEFAULT_RATE, HEAPPROF_DEFAULT_STACK_DEPTH);
    assert_int_equal(heapprof_start(&def), HEAPPROF_OK);
    assert_true(heapprof_is_running());
}

/* ------------------------------------------------------------ output */

/* Gunzip data (must be one complete gzip member); returns the size. */
static size_t
gunzip(const unsigned char *in, size_t len, unsigned char **out)
{
    size_t cap = 1 << 20;
    *out = malloc(cap);
    assert_non_null(*out);
    z_stream z;
    memset(&z, 0, sizeof z);
    assert_int_equal(inflateInit2(&z, 15 + 16), Z_OK);
    z.next_in = (unsigned char *)in;
    z.avail_in = (uInt)len;
    int rc;
    do {
        if (z.total_out == cap) {
            cap *= 2;
            *out = realloc(*out, cap);
            assert_non_null(*out);
        }
        z.next_out = *out + z.total_out;
        z.avail_out = (uInt)(cap - z.total_out);
        rc = inflate(&z, Z_FINISH);
    } while (rc == Z_BUF_ERROR && z.avail_out == 0);
    assert_int_equal(rc, Z_STREAM_END);
    assert_int_equal(z.avail_in, 0); /* nothing after the member */
    size_t n = z.total_out;
    inflateEnd(&z);
    return n;
}

static const char *
str(const Perftools__Profiles__Profile *p, int64_t i)
{
    assert_true(i >= 0 && (size_t)i < p->n_string_table);
    return p->string_table[i];
}

/* Decode a written profile and check the shape SPEC fixes. */
static Perftools__Profiles__Profile *
decode_profile(const unsigned char *gz, size_t len, enum heapprof_profile which)
{
    assert_true(len >= 18);
    assert_int_equal(gz[0], 0x1f);
    assert_int_equal(gz[1], 0x8b);
    unsigned char *raw;
    size_t n = gunzip(gz, len, &raw);
    Perftools__Profiles__Profile *p =
        perftools__profiles__profile__unpack(NULL, n, raw);
    free(raw);
    assert_non_null(p);
    assert_true(p->n_string_table >= 1);
    assert_string_equal(p->string_table[0], "");
    static const char *const types[4][2] = {{"alloc_objects", "count"},
                                            {"alloc_space", "bytes"},
                                            {"inuse_objects", "count"},
                                            {"inuse_space", "bytes"}};
    assert_int_equal(p->n_sample_type, 4);
    for (int i = 0; i < 4; i++) {
        assert_string_equal(str(p, p->sample_type[i]->type), types[i][0]);
        assert_string_equal(str(p, p->sample_type[i]->unit), types[i][1]);
    }
    assert_non_null(p->period_type);
    assert_string_equal(str(p, p->period_type->type), "space");
    assert_string_equal(str(p, p->period_type->unit), "bytes");
    assert_int_equal(p->period, (int64_t)heapprof_get_rate());
    /* pprof's default is the last type (inuse_space) when the field is
     * absent, which is what Go writes for heap. */
    const char *def = p->default_sample_type != 0
                          ? str(p, p->default_sample_type)
                          : types[3][0];
    assert_string_equal(def, which == HEAPPROF_PROFILE_HEAP ? "inuse_space"
                                                            : "alloc_space");
    for (size_t i = 0; i < p->n_sample; i++)
        assert_int_equal(p->sample[i]->n_value, 4);
    return p;
}

static void
test_api_write_buffer_n_ok(void **state)
{
    (void)state;
    size_t needed = 0;
    /* cap 0, no buffer: ERANGE and the size. */
    assert_int_equal(heapprof_write_buffer(NULL, 0, &needed,
                                           HEAPPROF_PROFILE_HEAP),
                     HEAPPROF_ERANGE);
    assert_true(needed > 0);

    /* Too small buffers: ERANGE, *needed set, not one byte written. */
    size_t cap = needed + 65536;
    unsigned char *buf = malloc(cap);
    assert_non_null(buf);
    const size_t small[] = {0, 1, 2, 16, needed / 2};
    for (size_t i = 0; i < sizeof small / sizeof small[0]; i++) {
        memset(buf, 0xAA, cap);
        size_t nd = 0;
        assert_int_equal(heapprof_write_buffer(buf, small[i], &nd,
                                               HEAPPROF_PROFILE_HEAP),
                         HEAPPROF_ERANGE);
        assert_true(nd > small[i]);
        for (size_t k = 0; k < cap; k++)
            if (buf[k] != 0xAA)
                fail_msg("byte %zu written with cap %zu", k, small[i]);
    }
    /* needed may be NULL. */
    assert_int_equal(heapprof_write_buffer(buf, 1, NULL,
                                           HEAPPROF_PROFILE_HEAP),
                     HEAPPROF_ERANGE);

    /* Big enough: OK, *needed = bytes written, nothing past them. */
    for (int which = 0; which < 2; which++) {
        memset(buf, 0xAA, cap);
        size_t nd = 0;
        assert_int_equal(heapprof_write_buffer(buf, cap, &nd,
                                               (enum heapprof_profile)which),
                         HEAPPROF_OK);
        assert_true(nd > 0 && nd <= cap);
        assert_int_equal(buf[0], 0x1f);
        assert_int_equal(buf[1], 0x8b);
        for (size_t k = nd; k < cap; k++)
            assert_int_equal(buf[k], 0xAA);
        Perftools__Profiles__Profile *p =
            decode_profile(buf, nd, (enum heapprof_profile)which);
        perftools__profiles__profile__free_unpacked(p, NULL);
    }

    /* Bad arguments. */
    assert_int_equal(heapprof_write_buffer(NULL, 10, &needed,
                                           HEAPPROF_PROFILE_HEAP),
                     HEAPPROF_EINVAL);
    assert_int_equal(heapprof_write_buffer(buf, cap, &needed,
                                           (enum heapprof_profile)7),
                     HEAPPROF_EINVAL);
    free(buf);
}

/* A sampled block shows up in the profile with its size (rate 1). */
static __attribute__((noinline)) void
api_alloc_site(void *p, size_t size)
{
    heapprof_on_alloc(p, size);
    __asm__ volatile("" ::: "memory"); /* not a tail call */
}

static void
test_api_write_buffer_contains_sample(void **state)
{
    (void)state;
    uint64_t saved = heapprof_get_rate();
    assert_int_equal(heapprof_set_rate(1), HEAPPROF_OK);
    /* This thread has not reported an allocation before, so its countdown
     * is drawn at rate 1 and the next one is sampled. */
    void *fake = (void *)(uintptr_t)0x7A5A00000000ull;
    api_alloc_site(fake, 1234567);

    size_t cap = 1 << 22, nd = 0;
    unsigned char *buf = malloc(cap);
    assert_non_null(buf);
    assert_int_equal(heapprof_write_buffer(buf, cap, &nd,
                                           HEAPPROF_PROFILE_HEAP),
                     HEAPPROF_OK);
    Perftools__Profiles__Profile *p =
        decode_profile(buf, nd, HEAPPROF_PROFILE_HEAP);
    int found = 0;
    for (size_t i = 0; i < p->n_sample; i++) {
        const int64_t *v = p->sample[i]->value;
        if (v[3] == 1234567 && v[2] == 1 && v[1] == 1234567 && v[0] == 1)
            found++;
    }
    assert_int_equal(found, 1);
    perftools__profiles__profile__free_unpacked(p, NULL);

    /* Freed: in-use drops to 0, allocated stays. */
    heapprof_on_free(fake);
    assert_int_equal(heapprof_write_buffer(buf, cap, &nd,
                                           HEAPPROF_PROFILE_ALLOCS),
                     HEAPPROF_OK);
    p = decode_profile(buf, nd, HEAPPROF_PROFILE_ALLOCS);
    found = 0;
    for (size_t i = 0; i < p->n_sample; i++) {
        const int64_t *v = p->sample[i]->value;
        if (v[1] == 1234567 && v[0] == 1) {
            found++;
            assert_int_equal(v[2], 0);
            assert_int_equal(v[3], 0);
        }
    }
    assert_int_equal(found, 1);
    perftools__profiles__profile__free_unpacked(p, NULL);
    free(buf);
    assert_int_equal(heapprof_set_rate(saved), HEAPPROF_OK);
}

static void
test_api_write_fd(void **state)
{
    (void)state;
    char path[] = "/tmp/heapprof-test-api-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    assert_int_equal(heapprof_write_fd(fd, HEAPPROF_PROFILE_HEAP), HEAPPROF_OK);
    off_t len = lseek(fd, 0, SEEK_END);
    assert_true(len > 18);
    unsigned char *buf = malloc((size_t)len);
    assert_non_null(buf);
    assert_int_equal(pread(fd, buf, (size_t)len, 0), len);
    Perftools__Profiles__Profile *p =
        decode_profile(buf, (size_t)len, HEAPPROF_PROFILE_HEAP);
    perftools__profiles__profile__free_unpacked(p, NULL);
    free(buf);
    close(fd);
    assert_int_equal(heapprof_write_fd(-1, HEAPPROF_PROFILE_HEAP),
                     HEAPPROF_EINVAL);
    /* A closed descriptor: an I/O error, not a crash. */
    int rc = heapprof_write_fd(fd, HEAPPROF_PROFILE_HEAP);
    assert_true(rc < 0);
}

static int
count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return n;
}

static void
test_api_write_path_atomic(void **state)
{
    (void)state;
    char dir[] = "/tmp/heapprof-test-api-dir-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/heap.pb.gz", dir);
    assert_int_equal(heapprof_write_path(path, HEAPPROF_PROFILE_HEAP),
                     HEAPPROF_OK);
    /* Replacing an existing file works too; only the file is left. */
    assert_int_equal(heapprof_write_path(path, HEAPPROF_PROFILE_ALLOCS),
                     HEAPPROF_OK);
    assert_int_equal(count_entries(dir), 1);
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    unsigned char *buf = malloc((size_t)st.st_size);
    assert_non_null(buf);
    assert_int_equal(read(fd, buf, (size_t)st.st_size), st.st_size);
    close(fd);
    Perftools__Profiles__Profile *p =
        decode_profile(buf, (size_t)st.st_size, HEAPPROF_PROFILE_ALLOCS);
    perftools__profiles__profile__free_unpacked(p, NULL);
    free(buf);

    /* Errors: negative codes, no file left behind. */
    assert_int_equal(heapprof_write_path("", HEAPPROF_PROFILE_HEAP),
                     HEAPPROF_EINVAL);
    assert_int_equal(heapprof_write_path(NULL, HEAPPROF_PROFILE_HEAP),
                     HEAPPROF_EINVAL);
    assert_int_equal(heapprof_write_path(path, (enum heapprof_profile)9),
                     HEAPPROF_EINVAL);
    char missing[300];
    snprintf(missing, sizeof missing, "%s/no/such/dir/heap.pb.gz", dir);
    assert_true(heapprof_write_path(missing, HEAPPROF_PROFILE_HEAP) < 0);
    assert_int_equal(count_entries(dir), 1);

    unlink(path);
    rmdir(dir);
}

static int
failing_write(void *ctx, const void *data, size_t len)
{
    (void)data;
    (void)len;
    ++*(int *)ctx;
    return -1;
}

static int
counting_write(void *ctx, const void *data, size_t len)
{
    (void)data;
    *(size_t *)ctx += len;
    return 0;
}

static void
test_api_write_sink(void **state)
{
    (void)state;
    size_t total = 0;
    struct heapprof_sink ok = {counting_write, &total};
    assert_int_equal(heapprof_write(HEAPPROF_PROFILE_HEAP, &ok), HEAPPROF_OK);
    assert_true(total > 18);

    int calls = 0;
    struct heapprof_sink bad = {failing_write, &calls};
    int rc = heapprof_write(HEAPPROF_PROFILE_HEAP, &bad);
    assert_true(rc < 0);
    assert_true(calls >= 1);

    assert_int_equal(heapprof_write(HEAPPROF_PROFILE_HEAP, NULL),
                     HEAPPROF_EINVAL);
    struct heapprof_sink nofn = {NULL, NULL};
    assert_int_equal(heapprof_write(HEAPPROF_PROFILE_HEAP, &nofn),
                     HEAPPROF_EINVAL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_api_errors_every_code),
        cmocka_unit_test(test_api_errors_unknown_code),
        cmocka_unit_test(test_api_version),
        cmocka_unit_test(test_api_config_init),
        cmocka_unit_test(test_api_set_get_rate),
        cmocka_unit_test(test_api_start_stop_semantics),
        cmocka_unit_test(test_api_write_buffer_n_ok),
        cmocka_unit_test(test_api_write_buffer_contains_sample),
        cmocka_unit_test(test_api_write_fd),
        cmocka_unit_test(test_api_write_path_atomic),
        cmocka_unit_test(test_api_write_sink),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
