/*
 * Attach without preload: heapprof_attach() rewrites the GOT slots that
 * bind the malloc family (and dlopen) in every loaded ELF object of the
 * main link-map namespace so that they point at front_preload.c's
 * wrappers. Objects come from dl_iterate_phdr; their slots from the
 * dynamic relocations (DT_JMPREL, DT_RELA, DT_REL) of type JUMP_SLOT,
 * GLOB_DAT and the absolute 64-bit type. The table of hooked names below
 * is the only state besides the attach lock; everything else is re-read
 * from the objects on each scan, so a scan is idempotent.
 */
#define _GNU_SOURCE 1
#include "front_attach.h"

#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <link.h>
#include <pthread.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <unistd.h>

#include "heapprof.h"
#include "internal.h"
#include "log.h"
#include "record.h"
#include "stack.h"

#if defined(__linux__) && UINTPTR_MAX == UINT64_MAX &&                         \
    (defined(__x86_64__) || defined(__aarch64__))
#define HP_ATTACH_SUPPORTED 1
#endif

#ifdef HP_ATTACH_SUPPORTED

#if defined(__x86_64__)
#define HP_R_JUMP_SLOT R_X86_64_JUMP_SLOT
#define HP_R_GLOB_DAT R_X86_64_GLOB_DAT
#define HP_R_ABS64 R_X86_64_64
#else
#define HP_R_JUMP_SLOT R_AARCH64_JUMP_SLOT
#define HP_R_GLOB_DAT R_AARCH64_GLOB_DAT
#define HP_R_ABS64 R_AARCH64_ABS64
#endif

/* ------------------------------------------------------------ the hooks */

enum {
    H_MALLOC,
    H_FREE,
    H_CALLOC,
    H_REALLOC,
    H_REALLOCARRAY,
    H_POSIX_MEMALIGN,
    H_ALIGNED_ALLOC,
    H_MEMALIGN,
    H_VALLOC,
    H_PVALLOC,
    H_MALLOC_USABLE_SIZE,
    H_DLOPEN,
    H_COUNT
};

struct hook {
    const char *name;
    uintptr_t wrapper; /* heapprof's function */
    uintptr_t orig;    /* what the wrappers forward to (dlsym RTLD_NEXT) */
};

/*
 * Protected by attach_lock, which is never taken on an allocation path
 * and is taken with no other heapprof lock held; wrapper and orig are
 * written once (resolve) and only read afterwards.
 */
static pthread_mutex_t attach_lock = PTHREAD_MUTEX_INITIALIZER;
static struct hook hooks[H_COUNT];
static bool resolved;
static int state; /* enum heapprof_attach_state; atomic reads */
static unsigned long long last_adds = ~0ull; /* dlpi_adds of last scan */
/* Detached since the last attach: the frees of blocks sampled before were
 * not all seen. */
static bool detached;

static void *attach_dlopen(const char *file, int flags);

/* ------------------------------------------------------------ scanning */

enum scan_mode { SCAN_ATTACH, SCAN_DETACH, SCAN_COUNT };

struct scan {
    enum scan_mode mode;
    bool only_if_changed; /* stop at once if no object was added */
    uintptr_t self_pc;    /* an address inside libheapprof */
    uintptr_t ldso, vdso; /* AT_BASE, AT_SYSINFO_EHDR */
    unsigned index;       /* objects visited so far */
    unsigned long long adds;
    /* Results. */
    unsigned objects; /* objects with a slot pointing at heapprof */
    unsigned slots;   /* slots pointing at heapprof after the scan */
    unsigned changed; /* slots written by this scan */
    unsigned foreign; /* slots bound elsewhere, left alone */
    unsigned failed;  /* objects not parsed or not patched */
    bool main_failed;
};

struct object {
    const char *name;
    uintptr_t base; /* load bias */
    const ElfW(Phdr) * phdr;
    unsigned phnum;
    uintptr_t lo, hi;             /* extent of the PT_LOADs */
    uintptr_t relro_lo, relro_hi; /* pages the loader made read-only */
    bool self;
    bool unprotected; /* relro pages made writable */
    bool failed;
    unsigned slots;
};

