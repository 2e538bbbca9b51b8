/*
 * bench/http.c - what the dashboard and a Prometheus scrape cost asgd.
 *
 * Starts the real HTTP server (http_start) on a loopback port with a fleet
 * table of N instances (100 and 1,000) and a store in a temporary directory,
 * then sends sequential requests over one keep-alive connection (libcurl) for
 * 2 s per endpoint: the dashboard's three polls (group, instances,
 * activities), /metrics and, as the baseline measured in the same run,
 * /healthz (the server's fixed cost: parsing, routing, one small JSON answer).
 * Prints requests/s, microseconds per request (round trip, client and server
 * in this process), answer size and the ratio endpoint time / baseline time.
 * No thresholds: the machine is shared and noisy (+-50 %).
 */
#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "asgd/conf.h"
#include "common/clock.h"
#include "fleet/fleet.h"
#include "http/http.h"
#include "store/store.h"
#include "support/bench_util.h"

#include "common/banned.h"

enum { SECONDS = 2 };

static size_t sink(char *p, size_t sz, size_t n, void *ud)
{
    *(size_t *)ud += sz * n;
    return sz * n;
}

struct slot_upd {
    double load;
};

static void set_live(struct fleet_slot *s, void *arg)
{
    s->lifecycle = FLEET_IN_SERVICE;
    s->health = FLEET_HEALTH_HEALTHY;
    s->load = ((struct slot_upd *)arg)->load;
    s->last_seen_ms = clk_wall_ms();
}

/* Mean microseconds per request of path over SECONDS; *bytes = size of one answer. */
static double measure(CURL *h, const char *base, const char *path, size_t *bytes, long *status)
{
    char url[256];
    snprintf(url, sizeof url, "%s%s", base, path);
    curl_easy_setopt(h, CURLOPT_URL, url);
    size_t got = 0;
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &got);
    long n = 0;
    double t0 = bench_now_ms() * 1e3, end = t0 + SECONDS * 1e6, t; /* microseconds */
    do {
        got = 0;
        if (curl_easy_perform(h) != CURLE_OK)
            return -1;
        n++;
        t = bench_now_ms() * 1e3;
    } while (t < end);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
    *bytes = got;
    return (t - t0) / (double)n;
}

static int run(int instances)
{
    char dir[] = "/tmp/asgd-bench-http-XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    char fname[64], err[512];
    snprintf(fname, sizeof fname, "bhttp-%d-%d", (int)getpid(), instances);
    (void)fleet_unlink(fname);
    struct fleet *f = NULL;
    struct store *st = NULL;
    struct http_server *srv = NULL;
    CURL *h = NULL;
    int rc = 1;
    if (fleet_open(fname, 4096, 1, &f) || store_open(dir, &st, err, sizeof err)) {
        fprintf(stderr, "bench_http: setup failed: %s\n", err);
        goto out;
    }
    struct group_settings g;
    group_settings_default(&g, "bench");
    g.min_size = 0;
    g.max_size = 4096;
    g.desired_capacity = instances;
    if (store_put_settings(st, &g, -1, NULL))
        goto out;
    for (int i = 0; i < instances; i++) {
        char id[32], addr[32];
        uint32_t idx;
        struct fleet_slot s;
        snprintf(id, sizeof id, "i-%08x", (unsigned)i * 2654435761u);
        snprintf(addr, sizeof addr, "127.0.%d.%d:50051", i / 250, i % 250 + 2);
        if (fleet_alloc(f, id, addr, clk_wall_ms(), &idx) || fleet_read(f, idx, &s))
            goto out;
        struct slot_upd u = {(double)(i % 100)};
        if (fleet_update(f, idx, s.generation, set_live, &u))
            goto out;
    }
    for (int i = 0; i < 50; i++) {
        struct store_activity a = {0};
        snprintf(a.group, sizeof a.group, "bench");
        a.at_ms = clk_wall_ms();
        snprintf(a.kind, sizeof a.kind, "scale");
        snprintf(a.cause, sizeof a.cause, "average load 83%% > 70%% for 60s: %d -> %d", i, i + 1);
        snprintf(a.status, sizeof a.status, "ok");
        if (store_activity_add(st, &a, NULL))
            goto out;
    }
    char base[64];
    if (bench_http_start(st, f, &srv, base, sizeof base, err, sizeof err)) {
        fprintf(stderr, "bench_http: %s\n", err);
        goto out;
    }
    h = curl_easy_init();
    if (!h)
        goto out;
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(h, CURLOPT_BUFFERSIZE, 512L * 1024);
    size_t bytes;
    long status = 0;
    double base_us = measure(h, base, "/healthz", &bytes, &status);
    if (base_us < 0)
        goto out;
    printf("%5d instances  %-28s %8.0f req/s %9.1f us/req %8zu bytes  (baseline)\n", instances,
           "/healthz", 1e6 / base_us, base_us, bytes);
    const char *paths[] = {"/api/v1/group", "/api/v1/instances", "/api/v1/activities?limit=30",
                           "/metrics"};
    double dash = 0;
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        double us = measure(h, base, paths[i], &bytes, &status);
        if (us < 0 || status != 200) {
            fprintf(stderr, "bench_http: %s failed (HTTP %ld)\n", paths[i], status);
            goto out;
        }
        if (i < 3)
            dash += us;
        printf("%5d instances  %-28s %8.0f req/s %9.1f us/req %8zu bytes  ratio %.1fx baseline\n",
               instances, paths[i], 1e6 / us, us, bytes, us / base_us);
    }
    printf("%5d instances  one dashboard refresh (3 calls) takes %.2f ms round trip; polled every "
           "2 s that is at most %.2f%% of one core\n",
           instances, dash / 1000.0, dash / 2e6 * 100.0);
    rc = 0;
out:
    if (h)
        curl_easy_cleanup(h);
    http_free(srv);
    store_close(st);
    fleet_close(f);
    (void)fleet_unlink(fname);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "bench_http: cannot remove %s\n", dir);
    return rc;
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int rc = run(100) || run(1000);
    curl_global_cleanup();
    return rc;
}
