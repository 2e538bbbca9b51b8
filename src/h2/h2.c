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
 * Transport: conn_recv()/conn_send() are the only functions that move the
 * socket's bytes and conn_connected() is where a connection becomes usable;
 * with TLS (see "TLS transport" below) they go through the connection's SSL
 * and conn_connected() starts the handshake (ST_HANDSHAKE) that ends in
 * conn_open(). Plain text pays one pointer test per read and write.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <nghttp2/nghttp2.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "common/clock.h"
#include "h2/h2.h"
#include "h2/wheel.h"
#include "tls/tls.h"

#include "common/banned.h"

#define TARGET_MAX  64
#define INLINE_MSG  128 /* answers up to this many bytes (5-byte prefix included) need no malloc */
#define DETAILS_MAX 112 /* room for "TLS handshake failed: certificate verify failed (...)" */
#define PENDING_MAX (256 * 1024) /* bytes a peer that does not read may leave us holding */
#define EVENTS_MAX  256
#define FRAME_MAX   16384 /* SETTINGS_MAX_FRAME_SIZE: the protocol's default, ours */
#define HBLOCK_MAX  16384 /* a header block continued over several frames, at most */
#define WINDOW      65535 /* initial flow-control windows (protocol default) */

enum state { ST_IDLE = 0, ST_CONNECTING, ST_HANDSHAKE, ST_OPEN };

/* frame types and flags (RFC 9113 section 6) */
enum {
    F_DATA = 0,
    F_HEADERS = 1,
    F_RST_STREAM = 3,
    F_SETTINGS = 4,
    F_PUSH_PROMISE = 5,
    F_PING = 6,
    F_GOAWAY = 7,
    F_WINDOW_UPDATE = 8,
    F_CONTINUATION = 9,
};
enum {
    FL_END_STREAM = 0x1,
    FL_ACK = 0x1,
    FL_END_HEADERS = 0x4,
    FL_PADDED = 0x8,
    FL_PRIORITY = 0x20
};
/* error codes */
enum { E_NO_ERROR = 0, E_PROTOCOL = 1, E_REFUSED_STREAM = 7, E_CANCEL = 8, E_CALM = 11 };

struct h2_conn {
    struct h2_client *cl;
    SSL *ssl; /* TLS: this connection's session (NULL: plain text, or not connected) */
    int fd;   /* -1 while idle */
    uint8_t state;
    uint8_t want_out;    /* EPOLLOUT registered */
    uint8_t busy;        /* a call started, callback not run yet */
    uint8_t done;        /* its outcome is known, on the done list */
    uint8_t got_status;  /* grpc-status seen */
    uint8_t toobig;      /* answer over max_message */
    uint8_t refused;     /* REFUSED_STREAM / GOAWAY before our stream: retry on a new connection */
    uint8_t named;       /* target is a DNS name: resolve on each connect */
    uint8_t greeted;     /* preface and SETTINGS sent on this connection */
    uint8_t sent;        /* the call's request frames are out */
    uint8_t goaway;      /* the peer is closing: no new stream here */
    uint8_t hb_end;      /* the continued header block ends the stream */
    int32_t stream;      /* the call's stream, 0 = none */
    uint32_t next_id;    /* next stream id (odd) */
    int32_t hb_stream;   /* stream of the header block being continued, 0 = none */
    int64_t send_window; /* connection-level, for our DATA */
    int64_t peer_init_window; /* the peer's SETTINGS_INITIAL_WINDOW_SIZE: each stream's */
    uint32_t recv_unacked;    /* DATA bytes received and not yet given back (WINDOW_UPDATE) */
    int http_status;
    grpc_status_code status; /* outcome once done */
    int backoff_ms;          /* next backoff after a failed connect */
    int64_t retry_at_ms;     /* no connect attempt before (backoff) */
    int64_t deadline_ms;
    struct wheel_timer timer; /* the call's deadline */
    h2_done_fn cb;
    void *arg;
    h2_lost_fn lost; /* the peer closed it while idle (h2_conn_on_lost) */
    void *lost_arg;
    const char *path;
    struct h2_conn *next_done, **pprev_done;
    uint8_t *pend; /* bytes the socket did not take yet (malloc'd, rare) */
    size_t pendlen;
    uint8_t *part; /* a frame received in pieces (malloc'd, rare) */
    size_t partlen, partcap;
    uint8_t *hb; /* a header block continued over frames (malloc'd, rare) */
    size_t hblen;
    uint8_t *big; /* answers over INLINE_MSG (malloc'd, rare) */
    size_t bigcap;
    size_t msglen; /* answer bytes received, prefix included */
    uint16_t reqlen;
    union {
        struct sockaddr sa;
        struct sockaddr_in in;
        struct sockaddr_in6 in6;
    } addr;
    socklen_t addrlen;
    char target[TARGET_MAX];
    char details[DETAILS_MAX];
    uint8_t req[5 + H2_REQ_MAX];
    uint8_t msg[INLINE_MSG];
};

