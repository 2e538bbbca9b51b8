/*
 * Unit tests for asgd/conf: the defaults, every key of every section, each
 * bad value reported at its file:line and key, the consistency checks (min >
 * max, down >= up, timeout >= interval, ...), unknown sections and keys, the
 * two-phase load that leaves [ec2] to its reader, conf_validate_group() for
 * the HTTP API, and the example files in examples/.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "asgd/conf.h"
#include "common/banned.h"

/* Loads text as "t.ini" through conf_load_cfg + cfg_check_unused. */
static int load_raw(const char *text, struct asgd_conf *out, char *err, size_t errlen)
{
    struct cfg c = CFG_INIT;
    int rc = cfg_load_string(&c, "t.ini", text, err, errlen);
    if (rc == 0)
        rc = conf_load_cfg(&c, out, err, errlen);
    if (rc == 0)
        rc = cfg_check_unused(&c, err, errlen);
    cfg_release(&c);
    return rc;
}

/* load_raw() with a "[group]" header appended when text has none (a node file needs a
 * group; appended at the end so that line numbers stay those of text). */
static int load_text(const char *text, struct asgd_conf *out, char *err, size_t errlen)
{
    if (strstr(text, "[group]") != NULL)
        return load_raw(text, out, err, errlen);
    size_t n = strlen(text) + sizeof("\n[group]\n");
    char *t = malloc(n);
    assert_non_null(t);
    snprintf(t, n, "%s\n[group]\n", text);
    int rc = load_raw(t, out, err, errlen);
    free(t);
    return rc;
}

static void defaults(void **state)
{
    (void)state;
    struct asgd_conf c;
    assert_int_equal(conf_defaults(&c), 0);
    assert_null(c.path);
    assert_string_equal(c.groups[0].settings.name, "default");
    assert_int_equal(c.groups[0].settings.min_size, 1);
    assert_int_equal(c.groups[0].settings.max_size, 1);
    assert_int_equal(c.groups[0].settings.desired_capacity, 1);
    assert_int_equal(c.groups[0].settings.policy.type, POLICY_THRESHOLD);
    assert_true(c.groups[0].settings.policy.up_threshold == 70 &&
                c.groups[0].settings.policy.down_threshold == 20);
    assert_true(c.groups[0].settings.policy.up_factor == 2 &&
                c.groups[0].settings.policy.down_factor == 0.5);
    assert_int_equal(c.groups[0].settings.policy.evaluation_period_ms, 60000);
    assert_string_equal(c.groups[0].settings.health.type, "agent");
    assert_int_equal(c.groups[0].settings.health.interval_ms, 2000);
    assert_int_equal(c.groups[0].settings.health.timeout_ms, 1000);
    assert_int_equal(c.groups[0].settings.health.healthy_threshold, 2);
    assert_int_equal(c.groups[0].settings.health.unhealthy_threshold, 3);
    assert_int_equal(c.groups[0].settings.health.grace_period_ms, 30000);
    assert_int_equal(c.groups[0].provider, CONF_PROVIDER_LOCAL);
    assert_string_equal(c.monitor.listen, "127.0.0.1:50052");
    assert_int_equal(c.monitor.agent_port, 50051);
    assert_null(c.monitor.token_file);
    assert_int_equal(c.monitor.accept_unknown, 0);
    assert_null(c.groups[0].local.agent);
    assert_null(c.groups[0].local.agent_args);
    assert_int_equal(c.groups[0].local.boot_delay_ms, 0);
    assert_string_equal(c.groups[0].local.address_base, "127.0.0.2");
    assert_non_null(c.store.dir);
    assert_true(c.store.dir[0] == '/');
    assert_string_equal(c.api.listen, "127.0.0.1:8080");
    assert_null(c.api.token_file);
    assert_int_equal(conf_validate_group(&c.groups[0].settings, NULL, NULL, NULL, 0), 0);
    conf_release(&c);
    conf_release(&c);
    conf_release(NULL);
}

