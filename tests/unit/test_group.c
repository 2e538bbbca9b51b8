/*
 * Unit tests for src/group: the key table, the one validator, the JSON form
 * (to, from, PATCH, diff).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "group/group.h"
#include "common/banned.h"

static json_t *parse(const char *text)
{
    json_error_t je;
    json_t *j = json_loads(text, JSON_REJECT_DUPLICATES, &je);
    if (j == NULL)
        fail_msg("bad test JSON: %s", je.text);
    return j;
}

/* A group where every setting differs from its default. */
static void sample(struct group_settings *g)
{
    group_settings_default(g, "web-1.a_b");
    g->min_size = 2;
    g->max_size = 9;
    g->desired_capacity = 3;
    g->policy.type = POLICY_TARGET;
    g->policy.up_threshold = 80.5;
    g->policy.down_threshold = 10.25;
    g->policy.up_factor = 1.5;
    g->policy.down_factor = 0.3;
    g->policy.cooldown_ms = 1500;
    g->policy.evaluation_period_ms = 120000;
    g->policy.target = 55;
    g->policy.tolerance = 0.05;
    g->policy.scale_down_window_ms = 7200000;
    snprintf(g->health.type, sizeof g->health.type, "%s", "ec2");
    g->health.interval_ms = 5000;
    g->health.timeout_ms = 250;
    g->health.healthy_threshold = 4;
    g->health.unhealthy_threshold = 6;
    g->health.grace_period_ms = 90000;
    g->revision = 17;
    g->updated_at_ms = 1795000000123LL;
}

static void json_round_trip(void **state)
{
    (void)state;
    struct group_settings g, back;
    sample(&g);
    json_t *j = group_settings_to_json(&g);
    assert_non_null(j);
    char *text = json_dumps(j, JSON_COMPACT);
    assert_non_null(text);
    /* the API's shape, key order included */
    assert_string_equal(
        text, "{\"name\":\"web-1.a_b\",\"min_size\":2,\"max_size\":9,\"desired_capacity\":3,"
              "\"policy\":{\"type\":\"target\",\"up_threshold\":80.5,\"down_threshold\":10.25,"
              "\"up_factor\":1.5,\"down_factor\":0.29999999999999999,\"cooldown\":\"1500ms\","
              "\"evaluation_period\":\"2m\",\"target\":55.0,\"tolerance\":0.050000000000000003,"
              "\"scale_down_window\":\"2h\"},\"health\":{\"type\":\"ec2\",\"interval\":\"5s\","
              "\"timeout\":\"250ms\",\"healthy_threshold\":4,\"unhealthy_threshold\":6,"
              "\"grace_period\":\"90s\"},\"revision\":17,\"updated_at\":"
              "\"2026-11-18T11:06:40.123Z\"}");
    char err[256];
    memset(&back, 0x5a, sizeof back);
    if (group_settings_from_json(j, &back, err, sizeof err) != 0)
        fail_msg("%s", err);
    assert_memory_equal(&g, &back, sizeof g);
    free(text);
    json_decref(j);
}

/* from_json: absent keys take defaults (the policy type's), bad input names the key. */
static void from_json_defaults_and_errors(void **state)
{
    (void)state;
    struct group_settings g, want;
    char err[256];
    json_t *j = parse("{\"name\": \"w\", \"policy\": {\"type\": \"target\"}}");
    assert_int_equal(group_settings_from_json(j, &g, err, sizeof err), 0);
    group_settings_default(&want, "w");
    policy_settings_default(&want.policy, POLICY_TARGET);
    assert_memory_equal(&g, &want, sizeof g);
    json_decref(j);
    static const struct {
        const char *text, *want;
    } bad[] = {
        {"[]", "must be a JSON object"},
        {"{}", "name: must be a valid group name"},
        {"{\"name\": \"a b\"}", "name: must be a valid group name"},
        {"{\"name\": \"w\", \"min_size\": \"1\"}", "min_size: must be an integer"},
        {"{\"name\": \"w\", \"bogus\": 1}", "unknown key \"bogus\""},
        {"{\"name\": \"w\", \"policy\": {\"x\": 1}}", "unknown key \"policy.x\""},
        {"{\"name\": \"w\", \"health\": []}", "health: must be an object"},
        {"{\"name\": \"w\", \"revision\": -1}", "revision: must be a non-negative integer"},
        {"{\"name\": \"w\", \"updated_at\": \"yesterday\"}", "updated_at: must be a time"},
        {"{\"name\": \"w\", \"max_size\": 5000}",
         "max_size: 5000 exceeds the fleet table's capacity of 4096 instances"},
        {"{\"name\": \"w\", \"policy\": {\"up_threshold\": 10}}",
         "policy.down_threshold: 20 must be below scale_up_threshold (10)"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        j = parse(bad[i].text);
        err[0] = '\0';
        assert_int_equal(group_settings_from_json(j, &g, err, sizeof err), -1);
        if (strstr(err, bad[i].want) == NULL)
            fail_msg("%s: \"%s\" lacks \"%s\"", bad[i].text, err, bad[i].want);
        json_decref(j);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(json_round_trip),
        cmocka_unit_test(from_json_defaults_and_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
