/*
 * node.c - the groups one asgd runs (see node.h).
 *
 * Workload: a handful to a few hundred groups per node, started and stopped
 * rarely (start-up, API, ownership changes); lookups by name once per HTTP
 * request. A linked list under one mutex is enough; what must be fast (the
 * poll, the tick) never comes here.
 *
 * A runtime is created completely outside the node's lock (the provider's
 * first describe may take seconds on EC2), then published; a second start of
 * the same name while the first is still being built is refused through the
 * "starting" list, so two ownership callbacks can never build two runtimes.
 */
#include "node/node.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/util.h"
#include "controller/ctl.h"
#include "fleet/fleet.h"
#include "group/group_table.h"
#include "monitor/mon.h"
#include "notify/notify.h"
#include "provider/ec2.h"
#include "provider/local.h"
#include "provider/provider.h"
#include "store/store.h"

#include "common/banned.h"

struct grp {
    char name[GROUP_NAME_MAX];
    char fleet_name[256];
    int refs;     /* under node.mu */
    int running;  /* the node's own reference is held */
    int starting; /* being built: not visible to lookups yet */
    struct fleet *fleet;
    struct provider *prov;
    struct store *store;
    struct ctl *ctl;
    struct group_health health; /* monitor role: what MonitorS polls with (node_group_set_health) */
    char *agent_path;
    char *local_dir;
    struct node *node;
    struct grp *next;
};

struct node {
    char *name;
    int cluster, legacy_single;
    int roles;       /* NODE_ROLE_* */
    struct mon *mon; /* NULL without the monitor role */
    char *state_dir, *monitor_address, *agent_token, *agent_token_file;
    int agent_port;
    int (*open_store)(void *arg, const char *group, const char *owner_key, int64_t owner_rev,
                      struct store **out, char *err, size_t errlen);
    void (*close_store)(void *arg, const char *group, struct store *st);
    int (*may_act)(void *arg, const char *group);
    void *arg;
    struct notify *notify;
    struct tls_conf *agent_tls;

    pthread_mutex_t mu;
    struct grp *groups;
};

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

int node_new(const struct node_settings *s, struct node **out, char *err, size_t errlen)
{
    int roles = s && s->roles ? s->roles : NODE_ROLE_BOTH;
    if (!s || ((roles & NODE_ROLE_MONITOR) && !s->mon) ||
        ((roles & NODE_ROLE_CONTROLLER) && !s->open_store) || !s->state_dir || !out) {
        snprintf(err, errlen, "node: monitor, state directory and store opener are required");
        return -1;
    }
    struct node *n = calloc(1, sizeof(*n));
    if (!n) {
        snprintf(err, errlen, "node: out of memory");
        return -1;
    }
    n->name = strdup(s->name ? s->name : "");
    n->state_dir = strdup(s->state_dir);
    n->monitor_address = dup_or_null(s->monitor_address);
    n->agent_token = dup_or_null(s->agent_token);
    n->agent_token_file = dup_or_null(s->agent_token_file);
    if (!n->name || !n->state_dir || (s->monitor_address && !n->monitor_address) ||
        (s->agent_token && !n->agent_token) || (s->agent_token_file && !n->agent_token_file)) {
        node_free(n);
        snprintf(err, errlen, "node: out of memory");
        return -1;
    }
    n->cluster = s->cluster;
    n->legacy_single = s->legacy_single;
    n->roles = roles;
    n->mon = roles & NODE_ROLE_MONITOR ? s->mon : NULL;
    n->agent_port = s->agent_port;
    n->open_store = s->open_store;
    n->may_act = s->may_act;
    n->close_store = s->close_store;
    n->arg = s->arg;
    n->notify = s->notify;
    n->agent_tls = s->agent_tls;
    pthread_mutex_init(&n->mu, NULL);
    *out = n;
    return 0;
}

/* Frees what a runtime holds; its controller and polling were stopped before. */
static void grp_destroy(struct grp *g)
{
    if (!g)
        return;
    ctl_free(g->ctl);
    provider_free(g->prov);
    if (g->store && g->node && g->node->close_store)
        g->node->close_store(g->node->arg, g->name, g->store);
    else
        store_close(g->store);
    fleet_close(g->fleet);
    free(g->agent_path);
    free(g->local_dir);
    free(g);
}

/* Drops one reference (node.mu held); the last one frees. Returns the runtime to free
   outside the lock, or NULL. */
