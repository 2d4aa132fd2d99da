/*
 * The process's malloc is a toy allocator linked ahead of libc that lacks
 * posix_memalign (libc answers it): attaching would mix the two, so
 * heapprof_attach() must refuse with HEAPPROF_EUNSUPPORTED, log one line
 * and patch nothing.
 *
 * usage: attach_refused LIBHEAPPROF
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

#include <heapprof.h>

int
main(int argc, char **argv)
{
    if (argc != 2)
        return 2;
    void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (h == NULL) {
        fprintf(stderr, "attach_refused: dlopen: %s\n", dlerror());
        return 2;
    }
    __typeof__(heapprof_attach) *attach;
    __typeof__(heapprof_attach_stats) *stats;
    *(void **)&attach = dlsym(h, "heapprof_attach");
    *(void **)&stats = dlsym(h, "heapprof_attach_stats");
    if (attach == NULL || stats == NULL)
        return 2;
    void *before = malloc(100);
    int rc = attach();
    struct heapprof_attach_stats st;
    int src = stats(&st);
    free(before);
    free(malloc(200));
    if (rc != HEAPPROF_EUNSUPPORTED || src != HEAPPROF_OK ||
        st.state != HEAPPROF_ATTACH_NONE || st.slots != 0) {
        fprintf(stderr, "attach_refused: rc %d state %d slots %u\n", rc,
                st.state, st.slots);
        return 1;
    }
    printf("attach_refused: ok\n");
    return 0;
}
