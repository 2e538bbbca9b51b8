/*
 * registry.c - the MonitorS service's two methods: Register and Deregister.
 *
 * Every request comes from the network and may be hostile: the token is
 * checked first (in constant time), ids and addresses are validated before
 * anything touches the fleet table, and peer-supplied text is made printable
 * before it reaches a log line. Refusals are logged at most a few per second
 * so that a flood of rogue registrations cannot flood the log. The rules
 * themselves are stated in mon.h.
 *
 * Early agents: an instance's agent can register before the launch call that
 * made it has returned to the controller and the instance has a slot (the
 * local provider waits for each agent to be ready before it answers; an EC2
 * instance can boot while a large call is still being answered). While a
 * fleet table says a launch is in flight (fleet_set_launching), an unknown id
 * is therefore HELD rather than refused: not accepted, with retry_after_ms
 * telling the agent to ask again shortly; once the controller has recorded
 * the launch, the retry finds the slot. The alternative, keeping an early
 * registration record to apply when the slot appears, would need a bounded
 * table (anyone with the token can send random ids), expiry, and a way for
 * the controller's process to reach it in the two-process mode; and it would
 * either accept before we know the instance is ours or still need the retry.
 * A held answer keeps no state at all, so a flood costs nothing, accepts
 * nothing asgd did not launch, and the agent learns it is registered within
 * retry_after_ms of the slot's allocation.
 */
#include <stdio.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/stats.h"
#include "fleet/fleet.h"
#include "monitor/mon-int.h"

#include "common/banned.h"

#define REFUSALS_LOGGED_PER_SEC 5
/* What a held agent is told: soon after the launch is recorded, cheap for a few agents */
#define HOLD_RETRY_MS 100

static int register_locked(struct mon *m, const RegisterRequest *rq, RegisterReply *rp,
                           const char *id, const char *addr, char *msgbuf, size_t msglen,
                           int launching);
static void deregister_locked(struct mon *m, const DeregisterRequest *rq, DeregisterReply *rp,
                              const char *id);

int mon_token_equal(const char *a, const char *b)
{
    if (!a)
        a = "";
    if (!b)
        b = "";
    size_t la = strlen(a), lb = strlen(b);
    volatile unsigned char diff = (unsigned char)(la != lb);
    /* walk the whole expected secret whatever a holds; past a's end compare with 0xff,
       which never equals a byte of b (b holds no NUL before lb) */
    for (size_t i = 0; i < lb; i++) {
        unsigned char ca = i < la ? (unsigned char)a[i] : 0xff;
        diff |= (unsigned char)(ca ^ (unsigned char)b[i]);
    }
    return diff == 0;
}

static int host_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_';
}

int mon_address_valid(const char *addr)
{
    if (!addr)
        return 0;
    size_t n = strnlen(addr, FLEET_ADDR_MAX);
    if (n == 0 || n >= FLEET_ADDR_MAX)
        return 0;
    const char *colon;
    if (addr[0] == '[') {
        const char *close = strchr(addr, ']');
        if (!close || close == addr + 1 || close[1] != ':')
            return 0;
        for (const char *p = addr + 1; p < close; p++)
            if (!(host_char(*p) || *p == ':' || *p == '%'))
                return 0;
        colon = close + 1;
    } else {
        colon = strchr(addr, ':');
        if (!colon || colon == addr || strchr(colon + 1, ':'))
            return 0;
        for (const char *p = addr; p < colon; p++)
            if (!host_char(*p))
                return 0;
    }
    const char *port = colon + 1;
    size_t plen = strlen(port);
    if (plen == 0 || plen > 5)
        return 0;
    long v = 0;
    for (const char *p = port; *p; p++) {
        if (*p < '0' || *p > '9')
            return 0;
        v = v * 10 + (*p - '0');
    }
    return v >= 1 && v <= 65535;
}

