/*
 * routes.c - the route table of API v1 and the resolution of the group a
 * request is about.
 *
 * Three kinds of routes: node routes (the list of groups, the cluster,
 * probes), group routes (/api/v1/groups/{name}/...: the first '*' is the
 * group), and the single-group routes of the first API (/api/v1/group, ...)
 * which keep working while the store holds exactly one group. For the last
 * two the dispatcher checks the name, asks the node what it knows of the
 * group (ops->group_get) and releases it (ops->group_put) after the handler,
 * so handlers see a filled struct http_group_ref and never look a group up
 * themselves.
 *
 * Runs on the daemon's thread only (see http.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/http_int.h"

#include "common/banned.h"

typedef void (*handler_fn)(struct http_req *r, struct http_reply *rep);

enum route_scope {
    SCOPE_NODE,   /* no group; '*' (if any) is the param */
    SCOPE_GROUP,  /* first '*' is the group name, second (if any) the param */
    SCOPE_SINGLE, /* the store's only group; '*' (if any) is the param */
};

struct http_route {
    const char *method;
    const char *pattern; /* '*' matches one non-empty path segment */
    handler_fn fn;
    enum route_scope scope;
    const char *allow; /* every method of this pattern, for 405 */
};

#define G_ALLOW "GET, HEAD, PATCH, DELETE"
static const struct http_route routes[] = {
    {"GET", "/api/v1/groups", http__list_groups, SCOPE_NODE, "GET, HEAD, POST"},
    {"POST", "/api/v1/groups", http__create_group, SCOPE_NODE, "GET, HEAD, POST"},
    {"GET", "/api/v1/groups/*", http__get_group, SCOPE_GROUP, G_ALLOW},
    {"PATCH", "/api/v1/groups/*", http__patch_group, SCOPE_GROUP, G_ALLOW},
    {"DELETE", "/api/v1/groups/*", http__delete_group, SCOPE_GROUP, G_ALLOW},
    {"GET", "/api/v1/groups/*/instances", http__get_instances, SCOPE_GROUP, "GET, HEAD, POST"},
    {"POST", "/api/v1/groups/*/instances", http__post_attach, SCOPE_GROUP, "GET, HEAD, POST"},
    {"POST", "/api/v1/groups/*/instances/*/terminate", http__post_terminate, SCOPE_GROUP, "POST"},
    {"POST", "/api/v1/groups/*/suspend", http__post_suspend, SCOPE_GROUP, "POST"},
    {"POST", "/api/v1/groups/*/resume", http__post_resume, SCOPE_GROUP, "POST"},
    /* lifecycle (issue 12, docs/lifecycle.md) */
    {"GET", "/api/v1/groups/*/hooks", http__get_hooks, SCOPE_GROUP, "GET, HEAD, PUT, PATCH"},
    {"PUT", "/api/v1/groups/*/hooks", http__put_hooks, SCOPE_GROUP, "GET, HEAD, PUT, PATCH"},
    {"PATCH", "/api/v1/groups/*/hooks", http__put_hooks, SCOPE_GROUP, "GET, HEAD, PUT, PATCH"},
    {"PATCH", "/api/v1/groups/*/instances/*", http__patch_instance, SCOPE_GROUP, "PATCH"},
    {"POST", "/api/v1/groups/*/instances/*/lifecycle", http__post_lifecycle, SCOPE_GROUP, "POST"},
    {"POST", "/api/v1/groups/*/instances/*/standby", http__post_standby, SCOPE_GROUP, "POST"},
    {"POST", "/api/v1/groups/*/instances/*/exit-standby", http__post_exit_standby, SCOPE_GROUP,
     "POST"},
    {"POST", "/api/v1/groups/*/instances/*/detach", http__post_detach, SCOPE_GROUP, "POST"},
    {"GET", "/api/v1/groups/*/instance-refresh", http__get_refresh, SCOPE_GROUP, "GET, HEAD, POST"},
    {"POST", "/api/v1/groups/*/instance-refresh", http__post_refresh, SCOPE_GROUP,
     "GET, HEAD, POST"},
    {"POST", "/api/v1/groups/*/instance-refresh/cancel", http__post_refresh_cancel, SCOPE_GROUP,
     "POST"},
    {"POST", "/api/v1/groups/*/instance-refresh/resume", http__post_refresh_resume, SCOPE_GROUP,
     "POST"},
    {"POST", "/api/v1/groups/*/instance-refresh/rollback", http__post_refresh_rollback, SCOPE_GROUP,
     "POST"},
    {"GET", "/api/v1/groups/*/activities", http__get_activities, SCOPE_GROUP, "GET, HEAD"},
    {"GET", "/api/v1/groups/*/metrics/history", http__get_history, SCOPE_GROUP, "GET, HEAD"},
    {"POST", "/api/v1/groups/*/simulate", http__post_simulate, SCOPE_GROUP, "POST"},
    {"GET", "/api/v1/cluster", http__get_cluster, SCOPE_NODE, "GET, HEAD"},
    {"GET", "/api/v1/group", http__get_group, SCOPE_SINGLE, "GET, HEAD, PATCH"},
    {"PATCH", "/api/v1/group", http__patch_group, SCOPE_SINGLE, "GET, HEAD, PATCH"},
    {"GET", "/api/v1/instances", http__get_instances, SCOPE_SINGLE, "GET, HEAD"},
    {"POST", "/api/v1/instances/*/terminate", http__post_terminate, SCOPE_SINGLE, "POST"},
    {"POST", "/api/v1/group/suspend", http__post_suspend, SCOPE_SINGLE, "POST"},
    {"POST", "/api/v1/group/resume", http__post_resume, SCOPE_SINGLE, "POST"},
    {"GET", "/api/v1/activities", http__get_activities, SCOPE_SINGLE, "GET, HEAD"},
    {"GET", "/api/v1/metrics/history", http__get_history, SCOPE_SINGLE, "GET, HEAD"},
    {"POST", "/api/v1/simulate", http__post_simulate, SCOPE_SINGLE, "POST"},
    {"GET", "/metrics", http__get_metrics, SCOPE_NODE, "GET, HEAD"},
    {"GET", "/healthz", http__get_healthz, SCOPE_NODE, "GET, HEAD"},
    {"GET", "/readyz", http__get_readyz, SCOPE_NODE, "GET, HEAD"},
    {"GET", "/api/v1/reload", http__get_reload, SCOPE_NODE, "GET, HEAD, POST"},
    {"POST", "/api/v1/reload", http__post_reload, SCOPE_NODE, "GET, HEAD, POST"},
    {"GET", "/api/v1/openapi.json", http__get_openapi, SCOPE_NODE, "GET, HEAD"},
};
#define N_ROUTES (sizeof routes / sizeof routes[0])

