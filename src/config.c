/*
 * Configuration table: one row per HEAPPROF_* variable drives env parsing,
 * validation and the documentation check. Parsing is strict (the whole
 * value must parse); a bad value is reported once and the previous value
 * (the default) is kept. Nothing here allocates: env is scanned in place.
 */
#define _GNU_SOURCE /* memmem */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/auxv.h>
#include <unistd.h>

#include "ialloc.h"
#include "log.h"

extern char **environ;

enum opt_kind {
    OPT_SIZE,
    OPT_UINT,
    OPT_ADDR,
    OPT_PATH,
    OPT_BOOL,
    OPT_SIGNAL,
    OPT_MODE
};

/*
 * The options, one row each: variable, kind, field of struct hp_settings,
 * default, min, max (numbers), doc. The only home of the defaults: the
 * rows make the settings in force until HEAPPROF_* is read, the defaults
 * every configuration starts from, and the parsing table.
 */
#define HP_OPTIONS(X)                                                          \
    X("HEAPPROF_RATE", OPT_SIZE, rate, HEAPPROF_DEFAULT_RATE, 0,               \
      HEAPPROF_MAX_RATE,                                                       \
      "mean bytes between samples; 0 = off, 1 = every allocation")             \
    X("HEAPPROF_STACK_DEPTH", OPT_UINT, stack_depth,                           \
      HEAPPROF_DEFAULT_STACK_DEPTH, 1, HEAPPROF_MAX_STACK_DEPTH,               \
      "frames kept per sample")                                                \
    X("HEAPPROF_MAX_MEMORY", OPT_SIZE, max_memory, HP_DEFAULT_MAX_MEMORY,      \
      1u << 20, (uint64_t)1 << 40, "budget for heapprof's own metadata")       \
    X("HEAPPROF_HTTP", OPT_ADDR, http, "", 0, 0,                               \
      "listener address: 127.0.0.1:6060, [::1]:6060 or unix:/path")            \
    X("HEAPPROF_HTTP_SOCKET_MODE", OPT_MODE, http_socket_mode, 0600, 0, 0777,  \
      "permissions of a unix: listener's socket (octal)")                      \
    X("HEAPPROF_HTTP_SOCKET_GROUP", OPT_PATH, http_socket_group, "", 0,        \
      sizeof(((struct hp_settings *)0)->http_socket_group),                    \
      "group of a unix: listener's socket (name or number)")                   \
    X("HEAPPROF_HTTP_TOKEN_FILE", OPT_PATH, http_token_file, "", 0, 0,         \
      "file holding a bearer token every request must present")                \
    X("HEAPPROF_SNAPSHOT_DIR", OPT_PATH, snapshot_dir, "", 0, 0,               \
      "directory for periodic heap snapshots")                                 \
    X("HEAPPROF_SNAPSHOT_INTERVAL", OPT_UINT, snapshot_interval, 60, 1,        \
      86400 * 365, "seconds between snapshots")                                \
    X("HEAPPROF_SNAPSHOT_KEEP", OPT_UINT, snapshot_keep, 10, 1, 1000000,       \
      "snapshot files kept (newest)")                                          \
    X("HEAPPROF_SNAPSHOT_AT_EXIT", OPT_BOOL, snapshot_at_exit, false, 0, 1,    \
      "also write a snapshot when the process exits (exit(), not _exit())")    \
    X("HEAPPROF_SNAPSHOT_SIGNAL", OPT_SIGNAL, snapshot_signal, 0, 0, 0,        \
      "signal that triggers a snapshot (USR2, SIGRTMIN+3, 12); none by "       \
      "default")                                                               \
    X("HEAPPROF_SNAPSHOT_PEAK", OPT_BOOL, snapshot_peak, false, 0, 1,          \
      "also write heap-<pid>-<time>-peak.pb.gz at new highs of in-use "        \
      "memory, keeping the newest (needs HEAPPROF_SNAPSHOT_DIR)")              \
    X("HEAPPROF_SNAPSHOT_PEAK_STEP", OPT_SIZE, snapshot_peak_step, 0, 0,       \
      (uint64_t)1 << 40,                                                       \
      "growth over the last written peak that writes the next; 0 = an "        \
      "eighth of it, at least 4 MiB")                                          \
    X("HEAPPROF_LEAK_REPORT", OPT_BOOL, leak_report, false, 0, 1,              \
      "at exit, print what is still in use (bytes, objects, top sites) on "    \
      "stderr; with HEAPPROF_SNAPSHOT_DIR also the exit snapshot")

