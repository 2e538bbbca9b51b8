/*
 * reg.c - registration of the agent with MonitorS.
 *
 * An agent may start before MonitorS does, MonitorS may restart and forget
 * it, and a thousand agents must not hammer a recovering MonitorS in step.
 * So: Register at start; on failure retry with exponential backoff and
 * jitter, except when MonitorS holds the registration (RegisterReply
 * retry_after_ms: asgd is still recording the launch that made this
 * instance), which is expected at boot and retried after the time it asks,
 * quietly; once accepted, register again when MonitorS stops polling for a
 * while (it restarted and lost us, or it dropped us) and every refresh
 * interval anyway (Register is an idempotent upsert on the MonitorS side).
 * On shutdown, Deregister with a bounded wait. The gRPC server keeps serving
 * whatever happens here.
 *
 * --monitor may list several MonitorS addresses (every node of an asgd
 * cluster): a Register goes to the last one that accepted, and on failure to
 * the next ones in turn, so an agent keeps registering when a node dies.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/agent-int.h"
#include "agent/agent.h"
#include "common/clock.h"
#include "common/log.h"
#include "monitor.pb-c.h"
#include "rpc/rpc.h"
#include "common/banned.h"

#ifndef ASGD_VERSION
#define ASGD_VERSION "dev"
#endif

void agent_backoff_init(struct agent_backoff *b, int64_t base_ms, int64_t cap_ms)
{
    b->base_ms = base_ms > 0 ? base_ms : 1;
    b->cap_ms = cap_ms >= b->base_ms ? cap_ms : b->base_ms;
    b->attempt = 0;
}

int64_t agent_backoff_next(struct agent_backoff *b, uint64_t rnd)
{
    int64_t c = b->base_ms;
    for (int i = 0; i < b->attempt && c < b->cap_ms; i++)
        c *= 2; /* stops at the cap: never overflows */
    if (c > b->cap_ms)
        c = b->cap_ms;
    int64_t half = c / 2;
    int64_t d = half + (int64_t)(rnd % (uint64_t)(c - half + 1));
    if (b->attempt < 1000)
        b->attempt++;
    return d > 0 ? d : 1;
}

void agent_backoff_reset(struct agent_backoff *b)
{
    b->attempt = 0;
}

struct agent_reg {
    struct agent__sleeper sl;
    pthread_t thread;
    struct agent_reg_opts o;
    char *monitor;      /* the current MonitorS: one of mons[] (not owned) */
    char *monitors_buf; /* the --monitor list, split in place: mons[] point into it */
    char *mons[AGENT_REG_MAX_MONITORS];
    size_t n_mons, cur;
    char *address, *token;
    struct agent_state *st;
    pthread_mutex_t mu;
    int registered;      /* under mu */
    int ever_registered; /* under mu */
    int attempts;        /* under mu */
    int32_t poll_interval_ms;
    uint64_t rng;
};

