/*
 * asgd - self-hosted Auto Scaling Groups.
 *
 *   asgd [run] -c FILE          MonitorS + ControllerASG (threads) + HTTP API/dashboard
 *   asgd monitor -c FILE        MonitorS alone, on every group's shared-memory fleet table
 *   asgd controller -c FILE     ControllerASG + HTTP API alone, on the same tables
 *   asgd status -c FILE [-g NAME|--all] [--json]   groups as the fleet tables and the store see
 * them asgd check-config -c FILE   validate and exit 0/1
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
    int man;           /* help-keys: roff */
    const char *group; /* status: -g NAME, the one group to show */
    int all;           /* status --all: {"groups": [...]} even for one group */
};

/* What `asgd status` reads: the files' groups and the node's store (each group's fleet table is
 * opened while its block is printed). */
struct status_view {
    struct asgd_conf conf;
    struct store *store;
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: asgd [run|monitor|controller|status|check-config] -c FILE [options]\n"
            "\n"
            "  run            MonitorS, ControllerASG and the HTTP API in one process (default)\n"
            "  monitor        MonitorS alone, for every group (pairs with 'asgd controller')\n"
            "  controller     ControllerASG and the HTTP API alone, for every group\n"
            "  status         print the groups of the files: settings, desired, every instance\n"
            "  check-config   validate FILE and exit 0 (valid) or 1\n"
            "  simulate       replay a demand trace through the policy in virtual time\n"
            "                 (asgd simulate --help for its options)\n"
            "  help-keys      every group key with defaults (--man: roff, --json: data)\n"
            "\n"
            "options:\n"
            "  -c, --config FILE     the config file (INI; see examples/asgd.ini)\n"
            "  -g, --group NAME      status: only this group of the files\n"
            "  --all                 status --json: {\"groups\": [...]} even for one group\n"
            "  --json                status: JSON output (one group: its object; several:\n"
            "                        {\"groups\": [...]} of those objects)\n"
            "  --log-level LEVEL     error, warn, info (default), debug\n"
            "  --log-format FMT      text, json (one object per line), journal, auto (default:\n"
            "                        journal under systemd, else text)\n"
            "  -h, --help            this text\n"
            "  -V, --version         print the version\n");
}

/* Reads the node file and every group file: status shows their groups. */
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
    return 0;
}