#define HP_OPT_DEFAULT(name, kind, field, def, min, max, doc) .field = def,
#define HP_OPT_ROW(name, kind, field, def, min, max, doc)                      \
    {name, kind, offsetof(struct hp_settings, field), min, max, doc},

struct hp_settings hp_settings = {HP_OPTIONS(HP_OPT_DEFAULT)};

struct opt {
    const char *name;
    enum opt_kind kind;
    size_t offset;
    uint64_t min, max;
    const char *doc;
};

static const struct opt options[] = {HP_OPTIONS(HP_OPT_ROW)};

void
hp_settings_defaults(struct hp_settings *s)
{
    *s = (struct hp_settings){HP_OPTIONS(HP_OPT_DEFAULT)};
}

int
hp_parse_u64(const char *s, uint64_t min, uint64_t max, bool size_suffix,
             uint64_t *out, const char **why)
{
    if (s == NULL || *s == '\0') {
        *why = "empty value";
        return -1;
    }
    uint64_t v = 0;
    const char *p = s;
    if (*p < '0' || *p > '9') {
        *why = "not a non-negative integer";
        return -1;
    }
    for (; *p >= '0' && *p <= '9'; p++) {
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10) {
            *why = "too large";
            return -1;
        }
        v = v * 10 + d;
    }
    if (size_suffix && *p != '\0') {
        unsigned shift = 0;
        switch (*p) {
        case 'k':
        case 'K':
            shift = 10;
            break;
        case 'm':
        case 'M':
            shift = 20;
            break;
        case 'g':
        case 'G':
            shift = 30;
            break;
        default:
            break;
        }
        if (shift != 0) {
            if (v > (UINT64_MAX >> shift)) {
                *why = "too large";
                return -1;
            }
            v <<= shift;
            p++;
            if (*p == 'i' && (p[1] == 'B' || p[1] == 'b'))
                p += 2;
            else if (*p == 'B' || *p == 'b')
                p++;
        }
    }
    if (*p != '\0') {
        *why = size_suffix ? "not an integer (optional k/m/g suffix)"
                           : "not a non-negative integer";
        return -1;
    }
    if (v < min || v > max) {
        *why = "out of range";
        return -1;
    }
    *out = v;
    return 0;
}

