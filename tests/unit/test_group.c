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
#include <unistd.h>

#include "common/cfg.h"
#include "group/group.h"
#include "group/group_conf.h"
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
    memset(g->health.type, 0, sizeof g->health.type);
    snprintf(g->health.type, sizeof g->health.type, "%s", "ec2");
    g->health.interval_ms = 5000;
    g->health.timeout_ms = 250;
    g->health.healthy_threshold = 4;
    g->health.unhealthy_threshold = 6;
    g->health.grace_period_ms = 90000;
    snprintf(g->termination_policy, sizeof g->termination_policy, "oldest_instance, default");
    snprintf(g->suspended_processes, sizeof g->suspended_processes, "Launch, AlarmNotification");
    g->max_instance_lifetime_ms = 2 * 86400 * 1000LL;
    g->history_instances_max = 50;
    g->metrics_instances_max = -1;
    snprintf(g->notify.url, sizeof g->notify.url, "http://127.0.0.1:9/h");
    snprintf(g->notify.secret_file, sizeof g->notify.secret_file, "/etc/asgd/hook.key");
    memset(g->notify.events, 0, sizeof g->notify.events);
    snprintf(g->notify.events, sizeof g->notify.events, "launch, scale");
    g->notify.max_retries = 2;
    g->notify.retry_base_ms = 250;
    g->notify.retry_max_ms = 10000;
    g->notify.timeout_ms = 2000;
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
              "\"protect_new_instances\":false,"
              "\"termination_policy\":[\"oldest_instance\",\"default\"],"
              "\"suspended_processes\":[\"Launch\",\"AlarmNotification\"],"
              "\"max_instance_lifetime\":\"48h\",\"history_instances_max\":50,"
              "\"metrics_instances_max\":-1,\"instance_refresh\":\"\","
              "\"policy\":{\"type\":\"target\",\"up_threshold\":80.5,\"down_threshold\":10.25,"
              "\"up_factor\":1.5,\"down_factor\":0.29999999999999999,\"cooldown\":\"1500ms\","
              "\"evaluation_period\":\"2m\",\"target\":55.0,\"tolerance\":0.050000000000000003,"
              "\"scale_down_window\":\"2h\",\"lead\":\"1m\",\"season\":\"24h\","
              "\"steps\":\">70:+1, >85:+50%, "
              "<20:-1\",\"warmup\":\"0s\",\"schedule\":\"\"},\"health\":{\"type\":\"ec2\","
              "\"interval\":\"5s\","
              "\"timeout\":\"250ms\",\"healthy_threshold\":4,\"unhealthy_threshold\":6,"
              "\"grace_period\":\"90s\",\"panic_threshold\":50,\"max_replacements_per_minute\":10,"
              "\"deregister_grace\":\"30s\"},\"notify\":{\"url\":\"http://127.0.0.1:9/h\","
              "\"secret_file\":\"/etc/asgd/hook.key\",\"events\":[\"launch\",\"scale\"],"
              "\"max_retries\":2,\"retry_base\":\"250ms\",\"retry_max\":\"10s\","
              "\"timeout\":\"2s\"},\"hooks\":{\"launch_timeout\":\"0s\","
              "\"launch_default\":\"abandon\",\"terminate_timeout\":\"0s\","
              "\"terminate_default\":\"abandon\"},\"revision\":17,\"updated_at\":"
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
        {"{\"name\": \"w\", \"max_size\": 150000}",
         "max_size: 150000 exceeds the most instances a group can have (100000)"},
        {"{\"name\": \"w\", \"policy\": {\"up_threshold\": 10}}",
         "policy.down_threshold: 20 must be below scale_up_threshold (10)"},
        {"{\"name\": \"w\", \"termination_policy\": [\"bogus\"]}",
         "termination_policy: \"bogus\" is not one of: default, oldest_instance"},
        {"{\"name\": \"w\", \"suspended_processes\": [1]}",
         "suspended_processes: must be an array of strings"},
        {"{\"name\": \"w\", \"notify\": {\"url\": \"ftp://x\"}}",
         "notify.url: \"ftp://x\" must start with http:// or https://"},
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

