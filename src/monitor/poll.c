/*
 * poll.c - the poller: every instance polled every interval, one thread.
 *
 * Workload: thousands of instances (10,000 at one poll a second is the
 * target), each polled every interval (2 s by default) with a deadline
 * (1 s), from ONE thread over one h2_client (src/h2/h2.h: our own HTTP/2
 * client speaking the gRPC wire, one epoll set, one timer wheel) and one
 * persistent connection per instance. Every call is asynchronous, so a stuck
 * agent costs one connection until its deadline and never delays anybody
 * else's poll.
 *
 * A target mirrors one fleet-table slot (index, generation). Targets are
 * created and dropped by a rescan, which runs when fleet_membership_gen()
 * changes or when the registry says an address or registration changed.
 * Dropping a target frees its connection, and a call in flight on it with
 * it (h2_conn_free() never runs the callback).
 *
 * One poll is GetMetrics. An agent answering UNIMPLEMENTED is a seed agent:
 * the same poll continues with GetStatus then GetMemoryUsage (within the
 * original deadline), and later polls start there. After a seed poll fails
 * the next one probes GetMetrics again, so an agent replaced by a newer one
 * is noticed. The result goes into the slot with fleet_update(), where the
 * hysteresis (health.c) runs on the slot's own counters; only transitions
 * are logged.
 *
 * Scheduling is fixed-rate per target (next = this poll's due time +
 * interval, see schedule_next()) with new targets spread over one interval. Each target's next poll
 * is a timer in the client's wheel (the same wheel as the calls' deadlines): when it fires the
 * target joins the due list, and the thread's loop starts the polls on that list under mon.mu.
 * Nothing walks every target per tick.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/stats.h"
#include "fleet/fleet.h"
#include "monitor/mon-int.h"
#include "h2/h2.h"
#include "h2/wheel.h"

#include "common/banned.h"

#define SCAN_TICK_MS  5
#define IDLE_WAIT_MS  100
#define HEARTBEAT_MS  1000
#define RESCAN_MIN_MS 20
#define REASON_MAX    160
#define BATCH_MS      10 /* polls start in batches at this granularity (see schedule()) */
/* new connections connect on their first poll: at most this many first polls a second (a
   connection costs a few polls' CPU: socket, connect, HTTP/2 preface and SETTINGS) */
#define CONNECT_RATE 10000
/* with TLS a connection also costs a handshake (ECDHE, signatures both ways with mutual TLS)
   on both sides: fewer a second, or a crowd of them times out and retries in a storm */
#define CONNECT_RATE_TLS 250
/* the poller is behind when it starts a poll this late, or sees a deadline this late */
#define LAG_MS 100
/* a target's poll may be inconclusive (deadline while the poller lagged) this many times in a
   row; the next such result counts as the failure it may be (a hung agent under overload) */
#define MAX_DEFERRALS 3

enum step { STEP_METRICS = 0, STEP_STATUS, STEP_MEMORY };

struct mon_target {
    struct mon_poller *p;
    struct mon_group *g; /* valid while !dead (the poller drops targets before freeing g) */
    uint32_t index, generation;
    char id[FLEET_ID_MAX];
    char address[FLEET_ADDR_MAX];
    struct h2_conn *conn;
    struct wheel_timer due;                 /* the next poll */
    struct mon_target *due_next, *due_prev; /* on the poller's due list */
    int on_due;
    int64_t next_due_ms; /* monotonic */
    int seed;            /* start polls with GetStatus */
    int inflight;
    /* the poll in progress */
    enum step step;
    int64_t start_us;
    int64_t deadline_ms; /* monotonic, for the seed methods' follow-up calls */
    int learned_seed;    /* -1 unknown, 0 new protocol, 1 seed protocol */
    uint64_t round;      /* mon_poll_once round that last started it */
    int app_healthy;     /* -1 unknown */
    int got_sample;      /* the agent answered with load figures (each may be -1: unknown) */
    double load, cpu, mem, load1;
    /* the group's settings when the poll started (read under mon.mu) */
    int64_t interval_ms;
    uint32_t rise, fall;
    uint32_t deferrals; /* consecutive inconclusive polls (see on_done) */
    int64_t early_ms;   /* monotonic: the last poll on_lost() brought forward */
};