static bool
in_object(const struct object *o, uintptr_t p, size_t len)
{
    return p >= o->lo && p <= o->hi && len <= o->hi - p;
}

/*
 * d_ptr values: glibc relocates the dynamic section in place (absolute
 * addresses) unless it is read-only, e.g. the vDSO's; accept both.
 */
static uintptr_t
dyn_addr(const struct object *o, uintptr_t v)
{
    if (in_object(o, v, 1))
        return v;
    if (in_object(o, v + o->base, 1))
        return v + o->base;
    return 0;
}

static bool
writable(const struct object *o, uintptr_t p)
{
    for (unsigned i = 0; i < o->phnum; i++) {
        const ElfW(Phdr) *ph = &o->phdr[i];
        uintptr_t s = o->base + ph->p_vaddr;
        if (ph->p_type == PT_LOAD && (ph->p_flags & PF_W) && p >= s &&
            p + sizeof(uintptr_t) <= s + ph->p_memsz)
            return true;
    }
    return false;
}

/* Objects of the main link-map namespace are on _r_debug's list; the
 * loader changes that list only under the lock dl_iterate_phdr holds. */
static bool
in_base_namespace(uintptr_t dynamic)
{
    for (struct link_map *lm = _r_debug.r_map; lm != NULL; lm = lm->l_next)
        if ((uintptr_t)lm->l_ld == dynamic)
            return true;
    return false;
}

static int
hook_index(const char *name)
{
    /* Cheap reject: every hooked name starts with one of these. */
    if (name[0] != 'm' && name[0] != 'f' && name[0] != 'c' && name[0] != 'r' &&
        name[0] != 'p' && name[0] != 'a' && name[0] != 'v' && name[0] != 'd')
        return -1;
    for (int i = 0; i < H_COUNT; i++)
        if (strcmp(name, hooks[i].name) == 0)
            return i;
    return -1;
}

static void
patch_slot(struct scan *s, struct object *o, uintptr_t slot, int h,
           bool lazy_ok)
{
    const struct hook *k = &hooks[h];
    uintptr_t cur = __atomic_load_n((uintptr_t *)slot, __ATOMIC_ACQUIRE);
    uintptr_t want;
    switch (s->mode) {
    case SCAN_COUNT:
        if (cur == k->wrapper)
            o->slots++;
        return;
    case SCAN_DETACH:
        if (cur != k->wrapper)
            return;
        want = k->orig;
        break;
    case SCAN_ATTACH:
    default:
        if (cur == k->wrapper) {
            o->slots++;
            return;
        }
        /* Patch only what is bound to the allocator the wrappers forward
         * to (or a lazy PLT slot not bound yet, which would bind there):
         * a slot bound to another allocator must keep it, or blocks would
         * reach the wrong free. */
        if (cur != k->orig && !(lazy_ok && in_object(o, cur, 1))) {
            s->foreign++;
            return;
        }
        want = k->wrapper;
        break;
    }
    if (slot >= o->relro_lo && slot + sizeof(uintptr_t) <= o->relro_hi &&
        !o->unprotected) {
        if (mprotect((void *)o->relro_lo, o->relro_hi - o->relro_lo,
                     PROT_READ | PROT_WRITE) != 0) {
            hp_log("attach: %s: cannot make RELRO writable: %s",
                   o->name[0] ? o->name : "(main program)", strerror(errno));
            o->failed = true;
            return;
        }
        o->unprotected = true;
    }
    /* One aligned 8-byte store: a thread calling through the slot now
     * sees either the old function or the wrapper, both valid. */
    __atomic_store_n((uintptr_t *)slot, want, __ATOMIC_RELEASE);
    s->changed++;
    if (s->mode == SCAN_ATTACH)
        o->slots++;
}

