/*
 * Objects the program unloaded (dlclose) while blocks they allocated, and
 * so stacks through their code, may still be in the profile. heapprof's
 * dlclose notes the loaded objects before the real one runs and keeps those
 * that are gone after it: file, load address, executable segments and
 * build id. Exports then list them as mappings and symbolize their
 * addresses from the file, as long as no object loaded since covers the
 * same addresses (what is loaded now wins).
 */
#ifndef HP_RETIRED_H
#define HP_RETIRED_H

#include "internal.h"
#include "maps.h"

#define HP_RETIRED_MAX 32 /* the newest are kept */
#define HP_RETIRED_PATH_MAX 512

struct hp_retired {
    char path[HP_RETIRED_PATH_MAX];
    char build_id[2 * HP_BUILD_ID_MAX + 1];
    uint64_t bias; /* load address (dl_phdr_info.dlpi_addr) */
    struct hp_exec_segs seg;
    const char *name_ptr; /* the loader's name string, identity only */
};

/*
 * Copies of the retired objects that no loaded object overlaps now, newest
 * first; returns how many (at most max). Objects overlapped by a newer
 * load are forgotten for good: their addresses mean the new code now.
 */
HP_HIDDEN size_t hp_retired_current(struct hp_retired *out, size_t max);

/* A fork child's copy of the lock may be held by a thread that is gone. */
HP_HIDDEN void hp_retired_postfork_child(void);

#endif