struct mon_poller {
    struct mon *m;
    struct h2_client *cl;
    struct wheel *wheel; /* the client's */
    int inflight;
    int ntargets;
    struct mon_target *due_head, *due_tail; /* due, not started yet (FIFO) */
    uint64_t round;                         /* mon_poll_once rounds */
    int64_t last_lag_ms; /* monotonic: when a poll last started more than LAG_MS late */
    uint64_t deferred;   /* polls deferred (see defer()) or whose cycle was missed */
};

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int mon__poller_new(struct mon *m, struct mon_poller **out)
{
    struct mon_poller *p = calloc(1, sizeof(*p));
    if (!p)
        return MON_ENOMEM;
    p->m = m;
    /* a dead agent is tried again by the next poll: backoff 100 ms up to min(interval, 1 s) */
    int64_t backoff = m->interval_ms < 1000 ? m->interval_ms : 1000;
    struct h2_opts o = H2_OPTS_INIT;
    o.backoff_initial_ms = (int)(backoff < 100 ? backoff : 100);
    o.backoff_max_ms = (int)backoff;
    o.max_message = 16 * 1024;
    o.tls = m->tls; /* NULL: plain text */
    int rc = h2_client_new(&o, &p->cl);
    if (rc) {
        free(p);
        return rc == H2_ENOMEM ? MON_ENOMEM : MON_ESYS;
    }
    p->wheel = h2_client_wheel(p->cl);
    *out = p;
    return MON_OK;
}

static void due_unlink(struct mon_poller *p, struct mon_target *t)
{
    if (!t->on_due)
        return;
    if (t->due_prev)
        t->due_prev->due_next = t->due_next;
    else
        p->due_head = t->due_next;
    if (t->due_next)
        t->due_next->due_prev = t->due_prev;
    else
        p->due_tail = t->due_prev;
    t->due_next = t->due_prev = NULL;
    t->on_due = 0;
}

/* The target's poll timer: onto the due list, started by the thread's loop under mu. */
static void on_due(struct wheel_timer *w, int64_t now)
{
    (void)now;
    struct mon_target *t = (struct mon_target *)((char *)w - offsetof(struct mon_target, due));
    struct mon_poller *p = t->p;
    if (t->on_due || t->inflight)
        return;
    t->on_due = 1;
    t->due_next = NULL;
    t->due_prev = p->due_tail;
    if (p->due_tail)
        p->due_tail->due_next = t;
    else
        p->due_head = t;
    p->due_tail = t;
}

/* Arms t's next poll, rounded up to a multiple of BATCH_MS: the polls due in the same few
   milliseconds start together, so the poller (and the agents' side of a swarm) wakes once for
   a batch instead of once per poll; a busy machine punishes every extra wakeup. */
static void schedule(struct mon_target *t, int64_t due_ms)
{
    due_ms = (due_ms + BATCH_MS - 1) / BATCH_MS * BATCH_MS;
    t->next_due_ms = due_ms;
    wheel_add(t->p->wheel, &t->due, due_ms, on_due);
}

/*
 * The poll after the one that just ended: one interval after the nominal due time of this one,
 * not after its actual start, so that polls a stall bunched together (started late, all at
 * once) go back to their own places in the spread instead of staying bunched, which would make
 * every later cycle a burst. Cycles already past are skipped and counted as deferred.
 */
static void schedule_next(struct mon_target *t)
{
    int64_t now = clk_mono_ms();
    int64_t iv = t->interval_ms > 0 ? t->interval_ms : 1;
    int64_t next = t->next_due_ms + iv;
    if (next < now) {
        int64_t missed = (now - next) / iv + 1;
        next += missed * iv;
        t->p->deferred += (uint64_t)missed;
        stats_count_deferred_polls((uint64_t)missed);
    }
    schedule(t, next);
}

/*
 * The agent closed its idle connection: its process died or is restarting. It is checked now
 * instead of up to an interval later, and its schedule goes on from here: a killed agent is
 * then unhealthy after (fall - 1) intervals instead of up to fall, while its checks stay an
 * interval apart, so `fall` failures still mean what they say (an agent back within an interval
 * never fails twice). An agent that closes idle connections while healthy costs one poll early,
 * once an interval at most.
 */
