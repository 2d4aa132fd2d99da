/*
 * Symbolizer state: one Dwfl over the live process, an open-addressing
 * cache address -> frames, interned strings, and a bump arena holding both.
 * Everything hangs off one heap object so a fork child can drop it whole.
 * Names come from the ELF symbol tables (respecting symbol sizes), file:line
 * and inline frames from DWARF when the object has it.
 */
#define _GNU_SOURCE
#include "symbolize.h"

#include <dwarf.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwfl.h>
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <link.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fileio.h"
#include "log.h"
#include "maps.h"
#include "retired.h"
#include "stack.h"
#include "table.h"
#include "utf8.h"

#define MAX_INLINE 16        /* frames kept per address */
#define CACHE_MAX (1u << 19) /* entries before the cache is rebuilt */

/* A cached answer, in the arena. */
struct centry {
    uint32_t nframes;
    struct hp_symframe frames[];
};

/* A module's function symbols sorted by address (see symidx_build). */
struct symidx {
    struct fsym *v;
    size_t n;
};

struct symstate {
    Dwfl *dwfl;
    unsigned long long adds, subs; /* dl_iterate_phdr's at the report */
    struct hp_itab tab;            /* cache: address -> struct centry * */
    struct hp_itab strs;           /* interned strings: hash -> const char * */
    struct hp_arena arena;         /* cache entries and strings */
    struct symstate *orphan;       /* older abandoned state (see postfork) */
};

/*
 * Protects `st` and everything it points to (libdw is not thread-safe).
 * Taken by export sessions and the symbol endpoint; no other heapprof lock
 * is taken while it is held.
 */
static pthread_mutex_t hp_symbolize_lock = PTHREAD_MUTEX_INITIALIZER;
static struct symstate *st;
/* Set by hp_symbolize_confine: the Dwfl is kept across sessions, since its
 * modules could not be opened again. Lock held. */
static bool confined;
/* States a fork child abandoned, kept reachable so leak checkers stay
 * quiet about a deliberate leak. */
static struct symstate *orphans;

/* ------------------------------------------------------------- libc */

/*
 * The C library libdw allocates from, for what crosses between it and us:
 * the array dwarf_getscopes returns and the stream libdw reads the module
 * list from. Here the process's own; the shared library loads libdw into
 * a namespace of its own with its own C library and overrides these
 * (lazy_deps.c).
 */
__attribute__((weak)) void
hp_dw_free(void *p)
{
    free(p);
}

__attribute__((weak)) FILE *
hp_dw_fdopen(int fd, const char *mode)
{
    return fdopen(fd, mode);
}

__attribute__((weak)) int
hp_dw_fclose(FILE *f)
{
    return fclose(f);
}

/* ------------------------------------------------------------- strings */

static bool
str_eq(const void *ctx, uint64_t val)
{
    return strcmp((const char *)(uintptr_t)val, ctx) == 0;
}

/* Interned, sanitized copy of s, or NULL on allocation failure. */
static const char *
intern(struct symstate *s, const char *str)
{
    if (!hp_itab_reserve(&s->strs))
        return NULL;
    /* Sanitize first so that the key is what will be stored. */
    size_t len = strlen(str);
    char small[512];
    char *tmp = len < sizeof(small) ? small : malloc(len + 1);
    if (tmp == NULL)
        return NULL;
    memcpy(tmp, str, len + 1);
    hp_utf8_sanitize(tmp);
    uint64_t h = hp_hash_str(tmp);
    struct hp_islot *slot = hp_itab_find(&s->strs, h, str_eq, tmp);
    const char *found = (const char *)(uintptr_t)slot->val;
    if (found == NULL) {
        char *copy = hp_arena_strdup(&s->arena, tmp);
        if (copy != NULL)
            hp_itab_set(&s->strs, slot, h, (uintptr_t)copy);
        found = copy;
    }
    if (tmp != small)
        free(tmp);
    return found;
}

/* ------------------------------------------------------------- state */

static void
cache_clear(struct symstate *s)
{
    hp_arena_free(&s->arena);
    hp_itab_free(&s->tab);
    hp_itab_free(&s->strs);
}

