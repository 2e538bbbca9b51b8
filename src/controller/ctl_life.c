/*
 * ctl_life.c - an instance's life cycle as AWS Auto Scaling operators know it
 * (issue 12, docs/lifecycle.md): lifecycle hooks (pending:wait,
 * terminating:wait, completed by the operator, by the instance's agent when
 * its drain command ends, or by a timeout with the default result), scale-in
 * protection, standby, detach and attach.
 *
 * Workload: operator requests are rare (a handful a minute at most) and each
 * costs one store read and write; the hooks duty walks the tick's snapshot
 * and asks the agents of the instances draining in terminating:wait about
 * their drain (MonitorC/Lifecycle) once a tick, all at once (ctl_drain.c): a
 * tick waits 500 ms at most however many drain.
 *
 * Every transition is written to the instance's store row (lifecycle text,
 * protected, hook_deadline_ms), so a restarted asgd adopts the instance back
 * into the same wait, standby or protection (ctl__restore), with the same
 * deadline. Every outcome is an activity of kind "hook", "protect",
 * "standby", "detach" or "attach".
 */
#include "controller/ctl_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"
#include "monitor.pb-c.h"
#include "provider/provider.h"
#include "rpc/rpc.h"

#include "common/banned.h"

static const char *const action_names[] = {"continue", "abandon", "heartbeat"};

/* ---- slots -------------------------------------------------------------------------------- */

struct life_arg {
    int lifecycle;      /* -1: keep */
    int64_t deadline;   /* hook_deadline_ms to set; -1: keep */
    int64_t wait_ended; /* 0: keep */
    int protect;        /* -1: keep */
};

static void life_fn(struct fleet_slot *s, void *arg)
{
    const struct life_arg *a = arg;
    if (a->lifecycle >= 0)
        s->lifecycle = (uint8_t)a->lifecycle;
    if (a->deadline >= 0)
        s->hook_deadline_ms = a->deadline;
    if (a->wait_ended)
        s->wait_ended_ms = a->wait_ended;
    if (a->protect >= 0)
        s->protect = (uint8_t)a->protect;
}

void ctl__persist(struct ctl *c, const struct fleet_slot *s)
{
    struct store_instance row;
    if (store_get_instance(c->store, s->id, &row) != 0) {
        log_debug("instance \"%s\" has no store row: %s", s->id, store_errmsg(c->store));
        return;
    }
    snprintf(row.lifecycle, sizeof(row.lifecycle), "%s", fleet_lifecycle_name(s->lifecycle));
    row.protect = s->protect;
    row.hook_deadline_ms = s->hook_deadline_ms;
    if (store_put_instance(c->store, &row) != 0)
        log_warn("cannot store the lifecycle of instance \"%s\": %s", s->id,
                 store_errmsg(c->store));
}

/* Applies a to the live slot of *s and to the copy *s, then stores it. */
static int set_state(struct ctl *c, struct fleet_slot *s, const struct life_arg *a)
{
    int rc = fleet_update(c->fleet, s->index, s->generation, life_fn, (void *)a);
    if (rc != 0)
        return rc;
    life_fn(s, (void *)a);
    ctl__persist(c, s);
    return 0;
}

static int find_slot(struct ctl *c, const char *id, struct fleet_slot *s)
{
    uint32_t idx;
    if (id == NULL || strlen(id) >= FLEET_ID_MAX || fleet_find(c->fleet, id, &idx) != 0)
        return CTL_ENOENT;
    return fleet_read(c->fleet, idx, s) == 0 ? 0 : CTL_ENOENT;
}

/* Desired capacity to `to` (checked against min/max by the store); 0 or -1. */
static int set_desired(struct ctl *c, int to)
{
    if (to < c->settings.min_size || to > c->settings.max_size)
        return -1;
    if (to == c->settings.desired_capacity)
        return 0;
    if (store_set_desired(c->store, c->group, to, &c->settings.revision) != 0) {
        log_warn("cannot store desired %d for group \"%s\": %s", to, c->group,
                 store_errmsg(c->store));
        return -1;
    }
    c->settings.desired_capacity = to;
    return 0;
}

static void fmt_dur(int64_t ms, char *buf, size_t len)
{
    clk_format_duration(ms, buf, len);
}

/* ---- hooks -------------------------------------------------------------------------------- */

