/*
 * asgd - self-hosted Auto Scaling Groups.
 *
 *   asgd [run] -c FILE          MonitorS + ControllerASG (threads) + HTTP API/dashboard
 *   asgd monitor -c FILE        MonitorS alone, on every group's shared-memory fleet table
 *   asgd controller -c FILE     ControllerASG + HTTP API alone, on the same tables
 *   asgd status -c FILE [--json]   the group as the fleet table and the store see it
 *   asgd check-config -c FILE   validate and exit 0/1
 *
 * One function per subcommand behind a table (git's cmd_* style). run,
 * monitor and controller are one daemon (daemon.h) playing both roles or one
 * of them for every group of the node. The daemon blocks SIGTERM/SIGINT in every thread and waits
 * for them in main with sigwait(), so shutdown runs in ordinary code, not in a signal handler.
 * Instances are never touched by a shutdown: they are machines, and the next
 * asgd adopts them.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "asgd/conf.h"
#include "asgd/daemon.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/sdnotify.h"
#include "common/util.h"
#include "fleet/fleet.h"
#include "sim/sim_cli.h"
#include "store/store.h"
#include "tls/tls.h"

#include "common/banned.h"

struct opts {
    const char *config;
    int json;
    const char *log_level;
    const char *log_format;
    int man; /* help-keys: roff */
};

/* What `asgd status` reads: the files' first group, its store and its fleet table. */
struct status_view {
    struct asgd_conf conf;
    struct group_conf *gc; /* the first of conf.groups */
    struct store *store;
    struct fleet *fleet;
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: asgd [run|monitor|controller|status|check-config] -c FILE [options]\n"
            "\n"
            "  run            MonitorS, ControllerASG and the HTTP API in one process (default)\n"
            "  monitor        MonitorS alone, for every group (pairs with 'asgd controller')\n"
            "  controller     ControllerASG and the HTTP API alone, for every group\n"
            "  status         print the first group: settings, desired, every instance\n"
            "  check-config   validate FILE and exit 0 (valid) or 1\n"
            "  simulate       replay a demand trace through the policy in virtual time\n"
            "                 (asgd simulate --help for its options)\n"
            "  help-keys      every group key with defaults (--man: roff, --json: data)\n"
            "\n"
            "options:\n"
            "  -c, --config FILE     the config file (INI; see examples/asgd.ini)\n"
            "  --json                status: JSON output\n"
            "  --log-level LEVEL     error, warn, info (default), debug\n"
            "  --log-format FMT      text, json (one object per line), journal, auto (default:\n"
            "                        journal under systemd, else text)\n"
            "  -h, --help            this text\n"
            "  -V, --version         print the version\n");
}

/* Reads the node file and every group file; status shows the first group. */
static int load_config(struct status_view *v, const char *path, char *err, size_t errlen)
{
    int rc = conf_load(path, &v->conf, err, errlen);
    if (rc != 0)
        return rc;
    if (v->conf.n_groups == 0) {
        snprintf(err, errlen, "%s: no group in the files (groups from etcd are not shown yet)",
                 path);
        return -1;
    }
    v->gc = &v->conf.groups[0];
    return 0;
}

static void status_view_release(struct status_view *v)
{
    fleet_close(v->fleet);
    store_close(v->store);
    conf_release(&v->conf);
    memset(v, 0, sizeof(*v));
}

/* The node: every group of the files and the store, or in a cluster the groups it owns. */
static int cmd_run(const struct opts *o)
{
    return daemon_run(o->config);
}

/* The two-process mode: the same node, each process playing one role for every group. */
static int cmd_monitor(const struct opts *o)
{
    log_set_tag("monitor");
    return daemon_run_roles(o->config, DAEMON_ROLE_MONITOR);
}

static int cmd_controller(const struct opts *o)
{
    log_set_tag("controller");
    return daemon_run_roles(o->config, DAEMON_ROLE_CONTROLLER);
}

