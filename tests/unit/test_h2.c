/*
 * Unit tests for src/h2: the poller's HTTP/2 client against a real gRPC core
 * server (rpc.h) on loopback, and the timer wheel.
 *
 * The client: answers of every size class (inline, spilled to the heap, over
 * the limit), statuses and percent-encoded details from the server, unknown
 * methods, 2,000 calls on one connection (stream ids, flow-control window
 * updates), a listener that never answers (deadline), a closed port
 * (refused, then failing fast while backing off, then connecting once a
 * server is there), DNS-name and IPv6 targets, bad arguments. The seed's
 * Python agents (grpcio) and monitorc are polled through it in
 * test_monitor.c. Over TLS (certificates made by the openssl command), against
 * a gRPC core server with mutual TLS: answers small and large, many calls on
 * one connection; refusals with the reason in the details (a server of
 * another CA, no client certificate, a plain-text server, plain text to a TLS
 * server); a reloaded client certificate used by new connections only. The
 * wheel: order, re-arming from a callback, cancelling, far timers,
 * wheel_next().
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/clock.h"
#include "h2/h2.h"
#include "h2/wheel.h"
#include "rpc/rpc.h"
#include "support/grpc_server.h"
#include "support/test_certs.h"
#include "tls/tls.h"
#include "common/banned.h"

/* --- a gRPC core server ---------------------------------------------------------------------- */

/* answers as many bytes as the request's first byte says, in KiB (byte i = i % 251) */
static grpc_status_code h_big(void *ctx, const struct rpc_request *req, struct rpc_reply *reply)
{
    (void)ctx;
    size_t n = req->len ? (size_t)req->data[0] * 1024 : 0;
    reply->data = malloc(n ? n : 1);
    if (!reply->data)
        return GRPC_STATUS_RESOURCE_EXHAUSTED;
    for (size_t i = 0; i < n; i++)
        reply->data[i] = (uint8_t)(i % 251);
    reply->len = n;
    return GRPC_STATUS_OK;
}

static grpc_status_code h_fail(void *ctx, const struct rpc_request *req, struct rpc_reply *reply)
{
    (void)ctx;
    (void)req;
    snprintf(reply->details, sizeof(reply->details), "no such thing: 100%% gone");
    return GRPC_STATUS_NOT_FOUND;
}

static const struct test_method methods[] = {
    {"/T/Echo", test_echo, NULL}, {"/T/Big", h_big, NULL}, {"/T/Fail", h_fail, NULL}, {NULL}};

/* This file's server (Echo, Big, Fail; 256 KiB messages) on addr, over tls unless NULL; NULL
   when addr cannot be bound. */
static struct rpc_server *server_start(const char *addr, struct tls_conf *tls, int *port,
                                       char *target, size_t n)
{
    struct test_server_opts o = {
        .addr = addr, .max_message = 256 * 1024, .tls = tls, .methods = methods};
    return test_server_start(&o, port, target, n);
}

/* --- calls ------------------------------------------------------------------------------------ */

struct res {
    int done;
    grpc_status_code st;
    char details[128];
    uint8_t *data; /* malloc'd copy */
    size_t len;
    int has_data;
};

static void on_done(void *arg, grpc_status_code st, const char *details, const uint8_t *data,
                    size_t len)
{
    struct res *r = arg;
    r->done++;
    r->st = st;
    snprintf(r->details, sizeof(r->details), "%s", details);
    r->has_data = data != NULL;
    r->len = len;
    r->data = malloc(len ? len : 1);
    assert_non_null(r->data);
    if (len)
        memcpy(r->data, data, len);
}

static void res_release(struct res *r)
{
    free(r->data);
    memset(r, 0, sizeof(*r));
}

