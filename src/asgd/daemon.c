/*
 * daemon.c - `asgd run` (see daemon.h): the node file, the groups, the store,
 * the cluster and the HTTP API, wired together.
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
 * the worker thread here.
 */
#include "asgd/daemon.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
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
#include "asgd/reload.h"
#include "asgd/service.h"
#include "cluster/cluster.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/sdnotify.h"
#include "common/util.h"
#include "controller/ctl.h"
#include "fleet/fleet.h"
#include "group/group_conf.h"
#include "http/http.h"
#include "monitor/mon.h"
#include "node/node.h"
#include "notify/notify.h"
#include "store/store.h"
#include "tls/tls.h"

#include "common/banned.h"

#define MAX_QUEUE 4096

struct daemon {
    struct asgd_conf conf;
    int cluster;
    char *agent_token, *api_token, *agent_token_file;
    char *endpoints; /* etcd endpoints joined with ',' */
    struct mon *mon;
    struct node *node;
    struct clu *clu;
    struct store *ctl_store;  /* etcd: the controllers' shared handle (fenced per group) */
    struct store *http_store; /* the HTTP thread's (and the node ops', which run there) */
    struct store *work_store; /* the worker's and the ownership callbacks' */
    struct http_server *http;
    struct tls_conf *mon_tls; /* [monitor] tls_*: MonitorS and the poller; NULL: plain text */
    struct svc *svc;          /* systemd: READY, STATUS, watchdog (service.h) */
    struct notify *notify;    /* webhooks of every group (after the node, which feeds it) */

    /* groups whose store state changed (watch), for the worker */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char **queue;
    size_t n_queue;
    /* groups acquired and not started yet: the cluster's callback only queues them, so that
       ownership of a dead node's groups is taken in a few transactions, not one start each */
    struct pending_start *starts;
    size_t n_starts, cap_starts;
    int stop, worker_running;
    pthread_t worker;
    struct reload_ctl *reload; /* SIGHUP, POST /api/v1/reload (reload.h) */
};

struct pending_start {
    char group[GROUP_NAME_MAX];
    char key[CLU_KEY_MAX];
    int64_t rev;
};

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
    if (d->agent_token_file == NULL ||
        util_token_file(d->agent_token_file, c->monitor.token_file == NULL, &d->agent_token, err,
                        errlen) != 0)
        return -1;
    char *api_file =
        c->api.token_file ? strdup(c->api.token_file) : util_path_join(c->store.dir, "api.token");
    if (api_file == NULL)
        return -1;
    int rc = util_token_file(api_file, c->api.token_file == NULL, &d->api_token, err, errlen);
    free(api_file);
    return rc;
}

/* ---- the store ------------------------------------------------------------------------------- */

static int open_store(struct daemon *d, struct store **out, char *err, size_t errlen)
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

/* node.h's open_store: sqlite, a handle per group; etcd, the shared handle fenced. */
static int node_open_store(void *arg, const char *group, const char *owner_key, int64_t owner_rev,
                           struct store **out, char *err, size_t errlen)
{
    struct daemon *d = arg;
    if (!d->cluster)
        return open_store(d, out, err, errlen);
    int rc = store_set_fence(d->ctl_store, group, owner_key, owner_rev);
    if (rc != 0) {
        snprintf(err, errlen, "group \"%s\": cannot fence the store: %s", group,
                 store_strerror(rc));
        return -1;
    }
    *out = d->ctl_store;
    return 0;
}

static void node_close_store(void *arg, const char *group, struct store *st)
{
    struct daemon *d = arg;
    if (d->cluster && st == d->ctl_store)
        store_clear_fence(st, group);
    else
        store_close(st);
}

static int node_may_act(void *arg, const char *group)
{
    struct daemon *d = arg;
    return d->clu == NULL || clu_may_act(d->clu, group);
}

/*
 * Seeds the store with a group of the files: settings only when the group is
 * new (the store is the source of truth for them afterwards), the spec (its
 * provider part) always, so that an edited file reaches the store.
 */
