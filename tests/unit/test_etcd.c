/*
 * test_etcd.c - the etcd client against a real 3-member etcd cluster that the
 * test starts itself (scripts/etcd-cluster, on ports derived from its pid so
 * parallel runs do not collide), plus a junk HTTP server on loopback for
 * replies no etcd sends.
 *
 * The cluster is stopped in the group teardown; a watchdog child also stops
 * it if this process dies (crash, abort, ctest timeout), so no member is left
 * behind. Tests that kill members bring them back before they end.
 *
 * No timing assertions: waits are polls with generous bounds, and a bound
 * that is hit is a failure only because the awaited thing never happened.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "etcd/etcd.h"

#include "unit/tool_etcd.h"

#include "common/banned.h"

static char cluster_dir[256];
static char script[1024];
static char endpoints[256];
static int base_port;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int group_setup(void **state)
{
    (void)state;
    const char *src = getenv("ASGD_SOURCE_DIR");
    snprintf(script, sizeof script, "%s/scripts/etcd-cluster", src ? src : "..");
    snprintf(cluster_dir, sizeof cluster_dir, "/tmp/asgd-etcd-XXXXXX");
    if (!mkdtemp(cluster_dir))
        return -1;
    base_port = 23790 + (int)(getpid() % 100) * 20;
    tool_etcd_watchdog(script, cluster_dir);
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s start %s %d", script, cluster_dir, base_port);
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    if (!fgets(endpoints, sizeof endpoints, p))
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
    tool_etcd_run(script, "stop %s/tls", cluster_dir);
    tool_etcd_run(script, "stop %s", cluster_dir);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf %s", cluster_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static struct etcd *new_handle(int attempt_ms, int call_ms)
{
    struct etcd_settings s = {
        .endpoints = endpoints, .attempt_timeout_ms = attempt_ms, .call_timeout_ms = call_ms};
    struct etcd *h = NULL;
    char err[256];
    assert_int_equal(etcd_new(&s, &h, err, sizeof err), 0);
    return h;
}

#define assert_ok(h, expr)                                                                         \
    do {                                                                                           \
        int rc_ = (expr);                                                                          \
        if (rc_ != 0)                                                                              \
            fail_msg("%s: %s (%s)", #expr, etcd_strerror(rc_), etcd_errmsg(h));                    \
    } while (0)

/* Which member (1..3) serves URL u. */
static int member_of(const char *u)
{
    const char *colon = strrchr(u, ':');
    assert_non_null(colon);
    return (int)strtol(colon + 1, NULL, 10) - base_port + 1;
}

/* ---- kv ------------------------------------------------------------------ */

