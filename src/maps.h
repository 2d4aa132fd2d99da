/*
 * The process's executable mappings as pprof wants them (Go's rules): one
 * entry per executable line of /proc/self/maps with start, limit, file
 * offset, path and the GNU build id in lowercase hex; the main executable's
 * entries first. Runs inside the fence; uses malloc.
 */
#ifndef HP_MAPS_H
#define HP_MAPS_H

#include "internal.h"

#define HP_BUILD_ID_MAX 64      /* bytes of a build id note we keep */

struct hp_mapping {
    uint64_t start;             /* memory_start */
    uint64_t limit;             /* memory_limit, exclusive */
    uint64_t offset;            /* file offset of start */
    char *path;                 /* "" for the fake mapping; owned */
    char build_id[2 * HP_BUILD_ID_MAX + 1]; /* lowercase hex or "" */
    bool is_main;               /* belongs to the main executable */
};

struct hp_maps {
    struct hp_mapping *m;       /* emission order: main executable first */
    size_t n;
    size_t *by_addr;            /* indices into m sorted by start */
};

/*
 * Read /proc/self/maps (or `path` if non-NULL, for tests). When nothing can
 * be read, out holds Go's single fake mapping {0, 0, 0, ""} and 0 is still
 * returned. HEAPPROF_ENOMEM on allocation failure.
 */
HP_HIDDEN int hp_maps_read(struct hp_maps *out, const char *path);
HP_HIDDEN void hp_maps_free(struct hp_maps *maps);

/* Index in maps->m of the mapping containing addr, or -1. */
HP_HIDDEN long hp_maps_find(const struct hp_maps *maps, uint64_t addr);

/*
 * Build id of the ELF file at path (PT_NOTE NT_GNU_BUILD_ID) as lowercase
 * hex into buf (>= 2 * HP_BUILD_ID_MAX + 1). 0 if found, -1 otherwise.
 */
HP_HIDDEN int hp_maps_file_build_id(const char *path, char *buf, size_t cap);

/* The same from a loaded object's notes in memory. */
struct dl_phdr_info;
HP_HIDDEN int hp_maps_phdr_build_id(const struct dl_phdr_info *info, char *buf,
                                    size_t cap);

/* A loaded object's executable PT_LOAD segments: addresses [start, limit)
 * and file offset (the first HP_EXEC_SEGS_MAX of them). */
#define HP_EXEC_SEGS_MAX 4
struct hp_exec_segs {
    uint64_t start[HP_EXEC_SEGS_MAX], limit[HP_EXEC_SEGS_MAX];
    uint64_t offset[HP_EXEC_SEGS_MAX];
    int n;
};
HP_HIDDEN void hp_maps_phdr_exec_segs(const struct dl_phdr_info *info,
                                      struct hp_exec_segs *out);

#endif
