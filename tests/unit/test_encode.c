/*
 * Encoder: a hand-built hp_profile_data (stacks made of this binary's own
 * functions) is encoded into memory, gunzipped and unpacked with
 * protobuf-c, and checked field by field against Go's heap layout; then
 * read back by the real `go tool pprof` when Go is installed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include <cmocka.h>

#include "profile.pb-c.h"
#include "pprof_encode.h"
#include "profile.h"
#include "test_sink.h"

typedef Perftools__Profiles__Profile Profile;
typedef Perftools__Profiles__Location Location;
typedef Perftools__Profiles__Function Function;
typedef Perftools__Profiles__Mapping Mapping;

static volatile int opaque = 1;

__attribute__((noinline)) int
hp_enc_leaf(int x)
{
    return x * opaque + 1;
}

__attribute__((noinline)) int
hp_enc_mid(int x)
{
    return hp_enc_leaf(x) * opaque + 2;
}

__attribute__((noinline)) static int
enc_root_static(int x)
{
    return hp_enc_mid(x) * opaque + 3;
}

/* ------------------------------------------------------------- helpers */

static unsigned char *
gunzip(const unsigned char *in, size_t n, size_t *outlen)
{
    unsigned char *out = hp_test_gunzip(in, n, outlen);
    assert_non_null(out);
    return out;
}

static uintptr_t pcs0[3], pcs1[2];

/* Three entries: two stacks sharing frames and the overflow bucket. */
static void
make_data(struct hp_profile_data *d, struct hp_profile_entry *e)
{
    /* Return addresses: one past the function's first byte, so that the
     * encoder's pc - 1 lands exactly on the function. */
    pcs0[0] = (uintptr_t)&hp_enc_leaf + 1;
    pcs0[1] = (uintptr_t)&hp_enc_mid + 1;
    pcs0[2] = (uintptr_t)&enc_root_static + 1;
    pcs1[0] = (uintptr_t)&hp_enc_leaf + 1;
    pcs1[1] = (uintptr_t)&enc_root_static + 1;
    memset(e, 0, 3 * sizeof(*e));
    e[0] = (struct hp_profile_entry){ &pcs0, pcs0, 3, { 10, 1000, 4, 400 },
                                      { 2, 128, 1, 64 }, NULL };
    e[1] = (struct hp_profile_entry){ &pcs1, pcs1, 2, { 5, 500, 0, 0 },
                                      { 1, 100, 0, 0 }, NULL };
    e[2] = (struct hp_profile_entry){ &e[2], NULL, 0, { 7, 700, 7, 700 },
                                      { 1, 700, 1, 700 }, NULL };
    d->e = e;
    d->n = 3;
    d->rate = 524288;
    d->time_ns = 1700000000123456789ull;
    d->duration_ns = 0;
}

static Profile *
encode_and_unpack(const struct hp_profile_data *d,
                  const struct hp_encode_opts *o, struct hp_test_sink *gz)
{
    memset(gz, 0, sizeof(*gz));
    struct heapprof_sink sink = hp_test_sink(gz);
    assert_int_equal(hp_pprof_encode(d, o, &sink), 0);
    assert_true(gz->n > 18);
    assert_int_equal(gz->p[0], 0x1f);
    assert_int_equal(gz->p[1], 0x8b);
    size_t rawlen;
    unsigned char *raw = gunzip(gz->p, gz->n, &rawlen);
    Profile *p = perftools__profiles__profile__unpack(NULL, rawlen, raw);
    free(raw);
    assert_non_null(p);
    return p;
}

static const char *
str(const Profile *p, int64_t i)
{
    assert_true(i >= 0 && (size_t)i < p->n_string_table);
    return p->string_table[i];
}

static const Location *
loc_by_id(const Profile *p, uint64_t id)
{
    assert_true(id >= 1 && id <= p->n_location);
    assert_int_equal(p->location[id - 1]->id, id);
    return p->location[id - 1];
}

static const Function *
func_by_id(const Profile *p, uint64_t id)
{
    assert_true(id >= 1 && id <= p->n_function);
    assert_int_equal(p->function[id - 1]->id, id);
    return p->function[id - 1];
}

/* Name of the physical (outermost) function of a location. */
static const char *
loc_func(const Profile *p, const Location *l)
{
    assert_true(l->n_line >= 1);
    return str(p, func_by_id(p, l->line[l->n_line - 1]->function_id)->name);
}