int
hp_parse_bool(const char *s, bool *out, const char **why)
{
    static const char *const yes[] = {"1", "true", "yes", "on"};
    static const char *const no[] = {"0", "false", "no", "off"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    *why = "not a boolean (1/0, true/false, yes/no, on/off)";
    return -1;
}

/*
 * Signals a user may name. The fault signals (a handler that returns would
 * loop), the uncatchable ones and the real-time signals glibc keeps for
 * itself (32, 33: below SIGRTMIN) are refused.
 */
static const struct {
    const char *name;
    int sig;
} signal_names[] = {
    {"HUP", SIGHUP},     {"INT", SIGINT},       {"QUIT", SIGQUIT},
    {"USR1", SIGUSR1},   {"USR2", SIGUSR2},     {"PIPE", SIGPIPE},
    {"ALRM", SIGALRM},   {"TERM", SIGTERM},     {"CHLD", SIGCHLD},
    {"CONT", SIGCONT},   {"TSTP", SIGTSTP},     {"TTIN", SIGTTIN},
    {"TTOU", SIGTTOU},   {"URG", SIGURG},       {"XCPU", SIGXCPU},
    {"XFSZ", SIGXFSZ},   {"VTALRM", SIGVTALRM}, {"PROF", SIGPROF},
    {"WINCH", SIGWINCH}, {"IO", SIGIO},         {"PWR", SIGPWR},
};

static bool
signal_allowed(int sig)
{
    switch (sig) {
    case SIGKILL:
    case SIGSTOP:
    case SIGSEGV:
    case SIGBUS:
    case SIGILL:
    case SIGFPE:
    case SIGTRAP:
    case SIGSYS:
    case SIGABRT:
        return false;
    default:
        break;
    }
    if (sig < 1 || sig > SIGRTMAX)
        return false;
    return sig < 32 || sig >= SIGRTMIN;
}

int
hp_parse_signal(const char *s, int *out, const char **why)
{
    if (s == NULL || *s == '\0') {
        *why = "empty value";
        return -1;
    }
    uint64_t n;
    int sig = -1;
    if (*s >= '0' && *s <= '9') {
        if (hp_parse_u64(s, 1, 1024, false, &n, why) != 0)
            return -1;
        sig = (int)n;
    } else {
        const char *name = strncasecmp(s, "SIG", 3) == 0 ? s + 3 : s;
        for (size_t i = 0; i < sizeof signal_names / sizeof signal_names[0];
             i++)
            if (strcasecmp(name, signal_names[i].name) == 0)
                sig = signal_names[i].sig;
        if (sig < 0 && (strncasecmp(name, "RTMIN", 5) == 0 ||
                        strncasecmp(name, "RTMAX", 5) == 0)) {
            bool min = strncasecmp(name, "RTMIN", 5) == 0;
            const char *rest = name + 5;
            n = 0;
            if (*rest != '\0' &&
                ((min && *rest != '+') || (!min && *rest != '-'))) {
                *why = "expected RTMIN+n or RTMAX-n";
                return -1;
            }
            if (*rest != '\0' &&
                hp_parse_u64(rest + 1, 0, 64, false, &n, why) != 0)
                return -1;
            sig = min ? SIGRTMIN + (int)n : SIGRTMAX - (int)n;
        }
        if (sig < 0) {
            *why = "unknown signal name";
            return -1;
        }
    }
    if (!signal_allowed(sig)) {
        *why = "signal not usable (reserved, uncatchable or a fault signal)";
        return -1;
    }
    *out = sig;
    return 0;
}

/*
 * The one address parser (the option, heapprof_start and the listener):
 * "unix:/abs/path", "[v6]:port" or "host:port" with a non-empty host and a
 * port 1..65535. Port 0 (a port the kernel picks) is refused: a profiled
 * server must be reachable where its configuration says, and a fork child
 * that takes the listener over needs the same address as its parent.
 */
int
hp_parse_http_addr(const char *s, struct hp_addr *out, const char **why)
{
    struct hp_addr a;
    memset(&a, 0, sizeof a);
    if (s == NULL || *s == '\0') {
        *why = "empty address";
        return -1;
    }
    if (strlen(s) >= HP_ADDR_MAX) {
        *why = "address too long";
        return -1;
    }
    if (strncmp(s, "unix:", 5) == 0) {
        if (s[5] != '/') {
            *why = "unix: needs an absolute path";
            return -1;
        }
        if (strlen(s + 5) >= 108) {
            *why = "unix socket path too long (max 107)";
            return -1;
        }
        a.is_unix = true;
        snprintf(a.host, sizeof a.host, "%s", s + 5);
        goto ok;
    }
    const char *host = s, *colon;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (close == NULL || close == s + 1 || close[1] != ':') {
            *why = "expected [v6-address]:port";
            return -1;
        }
        a.is_v6 = true;
        host = s + 1;
        colon = close + 1;
        memcpy(a.host, host, (size_t)(close - host));
    } else {
        colon = strrchr(s, ':');
        if (colon == NULL) {
            *why = "expected host:port, [v6]:port or unix:/path";
            return -1;
        }
        if (memchr(s, ':', (size_t)(colon - s)) != NULL) {
            *why = "IPv6 addresses must be in brackets: [::1]:port";
            return -1;
        }
        if (colon == s) {
            *why = "no host: give one explicitly, e.g. 127.0.0.1:6060";
            return -1;
        }
        memcpy(a.host, host, (size_t)(colon - host));
    }
    uint64_t port;
    if (hp_parse_u64(colon + 1, 1, 65535, false, &port, why) != 0) {
        *why = "port must be 1..65535";
        return -1;
    }
    a.port = (uint16_t)port;
ok:
    if (out != NULL)
        *out = a;
    return 0;
}

