/*
 * Linked with -lheapprof: heapprof already is the process's malloc, so
 * heapprof_attach() has nothing to patch and says so with the state.
 */
#include <stdio.h>
#include <stdlib.h>

#include <heapprof.h>

int
main(void)
{
    struct heapprof_attach_stats st;
    int rc = heapprof_attach();
    if (rc != HEAPPROF_OK || heapprof_attach_stats(&st) != HEAPPROF_OK ||
        st.state != HEAPPROF_ATTACH_INTERPOSED || st.slots != 0) {
        fprintf(stderr, "attach_linked: rc %d state %d slots %u\n", rc,
                st.state, st.slots);
        return 1;
    }
    /* Nothing to undo: detach is refused, attach stays a no-op. */
    if (heapprof_detach() != HEAPPROF_EUNSUPPORTED ||
        heapprof_attach() != HEAPPROF_OK) {
        fprintf(stderr, "attach_linked: detach/attach again\n");
        return 1;
    }
    free(malloc(10));
    printf("attach_linked: ok\n");
    return 0;
}
