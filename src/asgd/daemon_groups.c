/*
 * daemon_groups.c - the groups' life on this node (see daemon_int.h): the
 * node (node.h) and its store hooks, seeding the store from the files,
 * starting a group from its definition, the cluster's ownership callbacks,
 * and the worker thread that applies what other nodes asked for.
 *
 * Separate from the wiring (daemon.c) because this is where a group starts
 * and stops after start-up, from three threads: the cluster's worker
 * (on_acquire / daemon__on_lose, which only queue or stop), this file's worker
 * (acquired groups started, store changes and requests applied), and the
 * HTTP thread (a group created through the API, daemon_ops.c). d->mu guards
 * the queues and the files' groups.
 */
#include "asgd/daemon_int.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/clock.h"
#include "common/log.h"
#include "controller/ctl.h"
#include "fleet/fleet.h"
#include "node/node.h"
#include "notify/notify.h"

#include "common/banned.h"

/* node.h's open_store: sqlite, a handle per group; etcd, the shared handle fenced. */
static int node_open_store(void *arg, const char *group, const char *owner_key, int64_t owner_rev,
                           struct store **out, char *err, size_t errlen)
{
    struct daemon *d = arg;
    if (!d->cluster)
        return daemon__open_store(d, out, err, errlen);
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

/* daemon.h: also the two-process mode's (main.c) */
int daemon_seed_group(struct store *st, const struct group_conf *gc, char *err, size_t errlen)
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
    return 0;
}

/* ---- starting a group ------------------------------------------------------------------------ */

/* What node.h needs to run group gc with settings g (pointers into gc: it must outlive def). */
static void group_def(const struct group_conf *gc, const struct group_settings *g,
                      struct node_group_def *def)
{
    *def = (struct node_group_def){
        .settings = *g,
        .provider = gc->provider == GROUP_PROVIDER_EC2 ? NODE_PROVIDER_EC2 : NODE_PROVIDER_LOCAL,
        .agent_path = gc->local.agent,
        .agent_args = gc->local.agent_args,
        .boot_delay_ms = gc->local.boot_delay_ms,
        .address_base = gc->local.address_base,
        .local_dir = gc->local.dir,
        .keep_logs = gc->local.keep_logs,
        .ec2 = gc->has_ec2 ? &gc->ec2 : NULL,
    };
}

/* daemon.h: the node hashes the same definition when it starts the group (grp_build) */
void daemon_launch_config(const struct group_conf *gc, char *buf, size_t len)
{
    struct node_group_def def;
    group_def(gc, &gc->settings, &def);
    node_launch_config(&def, buf, len);
}

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

int daemon__start_group(struct daemon *d, struct store *st, const char *name, const char *owner_key,
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
    struct node_group_def def;
    group_def(&gc, &g, &def);
    rc = node_group_start(d->node, &def, owner_key, owner_rev, err, sizeof(err));
out:
    if (rc != 0)
        log_error("cannot run group \"%s\": %s", name, err);
    group_conf_release(&gc);
    return rc;
}

/* ---- cluster callbacks (the cluster's worker thread) ---------------------------------------- */

void daemon__on_acquire(void *arg, const char *group, const char *owner_key, int64_t rev)
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

void daemon__on_lose(void *arg, const char *group)
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
    if (daemon__start_group(d, d->work_store, ps->group, ps->key, ps->rev) != 0) {
        log_warn("group \"%s\" is owned here but does not run; retried when it changes", ps->group);
        return;
    }
    /* lost while it was starting (on_lose found nothing to stop yet): stop it now; its
       controller checked the fence before any provider call meanwhile */
    if (clu_fence(d->clu, ps->group, key, sizeof(key), &rev) != 0 || rev != ps->rev)
        node_group_stop(d->node, ps->group);
}

/* ---- the worker: changes made through other nodes ------------------------------------------- */

void daemon__on_store_change(void *arg, const char *group, int what)
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
int daemon__on_foreign_register(void *arg, const char *id, const char *address)
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

void *daemon__worker_main(void *arg)
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
                daemon__start_group(d, d->work_store, group, key, rev);
        }
        free(group);
        pthread_mutex_lock(&d->mu);
    }
    pthread_mutex_unlock(&d->mu);
    return NULL;
}