static void
scan_table(struct scan *s, struct object *o, const ElfW(Sym) * symtab,
           const char *strtab, size_t strsz, uintptr_t tab, size_t size,
           size_t ent, bool rela)
{
    if (tab == 0 || size == 0)
        return;
    if (ent < (rela ? sizeof(ElfW(Rela)) : sizeof(ElfW(Rel))) ||
        !in_object(o, tab, size)) {
        o->failed = true;
        return;
    }
    for (size_t off = 0; off + ent <= size; off += ent) {
        const ElfW(Rel) *r = (const ElfW(Rel) *)(tab + off);
        uint64_t type = ELF64_R_TYPE(r->r_info);
        uint64_t symi = ELF64_R_SYM(r->r_info);
        if ((type != HP_R_JUMP_SLOT && type != HP_R_GLOB_DAT &&
             type != HP_R_ABS64) ||
            symi == 0)
            continue;
        if (type == HP_R_ABS64 &&
            (!rela || ((const ElfW(Rela) *)r)->r_addend != 0))
            continue; /* a pointer into the function, not to it */
        const ElfW(Sym) *sym = &symtab[symi];
        if (!in_object(o, (uintptr_t)sym, sizeof *sym) || sym->st_name >= strsz)
            continue;
        int h = hook_index(strtab + sym->st_name);
        if (h < 0 || hooks[h].orig == 0)
            continue;
        /* heapprof's own dlopen calls need no rescan, and its own
         * pointers to the allocator (lazy_deps.c's dw_free, reset when
         * libdw gets a namespace of its own) are its business. */
        if (o->self && (h == H_DLOPEN || type == HP_R_ABS64))
            continue;
        uintptr_t slot = o->base + r->r_offset;
        if ((slot & (sizeof(uintptr_t) - 1)) != 0 || !writable(o, slot))
            continue;
        /* An unresolved lazy slot points into its own object's PLT; a
         * slot bound to the object's own definition does too, so only an
         * undefined symbol counts as lazy. */
        bool lazy_ok = type == HP_R_JUMP_SLOT && sym->st_shndx == SHN_UNDEF;
        patch_slot(s, o, slot, h, lazy_ok);
    }
}

static void
scan_dynamic(struct scan *s, struct object *o, const ElfW(Dyn) * dyn)
{
    uintptr_t symtab = 0, strtab = 0, jmprel = 0, rela = 0, rel = 0;
    size_t strsz = 0, pltrelsz = 0, relasz = 0, relsz = 0;
    size_t relaent = sizeof(ElfW(Rela)), relent = sizeof(ElfW(Rel));
    ElfW(Sxword) pltrel = DT_RELA;
    for (const ElfW(Dyn) *d = dyn; d->d_tag != DT_NULL; d++) {
        switch (d->d_tag) {
        case DT_SYMTAB:
            symtab = dyn_addr(o, d->d_un.d_ptr);
            break;
        case DT_STRTAB:
            strtab = dyn_addr(o, d->d_un.d_ptr);
            break;
        case DT_STRSZ:
            strsz = d->d_un.d_val;
            break;
        case DT_JMPREL:
            jmprel = dyn_addr(o, d->d_un.d_ptr);
            break;
        case DT_PLTRELSZ:
            pltrelsz = d->d_un.d_val;
            break;
        case DT_PLTREL:
            pltrel = d->d_un.d_val;
            break;
        case DT_RELA:
            rela = dyn_addr(o, d->d_un.d_ptr);
            break;
        case DT_RELASZ:
            relasz = d->d_un.d_val;
            break;
        case DT_RELAENT:
            relaent = d->d_un.d_val;
            break;
        case DT_REL:
            rel = dyn_addr(o, d->d_un.d_ptr);
            break;
        case DT_RELSZ:
            relsz = d->d_un.d_val;
            break;
        case DT_RELENT:
            relent = d->d_un.d_val;
            break;
        default:
            break;
        }
    }
    if (jmprel == 0 && rela == 0 && rel == 0)
        return; /* nothing imported */
    if (symtab == 0 || strtab == 0 || strsz == 0 ||
        !in_object(o, strtab, strsz) ||
        (pltrel != DT_RELA && pltrel != DT_REL)) {
        o->failed = true;
        return;
    }
    /* Some linkers let DT_RELA's range end with the PLT relocations:
     * visit those once. */
    if (jmprel != 0 && pltrel == DT_RELA && rela != 0 && jmprel >= rela &&
        jmprel + pltrelsz == rela + relasz)
        relasz -= pltrelsz;
    const ElfW(Sym) *syms = (const ElfW(Sym) *)symtab;
    const char *strs = (const char *)strtab;
    scan_table(s, o, syms, strs, strsz, jmprel, pltrelsz,
               pltrel == DT_RELA ? relaent : relent, pltrel == DT_RELA);
    scan_table(s, o, syms, strs, strsz, rela, relasz, relaent, true);
    scan_table(s, o, syms, strs, strsz, rel, relsz, relent, false);
}