static void empty_file_and_defaults(void **state)
{
    (void)state;
    struct asgd_conf c;
    char err[256];
    /* an empty file, or one without a group, is an error (issue 11) */
    assert_int_equal(load_raw("", &c, err, sizeof(err)), -1);
    assert_string_equal(err, "t.ini: no group defined: add a [group] section, a [groups] dir, or "
                             "[store] type = etcd");
    conf_release(&c);
    assert_int_equal(load_raw("[api]\nlisten = 127.0.0.1:1\n", &c, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "t.ini: no group defined"));
    conf_release(&c);
    assert_int_equal(
        load_raw("[api]\nlisten = 127.0.0.1:1\n[policy]\ntype = target\n", &c, err, sizeof(err)),
        -1);
    assert_string_equal(err, "t.ini:3: [policy]: group settings without a [group] section (add "
                             "[group] name = ...)");
    conf_release(&c);
    /* a [group] header alone: every default */
    assert_int_equal(load_raw("[group]\n", &c, err, sizeof(err)), 0);
    assert_string_equal(c.path, "t.ini");
    assert_int_equal(c.n_groups, 1);
    assert_string_equal(c.groups[0].settings.name, "default");
    assert_int_equal(c.groups[0].settings.max_size, 1);
    assert_string_equal(c.groups[0].local.dir, c.store.dir);
    conf_release(&c);
    /* only min_size: max and desired follow it */
    assert_int_equal(load_text("[group]\nmin_size = 3\n", &c, err, sizeof(err)), 0);
    assert_int_equal(c.groups[0].settings.max_size, 3);
    assert_int_equal(c.groups[0].settings.desired_capacity, 3);
    conf_release(&c);
    /* target policy: its own evaluation period default */
    assert_int_equal(load_text("[policy]\ntype = target\n", &c, err, sizeof(err)), 0);
    assert_int_equal(c.groups[0].settings.policy.type, POLICY_TARGET);
    assert_int_equal(c.groups[0].settings.policy.evaluation_period_ms, 15000);
    assert_int_equal(c.groups[0].settings.policy.scale_down_window_ms, 300000);
    conf_release(&c);
}

static const char *every_key = "[group]\n"
                               "name = web-1.a_b\n"
                               "min_size = 2\n"
                               "max_size = 9\n"
                               "desired_capacity = 4\n"
                               "[policy]\n"
                               "type = target\n"
                               "scale_up_threshold = 80\n"
                               "scale_down_threshold = 10.5\n"
                               "scale_up_factor = 1.5\n"
                               "scale_down_factor = 0.25\n"
                               "evaluation_period = 20s\n"
                               "cooldown = 2m\n"
                               "target = 55\n"
                               "tolerance = 0.05\n"
                               "scale_down_window = 90s\n"
                               "[health]\n"
                               "type = ec2\n"
                               "interval = 500ms\n"
                               "timeout = 200ms\n"
                               "healthy_threshold = 4\n"
                               "unhealthy_threshold = 5\n"
                               "grace_period = 1m\n"
                               "[monitor]\n"
                               "listen = 0.0.0.0:6000\n"
                               "agent_port = 7000\n"
                               "token_file = /etc/asgd/token\n"
                               "accept_unknown = yes\n"
                               "tls_ca_file = /etc/asgd/agents-ca.pem\n"
                               "tls_cert_file = /etc/asgd/node.pem\n"
                               "tls_key_file = /etc/asgd/node.key\n"
                               "tls_server_name = agents.asgd\n"
                               "[provider]\n"
                               "type = ec2\n"
                               "[ec2]\n"
                               "image_id = ami-1\n"
                               "instance_type = t3.micro\n"
                               "[local]\n"
                               "agent = /opt/monitorc\n"
                               "agent_args = \"--load simulate\"\n"
                               "boot_delay = 3s\n"
                               "address_base = 127.1.0.1\n"
                               "[store]\n"
                               "dir = /var/tmp/asgd-web\n"
                               "[api]\n"
                               "listen = [::1]:9090\n"
                               "token_file = /etc/asgd/api-token\n"
                               "tls_cert_file = /etc/asgd/api.pem\n"
                               "tls_key_file = /etc/asgd/api.key\n"
                               "tls_ca_file = /etc/asgd/nodes-ca.pem\n";