/* Every key of the table, read from INI text and from JSON: the same field gets the same value. */
static void every_key_from_ini_and_json(void **state)
{
    (void)state;
    static const struct {
        const char *sec, *key, *ini, *json; /* json: a JSON value text */
    } vals[] = {
        {"group", "name", "w.1", "\"w.1\""},
        {"group", "min_size", "2", "2"},
        {"group", "max_size", "7", "7"},
        {"group", "desired_capacity", "3", "3"},
        {"group", "protect_new_instances", "true", "true"},
        {"policy", "type", "target", "\"target\""},
        {"policy", "scale_up_threshold", "81", "81"},
        {"policy", "scale_down_threshold", "11.5", "11.5"},
        {"policy", "scale_up_factor", "3", "3"},
        {"policy", "scale_down_factor", "0.25", "0.25"},
        {"policy", "cooldown", "90s", "\"90s\""},
        {"policy", "evaluation_period", "2m", "120"},
        {"policy", "target", "40", "40"},
        {"policy", "tolerance", "0.2", "0.2"},
        {"policy", "scale_down_window", "10m", "\"10m\""},
        {"policy", "lead", "90s", "\"90s\""},
        {"policy", "season", "12h", "\"12h\""},
        {"policy", "steps", ">90:+3, <10:-20%", "\">90:+3, <10:-20%\""},
        {"policy", "warmup", "20s", "\"20s\""},
        {"policy", "schedule", "0 8 * * *: min=3", "\"0 8 * * *: min=3\""},
        {"health", "type", "ec2", "\"ec2\""},
        {"health", "interval", "3s", "\"3s\""},
        {"health", "timeout", "1500ms", "1.5"},
        {"health", "healthy_threshold", "5", "5"},
        {"health", "unhealthy_threshold", "6", "6"},
        {"health", "grace_period", "1h", "\"1h\""},
        {"health", "panic_threshold", "70", "70"},
        {"health", "max_replacements_per_minute", "4", "4"},
        {"health", "deregister_grace", "45s", "\"45s\""},
        {"group", "termination_policy", "newest_instance, default",
         "[\"newest_instance\", \"default\"]"},
        {"group", "suspended_processes", "launch terminate", "\"Launch, Terminate\""},
        {"group", "max_instance_lifetime", "168h", "\"168h\""},
        {"group", "history_instances_max", "0", "0"},
        {"group", "metrics_instances_max", "-1", "-1"},
        {"group", "instance_refresh", "st=successful total=1", "\"st=successful total=1\""},
        {"notify", "url", "https://h.example/x", "\"https://h.example/x\""},
        {"notify", "secret_file", "/k", "\"/k\""},
        {"notify", "events", "hook, scale", "[\"hook\", \"scale\"]"},
        {"notify", "max_retries", "3", "3"},
        {"notify", "retry_base", "2s", "\"2s\""},
        {"notify", "retry_max", "1m", "60"},
        {"notify", "timeout", "3s", "\"3s\""},
        {"hooks", "launch_timeout", "5m", "\"5m\""},
        {"hooks", "launch_default", "continue", "\"continue\""},
        {"hooks", "terminate_timeout", "90s", "90"},
        {"hooks", "terminate_default", "continue", "\"continue\""},
    };
    /* the table and this list agree: every key is tested */
    assert_int_equal(group_n_keys, sizeof vals / sizeof vals[0]);
    for (size_t i = 0; i < group_n_keys; i++) {
        const struct group_key *k = group_key_find(vals[i].sec, vals[i].key, 0);
        if (k == NULL)
            fail_msg("no key %s.%s in the table", vals[i].sec, vals[i].key);
        assert_non_null(k->desc);
        assert_non_null(k->def);
        assert_ptr_equal(group_key_find(k->section, k->json, 1), k);
    }
    for (size_t i = 0; i < group_n_keys; i++) {
        /* INI: the key alone (plus what its validity needs) */
        char ini[512], js[512], err[256];
        const char *extra_sec =
            strcmp(vals[i].sec, "health") == 0 && strcmp(vals[i].key, "type") == 0
                ? "[provider]\ntype = ec2\n[ec2]\nimage_id = a\ninstance_type = t\n"
                : "";
        const char *sizes =
            strcmp(vals[i].sec, "group") == 0 ? "" : "[group]\nname = w.1\nmax_size = 7\n";
        snprintf(ini, sizeof ini, "%s[%s]\n%s = %s\n%s", sizes, vals[i].sec, vals[i].key,
                 vals[i].ini, extra_sec);
        if (strcmp(vals[i].sec, "group") == 0)
            snprintf(ini, sizeof ini, "[group]\nname = w.1\n%s%s = %s\n%s",
                     strcmp(vals[i].key, "max_size") == 0 ? "" : "max_size = 7\n", vals[i].key,
                     vals[i].ini, extra_sec);
        if (strcmp(vals[i].key, "name") == 0)
            snprintf(ini, sizeof ini, "[group]\nmax_size = 7\nname = w.1\n");
        struct cfg c = CFG_INIT;
        struct group_conf a, b;
        assert_int_equal(cfg_load_string(&c, "t.ini", ini, err, sizeof err), 0);
        if (group_conf_read_cfg(&c, "x", 0, &a, err, sizeof err) != 0)
            fail_msg("%s.%s from INI: %s\n%s", vals[i].sec, vals[i].key, err, ini);
        if (cfg_check_unused(&c, err, sizeof err) != 0)
            fail_msg("%s", err);
        cfg_release(&c);
        /* JSON: the API's form, on the defaults of the same name and sizes */
        const struct group_key *k = group_key_find(vals[i].sec, vals[i].key, 0);
        json_t *j = parse("{\"name\": \"w.1\", \"max_size\": 7}");
        snprintf(js, sizeof js, "[%s]", vals[i].json);
        json_t *v = parse(js);
        if (strcmp(vals[i].sec, "group") == 0) {
            json_object_set(j, k->json, json_array_get(v, 0));
        } else {
            json_t *o = json_object();
            json_object_set(o, k->json, json_array_get(v, 0));
            json_object_set_new(j, k->section, o);
        }
        json_decref(v);
        struct group_settings g;
        if (group_settings_from_json(j, &g, err, sizeof err) != 0)
            fail_msg("%s.%s from JSON: %s", vals[i].sec, vals[i].key, err);
        json_decref(j);
        assert_memory_equal(&a.settings, &g, sizeof g);
        /* and the spec of the INI reads back to the same definition */
        if (group_conf_from_spec(a.spec, NULL, "spec", &b, err, sizeof err) != 0)
            fail_msg("%s.%s spec %s: %s", vals[i].sec, vals[i].key, a.spec, err);
        assert_memory_equal(&a.settings, &b.settings, sizeof g);
        assert_string_equal(a.spec, b.spec);
        group_conf_release(&a);
        group_conf_release(&b);
    }
}