struct h2_client {
    int epfd;
    int inflight;
    int backoff_initial_ms, backoff_max_ms;
    size_t max_message;
    nghttp2_hd_deflater *def; /* shared: never indexes, so stateless */
    nghttp2_hd_inflater *inf; /* shared: the peers' tables are 0 bytes (our SETTINGS) */
    struct tls_conf *tls;     /* borrowed; NULL: plain text */
    SSL_CTX *ctx;             /* for new connections (each SSL holds its own reference) */
    BIO_METHOD *bio;          /* the sockets' BIO: send() with MSG_NOSIGNAL (see bio_write) */
    uint64_t ctx_gen;         /* the tls_conf generation ctx was built from */
    struct h2_conn *done_head;
    struct wheel wheel;
    size_t olen; /* control frames (acks, window updates) staged for the connection being read */
    uint8_t obuf[512];
    uint8_t wbuf[1024];  /* a request being built */
    uint8_t rbuf[16384]; /* reads */
};

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

/* --- completions ---------------------------------------------------------------------------- */

/* Records the call's outcome and queues it for delivery (once). */
static void call_end(struct h2_conn *c, grpc_status_code st, const char *why)
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

static void done_unlink(struct h2_conn *c)
{
    if (!c->pprev_done)
        return;
    *c->pprev_done = c->next_done;
    if (c->next_done)
        c->next_done->pprev_done = c->pprev_done;
    c->next_done = NULL;
    c->pprev_done = NULL;
}

static void conn_close(struct h2_conn *c);
static int conn_start(struct h2_conn *c);
static void on_deadline(struct wheel_timer *t, int64_t now);

/* Runs the callback of a finished call. */
static void deliver(struct h2_conn *c)
{
    struct h2_client *cl = c->cl;
    done_unlink(c);
    if (c->refused) {
        /* the server refused the stream without processing it (GOAWAY, REFUSED_STREAM):
           once more on a new connection, within the same deadline (a failure queues the
           call again) */
        c->refused = 0;
        c->done = 0;
        conn_close(c);
        c->retry_at_ms = 0;
        c->msglen = 0;
        c->got_status = 0;
        c->http_status = 0;
        c->details[0] = '\0';
        if (c->deadline_ms <= clk_mono_ms()) {
            call_end(c, GRPC_STATUS_DEADLINE_EXCEEDED, "deadline exceeded");
            return;
        }
        wheel_add(&cl->wheel, &c->timer, c->deadline_ms, on_deadline);
        (void)conn_start(c);
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

/* --- connection life ------------------------------------------------------------------------ */

/* Closes the socket and forgets the connection's HTTP/2 state; the connection is idle. */
static void conn_close(struct h2_conn *c)
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
static void conn_down(struct h2_conn *c, grpc_status_code st, const char *why, int backoff)
{
    struct h2_client *cl = c->cl;
    conn_close(c);
    int64_t now = clk_mono_ms();
    if (backoff) {
        c->retry_at_ms = now + c->backoff_ms;
        c->backoff_ms =
            c->backoff_ms * 2 > cl->backoff_max_ms ? cl->backoff_max_ms : c->backoff_ms * 2;
    } else {
        c->retry_at_ms = now;
    }
    c->refused = 0; /* a connection gone under a retry: a plain failure */
    call_end(c, st, why);
}

static void set_out(struct h2_conn *c, int want)
{
    if (want == c->want_out || c->fd < 0)
        return;
    struct epoll_event ev = {.events = EPOLLIN | (want ? EPOLLOUT : 0), .data.ptr = c};
    if (epoll_ctl(c->cl->epfd, EPOLL_CTL_MOD, c->fd, &ev) == 0)
        c->want_out = (uint8_t)want;
}

/* --- TLS transport (OpenSSL) ------------------------------------------------------------------
 *
 * One SSL per connection, on the client's current SSL_CTX (tls_client_ctx_new: ALPN "h2",
 * the agent's chain verified, our certificate for mutual TLS). The handshake runs between
 * the TCP connect and ST_OPEN (ST_HANDSHAKE), driven by the epoll events: SSL_connect
 * asking to read keeps input interest only, asking to write adds output interest. Modes:
 * partial writes and a moving write buffer, because out_write() retries what SSL_write did
 * not take from the connection's pending buffer; released buffers, because a connection
 * is idle between polls (OpenSSL keeps ~34 KiB of record buffers otherwise).
 */

/* OpenSSL's socket BIO write()s, and a write to a socket the agent closed raises SIGPIPE,
   which kills a process that does not ignore it (a library must not count on that): this
   BIO moves the same bytes with send(MSG_NOSIGNAL) / recv(). Its data is the fd. */
static int bio_write(BIO *b, const char *d, int n)
{
    BIO_clear_retry_flags(b);
    ssize_t r = send((int)(intptr_t)BIO_get_data(b), d, (size_t)n, MSG_NOSIGNAL);
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        BIO_set_retry_write(b);
    return (int)r;
}

static int bio_read(BIO *b, char *d, int n)
{
    BIO_clear_retry_flags(b);
    ssize_t r = recv((int)(intptr_t)BIO_get_data(b), d, (size_t)n, 0);
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        BIO_set_retry_read(b);
    return (int)r;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)b;
    (void)num;
    (void)ptr;
    return cmd == BIO_CTRL_FLUSH ? 1 : 0; /* nothing buffered here */
}

/* The context for a new connection: rebuilt when the certificates were re-read (SIGHUP);
   connections already up keep theirs. NULL with err. */
static SSL_CTX *tls_ctx(struct h2_client *cl, char *err, size_t errlen)
{
    if (cl->ctx && tls_conf_generation(cl->tls) == cl->ctx_gen)
        return cl->ctx;
    uint64_t gen = 0;
    SSL_CTX *ctx = tls_client_ctx_new(cl->tls, &gen, err, errlen);
    if (!ctx)
        return cl->ctx; /* the previous material, if any, is still valid */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_free(cl->ctx);
    cl->ctx = ctx;
    cl->ctx_gen = gen;
    return ctx;
}

/* Why the TLS layer failed, for the call's details. */
static void tls_reason(struct h2_conn *c, const char *what, char *why, size_t n)
{
    char r[96];
    long v = c->ssl ? SSL_get_verify_result(c->ssl) : X509_V_OK;
    if (v != X509_V_OK) {
        snprintf(why, n, "%s: certificate verify failed (%s)", what,
                 X509_verify_cert_error_string(v));
        ERR_clear_error();
        return;
    }
    if (!ERR_peek_error()) { /* no TLS error: the socket ended (reset, or closed) */
        snprintf(why, n, "%s: connection closed by the agent", what);
        return;
    }
    tls_handshake_error(c->ssl, r, sizeof(r)); /* clears the thread's error queue */
    snprintf(why, n, "%s: %s", what, r);
}

static ssize_t tls_send(struct h2_conn *c, const uint8_t *d, size_t len)
{
    if (!len)
        return 0;
    int n = SSL_write(c->ssl, d, len > INT32_MAX ? INT32_MAX : (int)len);
    if (n > 0)
        return n;
    int e = SSL_get_error(c->ssl, n);
    if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ)
        return 0; /* retried with the same bytes first (out_write's pending buffer) */
    ERR_clear_error();
    return -1;
}

