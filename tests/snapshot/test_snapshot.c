/*
 * Unit tests of the snapshot module's pure parts (names, rotation) and of
 * what it added elsewhere: the reset of the bucket table's allocation
 * columns, the HEAPPROF_SNAPSHOT_AT_EXIT / _SIGNAL parsers, and
 * heapprof_snapshot_now() without a directory. Linked against the core
 * objects, never the malloc interposer.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "buckets.h"
#include "config.h"
#include "heapprof.h"
#include "snapshot.h"

/* 2024-02-29 13:05:09 UTC */
#define T0 1709211909

static void
test_snapshot_name_contract(void **state)
{
    (void)state;
    char buf[128];
    assert_int_equal(hp_snapshot_name(buf, sizeof buf, 4242, T0, 0),
                     (int)strlen("heap-4242-20240229T130509Z.pb.gz"));
    assert_string_equal(buf, "heap-4242-20240229T130509Z.pb.gz");
    hp_snapshot_name(buf, sizeof buf, 4242, T0, 3);
    assert_string_equal(buf, "heap-4242-20240229T130509Z-3.pb.gz");
    assert_int_equal(hp_snapshot_name(buf, 10, 4242, T0, 0), -1);
}

static void
test_snapshot_parse_name(void **state)
{
    (void)state;
    char ts[17];
    unsigned seq = 99;
    assert_int_equal(hp_snapshot_parse_name(
                         "heap-4242-20240229T130509Z.pb.gz", 4242, ts, &seq),
                     0);
    assert_string_equal(ts, "20240229T130509Z");
    assert_int_equal(seq, 0);
    assert_int_equal(hp_snapshot_parse_name(
                         "heap-4242-20240229T130509Z-12.pb.gz", 4242, ts,
                         &seq),
                     0);
    assert_int_equal(seq, 12);
    /* Anything else is not ours, whatever it looks like. */
    static const char *const not_ours[] = {
        "heap-4243-20240229T130509Z.pb.gz",   /* another pid */
        "heap-42420-20240229T130509Z.pb.gz",  /* pid prefix */
        "heap-04242-20240229T130509Z.pb.gz",  /* leading zero */
        "heap-4242-20240229T130509Z.pb.gz.bak",
        "heap-4242-20240229T130509Z-0.pb.gz", /* seq 0 is unsuffixed */
        "heap-4242-20240229T130509Z-x.pb.gz",
        "heap-4242-2024022T9130509Z.pb.gz",
        "heap-4242-20240229T130509.pb.gz",
        "heap-4242-latest.pb.gz",
        "heap-4242-.pb.gz",
        ".heap-4242-20240229T130509Z.pb.gz.4242.tmp",
        "cpu-4242-20240229T130509Z.pb.gz",
    };
    for (size_t i = 0; i < sizeof not_ours / sizeof not_ours[0]; i++)
        assert_int_equal(hp_snapshot_parse_name(not_ours[i], 4242, ts, &seq),
                         -1);
}

static void
touch(const char *dir, const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("x", f);
    fclose(f);
}