static const struct opt *
find_option(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof options / sizeof options[0]; i++) {
        if (strlen(options[i].name) == len &&
            memcmp(options[i].name, name, len) == 0)
            return &options[i];
    }
    return NULL;
}

/*
 * Lines about the environment a process started with are its tree's to
 * say once: a child exec'd by a process that runs heapprof with the same
 * entry (a launcher's shell script, a pyenv shim: dozens of processes)
 * stays quiet about it, as its parent said it. Read from the parent's
 * /proc files into a stack buffer: no allocation, at start-up only, and
 * only for an entry that has something to say.
 */
static bool reading_start_env; /* hp_ensure_configured's reading */
static const char *current_entry;

static bool parent_said(const char *kv);

static void __attribute__((format(printf, 1, 2)))
config_warn(const char *fmt, ...)
{
    if (reading_start_env && current_entry != NULL &&
        parent_said(current_entry))
        return;
    va_list ap;
    va_start(ap, fmt);
    hp_vlog(fmt, ap);
    va_end(ap);
}

/* Reads /proc/PPID/<file> in chunks; fn sees each and returns true to
 * stop. True if fn stopped, false if it did not or the file cannot be
 * read. */
static bool
scan_parent_file(const char *file, bool (*fn)(const char *, size_t, void *),
                 void *ctx)
{
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/%ld/%s", (long)getppid(), file);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t n;
    bool stopped = false;
    while (!stopped && (n = read(fd, buf, sizeof buf)) > 0)
        stopped = fn(buf, (size_t)n, ctx);
    close(fd);
    return stopped;
}

/* Streaming matchers: a whole environment entry; a library's name in the
 * maps (the tail of the previous chunk is kept for a name cut in two). */
struct entry_match {
    const char *want;
    size_t len, at; /* at: bytes of want matched in this entry, or > len */
};

static bool
match_entry(const char *p, size_t n, void *ctx)
{
    struct entry_match *m = ctx;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\0') {
            if (m->at == m->len)
                return true;
            m->at = 0;
        } else if (m->at < m->len && p[i] == m->want[m->at])
            m->at++;
        else
            m->at = m->len + 1;
    }
    return false;
}

#define LIB_NAME "libheapprof."
struct name_match {
    char tail[sizeof LIB_NAME];
    size_t kept;
};

static bool
match_name(const char *p, size_t n, void *ctx)
{
    struct name_match *m = ctx;
    char joined[2 * sizeof LIB_NAME];
    size_t head = n < sizeof LIB_NAME - 1 ? n : sizeof LIB_NAME - 1;
    memcpy(joined, m->tail, m->kept);
    memcpy(joined + m->kept, p, head);
    if (memmem(joined, m->kept + head, LIB_NAME, sizeof LIB_NAME - 1) ||
        memmem(p, n, LIB_NAME, sizeof LIB_NAME - 1))
        return true;
    m->kept = n < sizeof LIB_NAME - 1 ? n : sizeof LIB_NAME - 1;
    memcpy(m->tail, p + n - m->kept, m->kept);
    return false;
}

/* The parent runs heapprof and started with the same entry kv. Whether it
 * runs heapprof is read once, whatever the number of entries asked. */
static bool
parent_said(const char *kv)
{
    static int runs_heapprof = -1; /* start-up reading: one thread */
    struct entry_match e = {kv, strlen(kv), 0};
    if (!scan_parent_file("environ", match_entry, &e))
        return false;
    if (runs_heapprof < 0) {
        struct name_match lib = {{0}, 0};
        runs_heapprof = scan_parent_file("maps", match_name, &lib);
    }
    return runs_heapprof == 1;
}

