/*
 * Profile queries as Go's net/http/pprof reads them: form decoding, the
 * first value of each key we know, and the checks of pprof.go's handler
 * and serveDeltaProfile in their order (the first failing one answers).
 */
#include "query.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int
hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/*
 * application/x-www-form-urlencoded decoding of s[0..n) into out (cap
 * bytes, NUL-terminated). Returns the decoded length, -1 for a malformed
 * escape, -2 when it does not fit (longer than anything we look for).
 */
static long
form_decode(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            if (n - i < 3)
                return -1;
            int h = hexval(s[i + 1]), l = hexval(s[i + 2]);
            if (h < 0 || l < 0)
                return -1;
            c = (char)(h * 16 + l);
            i += 2;
        }
        if (o + 1 >= cap)
            return -2;
        out[o++] = c;
    }
    out[o] = '\0';
    return (long)o;
}

/* The keys we read, each with its first value (r.FormValue). */
enum { Q_DEBUG, Q_GC, Q_SECONDS, Q_MIN_AGE, Q_PEAK, Q_NKEYS };
static const char *const query_keys[Q_NKEYS] = {"debug", "gc", "seconds",
                                                "min_age", "peak"};

struct query {
    bool has[Q_NKEYS];
    char val[Q_NKEYS][32];
};

/*
 * Split on '&' and keep the first value of debug, gc and seconds, as
 * r.FormValue does. Unknown keys are ignored (Go ignores them too).
 * Returns NULL, or the one-line reason for a 400.
 */
static const char *
parse_query(const char *q, size_t n, struct query *out)
{
    memset(out, 0, sizeof(*out));
    size_t i = 0;
    while (i < n) {
        size_t j = i;
        while (j < n && q[j] != '&')
            j++;
        const char *kv = q + i;
        size_t kvn = j - i;
        i = j + 1;
        if (kvn == 0)
            continue;
        if (memchr(kv, ';', kvn) != NULL)
            return "malformed query: ';' is not a separator";
        const char *eq = memchr(kv, '=', kvn);
        size_t kn = eq ? (size_t)(eq - kv) : kvn;
        char key[32];
        long kl = form_decode(kv, kn, key, sizeof(key));
        if (kl == -1)
            return "malformed query: bad %-escape";
        if (kl < 0)
            continue; /* a key longer than ours: not one of ours */
        size_t k = 0;
        while (k < Q_NKEYS && strcmp(key, query_keys[k]) != 0)
            k++;
        if (k == Q_NKEYS)
            continue;
        bool *has = &out->has[k];
        char *val = out->val[k];
        if (*has)
            continue; /* first value wins */
        *has = true;
        if (eq == NULL)
            continue;
        long vl = form_decode(eq + 1, kvn - kn - 1, val, 32);
        if (vl == -1)
            return "malformed query: bad %-escape";
        if (vl == -2) {
            /* Too long to be a number we accept: fail its own check. */
            snprintf(val, 32, "x");
        }
    }
    return NULL;
}

bool
hp_query_parse_int(const char *s, long long *out)
{
    if (*s == '\0')
        return false;
    errno = 0;
    char *end;
    if (s[0] != '+' && s[0] != '-' && (s[0] < '0' || s[0] > '9'))
        return false;
    if ((s[0] == '+' || s[0] == '-') && (s[1] < '0' || s[1] > '9'))
        return false;
    long long v = strtoll(s, &end, 10);
    if (*end != '\0' || errno == ERANGE)
        return false;
    *out = v;
    return true;
}

/*
 * A duration as Go's time.ParseDuration reads it ("90s", "1h30m", "1.5h",
 * "250ms"; units ns us µs ms s m h), or a bare integer of seconds as in
 * "seconds=". Negative and overflowing values are refused.
 */
