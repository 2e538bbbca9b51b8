/*
 * Tests for provider/ec2: the [ec2] settings loader (values, defaults, every
 * error naming file, line and key) and the provider against the real EC2
 * stand-in (tests/tools/ec2_standin.py, which verifies every signature):
 * launch/describe/terminate, ClientToken idempotency (also across a
 * "restart" that picks another subnet), subnet spreading, tags and user data
 * at launch, pagination, 30 % throttling, capacity errors, timeouts, an
 * unreachable endpoint, the call-rate ceiling, and bad or missing credentials
 * (PROV_EFATAL at once, one call, then none during the backoff).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <jansson.h>

#include "common/cfg.h"
#include "common/clock.h"
#include "provider/ec2.h"
#include "unit/tool_proc.h"

#define STANDIN_AK "AKIDSTANDINTEST00001"
#define STANDIN_SK "standin/test+secret0000000000000000000000"

/* ---- settings ----------------------------------------------------------------- */

static int load(const char *text, struct ec2_settings *s, char *err, size_t errlen)
{
    struct cfg c = CFG_INIT;
    int rc = cfg_load_string(&c, "test.ini", text, err, errlen);
    if (rc == 0)
        rc = ec2_settings_load(&c, s, err, errlen);
    if (rc == 0 && cfg_check_unused(&c, err, errlen) != 0) {
        ec2_settings_release(s);
        rc = -1;
    }
    cfg_release(&c);
    return rc;
}

static void settings_full(void **state)
{
    (void)state;
    struct ec2_settings s;
    char err[512];
    const char *ini = "[ec2]\n"
                      "region = eu-west-1\n"
                      "image_id = ami-0abcdef1234567890\n"
                      "instance_type = t3.micro\n"
                      "key_name = ops\n"
                      "security_group_ids = sg-1, sg-2\n"
                      "subnet_ids = subnet-a,subnet-b , subnet-c\n"
                      "iam_instance_profile = asgd-agent\n"
                      "tags = team=web, env = prod ,empty=\n"
                      "use_public_ip = true\n"
                      "require_imdsv2 = false\n"
                      "api_calls_per_second = 2.5\n"
                      "call_timeout = 3s\n"
                      "max_attempts = 6\n"
                      "retry_base_delay = 50ms\n"
                      "describe_page_size = 50\n"
                      "auth_failure_backoff = 2m\n";
    assert_int_equal(load(ini, &s, err, sizeof(err)), 0);
    assert_string_equal(s.region, "eu-west-1");
    assert_string_equal(s.image_id, "ami-0abcdef1234567890");
    assert_int_equal(s.n_security_group_ids, 2);
    assert_string_equal(s.security_group_ids[1], "sg-2");
    assert_int_equal(s.n_subnet_ids, 3);
    assert_string_equal(s.subnet_ids[1], "subnet-b");
    assert_int_equal(s.n_tags, 3);
    assert_string_equal(s.tags[1].key, "env");
    assert_string_equal(s.tags[1].value, "prod");
    assert_string_equal(s.tags[2].value, "");
    assert_true(s.use_public_ip);
    assert_false(s.require_imdsv2);
    assert_true(s.api_calls_per_second > 2.4 && s.api_calls_per_second < 2.6);
    assert_int_equal(s.call_timeout_ms, 3000);
    assert_int_equal(s.max_attempts, 6);
    assert_int_equal(s.retry_base_delay_ms, 50);
    assert_int_equal(s.describe_page_size, 50);
    assert_int_equal(s.auth_failure_backoff_ms, 120000);
    ec2_settings_release(&s);
    assert_null(s.region);
    ec2_settings_release(NULL);

    /* defaults, and a launch template instead of an AMI */
    assert_int_equal(load("[ec2]\nlaunch_template = lt-0123\nlaunch_template_version = 3\n", &s,
                          err, sizeof(err)),
                     0);
    assert_null(s.image_id);
    assert_null(s.instance_type);
    assert_string_equal(s.launch_template_version, "3");
    assert_true(s.require_imdsv2);
    assert_false(s.use_public_ip);
    assert_int_equal(s.max_attempts, 4);
    assert_int_equal(s.describe_page_size, 500);
    assert_int_equal(s.call_timeout_ms, 10000);
    assert_int_equal(s.n_subnet_ids, 0);
    ec2_settings_release(&s);
}