/*
 * Ends the wait of s (a copy from this tick) with action: a launch hook that
 * continues puts the instance on its way to service; one abandoned, and every
 * terminate hook, end in termination. why: who or what completed it.
 */
static void complete_hook(struct ctl *c, struct fleet_slot *s, int action, const char *why,
                          int64_t now)
{
    int launch = s->lifecycle == FLEET_PENDING_WAIT;
    if (!launch && s->lifecycle != FLEET_TERMINATING_WAIT)
        return;
    const struct group_hooks *h = &c->settings.hooks;
    if (action == HOOK_HEARTBEAT) {
        int64_t t = launch ? h->launch_timeout_ms : h->terminate_timeout_ms;
        struct life_arg a = {-1, now + (t > 0 ? t : 60000), 0, -1};
        if (set_state(c, s, &a) == 0)
            log_info("%s hook of instance \"%s\" (group \"%s\"): heartbeat, waits until %" PRId64,
                     launch ? "launch" : "terminate", s->id, c->group, a.deadline);
        return;
    }
    const char *result = action_names[action];
    log_info("%s hook of instance \"%s\" (group \"%s\") completed: %s (%s)",
             launch ? "launch" : "terminate", s->id, c->group, result, why);
    ctl__activity(c, "hook", result, c->settings.desired_capacity, c->settings.desired_capacity, "",
                  "%s hook of %s completed: %s (%s)", launch ? "launch" : "terminate", s->id,
                  result, why);
    if (launch && action == HOOK_CONTINUE) {
        struct life_arg a = {FLEET_PENDING, 0, now, -1};
        set_state(c, s, &a);
        return;
    }
    /* terminating: the hook is done, so ctl__hold_for_hook lets it through */
    struct life_arg a = {FLEET_TERMINATING, 0, 0, -1};
    if (set_state(c, s, &a) != 0)
        return;
    const struct fleet_slot *v = s;
    ctl__terminate(c, &v, 1, now);
}

static int result_action(const char *def)
{
    return strcmp(def, "continue") == 0 ? HOOK_CONTINUE : HOOK_ABANDON;
}

void ctl__hooks(struct ctl *c, const struct census *cs, int64_t now)
{
    const struct group_hooks *h = &c->settings.hooks;
    /* the draining ones still waiting: their agents are asked all at once (ctl_drain.c) */
    struct fleet_slot **ask = NULL;
    size_t nask = 0;
    for (size_t i = 0; i < cs->n; i++) {
        struct fleet_slot *s = &c->snap[i];
        int launch = s->lifecycle == FLEET_PENDING_WAIT;
        if (!launch && s->lifecycle != FLEET_TERMINATING_WAIT)
            continue;
        const char *def = launch ? h->launch_default : h->terminate_default;
        if (s->hook_deadline_ms > 0 && now >= s->hook_deadline_ms) {
            char why[96];
            snprintf(why, sizeof(why), "timed out: the default result %s", def);
            complete_hook(c, s, result_action(def), why, now);
            continue;
        }
        if (launch)
            continue;
        if (!ask && !(ask = calloc(cs->n, sizeof(*ask))))
            return; /* out of memory: asked next tick (the timeout still applies) */
        ask[nask++] = s;
    }
    struct ctl_drain_answer *ans = nask ? calloc(nask, sizeof(*ans)) : NULL;
    if (ans && ctl__drain_ask(c, (const struct fleet_slot *const *)ask, nask, ans) == 0) {
        for (size_t i = 0; i < nask; i++) {
            const char *def = h->terminate_default;
            char why[400];
            if (ans[i].result > 0) {
                complete_hook(c, ask[i], HOOK_CONTINUE, "the agent's drain command succeeded", now);
            } else if (ans[i].result < 0) {
                snprintf(why, sizeof(why),
                         "the agent's drain command failed (%s): the default result %s",
                         ans[i].detail, def);
                complete_hook(c, ask[i], result_action(def), why, now);
            }
        }
    }
    free(ans);
    free(ask);
}

