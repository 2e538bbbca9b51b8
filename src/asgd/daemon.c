/*
 * daemon.c - `asgd run` (see daemon.h): the node file, the groups, the store,
 * the cluster and the HTTP API, wired together. daemon_int.h says how the
 * daemon is cut; this file holds start-up and shutdown: the order in which
 * the pieces are made (daemon_run()) and unmade (daemon_release()), the
 * tokens, the stores and MonitorS.
 *
 * One node (store type sqlite): every group of the files is seeded into the
 * store on first start (the store is the source of truth for settings after
 * that; the files keep the provider part, the spec, current), and every
 * group the store knows runs here, those created through the API included.
 *
 * A cluster (store type etcd): the files seed etcd the same way (the first
 * node to start writes, the others find the group there); ownership decides
 * where each group runs (cluster.h's on_acquire/on_lose start and stop it on
 * this node), and the controllers share one etcd handle on which each
 * owned group's writes are fenced on its owner key. A mutation made through
 * another node reaches the owner through the store's watch: settings wake
 * the controller, requests (terminate, delete) are applied and removed by
 * the worker thread (daemon_groups.c).
 */
#include "asgd/daemon_int.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "asgd/reload.h"
#include "asgd/service.h"
#include "common/log.h"
#include "common/sdnotify.h"
#include "common/util.h"
#include "monitor/mon.h"
#include "node/node.h"
#include "notify/notify.h"
#include "tls/tls.h"

#include "common/banned.h"

/* ---- tokens ---------------------------------------------------------------------------------- */

static int load_tokens(struct daemon *d, char *err, size_t errlen)
{
    const struct asgd_conf *c = &d->conf;
    if (c->monitor.token_file)
        util_warn_exposed_secret(c->monitor.token_file, "[monitor] token");
    if (c->api.token_file)
        util_warn_exposed_secret(c->api.token_file, "[api] token");
    d->agent_token_file = c->monitor.token_file ? strdup(c->monitor.token_file)
                                                : util_path_join(c->store.dir, "agent.token");
    if (d->agent_token_file == NULL)
        return -1;
    /* the token through a local, not &d->agent_token: clang's analyzer takes a field's address
       passed to another file as a write to all of *d, and then reports the file name lost */
    char *token = NULL;
    int rc =
        util_token_file(d->agent_token_file, c->monitor.token_file == NULL, &token, err, errlen);
    d->agent_token = token;
    if (rc != 0)
        return -1;
    char *api_file =
        c->api.token_file ? strdup(c->api.token_file) : util_path_join(c->store.dir, "api.token");
    if (api_file == NULL)
        return -1;
    rc = util_token_file(api_file, c->api.token_file == NULL, &d->api_token, err, errlen);
    free(api_file);
    return rc;
}

/* ---- the store ------------------------------------------------------------------------------- */

int daemon__open_store(struct daemon *d, struct store **out, char *err, size_t errlen)
{
    if (!d->cluster)
        return store_open(d->conf.store.dir, out, err, errlen) == 0 ? 0 : -1;
    struct store_etcd_settings es = {
        .endpoints = d->endpoints,
        .prefix = d->conf.store.etcd_prefix,
        .ca_file = d->conf.store.etcd_ca_file,
        .cert_file = d->conf.store.etcd_cert_file,
        .key_file = d->conf.store.etcd_key_file,
    };
    return store_open_etcd(&es, out, err, errlen) == 0 ? 0 : -1;
}

/* ---- life cycle ------------------------------------------------------------------------------ */

static int join_endpoints(struct daemon *d)
{
    size_t len = 1;
    for (size_t i = 0; i < d->conf.store.n_etcd_endpoints; i++)
        len += strlen(d->conf.store.etcd_endpoints[i]) + 1;
    d->endpoints = calloc(1, len);
    if (!d->endpoints)
        return -1;
    size_t at = 0;
    for (size_t i = 0; i < d->conf.store.n_etcd_endpoints; i++)
        at += (size_t)snprintf(d->endpoints + at, len - at, "%s%s", i ? "," : "",
                               d->conf.store.etcd_endpoints[i]);
    return 0;
}