static void settings_errors(void **state)
{
    (void)state;
    struct ec2_settings s;
    char err[512];
    static const struct {
        const char *ini;
        const char *want; /* substring of the message */
    } cases[] = {
        {"[ec2]\ninstance_type = t3.micro\n", "test.ini:1: [ec2] image_id: missing"},
        {"[ec2]\nimage_id = ami-1\n", "[ec2] instance_type: missing"},
        {"[other]\nx = 1\n", "[ec2] image_id: missing"},
        {"[ec2]\nimage_id = ami-1\ninstance_type = t3.micro\nsubnet_ids = subnet-a,,subnet-b\n",
         "test.ini:4: [ec2] subnet_ids: empty item"},
        {"[ec2]\nimage_id = ami-1\ninstance_type = t3.micro\ntags = novalue\n",
         "test.ini:4: [ec2] tags: \"novalue\" is not key=value"},
        {"[ec2]\nimage_id = ami-1\ninstance_type = t3.micro\ntags = asg:group=x\n",
         "tags: tag key \"asg:group\" is reserved"},
        {"[ec2]\nimage_id = ami-1\ninstance_type = t3.micro\ntags = aws:foo=x\n", "reserved"},
        {"[ec2]\nimage_id = ami-1\ninstance_type = t3.micro\nmax_attempts = 0\n",
         "test.ini:4: [ec2] max_attempts"},
        {"[ec2]\nimage_id = ami-1\ninstance_type = t3.micro\ncall_timeout = forever\n",
         "test.ini:4: [ec2] call_timeout"},
        {"[ec2]\nimage_id = ami-1\ninstance_type = t3.micro\ndescribe_page_size = 2\n",
         "describe_page_size"},
        {"[ec2]\nimage_id = ami-1\ninstance_type = t3.micro\nendpoint = ec2.example\n",
         "test.ini:4: [ec2] endpoint: \"ec2.example\" is not an http"},
        {"[ec2]\nimage_id = ami-1\ninstance_type = t3.micro\nuser_data_file = /nonexistent/x\n",
         "test.ini:4: [ec2] user_data_file: cannot read"},
        {"[ec2]\nimage_id = ami-1\ninstance_type = t3.micro\nlaunch_template_version = 2\n",
         "launch_template_version: set without launch_template"},
        {"[ec2]\nimage_id = ami 1\ninstance_type = t3.micro\n", "test.ini:2: [ec2] image_id"},
        {"[ec2]\nimage_id = ami-1\ninstance_type = t3.micro\nuse_public_ip = maybe\n",
         "use_public_ip"},
        {"[ec2]\nimage_id = ami-1\ninstance_type = t3.micro\nimage_idd = typo\n", "image_idd"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        err[0] = '\0';
        int rc = load(cases[i].ini, &s, err, sizeof(err));
        if (rc == 0 || strstr(err, cases[i].want) == NULL)
            fail_msg("case %zu: rc %d, error \"%s\", wanted \"%s\"", i, rc, err, cases[i].want);
        if (rc == 0)
            ec2_settings_release(&s);
    }
}

/* ---- against the stand-in ------------------------------------------------------ */

struct fixture {
    struct tool_proc standin;
    char url[64];
    char dir[256];
    struct ec2_settings s;
};

static size_t collect(char *data, size_t size, size_t nmemb, void *ud)
{
    json_t **out = ud;
    (void)out;
    /* accumulate in a static buffer; responses are small */
    static char buf[1 << 20];
    static size_t n;
    if (data == NULL) {
        n = 0;
        return 0;
    }
    size_t len = size * nmemb;
    if (n + len >= sizeof(buf))
        return 0;
    memcpy(buf + n, data, len);
    n += len;
    buf[n] = '\0';
    json_decref(*out);
    *out = json_loads(buf, 0, NULL);
    return len;
}

/* GET (body NULL) or POST an admin endpoint of the stand-in; returns parsed JSON (caller decrefs).
 */
static json_t *admin(struct fixture *f, const char *path, const char *body)
{
    char url[512];
    snprintf(url, sizeof(url), "%s%s", f->url, path);
    json_t *out = NULL;
    collect(NULL, 0, 0, NULL);
    CURL *h = curl_easy_init();
    assert_non_null(h);
    curl_easy_setopt(h, CURLOPT_URL, url);
    if (body != NULL)
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &out);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 5000L);
    assert_int_equal(curl_easy_perform(h), CURLE_OK);
    curl_easy_cleanup(h);
    assert_non_null(out);
    return out;
}

static long stat_of(struct fixture *f, const char *key)
{
    json_t *j = admin(f, "/_admin/stats", NULL);
    long v = (long)json_integer_value(json_object_get(j, key));
    json_decref(j);
    return v;
}