size_t ctl__hold_for_hook(struct ctl *c, const struct fleet_slot *const *victims, size_t n,
                          const struct fleet_slot **go, int64_t now)
{
    const struct group_hooks *h = &c->settings.hooks;
    size_t k = 0, nheld = 0;
    /* the held ones' agents are told at once (they start draining and stop reporting load)
       rather than at the next tick; their answers are read by ctl__hooks from then on */
    const struct fleet_slot **held = h->terminate_timeout_ms > 0 ? calloc(n, sizeof(*held)) : NULL;
    for (size_t i = 0; i < n; i++) {
        const struct fleet_slot *s = victims[i];
        if (s->lifecycle == FLEET_TERMINATING_WAIT)
            continue; /* never terminated before its hook completes */
        if (h->terminate_timeout_ms > 0 && s->lifecycle != FLEET_TERMINATING) {
            struct fleet_slot copy = *s;
            struct life_arg a = {FLEET_TERMINATING_WAIT, now + h->terminate_timeout_ms, 0, -1};
            if (set_state(c, &copy, &a) != 0)
                continue;
            char t[32];
            fmt_dur(h->terminate_timeout_ms, t, sizeof(t));
            log_info("instance \"%s\" of group \"%s\" waits in terminating:wait (terminate hook, "
                     "at most %s)",
                     s->id, c->group, t);
            ctl__activity(c, "hook", "terminating:wait", c->settings.desired_capacity,
                          c->settings.desired_capacity, "",
                          "instance %s waits for its terminate hook (drain) for at most %s, "
                          "default result %s",
                          s->id, t, h->terminate_default);
            if (held)
                held[nheld++] = s;
            continue;
        }
        go[k++] = s;
    }
    if (nheld)
        (void)ctl__drain_ask(c, held, nheld, NULL); /* (failure: told at the next tick) */
    free(held);
    return k;
}

void ctl__launched(struct ctl *c, const char *id, int64_t now)
{
    const struct group_settings *g = &c->settings;
    struct fleet_slot s;
    if ((g->hooks.launch_timeout_ms <= 0 && !g->protect_new_instances) || find_slot(c, id, &s))
        return;
    struct life_arg a = {-1, -1, 0, g->protect_new_instances ? 1 : -1};
    if (g->hooks.launch_timeout_ms > 0 && s.lifecycle == FLEET_PENDING) {
        a.lifecycle = FLEET_PENDING_WAIT;
        a.deadline = now + g->hooks.launch_timeout_ms;
    }
    if (set_state(c, &s, &a) != 0 || a.lifecycle != FLEET_PENDING_WAIT)
        return;
    char t[32];
    fmt_dur(g->hooks.launch_timeout_ms, t, sizeof(t));
    ctl__activity(c, "hook", "pending:wait", g->desired_capacity, g->desired_capacity, "",
                  "instance %s waits for its launch hook for at most %s, default result %s", id, t,
                  g->hooks.launch_default);
}

void ctl__restore(struct ctl *c, const char *id, const struct store_instance *row)
{
    struct fleet_slot s;
    int lc = fleet_lifecycle_parse(row->lifecycle);
    int keep = lc == FLEET_PENDING_WAIT || lc == FLEET_TERMINATING_WAIT || lc == FLEET_STANDBY;
    if ((!keep && !row->protect) || find_slot(c, id, &s))
        return;
    struct life_arg a = {keep ? lc : -1, keep ? row->hook_deadline_ms : -1, 0, row->protect};
    if (set_state(c, &s, &a) == 0)
        log_info("instance \"%s\" of group \"%s\" is back in %s%s", id, c->group,
                 fleet_lifecycle_name(s.lifecycle), s.protect ? " (protected from scale-in)" : "");
}

int ctl__scale_in_candidate(const struct fleet_slot *s)
{
    return !s->protect && s->lifecycle != FLEET_STANDBY && s->lifecycle != FLEET_TERMINATING_WAIT;
}

/* ---- requests ----------------------------------------------------------------------------- */

int ctl__queue(struct ctl *c, const struct term_request *rq, char *err, size_t errlen)
{
    pthread_mutex_lock(&c->mu);
    if (c->n_requests == MAX_REQUESTS) {
        pthread_mutex_unlock(&c->mu);
        snprintf(err, errlen, "too many pending requests for group \"%s\"; try again", c->group);
        return CTL_ESTATE;
    }
    c->requests[c->n_requests++] = *rq;
    c->woken = 1;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    return 0;
}

static int no_instance(struct ctl *c, const char *id, char *err, size_t errlen)
{
    snprintf(err, errlen, "no instance \"%.64s\" in group \"%s\"", id ? id : "", c->group);
    return CTL_ENOENT;
}