static int
apply_one(struct hp_settings *s, const struct opt *o, const char *value)
{
    const char *why = NULL;
    char *field = (char *)s + o->offset;
    switch (o->kind) {
    case OPT_SIZE: {
        uint64_t v;
        if (hp_parse_u64(value, o->min, o->max, true, &v, &why) == 0) {
            *(uint64_t *)(void *)field = v;
            return 0;
        }
        /* Below the minimum: an operator who asks for little gets the
         * least there is, not the default. */
        if (hp_parse_u64(value, 0, o->min, true, &v, &why) == 0) {
            *(uint64_t *)(void *)field = o->min;
            config_warn("%s='%s' is below the minimum; using %llu", o->name,
                        value, (unsigned long long)o->min);
            return -1;
        }
        config_warn("%s='%s' ignored: %s; keeping %llu", o->name, value, why,
                    (unsigned long long)*(uint64_t *)(void *)field);
        return -1;
    }
    case OPT_UINT: {
        uint64_t v;
        if (hp_parse_u64(value, o->min, o->max, false, &v, &why) == 0) {
            *(unsigned *)(void *)field = (unsigned)v;
            return 0;
        }
        config_warn("%s='%s' ignored: %s (%llu..%llu); keeping %u", o->name,
                    value, why, (unsigned long long)o->min,
                    (unsigned long long)o->max, *(unsigned *)(void *)field);
        return -1;
    }
    case OPT_ADDR:
        if (hp_parse_http_addr(value, NULL, &why) == 0) {
            snprintf(field, HP_ADDR_MAX, "%s", value);
            return 0;
        }
        config_warn("%s='%s' ignored: %s; no listener started", o->name, value,
                    why);
        return -1;
    case OPT_PATH: {
        size_t cap = o->max != 0 ? (size_t)o->max : HP_PATH_MAX;
        if (value[0] != '\0' && strlen(value) < cap) {
            snprintf(field, cap, "%s", value);
            return 0;
        }
        config_warn("%s='%s' ignored: %s", o->name, value,
                    value[0] ? "too long" : "empty value");
        return -1;
    }
    case OPT_MODE: {
        char *end;
        errno = 0;
        unsigned long v = strtoul(value, &end, 8);
        if (value[0] >= '0' && value[0] <= '7' && *end == '\0' && errno == 0 &&
            v <= o->max) {
            *(unsigned *)(void *)field = (unsigned)v;
            return 0;
        }
        config_warn("%s='%s' ignored: not an octal mode (0000..0777); keeping "
                    "%04o",
                    o->name, value, *(unsigned *)(void *)field);
        return -1;
    }
    case OPT_BOOL:
        if (hp_parse_bool(value, (bool *)(void *)field, &why) == 0)
            return 0;
        config_warn("%s='%s' ignored: %s; keeping %s", o->name, value, why,
                    *(bool *)(void *)field ? "on" : "off");
        return -1;
    case OPT_SIGNAL:
        if (hp_parse_signal(value, (int *)(void *)field, &why) == 0)
            return 0;
        config_warn("%s='%s' ignored: %s; no snapshot signal", o->name, value,
                    why);
        return -1;
    }
    return -1;
}

/*
 * A set-user-ID, set-group-ID or file-capability program (the kernel's
 * AT_SECURE, what secure_getenv checks) runs with an environment its
 * less privileged caller chose: HEAPPROF_HTTP or HEAPPROF_SNAPSHOT_DIR
 * there would open a listener or write files with the program's
 * privileges. All of HEAPPROF_* is ignored then, with one line if any is
 * set; such a program configures heapprof through heapprof_start().
 */
static bool
environment_untrusted(char *const *envp)
{
    if (getauxval(AT_SECURE) == 0)
        return false;
    for (char *const *e = envp; *e != NULL; e++)
        if (strncmp(*e, "HEAPPROF_", 9) == 0) {
            hp_log_once(secure_env,
                        "set-user-ID or privileged program: HEAPPROF_* "
                        "environment ignored (use heapprof_start)");
            break;
        }
    return true;
}