/* The TLS files of [monitor] and [api] load (what asgd would refuse to start with). */
static int check_tls_files(const struct asgd_conf *c, char *err, size_t errlen)
{
    const struct conf_monitor *cm = &c->monitor;
    struct tls_files m = {cm->tls_ca_file, cm->tls_cert_file, cm->tls_key_file,
                          cm->tls_server_name};
    struct tls_files a = {NULL, c->api.tls_cert_file, c->api.tls_key_file, NULL};
    struct tls_conf *t = NULL;
    if (tls_conf_new_optional(&m, &t, err, errlen) != 0)
        return -1;
    tls_conf_free(t);
    t = NULL;
    if (tls_conf_new_optional(&a, &t, err, errlen) != 0)
        return -1;
    tls_conf_free(t);
    return 0;
}

static int cmd_check_config(const struct opts *o)
{
    struct asgd_conf c;
    char err[1024];
    int rc = conf_load(o->config, &c, err, sizeof(err));
    if (rc == 0)
        rc = check_tls_files(&c, err, sizeof(err)); /* the message names the file */
    if (rc != 0) {
        fprintf(stderr, "asgd: %s\n", err);
    } else {
        printf("%s: ok (node \"%s\", store %s, %zu group%s)\n", o->config, c.cluster.node,
               c.store.type == CONF_STORE_ETCD ? "etcd" : "sqlite", c.n_groups,
               c.n_groups == 1 ? "" : "s");
        for (size_t i = 0; i < c.n_groups; i++) {
            const struct group_conf *g = &c.groups[i];
            printf("  group \"%s\": min %d, max %d, desired %d, provider %s%s%s (%s)\n",
                   g->settings.name, g->settings.min_size, g->settings.max_size,
                   g->settings.desired_capacity, g->provider == CONF_PROVIDER_EC2 ? "ec2" : "local",
                   g->provider == CONF_PROVIDER_EC2 ? "" : ", addresses from ",
                   g->provider == CONF_PROVIDER_EC2 ? "" : g->local.address_base,
                   g->path ? g->path : o->config);
        }
    }
    conf_release(&c);
    return rc == 0 ? 0 : 1;
}

