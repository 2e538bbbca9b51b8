/*
 * reload.c - `asgd run`'s configuration reload (see reload.h).
 *
 * The work is split in two so that a refused reload changes nothing: plan()
 * reads the files and the store and decides every step, checking each one
 * (the merged settings of a changed group must validate); apply() then
 * performs the steps. Only apply() writes, and it starts after the last
 * check. A store write can still fail there (etcd loses quorum mid-way):
 * that step is reported in "failed" and logged, the others go on, and a
 * second reload retries it (every step is idempotent against the files).
 *
 * The comparison for settings is with the files as they were, not with the
 * store: the store is the source of truth once a group exists (the API and
 * the policy change it), so a reload carries only the operator's edits.
 */
#include "asgd/reload.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "node/node.h"
#include "store/store.h"

#include "common/banned.h"

#define PUT_RETRIES 5

struct step {
    const struct group_conf *old; /* the group in the running conf; NULL: new in the files */
    const struct group_conf *neu; /* the group in the new conf; NULL: gone from the files */
    int settings_changed;         /* the file changed [group]/[policy]/[health] keys */
    int spec_changed;             /* the file changed [provider]/[local]/[ec2] */
};

struct plan {
    struct asgd_conf nc; /* the files as they are now */
    struct step *steps;
    size_t n_steps;
    json_t *report;
};

static void add_str(json_t *report, const char *list, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void add_str(json_t *report, const char *list, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    json_array_append_new(json_object_get(report, list), json_string(buf));
}

/* ---- node-level keys ------------------------------------------------------------------------ */

static int str_differs(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        return a != b;
    return strcmp(a, b) != 0;
}

/* The node-level keys a running asgd cannot change: a new value waits for a restart. */
static void node_keys(const struct asgd_conf *a, const struct asgd_conf *b, json_t *report)
{
    static const struct {
        const char *name;
        size_t off;
    } strs[] = {
        {"[monitor] listen", offsetof(struct asgd_conf, monitor.listen)},
        {"[monitor] token_file", offsetof(struct asgd_conf, monitor.token_file)},
        {"[monitor] advertise", offsetof(struct asgd_conf, monitor.advertise)},
        {"[api] listen", offsetof(struct asgd_conf, api.listen)},
        {"[api] token_file", offsetof(struct asgd_conf, api.token_file)},
        /* TLS files' contents are re-read on SIGHUP; a new path needs a restart */
        {"[monitor] tls_ca_file", offsetof(struct asgd_conf, monitor.tls_ca_file)},
        {"[monitor] tls_cert_file", offsetof(struct asgd_conf, monitor.tls_cert_file)},
        {"[monitor] tls_key_file", offsetof(struct asgd_conf, monitor.tls_key_file)},
        {"[monitor] tls_server_name", offsetof(struct asgd_conf, monitor.tls_server_name)},
        {"[api] tls_cert_file", offsetof(struct asgd_conf, api.tls_cert_file)},
        {"[api] tls_key_file", offsetof(struct asgd_conf, api.tls_key_file)},
        {"[api] tls_ca_file", offsetof(struct asgd_conf, api.tls_ca_file)},
        {"[store] dir", offsetof(struct asgd_conf, store.dir)},
        {"[store] etcd_prefix", offsetof(struct asgd_conf, store.etcd_prefix)},
        {"[store] etcd_ca_file", offsetof(struct asgd_conf, store.etcd_ca_file)},
        {"[store] etcd_cert_file", offsetof(struct asgd_conf, store.etcd_cert_file)},
        {"[store] etcd_key_file", offsetof(struct asgd_conf, store.etcd_key_file)},
        {"[cluster] node", offsetof(struct asgd_conf, cluster.node)},
        {"[cluster] api_advertise", offsetof(struct asgd_conf, cluster.api_advertise)},
    };
    for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
        const char *x = *(char *const *)(const void *)((const char *)a + strs[i].off);
        const char *y = *(char *const *)(const void *)((const char *)b + strs[i].off);
        if (str_differs(x, y))
            add_str(report, "needs_restart", "%s", strs[i].name);
    }
    if (a->monitor.agent_port != b->monitor.agent_port)
        add_str(report, "needs_restart", "[monitor] agent_port");
    if (a->monitor.accept_unknown != b->monitor.accept_unknown)
        add_str(report, "needs_restart", "[monitor] accept_unknown");
    if (a->store.type != b->store.type)
        add_str(report, "needs_restart", "[store] type");
    if (a->cluster.lease_ttl_ms != b->cluster.lease_ttl_ms)
        add_str(report, "needs_restart", "[cluster] lease_ttl");
    int eps = a->store.n_etcd_endpoints != b->store.n_etcd_endpoints;
    for (size_t i = 0; !eps && i < a->store.n_etcd_endpoints; i++)
        eps = strcmp(a->store.etcd_endpoints[i], b->store.etcd_endpoints[i]) != 0;
    if (eps)
        add_str(report, "needs_restart", "[store] etcd_endpoints");
}

