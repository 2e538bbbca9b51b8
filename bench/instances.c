/*
 * bench/instances.c - the unpaged instance listing of a group of 10,000 instances.
 *
 * Fills a real fleet table and a real SQLite store (a row per instance, with provider and
 * zone) with 10,000 live instances, starts the real HTTP server on a loopback port and times
 * `GET /api/v1/instances` over one keep-alive connection (libcurl): the first request (the
 * server has never seen the group) and the median of the following ones.
 *
 * The baseline, measured in the same run: the listing as asgd built it before the answer was
 * written straight into the reply buffer (http/api.c), done here in-process with the same
 * data: a snapshot of the table, every store row of the group read for provider and zone, a
 * jansson object per instance and json_dumps() of the array. It carries no HTTP cost, so the
 * ratio undersells the change a little. The bench also checks that the server's answer is
 * byte for byte the baseline's string: the JSON did not change, only how it is made.
 * For reference it also times the same 10,000 through the paged route in pages of 1,000.
 * No thresholds: the machine is shared and noisy.
 */
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
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

enum { INSTANCES = 10000, RUNS = 15 };

static const char *const zones[] = {"us-east-1a", "us-east-1b", "us-east-1c"};

static void set_live(struct fleet_slot *s, void *arg)
{
    int i = *(const int *)arg;
    int64_t now = clk_wall_ms();
    s->lifecycle = FLEET_IN_SERVICE;
    s->health = i % 50 ? FLEET_HEALTH_HEALTHY : FLEET_HEALTH_UNHEALTHY;
    s->registered = 1;
    s->app_healthy = i % 50 != 0;
    s->pid = 1000 + i;
    s->load = (double)(i % 100) + 0.25;
    s->cpu_pct = (double)(i % 97) / 3.0;
    s->mem_pct = i % 7 ? (double)(i % 89) * 1.1 : -1;
    s->load1 = (double)(i % 13) / 7.0;
    s->in_service_at_ms = now - 60000 + i;
    s->last_seen_ms = now - (i % 2000);
    s->health_changed_ms = now - 30000 - i;
    s->polls_ok = 1000u + (unsigned)i;
    s->polls_failed = (unsigned)i % 3;
    s->last_rtt_us = 180 + i % 400;
    s->protect = i % 11 == 0;
    s->hook_deadline_ms = i % 101 == 0 ? now + 300000 : 0;
}

/* ---- the baseline: the listing as api.c built it before (jansson tree, then dumps) ------- */

static json_t *iso_json(int64_t ms)
{
    if (ms <= 0)
        return json_null();
    char b[40];
    clk_iso8601(ms, b, sizeof b);
    return json_string(b);
}

static json_t *load_json(double v)
{
    return v >= 0 ? json_real(v) : json_null();
}

static int cmp_row(const void *a, const void *b)
{
    return strcmp(((const struct store_instance *)a)->id, ((const struct store_instance *)b)->id);
}

static json_t *old_slot_json(const struct fleet_slot *x, const char *provider, const char *zone)
{
    json_t *o = json_pack(
        "{s:s, s:s, s:s, s:s, s:o, s:o, s:o, s:o, s:o, s:I, s:o, s:o, s:b, s:b, s:b, s:b, "
        "s:i, s:I, s:I, s:f, s:b}",
        "id", x->id, "address", x->address, "lifecycle", fleet_lifecycle_name(x->lifecycle),
        "health", fleet_health_name(x->health), "load", load_json(x->load), "cpu_pct",
        load_json(x->cpu_pct), "mem_pct", load_json(x->mem_pct), "load1", load_json(x->load1),
        "launched_at", iso_json(x->launched_at_ms), "launched_at_ms", (json_int_t)x->launched_at_ms,
        "in_service_at", iso_json(x->in_service_at_ms), "last_seen_at", iso_json(x->last_seen_ms),
        "registered", x->registered, "app_healthy", x->app_healthy, "adopted", x->adopted,
        "seed_protocol", x->seed_protocol, "pid", (int)x->pid, "polls_ok", (json_int_t)x->polls_ok,
        "polls_failed", (json_int_t)x->polls_failed, "rtt_ms", (double)x->last_rtt_us / 1000.0,
        "live", 1);
    if (o) {
        json_object_set_new(o, "provider", provider ? json_string(provider) : json_null());
        json_object_set_new(o, "zone", zone ? json_string(zone) : json_null());
        json_object_set_new(o, "protected", json_boolean(x->protect));
        json_object_set_new(o, "health_changed_at", iso_json(x->health_changed_ms));
        json_object_set_new(o, "hook_deadline_at",
                            x->hook_deadline_ms > 0 ? iso_json(x->hook_deadline_ms) : json_null());
    }
    return o;
}

