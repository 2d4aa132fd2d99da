/*
 * The tree agent (tree.h): in every process that runs heapprof with
 * HEAPPROF_HTTP, one thread (all signals blocked) that answers the owner
 * of the listener on an abstract unix socket named from its pid, so the
 * owner can merge this process's profiles into its own. It is started at
 * start-up and, in a fork child, from the atfork handler, so a child that
 * never allocates again (an idle backend) is still seen. Peers must be
 * root or this process's user (SO_PEERCRED).
 *
 * It also takes the HEAPPROF_HTTP address over when the process that held
 * it is gone: a fork child whose parent exits (a daemonizing server), or a
 * process that found the address taken by a stranger at start-up (tried
 * once a second). Children of a live owner never try the address.
 */
#ifndef HP_AGENT_H
#define HP_AGENT_H

#include "internal.h"

/*
 * Start the agent for the configured address; in_use: the listener found
 * it taken. Then the one "in use" line is written only when no ancestor
 * runs an agent (the whole tree shares one line). Fence raised, lifecycle
 * lock held; once per process.
 */
HP_HIDDEN void hp_agent_start(const char *addr, bool in_use);

/* Ask the agent's thread to stop (heapprof detach): it closes its socket
 * and exits at once; a later hp_agent_start starts a new one. Returns
 * without waiting. */
HP_HIDDEN void hp_agent_stop(void);

/* Fork child (atfork handler, after heapprof's own state is reset): if the
 * parent had an agent, start this process's own. Logs nothing. */
HP_HIDDEN void hp_agent_postfork_child(void);

#endif
