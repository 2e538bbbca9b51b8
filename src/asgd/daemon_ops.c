/*
 * daemon_ops.c - the node operations the HTTP API calls (http.h's struct
 * http_node_ops, see daemon_int.h): borrow a running group or name its
 * owner, create and delete groups, record requests for the owner, the
 * cluster view, readiness and reload.
 *
 * Separate because it all runs on the HTTP thread with d->http_store, and
 * answers for groups this node does not run (in a cluster, through the
 * store and the ownership cache), which the rest of the daemon never does.
 */
#include "asgd/daemon_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "asgd/reload.h"
#include "common/clock.h"
#include "common/log.h"
#include "node/node.h"

#include "common/banned.h"

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
    if (!d->cluster && daemon__start_group(d, d->http_store, name, NULL, 0) != 0)
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

const struct http_node_ops daemon__node_ops = {
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