/* ---- planning ------------------------------------------------------------------------------- */

/* Whether the provider part of two definitions differs (the spec's other sections, local.dir). */
static int provider_differs(const struct group_conf *a, const struct group_conf *b)
{
    static const char *const secs[] = {"provider", "local", "ec2"};
    json_t *ja = json_loads(a->spec ? a->spec : "{}", 0, NULL);
    json_t *jb = json_loads(b->spec ? b->spec : "{}", 0, NULL);
    int differs = ja == NULL || jb == NULL;
    for (size_t i = 0; !differs && i < sizeof(secs) / sizeof(secs[0]); i++) {
        json_t *x = json_object_get(ja, secs[i]), *y = json_object_get(jb, secs[i]);
        differs = (x == NULL) != (y == NULL) || (x && !json_equal(x, y));
    }
    json_decref(ja);
    json_decref(jb);
    return differs || str_differs(a->local.dir, b->local.dir);
}

/*
 * The store's settings of group with the file's changes (old -> neu) applied,
 * validated. 0, ENOENT (the store has no such group: seed it instead), or -1
 * with the reason in err.
 */
static int merged_settings(struct store *st, const struct group_conf *old,
                           const struct group_conf *neu, struct group_settings *out, char *err,
                           size_t errlen)
{
    const char *name = neu->settings.name;
    int rc = store_get_settings(st, name, out);
    if (rc == STORE_ENOENT)
        return STORE_ENOENT;
    if (rc != 0) {
        snprintf(err, errlen, "cannot read the settings of group \"%s\": %s", name,
                 store_errmsg(st));
        return -1;
    }
    group_settings_apply_changes(out, &old->settings, &neu->settings);
    const char *sec = NULL, *key = NULL;
    char why[512];
    if (group_settings_validate(out, &sec, &key, why, sizeof(why)) != 0) {
        snprintf(err, errlen,
                 "%s: [%s] %s: %s (the file's change applied to the store's settings of group "
                 "\"%s\", revision %" PRId64 ")",
                 neu->path ? neu->path : "the node file", sec ? sec : "group", key ? key : "?", why,
                 name, out->revision);
        return -1;
    }
    return 0;
}

static int add_step(struct plan *p, const struct group_conf *old, const struct group_conf *neu)
{
    struct step *s = realloc(p->steps, (p->n_steps + 1) * sizeof(*s));
    if (s == NULL)
        return -1;
    p->steps = s;
    s[p->n_steps].old = old;
    s[p->n_steps].neu = neu;
    s[p->n_steps].settings_changed = 0;
    s[p->n_steps].spec_changed = 0;
    p->n_steps++;
    return 0;
}