static int seed_group(struct daemon *d, struct store *st, const struct group_conf *gc, char *err,
                      size_t errlen)
{
    const char *name = gc->settings.name;
    struct group_settings g;
    int rc = store_get_settings(st, name, &g);
    if (rc == STORE_ENOENT) {
        rc = store_put_settings(st, &gc->settings, 0, NULL);
        if (rc == 0)
            log_info("group \"%s\" created from %s: min %d, max %d, desired %d", name,
                     gc->path ? gc->path : "the node file", gc->settings.min_size,
                     gc->settings.max_size, gc->settings.desired_capacity);
        else if (rc == STORE_ECONFLICT)
            rc = 0; /* another node (or the other role) seeded it first */
    } else if (rc == 0) {
        log_info("group \"%s\" settings from the store (revision %" PRId64
                 "): min %d, max %d, desired %d; the file's [group]/[policy]/[health] seed a new "
                 "group only",
                 name, g.revision, g.min_size, g.max_size, g.desired_capacity);
    }
    if (rc == 0 && gc->spec)
        rc = store_put_spec(st, name, gc->spec, -1, NULL);
    if (rc != 0) {
        snprintf(err, errlen, "cannot store group \"%s\": %s", name, store_errmsg(st));
        return -1;
    }
    (void)d;
    return 0;
}

/* ---- starting a group ------------------------------------------------------------------------ */

/*
 * The group's definition: the node file's or the folder's when it has it,
 * else the spec in the store (a group created through the API or by another
 * node). *gc is the caller's to group_conf_release().
 */
static int group_definition(struct daemon *d, struct store *st, const char *name,
                            struct group_conf *gc, char *err, size_t errlen)
{
    memset(gc, 0, sizeof(*gc));
    /* a group of the files: the file is the definition (it was just seeded into the store);
       d->mu: a reload replaces the files' groups */
    pthread_mutex_lock(&d->mu);
    const struct group_conf *file = conf_find_group(&d->conf, name);
    if (file && file->spec) {
        int rc = group_conf_from_spec(file->spec, NULL, name, gc, err, errlen);
        if (rc == 0 && file->local.dir) {
            free(gc->local.dir);
            gc->local.dir = strdup(file->local.dir);
        }
        pthread_mutex_unlock(&d->mu);
        return rc == 0 ? 0 : -1;
    }
    pthread_mutex_unlock(&d->mu);
    char *text = NULL;
    int rc = store_get_spec(st, name, &text, NULL);
    if (rc == 0) {
        rc = group_conf_from_spec(text, NULL, name, gc, err, errlen);
        free(text);
        if (rc == 0 && gc->local.dir == NULL)
            gc->local.dir = conf_local_dir(&d->conf, name);
        return rc == 0 ? 0 : -1;
    }
    snprintf(err, errlen, "group \"%s\" has no definition in the store (%s)", name,
             rc == STORE_ENOENT ? "no spec" : store_errmsg(st));
    return -1;
}

static int start_group(struct daemon *d, struct store *st, const char *name, const char *owner_key,
                       int64_t owner_rev)
{
    char err[1024];
    struct group_conf gc;
    struct group_settings g;
    int rc = -1;
    if (group_definition(d, st, name, &gc, err, sizeof(err)) != 0)
        goto out;
    if (store_get_settings(st, name, &g) != 0) {
        snprintf(err, sizeof(err), "cannot read the settings of group \"%s\": %s", name,
                 store_errmsg(st));
        goto out;
    }
    struct node_group_def def = {
        .settings = g,
        .provider = gc.provider == GROUP_PROVIDER_EC2 ? NODE_PROVIDER_EC2 : NODE_PROVIDER_LOCAL,
        .agent_path = gc.local.agent,
        .agent_args = gc.local.agent_args,
        .boot_delay_ms = gc.local.boot_delay_ms,
        .address_base = gc.local.address_base,
        .local_dir = gc.local.dir,
        .keep_logs = gc.local.keep_logs,
        .ec2 = gc.has_ec2 ? &gc.ec2 : NULL,
    };
    rc = node_group_start(d->node, &def, owner_key, owner_rev, err, sizeof(err));
out:
    if (rc != 0)
        log_error("cannot run group \"%s\": %s", name, err);
    group_conf_release(&gc);
    return rc;
}

/* ---- cluster callbacks (the cluster's worker thread) ---------------------------------------- */