/* 1 if path matches pattern; the '*' segments are copied into seg[0], seg[1]. */
static int match(const char *pattern, const char *path, char *seg0, char *seg1)
{
    int k = 0;
    while (*pattern && *path) {
        if (*pattern == '*') {
            size_t n = strcspn(path, "/");
            if (n == 0 || n >= HTTP_PARAM_MAX || k >= 2)
                return 0;
            char *dst = k == 0 ? seg0 : seg1;
            memcpy(dst, path, n);
            dst[n] = '\0';
            k++;
            path += n;
            pattern++;
            continue;
        }
        if (*pattern != *path)
            return 0;
        pattern++;
        path++;
    }
    return *pattern == '\0' && *path == '\0';
}

int http__resolve(const char *method, const char *path, const struct http_route **route, char *seg0,
                  char *seg1, const char **allow)
{
    const char *m = strcmp(method, "HEAD") == 0 ? "GET" : method;
    *allow = NULL;
    *route = NULL;
    seg0[0] = seg1[0] = '\0';
    for (size_t i = 0; i < N_ROUTES; i++) {
        if (!match(routes[i].pattern, path, seg0, seg1))
            continue;
        if (!*allow)
            *allow = routes[i].allow;
        if (strcmp(routes[i].method, m) == 0) {
            *route = &routes[i];
            *allow = NULL;
            return 0;
        }
    }
    if (*allow)
        return 405;
    seg0[0] = seg1[0] = '\0';
    return 0;
}

