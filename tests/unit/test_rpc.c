/*
 * Unit tests for rpc: a real server and a real client in one process, talking
 * HTTP/2 over loopback on an ephemeral port. Covers many calls in flight on
 * one queue, statuses from handlers, UNIMPLEMENTED, oversized requests,
 * deadline expiry, client shutdown with calls in flight (each callback exactly
 * once), server shutdown with calls in flight, and the blocking helper.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "monitor.pb-c.h"
#include "rpc/rpc.h"
#include "support/grpc_server.h"
#include "common/banned.h"

/* --- server side ------------------------------------------------------- */

static grpc_status_code h_fail(void *ctx, const struct rpc_request *req, struct rpc_reply *reply)
{
    (void)ctx;
    (void)req;
    snprintf(reply->details, sizeof(reply->details), "nope: %s", "permission");
    return GRPC_STATUS_PERMISSION_DENIED;
}

static grpc_status_code h_slow(void *ctx, const struct rpc_request *req, struct rpc_reply *reply)
{
    int ms = ctx ? *(int *)ctx : 300;
    usleep((useconds_t)ms * 1000);
    return test_echo(NULL, req, reply);
}

static grpc_status_code h_ping(void *ctx, const struct rpc_request *req, struct rpc_reply *reply)
{
    (void)ctx;
    PingRequest *in = ping_request__unpack(NULL, req->len, req->data);
    if (!in)
        return GRPC_STATUS_INVALID_ARGUMENT;
    Pong out = PONG__INIT;
    out.seq = in->seq;
    out.instance_id = "i-test";
    ping_request__free_unpacked(in, NULL);
    return rpc_reply_pack(reply, &out.base) ? GRPC_STATUS_INTERNAL : GRPC_STATUS_OK;
}

struct fixture {
    struct rpc_server *srv;
    int port;
    char target[64];
    int echo_count;
    int slow_ms;
};

static struct fixture *fixture_start(size_t max_message)
{
    struct fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    f->slow_ms = 300;
    const struct test_method methods[] = {{"/T/Echo", test_echo, &f->echo_count},
                                          {"/T/Fail", h_fail, NULL},
                                          {"/T/Slow", h_slow, &f->slow_ms},
                                          {"/MonitorC/Ping", h_ping, NULL},
                                          {NULL}};
    struct test_server_opts o = {.max_message = max_message, .methods = methods};
    f->srv = test_server_start(&o, &f->port, f->target, sizeof(f->target));
    assert_non_null(f->srv);
    assert_true(f->port > 0);
    return f;
}

static void fixture_stop(struct fixture *f)
{
    rpc_server_shutdown(f->srv, 1000);
    rpc_server_free(f->srv);
    free(f);
}

/* --- client side ------------------------------------------------------- */

struct outcome {
    int fired;
    grpc_status_code status;
    char details[160];
    uint8_t data[256];
    size_t len;
    int had_data;
};

static void on_done(void *arg, grpc_status_code status, const char *details, const uint8_t *data,
                    size_t len)
{
    struct outcome *o = arg;
    o->fired++;
    o->status = status;
    snprintf(o->details, sizeof(o->details), "%s", details);
    o->had_data = data != NULL;
    if (data) {
        o->len = len < sizeof(o->data) ? len : sizeof(o->data);
        memcpy(o->data, data, o->len);
    }
}

/* Polls until `want` callbacks fired in outs[0..n) or 15 s pass. */
static void poll_until(struct rpc_client *cl, struct outcome *outs, int n, int want)
{
    int64_t end = clk_mono_ms() + 15000;
    for (;;) {
        int got = 0;
        for (int i = 0; i < n; i++)
            got += outs[i].fired ? 1 : 0;
        if (got >= want || clk_mono_ms() > end)
            return;
        assert_true(rpc_client_poll(cl, 100) >= 0);
    }
}

