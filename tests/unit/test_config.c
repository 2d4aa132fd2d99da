/*
 * Unit tests of configuration parsing (src/config.c): every HEAPPROF_*
 * variable with valid and invalid values through hp_settings_apply_env()
 * on a made-up environment, with stderr captured (a pipe dup2'ed over fd 2)
 * to check that each bad value, and each unknown HEAPPROF_* name, gives
 * exactly one line naming the variable while the previous value is kept;
 * the strict parsers on their own; and hp_settings_from_config().
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "heapprof.h"
#include "internal.h"

/* ------------------------------------------------------ stderr capture */

struct capture {
    int saved;
    int rd;
    char buf[8192];
    size_t len;
};

static void
capture_begin(struct capture *c)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    fflush(stderr);
    c->saved = dup(2);
    assert_true(c->saved >= 0);
    assert_true(dup2(p[1], 2) == 2);
    close(p[1]);
    c->rd = p[0];
    c->len = 0;
}

static void
capture_end(struct capture *c)
{
    assert_true(dup2(c->saved, 2) == 2); /* closes the pipe's last writer */
    close(c->saved);
    for (;;) {
        ssize_t n = read(c->rd, c->buf + c->len, sizeof c->buf - 1 - c->len);
        if (n <= 0)
            break;
        c->len += (size_t)n;
    }
    close(c->rd);
    c->buf[c->len] = '\0';
}

static int
count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* Run hp_settings_apply_env on a one-variable environment (plus unrelated
 * entries around it, which must be ignored). */
static int
apply_one_var(struct hp_settings *s, const char *kv, struct capture *c)
{
    char *env[] = {"PATH=/usr/bin:/bin", (char *)kv, "HOME=/root",
                   "HEAPPROFILE=/tmp/not-ours", NULL};
    capture_begin(c);
    int bad = hp_settings_apply_env(s, env);
    capture_end(c);
    return bad;
}

/* A good value: no message, no bad count. */
static struct hp_settings
expect_ok(const char *kv)
{
    struct hp_settings s;
    struct capture c;
    hp_settings_defaults(&s);
    int bad = apply_one_var(&s, kv, &c);
    if (bad != 0 || c.len != 0)
        fail_msg("%s: bad=%d stderr='%s'", kv, bad, c.buf);
    return s;
}

/* A bad value: bad count 1, exactly one line that names the variable,
 * and the settings are exactly the defaults. */
static void
expect_bad(const char *kv)
{
    struct hp_settings s, d;
    struct capture c;
    hp_settings_defaults(&s);
    hp_settings_defaults(&d);
    int bad = apply_one_var(&s, kv, &c);
    char name[128];
    size_t nl = strcspn(kv, "=");
    assert_true(nl < sizeof name);
    memcpy(name, kv, nl);
    name[nl] = '\0';
    if (bad != 1 || count_lines(c.buf) != 1 || strstr(c.buf, name) == NULL ||
        strncmp(c.buf, "heapprof", 8) != 0 || c.buf[c.len - 1] != '\n')
        fail_msg("%s: bad=%d stderr='%s'", kv, bad, c.buf);
    if (memcmp(&s, &d, sizeof s) != 0)
        fail_msg("%s: a bad value changed the settings", kv);
    print_message("%-40s -> %s", kv, c.buf);
}

/* --------------------------------------------------------------- tests */