static void on_acquire(void *arg, const char *group, const char *owner_key, int64_t rev)
{
    struct daemon *d = arg;
    log_info("node \"%s\" owns group \"%s\" now", d->conf.cluster.node, group);
    pthread_mutex_lock(&d->mu);
    if (d->n_starts == d->cap_starts) {
        size_t cap = d->cap_starts ? 2 * d->cap_starts : 64;
        struct pending_start *p = realloc(d->starts, cap * sizeof(*p));
        if (!p) {
            pthread_mutex_unlock(&d->mu);
            log_error("group \"%s\": out of memory queueing its start", group);
            return;
        }
        d->starts = p;
        d->cap_starts = cap;
    }
    struct pending_start *ps = &d->starts[d->n_starts++];
    snprintf(ps->group, sizeof(ps->group), "%s", group);
    snprintf(ps->key, sizeof(ps->key), "%s", owner_key);
    ps->rev = rev;
    pthread_cond_signal(&d->cv);
    pthread_mutex_unlock(&d->mu);
}

static void on_lose(void *arg, const char *group)
{
    struct daemon *d = arg;
    log_info("node \"%s\" no longer owns group \"%s\": stopping it here", d->conf.cluster.node,
             group);
    pthread_mutex_lock(&d->mu);
    for (size_t i = 0; i < d->n_starts; i++)
        if (strcmp(d->starts[i].group, group) == 0)
            d->starts[i--] = d->starts[--d->n_starts];
    pthread_mutex_unlock(&d->mu);
    node_group_stop(d->node, group);
}

/* Starts a group the cluster gave this node, unless it was taken back meanwhile. */
static void start_acquired(struct daemon *d, const struct pending_start *ps)
{
    char key[CLU_KEY_MAX];
    int64_t rev = 0;
    if (clu_fence(d->clu, ps->group, key, sizeof(key), &rev) != 0 || rev != ps->rev)
        return; /* lost again before it started */
    if (start_group(d, d->work_store, ps->group, ps->key, ps->rev) != 0) {
        log_warn("group \"%s\" is owned here but does not run; retried when it changes", ps->group);
        return;
    }
    /* lost while it was starting (on_lose found nothing to stop yet): stop it now; its
       controller checked the fence before any provider call meanwhile */
    if (clu_fence(d->clu, ps->group, key, sizeof(key), &rev) != 0 || rev != ps->rev)
        node_group_stop(d->node, ps->group);
}

/* ---- the worker: changes made through other nodes ------------------------------------------- */

static void on_store_change(void *arg, const char *group, int what)
{
    struct daemon *d = arg;
    (void)what;
    pthread_mutex_lock(&d->mu);
    int dup = 0;
    for (size_t i = 0; i < d->n_queue && !dup; i++)
        dup = strcmp(d->queue[i], group) == 0;
    if (!dup && d->n_queue < MAX_QUEUE) {
        char *s = strdup(group);
        if (s)
            d->queue[d->n_queue++] = s;
    }
    pthread_cond_signal(&d->cv);
    pthread_mutex_unlock(&d->mu);
}

/* A Register that reached this node for an instance of a group another node runs (agents
   are given every node's MonitorS address): recorded for the owner, which applies it. */
static int on_foreign_register(void *arg, const char *id, const char *address)
{
    struct daemon *d = arg;
    struct store_instance inst;
    if (store_get_instance(d->work_store, id, &inst) != 0 || inst.terminated_at_ms != 0)
        return 0;
    json_t *j = json_pack("{s:s, s:s}", "instance_id", id, "address", address);
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    int rc = text ? store_request_add(d->work_store, inst.group, "register", text, NULL) : -1;
    free(text);
    return rc == 0;
}

struct reg_fill {
    const char *address;
};

static void reg_fill_fn(struct fleet_slot *s, void *arg)
{
    const struct reg_fill *r = arg;
    s->registered = 1;
    if (!s->address[0] && r->address)
        snprintf(s->address, sizeof(s->address), "%s", r->address);
}

