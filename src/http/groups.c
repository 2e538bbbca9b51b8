/*
 * groups.c - the endpoints about the node rather than one group: the list of
 * groups, creating and deleting a group, the cluster view, /metrics and the
 * probes.
 *
 * The list of groups is the store's (store_list_groups()): in a cluster every
 * node lists every group. Counts of a group run elsewhere are asked from its
 * owner ONCE per owner (GET /api/v1/groups?scope=local on it, which lists only
 * the groups that node runs and never proxies), falling back to the store's
 * rows ("live": false) when the owner cannot be reached.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "http/http_int.h"

#include "common/banned.h"

#define READY_TICK_MAX_MS 10000
#define OWNERS_MAX        64 /* distinct owners asked per GET /api/v1/groups; beyond: the store */

/* ---- GET /api/v1/groups -----------------------------------------------------------------------
 */

/* What one owner answered for GET /api/v1/groups?scope=local (NULL: unreachable). */
struct owner_answer {
    char api[HTTP_URL_MAX];
    json_t *groups; /* array, or NULL */
};

/* The owner's entry for group name, asked once per owner and request; NULL: not known. The
 * daemon's one thread waits for each owner, so after budget_ms spent on owners the rest are
 * not asked (their groups come from the store): dead owners cannot stall the API for long. */
static json_t *owner_entry(struct http_server *s, struct owner_answer *cache, size_t *ncache,
                           const char *api, const char *name, int64_t deadline_ms)
{
    size_t i = 0;
    for (; i < *ncache; i++)
        if (strcmp(cache[i].api, api) == 0)
            break;
    if (i == *ncache) {
        if (*ncache == OWNERS_MAX || clk_mono_ms() >= deadline_ms)
            return NULL;
        snprintf(cache[i].api, sizeof cache[i].api, "%s", api);
        cache[i].groups = NULL;
        char why[512];
        json_t *j = NULL;
        if (http__proxy_get(s, api, "/api/v1/groups?scope=local", &j, why, sizeof why) == 0 &&
            json_is_array(j))
            cache[i].groups = j;
        else {
            json_decref(j);
            log_info("http: cannot ask the owner at %s for its groups: %s", api, why);
        }
        (*ncache)++;
    }
    size_t k;
    json_t *g;
    json_array_foreach(cache[i].groups, k, g)
    {
        const char *n = json_string_value(json_object_get(g, "name"));
        if (n && strcmp(n, name) == 0)
            return g;
    }
    return NULL;
}

void http__list_groups(struct http_req *r, struct http_reply *rep)
{
    struct http_server *s = r->srv;
    const char *scope = http__query(r, "scope");
    int local_only = 0;
    if (scope && strcmp(scope, "local") == 0)
        local_only = 1;
    else if (scope && strcmp(scope, "all") != 0) {
        http__error(rep, 400, "invalid request",
                    "scope: \"%.32s\" is neither \"all\" nor \"local\"", scope);
        return;
    }
    /* a proxied request never proxies again */
    int may_proxy = !local_only && !http__header(r, HTTP_PROXIED_HEADER);
    char **names = NULL;
    size_t n = 0;
    int rc = store_list_groups(s->store, &names, &n);
    if (rc) {
        http__error(rep, 500, "internal error", "listing the groups failed: %s (%s)",
                    store_strerror(rc), store_errmsg(s->store));
        return;
    }
    struct owner_answer *cache = calloc(OWNERS_MAX, sizeof *cache);
    int64_t deadline = clk_mono_ms() + 2 * (int64_t)s->proxy_timeout_ms;
    size_t ncache = 0;
    json_t *arr = json_array();
    int ok = arr && cache;
    for (size_t i = 0; ok && i < n; i++) {
        struct group_settings g;
        if (store_get_settings(s->store, names[i], &g) != 0)
            continue; /* deleted meanwhile */
        struct http_group_ref ref;
        memset(&ref, 0, sizeof ref);
        int have = s->ops->group_get(s->ops_arg, names[i], &ref) == 0;
        if (!have)
            memset(&ref, 0, sizeof ref);
        json_t *o = NULL;
        if (have && !ref.fleet && ref.owner_api[0] && may_proxy) {
            json_t *remote = owner_entry(s, cache, &ncache, ref.owner_api, names[i], deadline);
            if (remote) {
                o = json_deep_copy(remote);
                ok = o != NULL;
            }
        }
        if (ok && !o && (!local_only || (have && ref.fleet))) {
            o = http__group_summary(s, &g, &ref, have);
            ok = o != NULL;
        }
        if (have && s->ops->group_put)
            s->ops->group_put(s->ops_arg, &ref);
        if (o && json_array_append_new(arr, o))
            ok = 0;
    }
    for (size_t i = 0; cache && i < ncache; i++)
        json_decref(cache[i].groups);
    free(cache);
    store_names_free(names, n);
    if (!ok) {
        json_decref(arr);
        http__error(rep, 500, "internal error", "out of memory");
        return;
    }
    http__json(rep, 200, arr);
}