static int
scan_object(struct dl_phdr_info *info, size_t size, void *arg)
{
    struct scan *s = arg;
    unsigned index = s->index++;
    if (index == 0 && size >= offsetof(struct dl_phdr_info, dlpi_subs)) {
        s->adds = info->dlpi_adds;
        if (s->only_if_changed && info->dlpi_adds == last_adds)
            return 1; /* nothing new since the last scan: stop */
    }
    struct object o = {.name = info->dlpi_name ? info->dlpi_name : "",
                       .base = info->dlpi_addr,
                       .phdr = info->dlpi_phdr,
                       .phnum = info->dlpi_phnum,
                       .lo = UINTPTR_MAX};
    const ElfW(Phdr) *dynph = NULL;
    long page = sysconf(_SC_PAGESIZE);
    uintptr_t pmask = ~(uintptr_t)((page > 0 ? page : 4096) - 1);
    for (unsigned i = 0; i < o.phnum; i++) {
        const ElfW(Phdr) *ph = &o.phdr[i];
        uintptr_t start = o.base + ph->p_vaddr;
        if (ph->p_type == PT_LOAD) {
            if (start < o.lo)
                o.lo = start;
            if (start + ph->p_memsz > o.hi)
                o.hi = start + ph->p_memsz;
        } else if (ph->p_type == PT_DYNAMIC) {
            dynph = ph;
        } else if (ph->p_type == PT_GNU_RELRO) {
            o.relro_lo = start & pmask;
            o.relro_hi = (start + ph->p_memsz) & pmask;
        }
    }
    if (dynph == NULL || o.lo >= o.hi)
        return 0;
    /* The loader and the vDSO: the loader's allocator calls are its own
     * business (it uses libc's through pointers set at start-up). */
    if ((s->ldso != 0 && s->ldso >= o.lo && s->ldso < o.hi) ||
        (s->vdso != 0 && s->vdso >= o.lo && s->vdso < o.hi))
        return 0;
    uintptr_t dynamic = o.base + dynph->p_vaddr;
    if (!in_object(&o, dynamic, dynph->p_memsz))
        return 0;
    if (!in_base_namespace(dynamic)) {
        /* Another namespace has its own libc whose blocks our wrappers'
         * free must never see. */
        return 0;
    }
    o.self = s->self_pc >= o.lo && s->self_pc < o.hi;
    scan_dynamic(s, &o, (const ElfW(Dyn) *)dynamic);
    if (o.unprotected &&
        mprotect((void *)o.relro_lo, o.relro_hi - o.relro_lo, PROT_READ) != 0)
        hp_log("attach: %s: cannot restore RELRO protection: %s",
               o.name[0] ? o.name : "(main program)", strerror(errno));
    if (o.failed) {
        s->failed++;
        if (index == 0)
            s->main_failed = true;
        if (s->mode == SCAN_ATTACH)
            hp_log("attach: %s: relocations not understood; its "
                   "allocations are not profiled",
                   o.name[0] ? o.name : "(main program)");
    }
    if (o.slots > 0) {
        s->objects++;
        s->slots += o.slots;
    }
    return 0;
}