/* One call, polled to its end. The callback never runs inside h2_call(). */
static void call_wait(struct h2_client *cl, struct h2_conn *c, const char *path, const void *req,
                      size_t len, int ms, struct res *r)
{
    res_release(r);
    assert_int_equal(h2_call(c, path, req, len, clk_mono_ms() + ms, on_done, r), 0);
    assert_int_equal(r->done, 0);
    int64_t t0 = clk_mono_ms();
    while (!r->done && clk_mono_ms() - t0 < 30000)
        assert_true(h2_client_poll(cl, 100) >= 0);
    assert_int_equal(r->done, 1);
}

static void answers_statuses_and_many_calls(void **state)
{
    (void)state;
    char target[64];
    struct rpc_server *srv = server_start(NULL, NULL, NULL, target, sizeof(target));
    assert_non_null(srv);
    struct h2_client *cl = NULL;
    assert_int_equal(h2_client_new(NULL, &cl), 0);
    struct h2_conn *c = NULL;
    assert_int_equal(h2_conn_new(cl, target, &c), 0);
    struct res r = {0};

    call_wait(cl, c, "/T/Echo", "hello", 5, 5000, &r);
    assert_int_equal(r.st, GRPC_STATUS_OK);
    assert_int_equal(r.len, 5);
    assert_memory_equal(r.data, "hello", 5);

    /* an empty answer is a message of 0 bytes, not no message */
    call_wait(cl, c, "/T/Echo", NULL, 0, 5000, &r);
    assert_int_equal(r.st, GRPC_STATUS_OK);
    assert_true(r.has_data);
    assert_int_equal(r.len, 0);

    /* 4 KiB: past the inline buffer, and over several DATA frames' worth of reads */
    uint8_t kib = 4;
    call_wait(cl, c, "/T/Big", &kib, 1, 5000, &r);
    assert_int_equal(r.st, GRPC_STATUS_OK);
    assert_int_equal(r.len, 4096);
    for (size_t i = 0; i < r.len; i++)
        assert_int_equal(r.data[i], (uint8_t)(i % 251));
    /* over the 16 KiB limit: refused, the connection stays usable */
    kib = 20;
    call_wait(cl, c, "/T/Big", &kib, 1, 5000, &r);
    assert_int_equal(r.st, GRPC_STATUS_RESOURCE_EXHAUSTED);
    assert_false(r.has_data);

    call_wait(cl, c, "/T/Fail", NULL, 0, 5000, &r);
    assert_int_equal(r.st, GRPC_STATUS_NOT_FOUND);
    assert_string_equal(r.details, "no such thing: 100% gone");
    call_wait(cl, c, "/T/Nope", NULL, 0, 5000, &r);
    assert_int_equal(r.st, GRPC_STATUS_UNIMPLEMENTED);

    /* one call at a time per connection; requests are small */
    res_release(&r);
    assert_int_equal(
        h2_call(c, "/T/Echo", (const uint8_t *)"x", 1, clk_mono_ms() + 5000, on_done, &r), 0);
    struct res r2 = {0};
    assert_int_equal(
        h2_call(c, "/T/Echo", (const uint8_t *)"x", 1, clk_mono_ms() + 5000, on_done, &r2),
        H2_EBUSY);
    while (!r.done)
        assert_true(h2_client_poll(cl, 100) >= 0);
    assert_int_equal(r.st, GRPC_STATUS_OK);
    uint8_t big[H2_REQ_MAX + 1] = {0};
    assert_int_equal(h2_call(c, "/T/Echo", big, sizeof(big), clk_mono_ms() + 5000, on_done, &r2),
                     H2_ETOOBIG);
    assert_int_equal(h2_call(c, "T/Echo", big, 1, clk_mono_ms() + 5000, on_done, &r2), H2_EINVAL);
    assert_int_equal(r2.done, 0);

    /* 2,000 calls on the same connection: ~2,000 stream ids, ~100 KiB received (the
       connection window is given back), every answer right */
    for (int i = 0; i < 2000; i++) {
        char msg[48];
        int n = snprintf(msg, sizeof(msg), "call %d of many, padded to 40 bytes..", i);
        call_wait(cl, c, "/T/Echo", msg, (size_t)n, 5000, &r);
        assert_int_equal(r.st, GRPC_STATUS_OK);
        assert_int_equal(r.len, (size_t)n);
        assert_memory_equal(r.data, msg, (size_t)n);
    }
    assert_int_equal(h2_client_inflight(cl), 0);
    res_release(&r);
    h2_conn_free(c);
    h2_client_free(cl);
    rpc_server_free(srv);
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    close(fd);
    return ntohs(sa.sin_port);
}