static void every_key_is_read(void **state)
{
    (void)state;
    struct asgd_conf c;
    char err[256];
    if (load_text(every_key, &c, err, sizeof(err)) != 0)
        fail_msg("%s", err);
    const struct group_settings *g = &c.groups[0].settings;
    assert_string_equal(g->name, "web-1.a_b");
    assert_int_equal(g->min_size, 2);
    assert_int_equal(g->max_size, 9);
    assert_int_equal(g->desired_capacity, 4);
    assert_int_equal(g->policy.type, POLICY_TARGET);
    assert_true(g->policy.up_threshold == 80);
    assert_true(g->policy.down_threshold == 10.5);
    assert_true(g->policy.up_factor == 1.5);
    assert_true(g->policy.down_factor == 0.25);
    assert_int_equal(g->policy.evaluation_period_ms, 20000);
    assert_int_equal(g->policy.cooldown_ms, 120000);
    assert_true(g->policy.target == 55);
    assert_true(g->policy.tolerance == 0.05);
    assert_int_equal(g->policy.scale_down_window_ms, 90000);
    assert_string_equal(g->health.type, "ec2");
    assert_int_equal(g->health.interval_ms, 500);
    assert_int_equal(g->health.timeout_ms, 200);
    assert_int_equal(g->health.healthy_threshold, 4);
    assert_int_equal(g->health.unhealthy_threshold, 5);
    assert_int_equal(g->health.grace_period_ms, 60000);
    assert_string_equal(c.monitor.listen, "0.0.0.0:6000");
    assert_int_equal(c.monitor.agent_port, 7000);
    assert_string_equal(c.monitor.token_file, "/etc/asgd/token");
    assert_int_equal(c.monitor.accept_unknown, 1);
    assert_int_equal(c.groups[0].provider, CONF_PROVIDER_EC2);
    assert_string_equal(c.groups[0].local.agent, "/opt/monitorc");
    assert_string_equal(c.groups[0].local.agent_args, "--load simulate");
    assert_int_equal(c.groups[0].local.boot_delay_ms, 3000);
    assert_string_equal(c.groups[0].local.address_base, "127.1.0.1");
    assert_string_equal(c.store.dir, "/var/tmp/asgd-web");
    assert_string_equal(c.api.listen, "[::1]:9090");
    assert_string_equal(c.api.token_file, "/etc/asgd/api-token");
    assert_string_equal(c.monitor.tls_ca_file, "/etc/asgd/agents-ca.pem");
    assert_string_equal(c.monitor.tls_cert_file, "/etc/asgd/node.pem");
    assert_string_equal(c.monitor.tls_key_file, "/etc/asgd/node.key");
    assert_string_equal(c.monitor.tls_server_name, "agents.asgd");
    assert_string_equal(c.api.tls_cert_file, "/etc/asgd/api.pem");
    assert_string_equal(c.api.tls_key_file, "/etc/asgd/api.key");
    assert_string_equal(c.api.tls_ca_file, "/etc/asgd/nodes-ca.pem");
    assert_string_equal(c.cluster.api_advertise, "https://[::1]:9090"); /* HTTPS: https:// */
    conf_release(&c);
}