static void
test_config_rate(void **state)
{
    (void)state;
    assert_int_equal(expect_ok("HEAPPROF_RATE=0").rate, 0);
    assert_int_equal(expect_ok("HEAPPROF_RATE=1").rate, 1);
    assert_int_equal(expect_ok("HEAPPROF_RATE=4096").rate, 4096);
    assert_int_equal(expect_ok("HEAPPROF_RATE=1k").rate, 1024);
    assert_int_equal(expect_ok("HEAPPROF_RATE=1K").rate, 1024);
    assert_int_equal(expect_ok("HEAPPROF_RATE=4M").rate, 4u << 20);
    assert_int_equal(expect_ok("HEAPPROF_RATE=4m").rate, 4u << 20);
    assert_int_equal(expect_ok("HEAPPROF_RATE=2g").rate, 2ull << 30);
    assert_int_equal(expect_ok("HEAPPROF_RATE=4KiB").rate, 4096);
    assert_int_equal(expect_ok("HEAPPROF_RATE=4kb").rate, 4096);
    assert_int_equal(expect_ok("HEAPPROF_RATE=1024G").rate, 1ull << 40);
    assert_int_equal(expect_ok("HEAPPROF_RATE=1099511627776").rate, 1ull << 40);

    expect_bad("HEAPPROF_RATE=banana");
    expect_bad("HEAPPROF_RATE=-3");
    expect_bad("HEAPPROF_RATE=1.5");
    expect_bad("HEAPPROF_RATE=");
    expect_bad("HEAPPROF_RATE=99999999999999999999999");
    expect_bad("HEAPPROF_RATE=18446744073709551616");
    expect_bad("HEAPPROF_RATE=17179869184G"); /* 2^64 after the shift */
    expect_bad("HEAPPROF_RATE=1099511627777"); /* above the 2^40 maximum */
    expect_bad("HEAPPROF_RATE=1025G");
    expect_bad("HEAPPROF_RATE= 1");
    expect_bad("HEAPPROF_RATE=1 ");
    expect_bad("HEAPPROF_RATE=+1");
    expect_bad("HEAPPROF_RATE=0x10");
    expect_bad("HEAPPROF_RATE=1kk");
    expect_bad("HEAPPROF_RATE=k");
    expect_bad("HEAPPROF_RATE=1T");
    expect_bad("HEAPPROF_RATE=1e6");
}

static void
test_config_stack_depth(void **state)
{
    (void)state;
    assert_int_equal(expect_ok("HEAPPROF_STACK_DEPTH=64").stack_depth, 64);
    assert_int_equal(expect_ok("HEAPPROF_STACK_DEPTH=1").stack_depth, 1);
    assert_int_equal(expect_ok("HEAPPROF_STACK_DEPTH=256").stack_depth, 256);
    assert_int_equal(expect_ok("HEAPPROF_STACK_DEPTH=17").stack_depth, 17);
    expect_bad("HEAPPROF_STACK_DEPTH=0");
    expect_bad("HEAPPROF_STACK_DEPTH=257");
    expect_bad("HEAPPROF_STACK_DEPTH=-1");
    expect_bad("HEAPPROF_STACK_DEPTH=");
    expect_bad("HEAPPROF_STACK_DEPTH=1k"); /* a count takes no suffix */
    expect_bad("HEAPPROF_STACK_DEPTH=4294967360"); /* 2^32 + 64 */
    expect_bad("HEAPPROF_STACK_DEPTH=deep");
}

static void
test_config_max_memory(void **state)
{
    (void)state;
    assert_int_equal(expect_ok("HEAPPROF_MAX_MEMORY=1M").max_memory, 1u << 20);
    assert_int_equal(expect_ok("HEAPPROF_MAX_MEMORY=256m").max_memory,
                     256u << 20);
    assert_int_equal(expect_ok("HEAPPROF_MAX_MEMORY=2G").max_memory, 2ull << 30);
    expect_bad("HEAPPROF_MAX_MEMORY=lots");
    /* Below the 1 MiB minimum: the minimum, with one line (not the
     * 64 MiB default). */
    static const char *const small[] = {"HEAPPROF_MAX_MEMORY=1k",
                                        "HEAPPROF_MAX_MEMORY=64k",
                                        "HEAPPROF_MAX_MEMORY=0",
                                        "HEAPPROF_MAX_MEMORY=1048575"};
    for (size_t i = 0; i < sizeof small / sizeof small[0]; i++) {
        struct hp_settings s;
        struct capture c;
        hp_settings_defaults(&s);
        int bad = apply_one_var(&s, small[i], &c);
        assert_int_equal(bad, 1);
        assert_int_equal(s.max_memory, 1u << 20);
        assert_int_equal(count_lines(c.buf), 1);
        assert_non_null(strstr(c.buf, "below the minimum; using 1048576"));
    }
}

static void
expect_http_ok(const char *addr)
{
    char kv[512];
    snprintf(kv, sizeof kv, "HEAPPROF_HTTP=%s", addr);
    struct hp_settings s = expect_ok(kv);
    assert_string_equal(s.http, addr);
    const char *why = NULL;
    assert_int_equal(hp_parse_http_addr(addr, NULL, &why), 0);
}