static ssize_t tls_recv(struct h2_conn *c, uint8_t *buf, size_t len)
{
    int n = SSL_read(c->ssl, buf, len > INT32_MAX ? INT32_MAX : (int)len);
    if (n > 0)
        return n;
    switch (SSL_get_error(c->ssl, n)) {
    case SSL_ERROR_WANT_READ:
        return -2;
    case SSL_ERROR_WANT_WRITE:
        set_out(c, 1); /* rare (a key update): conn_event() reads again on EPOLLOUT */
        return -2;
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    default:
        return -1;
    }
}

static void conn_open(struct h2_conn *c);

/* Moves the handshake on. The connection is open, still handshaking, or down (fd -1). */
static void tls_step(struct h2_conn *c)
{
    ERR_clear_error();
    int r = SSL_connect(c->ssl);
    if (r == 1) {
        const unsigned char *proto = NULL;
        unsigned plen = 0;
        SSL_get0_alpn_selected(c->ssl, &proto, &plen);
        if (plen != 2 || memcmp(proto, "h2", 2) != 0) {
            conn_down(c, GRPC_STATUS_UNAVAILABLE,
                      "TLS: the agent did not select HTTP/2 by ALPN (not a gRPC server?)", 1);
            return;
        }
        conn_open(c);
        return;
    }
    switch (SSL_get_error(c->ssl, r)) {
    case SSL_ERROR_WANT_READ:
        set_out(c, 0);
        return;
    case SSL_ERROR_WANT_WRITE:
        set_out(c, 1);
        return;
    default: {
        char why[DETAILS_MAX];
        tls_reason(c, "TLS handshake failed", why, sizeof(why));
        conn_down(c, GRPC_STATUS_UNAVAILABLE, why, 1);
        return;
    }
    }
}

/* The TCP connection is up: starts the handshake. */
static void tls_start(struct h2_conn *c)
{
    struct h2_client *cl = c->cl;
    char err[160], why[DETAILS_MAX];
    err[0] = '\0';
    SSL_CTX *ctx = tls_ctx(cl, err, sizeof(err));
    if (!ctx) {
        snprintf(why, sizeof(why), "TLS: %.100s", err);
        conn_down(c, GRPC_STATUS_UNAVAILABLE, why, 1);
        return;
    }
    char host[TARGET_MAX];
    snprintf(host, sizeof(host), "%s", c->target);
    char *colon = strrchr(host, ':');
    if (colon)
        *colon = '\0';
    c->ssl = SSL_new(ctx);
    BIO *bio = c->ssl ? BIO_new(cl->bio) : NULL;
    if (bio) {
        BIO_set_data(bio, (void *)(intptr_t)c->fd);
        BIO_set_init(bio, 1);
        SSL_set_bio(c->ssl, bio, bio); /* the SSL owns it now */
    }
    if (!bio || tls_client_ssl_setup(c->ssl, cl->tls, host, err, sizeof(err))) {
        ERR_clear_error();
        snprintf(why, sizeof(why), "TLS: %.100s", bio ? err : "out of memory");
        conn_down(c, GRPC_STATUS_UNAVAILABLE, why, 1);
        return;
    }
    c->state = ST_HANDSHAKE;
    tls_step(c);
}