static int
phdr_counts(struct dl_phdr_info *info, size_t size, void *data)
{
    unsigned long long *c = data;
    if (size >=
        offsetof(struct dl_phdr_info, dlpi_subs) + sizeof(info->dlpi_subs)) {
        c[0] = info->dlpi_adds;
        c[1] = info->dlpi_subs;
    }
    return 1; /* the counters are global: the first object is enough */
}

/*
 * Separate debug info is looked up by build id only (/usr/lib/debug/
 * .build-id/, where Debian's -dbgsym packages put it). The stock
 * dwfl_standard_find_debuginfo would also try debuginfod, which dlopens
 * libdebuginfod, libcurl and some thirty other libraries into the host
 * process (seen with elfutils 0.188) and may download over the network in
 * the middle of a profile request.
 */
/*
 * A module's file by its path; when the process may no longer open that
 * path (it dropped privileges and the file, or a directory on the way, is
 * not readable to its new user), the main program is still reachable
 * through /proc/self/exe, which the kernel lets a process open on itself.
 */
static int
find_elf(Dwfl_Module *mod, void **userdata, const char *name, Dwarf_Addr base,
         char **file_name, Elf **elfp)
{
    int fd =
        dwfl_linux_proc_find_elf(mod, userdata, name, base, file_name, elfp);
    if (fd >= 0 || *elfp != NULL || name[0] != '/')
        return fd;
    char exe[4096];
    if (!hp_self_exe(exe, sizeof exe) || strcmp(exe, name) != 0)
        return fd;
    return open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
}

static const Dwfl_Callbacks proc_callbacks = {
    .find_elf = find_elf,
    .find_debuginfo = dwfl_build_id_find_debuginfo,
};

/*
 * Report the modules from /proc/self/maps. Not dwfl_linux_proc_report():
 * it first reads /proc/PID/auxv, which becomes root's (mode 0400) once
 * the process changes user (memcached -u, postgres, lighttpd), while
 * /proc/self/maps stays readable to the process itself. Only the vDSO is
 * lost (auxv is how libdwfl finds it); nothing allocates from there.
 * Returns 0 or an errno value, as dwfl_linux_proc_report does.
 */
static int
report_modules(Dwfl *dwfl)
{
    int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno;
    FILE *f = hp_dw_fdopen(fd, "r");
    if (f == NULL) {
        close(fd);
        return ENOMEM;
    }
    int rc = dwfl_linux_proc_maps_report(dwfl, f);
    hp_dw_fclose(f);
    return rc;
}

static int
free_symidx(Dwfl_Module *mod, void **ud, const char *name, Dwarf_Addr start,
            void *arg)
{
    (void)mod, (void)name, (void)start, (void)arg;
    struct symidx *x = *ud;
    if (x != NULL) {
        free(x->v);
        free(x);
        *ud = NULL;
    }
    return DWARF_CB_OK;
}

/* End st's Dwfl, with the symbol indexes hanging off its modules. */
static void
drop_dwfl(void)
{
    if (st == NULL || st->dwfl == NULL)
        return;
    dwfl_getmodules(st->dwfl, free_symidx, NULL, 0);
    dwfl_end(st->dwfl);
    st->dwfl = NULL;
}

/* Start a session; called with the lock held. Objects loaded or unloaded
 * since the last one invalidate the cache (an address may mean something
 * else now). The Dwfl itself is made on the first cache miss. */
static void
refresh(void)
{
    if (st == NULL) {
        st = calloc(1, sizeof(*st));
        if (st == NULL)
            return;
    }
    unsigned long long c[2] = {0, 0};
    hp_stack_phdr_iterate(phdr_counts, c);
    if (c[0] == st->adds && c[1] == st->subs && st->tab.n < CACHE_MAX)
        return;
    if (!confined)
        drop_dwfl();
    st->adds = c[0];
    st->subs = c[1];
    cache_clear(st);
}

/*
 * Objects the program has unloaded (retired.h), from their files, where
 * the file on disk is still the one that was loaded (same build id).
 */