static long calls_of(struct fixture *f, const char *action)
{
    json_t *j = admin(f, "/_admin/stats", NULL);
    long v = (long)json_integer_value(json_object_get(json_object_get(j, "calls"), action));
    json_decref(j);
    return v;
}

static void set_faults(struct fixture *f, const char *json)
{
    json_decref(admin(f, "/_admin/faults", json));
}

static int start_standin(struct fixture *f, const char *const *extra)
{
    const char *args[32];
    size_t n = 0;
    static const char *base[] = {
        "--access-key", STANDIN_AK,           "--secret-key", STANDIN_SK, "--pending-seconds",
        "0.3",          "--shutdown-seconds", "0.3",          "--seed",   "11"};
    for (size_t i = 0; i < sizeof(base) / sizeof(base[0]); i++)
        args[n++] = base[i];
    for (size_t i = 0; extra != NULL && extra[i] != NULL && n < 30; i++)
        args[n++] = extra[i];
    args[n] = NULL;
    if (tool_start(&f->standin, "ec2_standin.py", args) != 0)
        return -1;
    snprintf(f->url, sizeof(f->url), "http://127.0.0.1:%d", f->standin.port);
    return 0;
}

static const char *const env_vars[] = {
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_CONFIG_FILE",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_EC2",
    "AWS_EC2_METADATA_SERVICE_ENDPOINT",
    NULL,
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return -1;
    for (int i = 0; env_vars[i]; i++)
        unsetenv(env_vars[i]);
    snprintf(f->dir, sizeof(f->dir), "/tmp/asgd-ec2test-XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    setenv("HOME", f->dir, 1);
    setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
    setenv("AWS_ACCESS_KEY_ID", STANDIN_AK, 1);
    setenv("AWS_SECRET_ACCESS_KEY", STANDIN_SK, 1);
    if (start_standin(f, NULL) != 0)
        return -1;
    ec2_settings_init(&f->s);
    f->s.region = strdup("us-east-1");
    f->s.endpoint = strdup(f->url);
    f->s.image_id = strdup("ami-0abcdef1234567890");
    f->s.instance_type = strdup("t3.micro");
    f->s.retry_base_delay_ms = 10;
    f->s.api_calls_per_second = 200;
    f->s.call_timeout_ms = 5000;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    tool_stop(&f->standin);
    ec2_settings_release(&f->s);
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    int rc = system(cmd);
    free(f);
    return rc == 0 ? 0 : -1;
}

static struct provider *make(struct fixture *f, const char *group)
{
    struct provider *p = NULL;
    char err[512];
    int rc =
        provider_ec2_new(&f->s, group, 50051, "10.0.0.1:50052", "reg-token", &p, err, sizeof(err));
    if (rc != 0)
        fail_msg("provider_ec2_new: %s", err);
    assert_string_equal(provider_name(p), "ec2");
    return p;
}

static const struct prov_instance *find(const struct prov_list *l, const char *id)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->items[i].id, id) == 0)
            return &l->items[i];
    return NULL;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void launch_describe_terminate(void **state)
{
    struct fixture *f = *state;
    struct provider *p = make(f, "web");
    struct prov_list l = PROV_LIST_INIT;
    assert_int_equal(provider_launch(p, 2, "web-launch-1", &l), 0);
    assert_int_equal(l.n, 2);
    char id0[PROV_ID_MAX], id1[PROV_ID_MAX];
    snprintf(id0, sizeof(id0), "%s", l.items[0].id);
    snprintf(id1, sizeof(id1), "%s", l.items[1].id);
    assert_int_equal(l.items[0].state, PROV_PENDING);
    assert_string_equal(l.items[0].launch_token, "web-launch-1");
    assert_non_null(strstr(l.items[0].address, ":50051"));
    assert_true(strncmp(l.items[0].address, "10.", 3) == 0);
    assert_true(l.items[0].launched_at_ms > 0);
    assert_true(l.items[0].zone[0] != '\0');
    prov_list_release(&l);

    /* the same token again: the same instances, nothing new launched */
    assert_int_equal(provider_launch(p, 2, "web-launch-1", &l), 0);
    assert_int_equal(l.n, 2);
    assert_non_null(find(&l, id0));
    prov_list_release(&l);
    assert_int_equal(stat_of(f, "launched"), 2);

    /* another group's instances are not ours */
    struct provider *other = make(f, "db");
    assert_int_equal(provider_launch(other, 1, "db-launch-1", &l), 0);
    prov_list_release(&l);

    sleep_ms(400);
    assert_int_equal(provider_describe(p, &l), 0);
    assert_int_equal(l.n, 2);
    assert_int_equal(find(&l, id0)->state, PROV_RUNNING);
    prov_list_release(&l);

    /* stopped behind our back: reported as on its way out, so the controller terminates it */
    char path[128];
    snprintf(path, sizeof(path), "/_admin/stop?id=%s", id1);
    json_decref(admin(f, path, ""));
    sleep_ms(400);
    assert_int_equal(provider_describe(p, &l), 0);
    assert_int_equal(l.n, 2);
    assert_int_equal(find(&l, id1)->state, PROV_STOPPING);
    prov_list_release(&l);

    const char *ids[] = {id0};
    assert_int_equal(provider_terminate(p, ids, 1), 0);
    assert_int_equal(provider_describe(p, &l), 0);
    assert_int_equal(find(&l, id0)->state, PROV_STOPPING);
    prov_list_release(&l);
    sleep_ms(400);
    assert_int_equal(provider_describe(p, &l), 0);
    assert_int_equal(l.n, 1); /* terminated ones are filtered out */
    assert_non_null(find(&l, id1));
    prov_list_release(&l);

    /* already gone is success; an unknown id among known ones does not block them */
    assert_int_equal(provider_terminate(p, ids, 1), 0);
    const char *mixed[] = {"i-00000000000000000", id1};
    assert_int_equal(provider_terminate(p, mixed, 2), 0);
    assert_int_equal(provider_describe(p, &l), 0);
    assert_true(l.n == 0 || find(&l, id1)->state == PROV_STOPPING);
    prov_list_release(&l);
    assert_int_equal(stat_of(f, "auth_failures"), 0);
    provider_free(other);
    provider_free(p);
    provider_free(NULL);
}

