/*
 * Unit tests for store/: asgd's SQLite state, against real database files in
 * mkdtemp directories.
 *
 * Every public function, persistence across a reopen, schema migrations
 * (empty file, version 0, a newer version refused), the error paths an
 * operator meets (unusable directory, a file that is not a database, damaged
 * pages) and two handles on one database at once (WAL). Raw SQLite access is
 * used only to fabricate states the API cannot produce (old schemas,
 * oversized text, a trigger that makes a batch fail half-way).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "store/store.h"

#include "support/test_tmp.h"
#include "test_store_cases.h"

#include "common/banned.h"

struct fixture {
    char dir[128];
    struct store *st;
};

/* everything under dir, whatever a test or SQLite left there (a short list of names missed
 * some: a store dir stayed in /tmp after a passing run) */
static void rm_rf(const char *dir)
{
    assert_int_equal(test_tmp_remove(dir), 0);
}

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));
    if (!fx)
        return -1;
    snprintf(fx->dir, sizeof(fx->dir), "/tmp/asgd-store-test-XXXXXX");
    if (!mkdtemp(fx->dir)) {
        free(fx);
        return -1;
    }
    char err[256];
    if (store_open(fx->dir, &fx->st, err, sizeof(err)) != 0) {
        fprintf(stderr, "store_open: %s\n", err);
        rm_rf(fx->dir);
        free(fx);
        return -1;
    }
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    store_close(fx->st);
    rm_rf(fx->dir);
    free(fx);
    return 0;
}

static void reopen(struct fixture *fx)
{
    store_close(fx->st);
    fx->st = NULL;
    char err[256];
    int rc = store_open(fx->dir, &fx->st, err, sizeof(err));
    if (rc)
        fail_msg("reopen: %s", err);
}

/* Runs sql on the database file directly (a second connection). */
static void raw_exec(const char *dir, const char *sql)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/asgd.db", dir);
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK)
        fail_msg("raw sql failed: %s", msg ? msg : "?");
    sqlite3_close(db);
}

static void sample_group(struct group_settings *g, const char *name)
{
    memset(g, 0, sizeof(*g));
    snprintf(g->name, sizeof(g->name), "%s", name);
    g->min_size = 2;
    g->max_size = 5;
    g->desired_capacity = 3;
    policy_settings_default(&g->policy, POLICY_TARGET);
    g->policy.target = 55.5;
    g->policy.tolerance = 0.1;
    g->policy.cooldown_ms = 12345;
    snprintf(g->health.type, sizeof(g->health.type), "agent");
    g->health.interval_ms = 2000;
    g->health.timeout_ms = 1000;
    g->health.healthy_threshold = 2;
    g->health.unhealthy_threshold = 3;
    g->health.grace_period_ms = 30000;
    snprintf(g->hooks.launch_default, sizeof(g->hooks.launch_default), "abandon");
    snprintf(g->hooks.terminate_default, sizeof(g->hooks.terminate_default), "continue");
}

/* ---- settings ------------------------------------------------------------------------------- */