static void
report_retired(Dwfl *dwfl)
{
    struct hp_retired *r = malloc(HP_RETIRED_MAX * sizeof(*r));
    if (r == NULL)
        return;
    size_t n = hp_retired_current(r, HP_RETIRED_MAX);
    for (size_t i = 0; i < n; i++) {
        char disk[2 * HP_BUILD_ID_MAX + 1];
        if (r[i].build_id[0] != '\0' &&
            (hp_elf_file_build_id(r[i].path, disk, sizeof(disk)) != 0 ||
             strcmp(disk, r[i].build_id) != 0))
            continue;
        /* Fails harmlessly (NULL) if it overlaps a module reported above. */
        dwfl_report_elf(dwfl, r[i].path, r[i].path, -1, r[i].bias, false);
    }
    free(r);
}

/*
 * A Dwfl over the process, for a cache miss. Made afresh rather than
 * re-reported into an old one: with elfutils 0.188 a re-reported module
 * without DWARF comes back with an empty symbol table.
 */
static bool
ensure_dwfl(void)
{
    if (st->dwfl != NULL)
        return true;
    st->dwfl = dwfl_begin(&proc_callbacks);
    if (st->dwfl == NULL) {
        hp_log_once(dwfl_begin_failed, "symbolize: dwfl_begin: %s",
                    dwfl_errmsg(-1));
        return false;
    }
    dwfl_report_begin(st->dwfl);
    int rc = report_modules(st->dwfl);
    if (rc == 0)
        report_retired(st->dwfl);
    if (dwfl_report_end(st->dwfl, NULL, NULL) != 0 || rc != 0) {
        hp_log_once(dwfl_report_failed,
                    "symbolize: reading the module list failed: %s",
                    rc > 0 ? strerror(rc) : dwfl_errmsg(-1));
        /* Keep what was reported, but start over next session. */
        st->adds = ~0ull;
    }
    return true;
}

/* ------------------------------------------------------------- lookup */

/*
 * Function symbols of one module sorted by address, built on the module's
 * first lookup (libdw's own dwfl_module_addrinfo scans the whole symbol
 * table on every call: about 40 us per address in libc). Each entry covers
 * [lo, hi): a sized symbol exactly its size, so an address past its end is
 * not credited to it (a static function of a stripped object would
 * otherwise be named after the nearest exported one); a sizeless FUNC label
 * (hand-written assembly) up to the next symbol or the end of its section.
 * Lives in the arena; hung on the module's libdw userdata slot.
 */
struct fsym {
    uint64_t lo, hi;
    const char *name; /* libdw's string, valid with the Dwfl */
    int rank;         /* binding preference for equal lo */
    bool sized;
};

static int
fsym_cmp(const void *a, const void *b)
{
    const struct fsym *x = a, *y = b;
    if (x->lo != y->lo)
        return x->lo < y->lo ? -1 : 1;
    /* Aliases: GLOBAL before WEAK before LOCAL, as libdw prefers. */
    return y->rank - x->rank;
}

static uint64_t
section_end(Elf *elf, GElf_Word shndx, Dwarf_Addr bias)
{
    GElf_Shdr shdr;
    Elf_Scn *scn = elf ? elf_getscn(elf, shndx) : NULL;
    if (scn == NULL || gelf_getshdr(scn, &shdr) == NULL)
        return 0;
    return shdr.sh_addr + shdr.sh_size + bias;
}

/* The index lives as long as its module's Dwfl (its names are libdw's
 * strings): plain malloc, freed by drop_dwfl(). */