static int request(struct ctl *c, const char *id, int kind, int arg, int decrement, char *err,
                   size_t errlen)
{
    struct term_request rq;
    memset(&rq, 0, sizeof(rq));
    snprintf(rq.id, sizeof(rq.id), "%s", id);
    rq.kind = kind;
    rq.arg = arg;
    rq.decrement = decrement;
    return ctl__queue(c, &rq, err, errlen);
}

int ctl_complete_hook(struct ctl *c, const char *id, const char *action, char *err, size_t errlen)
{
    int a = -1;
    for (int i = 0; action && i < 3; i++)
        if (strcmp(action, action_names[i]) == 0)
            a = i;
    if (a < 0) {
        snprintf(err, errlen, "action must be \"continue\", \"abandon\" or \"heartbeat\"");
        return CTL_EINVAL;
    }
    struct fleet_slot s;
    if (find_slot(c, id, &s))
        return no_instance(c, id, err, errlen);
    if (s.lifecycle != FLEET_PENDING_WAIT && s.lifecycle != FLEET_TERMINATING_WAIT) {
        snprintf(err, errlen, "instance \"%s\" is %s: no lifecycle hook waits for it", id,
                 fleet_lifecycle_name(s.lifecycle));
        return CTL_ESTATE;
    }
    return request(c, id, REQ_HOOK, a, 0, err, errlen);
}

int ctl_set_protected(struct ctl *c, const char *id, int protect, char *err, size_t errlen)
{
    struct fleet_slot s;
    if (find_slot(c, id, &s))
        return no_instance(c, id, err, errlen);
    /* at once in the table, so that the next scale-in already sees it; stored by the tick */
    struct life_arg a = {-1, -1, 0, protect ? 1 : 0};
    if (fleet_update(c->fleet, s.index, s.generation, life_fn, &a) != 0)
        return no_instance(c, id, err, errlen);
    return request(c, id, REQ_PROTECT, protect ? 1 : 0, 0, err, errlen);
}

int ctl_standby(struct ctl *c, const char *id, int enter, int decrement, char *err, size_t errlen)
{
    struct fleet_slot s;
    if (find_slot(c, id, &s))
        return no_instance(c, id, err, errlen);
    int want = enter ? FLEET_IN_SERVICE : FLEET_STANDBY;
    if (s.lifecycle != want) {
        snprintf(err, errlen, "instance \"%s\" is %s: only an instance %s can %s standby", id,
                 fleet_lifecycle_name(s.lifecycle), enter ? "in service" : "in standby",
                 enter ? "enter" : "leave");
        return CTL_ESTATE;
    }
    return request(c, id, REQ_STANDBY, enter ? 1 : 0, decrement, err, errlen);
}

int ctl_detach(struct ctl *c, const char *id, int decrement, char *err, size_t errlen)
{
    struct fleet_slot s;
    if (find_slot(c, id, &s))
        return no_instance(c, id, err, errlen);
    if (s.lifecycle == FLEET_TERMINATING || s.lifecycle == FLEET_TERMINATING_WAIT) {
        snprintf(err, errlen, "instance \"%s\" is %s: too late to detach it", id,
                 fleet_lifecycle_name(s.lifecycle));
        return CTL_ESTATE;
    }
    if (c->prov->ops->detach == NULL) {
        snprintf(err, errlen, "the %s provider cannot detach instances", provider_name(c->prov));
        return CTL_ESTATE;
    }
    return request(c, id, REQ_DETACH, 0, decrement, err, errlen);
}

/* The identity of the agent at address: its instance id and pid (MonitorC/Lifecycle). */
static int agent_identity(struct tls_conf *tls, const char *address, char *id, size_t idlen,
                          int *pid, char *err, size_t errlen)
{
    LifecycleRequest rq = LIFECYCLE_REQUEST__INIT;
    uint8_t *buf = NULL;
    size_t n = 0;
    if (rpc_pack(&rq.base, &buf, &n) != 0) {
        snprintf(err, errlen, "out of memory");
        return CTL_ENOMEM;
    }
    struct rpc_result res = RPC_RESULT_INIT;
    int rc = rpc_call_sync_tls(address, tls, "/MonitorC/Lifecycle", buf, n, 2000, &res);
    free(buf);
    int out = CTL_EINVAL;
    if (rc != 0 || res.status != GRPC_STATUS_OK) {
        snprintf(err, errlen, "the agent at %s did not answer MonitorC/Lifecycle: %s", address,
                 rc != 0                                   ? rpc_strerror(rc)
                 : res.details[0]                          ? res.details
                 : res.status == GRPC_STATUS_UNIMPLEMENTED ? "unimplemented (an older agent)"
                                                           : "call failed");
    } else {
        LifecycleReply *r = lifecycle_reply__unpack(NULL, res.len, res.data);
        if (r && r->instance_id && r->instance_id[0] && strlen(r->instance_id) < idlen) {
            snprintf(id, idlen, "%s", r->instance_id);
            *pid = r->pid;
            out = 0;
        } else {
            snprintf(err, errlen, "the agent at %s answered without an instance id", address);
        }
        if (r)
            lifecycle_reply__free_unpacked(r, NULL);
    }
    rpc_result_release(&res);
    return out;
}