static void on_lost(void *arg)
{
    struct mon_target *t = arg;
    int64_t now = clk_mono_ms();
    if (t->inflight || t->on_due || t->next_due_ms - now <= BATCH_MS)
        return;
    /* once an interval at most: an agent (or a proxy) that closes its connection after every
       answer would otherwise be polled as fast as it answers */
    int64_t iv = t->g->interval_ms > 0 ? t->g->interval_ms : 1;
    if (t->early_ms && now - t->early_ms < iv)
        return;
    t->early_ms = now;
    wheel_del(t->p->wheel, &t->due);
    schedule(t, now);
}

/* Drops the target at index of g; a call in flight on it is dropped with its connection. */
static void target_drop(struct mon_poller *p, struct mon_group *g, uint32_t index)
{
    struct mon_target *t = g->targets[index];
    if (!t)
        return;
    g->targets[index] = NULL;
    p->ntargets--;
    wheel_del(p->wheel, &t->due);
    due_unlink(p, t);
    h2_conn_free(t->conn);
    if (t->inflight)
        p->inflight--;
    free(t);
}

void mon__poller_drop_group(struct mon_poller *p, struct mon_group *g)
{
    if (!p || !g)
        return;
    for (uint32_t i = 0; i < g->cap; i++)
        target_drop(p, g, i);
}

void mon__poller_free(struct mon_poller *p)
{
    if (!p)
        return;
    /* every group's targets (and so every connection) were dropped by mon_free() */
    h2_client_free(p->cl);
    free(p);
}

/* Brings the targets of g in line with its table. */
static void rescan(struct mon_poller *p, struct mon_group *g, int64_t now)
{
    struct fleet *f = g->fleet;
    mon__group_fit(g); /* a grown table (max_size raised): on failure, watch the old size */
    g->gen_seen = fleet_membership_gen(f);
    g->have_gen = 1;
    size_t n = fleet_snapshot(f, g->snap, g->cap);
    if (n > g->cap)
        n = g->cap;
    /* which slot indexes are live now */
    char *live = calloc(g->cap ? g->cap : 1, 1);
    if (!live) {
        atomic_store(&g->rescan, 1); /* try again next loop */
        return;
    }
    int nnew = 0;
    for (size_t i = 0; i < n; i++) {
        const struct fleet_slot *s = &g->snap[i];
        if (s->index >= g->cap)
            continue;
        /* [health] type = ec2: an agent is polled only once it registered */
        if (g->registered_only && !s->registered)
            continue;
        live[s->index] = 1;
        struct mon_target *t = g->targets[s->index];
        if (t && (t->generation != s->generation || strcmp(t->address, s->address) != 0))
            target_drop(p, g, s->index), t = NULL;
        if (!t && s->address[0])
            nnew++;
    }
    int k = 0;
    for (size_t i = 0; i < n; i++) {
        const struct fleet_slot *s = &g->snap[i];
        if (s->index >= g->cap || !live[s->index] || g->targets[s->index] || !s->address[0])
            continue;
        struct mon_target *t = calloc(1, sizeof(*t));
        if (!t) {
            atomic_store(&g->rescan, 1);
            break;
        }
        t->p = p;
        t->g = g;
        t->index = s->index;
        t->generation = s->generation;
        snprintf(t->id, sizeof(t->id), "%s", s->id);
        snprintf(t->address, sizeof(t->address), "%s", s->address);
        t->seed = s->seed_protocol;
        mon__warn_cleartext(p->m, g, t->address);
        int rc = h2_conn_new(p->cl, t->address, &t->conn);
        if (rc) {
            log_warn("cannot poll instance \"%s\" at %s: %s", t->id, t->address, h2_strerror(rc));
            free(t);
            continue;
        }
        h2_conn_on_lost(t->conn, on_lost, t);
        /* a single newcomer is polled at once; a crowd is spread over one interval, or over
           longer when connecting them all in one interval would pass CONNECT_RATE */
        int64_t spread = g->interval_ms;
        int64_t rate = p->m->tls ? CONNECT_RATE_TLS : CONNECT_RATE;
        if ((int64_t)nnew * 1000 / rate > spread)
            spread = (int64_t)nnew * 1000 / rate;
        schedule(t, now + (nnew > 1 ? (spread * k) / nnew : 0));
        k++;
        g->targets[s->index] = t;
        p->ntargets++;
    }
    uint32_t hi = 0;
    for (uint32_t i = 0; i < g->cap; i++) {
        if (g->targets[i] && !live[i])
            target_drop(p, g, i);
        if (g->targets[i])
            hi = i + 1;
    }
    g->hi = hi;
    free(live);
}

