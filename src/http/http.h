/*
 * http.h - asgd's HTTP face: the JSON API v1, the dashboard, /metrics.
 *
 * A node (one asgd) runs some groups; in cluster mode every node answers the
 * API for EVERY group of the cluster. Settings, activities and history come
 * from the shared store, live instances from the fleet table of the node that
 * runs the group (its owner). Routes (docs/api.md has the details):
 *
 *   GET    /api/v1/groups                       every group: sizes, counts, load, owner
 *   POST   /api/v1/groups                       create (the group file's keys as JSON) -> 201
 *   GET    /api/v1/groups/{name}                settings + counts (+ owner, live)
 *   PATCH  /api/v1/groups/{name}                change settings (optimistic revision)
 *   DELETE /api/v1/groups/{name}[?force=true]   409 while instances exist unless force
 *   GET    /api/v1/groups/{name}/instances[?limit=N&after=ID]
 *   POST   /api/v1/groups/{name}/instances/{id}/terminate {"decrement_desired": bool}
 *   GET    /api/v1/groups/{name}/activities?limit=N&before=ID
 *   GET    /api/v1/groups/{name}/metrics/history?since=T
 *   GET    /api/v1/cluster                      nodes, their groups, lease health
 *   GET    /api/v1/group, /api/v1/instances, POST /api/v1/instances/{id}/terminate,
 *          /api/v1/activities, /api/v1/metrics/history
 *                                               the same for THE group while the store
 *                                               holds exactly one (else 409 naming the
 *                                               /api/v1/groups/{name}/... route)
 *   GET    /metrics                             Prometheus text, every family labelled
 *                                               by group, for the groups run here
 *   GET    /healthz, /readyz                    liveness / readiness (ops->ready)
 *   POST   /api/v1/reload, GET /api/v1/reload   re-read the files (ops->reload), last report
 *   GET    /api/v1/openapi.json                 the OpenAPI 3 document of this API
 *                                               (src/http/assets/openapi.json)
 *   GET    /                                    the dashboard (assets in the binary)
 *
 * For a group this node does not run (ref.fleet == NULL), live reads are
 * proxied to the owner's API (owner_api, libcurl, short timeout) and fall back
 * to the store's instance rows marked "live": false when it cannot be reached;
 * PATCH only writes the store (the owner watches it); terminate goes to
 * ops->request_terminate.
 *
 * Threads: requests are handled one at a time on the daemon's polling thread,
 * through the store handle given in http_deps, which only that thread uses.
 * Every http_node_ops callback is therefore called from that one thread, never
 * concurrently with itself or another callback of the same server; the node
 * must make them safe against its OWN threads (ownership changes, group
 * start/stop) and must not block in them for long (no provider calls: queue
 * the work and return).
 *
 * Auth: every mutating request (PATCH, POST, DELETE) needs "Authorization:
 * Bearer <token>", compared in constant time; without a configured token
 * mutations are refused (401). Reads are open: bind to loopback unless a proxy
 * in front does the access control. Bodies are capped (413). Every error
 * answer is JSON {"error": "<short reason>", "detail": "<what to do>"}.
 *
 * Errors: 0 or -1 with a message in err (always NUL-terminated).
 */
#ifndef ASGD_HTTP_H
#define ASGD_HTTP_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "group/group.h"

struct fleet;
struct ctl;
struct store;
struct http_server;

#define HTTP_DEFAULT_LISTEN   "127.0.0.1:8080"
#define HTTP_DEFAULT_MAX_BODY (64 * 1024)
#define HTTP_NODE_MAX         64  /* node name, NUL included */
#define HTTP_URL_MAX          256 /* API base URL, NUL included */
/* Default time a proxied read waits for the owner before falling back to the store. */
#define HTTP_DEFAULT_PROXY_TIMEOUT_MS 2000

/*
 * What the node tells the server about one group, filled by
 * http_node_ops.group_get and valid until the matching group_put.
 */