static void
scan_all(struct scan *s, enum scan_mode mode, bool only_if_changed)
{
    memset(s, 0, sizeof *s);
    s->mode = mode;
    s->only_if_changed = only_if_changed;
    s->self_pc = (uintptr_t)&heapprof_attach;
    s->ldso = (uintptr_t)getauxval(AT_BASE);
    s->vdso = (uintptr_t)getauxval(AT_SYSINFO_EHDR);
    /* Gated (stack.h): heapprof_attach and the dlopen hook run on any
     * thread while another may fork. */
    hp_stack_phdr_iterate(scan_object, s);
    if (mode == SCAN_ATTACH && s->index > 0)
        last_adds = s->adds;
}

/* ----------------------------------------------------------- resolving */

void
hp_attach_postfork_child(void)
{
    pthread_mutex_init(&attach_lock, NULL);
}

static const char *
object_of(uintptr_t addr)
{
    Dl_info di;
    if (addr != 0 && dladdr((void *)addr, &di) && di.dli_fname != NULL &&
        di.dli_fname[0] != '\0')
        return di.dli_fname;
    return addr != 0 ? "the main program" : "nowhere";
}

static bool
in_main_program(uintptr_t addr)
{
    Dl_info di;
    struct link_map *lm = NULL;
    return addr != 0 &&
           dladdr1((void *)addr, &di, (void **)&lm, RTLD_DL_LINKMAP) &&
           lm == _r_debug.r_map;
}

/* The object defining addr, by load address (0 when none). */
static uintptr_t
object_base(uintptr_t addr)
{
    Dl_info di;
    return addr != 0 && dladdr((void *)addr, &di) ? (uintptr_t)di.dli_fbase : 0;
}

/*
 * What the wrappers forward to: the process's own definition (dlsym
 * RTLD_DEFAULT, what the GOT slots are bound to), so that a block
 * allocated before attach and freed after reaches the allocator that made
 * it: glibc's, or jemalloc's in a program linked against it (Debian's
 * redis-server). A non-PIE program's canonical PLT entry jumps through
 * its own GOT slot, which attach patches: the definition behind it is
 * the next one (dlsym RTLD_NEXT). Each wrapper forwards where its slots
 * pointed, so a form the allocator lacks (jemalloc has no pvalloc) keeps
 * going to whoever answered it; but malloc, free, calloc, realloc and
 * posix_memalign, which heapprof itself mixes, must share one object.
 * 0, or HEAPPROF_EUNSUPPORTED (logged).
 */
static int
choose_orig(const uintptr_t defaults[H_COUNT])
{
    for (int i = 0; i < H_COUNT; i++) {
        uintptr_t next = (uintptr_t)dlsym(RTLD_NEXT, hooks[i].name);
        hooks[i].orig = defaults[i] == 0 || in_main_program(defaults[i])
                            ? next
                            : defaults[i];
    }
    static const int core[] = {H_MALLOC, H_FREE, H_CALLOC, H_REALLOC,
                               H_POSIX_MEMALIGN};
    uintptr_t home = object_base(hooks[H_MALLOC].orig);
    for (size_t k = 0; k < sizeof core / sizeof core[0]; k++) {
        int i = core[k];
        if (hooks[i].orig == 0) {
            hp_log("attach: refused: the process's %s was not found (dlsym)",
                   hooks[i].name);
            return HEAPPROF_EUNSUPPORTED;
        }
        if (object_base(hooks[i].orig) == home)
            continue;
        hp_log("attach: refused: the process's malloc is in %s but its %s "
               "in %s: blocks would reach the wrong free",
               object_of(hooks[H_MALLOC].orig), hooks[i].name,
               object_of(hooks[i].orig));
        return HEAPPROF_EUNSUPPORTED;
    }
    const void *fns[HP_FRONT_NEXT_COUNT];
    for (int i = 0; i < HP_FRONT_NEXT_COUNT; i++)
        fns[i] = (const void *)hooks[i < H_REALLOCARRAY ? i : i + 1].orig;
    if (!hp_front_use_next(fns)) {
        hp_log("attach: refused: heapprof already forwards to another "
               "allocator than the process's malloc in %s",
               object_of(hooks[H_MALLOC].orig));
        return HEAPPROF_EUNSUPPORTED;
    }
    return HEAPPROF_OK;
}