static void launch_parameters(void **state)
{
    struct fixture *f = *state;
    char path[512];
    snprintf(path, sizeof(path), "%s/user-data.sh", f->dir);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs("#!/bin/sh\nmonitorc --register {{monitor_address}} --token {{token}} "
          "--group {{group}} --port {{agent_port}} {{unknown}}\n",
          fp);
    fclose(fp);
    f->s.user_data_file = strdup(path);
    f->s.subnet_ids = calloc(2, sizeof(char *));
    f->s.subnet_ids[0] = strdup("subnet-aaaa");
    f->s.subnet_ids[1] = strdup("subnet-bbbb");
    f->s.n_subnet_ids = 2;
    f->s.tags = calloc(1, sizeof(*f->s.tags));
    f->s.tags[0].key = strdup("team");
    f->s.tags[0].value = strdup("a&b <c> d=e");
    f->s.n_tags = 1;
    f->s.security_group_ids = calloc(1, sizeof(char *));
    f->s.security_group_ids[0] = strdup("sg-12345678");
    f->s.n_security_group_ids = 1;
    struct provider *p = make(f, "web");
    struct prov_list l = PROV_LIST_INIT;
    for (int i = 0; i < 4; i++) {
        char tok[32];
        snprintf(tok, sizeof(tok), "spread-%d", i);
        assert_int_equal(provider_launch(p, 1, tok, &l), 0);
        prov_list_release(&l);
    }
    json_t *all = admin(f, "/_admin/instances", NULL);
    assert_int_equal(json_array_size(all), 4);
    int in_a = 0, in_b = 0;
    size_t i;
    json_t *it;
    json_array_foreach(all, i, it)
    {
        const char *subnet = json_string_value(json_object_get(it, "subnet"));
        in_a += strcmp(subnet, "subnet-aaaa") == 0;
        in_b += strcmp(subnet, "subnet-bbbb") == 0;
        json_t *tags = json_object_get(it, "tags");
        assert_string_equal(json_string_value(json_object_get(tags, "asg:group")), "web");
        assert_string_equal(json_string_value(json_object_get(tags, "team")), "a&b <c> d=e");
    }
    assert_int_equal(in_a, 2);
    assert_int_equal(in_b, 2);
    /* user data: base64 of the template with the names filled in */
    const char *ud = json_string_value(json_object_get(json_array_get(all, 0), "user_data"));
    assert_non_null(ud);
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "echo '%s' | base64 -d", ud);
    FILE *pp = popen(cmd, "r");
    char decoded[512] = "";
    size_t got = fread(decoded, 1, sizeof(decoded) - 1, pp);
    decoded[got] = '\0';
    pclose(pp);
    assert_string_equal(decoded, "#!/bin/sh\nmonitorc --register 10.0.0.1:50052 --token reg-token "
                                 "--group web --port 50051 {{unknown}}\n");
    json_decref(all);

    /* a "restart" whose subnet choice differs: EC2 says IdempotentParameterMismatch,
       the provider finds the original launch by its token instead of failing */
    struct provider *p2 = make(f, "web");
    free(f->s.subnet_ids[0]);
    f->s.subnet_ids[0] = strdup("subnet-cccc");
    free(f->s.subnet_ids[1]);
    f->s.subnet_ids[1] = strdup("subnet-dddd");
    struct provider *p3 = make(f, "web");
    assert_int_equal(provider_launch(p3, 1, "spread-0", &l), 0);
    assert_int_equal(l.n, 1);
    assert_string_equal(l.items[0].launch_token, "spread-0");
    prov_list_release(&l);
    assert_int_equal(stat_of(f, "launched"), 4);
    json_t *errs = admin(f, "/_admin/stats", NULL);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(errs, "errors"),
                                                        "IdempotentParameterMismatch")),
                     1);
    json_decref(errs);
    provider_free(p3);
    provider_free(p2);
    provider_free(p);
}

