/*
 * refresh.c - the instance refresh's API (issue 12 item 5,
 * docs/instance-refresh.md):
 *
 *   GET  /api/v1/groups/{g}/instance-refresh          its state (refresh.h's view)
 *   POST /api/v1/groups/{g}/instance-refresh          {"min_healthy_percentage": 90,
 *                                                     "instance_warmup": "60s",
 *                                                     "checkpoints": [50]}: 202, 409 if one runs
 *   POST /api/v1/groups/{g}/instance-refresh/cancel   stops it (409 if none runs)
 *   POST /api/v1/groups/{g}/instance-refresh/resume   goes on past a checkpoint (409 if not paused)
 *   POST /api/v1/groups/{g}/instance-refresh/rollback replaces the new config's instances back,
 *                                                     once the previous launch settings are
 *                                                     restored (409 if none runs)
 *
 * Each one edits the refresh's text in the group's stored settings with the
 * settings' revision (retried on a conflict with the controller's own
 * progress writes), records an activity and wakes the controller when this
 * node runs the group (another owner sees the store change). Runs on the
 * daemon's thread (http.h).
 */
#include <stdio.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"
#include "controller/ctl.h"
#include "controller/refresh.h"
#include "http/http_int.h"

#include "common/banned.h"

#define PUT_TRIES 8

enum op { OP_START, OP_CANCEL, OP_RESUME, OP_ROLLBACK };

static void store_error(struct http_req *r, struct http_reply *rep, int rc, const char *what)
{
    http__error(rep,
                rc == STORE_EUNAVAIL ? 503
                : rc == STORE_ENOENT ? 404
                                     : 500,
                rc == STORE_EUNAVAIL ? "unavailable"
                : rc == STORE_ENOENT ? "not found"
                                     : "internal error",
                "%s group \"%s\": %s", what, r->group, store_errmsg(r->srv->store));
}

void http__get_refresh(struct http_req *r, struct http_reply *rep)
{
    struct group_settings g;
    int rc = store_get_settings(r->srv->store, r->group, &g);
    if (rc) {
        store_error(r, rep, rc, "reading");
        return;
    }
    struct refresh f;
    if (refresh_parse(g.instance_refresh, &f) != 0) {
        http__error(rep, 500, "internal error", "the stored instance refresh state is malformed");
        return;
    }
    http__json(rep, 200, refresh_to_json(&f));
}

/* Applies op to the stored state: 0 with *out the new state, or an HTTP status with err set. */
static int edit(struct refresh *f, enum op op, const struct refresh *start, char *err,
                size_t errlen)
{
    switch (op) {
    case OP_START:
        if (refresh_active(f->status)) {
            snprintf(err, errlen, "an instance refresh is %s already (cancel it first)",
                     refresh_status_name(f->status));
            return 409;
        }
        *f = *start;
        return 0;
    case OP_CANCEL:
        if (!refresh_active(f->status)) {
            snprintf(err, errlen, "no instance refresh is running (status %s)",
                     f->status ? refresh_status_name(f->status) : "none");
            return 409;
        }
        f->status = REFRESH_CANCELLED;
        snprintf(f->reason, sizeof(f->reason), "cancelled through the API");
        return 0;
    case OP_RESUME:
        if (f->status != REFRESH_PAUSED) {
            snprintf(err, errlen, "the instance refresh is not paused at a checkpoint (status %s)",
                     f->status ? refresh_status_name(f->status) : "none");
            return 409;
        }
        f->status = REFRESH_IN_PROGRESS;
        f->next_checkpoint++;
        return 0;
    case OP_ROLLBACK:
        /* as AWS: a running (or paused) refresh; a finished one is undone by a new refresh */
        if (!refresh_active(f->status) || f->status == REFRESH_ROLLBACK_IN_PROGRESS ||
            f->from[0] == '\0') {
            snprintf(err, errlen, "no instance refresh to roll back (status %s%s)",
                     f->status ? refresh_status_name(f->status) : "none",
                     f->status && f->from[0] == '\0' ? ", no previous launch config known" : "");
            return 409;
        }
        f->status = REFRESH_ROLLBACK_IN_PROGRESS;
        f->rb_counted = 0;
        return 0;
    }
    return 500;
}

