/*
 * In-process symbolization: address -> function name(s), file and line,
 * using libdw's Dwfl on the live process, with a per-address cache kept for
 * the process lifetime (so one address always symbolizes the same way across
 * snapshots) and rebuilt only when shared objects come or go.
 */
#ifndef HP_SYMBOLIZE_H
#define HP_SYMBOLIZE_H

#include <stdio.h>

#include "internal.h"

/* One source-level frame at an address; several when code was inlined. */
struct hp_symframe {
    const char *func;   /* never NULL; valid UTF-8 */
    const char *file;   /* NULL when there is no line info */
    int64_t line;       /* 0 when unknown */
    int64_t start_line; /* declaration line of func, 0 when unknown */
};

struct hp_symres {
    const struct hp_symframe *frames; /* innermost first */
    uint32_t nframes;                 /* 0: no function name known */
};

/*
 * A lookup session: hp_symbolize_begin() takes the symbolizer lock and
 * refreshes the module list if dl_iterate_phdr reports objects loaded or
 * unloaded since the last session; results of hp_symbolize_lookup() (and
 * the strings they point to) stay valid until hp_symbolize_end(). Always
 * returns 0: failures only make lookups come back empty (logged once).
 * With less than 8 MiB of memory to spare the session only answers from
 * the cache: libdw and libelf are not driven into running out of memory,
 * where some of their paths abort or crash the process.
 */
HP_HIDDEN int hp_symbolize_begin(void);
/* addr is the address to describe exactly (callers pass return pc - 1). */
HP_HIDDEN void hp_symbolize_lookup(uint64_t addr, struct hp_symres *out);
HP_HIDDEN void hp_symbolize_end(void);

/*
 * How many of a stack's leaf-most frames (return addresses, leaf first)
 * are language-runtime allocator entry points: C++'s global operator new
 * and new[], every variant, which call malloc for the code that asked for
 * the memory. Encoders skip them so that a sample's leaf is that code, as
 * it is for C callers of malloc. A frame counts only when the function
 * containing it (not an inlined one) is an entry point; at least one frame
 * is always kept. Within a session.
 */
HP_HIDDEN uint32_t hp_symbolize_entry_frames(const uintptr_t *pcs, uint32_t n);

/*
 * The file holding addr and addr as that file's own tools see it (its
 * virtual address there, for addr2line -e FILE), for a frame no function
 * name is known for. 0 if found, -1 otherwise; *file is valid until the
 * session ends. Within a session.
 */
HP_HIDDEN int hp_symbolize_where(uint64_t addr, const char **file,
                                 uint64_t *vaddr);

/*
 * Name of the (innermost) function at addr, NUL-terminated and truncated to
 * cap, for /debug/pprof/symbol. 0 if found, -1 otherwise. Within a session
 * (one per request: the modules are opened once, not per address).
 */
HP_HIDDEN int hp_symbolize_name(uintptr_t addr, char *buf, size_t cap);

/*
 * For a thread that will export profiles (snapshot writer, listener), at
 * its start: gives it its copies of libelf's and libdw's thread-local
 * state now, while memory is there. glibc allocates them on first use in
 * a library loaded with dlopen and aborts the process if it cannot.
 */
HP_HIDDEN void hp_symbolize_thread_init(void);

/*
 * The C library that libdw allocates from (for the memory and streams
 * passing between libdw and the symbolizer). Weak definitions in
 * symbolize.c use the process's; the shared library's lazy_deps.c defines
 * them as the C library of libdw's own namespace.
 */
HP_HIDDEN void hp_dw_free(void *p);
HP_HIDDEN FILE *hp_dw_fdopen(int fd, const char *mode);
HP_HIDDEN int hp_dw_fclose(FILE *f);

/*
 * on: before a chroot, opens every loaded object's file now, while its
 * path still leads to it, and keeps it open from then on (DWARF in the
 * file itself is read from it later; separate debug files are not found
 * inside the chroot) (the Dwfl is no longer dropped at the end of each
 * session: its memory stays, about what one profile's symbolization
 * takes). Objects loaded later are not named in this process. off: the
 * chroot failed; back to dropping the Dwfl after each session.
 */
HP_HIDDEN void hp_symbolize_confine(bool on);

/*
 * Fork child: re-initialise the lock and forget (leak) the parent's state,
 * which another thread may have been changing at fork time; the next
 * session rebuilds it. In a chroot (hp_symbolize_confine), where it could
 * not be rebuilt, the state is kept when no thread held the lock. Never
 * blocks.
 */
HP_HIDDEN void hp_symbolize_postfork_child(void);

#endif