static void
rm_rf(const char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static bool
exists(const char *dir, const char *name)
{
    char path[512];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return stat(path, &st) == 0;
}

static void
test_snapshot_rotate_keeps_newest_own_only(void **state)
{
    (void)state;
    char dir[] = "/tmp/hp-snap-unit-XXXXXX";
    assert_non_null(mkdtemp(dir));
    /* Own files, created out of order; a same-second sequence. */
    static const char *const own[] = {
        "heap-77-20240101T000003Z.pb.gz", "heap-77-20240101T000001Z.pb.gz",
        "heap-77-20240101T000002Z-1.pb.gz", "heap-77-20240101T000002Z.pb.gz",
        "heap-77-20240101T000002Z-2.pb.gz",
    };
    static const char *const foreign[] = {
        "heap-78-20230101T000000Z.pb.gz",           /* another process */
        "heap-77-notes.pb.gz",                      /* not our format */
        "heap-77-20200101T000000Z.pb.gz.keep",      /* not our format */
        "important.txt",
        ".heap-78-20240101T000001Z.pb.gz.78.tmp",   /* another pid's tmp */
        ".heap-77-20240101T000001Z.pb.gz.78.tmp",   /* written by 78 */
        "heap-77-20230101T000000Z.pb.gz",           /* a planted link */
    };
    for (size_t i = 0; i < 5; i++)
        touch(dir, own[i]);
    for (size_t i = 0; i + 1 < sizeof foreign / sizeof foreign[0]; i++)
        touch(dir, foreign[i]);
    char link[600];
    snprintf(link, sizeof link, "%s/heap-77-20230101T000000Z.pb.gz", dir);
    assert_int_equal(symlink("important.txt", link), 0);

    /* The link is older than every file but not ours: rotation leaves it
     * (and what it points to) alone. */
    assert_int_equal(hp_snapshot_rotate(dir, 77, 2), 3);
    assert_true(exists(dir, "heap-77-20240101T000003Z.pb.gz"));
    assert_true(exists(dir, "heap-77-20240101T000002Z-2.pb.gz"));
    assert_false(exists(dir, "heap-77-20240101T000002Z-1.pb.gz"));
    assert_false(exists(dir, "heap-77-20240101T000002Z.pb.gz"));
    assert_false(exists(dir, "heap-77-20240101T000001Z.pb.gz"));
    for (size_t i = 0; i < sizeof foreign / sizeof foreign[0]; i++)
        assert_true(exists(dir, foreign[i]));

    /* Within the limit: nothing removed. */
    assert_int_equal(hp_snapshot_rotate(dir, 77, 5), 0);
    assert_int_equal(hp_snapshot_rotate("/nonexistent/hp-snap", 77, 1), -1);

    rm_rf(dir);
}

static void
test_snapshot_now_without_dir_is_estate(void **state)
{
    (void)state;
    assert_int_equal(heapprof_snapshot_now(), HEAPPROF_ESTATE);
}

static uint64_t
load(const uint64_t *p)
{
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}

static void
test_snapshot_reset_allocs(void **state)
{
    (void)state;
    uintptr_t pcs[3] = {0x1111, 0x2222, 0x3333};
    struct hp_bucket *b = hp_bucket_get(pcs, 3);
    assert_int_not_equal(b->nframes, 0);
    /* 10 objects of 100 B allocated, 4 freed. */
    for (int i = 0; i < 10; i++)
        hp_bucket_add_alloc(b, HP_COUNT_ONE, 100, 100);
    for (int i = 0; i < 4; i++)
        hp_bucket_add_free(b, HP_COUNT_ONE, 100, 100);
    uint64_t seq0 = hp_buckets_reset_seq();
    assert_int_equal(heapprof_reset(), HEAPPROF_OK);
    assert_int_equal(hp_buckets_reset_seq(), seq0 + 2);
    assert_int_equal(load(&b->alloc_count_fx), 6 * HP_COUNT_ONE);
    assert_int_equal(load(&b->alloc_bytes), 600);
    assert_int_equal(load(&b->free_count_fx), 0);
    assert_int_equal(load(&b->free_bytes), 0);
    assert_int_equal(load(&b->alloc_samples), 6);
    assert_int_equal(load(&b->free_samples), 0);
    assert_int_equal(load(&b->alloc_raw_bytes), 600);
    assert_int_equal(load(&b->free_raw_bytes), 0);
    /* A block allocated before the reset and freed after it. */
    hp_bucket_add_free(b, HP_COUNT_ONE, 100, 100);
    assert_int_equal(load(&b->alloc_bytes) - load(&b->free_bytes), 500);
}

static void
test_snapshot_parse_signal(void **state)
{
    (void)state;
    int sig = 0;
    const char *why = NULL;
    assert_int_equal(hp_parse_signal("USR2", &sig, &why), 0);
    assert_int_equal(sig, SIGUSR2);
    assert_int_equal(hp_parse_signal("sigusr1", &sig, &why), 0);
    assert_int_equal(sig, SIGUSR1);
    assert_int_equal(hp_parse_signal("12", &sig, &why), 0);
    assert_int_equal(sig, 12);
    assert_int_equal(hp_parse_signal("SIGRTMIN+3", &sig, &why), 0);
    assert_int_equal(sig, SIGRTMIN + 3);
    assert_int_equal(hp_parse_signal("RTMAX-1", &sig, &why), 0);
    assert_int_equal(sig, SIGRTMAX - 1);
    assert_int_equal(hp_parse_signal("RTMAX", &sig, &why), 0);
    assert_int_equal(sig, SIGRTMAX);
    static const char *const bad[] = {
        "", "KILL", "SIGSTOP", "SEGV", "BUS", "ILL", "FPE", "ABRT", "9",
        "32", "33", "0", "65", "USR3", "RTMIN-1", "RTMIN+", "12x", "-1",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        why = NULL;
        assert_int_equal(hp_parse_signal(bad[i], &sig, &why), -1);
        assert_non_null(why);
    }
}

static void
test_snapshot_env_rows(void **state)
{
    (void)state;
    struct hp_settings s;
    hp_settings_defaults(&s);
    assert_false(s.snapshot_at_exit);
    assert_int_equal(s.snapshot_signal, 0);
    char *env1[] = {"HEAPPROF_SNAPSHOT_AT_EXIT=yes",
                    "HEAPPROF_SNAPSHOT_SIGNAL=SIGUSR1", NULL};
    assert_int_equal(hp_settings_apply_env(&s, env1), 0);
    assert_true(s.snapshot_at_exit);
    assert_int_equal(s.snapshot_signal, SIGUSR1);
    /* Bad values: reported, previous values kept. */
    char *env2[] = {"HEAPPROF_SNAPSHOT_AT_EXIT=maybe",
                    "HEAPPROF_SNAPSHOT_SIGNAL=KILL", NULL};
    assert_int_equal(hp_settings_apply_env(&s, env2), 2);
    assert_true(s.snapshot_at_exit);
    assert_int_equal(s.snapshot_signal, SIGUSR1);
    char *env3[] = {"HEAPPROF_SNAPSHOT_AT_EXIT=OFF", NULL};
    assert_int_equal(hp_settings_apply_env(&s, env3), 0);
    assert_false(s.snapshot_at_exit);
}

struct writer_arg {
    int ok, failed;
};

static void *
api_writer(void *argp)
{
    struct writer_arg *a = argp;
    for (int i = 0; i < 15; i++) {
        if (hp_snapshot_write_now() == HEAPPROF_OK)
            a->ok++;
        else
            a->failed++;
    }
    return NULL;
}

static void *
resetter(void *argp)
{
    (void)argp;
    uintptr_t pcs[2] = {0x5151, 0x5252};
    struct hp_bucket *b = hp_bucket_get(pcs, 2);
    for (int i = 0; i < 2000; i++) {
        hp_bucket_add_alloc(b, HP_COUNT_ONE, 64, 64);
        hp_bucket_add_free(b, HP_COUNT_ONE, 64, 64);
        if (i % 100 == 0)
            heapprof_reset();
    }
    return NULL;
}

/*
 * The writer thread, four API writers and a resetter at once (run it under
 * TSan with -DHEAPPROF_SANITIZE=thread): every call succeeds, every file
 * has its own name, nothing is overwritten.
 */
static void
test_snapshot_concurrent_writers(void **state)
{
    (void)state;
    char dir[] = "/tmp/hp-snap-unit-XXXXXX";
    assert_non_null(mkdtemp(dir));
    snprintf(hp_settings.snapshot_dir, sizeof hp_settings.snapshot_dir, "%s",
             dir);
    hp_settings.snapshot_interval = 1;
    hp_settings.snapshot_keep = 1000;
    hp_snapshot_start();
    pthread_t t[5];
    struct writer_arg args[4] = {{0, 0}};
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, api_writer, &args[i]),
                         0);
    assert_int_equal(pthread_create(&t[4], NULL, resetter, NULL), 0);
    for (int i = 0; i < 5; i++)
        pthread_join(t[i], NULL);
    int ok = 0;
    for (int i = 0; i < 4; i++) {
        assert_int_equal(args[i].failed, 0);
        ok += args[i].ok;
    }
    struct hp_snapshot_stats st;
    hp_snapshot_get_stats(&st);
    assert_true(st.thread_alive);
    assert_int_equal(st.failed, 0);
    assert_true(st.written >= (uint64_t)ok);

    /* Every file is ours, and there is one per successful write (the
     * writer thread may add one while we list). */
    uint64_t before = st.written;
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *de;
    uint64_t files = 0;
    char ts[17];
    unsigned seq;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.') /* ., .., a write in progress */
            continue;
        assert_int_equal(hp_snapshot_parse_name(de->d_name, (int)getpid(),
                                                ts, &seq),
                         0);
        files++;
    }
    closedir(d);
    hp_snapshot_get_stats(&st);
    assert_true(files >= before && files <= st.written);
    assert_true(files >= (uint64_t)ok);

    /* Snapshots off (as a heapprof_start without a directory does); this
     * call waits for a write in progress and then refuses. */
    __atomic_store_n(&hp_settings.snapshot_dir[0], '\0', __ATOMIC_RELAXED);
    assert_int_equal(hp_snapshot_write_now(), HEAPPROF_ESTATE);
    rm_rf(dir);
}