/* Every cross reference resolves; ids are 1..N in table order. */
static void
check_integrity(const Profile *p)
{
    assert_true(p->n_string_table >= 1);
    assert_string_equal(p->string_table[0], "");
    for (size_t i = 0; i < p->n_mapping; i++) {
        assert_int_equal(p->mapping[i]->id, i + 1);
        str(p, p->mapping[i]->filename);
        str(p, p->mapping[i]->build_id);
    }
    for (size_t i = 0; i < p->n_location; i++) {
        const Location *l = p->location[i];
        assert_int_equal(l->id, i + 1);
        assert_true(l->mapping_id <= p->n_mapping);
        if (l->mapping_id != 0) {
            const Mapping *m = p->mapping[l->mapping_id - 1];
            assert_true(l->address >= m->memory_start);
            assert_true(l->address < m->memory_limit ||
                        m->memory_limit == 0);
        }
        for (size_t k = 0; k < l->n_line; k++)
            func_by_id(p, l->line[k]->function_id);
    }
    for (size_t i = 0; i < p->n_function; i++) {
        assert_int_equal(p->function[i]->id, i + 1);
        str(p, p->function[i]->name);
        str(p, p->function[i]->system_name);
        str(p, p->function[i]->filename);
    }
    for (size_t i = 0; i < p->n_sample; i++) {
        const Perftools__Profiles__Sample *s = p->sample[i];
        assert_int_equal(s->n_value, p->n_sample_type);
        for (size_t k = 0; k < s->n_location_id; k++)
            loc_by_id(p, s->location_id[k]);
        for (size_t k = 0; k < s->n_label; k++) {
            str(p, s->label[k]->key);
            str(p, s->label[k]->num_unit);
        }
    }
    for (size_t i = 0; i < p->n_comment; i++)
        str(p, p->comment[i]);
    str(p, p->default_sample_type);
}

/* ------------------------------------------------------------- tests */

static void
test_encode_header_heap(void **state)
{
    (void)state;
    struct hp_profile_entry e[3];
    struct hp_profile_data d;
    make_data(&d, e);
    struct hp_encode_opts o = { HEAPPROF_PROFILE_HEAP, NULL, 0, NULL };
    struct hp_test_sink gz;
    Profile *p = encode_and_unpack(&d, &o, &gz);
    check_integrity(p);

    static const char *const want[4][2] = {
        { "alloc_objects", "count" }, { "alloc_space", "bytes" },
        { "inuse_objects", "count" }, { "inuse_space", "bytes" },
    };
    assert_int_equal(p->n_sample_type, 4);
    for (int i = 0; i < 4; i++) {
        assert_string_equal(str(p, p->sample_type[i]->type), want[i][0]);
        assert_string_equal(str(p, p->sample_type[i]->unit), want[i][1]);
    }
    assert_non_null(p->period_type);
    assert_string_equal(str(p, p->period_type->type), "space");
    assert_string_equal(str(p, p->period_type->unit), "bytes");
    assert_int_equal(p->period, 524288);
    /* Heap: no default, so pprof takes the last type, inuse_space. */
    assert_int_equal(p->default_sample_type, 0);
    assert_int_equal(p->time_nanos, 1700000000123456789ll);
    assert_int_equal(p->duration_nanos, 0);
    perftools__profiles__profile__free_unpacked(p, NULL);
    free(gz.p);
}

static void
test_encode_header_allocs(void **state)
{
    (void)state;
    struct hp_profile_entry e[3];
    struct hp_profile_data d;
    make_data(&d, e);
    d.duration_ns = 5000000000ull;
    const char *comments[] = { "heapprof test rate=524288", "second line" };
    struct hp_encode_opts o = { HEAPPROF_PROFILE_ALLOCS, comments, 2, NULL };
    struct hp_test_sink gz;
    Profile *p = encode_and_unpack(&d, &o, &gz);
    check_integrity(p);
    assert_string_equal(str(p, p->default_sample_type), "alloc_space");
    assert_int_equal(p->duration_nanos, 5000000000ll);
    assert_int_equal(p->n_comment, 2);
    assert_string_equal(str(p, p->comment[0]), "heapprof test rate=524288");
    assert_string_equal(str(p, p->comment[1]), "second line");
    perftools__profiles__profile__free_unpacked(p, NULL);
    free(gz.p);
}

