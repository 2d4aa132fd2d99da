/*
 * The built-in HTTP listener (HEAPPROF_HTTP): one background thread that
 * serves heapprof_http_handle() through libmicrohttpd, which is dlopen'ed
 * only when a listener is wanted so the preloaded core does not depend on
 * it. The thread stays inside the reentrancy fence for its whole life, so
 * nothing it allocates is ever sampled.
 */
#ifndef HP_LISTENER_H
#define HP_LISTENER_H

#include "internal.h"

/*
 * The slice of libmicrohttpd's ABI (soname libmicrohttpd.so.12) that
 * listener.c uses, declared here so that building heapprof needs neither the library nor
 * its header. Values are those of <microhttpd.h>; tests/http checks them
 * against the header when it is installed.
 */
struct MHD_Daemon;
struct MHD_Connection;
struct MHD_Response;

#define HP_MHD_SONAME "libmicrohttpd.so.12"
#define HP_MHD_NO 0
#define HP_MHD_YES 1
#define HP_MHD_USE_EPOLL 512u
#define HP_MHD_ALLOW_SUSPEND_RESUME (8192u | 1024u)
#define HP_MHD_OPTION_END 0
#define HP_MHD_OPTION_CONNECTION_MEMORY_LIMIT 1
#define HP_MHD_OPTION_CONNECTION_LIMIT 2
#define HP_MHD_OPTION_CONNECTION_TIMEOUT 3
#define HP_MHD_OPTION_NOTIFY_COMPLETED 4
#define HP_MHD_OPTION_URI_LOG_CALLBACK 7
#define HP_MHD_OPTION_LISTEN_SOCKET 12
#define HP_MHD_RESPMEM_PERSISTENT 0
#define HP_MHD_RESPMEM_MUST_FREE 1
#define HP_MHD_HEADER_KIND 1
#define HP_MHD_OPTION_NOTIFY_CONNECTION 27
#define HP_MHD_CONNECTION_NOTIFY_STARTED 0
#define HP_MHD_CONNECTION_INFO_CONNECTION_FD 6
#define HP_MHD_CONNECTION_INFO_SOCKET_CONTEXT 7

/*
 * Bind addr ("127.0.0.1:6060", "[::1]:6060", "localhost:6060",
 * "unix:/path"; port 0 picks a free port and logs it) and start the
 * listener thread. Failures (address in use, no libmicrohttpd) are logged
 * in one line and profiling carries on. A second call while a listener
 * runs does nothing. 0 or a negative HEAPPROF_E* code. Call it with the
 * fence raised, outside any allocator hook.
 */
HP_HIDDEN int hp_listener_start(const char *addr);

/*
 * When the address is in use (typically by the process this one was
 * forked or exec'd from), the thread starts anyway and tries the address
 * once a second, serving as soon as it is free: a daemon's child takes
 * over when its parent exits. One line says so, then one when it listens.
 */

/*
 * Fork child: the listener thread did not survive the fork; forget it and
 * close the inherited listening socket. Logs nothing, never blocks. If
 * the parent had a listener, the child's next sampled allocation (or
 * public call) starts one that waits for the parent's address, quietly:
 * see hp_listener_poll.
 */
HP_HIDDEN void hp_listener_postfork_child(void);

/* The lazy restart, as snapshot.h's: one relaxed load when nothing is
 * pending; safe inside the fence with no heapprof lock held. */
HP_HIDDEN extern int hp_listener_restart_pending;
HP_HIDDEN void hp_listener_restart(void);

static inline void
hp_listener_poll(void)
{
    if (HP_UNLIKELY(__atomic_load_n(&hp_listener_restart_pending,
                                    __ATOMIC_RELAXED)))
        hp_listener_restart();
}

#endif