struct http_group_ref {
    char name[GROUP_NAME_MAX];
    /* The group's live state when THIS node runs it, else NULL. Borrowed: the
     * node keeps both alive (and the ctl's thread running or not: ctl calls
     * are thread-safe) until group_put, even if it stops running the group
     * meanwhile. ctl may be NULL with a fleet (a monitor-only process): then
     * terminate answers 503 and settings changes wait for the next tick. */
    struct fleet *fleet;
    struct ctl *ctl;
    /* The node that runs the group and its API base URL ("http://10.0.0.2:8080",
     * no trailing slash), "" when unknown (no owner right now, single node).
     * When fleet == NULL and owner_api != "", live reads are proxied there. */
    char owner_node[HTTP_NODE_MAX];
    char owner_api[HTTP_URL_MAX];
    /* The node's own bookkeeping (e.g. the reference it must drop in group_put). */
    void *priv;
};

/*
 * The node behind the API. Every op is called on the HTTP thread only (see
 * above); arg is http_deps.ops_arg. Strings passed in are valid during the
 * call only; names are already checked (letters, digits, '-', '_', '.', not
 * starting with '.', 1..GROUP_NAME_MAX-1 bytes). err buffers receive an
 * operator message (NUL-terminated) that the server returns as "detail".
 * Return codes are 0 or a NEGATIVE errno value, mapped to HTTP as listed.
 */
struct http_node_ops {
    /*
     * REQUIRED. Fills *out (zeroed by the server first) for group name. Return
     * 0 when the node knows the group (runs it, or knows who does, or knows it
     * has no owner right now); -ENOENT when it knows nothing of it: the server
     * then relies on the store alone (the group exists iff the store has its
     * settings; else 404). Must not block. Every 0 is followed by exactly one
     * group_put(out) on the same thread before the request ends.
     */
    int (*group_get)(void *arg, const char *name, struct http_group_ref *out);
    /* Optional (NULL: nothing to release). Releases what group_get took. */
    void (*group_put)(void *arg, struct http_group_ref *ref);
    /*
     * Optional (NULL: 501). POST /api/v1/groups. spec is the request body, a
     * JSON object shaped like a group file: {"group": {"name": ..., "min_size":
     * ...}, "policy": {...}, "health": {...}, "provider": {"type": "local"},
     * "local": {...}, "ec2": {...}} (borrowed). The node validates it (every
     * key, as the config file does), persists it (settings + spec in the store)
     * and starts running it or leaves it to ownership. 0 created; -EEXIST ->
     * 409; -EINVAL -> 400 naming the bad key in err; -ENOSPC -> 507 (no room
     * for another group); other -> 500. The server answers 201 with the
     * group as GET /api/v1/groups/{name} shows it, read back from the store.
     */
    int (*group_create)(void *arg, const json_t *spec, char *err, size_t errlen);
    /*
     * Optional (NULL: 501). DELETE /api/v1/groups/{name}. Stops the group and
     * removes it from the store. Without force: -EBUSY (409) while the group
     * has instances (any not terminated). With force: terminates them first
     * (as AWS ForceDelete), possibly asynchronously: return 0 once the
     * deletion is decided and recorded. 0 -> 200 without force, 202 with
     * force (terminations may still be running); -ENOENT -> 404; -EAGAIN ->
     * 503; other -> 500.
     */
    int (*group_delete)(void *arg, const char *name, int force, char *err, size_t errlen);
    /*
     * Optional (NULL: 503 for groups not run here). Called for POST .../terminate
     * when ref.ctl == NULL (another node runs the group): record the request
     * for the owner (e.g. store_request_add(); the owner watches and applies
     * it) and return. 0 -> 202; -ENOENT -> 404 (unknown instance); -EINVAL ->
     * 400; -EBUSY -> 409 (cannot be terminated now); -EAGAIN -> 503; other 500.
     * When this node runs the group the server calls ctl_request_terminate().
     */
    int (*request_terminate)(void *arg, const char *group, const char *id, int decrement, char *err,
                             size_t errlen);
    /*
     * Optional. GET /api/v1/cluster. A NEW reference the server decrefs, or
     * NULL (also a NULL op): single node, the server answers with this node
     * and the store's groups. Shape (keys beyond these pass through):
     *   {"mode": "cluster", "self": "node-a",
     *    "store": {"type": "etcd", "ok": true, "detail": ""},
     *    "nodes": [{"name": "node-a", "api": "http://127.0.0.1:8080",
     *               "alive": true, "self": true, "groups": ["web", ...],
     *               "lease": {"ok": true, "ttl_ms": 5000, "last_renewal_ms_ago": 1200,
     *                         "detail": ""}}, ...]}
     * "nodes" and each node's "name" and "groups" are required.
     */
    json_t *(*cluster)(void *arg);
    /*
     * Optional. /readyz: 1 ready, 0 not (503 with why as the detail, e.g.
     * "etcd quorum lost: no provider action until it is back"). Called on
     * every probe: cheap, no I/O that can block. NULL op: ready once the
     * store answers and every group run here has had a controller tick in the
     * last 10 s.
     */
    int (*ready)(void *arg, char *why, size_t len);
    /*
     * Optional (NULL: 501). POST /api/v1/reload: asks the node to re-read its
     * configuration files, as SIGHUP does. Must not reload on this thread (a
     * reload may start groups): hand it over and return. *generation gets a
     * number the report of the reload answering this request will carry as
     * "generation" (>= it). 0 -> 202 {"requested": true, "generation": N};
     * negative errno -> 500.
     */
    int (*reload)(void *arg, int64_t *generation);
    /*
     * Optional (NULL: 501). GET /api/v1/reload: the report of the last reload
     * (asgd/reload.h's shape plus "generation", and "in_progress": a reload
     * asked through the API is not reported yet; only those two while the
     * first one runs), a NEW reference the server decrefs; NULL: no reload
     * since the node started (404).
     */
    json_t *(*reload_status)(void *arg);
};