/* --- results -------------------------------------------------------------------------- */

struct apply_arg {
    int ok;
    const struct mon_target *t;
    int64_t rtt_us;
    int64_t now_wall;
    uint32_t rise, fall;
    /* out */
    int changed;
    uint8_t health;
    uint32_t count; /* consecutive results that decided it */
    int quiet;      /* expected transition: logged at debug (see finish()) */
    uint8_t before; /* health before this result */
};

static void apply(struct fleet_slot *s, void *arg)
{
    struct apply_arg *a = arg;
    const struct mon_target *t = a->t;
    s->last_rtt_us = a->rtt_us;
    if (a->ok) {
        s->polls_ok++;
        s->last_seen_ms = a->now_wall;
    } else {
        s->polls_failed++;
    }
    if (t->learned_seed >= 0)
        s->seed_protocol = (uint8_t)t->learned_seed;
    if (t->app_healthy >= 0)
        s->app_healthy = (uint8_t)t->app_healthy;
    if (t->got_sample) {
        s->load = t->load;
        s->cpu_pct = t->cpu;
        s->mem_pct = t->mem;
        s->load1 = t->load1;
    }
    a->before = s->health;
    a->changed = mon_health_observe(&s->health, &s->consecutive_ok, &s->consecutive_fail, a->ok,
                                    a->rise, a->fall);
    if (a->changed)
        s->health_changed_ms = a->now_wall;
    a->health = s->health;
    a->count = a->ok ? s->consecutive_ok : s->consecutive_fail;
    /* expected, not worth an operator's attention: an instance the controller is terminating
       going down, or one still booting (PENDING, never healthy yet) not answering yet */
    a->quiet = a->changed && s->health == FLEET_HEALTH_UNHEALTHY &&
               (s->lifecycle == FLEET_TERMINATING || s->lifecycle == FLEET_TERMINATING_WAIT ||
                (s->lifecycle == FLEET_PENDING && a->before == FLEET_HEALTH_UNKNOWN));
}

/* Ends the poll in progress: writes the slot, logs a transition, schedules the next. */
static void finish(struct mon_target *t, int ok, const char *reason)
{
    struct mon_poller *p = t->p;
    struct mon_group *g = t->g;
    int64_t rtt = mono_us() - t->start_us;
    stats_observe_poll(rtt, ok);
    t->deferrals = 0;

    struct apply_arg a = {.ok = ok,
                          .t = t,
                          .rtt_us = rtt,
                          .now_wall = clk_wall_ms(),
                          .rise = t->rise,
                          .fall = t->fall};
    int rc = fleet_update(g->fleet, t->index, t->generation, apply, &a);
    if (rc == FLEET_ESTALE || rc == FLEET_ENOENT) {
        atomic_store(&g->rescan, 1); /* slot freed or reused: the rescan drops us */
    } else if (rc) {
        log_warn("cannot record the poll of instance \"%s\": %s", t->id, fleet_strerror(rc));
    } else if (a.changed) {
        if (a.health == FLEET_HEALTH_HEALTHY)
            log_info("instance \"%s\" at %s is now healthy (%u consecutive successes%s)", t->id,
                     t->address, a.count, t->seed ? ", seed protocol" : "");
        else if (a.quiet)
            log_debug("instance \"%s\" at %s (terminating or booting) is now unhealthy: %s", t->id,
                      t->address, reason ? reason : "check failed");
        else
            log_info("instance \"%s\" at %s is now unhealthy: %s (%u consecutive failures)", t->id,
                     t->address, reason ? reason : "check failed", a.count);
    }

    schedule_next(t);
    (void)p;
}

static void on_done(void *arg, grpc_status_code status, const char *details, const uint8_t *data,
                    size_t len);

static const char *method_of(enum step s)
{
    switch (s) {
    case STEP_METRICS:
        return "/MonitorC/GetMetrics";
    case STEP_STATUS:
        return "/MonitorC/GetStatus";
    default:
        return "/MonitorC/GetMemoryUsage";
    }
}

