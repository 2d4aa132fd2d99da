/*
 * The server-agnostic /debug/pprof handler behind heapprof_http_handle():
 * routing, the index, cmdline and symbol pages, and the profile endpoints.
 * No sockets here; listener.c and the integrations feed it requests.
 * Query parsing lives in query.c, delta arithmetic in delta.c and the gc=1
 * callback in gc_registry.c; their headers come with this one so the
 * handler's tests see every piece.
 */
#ifndef HP_HTTP_H
#define HP_HTTP_H

#include "delta.h"
#include "heapprof.h"
#include "internal.h"
#include "profile.h"
#include "query.h"

/*
 * Fill *resp (any previous content ignored, not freed) with the handler's
 * error answer, Go's serveError: text/plain, X-Go-Pprof: 1 so go tool
 * pprof prints the body, msg and a newline. Release it with
 * heapprof_http_response_free().
 */
HP_HIDDEN void hp_http_error(struct heapprof_http_response *resp, int status,
                             const char *msg);

/* Fork child: re-initialise the locks another thread may have held. */
HP_HIDDEN void hp_http_postfork_child(void);

#endif
