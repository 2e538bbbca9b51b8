/*
 * h2.c - the unary gRPC client of h2.h: HTTP/2 framing of our own over
 * non-blocking sockets in one epoll set, HPACK from nghttp2, deadlines in
 * one timer wheel.
 *
 * Workload: one connection per agent (10,000 and more), each carrying one
 * small call a second: ~120 bytes out, ~100 bytes back, one stream at a
 * time. So the costs that matter are per connection at rest (memory) and
 * per call (syscalls, allocations, timers), not throughput on one
 * connection.
 *
 * Why our own framing and not an nghttp2_session per connection (the first
 * version of this file): an nghttp2 session costs ~9 KiB at rest whatever
 * its settings (measured with a counting allocator: a 2,928-byte session
 * struct, a 4 KiB stream hash table, two 1 KiB HPACK ring buffers, and a
 * 16 KiB frame buffer that could be shared), which alone is over the 8 KiB
 * a watched instance may cost. A unary client with one stream at a time
 * needs little of HTTP/2: send the preface, our SETTINGS, HEADERS + DATA
 * per call; answer SETTINGS and PING; read HEADERS (+ CONTINUATION), DATA,
 * RST_STREAM, GOAWAY, WINDOW_UPDATE. That is this file. Header compression
 * is nghttp2's (nghttp2_hd_*), and stateless: our SETTINGS set the peer's
 * HPACK table for its answers to 0 bytes and our encoder never indexes, so
 * ONE deflater and ONE inflater serve every connection, each header block
 * decoded whole. A connection is then struct h2_conn (~660 bytes) and its
 * socket.
 *
 * Per call: one send() of preface (first call) + HEADERS + DATA, usually
 * one recv() for the answer (HEADERS, DATA, trailers), no epoll_ctl
 * (sockets stay registered for input; output interest only while bytes
 * wait), one wheel timer moved, nothing malloc'd (the request and the
 * answer fit the connection's inline buffers; partial frames, continued
 * header blocks and large answers, all rare, use malloc).
 *
 * Flow control: answers are at most max_message (16 KiB) on a stream
 * window of 65,535 (we never need a stream WINDOW_UPDATE); the connection
 * window is topped up every 32 KiB received. Our requests (< 100 bytes) are
 * counted against the peer's windows; a connection whose window ran out is
 * replaced by a new one rather than waiting.
 *
 * Completions (answers, deadlines, failures) are queued on the client's
 * done list and their callbacks run at the end of h2_client_poll(), never
 * inside h2_call() or in the middle of a read; and no socket is created
 * while a batch of epoll events is being handled, so an event never meets
 * a connection whose socket changed under it.
 *
 * Transport: conn_recv()/conn_send() (h2_conn.c) are the only functions
 * that move the socket's bytes and conn_connected() is where a connection
 * becomes usable; with TLS (h2_tls.c) they go through the connection's SSL
 * and conn_connected() starts the handshake (ST_HANDSHAKE) that ends in
 * h2__conn_open(). Plain text pays one pointer test per read and write.
 *
 * Files: this one holds the client and its connections (create, free,
 * targets) and the event loop; h2_int.h lists the others (calls and
 * deadlines, the socket, TLS, framing and HPACK) and what they share.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "common/clock.h"
#include "h2/h2_int.h"

#include "common/banned.h"

const char *h2_strerror(int code)
{
    switch (code) {
    case 0:
        return "success";
    case H2_EINVAL:
        return "invalid argument";
    case H2_ENOMEM:
        return "out of memory";
    case H2_EBUSY:
        return "a call is in flight on this connection";
    case H2_ETOOBIG:
        return "request too large";
    case H2_ESYS:
        return "system call failed";
    default:
        return "unknown error";
    }
}

/* --- events -------------------------------------------------------------------------------------
 */

int h2_client_poll(struct h2_client *cl, int timeout_ms)
{
    struct epoll_event evs[EVENTS_MAX];
    int64_t now = clk_mono_ms();
    if (cl->done_head || timeout_ms < 0)
        timeout_ms = 0;
    int64_t next = wheel_next(&cl->wheel, now, now + timeout_ms);
    int wait = next > now ? (int)(next - now) : 0;
    int n = 0;
    /* every answer already there is read before any deadline is judged: after a stall,
       more than one batch of events may be waiting */
    for (int batch = 0; batch < 64; batch++) {
        int k = epoll_wait(cl->epfd, evs, EVENTS_MAX, batch ? 0 : wait);
        if (k < 0) {
            if (errno != EINTR)
                return H2_ESYS;
            k = 0;
        }
        for (int i = 0; i < k; i++)
            h2__conn_event(evs[i].data.ptr, evs[i].events);
        n += k;
        if (k < EVENTS_MAX)
            break;
    }
    n += (int)wheel_run(&cl->wheel, clk_mono_ms());
    /* callbacks last: they may start calls, which may end at once and queue again */
    while (cl->done_head) {
        h2__deliver(cl->done_head);
        n++;
    }
    return n;
}