/* The old unpaged answer: malloc'd JSON text, or NULL. */
static char *old_listing(struct fleet *f, struct store *st)
{
    size_t cap = fleet_capacity(f), n;
    struct fleet_slot *slots = malloc(cap * sizeof *slots);
    if (!slots)
        return NULL;
    n = fleet_snapshot(f, slots, cap);
    struct store_instance *rows = NULL;
    size_t nrows = 0;
    if (store_list_instances(st, "bench", 0, &rows, &nrows) != 0)
        nrows = 0;
    if (nrows > 1)
        qsort(rows, nrows, sizeof *rows, cmp_row);
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < n && i < cap; i++) {
        struct store_instance key;
        memset(&key, 0, sizeof key);
        snprintf(key.id, sizeof key.id, "%s", slots[i].id);
        const struct store_instance *si =
            nrows ? bsearch(&key, rows, nrows, sizeof *rows, cmp_row) : NULL;
        json_t *o = old_slot_json(&slots[i], si ? si->provider : NULL, si ? si->zone : NULL);
        if (!o || json_array_append_new(arr, o)) {
            json_decref(arr);
            arr = NULL;
        }
    }
    free(slots);
    store_instances_free(rows);
    char *s = arr ? json_dumps(arr, JSON_COMPACT | JSON_REAL_PRECISION(12)) : NULL;
    json_decref(arr);
    return s;
}

/* ---- HTTP --------------------------------------------------------------------------------- */

struct body {
    char *p;
    size_t len, cap;
};

static size_t keep(char *p, size_t sz, size_t n, void *ud)
{
    struct body *b = ud;
    size_t add = sz * n;
    if (b->len + add + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1 << 20;
        while (cap < b->len + add + 1)
            cap *= 2;
        char *q = realloc(b->p, cap);
        if (!q)
            return 0;
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->len, p, add);
    b->len += add;
    b->p[b->len] = '\0';
    return add;
}

static char link_next[512]; /* the Link header's target of the last answer, "" if none */

static size_t header(char *p, size_t sz, size_t n, void *ud)
{
    (void)ud;
    size_t len = sz * n;
    if (len > 6 && strncmp(p, "Link: <", 7) == 0) {
        const char *end = memchr(p, '>', len);
        if (end && (size_t)(end - p - 7) < sizeof link_next)
            snprintf(link_next, sizeof link_next, "%.*s", (int)(end - p - 7), p + 7);
    }
    return len;
}

/* GET base+path into *b (emptied first); ms taken, or -1. */
static double get(CURL *h, const char *base, const char *path, struct body *b)
{
    char url[700];
    snprintf(url, sizeof url, "%s%s", base, path);
    curl_easy_setopt(h, CURLOPT_URL, url);
    b->len = 0;
    link_next[0] = '\0';
    long status = 0;
    double t0 = bench_now_ms();
    if (curl_easy_perform(h) != CURLE_OK)
        return -1;
    double t = bench_now_ms() - t0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    return status == 200 ? t : -1;
}

/* Every instance through pages of 1,000 following the Link header; ms, or -1. */
static double get_paged(CURL *h, const char *base, struct body *b, size_t *n_out)
{
    char path[600] = "/api/v1/instances?limit=1000";
    double t = 0;
    *n_out = 0;
    for (;;) {
        double one = get(h, base, path, b);
        if (one < 0)
            return -1;
        t += one;
        json_t *j = json_loadb(b->p, b->len, 0, NULL);
        *n_out += json_array_size(j);
        json_decref(j);
        if (!link_next[0])
            return t;
        snprintf(path, sizeof path, "%s", link_next);
    }
}