static uint64_t next_rand(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* A held registration is retried after what MonitorS asks, within these bounds */
#define HELD_RETRY_MIN_MS 50
#define HELD_RETRY_MAX_MS 5000

/* One Register call to r->monitor. Returns 1 when accepted, else 0 with the reason in why
   and, when MonitorS held it rather than refused it, *held_ms > 0: when to ask again. */
static int register_once(struct agent_reg *r, char *why, size_t whylen, int64_t *held_ms)
{
    *held_ms = 0;
    RegisterRequest rq = REGISTER_REQUEST__INIT;
    rq.instance_id = (char *)agent_state_instance_id(r->st);
    rq.address = r->address;
    rq.token = r->token ? r->token : "";
    rq.agent_version = ASGD_VERSION;
    uint8_t *buf = NULL;
    size_t len = 0;
    if (rpc_pack(&rq.base, &buf, &len)) {
        snprintf(why, whylen, "out of memory");
        return 0;
    }
    struct rpc_result res = RPC_RESULT_INIT;
    int rc = rpc_call_sync_tls(r->monitor, r->o.tls, "/MonitorS/Register", buf, len,
                               r->o.call_timeout_ms, &res);
    free(buf);
    pthread_mutex_lock(&r->mu);
    r->attempts++;
    pthread_mutex_unlock(&r->mu);
    int ok = 0;
    if (rc) {
        snprintf(why, whylen, "cannot call: %s", rpc_strerror(rc));
        goto out;
    }
    if (res.status != GRPC_STATUS_OK) {
        snprintf(why, whylen, "status %d%s%s", (int)res.status, res.details[0] ? ": " : "",
                 res.details);
        goto out;
    }
    RegisterReply *rp = register_reply__unpack(NULL, res.len, res.data);
    if (!rp) {
        snprintf(why, whylen, "malformed RegisterReply");
        goto out;
    }
    if (!rp->accepted && rp->retry_after_ms > 0) {
        snprintf(why, whylen, "%s", rp->message && rp->message[0] ? rp->message : "held");
        *held_ms = rp->retry_after_ms < HELD_RETRY_MIN_MS   ? HELD_RETRY_MIN_MS
                   : rp->retry_after_ms > HELD_RETRY_MAX_MS ? HELD_RETRY_MAX_MS
                                                            : rp->retry_after_ms;
    } else if (!rp->accepted) {
        snprintf(why, whylen, "refused: %s", rp->message && rp->message[0] ? rp->message : "?");
    } else {
        ok = 1;
        r->poll_interval_ms = rp->poll_interval_ms > 0 ? rp->poll_interval_ms : 0;
    }
    register_reply__free_unpacked(rp, NULL);
out:
    rpc_result_release(&res);
    return ok;
}

/* Register with the current MonitorS, else the others in turn (a cluster node died). A
   MonitorS that holds the registration is launching this instance: it is the one to ask
   again (*held_ms > 0), not the others, which do not know the instance yet either. */
static int register_any(struct agent_reg *r, char *why, size_t whylen, int64_t *held_ms)
{
    for (size_t k = 0; k < r->n_mons; k++) {
        size_t i = (r->cur + k) % r->n_mons;
        r->monitor = r->mons[i];
        if (register_once(r, why, whylen, held_ms)) {
            r->cur = i;
            return 1;
        }
        if (*held_ms > 0) {
            r->cur = i;
            return 0;
        }
    }
    r->monitor = r->mons[r->cur];
    return 0;
}

static void set_registered(struct agent_reg *r, int v)
{
    pthread_mutex_lock(&r->mu);
    r->registered = v;
    if (v)
        r->ever_registered = 1;
    pthread_mutex_unlock(&r->mu);
}

static void *reg_main(void *arg)
{
    struct agent_reg *r = arg;
    struct agent_backoff b;
    agent_backoff_init(&b, r->o.backoff_base_ms, r->o.backoff_cap_ms);
    int registered = 0, failing = 0, quiet_reported = 0;
    int64_t registered_at = 0;
    for (;;) {
        if (registered) {
            int64_t now = clk_mono_ms();
            int64_t silence = r->o.silence_ms;
            if (silence <= 0) {
                silence = 3 * (int64_t)r->poll_interval_ms;
                if (silence < 5000)
                    silence = 5000;
            }
            int64_t last = agent_state_last_poll_ms(r->st);
            if (last < registered_at)
                last = registered_at;
            int64_t quiet_left = last + silence - now;
            int64_t refresh_left = registered_at + r->o.refresh_ms - now;
            if (last > registered_at)
                quiet_reported = 0; /* polls arrive: report the next silence again */
            if (quiet_left <= 0) {
                if (!quiet_reported)
                    log_info("no poll from MonitorS for %lld ms: registering again",
                             (long long)(now - last));
                quiet_reported = 1;
            } else if (refresh_left > 0) {
                int64_t w = quiet_left < refresh_left ? quiet_left : refresh_left;
                if (agent__sleeper_wait(&r->sl, w < 1000 ? w : 1000))
                    break;
                continue;
            }
        }
        char why[256];
        int64_t held_ms = 0;
        if (register_any(r, why, sizeof(why), &held_ms)) {
            if (!registered || failing)
                log_info("registered with MonitorS at \"%s\" as \"%s\" (%s)", r->monitor,
                         agent_state_instance_id(r->st), r->address);
            registered = 1;
            failing = 0;
            registered_at = clk_mono_ms();
            set_registered(r, 1);
            agent_backoff_reset(&b);
            continue;
        }
        registered = 0;
        set_registered(r, 0);
        if (held_ms > 0) {
            /* not a failure: no backoff, no warning; jitter keeps a batch out of step */
            int64_t d = held_ms - (int64_t)(next_rand(&r->rng) % (uint64_t)(held_ms / 4 + 1));
            log_debug("registration with MonitorS at \"%s\": %s", r->monitor, why);
            if (agent__sleeper_wait(&r->sl, d))
                break;
            continue;
        }
        int64_t d = agent_backoff_next(&b, next_rand(&r->rng));
        if (!failing)
            log_warn("registration with MonitorS at \"%s\" failed: %s (retrying with backoff)",
                     r->monitor, why);
        else
            log_debug("registration with MonitorS at \"%s\" failed: %s (retry in %lld ms)",
                      r->monitor, why, (long long)d);
        failing = 1;
        if (agent__sleeper_wait(&r->sl, d))
            break;
    }
    return NULL;
}

struct agent_reg *agent_reg_start(const struct agent_reg_opts *o, struct agent_state *st)
{
    if (!o || !o->monitor || !o->address || !st)
        return NULL;
    struct agent_reg *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->o = *o;
    if (r->o.backoff_base_ms <= 0)
        r->o.backoff_base_ms = 500;
    if (r->o.backoff_cap_ms <= 0)
        r->o.backoff_cap_ms = 30000;
    if (r->o.refresh_ms <= 0)
        r->o.refresh_ms = 60000;
    if (r->o.call_timeout_ms <= 0)
        r->o.call_timeout_ms = 2000;
    r->monitors_buf = strdup(o->monitor);
    char *save = NULL;
    for (char *tok = r->monitors_buf ? strtok_r(r->monitors_buf, ",", &save) : NULL;
         tok && r->n_mons < AGENT_REG_MAX_MONITORS; tok = strtok_r(NULL, ",", &save))
        r->mons[r->n_mons++] = tok;
    r->monitor = r->n_mons ? r->mons[0] : NULL;
    r->address = strdup(o->address);
    r->token = o->token ? strdup(o->token) : NULL;
    r->st = st;
    r->rng = (uint64_t)clk_wall_ms() ^ ((uint64_t)getpid() << 20) ^ (uint64_t)(uintptr_t)r;
    pthread_mutex_init(&r->mu, NULL);
    agent__sleeper_init(&r->sl);
    if (!r->monitor || !r->address || (o->token && !r->token) ||
        pthread_create(&r->thread, NULL, reg_main, r) != 0) {
        agent__sleeper_release(&r->sl);
        pthread_mutex_destroy(&r->mu);
        free(r->monitors_buf);
        free(r->address);
        free(r->token);
        free(r);
        return NULL;
    }
    return r;
}

int agent_reg_registered(struct agent_reg *r)
{
    pthread_mutex_lock(&r->mu);
    int v = r->registered;
    pthread_mutex_unlock(&r->mu);
    return v;
}

int agent_reg_attempts(struct agent_reg *r)
{
    pthread_mutex_lock(&r->mu);
    int v = r->attempts;
    pthread_mutex_unlock(&r->mu);
    return v;
}

static int deregister(struct agent_reg *r, const char *reason, int timeout_ms)
{
    DeregisterRequest rq = DEREGISTER_REQUEST__INIT;
    rq.instance_id = (char *)agent_state_instance_id(r->st);
    rq.token = r->token ? r->token : "";
    rq.reason = (char *)(reason ? reason : "");
    uint8_t *buf = NULL;
    size_t len = 0;
    if (rpc_pack(&rq.base, &buf, &len))
        return -1;
    struct rpc_result res = RPC_RESULT_INIT;
    int rc = rpc_call_sync_tls(r->monitor, r->o.tls, "/MonitorS/Deregister", buf, len,
                               timeout_ms > 0 ? timeout_ms : 1, &res);
    free(buf);
    int ok = -1;
    if (rc) {
        log_warn("deregistration from MonitorS at \"%s\" failed: %s", r->monitor, rpc_strerror(rc));
    } else if (res.status != GRPC_STATUS_OK) {
        log_warn("deregistration from MonitorS at \"%s\" failed: status %d %s", r->monitor,
                 (int)res.status, res.details);
    } else {
        DeregisterReply *rp = deregister_reply__unpack(NULL, res.len, res.data);
        if (rp && rp->ok) {
            log_info("deregistered from MonitorS at \"%s\"", r->monitor);
            ok = 0;
        } else {
            log_warn("MonitorS at \"%s\" did not acknowledge the deregistration", r->monitor);
        }
        if (rp)
            deregister_reply__free_unpacked(rp, NULL);
    }
    rpc_result_release(&res);
    return ok;
}

int agent_reg_stop(struct agent_reg *r, const char *reason, int timeout_ms)
{
    if (!r)
        return 1;
    agent__sleeper_stop(&r->sl);
    pthread_join(r->thread, NULL);
    int rc = 1;
    if (r->ever_registered)
        rc = deregister(r, reason, timeout_ms);
    agent__sleeper_release(&r->sl);
    pthread_mutex_destroy(&r->mu);
    free(r->monitors_buf);
    free(r->address);
    free(r->token);
    free(r);
    return rc;
}