static void deadline_refused_backoff_and_reconnect(void **state)
{
    (void)state;
    struct h2_opts o = H2_OPTS_INIT;
    o.backoff_initial_ms = 300;
    o.backoff_max_ms = 300;
    struct h2_client *cl = NULL;
    assert_int_equal(h2_client_new(&o, &cl), 0);
    struct res r = {0};

    /* a listener that never answers: the deadline ends the call */
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sa);
    assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(lfd, 4), 0);
    assert_int_equal(getsockname(lfd, (struct sockaddr *)&sa, &sl), 0);
    char target[64];
    snprintf(target, sizeof(target), "127.0.0.1:%d", ntohs(sa.sin_port));
    struct h2_conn *stuck = NULL;
    assert_int_equal(h2_conn_new(cl, target, &stuck), 0);
    call_wait(cl, stuck, "/T/Echo", "a", 1, 200, &r);
    assert_int_equal(r.st, GRPC_STATUS_DEADLINE_EXCEEDED);
    call_wait(cl, stuck, "/T/Echo", "a", 1, 200, &r); /* again, on the same connection */
    assert_int_equal(r.st, GRPC_STATUS_DEADLINE_EXCEEDED);
    h2_conn_free(stuck);
    close(lfd);

    /* nobody on the port: refused; the next call fails fast (backing off), never inside
       h2_call(); once a server listens there, a call after the backoff gets through */
    int port = free_port();
    snprintf(target, sizeof(target), "127.0.0.1:%d", port);
    struct h2_conn *c = NULL;
    assert_int_equal(h2_conn_new(cl, target, &c), 0);
    call_wait(cl, c, "/T/Echo", "b", 1, 2000, &r);
    assert_int_equal(r.st, GRPC_STATUS_UNAVAILABLE);
    assert_non_null(strstr(r.details, "refused"));
    call_wait(cl, c, "/T/Echo", "b", 1, 2000, &r);
    assert_int_equal(r.st, GRPC_STATUS_UNAVAILABLE);
    assert_non_null(strstr(r.details, "backing off"));
    struct rpc_server *srv = server_start(target, NULL, NULL, NULL, 0);
    assert_non_null(srv);
    int64_t t0 = clk_mono_ms();
    do {
        usleep(50 * 1000);
        call_wait(cl, c, "/T/Echo", "c", 1, 2000, &r);
    } while (r.st != GRPC_STATUS_OK && clk_mono_ms() - t0 < 10000);
    assert_int_equal(r.st, GRPC_STATUS_OK);
    assert_memory_equal(r.data, "c", 1);

    /* the server goes away under an open connection: the call fails, nothing hangs */
    rpc_server_free(srv);
    call_wait(cl, c, "/T/Echo", "d", 1, 2000, &r);
    assert_int_not_equal(r.st, GRPC_STATUS_OK);

    /* a call in flight on a connection being freed never calls back */
    res_release(&r);
    assert_int_equal(
        h2_call(c, "/T/Echo", (const uint8_t *)"e", 1, clk_mono_ms() + 100, on_done, &r), 0);
    h2_conn_free(c);
    for (int i = 0; i < 3; i++)
        assert_true(h2_client_poll(cl, 100) >= 0);
    assert_int_equal(r.done, 0);
    assert_int_equal(h2_client_inflight(cl), 0);
    res_release(&r);
    h2_client_free(cl);
}

static void count_lost(void *arg)
{
    (*(int *)arg)++;
}