static void many_calls_in_flight(void **state)
{
    (void)state;
    struct fixture *f = fixture_start(0);
    struct rpc_client *cl = rpc_client_new(NULL);
    assert_non_null(cl);
    struct rpc_channel *ch = rpc_channel_new(cl, f->target);
    assert_non_null(ch);
    assert_string_equal(rpc_channel_target(ch), f->target);
    enum { N = 300 };
    struct outcome *outs = calloc(N, sizeof(*outs));
    assert_non_null(outs);
    for (int i = 0; i < N; i++) {
        char msg[32];
        int n = snprintf(msg, sizeof(msg), "hello %d", i);
        assert_int_equal(
            rpc_client_call(cl, ch, "/T/Echo", (uint8_t *)msg, (size_t)n, 5000, on_done, &outs[i]),
            0);
    }
    assert_true(rpc_client_inflight(cl) > 0);
    poll_until(cl, outs, N, N);
    for (int i = 0; i < N; i++) {
        char msg[32];
        int n = snprintf(msg, sizeof(msg), "hello %d", i);
        assert_int_equal(outs[i].fired, 1);
        assert_int_equal(outs[i].status, GRPC_STATUS_OK);
        assert_int_equal(outs[i].len, (size_t)n);
        assert_memory_equal(outs[i].data, msg, (size_t)n);
    }
    assert_int_equal(rpc_client_inflight(cl), 0);
    assert_int_equal(f->echo_count, N);
    free(outs);
    rpc_client_free(cl);
    fixture_stop(f);
}

static void statuses_and_unknown_methods(void **state)
{
    (void)state;
    struct fixture *f = fixture_start(0);
    struct rpc_client *cl = rpc_client_new(NULL);
    struct rpc_channel *ch = rpc_channel_new(cl, f->target);
    struct outcome o[4];
    memset(o, 0, sizeof(o));
    assert_int_equal(rpc_client_call(cl, ch, "/T/Fail", (uint8_t *)"x", 1, 5000, on_done, &o[0]),
                     0);
    assert_int_equal(rpc_client_call(cl, ch, "/MonitorC/Nope", NULL, 0, 5000, on_done, &o[1]), 0);
    /* an empty message is a message: the handler sees len 0, the reply is empty but present */
    assert_int_equal(rpc_client_call(cl, ch, "/T/Echo", NULL, 0, 5000, on_done, &o[2]), 0);
    assert_int_equal(
        rpc_client_call(cl, ch, "/T/Echo", (uint8_t *)"\xff\x00garbage", 9, 5000, on_done, &o[3]),
        0);
    poll_until(cl, o, 4, 4);
    assert_int_equal(o[0].status, GRPC_STATUS_PERMISSION_DENIED);
    assert_string_equal(o[0].details, "nope: permission");
    assert_false(o[0].had_data);
    assert_int_equal(o[1].status, GRPC_STATUS_UNIMPLEMENTED);
    assert_int_equal(o[2].status, GRPC_STATUS_OK);
    assert_true(o[2].had_data);
    assert_int_equal(o[2].len, 0);
    assert_int_equal(o[3].status, GRPC_STATUS_OK);
    assert_int_equal(o[3].len, 9);
    for (int i = 0; i < 4; i++)
        assert_int_equal(o[i].fired, 1);
    rpc_client_free(cl);
    fixture_stop(f);
}