int
hp_settings_apply_env(struct hp_settings *s, char *const *envp)
{
    int bad = 0;
    if (envp == NULL || environment_untrusted(envp))
        return 0;
    for (char *const *e = envp; *e != NULL; e++) {
        const char *kv = *e;
        if (strncmp(kv, "HEAPPROF_", 9) != 0)
            continue;
        const char *eq = strchr(kv, '=');
        if (eq == NULL)
            continue;
        const struct opt *o = find_option(kv, (size_t)(eq - kv));
        current_entry = kv;
        if (o == NULL) {
            /* Catch typos; names read by other parts (launcher, tests) are
             * listed here too so they do not warn. */
            static const char *const known_other[] = {"HEAPPROF_CONFIG_NO_ENV",
                                                      "HEAPPROF_LIB",
                                                      "HEAPPROF_JOBS", NULL};
            bool other = false;
            for (int i = 0; known_other[i] != NULL; i++)
                other |= strncmp(kv, known_other[i], (size_t)(eq - kv)) == 0 &&
                         known_other[i][eq - kv] == '\0';
            if (!other) {
                config_warn("unknown variable %.*s ignored", (int)(eq - kv),
                            kv);
                bad++;
            }
            continue;
        }
        if (apply_one(s, o, eq + 1) != 0)
            bad++;
    }
    current_entry = NULL;
    return bad;
}

int
hp_settings_from_config(struct hp_settings *s,
                        const struct heapprof_config *cfg)
{
    if (cfg == NULL)
        return HEAPPROF_OK;
    if (cfg->size < offsetof(struct heapprof_config, snapshot_keep) +
                        sizeof cfg->snapshot_keep)
        return HEAPPROF_EINVAL;
    if (cfg->rate > HEAPPROF_MAX_RATE || cfg->stack_depth < 1 ||
        cfg->stack_depth > HEAPPROF_MAX_STACK_DEPTH ||
        cfg->max_memory < (1u << 20))
        return HEAPPROF_EINVAL;
    const char *why;
    if (cfg->http != NULL && hp_parse_http_addr(cfg->http, NULL, &why) != 0)
        return HEAPPROF_EINVAL;
    if (cfg->snapshot_dir != NULL && (cfg->snapshot_dir[0] == '\0' ||
                                      strlen(cfg->snapshot_dir) >= HP_PATH_MAX))
        return HEAPPROF_EINVAL;
    s->rate = cfg->rate;
    s->stack_depth = cfg->stack_depth;
    s->max_memory = cfg->max_memory;
    snprintf(s->http, sizeof s->http, "%s", cfg->http ? cfg->http : "");
    snprintf(s->snapshot_dir, sizeof s->snapshot_dir, "%s",
             cfg->snapshot_dir ? cfg->snapshot_dir : "");
    /* 0 keeps what *s holds (the defaults, as heapprof_config_init). */
    if (cfg->snapshot_interval != 0)
        s->snapshot_interval = cfg->snapshot_interval;
    if (cfg->snapshot_keep != 0)
        s->snapshot_keep = cfg->snapshot_keep;
    return HEAPPROF_OK;
}

/* At a rate this low nearly every block has a live record (about 100
 * bytes each): the 64 MiB default holds some 700 000, a fraction of a real
 * server's heap. The default alone (not a budget the operator chose) is
 * raised there; it is a ceiling, mapped only as records need it. */
#define EXHAUSTIVE_RATE 4096u
#define EXHAUSTIVE_MAX_MEMORY (1ull << 30)

void
hp_settings_apply(const struct hp_settings *s)
{
    hp_settings = *s;
    uint64_t budget = s->max_memory;
    if (budget == HP_DEFAULT_MAX_MEMORY && s->rate > 0 &&
        s->rate <= EXHAUSTIVE_RATE)
        budget = EXHAUSTIVE_MAX_MEMORY;
    hp_ialloc_set_budget(budget);
}

static int config_state; /* 0 none, 1 in progress, 2 done (atomic) */

void
hp_ensure_configured(void)
{
    if (__atomic_load_n(&config_state, __ATOMIC_ACQUIRE) == 2)
        return;
    /* Read HEAPPROF_* once. Safe from any context (no allocation),
     * including the first sampled malloc before constructors ran. */
    int expected = 0;
    if (!__atomic_compare_exchange_n(&config_state, &expected, 1, false,
                                     __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
        return;
    struct hp_settings s;
    hp_settings_defaults(&s);
    reading_start_env = true;
    hp_settings_apply_env(&s, environ);
    reading_start_env = false;
    hp_settings_apply(&s);
    __atomic_store_n(&config_state, 2, __ATOMIC_RELEASE);
}
