/* Getting ready for a chroot (see confine.h): one place that knows what
 * heapprof needs from the filesystem before it is gone. */
#include "confine.h"

#include <limits.h>
#include <stdlib.h>

#include "config.h"
#include "fileio.h"
#include "log.h"
#include "symbolize.h"
#include "tree.h"

__attribute__((weak)) void
hp_lazy_deps_preload(void)
{
}

/* Snapshots follow their path into the root: keeping the directory open
 * instead would hand the confined program a way out of its chroot. The
 * root's full path is taken before the call; the line is said after it
 * succeeded. */
static char snapshot_note[2 * HP_PATH_MAX];

static void
note_where_snapshots_go(const char *root)
{
    snapshot_note[0] = '\0';
    char dir[HP_PATH_MAX];
    snprintf(dir, sizeof dir, "%s", hp_settings.snapshot_dir);
    if (dir[0] == '\0')
        return;
    char *abs = realpath(root, NULL);
    snprintf(snapshot_note, sizeof snapshot_note,
             "chroot: snapshots go to %s inside %s from now on", dir,
             abs != NULL ? abs : root);
    free(abs);
}

void
hp_confine_begin(const char *root)
{
    hp_self_remember();
    hp_lazy_deps_preload();
    hp_symbolize_confine(true);
    hp_tree_confine();
    note_where_snapshots_go(root);
}

void
hp_confine_end(bool done)
{
    if (!done)
        hp_symbolize_confine(false);
    else if (snapshot_note[0] != '\0')
        hp_log("%s", snapshot_note);
}
