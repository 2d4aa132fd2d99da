/*
 * Lazy loading of the export half's libraries in the shared library.
 * libheapprof.so is preloaded into every process a launcher or a shell
 * starts; linking libdw, libelf, zlib and protobuf-c directly made each
 * exec map and relocate them (about 5 ms per exec on the reference VM)
 * although most processes never write a profile. Here each function the
 * export code calls is a hidden stub that dlopen's its library on first
 * use and forwards. The static library and the unit tests link the real
 * libraries instead and never see this file.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <elfutils/libdwfl.h>
#include <gelf.h>
#include <link.h>
#include <protobuf-c/protobuf-c.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "confine.h"
#include "internal.h"
#include "log.h"
#include "stack.h"
#include "symbolize.h"

enum lib { LIB_DW, LIB_ELF, LIB_Z, LIB_PBC, LIB_COUNT };

static const char *const lib_names[LIB_COUNT] = {
    "libdw.so.1", "libelf.so.1", "libz.so.1", "libprotobuf-c.so.1"};
static void *handles[LIB_COUNT];
static bool said[LIB_COUNT];

/* One line per library, however often loading it is retried (each export
 * retries: the address space may have room again). */
static void
cannot_load(enum lib lib, const char *err)
{
    if (!__atomic_exchange_n(&said[lib], true, __ATOMIC_RELAXED))
        hp_log("cannot load %s (%s): %s until it loads", lib_names[lib],
               err ? err : "?",
               lib == LIB_DW || lib == LIB_ELF ? "profiles name no functions"
                                               : "profiles cannot be written");
}

/*
 * libdw and libelf live in a link-map namespace of their own (dlmopen),
 * with their own copy of the C library, whose malloc is neither the
 * host's, nor heapprof's, nor that of an allocator preloaded after
 * heapprof. libdw does not check all its allocations: an allocator failing
 * under it made the host crash (SIGSEGV in dwarf_getsrclines, the
 * assertion in resize_coordinator, or exit(1) from libdw's out-of-memory
 * handler). The namespace's C library allocates with mmap only, so only
 * the address space running out reaches libdw, which the symbolizer's
 * headroom probe catches first. dlmopen failing for want of memory is
 * retried at the next use; failing for want of static TLS (no room for
 * another C library's) loads libdw as the other libraries.
 */
static pthread_mutex_t dw_lock = PTHREAD_MUTEX_INITIALIZER;
static Lmid_t dw_lmid = LM_ID_BASE;
static void (*dw_free)(void *) = free;
static FILE *(*dw_fdopen)(int, const char *) = fdopen;
static int (*dw_fclose)(FILE *) = fclose;

/* libdw into a new namespace, with its C library's functions; dw_lock. */
static void *
open_dw_namespace(void)
{
    void *dw = dlmopen(LM_ID_NEWLM, lib_names[LIB_DW], RTLD_NOW | RTLD_LOCAL);
    if (dw == NULL) {
        const char *err = dlerror();
        if (err == NULL || strstr(err, "static TLS") == NULL) {
            cannot_load(LIB_DW, err);
            return NULL;
        }
        hp_log("%s loaded beside the program (%s): an allocator failing "
               "under heapprof can crash symbolization",
               lib_names[LIB_DW], err);
        return dlopen(lib_names[LIB_DW], RTLD_NOW | RTLD_LOCAL);
    }
    void *fr = dlsym(dw, "free"), *fo = dlsym(dw, "fdopen"),
         *fc = dlsym(dw, "fclose");
    if (dlinfo(dw, RTLD_DI_LMID, &dw_lmid) != 0 || fr == NULL || fo == NULL ||
        fc == NULL) {
        hp_log("cannot load %s: its namespace has no C library",
               lib_names[LIB_DW]);
        return NULL; /* leaked: unloading a namespace is not worth it */
    }
    void (*f1)(void *);
    FILE *(*f2)(int, const char *);
    int (*f3)(FILE *);
    *(void **)&f1 = fr;
    *(void **)&f2 = fo;
    *(void **)&f3 = fc;
    __atomic_store_n(&dw_free, f1, __ATOMIC_RELEASE);
    __atomic_store_n(&dw_fdopen, f2, __ATOMIC_RELEASE);
    __atomic_store_n(&dw_fclose, f3, __ATOMIC_RELEASE);
    return dw;
}