static struct symidx *
symidx_build(Dwfl_Module *mod)
{
    struct symidx *x = malloc(sizeof(*x));
    if (x == NULL)
        return NULL;
    x->v = NULL;
    x->n = 0;
    int nsyms = dwfl_module_getsymtab(mod);
    if (nsyms <= 0)
        return x;
    struct fsym *v = malloc((size_t)nsyms * sizeof(*v));
    if (v == NULL)
        return x;
    size_t n = 0;
    for (int i = 1; i < nsyms; i++) {
        GElf_Sym sym;
        GElf_Addr addr;
        GElf_Word shndx;
        Elf *elf = NULL;
        Dwarf_Addr bias = 0;
        const char *name =
            dwfl_module_getsym_info(mod, i, &sym, &addr, &shndx, &elf, &bias);
        int type = GELF_ST_TYPE(sym.st_info);
        if (name == NULL || name[0] == '\0' || addr == 0 ||
            shndx == SHN_UNDEF || shndx == (GElf_Word)-1)
            continue;
        uint64_t hi;
        if (sym.st_size > 0 &&
            (type == STT_FUNC || type == STT_GNU_IFUNC || type == STT_NOTYPE)) {
            hi = addr + sym.st_size;
        } else if (sym.st_size == 0 && type == STT_FUNC) {
            hi = section_end(elf, shndx, bias);
            if (hi <= addr)
                continue;
        } else {
            continue;
        }
        int bind = GELF_ST_BIND(sym.st_info);
        v[n++] = (struct fsym){addr, hi, name,
                               bind == STB_GLOBAL ? 2
                               : bind == STB_WEAK ? 1
                                                  : 0,
                               sym.st_size > 0};
    }
    qsort(v, n, sizeof(*v), fsym_cmp);
    /* Keep one entry per address (a sized one over a label, then the
     * preferred binding); clip labels at the next symbol. */
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (k > 0 && v[k - 1].lo == v[i].lo) {
            if (!v[k - 1].sized && v[i].sized)
                v[k - 1] = v[i];
            continue;
        }
        v[k++] = v[i];
    }
    for (size_t i = 0; i + 1 < k; i++)
        if (!v[i].sized && v[i].hi > v[i + 1].lo)
            v[i].hi = v[i + 1].lo;
    struct fsym *fit = realloc(v, (k ? k : 1) * sizeof(*v));
    x->v = fit != NULL ? fit : v;
    x->n = k;
    return x;
}

/* Name of the function symbol covering addr in mod, or NULL; *start (if
 * not NULL) gets the symbol's first address. */
static const char *
symidx_find(Dwfl_Module *mod, uint64_t addr, uint64_t *start)
{
    void **ud = NULL;
    dwfl_module_info(mod, &ud, NULL, NULL, NULL, NULL, NULL, NULL);
    if (ud == NULL)
        return NULL;
    if (*ud == NULL)
        *ud = symidx_build(mod);
    const struct symidx *x = *ud;
    if (x == NULL || x->n == 0)
        return NULL;
    /* Last entry starting at or before addr. */
    size_t lo = 0, hi = x->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (x->v[mid].lo <= addr)
            lo = mid + 1;
        else
            hi = mid;
    }
    /* Symbols may nest (a local label symbol inside a function): look a
     * few entries back for one that still covers addr. */
    for (size_t i = lo, k = 0; i > 0 && k < 8; i--, k++)
        if (addr < x->v[i - 1].hi) {
            if (start != NULL)
                *start = x->v[i - 1].lo;
            return x->v[i - 1].name;
        }
    return NULL;
}

static const char *
die_name(Dwarf_Die *die)
{
    Dwarf_Attribute a;
    const char *n = NULL;
    if (dwarf_attr_integrate(die, DW_AT_linkage_name, &a) != NULL ||
        dwarf_attr_integrate(die, DW_AT_MIPS_linkage_name, &a) != NULL)
        n = dwarf_formstring(&a);
    if (n == NULL && dwarf_attr_integrate(die, DW_AT_name, &a) != NULL)
        n = dwarf_formstring(&a);
    return n;
}

static int64_t
decl_line(Dwarf_Die *die)
{
    int line = 0;
    if (dwarf_decl_line(die, &line) != 0)
        return 0;
    return line;
}