static void protobuf_round_trip_and_sync_helper(void **state)
{
    (void)state;
    struct fixture *f = fixture_start(0);
    PingRequest ping = PING_REQUEST__INIT;
    ping.seq = 77;
    uint8_t *buf = NULL;
    size_t len = 0;
    assert_int_equal(rpc_pack(&ping.base, &buf, &len), 0);
    struct rpc_result res = RPC_RESULT_INIT;
    assert_int_equal(rpc_call_sync(f->target, "/MonitorC/Ping", buf, len, 5000, &res), 0);
    assert_int_equal(res.status, GRPC_STATUS_OK);
    Pong *pong = pong__unpack(NULL, res.len, res.data);
    assert_non_null(pong);
    assert_int_equal(pong->seq, 77);
    assert_string_equal(pong->instance_id, "i-test");
    pong__free_unpacked(pong, NULL);
    rpc_result_release(&res);
    assert_null(res.data);

    /* undecodable request: the handler answers INVALID_ARGUMENT, the server lives on */
    assert_int_equal(
        rpc_call_sync(f->target, "/MonitorC/Ping", (uint8_t *)"\xff\xff\xff", 3, 5000, &res), 0);
    assert_int_equal(res.status, GRPC_STATUS_INVALID_ARGUMENT);
    rpc_result_release(&res);
    assert_int_equal(rpc_call_sync(f->target, "/MonitorC/Ping", buf, len, 5000, &res), 0);
    assert_int_equal(res.status, GRPC_STATUS_OK);
    rpc_result_release(&res);
    free(buf);

    /* argument errors never start a call */
    assert_int_equal(rpc_call_sync(f->target, "no-slash", NULL, 0, 1000, &res), RPC_EINVAL);
    assert_int_equal(rpc_call_sync(f->target, "/T/Echo", NULL, 0, 0, &res), RPC_EINVAL);
    assert_int_equal(rpc_pack(NULL, &buf, &len), RPC_EINVAL);
    fixture_stop(f);

    /* nobody listens there: UNAVAILABLE (not DEADLINE_EXCEEDED: it fails fast) */
    char dead[64];
    snprintf(dead, sizeof(dead), "127.0.0.1:%d", 1); /* port 1: never a gRPC server here */
    assert_int_equal(rpc_call_sync(dead, "/T/Echo", NULL, 0, 10000, &res), 0);
    assert_int_equal(res.status, GRPC_STATUS_UNAVAILABLE);
    rpc_result_release(&res);
}

static void oversized_request_is_refused_server_lives(void **state)
{
    (void)state;
    struct fixture *f = fixture_start(1024);
    struct rpc_client_opts co = RPC_CLIENT_OPTS_INIT;
    co.max_message = 1 << 20;
    struct rpc_client *cl = rpc_client_new(&co);
    struct rpc_channel *ch = rpc_channel_new(cl, f->target);
    size_t big = 200 * 1024;
    uint8_t *blob = calloc(1, big);
    assert_non_null(blob);
    struct outcome o[2];
    memset(o, 0, sizeof(o));
    assert_int_equal(rpc_client_call(cl, ch, "/T/Echo", blob, big, 5000, on_done, &o[0]), 0);
    poll_until(cl, o, 1, 1);
    assert_int_equal(o[0].fired, 1);
    assert_int_equal(o[0].status, GRPC_STATUS_RESOURCE_EXHAUSTED);
    assert_int_equal(f->echo_count, 0);
    assert_int_equal(rpc_client_call(cl, ch, "/T/Echo", blob, 10, 5000, on_done, &o[1]), 0);
    poll_until(cl, &o[1], 1, 1);
    assert_int_equal(o[1].status, GRPC_STATUS_OK);
    /* the client's own cap refuses before sending; the callback never fires */
    struct rpc_client *small = rpc_client_new(NULL);
    struct rpc_channel *sch = rpc_channel_new(small, f->target);
    struct outcome never = {0};
    assert_int_equal(rpc_client_call(small, sch, "/T/Echo", blob, big, 5000, on_done, &never),
                     RPC_ETOOBIG);
    rpc_client_free(small);
    assert_int_equal(never.fired, 0);
    free(blob);
    rpc_client_free(cl);
    fixture_stop(f);
}

static void deadline_expires(void **state)
{
    (void)state;
    struct fixture *f = fixture_start(0);
    f->slow_ms = 600;
    struct rpc_client *cl = rpc_client_new(NULL);
    struct rpc_channel *ch = rpc_channel_new(cl, f->target);
    struct outcome o = {0};
    assert_int_equal(rpc_client_call(cl, ch, "/T/Slow", (uint8_t *)"z", 1, 100, on_done, &o), 0);
    poll_until(cl, &o, 1, 1);
    assert_int_equal(o.fired, 1);
    assert_int_equal(o.status, GRPC_STATUS_DEADLINE_EXCEEDED);
    rpc_client_free(cl);
    fixture_stop(f);
}