/* Applies the pending requests of a group this node runs. */
static void apply_requests(struct daemon *d, const char *group)
{
    struct store_request *rq = NULL;
    size_t n = 0;
    if (store_request_list(d->work_store, group, &rq, &n) != 0 || n == 0) {
        store_requests_free(rq, n);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        json_error_t je;
        json_t *j = json_loads(rq[i].json ? rq[i].json : "{}", 0, &je);
        char err[512] = "";
        int deleted = 0;
        if (strcmp(rq[i].kind, "terminate") == 0) {
            const char *id = json_string_value(json_object_get(j, "instance_id"));
            int dec = json_is_true(json_object_get(j, "decrement"));
            struct fleet *f;
            struct ctl *c;
            void *h;
            if (id && node_group_ref(d->node, group, &f, &c, &h) == 0) {
                if (ctl_request_terminate(c, id, dec, err, sizeof(err)) != 0)
                    log_warn("terminate request for \"%s\" in group \"%s\": %s", id, group, err);
                node_group_unref(d->node, h);
            }
        } else if (strcmp(rq[i].kind, "lifecycle") == 0) {
            /* hooks, protection, standby, detach, attach from another node's API (issue 12) */
            struct fleet *f;
            struct ctl *c;
            void *h;
            if (node_group_ref(d->node, group, &f, &c, &h) == 0) {
                if (ctl_lifecycle_json(c, rq[i].json, err, sizeof(err)) != 0)
                    log_warn("lifecycle request %s for group \"%s\": %s", rq[i].json, group, err);
                node_group_unref(d->node, h);
            }
        } else if (strcmp(rq[i].kind, "register") == 0) {
            const char *id = json_string_value(json_object_get(j, "instance_id"));
            struct reg_fill rf = {json_string_value(json_object_get(j, "address"))};
            struct fleet *f;
            struct ctl *c;
            void *h;
            uint32_t idx;
            struct fleet_slot slot;
            if (id && node_group_ref(d->node, group, &f, &c, &h) == 0) {
                if (fleet_find(f, id, &idx) == 0 && fleet_read(f, idx, &slot) == 0 &&
                    fleet_update(f, idx, slot.generation, reg_fill_fn, &rf) == 0 &&
                    !slot.registered)
                    log_info("instance \"%s\" of group \"%s\" registered through another node", id,
                             group);
                node_group_unref(d->node, h);
            }
        } else if (strcmp(rq[i].kind, "delete") == 0) {
            int force = json_is_true(json_object_get(j, "force"));
            if (node_group_delete(d->node, group, force, err, sizeof(err)) == 0) {
                if (store_delete_group(d->ctl_store ? d->ctl_store : d->work_store, group) != 0)
                    log_warn("group \"%s\": cannot delete it from the store", group);
                deleted = 1;
            } else {
                log_warn("delete request for group \"%s\": %s", group, err);
            }
        }
        json_decref(j);
        if (deleted)
            break; /* the requests went with the group */
        struct store *fenced = d->ctl_store ? d->ctl_store : d->work_store;
        if (store_request_delete(fenced, group, rq[i].id) != 0)
            log_debug("cannot delete request %" PRId64 " of group \"%s\"", rq[i].id, group);
    }
    store_requests_free(rq, n);
}

static void *worker_main(void *arg)
{
    struct daemon *d = arg;
    pthread_mutex_lock(&d->mu);
    while (!d->stop) {
        if (d->n_starts > 0) {
            struct pending_start ps = d->starts[0];
            memmove(d->starts, d->starts + 1, (d->n_starts - 1) * sizeof(*d->starts));
            d->n_starts--;
            pthread_mutex_unlock(&d->mu);
            start_acquired(d, &ps);
            pthread_mutex_lock(&d->mu);
            continue;
        }
        if (d->n_queue == 0) {
            pthread_cond_wait(&d->cv, &d->mu);
            continue;
        }
        char *group = d->queue[--d->n_queue];
        pthread_mutex_unlock(&d->mu);
        if (node_group_running(d->node, group)) {
            node_group_wake(d->node, group); /* settings: the controller reloads them now */
            apply_requests(d, group);
        } else if (d->clu) {
            /* owned but not running (its start failed, e.g. the spec was not there yet):
               a change of the group is the moment to try again */
            char key[CLU_KEY_MAX];
            int64_t rev = 0;
            if (clu_fence(d->clu, group, key, sizeof(key), &rev) == 0)
                start_group(d, d->work_store, group, key, rev);
        }
        free(group);
        pthread_mutex_lock(&d->mu);
    }
    pthread_mutex_unlock(&d->mu);
    return NULL;
}

/* ---- HTTP node operations (the HTTP thread) -------------------------------------------------- */

