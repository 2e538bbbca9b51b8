/*
 * asgd - self-hosted Auto Scaling Groups.
 *
 *   asgd [run] -c FILE          MonitorS + ControllerASG (threads) + HTTP API/dashboard
 *   asgd monitor -c FILE        MonitorS alone, on the group's shared-memory fleet table
 *   asgd controller -c FILE     ControllerASG + HTTP API alone, on the same table
 *   asgd status -c FILE [--json]   the group as the fleet table and the store see it
 *   asgd check-config -c FILE   validate and exit 0/1
 *
 * One function per subcommand behind a table (git's cmd_* style). The daemon
 * blocks SIGTERM/SIGINT in every thread and waits for them in main with
 * sigwait(), so shutdown runs in ordinary code, not in a signal handler.
 * Instances are never touched by a shutdown: they are machines, and the next
 * asgd adopts them.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "asgd/conf.h"
#include "asgd/daemon.h"
#include "asgd/reload.h"
#include "common/cfg.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/sdnotify.h"
#include "common/util.h"
#include "controller/ctl.h"
#include "fleet/fleet.h"
#include "group/group_table.h"
#include "http/http.h"
#include "monitor/mon.h"
#include "notify/notify.h"
#include "provider/ec2.h"
#include "provider/local.h"
#include "provider/provider.h"
#include "sim/sim_cli.h"
#include "store/store.h"
#include "tls/tls.h"

#include "common/banned.h"

#define ROLE_MONITOR    1
#define ROLE_CONTROLLER 2

struct opts {
    const char *config;
    int json;
    const char *log_level;
    const char *log_format;
    int man; /* help-keys: roff */
};

/* Everything a running asgd owns, released in reverse order by daemon_release(). */
struct daemon {
    struct asgd_conf conf;
    struct group_conf *gc;      /* the group this process runs: the first of conf.groups (main
                                   thread only: a reload replaces conf.groups) */
    char group[GROUP_NAME_MAX]; /* its name, for every thread */
    pthread_mutex_t mu;         /* guards conf.groups (reload.h) */
    char *agent_token, *api_token;
    char *agent_token_file; /* the file agents read (configured or generated) */
    char *agent_path;
    struct store *store;
    struct fleet *fleet;
    struct provider *prov;
    struct ctl *ctl;
    struct mon *mon;
    struct http_server *http;
    struct store *http_store;  /* the HTTP thread's own handle */
    struct tls_conf *mon_tls;  /* [monitor] tls_*: MonitorS, the controller's agent calls */
    struct notify *notify;     /* the controller's webhooks ([notify]) */
    struct reload_ctl *reload; /* the controller's SIGHUP, POST /api/v1/reload (reload.h) */
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: asgd [run|monitor|controller|status|check-config] -c FILE [options]\n"
            "\n"
            "  run            MonitorS, ControllerASG and the HTTP API in one process (default)\n"
            "  monitor        MonitorS alone (pairs with 'asgd controller' on the same group)\n"
            "  controller     ControllerASG and the HTTP API alone\n"
            "  status         print the group: settings, desired, every instance\n"
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

/* Reads the node file and every group file; this process runs the first group. */
static int load_config(struct daemon *d, const char *path, char *err, size_t errlen)
{
    int rc = conf_load(path, &d->conf, err, errlen);
    if (rc != 0)
        return rc;
    if (d->conf.n_groups == 0) {
        snprintf(err, errlen, "%s: no group in the files (groups from etcd are not run yet)", path);
        return -1;
    }
    d->gc = &d->conf.groups[0];
    snprintf(d->group, sizeof(d->group), "%s", d->gc->settings.name);
    return 0;
}

/* monitorc next to our own binary unless [local] agent says otherwise. */
static char *resolve_agent(const struct group_conf *conf)
{
    if (conf->local.agent)
        return strdup(conf->local.agent);
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n <= 0)
        return strdup("monitorc");
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    if (slash)
        *slash = '\0';
    return util_path_join(self, "monitorc");
}

