/*
 * test_store_cases.h - behavioural cases of store.h that every backend must
 * pass, included by test_store.c (SQLite files) and test_store_etcd.c (a
 * real 3-member etcd cluster). Only the public API is used here.
 *
 * The including file defines, before including this header:
 *   struct store *gc_open(void **state)  a NEW handle on the same storage
 *                                        as the fixture's (same directory,
 *                                        same etcd prefix); fails the test
 *                                        when it cannot.
 * and its fixture's first member is the handle (struct gc_fx).
 */
#ifndef ASGD_TEST_STORE_CASES_H
#define ASGD_TEST_STORE_CASES_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/store.h"

struct gc_fx {
    struct store *st; /* first member: the fixture's handle */
};

static struct store *gc_open(void **state);

#define gc_ok(st, expr)                                                                            \
    do {                                                                                           \
        int rc_ = (expr);                                                                          \
        if (rc_ != 0)                                                                              \
            fail_msg("%s: %s (%s)", #expr, store_strerror(rc_), store_errmsg(st));                 \
    } while (0)

static void gc_group(struct group_settings *g, const char *name)
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

static void gc_instance(struct store_instance *in, const char *id, const char *group,
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

static void gc_settings(void **state)
{
    struct store *st = ((struct gc_fx *)*state)->st;
    struct group_settings g, got;
    assert_int_equal(store_get_settings(st, "web", &got), STORE_ENOENT);
    gc_group(&g, "web");
    int64_t rev = 0;
    gc_ok(st, store_put_settings(st, &g, 0, &rev));
    assert_int_equal(rev, 1);
    gc_ok(st, store_get_settings(st, "web", &got));
    assert_string_equal(got.name, "web");
    assert_int_equal(got.min_size, 2);
    assert_int_equal(got.max_size, 5);
    assert_int_equal(got.desired_capacity, 3);
    assert_int_equal(got.revision, 1);
    assert_true(got.updated_at_ms > 0);
    assert_memory_equal(&got.policy, &g.policy, sizeof(g.policy));
    assert_memory_equal(&got.health, &g.health, sizeof(g.health));

    assert_int_equal(store_put_settings(st, &g, 0, &rev), STORE_ECONFLICT);
    assert_non_null(strstr(store_errmsg(st), "revision"));
    assert_int_equal(store_put_settings(st, &g, 7, &rev), STORE_ECONFLICT);
    g.max_size = 9;
    g.policy.type = POLICY_THRESHOLD;
    g.policy.up_threshold = 81;
    gc_ok(st, store_put_settings(st, &g, 1, &rev));
    assert_int_equal(rev, 2);
    gc_ok(st, store_put_settings(st, &g, -1, &rev));
    assert_int_equal(rev, 3);
    gc_ok(st, store_get_settings(st, "web", &got));
    assert_int_equal(got.revision, 3);
    assert_int_equal(got.max_size, 9);
    assert_int_equal(got.policy.type, POLICY_THRESHOLD);

    gc_ok(st, store_set_desired(st, "web", 9, &rev));
    assert_int_equal(rev, 4);
    assert_int_equal(store_set_desired(st, "web", 10, &rev), STORE_EINVAL);
    assert_non_null(strstr(store_errmsg(st), "outside"));
    assert_int_equal(store_set_desired(st, "nope", 3, &rev), STORE_ENOENT);
    gc_ok(st, store_get_settings(st, "web", &got));
    assert_int_equal(got.desired_capacity, 9);
    assert_int_equal(got.revision, 4);

    struct group_settings bad = g;
    bad.min_size = 6;
    bad.max_size = 5;
    assert_int_equal(store_put_settings(st, &bad, -1, NULL), STORE_EINVAL);
    bad = g;
    bad.desired_capacity = 100;
    assert_int_equal(store_put_settings(st, &bad, -1, NULL), STORE_EINVAL);

    gc_group(&g, "api");
    gc_ok(st, store_put_settings(st, &g, 0, NULL));
    char **names = NULL;
    size_t n = 0;
    gc_ok(st, store_list_groups(st, &names, &n));
    assert_int_equal(n, 2);
    assert_string_equal(names[0], "api");
    assert_string_equal(names[1], "web");
    store_names_free(names, n);

    /* a second handle sees the same state and the same revisions */
    struct store *b = gc_open(state);
    gc_ok(b, store_get_settings(b, "web", &got));
    assert_int_equal(got.revision, 4);
    assert_int_equal(got.desired_capacity, 9);
    /* optimistic locking between handles: the second writer loses */
    got.min_size = 3;
    gc_ok(b, store_put_settings(b, &got, 4, NULL));
    assert_int_equal(store_put_settings(st, &got, 4, NULL), STORE_ECONFLICT);
    store_close(b);
    /* lifecycle settings (issue 12), on both backends */
    g.protect_new_instances = 1;
    g.hooks.launch_timeout_ms = 300000;
    g.hooks.terminate_timeout_ms = 90000;
    snprintf(g.hooks.launch_default, sizeof(g.hooks.launch_default), "continue");
    gc_ok(st, store_put_settings(st, &g, -1, &rev));
    gc_ok(st, store_get_settings(st, "api", &got));
    assert_int_equal(got.protect_new_instances, 1);
    assert_memory_equal(&got.hooks, &g.hooks, sizeof(g.hooks));
}

static void gc_instances(void **state)
{
    struct store *st = ((struct gc_fx *)*state)->st;
    struct store_instance in, got;
    gc_instance(&in, "i-2", "web", 2000);
    gc_ok(st, store_put_instance(st, &in));
    gc_instance(&in, "i-1", "web", 1000);
    gc_ok(st, store_put_instance(st, &in));
    gc_instance(&in, "i-9", "api", 500);
    gc_ok(st, store_put_instance(st, &in));

    gc_ok(st, store_get_instance(st, "i-1", &got));
    assert_string_equal(got.group, "web");
    assert_string_equal(got.address, "127.0.0.2:50051");
    assert_string_equal(got.launch_token, "tok-1");
    assert_int_equal(got.pid, 4242);
    assert_int_equal(got.launched_at_ms, 1000);
    int64_t created = got.created_at_ms;
    assert_true(created > 0);

    usleep(2000);
    gc_instance(&in, "i-1", "web", 1000);
    snprintf(in.address, sizeof(in.address), "127.0.0.3:50051");
    gc_ok(st, store_put_instance(st, &in));
    gc_ok(st, store_get_instance(st, "i-1", &got));
    assert_string_equal(got.address, "127.0.0.3:50051");
    assert_false(got.protect);
    assert_int_equal(got.hook_deadline_ms, 0);
    assert_int_equal(got.created_at_ms, created);
    assert_true(got.updated_at_ms > created);

    /* lifecycle (issue 12): protection and a hook's deadline survive in the row */
    in.protect = 1;
    in.hook_deadline_ms = 123456789;
    snprintf(in.lifecycle, sizeof(in.lifecycle), "terminating:wait");
    gc_ok(st, store_put_instance(st, &in));
    gc_ok(st, store_get_instance(st, "i-1", &got));
    assert_true(got.protect);
    assert_int_equal(got.hook_deadline_ms, 123456789);
    assert_string_equal(got.lifecycle, "terminating:wait");

    gc_ok(st, store_set_instance_lifecycle(st, "i-1", "in-service", 0));
    gc_ok(st, store_get_instance(st, "i-1", &got));
    assert_string_equal(got.lifecycle, "in-service");
    gc_ok(st, store_set_instance_lifecycle(st, "i-2", "terminated", 5555));
    gc_ok(st, store_set_instance_lifecycle(st, "i-2", "terminated", 0));
    gc_ok(st, store_get_instance(st, "i-2", &got));
    assert_int_equal(got.terminated_at_ms, 5555);
    assert_int_equal(store_set_instance_lifecycle(st, "i-404", "x", 0), STORE_ENOENT);
    assert_non_null(strstr(store_errmsg(st), "i-404"));
    assert_int_equal(store_get_instance(st, "i-404", &got), STORE_ENOENT);

    struct store_instance *list = NULL;
    size_t n = 99;
    gc_ok(st, store_list_instances(st, "web", 0, &list, &n));
    assert_int_equal(n, 1);
    assert_string_equal(list[0].id, "i-1");
    store_instances_free(list);
    gc_ok(st, store_list_instances(st, "web", 1, &list, &n));
    assert_int_equal(n, 2);
    assert_string_equal(list[0].id, "i-1");
    assert_string_equal(list[1].id, "i-2");
    store_instances_free(list);
    gc_ok(st, store_list_instances(st, NULL, 1, &list, &n));
    assert_int_equal(n, 3);
    assert_string_equal(list[0].id, "i-9");
    store_instances_free(list);

    gc_ok(st, store_delete_instance(st, "i-9"));
    assert_int_equal(store_delete_instance(st, "i-9"), STORE_ENOENT);
    gc_ok(st, store_list_instances(st, "api", 1, &list, &n));
    assert_int_equal(n, 0);
    assert_null(list);
}

static void gc_many_instances(void **state)
{
    /* more than one page of a range (etcd lists 500 keys per request) */
    struct store *st = ((struct gc_fx *)*state)->st;
    struct store_instance in;
    for (int i = 0; i < 1203; i++) {
        char id[32];
        snprintf(id, sizeof(id), "i-%05d", i);
        gc_instance(&in, id, "big", 100000 - i);
        gc_ok(st, store_put_instance(st, &in));
    }
    struct store_instance *list = NULL;
    size_t n = 0;
    gc_ok(st, store_list_instances(st, "big", 0, &list, &n));
    assert_int_equal(n, 1203);
    assert_string_equal(list[0].id, "i-01202"); /* oldest launch first */
    assert_string_equal(list[1202].id, "i-00000");
    store_instances_free(list);
}

/* The batch writes a launch and a mass replacement use: every row lands, in order. */
static void gc_batches(void **state)
{
    struct store *st = ((struct gc_fx *)*state)->st;
    struct store_instance v[3];
    const char *ids[4] = {"b-0", "b-1", "b-2", "b-unknown"};
    for (int i = 0; i < 3; i++)
        gc_instance(&v[i], ids[i], "batch", 1000 + i);
    gc_ok(st, store_put_instances(st, v, 3));
    gc_ok(st, store_put_instances(st, v, 0));
    /* an id without a row is skipped, the others are written */
    gc_ok(st, store_set_instances_lifecycle(st, ids, 4, "in-service", 0));
    gc_ok(st, store_set_instances_lifecycle(st, ids + 2, 1, "terminated", 7777));
    struct store_instance *list = NULL;
    size_t n = 0;
    gc_ok(st, store_list_instances(st, "batch", 0, &list, &n));
    assert_int_equal(n, 2); /* b-2 terminated */
    for (size_t i = 0; i < n; i++)
        assert_string_equal(list[i].lifecycle, "in-service");
    store_instances_free(list);
    struct store_instance got;
    gc_ok(st, store_get_instance(st, "b-2", &got));
    assert_int_equal(got.terminated_at_ms, 7777);
    /* one bad row refuses the batch before anything is written (SQLite: all or nothing) */
    gc_instance(&v[1], "", "batch", 1);
    assert_int_equal(store_put_instances(st, v, 3), STORE_EINVAL);
    struct store_activity a[3];
    memset(a, 0, sizeof(a));
    for (int i = 0; i < 3; i++) {
        snprintf(a[i].group, sizeof(a[i].group), "batch");
        snprintf(a[i].kind, sizeof(a[i].kind), "replace");
        snprintf(a[i].status, sizeof(a[i].status), "ok");
        snprintf(a[i].cause, sizeof(a[i].cause), "instance b-%d", i);
        a[i].at_ms = 5000 + i;
    }
    gc_ok(st, store_activities_add(st, a, 3));
    struct store_activity *al = NULL;
    gc_ok(st, store_activity_list(st, "batch", 0, 10, &al, &n));
    assert_int_equal(n, 3);
    assert_string_equal(al[0].cause, "instance b-2"); /* newest first */
    assert_string_equal(al[2].cause, "instance b-0");
    store_activities_free(al);
}

static void gc_intents(void **state)
{
    struct store *st = ((struct gc_fx *)*state)->st;
    gc_ok(st, store_intent_create(st, "tok-a", "web", 2, 1000));
    gc_ok(st, store_intent_create(st, "tok-b", "web", 1, 2000));
    gc_ok(st, store_intent_create(st, "tok-c", "api", 1, 1500));
    assert_int_equal(store_intent_create(st, "tok-a", "web", 2, 1000), STORE_EEXIST);
    assert_int_equal(store_intent_create(st, "tok-a", "api", 2, 1000), STORE_EEXIST);

    struct store_intent *list = NULL;
    size_t n = 0;
    gc_ok(st, store_intent_list_open(st, "web", &list, &n));
    assert_int_equal(n, 2);
    assert_string_equal(list[0].token, "tok-a");
    assert_int_equal(list[0].count, 2);
    assert_int_equal(list[0].state, STORE_INTENT_OPEN);
    store_intents_free(list, n);

    const char *ids[] = {"i-7", "i-8"};
    gc_ok(st, store_intent_complete(st, "tok-a", STORE_INTENT_DONE, ids, 2));
    assert_int_equal(store_intent_complete(st, "tok-x", STORE_INTENT_DONE, NULL, 0), STORE_ENOENT);
    assert_int_equal(store_intent_complete(st, "tok-b", STORE_INTENT_OPEN, NULL, 0), STORE_EINVAL);
    gc_ok(st, store_intent_list_open(st, NULL, &list, &n));
    assert_int_equal(n, 2);
    assert_string_equal(list[0].token, "tok-c");
    assert_string_equal(list[1].token, "tok-b");
    store_intents_free(list, n);
    gc_ok(st, store_intent_complete(st, "tok-b", STORE_INTENT_FAILED, NULL, 0));
    gc_ok(st, store_intent_list_open(st, "web", &list, &n));
    assert_int_equal(n, 0);
    store_intents_free(list, n);
}

static void gc_activities(void **state)
{
    struct store *st = ((struct gc_fx *)*state)->st;
    /* etcd lists "every group" over the groups that have settings */
    struct group_settings g;
    gc_group(&g, "web");
    gc_ok(st, store_put_settings(st, &g, 0, NULL));
    gc_group(&g, "api");
    gc_ok(st, store_put_settings(st, &g, 0, NULL));
    struct store_activity a;
    int64_t ids[6];
    for (int i = 0; i < 6; i++) {
        memset(&a, 0, sizeof(a));
        snprintf(a.group, sizeof(a.group), "%s", i % 2 ? "api" : "web");
        snprintf(a.kind, sizeof(a.kind), "scale");
        snprintf(a.cause, sizeof(a.cause), "cause %d", i);
        snprintf(a.status, sizeof(a.status), "ok");
        a.at_ms = 1000 + i;
        a.from_count = i;
        a.to_count = i + 1;
        gc_ok(st, store_activity_add(st, &a, &ids[i]));
        if (i)
            assert_true(ids[i] > ids[i - 1]);
    }
    struct store_activity *list = NULL;
    size_t n = 0;
    gc_ok(st, store_activity_list(st, "web", 0, 2, &list, &n));
    assert_int_equal(n, 2);
    assert_int_equal(list[0].id, ids[4]); /* newest first */
    assert_string_equal(list[0].cause, "cause 4");
    assert_int_equal(list[0].from_count, 4);
    assert_int_equal(list[0].at_ms, 1004);
    assert_int_equal(list[1].id, ids[2]);
    int64_t last = list[1].id;
    store_activities_free(list);
    gc_ok(st, store_activity_list(st, "web", last, 10, &list, &n));
    assert_int_equal(n, 1);
    assert_int_equal(list[0].id, ids[0]);
    store_activities_free(list);
    gc_ok(st, store_activity_list(st, NULL, 0, 4, &list, &n));
    assert_int_equal(n, 4);
    assert_int_equal(list[0].id, ids[5]);
    assert_int_equal(list[3].id, ids[2]);
    store_activities_free(list);
    gc_ok(st, store_activity_list(st, NULL, ids[2], 10, &list, &n));
    assert_int_equal(n, 2);
    assert_int_equal(list[0].id, ids[1]);
    store_activities_free(list);
    assert_int_equal(store_activity_list(st, "web", 0, 0, &list, &n), STORE_EINVAL);
}

static void gc_metrics(void **state)
{
    struct store *st = ((struct gc_fx *)*state)->st;
    const int64_t H = 3600 * 1000LL; /* batches an hour apart: any prune step is passed */
    for (int b = 1; b <= 4; b++) {
        struct store_metric_group g = {
            .at_ms = b * H, .avg_load = 10.0 * b, .in_service = b, .desired = b + 1};
        snprintf(g.group, sizeof(g.group), "web");
        struct store_metric_instance mi[2];
        memset(mi, 0, sizeof(mi));
        for (int i = 0; i < 2; i++) {
            snprintf(mi[i].group, sizeof(mi[i].group), "web");
            snprintf(mi[i].instance_id, sizeof(mi[i].instance_id), "i-%d", i);
            mi[i].at_ms = b * H;
            mi[i].load = i ? NAN : 1.5 * b;
        }
        gc_ok(st, store_metrics_add(st, &g, 1, mi, 2));
    }
    struct store_metric_group *gr = NULL;
    size_t n = 0;
    gc_ok(st, store_metrics_group_since(st, "web", 2 * H, 100, &gr, &n));
    assert_int_equal(n, 3);
    assert_int_equal(gr[0].at_ms, 2 * H);
    assert_true(gr[0].avg_load == 20.0);
    assert_int_equal(gr[2].in_service, 4);
    assert_int_equal(gr[2].desired, 5);
    free(gr);
    gc_ok(st, store_metrics_group_since(st, "web", 0, 2, &gr, &n));
    assert_int_equal(n, 2); /* the newest two */
    assert_int_equal(gr[0].at_ms, 3 * H);
    free(gr);
    gc_ok(st, store_metrics_group_since(st, "web", 0, 1, &gr, &n));
    assert_int_equal(n, 1);
    assert_int_equal(gr[0].at_ms, 4 * H);
    free(gr);
    struct store_metric_instance *one = NULL;
    gc_ok(st, store_metrics_instance_since(st, "web", NULL, 0, 1, &one, &n));
    assert_int_equal(n, 1);
    assert_int_equal(one[0].at_ms, 4 * H);
    assert_string_equal(one[0].instance_id, "i-1");
    free(one);
    struct store_metric_instance *ir = NULL;
    gc_ok(st, store_metrics_instance_since(st, "web", "i-1", 0, 100, &ir, &n));
    assert_int_equal(n, 4);
    assert_true(ir[0].load == -1); /* NaN stored as -1 */
    free(ir);
    gc_ok(st, store_metrics_instance_since(st, "web", NULL, 3 * H, 100, &ir, &n));
    assert_int_equal(n, 4);
    assert_string_equal(ir[0].instance_id, "i-0");
    assert_true(ir[0].load == 4.5);
    free(ir);
    gc_ok(st, store_metrics_group_since(st, "api", 0, 100, &gr, &n));
    assert_int_equal(n, 0);
    free(gr);

    int64_t deleted = 0;
    /* etcd prunes in whole 10-minute buckets: the bound is one's end */
    gc_ok(st, store_metrics_prune(st, 2 * H + 600000, &deleted));
    assert_int_equal(deleted, 6); /* batches 1 and 2: 1 group + 2 instance rows each */
    gc_ok(st, store_metrics_group_since(st, "web", 0, 100, &gr, &n));
    assert_int_equal(n, 2);
    assert_int_equal(gr[0].at_ms, 3 * H);
    free(gr);
}

static void gc_delete_group(void **state)
{
    struct store *st = ((struct gc_fx *)*state)->st;
    struct group_settings g;
    gc_group(&g, "web");
    gc_ok(st, store_put_settings(st, &g, 0, NULL));
    gc_group(&g, "api");
    gc_ok(st, store_put_settings(st, &g, 0, NULL));
    gc_ok(st, store_put_spec(st, "web", "{\"provider\":{\"type\":\"local\"}}", 0, NULL));
    struct store_instance in;
    gc_instance(&in, "i-1", "web", 1);
    gc_ok(st, store_put_instance(st, &in));
    gc_instance(&in, "i-2", "api", 1);
    gc_ok(st, store_put_instance(st, &in));
    gc_ok(st, store_intent_create(st, "tok-w", "web", 1, 1));
    gc_ok(st, store_request_add(st, "web", "terminate", "{\"instance_id\":\"i-1\"}", NULL));
    struct store_activity a = {.at_ms = 1};
    snprintf(a.group, sizeof(a.group), "web");
    snprintf(a.kind, sizeof(a.kind), "launch");
    gc_ok(st, store_activity_add(st, &a, NULL));
    snprintf(a.group, sizeof(a.group), "api");
    gc_ok(st, store_activity_add(st, &a, NULL));
    struct store_metric_group mg = {.at_ms = 5, .avg_load = 1};
    snprintf(mg.group, sizeof(mg.group), "web");
    gc_ok(st, store_metrics_add(st, &mg, 1, NULL, 0));

    gc_ok(st, store_delete_group(st, "web"));
    assert_int_equal(store_delete_group(st, "web"), STORE_ENOENT);
    assert_int_equal(store_delete_group(st, "nope"), STORE_ENOENT);

    struct group_settings got;
    assert_int_equal(store_get_settings(st, "web", &got), STORE_ENOENT);
    char *spec = NULL;
    assert_int_equal(store_get_spec(st, "web", &spec, NULL), STORE_ENOENT);
    struct store_instance gi;
    assert_int_equal(store_get_instance(st, "i-1", &gi), STORE_ENOENT);
    gc_ok(st, store_get_instance(st, "i-2", &gi)); /* the other group is untouched */
    struct store_intent *it = NULL;
    size_t n = 0;
    gc_ok(st, store_intent_list_open(st, NULL, &it, &n));
    assert_int_equal(n, 0);
    store_intents_free(it, n);
    /* the token is free again */
    gc_ok(st, store_intent_create(st, "tok-w", "api", 1, 1));
    struct store_request *rq = NULL;
    gc_ok(st, store_request_list(st, "web", &rq, &n));
    assert_int_equal(n, 0);
    store_requests_free(rq, n);
    struct store_activity *al = NULL;
    gc_ok(st, store_activity_list(st, NULL, 0, 100, &al, &n));
    assert_int_equal(n, 1);
    assert_string_equal(al[0].group, "api");
    store_activities_free(al);
    struct store_metric_group *gr = NULL;
    gc_ok(st, store_metrics_group_since(st, "web", 0, 10, &gr, &n));
    assert_int_equal(n, 0);
    free(gr);
    char **names = NULL;
    gc_ok(st, store_list_groups(st, &names, &n));
    assert_int_equal(n, 1);
    assert_string_equal(names[0], "api");
    store_names_free(names, n);

    /* a group with only a spec exists too */
    gc_ok(st, store_put_spec(st, "solo", "{}", -1, NULL));
    gc_ok(st, store_delete_group(st, "solo"));
}

static void gc_spec(void **state)
{
    struct store *st = ((struct gc_fx *)*state)->st;
    char *text = NULL;
    int64_t rev = 0;
    assert_int_equal(store_get_spec(st, "web", &text, &rev), STORE_ENOENT);
    const char *v1 = "{\"provider\":{\"type\":\"local\"},\"local\":{\"command\":\"sleep 1\"}}";
    gc_ok(st, store_put_spec(st, "web", v1, 0, &rev));
    assert_int_equal(rev, 1);
    assert_int_equal(store_put_spec(st, "web", v1, 0, &rev), STORE_EEXIST);
    assert_int_equal(store_put_spec(st, "web", "{}", 5, &rev), STORE_ECONFLICT);
    gc_ok(st, store_get_spec(st, "web", &text, &rev));
    assert_string_equal(text, v1);
    assert_int_equal(rev, 1);
    free(text);
    gc_ok(st, store_put_spec(st, "web", "{\"v\":2}", 1, &rev));
    assert_int_equal(rev, 2);
    gc_ok(st, store_put_spec(st, "web", "{\"v\":3}", -1, &rev));
    assert_int_equal(rev, 3);
    /* the spec's revision is its own: settings writes do not move it */
    struct group_settings g;
    gc_group(&g, "web");
    gc_ok(st, store_put_settings(st, &g, 0, NULL));
    gc_ok(st, store_get_spec(st, "web", &text, &rev));
    assert_string_equal(text, "{\"v\":3}");
    assert_int_equal(rev, 3);
    free(text);
    /* a large spec survives whole */
    size_t big = STORE_SPEC_MAX; /* the largest allowed */
    char *large = malloc(big + 1);
    assert_non_null(large);
    memset(large, 'x', big);
    large[0] = '"';
    large[big - 1] = '"';
    large[big] = '\0';
    gc_ok(st, store_put_spec(st, "big", large, -1, NULL));
    gc_ok(st, store_get_spec(st, "big", &text, NULL));
    assert_int_equal(strlen(text), big);
    free(text);
    free(large);
    large = malloc(big + 2);
    assert_non_null(large);
    memset(large, 'x', big + 1);
    large[big + 1] = '\0';
    assert_int_equal(store_put_spec(st, "big", large, -1, NULL), STORE_EINVAL);
    free(large);
    assert_int_equal(store_put_spec(st, "web", NULL, -1, NULL), STORE_EINVAL);
}

static void gc_requests(void **state)
{
    struct store *st = ((struct gc_fx *)*state)->st;
    int64_t id1 = 0, id2 = 0, id3 = 0;
    gc_ok(st, store_request_add(st, "web", "terminate", "{\"instance_id\":\"i-1\"}", &id1));
    gc_ok(st, store_request_add(st, "web", "terminate", "{\"instance_id\":\"i-2\"}", &id2));
    gc_ok(st, store_request_add(st, "api", "set-desired", "{\"desired\":4}", &id3));
    assert_true(id2 > id1);
    struct store_request *list = NULL;
    size_t n = 0;
    gc_ok(st, store_request_list(st, "web", &list, &n));
    assert_int_equal(n, 2);
    assert_int_equal(list[0].id, id1);
    assert_string_equal(list[0].kind, "terminate");
    assert_string_equal(list[0].group, "web");
    assert_string_equal(list[0].json, "{\"instance_id\":\"i-1\"}");
    assert_true(list[0].created_at_ms > 0);
    assert_int_equal(list[1].id, id2);
    store_requests_free(list, n);
    gc_ok(st, store_request_delete(st, "web", id1));
    assert_int_equal(store_request_delete(st, "web", id1), STORE_ENOENT);
    assert_int_equal(store_request_delete(st, "web", id3), STORE_ENOENT); /* another group's */
    gc_ok(st, store_request_list(st, "web", &list, &n));
    assert_int_equal(n, 1);
    assert_int_equal(list[0].id, id2);
    store_requests_free(list, n);
    assert_int_equal(store_request_add(st, "web", "", "{}", NULL), STORE_EINVAL);
    assert_int_equal(store_request_add(st, "web", "x", NULL, NULL), STORE_EINVAL);
}

#define GC_CASES(setup, teardown)                                                                  \
    cmocka_unit_test_setup_teardown(gc_settings, setup, teardown),                                 \
        cmocka_unit_test_setup_teardown(gc_instances, setup, teardown),                            \
        cmocka_unit_test_setup_teardown(gc_many_instances, setup, teardown),                       \
        cmocka_unit_test_setup_teardown(gc_batches, setup, teardown),                              \
        cmocka_unit_test_setup_teardown(gc_intents, setup, teardown),                              \
        cmocka_unit_test_setup_teardown(gc_activities, setup, teardown),                           \
        cmocka_unit_test_setup_teardown(gc_metrics, setup, teardown),                              \
        cmocka_unit_test_setup_teardown(gc_delete_group, setup, teardown),                         \
        cmocka_unit_test_setup_teardown(gc_spec, setup, teardown),                                 \
        cmocka_unit_test_setup_teardown(gc_requests, setup, teardown)

#endif
