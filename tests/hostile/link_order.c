/* Linked with an allocator and libheapprof.so in either order, for
 * shadowed_malloc.sh: nothing but start-up. */
int
main(void)
{
    return 0;
}
