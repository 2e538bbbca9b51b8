/*
 * h2.c - the unary gRPC client of h2.h: nghttp2 sessions over non-blocking
 * sockets in one epoll set, deadlines in one timer wheel.
 *
 * Workload: one connection per agent (10,000 and more), each carrying one
 * small call a second: ~150 bytes out, ~100 bytes back. So the costs that
 * matter are per connection at rest (memory) and per call (syscalls,
 * allocations, timers), not throughput on one connection:
 *  - per call: one send() of the whole request (HEADERS + DATA in one
 *    buffer), one or two recv() for the answer, no epoll_ctl (sockets stay
 *    registered for input; output interest only while bytes wait), one
 *    wheel timer moved, nothing malloc'd here (the request is copied into
 *    the connection, the answer into its inline buffer);
 *  - per connection: struct h2_conn (~500 bytes) and one nghttp2 session.
 *    nghttp2 gives every session a 16 KiB frame buffer that it only uses
 *    while nghttp2_session_mem_send() serializes a frame; all sessions of a
 *    client share one (see mem_realloc), since this thread drains one
 *    session's output completely before it touches another.
 * Completions (answers, deadlines, failures) are queued on the client's
 * done list and their callbacks run at the end of h2_client_poll(), never
 * inside nghttp2's callbacks or inside h2_call(); and no socket is created
 * while a batch of epoll events is being handled, so an event never meets
 * a connection whose socket changed under it.
 *
 * Transport: conn_recv()/conn_send() are the only functions that move the
 * socket's bytes and conn_connected() is where a connection becomes usable;
 * a TLS transport (OpenSSL: SSL_read/SSL_write on a per-connection SSL, the
 * handshake driven from conn_connected() and the epoll events until done,
 * "h2" negotiated with ALPN) replaces those three and nothing else.
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

#include "common/clock.h"
#include "h2/h2.h"
#include "h2/wheel.h"

#include "common/banned.h"

#define TARGET_MAX  64
#define INLINE_MSG  192 /* answers up to this many bytes (5-byte prefix included) need no malloc */
#define DETAILS_MAX 96
#define PENDING_MAX (256 * 1024) /* bytes a peer that does not read may leave us holding */
#define EVENTS_MAX  256
/* nghttp2's frame buffer: NGHTTP2_FRAMEBUF_CHUNKLEN in its lib/nghttp2_frame.h (frame header,
   pad length byte, largest payload) */
#define FRAMEBUF_LEN (9 + 1 + 16384)

enum state { ST_IDLE = 0, ST_CONNECTING, ST_OPEN };