static void kv_put_range_prefix_delete(void **state)
{
    (void)state;
    struct etcd *h = new_handle(0, 0);
    int64_t rev1 = 0, rev2 = 0;
    assert_ok(h, etcd_put(h, "kv/a", ETCD_NUL, "one", ETCD_NUL, 0, &rev1));
    const char bin[] = {'x', '\0', (char)0xff, 'y'};
    assert_ok(h, etcd_put(h, "kv/b", ETCD_NUL, bin, sizeof bin, 0, &rev2));
    assert_true(rev2 > rev1);
    assert_ok(h, etcd_put(h, "kv/c", ETCD_NUL, "", 0, 0, NULL));
    assert_ok(h, etcd_put(h, "kw", ETCD_NUL, "outside", ETCD_NUL, 0, NULL));

    struct etcd_range_result *r = NULL;
    assert_ok(h, etcd_range(h, "kv/a", ETCD_NUL, NULL, &r));
    assert_int_equal(r->n_kvs, 1);
    assert_string_equal(r->kvs[0].key, "kv/a");
    assert_string_equal(r->kvs[0].value, "one");
    assert_int_equal(r->kvs[0].mod_revision, rev1);
    assert_int_equal(r->kvs[0].version, 1);
    assert_true(r->revision >= rev2);
    etcd_range_result_free(r);

    struct etcd_range_opts o = {.prefix = 1, .sort_order = ETCD_SORT_ASCEND};
    assert_ok(h, etcd_range(h, "kv/", ETCD_NUL, &o, &r));
    assert_int_equal(r->n_kvs, 3);
    assert_int_equal(r->count, 3);
    assert_string_equal(r->kvs[0].key, "kv/a");
    assert_int_equal(r->kvs[1].value_len, sizeof bin);
    assert_memory_equal(r->kvs[1].value, bin, sizeof bin);
    assert_int_equal(r->kvs[2].value_len, 0);
    etcd_range_result_free(r);

    /* limit + more, keys_only, count_only, descending sort */
    struct etcd_range_opts lim = {.prefix = 1,
                                  .limit = 2,
                                  .keys_only = 1,
                                  .sort_order = ETCD_SORT_DESCEND,
                                  .sort_target = ETCD_SORT_KEY};
    assert_ok(h, etcd_range(h, "kv/", ETCD_NUL, &lim, &r));
    assert_int_equal(r->n_kvs, 2);
    assert_true(r->more);
    assert_int_equal(r->count, 3);
    assert_string_equal(r->kvs[0].key, "kv/c");
    assert_int_equal(r->kvs[0].value_len, 0);
    etcd_range_result_free(r);
    struct etcd_range_opts cnt = {.prefix = 1, .count_only = 1};
    assert_ok(h, etcd_range(h, "kv/", ETCD_NUL, &cnt, &r));
    assert_int_equal(r->n_kvs, 0);
    assert_int_equal(r->count, 3);
    etcd_range_result_free(r);

    /* reading at an older revision sees the old value */
    assert_ok(h, etcd_put(h, "kv/a", ETCD_NUL, "two", ETCD_NUL, 0, NULL));
    struct etcd_range_opts old = {.revision = rev1};
    assert_ok(h, etcd_range(h, "kv/a", ETCD_NUL, &old, &r));
    assert_int_equal(r->n_kvs, 1);
    assert_string_equal(r->kvs[0].value, "one");
    etcd_range_result_free(r);

    /* missing key: success, nothing */
    assert_ok(h, etcd_range(h, "kv/none", ETCD_NUL, NULL, &r));
    assert_int_equal(r->n_kvs, 0);
    etcd_range_result_free(r);

    int64_t deleted = -1;
    assert_ok(h, etcd_delete(h, "kv/a", ETCD_NUL, 0, &deleted, NULL));
    assert_int_equal(deleted, 1);
    assert_ok(h, etcd_delete(h, "kv/", ETCD_NUL, 1, &deleted, NULL));
    assert_int_equal(deleted, 2);
    assert_ok(h, etcd_delete(h, "kv/", ETCD_NUL, 1, &deleted, NULL));
    assert_int_equal(deleted, 0);
    assert_ok(h, etcd_range(h, "kw", ETCD_NUL, NULL, &r));
    assert_int_equal(r->n_kvs, 1); /* a prefix delete stays inside its prefix */
    etcd_range_result_free(r);

    /* caller errors */
    assert_int_equal(etcd_put(h, "", ETCD_NUL, "x", 1, 0, NULL), ETCD_EINVAL);
    assert_int_equal(etcd_range(h, NULL, 0, NULL, &r), ETCD_EINVAL);
    struct etcd_range_opts future = {.revision = INT64_C(1) << 40};
    assert_int_equal(etcd_range(h, "kw", ETCD_NUL, &future, &r), ETCD_EINVAL);
    assert_non_null(strstr(etcd_errmsg(h), "future revision"));
    etcd_free(h);
}

/* ---- txn + leases ---------------------------------------------------------- */

/* Create-if-absent of key on lease: returns 1 when we got it, 0 when another
 * holds it (then *holder_lease/value say who). */
static int try_own(struct etcd *h, const char *key, const char *me, int64_t lease,
                   int64_t *holder_lease, char *holder, size_t holder_len)
{
    struct etcd_cmp c = {.key = key,
                         .key_len = ETCD_NUL,
                         .target = ETCD_CMP_CREATE,
                         .result = ETCD_CMP_EQUAL,
                         .number = 0};
    struct etcd_op put = {.type = ETCD_OP_PUT,
                          .key = key,
                          .key_len = ETCD_NUL,
                          .value = me,
                          .value_len = ETCD_NUL,
                          .lease = lease};
    struct etcd_op get = {.type = ETCD_OP_RANGE, .key = key, .key_len = ETCD_NUL};
    struct etcd_txn_result *r = NULL;
    assert_ok(h, etcd_txn(h, &c, 1, &put, 1, &get, 1, &r));
    int won = r->succeeded;
    assert_int_equal(r->n_ops, 1);
    if (won) {
        assert_int_equal(r->ops[0].type, ETCD_OP_PUT);
    } else {
        assert_int_equal(r->ops[0].type, ETCD_OP_RANGE);
        assert_int_equal(r->ops[0].range.n_kvs, 1);
        *holder_lease = r->ops[0].range.kvs[0].lease;
        snprintf(holder, holder_len, "%s", r->ops[0].range.kvs[0].value);
    }
    etcd_txn_result_free(r);
    return won;
}

