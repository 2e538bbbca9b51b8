/*
 * h2_call.c - a call's life (see h2_int.h): h2_call() starts it, its
 * deadline lives in the client's wheel, its outcome (answer, status,
 * deadline, failure) is recorded by h2__call_end() and queued on the done list,
 * and h2__deliver() runs its callback at the end of h2_client_poll(), never
 * inside h2_call() or in the middle of a read. A stream the agent refused
 * without processing it (REFUSED_STREAM, GOAWAY) is tried once more on a new
 * connection, within the same deadline.
 */
#include <stdio.h>
#include <string.h>

#include "common/clock.h"
#include "h2/h2_int.h"

#include "common/banned.h"

static void on_deadline(struct wheel_timer *t, int64_t now);

/* --- completions ---------------------------------------------------------------------------- */

/* Records the call's outcome and queues it for delivery (once). */
void h2__call_end(struct h2_conn *c, grpc_status_code st, const char *why)
{
    if (!c->busy || c->done)
        return;
    struct h2_client *cl = c->cl;
    c->done = 1;
    c->status = st;
    if (why)
        snprintf(c->details, sizeof(c->details), "%s", why);
    c->stream = 0;
    wheel_del(&cl->wheel, &c->timer);
    c->next_done = cl->done_head;
    if (c->next_done)
        c->next_done->pprev_done = &c->next_done;
    c->pprev_done = &cl->done_head;
    cl->done_head = c;
}

void h2__done_unlink(struct h2_conn *c)
{
    if (!c->pprev_done)
        return;
    *c->pprev_done = c->next_done;
    if (c->next_done)
        c->next_done->pprev_done = c->pprev_done;
    c->next_done = NULL;
    c->pprev_done = NULL;
}

/* Runs the callback of a finished call. */
void h2__deliver(struct h2_conn *c)
{
    struct h2_client *cl = c->cl;
    h2__done_unlink(c);
    if (c->refused) {
        /* the server refused the stream without processing it (GOAWAY, REFUSED_STREAM):
           once more on a new connection, within the same deadline (a failure queues the
           call again) */
        c->refused = 0;
        c->done = 0;
        h2__conn_close(c);
        c->retry_at_ms = 0;
        c->msglen = 0;
        c->got_status = 0;
        c->http_status = 0;
        c->details[0] = '\0';
        if (c->deadline_ms <= clk_mono_ms()) {
            h2__call_end(c, GRPC_STATUS_DEADLINE_EXCEEDED, "deadline exceeded");
            return;
        }
        wheel_add(&cl->wheel, &c->timer, c->deadline_ms, on_deadline);
        (void)h2__conn_start(c);
        return;
    }
    const uint8_t *data = NULL;
    size_t len = 0;
    grpc_status_code st = c->status;
    if (st == GRPC_STATUS_OK && c->msglen) {
        const uint8_t *m = c->msglen > INLINE_MSG ? c->big : c->msg;
        if (c->msglen < 5 || m[0] != 0 ||
            ((uint32_t)m[1] << 24 | (uint32_t)m[2] << 16 | (uint32_t)m[3] << 8 | m[4]) !=
                c->msglen - 5) {
            st = GRPC_STATUS_INTERNAL;
            snprintf(c->details, sizeof(c->details), "%s",
                     c->msglen >= 5 && m[0] ? "compressed answer (not asked for)"
                                            : "malformed message framing");
        } else {
            data = m + 5;
            len = c->msglen - 5;
        }
    }
    c->busy = 0;
    c->done = 0;
    cl->inflight--;
    c->cb(c->arg, st, c->details, data, len);
}

/* --- deadlines ------------------------------------------------------------------------------- */

static void on_deadline(struct wheel_timer *t, int64_t now)
{
    (void)now;
    struct h2_conn *c = (struct h2_conn *)((char *)t - offsetof(struct h2_conn, timer));
    if (!c->busy || c->done)
        return;
    if (c->state == ST_CONNECTING || c->state == ST_HANDSHAKE) {
        /* not connected within the deadline: drop the attempt; the next call tries again
           without backoff (a busy machine, not a refusal, is the likely cause) */
        h2__conn_down(c, GRPC_STATUS_DEADLINE_EXCEEDED,
                      c->state == ST_CONNECTING ? "deadline exceeded while connecting"
                                                : "deadline exceeded in the TLS handshake",
                      0);
        return;
    }
    uint32_t sid = (uint32_t)c->stream;
    c->refused = 0;
    h2__call_end(c, GRPC_STATUS_DEADLINE_EXCEEDED, "deadline exceeded");
    if (sid && c->fd >= 0) {
        /* the agent may stop working on it (gRPC servers also end it by grpc-timeout) */
        uint8_t fr[13], code[4];
        put32(code, E_CANCEL);
        put_frame_header(fr, 4, F_RST_STREAM, 0, sid);
        memcpy(fr + 9, code, 4);
        (void)h2__out_write(c, fr, sizeof(fr));
    }
}

/* --- calls -------------------------------------------------------------------------------------
 */

int h2_call(struct h2_conn *c, const char *path, const uint8_t *req, size_t len,
            int64_t deadline_ms, h2_done_fn cb, void *arg)
{
    if (!c || !path || path[0] != '/' || !cb || (len && !req))
        return H2_EINVAL;
    if (c->busy)
        return H2_EBUSY;
    if (len > H2_REQ_MAX)
        return H2_ETOOBIG;
    struct h2_client *cl = c->cl;
    c->req[0] = 0;
    put32(c->req + 1, (uint32_t)len);
    if (len)
        memcpy(c->req + 5, req, len);
    c->reqlen = (uint16_t)(5 + len);
    c->path = path;
    c->cb = cb;
    c->arg = arg;
    c->deadline_ms = deadline_ms;
    c->busy = 1;
    c->done = 0;
    c->got_status = 0;
    c->toobig = 0;
    c->refused = 0;
    c->http_status = 0;
    c->status = GRPC_STATUS_UNKNOWN;
    c->msglen = 0;
    c->details[0] = '\0';
    c->stream = 0;
    cl->inflight++;
    wheel_add(&cl->wheel, &c->timer, deadline_ms, on_deadline);
    (void)h2__conn_start(c); /* a failure is on the done list: delivered by h2_client_poll() */
    return 0;
}