static int op_group_get(void *arg, const char *name, struct http_group_ref *out)
{
    struct daemon *d = arg;
    void *h = NULL;
    if (node_group_ref(d->node, name, &out->fleet, &out->ctl, &h) == 0) {
        out->priv = h;
        snprintf(out->owner_node, sizeof(out->owner_node), "%s",
                 d->cluster ? d->conf.cluster.node : "");
        snprintf(out->owner_api, sizeof(out->owner_api), "%s",
                 d->cluster && d->conf.cluster.api_advertise ? d->conf.cluster.api_advertise : "");
        return 0;
    }
    if (d->clu && clu_owner_of(d->clu, name, out->owner_node, sizeof(out->owner_node),
                               out->owner_api, sizeof(out->owner_api)) == 0) {
        if (strcmp(out->owner_node, clu_node(d->clu)) == 0)
            out->owner_api[0] = '\0'; /* ours but not running yet: no proxy to ourselves */
        return 0;
    }
    return -ENOENT;
}

static void op_group_put(void *arg, struct http_group_ref *ref)
{
    struct daemon *d = arg;
    if (ref->priv)
        node_group_unref(d->node, ref->priv);
    ref->priv = NULL;
}

static int op_group_create(void *arg, const json_t *spec, char *err, size_t errlen)
{
    struct daemon *d = arg;
    struct group_conf gc;
    memset(&gc, 0, sizeof(gc));
    if (group_conf_from_spec(NULL, spec, NULL, &gc, err, errlen) != 0) {
        group_conf_release(&gc);
        return -EINVAL;
    }
    const char *name = gc.settings.name;
    /* the spec goes first: in a cluster the settings key is what makes the group exist
       for the other nodes, and its owner-to-be reads the spec as soon as it sees it */
    struct group_settings existing;
    int rc = store_get_settings(d->http_store, name, &existing);
    if (rc == 0) {
        snprintf(err, errlen, "group \"%s\" already exists", name);
        group_conf_release(&gc);
        return -EEXIST;
    }
    rc = rc == STORE_ENOENT ? store_put_spec(d->http_store, name, gc.spec, -1, NULL) : rc;
    if (rc == 0)
        rc = store_put_settings(d->http_store, &gc.settings, 0, NULL);
    if (rc == STORE_ECONFLICT || rc == STORE_EEXIST) {
        snprintf(err, errlen, "group \"%s\" already exists", name);
        group_conf_release(&gc);
        return -EEXIST;
    }
    if (rc != 0) {
        snprintf(err, errlen, "cannot store group \"%s\": %s", name, store_errmsg(d->http_store));
        group_conf_release(&gc);
        return rc == STORE_EUNAVAIL ? -EAGAIN : -EIO;
    }
    log_info("group \"%s\" created through the API: min %d, max %d, desired %d", name,
             gc.settings.min_size, gc.settings.max_size, gc.settings.desired_capacity);
    /* one node runs it now; in a cluster the owner-to-be sees it through its watch */
    if (!d->cluster && start_group(d, d->http_store, name, NULL, 0) != 0)
        log_warn("group \"%s\" is stored but does not run yet", name);
    group_conf_release(&gc);
    return 0;
}

static int op_group_delete(void *arg, const char *name, int force, char *err, size_t errlen)
{
    struct daemon *d = arg;
    if (node_group_running(d->node, name)) {
        int k = node_group_count(d->node, name);
        if (k > 0 && !force) {
            snprintf(err, errlen,
                     "group \"%s\" has %d instance%s: delete them first or use ?force=true", name,
                     k, k == 1 ? "" : "s");
            return -EBUSY;
        }
        if (node_group_delete(d->node, name, force, err, errlen) != 0)
            return -EIO;
        int rc = store_delete_group(d->http_store, name);
        if (rc != 0 && rc != STORE_ENOENT) {
            snprintf(err, errlen, "cannot delete group \"%s\" from the store: %s", name,
                     store_errmsg(d->http_store));
            return rc == STORE_EUNAVAIL ? -EAGAIN : -EIO;
        }
        return 0;
    }
    /* not run here: the store tells whether instances remain */
    struct store_instance *list = NULL;
    size_t n = 0;
    int rc = store_list_instances(d->http_store, name, 0, &list, &n);
    store_instances_free(list);
    if (rc != 0) {
        snprintf(err, errlen, "cannot read group \"%s\": %s", name, store_errmsg(d->http_store));
        return rc == STORE_EUNAVAIL ? -EAGAIN : -EIO;
    }
    if (n > 0 && !force) {
        snprintf(err, errlen,
                 "group \"%s\" has %zu instance%s: delete them first or use "
                 "?force=true",
                 name, n, n == 1 ? "" : "s");
        return -EBUSY;
    }
    if (n > 0 && d->cluster) {
        /* its owner terminates them and deletes the group */
        char owner[CLU_NODE_MAX];
        if (d->clu && clu_owner_of(d->clu, name, owner, sizeof(owner), NULL, 0) == 0) {
            if (store_request_add(d->http_store, name, "delete", "{\"force\":true}", NULL) != 0)
                return -EAGAIN;
            return 0;
        }
    }
    rc = store_delete_group(d->http_store, name);
    if (rc == STORE_ENOENT)
        return -ENOENT;
    if (rc != 0) {
        snprintf(err, errlen, "cannot delete group \"%s\": %s", name, store_errmsg(d->http_store));
        return rc == STORE_EUNAVAIL ? -EAGAIN : -EIO;
    }
    return 0;
}

