/*
 * h2_conn.c - a connection's socket (see h2_int.h): connect (non-blocking,
 * with exponential backoff after a failure), close, and the bytes in and out.
 *
 * conn_recv()/conn_send() are the only functions that move the socket's
 * bytes and conn_connected() is where a connection becomes usable; with TLS
 * they go through the connection's SSL (h2_tls.c) and conn_connected()
 * starts the handshake (ST_HANDSHAKE) that ends in h2__conn_open(). Plain text
 * pays one pointer test per read and write. Sockets stay registered for
 * input; output interest only while bytes wait (set_out()). No socket is
 * created while a batch of epoll events is being handled, so an event never
 * meets a connection whose socket changed under it.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "h2/h2_int.h"

#include "common/banned.h"

/* --- connection life ------------------------------------------------------------------------ */

/* Closes the socket and forgets the connection's HTTP/2 state; the connection is idle. */
void h2__conn_close(struct h2_conn *c)
{
    if (c->ssl) {
        /* no close_notify: the socket closes now anyway, and the agent treats both alike */
        SSL_free(c->ssl); /* drops its reference to its SSL_CTX (maybe an older one) */
        c->ssl = NULL;
    }
    if (c->fd >= 0)
        close(c->fd); /* leaves the epoll set with it */
    c->fd = -1;
    c->state = ST_IDLE;
    c->want_out = 0;
    c->stream = 0;
    c->greeted = 0;
    c->sent = 0;
    c->goaway = 0;
    c->hb_stream = 0;
    free(c->pend);
    c->pend = NULL;
    c->pendlen = 0;
    free(c->part);
    c->part = NULL;
    c->partlen = c->partcap = 0;
    free(c->hb);
    c->hb = NULL;
    c->hblen = 0;
}

/* Closes the connection; a call in flight ends with st/why. backoff: the connection failed
   to come up, so the next attempt waits. */
void h2__conn_down(struct h2_conn *c, grpc_status_code st, const char *why, int backoff)
{
    struct h2_client *cl = c->cl;
    h2__conn_close(c);
    int64_t now = clk_mono_ms();
    if (backoff) {
        c->retry_at_ms = now + c->backoff_ms;
        c->backoff_ms =
            c->backoff_ms * 2 > cl->backoff_max_ms ? cl->backoff_max_ms : c->backoff_ms * 2;
    } else {
        c->retry_at_ms = now;
    }
    c->refused = 0; /* a connection gone under a retry: a plain failure */
    h2__call_end(c, st, why);
}

/* --- transport ------------------------------------------------------------------------------ */

/* transport: the bytes out. Returns bytes taken (0 when the socket is full), -1 on a dead
   connection. */
static ssize_t conn_send(struct h2_conn *c, const uint8_t *d, size_t len)
{
    if (c->ssl)
        return h2__tls_send(c, d, len);
    for (;;) {
        ssize_t n = send(c->fd, d, len, MSG_NOSIGNAL);
        if (n >= 0)
            return n;
        if (errno == EINTR)
            continue;
        return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
    }
}

/* transport: the bytes in. Returns bytes read, 0 at end of stream, -1 on error, -2 when
   nothing is there now. */
static ssize_t conn_recv(struct h2_conn *c, uint8_t *buf, size_t len)
{
    if (c->ssl)
        return h2__tls_recv(c, buf, len);
    for (;;) {
        ssize_t n = recv(c->fd, buf, len, 0);
        if (n >= 0)
            return n;
        if (errno == EINTR)
            continue;
        return errno == EAGAIN || errno == EWOULDBLOCK ? -2 : -1;
    }
}

/* Sends d after what is pending, keeping what the socket does not take. 0, or -1 (and the
   connection down) when it is dead. */
int h2__out_write(struct h2_conn *c, const uint8_t *d, size_t len)
{
    if (c->pendlen) {
        ssize_t n = conn_send(c, c->pend, c->pendlen);
        if (n < 0)
            goto dead;
        memmove(c->pend, c->pend + n, c->pendlen - (size_t)n);
        c->pendlen -= (size_t)n;
    }
    if (!c->pendlen && len) {
        ssize_t n = conn_send(c, d, len);
        if (n < 0)
            goto dead;
        d += n;
        len -= (size_t)n;
    }
    if (len) {
        if (c->pendlen + len > PENDING_MAX)
            goto dead;
        uint8_t *p = realloc(c->pend, c->pendlen + len);
        if (!p)
            goto dead;
        memcpy(p + c->pendlen, d, len);
        c->pend = p;
        c->pendlen += len;
    }
    set_out(c, c->pendlen > 0);
    return 0;
dead:
    h2__conn_down(c, GRPC_STATUS_UNAVAILABLE, "connection lost while sending", 0);
    return -1;
}

/* transport: the socket is connected; with TLS the handshake starts, else HTTP/2 may. */
static void conn_connected(struct h2_conn *c)
{
    if (c->cl->tls) {
        h2__tls_start(c);
        return;
    }
    h2__conn_open(c);
}

/* HTTP/2 may start: the request waiting for the connection goes out. */
void h2__conn_open(struct h2_conn *c)
{
    c->state = ST_OPEN;
    c->backoff_ms = c->cl->backoff_initial_ms;
    set_out(c, 0);
    if (c->busy && !c->done && !c->sent)
        (void)h2__send_request(c);
}