/* Starts the call of the current step. 0, or -1 if it could not start (poll finished). */
static int issue(struct mon_target *t)
{
    struct mon_poller *p = t->p;
    uint8_t buf[16];
    size_t len = 0;
    if (t->step != STEP_METRICS) {
        Request rq = REQUEST__INIT;
        rq.code = 1;
        len = request__pack(&rq, buf);
    }
    if (t->deadline_ms - clk_mono_ms() < 1) {
        finish(t, 0, "deadline exceeded");
        return -1;
    }
    int rc = h2_call(t->conn, method_of(t->step), buf, len, t->deadline_ms, on_done, t);
    if (rc) {
        char why[REASON_MAX];
        snprintf(why, sizeof(why), "call not started: %s", h2_strerror(rc));
        finish(t, 0, why);
        return -1;
    }
    t->inflight = 1;
    p->inflight++;
    return 0;
}

static void start_poll(struct mon_target *t, int64_t now)
{
    t->step = t->seed ? STEP_STATUS : STEP_METRICS;
    t->start_us = mono_us();
    t->deadline_ms = now + t->g->timeout_ms;
    t->interval_ms = t->g->interval_ms;
    t->rise = t->g->rise;
    t->fall = t->g->fall;
    t->learned_seed = -1;
    t->app_healthy = -1;
    t->got_sample = 0;
    t->load = t->cpu = t->mem = t->load1 = -1;
    issue(t);
}

/* An agent's percentage: -1 (unknown) when it says so with a negative value or sends
   something that is not a number, else clamped to 0..100. */
static double pct(double v)
{
    if (!isfinite(v) || v < 0)
        return -1;
    return v > 100 ? 100 : v;
}

static void status_reason(char *out, size_t n, grpc_status_code st, const char *details)
{
    const char *name;
    switch (st) {
    case GRPC_STATUS_DEADLINE_EXCEEDED:
        snprintf(out, n, "deadline exceeded");
        return;
    case GRPC_STATUS_UNAVAILABLE:
        name = "unavailable";
        break;
    case GRPC_STATUS_CANCELLED:
        name = "cancelled";
        break;
    case GRPC_STATUS_UNIMPLEMENTED:
        name = "unimplemented";
        break;
    case GRPC_STATUS_RESOURCE_EXHAUSTED:
        name = "resource exhausted";
        break;
    case GRPC_STATUS_INTERNAL:
        name = "internal error";
        break;
    default:
        name = "error";
        break;
    }
    char safe[120];
    mon__printable(details, safe, sizeof(safe));
    if (safe[0])
        snprintf(out, n, "%s (%s)", name, safe);
    else
        snprintf(out, n, "%s (status %d)", name, (int)st);
}

/* protobuf-c's allocator for a response: a small arena on the callback's stack, so that
   decoding a poll's answer allocates nothing (a Metrics with its instance id takes ~150
   bytes); a larger one falls back to malloc. */
struct unpack_arena {
    _Alignas(max_align_t) unsigned char buf[2048];
    size_t used;
};

static void *arena_alloc(void *data, size_t n)
{
    struct unpack_arena *a = data;
    size_t need = (n + 15) & ~(size_t)15;
    if (need <= sizeof(a->buf) - a->used) {
        void *p = a->buf + a->used;
        a->used += need;
        return p;
    }
    return malloc(n);
}

static void arena_free(void *data, void *p)
{
    struct unpack_arena *a = data;
    uintptr_t u = (uintptr_t)p, lo = (uintptr_t)a->buf;
    if (u >= lo && u < lo + sizeof(a->buf))
        return; /* the arena goes with the stack frame */
    free(p);
}

/* Whether a deadline that t's call hit may be the poller's fault rather than the agent's:
   the deadline is being delivered more than LAG_MS late, or some poll started more than
   LAG_MS late while this one was in flight (the poller or gRPC's threads were behind). */
static int poller_lagged(const struct mon_target *t)
{
    if (t->deferrals >= MAX_DEFERRALS)
        return 0;
    int64_t now = clk_mono_ms();
    return now - t->deadline_ms > LAG_MS || t->p->last_lag_ms >= t->start_us / 1000;
}

/* Ends an inconclusive poll: nothing written to the slot (neither success nor failure), the
   deferral counted, the next poll at its usual time. */
static void defer(struct mon_target *t)
{
    struct mon_poller *p = t->p;
    t->deferrals++;
    p->deferred++;
    stats_count_deferred_polls(1);
    if (t->deferrals == 1)
        log_debug("poll of instance \"%s\" deferred: its deadline passed while the poller was "
                  "behind",
                  t->id);
    schedule_next(t);
}

