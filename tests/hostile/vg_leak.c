/*
 * Linked with libheapprof.a for valgrind_symbols.sh: one leaked block
 * whose allocation stack valgrind must name (leaky_site <- main). A
 * program holding heapprof's tables once lost all its symbols to valgrind.
 */
#include <stdio.h>
#include <stdlib.h>

__attribute__((noinline)) void *
leaky_site(void)
{
    return malloc(1234);
}

int
main(void)
{
    void *volatile p = leaky_site();
    p = NULL;
    puts("done");
    return p == NULL ? 0 : 1;
}
