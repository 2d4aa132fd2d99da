/*
 * A stand-in for an existing C server, used by scripts/demo.sh and the HTTP
 * smoke test: it knows nothing about heapprof (zero-code mode, run it under
 * LD_PRELOAD=libheapprof.so). It "handles requests" in a loop with a few
 * recognisable call sites:
 *   session_cache_insert  keeps one session per client (bounded: live)
 *   audit_log_append      never frees its lines (a slow leak: live, growing)
 *   read_request_body     a per-request buffer, freed (alloc_space only)
 *   render_response       a per-request buffer, freed (alloc_space only)
 *
 * usage: demo_server [SECONDS]   (default 3600; SIGTERM/SIGINT stop it)
 * Prints "demo_server: ready" on stdout once the first requests are done.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NCLIENTS 4096

struct session {
    uint64_t client;
    size_t len;
    char data[];
};

static struct session *sessions[NCLIENTS];
static char **audit_log;
static size_t audit_len, audit_cap;
static volatile sig_atomic_t stop;
static uint64_t rng = 0x9E3779B97F4A7C15ull;

static uint64_t
rand64(void)
{
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return rng * 0x2545F4914F6CDD1Dull;
}

static void
on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

__attribute__((noinline)) static void
session_cache_insert(uint64_t client)
{
    size_t len = 512 + rand64() % 3584;
    struct session *s = malloc(sizeof *s + len);
    if (s == NULL)
        return;
    s->client = client;
    s->len = len;
    memset(s->data, 0, len);
    struct session **slot = &sessions[client % NCLIENTS];
    free(*slot);
    *slot = s;
}

__attribute__((noinline)) static void
audit_log_append(uint64_t client)
{
    if (audit_len == audit_cap) {
        size_t cap = audit_cap ? audit_cap * 2 : 1024;
        char **grown = realloc(audit_log, cap * sizeof *grown);
        if (grown == NULL)
            return;
        audit_log = grown;
        audit_cap = cap;
    }
    char *line = malloc(96);
    if (line == NULL)
        return;
    snprintf(line, 96, "client %llu served", (unsigned long long)client);
    audit_log[audit_len++] = line;
}

__attribute__((noinline)) static char *
read_request_body(size_t *len)
{
    *len = 256 + rand64() % 16384;
    char *body = malloc(*len);
    if (body != NULL)
        memset(body, 'x', *len);
    return body;
}

__attribute__((noinline)) static size_t
render_response(const char *body, size_t len)
{
    char *out = malloc(len * 2 + 64);
    if (out == NULL)
        return 0;
    size_t n = (size_t)snprintf(out, 64, "HTTP/1.1 200 OK\r\n\r\n");
    memcpy(out + n, body, len);
    size_t total = n + len;
    free(out);
    return total;
}

__attribute__((noinline)) static void
handle_request(uint64_t client)
{
    size_t len;
    char *body = read_request_body(&len);
    if (body == NULL)
        return;
    render_response(body, len);
    session_cache_insert(client);
    if (client % 4 == 0)
        audit_log_append(client);
    free(body);
}

int
main(int argc, char **argv)
{
    double seconds = argc > 1 ? atof(argv[1]) : 3600.0;
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);

    struct timespec t0, now, pause = {0, 1000000};
    clock_gettime(CLOCK_MONOTONIC, &t0);
    uint64_t served = 0;
    for (int i = 0; i < 20000; i++)
        handle_request(rand64() % (NCLIENTS * 2));
    served += 20000;
    printf("demo_server: ready\n");
    fflush(stdout);
    while (!stop) {
        /* About 10 000 requests a second: a steady, gentle load. */
        for (int i = 0; i < 10; i++)
            handle_request(rand64() % (NCLIENTS * 2));
        served += 10;
        nanosleep(&pause, NULL);
        clock_gettime(CLOCK_MONOTONIC, &now);
        if ((double)(now.tv_sec - t0.tv_sec) +
                (double)(now.tv_nsec - t0.tv_nsec) / 1e9 >=
            seconds)
            break;
    }
    printf("demo_server: served %llu requests\n", (unsigned long long)served);
    return 0;
}
