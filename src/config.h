/*
 * Configuration: compiled defaults < struct heapprof_config passed by the
 * program < HEAPPROF_* env vars < run-time setters. Env vars are parsed
 * strictly; a bad value is reported once on stderr and the default kept.
 * The option table in config.c drives parsing and docs/configuration.md.
 */
#ifndef HP_CONFIG_H
#define HP_CONFIG_H

#include "heapprof.h"
#include "internal.h"

#define HP_ADDR_MAX 256
#define HP_PATH_MAX 1024

/* Effective settings, with owned string storage (no malloc). */
struct hp_settings {
    uint64_t rate;
    unsigned stack_depth;
    uint64_t max_memory;
    char http[HP_ADDR_MAX];            /* "" = no listener */
    unsigned http_socket_mode;         /* unix: listener's socket mode */
    char http_socket_group[64];        /* its group (name or gid); "" = ours */
    char http_token_file[HP_PATH_MAX]; /* bearer token; "" = none */
    char snapshot_dir[HP_PATH_MAX];    /* "" = no snapshots */
    unsigned snapshot_interval;
    unsigned snapshot_keep;
    bool snapshot_at_exit;       /* one more snapshot at exit() */
    int snapshot_signal;         /* 0 = none; else snapshot on it */
    bool snapshot_peak;          /* -peak.pb.gz at new highs */
    uint64_t snapshot_peak_step; /* growth between them; 0 = auto */
    bool leak_report;            /* leak summary on stderr at exit */
};

HP_HIDDEN extern struct hp_settings hp_settings;

/* Make *s the effective settings (the metadata budget included). The
 * rate is held here only: the sampler reads hp_settings.rate. */
HP_HIDDEN void hp_settings_apply(const struct hp_settings *s);

/* Defaults into *s. */
HP_HIDDEN void hp_settings_defaults(struct hp_settings *s);
/* Copy a public config into *s (strings truncated are an error). */
HP_HIDDEN int hp_settings_from_config(struct hp_settings *s,
                                      const struct heapprof_config *cfg);
/*
 * Apply HEAPPROF_* from envp (NULL-terminated, e.g. environ) over *s,
 * warning once per bad value via hp_log and keeping the previous value;
 * nothing in a set-user-ID or otherwise privileged program (AT_SECURE).
 * Never allocates. Returns the number of bad values found.
 */
HP_HIDDEN int hp_settings_apply_env(struct hp_settings *s, char *const *envp);

/* Strict parsers, exposed for unit tests. 0 on success, -1 on error with
 * a static reason in *why. */
HP_HIDDEN int hp_parse_u64(const char *s, uint64_t min, uint64_t max,
                           bool size_suffix, uint64_t *out, const char **why);
/* A listener address, parsed (see hp_parse_http_addr). */
struct hp_addr {
    bool is_unix; /* host is the socket's path */
    bool is_v6;   /* written [v6]:port */
    char host[HP_ADDR_MAX];
    uint16_t port; /* 1..65535 (not for unix) */
};
/* Check s and, if out is not NULL, split it into *out. */
HP_HIDDEN int hp_parse_http_addr(const char *s, struct hp_addr *out,
                                 const char **why);
HP_HIDDEN int hp_parse_bool(const char *s, bool *out, const char **why);
/* "USR1", "SIGUSR1", "SIGRTMIN+3", "12": a signal heapprof may catch
 * (never one glibc or the kernel reserve, nor a fault signal). */
HP_HIDDEN int hp_parse_signal(const char *s, int *out, const char **why);

/* Read HEAPPROF_* once if that has not happened yet; safe anywhere, also in
 * an allocation made before heapprof's constructor ran. */
HP_HIDDEN void hp_ensure_configured(void);

/*
 * heapprof.c's lifecycle, for heapprof attach (attach_remote.c):
 * hp_lifecycle_apply makes s the process's settings and (re)starts the
 * listener and snapshot writer it names, sampling on; hp_lifecycle_stop
 * pauses sampling and asks both to stop (they exit within a second).
 * Neither waits for another thread.
 */
HP_HIDDEN void hp_lifecycle_apply(const struct hp_settings *s);

/* Runs close_fn(arg), the program's closefrom or close_range, with
 * heapprof's services stopped around it (heapprof.c). */
HP_HIDDEN void hp_lifecycle_around_close(void (*close_fn)(void *), void *arg);
HP_HIDDEN void hp_lifecycle_stop(void);

#endif