static void txn_create_if_absent_on_lease(void **state)
{
    (void)state;
    struct etcd *a = new_handle(0, 0), *b = new_handle(0, 0);
    int64_t la = 0, lb = 0, ttl = 0, hl = 0;
    assert_ok(a, etcd_lease_grant(a, 30, &la, &ttl));
    assert_int_equal(ttl, 30);
    assert_ok(b, etcd_lease_grant(b, 30, &lb, NULL));
    char holder[64];
    assert_int_equal(try_own(a, "owner/g1", "node-a", la, &hl, holder, sizeof holder), 1);
    assert_int_equal(try_own(b, "owner/g1", "node-b", lb, &hl, holder, sizeof holder), 0);
    assert_int_equal(hl, la);
    assert_string_equal(holder, "node-a");

    /* Fencing: a write conditioned on still holding the owner key with our
     * value runs for a, not for b. */
    struct etcd_cmp mine = {.key = "owner/g1",
                            .key_len = ETCD_NUL,
                            .target = ETCD_CMP_VALUE,
                            .result = ETCD_CMP_EQUAL,
                            .value = "node-b",
                            .value_len = ETCD_NUL};
    struct etcd_op w = {.type = ETCD_OP_PUT,
                        .key = "data/g1",
                        .key_len = ETCD_NUL,
                        .value = "b",
                        .value_len = ETCD_NUL};
    struct etcd_txn_result *r = NULL;
    assert_ok(b, etcd_txn(b, &mine, 1, &w, 1, NULL, 0, &r));
    assert_false(r->succeeded);
    assert_int_equal(r->n_ops, 0);
    etcd_txn_result_free(r);
    mine.value = "node-a";
    struct etcd_op ops[3] = {
        {.type = ETCD_OP_PUT, .key = "data/g1", .key_len = ETCD_NUL, .value = "a", .value_len = 1},
        {.type = ETCD_OP_RANGE, .key = "data/", .key_len = ETCD_NUL, .prefix = 1},
        {.type = ETCD_OP_DELETE, .key = "nothing", .key_len = ETCD_NUL},
    };
    assert_ok(a, etcd_txn(a, &mine, 1, ops, 3, NULL, 0, &r));
    assert_true(r->succeeded);
    assert_int_equal(r->n_ops, 3);
    assert_int_equal(r->ops[1].range.n_kvs, 1);
    assert_string_equal(r->ops[1].range.kvs[0].value, "a");
    assert_int_equal(r->ops[2].deleted, 0);
    etcd_txn_result_free(r);

    /* Revoking a's lease frees the key: b gets it. */
    assert_ok(a, etcd_lease_revoke(a, la));
    assert_int_equal(try_own(b, "owner/g1", "node-b", lb, &hl, holder, sizeof holder), 1);
    assert_ok(b, etcd_lease_revoke(b, lb));
    assert_int_equal(etcd_lease_revoke(b, lb), ETCD_ELEASE);
    assert_int_equal(etcd_put(a, "owner/g2", ETCD_NUL, "x", 1, la, NULL), ETCD_ELEASE);
    assert_ok(a, etcd_delete(a, "data/", ETCD_NUL, 1, NULL, NULL));
    etcd_free(a);
    etcd_free(b);
}

static void lease_expiry_removes_key(void **state)
{
    (void)state;
    struct etcd *h = new_handle(0, 0);
    int64_t id = 0, ttl = 0, granted = 0;
    assert_ok(h, etcd_lease_grant(h, 2, &id, NULL));
    assert_ok(h, etcd_put(h, "leased/k", ETCD_NUL, "v", 1, id, NULL));
    assert_ok(h, etcd_lease_keepalive(h, id, &ttl));
    assert_true(ttl >= 1);
    assert_ok(h, etcd_lease_timetolive(h, id, &ttl, &granted));
    assert_int_equal(granted, 2);
    struct etcd_range_result *r = NULL;
    assert_ok(h, etcd_range(h, "leased/k", ETCD_NUL, NULL, &r));
    assert_int_equal(r->n_kvs, 1);
    assert_int_equal(r->kvs[0].lease, id);
    etcd_range_result_free(r);
    /* Stop renewing: the key goes with the lease (about 2 s; bound 20 s). */
    size_t n = 1;
    for (int64_t end = now_ms() + 20000; n && now_ms() < end;) {
        sleep_ms(200);
        assert_ok(h, etcd_range(h, "leased/k", ETCD_NUL, NULL, &r));
        n = r->n_kvs;
        etcd_range_result_free(r);
    }
    assert_int_equal(n, 0);
    assert_int_equal(etcd_lease_keepalive(h, id, &ttl), ETCD_ELEASE);
    assert_int_equal(etcd_lease_timetolive(h, id, &ttl, NULL), ETCD_ELEASE);
    assert_int_equal(etcd_lease_revoke(h, id), ETCD_ELEASE);
    assert_int_equal(etcd_lease_grant(h, 0, &id, NULL), ETCD_EINVAL);
    etcd_free(h);
}

/* ---- watches --------------------------------------------------------------- */

#define REC_MAX 256
struct rec {
    enum etcd_event_type type;
    char key[64];
    char value[64];
    int64_t mod_revision, prev_revision, batch_rev;
};
struct collector {
    pthread_mutex_t mu;
    struct rec ev[REC_MAX];
    size_t n;
};