static int op_request_terminate(void *arg, const char *group, const char *id, int decrement,
                                char *err, size_t errlen)
{
    struct daemon *d = arg;
    json_t *j = json_pack("{s:s, s:b}", "instance_id", id, "decrement", decrement);
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!text)
        return -ENOMEM;
    int rc = store_request_add(d->http_store, group, "terminate", text, NULL);
    free(text);
    if (rc != 0) {
        snprintf(err, errlen, "cannot record the request: %s", store_errmsg(d->http_store));
        return rc == STORE_EUNAVAIL ? -EAGAIN : -EIO;
    }
    return 0;
}

/* The cluster view in the shape http.h documents, from clu_status(). */
static json_t *op_cluster(void *arg)
{
    struct daemon *d = arg;
    if (!d->clu)
        return NULL;
    json_t *st = clu_status(d->clu);
    if (!st)
        return NULL;
    json_t *out = json_object();
    json_t *nodes = json_array();
    char why[256] = "";
    int ready = clu_ready(d->clu, why, sizeof(why));
    json_object_set_new(out, "mode", json_string("cluster"));
    json_object_set_new(out, "self", json_string(clu_node(d->clu)));
    json_object_set_new(out, "store",
                        json_pack("{s:s, s:b, s:s}", "type", "etcd", "ok", ready, "detail", why));
    json_t *groups = json_object_get(st, "groups");
    size_t i;
    json_t *nd;
    json_array_foreach(json_object_get(st, "nodes"), i, nd)
    {
        const char *name = json_string_value(json_object_get(nd, "name"));
        if (!name)
            continue;
        json_t *mine = json_array();
        size_t k;
        json_t *g;
        json_array_foreach(groups, k, g)
        {
            const char *owner = json_string_value(json_object_get(g, "owner"));
            if (owner && strcmp(owner, name) == 0)
                json_array_append(mine, json_object_get(g, "name"));
        }
        int self = strcmp(name, clu_node(d->clu)) == 0;
        json_t *n =
            json_pack("{s:s, s:O, s:O, s:b, s:o}", "name", name, "api", json_object_get(nd, "api"),
                      "alive", json_object_get(nd, "alive"), "self", self, "groups", mine);
        if (n && self)
            json_object_set_new(
                n, "lease",
                json_pack("{s:b, s:I, s:O, s:O, s:s}", "ok", ready, "ttl_ms",
                          (json_int_t)d->conf.cluster.lease_ttl_ms, "last_renewal_ms_ago",
                          json_object_get(st, "last_renewal_age_ms"), "deadline_left_ms",
                          json_object_get(st, "deadline_left_ms"), "detail", why));
        if (n)
            json_array_append_new(nodes, n);
    }
    json_object_set_new(out, "nodes", nodes);
    json_object_set(out, "groups", groups);
    json_decref(st);
    return out;
}

static int op_ready(void *arg, char *why, size_t len)
{
    struct daemon *d = arg;
    if (d->clu && !clu_ready(d->clu, why, len))
        return 0;
    /* a group in panic is not ready: its agents do not answer (asgd's network may be cut) */
    if (node_panicking(d->node, why, len))
        return 0;
    return node_ticking(d->node, clk_wall_ms(), 10000, why, len);
}

