/*
 * admin.c - the node's administrative routes: the configuration reload
 * (POST/GET /api/v1/reload, handed to the node: http.h's reload ops) and the
 * API's own description (GET /api/v1/openapi.json).
 *
 * The OpenAPI document is a source file, src/http/assets/openapi.json,
 * compiled into the binary with the dashboard's files (assets.h), so what is
 * served is exactly what the tests validate; a test also checks that every
 * route of routes.c is in it. Runs on the HTTP thread (http.h).
 */
#include <errno.h>
#include <string.h>

#include "common/log.h"
#include "http/assets.h"
#include "http/http_int.h"

#include "common/banned.h"

void http__post_reload(struct http_req *r, struct http_reply *rep)
{
    struct http_server *s = r->srv;
    if (!s->ops->reload) {
        http__error(rep, 501, "not implemented", "this asgd cannot reload its configuration");
        return;
    }
    int64_t gen = 0;
    int rc = s->ops->reload(s->ops_arg, &gen);
    if (rc != 0) {
        http__error(rep, 500, "internal error", "cannot ask for a reload: %s", strerror(-rc));
        return;
    }
    log_info("http: configuration reload asked through the API (generation %lld)", (long long)gen);
    http__json(rep, 202, json_pack("{s:b, s:I}", "requested", 1, "generation", (json_int_t)gen));
}

void http__get_reload(struct http_req *r, struct http_reply *rep)
{
    struct http_server *s = r->srv;
    if (!s->ops->reload_status) {
        http__error(rep, 501, "not implemented", "this asgd cannot reload its configuration");
        return;
    }
    json_t *j = s->ops->reload_status(s->ops_arg);
    if (!j) {
        http__error(rep, 404, "not found",
                    "no reload since asgd started (send SIGHUP or POST /api/v1/reload)");
        return;
    }
    http__json(rep, 200, j);
}

void http__get_openapi(struct http_req *r, struct http_reply *rep)
{
    (void)r;
    for (size_t i = 0; i < http_assets_count; i++) {
        if (strcmp(http_assets[i].path, "/openapi.json") != 0)
            continue;
        rep->status = 200;
        rep->ctype = "application/json";
        rep->body = (char *)http_assets[i].data;
        rep->len = http_assets[i].len;
        rep->body_static = 1;
        return;
    }
    http__error(rep, 404, "not found", "this asgd was built without its OpenAPI document");
}