static void collect(void *arg, const struct etcd_event *events, size_t n, int64_t revision)
{
    struct collector *c = arg;
    pthread_mutex_lock(&c->mu);
    for (size_t i = 0; i < n && c->n < REC_MAX; i++) {
        struct rec *r = &c->ev[c->n++];
        r->type = events[i].type;
        snprintf(r->key, sizeof r->key, "%s", events[i].kv.key);
        snprintf(r->value, sizeof r->value, "%s", events[i].kv.value);
        r->mod_revision = events[i].kv.mod_revision;
        r->prev_revision = events[i].prev_revision;
        r->batch_rev = revision;
    }
    pthread_mutex_unlock(&c->mu);
}

static size_t collected(struct collector *c)
{
    pthread_mutex_lock(&c->mu);
    size_t n = c->n;
    pthread_mutex_unlock(&c->mu);
    return n;
}

static size_t wait_events(struct collector *c, size_t n, int bound_ms)
{
    int64_t end = now_ms() + bound_ms;
    while (collected(c) < n && now_ms() < end)
        sleep_ms(20);
    return collected(c);
}

static void wait_connected(struct etcd_watch *w)
{
    int64_t end = now_ms() + 15000;
    while (!etcd_watch_connected(w) && now_ms() < end)
        sleep_ms(20);
    assert_true(etcd_watch_connected(w));
}

static struct etcd_watch *watch(const char *prefix, int64_t from, struct collector *c)
{
    struct etcd_settings s = {.endpoints = endpoints, .watch_idle_timeout_ms = 3000};
    struct etcd_watch *w = NULL;
    char err[256];
    memset(c, 0, sizeof *c);
    pthread_mutex_init(&c->mu, NULL);
    assert_int_equal(
        etcd_watch_start(&s, prefix, ETCD_NUL, 1, from, collect, c, &w, err, sizeof err), 0);
    return w;
}

static void watch_sees_puts_and_deletes_in_order(void **state)
{
    (void)state;
    struct etcd *h = new_handle(0, 0);
    struct collector c;
    struct etcd_watch *w = watch("wa/", 0, &c);
    wait_connected(w);
    int64_t r1, r2, r3, r4;
    assert_ok(h, etcd_put(h, "wa/x", ETCD_NUL, "1", 1, 0, &r1));
    assert_ok(h, etcd_put(h, "other", ETCD_NUL, "no", 2, 0, NULL));
    assert_ok(h, etcd_put(h, "wa/y", ETCD_NUL, "2", 1, 0, &r2));
    assert_ok(h, etcd_put(h, "wa/x", ETCD_NUL, "3", 1, 0, &r3));
    assert_ok(h, etcd_delete(h, "wa/x", ETCD_NUL, 0, NULL, &r4));
    assert_int_equal(wait_events(&c, 4, 15000), 4);
    etcd_watch_stop(w);
    assert_int_equal(c.n, 4);
    assert_int_equal(c.ev[0].type, ETCD_EV_PUT);
    assert_string_equal(c.ev[0].key, "wa/x");
    assert_string_equal(c.ev[0].value, "1");
    assert_int_equal(c.ev[0].mod_revision, r1);
    assert_int_equal(c.ev[0].prev_revision, 0);
    assert_string_equal(c.ev[1].key, "wa/y");
    assert_int_equal(c.ev[1].mod_revision, r2);
    assert_string_equal(c.ev[2].value, "3");
    assert_int_equal(c.ev[2].prev_revision, r1);
    assert_int_equal(c.ev[3].type, ETCD_EV_DELETE);
    assert_string_equal(c.ev[3].key, "wa/x");
    assert_int_equal(c.ev[3].mod_revision, r4);
    assert_int_equal(c.ev[3].prev_revision, r3);

    /* From a past revision: the same history again, then nothing more. */
    w = watch("wa/", r1, &c);
    assert_int_equal(wait_events(&c, 4, 15000), 4);
    etcd_watch_stop(w);
    assert_int_equal(c.ev[0].mod_revision, r1);
    assert_int_equal(c.ev[3].mod_revision, r4);
    etcd_free(h);
}

static void watch_resumes_after_member_restart(void **state)
{
    (void)state;
    struct etcd *h = new_handle(0, 0);
    struct collector c;
    struct etcd_watch *w = watch("wr/", 0, &c);
    wait_connected(w);
    int64_t revs[30];
    int n = 0;
    for (; n < 5; n++)
        assert_ok(h, etcd_put(h, "wr/k", ETCD_NUL, "v", 1, 0, &revs[n]));
    /* The watch's first stream is on member 1: kill it, write while it is
     * down (the watch reconnects elsewhere), bring it back, write more. */
    assert_int_equal(tool_etcd_run(script, "kill %s 1", cluster_dir), 0);
    for (; n < 15; n++)
        assert_ok(h, etcd_put(h, "wr/k", ETCD_NUL, "v", 1, 0, &revs[n]));
    assert_int_equal(tool_etcd_run(script, "start-member %s 1 >/dev/null", cluster_dir), 0);
    for (; n < 20; n++)
        assert_ok(h, etcd_put(h, "wr/k", ETCD_NUL, "v", 1, 0, &revs[n]));
    /* Then kill the member it moved to as well (2), once more. */
    assert_int_equal(tool_etcd_run(script, "kill %s 2", cluster_dir), 0);
    for (; n < 30; n++)
        assert_ok(h, etcd_put(h, "wr/k", ETCD_NUL, "v", 1, 0, &revs[n]));
    assert_int_equal(tool_etcd_run(script, "start-member %s 2 >/dev/null", cluster_dir), 0);
    assert_int_equal(wait_events(&c, 30, 30000), 30);
    sleep_ms(300); /* a repeated event would show up here */
    assert_true(etcd_watch_revision(w) >= revs[29]);
    etcd_watch_stop(w);
    assert_int_equal(c.n, 30);
    for (int i = 0; i < 30; i++)
        assert_int_equal(c.ev[i].mod_revision, revs[i]);
    etcd_free(h);
}