void mon__printable(const char *in, char *out, size_t outlen)
{
    size_t i = 0;
    if (outlen == 0)
        return;
    for (; in && in[i] && i + 1 < outlen; i++) {
        unsigned char c = (unsigned char)in[i];
        out[i] = (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') ? '?' : (char)c;
    }
    out[i] = '\0';
}

/* Instance ids: what providers produce (EC2 "i-0abc...", local "<group>-<hex>"). */
static int id_valid(const char *id)
{
    size_t n = id ? strnlen(id, FLEET_ID_MAX) : 0;
    if (n == 0 || n >= FLEET_ID_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!(host_char(id[i]) || id[i] == ':' || id[i] == '@'))
            return 0;
    return 1;
}

/* 1 when a refusal may be logged now (a few a second; the rest are counted and summed up) */
static int refusal_loggable(struct mon *m)
{
    int64_t now = clk_mono_ms();
    if (now - m->refuse_window_ms >= 1000) {
        if (m->refuse_suppressed)
            log_warn("%u more refusals were not logged", m->refuse_suppressed);
        m->refuse_window_ms = now;
        m->refuse_logged = 0;
        m->refuse_suppressed = 0;
    }
    if (m->refuse_logged >= REFUSALS_LOGGED_PER_SEC) {
        m->refuse_suppressed++;
        return 0;
    }
    m->refuse_logged++;
    return 1;
}

static void refuse(struct mon *m, const char *what, const char *id, const char *why)
{
    atomic_fetch_add_explicit(&stats.registrations_refused, 1, memory_order_relaxed);
    if (!refusal_loggable(m))
        return;
    char safe[FLEET_ID_MAX + 8];
    mon__printable(id, safe, sizeof(safe));
    log_warn("%s refused for instance \"%s\": %s", what, safe, why);
}

/* 1 when some group's controller has a launch in flight (see the top of this file); mu held */
static int launch_in_flight(struct mon *m)
{
    int64_t now = clk_mono_ms();
    for (struct mon_group *g = m->groups; g; g = g->next)
        if (!g->removing && fleet_launching(g->fleet, now))
            return 1;
    return 0;
}

/* Not refused, not accepted: an agent that may be early for a launch in flight. */
static void hold(struct mon *m, RegisterReply *rp, const char *id, char *msgbuf, size_t msglen)
{
    atomic_fetch_add_explicit(&stats.registrations_held, 1, memory_order_relaxed);
    rp->accepted = 0;
    rp->retry_after_ms = HOLD_RETRY_MS;
    snprintf(msgbuf, msglen, "held: not known yet, a launch is in flight (retry in %d ms)",
             HOLD_RETRY_MS);
    if (log__level >= LOG_LVL_DEBUG && refusal_loggable(m)) {
        char safe[FLEET_ID_MAX + 8];
        mon__printable(id, safe, sizeof(safe));
        log_debug("registration of instance \"%s\" held: not in a fleet table yet, a launch "
                  "is in flight",
                  safe);
    }
}

static int token_ok(const struct mon *m, const char *presented)
{
    if (!m->token[0])
        return 1;
    return mon_token_equal(presented, m->token);
}

struct reg_arg {
    const char *address; /* "" when the agent did not say */
    int64_t now_ms;
    int filled;   /* out: address written into the slot */
    int returned; /* out: it was deregistered (a restart) and is back */
    char slot_address[FLEET_ADDR_MAX];
};

static void reg_apply(struct fleet_slot *s, void *arg)
{
    struct reg_arg *a = arg;
    s->registered = 1;
    if (s->health == FLEET_HEALTH_DEREGISTERED) {
        /* back within its reconnect window: the checks decide again, from scratch */
        s->health = FLEET_HEALTH_UNKNOWN;
        s->consecutive_ok = 0;
        s->consecutive_fail = 0;
        s->health_changed_ms = a->now_ms;
        a->returned = 1;
    }
    if (!s->address[0] && a->address[0]) {
        snprintf(s->address, sizeof(s->address), "%s", a->address);
        a->filled = 1;
    }
    snprintf(a->slot_address, sizeof(a->slot_address), "%s", s->address);
}

void mon__register(struct mon *m, const RegisterRequest *rq, RegisterReply *rp, char *msgbuf,
                   size_t msglen)
{
    const char *id = rq->instance_id ? rq->instance_id : "";
    const char *addr = rq->address ? rq->address : "";

    rp->accepted = 0;
    rp->poll_interval_ms = 0;
    rp->retry_after_ms = 0;
    rp->message = msgbuf;
    msgbuf[0] = '\0';

    if (!token_ok(m, rq->token)) {
        snprintf(msgbuf, msglen, "bad token");
        refuse(m, "registration", id, "bad token");
        return;
    }
    if (!id_valid(id)) {
        snprintf(msgbuf, msglen, "invalid instance id");
        refuse(m, "registration", id, "invalid instance id");
        return;
    }
    if (addr[0] && !mon_address_valid(addr)) {
        snprintf(msgbuf, msglen, "invalid address (want host:port)");
        refuse(m, "registration", id, "invalid address");
        return;
    }

    pthread_mutex_lock(&m->mu);
    /* before the lookup: a window seen closed here was closed after the slots of its
       launch were allocated, so the lookup below finds an instance that launch made */
    int launching = launch_in_flight(m);
    int foreign = register_locked(m, rq, rp, id, addr, msgbuf, msglen, launching);
    pthread_mutex_unlock(&m->mu);
    if (!foreign)
        return;
    /* a group another node runs (the callee may ask the store: never under mon.mu, which
       the poller takes) */
    if (m->on_foreign(m->foreign_arg, id, addr)) {
        char sid[FLEET_ID_MAX];
        mon__printable(id, sid, sizeof(sid));
        log_debug("instance \"%s\" of a group run by another node registered here: recorded "
                  "for its owner",
                  sid);
        atomic_fetch_add_explicit(&stats.registrations_accepted, 1, memory_order_relaxed);
        rp->accepted = 1;
        rp->poll_interval_ms = (int32_t)m->interval_ms;
        snprintf(msgbuf, msglen, "registered (recorded for the group's owner)");
        return;
    }
    if (launching) {
        hold(m, rp, id, msgbuf, msglen);
        return;
    }
    snprintf(msgbuf, msglen, "unknown instance");
    refuse(m, "registration", id, "unknown instance");
}

/* The body of mon__register() with mon.mu held, so no group goes away meanwhile. Returns 1
   when the instance is in no group here and the cluster must be asked (on_foreign). An
   unknown instance is held while launching, even with accept_unknown: it may be ours, and
   the slot the controller is about to allocate is the right one. */
static int register_locked(struct mon *m, const RegisterRequest *rq, RegisterReply *rp,
                           const char *id, const char *addr, char *msgbuf, size_t msglen,
                           int launching)
{
    uint32_t index = 0;
    int rc;
    for (int attempt = 0; attempt < 3; attempt++) {
        struct mon_group *g = mon__group_find_instance(m, id, &index);
        struct fleet *fleet = g ? g->fleet : NULL;
        rc = g ? FLEET_OK : FLEET_ENOENT;
        if (rc == FLEET_ENOENT) {
            if (!m->accept_unknown && m->on_foreign && addr[0])
                return 1; /* the caller asks the cluster, without mon.mu */
            if (launching) {
                hold(m, rp, id, msgbuf, msglen);
                return 0;
            }
            if (!m->accept_unknown) {
                snprintf(msgbuf, msglen, "unknown instance");
                refuse(m, "registration", id, "unknown instance");
                return 0;
            }
            if (!addr[0]) {
                snprintf(msgbuf, msglen, "unknown instance needs an address");
                refuse(m, "registration", id, "unknown instance without address");
                return 0;
            }
            g = m->groups;
            while (g && g->removing)
                g = g->next;
            if (!g) {
                snprintf(msgbuf, msglen, "unknown instance");
                refuse(m, "registration", id, "unknown instance (no group)");
                return 0;
            }
            fleet = g->fleet;
            rc = fleet_alloc(fleet, id, addr, clk_wall_ms(), &index);
            if (rc == FLEET_EEXIST)
                continue; /* raced with the controller: look it up again */
            if (rc) {
                snprintf(msgbuf, msglen, "cannot add instance: %s", fleet_strerror(rc));
                refuse(m, "registration", id, fleet_strerror(rc));
                return 0;
            }
            char sid[FLEET_ID_MAX], saddr[FLEET_ADDR_MAX];
            mon__printable(id, sid, sizeof(sid));
            mon__printable(addr, saddr, sizeof(saddr));
            log_info("instance \"%s\" at %s was unknown: added to the fleet table (pending)", sid,
                     saddr);
        } else if (rc) {
            snprintf(msgbuf, msglen, "fleet table error: %s", fleet_strerror(rc));
            refuse(m, "registration", id, fleet_strerror(rc));
            return 0;
        }

        struct fleet_slot slot;
        if (fleet_read(fleet, index, &slot))
            continue; /* freed meanwhile */
        struct reg_arg a = {.address = addr, .now_ms = clk_wall_ms()};
        rc = fleet_update(fleet, index, slot.generation, reg_apply, &a);
        if (rc == FLEET_ESTALE || rc == FLEET_ENOENT)
            continue;
        if (rc) {
            snprintf(msgbuf, msglen, "fleet table error: %s", fleet_strerror(rc));
            refuse(m, "registration", id, fleet_strerror(rc));
            return 0;
        }

        char sid[FLEET_ID_MAX], saddr[FLEET_ADDR_MAX], sver[32];
        mon__printable(id, sid, sizeof(sid));
        mon__printable(a.slot_address, saddr, sizeof(saddr));
        mon__printable(rq->agent_version, sver, sizeof(sver));
        if (a.returned)
            log_info("instance \"%s\" at %s registered again after its deregistration (agent "
                     "%s)",
                     sid, saddr, sver[0] ? sver : "?");
        else if (!slot.registered)
            log_info("instance \"%s\" at %s registered (agent %s)", sid, saddr,
                     sver[0] ? sver : "?");
        if (addr[0] && !a.filled && strcmp(addr, a.slot_address) != 0) {
            char claimed[FLEET_ADDR_MAX];
            mon__printable(addr, claimed, sizeof(claimed));
            log_warn("instance \"%s\" registered as %s but the table says %s: keeping %s", sid,
                     claimed, saddr, saddr);
        }
        if (a.filled)
            atomic_store(&g->rescan, 1); /* the poller has an address to poll now */
        atomic_fetch_add_explicit(&stats.registrations_accepted, 1, memory_order_relaxed);
        rp->accepted = 1;
        if (!slot.registered && g->registered_only)
            atomic_store(&g->rescan, 1); /* registered agents are polled for load */
        rp->poll_interval_ms = (int32_t)g->interval_ms;
        snprintf(msgbuf, msglen, "registered");
        return 0;
    }
    snprintf(msgbuf, msglen, "instance is being removed");
    refuse(m, "registration", id, "slot changed during registration");
    return 0;
}

struct dereg_arg {
    int64_t now_ms;
    int was_registered;
    int health_changed;
    char slot_address[FLEET_ADDR_MAX];
};

static void dereg_apply(struct fleet_slot *s, void *arg)
{
    struct dereg_arg *a = arg;
    a->was_registered = s->registered;
    s->registered = 0;
    s->consecutive_ok = 0;
    /* a graceful restart: the controller waits the group's deregister_grace before it treats
       the instance as unhealthy (an UNHEALTHY one stays so) */
    if (s->health != FLEET_HEALTH_UNHEALTHY && s->health != FLEET_HEALTH_DEREGISTERED) {
        s->health = FLEET_HEALTH_DEREGISTERED;
        s->health_changed_ms = a->now_ms;
        a->health_changed = 1;
    }
    snprintf(a->slot_address, sizeof(a->slot_address), "%s", s->address);
}

void mon__deregister(struct mon *m, const DeregisterRequest *rq, DeregisterReply *rp)
{
    const char *id = rq->instance_id ? rq->instance_id : "";

    rp->ok = 0;
    if (!token_ok(m, rq->token)) {
        refuse(m, "deregistration", id, "bad token");
        return;
    }
    if (!id_valid(id)) {
        refuse(m, "deregistration", id, "invalid instance id");
        return;
    }
    pthread_mutex_lock(&m->mu);
    deregister_locked(m, rq, rp, id);
    pthread_mutex_unlock(&m->mu);
}

static void deregister_locked(struct mon *m, const DeregisterRequest *rq, DeregisterReply *rp,
                              const char *id)
{
    uint32_t index = 0;
    struct fleet_slot slot;
    for (int attempt = 0; attempt < 3; attempt++) {
        struct mon_group *g = mon__group_find_instance(m, id, &index);
        if (!g) {
            refuse(m, "deregistration", id, "unknown instance");
            return;
        }
        if (fleet_read(g->fleet, index, &slot))
            continue;
        struct dereg_arg a = {.now_ms = clk_wall_ms()};
        int rc = fleet_update(g->fleet, index, slot.generation, dereg_apply, &a);
        if (rc == FLEET_ESTALE || rc == FLEET_ENOENT)
            continue;
        if (rc) {
            refuse(m, "deregistration", id, fleet_strerror(rc));
            return;
        }
        char sid[FLEET_ID_MAX], saddr[FLEET_ADDR_MAX], sreason[96];
        mon__printable(id, sid, sizeof(sid));
        mon__printable(a.slot_address, saddr, sizeof(saddr));
        mon__printable(rq->reason, sreason, sizeof(sreason));
        if (a.health_changed)
            log_info("instance \"%s\" at %s deregistered (%s): not counted, replaced unless it "
                     "comes back within the group's deregister_grace",
                     sid, saddr, sreason[0] ? sreason : "no reason given");
        else
            log_info("instance \"%s\" at %s deregistered (%s)", sid, saddr,
                     sreason[0] ? sreason : "no reason given");
        rp->ok = 1;
        return;
    }
    refuse(m, "deregistration", id, "slot changed during deregistration");
}