/* The peer closing an idle connection is told to the owner once (the poller checks the agent
   at once); a failed connect is not a lost connection. */
static void lost_connection_is_noticed(void **state)
{
    (void)state;
    struct h2_client *cl = NULL;
    assert_int_equal(h2_client_new(NULL, &cl), 0);
    struct res r = {0};
    char target[64];
    int port = free_port();
    snprintf(target, sizeof(target), "127.0.0.1:%d", port);
    struct h2_conn *c = NULL;
    assert_int_equal(h2_conn_new(cl, target, &c), 0);
    int lost = 0;
    h2_conn_on_lost(c, count_lost, &lost);
    call_wait(cl, c, "/T/Echo", "a", 1, 2000, &r); /* nobody listens yet */
    assert_int_equal(r.st, GRPC_STATUS_UNAVAILABLE);
    assert_int_equal(lost, 0);

    struct rpc_server *srv = server_start(target, NULL, NULL, NULL, 0);
    assert_non_null(srv);
    int64_t t0 = clk_mono_ms();
    do {
        usleep(100 * 1000); /* past the backoff */
        call_wait(cl, c, "/T/Echo", "b", 1, 2000, &r);
    } while (r.st != GRPC_STATUS_OK && clk_mono_ms() - t0 < 10000);
    assert_int_equal(r.st, GRPC_STATUS_OK);
    for (int i = 0; i < 3; i++)
        assert_true(h2_client_poll(cl, 20) >= 0);
    assert_int_equal(lost, 0); /* open and idle: nothing to tell */

    rpc_server_free(srv); /* the agent stops: GOAWAY and/or close, no call in flight */
    t0 = clk_mono_ms();
    while (lost == 0 && clk_mono_ms() - t0 < 10000)
        assert_true(h2_client_poll(cl, 100) >= 0);
    assert_int_equal(lost, 1);
    for (int i = 0; i < 3; i++)
        assert_true(h2_client_poll(cl, 20) >= 0);
    assert_int_equal(lost, 1);                     /* once */
    call_wait(cl, c, "/T/Echo", "c", 1, 2000, &r); /* the next call finds nobody */
    assert_int_equal(r.st, GRPC_STATUS_UNAVAILABLE);
    assert_int_equal(lost, 1);
    res_release(&r);
    h2_conn_free(c);
    h2_client_free(cl);
}

