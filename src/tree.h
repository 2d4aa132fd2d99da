/*
 * Process trees. Every process that runs heapprof with HEAPPROF_HTTP has an
 * agent (agent.h): a thread answering profile requests on an abstract unix
 * socket named from its pid. The process that owns the listener serves
 * the merged profile of itself and its live descendants that have an
 * agent, each sample labelled with its process's numeric pid; ?pid=N
 * serves one of them. This file is the owner's side (finding the
 * descendants, asking them, merging) and the naming both sides share.
 *
 * Wire format on the agent's socket, one request per connection:
 *   request   "GET <path?query>\n"   or   "RESUME <id>\n"
 *   answer    "HPT1 <status> <served>\n" then the body until EOF
 * where served is the enum heapprof_http_served of the agent's answer. A
 * seconds=N request answers status 202 with the decimal id of the delta
 * the agent keeps; RESUME <id> finishes it (the owner's timer, not the
 * child's, decides when).
 */
#ifndef HP_TREE_H
#define HP_TREE_H

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "heapprof.h"
#include "internal.h"

#define HP_TREE_REQUEST_MAX 4096 /* bytes of a request line */
#define HP_TREE_MAGIC "HPT1"
#define HP_TREE_RESUME "RESUME"

/* The agent address of pid (abstract: no file, gone with the process). */
HP_HIDDEN socklen_t hp_tree_addr(pid_t pid, struct sockaddr_un *sa);

/* pid's parent from /proc/PID/stat, or -1. */
HP_HIDDEN pid_t hp_tree_ppid(pid_t pid);

/* The nearest ancestor of this process that has an agent, or 0. */
HP_HIDDEN pid_t hp_tree_member_ancestor(void);

/*
 * Before a chroot (confine.h): remembers the descendants /proc shows now
 * and, from then on, the children this process forks (hp_tree_note_child,
 * from heapprof's fork), since /proc will not show them: what the merged
 * profile then covers. Children forked some other way (glibc's daemon())
 * and their own children are not seen.
 */
HP_HIDDEN void hp_tree_confine(void);
HP_HIDDEN void hp_tree_note_child(pid_t pid);
/* Fork child: the parent's remembered children are not its own. */
HP_HIDDEN void hp_tree_postfork_child(void);

/*
 * The listener's request handler: heapprof_http_handle() for this process,
 * then, for heap, allocs and delta_heap profiles (debug=0), the same
 * profile from every descendant merged in (or the one ?pid=N names; other
 * endpoints with ?pid=N are that process's answer). Returns as
 * heapprof_http_handle does; for HEAPPROF_HTTP_PENDING (seconds=N) *pending
 * is set instead of resp->pending: finish it with hp_tree_resume() or drop
 * it with hp_tree_cancel(). Blocks for at most a few seconds (a child that
 * does not answer in time is left out). Listener thread, fence raised.
 */
struct hp_tree_pending;
HP_HIDDEN int hp_tree_handle(const struct heapprof_http_request *req,
                             struct heapprof_http_response *resp,
                             struct hp_tree_pending **pending);
HP_HIDDEN void hp_tree_resume(struct hp_tree_pending *p,
                              struct heapprof_http_response *resp);
HP_HIDDEN void hp_tree_cancel(struct hp_tree_pending *p);

#endif
