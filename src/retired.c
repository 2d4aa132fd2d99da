/*
 * Unloaded objects (see retired.h). The dlclose below is exported from
 * libheapprof.so (and the static library), so a program's dlclose reaches
 * it first; it forwards to the next definition and never changes what the
 * real one does or returns.
 */
#define _GNU_SOURCE
#include "retired.h"

#include <errno.h>
#include <limits.h>
#include <link.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "frame_cache.h"
#include "log.h"
#include "stack.h"

/* Newest last; the oldest is dropped when full. */
static pthread_mutex_t retired_lock = PTHREAD_MUTEX_INITIALIZER;
static struct hp_retired retired[HP_RETIRED_MAX];
static size_t nretired;

struct snapshot {
    struct hp_retired *o;
    unsigned char *seen;
    size_t n, cap;
    bool oom;
};

/* Loaded objects that dlclose could unload: those with a file name (not
 * the main program, whose name is empty). A name relative to the working
 * directory (dlopen("./x.so")) is made absolute now, while it still means
 * the same file. */
static int
snap_object(struct dl_phdr_info *info, size_t size, void *data)
{
    struct snapshot *s = data;
    (void)size;
    const char *name = info->dlpi_name;
    char abs[PATH_MAX];
    if (name == NULL || name[0] == '\0')
        return 0;
    if (name[0] != '/') {
        if (strchr(name, '/') == NULL || realpath(name, abs) == NULL)
            return 0; /* the vDSO ("linux-vdso.so.1"), or gone */
        name = abs;
    }
    if (strlen(name) >= HP_RETIRED_PATH_MAX)
        return 0;
    if (!hp_grow((void **)&s->o, &s->cap, s->n + 1, sizeof(*s->o))) {
        s->oom = true;
        return 1;
    }
    struct hp_retired *r = &s->o[s->n];
    memset(r, 0, sizeof(*r));
    strcpy(r->path, name);
    r->name_ptr = info->dlpi_name;
    r->bias = info->dlpi_addr;
    hp_elf_phdr_exec_segs(info, &r->seg);
    if (r->seg.n == 0)
        return 0;
    hp_elf_phdr_build_id(info, r->build_id, sizeof(r->build_id));
    s->n++;
    return 0;
}

/* After the real dlclose: mark the snapshot's objects still loaded. */
static int
mark_present(struct dl_phdr_info *info, size_t size, void *data)
{
    struct snapshot *s = data;
    (void)size;
    if (info->dlpi_name == NULL)
        return 0;
    for (size_t i = 0; i < s->n; i++)
        if (!s->seen[i] && s->o[i].bias == info->dlpi_addr &&
            s->o[i].name_ptr == info->dlpi_name) {
            s->seen[i] = 1;
            break;
        }
    return 0;
}

static void
keep_retired(const struct hp_retired *r)
{
    pthread_mutex_lock(&retired_lock);
    /* Two threads' dlcloses may both see one object go, and a file may be
     * loaded and unloaded at the same place again: keep the newest once. */
    for (size_t i = 0; i < nretired; i++)
        if (retired[i].bias == r->bias &&
            strcmp(retired[i].path, r->path) == 0) {
            memmove(&retired[i], &retired[i + 1],
                    (nretired - i - 1) * sizeof(retired[0]));
            nretired--;
            break;
        }
    if (nretired == HP_RETIRED_MAX) {
        memmove(&retired[0], &retired[1], (HP_RETIRED_MAX - 1) * sizeof(*r));
        nretired--;
    }
    retired[nretired++] = *r;
    pthread_mutex_unlock(&retired_lock);
}

/* The frame cache's rules for an unloaded object's code. */
static void
forget_frames(const struct hp_retired *r)
{
    for (int i = 0; i < r->seg.n; i++)
        hp_frame_cache_unloaded((uintptr_t)r->seg.start[i],
                                (uintptr_t)r->seg.limit[i]);
}

HP_EXPORT int
dlclose(void *handle)
{
    static void *next_dlclose;
    int (*real)(void *);
    *(void **)&real = hp_next_symbol("dlclose", &next_dlclose);
    if (real == NULL) {
        hp_log_once(no_next_dlclose, "dlclose: the next definition cannot "
                                     "be found; the call fails");
        errno = EINVAL;
        return -1;
    }
    /* heapprof's own bookkeeping is fenced (never sampled); the real
     * dlclose is not: the destructors it runs are the program's code. */
    struct snapshot s = {0};
    int saved = errno;
    hp_fence_enter();
    hp_stack_phdr_iterate(snap_object, &s);
    hp_fence_exit();
    errno = saved;
    int rc = real(handle);
    saved = errno;
    hp_fence_enter();
    /* Unloaded code's addresses may hold other code after the next
     * dlopen: the frame cache forgets them (all, when unsure). */
    if (s.oom || (s.n > 0 && (s.seen = calloc(s.n, 1)) == NULL))
        hp_frame_cache_unloaded(0, UINTPTR_MAX);
    else if (s.n > 0) {
        hp_stack_phdr_iterate(mark_present, &s);
        for (size_t i = 0; i < s.n; i++)
            if (!s.seen[i]) {
                keep_retired(&s.o[i]);
                forget_frames(&s.o[i]);
            }
    }
    free(s.seen);
    free(s.o);
    hp_fence_exit();
    errno = saved;
    return rc;
}

/* Drop the retired objects a loaded object overlaps (retired_lock held). */
static int
drop_overlapped(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    (void)data;
    for (int p = 0; p < info->dlpi_phnum; p++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[p];
        if (ph->p_type != PT_LOAD)
            continue;
        uint64_t lo = info->dlpi_addr + ph->p_vaddr, hi = lo + ph->p_memsz;
        for (size_t i = 0; i < nretired;) {
            bool hit = false;
            for (int k = 0; k < retired[i].seg.n; k++)
                if (retired[i].seg.start[k] < hi &&
                    lo < retired[i].seg.limit[k])
                    hit = true;
            if (hit) {
                memmove(&retired[i], &retired[i + 1],
                        (nretired - i - 1) * sizeof(retired[0]));
                nretired--;
            } else {
                i++;
            }
        }
    }
    return 0;
}

size_t
hp_retired_current(struct hp_retired *out, size_t max)
{
    pthread_mutex_lock(&retired_lock);
    if (nretired > 0)
        hp_stack_phdr_iterate(drop_overlapped, NULL);
    size_t n = 0;
    for (size_t i = nretired; i > 0 && n < max; i--)
        out[n++] = retired[i - 1];
    pthread_mutex_unlock(&retired_lock);
    return n;
}

void
hp_retired_postfork_child(void)
{
    pthread_mutex_init(&retired_lock, NULL);
}
