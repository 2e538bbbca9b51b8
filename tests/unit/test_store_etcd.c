/*
 * Unit tests for the store's etcd backend, against a real 3-member etcd
 * cluster the test starts itself (scripts/etcd-cluster, on ports derived
 * from its pid so that parallel runs do not collide) and stops at the end.
 *
 * The behavioural cases every backend passes (test_store_cases.h), each
 * under its own key prefix, then what only etcd does: fencing (a handle
 * whose owner key was re-created gets STORE_EFENCED and writes nothing),
 * the watch callback for changes made by another handle, STORE_EUNAVAIL
 * with two members of three down and recovery when they are back, and open
 * errors.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "etcd/etcd.h"
#include "store/store.h"

#include "test_store_cases.h"

#include "unit/tool_etcd.h"

#include "common/banned.h"

static char script[1024];
static char cluster_dir[64];
static char endpoints[256];
static int prefix_seq;
static int base_port;

struct et_fx {
    struct store *st; /* first: struct gc_fx */
    char prefix[64];
};

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int group_setup(void **state)
{
    (void)state;
    const char *src = getenv("ASGD_SOURCE_DIR");
    snprintf(script, sizeof(script), "%s/scripts/etcd-cluster", src ? src : "..");
    snprintf(cluster_dir, sizeof(cluster_dir), "/tmp/asgd-store-etcd-XXXXXX");
    if (!mkdtemp(cluster_dir))
        return -1;
    /* ports apart from test_etcd's (23790 + k*20) */
    int base = base_port = 26010 + (int)(getpid() % 90) * 20;
    tool_etcd_watchdog(script, cluster_dir);
    char cmd[2048];
    snprintf(cmd, sizeof(cmd), "%s start %s %d", script, cluster_dir, base);
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    if (!fgets(endpoints, sizeof(endpoints), p))
        endpoints[0] = '\0';
    int st = pclose(p);
    endpoints[strcspn(endpoints, "\n")] = '\0';
    if (st != 0 || !endpoints[0]) {
        fprintf(stderr, "etcd-cluster start failed (status %d)\n", st);
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    tool_etcd_run(script, "stop %s/tls >/dev/null 2>&1", cluster_dir);
    tool_etcd_run(script, "stop %s", cluster_dir);
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", cluster_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static struct store *open_prefix(const char *prefix, int64_t timeout_ms)
{
    struct store_etcd_settings s = {
        .endpoints = endpoints, .prefix = prefix, .timeout_ms = timeout_ms};
    struct store *st = NULL;
    char err[512];
    int rc = store_open_etcd(&s, &st, err, sizeof(err));
    if (rc)
        fail_msg("store_open_etcd: %s (%s)", store_strerror(rc), err);
    return st;
}

static int setup(void **state)
{
    struct et_fx *fx = calloc(1, sizeof(*fx));
    if (!fx)
        return -1;
    snprintf(fx->prefix, sizeof(fx->prefix), "/test-%d-%d", (int)getpid(), ++prefix_seq);
    struct store_etcd_settings s = {.endpoints = endpoints, .prefix = fx->prefix};
    char err[512];
    if (store_open_etcd(&s, &fx->st, err, sizeof(err)) != 0) {
        fprintf(stderr, "store_open_etcd: %s\n", err);
        free(fx);
        return -1;
    }
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct et_fx *fx = *state;
    store_close(fx->st);
    free(fx);
    return 0;
}

static struct store *gc_open(void **state)
{
    return open_prefix(((struct et_fx *)*state)->prefix, 0);
}

static struct etcd *raw_handle(void)
{
    struct etcd_settings s = {.endpoints = endpoints};
    struct etcd *h = NULL;
    char err[256];
    assert_int_equal(etcd_new(&s, &h, err, sizeof(err)), 0);
    return h;
}

/* Creates (or re-creates) key; returns its create revision. */
static int64_t make_owner_key(struct etcd *h, const char *key)
{
    int64_t rev = 0;
    assert_int_equal(etcd_delete(h, key, ETCD_NUL, 0, NULL, NULL), 0);
    assert_int_equal(etcd_put(h, key, ETCD_NUL, "node-a", ETCD_NUL, 0, &rev), 0);
    return rev;
}

/* How many keys etcd holds under key (a prefix). */
static int64_t count_keys(struct etcd *h, const char *key)
{
    struct etcd_range_opts o = ETCD_RANGE_OPTS_INIT;
    o.prefix = 1;
    o.count_only = 1;
    struct etcd_range_result *r = NULL;
    assert_int_equal(etcd_range(h, key, ETCD_NUL, &o, &r), 0);
    int64_t n = r->count;
    etcd_range_result_free(r);
    return n;
}

/* ---- fencing -------------------------------------------------------------------------------- */

static void fencing(void **state)
{
    struct et_fx *fx = *state;
    struct store *st = fx->st;
    struct etcd *h = raw_handle();
    char owner[128], dir[128];
    snprintf(owner, sizeof(owner), "%s-owners/web", fx->prefix);
    snprintf(dir, sizeof(dir), "%s/groups/web/", fx->prefix);

    struct group_settings g;
    gc_group(&g, "web");
    gc_ok(st, store_put_settings(st, &g, 0, NULL));
    int64_t rev = make_owner_key(h, owner);
    gc_ok(st, store_set_fence(st, "web", owner, rev));

    /* while the owner key is ours, every write goes through */
    struct store_instance in;
    gc_instance(&in, "i-1", "web", 1);
    gc_ok(st, store_put_instance(st, &in));
    gc_instance(&in, "i-2", "web", 2);
    gc_ok(st, store_put_instance(st, &in));
    gc_ok(st, store_set_instance_lifecycle(st, "i-1", "in-service", 0));
    gc_ok(st, store_intent_create(st, "tok-1", "web", 1, 1));
    gc_ok(st, store_set_desired(st, "web", 4, NULL));
    struct store_activity a = {.at_ms = 1};
    snprintf(a.group, sizeof(a.group), "web");
    snprintf(a.kind, sizeof(a.kind), "launch");
    gc_ok(st, store_activity_add(st, &a, NULL));
    struct store_metric_group mg = {.at_ms = 10, .avg_load = 1};
    snprintf(mg.group, sizeof(mg.group), "web");
    gc_ok(st, store_metrics_add(st, &mg, 1, NULL, 0));
    int64_t req = 0;
    gc_ok(st, store_request_add(st, "web", "terminate", "{}", &req));

    /* another node takes the group: the owner key is re-created (new create revision) */
    int64_t rev2 = make_owner_key(h, owner);
    assert_true(rev2 != rev);
    int64_t before = count_keys(h, dir);
    struct etcd_range_result *r0 = NULL;
    assert_int_equal(etcd_range(h, dir, ETCD_NUL, &(struct etcd_range_opts){.prefix = 1}, &r0), 0);
    int64_t rev_before = r0->revision;
    etcd_range_result_free(r0);

    gc_instance(&in, "i-3", "web", 3);
    assert_int_equal(store_put_instance(st, &in), STORE_EFENCED);
    assert_non_null(strstr(store_errmsg(st), "not the owner of group \"web\""));
    assert_int_equal(store_set_instance_lifecycle(st, "i-1", "terminating", 0), STORE_EFENCED);
    assert_int_equal(store_delete_instance(st, "i-2"), STORE_EFENCED);
    assert_int_equal(store_intent_create(st, "tok-2", "web", 1, 1), STORE_EFENCED);
    assert_int_equal(store_intent_complete(st, "tok-1", STORE_INTENT_DONE, NULL, 0), STORE_EFENCED);
    assert_int_equal(store_set_desired(st, "web", 5, NULL), STORE_EFENCED);
    assert_int_equal(store_activity_add(st, &a, NULL), STORE_EFENCED);
    mg.at_ms = 20;
    assert_int_equal(store_metrics_add(st, &mg, 1, NULL, 0), STORE_EFENCED);
    assert_int_equal(store_request_delete(st, "web", req), STORE_EFENCED);

    /* nothing was written: same keys, and no revision moved under the group */
    assert_int_equal(count_keys(h, dir), before);
    struct etcd_range_opts o = ETCD_RANGE_OPTS_INIT;
    o.prefix = 1;
    o.min_mod_revision = rev_before + 1;
    struct etcd_range_result *r = NULL;
    assert_int_equal(etcd_range(h, dir, ETCD_NUL, &o, &r), 0);
    assert_int_equal(r->n_kvs, 0);
    etcd_range_result_free(r);
    struct store_instance got;
    gc_ok(st, store_get_instance(st, "i-1", &got));
    assert_string_equal(got.lifecycle, "in-service");

    /* the API's writes are not conditioned on ownership (the revision still guards them) */
    gc_ok(st, store_get_settings(st, "web", &g));
    assert_int_equal(g.desired_capacity, 4);
    g.max_size = 6;
    gc_ok(st, store_put_settings(st, &g, g.revision, NULL));
    gc_ok(st, store_put_spec(st, "web", "{}", -1, NULL));
    gc_ok(st, store_request_add(st, "web", "terminate", "{}", NULL));

    /* the owner key gone altogether: still fenced */
    assert_int_equal(etcd_delete(h, owner, ETCD_NUL, 0, NULL, NULL), 0);
    assert_int_equal(store_activity_add(st, &a, NULL), STORE_EFENCED);
    assert_non_null(strstr(store_errmsg(st), "is gone"));

    /* fenced on the new owner key: writes go again; cleared: unconditioned */
    int64_t rev3 = make_owner_key(h, owner);
    gc_ok(st, store_set_fence(st, "web", owner, rev3));
    gc_ok(st, store_put_instance(st, &in));
    assert_int_equal(etcd_delete(h, owner, ETCD_NUL, 0, NULL, NULL), 0);
    gc_ok(st, store_clear_fence(st, "web"));
    gc_ok(st, store_activity_add(st, &a, NULL));
    /* a fence on one group leaves the others alone */
    gc_ok(st, store_set_fence(st, "web", owner, rev3));
    snprintf(a.group, sizeof(a.group), "api");
    gc_ok(st, store_activity_add(st, &a, NULL));
    etcd_free(h);
}

/* ---- watch ---------------------------------------------------------------------------------- */

struct seen {
    pthread_mutex_t mu;
    char log[4096];
};

static void record(void *arg, const char *group, int what)
{
    struct seen *s = arg;
    pthread_mutex_lock(&s->mu);
    size_t n = strlen(s->log);
    snprintf(s->log + n, sizeof(s->log) - n, "%s:%d;", group, what);
    pthread_mutex_unlock(&s->mu);
}

static void clear_log(struct seen *s)
{
    pthread_mutex_lock(&s->mu);
    s->log[0] = '\0';
    pthread_mutex_unlock(&s->mu);
}

/* Waits (up to 10 s) until the callback log contains text. */
static void wait_for(struct seen *s, const char *text)
{
    for (int i = 0; i < 1000; i++) {
        pthread_mutex_lock(&s->mu);
        int found = strstr(s->log, text) != NULL;
        pthread_mutex_unlock(&s->mu);
        if (found)
            return;
        sleep_ms(10);
    }
    fail_msg("no \"%s\" in the watch log \"%s\"", text, s->log);
}

static void watch_other_handle(void **state)
{
    struct et_fx *fx = *state;
    struct store *a = fx->st;
    struct store *b = open_prefix(fx->prefix, 0);
    struct seen s = {.mu = PTHREAD_MUTEX_INITIALIZER};
    gc_ok(a, store_watch(a, record, &s));
    char want[64];

    struct group_settings g, got;
    gc_group(&g, "web");
    gc_ok(b, store_put_settings(b, &g, 0, NULL));
    snprintf(want, sizeof(want), "web:%d;", STORE_CHANGE_SETTINGS);
    wait_for(&s, want);
    gc_ok(a, store_get_settings(a, "web", &got));
    assert_int_equal(got.desired_capacity, 3);

    /* a change by the other handle is in a's cache (served without a request) once told */
    clear_log(&s);
    gc_ok(b, store_set_desired(b, "web", 5, NULL));
    wait_for(&s, want);
    gc_ok(a, store_get_settings(a, "web", &got));
    assert_int_equal(got.desired_capacity, 5);
    assert_int_equal(got.revision, 2);

    gc_ok(b, store_put_spec(b, "web", "{}", 0, NULL));
    snprintf(want, sizeof(want), "web:%d;", STORE_CHANGE_SPEC);
    wait_for(&s, want);
    gc_ok(b, store_request_add(b, "web", "terminate", "{\"instance_id\":\"i-1\"}", NULL));
    snprintf(want, sizeof(want), "web:%d;", STORE_CHANGE_REQUEST);
    wait_for(&s, want);
    /* writes that are not settings, spec or requests are not reported */
    struct store_instance in;
    gc_instance(&in, "i-1", "web", 1);
    gc_ok(b, store_put_instance(b, &in));
    gc_ok(b, store_delete_group(b, "web"));
    snprintf(want, sizeof(want), "web:%d;", STORE_CHANGE_DELETED);
    wait_for(&s, want);
    assert_int_equal(store_get_settings(a, "web", &got), STORE_ENOENT);

    /* after store_watch(NULL) no call is made */
    gc_ok(a, store_watch(a, NULL, NULL));
    clear_log(&s);
    gc_ok(b, store_put_settings(b, &g, 0, NULL));
    /* a's own cache still follows (the watch keeps running for it) */
    for (int i = 0; i < 1000; i++) {
        if (store_get_settings(a, "web", &got) == 0)
            break;
        sleep_ms(10);
    }
    gc_ok(a, store_get_settings(a, "web", &got));
    pthread_mutex_lock(&s.mu);
    assert_string_equal(s.log, "");
    pthread_mutex_unlock(&s.mu);
    store_close(b);
}

/* ---- unavailability ------------------------------------------------------------------------- */

static void quorum_loss_and_recovery(void **state)
{
    struct et_fx *fx = *state;
    /* 5 s per call: one member down may be the leader, and an election takes a second or two */
    struct store *st = open_prefix(fx->prefix, 5000);
    struct group_settings g;
    gc_group(&g, "web");
    gc_ok(st, store_put_settings(st, &g, 0, NULL));

    /* one member down: nothing visible changes */
    assert_int_equal(tool_etcd_run(script, "kill %s 3", cluster_dir), 0);
    struct store_activity a = {.at_ms = 1};
    snprintf(a.group, sizeof(a.group), "web");
    snprintf(a.kind, sizeof(a.kind), "launch");
    gc_ok(st, store_activity_add(st, &a, NULL));

    /* two down: no quorum, a clear and distinct error */
    assert_int_equal(tool_etcd_run(script, "kill %s 2", cluster_dir), 0);
    int rc = store_activity_add(st, &a, NULL);
    assert_int_equal(rc, STORE_EUNAVAIL);
    assert_non_null(strstr(store_errmsg(st), "etcd unavailable"));
    assert_int_equal(store_set_desired(st, "web", 4, NULL), STORE_EUNAVAIL);
    struct store *other = NULL;
    struct store_etcd_settings s = {
        .endpoints = endpoints, .prefix = fx->prefix, .timeout_ms = 1500};
    char err[512];
    assert_int_equal(store_open_etcd(&s, &other, err, sizeof(err)), STORE_EUNAVAIL);
    assert_null(other);

    /* members back: the same handle works again, nothing to reopen */
    assert_int_equal(tool_etcd_run(script, "start-member %s 2 >/dev/null", cluster_dir), 0);
    assert_int_equal(tool_etcd_run(script, "start-member %s 3 >/dev/null", cluster_dir), 0);
    rc = STORE_EUNAVAIL;
    for (int i = 0; i < 60 && rc == STORE_EUNAVAIL; i++) {
        rc = store_set_desired(st, "web", 4, NULL);
        if (rc == STORE_EUNAVAIL)
            sleep_ms(250);
    }
    gc_ok(st, rc);
    gc_ok(st, store_get_settings(st, "web", &g));
    assert_int_equal(g.desired_capacity, 4);
    store_close(st);
}

static void open_errors(void **state)
{
    (void)state;
    struct store *st = NULL;
    char err[512];
    assert_int_equal(store_open_etcd(NULL, &st, err, sizeof(err)), STORE_EINVAL);
    struct store_etcd_settings s = {.endpoints = ""};
    assert_int_equal(store_open_etcd(&s, &st, err, sizeof(err)), STORE_EINVAL);
    /* nothing listens there */
    s.endpoints = "http://127.0.0.1:9";
    s.timeout_ms = 500;
    assert_int_equal(store_open_etcd(&s, &st, err, sizeof(err)), STORE_EUNAVAIL);
    assert_null(st);
    assert_non_null(strstr(err, "etcd"));
    s.endpoints = "not a url";
    assert_int_not_equal(store_open_etcd(&s, &st, err, sizeof(err)), 0);
    assert_null(st);
}

/* Two prefixes are two separate stores on one cluster. */
static void prefixes_are_separate(void **state)
{
    struct et_fx *fx = *state;
    char other[80];
    snprintf(other, sizeof(other), "%s-other", fx->prefix);
    struct store *b = open_prefix(other, 0);
    struct group_settings g;
    gc_group(&g, "web");
    gc_ok(fx->st, store_put_settings(fx->st, &g, 0, NULL));
    assert_int_equal(store_get_settings(b, "web", &g), STORE_ENOENT);
    char **names = NULL;
    size_t n = 9;
    gc_ok(b, store_list_groups(b, &names, &n));
    assert_int_equal(n, 0);
    store_names_free(names, n);
    assert_int_equal(store_schema_version(b), STORE_SCHEMA_VERSION);
    /* names and ids are key parts: a '/' would put a group inside another's prefix */
    gc_group(&g, "web/x");
    assert_int_equal(store_put_settings(b, &g, -1, NULL), STORE_EINVAL);
    struct store_instance in;
    gc_instance(&in, "i/1", "web", 1);
    assert_int_equal(store_put_instance(b, &in), STORE_EINVAL);
    assert_int_equal(store_delete_group(b, "web/"), STORE_EINVAL);
    store_close(b);
}

/* ---- TLS ------------------------------------------------------------------------------------ */

/* The TLS settings reach the calls and the watch: a cluster that requires client certificates. */
static void tls_endpoints(void **state)
{
    (void)state;
    char cmd[2048], eps[256] = "";
    snprintf(cmd, sizeof(cmd), "%s start %s/tls %d --tls", script, cluster_dir, base_port + 5);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    if (!fgets(eps, sizeof(eps), p))
        eps[0] = '\0';
    assert_int_equal(pclose(p), 0);
    eps[strcspn(eps, "\n")] = '\0';
    assert_non_null(strstr(eps, "https://"));
    char ca[512], cert[512], key[512];
    snprintf(ca, sizeof(ca), "%s/tls/tls/ca.pem", cluster_dir);
    snprintf(cert, sizeof(cert), "%s/tls/tls/client.pem", cluster_dir);
    snprintf(key, sizeof(key), "%s/tls/tls/client-key.pem", cluster_dir);
    struct store_etcd_settings s = {
        .endpoints = eps, .prefix = "/tls", .ca_file = ca, .cert_file = cert, .key_file = key};
    struct store *a = NULL, *b = NULL;
    char err[512];
    int rc = store_open_etcd(&s, &a, err, sizeof(err));
    if (rc)
        fail_msg("store_open_etcd over TLS: %s", err);
    assert_int_equal(store_open_etcd(&s, &b, err, sizeof(err)), 0);
    struct seen seen = {.mu = PTHREAD_MUTEX_INITIALIZER};
    gc_ok(a, store_watch(a, record, &seen));
    struct group_settings g;
    gc_group(&g, "web");
    gc_ok(b, store_put_settings(b, &g, 0, NULL));
    char want[64];
    snprintf(want, sizeof(want), "web:%d;", STORE_CHANGE_SETTINGS);
    wait_for(&seen, want);
    gc_ok(a, store_get_settings(a, "web", &g));
    store_close(a);
    store_close(b);
    /* without the client certificate: refused, reported as unavailable */
    s.cert_file = s.key_file = NULL;
    s.timeout_ms = 1000;
    assert_int_equal(store_open_etcd(&s, &a, err, sizeof(err)), STORE_EUNAVAIL);
    assert_int_equal(tool_etcd_run(script, "stop %s/tls", cluster_dir), 0);
}

/* ---- steady-state cost ---------------------------------------------------------------------- */

/* The store's revision now (every write adds exactly one). */
static int64_t etcd_revision(struct etcd *h)
{
    struct etcd_range_opts o = ETCD_RANGE_OPTS_INIT;
    o.count_only = 1;
    struct etcd_range_result *r = NULL;
    assert_int_equal(etcd_range(h, "x", ETCD_NUL, &o, &r), 0);
    int64_t rev = r->revision;
    etcd_range_result_free(r);
    return rev;
}

/* Ranges served by the three members (etcd_debugging_mvcc_range_total, summed). */
static long ranges_served(void)
{
    long total = 0;
    char eps[256];
    snprintf(eps, sizeof(eps), "%s", endpoints);
    for (char *save = NULL, *u = strtok_r(eps, ",", &save); u; u = strtok_r(NULL, ",", &save)) {
        char cmd[512], line[256];
        snprintf(cmd, sizeof(cmd), "curl -s %s/metrics", u);
        FILE *p = popen(cmd, "r");
        assert_non_null(p);
        while (fgets(line, sizeof(line), p))
            if (strncmp(line, "etcd_debugging_mvcc_range_total ", 32) == 0)
                total += strtol(line + 32, NULL, 10);
        pclose(p);
    }
    return total;
}

/*
 * A group that does not scale, as the controller drives it every 5 s: read
 * the settings, add a metric batch, prune. Simulated time (360 ticks = 30
 * minutes of history with a 1-minute retention, so pruning happens), real
 * etcd: exactly one write per tick, and settings reads served by the cache.
 */
static void steady_state_budget(void **state)
{
    struct et_fx *fx = *state;
    struct store *st = fx->st;
    struct etcd *h = raw_handle();
    char owner[128], dir[128];
    snprintf(owner, sizeof(owner), "%s-owners/web", fx->prefix);
    snprintf(dir, sizeof(dir), "%s/groups/web/metrics/", fx->prefix);
    struct group_settings g;
    gc_group(&g, "web");
    gc_ok(st, store_put_settings(st, &g, 0, NULL));
    gc_ok(st, store_set_fence(st, "web", owner, make_owner_key(h, owner)));

    const int ticks = 360;
    const int64_t t0 = 1800000000000LL, period = 5000, keep = 60000;
    struct store_metric_group mg = {.avg_load = 42, .in_service = 3, .desired = 3};
    snprintf(mg.group, sizeof(mg.group), "web");
    struct store_metric_instance mi[3];
    memset(mi, 0, sizeof(mi));
    for (int i = 0; i < 3; i++) {
        snprintf(mi[i].group, sizeof(mi[i].group), "web");
        snprintf(mi[i].instance_id, sizeof(mi[i].instance_id), "i-%d", i);
        mi[i].load = 40 + i;
    }
    /* tick 0 outside the count: the first read starts the watch, the first prune looks around */
    for (int i = 0; i < 50; i++) {
        gc_ok(st, store_get_settings(st, "web", &g));
        sleep_ms(20);
    }
    int64_t rev0 = 0;
    for (int i = 0; i <= ticks; i++) {
        if (i == 1)
            rev0 = etcd_revision(h);
        int64_t at = t0 + i * period;
        gc_ok(st, store_get_settings(st, "web", &g));
        mg.at_ms = at;
        for (int k = 0; k < 3; k++)
            mi[k].at_ms = at;
        gc_ok(st, store_metrics_add(st, &mg, 1, mi, 3));
        gc_ok(st, store_metrics_prune(st, at - keep, NULL));
    }
    int64_t writes = etcd_revision(h) - rev0;
    print_message("  %d ticks of 5 s: %lld etcd writes (%.3f writes/s for the group)\n", ticks,
                  (long long)writes, (double)writes / (ticks * period / 1000.0));
    assert_int_equal(writes, ticks);

    /* and the pruning did happen: what is left is the last bucket or two, not 30 minutes */
    int64_t left = count_keys(h, dir);
    print_message("  metric keys left: %lld of %d batches\n", (long long)left, ticks + 1);
    assert_true(left >= keep / period);
    assert_true(left <= (keep + 2 * 600000) / period + 1);
    struct store_metric_group *rows = NULL;
    size_t n = 0;
    gc_ok(st, store_metrics_group_since(st, "web", 0, 100000, &rows, &n));
    assert_true(n > 0);
    assert_true(rows[0].at_ms >= t0 + ticks * period - keep - 600000);
    free(rows);

    /* settings reads between ticks cost no request: the watch keeps the cache */
    long r0 = ranges_served();
    for (int i = 0; i < 1000; i++)
        gc_ok(st, store_get_settings(st, "web", &g));
    long r1 = ranges_served();
    print_message("  1000 store_get_settings(): %ld ranges served by etcd\n", r1 - r0);
    assert_true(r1 - r0 < 10);
    etcd_free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        GC_CASES(setup, teardown),
        cmocka_unit_test_setup_teardown(fencing, setup, teardown),
        cmocka_unit_test_setup_teardown(watch_other_handle, setup, teardown),
        cmocka_unit_test_setup_teardown(prefixes_are_separate, setup, teardown),
        cmocka_unit_test_setup_teardown(steady_state_budget, setup, teardown),
        cmocka_unit_test(open_errors),
        cmocka_unit_test(tls_endpoints),
        /* last: it stops members */
        cmocka_unit_test_setup_teardown(quorum_loss_and_recovery, setup, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