/* ---- POST /api/v1/groups, DELETE /api/v1/groups/{name} --------------------------------------- */

static int errno_status(int rc, const char **error)
{
    switch (rc) {
    case -EEXIST:
        *error = "conflict";
        return 409;
    case -EBUSY:
        *error = "conflict";
        return 409;
    case -EINVAL:
        *error = "invalid group";
        return 400;
    case -ENOENT:
        *error = "not found";
        return 404;
    case -ENOSPC:
        *error = "insufficient storage";
        return 507;
    case -EAGAIN:
        *error = "unavailable";
        return 503;
    default:
        *error = "internal error";
        return 500;
    }
}

void http__create_group(struct http_req *r, struct http_reply *rep)
{
    struct http_server *s = r->srv;
    if (!s->ops->group_create) {
        http__error(rep, 501, "not implemented", "this asgd cannot create groups");
        return;
    }
    json_error_t je;
    json_t *spec = json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES, &je);
    if (!spec) {
        if (r->body_len == 0)
            http__error(rep, 400, "invalid JSON",
                        "the request has no body: send the group file's sections as a JSON "
                        "object, e.g. {\"group\": {\"name\": \"web\", ...}, \"provider\": "
                        "{\"type\": \"local\"}}");
        else
            http__error(rep, 400, "invalid JSON", "line %d, column %d: %s", je.line, je.column,
                        je.text);
        return;
    }
    const char *name = NULL;
    json_t *grp = json_object_get(spec, "group");
    if (!json_is_object(spec)) {
        http__error(rep, 400, "invalid group", "the body must be a JSON object");
        goto out;
    }
    if (!json_is_object(grp)) {
        http__error(rep, 400, "invalid group", "group: must be an object with at least \"name\"");
        goto out;
    }
    json_t *jn = json_object_get(grp, "name");
    if (!json_is_string(jn)) {
        http__error(rep, 400, "invalid group", "group.name: must be a string");
        goto out;
    }
    name = json_string_value(jn);
    if (!http__name_valid(name)) {
        http__error(rep, 400, "invalid group",
                    "group.name: a group name is 1 to %d letters, digits, '-', '_' or '.', not "
                    "starting with '.'",
                    GROUP_NAME_MAX - 1);
        goto out;
    }
    struct group_settings g;
    if (store_get_settings(s->store, name, &g) == 0) {
        http__error(rep, 409, "conflict", "group \"%s\" exists already", name);
        goto out;
    }
    char err[512] = "";
    int rc = s->ops->group_create(s->ops_arg, spec, err, sizeof err);
    if (rc) {
        const char *e;
        int st = errno_status(rc, &e);
        if (rc == -EEXIST && !err[0])
            snprintf(err, sizeof err, "group \"%s\" exists already", name);
        http__error(rep, st, e, "%s", err[0] ? err : "the group cannot be created");
        goto out;
    }
    log_info("http: group \"%s\" created through the API", name);
    struct http_group_ref ref;
    memset(&ref, 0, sizeof ref);
    int have = s->ops->group_get(s->ops_arg, name, &ref) == 0;
    if (!have)
        memset(&ref, 0, sizeof ref);
    json_t *j = NULL;
    if (store_get_settings(s->store, name, &g) == 0)
        j = http__group_summary(s, &g, &ref, have);
    if (have && s->ops->group_put)
        s->ops->group_put(s->ops_arg, &ref);
    http__json(rep, 201, j ? j : json_pack("{s:s}", "name", name));
out:
    json_decref(spec);
}