/* The handle of libdw or libelf (same namespace), loading it if need be. */
static void *
dw_handle(enum lib lib)
{
    pthread_mutex_lock(&dw_lock);
    if (handles[LIB_DW] == NULL)
        __atomic_store_n(&handles[LIB_DW], open_dw_namespace(),
                         __ATOMIC_RELEASE);
    if (lib == LIB_ELF && handles[LIB_DW] != NULL && handles[LIB_ELF] == NULL) {
        void *h =
            dw_lmid == LM_ID_BASE
                ? dlopen(lib_names[LIB_ELF], RTLD_NOW | RTLD_LOCAL)
                : dlmopen(dw_lmid, lib_names[LIB_ELF], RTLD_NOW | RTLD_LOCAL);
        if (h == NULL)
            cannot_load(LIB_ELF, dlerror());
        __atomic_store_n(&handles[LIB_ELF], h, __ATOMIC_RELEASE);
    }
    void *h = handles[lib];
    pthread_mutex_unlock(&dw_lock);
    return h;
}

/* Only ever given what libdw allocated, or a stream for it: libdw is
 * loaded by then. */
void
hp_dw_free(void *p)
{
    void (*f)(void *) = __atomic_load_n(&dw_free, __ATOMIC_ACQUIRE);
    f(p);
}

FILE *
hp_dw_fdopen(int fd, const char *mode)
{
    hp_stack_gate_enter();
    void *dw = dw_handle(LIB_DW);
    hp_stack_gate_exit();
    if (dw == NULL)
        return NULL;
    FILE *(*open_fn)(int, const char *) =
        __atomic_load_n(&dw_fdopen, __ATOMIC_ACQUIRE);
    return open_fn(fd, mode);
}

int
hp_dw_fclose(FILE *f)
{
    int (*close_fn)(FILE *) = __atomic_load_n(&dw_fclose, __ATOMIC_ACQUIRE);
    return close_fn(f);
}

