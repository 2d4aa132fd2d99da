/*
 * A Boehm GC program profiled by heapprof. It builds a word index (a
 * binary tree of collected nodes that stays reachable), tokenizes text
 * into temporary strings that become garbage at once, and keeps a few
 * pointer-free buffers. After a collection the heap profile shows the
 * index and the buffers in use, and the temporary strings only in
 * alloc_space: heapprof learns from the collector which sampled blocks it
 * reclaimed.
 *
 *   boehm_example heap.pb.gz              zero code: heapprof's GC_*
 *                                         wrappers do the work (linked
 *                                         before libgc, or LD_PRELOAD)
 *   boehm_example --explicit heap.pb.gz   <heapprof_gc.h>: the program
 *                                         reports its blocks itself
 *   go tool pprof -top heap.pb.gz
 *
 * An unmodified Boehm program needs no heapprof call at all: run it as
 * LD_PRELOAD=libheapprof.so HEAPPROF_HTTP=127.0.0.1:6060 ./prog and
 * fetch /debug/pprof/heap?gc=1 (gc=1 runs GC_gcollect first). This one
 * links libheapprof only to write the profile file itself.
 */
#define GC_THREADS
#include <gc.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <heapprof.h>
#include <heapprof_gc.h>

#define NOINLINE __attribute__((noinline))

static int explicit_mode;

/*
 * In explicit mode every collectable allocation is reported with
 * heapprof_gc_on_alloc(). A macro, so that the function using it is the
 * caller of the hook and the leaf of the sample.
 */
#define ALLOC(kind, n)                                                        \
    __extension__({                                                           \
        size_t n_ = (n);                                                      \
        void *p_ = kind(n_);                                                  \
        if (explicit_mode)                                                    \
            heapprof_gc_on_alloc(p_, n_);                                     \
        p_;                                                                   \
    })

struct node {
    struct node *left, *right;
    char *word;
    unsigned count;
};

static struct node *root;     /* reachable: a static root */
static char *buffers[64];     /* pointer-free blocks, kept */

NOINLINE static struct node *
index_word(struct node *n, const char *word, size_t len)
{
    if (n == NULL) {
        n = ALLOC(GC_MALLOC, sizeof *n);
        n->word = ALLOC(GC_MALLOC_ATOMIC, len + 1);
        memcpy(n->word, word, len);
        n->word[len] = '\0';
        n->count = 1;
        return n;
    }
    int c = strncmp(word, n->word, len);
    if (c == 0 && n->word[len] == '\0')
        n->count++;
    else if (c < 0 || (c == 0 && n->word[len] != '\0'))
        n->left = index_word(n->left, word, len);
    else
        n->right = index_word(n->right, word, len);
    return n;
}

/* Each call makes a temporary copy of the line: garbage right away. */
NOINLINE static void
tokenize(const char *line)
{
    size_t len = strlen(line);
    char *copy = ALLOC(GC_MALLOC_ATOMIC, len + 1);
    memcpy(copy, line, len + 1);
    for (char *s = copy; *s != '\0';) {
        while (*s == ' ')
            s++;
        char *e = s;
        while (*e != '\0' && *e != ' ')
            e++;
        if (e > s)
            root = index_word(root, s, (size_t)(e - s));
        s = e;
    }
}

NOINLINE static void
keep_buffers(void)
{
    for (int i = 0; i < 64; i++) {
        buffers[i] = ALLOC(GC_MALLOC_ATOMIC, 64 * 1024);
        buffers[i][0] = (char)i;
    }
}

static unsigned
count_words(const struct node *n)
{
    return n == NULL ? 0 : 1 + count_words(n->left) + count_words(n->right);
}

int
main(int argc, char **argv)
{
    int a = 1;
    if (argc > 1 && strcmp(argv[1], "--explicit") == 0) {
        explicit_mode = 1;
        a++;
    }
    const char *path = argc > a ? argv[a] : "heap.pb.gz";

    GC_INIT();
    if (explicit_mode) {
        int rc = HEAPPROF_GC_ATTACH();
        if (rc != HEAPPROF_OK) {
            fprintf(stderr, "heapprof_gc_attach: %s\n", heapprof_strerror(rc));
            return 1;
        }
    }
    /* A finer rate than the default for a small program. */
    heapprof_set_rate(16 * 1024);

    static const char *const words[] = {
        "alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta",
        "theta", "iota", "kappa", "lambda", "mu", "nu", "xi", "omicron",
    };
    char line[512];
    for (unsigned i = 0; i < 200000; i++) {
        int len = 0;
        for (unsigned w = 0; w < 8; w++)
            len += snprintf(line + len, sizeof line - (size_t)len, "%s%u ",
                            words[(i * 7 + w * 3) % 15], (i + w) % 4000);
        tokenize(line);
    }
    keep_buffers();

    GC_gcollect();
    if (explicit_mode)
        heapprof_gc_collected();
    int rc = heapprof_write_path(path, HEAPPROF_PROFILE_HEAP);
    if (rc != HEAPPROF_OK) {
        fprintf(stderr, "heapprof_write_path: %s\n", heapprof_strerror(rc));
        return 1;
    }
    unsigned check = 0;
    for (int i = 0; i < 64; i++)
        check += (unsigned char)buffers[i][0];
    printf("wrote %s (%s mode; %u distinct words, %u)\n", path,
           explicit_mode ? "explicit" : "zero-code", count_words(root), check);
    return 0;
}