struct http_deps {
    /* "HOST:PORT" with a numeric host ("127.0.0.1:8080", "0.0.0.0:80",
     * "[::1]:8080"); port 0 picks a free port (see http_bound_port()). NULL:
     * HTTP_DEFAULT_LISTEN. Copied. */
    const char *listen;
    /* Bearer token for mutating requests, copied; NULL or "": every mutation
     * answers 401 (read-only API). */
    const char *token;
    /* Borrowed, must outlive the server and be used by NO other thread (a
     * sqlite or etcd handle opened for the server). Required. Settings,
     * activities, history and the list of groups (store_list_groups()) come
     * from it; PATCH writes it. */
    struct store *store;
    /* The node. Both borrowed and must outlive the server. Required. */
    const struct http_node_ops *ops;
    void *ops_arg;
    /* This node's name, shown as the owner of the groups it runs when
     * group_get leaves owner_node empty. NULL or "": none. Copied. */
    const char *node;
    /* How long a proxied read waits for the owner; 0: HTTP_DEFAULT_PROXY_TIMEOUT_MS. */
    int proxy_timeout_ms;
    /* Request body cap in bytes; 0: HTTP_DEFAULT_MAX_BODY. */
    size_t max_body;
    /* HTTPS: certificate chain and key PEM files (both or neither; read at start and
     * by http_reload_tls()). NULL: plain HTTP, with a warning when listen is not a
     * loopback address and a token is set (it would cross the network in clear). */
    const char *tls_cert_file, *tls_key_file;
    /* CA bundle verifying the other nodes' https:// APIs for proxied reads (copied);
     * NULL: the system's CAs. */
    const char *tls_ca_file;
};

/*
 * Binds and starts serving on a thread of its own. On
 * success *out owns the server (http_free()); on failure *out is untouched
 * and err says what failed ("cannot listen on 127.0.0.1:8080: Address already
 * in use").
 */
int http_start(const struct http_deps *deps, struct http_server **out, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/*
 * Re-reads the HTTPS certificate and key files (SIGHUP); the next handshakes
 * use them, connections already open keep theirs. 0 when reloaded or when
 * the server has no TLS; -1 with err when a file is bad (the previous
 * certificate stays). Thread-safe.
 */
int http_reload_tls(struct http_server *s, char *err, size_t errlen);

/* The TCP port actually bound (useful after asking for port 0). */
uint16_t http_bound_port(const struct http_server *s);
/* Stops accepting, finishes the request in progress, joins the thread. Idempotent. */
void http_stop(struct http_server *s);
/* http_stop() then frees everything. NULL is a no-op. */
void http_free(struct http_server *s);

/*
 * Reads a bearer token from path: the first line, surrounding whitespace
 * removed. *out is malloc'd (caller frees). -1 with a message if the file
 * cannot be read or holds no token. Used by asgd ([api] token_file) and asgctl.
 */
int http_token_load(const char *path, char **out, char *err, size_t errlen);

/* 1 if a and b are equal, in time that depends only on their lengths. NULL never matches. */
int http_token_equal(const char *a, const char *b);

#endif