int ctl_attach(struct ctl *c, const char *ref, char *err, size_t errlen)
{
    struct term_request rq;
    memset(&rq, 0, sizeof(rq));
    rq.kind = REQ_ATTACH;
    if (ref == NULL || ref[0] == '\0' || strlen(ref) >= FLEET_ADDR_MAX) {
        snprintf(err, errlen, "attach needs an instance id or an agent's host:port");
        return CTL_EINVAL;
    }
    if (c->prov->ops->attach == NULL) {
        snprintf(err, errlen, "the %s provider cannot attach instances", provider_name(c->prov));
        return CTL_ESTATE;
    }
    struct fleet_slot s;
    if (strchr(ref, ':') != NULL) {
        int rc = agent_identity(c->agent_tls, ref, rq.id, sizeof(rq.id), &rq.arg, err, errlen);
        if (rc)
            return rc;
        snprintf(rq.address, sizeof(rq.address), "%s", ref);
    } else {
        snprintf(rq.id, sizeof(rq.id), "%s", ref);
    }
    if (find_slot(c, rq.id, &s) == 0) {
        snprintf(err, errlen, "instance \"%s\" already belongs to group \"%s\"", rq.id, c->group);
        return CTL_ESTATE;
    }
    return ctl__queue(c, &rq, err, errlen);
}

int ctl_lifecycle_json(struct ctl *c, const char *text, char *err, size_t errlen)
{
    json_error_t je;
    json_t *j = text ? json_loads(text, 0, &je) : NULL;
    const char *op = json_string_value(json_object_get(j, "op"));
    const char *id = json_string_value(json_object_get(j, "instance_id"));
    int dec = json_is_true(json_object_get(j, "decrement"));
    int rc = CTL_EINVAL;
    snprintf(err, errlen, "malformed lifecycle request");
    if (op == NULL) {
        /* the message above */
    } else if (strcmp(op, "attach") == 0) {
        rc = ctl_attach(c, json_string_value(json_object_get(j, "attach")), err, errlen);
    } else if (id == NULL) {
        /* the message above */
    } else if (strcmp(op, "hook") == 0) {
        const char *a = json_string_value(json_object_get(j, "action"));
        rc = ctl_complete_hook(c, id, a ? a : "", err, errlen);
    } else if (strcmp(op, "protect") == 0) {
        rc = ctl_set_protected(c, id, json_is_true(json_object_get(j, "protected")), err, errlen);
    } else if (strcmp(op, "standby") == 0 || strcmp(op, "exit-standby") == 0) {
        rc = ctl_standby(c, id, strcmp(op, "standby") == 0, dec, err, errlen);
    } else if (strcmp(op, "detach") == 0) {
        rc = ctl_detach(c, id, dec, err, errlen);
    }
    json_decref(j);
    return rc;
}

/* ---- applied on the controller thread ----------------------------------------------------- */

static void do_standby(struct ctl *c, struct fleet_slot *s, const struct term_request *rq,
                       int64_t now)
{
    int from = c->settings.desired_capacity;
    if (rq->arg) {
        if (s->lifecycle != FLEET_IN_SERVICE)
            return;
        if (rq->decrement && set_desired(c, from - 1) != 0) {
            ctl__activity(c, "standby", "failed", from, from, "",
                          "instance %s cannot enter standby decrementing desired: %d is min_size",
                          s->id, c->settings.min_size);
            return;
        }
        int to = c->settings.desired_capacity;
        struct life_arg a = {FLEET_STANDBY, 0, 0, -1};
        set_state(c, s, &a);
        ctl__activity(c, "standby", "ok", from, to, "", "instance %s entered standby%s", s->id,
                      rq->decrement ? " (desired decremented)" : " (a replacement is launched)");
    } else {
        if (s->lifecycle != FLEET_STANDBY)
            return;
        if (set_desired(c, from + 1) != 0) {
            ctl__activity(c, "standby", "failed", from, from, "",
                          "instance %s cannot leave standby: desired %d + 1 exceeds max_size %d",
                          s->id, from, c->settings.max_size);
            return;
        }
        /* back through pending: it is in service again once its checks pass */
        struct life_arg a = {FLEET_PENDING, 0, now, -1};
        set_state(c, s, &a);
        ctl__activity(c, "standby", "ok", from, c->settings.desired_capacity, "",
                      "instance %s left standby", s->id);
    }
    log_info("instance \"%s\" of group \"%s\" %s standby", s->id, c->group,
             rq->arg ? "entered" : "left");
}

