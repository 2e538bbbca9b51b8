/*
 * lifecycle.c - the API of an instance's life cycle (issue 12,
 * docs/lifecycle.md): a group's hooks, completing a hook, scale-in
 * protection, standby, detach and attach.
 *
 *   GET   /api/v1/groups/{g}/hooks                       the [hooks] settings
 *   PUT|PATCH /api/v1/groups/{g}/hooks                   {"launch_timeout": "5m", ...}
 *   POST  /api/v1/groups/{g}/instances/{id}/lifecycle    {"action":
 * "continue"|"abandon"|"heartbeat"} PATCH /api/v1/groups/{g}/instances/{id} {"protected": true}
 *   POST  /api/v1/groups/{g}/instances/{id}/standby      {"decrement_desired": true}
 *   POST  /api/v1/groups/{g}/instances/{id}/exit-standby
 *   POST  /api/v1/groups/{g}/instances/{id}/detach       {"decrement_desired": true}
 *   POST  /api/v1/groups/{g}/instances                   {"attach": "i-0abc" | "127.0.0.9:50051"}
 *
 * Each change is checked against the instance's state at once (404, 409
 * with the reason) and applied by the group's controller on its next tick
 * (202), which records the outcome as an activity. On a node that does not
 * run the group it is recorded for the owner (store request "lifecycle",
 * applied by its daemon like a forwarded terminate; 202 at once, the owner
 * logs a refusal).
 * Runs on the daemon's thread (http.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "controller/ctl.h"
#include "http/http_int.h"

#include "common/banned.h"

/* The request's body as an object whose keys are all in allowed (NULL-terminated); an empty
   body is {} when empty_ok. NULL with rep set otherwise. */
static json_t *body_object(struct http_req *r, struct http_reply *rep, const char *const *allowed,
                           int empty_ok)
{
    if (r->body_len == 0 && empty_ok)
        return json_object();
    json_error_t je;
    json_t *b = json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES, &je);
    if (!b) {
        http__error(rep, 400, "invalid JSON", "line %d, column %d: %s", je.line, je.column,
                    je.text);
        return NULL;
    }
    if (!json_is_object(b)) {
        json_decref(b);
        http__error(rep, 400, "invalid request", "the body must be a JSON object");
        return NULL;
    }
    const char *k;
    json_t *v;
    json_object_foreach(b, k, v)
    {
        int ok = 0;
        for (size_t i = 0; allowed[i]; i++)
            ok |= strcmp(k, allowed[i]) == 0;
        if (!ok) {
            http__error(rep, 400, "invalid request", "unknown key \"%.64s\" (accepted: %s%s%s)", k,
                        allowed[0], allowed[1] ? ", " : "", allowed[1] ? allowed[1] : "");
            json_decref(b);
            return NULL;
        }
    }
    return b;
}

/* The boolean key of b (absent: def); -1 with rep set when not a boolean. */
static int get_bool(json_t *b, const char *key, int def, struct http_reply *rep)
{
    json_t *v = json_object_get(b, key);
    if (v == NULL)
        return def;
    if (!json_is_boolean(v)) {
        http__error(rep, 400, "invalid request", "%s: must be true or false", key);
        return -1;
    }
    return json_is_true(v);
}

/* Answers a ctl_* result: 202 with what was asked, or the error. An attach names no instance
   yet: its answer has no "id" (s*: the key is left out, as the OpenAPI document says). */
static void answer(struct http_req *r, struct http_reply *rep, int rc, const char *err,
                   const char *what)
{
    if (rc == 0) {
        log_info("http: %s of instance \"%s\" of group \"%s\" requested", what,
                 r->param ? r->param : "", r->group);
        http__json(
            rep, 202,
            json_pack("{s:s*, s:s, s:s}", "id", r->param, "group", r->group, "status", what));
        return;
    }
    int st = rc == CTL_ENOENT ? 404 : rc == CTL_EINVAL ? 400 : rc == CTL_ESTATE ? 409 : 500;
    http__error(rep, st,
                st == 404   ? "not found"
                : st == 400 ? "invalid request"
                : st == 409 ? "conflict"
                            : "internal error",
                "%s", err[0] ? err : "refused");
}

/*
 * Applies req (an object ctl_lifecycle_json() reads; stolen) through the group's controller
 * when this process runs it, else records it for the group's owner (store request
 * "lifecycle", as a terminate is forwarded) and answers 202 at once.
 */
static void submit(struct http_req *r, struct http_reply *rep, json_t *req, const char *what)
{
    char *text = req ? json_dumps(req, JSON_COMPACT) : NULL;
    json_decref(req);
    if (text == NULL) {
        http__error(rep, 500, "internal error", "out of memory");
        return;
    }
    char err[256] = "";
    if (r->ref->ctl) {
        answer(r, rep, ctl_lifecycle_json(r->ref->ctl, text, err, sizeof err), err, what);
    } else {
        int rc = store_request_add(r->srv->store, r->group, "lifecycle", text, NULL);
        if (rc) {
            http__error(rep, rc == STORE_EUNAVAIL ? 503 : 500,
                        rc == STORE_EUNAVAIL ? "unavailable" : "internal error",
                        "cannot record the request for the owner of group \"%s\": %s", r->group,
                        store_errmsg(r->srv->store));
        } else {
            char st[96];
            snprintf(st, sizeof st, "%s requested from the owner", what);
            log_info("http: %s of group \"%s\" forwarded to its owner", what, r->group);
            http__json(
                rep, 202,
                json_pack("{s:s*, s:s, s:s}", "id", r->param, "group", r->group, "status", st));
        }
    }
    free(text);
}