/* Where an inlined_subroutine was called from, in the caller's source. */
static void
call_site(Dwarf_Die *cu, Dwarf_Die *die, const char **file, int64_t *line)
{
    Dwarf_Attribute a;
    Dwarf_Word v;
    *file = NULL;
    *line = 0;
    if (dwarf_formudata(dwarf_attr(die, DW_AT_call_line, &a), &v) == 0)
        *line = (int64_t)v;
    Dwarf_Files *files;
    size_t nfiles;
    if (dwarf_formudata(dwarf_attr(die, DW_AT_call_file, &a), &v) == 0 &&
        dwarf_getsrcfiles(cu, &files, &nfiles) == 0 && v < nfiles)
        *file = dwarf_filesrc(files, v, NULL, NULL);
}

/*
 * addr's frames from DWARF, innermost first: each inlined call, then the
 * physical function (the symbol table's name symname when there is one,
 * which is what the symbol endpoint and other tools report). file and
 * line are addr's own location. 0 when there is no unit or its scopes do
 * not reach a physical function.
 */
static uint32_t
inline_frames(Dwfl_Module *mod, uint64_t addr, const char *symname,
              const char *file, int line, struct hp_symframe *frames)
{
    Dwarf_Addr dbias = 0;
    Dwarf_Die *cu = dwfl_module_addrdie(mod, addr, &dbias);
    if (cu == NULL)
        return 0;
    /* dwarf_getscopes continues an inlined_subroutine with the scopes of
     * its abstract definition; the chain of concrete scopes (each inlined
     * call inside its caller, up to the physical function) comes from
     * dwarf_getscopes_die on the innermost one. */
    Dwarf_Die *scopes = NULL;
    int ns = dwarf_getscopes(cu, addr - dbias, &scopes);
    if (ns > 0) {
        Dwarf_Die inner = scopes[0];
        hp_dw_free(scopes);
        scopes = NULL;
        ns = dwarf_getscopes_die(&inner, &scopes);
    }
    const char *cfile = file;
    int64_t cline = line;
    uint32_t n = 0;
    bool physical = false;
    for (int i = 0; i < ns && n < MAX_INLINE; i++) {
        int tag = dwarf_tag(&scopes[i]);
        if (tag == DW_TAG_inlined_subroutine) {
            const char *name = die_name(&scopes[i]);
            frames[n++] = (struct hp_symframe){name ? name : "??", cfile, cline,
                                               decl_line(&scopes[i])};
            call_site(cu, &scopes[i], &cfile, &cline);
        } else if (tag == DW_TAG_subprogram) {
            const char *name = symname ? symname : die_name(&scopes[i]);
            if (name != NULL) {
                frames[n++] = (struct hp_symframe){name, cfile, cline,
                                                   decl_line(&scopes[i])};
                physical = true;
            }
            break;
        }
    }
    hp_dw_free(scopes);
    return physical ? n : 0; /* inconsistent scopes: the symbol table */
}

/*
 * Fill frames (innermost first) for addr; returns how many. Strings are
 * still libdw's (or namebuf) here; the caller interns them.
 */
static uint32_t
resolve(uint64_t addr, struct hp_symframe *frames, char *namebuf,
        size_t namecap)
{
    Dwfl_Module *mod = dwfl_addrmodule(st->dwfl, addr);
    if (mod == NULL)
        return 0;

    const char *symname = symidx_find(mod, addr, NULL);
    if (symname == NULL) {
        /* Locations are return addresses minus one. Below a signal handler
         * the return address is the first instruction of the signal
         * return trampoline (glibc's __restore_rt), so addr lies just
         * before it, in no function: name the function starting at
         * addr + 1 (its symbol only; addr's line info is not its own). */
        uint64_t start = 0;
        const char *next = symidx_find(mod, addr + 1, &start);
        if (next != NULL && start == addr + 1) {
            frames[0] = (struct hp_symframe){next, NULL, 0, 0};
            return 1;
        }
    }
    /* Static symbol tables spell versioned definitions "name@@VERSION";
     * tools show, and users search for, the bare name. */
    const char *at = symname ? strchr(symname, '@') : NULL;
    if (at != NULL && at != symname && (size_t)(at - symname) < namecap) {
        memcpy(namebuf, symname, (size_t)(at - symname));
        namebuf[at - symname] = '\0';
        symname = namebuf;
    }

    const char *file = NULL;
    int line = 0;
    Dwfl_Line *dl = dwfl_module_getsrc(mod, addr);
    if (dl != NULL)
        file = dwfl_lineinfo(dl, NULL, &line, NULL, NULL, NULL);
    if (file == NULL)
        line = 0;

    uint32_t n = inline_frames(mod, addr, symname, file, line, frames);
    if (n == 0 && symname != NULL)
        frames[n++] = (struct hp_symframe){symname, file, line, 0};
    return n;
}