/*
 * Find what the wrappers forward to and check that it is the process's
 * allocator. Called once, attach_lock held. Returns HEAPPROF_OK,
 * HEAPPROF_EUNSUPPORTED (logged) or 1 when heapprof already is the
 * process's malloc.
 */
/* Names and wrappers of the hooks; what they forward to is chosen apart. */
static void
fill_hooks(void)
{
    static const char *const names[H_COUNT] = {"malloc",
                                               "free",
                                               "calloc",
                                               "realloc",
                                               "reallocarray",
                                               "posix_memalign",
                                               "aligned_alloc",
                                               "memalign",
                                               "valloc",
                                               "pvalloc",
                                               "malloc_usable_size",
                                               "dlopen"};
    const uintptr_t wrappers[H_COUNT] = {(uintptr_t)hp_front_malloc,
                                         (uintptr_t)hp_front_free,
                                         (uintptr_t)hp_front_calloc,
                                         (uintptr_t)hp_front_realloc,
                                         (uintptr_t)hp_front_reallocarray,
                                         (uintptr_t)hp_front_posix_memalign,
                                         (uintptr_t)hp_front_aligned_alloc,
                                         (uintptr_t)hp_front_memalign,
                                         (uintptr_t)hp_front_valloc,
                                         (uintptr_t)hp_front_pvalloc,
                                         (uintptr_t)hp_front_malloc_usable_size,
                                         (uintptr_t)attach_dlopen};
    for (int i = 0; i < H_COUNT; i++) {
        hooks[i].name = names[i];
        hooks[i].wrapper = wrappers[i];
    }
}

static int
resolve(void)
{
    fill_hooks();
    uintptr_t defaults[H_COUNT];
    for (int i = 0; i < H_COUNT; i++)
        defaults[i] = (uintptr_t)dlsym(RTLD_DEFAULT, hooks[i].name);
    if (defaults[H_MALLOC] == hooks[H_MALLOC].wrapper)
        return 1;
    if (choose_orig(defaults) != HEAPPROF_OK) {
        memset(hooks, 0, sizeof hooks);
        return HEAPPROF_EUNSUPPORTED;
    }
    /* Have front_preload.c resolve its forwarding now, outside any
     * allocation and inside the fence so this block is not sampled. */
    hp_fence_enter();
    hp_front_free(hp_front_malloc(16));
    hp_fence_exit();
    return HEAPPROF_OK;
}

/* ---------------------------------------------------------- public API */

/*
 * dlopen through a patched slot: the new object and its dependencies are
 * patched before the caller sees the handle. The loader sees heapprof as
 * the caller, which matters only for a bare file name searched through
 * the real caller's DT_RPATH/DT_RUNPATH (docs/nginx.md, limits).
 */
static void *
attach_dlopen(const char *file, int flags)
{
    void *(*real)(const char *, int);
    *(void **)&real = (void *)hooks[H_DLOPEN].orig;
    void *h = real(file, flags);
    if (h != NULL &&
        __atomic_load_n(&state, __ATOMIC_ACQUIRE) == HEAPPROF_ATTACH_PATCHED) {
        int saved = errno;
        pthread_mutex_lock(&attach_lock);
        if (state == HEAPPROF_ATTACH_PATCHED) {
            struct scan s;
            scan_all(&s, SCAN_ATTACH, true);
        }
        pthread_mutex_unlock(&attach_lock);
        errno = saved;
    }
    return h;
}

/*
 * Preload: an object loaded with RTLD_DEEPBIND (front_dlopen.c) binds its
 * allocator calls to its own dependencies, the C library, not to
 * heapprof; a sampled block (from the sample range) freed there would
 * reach the C library's free, which aborts the program. Its slots bound
 * to the next allocator are pointed at the wrappers, as an attach does.
 * Its dlopen is left alone: what it loads itself that way is not seen.
 */