static int mkdir_p(const char *path)
{
    char *tmp = strdup(path);
    if (tmp == NULL)
        return -1;
    for (char *p = tmp + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(tmp, 0755) != 0 && errno != EEXIST) {
                free(tmp);
                return -1;
            }
            *p = '/';
        }
    }
    int rc = mkdir(tmp, 0755) != 0 && errno != EEXIST ? -1 : 0;
    free(tmp);
    return rc;
}

static void daemon_release(struct daemon *d)
{
    http_free(d->http);
    store_close(d->http_store);
    ctl_free(d->ctl);
    notify_free(d->notify); /* after the controller, which feeds it */
    reload_ctl_free(d->reload);
    mon_free(d->mon);
    tls_conf_free(d->mon_tls); /* after the monitor, which borrowed it */
    provider_free(d->prov);
    fleet_close(d->fleet);
    store_close(d->store);
    conf_release(&d->conf);
    free(d->agent_token);
    free(d->api_token);
    free(d->agent_token_file);
    free(d->agent_path);
    memset(d, 0, sizeof(*d));
}

/* Opens the store and seeds the group as `asgd run` does; the store's settings are the group's. */
static int open_store(struct daemon *d, char *err, size_t errlen)
{
    if (mkdir_p(d->conf.store.dir) != 0) {
        snprintf(err, errlen, "cannot create state directory \"%s\": %s", d->conf.store.dir,
                 strerror(errno));
        return -1;
    }
    if (store_open(d->conf.store.dir, &d->store, err, errlen) != 0)
        return -1;
    if (daemon_seed_group(d->store, d->gc, err, errlen) != 0)
        return -1;
    if (store_get_settings(d->store, d->group, &d->gc->settings) != 0) {
        snprintf(err, errlen, "cannot read the settings of group \"%s\": %s", d->group,
                 store_errmsg(d->store));
        return -1;
    }
    return 0;
}

static int load_tokens(struct daemon *d, char *err, size_t errlen)
{
    if (d->conf.monitor.token_file)
        d->agent_token_file = strdup(d->conf.monitor.token_file);
    else
        d->agent_token_file = util_path_join(d->conf.store.dir, "agent.token");
    if (d->agent_token_file == NULL ||
        util_token_file(d->agent_token_file, d->conf.monitor.token_file == NULL, &d->agent_token,
                        err, errlen) != 0)
        return -1;
    char *api_file = d->conf.api.token_file ? strdup(d->conf.api.token_file)
                                            : util_path_join(d->conf.store.dir, "api.token");
    if (api_file == NULL)
        return -1;
    int rc = util_token_file(api_file, d->conf.api.token_file == NULL, &d->api_token, err, errlen);
    free(api_file);
    return rc;
}

static int make_provider(struct daemon *d, char *err, size_t errlen)
{
    if (d->gc->provider == CONF_PROVIDER_EC2) {
        return provider_ec2_new(&d->gc->ec2, d->gc->settings.name, d->conf.monitor.agent_port,
                                d->conf.monitor.advertise ? d->conf.monitor.advertise
                                                          : d->conf.monitor.listen,
                                d->agent_token, &d->prov, err, errlen);
    }
    d->agent_path = resolve_agent(d->gc);
    if (d->agent_path == NULL)
        return -1;
    struct local_settings ls = {
        .group = d->gc->settings.name,
        .state_dir = d->gc->local.dir,
        .agent_path = d->agent_path,
        .agent_args = d->gc->local.agent_args,
        .address_base = d->gc->local.address_base,
        .agent_port = d->conf.monitor.agent_port,
        .monitor_address =
            d->conf.monitor.advertise ? d->conf.monitor.advertise : d->conf.monitor.listen,
        .token_file = d->agent_token_file,
        .boot_delay_ms = d->gc->local.boot_delay_ms,
        .keep_logs = d->gc->local.keep_logs,
    };
    return provider_local_new(&ls, &d->prov, err, errlen);
}