/* a launch of several instances with several subnets is split, evenly, and stays idempotent */
static void split_launch(void **state)
{
    struct fixture *f = *state;
    f->s.subnet_ids = calloc(3, sizeof(char *));
    f->s.subnet_ids[0] = strdup("subnet-aaaa");
    f->s.subnet_ids[1] = strdup("subnet-bbbb");
    f->s.subnet_ids[2] = strdup("subnet-cccc");
    f->s.n_subnet_ids = 3;
    struct provider *p = make(f, "split");
    struct prov_list l = PROV_LIST_INIT;
    /* a 63-character token: the part tokens must still fit EC2's 64 */
    const char *tok = "t23456789012345678901234567890123456789012345678901234567890123";
    assert_int_equal(strlen(tok), 63);
    assert_int_equal(provider_launch(p, 5, tok, &l), 0);
    assert_int_equal(l.n, 5);
    for (size_t i = 0; i < l.n; i++)
        assert_string_equal(l.items[i].launch_token, tok);
    char first[5][PROV_ID_MAX];
    for (size_t i = 0; i < 5; i++)
        snprintf(first[i], sizeof(first[i]), "%s", l.items[i].id);
    prov_list_release(&l);
    json_t *all = admin(f, "/_admin/instances", NULL);
    int per[3] = {0, 0, 0};
    size_t i;
    json_t *it;
    json_array_foreach(all, i, it)
    {
        const char *subnet = json_string_value(json_object_get(it, "subnet"));
        per[subnet[7] - 'a']++;
        assert_true(strlen(json_string_value(json_object_get(it, "client_token"))) <= 64);
    }
    json_decref(all);
    assert_true(per[0] >= 1 && per[1] >= 1 && per[2] >= 1);
    assert_int_equal(per[0] + per[1] + per[2], 5);
    /* re-sent: the same five, nothing new */
    assert_int_equal(provider_launch(p, 5, tok, &l), 0);
    assert_int_equal(l.n, 5);
    for (size_t k = 0; k < 5; k++)
        assert_non_null(find(&l, first[k]));
    prov_list_release(&l);
    assert_int_equal(stat_of(f, "launched"), 5);
    /* a part that fails (capacity) while others succeed: fewer instances, success */
    set_faults(f, "{\"capacity\": 0.5}");
    int partial = 0;
    for (int k = 0; k < 6 && !partial; k++) {
        char t2[32];
        snprintf(t2, sizeof(t2), "partial-%d", k);
        int rc = provider_launch(p, 3, t2, &l);
        if (rc == 0 && l.n < 3)
            partial = 1;
        if (rc != 0)
            assert_int_equal(rc, PROV_ECAPACITY);
        prov_list_release(&l);
    }
    assert_true(partial);
    provider_free(p);
}

static void pagination(void **state)
{
    struct fixture *f = *state;
    f->s.describe_page_size = 5;
    struct provider *p = make(f, "paged");
    struct prov_list l = PROV_LIST_INIT;
    assert_int_equal(provider_launch(p, 12, "paged-1", &l), 0);
    assert_int_equal(l.n, 12);
    prov_list_release(&l);
    long before = calls_of(f, "DescribeInstances");
    assert_int_equal(provider_describe(p, &l), 0);
    assert_int_equal(l.n, 12);
    for (size_t i = 0; i < l.n; i++)
        for (size_t j = i + 1; j < l.n; j++)
            assert_string_not_equal(l.items[i].id, l.items[j].id);
    prov_list_release(&l);
    assert_int_equal(calls_of(f, "DescribeInstances") - before, 3);
    provider_free(p);
}