void http__get_hooks(struct http_req *r, struct http_reply *rep)
{
    struct group_settings g;
    int rc = store_get_settings(r->srv->store, r->group, &g);
    if (rc) {
        http__error(rep, 500, "internal error", "reading group \"%s\" failed: %s", r->group,
                    store_errmsg(r->srv->store));
        return;
    }
    json_t *j = group_settings_to_json(&g);
    json_t *h = j ? json_object_get(j, "hooks") : NULL;
    if (h == NULL) {
        json_decref(j);
        http__error(rep, 500, "internal error", "out of memory");
        return;
    }
    json_incref(h);
    json_decref(j);
    http__json(rep, 200, h);
}

/* {"hooks": BODY} through the group's PATCH (the one validator, the activity, the wake). */
void http__put_hooks(struct http_req *r, struct http_reply *rep)
{
    size_t len = r->body_len + 16;
    char *wrapped = malloc(len);
    if (wrapped == NULL) {
        http__error(rep, 500, "internal error", "out of memory");
        return;
    }
    snprintf(wrapped, len, "{\"hooks\": %.*s}", (int)r->body_len, r->body);
    const char *body = r->body;
    size_t body_len = r->body_len;
    r->body = wrapped;
    r->body_len = strlen(wrapped);
    http__patch_group(r, rep);
    r->body = body;
    r->body_len = body_len;
    free(wrapped);
}

/*
 * What a body of one key asks the controller: {"op": op, "instance_id": ID (by_id), out:
 * value}. A boolean key that is absent is def (-1: refused, and so is an empty body); a string
 * key that is absent is "" (the controller says why that is refused).
 */
struct body_op {
    const char *op;      /* the request's "op" */
    const char *key;     /* the body's one accepted key */
    const char *out;     /* the key's name in the request */
    int by_id;           /* the request names the path's instance */
    int boolean;         /* key is true|false, else a string */
    int def;             /* boolean: the value when absent, -1 when required */
    const char *what[2]; /* the answered status: boolean: for false, for true; string: [0] */
    int what_value;      /* string: the status names the value too ("lifecycle hook continue") */
};

/* Parses r's body as o says and submits the request it makes (answered in rep). */
static void submit_body_op(struct http_req *r, struct http_reply *rep, const struct body_op *o)
{
    const char *const keys[] = {o->key, NULL};
    json_t *b = body_object(r, rep, keys, o->boolean && o->def >= 0);
    if (!b)
        return;
    char what[64];
    json_t *value;
    if (o->boolean) {
        int v = get_bool(b, o->key, o->def, rep);
        if (v < 0) {
            /* absent: get_bool answered nothing (the server presets status 500) */
            if (rep->body == NULL)
                http__error(rep, 400, "invalid request",
                            "nothing to change: send {\"%s\": true|false}", o->key);
            json_decref(b);
            return;
        }
        snprintf(what, sizeof what, "%s", o->what[v]);
        value = json_boolean(v);
    } else {
        const char *v = json_string_value(json_object_get(b, o->key));
        if (o->what_value)
            snprintf(what, sizeof what, "%s %.20s", o->what[0], v ? v : "");
        else
            snprintf(what, sizeof what, "%s", o->what[0]);
        value = json_string(v ? v : "");
    }
    json_decref(b);
    json_t *req = o->by_id ? json_pack("{s:s, s:s}", "op", o->op, "instance_id", r->param)
                           : json_pack("{s:s}", "op", o->op);
    /* (json_object_set_new takes value, also when it fails; NULL req: submit answers 500) */
    if (req == NULL)
        json_decref(value);
    else if (json_object_set_new(req, o->out, value) != 0) {
        json_decref(req);
        req = NULL;
    }
    submit(r, rep, req, what);
}

void http__post_lifecycle(struct http_req *r, struct http_reply *rep)
{
    static const struct body_op o = {.op = "hook",
                                     .key = "action",
                                     .out = "action",
                                     .by_id = 1,
                                     .what = {"lifecycle hook"},
                                     .what_value = 1};
    submit_body_op(r, rep, &o);
}

void http__patch_instance(struct http_req *r, struct http_reply *rep)
{
    static const struct body_op o = {
        .op = "protect",
        .key = "protected",
        .out = "protected",
        .by_id = 1,
        .boolean = 1,
        .def = -1,
        .what = {"not protected from scale-in", "protected from scale-in"}};
    submit_body_op(r, rep, &o);
}

/* standby, exit-standby and detach: {"decrement_desired": true|false}, false when absent */
static void decrement_op(struct http_req *r, struct http_reply *rep, const char *op,
                         const char *what)
{
    const struct body_op o = {.op = op,
                              .key = "decrement_desired",
                              .out = "decrement",
                              .by_id = 1,
                              .boolean = 1,
                              .what = {what, what}};
    submit_body_op(r, rep, &o);
}

void http__post_standby(struct http_req *r, struct http_reply *rep)
{
    decrement_op(r, rep, "standby", "enter standby");
}

void http__post_exit_standby(struct http_req *r, struct http_reply *rep)
{
    decrement_op(r, rep, "exit-standby", "exit standby");
}

void http__post_detach(struct http_req *r, struct http_reply *rep)
{
    decrement_op(r, rep, "detach", "detach");
}

void http__post_attach(struct http_req *r, struct http_reply *rep)
{
    static const struct body_op o = {
        .op = "attach", .key = "attach", .out = "attach", .what = {"attach"}};
    submit_body_op(r, rep, &o);
}