static struct grp *grp_unref_locked(struct grp *g)
{
    if (--g->refs > 0)
        return NULL;
    return g;
}

/* Stops acting for g: no tick, no poll, from the moment this returns. */
static void grp_halt(struct node *n, struct grp *g)
{
    if (n->mon)
        mon_remove_group(n->mon, g->name);
    ctl_stop(g->ctl);
    if (n->cluster)
        fleet_unlink(g->fleet_name); /* the next owner of it here starts from the provider */
}

void node_free(struct node *n)
{
    if (!n)
        return;
    for (;;) {
        pthread_mutex_lock(&n->mu);
        struct grp *g = n->groups;
        while (g && !g->running)
            g = g->next;
        char name[GROUP_NAME_MAX] = "";
        if (g)
            snprintf(name, sizeof(name), "%s", g->name);
        pthread_mutex_unlock(&n->mu);
        if (!g)
            break;
        node_group_stop(n, name);
    }
    /* what the HTTP thread still held is gone with it (http stopped before) */
    while (n->groups) {
        struct grp *g = n->groups;
        n->groups = g->next;
        grp_destroy(g);
    }
    pthread_mutex_destroy(&n->mu);
    free(n->name);
    free(n->state_dir);
    free(n->monitor_address);
    free(n->agent_token);
    free(n->agent_token_file);
    free(n);
}