/* --- life cycle ------------------------------------------------------------------------------- */

int h2_client_new(const struct h2_opts *o, struct h2_client **out)
{
    struct h2_client *cl = calloc(1, sizeof(*cl));
    if (!cl)
        return H2_ENOMEM;
    cl->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (cl->epfd < 0) {
        free(cl);
        return H2_ESYS;
    }
    cl->backoff_initial_ms = o && o->backoff_initial_ms > 0 ? o->backoff_initial_ms : 100;
    cl->backoff_max_ms = o && o->backoff_max_ms > 0 ? o->backoff_max_ms : 1000;
    if (cl->backoff_max_ms < cl->backoff_initial_ms)
        cl->backoff_max_ms = cl->backoff_initial_ms;
    cl->max_message = o && o->max_message ? o->max_message : 16 * 1024;
    cl->tls = o ? o->tls : NULL; /* the SSL_CTX is built by the first connect */
    wheel_init(&cl->wheel, clk_mono_ms());
    /* the deflater never indexes (table 0): one serves every connection; so does the
       inflater, whose peers were told a table of 0 bytes */
    if (nghttp2_hd_deflate_new(&cl->def, 0) || nghttp2_hd_inflate_new(&cl->inf) ||
        nghttp2_hd_inflate_change_table_size(cl->inf, 0)) {
        h2_client_free(cl);
        return H2_ENOMEM;
    }
    if (cl->tls) {
        cl->bio = h2__bio_method_new();
        if (!cl->bio) {
            h2_client_free(cl);
            return H2_ENOMEM;
        }
    }
    *out = cl;
    return 0;
}

void h2_client_free(struct h2_client *cl)
{
    if (!cl)
        return;
    if (cl->def) /* nghttp2's *_del() do not take NULL (a failed h2_client_new) */
        nghttp2_hd_deflate_del(cl->def);
    if (cl->inf)
        nghttp2_hd_inflate_del(cl->inf);
    SSL_CTX_free(cl->ctx);
    BIO_meth_free(cl->bio);
    if (cl->epfd >= 0)
        close(cl->epfd);
    free(cl);
}

struct wheel *h2_client_wheel(struct h2_client *cl)
{
    return &cl->wheel;
}

int h2_client_inflight(const struct h2_client *cl)
{
    return cl ? cl->inflight : 0;
}

size_t h2_conn_size(void)
{
    return sizeof(struct h2_conn);
}

int h2_conn_new(struct h2_client *cl, const char *target, struct h2_conn **out)
{
    if (!cl || !target || !out || strlen(target) >= TARGET_MAX)
        return H2_EINVAL;
    struct h2_conn *c = calloc(1, sizeof(*c));
    if (!c)
        return H2_ENOMEM;
    c->cl = cl;
    c->fd = -1;
    c->backoff_ms = cl->backoff_initial_ms;
    snprintf(c->target, sizeof(c->target), "%s", target);
    /* host:port, host an IPv4 address, [IPv6] or a name */
    char host[TARGET_MAX];
    snprintf(host, sizeof(host), "%s", target);
    char *colon = strrchr(host, ':');
    char *end = NULL;
    long port = colon ? strtol(colon + 1, &end, 10) : 0;
    if (!colon || colon == host || !end || *end || end == colon + 1 || port < 1 || port > 65535) {
        free(c);
        return H2_EINVAL;
    }
    *colon = '\0';
    const char *h = host;
    size_t hl = strlen(host);
    if (host[0] == '[' && hl > 2 && host[hl - 1] == ']') {
        host[hl - 1] = '\0';
        h = host + 1;
        if (inet_pton(AF_INET6, h, &c->addr.in6.sin6_addr) != 1) {
            free(c);
            return H2_EINVAL;
        }
        c->addr.in6.sin6_family = AF_INET6;
        c->addr.in6.sin6_port = htons((uint16_t)port);
        c->addrlen = sizeof(c->addr.in6);
    } else if (inet_pton(AF_INET, h, &c->addr.in.sin_addr) == 1) {
        c->addr.in.sin_family = AF_INET;
        c->addr.in.sin_port = htons((uint16_t)port);
        c->addrlen = sizeof(c->addr.in);
    } else {
        for (const char *q = h; *q; q++)
            if (!((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') ||
                  (*q >= '0' && *q <= '9') || *q == '-' || *q == '.')) {
                free(c);
                return H2_EINVAL;
            }
        c->named = 1; /* resolved on connect */
    }
    *out = c;
    return 0;
}

void h2_conn_on_lost(struct h2_conn *c, h2_lost_fn fn, void *arg)
{
    c->lost = fn;
    c->lost_arg = arg;
}

void h2_conn_free(struct h2_conn *c)
{
    if (!c)
        return;
    struct h2_client *cl = c->cl;
    wheel_del(&cl->wheel, &c->timer);
    h2__done_unlink(c);
    if (c->busy)
        cl->inflight--;
    h2__conn_close(c);
    free(c->big);
    free(c);
}