static void throttling_converges(void **state)
{
    struct fixture *f = *state;
    set_faults(f, "{\"throttle\": 0.3}");
    f->s.max_attempts = 8;
    struct provider *p = make(f, "busy");
    struct prov_list l = PROV_LIST_INIT;
    for (int i = 0; i < 10; i++) {
        char tok[32];
        snprintf(tok, sizeof(tok), "busy-%d", i);
        int rc = provider_launch(p, 1, tok, &l);
        if (rc != 0)
            fail_msg("launch %d: %s", i, provider_errmsg(p));
        prov_list_release(&l);
        assert_int_equal(provider_describe(p, &l), 0);
        prov_list_release(&l);
    }
    assert_int_equal(provider_describe(p, &l), 0);
    assert_int_equal(l.n, 10);
    prov_list_release(&l);
    /* retries re-sent the same ClientToken: exactly one instance per token */
    assert_int_equal(stat_of(f, "launched"), 10);
    struct ec2_stats st;
    ec2_provider_stats(p, &st);
    assert_true(st.throttled > 0);
    assert_true(st.retries >= st.throttled);
    assert_int_equal(st.failures, 0);
    assert_int_equal((long)st.throttled, stat_of(f, "throttled"));
    provider_free(p);

    /* throttled on every try: PROV_ERETRY after max_attempts, not an endless loop */
    set_faults(f, "{\"throttle\": 1.0}");
    f->s.max_attempts = 3;
    p = make(f, "busy");
    long before = stat_of(f, "requests");
    assert_int_equal(provider_describe(p, &l), PROV_ERETRY);
    assert_non_null(strstr(provider_errmsg(p), "RequestLimitExceeded"));
    assert_non_null(strstr(provider_errmsg(p), "after 3 attempts"));
    assert_int_equal(stat_of(f, "requests") - before, 3);
    assert_int_equal(l.n, 0);
    provider_free(p);
}

static void capacity_and_parameter_errors(void **state)
{
    struct fixture *f = *state;
    set_faults(f, "{\"capacity\": 1.0}");
    struct provider *p = make(f, "cap");
    struct prov_list l = PROV_LIST_INIT;
    long before = calls_of(f, "RunInstances");
    assert_int_equal(provider_launch(p, 1, "cap-1", &l), PROV_ECAPACITY);
    assert_non_null(strstr(provider_errmsg(p), "InsufficientInstanceCapacity"));
    assert_int_equal(calls_of(f, "RunInstances") - before, 1); /* not retried */
    assert_int_equal(l.n, 0);
    provider_free(p);
    set_faults(f, "{\"capacity\": 0.0}");
    /* a parameter error is fatal and not retried */
    free(f->s.image_id);
    f->s.image_id = strdup("not-an-ami");
    p = make(f, "cap");
    before = calls_of(f, "RunInstances");
    assert_int_equal(provider_launch(p, 1, "cap-2", &l), PROV_EFATAL);
    assert_non_null(strstr(provider_errmsg(p), "InvalidAMIID.Malformed"));
    assert_int_equal(calls_of(f, "RunInstances") - before, 1);
    /* a parameter error does not block other calls */
    assert_int_equal(provider_describe(p, &l), 0);
    prov_list_release(&l);
    provider_free(p);
}

