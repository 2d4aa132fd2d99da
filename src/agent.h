/*
 * The tree agent (tree.h): in every process that runs heapprof with
 * HEAPPROF_HTTP, one thread (all signals blocked) that answers the owner
 * of the listener on an abstract unix socket named from its pid, so the
 * owner can merge this process's profiles into its own. It is started at
 * start-up and, in a fork child, by the child's first malloc-family call
 * after the fork (sampled or not), so a child that is idle after its
 * start (an idle backend) is still seen. Peers must be root or this
 * process's user (SO_PEERCRED).
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

/*
 * Fork child (atfork handler): forget the parent's agent; if there was
 * one, this process's own starts at the restart (hp_agent_restart), which
 * the child's next malloc-family call runs (the handler makes that call
 * take the sampler's slow path, see hp_sampler_revisit). Not in the
 * handler: a thread in every child made each fork cost a thread's
 * creation and, at exit, waiting for it to be scheduled and die (3 to
 * 15 ms per fork on a loaded 2-core VM). A child that exits or execs
 * without allocating never pays it. Logs nothing, creates nothing.
 */
HP_HIDDEN void hp_agent_postfork_child(void);
HP_HIDDEN void hp_agent_restart(void);

#endif
