/*
 * Mappings for the profile: executable lines of /proc/self/maps filtered
 * the way Go's runtime/pprof does, each with the build id of the object it
 * belongs to (elf_util.c reads them from the PT_NOTE segments in memory).
 * In a chroot without /proc, the executable segments of the loaded objects
 * instead, as the loader lists them.
 */
#define _GNU_SOURCE
#include "maps.h"

#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>

#include "buf.h"
#include "fileio.h"
#include "heapprof.h"
#include "retired.h"
#include "stack.h"

#define DELETED_SUFFIX " (deleted)"

/* One loaded ELF object: its executable PT_LOAD ranges and build id. */
struct object {
    struct hp_exec_segs seg;
    char build_id[2 * HP_BUILD_ID_MAX + 1];
    char *path; /* as /proc/self/maps names it; NULL: out of memory */
};

struct objects {
    struct object *o;
    size_t n, cap;
    bool oom;
};

static int
collect_object(struct dl_phdr_info *info, size_t size, void *data)
{
    struct objects *objs = data;
    (void)size;
    if (!hp_grow((void **)&objs->o, &objs->cap, objs->n + 1,
                 sizeof(*objs->o))) {
        objs->oom = true;
        return 1;
    }
    struct object *ob = &objs->o[objs->n];
    memset(ob, 0, sizeof(*ob));
    hp_elf_phdr_exec_segs(info, &ob->seg);
    if (ob->seg.n == 0)
        return 0;
    hp_elf_phdr_build_id(info, ob->build_id, sizeof(ob->build_id));
    char exe[4096];
    const char *name = info->dlpi_name;
    if (objs->n == 0 && name[0] == '\0') /* the loader's first: the program */
        name = hp_self_exe(exe, sizeof exe) ? exe : "";
    else if (info->dlpi_addr == getauxval(AT_SYSINFO_EHDR))
        name = "[vdso]";
    ob->path = strdup(name);
    if (ob->path == NULL)
        objs->oom = true;
    objs->n++;
    return objs->oom;
}

static void
free_objects(struct objects *objs)
{
    for (size_t i = 0; i < objs->n; i++)
        free(objs->o[i].path);
    free(objs->o);
}

static void
strip_deleted(char *path)
{
    size_t n = strlen(path), k = strlen(DELETED_SUFFIX);
    if (n >= k && strcmp(path + n - k, DELETED_SUFFIX) == 0)
        path[n - k] = '\0';
}

/* Fill m->build_id from the loaded object covering m->start, else disk. */
static void
assign_build_id(struct hp_mapping *m, const struct objects *objs)
{
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    for (size_t i = 0; i < objs->n; i++) {
        const struct object *o = &objs->o[i];
        for (int r = 0; r < o->seg.n; r++) {
            uintptr_t lo = o->seg.start[r] & ~(page - 1);
            if (m->start >= lo && m->start < o->seg.limit[r]) {
                memcpy(m->build_id, o->build_id, sizeof(m->build_id));
                return;
            }
        }
    }
    if (m->path[0] == '/')
        hp_elf_file_build_id(m->path, m->build_id, sizeof(m->build_id));
}

/*
 * Parse one maps line; returns 1 if it is a mapping to keep, 0 to skip,
 * -1 on allocation failure. Keeps Go's filter: executable lines only, and
 * not the anonymous inode-0 fragments of huge-page text ([vdso] stays).
 */
static int
parse_line(char *line, struct hp_mapping *m)
{
    unsigned long long start, end, off, inode;
    char perms[8];
    int name_at = 0;
    if (sscanf(line, "%llx-%llx %7s %llx %*s %llu %n", &start, &end, perms,
               &off, &inode, &name_at) < 5)
        return 0;
    if (strlen(perms) < 3 || perms[2] != 'x')
        return 0;
    char *name = line + name_at;
    size_t len = strlen(name);
    while (len > 0 && (name[len - 1] == '\n' || name[len - 1] == ' '))
        name[--len] = '\0';
    strip_deleted(name);
    if (inode == 0 && name[0] == '\0')
        return 0;
    memset(m, 0, sizeof(*m));
    m->start = start;
    m->limit = end;
    m->offset = off;
    m->path = strdup(name);
    return m->path == NULL ? -1 : 1;
}