static void change(struct http_req *r, struct http_reply *rep, enum op op,
                   const struct refresh *start)
{
    struct store *st = r->srv->store;
    for (int t = 0; t < PUT_TRIES; t++) {
        struct group_settings g;
        int rc = store_get_settings(st, r->group, &g);
        if (rc) {
            store_error(r, rep, rc, "reading");
            return;
        }
        struct refresh f;
        if (refresh_parse(g.instance_refresh, &f) != 0)
            memset(&f, 0, sizeof(f)); /* malformed: treated as none, overwritten by a start */
        char err[256] = "";
        int status = edit(&f, op, start, err, sizeof(err));
        if (status) {
            http__error(rep, status, status == 409 ? "conflict" : "internal error", "%s", err);
            return;
        }
        f.updated_ms = clk_wall_ms();
        if (refresh_format(&f, g.instance_refresh, sizeof(g.instance_refresh)) != 0) {
            http__error(rep, 500, "internal error", "the refresh state does not fit");
            return;
        }
        rc = store_put_settings(st, &g, g.revision, NULL);
        if (rc == STORE_ECONFLICT)
            continue; /* the controller wrote its progress meanwhile: edit the new state */
        if (rc) {
            store_error(r, rep, rc, "saving the instance refresh of");
            return;
        }
        static const char *const verbs[] = {"started", "cancelled", "resumed", "rolled back"};
        struct store_activity a = {0};
        snprintf(a.group, sizeof a.group, "%s", r->group);
        a.at_ms = clk_wall_ms();
        snprintf(a.kind, sizeof a.kind, "refresh");
        snprintf(a.status, sizeof a.status, "ok");
        snprintf(a.cause, sizeof a.cause, "instance refresh %s through the API%s", verbs[op],
                 op == OP_RESUME ? " (past its checkpoint)" : "");
        a.from_count = a.to_count = g.desired_capacity;
        if (store_activity_add(st, &a, NULL))
            log_warn("http: cannot record the instance refresh of group \"%s\": %s", r->group,
                     store_errmsg(st));
        log_info("http: instance refresh of group \"%s\" %s", r->group, verbs[op]);
        if (r->ref->ctl)
            ctl_wake(r->ref->ctl);
        http__json(rep, op == OP_START ? 202 : 200, refresh_to_json(&f));
        return;
    }
    http__error(rep, 409, "conflict", "the group's settings kept changing; try again");
}

void http__post_refresh(struct http_req *r, struct http_reply *rep)
{
    json_t *body = NULL;
    if (r->body_len > 0) {
        json_error_t je;
        body = json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES, &je);
        if (body == NULL) {
            http__error(rep, 400, "invalid JSON", "line %d, column %d: %s", je.line, je.column,
                        je.text);
            return;
        }
    }
    struct refresh start;
    char err[256] = "";
    int rc = refresh_from_request(body, clk_wall_ms(), &start, err, sizeof(err));
    json_decref(body);
    if (rc) {
        http__error(rep, 400, "invalid request", "%s", err);
        return;
    }
    change(r, rep, OP_START, &start);
}

void http__post_refresh_cancel(struct http_req *r, struct http_reply *rep)
{
    change(r, rep, OP_CANCEL, NULL);
}

void http__post_refresh_resume(struct http_req *r, struct http_reply *rep)
{
    change(r, rep, OP_RESUME, NULL);
}

void http__post_refresh_rollback(struct http_req *r, struct http_reply *rep)
{
    change(r, rep, OP_ROLLBACK, NULL);
}