static void client_shutdown_fires_each_callback_once(void **state)
{
    (void)state;
    struct fixture *f = fixture_start(0);
    f->slow_ms = 200; /* calls queue up behind each other on the serving thread */
    struct rpc_client *cl = rpc_client_new(NULL);
    struct rpc_channel *ch = rpc_channel_new(cl, f->target);
    enum { N = 20 };
    struct outcome o[N];
    memset(o, 0, sizeof(o));
    for (int i = 0; i < N; i++)
        assert_int_equal(
            rpc_client_call(cl, ch, "/T/Slow", (uint8_t *)"s", 1, 30000, on_done, &o[i]), 0);
    rpc_client_poll(cl, 50);
    /* the channel may go before its calls do: they run on */
    rpc_channel_free(ch);
    rpc_client_shutdown(cl);
    int cancelled = 0;
    for (int i = 0; i < N; i++) {
        assert_int_equal(o[i].fired, 1);
        cancelled += o[i].status == GRPC_STATUS_CANCELLED;
    }
    assert_true(cancelled > 0);
    assert_int_equal(rpc_client_inflight(cl), 0);
    struct outcome late = {0};
    struct rpc_channel *ch2 = rpc_channel_new(cl, f->target);
    assert_int_equal(rpc_client_call(cl, ch2, "/T/Echo", NULL, 0, 1000, on_done, &late),
                     RPC_ESHUTDOWN);
    assert_int_equal(rpc_client_poll(cl, 10), RPC_ESHUTDOWN);
    rpc_client_shutdown(cl); /* idempotent */
    assert_int_equal(late.fired, 0);
    rpc_client_free(cl); /* frees ch2 */
    fixture_stop(f);
}

static void server_shutdown_with_calls_in_flight(void **state)
{
    (void)state;
    struct fixture *f = fixture_start(0);
    f->slow_ms = 100;
    struct rpc_client *cl = rpc_client_new(NULL);
    struct rpc_channel *ch = rpc_channel_new(cl, f->target);
    enum { N = 10 };
    struct outcome o[N];
    memset(o, 0, sizeof(o));
    for (int i = 0; i < N; i++)
        assert_int_equal(
            rpc_client_call(cl, ch, "/T/Slow", (uint8_t *)"s", 1, 20000, on_done, &o[i]), 0);
    rpc_client_poll(cl, 150);
    rpc_server_shutdown(f->srv, 0);
    rpc_server_shutdown(f->srv, 0); /* idempotent */
    poll_until(cl, o, N, N);
    for (int i = 0; i < N; i++)
        assert_int_equal(o[i].fired, 1);
    /* after shutdown the port refuses: calls fail, nothing hangs */
    struct outcome after = {0};
    assert_int_equal(rpc_client_call(cl, ch, "/T/Echo", NULL, 0, 3000, on_done, &after), 0);
    poll_until(cl, &after, 1, 1);
    assert_int_equal(after.fired, 1);
    assert_int_not_equal(after.status, GRPC_STATUS_OK);
    rpc_client_free(cl);
    fixture_stop(f);
}

/* One call, polled to completion; returns its status. */
static grpc_status_code call_once(struct rpc_client *cl, struct rpc_channel *ch, int deadline_ms)
{
    struct outcome o = {0};
    assert_int_equal(
        rpc_client_call(cl, ch, "/T/Echo", (uint8_t *)"r", 1, deadline_ms, on_done, &o), 0);
    poll_until(cl, &o, 1, 1);
    assert_int_equal(o.fired, 1);
    return o.status;
}