/* transport: the bytes out. Returns bytes taken (0 when the socket is full), -1 on a dead
   connection. */
static ssize_t conn_send(struct h2_conn *c, const uint8_t *d, size_t len)
{
    if (c->ssl)
        return tls_send(c, d, len);
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
        return tls_recv(c, buf, len);
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
static int out_write(struct h2_conn *c, const uint8_t *d, size_t len)
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
    conn_down(c, GRPC_STATUS_UNAVAILABLE, "connection lost while sending", 0);
    return -1;
}

static uint8_t *put_frame_header(uint8_t *b, size_t len, uint8_t type, uint8_t flags, uint32_t sid)
{
    b[0] = (uint8_t)(len >> 16);
    b[1] = (uint8_t)(len >> 8);
    b[2] = (uint8_t)len;
    b[3] = type;
    b[4] = flags;
    b[5] = (uint8_t)(sid >> 24 & 0x7f);
    b[6] = (uint8_t)(sid >> 16);
    b[7] = (uint8_t)(sid >> 8);
    b[8] = (uint8_t)sid;
    return b + 9;
}

static void put32(uint8_t *b, uint32_t v)
{
    b[0] = (uint8_t)(v >> 24);
    b[1] = (uint8_t)(v >> 16);
    b[2] = (uint8_t)(v >> 8);
    b[3] = (uint8_t)v;
}