static void
expect_http_bad(const char *addr)
{
    char kv[512];
    snprintf(kv, sizeof kv, "HEAPPROF_HTTP=%s", addr);
    expect_bad(kv);
    const char *why = NULL;
    assert_int_equal(hp_parse_http_addr(addr, NULL, &why), -1);
    assert_non_null(why);
    assert_true(why[0] != '\0');
}

static void
test_config_http_addr_parts(void **state)
{
    (void)state;
    struct hp_addr a;
    const char *why = NULL;
    assert_int_equal(hp_parse_http_addr("127.0.0.1:6060", &a, &why), 0);
    assert_false(a.is_unix);
    assert_false(a.is_v6);
    assert_string_equal(a.host, "127.0.0.1");
    assert_int_equal(a.port, 6060);
    assert_int_equal(hp_parse_http_addr("[::1]:65535", &a, &why), 0);
    assert_true(a.is_v6);
    assert_string_equal(a.host, "::1");
    assert_int_equal(a.port, 65535);
    assert_int_equal(hp_parse_http_addr("unix:/tmp/hp.sock", &a, &why), 0);
    assert_true(a.is_unix);
    assert_string_equal(a.host, "/tmp/hp.sock");
    assert_int_equal(hp_parse_http_addr("localhost:1", &a, &why), 0);
    assert_string_equal(a.host, "localhost");
    assert_int_equal(a.port, 1);
}

static void
test_config_http(void **state)
{
    (void)state;
    expect_http_ok("127.0.0.1:6060");
    expect_http_ok("[::1]:6060");
    expect_http_ok("unix:/tmp/x");
    expect_http_ok("localhost:6060");
    expect_http_ok("0.0.0.0:1");
    expect_http_ok("127.0.0.1:65535");
    expect_http_ok("[fe80::1%eth0]:8080");

    expect_http_bad("::1:6060");
    expect_http_bad("host");
    /* Port 0 (a port the kernel picks) is refused by the one parser the
     * option, heapprof_start and the listener share. */
    expect_http_bad("127.0.0.1:0");
    expect_http_bad("[::1]:0");
    expect_http_bad(":6060");
    expect_http_bad("127.0.0.1:70000");
    expect_http_bad("127.0.0.1:65536");
    expect_http_bad("127.0.0.1:");
    expect_http_bad("127.0.0.1:60a");
    expect_http_bad("127.0.0.1:-1");
    expect_http_bad("");
    expect_http_bad("unix:relative/path");
    expect_http_bad("unix:");
    expect_http_bad("[::1]6060");
    expect_http_bad("[::1]");
    expect_http_bad("[]:6060");
    expect_http_bad("[::1:6060");

    /* A unix socket path has 108 bytes in sockaddr_un (107 + NUL). */
    char path[200];
    memset(path, 'a', sizeof path);
    memcpy(path, "unix:/", 6);
    path[5 + 107] = '\0';
    expect_http_ok(path);
    path[5 + 107] = 'a';
    path[5 + 108] = '\0';
    expect_http_bad(path);
}

static void
test_config_snapshots(void **state)
{
    (void)state;
    assert_string_equal(expect_ok("HEAPPROF_SNAPSHOT_DIR=/tmp/snaps").snapshot_dir,
                        "/tmp/snaps");
    expect_bad("HEAPPROF_SNAPSHOT_DIR=");
    static char longdir[HP_PATH_MAX + 64];
    memcpy(longdir, "HEAPPROF_SNAPSHOT_DIR=/", 23);
    memset(longdir + 23, 'd', HP_PATH_MAX + 10);
    expect_bad(longdir);

    assert_int_equal(expect_ok("HEAPPROF_SNAPSHOT_INTERVAL=1").snapshot_interval,
                     1);
    assert_int_equal(expect_ok("HEAPPROF_SNAPSHOT_INTERVAL=3600").snapshot_interval,
                     3600);
    expect_bad("HEAPPROF_SNAPSHOT_INTERVAL=0");
    expect_bad("HEAPPROF_SNAPSHOT_INTERVAL=1m");
    expect_bad("HEAPPROF_SNAPSHOT_INTERVAL=often");
    expect_bad("HEAPPROF_SNAPSHOT_INTERVAL=");

    assert_int_equal(expect_ok("HEAPPROF_SNAPSHOT_KEEP=5").snapshot_keep, 5);
    assert_int_equal(expect_ok("HEAPPROF_SNAPSHOT_KEEP=1").snapshot_keep, 1);
    expect_bad("HEAPPROF_SNAPSHOT_KEEP=0");
    expect_bad("HEAPPROF_SNAPSHOT_KEEP=all");
}