static int start_monitor(struct daemon *d, char *err, size_t errlen)
{
    struct mon_settings ms;
    mon_settings_init(&ms);
    ms.listen = d->conf.monitor.listen;
    ms.token = d->agent_token;
    ms.accept_unknown = d->conf.monitor.accept_unknown;
    ms.interval_ms = d->gc->settings.health.interval_ms;
    ms.timeout_ms = d->gc->settings.health.timeout_ms;
    ms.rise = (uint32_t)d->gc->settings.health.healthy_threshold;
    ms.fall = (uint32_t)d->gc->settings.health.unhealthy_threshold;
    ms.tls = d->mon_tls;
    if (mon_new(&ms, d->fleet, &d->mon, err, errlen) != 0)
        return -1;
    if (mon_start(d->mon) != 0) {
        snprintf(err, errlen, "cannot start MonitorS on %s: %s", d->conf.monitor.listen,
                 mon_errmsg(d->mon));
        return -1;
    }
    log_info("MonitorS listening on %s, polling every %" PRId64 " ms%s", d->conf.monitor.listen,
             d->gc->settings.health.interval_ms,
             !d->mon_tls                      ? ""
             : !tls_conf_has_cert(d->mon_tls) ? " (clear text; agents polled over TLS)"
             : tls_conf_has_ca(d->mon_tls)    ? " (TLS, agent certificates required)"
                                              : " (TLS)");
    return 0;
}

/*
 * The HTTP API's view of this node: the one group it runs today.
 * MINIMAL (helper A, to keep the tree building): the coordinator replaces it
 * with the many-groups node. Called on the HTTP thread; the fleet and ctl
 * live as long as the daemon, so nothing is taken or put.
 */
static int api_group_get(void *arg, const char *name, struct http_group_ref *out)
{
    struct daemon *d = arg;
    if (strcmp(name, d->group) != 0)
        return -ENOENT;
    out->fleet = d->fleet;
    out->ctl = d->ctl;
    return 0;
}

static int api_reload(void *arg, int64_t *generation)
{
    struct daemon *d = arg;
    return reload_ctl_request(d->reload, generation);
}

static json_t *api_reload_status(void *arg)
{
    struct daemon *d = arg;
    return reload_ctl_status(d->reload);
}

static const struct http_node_ops api_ops = {
    .group_get = api_group_get,
    .reload = api_reload,
    .reload_status = api_reload_status,
};

/* ---- the controller's reload (reload.h without a node: the controller reads the store) ---- */

static int reload_open_store(void *arg, struct store **out, char *err, size_t errlen)
{
    struct daemon *d = arg;
    return store_open(d->conf.store.dir, out, err, errlen) == 0 ? 0 : -1;
}

static int reload_seed(void *arg, struct store *st, const struct group_conf *gc, char *err,
                       size_t errlen)
{
    (void)arg;
    return daemon_seed_group(st, gc, err, errlen);
}

/* The reload must not remove the group this process runs (it cannot stop it, and the
   store's copy would go while the controller still writes it). */
static int reload_check(void *arg, const struct asgd_conf *nc, char *err, size_t errlen)
{
    struct daemon *d = arg;
    for (size_t i = 0; i < nc->n_groups; i++)
        if (strcmp(nc->groups[i].settings.name, d->group) == 0)
            return 0;
    snprintf(err, errlen,
             "%s: group \"%s\" is gone from the files, but this asgd controller runs it: "
             "restart it to run another group",
             nc->path ? nc->path : "the config file", d->group);
    return -1;
}

static int start_reload(struct daemon *d)
{
    struct reload_host rh = {
        .conf = &d->conf,
        .mu = &d->mu,
        .open_store = reload_open_store,
        .seed_group = reload_seed,
        .check = reload_check,
        .arg = d,
    };
    return reload_ctl_new(&rh, &d->reload);
}

