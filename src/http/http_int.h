/*
 * http_int.h - internals shared by the files of the http module (http__ prefix).
 *
 * server.c owns the daemon, the request life cycle (body cap, auth, routing)
 * and error answers; api.c the JSON endpoints; group_json.c the mapping of
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
#include "store/store.h"

/* ---- growable buffer ---------------------------------------------------------------------- */

/* Text buffer, always NUL-terminated once something was appended. Hard cap
 * HTTP_BUF_MAX: an append past it fails (and sets oom) instead of growing. */
#define HTTP_BUF_MAX (64u * 1024 * 1024)
struct http_buf {
    char *p;
    size_t len, cap;
    int oom; /* an append failed: the content is incomplete */
};
#define HTTP_BUF_INIT                                                                              \
    {                                                                                              \
        0                                                                                          \
    }
int http__buf_append(struct http_buf *b, const char *s, size_t n);
int http__buf_printf(struct http_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Frees the contents; *b becomes empty. */
void http__buf_release(struct http_buf *b);
/* Hands the string to the caller (free()); *b becomes empty. */
char *http__buf_take(struct http_buf *b, size_t *len);

/* ---- server, requests, replies ------------------------------------------------------------ */

struct http_server {
    struct MHD_Daemon *daemon;
    char *listen, *token, *group, *store_dir;
    struct fleet *fleet;
    struct store *store; /* own handle; only the daemon thread uses it */
    struct ctl *ctl;
    size_t max_body;
    uint16_t port;
    struct http_guard *guard; /* slow-client reaper (server.c) */
};

struct http_req {
    struct http_server *srv;
    void *conn; /* struct MHD_Connection * (query arguments) */
    const char *method;
    const char *path;
    const char *param; /* the {id} of a route, else NULL */
    const char *body;  /* NUL-terminated; "" when none */
    size_t body_len;
};

struct http_reply {
    int status;
    const char *ctype; /* static */
    char *body;        /* malloc'd unless body_static */
    size_t len;
    int body_static;   /* body points to data that outlives the request (assets) */
    const char *allow; /* Allow header for 405, static */
    const char *cache; /* Cache-Control, static; NULL: no-store */
};

/* The value of query argument name, or NULL. */
const char *http__query(const struct http_req *r, const char *name);

/* Sets an error reply {"error": error, "detail": detail...}. Always succeeds
 * (falls back to a static body when out of memory). */
void http__error(struct http_reply *rep, int status, const char *error, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Sets a JSON reply with status; steals j (json_decref'd). */
void http__json(struct http_reply *rep, int status, json_t *j);

/* ---- endpoints (api.c) -------------------------------------------------------------------- */

void http__get_group(struct http_req *r, struct http_reply *rep);
void http__patch_group(struct http_req *r, struct http_reply *rep);
void http__get_instances(struct http_req *r, struct http_reply *rep);
void http__post_terminate(struct http_req *r, struct http_reply *rep);
void http__get_activities(struct http_req *r, struct http_reply *rep);
void http__get_history(struct http_req *r, struct http_reply *rep);
void http__get_metrics(struct http_req *r, struct http_reply *rep);
void http__get_healthz(struct http_req *r, struct http_reply *rep);
void http__get_readyz(struct http_req *r, struct http_reply *rep);

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

struct http_prom_input {
    const char *group;
    const struct group_settings *settings; /* NULL: not known (store error) */
    const struct fleet_slot *slots;        /* live instances */
    size_t n_slots;
    const struct ctl_status *ctl; /* NULL: no controller in this process */
    const struct stats *stats;
};
/* Appends the exposition to b. -1 if the buffer ran out of memory. */
int http__prom_render(struct http_buf *b, const struct http_prom_input *in);

/* ---- time formatting ---------------------------------------------------------------------- */

/* "2026-11-29T07:30:00.123Z" into buf (>= 32 bytes). */
void http__iso8601(int64_t wall_ms, char *buf, size_t len);

#endif