static void persistent_channel_survives_server_restart(void **state)
{
    (void)state;
    struct fixture *f = fixture_start(0);
    int port = f->port;
    struct rpc_client *cl = rpc_client_new(NULL);
    struct rpc_channel *ch = rpc_channel_new(cl, f->target);
    assert_int_equal(call_once(cl, ch, 2000), GRPC_STATUS_OK);
    /* the agent goes away: calls fail (fast), they do not hang */
    rpc_server_shutdown(f->srv, 0);
    rpc_server_free(f->srv);
    f->srv = NULL;
    grpc_status_code st = GRPC_STATUS_OK;
    for (int i = 0; i < 50 && st == GRPC_STATUS_OK; i++)
        st = call_once(cl, ch, 500);
    assert_int_not_equal(st, GRPC_STATUS_OK);
    /* it comes back on the same port: the same channel reconnects by itself */
    static const struct test_method echo[] = {{"/T/Echo", test_echo, NULL}, {NULL}};
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    struct test_server_opts o = {.addr = addr, .methods = echo};
    f->srv = test_server_start(&o, NULL, NULL, 0);
    assert_non_null(f->srv);
    int64_t end = clk_mono_ms() + 20000;
    while ((st = call_once(cl, ch, 500)) != GRPC_STATUS_OK && clk_mono_ms() < end)
        usleep(50000);
    assert_int_equal(st, GRPC_STATUS_OK);
    rpc_client_free(cl);
    fixture_stop(f);
}

static void server_api_errors(void **state)
{
    (void)state;
    struct fixture *f = fixture_start(0);
    struct rpc_server *srv = rpc_server_new(NULL);
    assert_non_null(srv);
    assert_int_equal(rpc_server_add_method(srv, "NoSlash", test_echo, NULL), RPC_EINVAL);
    assert_int_equal(rpc_server_add_method(srv, "/A/B", NULL, NULL), RPC_EINVAL);
    assert_int_equal(rpc_server_add_method(srv, "/A/B", test_echo, NULL), 0);
    assert_int_equal(rpc_server_add_method(srv, "/A/B", test_echo, NULL), RPC_EINVAL);
    assert_int_equal(rpc_server_start(srv), RPC_ESTATE); /* nothing bound */
    /* the fixture holds that port already */
    char taken[64];
    snprintf(taken, sizeof(taken), "127.0.0.1:%d", f->port);
    assert_int_equal(rpc_server_bind(srv, taken, NULL), RPC_EBIND);
    assert_non_null(strstr(rpc_server_errmsg(srv), taken));
    assert_int_equal(rpc_server_bind(srv, "not an address", NULL), RPC_EBIND);
    int port = 0;
    assert_int_equal(rpc_server_bind(srv, "127.0.0.1:0", &port), 0);
    assert_int_equal(rpc_server_start(srv), 0);
    assert_int_equal(rpc_server_start(srv), RPC_ESTATE);
    assert_int_equal(rpc_server_add_method(srv, "/A/C", test_echo, NULL), RPC_ESTATE);
    rpc_server_free(srv); /* shuts down by itself */
    rpc_server_free(NULL);
    rpc_client_free(NULL);
    rpc_channel_free(NULL);
    rpc_result_release(NULL);
    assert_string_equal(rpc_strerror(RPC_EBIND), "cannot listen on address");
    assert_string_equal(rpc_strerror(12345), "unknown error");
    /* a server never started frees cleanly */
    srv = rpc_server_new(NULL);
    rpc_server_shutdown(srv, 0);
    rpc_server_free(srv);
    fixture_stop(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(many_calls_in_flight),
        cmocka_unit_test(statuses_and_unknown_methods),
        cmocka_unit_test(protobuf_round_trip_and_sync_helper),
        cmocka_unit_test(oversized_request_is_refused_server_lives),
        cmocka_unit_test(deadline_expires),
        cmocka_unit_test(client_shutdown_fires_each_callback_once),
        cmocka_unit_test(server_shutdown_with_calls_in_flight),
        cmocka_unit_test(persistent_channel_survives_server_restart),
        cmocka_unit_test(server_api_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