/* A cache entry holding fresh frames, their strings interned. */
static struct centry *
store_frames(struct symstate *s, const struct hp_symframe *f, uint32_t n)
{
    struct centry *e =
        hp_arena_alloc(&s->arena, sizeof(*e) + n * sizeof(e->frames[0]));
    if (e == NULL)
        return NULL;
    e->nframes = n;
    for (uint32_t i = 0; i < n; i++) {
        e->frames[i] = f[i];
        e->frames[i].func = intern(s, f[i].func);
        e->frames[i].file = f[i].file ? intern(s, f[i].file) : NULL;
        if (e->frames[i].func == NULL)
            return NULL;
    }
    return e;
}

/* This session answers from the cache only (out of memory). Lock held. */
static bool cache_only;

static void
lookup_locked(uint64_t addr, struct hp_symres *out)
{
    out->frames = NULL;
    out->nframes = 0;
    if (st == NULL || addr == 0 || !hp_itab_reserve(&st->tab))
        return;
    struct hp_islot *slot = hp_itab_find(&st->tab, addr, NULL, NULL);
    struct centry *e = (struct centry *)(uintptr_t)slot->val;
    if (e == NULL) {
        if (cache_only || !ensure_dwfl())
            return; /* a miss, not cached: named once memory is back */
        struct hp_symframe f[MAX_INLINE];
        char namebuf[1024];
        uint32_t n = resolve(addr, f, namebuf, sizeof(namebuf));
        e = store_frames(st, f, n);
        if (e == NULL)
            return; /* out of memory: answer "unknown", cache nothing */
        hp_itab_set(&st->tab, slot, addr, (uintptr_t)e);
    }
    out->frames = e->nframes > 0 ? e->frames : NULL;
    out->nframes = e->nframes;
}

/* ------------------------------------------------------------- API */

/* What a session must be able to allocate before it opens modules. */
#define HEADROOM (8u << 20)

/* A mapping of HEADROOM, returned at once: under an address-space limit
 * (libelf maps the files it reads) or a strict overcommit policy with
 * nothing left, no libdw this session. */
static bool
has_headroom(void)
{
    static bool said; /* one line per low-memory streak; lock held */
    void *p = mmap(NULL, HEADROOM, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
        if (!said)
            hp_log("symbolize: not enough memory to read debug "
                   "information; profiles name only functions seen before "
                   "until there is");
        said = true;
        return false;
    }
    munmap(p, HEADROOM);
    said = false;
    return true;
}

int
hp_symbolize_begin(void)
{
    pthread_mutex_lock(&hp_symbolize_lock);
    refresh();
    cache_only = !has_headroom();
    return 0;
}

void
hp_symbolize_thread_init(void)
{
    /* Loads libdw and allocates its thread-local state: inside the fork
     * gate (stack.h), as the calling thread runs beside the host's forks. */
    hp_stack_gate_enter();
    (void)elf_errno();
    (void)dwarf_errno();
    (void)dwfl_errno();
    hp_stack_gate_exit();
}

void
hp_symbolize_lookup(uint64_t addr, struct hp_symres *out)
{
    lookup_locked(addr, out);
}

void
hp_symbolize_end(void)
{
    /* Drop the Dwfl at the end of every session. Everything a profile
     * needs is in the cache (names and files are interned in our arena),
     * while libdw keeps every CU, line table and debug file it opened
     * until dwfl_end: about 15 MB for glibc's separate debug info alone,
     * more with a big program's. Dropping it bounds the symbolizer's
     * memory by its own cache; the price is opening the modules again at
     * the next miss, rare once the program's allocation sites are seen.
     * Kept in a chroot (hp_symbolize_confine): it could not be opened
     * again there. */
    if (!confined)
        drop_dwfl();
    pthread_mutex_unlock(&hp_symbolize_lock);
}