/* ------------------------------------------------------- hostile directory */

static char *
slurp(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(buf, 1, cap - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static bool
is_regular(const char *dir, const char *name)
{
    char path[600];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return lstat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* A directory with room for n own files; "victim" is a secret no write
 * may touch. */
static void
hostile_dir(char *dir, char *victim, size_t vcap)
{
    assert_non_null(mkdtemp(dir));
    chmod(dir, 0777);
    snprintf(victim, vcap, "%s/victim", dir);
    FILE *f = fopen(victim, "w");
    assert_non_null(f);
    fputs("secret", f);
    fclose(f);
    chmod(victim, 0600);
}

static void
plant(const char *dir, const char *name, const char *target)
{
    char path[600];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    assert_int_equal(symlink(target, path), 0);
}

/* Snapshots into a directory where another user planted symlinks under
 * every temporary and final name of the coming seconds (the names the
 * old code used): nothing is written through them, every published
 * snapshot is a regular file. */
static void
test_snapshot_hostile_symlinks(void **state)
{
    (void)state;
    char dir[] = "/tmp/hp-snap-hostile-XXXXXX", victim[600], buf[64];
    hostile_dir(dir, victim, sizeof victim);
    int pid = (int)getpid();
    int64_t now = (int64_t)(hp_now_wall_ns() / 1000000000u);
    for (int64_t t = now; t < now + 4; t++) {
        char name[128], tmp[200];
        hp_snapshot_name(name, sizeof name, pid, t, 0);
        snprintf(tmp, sizeof tmp, ".%s.%d.tmp", name, pid);
        plant(dir, tmp, victim);
        hp_snapshot_name(name, sizeof name, pid, t, 1);
        snprintf(tmp, sizeof tmp, ".%s.%d.tmp", name, pid);
        plant(dir, tmp, victim);
    }
    snprintf(hp_settings.snapshot_dir, sizeof hp_settings.snapshot_dir, "%s",
             dir);
    hp_settings.snapshot_interval = 3600;
    hp_settings.snapshot_keep = 10;
    hp_snapshot_start();
    assert_int_equal(hp_snapshot_write_now(), HEAPPROF_OK);
    assert_int_equal(hp_snapshot_write_now(), HEAPPROF_OK);
    assert_string_equal(slurp(victim, buf, sizeof buf), "secret");

    /* heapprof_write_path: its old temporary name, and the final name
     * itself, are links to the victim. */
    char out[600], tmp[200];
    snprintf(out, sizeof out, "%s/out.pb.gz", dir);
    snprintf(tmp, sizeof tmp, ".out.pb.gz.%d.tmp", pid);
    plant(dir, tmp, victim);
    plant(dir, "out.pb.gz", victim);
    assert_int_equal(heapprof_write_path(out, HEAPPROF_PROFILE_HEAP),
                     HEAPPROF_OK);
    assert_string_equal(slurp(victim, buf, sizeof buf), "secret");
    assert_true(is_regular(dir, "out.pb.gz"));

    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *de;
    int published = 0;
    char ts[17];
    unsigned seq;
    while ((de = readdir(d)) != NULL)
        if (hp_snapshot_parse_name(de->d_name, pid, ts, &seq) == 0) {
            assert_true(is_regular(dir, de->d_name));
            published++;
        }
    closedir(d);
    assert_int_equal(published, 2);
    __atomic_store_n(&hp_settings.snapshot_dir[0], '\0', __ATOMIC_RELAXED);
    rm_rf(dir);
}

/* A pid that is certainly not running: a child that has been reaped. */
static int
dead_pid(void)
{
    pid_t c = fork();
    if (c == 0)
        _exit(0);
    assert_true(c > 0);
    waitpid(c, NULL, 0);
    return (int)c;
}

/* Start-up: hidden temporaries of writers that were killed (both namings)
 * are removed; a live writer's, a link and other files stay; a directory
 * anyone can write gets one line. */
static void
test_snapshot_start_cleans_and_warns(void **state)
{
    (void)state;
    char dir[] = "/tmp/hp-snap-stale-XXXXXX", victim[600];
    hostile_dir(dir, victim, sizeof victim);
    int dead = dead_pid();
    char stale1[128], stale2[128], live[128], link[128];
    snprintf(stale1, sizeof stale1, ".heapprof-%d-0123456789abcdef.tmp", dead);
    snprintf(stale2, sizeof stale2, ".heap-%d-20240101T000000Z.pb.gz.%d.tmp",
             dead, dead);
    snprintf(live, sizeof live, ".heapprof-%d-0123456789abcdef.tmp",
             (int)getppid());
    snprintf(link, sizeof link, ".heapprof-%d-fedcba9876543210.tmp", dead);
    touch(dir, stale1);
    touch(dir, stale2);
    touch(dir, live);
    plant(dir, link, victim);

    char log[600];
    snprintf(log, sizeof log, "%s.log", dir);
    int lfd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int saved = dup(2);
    dup2(lfd, 2);
    snprintf(hp_settings.snapshot_dir, sizeof hp_settings.snapshot_dir, "%s",
             dir);
    hp_settings.snapshot_interval = 3600;
    hp_snapshot_start();
    dup2(saved, 2);
    close(saved);
    close(lfd);

    assert_false(exists(dir, stale1));
    assert_false(exists(dir, stale2));
    assert_true(exists(dir, live));
    assert_true(exists(dir, "victim"));
    char path[600];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", dir, link);
    assert_int_equal(lstat(path, &st), 0);
    char text[4096];
    assert_non_null(strstr(slurp(log, text, sizeof text),
                           "can be written by other users (mode 0777)"));
    __atomic_store_n(&hp_settings.snapshot_dir[0], '\0', __ATOMIC_RELAXED);
    unlink(log);
    rm_rf(dir);
}

/* Writes that fail (here: a file size limit, as a full disk would) still
 * rotate the old snapshots. */
static void
test_snapshot_rotates_while_failing(void **state)
{
    (void)state;
    char dir[] = "/tmp/hp-snap-full-XXXXXX";
    assert_non_null(mkdtemp(dir));
    int pid = (int)getpid();
    for (int i = 0; i < 6; i++) {
        char name[128];
        hp_snapshot_name(name, sizeof name, pid, T0 + i, 0);
        touch(dir, name);
    }
    snprintf(hp_settings.snapshot_dir, sizeof hp_settings.snapshot_dir, "%s",
             dir);
    hp_settings.snapshot_interval = 3600;
    hp_settings.snapshot_keep = 3;
    hp_snapshot_start();
    struct rlimit old, tiny = {1, 1};
    getrlimit(RLIMIT_FSIZE, &old);
    tiny.rlim_max = old.rlim_max;
    signal(SIGXFSZ, SIG_IGN);
    setrlimit(RLIMIT_FSIZE, &tiny);
    int rc = hp_snapshot_write_now();
    setrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, SIG_DFL);
    assert_int_not_equal(rc, HEAPPROF_OK);
    int left = 0;
    for (int i = 0; i < 6; i++) {
        char name[128];
        hp_snapshot_name(name, sizeof name, pid, T0 + i, 0);
        left += exists(dir, name);
        if (i >= 3)
            assert_true(exists(dir, name));
    }
    assert_int_equal(left, 3);
    __atomic_store_n(&hp_settings.snapshot_dir[0], '\0', __ATOMIC_RELAXED);
    rm_rf(dir);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_snapshot_name_contract),
        cmocka_unit_test(test_snapshot_parse_name),
        cmocka_unit_test(test_snapshot_rotate_keeps_newest_own_only),
        cmocka_unit_test(test_snapshot_now_without_dir_is_estate),
        cmocka_unit_test(test_snapshot_reset_allocs),
        cmocka_unit_test(test_snapshot_parse_signal),
        cmocka_unit_test(test_snapshot_env_rows),
        cmocka_unit_test(test_snapshot_concurrent_writers),
        cmocka_unit_test(test_snapshot_hostile_symlinks),
        cmocka_unit_test(test_snapshot_start_cleans_and_warns),
        cmocka_unit_test(test_snapshot_rotates_while_failing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