static int
cmp_by_addr(const void *a, const void *b, void *ctx)
{
    const struct hp_maps *maps = ctx;
    uint64_t x = maps->m[*(const size_t *)a].start;
    uint64_t y = maps->m[*(const size_t *)b].start;
    return x < y ? -1 : x > y;
}

/* Stable partition: main executable entries first, maps order kept. */
static void
main_first(struct hp_maps *maps)
{
    char exe[4096];
    if (!hp_self_exe(exe, sizeof exe))
        return;
    strip_deleted(exe);
    size_t k = 0;
    for (size_t i = 0; i < maps->n; i++) {
        if (strcmp(maps->m[i].path, exe) != 0)
            continue;
        struct hp_mapping tmp = maps->m[i];
        tmp.is_main = true;
        memmove(&maps->m[k + 1], &maps->m[k], (i - k) * sizeof(tmp));
        maps->m[k++] = tmp;
    }
}

static int
add_fake(struct hp_maps *out)
{
    out->m = calloc(1, sizeof(*out->m));
    out->by_addr = calloc(1, sizeof(*out->by_addr));
    if (out->m == NULL || out->by_addr == NULL)
        return HEAPPROF_ENOMEM;
    out->m[0].path = strdup("");
    if (out->m[0].path == NULL)
        return HEAPPROF_ENOMEM;
    out->n = 1;
    return 0;
}

/* One mapping per executable segment of an object, in whole pages as
 * /proc/self/maps shows them; segments overlapping one of the first
 * `keep_clear` mappings are left out. */
static int
add_segments(struct hp_maps *out, size_t *cap, size_t keep_clear,
             const struct hp_exec_segs *seg, const char *path,
             const char *build_id)
{
    uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
    for (int k = 0; k < seg->n; k++) {
        bool overlaps = false;
        for (size_t j = 0; j < keep_clear && !overlaps; j++)
            overlaps = out->m[j].start < seg->limit[k] &&
                       seg->start[k] < out->m[j].limit;
        if (overlaps)
            continue;
        if (!hp_grow((void **)&out->m, cap, out->n + 1, sizeof(*out->m)))
            return HEAPPROF_ENOMEM;
        struct hp_mapping *m = &out->m[out->n];
        memset(m, 0, sizeof(*m));
        uint64_t skew = seg->start[k] & (page - 1);
        m->start = seg->start[k] - skew;
        m->limit = (seg->limit[k] + page - 1) & ~(page - 1);
        m->offset = seg->offset[k] - skew;
        memcpy(m->build_id, build_id, sizeof(m->build_id));
        m->path = strdup(path);
        if (m->path == NULL)
            return HEAPPROF_ENOMEM;
        out->n++;
    }
    return 0;
}

/*
 * The executable segments of unloaded objects (retired.h), after the
 * current mappings: stacks taken before the dlclose still point there.
 * A segment that overlaps a current executable mapping is left out.
 */
static int
add_retired(struct hp_maps *out, size_t *cap)
{
    struct hp_retired *r = malloc(HP_RETIRED_MAX * sizeof(*r));
    if (r == NULL)
        return HEAPPROF_ENOMEM;
    size_t nr = hp_retired_current(r, HP_RETIRED_MAX);
    int rc = 0;
    size_t ncur = out->n;
    for (size_t i = 0; i < nr && rc == 0; i++)
        rc = add_segments(out, cap, ncur, &r[i].seg, r[i].path, r[i].build_id);
    free(r);
    return rc;
}