/* ---- reload (reload.h) ---------------------------------------------------------------------- */

static int reload_seed(void *arg, struct store *st, const struct group_conf *gc, char *err,
                       size_t errlen)
{
    return seed_group(arg, st, gc, err, errlen);
}

/* One node: start it here. A cluster: only when this node owns it (a restart after a change
   of its provider part); ownership starts the others. */
static int reload_start(void *arg, struct store *st, const char *name)
{
    struct daemon *d = arg;
    if (!d->cluster)
        return start_group(d, st, name, NULL, 0);
    char key[CLU_KEY_MAX];
    int64_t rev = 0;
    if (d->clu == NULL || clu_fence(d->clu, name, key, sizeof(key), &rev) != 0)
        return 0;
    return start_group(d, st, name, key, rev);
}

static int reload_open_store(void *arg, struct store **out, char *err, size_t errlen)
{
    return open_store(arg, out, err, errlen);
}

static int op_reload(void *arg, int64_t *generation)
{
    struct daemon *d = arg;
    return reload_ctl_request(d->reload, generation);
}

static json_t *op_reload_status(void *arg)
{
    struct daemon *d = arg;
    return reload_ctl_status(d->reload);
}

static const struct http_node_ops node_ops = {
    .group_get = op_group_get,
    .group_put = op_group_put,
    .group_create = op_group_create,
    .group_delete = op_group_delete,
    .request_terminate = op_request_terminate,
    .cluster = op_cluster,
    .ready = op_ready,
    .reload = op_reload,
    .reload_status = op_reload_status,
};

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
}

/*
 * SIGHUP: re-read the TLS files of [monitor] and [api] (the paths of the running
 * configuration). A bad file is logged and the previous material stays in use.
 * (The SIGHUP reload of the configuration calls this too.)
 */
static void reload_tls(struct daemon *d)
{
    char err[512];
    if (d->mon_tls) {
        if (tls_conf_reload(d->mon_tls, err, sizeof(err)) != 0)
            log_error("reload: [monitor] TLS files not reloaded, the previous ones stay in use: "
                      "%s",
                      err);
        else
            log_info("reload: [monitor] TLS files re-read");
    }
    if (http_reload_tls(d->http, err, sizeof(err)) != 0)
        log_error("reload: [api] TLS files not reloaded, the previous ones stay in use: %s", err);
}