void
hp_attach_bind_deep(void)
{
    pthread_mutex_lock(&attach_lock);
    if (state != HEAPPROF_ATTACH_PATCHED) { /* else attach_dlopen rescans */
        if (hooks[H_MALLOC].orig == 0) {
            fill_hooks();
            for (int i = 0; i < H_DLOPEN; i++)
                hooks[i].orig = (uintptr_t)dlsym(RTLD_NEXT, hooks[i].name);
        }
        struct scan s;
        scan_all(&s, SCAN_ATTACH, false);
    }
    pthread_mutex_unlock(&attach_lock);
}

int
heapprof_attach(void)
{
    int rc = HEAPPROF_OK;
    pthread_mutex_lock(&attach_lock);
    if (state == HEAPPROF_ATTACH_INTERPOSED)
        goto out;
    if (!resolved) {
        rc = resolve();
        if (rc == 1) {
            __atomic_store_n(&state, HEAPPROF_ATTACH_INTERPOSED,
                             __ATOMIC_RELEASE);
            rc = HEAPPROF_OK;
            goto out;
        }
        if (rc != HEAPPROF_OK)
            goto out;
        resolved = true;
    }
    if (detached) {
        /* Attaching again: what was sampled before the detach may have
         * been freed unseen since, so in-use starts again from here, as at
         * a first attach. Before the patching: no new sample is lost. */
        detached = false;
        uint64_t n = hp_record_forget_plain();
        if (n > 0)
            hp_log("attach: %llu blocks sampled before the last detach "
                   "forgotten (their frees since were not seen)",
                   (unsigned long long)n);
    }
    struct scan s;
    scan_all(&s, SCAN_ATTACH, state == HEAPPROF_ATTACH_PATCHED);
    if (state != HEAPPROF_ATTACH_PATCHED && (s.main_failed || s.slots == 0)) {
        hp_log("attach: refused: %s", s.main_failed
                                          ? "the main program's relocations "
                                            "are not understood"
                                          : "no allocator call site found");
        scan_all(&s, SCAN_DETACH, false);
        rc = HEAPPROF_EUNSUPPORTED;
        goto out;
    }
    __atomic_store_n(&state, HEAPPROF_ATTACH_PATCHED, __ATOMIC_RELEASE);
out:
    pthread_mutex_unlock(&attach_lock);
    return rc;
}

int
heapprof_detach(void)
{
    int rc = HEAPPROF_OK;
    pthread_mutex_lock(&attach_lock);
    if (state == HEAPPROF_ATTACH_INTERPOSED) {
        rc = HEAPPROF_EUNSUPPORTED;
    } else if (state == HEAPPROF_ATTACH_PATCHED) {
        struct scan s;
        scan_all(&s, SCAN_DETACH, false);
        last_adds = ~0ull;
        detached = true;
        __atomic_store_n(&state, HEAPPROF_ATTACH_NONE, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&attach_lock);
    return rc;
}

int
heapprof_attach_stats(struct heapprof_attach_stats *st)
{
    if (st == NULL)
        return HEAPPROF_EINVAL;
    memset(st, 0, sizeof *st);
    pthread_mutex_lock(&attach_lock);
    st->state = state;
    if (state == HEAPPROF_ATTACH_PATCHED) {
        struct scan s;
        scan_all(&s, SCAN_COUNT, false);
        st->objects = s.objects;
        st->slots = s.slots;
        st->failed = s.failed;
    }
    pthread_mutex_unlock(&attach_lock);
    return HEAPPROF_OK;
}

#else /* !HP_ATTACH_SUPPORTED */

void
hp_attach_bind_deep(void)
{
    /* No GOT patching here: a deep-bound object keeps its bindings. */
}

int
heapprof_attach(void)
{
    hp_log_once(attach_unsupported,
                "attach: refused: not supported on this platform");
    return HEAPPROF_EUNSUPPORTED;
}

int
heapprof_detach(void)
{
    return HEAPPROF_OK;
}

int
heapprof_attach_stats(struct heapprof_attach_stats *st)
{
    if (st == NULL)
        return HEAPPROF_EINVAL;
    memset(st, 0, sizeof *st);
    return HEAPPROF_OK;
}

#endif
