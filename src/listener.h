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
 * Bind addr ("127.0.0.1:6060", "[::1]:6060", "localhost:6060",
 * "unix:/path"; port 0 picks a free port and logs it) and start the
 * listener thread. Failures (address in use, no libmicrohttpd) are logged
 * in one line and profiling carries on. A second call while a listener
 * runs does nothing. 0 or a negative HEAPPROF_E* code. Call it with the
 * fence raised, outside any allocator hook.
 */
HP_HIDDEN int hp_listener_start(const char *addr);

/*
 * Fork child: the listener thread did not survive the fork; forget it and
 * close the inherited listening socket. Logs nothing, never blocks.
 */
HP_HIDDEN void hp_listener_postfork_child(void);

/*
 * Where the listener is (e.g. "127.0.0.1:41234" or "unix:/path") into buf;
 * 0, or -1 when no listener runs. For tests and diagnostics.
 */
HP_HIDDEN int hp_listener_address(char *buf, size_t cap);

#endif