static void watch_notices_stalled_member(void **state)
{
    (void)state;
    struct etcd *h = new_handle(500, 5000);
    struct collector c;
    struct etcd_watch *w = watch("ws/", 0, &c);
    wait_connected(w);
    int64_t revs[10];
    assert_ok(h, etcd_put(h, "ws/k", ETCD_NUL, "v", 1, 0, &revs[0]));
    assert_int_equal(wait_events(&c, 1, 15000), 1);
    /* Member 1 (the watch's) freezes with its sockets open: nothing says the
     * stream is dead but its silence (no progress notifications). */
    assert_int_equal(tool_etcd_run(script, "pause %s 1", cluster_dir), 0);
    for (int i = 1; i < 10; i++)
        assert_ok(h, etcd_put(h, "ws/k", ETCD_NUL, "v", 1, 0, &revs[i]));
    size_t got = wait_events(&c, 10, 30000);
    assert_int_equal(tool_etcd_run(script, "resume %s 1", cluster_dir), 0);
    assert_int_equal(got, 10);
    etcd_watch_stop(w);
    for (int i = 0; i < 10; i++)
        assert_int_equal(c.ev[i].mod_revision, revs[i]);
    etcd_free(h);
}

static void watch_reports_compaction(void **state)
{
    (void)state;
    struct etcd *h = new_handle(0, 0);
    int64_t r1, r2, r3;
    assert_ok(h, etcd_put(h, "wc/k", ETCD_NUL, "1", 1, 0, &r1));
    assert_ok(h, etcd_put(h, "wc/k", ETCD_NUL, "2", 1, 0, &r2));
    assert_ok(h, etcd_compact(h, r2));
    struct etcd_range_opts old = {.revision = r1};
    struct etcd_range_result *r = NULL;
    assert_int_equal(etcd_range(h, "wc/k", ETCD_NUL, &old, &r), ETCD_ECOMPACTED);
    struct collector c;
    struct etcd_watch *w = watch("wc/", r1, &c);
    assert_true(wait_events(&c, 1, 15000) >= 1);
    assert_int_equal(c.ev[0].type, ETCD_EV_RESET);
    assert_int_equal(c.ev[0].batch_rev, r2);
    /* It goes on from the compaction revision: r2, then new writes. */
    assert_ok(h, etcd_put(h, "wc/k", ETCD_NUL, "3", 1, 0, &r3));
    assert_int_equal(wait_events(&c, 3, 15000), 3);
    etcd_watch_stop(w);
    assert_int_equal(c.ev[1].mod_revision, r2);
    assert_int_equal(c.ev[2].mod_revision, r3);
    assert_string_equal(c.ev[2].value, "3");
    etcd_free(h);
}

/* ---- failover and quorum loss ------------------------------------------------ */

static void failover_when_member_in_use_dies(void **state)
{
    (void)state;
    struct etcd *h = new_handle(1000, 5000);
    assert_ok(h, etcd_put(h, "fo/k", ETCD_NUL, "0", 1, 0, NULL));
    int m = member_of(etcd_endpoint(h));
    assert_int_equal(tool_etcd_run(script, "kill %s %d", cluster_dir, m), 0);
    for (int i = 0; i < 10; i++) {
        char v[8];
        snprintf(v, sizeof v, "%d", i);
        assert_ok(h, etcd_put(h, "fo/k", ETCD_NUL, v, ETCD_NUL, 0, NULL));
        struct etcd_range_result *r = NULL;
        assert_ok(h, etcd_range(h, "fo/k", ETCD_NUL, NULL, &r));
        assert_string_equal(r->kvs[0].value, v);
        etcd_range_result_free(r);
    }
    assert_int_not_equal(member_of(etcd_endpoint(h)), m);
    assert_int_equal(tool_etcd_run(script, "start-member %s %d >/dev/null", cluster_dir, m), 0);
    etcd_free(h);
}