static void daemon_release(struct daemon *d)
{
    /* systemd hears STOPPING first; then the API (it borrows groups), the worker, ownership
       (its callbacks stop groups), the groups, the monitor and the stores */
    svc_stop(d->svc);
    d->svc = NULL;
    http_free(d->http);
    d->http = NULL;
    if (d->ctl_store)
        store_watch(d->ctl_store, NULL, NULL);
    /* the worker uses the cluster handle: it stops first */
    if (d->worker_running) {
        pthread_mutex_lock(&d->mu);
        d->stop = 1;
        pthread_cond_broadcast(&d->cv);
        pthread_mutex_unlock(&d->mu);
        pthread_join(d->worker, NULL);
    }
    clu_free(d->clu);
    d->clu = NULL;
    node_free(d->node);
    notify_free(d->notify);
    mon_free(d->mon);
    tls_conf_free(d->mon_tls); /* after the monitor, which borrowed it */
    d->mon_tls = NULL;
    store_close(d->ctl_store);
    store_close(d->http_store);
    store_close(d->work_store);
    for (size_t i = 0; i < d->n_queue; i++)
        free(d->queue[i]);
    free(d->queue);
    free(d->starts);
    reload_ctl_free(d->reload);
    pthread_mutex_destroy(&d->mu);
    pthread_cond_destroy(&d->cv);
    conf_release(&d->conf);
    free(d->agent_token);
    free(d->api_token);
    free(d->agent_token_file);
    free(d->endpoints);
    free(d->failed);
}

/* [monitor] tls_*: MonitorS's, and the controllers' for their own agent calls (drain, attach) */
static int load_monitor_tls(struct daemon *d, char *err, size_t errlen)
{
    const struct conf_monitor *cm = &d->conf.monitor;
    struct tls_files tf = {cm->tls_ca_file, cm->tls_cert_file, cm->tls_key_file,
                           cm->tls_server_name};
    return tls_conf_new_optional(&tf, &d->mon_tls, err, errlen);
}

static int start_monitor(struct daemon *d, char *err, size_t errlen)
{
    struct mon_settings ms;
    mon_settings_init(&ms);
    ms.listen = d->conf.monitor.listen;
    ms.token = d->agent_token;
    ms.accept_unknown = d->conf.monitor.accept_unknown;
    ms.tls = d->mon_tls;
    if (d->cluster) {
        ms.on_foreign = daemon__on_foreign_register;
        ms.foreign_arg = d;
    }
    if (d->conf.n_groups > 0) {
        /* the client's backoff follows the fastest interval of the node */
        const struct group_health *h = &d->conf.groups[0].settings.health;
        ms.interval_ms = h->interval_ms;
        ms.timeout_ms = h->timeout_ms;
    }
    if (mon_new(&ms, NULL, &d->mon, err, errlen) != 0)
        return -1;
    if (mon_start(d->mon) != 0) {
        snprintf(err, errlen, "cannot start MonitorS on %s: %s", d->conf.monitor.listen,
                 mon_errmsg(d->mon));
        return -1;
    }
    log_info("MonitorS listening on %s for every group of this node%s", d->conf.monitor.listen,
             !d->mon_tls                      ? ""
             : !tls_conf_has_cert(d->mon_tls) ? " (clear text; agents polled over TLS)"
             : tls_conf_has_ca(d->mon_tls)    ? " (TLS, agent certificates required)"
                                              : " (TLS)");
    return 0;
}

int daemon_run(const char *path)
{
    return daemon_run_roles(path, DAEMON_ROLE_BOTH);
}

/* The HTTP API of every group (the controller role). */
static int start_http(struct daemon *d, char *err, size_t errlen)
{
    struct http_deps hd = {
        .listen = d->conf.api.listen,
        .token = d->api_token,
        .store = d->http_store,
        .ops = &daemon__node_ops,
        .ops_arg = d,
        .node = d->cluster ? d->conf.cluster.node : NULL,
        .tls_cert_file = d->conf.api.tls_cert_file,
        .tls_key_file = d->conf.api.tls_key_file,
        .tls_ca_file = d->conf.api.tls_ca_file,
    };
    return http_start(&hd, &d->http, err, errlen);
}