static void
test_config_unknown_and_ignored_names(void **state)
{
    (void)state;
    expect_bad("HEAPPROF_RATEE=4096");
    expect_bad("HEAPPROF_=1");
    expect_bad("HEAPPROF_rate=4096"); /* names are case-sensitive */
    expect_bad("HEAPPROF_CONFIG_NO_ENVX=1");
    expect_bad("HEAPPROF_CONFIG_NO_EN=1");
    /* Read elsewhere: no warning. */
    expect_ok("HEAPPROF_CONFIG_NO_ENV=1");
    expect_ok("HEAPPROF_LIB=/opt/heapprof/lib/libheapprof.so"); /* launcher */
    /* Not ours at all: silently ignored. */
    expect_ok("HEAPPROFRATE=1");
    expect_ok("MY_HEAPPROF_RATE=banana");
    expect_ok("HEAPPROF_RATE"); /* no '=': not a variable */

    /* A NULL environment is fine. */
    struct hp_settings s;
    hp_settings_defaults(&s);
    assert_int_equal(hp_settings_apply_env(&s, NULL), 0);
}

/* Several bad values: one line each, good ones still applied, and a bad
 * value keeps the previous value (here an earlier good one). */
static void
test_config_many_values_one_line_each(void **state)
{
    (void)state;
    char *env[] = {"HEAPPROF_RATE=4096",
                   "HEAPPROF_STACK_DEPTH=0",
                   "HEAPPROF_HTTP=host",
                   "HEAPPROF_RATE=banana",
                   "HEAPPROF_SNAPSHOT_KEEP=7",
                   "HEAPPROF_RATEE=1",
                   NULL};
    struct hp_settings s;
    struct capture c;
    hp_settings_defaults(&s);
    capture_begin(&c);
    int bad = hp_settings_apply_env(&s, env);
    capture_end(&c);
    print_message("%s", c.buf);
    assert_int_equal(bad, 4);
    assert_int_equal(count_lines(c.buf), 4);
    assert_int_equal(s.rate, 4096);
    assert_int_equal(s.stack_depth, HEAPPROF_DEFAULT_STACK_DEPTH);
    assert_string_equal(s.http, "");
    assert_int_equal(s.snapshot_keep, 7);
    /* Lines in order, each naming its variable. */
    const char *names[] = {"HEAPPROF_STACK_DEPTH", "HEAPPROF_HTTP",
                           "HEAPPROF_RATE", "HEAPPROF_RATEE"};
    const char *line = c.buf;
    for (int i = 0; i < 4; i++) {
        const char *end = strchr(line, '\n');
        assert_non_null(end);
        char one[512];
        size_t n = (size_t)(end - line);
        assert_true(n < sizeof one);
        memcpy(one, line, n);
        one[n] = '\0';
        assert_non_null(strstr(one, names[i]));
        line = end + 1;
    }
    /* The message for the bad rate says which value was kept. */
    assert_non_null(strstr(c.buf, "banana"));
    assert_non_null(strstr(c.buf, "4096"));
}

static void
test_config_parse_u64(void **state)
{
    (void)state;
    uint64_t v = 0;
    const char *why = NULL;
    assert_int_equal(hp_parse_u64("18446744073709551615", 0, UINT64_MAX, false,
                                  &v, &why), 0);
    assert_true(v == UINT64_MAX);
    assert_int_equal(hp_parse_u64("18446744073709551616", 0, UINT64_MAX, false,
                                  &v, &why), -1);
    assert_int_equal(hp_parse_u64("16", 0, 100, false, &v, &why), 0);
    assert_int_equal(v, 16);
    /* Without size_suffix, a suffix is an error. */
    why = NULL;
    assert_int_equal(hp_parse_u64("16k", 0, UINT64_MAX, false, &v, &why), -1);
    assert_non_null(why);
    assert_int_equal(hp_parse_u64("16k", 0, UINT64_MAX, true, &v, &why), 0);
    assert_int_equal(v, 16384);
    /* Bounds are inclusive. */
    assert_int_equal(hp_parse_u64("5", 5, 5, false, &v, &why), 0);
    assert_int_equal(hp_parse_u64("4", 5, 9, false, &v, &why), -1);
    assert_int_equal(hp_parse_u64("10", 5, 9, false, &v, &why), -1);
    /* A failure leaves *out alone. */
    v = 1234;
    assert_int_equal(hp_parse_u64("x", 0, 9, false, &v, &why), -1);
    assert_int_equal(v, 1234);
    assert_int_equal(hp_parse_u64(NULL, 0, 9, false, &v, &why), -1);
    assert_int_equal(hp_parse_u64("", 0, 9, false, &v, &why), -1);
}