static void unavailable_without_quorum_then_recovers(void **state)
{
    (void)state;
    struct etcd *h = new_handle(800, 2500);
    assert_ok(h, etcd_put(h, "q/k", ETCD_NUL, "0", 1, 0, NULL));
    assert_int_equal(tool_etcd_run(script, "kill %s 2", cluster_dir), 0);
    assert_int_equal(tool_etcd_run(script, "kill %s 3", cluster_dir), 0);
    int64_t t0 = now_ms();
    int rc = etcd_put(h, "q/k", ETCD_NUL, "1", 1, 0, NULL);
    int64_t took = now_ms() - t0;
    assert_int_equal(rc, ETCD_EUNAVAIL);
    /* Bounded by the call deadline (plus one attempt's slack for the last one started). */
    assert_true(took < 2500 + 800 + 1000);
    assert_non_null(strstr(etcd_errmsg(h), "http://127.0.0.1:"));
    struct etcd_range_result *r = NULL;
    assert_int_equal(etcd_range(h, "q/k", ETCD_NUL, NULL, &r), ETCD_EUNAVAIL);
    /* A serializable read is served by the lone member from its own state. */
    struct etcd_range_opts ser = {.serializable = 1};
    assert_ok(h, etcd_range(h, "q/k", ETCD_NUL, &ser, &r));
    assert_string_equal(r->kvs[0].value, "0");
    etcd_range_result_free(r);

    assert_int_equal(tool_etcd_run(script, "start-member %s 2 >/dev/null", cluster_dir), 0);
    assert_int_equal(tool_etcd_run(script, "start-member %s 3 >/dev/null", cluster_dir), 0);
    rc = -1;
    for (int64_t end = now_ms() + 20000; rc != 0 && now_ms() < end;)
        rc = etcd_put(h, "q/k", ETCD_NUL, "2", 1, 0, NULL);
    assert_ok(h, rc);
    assert_ok(h, etcd_range(h, "q/k", ETCD_NUL, NULL, &r));
    assert_string_equal(r->kvs[0].value, "2");
    etcd_range_result_free(r);
    etcd_free(h);
}

/* ---- TLS ------------------------------------------------------------------ */

static void tls_with_client_certificate(void **state)
{
    (void)state;
    /* A second cluster, on https with client certificates required, at
     * base + 5 (clients) / base + 15 (peers), inside the first one's dir. */
    char cmd[2048], eps[256] = "";
    snprintf(cmd, sizeof cmd, "%s start %s/tls %d --tls", script, cluster_dir, base_port + 5);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    if (!fgets(eps, sizeof eps, p))
        eps[0] = '\0';
    assert_int_equal(pclose(p), 0);
    eps[strcspn(eps, "\n")] = '\0';
    assert_non_null(strstr(eps, "https://"));
    char ca[512], cert[512], key[512];
    snprintf(ca, sizeof ca, "%s/tls/tls/ca.pem", cluster_dir);
    snprintf(cert, sizeof cert, "%s/tls/tls/client.pem", cluster_dir);
    snprintf(key, sizeof key, "%s/tls/tls/client-key.pem", cluster_dir);
    struct etcd_settings s = {.endpoints = eps,
                              .ca_file = ca,
                              .cert_file = cert,
                              .key_file = key,
                              .watch_idle_timeout_ms = 3000};
    struct etcd *h = NULL;
    char err[256];
    assert_int_equal(etcd_new(&s, &h, err, sizeof err), 0);
    struct collector c;
    memset(&c, 0, sizeof c);
    pthread_mutex_init(&c.mu, NULL);
    struct etcd_watch *w = NULL;
    assert_int_equal(etcd_watch_start(&s, "t/", ETCD_NUL, 1, 0, collect, &c, &w, err, sizeof err),
                     0);
    wait_connected(w);
    int64_t rev = 0;
    assert_ok(h, etcd_put(h, "t/k", ETCD_NUL, "secret", ETCD_NUL, 0, &rev));
    struct etcd_range_result *r = NULL;
    assert_ok(h, etcd_range(h, "t/k", ETCD_NUL, NULL, &r));
    assert_string_equal(r->kvs[0].value, "secret");
    etcd_range_result_free(r);
    assert_int_equal(wait_events(&c, 1, 15000), 1);
    etcd_watch_stop(w);
    assert_int_equal(c.ev[0].mod_revision, rev);
    etcd_free(h);

    /* Without the client certificate the members refuse us. */
    s.cert_file = s.key_file = NULL;
    s.attempt_timeout_ms = s.call_timeout_ms = 500;
    assert_int_equal(etcd_new(&s, &h, err, sizeof err), 0);
    assert_int_equal(etcd_put(h, "t/k", ETCD_NUL, "x", 1, 0, NULL), ETCD_EUNAVAIL);
    etcd_free(h);
    assert_int_equal(tool_etcd_run(script, "stop %s/tls", cluster_dir), 0);
}

/* ---- junk server ---------------------------------------------------------- */

struct junk {
    int fd, port;
    pthread_t thread;
    const char *reply; /* the bytes sent to every connection */
    size_t reply_len;
    pthread_mutex_t mu;
    volatile int stop;
};