bool
hp_http_parse_duration(const char *s, uint64_t *ns)
{
    static const struct {
        const char *name;
        uint64_t ns;
    } units[] = {{"ns", 1},           {"us", 1000},        {"\xc2\xb5s", 1000},
                 {"\xce\xbcs", 1000}, {"ms", 1000000},     {"s", 1000000000},
                 {"m", 60000000000},  {"h", 3600000000000}};
    long long whole;
    if (hp_query_parse_int(s, &whole)) {
        if (whole < 0 || (unsigned long long)whole > UINT64_MAX / 1000000000u)
            return false;
        *ns = (uint64_t)whole * 1000000000u;
        return true;
    }
    if (*s == '+')
        s++;
    if (*s == '\0')
        return false;
    double total = 0;
    while (*s != '\0') {
        const char *num = s;
        double v = 0, scale = 1;
        bool digits = false;
        while (*s >= '0' && *s <= '9') {
            v = v * 10 + (*s++ - '0');
            digits = true;
        }
        if (*s == '.') {
            s++;
            while (*s >= '0' && *s <= '9') {
                scale /= 10;
                v += (*s++ - '0') * scale;
                digits = true;
            }
        }
        if (!digits || s == num)
            return false;
        size_t u = 0, nu = sizeof(units) / sizeof(units[0]), best = 0;
        for (size_t i = 0; i < nu; i++) {
            size_t len = strlen(units[i].name);
            if (strncmp(s, units[i].name, len) == 0 && len > best) {
                best = len;
                u = i;
            }
        }
        if (best == 0)
            return false;
        s += best;
        total += v * (double)units[u].ns;
    }
    if (!(total < 18e18))
        return false;
    *ns = (uint64_t)total;
    return true;
}

/* min_age= and peak= (heapprof's own views of the heap profile). */
static const char *
check_views(const struct query *q, enum hp_query_target target,
            struct hp_profile_query *out)
{
    out->aged = q->has[Q_MIN_AGE] && q->val[Q_MIN_AGE][0] != '\0';
    if (out->aged &&
        !hp_http_parse_duration(q->val[Q_MIN_AGE], &out->min_age_ns))
        return "invalid value for \"min_age\" - must be a "
               "duration such as 90s, 10m or 2h, or seconds";
    if (q->has[Q_PEAK] && q->val[Q_PEAK][0] != '\0' &&
        !hp_query_parse_int(q->val[Q_PEAK], &out->peak))
        return "invalid value for \"peak\" - must be an integer";
    bool view = out->aged || out->peak != 0;
    if (view && target != HP_QUERY_HEAP)
        return out->aged ? "\"min_age\" parameter is only supported "
                           "for the heap profile"
                         : "\"peak\" parameter is only supported "
                           "for the heap profile";
    if (out->aged && out->peak != 0)
        return "min_age and peak params are incompatible";
    if (view && q->has[Q_SECONDS] && q->val[Q_SECONDS][0] != '\0')
        return out->aged ? "seconds and min_age params are incompatible"
                         : "seconds and peak params are incompatible";
    return NULL;
}

/* seconds=: net/http/pprof serveDeltaProfile, check for check. */
static const char *
check_seconds(const struct query *q, enum hp_query_target target,
              unsigned write_timeout_s, struct hp_profile_query *out)
{
    if (!q->has[Q_SECONDS] || q->val[Q_SECONDS][0] == '\0')
        return NULL;
    long long sec;
    if (!hp_query_parse_int(q->val[Q_SECONDS], &sec) || sec <= 0)
        return "invalid value for \"seconds\" - must be a positive integer";
    if (target != HP_QUERY_HEAP && target != HP_QUERY_ALLOCS)
        return "\"seconds\" parameter is not supported for this profile type";
    if (write_timeout_s != 0 && sec >= (long long)write_timeout_s)
        return "profile duration exceeds server's WriteTimeout";
    if (sec > (long long)(UINT_MAX / 1000))
        return "invalid value for \"seconds\" - too large";
    if (out->debug != 0)
        return "seconds and debug params are incompatible";
    out->seconds = sec;
    return NULL;
}

const char *
hp_query_profile(const char *qs, size_t n, enum hp_query_target target,
                 unsigned write_timeout_s, struct hp_profile_query *out)
{
    memset(out, 0, sizeof(*out));
    struct query q;
    const char *why = parse_query(qs, n, &q);
    if (why != NULL)
        return why;
    if (q.has[Q_DEBUG] && q.val[Q_DEBUG][0] != '\0' &&
        !hp_query_parse_int(q.val[Q_DEBUG], &out->debug))
        return "invalid value for \"debug\" - must be an integer";
    if (q.has[Q_GC] && q.val[Q_GC][0] != '\0' &&
        !hp_query_parse_int(q.val[Q_GC], &out->gc))
        return "invalid value for \"gc\" - must be an integer";
    why = check_views(&q, target, out);
    if (why != NULL)
        return why;
    return check_seconds(&q, target, write_timeout_s, out);
}
