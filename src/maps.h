/*
 * The process's executable mappings as pprof wants them (Go's rules): one
 * entry per executable line of /proc/self/maps with start, limit, file
 * offset, path and the GNU build id in lowercase hex; the main executable's
 * entries first. Runs inside the fence; uses malloc.
 */
#ifndef HP_MAPS_H
#define HP_MAPS_H

#include "elf_util.h"
#include "internal.h"

struct hp_mapping {
    uint64_t start;                         /* memory_start */
    uint64_t limit;                         /* memory_limit, exclusive */
    uint64_t offset;                        /* file offset of start */
    char *path;                             /* "" for the fake mapping; owned */
    char build_id[2 * HP_BUILD_ID_MAX + 1]; /* lowercase hex or "" */
    bool is_main;                           /* belongs to the main executable */
};

struct hp_maps {
    struct hp_mapping *m; /* emission order: main executable first */
    size_t n;
    size_t *by_addr; /* indices into m sorted by start */
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

#endif