struct h2_conn {
    struct h2_client *cl;
    nghttp2_session *s; /* NULL while idle */
    int fd;             /* -1 while idle */
    uint8_t state;
    uint8_t want_out;   /* EPOLLOUT registered */
    uint8_t busy;       /* a call started, callback not run yet */
    uint8_t done;       /* its outcome is known, on the done list */
    uint8_t got_status; /* grpc-status seen */
    uint8_t toobig;     /* answer over max_message */
    uint8_t refused;    /* REFUSED_STREAM (GOAWAY): retry on a new connection */
    uint8_t named;      /* target is a DNS name: resolve on each connect */
    uint8_t magic;      /* the client preface is still to be sent (see conn_start) */
    int32_t stream;     /* the call's stream, 0 = none */
    int http_status;
    grpc_status_code status; /* outcome once done */
    int backoff_ms;          /* next backoff after a failed connect */
    int64_t retry_at_ms;     /* no connect attempt before (backoff) */
    int64_t deadline_ms;
    struct wheel_timer timer; /* the call's deadline */
    h2_done_fn cb;
    void *arg;
    const char *path;
    struct h2_conn *next_done, **pprev_done;
    uint8_t *pend; /* bytes the socket did not take yet (malloc'd, rare) */
    size_t pendlen;
    uint8_t *big; /* answers over INLINE_MSG (malloc'd, kept for the next) */
    size_t bigcap;
    size_t msglen; /* answer bytes received, prefix included */
    uint16_t reqlen, reqsent;
    union {
        struct sockaddr sa;
        struct sockaddr_in in;
        struct sockaddr_in6 in6;
    } addr;
    socklen_t addrlen;
    char tmo[12]; /* grpc-timeout value */
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
    nghttp2_session_callbacks *cbs;
    nghttp2_option *opt;
    nghttp2_mem mem;
    size_t ng_bytes;   /* live bytes nghttp2 allocated (see mem_*) */
    int creating;      /* inside nghttp2_session_client_new3() */
    uint8_t *framebuf; /* the shared frame buffer (see mem_realloc) */
    struct h2_conn *done_head;
    struct wheel wheel;
    uint8_t rbuf[16384];
    uint8_t wbuf[16384];
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

/* --- nghttp2's allocations ----------------------------------------------------------------- */

/* Each block carries its size in front, so the live total can be counted. */
struct blk {
    _Alignas(max_align_t) size_t size;
};

static void *mem_malloc(size_t n, void *ud)
{
    struct h2_client *cl = ud;
    struct blk *b = malloc(sizeof(*b) + n);
    if (!b)
        return NULL;
    b->size = n;
    cl->ng_bytes += n;
    return b + 1;
}

static void mem_free(void *p, void *ud)
{
    struct h2_client *cl = ud;
    if (!p || p == cl->framebuf)
        return;
    struct blk *b = (struct blk *)p - 1;
    cl->ng_bytes -= b->size;
    free(b);
}

static void *mem_calloc(size_t nmemb, size_t size, void *ud)
{
    if (size && nmemb > SIZE_MAX / size)
        return NULL;
    void *p = mem_malloc(nmemb * size, ud);
    if (p)
        memset(p, 0, nmemb * size);
    return p;
}

/*
 * The one trick: while a session is being created, its frame buffer (the
 * only block of exactly FRAMEBUF_LEN nghttp2 asks for then) is the client's
 * shared one. nghttp2 writes a frame there in nghttp2_session_mem_send() and
 * hands out a pointer to it, which conn_flush() copies out before the next
 * call; conn_flush() always drains a session (mem_send returns 0) before
 * another session runs, so no session finds another's bytes in it. The one
 * thing nghttp2 leaves there across calls is the client preface it writes
 * at creation: conn_start() takes it out at once and conn_flush() sends the
 * constant itself. A block
 * of that size asked for later (a header block over 16 KiB, which this
 * client never sends) gets its own memory.
 */
static void *mem_realloc(void *p, size_t n, void *ud)
{
    struct h2_client *cl = ud;
    if (!p && cl->creating && n == FRAMEBUF_LEN) {
        if (!cl->framebuf)
            cl->framebuf = malloc(FRAMEBUF_LEN);
        return cl->framebuf;
    }
    if (p && p == cl->framebuf)
        return n <= FRAMEBUF_LEN ? p : NULL; /* never grown: nghttp2's chunks are fixed */
    if (!p)
        return mem_malloc(n, ud);
    struct blk *b = (struct blk *)p - 1;
    size_t old = b->size;
    struct blk *nb = realloc(b, sizeof(*nb) + n);
    if (!nb)
        return NULL;
    nb->size = n;
    cl->ng_bytes = cl->ng_bytes - old + n;
    return nb + 1;
}

/* --- completions ---------------------------------------------------------------------------- */

/* Records the call's outcome and queues it for delivery (once). */
static void call_end(struct h2_conn *c, grpc_status_code st, const char *why)
{
    if (!c->busy || c->done)
        return;
    c->done = 1;
    c->status = st;
    if (why)
        snprintf(c->details, sizeof(c->details), "%s", why);
    c->stream = 0;
    wheel_del(&c->cl->wheel, &c->timer);
    struct h2_client *cl = c->cl;
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

static int conn_start(struct h2_conn *c);
static void on_deadline(struct wheel_timer *t, int64_t now);

static void conn_close(struct h2_conn *c);

/* Runs the callback of a finished call. */
static void deliver(struct h2_conn *c)
{
    done_unlink(c);
    if (c->refused) {
        /* the server refused the stream without processing it (GOAWAY): once more on a new
           connection, within the same deadline (a failure queues the call again) */
        c->refused = 0;
        c->done = 0;
        conn_close(c);
        c->retry_at_ms = 0;
        c->msglen = 0;
        c->got_status = 0;
        c->http_status = 0;
        c->reqsent = 0;
        if (c->deadline_ms <= clk_mono_ms()) {
            call_end(c, GRPC_STATUS_DEADLINE_EXCEEDED, "deadline exceeded");
            return;
        }
        wheel_add(&c->cl->wheel, &c->timer, c->deadline_ms, on_deadline);
        (void)conn_start(c);
        return;
    }
    const uint8_t *data = NULL;
    size_t len = 0;
    grpc_status_code st = c->status;
    if (st == GRPC_STATUS_OK && c->msglen) {
        const uint8_t *m = c->msglen > INLINE_MSG ? c->big : c->msg;
        uint32_t n = (uint32_t)m[1] << 24 | (uint32_t)m[2] << 16 | (uint32_t)m[3] << 8 | m[4];
        if (c->msglen < 5 || m[0] != 0 || (size_t)n != c->msglen - 5) {
            st = GRPC_STATUS_INTERNAL;
            snprintf(c->details, sizeof(c->details), "%s",
                     c->msglen >= 5 && m[0] ? "compressed answer (not asked for)"
                                            : "malformed message framing");
        } else {
            data = m + 5;
            len = n;
        }
    }
    c->busy = 0;
    c->done = 0;
    c->cl->inflight--;
    c->cb(c->arg, st, c->details, data, len);
}

/* --- connection life ------------------------------------------------------------------------ */

/* Closes the socket and the session; the connection is idle. */
static void conn_close(struct h2_conn *c)
{
    if (c->fd >= 0)
        close(c->fd); /* leaves the epoll set with it */
    c->fd = -1;
    nghttp2_session_del(c->s);
    c->s = NULL;
    c->state = ST_IDLE;
    c->want_out = 0;
    c->stream = 0;
    free(c->pend);
    c->pend = NULL;
    c->pendlen = 0;
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

/* transport: the bytes out. Returns bytes taken (0 when the socket is full), -1 on a dead
   connection. */
static ssize_t conn_send(struct h2_conn *c, const uint8_t *d, size_t len)
{
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
    for (;;) {
        ssize_t n = recv(c->fd, buf, len, 0);
        if (n >= 0)
            return n;
        if (errno == EINTR)
            continue;
        return errno == EAGAIN || errno == EWOULDBLOCK ? -2 : -1;
    }
}

/* Sends d, keeping what the socket does not take. -1 when the connection is dead. */
static int out_write(struct h2_conn *c, const uint8_t *d, size_t len)
{
    if (!c->pendlen) {
        ssize_t n = conn_send(c, d, len);
        if (n < 0)
            return -1;
        d += n;
        len -= (size_t)n;
        if (!len)
            return 0;
    }
    if (c->pendlen + len > PENDING_MAX)
        return -1;
    uint8_t *p = realloc(c->pend, c->pendlen + len);
    if (!p)
        return -1;
    memcpy(p + c->pendlen, d, len);
    c->pend = p;
    c->pendlen += len;
    return 0;
}

/* Sends what nghttp2 has queued, batched into one send() where it fits. Drains the session
   completely (the shared frame buffer's rule). 0, or -1 when the connection went down. */
static int conn_flush(struct h2_conn *c)
{
    struct h2_client *cl = c->cl;
    if (c->state != ST_OPEN)
        return 0;
    if (c->pendlen) {
        ssize_t n = conn_send(c, c->pend, c->pendlen);
        if (n < 0)
            goto dead;
        memmove(c->pend, c->pend + n, c->pendlen - (size_t)n);
        c->pendlen -= (size_t)n;
    }
    size_t olen = 0;
    if (c->magic) {
        memcpy(cl->wbuf, NGHTTP2_CLIENT_MAGIC, NGHTTP2_CLIENT_MAGIC_LEN);
        olen = NGHTTP2_CLIENT_MAGIC_LEN;
        c->magic = 0;
    }
    for (;;) {
        const uint8_t *d;
        ssize_t k = nghttp2_session_mem_send(c->s, &d);
        if (k < 0) {
            conn_down(c, GRPC_STATUS_INTERNAL, nghttp2_strerror((int)k), 0);
            return -1;
        }
        if (k == 0)
            break;
        if (olen + (size_t)k > sizeof(cl->wbuf)) {
            if (out_write(c, cl->wbuf, olen))
                goto dead;
            olen = 0;
        }
        if ((size_t)k > sizeof(cl->wbuf)) {
            if (out_write(c, d, (size_t)k))
                goto dead;
        } else {
            memcpy(cl->wbuf + olen, d, (size_t)k);
            olen += (size_t)k;
        }
    }
    if (olen && out_write(c, cl->wbuf, olen))
        goto dead;
    if (!c->pendlen && !nghttp2_session_want_read(c->s) && !nghttp2_session_want_write(c->s)) {
        /* GOAWAY done: the next call reconnects */
        conn_down(c, GRPC_STATUS_UNAVAILABLE, "connection closed by the agent (GOAWAY)", 0);
        return -1;
    }
    set_out(c, c->pendlen > 0);
    return 0;
dead:
    conn_down(c, GRPC_STATUS_UNAVAILABLE, "connection lost while sending", 0);
    return -1;
}

/* transport: the socket is connected; HTTP/2 may start. */
static void conn_connected(struct h2_conn *c)
{
    c->state = ST_OPEN;
    c->backoff_ms = c->cl->backoff_initial_ms;
    (void)conn_flush(c); /* preface, SETTINGS, the request */
}

/* --- nghttp2 callbacks (user_data: the connection) ----------------------------------------- */

static int on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name, size_t nlen,
                     const uint8_t *value, size_t vlen, uint8_t flags, void *ud)
{
    (void)s;
    (void)flags;
    struct h2_conn *c = ud;
    if (f->hd.type != NGHTTP2_HEADERS || f->hd.stream_id != c->stream || !c->busy || c->done)
        return 0;
    if (nlen == 7 && memcmp(name, ":status", 7) == 0) {
        int v = 0;
        for (size_t i = 0; i < vlen && i < 4 && value[i] >= '0' && value[i] <= '9'; i++)
            v = v * 10 + (value[i] - '0');
        c->http_status = v;
    } else if (nlen == 11 && memcmp(name, "grpc-status", 11) == 0) {
        int v = 0;
        for (size_t i = 0; i < vlen && i < 3 && value[i] >= '0' && value[i] <= '9'; i++)
            v = v * 10 + (value[i] - '0');
        c->status = (grpc_status_code)v;
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
    return 0;
}

static int on_data(nghttp2_session *s, uint8_t flags, int32_t sid, const uint8_t *data, size_t len,
                   void *ud)
{
    (void)s;
    (void)flags;
    struct h2_conn *c = ud;
    if (sid != c->stream || !c->busy || c->done || c->toobig)
        return 0;
    size_t need = c->msglen + len;
    if (need > c->cl->max_message + 5) {
        c->toobig = 1;
        return 0;
    }
    if (need > INLINE_MSG) {
        if (need > c->bigcap) {
            size_t cap = need < 1024 ? 1024 : need * 2;
            if (cap > c->cl->max_message + 5)
                cap = c->cl->max_message + 5;
            uint8_t *b = realloc(c->big, cap);
            if (!b) {
                c->toobig = 1;
                return 0;
            }
            c->big = b;
            c->bigcap = cap;
        }
        if (c->msglen <= INLINE_MSG && c->msglen)
            memcpy(c->big, c->msg, c->msglen); /* first spill: move what came inline */
        memcpy(c->big + c->msglen, data, len);
    } else {
        memcpy(c->msg + c->msglen, data, len);
    }
    c->msglen = need;
    return 0;
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

static int on_close(nghttp2_session *s, int32_t sid, uint32_t code, void *ud)
{
    (void)s;
    struct h2_conn *c = ud;
    if (sid != c->stream || !c->busy || c->done)
        return 0;
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
    } else if (code == NGHTTP2_REFUSED_STREAM) {
        c->refused = 1; /* retried by deliver() */
        call_end(c, GRPC_STATUS_UNAVAILABLE, "stream refused by the agent");
    } else {
        snprintf(why, sizeof(why), "stream closed without a status (%s)",
                 nghttp2_http2_strerror(code));
        call_end(c, code == NGHTTP2_CANCEL ? GRPC_STATUS_CANCELLED : GRPC_STATUS_INTERNAL, why);
    }
    return 0;
}

static ssize_t req_read(nghttp2_session *s, int32_t sid, uint8_t *buf, size_t len, uint32_t *flags,
                        nghttp2_data_source *src, void *ud)
{
    (void)s;
    (void)sid;
    (void)ud;
    struct h2_conn *c = src->ptr;
    size_t left = (size_t)(c->reqlen - c->reqsent);
    if (len > left)
        len = left;
    memcpy(buf, c->req + c->reqsent, len);
    c->reqsent = (uint16_t)(c->reqsent + len);
    if (c->reqsent == c->reqlen)
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)len;
}

/* --- calls -------------------------------------------------------------------------------------
 */

static void on_deadline(struct wheel_timer *t, int64_t now)
{
    (void)now;
    struct h2_conn *c = (struct h2_conn *)((char *)t - offsetof(struct h2_conn, timer));
    if (!c->busy || c->done)
        return;
    if (c->state == ST_CONNECTING) {
        /* not even connected within the deadline: drop the attempt, back off */
        conn_down(c, GRPC_STATUS_DEADLINE_EXCEEDED, "deadline exceeded while connecting", 1);
        return;
    }
    int32_t sid = c->stream;
    c->refused = 0;
    call_end(c, GRPC_STATUS_DEADLINE_EXCEEDED, "deadline exceeded");
    if (sid > 0 && c->s) {
        (void)nghttp2_submit_rst_stream(c->s, NGHTTP2_FLAG_NONE, sid, NGHTTP2_CANCEL);
        (void)conn_flush(c);
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

/* Opens the socket and the session if needed, submits the call's request and sends what it
   can. Returns 0, or -1 when the call already ended (failure queued on the done list). */
static int conn_start(struct h2_conn *c)
{
    struct h2_client *cl = c->cl;
    char why[96];
    if (c->state == ST_IDLE) {
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
        int rc = connect(fd, &c->addr.sa, c->addrlen);
        if (rc && errno != EINPROGRESS) {
            snprintf(why, sizeof(why), "connect: %s", strerror(errno));
            conn_down(c, GRPC_STATUS_UNAVAILABLE, why, 1);
            return -1;
        }
        cl->creating = 1;
        rc = nghttp2_session_client_new3(&c->s, cl->cbs, c, cl->opt, &cl->mem);
        cl->creating = 0;
        if (rc == 0) {
            /* nghttp2 writes the client preface into the (shared) frame buffer at once: take
               it out now, and send the constant when connected */
            const uint8_t *d;
            ssize_t k = nghttp2_session_mem_send(c->s, &d);
            if (k != NGHTTP2_CLIENT_MAGIC_LEN || memcmp(d, NGHTTP2_CLIENT_MAGIC, (size_t)k))
                rc = -1;
            c->magic = 1;
        }
        if (rc == 0) {
            /* no push; everything else as the protocol's defaults */
            nghttp2_settings_entry set[] = {{NGHTTP2_SETTINGS_ENABLE_PUSH, 0}};
            rc = nghttp2_submit_settings(c->s, NGHTTP2_FLAG_NONE, set, 1);
        }
        if (rc) {
            conn_down(c, GRPC_STATUS_INTERNAL, "cannot set up the HTTP/2 session", 1);
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
    }
    /* the headers: static strings are not copied by nghttp2 */
    int64_t left = c->deadline_ms - clk_mono_ms();
    if (left < 1)
        left = 1;
    if (left > 99999999)
        left = 99999999;
    snprintf(c->tmo, sizeof(c->tmo), "%lldm", (long long)left);
    const uint8_t nc = NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE;
#define HDR(n, v, vl, fl)                                                                          \
    {                                                                                              \
        (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, (vl), (fl)                                  \
    }
    const nghttp2_nv hd[] = {
        HDR(":method", "POST", 4, nc),
        HDR(":scheme", "http", 4, nc),
        HDR(":path", c->path, strlen(c->path), nc),
        HDR(":authority", c->target, strlen(c->target), nc),
        HDR("content-type", "application/grpc", 16, nc),
        HDR("te", "trailers", 8, nc),
        /* changes every call: kept out of the header table */
        HDR("grpc-timeout", c->tmo, strlen(c->tmo), nc | NGHTTP2_NV_FLAG_NO_INDEX),
        HDR("user-agent", "asgd-poller", 11, nc),
    };
#undef HDR
    nghttp2_data_provider dp = {.source.ptr = c, .read_callback = req_read};
    int32_t sid = nghttp2_submit_request(c->s, NULL, hd, sizeof(hd) / sizeof(hd[0]), &dp, c);
    if (sid < 0) {
        /* stream ids used up (2^30 calls) or the session is going away: a new connection */
        snprintf(why, sizeof(why), "cannot start a stream: %s", nghttp2_strerror(sid));
        conn_down(c, GRPC_STATUS_UNAVAILABLE, why, 0);
        return -1;
    }
    c->stream = sid;
    (void)conn_flush(c);
    return c->done ? -1 : 0;
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
    c->req[1] = (uint8_t)(len >> 24);
    c->req[2] = (uint8_t)(len >> 16);
    c->req[3] = (uint8_t)(len >> 8);
    c->req[4] = (uint8_t)len;
    if (len)
        memcpy(c->req + 5, req, len);
    c->reqlen = (uint16_t)(5 + len);
    c->reqsent = 0;
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
    if (c->state == ST_CONNECTING) {
        int err = 0;
        socklen_t el = sizeof(err);
        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el) || err) {
            char why[96];
            snprintf(why, sizeof(why), "connect: %s", strerror(err ? err : errno));
            conn_down(c, GRPC_STATUS_UNAVAILABLE, why, 1);
            return;
        }
        if (!(events & (EPOLLOUT | EPOLLIN | EPOLLERR | EPOLLHUP)))
            return;
        conn_connected(c);
        if (c->state != ST_OPEN)
            return;
    }
    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
        for (;;) {
            ssize_t n = conn_recv(c, cl->rbuf, sizeof(cl->rbuf));
            if (n == -2)
                break;
            if (n <= 0) {
                conn_down(c, GRPC_STATUS_UNAVAILABLE,
                          n == 0 ? "connection closed by the agent" : "connection lost", 0);
                return;
            }
            ssize_t rv = nghttp2_session_mem_recv(c->s, cl->rbuf, (size_t)n);
            if (rv < 0) {
                char why[96];
                snprintf(why, sizeof(why), "HTTP/2 error: %s", nghttp2_strerror((int)rv));
                conn_down(c, GRPC_STATUS_INTERNAL, why, 0);
                return;
            }
            if ((size_t)n < sizeof(cl->rbuf))
                break; /* a short read drained the socket (level-triggered: more wakes us) */
        }
    }
    (void)conn_flush(c); /* SETTINGS ack, WINDOW_UPDATE, what EPOLLOUT now takes */
}

int h2_client_poll(struct h2_client *cl, int timeout_ms)
{
    struct epoll_event evs[EVENTS_MAX];
    int64_t now = clk_mono_ms();
    if (cl->done_head || timeout_ms < 0)
        timeout_ms = 0;
    int64_t next = wheel_next(&cl->wheel, now, now + timeout_ms);
    int wait = next > now ? (int)(next - now) : 0;
    int k = epoll_wait(cl->epfd, evs, EVENTS_MAX, wait);
    if (k < 0) {
        if (errno != EINTR)
            return H2_ESYS;
        k = 0;
    }
    for (int i = 0; i < k; i++)
        conn_event(evs[i].data.ptr, evs[i].events);
    int n = k + (int)wheel_run(&cl->wheel, clk_mono_ms());
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
    cl->mem = (nghttp2_mem){cl, mem_malloc, mem_free, mem_calloc, mem_realloc};
    wheel_init(&cl->wheel, clk_mono_ms());
    if (nghttp2_session_callbacks_new(&cl->cbs) || nghttp2_option_new(&cl->opt)) {
        h2_client_free(cl);
        return H2_ENOMEM;
    }
    nghttp2_session_callbacks_set_on_header_callback(cl->cbs, on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cl->cbs, on_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(cl->cbs, on_close);
    /* closed streams are not kept for priority bookkeeping; header tables stay small */
    nghttp2_option_set_no_closed_streams(cl->opt, 1);
    nghttp2_option_set_max_deflate_dynamic_table_size(cl->opt, 512);
    nghttp2_option_set_peer_max_concurrent_streams(cl->opt, 100);
    *out = cl;
    return 0;
}

void h2_client_free(struct h2_client *cl)
{
    if (!cl)
        return;
    if (cl->cbs)
        nghttp2_session_callbacks_del(cl->cbs);
    if (cl->opt)
        nghttp2_option_del(cl->opt);
    if (cl->epfd >= 0)
        close(cl->epfd);
    free(cl->framebuf);
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

size_t h2_client_nghttp2_bytes(const struct h2_client *cl)
{
    return cl ? cl->ng_bytes : 0;
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
        c->named = 1; /* resolved on connect */
    }
    *out = c;
    return 0;
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
    if (c->fd >= 0)
        close(c->fd);
    nghttp2_session_del(c->s);
    free(c->pend);
    free(c->big);
    free(c);
}
