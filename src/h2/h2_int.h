/*
 * h2_int.h - what the files of the HTTP/2 gRPC client share (not a public
 * API: see h2.h; h2.c says how the client works and why).
 *
 *   h2.c        the client and its connections (create, free, targets), the
 *               event loop (h2_client_poll())
 *   h2_call.c   calls: start (h2_call()), deadlines, outcomes queued on the
 *               done list and their callbacks, the retry of a refused stream
 *   h2_conn.c   a connection's socket: connect (with backoff), close, the
 *               bytes in and out (plain text or TLS), its epoll events
 *   h2_tls.c    the TLS transport (OpenSSL): context, handshake, the
 *               socket BIO, why a handshake failed
 *   h2_frame.c  HTTP/2 framing and HPACK: the request's frames out, the
 *               answer's frames in (headers, data, control frames)
 *
 * The per-call helpers that build and read frame fields are static inline
 * here (the poller makes 10,000 calls a second; they stay inlined).
 *
 * Threads: one thread at a time uses a client and its connections (h2.h).
 */
#ifndef ASGD_H2_INT_H
#define ASGD_H2_INT_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <nghttp2/nghttp2.h>
#include <openssl/ssl.h>

#include "h2/h2.h"
#include "h2/wheel.h"

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

/* --- frame fields (hot: static inline) ------------------------------------------------------ */

static inline uint8_t *put_frame_header(uint8_t *b, size_t len, uint8_t type, uint8_t flags,
                                        uint32_t sid)
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

static inline void put32(uint8_t *b, uint32_t v)
{
    b[0] = (uint8_t)(v >> 24);
    b[1] = (uint8_t)(v >> 16);
    b[2] = (uint8_t)(v >> 8);
    b[3] = (uint8_t)v;
}

static inline uint32_t get32(const uint8_t *b)
{
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

/* Output interest on the connection's socket (epoll), changed only when it differs. */
static inline void set_out(struct h2_conn *c, int want)
{
    if (want == c->want_out || c->fd < 0)
        return;
    struct epoll_event ev = {.events = EPOLLIN | (want ? EPOLLOUT : 0), .data.ptr = c};
    if (epoll_ctl(c->cl->epfd, EPOLL_CTL_MOD, c->fd, &ev) == 0)
        c->want_out = (uint8_t)want;
}

/* --- h2_call.c ------------------------------------------------------------------------------ */

/* Records the call's outcome and queues it for delivery (once). */
void h2__call_end(struct h2_conn *c, grpc_status_code st, const char *why);
/* Takes c off the done list (if on it). */
void h2__done_unlink(struct h2_conn *c);
/* Runs the callback of a finished call (or retries a refused one). */
void h2__deliver(struct h2_conn *c);

/* --- h2_conn.c ------------------------------------------------------------------------------ */

/* Closes the socket and forgets the connection's HTTP/2 state; the connection is idle. */
void h2__conn_close(struct h2_conn *c);
/* Closes the connection; a call in flight ends with st/why. backoff: the connection failed
   to come up, so the next attempt waits. */
void h2__conn_down(struct h2_conn *c, grpc_status_code st, const char *why, int backoff);
/* Opens the socket if needed and sends the call's request (at once, or when connected).
   Returns 0, or -1 when the call already ended (failure queued on the done list). */
int h2__conn_start(struct h2_conn *c);
/* Sends d after what is pending, keeping what the socket does not take. 0, or -1 (and the
   connection down) when it is dead. */
int h2__out_write(struct h2_conn *c, const uint8_t *d, size_t len);
/* HTTP/2 may start: the request waiting for the connection goes out. */
void h2__conn_open(struct h2_conn *c);
/* The epoll events of c's socket. */
void h2__conn_event(struct h2_conn *c, uint32_t events);

/* --- h2_tls.c ------------------------------------------------------------------------------- */

/* The TCP connection is up: starts the handshake. */
void h2__tls_start(struct h2_conn *c);
/* Moves the handshake on. The connection is open, still handshaking, or down (fd -1). */
void h2__tls_step(struct h2_conn *c);
/* Why the TLS layer failed, for the call's details. */
void h2__tls_reason(struct h2_conn *c, const char *what, char *why, size_t n);
/* The bytes out over TLS: taken, 0 when they must be offered again, -1 on a dead connection. */
ssize_t h2__tls_send(struct h2_conn *c, const uint8_t *d, size_t len);
/* The bytes in over TLS: read, 0 at the end, -1 on error, -2 when nothing is there now. */
ssize_t h2__tls_recv(struct h2_conn *c, uint8_t *buf, size_t len);
/* The sockets' BIO method (see bio_write in h2_tls.c), or NULL when out of memory. */
BIO_METHOD *h2__bio_method_new(void);

/* --- h2_frame.c ----------------------------------------------------------------------------- */

/* Builds [preface + SETTINGS on a new connection] + HEADERS + DATA of the call and sends
   them. 0, or -1 when the call already ended (queued on the done list). */
int h2__send_request(struct h2_conn *c);
/* Feeds received bytes: whole frames straight from d, a frame cut by the read through
   c->part. 0, or -1 when the connection went down. */
int h2__on_input(struct h2_conn *c, const uint8_t *d, size_t n);

#endif
