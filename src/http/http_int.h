/*
 * http_int.h - internals shared by the files of the http module (http__ prefix).
 *
 * server.c owns the daemon, the request life cycle (body cap, auth) and error
 * answers; routes.c the route table and the resolution of the group a request
 * names; api.c the endpoints of one group; groups.c those of the node (the
 * list of groups, create, delete, cluster, /metrics, probes); proxy.c the
 * reads forwarded to a group's owner; group_json.c the mapping of
 * group settings to and from JSON with the PATCH validation (pure); prom.c
 * the Prometheus text (pure); buf.c a capped growable buffer; token.c the
 * token file and comparison. Nothing here is part of asgd's API.
 */
#ifndef ASGD_HTTP_INT_H
#define ASGD_HTTP_INT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "common/stats.h"
#include "controller/ctl.h"
#include "fleet/fleet.h"
#include "http/http.h"
#include "store/store.h"

/* ---- growable buffer ---------------------------------------------------------------------- */

/* Text buffer, always NUL-terminated once something was appended. Hard cap
 * HTTP_BUF_MAX, or max when set: an append past it fails (and sets oom) instead of growing. */
#define HTTP_BUF_MAX (64u * 1024 * 1024)
struct http_buf {
    char *p;
    size_t len, cap;
    int oom;    /* an append failed: the content is incomplete */
    size_t max; /* the cap of an answer whose size is bounded otherwise (a listing of n
                   instances); 0: HTTP_BUF_MAX */
};
#define HTTP_BUF_INIT                                                                              \
    {                                                                                              \
        0                                                                                          \
    }
int http__buf_append(struct http_buf *b, const char *s, size_t n);
/* Makes room for extra more bytes at once (for an answer whose size is known roughly, instead
 * of doubling up to it): 0, or -1 with oom set. */
