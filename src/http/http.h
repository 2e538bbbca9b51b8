/*
 * http.h - asgd's HTTP face: the JSON API v1, the dashboard, /metrics.
 *
 * One libmicrohttpd daemon with its own polling thread serves, in order of
 * importance to operators:
 *   GET   /api/v1/group                   settings + counts (JSON)
 *   PATCH /api/v1/group                   change settings (validated, persisted, ctl_wake())
 *   GET   /api/v1/instances               live instances from the fleet table
 *   POST  /api/v1/instances/{id}/terminate {"decrement_desired": bool}
 *   GET   /api/v1/activities?limit=N&before=ID   scaling history, newest first
 *   GET   /api/v1/metrics/history?since=T average and per-instance load series
 *   GET   /metrics                        Prometheus text exposition 0.0.4
 *   GET   /healthz, /readyz               liveness / readiness
 *   GET   /                               the dashboard (assets built into the binary)
 *
 * Requests are handled one at a time on the daemon's thread (they are short:
 * a fleet snapshot and a few SQLite reads), through the server's OWN store
 * handle, so the controller's handle is never shared between threads.
 *
 * Auth: every mutating request (PATCH, POST) needs "Authorization: Bearer
 * <token>", compared in constant time; without a configured token mutations
 * are refused (401). Reads are open: bind to loopback unless a proxy in front
 * does the access control. Bodies are capped (413). Every error answer is
 * JSON {"error": "<short reason>", "detail": "<what to do>"}.
 *
 * Errors: 0 or -1 with a message in err (always NUL-terminated).
 */
#ifndef ASGD_HTTP_H
#define ASGD_HTTP_H

#include <stddef.h>
#include <stdint.h>

struct fleet;
struct ctl;
struct http_server;

#define HTTP_DEFAULT_LISTEN   "127.0.0.1:8080"
#define HTTP_DEFAULT_MAX_BODY (64 * 1024)

struct http_deps {
    /* "HOST:PORT" with a numeric host ("127.0.0.1:8080", "0.0.0.0:80",
     * "[::1]:8080"); port 0 picks a free port (see http_bound_port()). NULL:
     * HTTP_DEFAULT_LISTEN. Copied. */
    const char *listen;
    /* Bearer token for mutating requests, copied; NULL or "": every mutation
     * answers 401 (read-only API). */
    const char *token;
    /* Group name whose settings the API shows and edits. Copied. Required. */
    const char *group;
    /* Borrowed, must outlive the server. Required. */
    struct fleet *fleet;
    /* State directory of the store: the server opens its own handle. Required. */
    const char *store_dir;
    /* Borrowed, may be NULL (unit tests; a monitor-only process): then
     * terminate answers 503 and settings changes take effect on the next tick. */
    struct ctl *ctl;
    /* Request body cap in bytes; 0: HTTP_DEFAULT_MAX_BODY. */
    size_t max_body;
};

/*
 * Opens the store, binds and starts serving on a thread of its own. On
 * success *out owns the server (http_free()); on failure *out is untouched
 * and err says what failed ("cannot listen on 127.0.0.1:8080: Address already
 * in use").
 */
int http_start(const struct http_deps *deps, struct http_server **out, char *err, size_t errlen)
    __attribute__((warn_unused_result));
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