static void bad_credentials(void **state)
{
    struct fixture *f = *state;
    setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret-value-1234", 1);
    f->s.auth_failure_backoff_ms = 60000;
    struct provider *p = make(f, "auth");
    struct prov_list l = PROV_LIST_INIT;
    int64_t t0 = clk_mono_ms();
    assert_int_equal(provider_describe(p, &l), PROV_EFATAL);
    const char *msg = provider_errmsg(p);
    assert_non_null(strstr(msg, "AuthFailure"));
    assert_non_null(strstr(msg, "environment"));
    assert_null(strstr(msg, "wrong-secret-value-1234"));
    assert_null(strstr(msg, STANDIN_AK)); /* only a hint of the key id */
    assert_int_equal(stat_of(f, "requests"), 1);
    /* during the backoff: the same error, no call */
    for (int i = 0; i < 5; i++) {
        assert_int_equal(provider_describe(p, &l), PROV_EFATAL);
        assert_int_equal(provider_launch(p, 1, "auth-1", &l), PROV_EFATAL);
        assert_non_null(strstr(provider_errmsg(p), "AuthFailure"));
    }
    assert_int_equal(stat_of(f, "requests"), 1);
    assert_true(clk_mono_ms() - t0 < 30000); /* quick: nothing slept through retries */
    struct ec2_stats st;
    ec2_provider_stats(p, &st);
    assert_int_equal(st.calls, 1);
    assert_int_equal(st.suppressed, 10);
    provider_free(p);

    /* after the backoff a call is tried again, and good keys clear the error */
    f->s.auth_failure_backoff_ms = 0;
    p = make(f, "auth");
    assert_int_equal(provider_describe(p, &l), PROV_EFATAL);
    setenv("AWS_SECRET_ACCESS_KEY", STANDIN_SK, 1);
    assert_int_equal(provider_describe(p, &l), 0);
    prov_list_release(&l);
    provider_free(p);

    /* no credentials anywhere: fatal, says where it looked, no request at all */
    unsetenv("AWS_ACCESS_KEY_ID");
    unsetenv("AWS_SECRET_ACCESS_KEY");
    p = make(f, "auth");
    long before = stat_of(f, "requests");
    assert_int_equal(provider_describe(p, &l), PROV_EFATAL);
    assert_non_null(strstr(provider_errmsg(p), "no AWS credentials found"));
    assert_int_equal(stat_of(f, "requests"), before);
    provider_free(p);

    /* a session token is sent and signed */
    tool_stop(&f->standin);
    const char *extra[] = {"--session-token", "sess/token+1=", NULL};
    assert_int_equal(start_standin(f, extra), 0);
    free(f->s.endpoint);
    f->s.endpoint = strdup(f->url);
    setenv("AWS_ACCESS_KEY_ID", STANDIN_AK, 1);
    setenv("AWS_SECRET_ACCESS_KEY", STANDIN_SK, 1);
    setenv("AWS_SESSION_TOKEN", "sess/token+1=", 1);
    p = make(f, "auth");
    assert_int_equal(provider_describe(p, &l), 0);
    provider_free(p);
    setenv("AWS_SESSION_TOKEN", "another-token", 1);
    p = make(f, "auth");
    assert_int_equal(provider_describe(p, &l), PROV_EFATAL);
    assert_null(strstr(provider_errmsg(p), "another-token"));
    provider_free(p);
}

/* credentials from the instance role (IMDSv2): the provider signs with them and their token */
static void imds_credentials(void **state)
{
    struct fixture *f = *state;
    struct tool_proc imds;
    assert_int_equal(tool_start(&imds, "fake_imds.py", NULL), 0);
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", imds.port);
    tool_stop(&f->standin);
    const char *extra[] = {"--extra-key", "ASIAFAKE1:fake-secret-1", NULL};
    assert_int_equal(start_standin(f, extra), 0);
    free(f->s.endpoint);
    f->s.endpoint = strdup(f->url);
    unsetenv("AWS_ACCESS_KEY_ID");
    unsetenv("AWS_SECRET_ACCESS_KEY");
    unsetenv("AWS_EC2_METADATA_DISABLED");
    setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", url, 1);
    struct provider *p = make(f, "role");
    struct prov_list l = PROV_LIST_INIT;
    int rc = provider_describe(p, &l);
    if (rc != 0)
        fail_msg("describe with role credentials: %s", provider_errmsg(p));
    assert_int_equal(provider_launch(p, 1, "role-1", &l), 0);
    prov_list_release(&l);
    assert_int_equal(stat_of(f, "auth_failures"), 0);
    provider_free(p);
    tool_stop(&imds);
    unsetenv("AWS_EC2_METADATA_SERVICE_ENDPOINT");
    setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
}