/* Each bad setting -> the exact "t.ini:LINE: [sec] key: why" */
static void bad_values(void **state)
{
    (void)state;
    static const struct {
        const char *text, *want;
    } cases[] = {
        {"[group]\nname = web server\n", "t.ini:2: [group] name: \"web server\" is not a valid"},
        {"[group]\nname =\n", "t.ini:2: [group] name: \"\" is not a valid name"},
        {"[group]\nname = aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n",
         "t.ini:2: [group] name: \"aaaa"}, /* 49 characters */
        {"[group]\nmin_size = -1\n", "t.ini:2: [group] min_size: -1 is out of range (0..100000)"},
        {"[group]\nmin_size = two\n", "t.ini:2: [group] min_size: \"two\" is not an integer"},
        {"[group]\nmin_size = 5\nmax_size = 3\n",
         "t.ini:2: [group] min_size: min_size 5 > max_size 3"},
        {"[group]\nmin_size = 1\nmax_size = 3\ndesired_capacity = 4\n",
         "t.ini:4: [group] desired_capacity: desired_capacity 4 is outside [min_size 1, max_size "
         "3]"},
        {"[group]\nmax_size = 3\nmin_size = 2\ndesired_capacity = 1\n",
         "t.ini:4: [group] desired_capacity: desired_capacity 1 is outside [min_size 2, max_size "
         "3]"},
        {"[policy]\ntype = hpa\n",
         "t.ini:2: [policy] type: \"hpa\" is not one of: threshold, target"},
        {"[policy]\nscale_up_threshold = 101\n",
         "t.ini:2: [policy] scale_up_threshold: 101 is out of range (0..100)"},
        {"[policy]\nscale_up_threshold = 50\nscale_down_threshold = 50\n",
         "t.ini:3: [policy] scale_down_threshold: 50 must be below scale_up_threshold (50)"},
        {"[policy]\nscale_down_threshold = 80\n",
         "t.ini:2: [policy] scale_down_threshold: 80 must be below scale_up_threshold (70)"},
        {"[policy]\nscale_up_factor = 1\n",
         "t.ini:2: [policy] scale_up_factor: 1 must be greater than 1"},
        {"[policy]\nscale_down_factor = 1\n",
         "t.ini:2: [policy] scale_down_factor: 1 must be between 0 and 1 (exclusive)"},
        {"[policy]\nscale_down_factor = 0\n",
         "t.ini:2: [policy] scale_down_factor: 0 must be between 0 and 1 (exclusive)"},
        {"[policy]\nevaluation_period = 50ms\n",
         "t.ini:2: [policy] evaluation_period: 50ms is out of range (100ms..24h)"},
        {"[policy]\ncooldown = soon\n", "t.ini:2: [policy] cooldown: \"soon\" is not a duration"},
        {"[policy]\ntarget = 0\n", "t.ini:2: [policy] target: 0 must be above 0"},
        {"[policy]\ntolerance = 1\n",
         "t.ini:2: [policy] tolerance: 1 must be at least 0 and below 1"},
        {"[policy]\nscale_down_window = 2d\n",
         "t.ini:2: [policy] scale_down_window: \"2d\" is not a duration"},
        {"[health]\ntype = tcp\n", "t.ini:2: [health] type: \"tcp\" is not one of: agent, ec2"},
        {"[health]\ntype = ec2\n",
         "t.ini:2: [health] type: ec2 health checks need [provider] type = ec2"},
        {"[health]\ninterval = 1s\ntimeout = 1s\n",
         "t.ini:3: [health] timeout: 1s must be shorter than interval (1s)"},
        {"[health]\ninterval = 500ms\n",
         "t.ini:1: [health] timeout: 1s must be shorter than interval (500ms)"},
        {"[health]\nhealthy_threshold = 0\n",
         "t.ini:2: [health] healthy_threshold: 0 is out of range (1..1000)"},
        {"[health]\nunhealthy_threshold = x\n",
         "t.ini:2: [health] unhealthy_threshold: \"x\" is not an integer"},
        {"[health]\ngrace_period = -5s\n",
         "t.ini:2: [health] grace_period: \"-5s\" is not a duration"},
        {"[monitor]\nlisten = localhost\n",
         "t.ini:2: [monitor] listen: \"localhost\" is not an address"},
        {"[monitor]\nlisten = :80\n", "t.ini:2: [monitor] listen: \":80\" is not an address"},
        {"[monitor]\nlisten = h:70000\n", "t.ini:2: [monitor] listen: \"h:70000\" is not"},
        {"[monitor]\nlisten =\n", "t.ini:2: [monitor] listen: must not be empty"},
        {"[monitor]\nagent_port = 0\n",
         "t.ini:2: [monitor] agent_port: 0 is out of range (1..65535)"},
        {"[monitor]\ntoken_file =\n", "t.ini:2: [monitor] token_file: must not be empty"},
        {"[monitor]\naccept_unknown = sometimes\n",
         "t.ini:2: [monitor] accept_unknown: \"sometimes\" is not a boolean"},
        {"[provider]\ntype = gce\n", "t.ini:2: [provider] type: \"gce\" is not one of: local, ec2"},
        {"[local]\nagent =\n", "t.ini:2: [local] agent: must not be empty"},
        {"[local]\nboot_delay = 2h\n", "t.ini:2: [local] boot_delay: 2h is out of range (0s..1h)"},
        {"[local]\naddress_base = 8.8.8.8\n",
         "t.ini:2: [local] address_base: \"8.8.8.8\" is not a loopback (127.x.x.x) or private"},
        {"[local]\naddress_base = 127.0.0\n",
         "t.ini:2: [local] address_base: \"127.0.0\" is not an IPv4 address"},
        {"[group]\nmax_size = 10\n[local]\naddress_base = 127.255.255.250\n",
         "t.ini:4: [local] address_base: \"127.255.255.250\" leaves no room for max_size (10)"},
        {"[store]\ndir =\n", "t.ini:2: [store] dir: must not be empty"},
        {"[api]\nlisten = 8080\n", "t.ini:2: [api] listen: \"8080\" is not an address"},
        {"[api]\ntoken_file = \"\"\n", "t.ini:2: [api] token_file: must not be empty"},
        /* syntax and structure */
        {"[group]\nmin_size = 1\nmin_size = 2\n",
         "t.ini:3: [group] min_size: duplicate key (first at line 2)"},
        {"[group]\nmin_sise = 2\n", "t.ini:2: [group] min_sise: unknown key"},
        {"[group]\nmin_size = 1\n[grup]\nmin_size = 1\n", "t.ini:3: [grup]: unknown section"},
        {"[group]\nmax_size = 100001\n",
         "t.ini:2: [group] max_size: 100001 exceeds the most instances a group can have (100000)"},
        {"[local]\nagent_args = \"--x\"\n[group]\nname = \"a b\"\n",
         "t.ini:4: [group] name: \"a b\" is not a valid name"},
        {"[ec2]\nregion = eu-west-1\n", "t.ini:1: [ec2]"}, /* read as the group's: incomplete */
        {"[store]\ntype = etcd\n", "t.ini:2: [store] type: etcd needs etcd_endpoints"},
        {"[store]\ntype = zk\n", "t.ini:2: [store] type: \"zk\" is not one of: sqlite, etcd"},
        {"[store]\netcd_endpoints = http://a:1, ftp://b\n",
         "t.ini:2: [store] etcd_endpoints: \"ftp://b\" is not an http:// or https:// URL"},
        {"[store]\netcd_endpoints = http://a:1,,http://b:2\n",
         "t.ini:2: [store] etcd_endpoints: \"\" is not an http:// or https:// URL"},
        {"[store]\netcd_prefix = asgd\n", "t.ini:2: [store] etcd_prefix: \"asgd\" must start"},
        {"[store]\netcd_cert_file = /c\n",
         "t.ini:2: [store] etcd_cert_file: etcd_cert_file and etcd_key_file go together"},
        {"[cluster]\nlease_ttl = 1s\n",
         "t.ini:2: [cluster] lease_ttl: 1s is out of range (2s..1m)"},
        {"[cluster]\nnode = a/b\n", "t.ini:2: [cluster] node: \"a/b\" is not a node name"},
        {"[cluster]\napi_advertise = 127.0.0.1:80\n",
         "t.ini:2: [cluster] api_advertise: \"127.0.0.1:80\" is not an http:// or https:// URL"},
        {"[groups]\ndir = /nonexistent-asgd-dir\n",
         "t.ini:2: [groups] dir: cannot open \"/nonexistent-asgd-dir\""},
        {"[clustre]\nnode = a\n", "t.ini:1: [clustre]: unknown section"},
        {"[monitor]\ntls_cert_file = /c\n",
         "t.ini:2: [monitor] tls_cert_file: tls_cert_file and tls_key_file go together"},
        {"[api]\ntls_key_file = /k\n",
         "t.ini:2: [api] tls_key_file: tls_cert_file and tls_key_file go together"},
        {"[monitor]\ntls_server_name = a\n",
         "t.ini:2: [monitor] tls_server_name: needs tls_ca_file"},
        {"[api]\ntls_cert_file =\n", "t.ini:2: [api] tls_cert_file"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct asgd_conf c;
        char err[256] = "";
        int rc = load_text(cases[i].text, &c, err, sizeof(err));
        conf_release(&c);
        if (rc != -1)
            fail_msg("case %zu accepted: %s", i, cases[i].text);
        if (strncmp(err, cases[i].want, strlen(cases[i].want)) != 0)
            fail_msg("case %zu: got \"%s\"\n want prefix \"%s\"", i, err, cases[i].want);
    }
}

static void good_edge_values(void **state)
{
    (void)state;
    static const char *const ok[] = {
        "[group]\nmin_size = 0\nmax_size = 0\n",
        "[group]\nmin_size = 0\nmax_size = 5\n",
        "[policy]\nscale_up_threshold = 100\nscale_down_threshold = 0\n",
        "[policy]\ntolerance = 0\ncooldown = 0\nscale_down_window = 0\n",
        "[monitor]\nlisten = 127.0.0.1:0\n",
        "[local]\nagent_args =\n",
        "[provider]\ntype = ec2\n[health]\ntype = ec2\n[ec2]\nimage_id = a\ninstance_type = t\n",
        "[group]\nmax_size = 4\n[local]\naddress_base = 127.255.255.250\n",
        "[health]\ninterval = 10ms\ntimeout = 1ms\n",
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        struct asgd_conf c;
        char err[256];
        if (load_text(ok[i], &c, err, sizeof(err)) != 0)
            fail_msg("case %zu refused: %s", i, err);
        if (i == 5)
            assert_null(c.groups[0].local.agent_args); /* empty means none */
        conf_release(&c);
    }
}

static void validate_group_for_the_api(void **state)
{
    (void)state;
    struct asgd_conf c;
    assert_int_equal(conf_defaults(&c), 0);
    struct group_settings g = c.groups[0].settings;
    const char *sec = NULL, *key = NULL;
    char err[128];
    g.max_size = 5;
    g.desired_capacity = 3;
    assert_int_equal(conf_validate_group(&g, &sec, &key, err, sizeof(err)), 0);

    g.min_size = 6;
    assert_int_equal(conf_validate_group(&g, &sec, &key, err, sizeof(err)), -1);
    assert_string_equal(sec, "group");
    assert_string_equal(key, "min_size");
    assert_string_equal(err, "min_size 6 > max_size 5");
    g.min_size = 1;

    g.policy.down_threshold = 75;
    assert_int_equal(conf_validate_group(&g, &sec, &key, err, sizeof(err)), -1);
    assert_string_equal(sec, "policy");
    assert_string_equal(key, "scale_down_threshold");
    assert_string_equal(err, "75 must be below scale_up_threshold (70)");
    g.policy.down_threshold = 20;

    g.health.timeout_ms = 5000;
    assert_int_equal(conf_validate_group(&g, &sec, &key, err, sizeof(err)), -1);
    assert_string_equal(key, "timeout");
    g.health.timeout_ms = 1000;

    g.policy.type = 9;
    assert_int_equal(conf_validate_group(&g, NULL, NULL, err, sizeof(err)), -1);
    g.policy.type = POLICY_TARGET;
    g.policy.up_factor = NAN; /* NaN is never valid */
    assert_int_equal(conf_validate_group(&g, &sec, &key, err, sizeof(err)), -1);
    assert_string_equal(key, "scale_up_factor");
    g.policy.up_factor = 2;

    snprintf(g.name, sizeof(g.name), "%s", "no/slash");
    assert_int_equal(conf_validate_group(&g, &sec, &key, err, sizeof(err)), -1);
    assert_string_equal(key, "name");
    snprintf(g.name, sizeof(g.name), "%s", "web");
    snprintf(g.health.type, sizeof(g.health.type), "%s", "http");
    assert_int_equal(conf_validate_group(&g, &sec, &key, err, sizeof(err)), -1);
    assert_string_equal(sec, "health");
    assert_string_equal(key, "type");
    conf_release(&c);

    assert_true(conf_name_valid("a"));
    assert_true(conf_name_valid("Web-1_x.y"));
    assert_false(conf_name_valid(""));
    assert_false(conf_name_valid(NULL));
    assert_false(conf_name_valid("a b"));
    assert_false(conf_name_valid("ü"));
}

static void default_store_dir(void **state)
{
    (void)state;
    char *d;
    setenv("STATE_DIRECTORY", "/run/state", 1);
    d = conf_default_store_dir("web");
    assert_string_equal(d, "/run/state/web");
    free(d);
    unsetenv("STATE_DIRECTORY");
    setenv("XDG_STATE_HOME", "/x/state", 1);
    setenv("HOME", "/home/u", 1);
    d = conf_default_store_dir("web");
    assert_string_equal(d, geteuid() == 0 ? "/var/lib/asgd/web" : "/x/state/asgd/web");
    free(d);
    unsetenv("XDG_STATE_HOME");
    d = conf_default_store_dir("web");
    assert_string_equal(d, geteuid() == 0 ? "/var/lib/asgd/web" : "/home/u/.local/state/asgd/web");
    free(d);
    /* the group name is used when [store] dir is absent */
    struct asgd_conf c;
    char err[256];
    assert_int_equal(load_text("[group]\nname = api\n", &c, err, sizeof(err)), 0);
    assert_non_null(strstr(c.store.dir, "/api"));
    conf_release(&c);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void files(void **state)
{
    (void)state;
    char dir[] = "/tmp/test_conf.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256], err[512], want[512];
    snprintf(path, sizeof(path), "%s/asgd.ini", dir);
    struct asgd_conf c;

    /* missing file */
    assert_int_equal(conf_load(path, &c, err, sizeof(err)), -1);
    snprintf(want, sizeof(want), "%s: cannot open: %s", path, strerror(ENOENT));
    assert_string_equal(err, want);
    conf_release(&c);

    /* a good file */
    write_file(path, "[group]\nname = web\nmin_size = 2\nmax_size = 5\n");
    assert_int_equal(conf_load(path, &c, err, sizeof(err)), 0);
    assert_string_equal(c.path, path);
    assert_int_equal(c.groups[0].settings.max_size, 5);
    conf_release(&c);

    /* errors name the file */
    write_file(path, "[group]\nname = web\nmin_size = 7\nmax_size = 5\n");
    assert_int_equal(conf_load(path, &c, err, sizeof(err)), -1);
    snprintf(want, sizeof(want), "%s:3: [group] min_size: min_size 7 > max_size 5", path);
    assert_string_equal(err, want);
    conf_release(&c);
    write_file(path, "[group]\nname = web\n[api]\nlisten = 1.2.3.4:80\nport = 80\n");
    assert_int_equal(conf_load(path, &c, err, sizeof(err)), -1);
    snprintf(want, sizeof(want), "%s:5: [api] port: unknown key", path);
    assert_string_equal(err, want);
    conf_release(&c);

    /* [ec2] is the group's: read with it, and its unknown keys are reported */
    write_file(path, "[group]\n[provider]\ntype = ec2\n[ec2]\nregion = eu-west-1\nimage_id = "
                     "ami-1\ninstance_type = t3.micro\nami = x\n");
    assert_int_equal(conf_load(path, &c, err, sizeof(err)), -1);
    snprintf(want, sizeof(want), "%s:8: [ec2] ami: unknown key", path);
    assert_string_equal(err, want);
    conf_release(&c);
    write_file(path, "[group]\n[provider]\ntype = ec2\n[ec2]\nregion = eu-west-1\nimage_id = "
                     "ami-1\ninstance_type = t3.micro\n");
    if (conf_load(path, &c, err, sizeof(err)) != 0)
        fail_msg("%s", err);
    assert_int_equal(c.groups[0].provider, CONF_PROVIDER_EC2);
    assert_true(c.groups[0].has_ec2);
    assert_string_equal(c.groups[0].ec2.region, "eu-west-1");
    assert_string_equal(c.groups[0].ec2.image_id, "ami-1");
    conf_release(&c);

    unlink(path);
    rmdir(dir);
}

static char *path_in(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    assert_non_null(p);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* The node file + [groups] dir: three group files, a duplicate, a bad file, etcd without groups. */
static void node_file_and_groups_dir(void **state)
{
    (void)state;
    char dir[] = "/tmp/test_conf_groups.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char *gdir = path_in(dir, "g");
    assert_int_equal(mkdir(gdir, 0700), 0);
    char *node = path_in(dir, "node.ini");
    char *fa = path_in(gdir, "alpha.ini"), *fb = path_in(gdir, "beta.ini");
    char *fc = path_in(gdir, "gamma.ini"), *fx = path_in(gdir, "x.ini");
    char *skip = path_in(gdir, "notes.txt");
    char err[1024], want[1024];
    struct asgd_conf c;

    write_file(node, "[groups]\ndir = g\n[store]\ndir = /var/tmp/asgd-node\n[api]\n"
                     "listen = 127.0.0.1:9999\n");
    write_file(fb, "[group]\nmin_size = 2\nmax_size = 4\n");
    write_file(fa, "[policy]\ntype = target\n");
    write_file(fc, "[group]\nname = third\n[local]\naddress_base = 127.9.0.2\ndir = /tmp/g3\n");
    write_file(skip, "not a group");
    if (conf_load(node, &c, err, sizeof(err)) != 0)
        fail_msg("%s", err);
    assert_int_equal(c.n_groups, 3);
    assert_string_equal(c.groups_dir, gdir);
    /* sorted by file name; the name defaults to the file's */
    assert_string_equal(c.groups[0].settings.name, "alpha");
    assert_int_equal(c.groups[0].settings.policy.type, POLICY_TARGET);
    assert_string_equal(c.groups[0].path, fa);
    assert_string_equal(c.groups[1].settings.name, "beta");
    assert_int_equal(c.groups[1].settings.max_size, 4);
    assert_string_equal(c.groups[2].settings.name, "third");
    assert_string_equal(c.groups[2].local.address_base, "127.9.0.2");
    assert_string_equal(c.groups[2].local.dir, "/tmp/g3");
    assert_string_equal(c.groups[0].local.dir, "/var/tmp/asgd-node/local/alpha");
    assert_string_equal(c.groups[1].local.dir, "/var/tmp/asgd-node/local/beta");
    /* derived address ranges: distinct, never the single-file default */
    assert_string_not_equal(c.groups[0].local.address_base, c.groups[1].local.address_base);
    assert_string_not_equal(c.groups[0].local.address_base, "127.0.0.2");
    assert_non_null(conf_find_group(&c, "beta"));
    assert_null(conf_find_group(&c, "gamma"));
    assert_non_null(strstr(c.groups[1].spec, "\"name\":\"beta\""));
    assert_string_equal(c.store.dir, "/var/tmp/asgd-node");
    assert_string_equal(c.cluster.api_advertise, "http://127.0.0.1:9999");
    char *ld = conf_local_dir(&c, "api-made");
    assert_string_equal(ld, "/var/tmp/asgd-node/local/api-made");
    free(ld);
    conf_release(&c);

    /* the node file's own group first, then the folder's */
    write_file(node, "[group]\nname = main\n[groups]\ndir = g\n");
    if (conf_load(node, &c, err, sizeof(err)) != 0)
        fail_msg("%s", err);
    assert_int_equal(c.n_groups, 4);
    assert_string_equal(c.groups[0].settings.name, "main");
    assert_null(c.groups[0].path);
    assert_string_equal(c.groups[0].local.address_base, "127.0.0.2");
    assert_string_equal(c.groups[0].local.dir, c.store.dir);
    conf_release(&c);

    /* a duplicate name: both files named */
    write_file(fx, "[group]\nname = beta\n");
    assert_int_equal(conf_load(node, &c, err, sizeof(err)), -1);
    snprintf(want, sizeof(want), "%s: group \"beta\" is already defined in %s", fx, fb);
    assert_string_equal(err, want);
    conf_release(&c);
    write_file(fx, "[group]\nname = main\n");
    assert_int_equal(conf_load(node, &c, err, sizeof(err)), -1);
    snprintf(want, sizeof(want), "%s: group \"main\" is already defined in %s", fx, node);
    assert_string_equal(err, want);
    conf_release(&c);
    unlink(fx);

    /* a bad group file: its path, line and key */
    write_file(fc, "[group]\nname = third\nmax_size = 150000\n");
    assert_int_equal(conf_load(node, &c, err, sizeof(err)), -1);
    snprintf(want, sizeof(want),
             "%s:3: [group] max_size: 150000 exceeds the most instances a group can have (100000)",
             fc);
    assert_string_equal(err, want);
    conf_release(&c);
    write_file(fc, "[group]\n[monitor]\nlisten = 1.2.3.4:5\n");
    assert_int_equal(conf_load(node, &c, err, sizeof(err)), -1);
    snprintf(want, sizeof(want), "%s:2: [monitor]: unknown section", fc);
    assert_string_equal(err, want);
    conf_release(&c);

    /* an empty folder is no group at all */
    unlink(fa);
    unlink(fb);
    unlink(fc);
    write_file(node, "[groups]\ndir = g\n");
    assert_int_equal(conf_load(node, &c, err, sizeof(err)), -1);
    snprintf(want, sizeof(want), "%s:2: [groups] dir: no group file (*.ini) in \"%s\"", node, gdir);
    assert_string_equal(err, want);
    conf_release(&c);

    /* etcd: groups may live in the store only; every [store] and [cluster] key */
    write_file(node, "[store]\ntype = etcd\netcd_endpoints = http://127.0.0.1:2379, "
                     "https://h2:2379\netcd_prefix = /x\netcd_ca_file = /ca\netcd_cert_file = "
                     "/c\netcd_key_file = /k\ndir = /var/tmp/n1\n[cluster]\nnode = n-1.a_b\n"
                     "lease_ttl = 3s\napi_advertise = https://n1:8080\n");
    if (conf_load(node, &c, err, sizeof(err)) != 0)
        fail_msg("%s", err);
    assert_int_equal(c.n_groups, 0);
    assert_int_equal(c.store.type, CONF_STORE_ETCD);
    assert_int_equal(c.store.n_etcd_endpoints, 2);
    assert_string_equal(c.store.etcd_endpoints[0], "http://127.0.0.1:2379");
    assert_string_equal(c.store.etcd_endpoints[1], "https://h2:2379");
    assert_string_equal(c.store.etcd_prefix, "/x");
    assert_string_equal(c.store.etcd_ca_file, "/ca");
    assert_string_equal(c.store.etcd_cert_file, "/c");
    assert_string_equal(c.store.etcd_key_file, "/k");
    assert_string_equal(c.store.dir, "/var/tmp/n1");
    assert_string_equal(c.cluster.node, "n-1.a_b");
    assert_int_equal(c.cluster.lease_ttl_ms, 3000);
    assert_string_equal(c.cluster.api_advertise, "https://n1:8080");
    conf_release(&c);
    /* defaults of the cluster keys */
    write_file(node, "[store]\ntype = etcd\netcd_endpoints = http://127.0.0.1:2379\n");
    assert_int_equal(conf_load(node, &c, err, sizeof(err)), 0);
    char host[256] = "";
    gethostname(host, sizeof(host));
    assert_string_equal(c.cluster.node, host);
    assert_int_equal(c.cluster.lease_ttl_ms, 5000);
    assert_string_equal(c.cluster.api_advertise, "http://127.0.0.1:8080");
    assert_string_equal(c.store.etcd_prefix, "/asgd");
    assert_null(c.store.etcd_ca_file);
    conf_release(&c);

    unlink(skip);
    unlink(node);
    rmdir(gdir);
    rmdir(dir);
    free(gdir);
    free(node);
    free(fa);
    free(fb);
    free(fc);
    free(fx);
    free(skip);
}

static void example_files(void **state)
{
    (void)state;
    static const char *const names[] = {"asgd.ini", "demo.ini", "node.ini"};
    const char *src = getenv("ASGD_SOURCE_DIR");
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char path[1024], err[512];
        snprintf(path, sizeof(path), "%s/examples/%s", src ? src : "..", names[i]);
        struct asgd_conf c;
        if (conf_load(path, &c, err, sizeof(err)) != 0)
            fail_msg("%s", err);
        if (i == 1) {
            assert_int_equal(c.groups[0].settings.min_size, 2);
            assert_int_equal(c.groups[0].settings.max_size, 5);
            assert_int_equal(c.groups[0].provider, CONF_PROVIDER_LOCAL);
            assert_non_null(c.groups[0].local.agent_args);
            /* make demo: the instances read their load from one file (scripts/demo load N) */
            assert_non_null(strstr(c.groups[0].local.agent_args, "--load file:"));
        }
        if (i == 2) { /* the many-groups layout: examples/groups/{batch,web,workers}.ini */
            assert_int_equal(c.n_groups, 3);
            assert_string_equal(c.groups[0].settings.name, "batch");
            assert_string_equal(c.groups[1].settings.name, "web");
            assert_string_equal(c.groups[2].settings.name, "workers");
        }
        conf_release(&c);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(defaults),          cmocka_unit_test(empty_file_and_defaults),
        cmocka_unit_test(every_key_is_read), cmocka_unit_test(bad_values),
        cmocka_unit_test(good_edge_values),  cmocka_unit_test(validate_group_for_the_api),
        cmocka_unit_test(default_store_dir), cmocka_unit_test(files),
        cmocka_unit_test(example_files),     cmocka_unit_test(node_file_and_groups_dir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