int http__buf_reserve(struct http_buf *b, size_t extra);
int http__buf_printf(struct http_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Appends the literal string lit (a string constant, not a pointer). */
#define HTTP_BUF_LIT(b, lit) http__buf_append((b), (lit), sizeof(lit) - 1)
/*
 * JSON values written as jansson's json_dumps(JSON_COMPACT | JSON_REAL_PRECISION(12)) writes
 * them, so an answer built here reads the same as one built as a jansson tree:
 * _str: s quoted and escaped (NULL: null; bytes that are not UTF-8 become U+FFFD, where
 * jansson would refuse the string); _real: v with 12 significant digits, always with a '.' or
 * an exponent (not finite: null, where jansson would refuse the value); _int: v in decimal.
 * Each returns 0, or -1 with b->oom set.
 */
int http__buf_json_str(struct http_buf *b, const char *s);
int http__buf_json_real(struct http_buf *b, double v);
int http__buf_json_int(struct http_buf *b, long long v);
/* Frees the contents; *b becomes empty. */
void http__buf_release(struct http_buf *b);
/* Hands the string to the caller (free()); *b becomes empty. */
char *http__buf_take(struct http_buf *b, size_t *len);

/* ---- server, requests, replies ------------------------------------------------------------ */

struct http_server {
    struct MHD_Daemon *daemon;
    char *listen, *token, *node;
    struct store *store; /* borrowed; only the daemon thread uses it */
    const struct http_node_ops *ops;
    void *ops_arg;
    int proxy_timeout_ms;
    size_t max_body;
    uint16_t port;
    int curl_inited;          /* curl_global_init() done: cleanup at free */
    struct http_guard *guard; /* slow-client reaper (server.c) */
    struct http_tls *tls;     /* HTTPS material (tls.c); NULL: plain HTTP */
    char *tls_ca_file;        /* verifies owners' https:// APIs (proxy.c); NULL: system CAs */
    struct http_pager *pager; /* sorted instance ids per group (pager.c); HTTP thread only */
};

/* ---- HTTPS (tls.c) ------------------------------------------------------------------------- */

struct http_tls;
struct MHD_OptionItem;
/* Reads and checks the certificate and key for the server that will listen on listen_fd.
 * 0, or -1 with "https: ..." / the file's problem in err. */
int http__tls_new(const char *cert_file, const char *key_file, int listen_fd, struct http_tls **out,
                  char *err, size_t errlen);
/* The MHD option that serves t's current certificate (for an MHD_OPTION_ARRAY). */
void http__tls_option(struct MHD_OptionItem *item);
/* Re-reads the files: 0, or -1 with err (the previous certificate stays). */
int http__tls_reload(struct http_tls *t, char *err, size_t errlen);
/* After MHD_stop_daemon. NULL is a no-op. */
void http__tls_free(struct http_tls *t);

#define HTTP_PARAM_MAX 128 /* one path segment captured by a route, NUL included */

struct http_req {
    struct http_server *srv;
    void *conn; /* struct MHD_Connection * (query arguments, headers) */
    const char *method;
    const char *path;
    const char *param; /* the instance {id} of a route, else NULL */
    const char *body;  /* NUL-terminated; "" when none */
    size_t body_len;
    /* Group routes only (set by http__dispatch() before the handler runs): the
     * group's name, and what the node said about it. have_ref: group_get
     * answered 0 (ref is filled; else ref is zeroed and the group exists only
     * in the store). */
    const char *group;
    struct http_group_ref *ref;
    int have_ref;
};

struct http_reply {
    int status;
    const char *ctype; /* static */
    char *body;        /* malloc'd unless body_static */
    size_t len;
    int body_static;   /* body points to data that outlives the request (assets) */
    const char *allow; /* Allow header for 405, static */
    const char *cache; /* Cache-Control, static; NULL: no-store */
    char *link;        /* Link header (paging), malloc'd or NULL; freed by the server */
};

/* ---- routing (routes.c) --------------------------------------------------------------------- */

struct http_route;

/*
 * Resolves method+path. Returns 0 with *route set (and the '*' segments copied
 * into seg0/seg1, HTTP_PARAM_MAX each), or 0 with *route NULL when the path is
 * no API route (the caller looks for a dashboard asset), 405 when the path
 * exists for other methods (*allow set to a static list). HEAD is GET.
 */
int http__resolve(const char *method, const char *path, const struct http_route **route, char *seg0,
                  char *seg1, const char **allow);
/*
 * Runs the route's handler for r (r->param and the group resolved from the
 * captured segments: group routes check the name, call ops->group_get and
 * answer 404 for a group neither the node nor the store knows; the
 * single-group routes pick the store's only group or answer 409/503).
 */
void http__dispatch(const struct http_route *route, const char *seg0, const char *seg1,
                    struct http_req *r, struct http_reply *rep);
/* 1 if name is a valid group name: [A-Za-z0-9_.-], 1..GROUP_NAME_MAX-1, not starting with '.'. */
int http__name_valid(const char *name);

/* The value of query argument name, or NULL. */
const char *http__query(const struct http_req *r, const char *name);

/* Sets an error reply {"error": error, "detail": detail...}. Always succeeds
 * (falls back to a static body when out of memory). */
void http__error(struct http_reply *rep, int status, const char *error, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Sets a JSON reply with status; steals j (json_decref'd). */
void http__json(struct http_reply *rep, int status, json_t *j);

/* The value of request header name, or NULL. */
const char *http__header(const struct http_req *r, const char *name);

/* ---- endpoints (api.c: one group; groups.c: the node's groups, cluster, probes) ------------- */

void http__get_group(struct http_req *r, struct http_reply *rep);
void http__patch_group(struct http_req *r, struct http_reply *rep);
/*
 * Changes the group's settings: reads them, applies edit (body is the
 * request's parsed JSON; a non-zero return answers 400 with err), stores them
 * under the revision read (retried on a concurrent change, unless want_rev,
 * the client's revision, is given: then 409), records a "settings" activity
 * with the diff, wakes the controller and answers the group's view. PATCH
 * and suspend/resume share it.
 */
typedef int (*http__settings_edit)(struct group_settings *g, const json_t *body, int max_cap,
                                   char *err, size_t errlen);
void http__change_settings(struct http_req *r, struct http_reply *rep, const json_t *body,
                           const json_t *want_rev, http__settings_edit edit);
/* suspend.c: POST .../suspend and .../resume {"processes": [...]} (none: all) */
void http__post_suspend(struct http_req *r, struct http_reply *rep);
void http__post_resume(struct http_req *r, struct http_reply *rep);
void http__get_instances(struct http_req *r, struct http_reply *rep);
void http__post_terminate(struct http_req *r, struct http_reply *rep);
/* refresh.c (issue 12 item 5): the instance refresh */
void http__get_refresh(struct http_req *r, struct http_reply *rep);
void http__post_refresh(struct http_req *r, struct http_reply *rep);
void http__post_refresh_cancel(struct http_req *r, struct http_reply *rep);
void http__post_refresh_resume(struct http_req *r, struct http_reply *rep);
void http__post_refresh_rollback(struct http_req *r, struct http_reply *rep);
/* lifecycle.c (issue 12): hooks, hook completion, protection, standby, detach, attach */
void http__get_hooks(struct http_req *r, struct http_reply *rep);
void http__put_hooks(struct http_req *r, struct http_reply *rep);
void http__post_lifecycle(struct http_req *r, struct http_reply *rep);
void http__patch_instance(struct http_req *r, struct http_reply *rep);
void http__post_standby(struct http_req *r, struct http_reply *rep);
void http__post_exit_standby(struct http_req *r, struct http_reply *rep);
void http__post_detach(struct http_req *r, struct http_reply *rep);
void http__post_attach(struct http_req *r, struct http_reply *rep);
void http__get_activities(struct http_req *r, struct http_reply *rep);
void http__get_history(struct http_req *r, struct http_reply *rep);
/* simulate.c: POST .../simulate, the what-if of the current and a proposed policy */
void http__post_simulate(struct http_req *r, struct http_reply *rep);
void http__list_groups(struct http_req *r, struct http_reply *rep);
void http__create_group(struct http_req *r, struct http_reply *rep);
void http__delete_group(struct http_req *r, struct http_reply *rep);
void http__get_cluster(struct http_req *r, struct http_reply *rep);
void http__get_metrics(struct http_req *r, struct http_reply *rep);
void http__get_healthz(struct http_req *r, struct http_reply *rep);
void http__get_readyz(struct http_req *r, struct http_reply *rep);
/* admin.c: the configuration reload and the API's own description */
void http__post_reload(struct http_req *r, struct http_reply *rep);
void http__get_reload(struct http_req *r, struct http_reply *rep);
void http__get_openapi(struct http_req *r, struct http_reply *rep);

/*
 * Summary of one group as GET /api/v1/groups lists it (and GET
 * /api/v1/groups/{name} extends): settings from g, counts from the fleet
 * when ref has one, else from the store's instance rows ("live": false).
 * NULL on ENOMEM.
 */
json_t *http__group_summary(struct http_server *s, const struct group_settings *g,
                            const struct http_group_ref *ref, int have_ref);

/* Snapshot of the fleet table into a malloc'd array (*n items); NULL + *n = 0 when empty
 * (and NULL with *n > 0: out of memory). */
struct fleet_slot *http__snapshot(struct fleet *f, size_t *n);

/* ---- instance pages in id order (pager.c) --------------------------------------------------- */

struct http_pager;
/* NULL on ENOMEM. */
struct http_pager *http__pager_new(void);
/* NULL is a no-op. */
void http__pager_free(struct http_pager *p);

struct http_page_item {
    struct fleet_slot slot;
    const char *provider, *zone; /* from the store; NULL if unknown. Valid until the next page */
};
/*
 * Up to limit instances of fleet f (the fleet of group) whose ids sort after `after` (NULL:
 * from the first), in id order, into out (room for limit); *more: some sort after the last
 * one given. 0, or -1 on ENOMEM. HTTP thread only.
 */
int http__pager_page(struct http_server *s, struct fleet *f, const char *group, const char *after,
                     size_t limit, struct http_page_item *out, size_t *n_out, int *more);
/*
 * Every instance of fleet f (the fleet of group) in the table's order, as fleet_snapshot()
 * gives them: *out is a malloc'd array of *n_out items the caller frees (its provider and
 * zone strings live until the next call into the pager). 0, or -1 on ENOMEM (*out NULL).
 * HTTP thread only.
 */
int http__pager_all(struct http_server *s, struct fleet *f, const char *group,
                    struct http_page_item **out, size_t *n_out);

/* ---- proxy to the owner (proxy.c) ----------------------------------------------------------- */

/* Request header that marks a proxied read: the receiver never proxies it again. */
#define HTTP_PROXIED_HEADER "X-Asgd-Proxied"
/*
 * GET base + path_query (already escaped) with the server's proxy timeout;
 * 0 and *out (a new JSON reference) when the owner answered 200 with JSON,
 * else -1 and why ("http://10.0.0.2:8080: Connection refused").
 */
int http__proxy_get(struct http_server *s, const char *base, const char *path_query, json_t **out,
                    char *why, size_t whylen);
/* Appends s percent-encoded (RFC 3986 unreserved kept) to b. */
int http__buf_escape(struct http_buf *b, const char *s);

/* ---- group settings <-> JSON (group_json.c, pure) ----------------------------------------- */

/* New JSON object with g's settings (name, sizes, policy, health, revision). NULL on ENOMEM. */
json_t *http__group_to_json(const struct group_settings *g);
/*
 * Applies the JSON object patch to *g (partial update: keys absent keep their
 * value) and validates the result with http__group_validate(). Unknown keys,
 * read-only keys and wrong types are errors naming the key. When the patch
 * changes min_size/max_size without desired_capacity, desired is clamped into
 * the new range (AWS UpdateAutoScalingGroup semantics). On failure *g may be
 * partly changed and err holds the reason; returns -1. max_cap bounds max_size.
 */
int http__group_patch(struct group_settings *g, const json_t *patch, int max_cap, char *err,
                      size_t errlen);
/* Checks the settings as strictly as the config file does. 0 or -1 + message. */
int http__group_validate(const struct group_settings *g, int max_cap, char *err, size_t errlen);
/* Appends "min_size 1 -> 2, ..." for every setting that differs (for the activity log). */
void http__group_diff(const struct group_settings *a, const struct group_settings *b, char *out,
                      size_t outlen);

/* ---- Prometheus text (prom.c, pure) ------------------------------------------------------- */

struct http_prom_group {
    const char *group;
    const struct group_settings *settings; /* NULL: not known (store error) */
    const struct fleet_slot *slots;        /* live instances */
    size_t n_slots;
    const struct ctl_status *ctl; /* NULL: no controller in this process */
};
struct http_prom_input {
    const struct http_prom_group *groups; /* the groups run here */
    size_t n_groups;
    const struct stats *stats; /* process-wide counters (not per group) */
};
/* Appends the exposition to b. -1 if the buffer ran out of memory. */
int http__prom_render(struct http_buf *b, const struct http_prom_input *in);

#endif
