/*
 * The tree agent (tree.h): in every process that runs heapprof with
 * HEAPPROF_HTTP, one thread (all signals blocked) that answers the owner
 * of the listener on an abstract unix socket named from its pid, so the
 * owner can merge this process's profiles into its own. It is started at
 * start-up and, in a fork child, as soon as fork returns there (heapprof's
 * fork, front_fork.c), so a child that never allocates after the fork (an
 * idle backend) is still seen; a child made another way starts it at its
 * first malloc-family call. Peers must be root or this process's user
 * (SO_PEERCRED).
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

/* Stops the agent and waits until its socket is closed; true if it was
 * running and is gone. hp_agent_resume starts it again (same address). */
HP_HIDDEN bool hp_agent_pause(void);
HP_HIDDEN void hp_agent_resume(void);

/*
 * Fork child (atfork handler): forget the parent's agent; if there was
 * one, this process's own starts at hp_agent_restart, which heapprof's
 * fork calls once the real fork returns in the child (every atfork
 * handler has run), or else the child's next malloc-family call (the
 * handler makes that call take the sampler's slow path, see
 * hp_sampler_revisit). Not in the handler: creating a thread allocates,
 * and an allocator whose own handler runs after heapprof's still holds
 * its locks there. Logs nothing, creates nothing.
 */
HP_HIDDEN void hp_agent_postfork_child(void);
/* Start the agent a fork child wants (hp_agent_postfork_child), once;
 * nothing otherwise. Binds the socket before the thread runs, so the
 * owner's connections wait in its backlog from the moment it returns. */
HP_HIDDEN void hp_agent_restart(void);

#endif