static void status_view_release(struct status_view *v)
{
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

/* -g NAME: the group of the files with that name, or an error naming it and listing them. */
static const struct group_conf *find_group(const struct asgd_conf *c, const char *name,
                                           const char *path, char *err, size_t errlen)
{
    for (size_t i = 0; i < c->n_groups; i++)
        if (strcmp(c->groups[i].settings.name, name) == 0)
            return &c->groups[i];
    int off = snprintf(err, errlen, "no group \"%s\" in %s (its groups:", name, path);
    for (size_t i = 0; i < c->n_groups && off >= 0 && (size_t)off < errlen; i++)
        off += snprintf(err + off, errlen - (size_t)off, "%s \"%s\"", i ? "," : "",
                        c->groups[i].settings.name);
    if (off >= 0 && (size_t)off < errlen)
        snprintf(err + off, errlen - (size_t)off,
                 "; groups created through the API: asgctl -g "
                 "NAME status)");
    return NULL;
}

/* One group as its store row and its fleet table see it: printed (human; after a blank line when
 * sep), or returned as a new JSON object in *json_out when json_out is not NULL (the caller owns
 * it). Fails, with err set and nothing printed, when the store has no row for the group (never
 * started). */
static int status_group(struct store *st, const struct asgd_conf *c, const struct group_conf *gc,
                        int sep, json_t **json_out, char *err, size_t errlen)
{
    struct group_settings g;
    if (store_get_settings(st, gc->settings.name, &g) != 0) {
        snprintf(err, errlen, "group \"%s\" has no state in \"%s\" (never started?)",
                 gc->settings.name, c->store.dir);
        return -1;
    }
    struct fleet *fleet = NULL;
    int frc = fleet_open(g.name, 0, 0, &fleet); /* attach: the size is the table's */
    size_t n = 0;
    struct fleet_slot *slots = NULL;
    if (frc == 0) {
        n = fleet_snapshot(fleet, NULL, 0);
        slots = calloc(n + 16, sizeof(*slots));
        if (slots == NULL) {
            fleet_close(fleet);
            snprintf(err, errlen, "group \"%s\": out of memory", g.name);
            return -1;
        }
        n = fleet_snapshot(fleet, slots, n + 16);
    }
    int64_t now = clk_wall_ms();
    int64_t hb_mon = fleet ? fleet_last_heartbeat(fleet, 0) : 0;
    int64_t hb_ctl = fleet ? fleet_last_heartbeat(fleet, 1) : 0;
    fleet_close(fleet);
    if (json_out != NULL) {
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
                            json_string(gc->provider == CONF_PROVIDER_EC2 ? "ec2" : "local"));
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
        *json_out = root;
    } else {
        printf("%sgroup        %s\n", sep ? "\n" : "", g.name);
        printf("size         min %d, max %d, desired %d\n", g.min_size, g.max_size,
               g.desired_capacity);
        printf("policy       %s\n", policy_type_name(g.policy.type));
        printf("termination  %s\n", g.termination_policy[0] ? g.termination_policy : "default");
        printf("suspended    %s\n", g.suspended_processes[0] ? g.suspended_processes : "none");
        printf("provider     %s\n", gc->provider == CONF_PROVIDER_EC2 ? "ec2" : "local");
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
    return 0;
}

/* Every group of the files, or the one -g names. JSON keeps the one-object shape of a node with
 * one group (scripts written for it go on working); several groups, or --all, print
 * {"groups": [...]} of the same objects. A group without state is reported on stderr, the
 * others are still printed, and the exit code is 1. */
static int cmd_status(const struct opts *o)
{
    struct status_view d;
    char err[1024];
    int rc = 1;
    json_t *groups = NULL;
    memset(&d, 0, sizeof(d));
    if (load_config(&d, o->config, err, sizeof(err)) != 0)
        goto fail;
    const struct group_conf *only = NULL;
    if (o->group) {
        only = find_group(&d.conf, o->group, o->config, err, sizeof(err));
        if (only == NULL)
            goto fail;
    } else if (d.conf.n_groups == 1) {
        only = &d.conf.groups[0];
    }
    /* status only reads: never create the state of a group that was not started */
    char *db = util_path_join(d.conf.store.dir, "asgd.db");
    int exists = db != NULL && access(db, F_OK) == 0;
    free(db);
    if (!exists) {
        if (only)
            snprintf(err, sizeof(err), "group \"%s\" has no state in \"%s\" (never started?)",
                     only->settings.name, d.conf.store.dir);
        else
            snprintf(err, sizeof(err), "no state in \"%s\" (never started?)", d.conf.store.dir);
        goto fail;
    }
    if (store_open(d.conf.store.dir, &d.store, err, sizeof(err)) != 0)
        goto fail;
    if (o->json && only && !o->all) {
        json_t *root = NULL;
        if (status_group(d.store, &d.conf, only, 0, &root, err, sizeof(err)) != 0)
            goto fail;
        char *s = json_dumps(root, JSON_INDENT(2));
        if (s)
            printf("%s\n", s);
        free(s);
        json_decref(root);
        rc = 0;
        goto out;
    }
    if (o->json)
        groups = json_array();
    rc = 0;
    size_t first = only ? (size_t)(only - d.conf.groups) : 0;
    size_t last = only ? first + 1 : d.conf.n_groups;
    int printed = 0;
    for (size_t i = first; i < last; i++) {
        json_t *one = NULL;
        if (status_group(d.store, &d.conf, &d.conf.groups[i], printed, o->json ? &one : NULL, err,
                         sizeof(err)) != 0) {
            fprintf(stderr, "asgd: %s\n", err);
            rc = 1;
            continue;
        }
        printed = 1;
        if (one)
            json_array_append_new(groups, one);
    }
    if (groups) {
        json_t *root = json_pack("{s:O}", "groups", groups);
        char *s = root ? json_dumps(root, JSON_INDENT(2)) : NULL;
        if (s)
            printf("%s\n", s);
        free(s);
        json_decref(root);
    }
    goto out;
fail:
    fprintf(stderr, "asgd: %s\n", err);
out:
    json_decref(groups);
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
        } else if ((strcmp(a, "-g") == 0 || strcmp(a, "--group") == 0) && i + 1 < argc) {
            o.group = argv[++i];
        } else if (strncmp(a, "--group=", 8) == 0) {
            o.group = a + 8;
        } else if (strcmp(a, "--all") == 0) {
            o.all = 1;
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
    if ((o.group || o.all) && cmd->fn != cmd_status) {
        fprintf(stderr, "asgd: %s is an option of status only\n", o.group ? "-g" : "--all");
        usage(stderr);
        return 2;
    }
    if (o.group && o.all) {
        fprintf(stderr, "asgd: status: -g NAME and --all do not go together\n");
        usage(stderr);
        return 2;
    }
    if (o.group && o.group[0] == '\0') {
        fprintf(stderr, "asgd: status: -g needs a group name\n");
        usage(stderr);
        return 2;
    }
    if (cmd->needs_config && o.config == NULL) {
        fprintf(stderr, "asgd: %s needs -c FILE\n", cmd->name);
        usage(stderr);
        return 2;
    }
    return cmd->fn(&o);
}