static void on_done(void *arg, grpc_status_code status, const char *details, const uint8_t *data,
                    size_t len)
{
    struct mon_target *t = arg;
    struct mon_poller *p = t->p;
    char why[REASON_MAX];
    struct unpack_arena arena;
    arena.used = 0;
    ProtobufCAllocator al = {arena_alloc, arena_free, &arena};

    t->inflight = 0;
    p->inflight--;
    if (status != GRPC_STATUS_OK || !data) {
        if (status == GRPC_STATUS_UNIMPLEMENTED && t->step == STEP_METRICS) {
            t->seed = 1;
            t->learned_seed = 1;
            t->step = STEP_STATUS;
            issue(t);
            return;
        }
        if (status == GRPC_STATUS_DEADLINE_EXCEEDED && poller_lagged(t)) {
            defer(t);
            return;
        }
        if (status == GRPC_STATUS_OK)
            snprintf(why, sizeof(why), "empty response to %s", method_of(t->step));
        else
            status_reason(why, sizeof(why), status, details);
        /* after a transport failure, probe GetMetrics again: the seed agent may have been
           replaced by a newer one */
        t->seed = 0;
        finish(t, 0, why);
        return;
    }

    switch (t->step) {
    case STEP_METRICS: {
        Metrics *mt = metrics__unpack(&al, len, data);
        if (!mt) {
            finish(t, 0, "malformed GetMetrics response");
            return;
        }
        t->learned_seed = 0;
        int ok = 1;
        if (mt->instance_id && mt->instance_id[0] && strcmp(mt->instance_id, t->id) != 0) {
            char other[FLEET_ID_MAX];
            mon__printable(mt->instance_id, other, sizeof(other));
            snprintf(why, sizeof(why), "answered as another instance \"%s\"", other);
            ok = 0;
        } else {
            t->app_healthy = mt->app_healthy ? 1 : 0;
            t->got_sample = 1;
            t->load = pct(mt->cpu_load);
            t->cpu = t->load;
            t->mem = pct(mt->mem_used_pct);
            t->load1 = isfinite(mt->load1) && mt->load1 >= 0 ? mt->load1 : -1;
            if (!mt->app_healthy) {
                snprintf(why, sizeof(why), "application unhealthy");
                ok = 0;
            } else if (mt->draining) {
                snprintf(why, sizeof(why), "agent draining");
                ok = 0;
                /* leaving (terminating:wait, SIGTERM): its load is no longer the group's */
                t->load = t->cpu = -1;
            }
        }
        metrics__free_unpacked(mt, &al);
        finish(t, ok, ok ? NULL : why);
        return;
    }
    case STEP_STATUS: {
        StatusResponse *sr = status_response__unpack(&al, len, data);
        if (!sr) {
            finish(t, 0, "malformed GetStatus response");
            return;
        }
        int app_ok = sr->status && strcmp(sr->status, "OK") == 0;
        char st[32];
        mon__printable(sr->status, st, sizeof(st));
        status_response__free_unpacked(sr, &al);
        t->app_healthy = app_ok;
        if (!app_ok) {
            snprintf(why, sizeof(why), "GetStatus said \"%s\"", st);
            finish(t, 0, why);
            return;
        }
        t->step = STEP_MEMORY;
        issue(t);
        return;
    }
    case STEP_MEMORY: {
        MemoryUsageResponse *mr = memory_usage_response__unpack(&al, len, data);
        if (!mr) {
            finish(t, 0, "malformed GetMemoryUsage response");
            return;
        }
        t->got_sample = 1;
        t->load = pct((double)mr->usage);
        t->cpu = t->load;
        memory_usage_response__free_unpacked(mr, &al);
        finish(t, 1, NULL);
        return;
    }
    }
}

/* Notes a poll that starts late: the poller is behind (see poller_lagged()), and a whole
   interval late means that cycle's poll never ran, which is counted as deferred. */
static void note_lateness(struct mon_poller *p, struct mon_target *t, int64_t now)
{
    if (now - t->next_due_ms <= LAG_MS)
        return;
    p->last_lag_ms = now;
    int64_t iv = t->g->interval_ms ? t->g->interval_ms : 1;
    int64_t missed = (now - t->next_due_ms) / iv;
    if (missed > 0) {
        p->deferred += (uint64_t)missed;
        stats_count_deferred_polls((uint64_t)missed);
        t->next_due_ms += missed * iv; /* this poll takes the last missed cycle's place */
    }
}