static void *junk_main(void *arg)
{
    struct junk *j = arg;
    while (!j->stop) {
        int c = accept(j->fd, NULL, NULL);
        if (c < 0)
            continue;
        char buf[4096];
        /* Read the request head (and whatever body came with it). */
        ssize_t got = read(c, buf, sizeof buf);
        (void)got;
        pthread_mutex_lock(&j->mu);
        const char *rep = j->reply;
        size_t len = j->reply_len;
        pthread_mutex_unlock(&j->mu);
        size_t off = 0;
        while (off < len) {
            ssize_t w = send(c, rep + off, len - off, MSG_NOSIGNAL);
            if (w <= 0)
                break;
            off += (size_t)w;
        }
        shutdown(c, SHUT_WR);
        close(c);
    }
    return NULL;
}

static void junk_start(struct junk *j)
{
    memset(j, 0, sizeof *j);
    pthread_mutex_init(&j->mu, NULL);
    j->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(j->fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
    assert_int_equal(bind(j->fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t al = sizeof a;
    assert_int_equal(getsockname(j->fd, (struct sockaddr *)&a, &al), 0);
    j->port = ntohs(a.sin_port);
    assert_int_equal(listen(j->fd, 16), 0);
    assert_int_equal(pthread_create(&j->thread, NULL, junk_main, j), 0);
}

static void junk_stop(struct junk *j)
{
    j->stop = 1;
    /* Wake accept() with one last connection. */
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(0x7f000001),
                            .sin_port = htons((uint16_t)j->port)};
    if (s >= 0) {
        if (connect(s, (struct sockaddr *)&a, sizeof a) == 0)
            sleep_ms(50);
        close(s);
    }
    pthread_join(j->thread, NULL);
    close(j->fd);
}

static void junk_set(struct junk *j, const char *reply)
{
    pthread_mutex_lock(&j->mu);
    j->reply = reply;
    j->reply_len = strlen(reply);
    pthread_mutex_unlock(&j->mu);
}

#define HTTP200(body)                                                                              \
    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n" body

static void watch_noop(void *arg, const struct etcd_event *ev, size_t n, int64_t rev)
{
    (void)ev, (void)n, (void)rev;
    int *calls = arg;
    (*calls)++;
}

static void junk_replies_are_eproto(void **state)
{
    (void)state;
    struct junk j;
    junk_start(&j);
    char ep[64];
    snprintf(ep, sizeof ep, "http://127.0.0.1:%d", j.port);
    struct etcd_settings s = {.endpoints = ep,
                              .attempt_timeout_ms = 300,
                              .call_timeout_ms = 300,
                              .watch_idle_timeout_ms = 1000};
    struct etcd *h = NULL;
    char err[256];
    assert_int_equal(etcd_new(&s, &h, err, sizeof err), 0);

    static const char *const replies[] = {
        "garbage, not HTTP at all\r\n\r\n",
        HTTP200("not json"),
        HTTP200("{\"header\":{\"revision\":\"5\""),  /* truncated JSON */
        HTTP200("[1,2,3]"),                          /* not an object */
        HTTP200("{\"kvs\":[{\"key\":\"!!!bad\"}]}"), /* bad base64 */
        HTTP200("{\"kvs\":[{\"key\":\"YQ=\"}]}"),    /* bad base64 length */
        HTTP200("{\"kvs\":[{\"key\":\"YQ==\",\"value\":\"Y=Q=\"}]}"),
        HTTP200("{\"count\":\"99999999999999999999999\"}"), /* overflows int64 */
        HTTP200("{\"count\":\"12abc\"}"),
        HTTP200("{\"kvs\":{\"key\":\"YQ==\"}}"),                    /* kvs not an array */
        HTTP200("{\"kvs\":[{\"key\":\"YQ==\",\"version\":true}]}"), /* wrong type */
        HTTP200("{\"header\":\"x\"}"),
        HTTP200("{}"),                                                 /* JSON, but not etcd's */
        HTTP200("{\"header\":{},\"kvs\":[]}"),                         /* no revision */
        "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999\r\n\r\n{}", /* huge length */
        "HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n<html>proxy</html>",
        HTTP200("{\"header\":{\"revision\":\"1\"},\"kvs\":[{\"key\":\"YQ==\"}],"
                "\"count\":\"1\",\"more\":\"yes\"}"), /* more: not a bool */
    };
    for (size_t i = 0; i < sizeof replies / sizeof replies[0]; i++) {
        junk_set(&j, replies[i]);
        struct etcd_range_result *r = NULL;
        int rc = etcd_range(h, "a", ETCD_NUL, NULL, &r);
        if (rc != ETCD_EPROTO)
            fail_msg("reply %zu: got %s (%s)", i, etcd_strerror(rc), etcd_errmsg(h));
        assert_null(r);
        if (getenv("ETCD_TEST_VERBOSE"))
            fprintf(stderr, "reply %zu: %s\n", i, etcd_errmsg(h));
        assert_non_null(strstr(etcd_errmsg(h), ep));
    }
    /* txn: a reply whose responses do not match the ops sent */
    junk_set(&j, HTTP200("{\"header\":{\"revision\":\"3\"},\"succeeded\":true,"
                         "\"responses\":[{\"response_range\":{}}]}"));
    struct etcd_op put = {
        .type = ETCD_OP_PUT, .key = "a", .key_len = 1, .value = "b", .value_len = 1};
    struct etcd_txn_result *tr = NULL;
    assert_int_equal(etcd_txn(h, NULL, 0, &put, 1, NULL, 0, &tr), ETCD_EPROTO);
    junk_set(&j, HTTP200("{\"result\":{\"header\":{\"revision\":\"3\"},\"TTL\":\"x\"}}"));
    int64_t ttl = 0;
    assert_int_equal(etcd_lease_keepalive(h, 1, &ttl), ETCD_EPROTO);
    junk_set(&j, HTTP200("{\"header\":{\"revision\":\"3\"},\"ID\":\"0\",\"TTL\":\"5\"}"));
    int64_t id = 0;
    assert_int_equal(etcd_lease_grant(h, 5, &id, NULL), ETCD_EPROTO);
    /* A 503 with etcd's JSON: the member cannot serve. */
    junk_set(&j, "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n\r\n"
                 "{\"error\":\"etcdserver: no leader\",\"code\":14}");
    assert_int_equal(etcd_put(h, "a", 1, "b", 1, 0, NULL), ETCD_EUNAVAIL);
    assert_non_null(strstr(etcd_errmsg(h), "no leader"));

    /* A watch on junk: garbage lines, bad events, then a stream error. It
     * never calls back with anything, and stops cleanly. */
    static const char *const streams[] = {
        HTTP200("{\"result\":{\"created\":true}}\nnot json\n"),
        HTTP200("{\"result\":{\"events\":[{\"type\":\"EXPLODE\",\"kv\":{\"key\":\"YQ==\","
                "\"mod_revision\":\"3\"}}]}}\n"),
        HTTP200("{\"result\":{\"events\":[{\"kv\":{\"key\":\"%%%\",\"mod_revision\":\"3\"}}]}}\n"),
        HTTP200("{\"result\":{\"events\":[{\"kv\":{\"key\":\"YQ==\"}}]}}\n"),
        HTTP200("{\"error\":{\"grpc_code\":14,\"message\":\"boom\"}}\n"),
        HTTP200("{\"result\":{\"created\":true}}\n{\"result\":{\"events\":[{\"kv\""),
    };
    for (size_t i = 0; i < sizeof streams / sizeof streams[0]; i++) {
        junk_set(&j, streams[i]);
        int calls = 0;
        struct etcd_watch *w = NULL;
        assert_int_equal(
            etcd_watch_start(&s, "a", 1, 0, 0, watch_noop, &calls, &w, err, sizeof err), 0);
        sleep_ms(300);
        etcd_watch_stop(w);
        assert_int_equal(calls, 0);
    }
    etcd_free(h);
    junk_stop(&j);
}

static void settings_errors(void **state)
{
    (void)state;
    struct etcd *h = NULL;
    char err[256] = "";
    struct etcd_settings s = {.endpoints = " , "};
    assert_int_equal(etcd_new(&s, &h, err, sizeof err), ETCD_EINVAL);
    assert_non_null(strstr(err, "empty"));
    s.endpoints = "127.0.0.1:2379";
    assert_int_equal(etcd_new(&s, &h, err, sizeof err), ETCD_EINVAL);
    assert_non_null(strstr(err, "127.0.0.1:2379"));
    s.endpoints = NULL;
    assert_int_equal(etcd_new(&s, &h, err, sizeof err), ETCD_EINVAL);
    assert_null(h);
    assert_string_equal(etcd_strerror(ETCD_ELEASE), "lease not found");
    assert_string_equal(etcd_strerror(42), "unknown error");
    etcd_free(NULL);
    etcd_watch_stop(NULL);
    etcd_range_result_free(NULL);
    etcd_txn_result_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(settings_errors),
        cmocka_unit_test(junk_replies_are_eproto),
        cmocka_unit_test(kv_put_range_prefix_delete),
        cmocka_unit_test(txn_create_if_absent_on_lease),
        cmocka_unit_test(lease_expiry_removes_key),
        cmocka_unit_test(watch_sees_puts_and_deletes_in_order),
        cmocka_unit_test(watch_reports_compaction),
        cmocka_unit_test(watch_resumes_after_member_restart),
        cmocka_unit_test(watch_notices_stalled_member),
        cmocka_unit_test(tls_with_client_certificate),
        cmocka_unit_test(failover_when_member_in_use_dies),
        cmocka_unit_test(unavailable_without_quorum_then_recovers),
    };
    /* ETCD_TEST_FILTER=name runs one test alone (the cluster still starts). */
    const char *filter = getenv("ETCD_TEST_FILTER");
    if (filter)
        cmocka_set_test_filter(filter);
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