static uint32_t get32(const uint8_t *b)
{
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

/* Builds [preface + SETTINGS on a new connection] + HEADERS + DATA of the call and sends
   them. 0, or -1 when the call already ended (queued on the done list). */
static int send_request(struct h2_conn *c)
{
    struct h2_client *cl = c->cl;
    uint8_t *b = cl->wbuf, *end = cl->wbuf + sizeof(cl->wbuf);
    if (!c->greeted) {
        memcpy(b, NGHTTP2_CLIENT_MAGIC, NGHTTP2_CLIENT_MAGIC_LEN);
        b += NGHTTP2_CLIENT_MAGIC_LEN;
        /* the peer's HPACK table for its answers: 0 bytes (the shared inflater's rule); no
           push */
        static const uint16_t ids[] = {NGHTTP2_SETTINGS_HEADER_TABLE_SIZE,
                                       NGHTTP2_SETTINGS_ENABLE_PUSH};
        b = put_frame_header(b, 12, F_SETTINGS, 0, 0);
        for (size_t i = 0; i < 2; i++) {
            b[0] = (uint8_t)(ids[i] >> 8);
            b[1] = (uint8_t)ids[i];
            put32(b + 2, 0);
            b += 6;
        }
        c->greeted = 1;
        c->next_id = 1;
        c->send_window = WINDOW;
        c->peer_init_window = WINDOW;
        c->recv_unacked = 0;
    }
    if (c->goaway || c->next_id > 0x7fffffffu || c->send_window < c->reqlen ||
        c->peer_init_window < c->reqlen) {
        /* this connection cannot take the stream (closing, ids or window used up): a new
           one can */
        conn_close(c);
        c->retry_at_ms = 0;
        return conn_start(c);
    }
    char tmo[16];
    int64_t left = c->deadline_ms - clk_mono_ms();
    if (left < 1)
        left = 1;
    if (left > 99999999)
        left = 99999999;
    snprintf(tmo, sizeof(tmo), "%lldm", (long long)left);
#define HDR(n, v, vl)                                                                              \
    {                                                                                              \
        (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, (vl), NGHTTP2_NV_FLAG_NONE                  \
    }
    const nghttp2_nv hd[] = {
        HDR(":method", "POST", 4),
        HDR(":scheme", c->ssl ? "https" : "http", c->ssl ? 5 : 4),
        HDR(":path", c->path, strlen(c->path)),
        HDR(":authority", c->target, strlen(c->target)),
        HDR("content-type", "application/grpc", 16),
        HDR("te", "trailers", 8),
        HDR("grpc-timeout", tmo, strlen(tmo)),
        HDR("user-agent", "asgd-poller", 11),
    };
#undef HDR
    uint8_t *hf = b;
    b += 9;
    ssize_t hl = nghttp2_hd_deflate_hd(cl->def, b, (size_t)(end - b) - 9 - c->reqlen, hd,
                                       sizeof(hd) / sizeof(hd[0]));
    if (hl < 0) {
        conn_down(c, GRPC_STATUS_INTERNAL, "cannot encode the request headers", 0);
        return -1;
    }
    uint32_t sid = c->next_id;
    c->next_id += 2;
    put_frame_header(hf, (size_t)hl, F_HEADERS, FL_END_HEADERS, sid);
    b += hl;
    b = put_frame_header(b, c->reqlen, F_DATA, FL_END_STREAM, sid);
    memcpy(b, c->req, c->reqlen);
    b += c->reqlen;
    c->send_window -= c->reqlen;
    c->stream = (int32_t)sid;
    c->sent = 1;
    if (out_write(c, cl->wbuf, (size_t)(b - cl->wbuf)))
        return -1;
    return 0;
}

/* transport: the socket is connected; with TLS the handshake starts, else HTTP/2 may. */
static void conn_connected(struct h2_conn *c)
{
    if (c->cl->tls) {
        tls_start(c);
        return;
    }
    conn_open(c);
}

/* HTTP/2 may start: the request waiting for the connection goes out. */
static void conn_open(struct h2_conn *c)
{
    c->state = ST_OPEN;
    c->backoff_ms = c->cl->backoff_initial_ms;
    set_out(c, 0);
    if (c->busy && !c->done && !c->sent)
        (void)send_request(c);
}

/* --- answers ------------------------------------------------------------------------------------
 */

/* Stages a control frame for the connection being read (sent after the read). */
static void stage(struct h2_conn *c, uint8_t type, uint8_t flags, uint32_t sid,
                  const uint8_t *payload, size_t len)
{
    struct h2_client *cl = c->cl;
    if (cl->olen + 9 + len > sizeof(cl->obuf)) {
        if (out_write(c, cl->obuf, cl->olen))
            return;
        cl->olen = 0;
    }
    uint8_t *b = put_frame_header(cl->obuf + cl->olen, len, type, flags, sid);
    if (len)
        memcpy(b, payload, len);
    cl->olen += 9 + len;
}

static int digits(const uint8_t *v, size_t n, size_t max)
{
    int x = 0;
    for (size_t i = 0; i < n && i < max && v[i] >= '0' && v[i] <= '9'; i++)
        x = x * 10 + (v[i] - '0');
    return x;
}

static void on_header(struct h2_conn *c, const nghttp2_nv *nv)
{
    const uint8_t *name = nv->name, *value = nv->value;
    size_t nlen = nv->namelen, vlen = nv->valuelen;
    if (nlen == 7 && memcmp(name, ":status", 7) == 0) {
        c->http_status = digits(value, vlen, 4);
    } else if (nlen == 11 && memcmp(name, "grpc-status", 11) == 0) {
        c->status = (grpc_status_code)digits(value, vlen, 3);
        c->got_status = 1;
    } else if (nlen == 12 && memcmp(name, "grpc-message", 12) == 0) {
        /* percent-encoded; kept printable for log lines */
        size_t o = 0;
        for (size_t i = 0; i < vlen && o + 1 < sizeof(c->details); i++) {
            unsigned ch = value[i];
            if (ch == '%' && i + 2 < vlen) {
                char hex[3] = {(char)value[i + 1], (char)value[i + 2], 0};
                char *end;
                unsigned long v = strtoul(hex, &end, 16);
                if (*end == '\0') {
                    ch = (unsigned)v;
                    i += 2;
                }
            }
            c->details[o++] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
        }
        c->details[o] = '\0';
    }
}

/* Decodes a whole header block with the shared inflater. 0, or -1 (connection down). */
static int decode_block(struct h2_conn *c, int32_t sid, const uint8_t *in, size_t inlen)
{
    struct h2_client *cl = c->cl;
    int ours = sid == c->stream && c->busy && !c->done;
    for (;;) {
        nghttp2_nv nv;
        int fl = 0;
        ssize_t rv = nghttp2_hd_inflate_hd2(cl->inf, &nv, &fl, in, inlen, 1);
        if (rv < 0) {
            /* a broken inflater stays broken: a fresh one for the next blocks */
            nghttp2_hd_inflater *fresh = NULL;
            if (nghttp2_hd_inflate_new(&fresh) == 0 &&
                nghttp2_hd_inflate_change_table_size(fresh, 0) == 0) {
                nghttp2_hd_inflate_del(cl->inf);
                cl->inf = fresh;
            } else {
                nghttp2_hd_inflate_del(fresh);
            }
            conn_down(c, GRPC_STATUS_INTERNAL, "bad header block (HPACK)", 0);
            return -1;
        }
        in += rv;
        inlen -= (size_t)rv;
        if ((fl & NGHTTP2_HD_INFLATE_EMIT) && ours)
            on_header(c, &nv);
        if (fl & NGHTTP2_HD_INFLATE_FINAL) {
            nghttp2_hd_inflate_end_headers(cl->inf);
            return 0;
        }
        if (rv == 0 && inlen == 0) {
            nghttp2_hd_inflate_end_headers(cl->inf);
            return 0;
        }
    }
}

/* gRPC's mapping of an HTTP status without grpc-status (its doc/http-grpc-status-mapping.md) */
static grpc_status_code from_http(int http)
{
    switch (http) {
    case 400:
        return GRPC_STATUS_INTERNAL;
    case 401:
        return GRPC_STATUS_UNAUTHENTICATED;
    case 403:
        return GRPC_STATUS_PERMISSION_DENIED;
    case 404:
        return GRPC_STATUS_UNIMPLEMENTED;
    case 429:
    case 502:
    case 503:
    case 504:
        return GRPC_STATUS_UNAVAILABLE;
    default:
        return GRPC_STATUS_UNKNOWN;
    }
}

/* The call's stream ended (END_STREAM): its outcome. */
static void stream_end(struct h2_conn *c)
{
    char why[64];
    if (c->toobig) {
        call_end(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "answer larger than the limit");
    } else if (c->got_status) {
        if (c->status != GRPC_STATUS_OK)
            c->msglen = 0;
        call_end(c, c->status, NULL);
    } else if (c->http_status && c->http_status != 200) {
        snprintf(why, sizeof(why), "HTTP status %d", c->http_status);
        call_end(c, from_http(c->http_status), why);
    } else {
        call_end(c, GRPC_STATUS_INTERNAL, "stream ended without a grpc-status");
    }
}

static void on_data(struct h2_conn *c, const uint8_t *data, size_t len)
{
    size_t need = c->msglen + len;
    if (c->toobig || need > c->cl->max_message + 5) {
        c->toobig = 1;
        return;
    }
    if (need > INLINE_MSG) {
        if (need > c->bigcap) {
            size_t cap = need < 1024 ? 1024 : need * 2;
            if (cap > c->cl->max_message + 5)
                cap = c->cl->max_message + 5;
            uint8_t *b = realloc(c->big, cap);
            if (!b) {
                c->toobig = 1;
                return;
            }
            c->big = b;
            c->bigcap = cap;
        }
        if (c->msglen <= INLINE_MSG && c->msglen)
            memcpy(c->big, c->msg, c->msglen); /* first spill: move what came inline */
        memcpy(c->big + c->msglen, data, len);
    } else if (len) {
        memcpy(c->msg + c->msglen, data, len);
    }
    c->msglen = need;
}

/* Strips padding (and a HEADERS frame's priority fields). -1 on a malformed frame. */
static int unpad(uint8_t flags, int prio, const uint8_t **p, size_t *len)
{
    size_t pad = 0;
    if (flags & FL_PADDED) {
        if (*len < 1)
            return -1;
        pad = (*p)[0];
        (*p)++;
        (*len)--;
    }
    if (prio && (flags & FL_PRIORITY)) {
        if (*len < 5)
            return -1;
        *p += 5;
        *len -= 5;
    }
    if (pad > *len)
        return -1;
    *len -= pad;
    return 0;
}

/* One whole frame. 0, or -1 when the connection went down. */
static int on_frame(struct h2_conn *c, const uint8_t *f)
{
    struct h2_client *cl = c->cl;
    size_t len = (size_t)f[0] << 16 | (size_t)f[1] << 8 | f[2];
    uint8_t type = f[3], flags = f[4];
    int32_t sid = (int32_t)(get32(f + 5) & 0x7fffffff);
    const uint8_t *p = f + 9;
    int ours = sid != 0 && sid == c->stream && c->busy && !c->done;
    if (c->hb_stream && type != F_CONTINUATION)
        goto protocol;
    switch (type) {
    case F_DATA:
        c->recv_unacked += (uint32_t)len;
        if (unpad(flags, 0, &p, &len))
            goto protocol;
        if (ours) {
            on_data(c, p, len);
            if (flags & FL_END_STREAM)
                stream_end(c);
        }
        if (c->recv_unacked >= WINDOW / 2) {
            uint8_t inc[4];
            put32(inc, c->recv_unacked);
            stage(c, F_WINDOW_UPDATE, 0, 0, inc, 4);
            c->recv_unacked = 0;
        }
        return c->fd < 0 ? -1 : 0;
    case F_HEADERS:
        if (unpad(flags, 1, &p, &len))
            goto protocol;
        if (!(flags & FL_END_HEADERS)) {
            /* continued in CONTINUATION frames (rare: our answers' headers are small) */
            c->hb = malloc(len ? len : 1);
            if (!c->hb)
                goto protocol;
            memcpy(c->hb, p, len);
            c->hblen = len;
            c->hb_stream = sid;
            c->hb_end = flags & FL_END_STREAM;
            return 0;
        }
        if (decode_block(c, sid, p, len))
            return -1;
        if (ours && (flags & FL_END_STREAM))
            stream_end(c);
        return 0;
    case F_CONTINUATION: {
        if (!c->hb_stream || sid != c->hb_stream || c->hblen + len > HBLOCK_MAX)
            goto protocol;
        uint8_t *nb = realloc(c->hb, c->hblen + len + 1);
        if (!nb)
            goto protocol;
        memcpy(nb + c->hblen, p, len);
        c->hb = nb;
        c->hblen += len;
        if (!(flags & FL_END_HEADERS))
            return 0;
        int32_t hsid = c->hb_stream;
        int end = c->hb_end;
        c->hb_stream = 0;
        int rc = decode_block(c, hsid, c->hb, c->hblen);
        free(c->hb);
        c->hb = NULL;
        c->hblen = 0;
        if (rc)
            return -1;
        if (end && hsid == c->stream && c->busy && !c->done)
            stream_end(c);
        return 0;
    }
    case F_RST_STREAM:
        if (len != 4)
            goto protocol;
        if (ours) {
            uint32_t code = get32(p);
            char why[64];
            snprintf(why, sizeof(why), "stream reset by the agent (%s)",
                     nghttp2_http2_strerror(code));
            if (code == E_REFUSED_STREAM) {
                c->refused = 1; /* not processed: deliver() tries a new connection */
                call_end(c, GRPC_STATUS_UNAVAILABLE, why);
            } else if (c->got_status) {
                stream_end(c); /* the status came; the reset only ends the stream */
            } else {
                call_end(c,
                         code == E_CANCEL ? GRPC_STATUS_CANCELLED
                         : code == E_CALM ? GRPC_STATUS_RESOURCE_EXHAUSTED
                                          : GRPC_STATUS_INTERNAL,
                         why);
            }
        }
        return 0;
    case F_SETTINGS:
        if (sid != 0 || (flags & FL_ACK ? len != 0 : len % 6 != 0))
            goto protocol;
        if (flags & FL_ACK)
            return 0;
        for (size_t i = 0; i + 6 <= len; i += 6) {
            uint16_t id = (uint16_t)(p[i] << 8 | p[i + 1]);
            uint32_t v = get32(p + i + 2);
            if (id == NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE) {
                if (v > 0x7fffffffu)
                    goto protocol;
                c->peer_init_window = v;
            }
            /* HEADER_TABLE_SIZE is the peer decoder's: our encoder never indexes. Frame
               sizes: ours are far below the minimum. */
        }
        stage(c, F_SETTINGS, FL_ACK, 0, NULL, 0);
        return c->fd < 0 ? -1 : 0;
    case F_PUSH_PROMISE:
        goto protocol; /* push is off (our SETTINGS) */
    case F_PING:
        if (len != 8 || sid != 0)
            goto protocol;
        if (!(flags & FL_ACK))
            stage(c, F_PING, FL_ACK, 0, p, 8);
        return c->fd < 0 ? -1 : 0;
    case F_GOAWAY:
        if (len < 8)
            goto protocol;
        c->goaway = 1;
        if (ours && (uint32_t)c->stream > (get32(p) & 0x7fffffff)) {
            c->refused = 1; /* never processed: deliver() tries a new connection */
            call_end(c, GRPC_STATUS_UNAVAILABLE, "connection closed by the agent (GOAWAY)");
        }
        return 0;
    case F_WINDOW_UPDATE:
        if (len != 4)
            goto protocol;
        if (sid == 0)
            c->send_window += get32(p) & 0x7fffffff;
        return 0;
    default:
        return 0; /* PRIORITY, unknown extensions: ignored, as the protocol says */
    }
protocol:
    (void)cl;
    conn_down(c, GRPC_STATUS_INTERNAL, "HTTP/2 protocol error from the agent", 0);
    return -1;
}

/* Keeps the first n bytes of a frame the read cut (its whole length when known). */
static int part_keep(struct h2_conn *c, const uint8_t *d, size_t n, size_t want)
{
    uint8_t *np = realloc(c->part, want);
    if (!np) {
        conn_down(c, GRPC_STATUS_INTERNAL, "out of memory for a frame", 0);
        return -1;
    }
    c->part = np;
    c->partcap = want;
    memcpy(np + c->partlen, d, n);
    c->partlen += n;
    return 0;
}

static size_t frame_len(const uint8_t *h)
{
    return 9 + ((size_t)h[0] << 16 | (size_t)h[1] << 8 | h[2]);
}

/* Feeds received bytes: whole frames straight from d, a frame cut by the read through
   c->part. 0, or -1 when the connection went down. */
static int on_input(struct h2_conn *c, const uint8_t *d, size_t n)
{
    while (n) {
        if (c->partlen) {
            if (c->partlen < 9) {
                size_t take = 9 - c->partlen < n ? 9 - c->partlen : n;
                memcpy(c->part + c->partlen, d, take);
                c->partlen += take;
                d += take;
                n -= take;
                if (c->partlen < 9)
                    return 0;
            }
            size_t want = frame_len(c->part);
            if (want > 9 + FRAME_MAX) {
                conn_down(c, GRPC_STATUS_INTERNAL, "HTTP/2 frame over the size limit", 0);
                return -1;
            }
            size_t take = want - c->partlen < n ? want - c->partlen : n;
            if (part_keep(c, d, take, want)) /* appends, grows to the whole frame */
                return -1;
            d += take;
            n -= take;
            if (c->partlen < want)
                return 0;
            uint8_t *fr = c->part;
            c->part = NULL;
            c->partlen = c->partcap = 0;
            int rc = on_frame(c, fr);
            free(fr);
            if (rc)
                return -1;
            continue;
        }
        if (n < 9)
            return part_keep(c, d, n, 9);
        size_t len = frame_len(d);
        if (len > 9 + FRAME_MAX) {
            conn_down(c, GRPC_STATUS_INTERNAL, "HTTP/2 frame over the size limit", 0);
            return -1;
        }
        if (n < len)
            return part_keep(c, d, n, len);
        if (on_frame(c, d))
            return -1;
        d += len;
        n -= len;
    }
    return 0;
}

/* --- calls -------------------------------------------------------------------------------------
 */

static void on_deadline(struct wheel_timer *t, int64_t now)
{
    (void)now;
    struct h2_conn *c = (struct h2_conn *)((char *)t - offsetof(struct h2_conn, timer));
    if (!c->busy || c->done)
        return;
    if (c->state == ST_CONNECTING || c->state == ST_HANDSHAKE) {
        /* not connected within the deadline: drop the attempt; the next call tries again
           without backoff (a busy machine, not a refusal, is the likely cause) */
        conn_down(c, GRPC_STATUS_DEADLINE_EXCEEDED,
                  c->state == ST_CONNECTING ? "deadline exceeded while connecting"
                                            : "deadline exceeded in the TLS handshake",
                  0);
        return;
    }
    uint32_t sid = (uint32_t)c->stream;
    c->refused = 0;
    call_end(c, GRPC_STATUS_DEADLINE_EXCEEDED, "deadline exceeded");
    if (sid && c->fd >= 0) {
        /* the agent may stop working on it (gRPC servers also end it by grpc-timeout) */
        uint8_t fr[13], code[4];
        put32(code, E_CANCEL);
        put_frame_header(fr, 4, F_RST_STREAM, 0, sid);
        memcpy(fr + 9, code, 4);
        (void)out_write(c, fr, sizeof(fr));
    }
}

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
static int conn_start(struct h2_conn *c)
{
    struct h2_client *cl = c->cl;
    char why[96];
    c->sent = 0;
    if (c->state == ST_OPEN)
        return send_request(c);
    if (c->state == ST_CONNECTING || c->state == ST_HANDSHAKE)
        return 0; /* sent when connected */
    if (clk_mono_ms() < c->retry_at_ms) {
        call_end(c, GRPC_STATUS_UNAVAILABLE, "connection failed recently (backing off)");
        return -1;
    }
    if (c->named && resolve(c)) {
        snprintf(why, sizeof(why), "cannot resolve \"%s\"", c->target);
        conn_down(c, GRPC_STATUS_UNAVAILABLE, why, 1);
        return -1;
    }
    int fd = socket(c->addr.sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(why, sizeof(why), "socket: %s", strerror(errno));
        conn_down(c, GRPC_STATUS_UNAVAILABLE, why, 1);
        return -1;
    }
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->fd = fd;
    if (connect(fd, &c->addr.sa, c->addrlen) && errno != EINPROGRESS) {
        snprintf(why, sizeof(why), "connect: %s", strerror(errno));
        conn_down(c, GRPC_STATUS_UNAVAILABLE, why, 1);
        return -1;
    }
    c->state = ST_CONNECTING;
    /* EPOLLOUT: the connect's completion */
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
    if (epoll_ctl(cl->epfd, EPOLL_CTL_ADD, fd, &ev)) {
        snprintf(why, sizeof(why), "epoll_ctl: %s", strerror(errno));
        conn_down(c, GRPC_STATUS_UNAVAILABLE, why, 1);
        return -1;
    }
    c->want_out = 1;
    return 0;
}

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
    (void)conn_start(c); /* a failure is on the done list: delivered by h2_client_poll() */
    return 0;
}

/* --- events ------------------------------------------------------------------------------------
 */

static void conn_event(struct h2_conn *c, uint32_t events)
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
                conn_down(c, GRPC_STATUS_UNAVAILABLE, why, 1);
                return;
            }
            conn_connected(c);
        } else {
            tls_step(c); /* ST_HANDSHAKE */
        }
        if (c->fd < 0 || c->state != ST_OPEN)
            return;
    } else if (events & EPOLLOUT) {
        if (out_write(c, NULL, 0))
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
                tls_reason(c, "TLS connection failed", why, sizeof(why));
            else
                snprintf(why, sizeof(why), "%s",
                         n == 0 ? "connection closed by the agent" : "connection lost");
            int idle = !c->busy || c->done; /* else the call in flight reports it */
            conn_down(c, GRPC_STATUS_UNAVAILABLE, why, 0);
            if (idle && c->lost)
                c->lost(c->lost_arg);
            return;
        }
        if (on_input(c, cl->rbuf, (size_t)n))
            return;
        if ((size_t)n < sizeof(cl->rbuf) && !(c->ssl && SSL_has_pending(c->ssl)))
            break; /* a short read drained the socket (level-triggered: more wakes us) */
    }
    if (cl->olen && out_write(c, cl->obuf, cl->olen))
        return;
    cl->olen = 0;
    if (c->goaway && !(c->busy && !c->done)) {
        conn_close(c); /* the agent is closing it: the next call reconnects */
        if (c->lost)
            c->lost(c->lost_arg);
    }
}

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
            conn_event(evs[i].data.ptr, evs[i].events);
        n += k;
        if (k < EVENTS_MAX)
            break;
    }
    n += (int)wheel_run(&cl->wheel, clk_mono_ms());
    /* callbacks last: they may start calls, which may end at once and queue again */
    while (cl->done_head) {
        deliver(cl->done_head);
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
        int idx = BIO_get_new_index();
        cl->bio = idx < 0 ? NULL : BIO_meth_new(idx | BIO_TYPE_SOURCE_SINK, "asgd-h2-socket");
        if (!cl->bio || !BIO_meth_set_write(cl->bio, bio_write) ||
            !BIO_meth_set_read(cl->bio, bio_read) || !BIO_meth_set_ctrl(cl->bio, bio_ctrl)) {
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
    done_unlink(c);
    if (c->busy)
        cl->inflight--;
    conn_close(c);
    free(c->big);
    free(c);
}