int daemon__start_node(struct daemon *d, char *err, size_t errlen)
{
    const struct asgd_conf *c = &d->conf;
    int legacy = c->groups_dir == NULL && c->n_groups == 1 && c->groups[0].path == NULL;
    struct node_settings ns = {
        .name = d->cluster ? c->cluster.node : "",
        .cluster = d->cluster,
        .roles = d->roles, /* the same values as NODE_ROLE_* (static_assert below) */
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
    /* webhooks are the controllers' (`asgd monitor` runs none) */
    if ((d->roles & DAEMON_ROLE_CONTROLLER) && notify_new(0, &d->notify) != 0) {
        snprintf(err, errlen, "cannot start the webhook notifier: out of memory");
        return -1;
    }
    ns.notify = d->notify;
    ns.agent_tls = d->mon_tls; /* loaded by load_monitor_tls() for either role, before */
    return node_new(&ns, &d->node, err, errlen);
}

_Static_assert(DAEMON_ROLE_MONITOR == NODE_ROLE_MONITOR &&
                   DAEMON_ROLE_CONTROLLER == NODE_ROLE_CONTROLLER &&
                   DAEMON_ROLE_BOTH == NODE_ROLE_BOTH,
               "daemon and node roles are one set of flags");

/* One node: every group of the store runs here (the files seeded it). */
int daemon__run_all_groups(struct daemon *d, char *err, size_t errlen)
{
    char **names = NULL;
    size_t n = 0;
    if (store_list_groups(d->work_store, &names, &n) != 0) {
        snprintf(err, errlen, "cannot list the groups: %s", store_errmsg(d->work_store));
        return -1;
    }
    int failed = 0;
    for (size_t i = 0; i < n; i++)
        failed |= daemon__start_group(d, d->work_store, names[i], NULL, 0) != 0;
    store_names_free(names, n);
    if (failed && n == 1) {
        snprintf(err, errlen, "the only group could not start (see above)");
        return -1;
    }
    return 0;
}

/* ---- `asgd monitor`: the store says which groups there are ---------------------------------- */

/* 1 when group name may be tried now: it never failed here, it changed since, or its last
   failure is DAEMON_RETRY_MS old (a full /dev/shm may have been cleaned up meanwhile). */
static int retry_due(const struct daemon *d, const char *name, int64_t revision, int64_t now)
{
    for (size_t i = 0; i < d->n_failed; i++)
        if (strcmp(d->failed[i].group, name) == 0)
            return d->failed[i].revision != revision || now - d->failed[i].at_ms >= DAEMON_RETRY_MS;
    return 1;
}

static void forget_failed(struct daemon *d, const char *name)
{
    for (size_t i = 0; i < d->n_failed; i++)
        if (strcmp(d->failed[i].group, name) == 0)
            d->failed[i--] = d->failed[--d->n_failed];
}

static void note_failed(struct daemon *d, const char *name, int64_t revision, int64_t now)
{
    forget_failed(d, name);
    struct failed_start *f = realloc(d->failed, (d->n_failed + 1) * sizeof(*f));
    if (!f)
        return; /* retried every second then, as it would be anyway */
    d->failed = f;
    snprintf(f[d->n_failed].group, sizeof(f[d->n_failed].group), "%s", name);
    f[d->n_failed].revision = revision;
    f[d->n_failed++].at_ms = now;
}

/*
 * Without a controller in this process nothing else tells the monitor that a
 * group came or went (the controller process's API, its reload) or that its
 * health settings changed: the store does, read here once a second (a list
 * and one settings row per group: nothing on the poll path).
 */
void daemon__follow_store(struct daemon *d)
{
    char **names = NULL;
    size_t n = 0;
    if (store_list_groups(d->work_store, &names, &n) != 0) {
        log_debug("cannot list the groups: %s", store_errmsg(d->work_store));
        return;
    }
    for (size_t i = 0; i < n; i++) {
        struct group_settings g;
        if (store_get_settings(d->work_store, names[i], &g) != 0)
            continue; /* deleted meanwhile */
        if (node_group_running(d->node, names[i])) {
            node_group_set_health(d->node, names[i], &g.health);
            continue;
        }
        int64_t now = clk_mono_ms();
        if (!retry_due(d, names[i], g.revision, now))
            continue; /* its failure was logged */
        if (daemon__start_group(d, d->work_store, names[i], NULL, 0) == 0)
            forget_failed(d, names[i]);
        else
            note_failed(d, names[i], g.revision, now);
    }
    for (size_t i = 0; i < d->n_failed; i++) {
        int listed = 0;
        for (size_t j = 0; j < n && !listed; j++)
            listed = strcmp(d->failed[i].group, names[j]) == 0;
        if (!listed)
            d->failed[i--] = d->failed[--d->n_failed]; /* deleted: nothing to retry */
    }
    char **running = NULL;
    size_t k = 0;
    if (node_group_names(d->node, &running, &k) == 0) {
        for (size_t i = 0; i < k; i++) {
            int listed = 0;
            for (size_t j = 0; j < n && !listed; j++)
                listed = strcmp(running[i], names[j]) == 0;
            if (!listed) {
                log_info("group \"%s\" is gone from the store: no longer polled", running[i]);
                node_group_stop(d->node, running[i]);
            }
            free(running[i]);
        }
        free(running);
    }
    store_names_free(names, n);
}