static void
test_encode_samples_and_locations(void **state)
{
    (void)state;
    struct hp_profile_entry e[3];
    struct hp_profile_data d;
    make_data(&d, e);
    struct hp_encode_opts o = { HEAPPROF_PROFILE_HEAP, NULL, 0, NULL };
    struct hp_test_sink gz;
    Profile *p = encode_and_unpack(&d, &o, &gz);
    check_integrity(p);

    assert_int_equal(p->n_sample, 3);
    for (size_t i = 0; i < 3; i++)
        for (int k = 0; k < 4; k++)
            assert_int_equal(p->sample[i]->value[k], e[i].v[k]);

    /* leaf, mid, root shared by two stacks + the overflow frame. */
    assert_int_equal(p->n_location, 4);
    const Perftools__Profiles__Sample *s0 = p->sample[0], *s1 = p->sample[1];
    assert_int_equal(s0->n_location_id, 3);
    assert_int_equal(s1->n_location_id, 2);
    assert_int_equal(s0->location_id[0], s1->location_id[0]);
    assert_int_equal(s0->location_id[2], s1->location_id[1]);

    /* Leaf first; address = return address - 1; names found. */
    static const char *const names[3] = { "hp_enc_leaf", "hp_enc_mid",
                                          "enc_root_static" };
    for (int k = 0; k < 3; k++) {
        const Location *l = loc_by_id(p, s0->location_id[k]);
        assert_int_equal(l->address, pcs0[k] - 1);
        assert_string_equal(loc_func(p, l), names[k]);
        const Function *f =
            func_by_id(p, l->line[l->n_line - 1]->function_id);
        assert_string_equal(str(p, f->system_name), names[k]);
        const char *file = str(p, f->filename);
        assert_non_null(strstr(file, "test_encode.c"));
        assert_true(l->line[l->n_line - 1]->line > 0);
    }

    /* Go's "bytes" label: average sampled size, with its unit. */
    assert_int_equal(s0->n_label, 1);
    assert_string_equal(str(p, s0->label[0]->key), "bytes");
    assert_int_equal(s0->label[0]->num, 64);
    assert_string_equal(str(p, s0->label[0]->num_unit), "bytes");
    assert_int_equal(s1->n_label, 1);
    assert_int_equal(s1->label[0]->num, 100);

    /* Functions are deduplicated: 3 + the overflow one. */
    assert_int_equal(p->n_function, 4);
    perftools__profiles__profile__free_unpacked(p, NULL);
    free(gz.p);
}

static void
test_encode_overflow_bucket(void **state)
{
    (void)state;
    struct hp_profile_entry e[3];
    struct hp_profile_data d;
    make_data(&d, e);
    struct hp_encode_opts o = { HEAPPROF_PROFILE_HEAP, NULL, 0, NULL };
    struct hp_test_sink gz;
    Profile *p = encode_and_unpack(&d, &o, &gz);
    check_integrity(p);
    const Perftools__Profiles__Sample *s = p->sample[2];
    assert_int_equal(s->n_location_id, 1);
    const Location *l = loc_by_id(p, s->location_id[0]);
    assert_int_equal(l->address, 0);
    assert_int_equal(l->mapping_id, 0);
    assert_int_equal(l->n_line, 1);
    assert_string_equal(loc_func(p, l), "[heapprof: bucket table full]");
    assert_string_equal(loc_func(p, l), HP_OVERFLOW_FRAME);
    assert_int_equal(s->value[HP_V_INUSE_SPACE], 700);
    perftools__profiles__profile__free_unpacked(p, NULL);
    free(gz.p);
}

static void
test_encode_mappings(void **state)
{
    (void)state;
    struct hp_profile_entry e[3];
    struct hp_profile_data d;
    make_data(&d, e);
    struct hp_encode_opts o = { HEAPPROF_PROFILE_HEAP, NULL, 0, NULL };
    struct hp_test_sink gz;
    Profile *p = encode_and_unpack(&d, &o, &gz);
    check_integrity(p);

    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    assert_true(n > 0);
    exe[n] = '\0';

    /* The main executable comes first (pprof's File: header). */
    assert_true(p->n_mapping >= 2);
    assert_string_equal(str(p, p->mapping[0]->filename), exe);

    const Location *l = loc_by_id(p, p->sample[0]->location_id[0]);
    assert_true(l->mapping_id >= 1);
    const Mapping *m = p->mapping[l->mapping_id - 1];
    assert_string_equal(str(p, m->filename), exe);
    assert_true(l->address >= m->memory_start && l->address < m->memory_limit);
    const char *bid = str(p, m->build_id);
    assert_int_equal(strlen(bid), 40);
    assert_int_equal(strspn(bid, "0123456789abcdef"), 40);
    /* Every location there has a name, a file and a line. */
    assert_true(m->has_functions);
    assert_true(m->has_filenames);
    assert_true(m->has_line_numbers);

    /* Only executable mappings; none of them unused-looking garbage. */
    for (size_t i = 0; i < p->n_mapping; i++) {
        assert_true(p->mapping[i]->memory_limit > p->mapping[i]->memory_start);
        if (p->mapping[i] != m)
            assert_false(p->mapping[i]->has_functions); /* no locations */
    }
    perftools__profiles__profile__free_unpacked(p, NULL);
    free(gz.p);
}