void http__delete_group(struct http_req *r, struct http_reply *rep)
{
    struct http_server *s = r->srv;
    if (!s->ops->group_delete) {
        http__error(rep, 501, "not implemented", "this asgd cannot delete groups");
        return;
    }
    int force = 0;
    const char *q = http__query(r, "force");
    if (q) {
        if (strcmp(q, "true") == 0 || strcmp(q, "1") == 0)
            force = 1;
        else if (strcmp(q, "false") != 0 && strcmp(q, "0") != 0) {
            http__error(rep, 400, "invalid request", "force: \"%.32s\" is neither true nor false",
                        q);
            return;
        }
    }
    char err[512] = "";
    int rc = s->ops->group_delete(s->ops_arg, r->group, force, err, sizeof err);
    if (rc) {
        const char *e;
        int st = errno_status(rc, &e);
        if (rc == -EBUSY && !err[0])
            snprintf(err, sizeof err,
                     "group \"%s\" still has instances: terminate them first or delete with "
                     "?force=true",
                     r->group);
        http__error(rep, st, e, "%s", err[0] ? err : "the group cannot be deleted");
        return;
    }
    log_info("http: group \"%s\" deleted through the API%s", r->group,
             force ? " (forced: its instances are terminated)" : "");
    http__json(rep, force ? 202 : 200,
               json_pack("{s:s, s:b, s:b}", "name", r->group, "deleted", 1, "force", force));
}

/* ---- GET /api/v1/cluster ----------------------------------------------------------------------
 */

void http__get_cluster(struct http_req *r, struct http_reply *rep)
{
    struct http_server *s = r->srv;
    json_t *c = s->ops->cluster ? s->ops->cluster(s->ops_arg) : NULL;
    if (c) {
        if (!json_is_object(c) || !json_is_array(json_object_get(c, "nodes"))) {
            json_decref(c);
            http__error(rep, 500, "internal error",
                        "the node described the cluster without "
                        "\"nodes\"");
            return;
        }
        if (!json_object_get(c, "mode"))
            json_object_set_new(c, "mode", json_string("cluster"));
        http__json(rep, 200, c);
        return;
    }
    /* single node: this one, running every group of its store */
    char **names = NULL;
    size_t n = 0;
    int rc = store_list_groups(s->store, &names, &n);
    if (rc) {
        http__error(rep, 500, "internal error", "listing the groups failed: %s (%s)",
                    store_strerror(rc), store_errmsg(s->store));
        return;
    }
    char host[HTTP_NODE_MAX] = "";
    const char *self = s->node;
    if (!self[0]) {
        if (gethostname(host, sizeof host - 1) != 0)
            snprintf(host, sizeof host, "localhost");
        self = host;
    }
    json_t *groups = json_array();
    for (size_t i = 0; groups && i < n; i++)
        if (json_array_append_new(groups, json_string(names[i]))) {
            json_decref(groups);
            groups = NULL;
        }
    store_names_free(names, n);
    json_t *j = groups ? json_pack("{s:s, s:s, s:[{s:s, s:n, s:b, s:b, s:o, s:n}]}", "mode",
                                   "single", "self", self, "nodes", "name", self, "api", "alive", 1,
                                   "self", 1, "groups", groups, "lease")
                       : NULL;
    http__json(rep, 200, j);
}

/* ---- /metrics, probes -------------------------------------------------------------------------
 */

/* The groups this node runs, each with a reference the caller puts back (put_refs()). */
struct held {
    struct http_group_ref ref;
    struct group_settings g;
    int have_settings;
    struct fleet_slot *slots;
    size_t n;
    struct ctl_status cs;
};

static void put_refs(struct http_server *s, struct held *h, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(h[i].slots);
        if (s->ops->group_put)
            s->ops->group_put(s->ops_arg, &h[i].ref);
    }
    free(h);
}

/* Every group of the store that this node runs (ref.fleet != NULL). -1 on a store error. */
static int local_groups(struct http_server *s, struct held **out, size_t *nout)
{
    char **names = NULL;
    size_t n = 0;
    *out = NULL;
    *nout = 0;
    if (store_list_groups(s->store, &names, &n))
        return -1;
    struct held *h = n ? calloc(n, sizeof *h) : NULL;
    if (n && !h) {
        store_names_free(names, n);
        return -1;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        struct held *x = &h[k];
        memset(x, 0, sizeof *x);
        if (s->ops->group_get(s->ops_arg, names[i], &x->ref) != 0)
            continue;
        if (!x->ref.fleet) {
            if (s->ops->group_put)
                s->ops->group_put(s->ops_arg, &x->ref);
            continue;
        }
        snprintf(x->ref.name, sizeof x->ref.name, "%s", names[i]);
        x->have_settings = store_get_settings(s->store, names[i], &x->g) == 0;
        k++;
    }
    store_names_free(names, n);
    *out = h;
    *nout = k;
    return 0;
}

