/*
 * ELF helpers (bottom layer; elf_util.c): build ids and executable segments of
 * loaded objects and of files on disk.
 */
#ifndef HP_ELF_UTIL_H
#define HP_ELF_UTIL_H

#include "internal.h"

#define HP_BUILD_ID_MAX 64 /* bytes of a build id note we keep */

/*
 * Build id of the ELF file at path (PT_NOTE NT_GNU_BUILD_ID) as lowercase
 * hex into buf (>= 2 * HP_BUILD_ID_MAX + 1). 0 if found, -1 otherwise.
 */
HP_HIDDEN int hp_elf_file_build_id(const char *path, char *buf, size_t cap);

/* The same from a loaded object's notes in memory. */
struct dl_phdr_info;
HP_HIDDEN int hp_elf_phdr_build_id(const struct dl_phdr_info *info, char *buf,
                                   size_t cap);

/* A loaded object's executable PT_LOAD segments: addresses [start, limit)
 * and file offset (the first HP_EXEC_SEGS_MAX of them). */
#define HP_EXEC_SEGS_MAX 4
struct hp_exec_segs {
    uint64_t start[HP_EXEC_SEGS_MAX], limit[HP_EXEC_SEGS_MAX];
    uint64_t offset[HP_EXEC_SEGS_MAX];
    int n;
};
HP_HIDDEN void hp_elf_phdr_exec_segs(const struct dl_phdr_info *info,
                                     struct hp_exec_segs *out);

#endif
