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
 * instead would hand the confined program a way out of its chroot. */
static void
say_where_snapshots_go(const char *root)
{
    char dir[HP_PATH_MAX];
    snprintf(dir, sizeof dir, "%s", hp_settings.snapshot_dir);
    if (dir[0] == '\0')
        return;
    char *abs = realpath(root, NULL);
    hp_log("chroot: snapshots go to %s inside %s from now on", dir,
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
    say_where_snapshots_go(root);
}

void
hp_confine_abandon(void)
{
    hp_symbolize_confine(false);
}