static void do_detach(struct ctl *c, struct fleet_slot *s, const struct term_request *rq,
                      int64_t now)
{
    int from = c->settings.desired_capacity;
    if (!ctl__may_act(c))
        return;
    int rc = provider_detach(c->prov, s->id);
    if (rc != 0) {
        ctl__activity(c, "detach", "failed", from, from, provider_errmsg(c->prov),
                      "detach of instance %s failed: %s", s->id, prov_strerror(rc));
        return;
    }
    if (rq->decrement)
        set_desired(c, from - 1);
    fleet_free(c->fleet, s->index, s->generation);
    if (store_set_instance_lifecycle(c->store, s->id, "detached", now) != 0)
        log_debug("instance \"%s\" not in the store: %s", s->id, store_errmsg(c->store));
    log_info("instance \"%s\" detached from group \"%s\" (it keeps running)", s->id, c->group);
    ctl__activity(c, "detach", "ok", from, c->settings.desired_capacity, "",
                  "instance %s detached: it keeps running outside the group%s", s->id,
                  rq->decrement ? " (desired decremented)" : " (a replacement is launched)");
}

static void do_attach(struct ctl *c, const struct term_request *rq, int64_t now)
{
    int from = c->settings.desired_capacity;
    struct fleet_slot s;
    if (find_slot(c, rq->id, &s) == 0 || !ctl__may_act(c))
        return;
    if (from + 1 > c->settings.max_size) {
        ctl__activity(c, "attach", "failed", from, from, "",
                      "instance %s not attached: desired %d + 1 exceeds max_size %d", rq->id, from,
                      c->settings.max_size);
        return;
    }
    struct prov_instance in, out;
    memset(&in, 0, sizeof(in));
    memset(&out, 0, sizeof(out));
    snprintf(in.id, sizeof(in.id), "%s", rq->id);
    snprintf(in.address, sizeof(in.address), "%s", rq->address);
    in.pid = rq->arg;
    int rc = provider_attach(c->prov, &in, &out);
    if (rc != 0) {
        ctl__activity(c, "attach", "failed", from, from, provider_errmsg(c->prov),
                      "attach of instance %s failed: %s", rq->id, prov_strerror(rc));
        return;
    }
    if (out.launched_at_ms == 0)
        out.launched_at_ms = now;
    if (ctl__track(c, &out) < 0)
        return;
    set_desired(c, from + 1);
    log_info("instance \"%s\" at %s attached to group \"%s\"", out.id, out.address, c->group);
    ctl__activity(c, "attach", "ok", from, c->settings.desired_capacity, "",
                  "instance %s%s%s attached", out.id, out.address[0] ? " at " : "", out.address);
}

void ctl__life_request(struct ctl *c, const struct term_request *rq, int64_t now)
{
    if (rq->kind == REQ_ATTACH) {
        do_attach(c, rq, now);
        return;
    }
    struct fleet_slot s;
    if (find_slot(c, rq->id, &s) != 0)
        return;
    switch (rq->kind) {
    case REQ_HOOK:
        complete_hook(c, &s, rq->arg, "completed through the API", now);
        break;
    case REQ_PROTECT:
        ctl__persist(c, &s);
        ctl__activity(c, "protect", "ok", c->settings.desired_capacity,
                      c->settings.desired_capacity, "", "instance %s %s scale-in protection", s.id,
                      s.protect ? "has" : "no longer has");
        break;
    case REQ_STANDBY:
        do_standby(c, &s, rq, now);
        break;
    case REQ_DETACH:
        do_detach(c, &s, rq, now);
        break;
    default:
        break;
    }
}