/* Reads the files and decides every step; -1 with err when the reload must be refused. */
static int plan(const struct reload_host *h, struct plan *p, char *err, size_t errlen)
{
    struct asgd_conf *cur = h->conf;
    if (cur->path == NULL) {
        snprintf(err, errlen, "asgd runs without a config file: nothing to re-read");
        return -1;
    }
    if (conf_load(cur->path, &p->nc, err, errlen) != 0)
        return -1;
    node_keys(cur, &p->nc, p->report);
    /* cur->groups is only replaced by this thread: reading it without the lock is safe */
    for (size_t i = 0; i < cur->n_groups; i++)
        if (conf_find_group(&p->nc, cur->groups[i].settings.name) == NULL &&
            add_step(p, &cur->groups[i], NULL) != 0)
            goto oom;
    for (size_t i = 0; i < p->nc.n_groups; i++) {
        const struct group_conf *neu = &p->nc.groups[i];
        const struct group_conf *old = conf_find_group(cur, neu->settings.name);
        if (add_step(p, old, neu) != 0)
            goto oom;
        if (old == NULL)
            continue;
        struct step *s = &p->steps[p->n_steps - 1];
        char diff[16];
        group_settings_diff(&old->settings, &neu->settings, diff, sizeof(diff));
        s->settings_changed = strcmp(diff, "no change") != 0;
        s->spec_changed = provider_differs(old, neu);
        if (s->settings_changed) {
            struct group_settings g;
            int rc = merged_settings(h->store, old, neu, &g, err, errlen);
            if (rc == STORE_ENOENT)
                s->old = NULL; /* deleted through the API meanwhile: the file seeds it again */
            else if (rc != 0)
                return -1;
        }
    }
    return 0;
oom:
    snprintf(err, errlen, "out of memory");
    return -1;
}

/* ---- applying ------------------------------------------------------------------------------- */

static void activity(struct store *st, const char *group, const char *kind, int from, int to,
                     const char *cause, const char *detail)
{
    struct store_activity a;
    memset(&a, 0, sizeof(a));
    snprintf(a.group, sizeof(a.group), "%s", group);
    a.at_ms = clk_wall_ms();
    snprintf(a.kind, sizeof(a.kind), "%s", kind);
    snprintf(a.cause, sizeof(a.cause), "%s", cause);
    snprintf(a.detail, sizeof(a.detail), "%s", detail ? detail : "");
    a.from_count = from;
    a.to_count = to;
    snprintf(a.status, sizeof(a.status), "ok");
    if (store_activity_add(st, &a, NULL) != 0)
        log_warn("reload: cannot record the %s activity of group \"%s\": %s", kind, group,
                 store_errmsg(st));
}

/* A group gone from the files: stop managing it, leave its instances running. */
static void unmanage(const struct reload_host *h, const char *name, const char *file,
                     json_t *report)
{
    struct store_instance *list = NULL;
    size_t n = 0;
    char ids[STORE_DETAIL_MAX] = "";
    size_t used = 0;
    if (store_list_instances(h->store, name, 0, &list, &n) == 0) {
        for (size_t i = 0; i < n && used + 8 < sizeof(ids); i++) {
            int k = snprintf(ids + used, sizeof(ids) - used, "%s%s", i ? ", " : "", list[i].id);
            if (k < 0 || (size_t)k >= sizeof(ids) - used) {
                snprintf(ids + used, sizeof(ids) - used, ", ...");
                break;
            }
            used += (size_t)k;
        }
    }
    store_instances_free(list);
    node_group_stop(h->node, name);
    int rc = store_delete_group(h->store, name);
    if (rc != 0 && rc != STORE_ENOENT) {
        log_error("reload: group \"%s\" no longer runs here but stays in the store: %s", name,
                  store_errmsg(h->store));
        add_str(report, "failed", "remove group \"%s\" from the store: %s", name,
                store_errmsg(h->store));
        return;
    }
    char cause[STORE_CAUSE_MAX];
    snprintf(cause, sizeof(cause),
             "removed from the files (%.120s) by a reload: no longer managed; %zu instance%s "
             "left running",
             file, n, n == 1 ? "" : "s");
    /* after the deletion, which takes the group's history with it: this record stays, and
       heads the history again if the group comes back (it adopts its instances then) */
    activity(h->store, name, "unmanaged", (int)n, (int)n, cause, n ? ids : "");
    log_warn("group \"%s\" %s%s%s", name, cause, n ? ": " : "", n ? ids : "");
    add_str(report, "removed", "%s", name);
}

