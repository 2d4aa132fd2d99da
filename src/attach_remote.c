/*
 * The entry points of `heapprof attach PID` and `heapprof detach PID`
 * (tools/heapprof.in), called inside a running process through gdb once
 * libheapprof is loaded there with dlopen. Settings come from the
 * command's flags, never from the target's environment. What heapprof
 * has to say while attaching or detaching (a refusal and its reason, what
 * was patched) is captured for heapprof_remote_message(), which the
 * command prints in its own terminal: the target's stderr stays clean.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "heapprof.h"
#include "log.h"

#define MAX_SETTINGS 4096
#define MAX_LINES 32

/* Serialises the entry points; message is what the last one said. */
static pthread_mutex_t remote_lock = PTHREAD_MUTEX_INITIALIZER;
static char message[1024];

/*
 * The parser said "NAME='v' ignored: why; keeping N", which is the
 * environment's story; for attach the whole request is refused: turn the
 * first such line into the one refusal line.
 */
static void
refuse_bad_setting(void)
{
    char first[sizeof message];
    snprintf(first, sizeof first, "%s", message);
    first[strcspn(first, "\n")] = '\0';
    char *cut = strstr(first, "; keeping");
    if (cut == NULL)
        cut = strstr(first, "; no ");
    if (cut != NULL)
        *cut = '\0';
    char *ignored = strstr(first, " ignored:");
    if (ignored != NULL)
        memmove(ignored, ignored + 8, strlen(ignored + 8) + 1);
    message[0] = '\0';
    hp_log("attach: refused: %s (nothing changed)", first);
}

/*
 * Parse "HEAPPROF_X=v\nHEAPPROF_Y=w" over the defaults into *s, with the
 * environment parser (so values mean what they mean in HEAPPROF_*). 0, or
 * -1 after logging what is wrong.
 */
static int
parse_settings(const char *text, struct hp_settings *s)
{
    static char copy[MAX_SETTINGS];
    char *lines[MAX_LINES + 1];
    size_t n = 0, len = text != NULL ? strlen(text) : 0;
    if (len >= sizeof copy) {
        hp_log("attach: refused: settings longer than %zu bytes",
               sizeof copy - 1);
        return -1;
    }
    memcpy(copy, text != NULL ? text : "", len + 1);
    for (char *p = copy; *p != '\0' && n < MAX_LINES;) {
        lines[n++] = p;
        p += strcspn(p, "\n");
        if (*p == '\n')
            *p++ = '\0';
    }
    lines[n] = NULL;
    hp_settings_defaults(s);
    if (hp_settings_apply_env(s, lines) != 0) {
        refuse_bad_setting();
        return -1;
    }
    return 0;
}

static int
attach_locked(const char *settings)
{
    struct heapprof_attach_stats st;
    heapprof_attach_stats(&st);
    if (st.state == HEAPPROF_ATTACH_PATCHED) {
        hp_log("attach: refused: already attached (heapprof detach first)");
        return HEAPPROF_EBUSY;
    }
    struct hp_settings s;
    if (parse_settings(settings, &s) != 0)
        return HEAPPROF_EINVAL;
    int rc = heapprof_attach();
    if (rc != HEAPPROF_OK)
        return rc;
    heapprof_attach_stats(&st);
    if (st.state == HEAPPROF_ATTACH_INTERPOSED) {
        hp_log("attach: refused: heapprof is already this process's malloc "
               "(LD_PRELOAD or linked in); its HEAPPROF_* settings apply");
        return HEAPPROF_EBUSY;
    }
    hp_lifecycle_apply(&s);
    hp_log("attached: %u GOT slots in %u objects%s%s%s%s", st.slots, st.objects,
           s.http[0] ? "; http " : "", s.http,
           s.snapshot_dir[0] ? "; snapshots in " : "", s.snapshot_dir);
    return HEAPPROF_OK;
}

int
heapprof_remote_attach(const char *settings)
{
    pthread_mutex_lock(&remote_lock);
    hp_log_capture(message, sizeof message);
    int rc = attach_locked(settings);
    hp_log_capture(NULL, 0);
    pthread_mutex_unlock(&remote_lock);
    return rc;
}

int
heapprof_remote_detach(void)
{
    pthread_mutex_lock(&remote_lock);
    hp_log_capture(message, sizeof message);
    struct heapprof_attach_stats st;
    heapprof_attach_stats(&st);
    int rc = HEAPPROF_OK;
    if (st.state != HEAPPROF_ATTACH_PATCHED) {
        hp_log("detach: not attached%s",
               st.state == HEAPPROF_ATTACH_INTERPOSED
                   ? " (heapprof is this process's malloc by LD_PRELOAD or "
                     "linking; it cannot be detached)"
                   : "");
        rc = HEAPPROF_ESTATE;
    } else {
        heapprof_detach();
        hp_lifecycle_stop();
        hp_log("detached: %u GOT slots restored; listener and snapshot "
               "writer stopping",
               st.slots);
    }
    hp_log_capture(NULL, 0);
    pthread_mutex_unlock(&remote_lock);
    return rc;
}

const char *
heapprof_remote_message(void)
{
    return message;
}