static void settings_roundtrip(void **state)
{
    struct fixture *fx = *state;
    struct store *st = fx->st;
    assert_int_equal(store_schema_version(st), STORE_SCHEMA_VERSION);
    struct group_settings g, got;
    assert_int_equal(store_get_settings(st, "web", &got), STORE_ENOENT);
    assert_non_null(strstr(store_errmsg(st), "web"));

    sample_group(&g, "web");
    int64_t rev = 0;
    assert_int_equal(store_put_settings(st, &g, 0, &rev), 0);
    assert_int_equal(rev, 1);
    assert_int_equal(store_get_settings(st, "web", &got), 0);
    assert_string_equal(got.name, "web");
    assert_int_equal(got.min_size, 2);
    assert_int_equal(got.max_size, 5);
    assert_int_equal(got.desired_capacity, 3);
    assert_int_equal(got.revision, 1);
    assert_true(got.updated_at_ms > 0);
    /* the whole policy struct survives bit for bit (the controller memcmp()s it) */
    assert_memory_equal(&got.policy, &g.policy, sizeof(g.policy));
    assert_memory_equal(&got.health, &g.health, sizeof(g.health));

    /* optimistic locking */
    assert_int_equal(store_put_settings(st, &g, 0, &rev), STORE_ECONFLICT);
    assert_non_null(strstr(store_errmsg(st), "revision"));
    assert_int_equal(store_put_settings(st, &g, 7, &rev), STORE_ECONFLICT);
    g.max_size = 9;
    g.policy.type = POLICY_THRESHOLD;
    g.policy.up_threshold = 81;
    assert_int_equal(store_put_settings(st, &g, 1, &rev), 0);
    assert_int_equal(rev, 2);
    assert_int_equal(store_put_settings(st, &g, -1, NULL), 0);
    assert_int_equal(store_get_settings(st, "web", &got), 0);
    assert_int_equal(got.revision, 3);
    assert_int_equal(got.max_size, 9);
    assert_int_equal(got.policy.type, POLICY_THRESHOLD);
    assert_true(got.policy.up_threshold == 81);

    /* desired only */
    assert_int_equal(store_set_desired(st, "web", 9, &rev), 0);
    assert_int_equal(rev, 4);
    assert_int_equal(store_set_desired(st, "web", 10, &rev), STORE_EINVAL);
    assert_int_equal(store_set_desired(st, "web", 1, &rev), STORE_EINVAL);
    assert_non_null(strstr(store_errmsg(st), "outside"));
    assert_int_equal(store_set_desired(st, "nope", 3, &rev), STORE_ENOENT);
    assert_int_equal(rev, 4);
    assert_int_equal(store_get_settings(st, "web", &got), 0);
    assert_int_equal(got.desired_capacity, 9);
    assert_int_equal(got.revision, 4);

    /* invalid settings are refused and change nothing */
    struct group_settings bad = g;
    bad.min_size = 6;
    bad.max_size = 5;
    assert_int_equal(store_put_settings(st, &bad, -1, NULL), STORE_EINVAL);
    bad = g;
    bad.desired_capacity = 100;
    assert_int_equal(store_put_settings(st, &bad, -1, NULL), STORE_EINVAL);
    bad = g;
    bad.policy.type = 7;
    assert_int_equal(store_put_settings(st, &bad, -1, NULL), STORE_EINVAL);
    bad = g;
    bad.policy.target = NAN;
    assert_int_equal(store_put_settings(st, &bad, -1, NULL), STORE_EINVAL);
    bad = g;
    bad.health.timeout_ms = -1;
    assert_int_equal(store_put_settings(st, &bad, -1, NULL), STORE_EINVAL);
    bad = g;
    memset(bad.name, 'n', sizeof(bad.name)); /* not terminated */
    assert_int_equal(store_put_settings(st, &bad, -1, NULL), STORE_EINVAL);
    assert_int_equal(store_get_settings(st, "", &got), STORE_EINVAL);
    assert_int_equal(store_get_settings(st, NULL, &got), STORE_EINVAL);
    assert_int_equal(store_get_settings(st, "web", &got), 0);
    assert_int_equal(got.revision, 4);

    sample_group(&g, "api");
    assert_int_equal(store_put_settings(st, &g, 0, NULL), 0);
    char **names = NULL;
    size_t n = 0;
    assert_int_equal(store_list_groups(st, &names, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(names[0], "api");
    assert_string_equal(names[1], "web");
    store_names_free(names, n);
    store_names_free(NULL, 0);

    /* persistence */
    reopen(fx);
    assert_int_equal(store_get_settings(fx->st, "web", &got), 0);
    assert_int_equal(got.revision, 4);
    assert_int_equal(got.desired_capacity, 9);
}

static void settings_json_is_distrusted(void **state)
{
    struct fixture *fx = *state;
    struct group_settings g, got;
    sample_group(&g, "web");
    assert_int_equal(store_put_settings(fx->st, &g, 0, NULL), 0);
    /* missing keys take the policy defaults (a later asgd may add keys, an older one drop them) */
    raw_exec(fx->dir, "UPDATE groups SET policy = '{\"type\":\"threshold\",\"up_threshold\":90}', "
                      "health = '{\"interval_ms\":500}'");
    assert_int_equal(store_get_settings(fx->st, "web", &got), 0);
    assert_int_equal(got.policy.type, POLICY_THRESHOLD);
    assert_true(got.policy.up_threshold == 90);
    assert_true(got.policy.down_threshold == 20);
    assert_int_equal(got.policy.evaluation_period_ms, 60000);
    assert_int_equal(got.health.interval_ms, 500);
    assert_string_equal(got.health.type, "agent");
    /* garbage is a clear error, not a crash */
    raw_exec(fx->dir, "UPDATE groups SET policy = '{not json'");
    assert_int_equal(store_get_settings(fx->st, "web", &got), STORE_ECORRUPT);
    assert_non_null(strstr(store_errmsg(fx->st), "not valid JSON"));
    raw_exec(fx->dir, "UPDATE groups SET policy = '{\"type\":\"magic\"}'");
    assert_int_equal(store_get_settings(fx->st, "web", &got), STORE_ECORRUPT);
    raw_exec(fx->dir, "UPDATE groups SET policy = '[1,2]'");
    assert_int_equal(store_get_settings(fx->st, "web", &got), STORE_ECORRUPT);
}

/* ---- instances ------------------------------------------------------------------------------ */

static void sample_instance(struct store_instance *in, const char *id, const char *group,
                            int64_t launched)
{
    memset(in, 0, sizeof(*in));
    snprintf(in->id, sizeof(in->id), "%s", id);
    snprintf(in->group, sizeof(in->group), "%s", group);
    snprintf(in->address, sizeof(in->address), "127.0.0.2:50051");
    snprintf(in->provider, sizeof(in->provider), "local");
    snprintf(in->lifecycle, sizeof(in->lifecycle), "pending");
    snprintf(in->launch_token, sizeof(in->launch_token), "tok-1");
    snprintf(in->zone, sizeof(in->zone), "local-a");
    in->launched_at_ms = launched;
    in->pid = 4242;
}

static void instances(void **state)
{
    struct fixture *fx = *state;
    struct store *st = fx->st;
    struct store_instance in, got;
    sample_instance(&in, "i-2", "web", 2000);
    assert_int_equal(store_put_instance(st, &in), 0);
    sample_instance(&in, "i-1", "web", 1000);
    assert_int_equal(store_put_instance(st, &in), 0);
    sample_instance(&in, "i-9", "api", 500);
    assert_int_equal(store_put_instance(st, &in), 0);

    assert_int_equal(store_get_instance(st, "i-1", &got), 0);
    assert_string_equal(got.id, "i-1");
    assert_string_equal(got.group, "web");
    assert_string_equal(got.address, "127.0.0.2:50051");
    assert_string_equal(got.provider, "local");
    assert_string_equal(got.lifecycle, "pending");
    assert_string_equal(got.launch_token, "tok-1");
    assert_string_equal(got.zone, "local-a");
    assert_int_equal(got.pid, 4242);
    assert_int_equal(got.launched_at_ms, 1000);
    assert_int_equal(got.terminated_at_ms, 0);
    assert_true(got.created_at_ms > 0);
    int64_t created = got.created_at_ms;

    /* upsert replaces fields, keeps created_at */
    usleep(2000);
    snprintf(in.id, sizeof(in.id), "i-1");
    snprintf(in.group, sizeof(in.group), "web");
    snprintf(in.address, sizeof(in.address), "127.0.0.3:50051");
    in.launched_at_ms = 1000;
    in.pid = 7;
    assert_int_equal(store_put_instance(st, &in), 0);
    assert_int_equal(store_get_instance(st, "i-1", &got), 0);
    assert_string_equal(got.address, "127.0.0.3:50051");
    assert_int_equal(got.pid, 7);
    assert_int_equal(got.created_at_ms, created);
    assert_true(got.updated_at_ms > created);

    assert_int_equal(store_set_instance_lifecycle(st, "i-1", "in-service", 0), 0);
    assert_int_equal(store_get_instance(st, "i-1", &got), 0);
    assert_string_equal(got.lifecycle, "in-service");
    assert_int_equal(got.terminated_at_ms, 0);
    assert_int_equal(store_set_instance_lifecycle(st, "i-2", "terminated", 5555), 0);
    assert_int_equal(store_set_instance_lifecycle(st, "i-2", "terminated", 0), 0); /* keeps it */
    assert_int_equal(store_get_instance(st, "i-2", &got), 0);
    assert_int_equal(got.terminated_at_ms, 5555);
    assert_int_equal(store_set_instance_lifecycle(st, "i-404", "x", 0), STORE_ENOENT);
    assert_non_null(strstr(store_errmsg(st), "i-404"));

    struct store_instance *list = NULL;
    size_t n = 99;
    assert_int_equal(store_list_instances(st, "web", 0, &list, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(list[0].id, "i-1");
    store_instances_free(list);
    assert_int_equal(store_list_instances(st, "web", 1, &list, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(list[0].id, "i-1"); /* oldest launch first */
    assert_string_equal(list[1].id, "i-2");
    store_instances_free(list);
    assert_int_equal(store_list_instances(st, NULL, 1, &list, &n), 0);
    assert_int_equal(n, 3);
    assert_string_equal(list[0].id, "i-9");
    store_instances_free(list);
    assert_int_equal(store_list_instances(st, "none", 1, &list, &n), 0);
    assert_int_equal(n, 0);
    assert_null(list);
    store_instances_free(NULL);

    assert_int_equal(store_delete_instance(st, "i-9"), 0);
    assert_int_equal(store_delete_instance(st, "i-9"), STORE_ENOENT);
    assert_int_equal(store_get_instance(st, "i-9", &got), STORE_ENOENT);

    /* bad input */
    sample_instance(&in, "", "web", 0);
    assert_int_equal(store_put_instance(st, &in), STORE_EINVAL);
    sample_instance(&in, "i-5", "", 0);
    assert_int_equal(store_put_instance(st, &in), STORE_EINVAL);
    sample_instance(&in, "i-5", "web", 0);
    memset(in.address, 'a', sizeof(in.address));
    assert_int_equal(store_put_instance(st, &in), STORE_EINVAL);
    assert_int_equal(store_get_instance(st, "i-5", &got), STORE_ENOENT);
    assert_int_equal(store_put_instance(st, NULL), STORE_EINVAL);

    /* text longer than a field (written by someone else) comes back truncated and terminated */
    raw_exec(fx->dir, "UPDATE instances SET address = printf('%.200c', 'x'), zone = "
                      "printf('%.100c', 'z') WHERE id = 'i-1'");
    assert_int_equal(store_get_instance(st, "i-1", &got), 0);
    assert_int_equal(strlen(got.address), STORE_ADDR_MAX - 1);
    assert_int_equal(strlen(got.zone), STORE_SHORT_MAX - 1);

    reopen(fx);
    assert_int_equal(store_get_instance(fx->st, "i-2", &got), 0);
    assert_string_equal(got.lifecycle, "terminated");
}

/* ---- launch intents ------------------------------------------------------------------------- */

static void intents(void **state)
{
    struct fixture *fx = *state;
    struct store *st = fx->st;
    assert_int_equal(store_intent_create(st, "tok-a", "web", 2, 100), 0);
    assert_int_equal(store_intent_create(st, "tok-b", "web", 1, 200), 0);
    assert_int_equal(store_intent_create(st, "tok-c", "api", 3, 50), 0);
    assert_int_equal(store_intent_create(st, "tok-a", "web", 2, 300), STORE_EEXIST);
    assert_non_null(strstr(store_errmsg(st), "tok-a"));
    assert_int_equal(store_intent_create(st, "", "web", 1, 0), STORE_EINVAL);
    assert_int_equal(store_intent_create(st, "t", "web", -1, 0), STORE_EINVAL);

    struct store_intent *open = NULL;
    size_t n = 0;
    assert_int_equal(store_intent_list_open(st, "web", &open, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(open[0].token, "tok-a");
    assert_string_equal(open[0].group, "web");
    assert_int_equal(open[0].count, 2);
    assert_int_equal(open[0].created_at_ms, 100);
    assert_int_equal(open[0].state, STORE_INTENT_OPEN);
    assert_int_equal(open[0].n_ids, 0);
    store_intents_free(open, n);
    assert_int_equal(store_intent_list_open(st, NULL, &open, &n), 0);
    assert_int_equal(n, 3);
    assert_string_equal(open[0].token, "tok-c");
    store_intents_free(open, n);

    const char *ids[] = {"i-1", "i-2"};
    assert_int_equal(store_intent_complete(st, "tok-a", STORE_INTENT_DONE, ids, 2), 0);
    assert_int_equal(store_intent_complete(st, "tok-c", STORE_INTENT_FAILED, NULL, 0), 0);
    assert_int_equal(store_intent_complete(st, "tok-zz", STORE_INTENT_DONE, NULL, 0), STORE_ENOENT);
    assert_int_equal(store_intent_complete(st, "tok-b", STORE_INTENT_OPEN, NULL, 0), STORE_EINVAL);
    const char *bad_ids[] = {"i-1", ""};
    assert_int_equal(store_intent_complete(st, "tok-b", STORE_INTENT_DONE, bad_ids, 2),
                     STORE_EINVAL);
    assert_int_equal(store_intent_complete(st, "tok-b", STORE_INTENT_DONE, NULL, 1), STORE_EINVAL);
    assert_int_equal(store_intent_list_open(st, NULL, &open, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(open[0].token, "tok-b");
    store_intents_free(open, n);

    /* open intents survive a restart, with the ids recorded so far */
    raw_exec(fx->dir, "UPDATE launch_intents SET instance_ids = '[\"i-7\", 5, \"\", \"i-8\"]' "
                      "WHERE token = 'tok-b'");
    reopen(fx);
    assert_int_equal(store_intent_list_open(fx->st, "web", &open, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(open[0].n_ids, 2); /* the invalid entries are skipped */
    assert_string_equal(open[0].ids[0], "i-7");
    assert_string_equal(open[0].ids[1], "i-8");
    store_intents_free(open, n);
    raw_exec(fx->dir, "UPDATE launch_intents SET instance_ids = 'garbage' WHERE token = 'tok-b'");
    assert_int_equal(store_intent_list_open(fx->st, "web", &open, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(open[0].n_ids, 0);
    store_intents_free(open, n);
    store_intents_free(NULL, 0);
    assert_int_equal(store_intent_list_open(fx->st, "none", &open, &n), 0);
    assert_int_equal(n, 0);
    assert_null(open);
}

/* ---- activities ----------------------------------------------------------------------------- */

static void activities(void **state)
{
    struct fixture *fx = *state;
    struct store *st = fx->st;
    struct store_activity a;
    int64_t last = 0;
    for (int i = 0; i < 25; i++) {
        memset(&a, 0, sizeof(a));
        snprintf(a.group, sizeof(a.group), "%s", i % 5 == 0 ? "api" : "web");
        snprintf(a.kind, sizeof(a.kind), "scale");
        snprintf(a.cause, sizeof(a.cause), "average load %d%% > 70%% for 60s: 2 -> 4", 70 + i);
        snprintf(a.status, sizeof(a.status), "ok");
        snprintf(a.detail, sizeof(a.detail), "detail %d", i);
        a.at_ms = 1000 + i;
        a.from_count = i;
        a.to_count = i + 1;
        int64_t id = 0;
        assert_int_equal(store_activity_add(st, &a, &id), 0);
        assert_true(id > last);
        last = id;
    }
    struct store_activity *list = NULL;
    size_t n = 0;
    assert_int_equal(store_activity_list(st, "web", 0, 7, &list, &n), 0);
    assert_int_equal(n, 7);
    assert_int_equal(list[0].id, last); /* newest first */
    assert_int_equal(list[0].from_count, 24);
    assert_int_equal(list[0].to_count, 25);
    assert_int_equal(list[0].at_ms, 1024);
    assert_string_equal(list[0].kind, "scale");
    assert_string_equal(list[0].status, "ok");
    assert_string_equal(list[0].detail, "detail 24");
    assert_string_equal(list[0].cause, "average load 94% > 70% for 60s: 2 -> 4");
    for (size_t i = 1; i < n; i++)
        assert_true(list[i].id < list[i - 1].id);
    int64_t before = list[n - 1].id;
    store_activities_free(list);
    /* paging continues strictly older */
    size_t total = 7;
    while (store_activity_list(st, "web", before, 7, &list, &n) == 0 && n > 0) {
        assert_true(list[0].id < before);
        before = list[n - 1].id;
        total += n;
        store_activities_free(list);
    }
    assert_int_equal(total, 20);
    assert_int_equal(store_activity_list(st, NULL, 0, 100, &list, &n), 0);
    assert_int_equal(n, 25);
    store_activities_free(list);
    assert_int_equal(store_activity_list(st, "api", 0, 100, &list, &n), 0);
    assert_int_equal(n, 5);
    store_activities_free(list);
    store_activities_free(NULL);

    assert_int_equal(store_activity_list(st, NULL, 0, 0, &list, &n), STORE_EINVAL);
    assert_int_equal(store_activity_list(st, NULL, 0, 10001, &list, &n), STORE_EINVAL);
    memset(&a, 0, sizeof(a));
    snprintf(a.group, sizeof(a.group), "web");
    assert_int_equal(store_activity_add(st, &a, NULL), STORE_EINVAL); /* no kind */
    snprintf(a.kind, sizeof(a.kind), "error");
    memset(a.cause, 'c', sizeof(a.cause)); /* not terminated */
    assert_int_equal(store_activity_add(st, &a, NULL), STORE_EINVAL);

    /* oversized text in the file is truncated on the way out */
    raw_exec(fx->dir, "INSERT INTO activities (group_name, at_ms, kind, cause, status, detail) "
                      "VALUES ('web', 1, printf('%.300c', 'k'), printf('%.5000c', 'c'), 'ok', "
                      "printf('%.5000c', 'd'))");
    assert_int_equal(store_activity_list(st, "web", 0, 1, &list, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(strlen(list[0].kind), STORE_SHORT_MAX - 1);
    assert_int_equal(strlen(list[0].cause), STORE_CAUSE_MAX - 1);
    assert_int_equal(strlen(list[0].detail), STORE_DETAIL_MAX - 1);
    store_activities_free(list);
}

/* ---- metrics -------------------------------------------------------------------------------- */

static void metrics(void **state)
{
    struct fixture *fx = *state;
    struct store *st = fx->st;
    struct store_metric_group g[10];
    struct store_metric_instance mi[20];
    memset(g, 0, sizeof(g));
    memset(mi, 0, sizeof(mi));
    for (int i = 0; i < 10; i++) {
        snprintf(g[i].group, sizeof(g[i].group), "web");
        g[i].at_ms = 1000 * (i + 1);
        g[i].avg_load = 10.0 * i;
        g[i].in_service = i;
        g[i].desired = i + 1;
        for (int k = 0; k < 2; k++) {
            struct store_metric_instance *m = &mi[i * 2 + k];
            snprintf(m->group, sizeof(m->group), "web");
            snprintf(m->instance_id, sizeof(m->instance_id), "i-%d", k);
            m->at_ms = g[i].at_ms;
            m->load = i + k / 2.0;
        }
    }
    g[9].avg_load = NAN; /* no data: stored as -1 */
    assert_int_equal(store_metrics_add(st, g, 10, mi, 20), 0);
    assert_int_equal(store_metrics_add(st, NULL, 0, NULL, 0), 0);

    struct store_metric_group *gr = NULL;
    size_t n = 0;
    assert_int_equal(store_metrics_group_since(st, "web", 5000, 1000, &gr, &n), 0);
    assert_int_equal(n, 6);
    assert_int_equal(gr[0].at_ms, 5000); /* oldest first */
    assert_true(gr[0].avg_load == 40.0);
    assert_int_equal(gr[0].in_service, 4);
    assert_int_equal(gr[0].desired, 5);
    assert_string_equal(gr[0].group, "web");
    assert_true(gr[5].avg_load == -1);
    free(gr);
    /* a cap keeps the newest rows, still oldest first */
    assert_int_equal(store_metrics_group_since(st, "web", 0, 3, &gr, &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(gr[0].at_ms, 8000);
    assert_int_equal(gr[2].at_ms, 10000);
    free(gr);
    assert_int_equal(store_metrics_group_since(st, "api", 0, 3, &gr, &n), 0);
    assert_int_equal(n, 0);
    assert_null(gr);
    assert_int_equal(store_metrics_group_since(st, "web", 0, 0, &gr, &n), STORE_EINVAL);

    struct store_metric_instance *ir = NULL;
    assert_int_equal(store_metrics_instance_since(st, "web", NULL, 9000, 100, &ir, &n), 0);
    assert_int_equal(n, 4);
    assert_int_equal(ir[0].at_ms, 9000);
    assert_string_equal(ir[0].instance_id, "i-0");
    assert_string_equal(ir[1].instance_id, "i-1");
    assert_true(ir[1].load == 8.5);
    free(ir);
    assert_int_equal(store_metrics_instance_since(st, "web", "i-1", 0, 100, &ir, &n), 0);
    assert_int_equal(n, 10);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(ir[i].instance_id, "i-1");
    free(ir);
    assert_int_equal(store_metrics_instance_since(st, "web", "i-1", 0, 2, &ir, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(ir[1].at_ms, 10000);
    free(ir);

    /* one transaction: a row failing half-way leaves nothing behind */
    raw_exec(fx->dir, "CREATE TRIGGER fail_poison BEFORE INSERT ON metrics_instance WHEN "
                      "NEW.instance_id = 'poison' BEGIN SELECT RAISE(ABORT, 'poisoned'); END");
    struct store_metric_group g2 = g[0];
    g2.at_ms = 50000;
    struct store_metric_instance m2[2] = {mi[0], mi[1]};
    m2[0].at_ms = m2[1].at_ms = 50000;
    snprintf(m2[1].instance_id, sizeof(m2[1].instance_id), "poison");
    assert_int_not_equal(store_metrics_add(st, &g2, 1, m2, 2), 0);
    assert_non_null(strstr(store_errmsg(st), "poisoned"));
    assert_int_equal(store_metrics_group_since(st, "web", 50000, 10, &gr, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(store_metrics_instance_since(st, "web", NULL, 50000, 10, &ir, &n), 0);
    assert_int_equal(n, 0);
    /* invalid rows are refused before anything is written */
    memset(m2[1].instance_id, 'x', sizeof(m2[1].instance_id));
    assert_int_equal(store_metrics_add(st, &g2, 1, m2, 2), STORE_EINVAL);
    assert_int_equal(store_metrics_add(st, NULL, 1, NULL, 0), STORE_EINVAL);

    int64_t deleted = -1;
    assert_int_equal(store_metrics_prune(st, 3000, &deleted), 0);
    assert_int_equal(deleted, 2 + 4);
    assert_int_equal(store_metrics_group_since(st, "web", 0, 100, &gr, &n), 0);
    assert_int_equal(n, 8);
    assert_int_equal(gr[0].at_ms, 3000);
    free(gr);
    assert_int_equal(store_metrics_prune(st, 0, NULL), 0);
    reopen(fx);
    assert_int_equal(store_metrics_instance_since(fx->st, "web", NULL, 0, 100, &ir, &n), 0);
    assert_int_equal(n, 16);
    free(ir);
}

/* ---- migrations and errors ----------------------------------------------------------------- */

static void make_dir(char *dir, size_t size)
{
    snprintf(dir, size, "/tmp/asgd-store-test-XXXXXX");
    assert_non_null(mkdtemp(dir));
}

static void write_file(const char *dir, const void *data, size_t n)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/asgd.db", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, n), (ssize_t)n);
    close(fd);
}

static void migrations(void **state)
{
    (void)state;
    char dir[128], err[512];
    struct store *st = NULL;
    struct group_settings g;

    /* an empty file (version 0) is migrated */
    make_dir(dir, sizeof(dir));
    write_file(dir, "", 0);
    assert_int_equal(store_open(dir, &st, err, sizeof(err)), 0);
    assert_int_equal(store_schema_version(st), STORE_SCHEMA_VERSION);
    sample_group(&g, "web");
    assert_int_equal(store_put_settings(st, &g, 0, NULL), 0);
    store_close(st);
    st = NULL;
    /* and a second open does not migrate twice */
    assert_int_equal(store_open(dir, &st, err, sizeof(err)), 0);
    assert_int_equal(store_get_settings(st, "web", &g), 0);
    store_close(st);
    st = NULL;
    rm_rf(dir);

    /* an explicit version 0 table is migrated too */
    make_dir(dir, sizeof(dir));
    write_file(dir, "", 0);
    raw_exec(dir, "CREATE TABLE schema_version (version INTEGER NOT NULL, applied_at_ms INTEGER "
                  "NOT NULL); INSERT INTO schema_version VALUES (0, 0)");
    assert_int_equal(store_open(dir, &st, err, sizeof(err)), 0);
    assert_int_equal(store_schema_version(st), STORE_SCHEMA_VERSION);
    store_close(st);
    st = NULL;

    /* a newer schema is refused with a message that says what to do */
    raw_exec(dir, "INSERT INTO schema_version VALUES (99, 0)");
    assert_int_equal(store_open(dir, &st, err, sizeof(err)), STORE_EVERSION);
    assert_null(st);
    assert_non_null(strstr(err, "schema version 99"));
    assert_non_null(strstr(err, "asgd.db"));
    assert_string_equal(store_strerror(STORE_EVERSION), "database schema is newer than this asgd");
    /* the largest version an int holds: refused the same way, no arithmetic past it (UBSan) */
    raw_exec(dir, "INSERT INTO schema_version VALUES (2147483647, 0)");
    assert_int_equal(store_open(dir, &st, err, sizeof(err)), STORE_EVERSION);
    assert_null(st);
    assert_non_null(strstr(err, "schema version 2147483647"));
    rm_rf(dir);
}

static void open_errors(void **state)
{
    (void)state;
    char dir[128], path[256], err[512];
    struct store *st = NULL;
    make_dir(dir, sizeof(dir));

    assert_int_equal(store_open(NULL, &st, err, sizeof(err)), STORE_EINVAL);
    assert_int_equal(store_open("", &st, err, sizeof(err)), STORE_EINVAL);

    /* parent missing */
    snprintf(path, sizeof(path), "%s/missing/sub", dir);
    assert_int_equal(store_open(path, &st, err, sizeof(err)), STORE_EIO);
    assert_null(st);
    assert_non_null(strstr(err, "cannot create state directory"));
    assert_non_null(strstr(err, "No such file"));

    /* a file where the directory should be */
    write_file(dir, "x", 1);
    snprintf(path, sizeof(path), "%s/asgd.db", dir);
    assert_int_equal(store_open(path, &st, err, sizeof(err)), STORE_EIO);
    assert_non_null(strstr(err, "not a directory"));

    /* not a database: a clear error, no crash */
    char junk[4096];
    for (size_t i = 0; i < sizeof(junk); i++)
        junk[i] = (char)(i * 7 + 3);
    write_file(dir, junk, sizeof(junk));
    assert_int_equal(store_open(dir, &st, err, sizeof(err)), STORE_ECORRUPT);
    assert_null(st);
    assert_non_null(strstr(err, "asgd.db"));
    assert_non_null(strstr(err, "not a database"));

    /* an unwritable directory (root ignores permissions: then only the checks above run) */
    unlink(path);
    snprintf(path, sizeof(path), "%s/sub", dir);
    assert_int_equal(mkdir(path, 0500), 0);
    if (geteuid() != 0) {
        assert_int_equal(store_open(path, &st, err, sizeof(err)), STORE_EIO);
        assert_null(st);
        assert_non_null(strstr(err, "asgd.db"));
    }
    rmdir(path);
    store_close(NULL);
    assert_string_equal(store_errmsg(NULL), "no store");
    assert_string_equal(store_strerror(-1000), "unknown error");
    rm_rf(dir);
}

static void damaged_pages(void **state)
{
    (void)state;
    char dir[128], path[256], err[512];
    struct store *st = NULL;
    make_dir(dir, sizeof(dir));
    assert_int_equal(store_open(dir, &st, err, sizeof(err)), 0);
    struct store_activity a;
    memset(&a, 0, sizeof(a));
    snprintf(a.group, sizeof(a.group), "web");
    snprintf(a.kind, sizeof(a.kind), "scale");
    snprintf(a.detail, sizeof(a.detail), "%0500d", 0);
    for (int i = 0; i < 200; i++)
        assert_int_equal(store_activity_add(st, &a, NULL), 0);
    store_close(st);
    st = NULL;
    /* everything is checkpointed into the main file at close; now smash pages 2.. */
    snprintf(path, sizeof(path), "%s/asgd.db", dir);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_true(sb.st_size > 8192);
    int fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    char junk[2048];
    memset(junk, 0xA5, sizeof(junk));
    for (off_t off = 4096; off + (off_t)sizeof(junk) <= sb.st_size; off += 4096)
        assert_int_equal(pwrite(fd, junk, sizeof(junk), off + 100), (ssize_t)sizeof(junk));
    close(fd);
    int rc = store_open(dir, &st, err, sizeof(err));
    if (rc == 0) {
        struct store_activity *list = NULL;
        size_t n = 0;
        rc = store_activity_list(st, NULL, 0, 1000, &list, &n);
        if (rc == 0)
            store_activities_free(list);
        else
            snprintf(err, sizeof(err), "%s", store_errmsg(st));
        store_close(st);
    }
    assert_int_equal(rc, STORE_ECORRUPT);
    assert_true(strlen(err) > 0);
    rm_rf(dir);
}

/* ---- two handles ---------------------------------------------------------------------------- */

struct writer {
    const char *dir;
    int which, failures;
};

static void *writer_thread(void *arg)
{
    struct writer *w = arg;
    struct store *st = NULL;
    char err[256];
    if (store_open(w->dir, &st, err, sizeof(err)) != 0) {
        w->failures = 1000;
        return NULL;
    }
    for (int i = 0; i < 100; i++) {
        struct store_activity a;
        memset(&a, 0, sizeof(a));
        snprintf(a.group, sizeof(a.group), "w%d", w->which);
        snprintf(a.kind, sizeof(a.kind), "scale");
        a.at_ms = i;
        if (store_activity_add(st, &a, NULL) != 0)
            w->failures++;
        struct store_metric_group g;
        memset(&g, 0, sizeof(g));
        snprintf(g.group, sizeof(g.group), "w%d", w->which);
        g.at_ms = i;
        if (store_metrics_add(st, &g, 1, NULL, 0) != 0)
            w->failures++;
        struct store_activity *list = NULL;
        size_t n;
        if (store_activity_list(st, NULL, 0, 5, &list, &n) != 0)
            w->failures++;
        store_activities_free(list);
    }
    store_close(st);
    return NULL;
}

static void two_handles(void **state)
{
    struct fixture *fx = *state;
    struct store *b = NULL;
    char err[256];
    assert_int_equal(store_open(fx->dir, &b, err, sizeof(err)), 0);
    struct group_settings g, got;
    sample_group(&g, "web");
    assert_int_equal(store_put_settings(fx->st, &g, 0, NULL), 0);
    assert_int_equal(store_get_settings(b, "web", &got), 0);
    assert_int_equal(got.revision, 1);
    /* an edit through b is seen by a, and a's stale revision conflicts */
    g.max_size = 8;
    assert_int_equal(store_put_settings(b, &g, 1, NULL), 0);
    assert_int_equal(store_put_settings(fx->st, &g, 1, NULL), STORE_ECONFLICT);
    assert_int_equal(store_get_settings(fx->st, "web", &got), 0);
    assert_int_equal(got.max_size, 8);
    store_close(b);

    /* WAL is on */
    char path[256];
    snprintf(path, sizeof(path), "%s/asgd.db-wal", fx->dir);
    assert_int_equal(access(path, F_OK), 0);

    /* writers on separate handles in parallel wait for each other instead of failing */
    struct writer w[3] = {{fx->dir, 0, 0}, {fx->dir, 1, 0}, {fx->dir, 2, 0}};
    pthread_t t[3];
    for (int i = 0; i < 3; i++)
        assert_int_equal(pthread_create(&t[i], NULL, writer_thread, &w[i]), 0);
    for (int i = 0; i < 3; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(w[i].failures, 0);
    }
    struct store_activity *list = NULL;
    size_t n;
    assert_int_equal(store_activity_list(fx->st, NULL, 0, 1000, &list, &n), 0);
    assert_int_equal(n, 300);
    store_activities_free(list);
}

/* ---- allocation failures ---------------------------------------------------------------- */

/*
 * SQLite's and jansson's allocators are wrapped so that the Nth allocation
 * fails (curl's torture tests): every N in turn (with a growing stride) runs
 * a sequence touching every function; each call must fail cleanly with a
 * STORE_E* code, leak nothing (ASan) and leave a database that opens.
 */
static sqlite3_mem_methods real_mem;
static long alloc_count, alloc_fail_at = -1;

static int alloc_should_fail(void)
{
    return ++alloc_count == alloc_fail_at;
}

/*
 * jansson 2.14's parser ignores a failed growth of its token buffer (lex_save()
 * drops the return value of strbuffer_append_byte()) and then reads past the
 * token: a failed allocation inside json_loads() of any token of 16 bytes or
 * more crashes in the library (reproduced alone with a 3-key object). That is
 * jansson's bug, not the store's, so allocations made inside json_loads() are
 * never failed: this definition takes the executable's calls (the store's code
 * is linked in statically) and forwards them to the library's.
 */
static int in_json_loads;
json_t *json_loads(const char *input, size_t flags, json_error_t *error)
{
    static json_t *(*real)(const char *, size_t, json_error_t *);
    if (real == NULL)
        *(void **)&real = dlsym(RTLD_NEXT, "json_loads");
    in_json_loads++;
    json_t *j = real(input, flags, error);
    in_json_loads--;
    return j;
}

static void *t_malloc(int n)
{
    return alloc_should_fail() ? NULL : real_mem.xMalloc(n);
}

static void *t_realloc(void *p, int n)
{
    return alloc_should_fail() ? NULL : real_mem.xRealloc(p, n);
}

static void *t_json_malloc(size_t n)
{
    if (in_json_loads)
        return malloc(n); /* see json_loads() above */
    return alloc_should_fail() ? NULL : malloc(n);
}

static void install_failing_allocators(void)
{
    sqlite3_config(SQLITE_CONFIG_GETMALLOC, &real_mem);
    sqlite3_mem_methods m = real_mem;
    m.xMalloc = t_malloc;
    m.xRealloc = t_realloc;
    sqlite3_config(SQLITE_CONFIG_MALLOC, &m);
    json_set_alloc_funcs(t_json_malloc, free);
}

static int rc_ok(int rc)
{
    return rc <= 0 && rc >= STORE_ENOMEM;
}

/* Every function once; returns how many calls failed (each failure must be a STORE_E* code). */
static int torture_sequence(const char *dir, long round)
{
    struct store *st = NULL;
    char err[256];
    int rc = store_open(dir, &st, err, sizeof(err)), fails = 0;
    assert_true(rc_ok(rc));
    if (rc)
        return 1;
#define T(call)                                                                                    \
    do {                                                                                           \
        int r_ = (call);                                                                           \
        assert_true(rc_ok(r_));                                                                    \
        fails += r_ != 0;                                                                          \
    } while (0)
    struct group_settings g;
    sample_group(&g, "web");
    T(store_put_settings(st, &g, -1, NULL));
    T(store_get_settings(st, "web", &g));
    T(store_set_desired(st, "web", 4, NULL));
    char **names = NULL;
    size_t n = 0;
    T(store_list_groups(st, &names, &n));
    store_names_free(names, n);
    struct store_instance in;
    char id[32], tok[32];
    snprintf(id, sizeof(id), "i-%ld", round);
    snprintf(tok, sizeof(tok), "tok-%ld", round);
    sample_instance(&in, id, "web", round);
    T(store_put_instance(st, &in));
    T(store_set_instance_lifecycle(st, id, "in-service", 0));
    struct store_instance *list = NULL;
    T(store_list_instances(st, "web", 1, &list, &n));
    store_instances_free(list);
    T(store_intent_create(st, tok, "web", 1, round));
    const char *ids[] = {id};
    struct store_intent *open = NULL;
    T(store_intent_list_open(st, NULL, &open, &n));
    store_intents_free(open, n);
    T(store_intent_complete(st, tok, STORE_INTENT_DONE, ids, 1));
    struct store_activity a;
    memset(&a, 0, sizeof(a));
    snprintf(a.group, sizeof(a.group), "web");
    snprintf(a.kind, sizeof(a.kind), "launch");
    T(store_activity_add(st, &a, NULL));
    struct store_activity *acts = NULL;
    T(store_activity_list(st, NULL, 0, 10, &acts, &n));
    store_activities_free(acts);
    struct store_metric_group mg;
    memset(&mg, 0, sizeof(mg));
    snprintf(mg.group, sizeof(mg.group), "web");
    struct store_metric_instance mi;
    memset(&mi, 0, sizeof(mi));
    snprintf(mi.group, sizeof(mi.group), "web");
    snprintf(mi.instance_id, sizeof(mi.instance_id), "%s", id);
    T(store_metrics_add(st, &mg, 1, &mi, 1));
    struct store_metric_group *gr = NULL;
    T(store_metrics_group_since(st, "web", 0, 10, &gr, &n));
    free(gr);
    struct store_metric_instance *ir = NULL;
    T(store_metrics_instance_since(st, "web", NULL, 0, 10, &ir, &n));
    free(ir);
    T(store_metrics_prune(st, 0, NULL));
    T(store_delete_instance(st, id));
    /* v2 calls; the group "tmp" comes and goes each round */
    T(store_put_spec(st, "web", "{\"provider\":{}}", -1, NULL));
    char *spec = NULL;
    T(store_get_spec(st, "web", &spec, NULL));
    free(spec);
    int64_t rq = 0;
    int r1 = store_request_add(st, "web", "terminate", "{}", &rq);
    T(r1);
    struct store_request *reqs = NULL;
    T(store_request_list(st, "web", &reqs, &n));
    store_requests_free(reqs, n);
    if (r1 == 0)
        T(store_request_delete(st, "web", rq));
    sample_group(&g, "tmp");
    if (store_put_settings(st, &g, -1, NULL) == 0)
        T(store_delete_group(st, "tmp"));
#undef T
    store_close(st);
    return fails;
}

static void allocation_failures(void **state)
{
    (void)state;
    char dir[128], err[256];
    make_dir(dir, sizeof(dir));
    alloc_fail_at = -1;
    alloc_count = 0;
    assert_int_equal(torture_sequence(dir, 0), 0);
    long total = alloc_count;
    assert_true(total > 50);
    int rounds = 0, failed_rounds = 0;
    for (long nth = 1; nth <= total; nth += 1 + nth / 24) {
        alloc_count = 0;
        alloc_fail_at = nth;
        failed_rounds += torture_sequence(dir, nth) > 0;
        alloc_fail_at = -1;
        rounds++;
        /* whatever failed, the database still opens and answers */
        struct store *st = NULL;
        assert_int_equal(store_open(dir, &st, err, sizeof(err)), 0);
        struct group_settings g;
        assert_int_equal(store_get_settings(st, "web", &g), 0);
        store_close(st);
    }
    print_message("  %ld allocations per sequence, %d rounds, %d saw a failure\n", total, rounds,
                  failed_rounds);
    assert_true(failed_rounds > 0);
    rm_rf(dir);
}

/*
 * asgd and `asgd status` (or the two roles of the two-process mode) may open
 * a state directory that has no database yet at the same moment. Every one
 * of them must succeed: switching a new file to WAL from two handles at once
 * makes SQLite answer BUSY without calling the busy handler.
 */
static void concurrent_first_open(void **state)
{
    (void)state;
    for (int round = 0; round < 20; round++) {
        char dir[64];
        snprintf(dir, sizeof(dir), "/tmp/asgd-store-race-XXXXXX");
        assert_non_null(mkdtemp(dir));
        int go[2];
        assert_int_equal(pipe(go), 0);
        pid_t kids[4];
        for (int k = 0; k < 4; k++) {
            kids[k] = fork();
            assert_true(kids[k] >= 0);
            if (kids[k] == 0) {
                char c;
                close(go[1]);
                if (read(go[0], &c, 1) < 0)
                    _exit(3);
                struct store *st = NULL;
                char err[256];
                int rc = store_open(dir, &st, err, sizeof(err));
                if (rc != 0)
                    fprintf(stderr, "child %d: %s\n", k, err);
                store_close(st);
                _exit(rc == 0 ? 0 : 1);
            }
        }
        close(go[0]);
        close(go[1]); /* EOF releases every child at once */
        for (int k = 0; k < 4; k++) {
            int status;
            assert_int_equal(waitpid(kids[k], &status, 0), kids[k]);
            assert_true(WIFEXITED(status));
            assert_int_equal(WEXITSTATUS(status), 0);
        }
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        assert_int_equal(system(cmd), 0);
    }
}

/* ---- the cases shared with the etcd backend (test_store_cases.h) on SQLite ------------------ */

struct sq_fx {
    struct store *st; /* first: struct gc_fx */
    char dir[128];
};

static int gc_setup(void **state)
{
    struct sq_fx *fx = calloc(1, sizeof(*fx));
    if (!fx)
        return -1;
    snprintf(fx->dir, sizeof(fx->dir), "/tmp/asgd-store-test-XXXXXX");
    char err[256];
    if (!mkdtemp(fx->dir) || store_open(fx->dir, &fx->st, err, sizeof(err)) != 0) {
        free(fx);
        return -1;
    }
    *state = fx;
    return 0;
}

static int gc_teardown(void **state)
{
    struct sq_fx *fx = *state;
    store_close(fx->st);
    rm_rf(fx->dir);
    free(fx);
    return 0;
}

static struct store *gc_open(void **state)
{
    struct sq_fx *fx = *state;
    struct store *st = NULL;
    char err[256];
    if (store_open(fx->dir, &st, err, sizeof(err)) != 0)
        fail_msg("store_open: %s", err);
    return st;
}

/* ---- SQLite only: schema v2, file modes, watch and fences ----------------------------------- */

/* The v1 layout as asgd 0.x wrote it, with a row in each table. */
static const char v1_schema[] =
    "CREATE TABLE schema_version (version INTEGER NOT NULL, applied_at_ms INTEGER NOT NULL);"
    "INSERT INTO schema_version VALUES (1, 1);"
    "CREATE TABLE groups (name TEXT PRIMARY KEY, min_size INTEGER NOT NULL, max_size INTEGER "
    "NOT NULL, desired_capacity INTEGER NOT NULL, policy TEXT NOT NULL, health TEXT NOT NULL, "
    "revision INTEGER NOT NULL, updated_at_ms INTEGER NOT NULL);"
    "CREATE TABLE instances (id TEXT PRIMARY KEY, group_name TEXT NOT NULL, address TEXT NOT NULL "
    "DEFAULT '', provider TEXT NOT NULL DEFAULT '', lifecycle TEXT NOT NULL DEFAULT '', "
    "launched_at_ms INTEGER NOT NULL DEFAULT 0, launch_token TEXT NOT NULL DEFAULT '', pid "
    "INTEGER NOT NULL DEFAULT 0, zone TEXT NOT NULL DEFAULT '', created_at_ms INTEGER NOT NULL, "
    "updated_at_ms INTEGER NOT NULL, terminated_at_ms INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX instances_by_group ON instances (group_name, launched_at_ms);"
    "CREATE TABLE launch_intents (token TEXT PRIMARY KEY, group_name TEXT NOT NULL, count "
    "INTEGER NOT NULL, created_at_ms INTEGER NOT NULL, state TEXT NOT NULL CHECK (state IN "
    "('open', 'done', 'failed')), instance_ids TEXT NOT NULL DEFAULT '[]', updated_at_ms INTEGER "
    "NOT NULL);"
    "CREATE INDEX intents_by_state ON launch_intents (state, group_name, created_at_ms);"
    "CREATE TABLE activities (id INTEGER PRIMARY KEY AUTOINCREMENT, group_name TEXT NOT NULL, "
    "at_ms INTEGER NOT NULL, kind TEXT NOT NULL, cause TEXT NOT NULL DEFAULT '', from_count "
    "INTEGER NOT NULL DEFAULT 0, to_count INTEGER NOT NULL DEFAULT 0, status TEXT NOT NULL "
    "DEFAULT '', detail TEXT NOT NULL DEFAULT '');"
    "CREATE INDEX activities_by_group ON activities (group_name, id);"
    "CREATE TABLE metrics_group (group_name TEXT NOT NULL, at_ms INTEGER NOT NULL, avg_load REAL "
    "NOT NULL, in_service INTEGER NOT NULL, desired INTEGER NOT NULL);"
    "CREATE TABLE metrics_instance (group_name TEXT NOT NULL, at_ms INTEGER NOT NULL, "
    "instance_id TEXT NOT NULL, load REAL NOT NULL);"
    "INSERT INTO groups VALUES ('web', 1, 4, 2, '{\"type\":\"target\",\"target\":60}', "
    "'{\"type\":\"agent\"}', 7, 1);"
    "INSERT INTO instances (id, group_name, created_at_ms, updated_at_ms) VALUES ('i-1', 'web', "
    "1, 1);"
    "INSERT INTO launch_intents (token, group_name, count, created_at_ms, state, updated_at_ms) "
    "VALUES ('tok', 'web', 1, 1, 'open', 1);"
    "INSERT INTO activities (group_name, at_ms, kind) VALUES ('web', 1, 'launch');"
    "INSERT INTO metrics_group VALUES ('web', 1, 0.5, 1, 2);";

static void migrate_v1_file(void **state)
{
    (void)state;
    char dir[128], err[512];
    make_dir(dir, sizeof(dir));
    write_file(dir, "", 0);
    raw_exec(dir, v1_schema);
    struct store *st = NULL;
    assert_int_equal(store_open(dir, &st, err, sizeof(err)), 0);
    assert_int_equal(store_schema_version(st), STORE_SCHEMA_VERSION);
    /* v1 data is intact */
    struct group_settings g;
    gc_ok(st, store_get_settings(st, "web", &g));
    assert_int_equal(g.revision, 7);
    assert_true(g.policy.target == 60);
    struct store_instance in;
    gc_ok(st, store_get_instance(st, "i-1", &in));
    struct store_intent *it = NULL;
    size_t n = 0;
    gc_ok(st, store_intent_list_open(st, "web", &it, &n));
    assert_int_equal(n, 1);
    store_intents_free(it, n);
    /* and v2's tables work */
    gc_ok(st, store_put_spec(st, "web", "{}", 0, NULL));
    int64_t id = 0;
    gc_ok(st, store_request_add(st, "web", "terminate", "{}", &id));
    gc_ok(st, store_delete_group(st, "web"));
    assert_int_equal(store_get_instance(st, "i-1", &in), STORE_ENOENT);
    store_close(st);
    /* reopening does not migrate again */
    assert_int_equal(store_open(dir, &st, err, sizeof(err)), 0);
    assert_int_equal(store_schema_version(st), STORE_SCHEMA_VERSION);
    store_close(st);
    rm_rf(dir);
}

static void file_modes(void **state)
{
    (void)state;
    char dir[128], path[256], err[512];
    mode_t old = umask(022);
    snprintf(dir, sizeof(dir), "/tmp/asgd-store-mode-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/sub", dir);
    struct store *st = NULL;
    assert_int_equal(store_open(path, &st, err, sizeof(err)), 0);
    struct group_settings g;
    gc_group(&g, "web");
    gc_ok(st, store_put_settings(st, &g, 0, NULL)); /* the -wal and -shm files exist now */
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0700);
    const char *files[] = {"asgd.db", "asgd.db-wal", "asgd.db-shm"};
    for (size_t i = 0; i < 3; i++) {
        char f[300];
        snprintf(f, sizeof(f), "%s/%s", path, files[i]);
        assert_int_equal(stat(f, &sb), 0);
        if ((sb.st_mode & 0777) != 0600)
            fail_msg("%s has mode %o, want 600", f, (unsigned)(sb.st_mode & 0777));
    }
    store_close(st);
    /* a directory made 0755 by a caller is narrowed at open */
    assert_int_equal(chmod(path, 0755), 0);
    assert_int_equal(store_open(path, &st, err, sizeof(err)), 0);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0700);
    store_close(st);
    /* a database left readable by others is narrowed at open */
    char f[300];
    snprintf(f, sizeof(f), "%s/asgd.db", path);
    assert_int_equal(chmod(f, 0644), 0);
    assert_int_equal(store_open(path, &st, err, sizeof(err)), 0);
    assert_int_equal(stat(f, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    store_close(st);
    umask(old);
    for (size_t i = 0; i < 3; i++) {
        snprintf(f, sizeof(f), "%s/%s", path, files[i]);
        unlink(f);
    }
    rmdir(path);
    rmdir(dir);
}

/*
 * Two handles in one process, then a reader in another process: opening the
 * second handle must not drop the first one's locks (a close() of any fd on
 * the file drops all of the process's POSIX locks), else the reader, closing
 * last as it believes, deletes the WAL and the first handle's later writes go
 * to a deleted file (found as lost activities in test_asgd_scaling).
 */
static void second_handle_keeps_locks(void **state)
{
    (void)state;
    char dir[128], err[256];
    make_dir(dir, sizeof(dir));
    struct store *a = NULL, *b = NULL, *c = NULL;
    assert_int_equal(store_open(dir, &a, err, sizeof(err)), 0);
    struct store_activity act;
    memset(&act, 0, sizeof(act));
    snprintf(act.group, sizeof(act.group), "web");
    snprintf(act.kind, sizeof(act.kind), "scale");
    gc_ok(a, store_activity_add(a, &act, NULL));
    assert_int_equal(store_open(dir, &b, err, sizeof(err)), 0);
    /* a separate program (a forked child would share SQLite's view of this process's locks) */
    char cmd[512];
    snprintf(cmd, sizeof(cmd),
             "/usr/bin/python3 -c 'import sqlite3; db = sqlite3.connect(\"%s/asgd.db\"); "
             "db.execute(\"SELECT count(*) FROM activities\").fetchall(); db.close()'",
             dir);
    int status = system(cmd);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    /* written after the reader left: into a WAL file that must still be the real one */
    gc_ok(a, store_activity_add(a, &act, NULL));
    assert_int_equal(store_open(dir, &c, err, sizeof(err)), 0);
    struct store_activity *list = NULL;
    size_t n = 0;
    gc_ok(c, store_activity_list(c, NULL, 0, 10, &list, &n));
    assert_int_equal(n, 2);
    store_activities_free(list);
    store_close(c);
    store_close(b);
    store_close(a);
    rm_rf(dir);
}

static void noop_cb(void *arg, const char *group, int what)
{
    (void)arg;
    (void)group;
    (void)what;
}

static void sqlite_watch_and_fence(void **state)
{
    struct store *st = ((struct gc_fx *)*state)->st;
    assert_int_equal(store_watch(st, noop_cb, NULL), STORE_ENOTSUP);
    assert_int_equal(store_watch(st, NULL, NULL), STORE_ENOTSUP);
    /* one node: a fence is accepted and writes go on whatever the owner key says */
    gc_ok(st, store_set_fence(st, "web", "/asgd/owners/web", 42));
    assert_int_equal(store_set_fence(st, "web", "", 42), STORE_EINVAL);
    assert_int_equal(store_set_fence(st, "web", "/k", 0), STORE_EINVAL);
    struct store_instance in;
    gc_instance(&in, "i-1", "web", 1);
    gc_ok(st, store_put_instance(st, &in));
    gc_ok(st, store_clear_fence(st, "web"));
    assert_string_equal(store_strerror(STORE_EFENCED), "not the owner of the group any more");
    assert_non_null(strstr(store_strerror(STORE_EUNAVAIL), "etcd"));
}

int main(void)
{
    install_failing_allocators();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(settings_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(settings_json_is_distrusted, setup, teardown),
        cmocka_unit_test_setup_teardown(instances, setup, teardown),
        cmocka_unit_test_setup_teardown(intents, setup, teardown),
        cmocka_unit_test_setup_teardown(activities, setup, teardown),
        cmocka_unit_test_setup_teardown(metrics, setup, teardown),
        cmocka_unit_test(migrations),
        cmocka_unit_test(open_errors),
        cmocka_unit_test(damaged_pages),
        cmocka_unit_test_setup_teardown(two_handles, setup, teardown),
        cmocka_unit_test(allocation_failures),
        cmocka_unit_test(concurrent_first_open),
        GC_CASES(gc_setup, gc_teardown),
        cmocka_unit_test(migrate_v1_file),
        cmocka_unit_test(file_modes),
        cmocka_unit_test(second_handle_keeps_locks),
        cmocka_unit_test_setup_teardown(sqlite_watch_and_fence, gc_setup, gc_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
