/*
 * Bottom layer: the version and the error texts of the public API
 * (HEAPPROF_ERR_MAP in heapprof.h), for every layer's messages.
 */
#include "heapprof.h"

int
heapprof_version(void)
{
    return HEAPPROF_VERSION_NUMBER;
}

/* The build passes the project version (CMakeLists.txt); the header's
 * number must agree with it. */
_Static_assert(HP_PROJECT_VERSION_NUMBER == HEAPPROF_VERSION_NUMBER,
               "include/heapprof.h's HEAPPROF_VERSION_* differ from the "
               "project version in CMakeLists.txt");

const char *
heapprof_version_string(void)
{
    return HP_PROJECT_VERSION;
}

const char *
heapprof_strerror(int err)
{
    switch (err) {
#define HP_STRERROR_(name, value, text)                                        \
    case value:                                                                \
        return text;
        HEAPPROF_ERR_MAP(HP_STRERROR_)
#undef HP_STRERROR_
    default:
        return "unknown heapprof error";
    }
}

const char *
heapprof_err_name(int err)
{
    switch (err) {
#define HP_ERRNAME_(name, value, text)                                         \
    case value:                                                                \
        return "HEAPPROF_" #name;
        HEAPPROF_ERR_MAP(HP_ERRNAME_)
#undef HP_ERRNAME_
    default:
        return "HEAPPROF_UNKNOWN";
    }
}
