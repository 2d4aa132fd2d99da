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
 * listener thread. HEAPPROF_EBUSY when the address is in use (nothing
 * started, nothing logged: the tree agent decides, see agent.h); other
 * failures (bad address, no libmicrohttpd) are logged in one line and
 * profiling carries on. A second call while a listener runs does nothing.
 * 0 or a negative HEAPPROF_E* code. Call it with the fence raised, outside
 * any allocator hook.
 */
HP_HIDDEN int hp_listener_start(const char *addr);

/*
 * Ask the listener thread to stop (heapprof detach): within a second it
 * answers pending requests, stops the daemon (closing the socket) and
 * exits; a later hp_listener_start starts a new one. Returns at once:
 * it may run while every other thread is stopped by a debugger.
 */
HP_HIDDEN void hp_listener_stop(void);

/* Stops the listener and waits until its descriptors are closed (3 s at
 * most); true if it was running. hp_listener_start starts it again. */
HP_HIDDEN bool hp_listener_pause(void);

/*
 * Fork child: the listener thread did not survive the fork; forget it and
 * close the inherited listening socket, so the parent alone serves. Logs
 * nothing, never blocks; the child's tree agent (agent.h) answers the
 * parent and takes the address over if the parent goes.
 */
HP_HIDDEN void hp_listener_postfork_child(void);

#endif