static void
test_config_from_struct(void **state)
{
    (void)state;
    struct hp_settings s, d;
    hp_settings_defaults(&d);

    /* NULL: nothing changes. */
    hp_settings_defaults(&s);
    assert_int_equal(hp_settings_from_config(&s, NULL), HEAPPROF_OK);
    assert_memory_equal(&s, &d, sizeof s);

    /* heapprof_config_init() gives exactly the compiled defaults. */
    struct heapprof_config cfg;
    heapprof_config_init(&cfg);
    hp_settings_defaults(&s);
    assert_int_equal(hp_settings_from_config(&s, &cfg), HEAPPROF_OK);
    assert_int_equal(s.rate, d.rate);
    assert_int_equal(s.stack_depth, d.stack_depth);
    assert_int_equal(s.max_memory, d.max_memory);
    assert_string_equal(s.http, "");
    assert_string_equal(s.snapshot_dir, "");
    assert_int_equal(s.snapshot_interval, d.snapshot_interval);
    assert_int_equal(s.snapshot_keep, d.snapshot_keep);

    /* Values are copied; strings are owned copies. */
    char http[] = "127.0.0.1:7070";
    char dir[] = "/tmp/hp";
    cfg.rate = 1;
    cfg.stack_depth = 3;
    cfg.http = http;
    cfg.snapshot_dir = dir;
    cfg.snapshot_interval = 5;
    cfg.snapshot_keep = 2;
    assert_int_equal(hp_settings_from_config(&s, &cfg), HEAPPROF_OK);
    http[0] = dir[0] = 'X';
    assert_int_equal(s.rate, 1);
    assert_int_equal(s.stack_depth, 3);
    assert_string_equal(s.http, "127.0.0.1:7070");
    assert_string_equal(s.snapshot_dir, "/tmp/hp");
    assert_int_equal(s.snapshot_interval, 5);
    assert_int_equal(s.snapshot_keep, 2);

    /* Invalid structs: EINVAL and *s untouched. */
    struct {
        const char *what;
        struct heapprof_config c;
    } bad[8];
    for (int i = 0; i < 8; i++)
        heapprof_config_init(&bad[i].c);
    bad[0].what = "size 0";                bad[0].c.size = 0;
    bad[1].what = "stack_depth 0";         bad[1].c.stack_depth = 0;
    bad[2].what = "stack_depth 257";       bad[2].c.stack_depth = 257;
    bad[3].what = "rate 2^40 + 1";         bad[3].c.rate = (1ull << 40) + 1;
    bad[4].what = "max_memory 1000";       bad[4].c.max_memory = 1000;
    bad[5].what = "http host";             bad[5].c.http = "host";
    bad[6].what = "http ::1:6060";         bad[6].c.http = "::1:6060";
    bad[7].what = "snapshot_dir empty";    bad[7].c.snapshot_dir = "";
    for (int i = 0; i < 8; i++) {
        hp_settings_defaults(&s);
        int rc = hp_settings_from_config(&s, &bad[i].c);
        if (rc != HEAPPROF_EINVAL)
            fail_msg("%s: rc %d", bad[i].what, rc);
        assert_memory_equal(&s, &d, sizeof s);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_rate),
        cmocka_unit_test(test_config_stack_depth),
        cmocka_unit_test(test_config_max_memory),
        cmocka_unit_test(test_config_http),
        cmocka_unit_test(test_config_http_addr_parts),
        cmocka_unit_test(test_config_snapshots),
        cmocka_unit_test(test_config_unknown_and_ignored_names),
        cmocka_unit_test(test_config_many_values_one_line_each),
        cmocka_unit_test(test_config_parse_u64),
        cmocka_unit_test(test_config_from_struct),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