static int start_monitor(struct daemon *d, char *err, size_t errlen)
{
    struct mon_settings ms;
    mon_settings_init(&ms);
    ms.listen = d->conf.monitor.listen;
    ms.token = d->agent_token;
    ms.accept_unknown = d->conf.monitor.accept_unknown;
    const struct conf_monitor *cm = &d->conf.monitor;
    struct tls_files tf = {cm->tls_ca_file, cm->tls_cert_file, cm->tls_key_file,
                           cm->tls_server_name};
    if (tls_conf_new_optional(&tf, &d->mon_tls, err, errlen) != 0)
        return -1;
    ms.tls = d->mon_tls;
    if (d->cluster) {
        ms.on_foreign = on_foreign_register;
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

static int start_node(struct daemon *d, char *err, size_t errlen)
{
    const struct asgd_conf *c = &d->conf;
    int legacy = c->groups_dir == NULL && c->n_groups == 1 && c->groups[0].path == NULL;
    struct node_settings ns = {
        .name = d->cluster ? c->cluster.node : "",
        .cluster = d->cluster,
        .mon = d->mon,
        .state_dir = c->store.dir,
        .legacy_single = legacy,
        .monitor_address = c->monitor.advertise ? c->monitor.advertise : c->monitor.listen,
        .agent_port = c->monitor.agent_port,
        .agent_token = d->agent_token,
        .agent_token_file = d->agent_token_file,
        .open_store = node_open_store,
        .close_store = node_close_store,
        .may_act = d->cluster ? node_may_act : NULL,
        .arg = d,
    };
    if (notify_new(0, &d->notify) != 0) {
        snprintf(err, errlen, "cannot start the webhook notifier: out of memory");
        return -1;
    }
    ns.notify = d->notify;
    ns.agent_tls = d->mon_tls; /* set by start_monitor(), before */
    return node_new(&ns, &d->node, err, errlen);
}

/* One node: every group of the store runs here (the files seeded it). */
static int run_all_groups(struct daemon *d, char *err, size_t errlen)
{
    char **names = NULL;
    size_t n = 0;
    if (store_list_groups(d->work_store, &names, &n) != 0) {
        snprintf(err, errlen, "cannot list the groups: %s", store_errmsg(d->work_store));
        return -1;
    }
    int failed = 0;
    for (size_t i = 0; i < n; i++)
        failed |= start_group(d, d->work_store, names[i], NULL, 0) != 0;
    store_names_free(names, n);
    if (failed && n == 1) {
        snprintf(err, errlen, "the only group could not start (see above)");
        return -1;
    }
    return 0;
}

int daemon_run(const char *path)
{
    struct daemon d;
    char err[1024];
    int rc = 1;
    memset(&d, 0, sizeof(d));
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
    if (open_store(&d, &d.work_store, err, sizeof(err)) != 0 ||
        open_store(&d, &d.http_store, err, sizeof(err)) != 0 ||
        (d.cluster && open_store(&d, &d.ctl_store, err, sizeof(err)) != 0))
        goto fail;
    for (size_t i = 0; i < d.conf.n_groups; i++)
        if (seed_group(&d, d.work_store, &d.conf.groups[i], err, sizeof(err)) != 0)
            goto fail;
    if (start_monitor(&d, err, sizeof(err)) != 0 || start_node(&d, err, sizeof(err)) != 0)
        goto fail;
    if (pthread_create(&d.worker, NULL, worker_main, &d) != 0) {
        snprintf(err, sizeof(err), "cannot start the worker thread");
        goto fail;
    }
    pthread_setname_np(d.worker, "asgd-worker");
    d.worker_running = 1;
    if (d.cluster) {
        if (store_watch(d.ctl_store, on_store_change, &d) != 0)
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
            .on_acquire = on_acquire,
            .on_lose = on_lose,
            .arg = &d,
        };
        if (clu_new(&cs, &d.clu, err, sizeof(err)) != 0)
            goto fail;
    } else if (run_all_groups(&d, err, sizeof(err)) != 0) {
        goto fail;
    }
    struct reload_host rh = {
        .conf = &d.conf,
        .mu = &d.mu,
        .node = d.node,
        .cluster = d.cluster,
        .open_store = reload_open_store,
        .seed_group = reload_seed,
        .start_group = reload_start,
        .arg = &d,
    };
    if (reload_ctl_new(&rh, &d.reload) != 0) {
        snprintf(err, sizeof(err), "out of memory");
        goto fail;
    }
    struct http_deps hd = {
        .listen = d.conf.api.listen,
        .token = d.api_token,
        .store = d.http_store,
        .ops = &node_ops,
        .ops_arg = &d,
        .node = d.cluster ? d.conf.cluster.node : NULL,
        .tls_cert_file = d.conf.api.tls_cert_file,
        .tls_key_file = d.conf.api.tls_key_file,
        .tls_ca_file = d.conf.api.tls_ca_file,
    };
    if (http_start(&hd, &d.http, err, sizeof(err)) != 0)
        goto fail;
    log_info("asgd %s running: %zu group%s from the files, store %s%s%s, API on %s://%s/",
             ASGD_VERSION, d.conf.n_groups, d.conf.n_groups == 1 ? "" : "s",
             d.cluster ? "etcd" : "sqlite", d.cluster ? ", node " : "",
             d.cluster ? d.conf.cluster.node : "", d.conf.api.tls_cert_file ? "https" : "http",
             d.conf.api.listen);
    if (svc_start(d.node, &d.svc) != 0)
        log_warn("cannot start the systemd watchdog thread: no WATCHDOG=1 pings");

    int sig = 0;
    while (sigwait(&stop, &sig) != 0 || sig == SIGHUP) {
        if (sig == SIGHUP) {
            sdn_notify("RELOADING=1"); /* systemctl reload waits for the READY=1 below */
            reload_tls(&d);            /* certificates: the next handshakes use them */
            reload_ctl_run(d.reload);  /* the files again (reload.h) */
            sdn_notify("READY=1");
        }
        sig = 0;
    }
    log_info("received signal %d, stopping (instances keep running)", sig);
    rc = 0;
    goto out;
fail:
    log_error("%s", err);
out:
    daemon_release(&d);
    return rc;
}