static void
test_encode_fake_mapping_without_maps(void **state)
{
    (void)state;
    struct hp_profile_entry e[3];
    struct hp_profile_data d;
    make_data(&d, e);
    struct hp_encode_opts o = { HEAPPROF_PROFILE_HEAP, NULL, 0,
                                "/nonexistent/maps" };
    struct hp_test_sink gz;
    Profile *p = encode_and_unpack(&d, &o, &gz);
    check_integrity(p);
    /* Go's fallback: one mapping {0, 0, 0, ""} that every real location
     * points to. */
    assert_int_equal(p->n_mapping, 1);
    assert_int_equal(p->mapping[0]->memory_start, 0);
    assert_int_equal(p->mapping[0]->memory_limit, 0);
    assert_string_equal(str(p, p->mapping[0]->filename), "");
    const Location *l = loc_by_id(p, p->sample[0]->location_id[0]);
    assert_int_equal(l->mapping_id, 1);
    assert_string_equal(loc_func(p, l), "hp_enc_leaf");
    perftools__profiles__profile__free_unpacked(p, NULL);
    free(gz.p);
}

static void
test_encode_empty_profile(void **state)
{
    (void)state;
    struct hp_profile_data d = { NULL, 0, 1, 1, 0 };
    struct hp_encode_opts o = { HEAPPROF_PROFILE_HEAP, NULL, 0, NULL };
    struct hp_test_sink gz;
    Profile *p = encode_and_unpack(&d, &o, &gz);
    check_integrity(p);
    assert_int_equal(p->n_sample, 0);
    assert_int_equal(p->n_location, 0);
    assert_int_equal(p->n_sample_type, 4);
    assert_int_equal(p->period, 1);
    perftools__profiles__profile__free_unpacked(p, NULL);
    free(gz.p);
}

static void
test_encode_sink_failure_is_eio(void **state)
{
    (void)state;
    struct hp_profile_entry e[3];
    struct hp_profile_data d;
    make_data(&d, e);
    struct hp_encode_opts o = { HEAPPROF_PROFILE_HEAP, NULL, 0, NULL };
    struct hp_test_sink m = { NULL, 0, 0, 1 };
    struct heapprof_sink sink = hp_test_sink(&m);
    assert_int_equal(hp_pprof_encode(&d, &o, &sink), HEAPPROF_EIO);
    assert_int_equal(hp_pprof_encode(&d, &o, NULL), HEAPPROF_EINVAL);
}

/* The real consumer: go tool pprof must read the file and show names. */
static void
test_encode_go_tool_pprof(void **state)
{
    (void)state;
    if (system("go version >/dev/null 2>&1") != 0)
        skip();
    struct hp_profile_entry e[3];
    struct hp_profile_data d;
    make_data(&d, e);
    struct hp_encode_opts o = { HEAPPROF_PROFILE_HEAP, NULL, 0, NULL };
    char dir[] = "/tmp/hp_test_encode.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128], cmd[512];
    snprintf(path, sizeof(path), "%s/heap.pb.gz", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    struct hp_test_sink gz = { 0 };
    struct heapprof_sink sink = hp_test_sink(&gz);
    assert_int_equal(hp_pprof_encode(&d, &o, &sink), 0);
    assert_int_equal(fwrite(gz.p, 1, gz.n, f), gz.n);
    fclose(f);
    free(gz.p);

    snprintf(cmd, sizeof(cmd),
             "PPROF_TMPDIR=%s go tool pprof -top -sample_index=inuse_space "
             "%s 2>&1",
             dir, path);
    FILE *out = popen(cmd, "r");
    assert_non_null(out);
    char text[16384];
    size_t len = fread(text, 1, sizeof(text) - 1, out);
    text[len] = '\0';
    int status = pclose(out);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    if (status != 0)
        fprintf(stderr, "%s\n", text);
    assert_int_equal(status, 0);
    assert_non_null(strstr(text, "Type: inuse_space"));
    assert_non_null(strstr(text, "hp_enc_leaf"));
    assert_non_null(strstr(text, "hp_enc_mid"));
    assert_non_null(strstr(text, "enc_root_static"));
    assert_non_null(strstr(text, "[heapprof: bucket table full]"));
    /* 400 + 700 bytes in use. */
    assert_non_null(strstr(text, "of 1100B total"));
}

int
main(void)
{
    /* Keep the functions (and their symbols) alive. */
    if (enc_root_static(0) != 6)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encode_header_heap),
        cmocka_unit_test(test_encode_header_allocs),
        cmocka_unit_test(test_encode_samples_and_locations),
        cmocka_unit_test(test_encode_overflow_bucket),
        cmocka_unit_test(test_encode_mappings),
        cmocka_unit_test(test_encode_fake_mapping_without_maps),
        cmocka_unit_test(test_encode_empty_profile),
        cmocka_unit_test(test_encode_sink_failure_is_eio),
        cmocka_unit_test(test_encode_go_tool_pprof),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