static void timeouts_and_outages(void **state)
{
    struct fixture *f = *state;
    set_faults(f, "{\"slow_ms\": 3000}");
    f->s.call_timeout_ms = 300;
    f->s.max_attempts = 2;
    struct provider *p = make(f, "slow");
    struct prov_list l = PROV_LIST_INIT;
    assert_int_equal(provider_describe(p, &l), PROV_ERETRY);
    assert_non_null(strstr(provider_errmsg(p), "after 2 attempts"));
    assert_non_null(strstr(provider_errmsg(p), "imeout"));
    provider_free(p);
    set_faults(f, "{\"slow_ms\": 0, \"bogus\": 1.0}");
    /* a 200 that is not EC2's answer (a proxy's page) is an error, never "no instances" */
    p = make(f, "slow");
    assert_int_equal(provider_describe(p, &l), PROV_ERETRY);
    assert_non_null(strstr(provider_errmsg(p), "not an EC2 response"));
    assert_int_equal(l.n, 0);
    provider_free(p);
    set_faults(f, "{\"bogus\": 0}");
    /* endpoint down */
    tool_stop(&f->standin);
    p = make(f, "slow");
    assert_int_equal(provider_describe(p, &l), PROV_ERETRY);
    assert_int_equal(provider_launch(p, 1, "down-1", &l), PROV_ERETRY);
    assert_int_equal(l.n, 0);
    provider_free(p);
    assert_int_equal(start_standin(f, NULL), 0); /* for teardown */
}

static void rate_ceiling(void **state)
{
    struct fixture *f = *state;
    f->s.api_calls_per_second = 4;
    struct provider *p = make(f, "rate");
    struct prov_list l = PROV_LIST_INIT;
    for (int i = 0; i < 12; i++) {
        assert_int_equal(provider_describe(p, &l), 0);
        prov_list_release(&l);
    }
    /* a token bucket (burst 4, 4/s) allows at most 4 + 4*T calls in any T seconds: no
       one-second window holds more than 8 (+1 for timestamp rounding), and the 12 calls
       cannot span less than (12 - 4 - 1) / 4 s */
    json_t *j = admin(f, "/_admin/stats", NULL);
    json_t *times = json_object_get(j, "request_times");
    size_t n = json_array_size(times);
    assert_int_equal(n, 12);
    for (size_t i = 0; i < n; i++) {
        double t0 = json_real_value(json_array_get(times, i));
        size_t in_window = 0;
        for (size_t k = i; k < n; k++)
            if (json_real_value(json_array_get(times, k)) < t0 + 1.0)
                in_window++;
        if (in_window > 9)
            fail_msg("%zu calls within one second (ceiling 4/s, burst 4)", in_window);
    }
    double span =
        json_real_value(json_array_get(times, n - 1)) - json_real_value(json_array_get(times, 0));
    if (span < 1.7)
        fail_msg("12 calls in %.2f s: the 4/s ceiling was not applied", span);
    json_decref(j);
    provider_free(p);
}

static void bad_arguments(void **state)
{
    struct fixture *f = *state;
    struct provider *p = NULL;
    char err[256];
    assert_int_equal(provider_ec2_new(&f->s, "", 50051, NULL, NULL, &p, err, sizeof(err)),
                     PROV_EINVAL);
    assert_int_equal(provider_ec2_new(&f->s, "g", 0, NULL, NULL, &p, err, sizeof(err)),
                     PROV_EINVAL);
    assert_null(p);
    /* no region anywhere */
    free(f->s.region);
    f->s.region = NULL;
    assert_int_equal(provider_ec2_new(&f->s, "g", 50051, NULL, NULL, &p, err, sizeof(err)),
                     PROV_EINVAL);
    assert_non_null(strstr(err, "region"));
    f->s.region = strdup("us-east-1");
    p = make(f, "g");
    struct prov_list l = PROV_LIST_INIT;
    assert_int_equal(provider_launch(p, 0, "t", &l), PROV_EINVAL);
    const char *ids[] = {""};
    assert_int_equal(provider_terminate(p, ids, 1), PROV_EINVAL);
    assert_int_equal(provider_terminate(p, ids, 0), 0);
    provider_free(p);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(settings_full),
        cmocka_unit_test(settings_errors),
        cmocka_unit_test_setup_teardown(launch_describe_terminate, setup, teardown),
        cmocka_unit_test_setup_teardown(launch_parameters, setup, teardown),
        cmocka_unit_test_setup_teardown(split_launch, setup, teardown),
        cmocka_unit_test_setup_teardown(pagination, setup, teardown),
        cmocka_unit_test_setup_teardown(throttling_converges, setup, teardown),
        cmocka_unit_test_setup_teardown(capacity_and_parameter_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(bad_credentials, setup, teardown),
        cmocka_unit_test_setup_teardown(imds_credentials, setup, teardown),
        cmocka_unit_test_setup_teardown(timeouts_and_outages, setup, teardown),
        cmocka_unit_test_setup_teardown(rate_ceiling, setup, teardown),
        cmocka_unit_test_setup_teardown(bad_arguments, setup, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