/* Without /proc (a chroot): the loaded objects' executable segments,
 * the program's first (the loader lists it first). */
static int
add_loaded(struct hp_maps *out, size_t *cap, const struct objects *objs)
{
    for (size_t i = 0; i < objs->n; i++) {
        int rc = add_segments(out, cap, 0, &objs->o[i].seg, objs->o[i].path,
                              objs->o[i].build_id);
        if (rc != 0)
            return rc;
        if (i == 0)
            for (size_t k = 0; k < out->n; k++)
                out->m[k].is_main = true;
    }
    return 0;
}

/* The executable lines of a maps file; 0 or HEAPPROF_ENOMEM. */
static int
read_maps_file(FILE *f, struct hp_maps *out, size_t *cap)
{
    char *line = NULL;
    size_t linecap = 0;
    int rc = 0;
    while (rc == 0 && getline(&line, &linecap, f) > 0) {
        if (!hp_grow((void **)&out->m, cap, out->n + 1, sizeof(*out->m))) {
            rc = HEAPPROF_ENOMEM;
            break;
        }
        int r = parse_line(line, &out->m[out->n]);
        if (r < 0)
            rc = HEAPPROF_ENOMEM;
        else
            out->n += (size_t)r;
    }
    free(line);
    return rc;
}

static int
index_by_addr(struct hp_maps *out)
{
    out->by_addr = malloc(out->n * sizeof(*out->by_addr));
    if (out->by_addr == NULL)
        return HEAPPROF_ENOMEM;
    for (size_t i = 0; i < out->n; i++)
        out->by_addr[i] = i;
    qsort_r(out->by_addr, out->n, sizeof(*out->by_addr), cmp_by_addr, out);
    return 0;
}

int
hp_maps_read(struct hp_maps *out, const char *path)
{
    size_t cap = 0;
    struct objects objs = {0};
    int rc = 0;
    memset(out, 0, sizeof(*out));
    FILE *f = fopen(path ? path : "/proc/self/maps", "re");
    if (f != NULL) {
        rc = read_maps_file(f, out, &cap);
        fclose(f);
    }
    if (rc == 0 && (out->n > 0 || path == NULL)) {
        hp_stack_phdr_iterate(collect_object, &objs);
        rc = objs.oom ? HEAPPROF_ENOMEM : 0;
    }
    if (rc == 0 && out->n > 0) {
        for (size_t i = 0; i < out->n; i++)
            assign_build_id(&out->m[i], &objs);
        if (path == NULL)
            main_first(out);
    } else if (rc == 0 && path == NULL) {
        rc = add_loaded(out, &cap, &objs);
    }
    if (rc == 0 && path == NULL)
        rc = add_retired(out, &cap);
    if (rc == 0 && out->n == 0) {
        hp_maps_free(out);
        rc = add_fake(out); /* Go's rule: pprof expects a mapping */
    } else if (rc == 0) {
        rc = index_by_addr(out);
    }
    free_objects(&objs);
    if (rc != 0)
        hp_maps_free(out);
    return rc;
}

void
hp_maps_free(struct hp_maps *maps)
{
    for (size_t i = 0; i < maps->n; i++)
        free(maps->m[i].path);
    free(maps->m);
    free(maps->by_addr);
    memset(maps, 0, sizeof(*maps));
}

long
hp_maps_find(const struct hp_maps *maps, uint64_t addr)
{
    /* Go's fake mapping (maps unreadable) stands for every address. */
    if (maps->n == 1 && maps->m[0].limit == 0)
        return 0;
    size_t lo = 0, hi = maps->n;
    /* Last mapping (by start) with start <= addr. */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (maps->m[maps->by_addr[mid]].start <= addr)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0)
        return -1;
    const struct hp_mapping *m = &maps->m[maps->by_addr[lo - 1]];
    if (addr >= m->limit)
        return -1;
    return (long)maps->by_addr[lo - 1];
}