static int run(void)
{
    char dir[] = "/tmp/asgd-bench-instances-XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    char fname[64], err[512] = "";
    snprintf(fname, sizeof fname, "binst-%d", (int)getpid());
    (void)fleet_unlink(fname);
    struct fleet *f = NULL;
    struct store *st = NULL, *srv_st = NULL;
    struct http_server *srv = NULL;
    struct store_instance *rows = NULL;
    struct body b = {0};
    char *old = NULL;
    CURL *h = NULL;
    int rc = 1;
    if (fleet_open(fname, FLEET_SLOTS_FOR(INSTANCES), 1, &f) ||
        store_open(dir, &st, err, sizeof err) || store_open(dir, &srv_st, err, sizeof err)) {
        fprintf(stderr, "bench_instances: setup failed: %s\n", err);
        goto out;
    }
    struct group_settings g;
    group_settings_default(&g, "bench");
    g.min_size = 0;
    g.max_size = INSTANCES;
    g.desired_capacity = INSTANCES;
    rows = calloc(INSTANCES, sizeof *rows);
    if (!rows || store_put_settings(st, &g, -1, NULL))
        goto out;
    for (int i = 0; i < INSTANCES; i++) {
        struct store_instance *r = &rows[i];
        uint32_t idx;
        struct fleet_slot s;
        snprintf(r->id, sizeof r->id, "i-%08x", (unsigned)i * 2654435761u);
        snprintf(r->address, sizeof r->address, "10.0.%d.%d:50051", i / 250, i % 250 + 2);
        snprintf(r->group, sizeof r->group, "bench");
        snprintf(r->provider, sizeof r->provider, "ec2");
        snprintf(r->zone, sizeof r->zone, "%s", zones[i % 3]);
        snprintf(r->lifecycle, sizeof r->lifecycle, "in-service");
        r->launched_at_ms = clk_wall_ms() - 120000 + i;
        if (fleet_alloc(f, r->id, r->address, r->launched_at_ms, &idx) || fleet_read(f, idx, &s) ||
            fleet_update(f, idx, s.generation, set_live, &i))
            goto out;
    }
    if (store_put_instances(st, rows, INSTANCES))
        goto out;
    char base[64];
    if (bench_http_start(srv_st, f, &srv, base, sizeof base, err, sizeof err)) {
        fprintf(stderr, "bench_instances: %s\n", err);
        goto out;
    }
    h = curl_easy_init();
    if (!h)
        goto out;
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, keep);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, header);
    curl_easy_setopt(h, CURLOPT_BUFFERSIZE, 512L * 1024);

    double first = get(h, base, "/api/v1/instances", &b);
    if (first < 0) {
        fprintf(stderr, "bench_instances: GET /api/v1/instances failed\n");
        goto out;
    }
    double t_old[RUNS], t_new[RUNS], t_paged[RUNS];
    size_t paged_n = 0;
    for (int k = 0; k < RUNS; k++) {
        free(old);
        double t0 = bench_now_ms();
        old = old_listing(f, st);
        t_old[k] = bench_now_ms() - t0;
        t_new[k] = get(h, base, "/api/v1/instances", &b);
        if (!old || t_new[k] < 0)
            goto out;
    }
    /* the same table, nothing moved: the two strings must be the same bytes */
    int same = b.len == strlen(old) && memcmp(b.p, old, b.len) == 0;
    for (int k = 0; k < RUNS; k++)
        if ((t_paged[k] = get_paged(h, base, &b, &paged_n)) < 0)
            goto out;
    double mo = bench_median(t_old, RUNS), mn = bench_median(t_new, RUNS),
           mp = bench_median(t_paged, RUNS);
    printf("%d instances, %zu bytes of JSON, median of %d\n", INSTANCES, strlen(old), RUNS);
    printf("  baseline: old listing in-process (store rows + jansson tree + dumps) %8.2f ms\n", mo);
    printf("  GET /api/v1/instances, first request (cold)                          %8.2f ms\n",
           first);
    printf("  GET /api/v1/instances over HTTP                                      %8.2f ms  "
           "ratio %.1fx faster than the baseline\n",
           mn, mo / mn);
    printf("  the same %zu through ?limit=1000 pages over HTTP                  %8.2f ms  "
           "ratio %.1fx faster than the baseline\n",
           paged_n, mp, mo / mp);
    printf("  answer identical to the baseline's bytes: %s\n", same ? "yes" : "NO");
    rc = same ? 0 : 1;
out:
    if (h)
        curl_easy_cleanup(h);
    http_free(srv);
    free(old);
    free(b.p);
    free(rows);
    store_close(srv_st);
    store_close(st);
    fleet_close(f);
    (void)fleet_unlink(fname);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "bench_instances: cannot remove %s\n", dir);
    return rc;
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int rc = run();
    curl_global_cleanup();
    return rc;
}