/* The one validator: each rule's message, placed for the file and for the API. */
static void validator_messages(void **state)
{
    (void)state;
    static const struct {
        const char *json; /* settings as JSON (through from_json's path) */
        const char *sec, *key, *why, *api;
    } cases[] = {
        {"{\"min_size\": 5, \"max_size\": 3}", "group", "min_size", "min_size 5 > max_size 3",
         "min_size 5 > max_size 3"},
        {"{\"max_size\": 3, \"desired_capacity\": 4}", "group", "desired_capacity",
         "desired_capacity 4 is outside [min_size 1, max_size 3]",
         "desired_capacity 4 is outside [min_size 1, max_size 3]"},
        {"{\"max_size\": 100001}", "group", "max_size",
         "100001 exceeds the most instances a group can have (100000)",
         "max_size: 100001 exceeds the most instances a group can have (100000)"},
        {"{\"min_size\": -1}", "group", "min_size", "-1 is out of range (0..100000)",
         "min_size: -1 is out of range (0..100000)"},
        {"{\"policy\": {\"down_threshold\": 75}}", "policy", "scale_down_threshold",
         "75 must be below scale_up_threshold (70)",
         "policy.down_threshold: 75 must be below scale_up_threshold (70)"},
        {"{\"policy\": {\"up_factor\": 1}}", "policy", "scale_up_factor",
         "1 must be greater than 1 (and at most 100)",
         "policy.up_factor: 1 must be greater than 1 (and at most 100)"},
        {"{\"policy\": {\"down_factor\": 1}}", "policy", "scale_down_factor",
         "1 must be between 0 and 1 (exclusive)",
         "policy.down_factor: 1 must be between 0 and 1 (exclusive)"},
        {"{\"policy\": {\"target\": 0}}", "policy", "target", "0 must be above 0 and at most 100",
         "policy.target: 0 must be above 0 and at most 100"},
        {"{\"policy\": {\"tolerance\": 1}}", "policy", "tolerance",
         "1 must be at least 0 and below 1", "policy.tolerance: 1 must be at least 0 and below 1"},
        {"{\"policy\": {\"evaluation_period\": \"50ms\"}}", "policy", "evaluation_period",
         "50ms is out of range (100ms..24h)",
         "policy.evaluation_period: 50ms is out of range (100ms..24h)"},
        {"{\"policy\": {\"cooldown\": \"25h\"}}", "policy", "cooldown",
         "25h is out of range (0s..24h)", "policy.cooldown: 25h is out of range (0s..24h)"},
        {"{\"health\": {\"timeout\": \"2s\"}}", "health", "timeout",
         "2s must be shorter than interval (2s)",
         "health.timeout: 2s must be shorter than interval (2s)"},
        {"{\"health\": {\"healthy_threshold\": 0}}", "health", "healthy_threshold",
         "0 is out of range (1..1000)", "health.healthy_threshold: 0 is out of range (1..1000)"},
        {"{\"history_instances_max\": -2}", "group", "history_instances_max",
         "-2 is out of range (-1..100000; 0: 500, -1: never)",
         "history_instances_max: -2 is out of range (-1..100000; 0: 500, -1: never)"},
        {"{\"metrics_instances_max\": 100001}", "group", "metrics_instances_max",
         "100001 is out of range (-1..100000; 0: 1000, -1: never)",
         "metrics_instances_max: 100001 is out of range (-1..100000; 0: 1000, -1: never)"},
        {"{\"health\": {\"grace_period\": \"2d\"}}", NULL, NULL, NULL,
         "health.grace_period: \"2d\" is not a duration"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct group_settings g;
        group_settings_default(&g, "w");
        char err[256] = "";
        json_t *p = parse(cases[i].json);
        int rc = group_settings_patch(&g, p, err, sizeof err);
        json_decref(p);
        assert_int_equal(rc, -1);
        if (strncmp(err, cases[i].api, strlen(cases[i].api)) != 0)
            fail_msg("case %zu: API \"%s\", want \"%s\"", i, err, cases[i].api);
        if (cases[i].sec == NULL)
            continue;
        const char *sec = NULL, *key = NULL;
        assert_int_equal(group_settings_validate(&g, &sec, &key, err, sizeof err), -1);
        assert_string_equal(sec, cases[i].sec);
        assert_string_equal(key, cases[i].key);
        assert_string_equal(err, cases[i].why);
    }
    struct group_settings g;
    group_settings_default(&g, "w");
    assert_int_equal(group_settings_validate(&g, NULL, NULL, NULL, 0), 0);
    memset(g.name, 'a', sizeof g.name); /* no NUL: refused, never read past */
    assert_int_equal(group_settings_validate(&g, NULL, NULL, NULL, 0), -1);
    assert_true(group_name_valid("a"));
    assert_true(group_name_valid("Web-1_x.y"));
    assert_true(group_name_valid("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));   /* 48 */
    assert_false(group_name_valid("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")); /* 49 */
    assert_false(group_name_valid(""));
    assert_false(group_name_valid(NULL));
    assert_false(group_name_valid("a/b"));
}

/* PATCH: partial, strict, desired carried along by new bounds. */
static void patch_semantics(void **state)
{
    (void)state;
    struct group_settings g, before;
    char err[256];
    group_settings_default(&g, "w");
    g.max_size = 10;
    g.desired_capacity = 5;
    before = g;
    json_t *p = parse("{\"max_size\": 3}");
    assert_int_equal(group_settings_patch(&g, p, err, sizeof err), 0);
    json_decref(p);
    assert_int_equal(g.max_size, 3);
    assert_int_equal(g.desired_capacity, 3); /* clamped */
    p = parse("{\"min_size\": 3, \"max_size\": 8}");
    assert_int_equal(group_settings_patch(&g, p, err, sizeof err), 0);
    json_decref(p);
    assert_int_equal(g.desired_capacity, 3);
    p = parse("{\"max_size\": 8, \"desired_capacity\": 8, \"revision\": 4, "
              "\"policy\": {\"scale_up_threshold\": 90, \"cooldown\": 30}}");
    assert_int_equal(group_settings_patch(&g, p, err, sizeof err), 0);
    json_decref(p);
    assert_int_equal(g.desired_capacity, 8);
    assert_true(g.policy.up_threshold == 90);
    assert_int_equal(g.policy.cooldown_ms, 30000);
    assert_int_equal(g.revision, 0); /* the caller's business */
    char diff[512];
    group_settings_diff(&before, &g, diff, sizeof diff);
    assert_string_equal(diff, "min_size 1 -> 3, max_size 10 -> 8, desired_capacity 5 -> 8, "
                              "policy.up_threshold 70 -> 90, policy.cooldown 0s -> 30s");
    group_settings_diff(&g, &g, diff, sizeof diff);
    assert_string_equal(diff, "no change");
    static const struct {
        const char *json, *want;
    } bad[] = {
        {"[]", "the body must be a JSON object"},
        {"{}", "nothing to change"},
        {"{\"name\": \"x\"}", "key \"name\" is read-only"},
        {"{\"updated_at\": \"x\"}", "key \"updated_at\" is read-only"},
        {"{\"in_service\": 1}", "key \"in_service\" is read-only"},
        {"{\"colour\": 1}", "unknown key \"colour\" (settable: min_size"},
        {"{\"policy\": {\"speed\": 1}}",
         "unknown key \"policy.speed\" (policy keys: type, up_threshold, down_threshold, "
         "up_factor, down_factor, cooldown, evaluation_period, target, tolerance, "
         "scale_down_window, lead, season, steps, warmup, schedule)"},
        {"{\"health\": {\"speed\": 1}}", "unknown key \"health.speed\" (health keys: type,"},
        {"{\"min_size\": 1.5}", "min_size: must be an integer"},
        {"{\"min_size\": 99999999999}", "min_size: 99999999999 is out of range"},
        {"{\"policy\": {\"target\": \"60\"}}", "policy.target: must be a number"},
        {"{\"policy\": {\"type\": 1}}",
         "policy.type: must be \"threshold\", \"target\", \"predictive\" or \"step\""},
        {"{\"health\": {\"type\": \"tcp\"}}", "health.type: must be \"agent\" or \"ec2\""},
        {"{\"health\": {\"interval\": -1}}", "health.interval: must be a non-negative number"},
        {"{\"health\": {\"interval\": true}}", "health.interval: must be a duration string"},
        {"{\"revision\": \"x\"}", "revision: must be a non-negative integer"},
        {"{\"policy\": [1]}", "policy: must be an object"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct group_settings t = g;
        p = parse(bad[i].json);
        err[0] = '\0';
        assert_int_equal(group_settings_patch(&t, p, err, sizeof err), -1);
        json_decref(p);
        if (strstr(err, bad[i].want) == NULL)
            fail_msg("%s: \"%s\" lacks \"%s\"", bad[i].json, err, bad[i].want);
    }
}

static char *write_tmp(const char *dir, const char *name, const char *text)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *path = malloc(n);
    assert_non_null(path);
    snprintf(path, n, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

/* A group file -> its spec -> a group_conf equal to the file's; the file name is the default name.
 */
static void spec_round_trip(void **state)
{
    (void)state;
    char dir[] = "/tmp/test_group.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char err[512];
    char *path = write_tmp(dir, "web.ini",
                           "[group]\nmin_size = 2\nmax_size = 6\n[policy]\ntype = target\n"
                           "target = 55\n[health]\ninterval = 1s\ntimeout = 200ms\n"
                           "[local]\nagent_args = \"--load simulate ; x\"\nboot_delay = 2s\n"
                           "dir = /tmp/x\n");
    struct group_conf a, b, c;
    if (group_conf_load_file(path, GROUP_CONF_DERIVE_ADDRESS, &a, err, sizeof err) != 0)
        fail_msg("%s", err);
    assert_string_equal(a.settings.name, "web");
    assert_string_equal(a.path, path);
    assert_int_equal(a.provider, GROUP_PROVIDER_LOCAL);
    assert_string_equal(a.local.agent_args, "--load simulate ; x");
    assert_int_equal(a.local.boot_delay_ms, 2000);
    assert_string_equal(a.local.dir, "/tmp/x");
    char want_addr[32];
    group_derive_address("web", want_addr, sizeof want_addr);
    assert_string_equal(a.local.address_base, want_addr);
    assert_true(strcmp(want_addr, "127.0.0.2") != 0);
    assert_string_equal(a.spec,
                        "{\"group\":{\"max_size\":\"6\",\"min_size\":\"2\",\"name\":\"web\"},"
                        "\"health\":{\"interval\":\"1s\",\"timeout\":\"200ms\"},\"local\":{"
                        "\"agent_args\":\"--load simulate ; x\",\"boot_delay\":\"2s\",\"dir\":"
                        "\"/tmp/x\"},\"policy\":{\"target\":\"55\",\"type\":\"target\"}}");
    char *text = NULL;
    assert_int_equal(group_spec_from_file(path, &text, err, sizeof err), 0);
    assert_string_equal(text, a.spec);
    if (group_conf_from_spec(text, NULL, "spec", &b, err, sizeof err) != 0)
        fail_msg("%s", err);
    assert_null(b.path);
    assert_memory_equal(&a.settings, &b.settings, sizeof a.settings);
    assert_int_equal(a.provider, b.provider);
    assert_string_equal(a.local.agent_args, b.local.agent_args);
    assert_string_equal(a.local.address_base, b.local.address_base);
    assert_string_equal(a.local.dir, b.local.dir);
    assert_int_equal(a.local.boot_delay_ms, b.local.boot_delay_ms);
    assert_string_equal(a.spec, b.spec);
    /* from a parsed object too; JSON numbers and booleans read as their text */
    json_t *j = parse("{\"group\": {\"name\": \"web\", \"min_size\": 2, \"max_size\": 6}, "
                      "\"policy\": {\"type\": \"target\", \"target\": 55}, \"health\": "
                      "{\"interval\": \"1s\", \"timeout\": \"200ms\"}, \"local\": {\"agent_args\": "
                      "\"--load simulate ; x\", \"boot_delay\": \"2s\", \"dir\": \"/tmp/x\"}}");
    if (group_conf_from_spec(NULL, j, "api", &c, err, sizeof err) != 0)
        fail_msg("%s", err);
    json_decref(j);
    assert_memory_equal(&a.settings, &c.settings, sizeof a.settings);
    assert_string_equal(a.spec, c.spec);
    group_conf_release(&a);
    group_conf_release(&b);
    group_conf_release(&c);
    group_conf_release(&c); /* twice is safe */
    free(text);

    /* a bad file: its path, line and key */
    unlink(path);
    free(path);
    path = write_tmp(dir, "bad.ini", "[group]\nname = b\n[health]\ninterval = 1s\ntimeout = 1s\n");
    assert_int_equal(group_conf_load_file(path, 0, &a, err, sizeof err), -1);
    char want[512];
    snprintf(want, sizeof want, "%s:5: [health] timeout: 1s must be shorter than interval (1s)",
             path);
    assert_string_equal(err, want);
    group_conf_release(&a);
    assert_int_equal(group_spec_from_file(path, &text, err, sizeof err), -1);
    assert_null(text);
    unlink(path);
    free(path);
    path = write_tmp(dir, "x.ini", "[group]\n[api]\nlisten = 1.2.3.4:1\n");
    assert_int_equal(group_conf_load_file(path, 0, &a, err, sizeof err), -1);
    snprintf(want, sizeof want, "%s:2: [api]: unknown section", path);
    assert_string_equal(err, want);
    group_conf_release(&a);
    unlink(path);
    free(path);
    /* the per-instance cuts: read from the file, a value out of range refused at its line */
    path = write_tmp(dir, "cut.ini",
                     "[group]\nname = c\nhistory_instances_max = 5\nmetrics_instances_max = 0\n");
    if (group_conf_load_file(path, 0, &a, err, sizeof err) != 0)
        fail_msg("%s", err);
    assert_int_equal(a.settings.history_instances_max, 5);
    assert_int_equal(a.settings.metrics_instances_max, 0);
    group_conf_release(&a);
    unlink(path);
    free(path);
    path = write_tmp(dir, "cut.ini",
                     "[group]\nname = c\nhistory_instances_max = 5\nmetrics_instances_max = -7\n");
    assert_int_equal(group_conf_load_file(path, 0, &a, err, sizeof err), -1);
    snprintf(want, sizeof want, "%s:4: [group] metrics_instances_max: ", path);
    if (strncmp(err, want, strlen(want)) != 0)
        fail_msg("\"%s\" does not start with \"%s\"", err, want);
    group_conf_release(&a);
    unlink(path);
    free(path);
    path = write_tmp(dir, "not a name.ini", "[policy]\ntype = target\n");
    assert_int_equal(group_conf_load_file(path, 0, &a, err, sizeof err), -1);
    assert_non_null(strstr(err, "[group] name: \"not a name\" (the default) is not a valid name"));
    group_conf_release(&a);
    unlink(path);
    free(path);
    rmdir(dir);
}

/* Specs from outside: every wrong shape is refused naming the key path, nothing leaks. */
static void hostile_specs(void **state)
{
    (void)state;
    static const struct {
        const char *text, *want;
    } bad[] = {
        {"", "spec: line 1:"},
        {"[1]", "spec: must be a JSON object of sections"},
        {"{\"group\": {}}", "spec: group.name: required"},
        {"{\"group\": {\"name\": \"a\", \"name\": \"b\"}}", "duplicate"},
        {"{\"group\": 3}", "spec: group: must be an object of keys"},
        {"{\"group\": {\"name\": [\"a\"]}}",
         "spec: group.name: must be a string, number or boolean"},
        {"{\"group\": {\"name\": {\"a\": 1}}}", "spec: group.name: must be a string"},
        {"{\"group\": {\"name\": null}}", "spec: group.name: must be a string"},
        {"{\"group\": {\"name\": \"a b\"}}", "spec: group.name: \"a b\" is not a valid name"},
        {"{\"group\": {\"name\": \"a\\u0000b\"}}", "spec: line 1: \\u0000 is not allowed"},
        {"{\"group\": {\"name\": \"a\", \"min_size\": \"x\"}}",
         "spec: group.min_size: \"x\" is not an integer"},
        {"{\"group\": {\"name\": \"a\", \"min_size\": 1.5}}",
         "spec: group.min_size: \"1.5\" is not an integer"},
        {"{\"group\": {\"name\": \"a\", \"colour\": 1}}", "spec: group.colour: unknown key"},
        {"{\"group\": {\"name\": \"a\"}, \"api\": {\"listen\": \"x:1\"}}",
         "spec: api: unknown section"},
        {"{\"group\": {\"name\": \"a\"}, \"bogus\": {}}", "spec: bogus: unknown section"},
        {"{\"group\": {\"name\": \"a\"}, \"a b\": {\"k\": 1}}", "invalid section name"},
        {"{\"group\": {\"name\": \"a\", \"a=b\": 1}}", "invalid key name"},
        {"{\"group\": {\"name\": \"a\", \"max_size\": 3, \"min_size\": 5}}",
         "spec: group.min_size: min_size 5 > max_size 3"},
        {"{\"group\": {\"name\": \"a\"}, \"health\": {\"type\": \"ec2\"}}",
         "spec: health.type: ec2 health checks need [provider] type = ec2"},
        {"{\"group\": {\"name\": \"a\"}, \"provider\": {\"type\": \"ec2\"}}", "spec: ec2"},
        {"{\"group\": {\"name\": \"a\"}, \"local\": {\"address_base\": \"8.8.8.8\"}}",
         "spec: local.address_base: \"8.8.8.8\" is not a loopback (127.x.x.x) or private"},
        {"{\"group\": {\"name\": \"a\"}, \"policy\": {\"cooldown\": true}}",
         "spec: policy.cooldown: \"true\" is not a duration"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct group_conf g;
        char err[256] = "";
        assert_int_equal(group_conf_from_spec(bad[i].text, NULL, NULL, &g, err, sizeof err), -1);
        group_conf_release(&g);
        if (strstr(err, bad[i].want) == NULL)
            fail_msg("case %zu %s: \"%s\" lacks \"%s\"", i, bad[i].text, err, bad[i].want);
    }
    /* a huge string: refused by its length, not copied into a fixed buffer */
    size_t n = 1 << 20;
    char *big = malloc(n + 64);
    assert_non_null(big);
    int off = snprintf(big, 64, "{\"group\": {\"name\": \"a\"}, \"local\": {\"agent_args\": \"");
    memset(big + off, 'x', n);
    snprintf(big + off + n, 64, "\"}}");
    struct group_conf g;
    char err[256];
    assert_int_equal(group_conf_from_spec(big, NULL, NULL, &g, err, sizeof err), -1);
    group_conf_release(&g);
    assert_non_null(
        strstr(err, "spec: local.agent_args: value too long (1048576 bytes, at most 4096)"));
    /* deep nesting: jansson's depth limit or our "must be an object of keys" */
    size_t depth = 100000;
    char *deep = malloc(2 * depth + 64);
    assert_non_null(deep);
    off = snprintf(deep, 64, "{\"group\": ");
    memset(deep + off, '[', depth);
    memset(deep + off + depth, ']', depth);
    snprintf(deep + off + 2 * depth, 64, "}");
    assert_int_equal(group_conf_from_spec(deep, NULL, NULL, &g, err, sizeof err), -1);
    group_conf_release(&g);
    assert_non_null(strstr(err, "spec: line 1:"));
    /* a JSON number as the name is its text: "12" is a valid name */
    assert_int_equal(
        group_conf_from_spec("{\"group\": {\"name\": 12}}", NULL, NULL, &g, err, sizeof err), 0);
    assert_string_equal(g.settings.name, "12");
    group_conf_release(&g);
    free(big);
    free(deep);
}

/* A reload carries exactly the keys the file changed over the store's settings. */
static void apply_changes_of_a_file(void **state)
{
    (void)state;
    struct group_settings file_was, file_now, store;
    group_settings_default(&file_was, "w");
    file_was.max_size = 4;
    file_now = file_was;
    store = file_was;
    /* the API and the policy moved these meanwhile */
    store.desired_capacity = 3;
    store.policy.up_threshold = 80;
    store.revision = 9;
    /* the operator edits the file's health interval and max_size */
    file_now.health.interval_ms = 500;
    file_now.max_size = 2;
    snprintf(file_now.health.type, sizeof file_now.health.type, "%s", "ec2");
    assert_int_equal(group_settings_apply_changes(&store, &file_was, &file_now), 3);
    assert_int_equal(store.health.interval_ms, 500);
    assert_string_equal(store.health.type, "ec2");
    assert_int_equal(store.max_size, 2);
    assert_int_equal(store.desired_capacity, 2);  /* carried into the new range */
    assert_true(store.policy.up_threshold == 80); /* the API's change stays */
    assert_int_equal(store.revision, 9);
    assert_string_equal(store.name, "w");
    /* an unchanged file changes nothing */
    struct group_settings again = store;
    assert_int_equal(group_settings_apply_changes(&again, &file_now, &file_now), 0);
    assert_memory_equal(&again, &store, sizeof store);
    /* a desired the file sets explicitly is taken as it is (the validator judges it) */
    file_was = file_now;
    file_now.desired_capacity = 7;
    assert_int_equal(group_settings_apply_changes(&again, &file_was, &file_now), 1);
    assert_int_equal(again.desired_capacity, 7);
    const char *sec = NULL, *key = NULL;
    char err[256];
    assert_int_equal(group_settings_validate(&again, &sec, &key, err, sizeof err), -1);
    assert_string_equal(key, "desired_capacity");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(json_round_trip),
        cmocka_unit_test(from_json_defaults_and_errors),
        cmocka_unit_test(every_key_from_ini_and_json),
        cmocka_unit_test(validator_messages),
        cmocka_unit_test(patch_semantics),
        cmocka_unit_test(apply_changes_of_a_file),
        cmocka_unit_test(spec_round_trip),
        cmocka_unit_test(hostile_specs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