/* monitorc next to our own binary unless the group says otherwise. */
static char *resolve_agent(const char *configured)
{
    if (configured)
        return strdup(configured);
    char self[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (len <= 0)
        return strdup("monitorc");
    self[len] = '\0';
    char *slash = strrchr(self, '/');
    if (slash)
        *slash = '\0';
    return util_path_join(self, "monitorc");
}

static int grp_may_act(void *arg, const char *group)
{
    struct node *n = arg;
    return n->may_act ? n->may_act(n->arg, group) : 1;
}

static void mon_settings_of(const struct group_health *h, struct mon_group_settings *gs)
{
    memset(gs, 0, sizeof(*gs));
    gs->interval_ms = h->interval_ms;
    gs->timeout_ms = h->timeout_ms;
    gs->rise = (uint32_t)h->healthy_threshold;
    gs->fall = (uint32_t)h->unhealthy_threshold;
    gs->registered_only = strcmp(h->type, "ec2") == 0;
}

/* The controller saw new health settings (the API changed them): the monitor follows. */
static void grp_on_health(void *arg, const char *group, const struct group_health *h)
{
    struct node *n = arg;
    if (!n->mon)
        return; /* `asgd controller`: the monitor process reads them from the store */
    struct mon_group_settings gs;
    mon_settings_of(h, &gs);
    if (mon_set_group(n->mon, group, &gs) == 0)
        log_debug("group \"%s\": monitor now polls every %" PRId64 " ms (timeout %" PRId64
                  " ms, rise %d, fall %d)",
                  group, h->interval_ms, h->timeout_ms, h->healthy_threshold,
                  h->unhealthy_threshold);
}

static int make_provider(struct node *n, struct grp *g, const struct node_group_def *def, char *err,
                         size_t errlen)
{
    if (def->provider == NODE_PROVIDER_EC2) {
        if (!def->ec2) {
            snprintf(err, errlen, "group \"%s\": provider ec2 without [ec2] settings", g->name);
            return -1;
        }
        return provider_ec2_new(def->ec2, g->name, n->agent_port, n->monitor_address,
                                n->agent_token, &g->prov, err, errlen);
    }
    g->agent_path = resolve_agent(def->agent_path);
    if (def->local_dir)
        g->local_dir = strdup(def->local_dir);
    else if (n->legacy_single)
        g->local_dir = strdup(n->state_dir);
    else {
        size_t len = strlen(n->state_dir) + strlen(g->name) + 16;
        g->local_dir = malloc(len);
        if (g->local_dir)
            snprintf(g->local_dir, len, "%s/groups/%s", n->state_dir, g->name);
    }
    if (!g->agent_path || !g->local_dir) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (util_mkdir_p(g->local_dir, 0700, NULL, 0) != 0) {
        snprintf(err, errlen, "cannot create \"%s\": %s", g->local_dir, strerror(errno));
        return -1;
    }
    struct local_settings ls = {
        .group = g->name,
        .state_dir = g->local_dir,
        .agent_path = g->agent_path,
        .agent_args = def->agent_args,
        .address_base = def->address_base ? def->address_base : "127.0.0.2",
        .agent_port = n->agent_port,
        .monitor_address = n->monitor_address,
        .token_file = n->agent_token_file,
        .boot_delay_ms = def->boot_delay_ms,
        .keep_logs = def->keep_logs,
    };
    return provider_local_new(&ls, &g->prov, err, errlen);
}

static struct grp *find_locked(struct node *n, const char *name, int include_starting)
{
    for (struct grp *g = n->groups; g; g = g->next)
        if ((g->running || (include_starting && g->starting)) && strcmp(g->name, name) == 0)
            return g;
    return NULL;
}

/* Builds everything of a runtime but the monitor registration, outside the lock. */
static int grp_build(struct node *n, struct grp *g, const struct node_group_def *def,
                     const char *owner_key, int64_t owner_rev, char *err, size_t errlen)
{
    /* sized from max_size; the controller grows it when the stored max_size is larger */
    if (group_table_open(g->fleet_name, g->name, def->settings.max_size, &g->fleet, err, errlen) !=
        0)
        return -1;
    g->health = def->settings.health;
    if (!(n->roles & NODE_ROLE_CONTROLLER))
        return 0; /* `asgd monitor`: the table is all MonitorS needs */
    if (n->open_store(n->arg, g->name, owner_key, owner_rev, &g->store, err, errlen) != 0)
        return -1;
    if (make_provider(n, g, def, err, errlen) != 0)
        return -1;
    char lc[24];
    node_launch_config(def, lc, sizeof(lc));
    struct ctl_deps deps = {
        .group = g->name,
        .health_from_provider = strcmp(def->settings.health.type, "ec2") == 0,
        .describe_every_ms = def->provider == NODE_PROVIDER_EC2 ? 15000 : 2000,
        /* in a cluster the history is a write to etcd: one every 10 s per group */
        .history_every_ms = n->cluster ? 10000 : 0,
        .fleet = g->fleet,
        .store = g->store,
        .provider = g->prov,
        .may_act = n->cluster ? grp_may_act : NULL,
        .may_act_arg = n,
        .on_health = grp_on_health,
        .launch_config = lc,
        .on_activity = n->notify ? notify_on_activity : NULL,
        .on_activity_arg = n->notify,
        .agent_tls = n->agent_tls,
    };
    if (ctl_new(&deps, &g->ctl, err, errlen) != 0)
        return -1;
    /* Reconcile before anything launches: adopt what runs, forget what vanished. */
    for (int attempt = 0;; attempt++) {
        int rc = ctl_reconcile(g->ctl, clk_wall_ms());
        if (rc == 0 || rc == PROV_EFATAL)
            break; /* a fatal error was logged once; the loop backs off and forgets nothing */
        if (n->cluster && !grp_may_act(n, g->name)) {
            snprintf(err, errlen, "group \"%s\": ownership lost while starting", g->name);
            return -1;
        }
        if (attempt >= 4) {
            log_error("start-up reconciliation of group \"%s\" failed: %s; continuing, will "
                      "retry",
                      g->name, provider_errmsg(g->prov));
            break;
        }
        struct timespec ts = {0, 200 * 1000000L};
        nanosleep(&ts, NULL);
    }
    if (ctl_start(g->ctl) != 0) {
        snprintf(err, errlen, "group \"%s\": cannot start the controller thread", g->name);
        return -1;
    }
    return 0;
}

int node_group_start(struct node *n, const struct node_group_def *def, const char *owner_key,
                     int64_t owner_rev, char *err, size_t errlen)
{
    const char *name = def->settings.name;
    if (!name[0]) {
        snprintf(err, errlen, "node: a group without a name");
        return -1;
    }
    struct grp *g = calloc(1, sizeof(*g));
    if (!g) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    snprintf(g->name, sizeof(g->name), "%s", name);
    if (n->cluster)
        snprintf(g->fleet_name, sizeof(g->fleet_name), "%s.%s", n->name, name);
    else
        snprintf(g->fleet_name, sizeof(g->fleet_name), "%s", name);
    g->node = n;
    g->starting = 1;
    pthread_mutex_lock(&n->mu);
    if (find_locked(n, name, 1)) {
        pthread_mutex_unlock(&n->mu);
        free(g);
        snprintf(err, errlen, "group \"%s\" already runs on this node", name);
        return -1;
    }
    g->next = n->groups;
    n->groups = g;
    pthread_mutex_unlock(&n->mu);

    int rc = grp_build(n, g, def, owner_key, owner_rev, err, errlen);
    struct mon_group_settings gs;
    mon_settings_of(&def->settings.health, &gs);
    if (rc == 0 && n->mon && mon_add_group(n->mon, g->name, g->fleet, &gs) != 0) {
        snprintf(err, errlen, "group \"%s\": monitor refused it", g->name);
        rc = -1;
    }
    pthread_mutex_lock(&n->mu);
    if (rc != 0) {
        for (struct grp **pp = &n->groups; *pp; pp = &(*pp)->next)
            if (*pp == g) {
                *pp = g->next;
                break;
            }
    } else {
        g->starting = 0;
        g->running = 1;
        g->refs = 1;
    }
    pthread_mutex_unlock(&n->mu);
    if (rc != 0) {
        ctl_stop(g->ctl);
        grp_destroy(g);
        return -1;
    }
    log_info("group \"%s\" running on this node%s%s (min %d, max %d, desired %d)", g->name,
             n->name[0] ? " " : "", n->name, def->settings.min_size, def->settings.max_size,
             def->settings.desired_capacity);
    return 0;
}

static void unlink_and_maybe_free(struct node *n, struct grp *g)
{
    /* node.mu held by the caller; frees outside */
    struct grp *dead = grp_unref_locked(g);
    if (dead) {
        for (struct grp **pp = &n->groups; *pp; pp = &(*pp)->next)
            if (*pp == dead) {
                *pp = dead->next;
                break;
            }
    }
    pthread_mutex_unlock(&n->mu);
    grp_destroy(dead);
}

void node_group_stop(struct node *n, const char *name)
{
    if (!n || !name)
        return;
    pthread_mutex_lock(&n->mu);
    struct grp *g = find_locked(n, name, 0);
    if (!g) {
        pthread_mutex_unlock(&n->mu);
        return;
    }
    g->running = 0; /* invisible to new lookups from now on */
    pthread_mutex_unlock(&n->mu);
    grp_halt(n, g);
    log_info("group \"%s\" stopped on this node (its instances keep running)", name);
    pthread_mutex_lock(&n->mu);
    unlink_and_maybe_free(n, g);
}

int node_group_count(struct node *n, const char *name)
{
    struct fleet *f;
    struct ctl *c;
    void *h;
    if (node_group_ref(n, name, &f, &c, &h) != 0)
        return -1;
    int k = (int)fleet_snapshot(f, NULL, 0);
    node_group_unref(n, h);
    return k;
}

int node_group_delete(struct node *n, const char *name, int force, char *err, size_t errlen)
{
    pthread_mutex_lock(&n->mu);
    struct grp *g = find_locked(n, name, 0);
    if (!g) {
        pthread_mutex_unlock(&n->mu);
        snprintf(err, errlen, "group \"%s\" does not run on this node", name);
        return -1;
    }
    g->refs++;
    pthread_mutex_unlock(&n->mu);
    int rc = 0;
    if (!g->ctl) {
        snprintf(err, errlen, "group \"%s\": this process runs no controller for it", name);
        rc = -1;
        goto out;
    }
    if (!force && fleet_snapshot(g->fleet, NULL, 0) > 0) {
        snprintf(err, errlen, "group \"%s\" still has instances (force deletes them)", name);
        rc = -1;
        goto out;
    }
    /* the controller must not replace what we terminate */
    ctl_stop(g->ctl);
    struct prov_list live = PROV_LIST_INIT;
    int prc = provider_describe(g->prov, &live);
    if (prc == 0 && live.n > 0) {
        const char **ids = calloc(live.n, sizeof(*ids));
        if (!ids) {
            prc = PROV_ENOMEM;
        } else {
            for (size_t i = 0; i < live.n; i++)
                ids[i] = live.items[i].id;
            prc = provider_terminate(g->prov, ids, live.n);
            free(ids);
        }
    }
    if (prc != 0) {
        snprintf(err, errlen, "group \"%s\": cannot terminate its instances: %s", name,
                 provider_errmsg(g->prov));
        prov_list_release(&live);
        if (ctl_start(g->ctl) != 0)
            log_error("group \"%s\": cannot restart its controller", name);
        rc = -1;
        goto out;
    }
    log_info("group \"%s\" deleted: %zu instance%s terminated", name, live.n,
             live.n == 1 ? "" : "s");
    prov_list_release(&live);
out:
    pthread_mutex_lock(&n->mu);
    unlink_and_maybe_free(n, g); /* our reference */
    if (rc == 0)
        node_group_stop(n, name);
    return rc;
}

int node_group_running(struct node *n, const char *name)
{
    pthread_mutex_lock(&n->mu);
    int r = find_locked(n, name, 0) != NULL;
    pthread_mutex_unlock(&n->mu);
    return r;
}

void node_group_wake(struct node *n, const char *name)
{
    struct fleet *f;
    struct ctl *c;
    void *h;
    if (node_group_ref(n, name, &f, &c, &h) != 0)
        return;
    if (c)
        ctl_wake(c);
    node_group_unref(n, h);
}

void node_group_set_health(struct node *n, const char *name, const struct group_health *h)
{
    if (!n->mon)
        return;
    pthread_mutex_lock(&n->mu);
    struct grp *g = find_locked(n, name, 0);
    /* compared field by field: the struct's padding is not the store's business */
    int same =
        !g || (g->health.interval_ms == h->interval_ms && g->health.timeout_ms == h->timeout_ms &&
               g->health.healthy_threshold == h->healthy_threshold &&
               g->health.unhealthy_threshold == h->unhealthy_threshold &&
               strcmp(g->health.type, h->type) == 0);
    if (!same)
        g->health = *h;
    pthread_mutex_unlock(&n->mu);
    if (same)
        return;
    struct mon_group_settings gs;
    mon_settings_of(h, &gs);
    if (mon_set_group(n->mon, name, &gs) == 0)
        log_info("group \"%s\": health settings changed: polling every %" PRId64 " ms (timeout "
                 "%" PRId64 " ms, rise %d, fall %d)",
                 name, h->interval_ms, h->timeout_ms, h->healthy_threshold, h->unhealthy_threshold);
}

int node_group_ref(struct node *n, const char *name, struct fleet **fleet, struct ctl **ctl,
                   void **handle)
{
    pthread_mutex_lock(&n->mu);
    struct grp *g = find_locked(n, name, 0);
    if (g) {
        g->refs++;
        *fleet = g->fleet;
        *ctl = g->ctl;
        *handle = g;
    }
    pthread_mutex_unlock(&n->mu);
    return g ? 0 : -1;
}

void node_group_unref(struct node *n, void *handle)
{
    if (!handle)
        return;
    pthread_mutex_lock(&n->mu);
    unlink_and_maybe_free(n, handle);
}

int node_group_names(struct node *n, char ***names, size_t *count)
{
    pthread_mutex_lock(&n->mu);
    size_t k = 0;
    for (struct grp *g = n->groups; g; g = g->next)
        k += g->running != 0;
    char **v = calloc(k ? k : 1, sizeof(*v));
    size_t i = 0;
    for (struct grp *g = n->groups; v && g; g = g->next)
        if (g->running && (v[i] = strdup(g->name)) != NULL)
            i++;
    pthread_mutex_unlock(&n->mu);
    if (!v)
        return -1;
    *names = v;
    *count = i;
    return 0;
}

int node_ticking(struct node *n, int64_t now_ms, int64_t max_age_ms, char *why, size_t len)
{
    int ok = 1;
    pthread_mutex_lock(&n->mu);
    for (struct grp *g = n->groups; g && ok; g = g->next) {
        if (!g->running || !g->ctl)
            continue;
        struct ctl_status st;
        ctl_get_status(g->ctl, &st);
        if (st.last_tick_ms == 0 || now_ms - st.last_tick_ms > max_age_ms) {
            ok = 0;
            snprintf(why, len, "group \"%s\": no controller tick for %" PRId64 " ms", g->name,
                     st.last_tick_ms ? now_ms - st.last_tick_ms : -1);
        }
    }
    pthread_mutex_unlock(&n->mu);
    return ok;
}

int node_panicking(struct node *n, char *why, size_t len)
{
    int panic = 0;
    pthread_mutex_lock(&n->mu);
    for (struct grp *g = n->groups; g && !panic; g = g->next) {
        if (!g->running || !g->ctl)
            continue;
        struct ctl_status st;
        ctl_get_status(g->ctl, &st);
        if (st.panic && st.panic_total > 0) {
            panic = 1;
            snprintf(why, len,
                     "group \"%s\": panic: %d of %d instances (%d%%) fail their health checks "
                     "(panic_threshold %d%%): replacements stopped",
                     g->name, st.panic_failing, st.panic_total,
                     st.panic_failing * 100 / st.panic_total, st.panic_threshold);
        }
    }
    pthread_mutex_unlock(&n->mu);
    return panic;
}