/* Starts the polls of the due list, oldest first, up to max_inflight (mu held). Returns how
   many started; *capped is set when the cap left some waiting. */
static int start_due(struct mon_poller *p, int64_t now, int *capped)
{
    struct mon *m = p->m;
    uint32_t max = m->max_inflight ? m->max_inflight : UINT32_MAX;
    int started = 0;
    *capped = 0;
    while (p->due_head) {
        struct mon_target *t = p->due_head;
        if (t->g->removing) {
            due_unlink(p, t); /* dropped with its group by the next rescan */
            continue;
        }
        if ((uint32_t)p->inflight >= max) {
            *capped = 1;
            break;
        }
        due_unlink(p, t);
        if (t->inflight)
            continue;
        note_lateness(p, t, now);
        start_poll(t, now);
        started++;
    }
    return started;
}

/* mon_poll_once(): starts every poll not yet started in round p->round, up to max_inflight
   (mu held). Returns how many started. */
static int start_round(struct mon_poller *p, int64_t now)
{
    struct mon *m = p->m;
    uint32_t max = m->max_inflight ? m->max_inflight : UINT32_MAX;
    int started = 0;
    for (struct mon_group *g = m->groups; g; g = g->next) {
        if (g->removing)
            continue;
        for (uint32_t i = 0; i < g->hi; i++) {
            struct mon_target *t = g->targets[i];
            if (!t || t->inflight || t->round == p->round)
                continue;
            if ((uint32_t)p->inflight >= max)
                return started;
            t->round = p->round;
            due_unlink(p, t);
            t->next_due_ms = now; /* a round is off the schedule: the next poll is an interval on */
            start_poll(t, now);
            started++;
        }
    }
    return started;
}

/* Drops removed groups and rescans those whose membership or an address changed, at most
   every RESCAN_MIN_MS per group (a rescan copies the whole table; a burst of
   registrations at start must not make it per call). mu held. */
static void maybe_rescan(struct mon_poller *p, int64_t now, int force)
{
    struct mon *m = p->m;
    struct mon_group *g = m->groups;
    while (g) {
        struct mon_group *next = g->next;
        if (g->removing) {
            mon__poller_drop_group(p, g);
            mon__group_unlink(m, g);
            pthread_cond_broadcast(&m->cv);
        } else if (!g->have_gen || force || now - g->last_rescan_ms >= RESCAN_MIN_MS) {
            if (atomic_exchange(&g->rescan, 0) || !g->have_gen ||
                fleet_membership_gen(g->fleet) != g->gen_seen) {
                rescan(p, g, now);
                g->last_rescan_ms = now;
            }
        }
        g = next;
    }
}

int mon__poller_round(struct mon_poller *p)
{
    struct mon *m = p->m;
    pthread_mutex_lock(&m->mu);
    maybe_rescan(p, clk_mono_ms(), 1);
    pthread_mutex_unlock(&m->mu);
    p->round++;
    int n = 0;
    for (;;) {
        pthread_mutex_lock(&m->mu);
        n += start_round(p, clk_mono_ms()); /* up to max_inflight at a time */
        pthread_mutex_unlock(&m->mu);
        if (p->inflight == 0)
            break;
        if (h2_client_poll(p->cl, IDLE_WAIT_MS) < 0)
            break;
    }
    return n;
}

void *mon__poller_thread(void *arg)
{
    struct mon *m = arg;
    struct mon_poller *p = m->poller;
    while (!atomic_load(&m->stop)) {
        int64_t now = clk_mono_ms();
        int capped = 0;
        pthread_mutex_lock(&m->mu);
        maybe_rescan(p, now, 0);
        for (struct mon_group *g = m->groups; g; g = g->next) {
            if (now >= g->next_heartbeat_ms) {
                fleet_heartbeat(g->fleet, 0, clk_wall_ms());
                g->next_heartbeat_ms = now + HEARTBEAT_MS;
            }
        }
        start_due(p, now, &capped);
        pthread_mutex_unlock(&m->mu);
        /* wakes for socket events and the wheel's timers (due polls, deadlines); capped by
           max_inflight: back soon for the polls still waiting */
        if (h2_client_poll(p->cl, capped ? SCAN_TICK_MS : IDLE_WAIT_MS) < 0)
            break;
    }
    return NULL;
}