/* The object's own file only: its DWARF, when it has some, is read from
 * it later. Separate debug files are not looked for now: reading glibc's
 * took 150 ms, paid at every chroot (each SSH login's privsep child). */
static int
open_module(Dwfl_Module *mod, void **ud, const char *name, Dwarf_Addr start,
            void *arg)
{
    (void)ud, (void)name, (void)start, (void)arg;
    Dwarf_Addr bias;
    (void)dwfl_module_getelf(mod, &bias);
    return DWARF_CB_OK;
}

void
hp_symbolize_confine(bool on)
{
    pthread_mutex_lock(&hp_symbolize_lock);
    if (!on) {
        confined = false; /* the Dwfl goes at the next session's end */
    } else {
        refresh();
        if (st != NULL && has_headroom() && ensure_dwfl()) {
            dwfl_getmodules(st->dwfl, open_module, NULL, 0);
            confined = true;
        }
    }
    pthread_mutex_unlock(&hp_symbolize_lock);
}

/* Itanium C++ ABI: a global operator new is mangled "_Znw<params>", new[]
 * "_Zna<params>" (a class's own operator new is nested, "_ZN...nwE..."),
 * so the prefix names exactly the global ones; the demangled spelling in
 * case a symbol table carries it. */
static bool
is_entry_point(const char *name)
{
    return strncmp(name, "_Znw", 4) == 0 || strncmp(name, "_Zna", 4) == 0 ||
           strncmp(name, "operator new(", 13) == 0 ||
           strncmp(name, "operator new[](", 15) == 0;
}

uint32_t
hp_symbolize_entry_frames(const uintptr_t *pcs, uint32_t n)
{
    uint32_t skip = 0;
    while (skip + 1 < n && pcs[skip] != 0) {
        struct hp_symres r;
        lookup_locked(pcs[skip] - 1, &r);
        if (r.nframes == 0 || !is_entry_point(r.frames[r.nframes - 1].func))
            break;
        skip++;
    }
    return skip;
}

int
hp_symbolize_where(uint64_t addr, const char **file, uint64_t *vaddr)
{
    if (st == NULL || cache_only || !ensure_dwfl())
        return -1;
    Dwfl_Module *mod = dwfl_addrmodule(st->dwfl, addr);
    GElf_Addr bias = 0;
    if (mod == NULL || dwfl_module_getelf(mod, &bias) == NULL)
        return -1;
    const char *main_file = NULL;
    const char *name =
        dwfl_module_info(mod, NULL, NULL, NULL, NULL, NULL, &main_file, NULL);
    *file = main_file != NULL ? main_file : name;
    *vaddr = addr - bias;
    return *file != NULL ? 0 : -1;
}

int
hp_symbolize_name(uintptr_t addr, char *buf, size_t cap)
{
    struct hp_symres r;
    lookup_locked(addr, &r);
    if (r.nframes == 0 || cap == 0)
        return -1;
    size_t len = strlen(r.frames[0].func);
    if (len >= cap)
        len = cap - 1;
    memcpy(buf, r.frames[0].func, len);
    buf[len] = '\0';
    return 0;
}

void
hp_symbolize_postfork_child(void)
{
    /* In a chroot the files could not be opened again: the parent's
     * state is kept if no thread was using it at the fork (every change
     * is made under the lock). */
    if (confined && pthread_mutex_trylock(&hp_symbolize_lock) == 0) {
        pthread_mutex_unlock(&hp_symbolize_lock);
        return;
    }
    /* Else it may be mid-update by a thread that no longer exists here:
     * leak it (its pages are shared copy-on-write anyway). */
    pthread_mutex_init(&hp_symbolize_lock, NULL);
    if (st != NULL) {
        st->orphan = orphans;
        orphans = st;
    }
    st = NULL;
}
