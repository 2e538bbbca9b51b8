/*
 * ctl_drain.c - asks the agents of instances in terminating:wait about their drain, all at once.
 *
 * Why not one blocking call per agent (as before): the controller asked each draining agent in
 * turn with gRPC core's synchronous client and a 500 ms deadline, on the thread that also runs
 * the tick. A scale-in of 1,000 instances with a terminate hook then cost about a second a tick
 * with live agents, and 1,000 x 500 ms (over eight minutes a tick) when their agents had died:
 * every other duty of the group waited. Here the questions go out together over the poller's
 * HTTP/2 client (h2.h: non-blocking sockets, one epoll set) and a batch waits one deadline at
 * most, whatever its size.
 *
 * The request names the state and, when it fits in h2's request limit, the instance; the
 * answer must name the instance asked about (another agent at a reused address is no answer).
 *
 * Threads: the controller's only. Memory: the client (an epoll set and its wheel) lives as long
 * as the ctl once a drain was asked; a batch's connections are made and closed within the
 * call (each draining agent is asked once a tick: one connection a second each).
 */
#include "controller/ctl_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"
#include "h2/h2.h"
#include "monitor.pb-c.h"

#include "common/banned.h"

#define AGENT_CALL_MS 500 /* a batch's deadline (an agent answers from memory) */

struct ask {
    const struct fleet_slot *s;
    struct h2_conn *conn;
    struct ctl_drain_answer *out;
    int pending;
};

static void on_answer(void *arg, grpc_status_code st, const char *details, const uint8_t *data,
                      size_t len)
{
    (void)details;
    struct ask *a = arg;
    a->pending = 0;
    if (st != GRPC_STATUS_OK || !data || !a->out)
        return; /* no answer (running as far as we know: the hook's timeout still applies), or
                   nobody asked for it */
    LifecycleReply *r = lifecycle_reply__unpack(NULL, len, data);
    if (r && r->instance_id && strcmp(r->instance_id, a->s->id) == 0 && r->drain) {
        if (strcmp(r->drain, "done") == 0) {
            a->out->result = 1;
        } else if (strcmp(r->drain, "failed") == 0) {
            a->out->result = -1;
            snprintf(a->out->detail, sizeof(a->out->detail), "%.190s", r->detail ? r->detail : "");
        }
    }
    if (r)
        lifecycle_reply__free_unpacked(r, NULL);
}

/* The request: state and instance id, or the state alone when both exceed H2_REQ_MAX. */
static size_t pack_request(const struct fleet_slot *s, uint8_t *buf)
{
    LifecycleRequest rq = LIFECYCLE_REQUEST__INIT;
    rq.state = (char *)"terminating:wait";
    rq.instance_id = (char *)s->id;
    if (lifecycle_request__get_packed_size(&rq) > H2_REQ_MAX)
        rq.instance_id = (char *)"";
    return lifecycle_request__pack(&rq, buf);
}

int ctl__drain_ask(struct ctl *c, const struct fleet_slot *const *slots, size_t n,
                   struct ctl_drain_answer *out)
{
    if (out)
        memset(out, 0, n * sizeof(*out));
    if (n == 0)
        return 0;
    if (!c->drain_cl) {
        struct h2_opts o = H2_OPTS_INIT;
        o.tls = c->agent_tls;
        o.max_message = 4096;
        if (h2_client_new(&o, &c->drain_cl) != 0) {
            log_warn("group \"%s\": cannot ask the draining agents (no HTTP/2 client)", c->group);
            return -1;
        }
    }
    struct ask *asks = calloc(n, sizeof(*asks));
    if (!asks)
        return -1;
    int64_t deadline = clk_mono_ms() + AGENT_CALL_MS;
    size_t pending = 0;
    for (size_t i = 0; i < n; i++) {
        const struct fleet_slot *s = slots[i];
        asks[i].s = s;
        asks[i].out = out ? &out[i] : NULL;
        /* a seed agent has no Lifecycle method: its hook waits for the operator or timeout */
        if (s->address[0] == '\0' || s->seed_protocol)
            continue;
        uint8_t buf[H2_REQ_MAX];
        size_t len = pack_request(s, buf);
        if (h2_conn_new(c->drain_cl, s->address, &asks[i].conn) != 0)
            continue;
        if (h2_call(asks[i].conn, "/MonitorC/Lifecycle", buf, len, deadline, on_answer, &asks[i]) !=
            0)
            continue;
        asks[i].pending = 1;
        pending++;
    }
    /* every call ends by its deadline at the latest, so the loop is bounded by it; should
       epoll itself fail, the calls still in flight are dropped with their connections */
    while (pending > 0 && h2_client_inflight(c->drain_cl) > 0) {
        int64_t left = deadline - clk_mono_ms();
        if (h2_client_poll(c->drain_cl, left > 0 ? (int)left : 0) < 0)
            break;
    }
    for (size_t i = 0; i < n; i++)
        h2_conn_free(asks[i].conn);
    free(asks);
    return 0;
}

void ctl__drain_free(struct ctl *c)
{
    h2_client_free(c->drain_cl);
    c->drain_cl = NULL;
}