/* The file's changed settings over the store's, as a PATCH; retried when the store moved. */
static void change_settings(const struct reload_host *h, const struct step *s, json_t *report)
{
    const char *name = s->neu->settings.name;
    const char *file = s->neu->path ? s->neu->path : h->conf->path;
    char err[512];
    for (int attempt = 0; attempt < PUT_RETRIES; attempt++) {
        struct group_settings old, neu;
        if (merged_settings(h->store, s->old, s->neu, &neu, err, sizeof(err)) != 0)
            break;
        old = neu;
        if (store_get_settings(h->store, name, &old) != 0) {
            snprintf(err, sizeof(err), "%s", store_errmsg(h->store));
            break;
        }
        char diff[STORE_CAUSE_MAX];
        group_settings_diff(&old, &neu, diff, sizeof(diff));
        if (strcmp(diff, "no change") == 0)
            return; /* the store already says what the file says */
        int rc = store_put_settings(h->store, &neu, old.revision, NULL);
        if (rc == STORE_ECONFLICT)
            continue; /* the controller moved desired meanwhile: merge again */
        if (rc != 0) {
            snprintf(err, sizeof(err), "%s", store_errmsg(h->store));
            break;
        }
        char cause[STORE_CAUSE_MAX];
        snprintf(cause, sizeof(cause), "settings changed by reloading %.40s: %.170s", file, diff);
        activity(h->store, name, "settings", old.desired_capacity, neu.desired_capacity, cause,
                 NULL);
        log_info("group \"%s\" %s", name, cause);
        add_str(report, "changed", "%s: %s", name, diff);
        /* here: the controller reads them now (new health settings reach the monitor);
           elsewhere the owner watches the store */
        node_group_wake(h->node, name);
        return;
    }
    log_error("reload: cannot change the settings of group \"%s\": %s", name, err);
    add_str(report, "failed", "settings of group \"%s\": %s", name, err);
}

/* A new group of the files, or one whose provider part changed: spec (and settings) stored,
   started here on one node (restarted when it runs). */
static void seed_and_run(const struct reload_host *h, const struct step *s, json_t *report)
{
    const char *name = s->neu->settings.name;
    char err[1024];
    /* a new group is seeded as at start; a known one's settings are change_settings()' */
    if (s->old == NULL && h->seed_group(h->arg, h->store, s->neu, err, sizeof(err)) != 0) {
        log_error("reload: %s", err);
        add_str(report, "failed", "%s", err);
        return;
    }
    if (s->old != NULL && store_put_spec(h->store, name, s->neu->spec, -1, NULL) != 0) {
        log_error("reload: cannot store the definition of group \"%s\": %s", name,
                  store_errmsg(h->store));
        add_str(report, "failed", "definition of group \"%s\": %s", name, store_errmsg(h->store));
        return;
    }
    if (s->old == NULL)
        add_str(report, "added", "%s", name);
    int running = node_group_running(h->node, name);
    if (running && s->spec_changed) {
        log_info("group \"%s\": its provider settings changed: restarting its runtime (its "
                 "instances keep running and are adopted back)",
                 name);
        node_group_stop(h->node, name);
        running = 0;
        add_str(report, "restarted", "%s", name);
    }
    /* in a cluster ownership starts new groups (the owner-to-be sees them in etcd) */
    if (!running && (!h->cluster || s->spec_changed) && h->start_group(h->arg, h->store, name) != 0)
        add_str(report, "failed", "start group \"%s\" (see the log)", name);
}

static void apply(const struct reload_host *h, struct plan *p)
{
    /* the new groups become the running conf's; the old ones go with p->nc */
    struct asgd_conf *cur = h->conf;
    pthread_mutex_lock(h->mu);
    struct group_conf *g = cur->groups;
    size_t n = cur->n_groups;
    char *dir = cur->groups_dir;
    cur->groups = p->nc.groups;
    cur->n_groups = p->nc.n_groups;
    cur->groups_dir = p->nc.groups_dir;
    p->nc.groups = g;
    p->nc.n_groups = n;
    p->nc.groups_dir = dir;
    pthread_mutex_unlock(h->mu);
    /* the steps point into both arrays, which both stay alive until the plan is released */
    for (size_t i = 0; i < p->n_steps; i++) {
        const struct step *s = &p->steps[i];
        if (s->neu == NULL)
            unmanage(h, s->old->settings.name, s->old->path ? s->old->path : cur->path, p->report);
    }
    for (size_t i = 0; i < p->n_steps; i++) {
        const struct step *s = &p->steps[i];
        if (s->neu == NULL)
            continue;
        if (s->old && s->settings_changed)
            change_settings(h, s, p->report);
        if (s->old == NULL || s->spec_changed)
            seed_and_run(h, s, p->report);
    }
}