/* A library other than libdw and libelf, loading it if need be. */
static void *
plain_handle(enum lib lib)
{
    void *h = __atomic_load_n(&handles[lib], __ATOMIC_ACQUIRE);
    if (h == NULL) {
        /* Racing threads may both dlopen: the loader counts references
         * and returns the same handle, so the loser's is harmless. Deep
         * bound: a program that exports its own copy of these functions
         * (varnishd carries a zlib of its own) would otherwise take
         * zlib's internal calls (deflateReset from deflateInit2_) and
         * corrupt the stream heapprof is writing. */
        h = dlopen(lib_names[lib], RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
        if (h == NULL) {
            cannot_load(lib, dlerror());
            return NULL;
        }
        __atomic_store_n(&handles[lib], h, __ATOMIC_RELEASE);
    }
    return h;
}

void
hp_lazy_deps_preload(void)
{
    hp_stack_gate_enter();
    for (int lib = 0; lib < LIB_COUNT; lib++)
        (void)(lib == LIB_DW || lib == LIB_ELF ? dw_handle((enum lib)lib)
                                               : plain_handle((enum lib)lib));
    hp_stack_gate_exit();
}

static void *
load_sym(enum lib lib, const char *name)
{
    void *h =
        lib == LIB_DW || lib == LIB_ELF ? dw_handle(lib) : plain_handle(lib);
    void *f = h != NULL ? dlsym(h, name) : NULL;
    if (h != NULL && f == NULL)
        hp_log("%s has no %s: profiles cannot be written", lib_names[lib],
               name);
    return f;
}

/* Loading takes the loader's lock (and dw_lock): never across a fork. */
static void *
lazy_sym(enum lib lib, const char *name)
{
    hp_stack_gate_enter();
    void *f = load_sym(lib, name);
    hp_stack_gate_exit();
    return f;
}

/* One stub: resolve once, forward, or return `fail` if unavailable. */
#define HP_LAZY(lib, ret, name, fail, params, args)                            \
    ret name params                                                            \
    {                                                                          \
        static ret(*lazy_fn_) params;                                          \
        ret(*lazy_f_) params = __atomic_load_n(&lazy_fn_, __ATOMIC_ACQUIRE);   \
        if (lazy_f_ == NULL) {                                                 \
            *(void **)&lazy_f_ = lazy_sym(lib, #name);                         \
            if (lazy_f_ == NULL)                                               \
                return fail;                                                   \
            __atomic_store_n(&lazy_fn_, lazy_f_, __ATOMIC_RELEASE);            \
        }                                                                      \
        return lazy_f_ args;                                                   \
    }

#define HP_LAZY_VOID(lib, name, params, args)                                  \
    void name params                                                           \
    {                                                                          \
        static void(*lazy_fn_) params;                                         \
        void(*lazy_f_) params = __atomic_load_n(&lazy_fn_, __ATOMIC_ACQUIRE);  \
        if (lazy_f_ == NULL) {                                                 \
            *(void **)&lazy_f_ = lazy_sym(lib, #name);                         \
            if (lazy_f_ == NULL)                                               \
                return;                                                        \
            __atomic_store_n(&lazy_fn_, lazy_f_, __ATOMIC_RELEASE);            \
        }                                                                      \
        lazy_f_ args;                                                          \
    }

/* ------------------------------------------------------------------ zlib */

HP_LAZY(LIB_Z, int, deflateInit2_, Z_VERSION_ERROR,
        (z_streamp s, int level, int method, int bits, int mem, int strategy,
         const char *version, int size),
        (s, level, method, bits, mem, strategy, version, size))
HP_LAZY(LIB_Z, int, deflate, Z_STREAM_ERROR, (z_streamp s, int flush),
        (s, flush))
HP_LAZY(LIB_Z, int, deflateEnd, Z_STREAM_ERROR, (z_streamp s), (s))
HP_LAZY(LIB_Z, int, inflateInit2_, Z_VERSION_ERROR,
        (z_streamp s, int bits, const char *version, int size),
        (s, bits, version, size))
HP_LAZY(LIB_Z, int, inflate, Z_STREAM_ERROR, (z_streamp s, int flush),
        (s, flush))
HP_LAZY(LIB_Z, int, inflateEnd, Z_STREAM_ERROR, (z_streamp s), (s))

/* ------------------------------------------------------------ protobuf-c */

/* Only compared by address for defaults of singular strings, which
 * profile.proto does not have; never freed. */
const char protobuf_c_empty_string[] = "";

HP_LAZY(LIB_PBC, size_t, protobuf_c_message_get_packed_size, 0,
        (const ProtobufCMessage *m), (m))
HP_LAZY(LIB_PBC, size_t, protobuf_c_message_pack, 0,
        (const ProtobufCMessage *m, uint8_t *out), (m, out))
HP_LAZY(LIB_PBC, size_t, protobuf_c_message_pack_to_buffer, 0,
        (const ProtobufCMessage *m, ProtobufCBuffer *b), (m, b))
HP_LAZY(LIB_PBC, ProtobufCMessage *, protobuf_c_message_unpack, NULL,
        (const ProtobufCMessageDescriptor *d, ProtobufCAllocator *a, size_t len,
         const uint8_t *data),
        (d, a, len, data))
HP_LAZY_VOID(LIB_PBC, protobuf_c_message_free_unpacked,
             (ProtobufCMessage * m, ProtobufCAllocator *a), (m, a))

/* ---------------------------------------------------------------- libelf */

HP_LAZY(LIB_ELF, int, elf_errno, 0, (void), ())
HP_LAZY(LIB_ELF, Elf_Scn *, elf_getscn, NULL, (Elf * e, size_t i), (e, i))
HP_LAZY(LIB_ELF, GElf_Shdr *, gelf_getshdr, NULL, (Elf_Scn * s, GElf_Shdr *d),
        (s, d))

/* ----------------------------------------------------------------- libdw */

HP_LAZY(LIB_DW, int, dwarf_errno, 0, (void), ())
HP_LAZY(LIB_DW, int, dwfl_errno, 0, (void), ())

HP_LAZY(LIB_DW, Dwarf_Attribute *, dwarf_attr, NULL,
        (Dwarf_Die * die, unsigned int name, Dwarf_Attribute *r),
        (die, name, r))
HP_LAZY(LIB_DW, Dwarf_Attribute *, dwarf_attr_integrate, NULL,
        (Dwarf_Die * die, unsigned int name, Dwarf_Attribute *r),
        (die, name, r))
HP_LAZY(LIB_DW, int, dwarf_decl_line, -1, (Dwarf_Die * d, int *l), (d, l))
HP_LAZY(LIB_DW, const char *, dwarf_filesrc, NULL,
        (Dwarf_Files * f, size_t i, Dwarf_Word *mtime, Dwarf_Word *len),
        (f, i, mtime, len))
HP_LAZY(LIB_DW, const char *, dwarf_formstring, NULL, (Dwarf_Attribute * a),
        (a))
HP_LAZY(LIB_DW, int, dwarf_formudata, -1, (Dwarf_Attribute * a, Dwarf_Word *v),
        (a, v))
HP_LAZY(LIB_DW, int, dwarf_getscopes, -1,
        (Dwarf_Die * cu, Dwarf_Addr pc, Dwarf_Die **scopes), (cu, pc, scopes))
HP_LAZY(LIB_DW, int, dwarf_getscopes_die, -1,
        (Dwarf_Die * die, Dwarf_Die **scopes), (die, scopes))
HP_LAZY(LIB_DW, int, dwarf_getsrcfiles, -1,
        (Dwarf_Die * cu, Dwarf_Files **files, size_t *n), (cu, files, n))
HP_LAZY(LIB_DW, int, dwarf_tag, -1, (Dwarf_Die * die), (die))
HP_LAZY(LIB_DW, Dwfl_Module *, dwfl_addrmodule, NULL,
        (Dwfl * dwfl, Dwarf_Addr a), (dwfl, a))
HP_LAZY(LIB_DW, Dwfl *, dwfl_begin, NULL, (const Dwfl_Callbacks *cb), (cb))
HP_LAZY(LIB_DW, int, dwfl_build_id_find_debuginfo, -1,
        (Dwfl_Module * m, void **ud, const char *modname, Dwarf_Addr base,
         const char *file, const char *link, GElf_Word crc, char **out),
        (m, ud, modname, base, file, link, crc, out))
HP_LAZY_VOID(LIB_DW, dwfl_end, (Dwfl * dwfl), (dwfl))
HP_LAZY(LIB_DW, const char *, dwfl_errmsg, "libdw unavailable", (int err),
        (err))
HP_LAZY(LIB_DW, const char *, dwfl_lineinfo, NULL,
        (Dwfl_Line * l, Dwarf_Addr *a, int *line, int *col, Dwarf_Word *mtime,
         Dwarf_Word *len),
        (l, a, line, col, mtime, len))
HP_LAZY(LIB_DW, int, dwfl_linux_proc_find_elf, -1,
        (Dwfl_Module * m, void **ud, const char *name, Dwarf_Addr base,
         char **file, Elf **elf),
        (m, ud, name, base, file, elf))
HP_LAZY(LIB_DW, int, dwfl_linux_proc_maps_report, -1, (Dwfl * dwfl, FILE *f),
        (dwfl, f))
HP_LAZY(LIB_DW, Dwfl_Module *, dwfl_report_elf, NULL,
        (Dwfl * dwfl, const char *name, const char *file, int fd,
         GElf_Addr base, bool add_p_vaddr),
        (dwfl, name, file, fd, base, add_p_vaddr))
HP_LAZY(LIB_DW, Dwarf_Die *, dwfl_module_addrdie, NULL,
        (Dwfl_Module * m, Dwarf_Addr a, Dwarf_Addr *bias), (m, a, bias))
HP_LAZY(LIB_DW, Elf *, dwfl_module_getelf, NULL,
        (Dwfl_Module * m, GElf_Addr *bias), (m, bias))
HP_LAZY(LIB_DW, Dwfl_Line *, dwfl_module_getsrc, NULL,
        (Dwfl_Module * m, Dwarf_Addr a), (m, a))
HP_LAZY(LIB_DW, const char *, dwfl_module_getsym_info, NULL,
        (Dwfl_Module * m, int i, GElf_Sym *s, GElf_Addr *a, GElf_Word *shndx,
         Elf **elf, Dwarf_Addr *bias),
        (m, i, s, a, shndx, elf, bias))
HP_LAZY(LIB_DW, int, dwfl_module_getsymtab, -1, (Dwfl_Module * m), (m))
HP_LAZY(LIB_DW, ptrdiff_t, dwfl_getmodules, -1,
        (Dwfl * d,
         int (*cb)(Dwfl_Module *, void **, const char *, Dwarf_Addr, void *),
         void *arg, ptrdiff_t offset),
        (d, cb, arg, offset))
HP_LAZY(LIB_DW, const char *, dwfl_module_info, NULL,
        (Dwfl_Module * m, void ***ud, Dwarf_Addr *start, Dwarf_Addr *end,
         Dwarf_Addr *dwbias, Dwarf_Addr *symbias, const char **mainfile,
         const char **debugfile),
        (m, ud, start, end, dwbias, symbias, mainfile, debugfile))
HP_LAZY_VOID(LIB_DW, dwfl_report_begin, (Dwfl * dwfl), (dwfl))
HP_LAZY(LIB_DW, int, dwfl_report_end, -1,
        (Dwfl * dwfl,
         int (*removed)(Dwfl_Module *, void *, const char *, Dwarf_Addr,
                        void *),
         void *arg),
        (dwfl, removed, arg))