static int start_controller(struct daemon *d, char *err, size_t errlen)
{
    char lc[24];
    daemon_launch_config(d->gc, lc, sizeof(lc)); /* as `asgd run` would launch the group */
    if (notify_new(0, &d->notify) != 0 || start_reload(d) != 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    struct ctl_deps deps = {
        .group = d->gc->settings.name,
        .health_from_provider = strcmp(d->gc->settings.health.type, "ec2") == 0,
        .describe_every_ms = d->gc->provider == CONF_PROVIDER_EC2 ? 15000 : 2000,
        .fleet = d->fleet,
        .store = d->store,
        .provider = d->prov,
        .agent_tls = d->mon_tls,
        .launch_config = lc,
        .on_activity = notify_on_activity,
        .on_activity_arg = d->notify,
    };
    if (ctl_new(&deps, &d->ctl, err, errlen) != 0)
        return -1;
    /* Reconcile before anything launches: adopt what runs, forget what vanished. */
    for (int attempt = 0;; attempt++) {
        int rc = ctl_reconcile(d->ctl, clk_wall_ms());
        if (rc == 0)
            break;
        if (rc == PROV_EFATAL)
            break; /* the controller logged it once and backs off; it never forgets instances */
        if (attempt >= 4) {
            /* start anyway: the loop retries with backoff and never forgets instances */
            log_error("start-up reconciliation of group \"%s\" failed: %s; continuing, will "
                      "retry",
                      d->gc->settings.name, provider_errmsg(d->prov));
            break;
        }
        struct timespec ts = {0, 200 * 1000000L};
        nanosleep(&ts, NULL);
    }
    if (ctl_start(d->ctl) != 0) {
        snprintf(err, errlen, "cannot start the controller thread");
        return -1;
    }
    char serr[512];
    if (store_open(d->conf.store.dir, &d->http_store, serr, sizeof serr) != 0) {
        snprintf(err, errlen, "http: cannot open the store: %s", serr);
        return -1;
    }
    struct http_deps hd = {
        .listen = d->conf.api.listen,
        .token = d->api_token,
        .store = d->http_store,
        .ops = &api_ops,
        .ops_arg = d,
        .tls_cert_file = d->conf.api.tls_cert_file,
        .tls_key_file = d->conf.api.tls_key_file,
    };
    if (http_start(&hd, &d->http, err, errlen) != 0)
        return -1;
    log_info("HTTP API and dashboard on %s://%s/", d->conf.api.tls_cert_file ? "https" : "http",
             d->conf.api.listen);
    return 0;
}

/* The monitor process: applies the health settings of the store when they changed. */
static void monitor_follow_settings(struct daemon *d)
{
    struct group_settings g;
    if (store_get_settings(d->store, d->gc->settings.name, &g) != 0)
        return;
    if (memcmp(&g.health, &d->gc->settings.health, sizeof(g.health)) == 0)
        return;
    struct mon_group_settings gs = {
        .interval_ms = g.health.interval_ms,
        .timeout_ms = g.health.timeout_ms,
        .rise = (uint32_t)g.health.healthy_threshold,
        .fall = (uint32_t)g.health.unhealthy_threshold,
        .registered_only = strcmp(g.health.type, "ec2") == 0,
    };
    if (mon_set_group(d->mon, "", &gs) == 0) {
        log_info("group \"%s\": health settings changed: polling every %" PRId64 " ms", g.name,
                 g.health.interval_ms);
        d->gc->settings.health = g.health;
    }
}

static int run_daemon(const struct opts *o, int roles)
{
    struct daemon d;
    char err[1024];
    int rc = 1;
    memset(&d, 0, sizeof(d));
    pthread_mutex_init(&d.mu, NULL);

    /* Block the stop signals before any thread exists; main waits for them. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);
    umask(077); /* database, pid files, agent logs, tokens: the operator's alone */

    if (load_config(&d, o->config, err, sizeof(err)) != 0)
        goto fail;
    log_set_tag(roles == ROLE_MONITOR      ? "monitor"
                : roles == ROLE_CONTROLLER ? "controller"
                                           : "asgd");
    if (mkdir_p(d.conf.store.dir) != 0) {
        snprintf(err, sizeof(err), "cannot create state directory \"%s\": %s", d.conf.store.dir,
                 strerror(errno));
        goto fail;
    }
    if (mkdir_p(d.gc->local.dir) != 0) {
        snprintf(err, sizeof(err), "cannot create directory \"%s\": %s", d.gc->local.dir,
                 strerror(errno));
        goto fail;
    }
    if (load_tokens(&d, err, sizeof(err)) != 0)
        goto fail;
    if (open_store(&d, err, sizeof(err)) != 0)
        goto fail;
    if (group_table_open(d.gc->settings.name, d.gc->settings.name, d.gc->settings.max_size,
                         &d.fleet, err, sizeof(err)) != 0)
        goto fail;
    if (roles & ROLE_CONTROLLER) {
        if (make_provider(&d, err, sizeof(err)) != 0)
            goto fail;
    }
    /* the monitor's, and the controller's for its own agent calls (drain, attach), as in
       `asgd run` */
    const struct conf_monitor *cm = &d.conf.monitor;
    struct tls_files tf = {cm->tls_ca_file, cm->tls_cert_file, cm->tls_key_file,
                           cm->tls_server_name};
    if (tls_conf_new_optional(&tf, &d.mon_tls, err, sizeof(err)) != 0)
        goto fail;
    if ((roles & ROLE_MONITOR) && start_monitor(&d, err, sizeof(err)) != 0)
        goto fail;
    if ((roles & ROLE_CONTROLLER) && start_controller(&d, err, sizeof(err)) != 0)
        goto fail;
    log_info("asgd %s running group \"%s\" (provider %s, min %d, max %d)", ASGD_VERSION,
             d.gc->settings.name, d.gc->provider == CONF_PROVIDER_EC2 ? "ec2" : "local",
             d.gc->settings.min_size, d.gc->settings.max_size);
    /* Type=notify units may run the roles apart too (no watchdog here: asgd run has it) */
    sdn_notifyf("READY=1\nSTATUS=%s of group \"%s\"",
                roles == ROLE_MONITOR ? "MonitorS" : "ControllerASG", d.gc->settings.name);

    int sig = 0;
    for (;;) {
        /* a monitor alone follows the group's health settings in the store (the API of the
           controller process changes them) once a second */
        struct timespec tick = {1, 0};
        sig = sigtimedwait(&stop, NULL, &tick);
        if (sig == SIGHUP) {
            /* the controller applies the files to the store; the monitor follows the store */
            daemon_sighup(d.reload, d.mon_tls, d.http);
            d.gc = conf_find_group(&d.conf, d.group); /* reload_check() kept it */
            continue;
        }
        if (sig > 0)
            break;
        if (roles == ROLE_MONITOR && d.mon)
            monitor_follow_settings(&d);
    }
    log_info("received signal %d, stopping (instances keep running)", sig);
    sdn_notify("STOPPING=1");
    rc = 0;
    goto out;
fail:
    log_error("%s", err);
out:
    pthread_mutex_destroy(&d.mu); /* no thread takes it: reloads run on this one */
    daemon_release(&d);
    return rc;
}

/* The node: every group of the files and the store, or in a cluster the groups it owns. */
static int cmd_run(const struct opts *o)
{
    return daemon_run(o->config);
}

static int cmd_monitor(const struct opts *o)
{
    return run_daemon(o, ROLE_MONITOR);
}

static int cmd_controller(const struct opts *o)
{
    return run_daemon(o, ROLE_CONTROLLER);
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
    struct daemon d;
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
    daemon_release(&d);
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