int daemon_run_roles(const char *path, int roles)
{
    struct daemon d;
    char err[1024];
    int rc = 1;
    memset(&d, 0, sizeof(d));
    d.roles = roles;
    pthread_mutex_init(&d.mu, NULL);
    pthread_cond_init(&d.cv, NULL);

    /* Block the stop signals before any thread exists; this thread waits for them. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);
    /* everything asgd creates (database, pid files, agent logs, tokens) is the operator's
       alone: the database holds idempotency tokens */
    umask(077);

    if (conf_load(path, &d.conf, err, sizeof(err)) != 0)
        goto fail;
    d.cluster = d.conf.store.type == CONF_STORE_ETCD;
    if (d.cluster && roles != DAEMON_ROLE_BOTH) {
        /* the two processes meet in one host's shared memory; a cluster moves groups between
           hosts, which only a process that plays both roles can follow */
        snprintf(err, sizeof(err),
                 "%s: [store] type = etcd: asgd monitor and asgd controller run one host's "
                 "groups on its SQLite store; a cluster node runs both roles: asgd run",
                 path);
        goto fail;
    }
    d.queue = calloc(MAX_QUEUE, sizeof(*d.queue));
    if (!d.queue || (d.cluster && join_endpoints(&d) != 0)) {
        snprintf(err, sizeof(err), "out of memory");
        goto fail;
    }
    if (util_mkdir_p(d.conf.store.dir, 0700, NULL, 0) != 0) {
        snprintf(err, sizeof(err), "cannot create state directory \"%s\": %s", d.conf.store.dir,
                 strerror(errno));
        goto fail;
    }
    if (load_tokens(&d, err, sizeof(err)) != 0)
        goto fail;
    if (daemon__open_store(&d, &d.work_store, err, sizeof(err)) != 0 ||
        ((roles & DAEMON_ROLE_CONTROLLER) &&
         daemon__open_store(&d, &d.http_store, err, sizeof(err)) != 0) ||
        (d.cluster && daemon__open_store(&d, &d.ctl_store, err, sizeof(err)) != 0))
        goto fail;
    for (size_t i = 0; i < d.conf.n_groups; i++)
        if (daemon_seed_group(d.work_store, &d.conf.groups[i], err, sizeof(err)) != 0)
            goto fail;
    if (load_monitor_tls(&d, err, sizeof(err)) != 0 ||
        ((roles & DAEMON_ROLE_MONITOR) && start_monitor(&d, err, sizeof(err)) != 0) ||
        daemon__start_node(&d, err, sizeof(err)) != 0)
        goto fail;
    if (pthread_create(&d.worker, NULL, daemon__worker_main, &d) != 0) {
        snprintf(err, sizeof(err), "cannot start the worker thread");
        goto fail;
    }
    pthread_setname_np(d.worker, "asgd-worker");
    d.worker_running = 1;
    if (d.cluster) {
        if (store_watch(d.ctl_store, daemon__on_store_change, &d) != 0)
            log_warn("no store watch: changes made on other nodes apply on the next tick");
        struct clu_settings cs = {
            .node = d.conf.cluster.node,
            .api_advertise = d.conf.cluster.api_advertise,
            .prefix = d.conf.store.etcd_prefix,
            .endpoints = d.endpoints,
            .ca_file = d.conf.store.etcd_ca_file,
            .cert_file = d.conf.store.etcd_cert_file,
            .key_file = d.conf.store.etcd_key_file,
            .lease_ttl_ms = d.conf.cluster.lease_ttl_ms,
            .on_acquire = daemon__on_acquire,
            .on_lose = daemon__on_lose,
            .arg = &d,
        };
        if (clu_new(&cs, &d.clu, err, sizeof(err)) != 0)
            goto fail;
    } else if (daemon__run_all_groups(&d, err, sizeof(err)) != 0) {
        goto fail;
    }
    if (roles & DAEMON_ROLE_CONTROLLER) {
        if (daemon__reload_new(&d) != 0) {
            snprintf(err, sizeof(err), "out of memory");
            goto fail;
        }
        if (start_http(&d, err, sizeof(err)) != 0)
            goto fail;
    }
    const char *what = roles == DAEMON_ROLE_MONITOR      ? "running MonitorS alone"
                       : roles == DAEMON_ROLE_CONTROLLER ? "running the controllers alone"
                                                         : "running";
    log_info("asgd %s %s: %zu group%s from the files, store %s%s%s%s%s%s%s", ASGD_VERSION, what,
             d.conf.n_groups, d.conf.n_groups == 1 ? "" : "s", d.cluster ? "etcd" : "sqlite",
             d.cluster ? ", node " : "", d.cluster ? d.conf.cluster.node : "",
             d.http ? ", API on " : "",
             !d.http                    ? ""
             : d.conf.api.tls_cert_file ? "https://"
                                        : "http://",
             d.http ? d.conf.api.listen : "", d.http ? "/" : "");
    if (roles & DAEMON_ROLE_CONTROLLER) {
        if (svc_start(d.node, &d.svc) != 0)
            log_warn("cannot start the systemd watchdog thread: no WATCHDOG=1 pings");
    } else {
        /* no controller to watch: READY only (STOPPING comes from daemon_release()) */
        sdn_notify("READY=1\nSTATUS=MonitorS of every group of this node");
    }

    int sig = daemon__wait_stop(&d, &stop);
    log_info("received signal %d, stopping (instances keep running)", sig);
    rc = 0;
    goto out;
fail:
    log_error("%s", err);
out:
    daemon_release(&d);
    return rc;
}
