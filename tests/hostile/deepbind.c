/*
 * A plugin loaded with RTLD_DEEPBIND frees blocks the program allocated
 * and the other way round (deepbind_plugin.c), as plugins that own what
 * they are handed do. Under heapprof a sampled block lives in its sample
 * range, which the C library's free (where the plugin's free is bound)
 * does not know: "free(): invalid pointer" and abort, before heapprof
 * pointed such objects' allocator calls at itself. And a plain dlopen of
 * a bare name (another plugin's) must still search the program's own
 * RUNPATH ($ORIGIN here): heapprof's dlopen must not become the caller.
 *
 *   deepbind DEEPBIND_PLUGIN_PATH OTHER_PLUGIN_PATH
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int
main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s DEEPBIND_PLUGIN OTHER_PLUGIN\n", argv[0]);
        return 2;
    }
    char *copy = strdup(argv[2]);
    void *by_name = dlopen(basename(copy), RTLD_NOW);
    printf("bare name through RUNPATH: %s\n", by_name ? "loaded" : "not found");
    free(copy);
    void *h = dlopen(argv[1], RTLD_NOW | RTLD_DEEPBIND);
    if (h == NULL) {
        printf("dlopen: %s\n", dlerror());
        return 1;
    }
    void (*plugin_free)(void *);
    void *(*plugin_alloc)(size_t);
    *(void **)&plugin_free = dlsym(h, "plugin_free");
    *(void **)&plugin_alloc = dlsym(h, "plugin_alloc");
    long sum = 0;
    for (int i = 0; i < 20000; i++) {
        char *mine = malloc(64 + (size_t)(i % 4096));
        memset(mine, 1, 64);
        plugin_free(mine);
        char *theirs = plugin_alloc(64 + (size_t)(i % 4096));
        memset(theirs, 2, 64);
        sum += theirs[3];
        free(theirs);
    }
    printf("blocks exchanged with the plugin: %ld\n", sum);
    return 0;
}