json_t *reload_run(const struct reload_host *h)
{
    struct plan p;
    memset(&p, 0, sizeof(p));
    p.report = json_pack("{s:b, s:I, s:s?, s:[], s:[], s:[], s:[], s:[], s:[]}", "ok", 0, "at_ms",
                         (json_int_t)clk_wall_ms(), "file", h->conf->path, "added", "removed",
                         "changed", "restarted", "needs_restart", "failed");
    if (p.report == NULL)
        return NULL;
    log_info("reloading %s", h->conf->path ? h->conf->path : "(no file)");
    char err[1024] = "";
    if (plan(h, &p, err, sizeof(err)) != 0) {
        log_error("reload refused, nothing changed: %s", err);
        json_object_set_new(p.report, "error", json_string(err));
    } else {
        json_t *nr = json_object_get(p.report, "needs_restart");
        size_t i;
        json_t *v;
        json_array_foreach(nr, i, v)
        {
            log_warn("reload: %s changed in %s: needs a restart (the running value stays)",
                     json_string_value(v), h->conf->path);
        }
        apply(h, &p);
        json_object_set_new(p.report, "ok", json_true());
        log_info("reload of %s done: %zu added, %zu removed, %zu changed, %zu restarted, %zu "
                 "failed",
                 h->conf->path, json_array_size(json_object_get(p.report, "added")),
                 json_array_size(json_object_get(p.report, "removed")),
                 json_array_size(json_object_get(p.report, "changed")),
                 json_array_size(json_object_get(p.report, "restarted")),
                 json_array_size(json_object_get(p.report, "failed")));
    }
    free(p.steps);
    conf_release(&p.nc);
    return p.report;
}

/* ---- the node's reloads --------------------------------------------------------------------- */

struct reload_ctl {
    struct reload_host host;
    pthread_mutex_t mu;
    json_t *report; /* the last one; its "generation": the asked count when it started */
    int64_t asked;  /* reloads asked through reload_ctl_request() */
};

int reload_ctl_new(const struct reload_host *host, struct reload_ctl **out)
{
    struct reload_ctl *rc = calloc(1, sizeof(*rc));
    if (rc == NULL)
        return -1;
    rc->host = *host;
    pthread_mutex_init(&rc->mu, NULL);
    *out = rc;
    return 0;
}

void reload_ctl_free(struct reload_ctl *rc)
{
    if (rc == NULL)
        return;
    json_decref(rc->report);
    pthread_mutex_destroy(&rc->mu);
    free(rc);
}

void reload_ctl_run(struct reload_ctl *rc)
{
    char err[1024];
    struct reload_host h = rc->host;
    json_t *rep;
    pthread_mutex_lock(&rc->mu);
    int64_t gen = rc->asked;
    pthread_mutex_unlock(&rc->mu);
    if (h.open_store(h.arg, &h.store, err, sizeof(err)) != 0) {
        log_error("reload refused, nothing changed: %s", err);
        rep = json_pack("{s:b, s:s}", "ok", 0, "error", err);
    } else {
        rep = reload_run(&h);
        store_close(h.store);
    }
    if (rep)
        json_object_set_new(rep, "generation", json_integer(gen));
    pthread_mutex_lock(&rc->mu);
    json_decref(rc->report);
    rc->report = rep;
    pthread_mutex_unlock(&rc->mu);
}

int reload_ctl_request(struct reload_ctl *rc, int64_t *generation)
{
    pthread_mutex_lock(&rc->mu);
    *generation = ++rc->asked;
    pthread_mutex_unlock(&rc->mu);
    return kill(getpid(), SIGHUP) == 0 ? 0 : -errno;
}

json_t *reload_ctl_status(struct reload_ctl *rc)
{
    json_t *r = NULL;
    pthread_mutex_lock(&rc->mu);
    if (rc->report) {
        r = json_deep_copy(rc->report);
        json_int_t gen = json_integer_value(json_object_get(r, "generation"));
        if (r)
            json_object_set_new(r, "in_progress", json_boolean(rc->asked > gen));
    } else if (rc->asked > 0) {
        r = json_pack("{s:i, s:b}", "generation", 0, "in_progress", 1); /* the first one */
    }
    pthread_mutex_unlock(&rc->mu);
    return r;
}