static void format_time(int64_t ms, char *buf, size_t size)
{
    if (ms <= 0) {
        snprintf(buf, size, "-");
        return;
    }
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int cmd_status(const struct opts *o)
{
    struct status_view d;
    char err[1024];
    int rc = 1;
    memset(&d, 0, sizeof(d));
    if (load_config(&d, o->config, err, sizeof(err)) != 0)
        goto fail;
    /* status only reads: never create the state of a group that was not started */
    char *db = util_path_join(d.conf.store.dir, "asgd.db");
    int exists = db != NULL && access(db, F_OK) == 0;
    free(db);
    if (!exists) {
        snprintf(err, sizeof(err), "group \"%s\" has no state in \"%s\" (never started?)",
                 d.gc->settings.name, d.conf.store.dir);
        goto fail;
    }
    if (store_open(d.conf.store.dir, &d.store, err, sizeof(err)) != 0)
        goto fail;
    struct group_settings g;
    if (store_get_settings(d.store, d.gc->settings.name, &g) != 0) {
        snprintf(err, sizeof(err), "group \"%s\" has no state in \"%s\" (never started?)",
                 d.gc->settings.name, d.conf.store.dir);
        goto fail;
    }
    int frc = fleet_open(g.name, 0, 0, &d.fleet); /* attach: the size is the table's */
    size_t n = 0;
    struct fleet_slot *slots = NULL;
    if (frc == 0) {
        n = fleet_snapshot(d.fleet, NULL, 0);
        slots = calloc(n + 16, sizeof(*slots));
        if (slots == NULL)
            goto fail;
        n = fleet_snapshot(d.fleet, slots, n + 16);
        if (n > 0 && slots == NULL)
            n = 0;
    }
    int64_t now = clk_wall_ms();
    int64_t hb_mon = d.fleet ? fleet_last_heartbeat(d.fleet, 0) : 0;
    int64_t hb_ctl = d.fleet ? fleet_last_heartbeat(d.fleet, 1) : 0;
    if (o->json) {
        json_t *root = json_object();
        json_object_set_new(root, "group", json_string(g.name));
        json_object_set_new(root, "min_size", json_integer(g.min_size));
        json_object_set_new(root, "max_size", json_integer(g.max_size));
        json_object_set_new(root, "desired_capacity", json_integer(g.desired_capacity));
        json_object_set_new(root, "policy", json_string(policy_type_name(g.policy.type)));
        json_t *gj = group_settings_to_json(&g); /* the lists in the API's form */
        json_object_set(root, "termination_policy", json_object_get(gj, "termination_policy"));
        json_object_set(root, "suspended_processes", json_object_get(gj, "suspended_processes"));
        json_decref(gj);
        json_object_set_new(root, "provider",
                            json_string(d.gc->provider == CONF_PROVIDER_EC2 ? "ec2" : "local"));
        json_object_set_new(root, "monitor_alive",
                            json_boolean(hb_mon > 0 && now - hb_mon < 10000));
        json_object_set_new(root, "controller_alive",
                            json_boolean(hb_ctl > 0 && now - hb_ctl < 10000));
        json_t *arr = json_array();
        for (size_t i = 0; i < n; i++) {
            json_t *it = json_object();
            json_object_set_new(it, "id", json_string(slots[i].id));
            json_object_set_new(it, "address", json_string(slots[i].address));
            json_object_set_new(it, "lifecycle",
                                json_string(fleet_lifecycle_name(slots[i].lifecycle)));
            json_object_set_new(it, "health", json_string(fleet_health_name(slots[i].health)));
            json_object_set_new(it, "load",
                                slots[i].load >= 0 ? json_real(slots[i].load) : json_null());
            json_object_set_new(it, "launched_at_ms", json_integer(slots[i].launched_at_ms));
            json_object_set_new(it, "pid", json_integer(slots[i].pid));
            json_object_set_new(it, "registered", json_boolean(slots[i].registered));
            json_object_set_new(it, "seed_protocol", json_boolean(slots[i].seed_protocol));
            json_object_set_new(it, "app_healthy", json_boolean(slots[i].app_healthy));
            json_object_set_new(it, "adopted", json_boolean(slots[i].adopted));
            json_object_set_new(it, "protected", json_boolean(slots[i].protect));
            json_object_set_new(it, "hook_deadline_ms", json_integer(slots[i].hook_deadline_ms));
            json_array_append_new(arr, it);
        }
        json_object_set_new(root, "instances", arr);
        char *s = json_dumps(root, JSON_INDENT(2));
        if (s)
            printf("%s\n", s);
        free(s);
        json_decref(root);
    } else {
        printf("group        %s\n", g.name);
        printf("size         min %d, max %d, desired %d\n", g.min_size, g.max_size,
               g.desired_capacity);
        printf("policy       %s\n", policy_type_name(g.policy.type));
        printf("termination  %s\n", g.termination_policy[0] ? g.termination_policy : "default");
        printf("suspended    %s\n", g.suspended_processes[0] ? g.suspended_processes : "none");
        printf("provider     %s\n", d.gc->provider == CONF_PROVIDER_EC2 ? "ec2" : "local");
        printf("monitor      %s\n", hb_mon > 0 && now - hb_mon < 10000 ? "alive" : "not running");
        printf("controller   %s\n", hb_ctl > 0 && now - hb_ctl < 10000 ? "alive" : "not running");
        printf("\n%-28s %-22s %-16s %-10s %6s  %-20s %-7s %s\n", "ID", "ADDRESS", "LIFECYCLE",
               "HEALTH", "LOAD", "LAUNCHED", "PID", "PROTECTED");
        for (size_t i = 0; i < n; i++) {
            char when[32], load[16];
            format_time(slots[i].launched_at_ms, when, sizeof(when));
            if (slots[i].load >= 0)
                snprintf(load, sizeof(load), "%.1f", slots[i].load);
            else
                snprintf(load, sizeof(load), "-");
            printf("%-28s %-22s %-16s %-10s %6s  %-20s %-7d %s\n", slots[i].id, slots[i].address,
                   fleet_lifecycle_name(slots[i].lifecycle), fleet_health_name(slots[i].health),
                   load, when, (int)slots[i].pid, slots[i].protect ? "yes" : "");
        }
        if (n == 0)
            printf("(no instances)\n");
    }
    free(slots);
    rc = 0;
    goto out;
fail:
    fprintf(stderr, "asgd: %s\n", err);
out:
    status_view_release(&d);
    return rc;
}

/* The group keys of asgd.ini(5), from the one key table (--man: roff, for the build). */
static int cmd_help_keys(const struct opts *o)
{
    if (o->json)
        return group_keys_print_json(stdout) == 0 ? 0 : 1;
    group_keys_print(stdout, o->man);
    return 0;
}

struct cmd {
    const char *name;
    int (*fn)(const struct opts *o);
    int needs_config;
};

static const struct cmd commands[] = {
    {"run", cmd_run, 1},
    {"monitor", cmd_monitor, 1},
    {"controller", cmd_controller, 1},
    {"status", cmd_status, 1},
    {"check-config", cmd_check_config, 1},
    {"help-keys", cmd_help_keys, 0},
};

int main(int argc, char **argv)
{
    struct opts o = {0};
    sdn_init(); /* before any thread; local instances must not inherit NOTIFY_SOCKET */
    const struct cmd *cmd = &commands[0];
    int i = 1;
    /* simulate has options of its own (src/sim/sim_cli.c) */
    if (argc > 1 && strcmp(argv[1], "simulate") == 0)
        return sim_cli_main(argc - 1, argv + 1);
    if (i < argc && argv[i][0] != '-') {
        cmd = NULL;
        for (size_t k = 0; k < sizeof(commands) / sizeof(commands[0]); k++)
            if (strcmp(argv[i], commands[k].name) == 0)
                cmd = &commands[k];
        if (cmd == NULL) {
            fprintf(stderr, "asgd: unknown command \"%s\"\n", argv[i]);
            usage(stderr);
            return 2;
        }
        i++;
    }
    for (; i < argc; i++) {
        const char *a = argv[i];
        if ((strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) && i + 1 < argc) {
            o.config = argv[++i];
        } else if (strncmp(a, "--config=", 9) == 0) {
            o.config = a + 9;
        } else if (strcmp(a, "--man") == 0) {
            o.man = 1;
        } else if (strcmp(a, "--json") == 0) {
            o.json = 1;
        } else if (strcmp(a, "--log-level") == 0 && i + 1 < argc) {
            o.log_level = argv[++i];
        } else if (strcmp(a, "--log-format") == 0 && i + 1 < argc) {
            o.log_format = argv[++i];
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "-V") == 0 || strcmp(a, "--version") == 0) {
            printf("asgd %s\n", ASGD_VERSION);
            return 0;
        } else {
            fprintf(stderr, "asgd: unknown or incomplete option \"%s\"\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (o.log_level) {
        enum log_level lvl;
        if (log_level_parse(o.log_level, &lvl) != 0) {
            fprintf(stderr, "asgd: bad --log-level \"%s\" (error, warn, info, debug)\n",
                    o.log_level);
            return 2;
        }
        log_set_level(lvl);
    }
    enum log_format lfmt = LOG_FMT_AUTO;
    if (o.log_format && log_format_parse(o.log_format, &lfmt) != 0) {
        fprintf(stderr, "asgd: bad --log-format \"%s\" (text, json, journal, auto)\n",
                o.log_format);
        return 2;
    }
    if (log_set_format(lfmt) != 0)
        fprintf(stderr, "asgd: --log-format journal: no journal socket; logging text lines\n");
    if (cmd->needs_config && o.config == NULL) {
        fprintf(stderr, "asgd: %s needs -c FILE\n", cmd->name);
        usage(stderr);
        return 2;
    }
    return cmd->fn(&o);
}