/* --- connecting ----------------------------------------------------------------------------- */

static int resolve(struct h2_conn *c)
{
    char host[TARGET_MAX];
    snprintf(host, sizeof(host), "%s", c->target);
    char *colon = strrchr(host, ':');
    if (!colon)
        return -1;
    *colon = '\0';
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    if (getaddrinfo(host, colon + 1, &hints, &ai) || !ai)
        return -1;
    if (ai->ai_addrlen > sizeof(c->addr)) {
        freeaddrinfo(ai);
        return -1;
    }
    memcpy(&c->addr, ai->ai_addr, ai->ai_addrlen);
    c->addrlen = ai->ai_addrlen;
    freeaddrinfo(ai);
    return 0;
}

/* Opens the socket if needed and sends the call's request (at once, or when connected).
   Returns 0, or -1 when the call already ended (failure queued on the done list). */
int h2__conn_start(struct h2_conn *c)
{
    struct h2_client *cl = c->cl;
    char why[96];
    c->sent = 0;
    if (c->state == ST_OPEN)
        return h2__send_request(c);
    if (c->state == ST_CONNECTING || c->state == ST_HANDSHAKE)
        return 0; /* sent when connected */
    if (clk_mono_ms() < c->retry_at_ms) {
        h2__call_end(c, GRPC_STATUS_UNAVAILABLE, "connection failed recently (backing off)");
        return -1;
    }
    if (c->named && resolve(c)) {
        snprintf(why, sizeof(why), "cannot resolve \"%s\"", c->target);
        h2__conn_down(c, GRPC_STATUS_UNAVAILABLE, why, 1);
        return -1;
    }
    int fd = socket(c->addr.sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(why, sizeof(why), "socket: %s", strerror(errno));
        h2__conn_down(c, GRPC_STATUS_UNAVAILABLE, why, 1);
        return -1;
    }
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->fd = fd;
    if (connect(fd, &c->addr.sa, c->addrlen) && errno != EINPROGRESS) {
        snprintf(why, sizeof(why), "connect: %s", strerror(errno));
        h2__conn_down(c, GRPC_STATUS_UNAVAILABLE, why, 1);
        return -1;
    }
    c->state = ST_CONNECTING;
    /* EPOLLOUT: the connect's completion */
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
    if (epoll_ctl(cl->epfd, EPOLL_CTL_ADD, fd, &ev)) {
        snprintf(why, sizeof(why), "epoll_ctl: %s", strerror(errno));
        h2__conn_down(c, GRPC_STATUS_UNAVAILABLE, why, 1);
        return -1;
    }
    c->want_out = 1;
    return 0;
}

/* --- events -------------------------------------------------------------------------------------
 */

void h2__conn_event(struct h2_conn *c, uint32_t events)
{
    struct h2_client *cl = c->cl;
    if (c->fd < 0)
        return; /* closed earlier in this batch */
    if (c->state != ST_OPEN) {
        if (c->state == ST_CONNECTING) {
            int err = 0;
            socklen_t el = sizeof(err);
            if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el) || err) {
                char why[96];
                snprintf(why, sizeof(why), "connect: %s", strerror(err ? err : errno));
                h2__conn_down(c, GRPC_STATUS_UNAVAILABLE, why, 1);
                return;
            }
            conn_connected(c);
        } else {
            h2__tls_step(c); /* ST_HANDSHAKE */
        }
        if (c->fd < 0 || c->state != ST_OPEN)
            return;
    } else if (events & EPOLLOUT) {
        if (h2__out_write(c, NULL, 0))
            return;
    }
    if (!(events & (EPOLLIN | EPOLLERR | EPOLLHUP)) && !c->ssl)
        return; /* TLS reads on any event: OpenSSL may hold bytes read during the handshake,
                   or a read may have waited for the socket to take bytes (WANT_WRITE) */
    cl->olen = 0;
    for (;;) {
        ssize_t n = conn_recv(c, cl->rbuf, sizeof(cl->rbuf));
        if (n == -2)
            break;
        if (n <= 0) {
            char why[DETAILS_MAX];
            if (n < 0 && c->ssl) /* e.g. our certificate refused after the handshake (TLS 1.3) */
                h2__tls_reason(c, "TLS connection failed", why, sizeof(why));
            else
                snprintf(why, sizeof(why), "%s",
                         n == 0 ? "connection closed by the agent" : "connection lost");
            int idle = !c->busy || c->done; /* else the call in flight reports it */
            h2__conn_down(c, GRPC_STATUS_UNAVAILABLE, why, 0);
            if (idle && c->lost)
                c->lost(c->lost_arg);
            return;
        }
        if (h2__on_input(c, cl->rbuf, (size_t)n))
            return;
        if ((size_t)n < sizeof(cl->rbuf) && !(c->ssl && SSL_has_pending(c->ssl)))
            break; /* a short read drained the socket (level-triggered: more wakes us) */
    }
    if (cl->olen && h2__out_write(c, cl->obuf, cl->olen))
        return;
    cl->olen = 0;
    if (c->goaway && !(c->busy && !c->done)) {
        h2__conn_close(c); /* the agent is closing it: the next call reconnects */
        if (c->lost)
            c->lost(c->lost_arg);
    }
}