void http__get_metrics(struct http_req *r, struct http_reply *rep)
{
    struct http_server *s = r->srv;
    struct held *h = NULL;
    size_t n = 0;
    if (local_groups(s, &h, &n)) {
        http__error(rep, 500, "internal error", "listing the groups failed: %s",
                    store_errmsg(s->store));
        return;
    }
    struct http_prom_group *pg = n ? calloc(n, sizeof *pg) : NULL;
    if (n && !pg) {
        put_refs(s, h, n);
        http__error(rep, 500, "internal error", "out of memory");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        h[i].slots = http__snapshot(h[i].ref.fleet, &h[i].n);
        if (h[i].ref.ctl)
            ctl_get_status(h[i].ref.ctl, &h[i].cs);
        pg[i] = (struct http_prom_group){
            .group = h[i].ref.name,
            .settings = h[i].have_settings ? &h[i].g : NULL,
            .slots = h[i].slots,
            .n_slots = h[i].slots ? h[i].n : 0,
            .ctl = h[i].ref.ctl ? &h[i].cs : NULL,
        };
    }
    struct http_prom_input in = {.groups = pg, .n_groups = n, .stats = &stats};
    struct http_buf b = HTTP_BUF_INIT;
    int rc = http__prom_render(&b, &in);
    free(pg);
    put_refs(s, h, n);
    if (rc) {
        http__buf_release(&b);
        http__error(rep, 500, "internal error", "out of memory while rendering metrics");
        return;
    }
    rep->status = 200;
    rep->ctype = "text/plain; version=0.0.4; charset=utf-8";
    rep->body = http__buf_take(&b, &rep->len);
}

void http__get_healthz(struct http_req *r, struct http_reply *rep)
{
    (void)r;
    http__json(rep, 200, json_pack("{s:s, s:s}", "status", "ok", "version", ASGD_VERSION));
}

void http__get_readyz(struct http_req *r, struct http_reply *rep)
{
    struct http_server *s = r->srv;
    char **names = NULL;
    size_t ng = 0;
    /* the node's own verdict first: it is cheap, and when the store has lost its quorum a
       store read would block the probe for the store's whole timeout */
    if (s->ops->ready) {
        char why[512] = "";
        if (s->ops->ready(s->ops_arg, why, sizeof why) != 1) {
            http__error(rep, 503, "not ready", "%s", why[0] ? why : "the node is not ready");
            return;
        }
    }
    int rc = store_list_groups(s->store, &names, &ng);
    if (rc) {
        http__error(rep, 503, "not ready", "the store cannot be read: %s", store_errmsg(s->store));
        return;
    }
    store_names_free(names, ng);
    if (s->ops->ready) {
        char why[512] = "";
        if (s->ops->ready(s->ops_arg, why, sizeof why) != 1) {
            http__error(rep, 503, "not ready", "%s", why[0] ? why : "the node is not ready");
            return;
        }
        http__json(rep, 200, json_pack("{s:s, s:i}", "status", "ready", "groups", (int)ng));
        return;
    }
    /* default: every group run here has settings and a recent controller tick */
    struct held *h = NULL;
    size_t n = 0;
    if (local_groups(s, &h, &n)) {
        http__error(rep, 503, "not ready", "the store cannot be read: %s", store_errmsg(s->store));
        return;
    }
    if (n == 0) {
        put_refs(s, h, n);
        http__error(rep, 503, "not ready", "this asgd runs no group yet");
        return;
    }
    int64_t now = clk_wall_ms(), oldest = INT64_MAX;
    for (size_t i = 0; i < n; i++) {
        const char *g = h[i].ref.name;
        if (!h[i].have_settings) {
            http__error(rep, 503, "not ready",
                        "the settings of group \"%s\" cannot be read: not seeded yet", g);
            put_refs(s, h, n);
            return;
        }
        int64_t last;
        if (h[i].ref.ctl) {
            struct ctl_status cs;
            ctl_get_status(h[i].ref.ctl, &cs);
            last = cs.last_tick_ms;
        } else {
            last = fleet_last_heartbeat(h[i].ref.fleet, 1);
        }
        if (last <= 0) {
            http__error(rep, 503, "not ready",
                        "the controller of group \"%s\" has not completed a tick yet", g);
            put_refs(s, h, n);
            return;
        }
        if (now - last > READY_TICK_MAX_MS) {
            http__error(rep, 503, "not ready",
                        "the last tick of the controller of group \"%s\" was %lld ms ago", g,
                        (long long)(now - last));
            put_refs(s, h, n);
            return;
        }
        if (last < oldest)
            oldest = last;
    }
    put_refs(s, h, n);
    char at[40];
    clk_iso8601(oldest, at, sizeof at);
    http__json(
        rep, 200,
        json_pack("{s:s, s:s, s:i}", "status", "ready", "last_tick_at", at, "groups", (int)n));
}