int http__name_valid(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n >= GROUP_NAME_MAX || name[0] == '.')
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.'))
            return 0;
    }
    return 1;
}

/* The store's only group into name; else an error answer (503 none yet, 409 several). */
static int single_group(struct http_server *s, char *name, size_t len, struct http_reply *rep)
{
    char **names = NULL;
    size_t n = 0;
    int rc = store_list_groups(s->store, &names, &n);
    if (rc) {
        http__error(rep, 500, "internal error", "listing the groups failed: %s (%s)",
                    store_strerror(rc), store_errmsg(s->store));
        return -1;
    }
    if (n == 1) {
        snprintf(name, len, "%s", names[0]);
        store_names_free(names, n);
        return 0;
    }
    if (n == 0) {
        http__error(rep, 503, "not ready",
                    "the store holds no group yet (asgd is starting, or create one with POST "
                    "/api/v1/groups)");
    } else {
        char list[256] = "";
        size_t used = 0;
        for (size_t i = 0; i < n && used + 8 < sizeof list; i++) {
            int k = snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "", names[i]);
            if (k < 0 || (size_t)k >= sizeof list - used) {
                snprintf(list + used, sizeof list - used, ", ...");
                break;
            }
            used += (size_t)k;
        }
        http__error(rep, 409, "several groups",
                    "this asgd serves %zu groups (%s): name one with /api/v1/groups/{name}/... "
                    "(asgctl -g NAME)",
                    n, list);
    }
    store_names_free(names, n);
    return -1;
}

void http__dispatch(const struct http_route *route, const char *seg0, const char *seg1,
                    struct http_req *r, struct http_reply *rep)
{
    struct http_server *s = r->srv;
    if (route->scope == SCOPE_NODE) {
        r->param = seg0[0] ? seg0 : NULL;
        route->fn(r, rep);
        return;
    }
    char name[GROUP_NAME_MAX];
    if (route->scope == SCOPE_GROUP) {
        if (!http__name_valid(seg0)) {
            http__error(rep, 400, "invalid group name",
                        "a group name is 1 to %d letters, digits, '-', '_' or '.', not starting "
                        "with '.'",
                        GROUP_NAME_MAX - 1);
            return;
        }
        snprintf(name, sizeof name, "%s", seg0);
        r->param = seg1[0] ? seg1 : NULL;
    } else {
        if (single_group(s, name, sizeof name, rep))
            return;
        r->param = seg0[0] ? seg0 : NULL;
    }
    struct http_group_ref ref;
    memset(&ref, 0, sizeof ref);
    int have = s->ops->group_get(s->ops_arg, name, &ref) == 0;
    if (!have) {
        memset(&ref, 0, sizeof ref);
        struct group_settings g;
        int rc = store_get_settings(s->store, name, &g);
        if (rc == STORE_ENOENT) {
            http__error(rep, 404, "not found", "no group \"%s\" (GET /api/v1/groups lists them)",
                        name);
            return;
        }
        if (rc) {
            http__error(rep, 500, "internal error", "reading group \"%s\" failed: %s (%s)", name,
                        store_strerror(rc), store_errmsg(s->store));
            return;
        }
    }
    snprintf(ref.name, sizeof ref.name, "%s", name);
    r->group = ref.name;
    r->ref = &ref;
    r->have_ref = have;
    route->fn(r, rep);
    r->ref = NULL;
    r->group = NULL;
    if (have && s->ops->group_put)
        s->ops->group_put(s->ops_arg, &ref);
}