static void targets(void **state)
{
    (void)state;
    struct h2_client *cl = NULL;
    assert_int_equal(h2_client_new(NULL, &cl), 0);
    struct h2_conn *c = NULL;
    const char *bad[] = {"",    "127.0.0.1", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:70000",
                         ":80", "[::1:80",   "[zz]:80",    "127.0.0.1:8x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(h2_conn_new(cl, bad[i], &c), H2_EINVAL);
    char longname[80];
    memset(longname, 'a', sizeof(longname));
    memcpy(longname + sizeof(longname) - 4, ":80", 4);
    assert_int_equal(h2_conn_new(cl, longname, &c), H2_EINVAL);

    struct res r = {0};
    int port = 0;
    char target[64];
    struct rpc_server *srv = server_start(NULL, NULL, &port, NULL, 0);
    assert_non_null(srv);
    snprintf(target, sizeof(target), "localhost:%d", port); /* a name: resolved on connect */
    assert_int_equal(h2_conn_new(cl, target, &c), 0);
    call_wait(cl, c, "/T/Echo", "n", 1, 5000, &r);
    assert_int_equal(r.st, GRPC_STATUS_OK);
    h2_conn_free(c);
    rpc_server_free(srv);

    struct rpc_server *srv6 = server_start("[::1]:0", NULL, NULL, target, sizeof(target));
    if (srv6) { /* no IPv6 loopback here: nothing to check */
        assert_int_equal(h2_conn_new(cl, target, &c), 0);
        call_wait(cl, c, "/T/Echo", "6", 1, 5000, &r);
        assert_int_equal(r.st, GRPC_STATUS_OK);
        h2_conn_free(c);
        rpc_server_free(srv6);
    }
    res_release(&r);
    h2_client_free(cl);
}

/* --- the wheel ------------------------------------------------------------------------------- */

struct tm_rec {
    struct wheel_timer t;
    struct wheel *w;
    int64_t fired_at;
    int fires;
    int rearm; /* re-arm this many ms later, once */
    int *order, *norder, id;
};

static void tm_fire(struct wheel_timer *t, int64_t now)
{
    struct tm_rec *r = (struct tm_rec *)((char *)t - offsetof(struct tm_rec, t));
    r->fires++;
    r->fired_at = now;
    r->order[(*r->norder)++] = r->id;
    if (r->rearm) {
        int ms = r->rearm;
        r->rearm = 0;
        wheel_add(r->w, &r->t, now + ms, tm_fire);
    }
}

static void wheel_orders_rearms_cancels(void **state)
{
    (void)state;
    struct wheel *w = malloc(sizeof(*w));
    assert_non_null(w);
    wheel_init(w, 1000);
    int order[16], norder = 0;
    struct tm_rec r[6];
    memset(r, 0, sizeof(r));
    for (int i = 0; i < 6; i++) {
        r[i].w = w;
        r[i].order = order;
        r[i].norder = &norder;
        r[i].id = i;
    }
    wheel_add(w, &r[0].t, 1010, tm_fire);
    wheel_add(w, &r[1].t, 1005, tm_fire);
    wheel_add(w, &r[2].t, 1000 + WHEEL_SLOTS + 5, tm_fire); /* same slot as r[1], a turn later */
    wheel_add(w, &r[3].t, 990, tm_fire);                    /* already past */
    wheel_add(w, &r[4].t, 1007, tm_fire);
    r[4].rearm = 0;
    wheel_add(w, &r[5].t, 1008, tm_fire);
    r[5].rearm = -20; /* re-armed for a time already past: fires on the next run */
    assert_int_equal(w->count, 6);
    assert_int_equal(wheel_next(w, 1000, 1100), 1000); /* r3, due already */
    wheel_del(w, &r[4].t);
    wheel_del(w, &r[4].t); /* twice: no-op */
    assert_false(wheel_pending(&r[4].t));

    assert_int_equal(wheel_run(w, 1000), 1); /* r3 */
    assert_int_equal(wheel_next(w, 1000, 1100), 1005);
    assert_int_equal(wheel_run(w, 1008), 2); /* r1, r5 (which re-arms for the past) */
    assert_int_equal(r[5].fires, 1);
    assert_true(wheel_pending(&r[5].t));
    assert_int_equal(wheel_run(w, 1010), 2); /* r5 again, r0 */
    assert_int_equal(r[5].fires, 2);
    assert_int_equal(wheel_run(w, 1000 + WHEEL_SLOTS), 0); /* r2's slot passed once: not due */
    assert_int_equal(wheel_next(w, 1000 + WHEEL_SLOTS, 1000 + WHEEL_SLOTS + 50),
                     1000 + WHEEL_SLOTS + 5);
    assert_int_equal(wheel_run(w, 1000 + 3 * WHEEL_SLOTS), 1); /* a long pause: still fires */
    assert_int_equal(r[2].fired_at, 1000 + 3 * WHEEL_SLOTS);
    assert_int_equal(w->count, 0);
    assert_int_equal(wheel_next(w, 5000, 5100), 5100);
    int want[] = {3, 1, 5, 5, 0, 2};
    assert_int_equal(norder, 6);
    assert_memory_equal(order, want, sizeof(want));
    assert_int_equal(r[4].fires, 0);
    free(w);
}

/* --- TLS ----------------------------------------------------------------------------------- */

static char tdir[64];

static int tsh(const char *cmd)
{
    return test_sh(tdir, cmd);
}

static struct tls_conf *tconf(const char *ca, const char *cert, const char *key)
{
    char a[128], b[128], k[128], err[512];
    snprintf(a, sizeof(a), "%s/%s", tdir, ca ? ca : "");
    snprintf(b, sizeof(b), "%s/%s", tdir, cert ? cert : "");
    snprintf(k, sizeof(k), "%s/%s", tdir, key ? key : "");
    struct tls_files f = {
        .ca_file = ca ? a : NULL, .cert_file = cert ? b : NULL, .key_file = key ? k : NULL};
    struct tls_conf *t = NULL;
    if (tls_conf_new(&f, &t, err, sizeof(err)))
        fail_msg("%s", err);
    return t;
}

/* One call on a new connection of a new client over t (NULL: plain text). */
static void tls_call(struct tls_conf *t, const char *target, const char *path, struct res *r)
{
    struct h2_opts o = H2_OPTS_INIT;
    o.tls = t;
    o.max_message = 256 * 1024;
    struct h2_client *cl = NULL;
    struct h2_conn *c = NULL;
    assert_int_equal(h2_client_new(&o, &cl), 0);
    assert_int_equal(h2_conn_new(cl, target, &c), 0);
    call_wait(cl, c, path, "x", 1, 5000, r);
    h2_conn_free(c);
    h2_client_free(cl);
}

static void expect_refused(struct res *r, const char *want)
{
    assert_int_equal(r->st, GRPC_STATUS_UNAVAILABLE);
    if (!strstr(r->details, want))
        fail_msg("details \"%s\" do not say \"%s\"", r->details, want);
}

static void over_tls(void **state)
{
    (void)state;
    snprintf(tdir, sizeof(tdir), "/tmp/asgd-h2-tls-XXXXXX");
    assert_non_null(mkdtemp(tdir));
    /* CAs "ca" and "rogue"; srv, rogue_srv, cli and rogue_cli, each of one of them */
    static const struct test_cert certs[] = {
        {"srv", "ca"}, {"rogue_srv", "rogue"}, {"cli", "ca"}, {"rogue_cli", "rogue"}};
    assert_int_equal(test_certs_make(tdir, certs, sizeof(certs) / sizeof(certs[0])), 0);

    /* a gRPC core server with mutual TLS (client certificates of "ca" required) */
    struct tls_conf *srv_tls = tconf("ca.pem", "srv.pem", "srv.key");
    int port = 0;
    char target[64];
    struct rpc_server *srv = server_start(NULL, srv_tls, &port, target, sizeof(target));
    assert_non_null(srv);

    /* the right CA and a client certificate: answers small and large, statuses, many calls
       on one connection (the reloadable files are copies: live.*) */
    assert_int_equal(tsh("cp cli.pem live.pem && cp cli.key live.key"), 0);
    struct tls_conf *cli = tconf("ca.pem", "live.pem", "live.key");
    struct h2_opts o = H2_OPTS_INIT;
    o.tls = cli;
    o.max_message = 256 * 1024;
    struct h2_client *cl = NULL;
    struct h2_conn *c = NULL, *c2 = NULL;
    assert_int_equal(h2_client_new(&o, &cl), 0);
    assert_int_equal(h2_conn_new(cl, target, &c), 0);
    struct res r = {0};
    call_wait(cl, c, "/T/Echo", "hello", 5, 5000, &r);
    assert_int_equal(r.st, GRPC_STATUS_OK);
    assert_int_equal(r.len, 5);
    assert_memory_equal(r.data, "hello", 5);
    const uint8_t big = 60; /* 60 KiB (within a stream window): several TLS records and reads */
    call_wait(cl, c, "/T/Big", &big, 1, 5000, &r);
    assert_int_equal(r.st, GRPC_STATUS_OK);
    assert_int_equal(r.len, 60 * 1024);
    for (size_t i = 0; i < r.len; i += 997)
        assert_int_equal(r.data[i], (uint8_t)(i % 251));
    call_wait(cl, c, "/T/Fail", NULL, 0, 5000, &r);
    assert_int_equal(r.st, GRPC_STATUS_NOT_FOUND);
    assert_string_equal(r.details, "no such thing: 100% gone");
    for (int i = 0; i < 300; i++) {
        uint8_t m[2] = {(uint8_t)i, (uint8_t)(i >> 8)};
        call_wait(cl, c, "/T/Echo", m, 2, 5000, &r);
        assert_int_equal(r.st, GRPC_STATUS_OK);
        assert_memory_equal(r.data, m, 2);
    }
    /* the certificate's DNS name works as a target too */
    char named[64];
    snprintf(named, sizeof(named), "localhost:%d", port);
    tls_call(cli, named, "/T/Echo", &r);
    assert_int_equal(r.st, GRPC_STATUS_OK);

    /* reload: the client's certificate is now of another CA. New connections present it
       (and are refused by the server); the open one keeps its session */
    assert_int_equal(tsh("cp rogue_cli.pem live.pem && cp rogue_cli.key live.key"), 0);
    char err[512];
    assert_int_equal(tls_conf_reload(cli, err, sizeof(err)), 0);
    assert_int_equal(h2_conn_new(cl, target, &c2), 0);
    call_wait(cl, c2, "/T/Echo", "x", 1, 5000, &r);
    expect_refused(&r, "TLS");
    call_wait(cl, c, "/T/Echo", "y", 1, 5000, &r);
    assert_int_equal(r.st, GRPC_STATUS_OK);
    assert_memory_equal(r.data, "y", 1);
    h2_conn_free(c2);
    h2_conn_free(c);
    h2_client_free(cl);

    /* trusting another CA: the server's certificate fails verification */
    struct tls_conf *rogue = tconf("rogue.pem", "rogue_cli.pem", "rogue_cli.key");
    tls_call(rogue, target, "/T/Echo", &r);
    expect_refused(&r, "TLS handshake failed: certificate verify failed");
    /* no client certificate: the server refuses us (TLS 1.3: after our side's handshake) */
    struct tls_conf *nocert = tconf("ca.pem", NULL, NULL);
    tls_call(nocert, target, "/T/Echo", &r);
    expect_refused(&r, "TLS");
    /* plain text to the TLS server: no answer */
    tls_call(NULL, target, "/T/Echo", &r);
    assert_int_not_equal(r.st, GRPC_STATUS_OK);

    /* a server of another CA: refused with the verification's reason */
    struct tls_conf *rsrv_tls = tconf("ca.pem", "rogue_srv.pem", "rogue_srv.key");
    char rtarget[64];
    struct rpc_server *rsrv = server_start(NULL, rsrv_tls, NULL, rtarget, sizeof(rtarget));
    assert_non_null(rsrv);
    struct tls_conf *good = tconf("ca.pem", "cli.pem", "cli.key");
    tls_call(good, rtarget, "/T/Echo", &r);
    expect_refused(&r, "TLS handshake failed: certificate verify failed");
    rpc_server_free(rsrv);

    /* TLS to a plain-text server: the handshake fails */
    struct rpc_server *plain = server_start(NULL, NULL, NULL, rtarget, sizeof(rtarget));
    assert_non_null(plain);
    tls_call(good, rtarget, "/T/Echo", &r);
    expect_refused(&r, "TLS handshake failed");
    rpc_server_free(plain);

    res_release(&r);
    rpc_server_free(srv);
    tls_conf_free(good);
    tls_conf_free(rsrv_tls);
    tls_conf_free(nocert);
    tls_conf_free(rogue);
    tls_conf_free(cli);
    tls_conf_free(srv_tls);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tdir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(answers_statuses_and_many_calls),
        cmocka_unit_test(deadline_refused_backoff_and_reconnect),
        cmocka_unit_test(lost_connection_is_noticed),
        cmocka_unit_test(targets),
        cmocka_unit_test(over_tls),
        cmocka_unit_test(wheel_orders_rearms_cancels),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
