/*
 * bench/swarm.c - many monitorc agents in one cheap process, for benchmarks and tests.
 *
 * Serves N agents, agent k on its own loopback address (base + k, skipping
 * .0 and .255 last octets; default base 127.1.0.1) and one port, with the
 * MonitorC wire behaviour of monitorc: GetMetrics, GetStatus, GetMemoryUsage
 * and Ping, each answering the agent's own instance id (prefix + "%06d", "i-000042" by default)
 * and its load. Other methods get UNIMPLEMENTED, like monitorc.
 *
 * Why not rpc.h's server: gRPC core's server costs a completion queue, threads
 * and tens of KiB per listening address; 10,000 of them do not fit in half a
 * core. This file speaks the gRPC wire itself: HTTP/2 from nghttp2 (Debian's
 * libnghttp2), the 5-byte gRPC message framing, protobuf-c messages, one
 * thread over epoll, non-blocking sockets. Plaintext HTTP/2 ("h2c" with prior
 * knowledge), which is what gRPC's insecure channels speak.
 *
 * Commands, one per line on stdin (ranges are agent indexes, "A" or "A-B"):
 *   kill A-B       close the agents' listening sockets and connections
 *   hang A-B       keep connections open but never answer (calls hit their deadline)
 *   drop A-B       answer, then close the connection (an agent or proxy that never keeps one)
 *   slow A-B MS    answer after MS milliseconds
 *   ok A-B         back to normal (re-listens killed agents)
 *   load A-B V     the load the agents report (0..100)
 *   unhealthy A-B  GetMetrics app_healthy=false, GetStatus "NOT OK"
 *   stats          prints "stats calls=C conns=K" on stdout
 *   quit           exits
 * Each command is acknowledged with "ok <command>" (or "error ...") on stdout.
 * End of stdin does not stop the swarm (it runs until "quit" or SIGTERM/SIGINT).
 *
 * Usage: bench_swarm [-n N] [-b BASE] [-p PORT] [-l LISTFILE] [--id-prefix P] [--tls DIR]
 * Prints "ready N" on stdout once every agent listens; with -l, writes
 * "<instance id> <address:port>" lines to LISTFILE first.
 *
 * With --tls DIR every agent serves TLS (1.2 or later, ALPN "h2", OpenSSL's
 * defaults otherwise: TLS 1.3 session tickets included) with DIR/srv.pem
 * (chain, leaf first) and DIR/srv.key, as monitorc --tls-cert does; when
 * DIR/ca.pem exists, clients must present a certificate it signed (mutual
 * TLS). One certificate serves every address, so a poller names it with
 * [monitor] tls_server_name (a DNS name in its SAN).
 *
 * Ownership: every connection, stream and pending answer is malloc'd and freed
 * here on close. One thread; errors go to stderr; exit status 1 on setup failure.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <nghttp2/nghttp2.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "monitor.pb-c.h"

#include "common/banned.h"

enum { MODE_OK = 0, MODE_DEAD, MODE_HANG, MODE_SLOW, MODE_DROP };
enum { MSG_MAX = 512 };

struct conn;

struct agent {
    int lfd; /* listening socket, -1 while killed */
    uint32_t addr;
    int mode;
    int slow_ms;
    int unhealthy;
    double load;
    char id[32];
    struct conn *conns; /* open connections (list through conn->next_in_agent) */
};

struct stream {
    int32_t id;
    struct conn *c;
    char method[48];
    size_t reqlen; /* request bytes received (not kept: every request is ignored but Ping's seq) */
    uint8_t req[64];
    uint8_t body[MSG_MAX + 5];
    size_t bodylen, sent;
    int status;              /* grpc-status to send */
    int answered;            /* response submitted */
    int64_t due_ms;          /* slow: answer at */
    struct stream *next_due; /* slow answers waiting (global list) */
};

struct conn {
    int fd;
    struct agent *a;
    nghttp2_session *s;
    SSL *ssl; /* --tls: the connection's TLS (its handshake first), else NULL */
    int want_out;
    uint8_t *out; /* bytes the socket did not take yet (malloc'd) */
    size_t outlen, outcap;
    int dirty; /* on the slow-answer flush list */
    int drop;  /* close once the answers queued are sent (MODE_DROP) */
    struct conn *next_dirty;
    struct conn *next_in_agent, **prev_in_agent;
};

static struct agent *agents;
static int nagents;
static int port = 50051;
static int epfd;
static long calls, nconns;
static struct stream *due_list;
static volatile sig_atomic_t stop_flag;
static int64_t start_ms;
/* with more agents than one process has file descriptors for, worker processes share them out:
   agent i belongs to worker i % nworkers */
static int worker, nworkers = 1;
static int cmdfd;        /* where this process reads commands: stdin, or the parent's pipe */
static SSL_CTX *tls_ctx; /* --tls: every agent's context; NULL: plain text (h2c) */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* epoll data: agents and connections are told apart by a tag bit in the pointer-sized value */
static uint64_t tag_listen(int i)
{
    return ((uint64_t)1 << 63) | (uint64_t)i;
}

static void conn_close(struct conn *c);

static int agent_listen(struct agent *a)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(a->addr);
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) || listen(fd, 64)) {
        int e = errno;
        close(fd);
        return -e;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = tag_listen((int)(a - agents))};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev)) {
        int e = errno;
        close(fd);
        return -e;
    }
    a->lfd = fd;
    return 0;
}

static void agent_kill(struct agent *a)
{
    if (a->lfd >= 0) {
        close(a->lfd); /* close removes it from epoll */
        a->lfd = -1;
    }
    while (a->conns)
        conn_close(a->conns);
}

/* --- answers ------------------------------------------------------------------------------ */

static void frame(struct stream *st, const ProtobufCMessage *m)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    if (n > MSG_MAX) {
        st->status = 13; /* INTERNAL: cannot happen with our small messages */
        return;
    }
    st->body[0] = 0;
    st->body[1] = (uint8_t)(n >> 24);
    st->body[2] = (uint8_t)(n >> 16);
    st->body[3] = (uint8_t)(n >> 8);
    st->body[4] = (uint8_t)n;
    protobuf_c_message_pack(m, st->body + 5);
    st->bodylen = n + 5;
}

static void build_answer(struct stream *st)
{
    struct agent *a = st->c->a;
    const char *m = st->method;
    st->status = 0;
    if (strcmp(m, "/MonitorC/GetMetrics") == 0) {
        Metrics r = METRICS__INIT;
        r.instance_id = a->id;
        r.cpu_load = a->load;
        r.mem_used_pct = 30;
        r.load1 = a->load / 50.0;
        r.app_healthy = !a->unhealthy;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        r.sampled_at_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
        frame(st, &r.base);
    } else if (strcmp(m, "/MonitorC/GetStatus") == 0) {
        StatusResponse r = STATUS_RESPONSE__INIT;
        r.status = a->unhealthy ? "NOT OK" : "OK";
        frame(st, &r.base);
    } else if (strcmp(m, "/MonitorC/GetMemoryUsage") == 0) {
        MemoryUsageResponse r = MEMORY_USAGE_RESPONSE__INIT;
        r.usage = (int32_t)a->load;
        frame(st, &r.base);
    } else if (strcmp(m, "/MonitorC/Ping") == 0) {
        Pong r = PONG__INIT;
        if (st->reqlen >= 5 && st->reqlen <= sizeof(st->req)) {
            PingRequest *pr = ping_request__unpack(NULL, st->reqlen - 5, st->req + 5);
            if (pr) {
                r.seq = pr->seq;
                ping_request__free_unpacked(pr, NULL);
            }
        }
        r.instance_id = a->id;
        r.uptime_ms = now_ms() - start_ms;
        frame(st, &r.base);
    } else {
        st->status = 12; /* UNIMPLEMENTED */
    }
}

static ssize_t body_read(nghttp2_session *s, int32_t sid, uint8_t *buf, size_t len, uint32_t *flags,
                         nghttp2_data_source *src, void *ud)
{
    (void)ud;
    struct stream *st = src->ptr;
    size_t left = st->bodylen - st->sent;
    if (len > left)
        len = left;
    memcpy(buf, st->body + st->sent, len);
    st->sent += len;
    if (st->sent == st->bodylen) {
        *flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
        const nghttp2_nv tr[] = {{(uint8_t *)"grpc-status", (uint8_t *)"0", 11, 1, 0}};
        if (nghttp2_submit_trailer(s, sid, tr, 1))
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    return (ssize_t)len;
}

#define NV(n, v)                                                                                   \
    {                                                                                              \
        (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, sizeof(v) - 1, 0                            \
    }

static void answer(struct stream *st)
{
    nghttp2_session *s = st->c->s;
    st->answered = 1;
    if (st->status == 0) {
        const nghttp2_nv hd[] = {NV(":status", "200"), NV("content-type", "application/grpc")};
        nghttp2_data_provider dp = {.source.ptr = st, .read_callback = body_read};
        (void)nghttp2_submit_response(s, st->id, hd, 2, &dp);
    } else {
        /* trailers-only response */
        char code[8];
        snprintf(code, sizeof(code), "%d", st->status);
        nghttp2_nv hd[] = {NV(":status", "200"),
                           NV("content-type", "application/grpc"),
                           {(uint8_t *)"grpc-status", (uint8_t *)code, 11, strlen(code), 0}};
        (void)nghttp2_submit_response(s, st->id, hd, 3, NULL);
    }
}

/* --- nghttp2 callbacks ------------------------------------------------------------------------ */

static int cb_begin_headers(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
    if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    struct stream *st = calloc(1, sizeof(*st));
    if (!st)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    st->id = f->hd.stream_id;
    st->c = ud;
    return nghttp2_session_set_stream_user_data(s, st->id, st);
}

static int cb_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name, size_t nlen,
                     const uint8_t *value, size_t vlen, uint8_t flags, void *ud)
{
    (void)flags;
    (void)ud;
    if (f->hd.type != NGHTTP2_HEADERS)
        return 0;
    struct stream *st = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
    if (st && nlen == 5 && memcmp(name, ":path", 5) == 0) {
        size_t n = vlen < sizeof(st->method) - 1 ? vlen : sizeof(st->method) - 1;
        memcpy(st->method, value, n);
        st->method[n] = '\0';
    }
    return 0;
}

static int cb_data(nghttp2_session *s, uint8_t flags, int32_t sid, const uint8_t *data, size_t len,
                   void *ud)
{
    (void)flags;
    (void)ud;
    struct stream *st = nghttp2_session_get_stream_user_data(s, sid);
    if (st) {
        if (st->reqlen < sizeof(st->req)) {
            size_t n = sizeof(st->req) - st->reqlen;
            memcpy(st->req + st->reqlen, data, len < n ? len : n);
        }
        st->reqlen += len;
    }
    return 0;
}

static int cb_frame_recv(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
    (void)ud;
    if ((f->hd.type != NGHTTP2_HEADERS && f->hd.type != NGHTTP2_DATA) ||
        !(f->hd.flags & NGHTTP2_FLAG_END_STREAM))
        return 0;
    struct stream *st = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
    if (!st || st->answered)
        return 0;
    calls++;
    struct agent *a = st->c->a;
    if (a->mode == MODE_HANG) {
        st->answered = 1; /* never */
        return 0;
    }
    build_answer(st);
    if (a->mode == MODE_SLOW) {
        st->answered = 1;
        st->due_ms = now_ms() + a->slow_ms;
        st->next_due = due_list;
        due_list = st;
        return 0;
    }
    answer(st);
    if (a->mode == MODE_DROP)
        st->c->drop = 1;
    return 0;
}

static void due_remove(struct stream *st)
{
    for (struct stream **pp = &due_list; *pp; pp = &(*pp)->next_due)
        if (*pp == st) {
            *pp = st->next_due;
            return;
        }
}

static int cb_stream_close(nghttp2_session *s, int32_t sid, uint32_t code, void *ud)
{
    (void)code;
    (void)ud;
    struct stream *st = nghttp2_session_get_stream_user_data(s, sid);
    if (st) {
        if (st->due_ms)
            due_remove(st);
        free(st);
    }
    return 0;
}

static nghttp2_session_callbacks *cbs;
static nghttp2_option *opt;

/* --- connections ------------------------------------------------------------------------------ */

static void conn_close(struct conn *c)
{
    nghttp2_session_del(c->s); /* frees the streams through cb_stream_close */
    SSL_free(c->ssl);          /* no close_notify: the socket closes now */
    close(c->fd);
    *c->prev_in_agent = c->next_in_agent;
    if (c->next_in_agent)
        c->next_in_agent->prev_in_agent = c->prev_in_agent;
    nconns--;
    free(c->out);
    free(c);
}

/* The bytes out, plain or TLS: how many were taken (0: the socket is full), -1 when the
   connection is dead. With TLS, bytes not taken are offered again first (c->out keeps them),
   as SSL_write wants after a retry (the modes set in tls_setup allow a moved, longer buffer). */
static ssize_t conn_send(struct conn *c, const uint8_t *d, size_t len)
{
    if (!c->ssl) {
        ssize_t n = send(c->fd, d, len, MSG_NOSIGNAL);
        if (n < 0)
            return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
        return n;
    }
    if (!len)
        return 0;
    int n = SSL_write(c->ssl, d, len > INT32_MAX ? INT32_MAX : (int)len);
    if (n > 0)
        return n;
    int e = SSL_get_error(c->ssl, n);
    ERR_clear_error();
    return e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ ? 0 : -1;
}

/* The bytes in, plain or TLS: read, 0 at the end, -1 on error, -2 when nothing is there. */
static ssize_t conn_recv(struct conn *c, uint8_t *buf, size_t len)
{
    if (!c->ssl) {
        ssize_t n = recv(c->fd, buf, len, 0);
        if (n < 0)
            return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? -2 : -1;
        return n;
    }
    int n = SSL_read(c->ssl, buf, len > INT32_MAX ? INT32_MAX : (int)len);
    if (n > 0)
        return n;
    int e = SSL_get_error(c->ssl, n);
    ERR_clear_error();
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        return -2;
    return e == SSL_ERROR_ZERO_RETURN ? 0 : -1;
}

static void set_want_out(struct conn *c, int want)
{
    if (want == c->want_out)
        return;
    struct epoll_event ev = {.events = EPOLLIN | (want ? EPOLLOUT : 0), .data.ptr = c};
    (void)epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
    c->want_out = want;
}

/* Sends d, keeping what the socket does not take in c->out. -1 on a dead socket or no memory. */
static int out_write(struct conn *c, const uint8_t *d, size_t len)
{
    if (c->outlen == 0) {
        ssize_t n = conn_send(c, d, len);
        if (n < 0)
            return -1;
        if (n > 0) {
            d += n;
            len -= (size_t)n;
        }
        if (len == 0)
            return 0;
    }
    if (c->outlen + len > c->outcap) {
        size_t cap = (c->outlen + len) * 2;
        uint8_t *o = realloc(c->out, cap);
        if (!o)
            return -1;
        c->out = o;
        c->outcap = cap;
    }
    memcpy(c->out + c->outlen, d, len);
    c->outlen += len;
    return 0;
}

/* Sends what nghttp2 has queued in as few send() calls as it fits (one per poll, usually,
   instead of one per frame); closes the connection when it is over. Returns -1 if closed. */
static int conn_flush(struct conn *c)
{
    static uint8_t obuf[32768];
    size_t olen = 0;
    if (c->ssl && !SSL_is_init_finished(c->ssl))
        return 0; /* the handshake first (conn_event): nghttp2 keeps the bytes */
    if (c->outlen) {
        ssize_t n = conn_send(c, c->out, c->outlen);
        if (n < 0)
            goto dead;
        if (n > 0) {
            memmove(c->out, c->out + n, c->outlen - (size_t)n);
            c->outlen -= (size_t)n;
        }
    }
    while (c->outlen == 0) {
        const uint8_t *d;
        ssize_t k = nghttp2_session_mem_send(c->s, &d);
        if (k < 0)
            goto dead;
        if (k == 0)
            break;
        if (olen + (size_t)k > sizeof(obuf)) {
            if (out_write(c, obuf, olen))
                goto dead;
            olen = 0;
        }
        if ((size_t)k > sizeof(obuf)) {
            if (out_write(c, d, (size_t)k))
                goto dead;
        } else {
            memcpy(obuf + olen, d, (size_t)k);
            olen += (size_t)k;
        }
    }
    if (olen && out_write(c, obuf, olen))
        goto dead;
    if (!c->outlen && !nghttp2_session_want_read(c->s) && !nghttp2_session_want_write(c->s))
        goto dead;
    if (!c->outlen && c->drop && !nghttp2_session_want_write(c->s))
        goto dead; /* "drop": the answer is out, the connection goes */
    set_want_out(c, c->outlen > 0);
    return 0;
dead:
    conn_close(c);
    return -1;
}

/* accept failures (EMFILE above all) are said once a second, not once per event */
static void complain_accept(const struct agent *a, int e)
{
    static int64_t last;
    static long n;
    n++;
    int64_t now = now_ms();
    if (now - last < 1000)
        return;
    fprintf(stderr, "bench_swarm: accept on agent %s: %s (%ld failures)\n", a->id, strerror(e), n);
    last = now;
}

static void conn_accept(struct agent *a)
{
    for (;;) {
        int fd = accept4(a->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                complain_accept(a, errno);
            return;
        }
        int one = 1;
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        struct conn *c = calloc(1, sizeof(*c));
        if (!c || nghttp2_session_server_new2(&c->s, cbs, c, opt)) {
            fprintf(stderr, "bench_swarm: out of memory for a connection\n");
            free(c);
            close(fd);
            return;
        }
        c->fd = fd;
        c->a = a;
        if (tls_ctx) {
            c->ssl = SSL_new(tls_ctx);
            if (!c->ssl || SSL_set_fd(c->ssl, fd) != 1) {
                fprintf(stderr, "bench_swarm: out of memory for a TLS connection\n");
                SSL_free(c->ssl);
                nghttp2_session_del(c->s);
                free(c);
                close(fd);
                ERR_clear_error();
                return;
            }
            SSL_set_accept_state(c->ssl);
        }
        nghttp2_settings_entry set[] = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 100}};
        (void)nghttp2_submit_settings(c->s, NGHTTP2_FLAG_NONE, set, 1);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev)) {
            nghttp2_session_del(c->s);
            SSL_free(c->ssl);
            free(c);
            close(fd);
            return;
        }
        c->next_in_agent = a->conns;
        if (a->conns)
            a->conns->prev_in_agent = &c->next_in_agent;
        c->prev_in_agent = &a->conns;
        a->conns = c;
        nconns++;
        (void)conn_flush(c);
    }
}

/* TLS: moves the handshake on. 1 when it is done, 0 while it goes on, -1 when it failed (the
   connection is closed: a client of another CA, a plain-text client, ...). */
static int tls_handshake(struct conn *c)
{
    ERR_clear_error();
    int r = SSL_do_handshake(c->ssl);
    if (r == 1) {
        set_want_out(c, 0);
        return 1;
    }
    int e = SSL_get_error(c->ssl, r);
    ERR_clear_error();
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        set_want_out(c, e == SSL_ERROR_WANT_WRITE);
        return 0;
    }
    conn_close(c);
    return -1;
}

static void conn_event(struct conn *c, uint32_t events)
{
    static uint8_t buf[16384];
    if (c->ssl && !SSL_is_init_finished(c->ssl)) {
        if (tls_handshake(c) <= 0)
            return;
        events |= EPOLLIN; /* the client's first bytes may have come with its Finished */
    }
    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
        for (;;) {
            ssize_t n = conn_recv(c, buf, sizeof(buf));
            if (n == -2)
                break;
            if (n <= 0 || nghttp2_session_mem_recv(c->s, buf, (size_t)n) < 0) {
                conn_close(c);
                return;
            }
            /* a short read drained the socket; TLS reads until it says so (it may hold a
               whole record it read already) */
            if (!c->ssl && (size_t)n < sizeof(buf))
                break;
        }
    }
    (void)conn_flush(c);
}

/* --- commands --------------------------------------------------------------------------------- */

static uint32_t addr_of(uint32_t base, int k)
{
    uint32_t a = base;
    for (int i = 0; i < k; i++) {
        a++;
        while ((a & 0xff) == 0 || (a & 0xff) == 255)
            a++;
    }
    return a;
}

static int parse_range(const char *s, int *lo, int *hi)
{
    char *end;
    long a = strtol(s, &end, 10), b = a;
    if (end == s)
        return -1;
    if (*end == '-') {
        const char *p = end + 1;
        b = strtol(p, &end, 10);
        if (end == p)
            return -1;
    }
    if (a < 0 || b < a || b >= nagents)
        return -1;
    *lo = (int)a;
    *hi = (int)b;
    return 0;
}

static void command(char *line)
{
    char verb[16] = "", range[32] = "";
    double v = 0;
    line[strcspn(line, "\r\n")] = '\0';
    int n = sscanf(line, "%15s %31s %lf", verb, range, &v);
    if (n < 1)
        return;
    if (strcmp(verb, "stats") == 0) {
        printf("stats worker=%d calls=%ld conns=%ld\n", worker, calls, nconns);
        fflush(stdout);
        return;
    }
    if (strcmp(verb, "quit") == 0) {
        stop_flag = 1;
        return;
    }
    int lo, hi;
    if (n < 2 || parse_range(range, &lo, &hi)) {
        if (worker)
            return; /* worker 0 answers for all */
        printf("error bad range in \"%s\" (agents 0-%d)\n", line, nagents - 1);
        fflush(stdout);
        return;
    }
    int need_v = strcmp(verb, "slow") == 0 || strcmp(verb, "load") == 0;
    if (need_v && n < 3) {
        if (worker)
            return;
        printf("error \"%s\" needs a value\n", line);
        fflush(stdout);
        return;
    }
    for (int i = lo; i <= hi; i++) {
        struct agent *a = &agents[i];
        if (i % nworkers != worker)
            continue;
        if (strcmp(verb, "kill") == 0) {
            agent_kill(a);
            a->mode = MODE_DEAD;
        } else if (strcmp(verb, "hang") == 0) {
            a->mode = MODE_HANG;
        } else if (strcmp(verb, "drop") == 0) {
            a->mode = MODE_DROP;
        } else if (strcmp(verb, "slow") == 0) {
            a->mode = MODE_SLOW;
            a->slow_ms = (int)v;
        } else if (strcmp(verb, "load") == 0) {
            a->load = v;
        } else if (strcmp(verb, "unhealthy") == 0) {
            a->unhealthy = 1;
        } else if (strcmp(verb, "ok") == 0) {
            a->mode = MODE_OK;
            a->unhealthy = 0;
            if (a->lfd < 0) {
                int rc = agent_listen(a);
                if (rc)
                    fprintf(stderr, "bench_swarm: agent %s cannot listen again: %s\n", a->id,
                            strerror(-rc));
            }
        } else {
            if (worker)
                return;
            printf("error unknown command \"%s\"\n", verb);
            fflush(stdout);
            return;
        }
    }
    if (worker)
        return;
    printf("ok %s\n", line);
    fflush(stdout);
}

static void stdin_event(void)
{
    static char buf[4096];
    static size_t have;
    ssize_t n = read(cmdfd, buf + have, sizeof(buf) - 1 - have);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        (void)epoll_ctl(epfd, EPOLL_CTL_DEL, cmdfd, NULL); /* EOF: keep serving */
        return;
    }
    have += (size_t)n;
    buf[have] = '\0';
    char *p = buf, *nl;
    while ((nl = strchr(p, '\n'))) {
        *nl = '\0';
        command(p);
        p = nl + 1;
    }
    have = strlen(p);
    memmove(buf, p, have);
    if (have == sizeof(buf) - 1)
        have = 0; /* a line longer than the buffer: dropped */
}

/* ALPN: HTTP/2 or nothing (a gRPC client offers "h2"; the poller requires it) */
static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg)
{
    (void)ssl;
    (void)arg;
    static const unsigned char h2[] = {2, 'h', '2'};
    unsigned char *sel = NULL;
    if (SSL_select_next_proto(&sel, outlen, h2, sizeof(h2), in, inlen) != OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

/* --tls DIR: the agents' context (see the top of the file). 0, or -1 with a message. */
static int tls_setup(const char *dir)
{
    char cert[512], key[512], ca[512];
    snprintf(cert, sizeof(cert), "%s/srv.pem", dir);
    snprintf(key, sizeof(key), "%s/srv.key", dir);
    snprintf(ca, sizeof(ca), "%s/ca.pem", dir);
    tls_ctx = SSL_CTX_new(TLS_server_method());
    if (!tls_ctx || !SSL_CTX_set_min_proto_version(tls_ctx, TLS1_2_VERSION) ||
        SSL_CTX_use_certificate_chain_file(tls_ctx, cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(tls_ctx, key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(tls_ctx) != 1) {
        fprintf(stderr, "bench_swarm: --tls: cannot use %s and %s: %s\n", cert, key,
                ERR_reason_error_string(ERR_get_error()));
        return -1;
    }
    if (access(ca, R_OK) == 0) {
        if (SSL_CTX_load_verify_locations(tls_ctx, ca, NULL) != 1) {
            fprintf(stderr, "bench_swarm: --tls: cannot read %s: %s\n", ca,
                    ERR_reason_error_string(ERR_get_error()));
            return -1;
        }
        SSL_CTX_set_verify(tls_ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    }
    SSL_CTX_set_alpn_select_cb(tls_ctx, alpn_select, NULL);
    SSL_CTX_set_mode(tls_ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                                  SSL_MODE_RELEASE_BUFFERS);
    return 0;
}

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static void usage(void)
{
    fprintf(stderr, "usage: bench_swarm [-n N (1000)] [-b BASE (127.1.0.1)] [-p PORT (50051)] "
                    "[-l LISTFILE] [--id-prefix P (i-)] [--tls DIR]\n");
}

/* Serves this process's share of the agents until quit or a signal. readyfd: where to say
   "listening" (a byte), or -1 to print "ready N". Returns the exit status. */
static int serve(int readyfd)
{
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (!agents || epfd < 0 || nghttp2_session_callbacks_new(&cbs) || nghttp2_option_new(&opt)) {
        fprintf(stderr, "bench_swarm: out of memory\n");
        return 1;
    }
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, cb_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cbs, cb_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, cb_data);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, cb_frame_recv);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, cb_stream_close);
    /* gRPC clients send no HTTP/1 upgrade; skip nothing else */
    nghttp2_option_set_no_http_messaging(opt, 1);

    for (int i = worker; i < nagents; i += nworkers) {
        struct agent *a = &agents[i];
        int rc = agent_listen(a);
        if (rc) {
            char ip[INET_ADDRSTRLEN];
            struct in_addr ia = {.s_addr = htonl(a->addr)};
            inet_ntop(AF_INET, &ia, ip, sizeof(ip));
            fprintf(stderr, "bench_swarm: agent %d cannot listen on %s:%d: %s\n", i, ip, port,
                    strerror(-rc));
            return 1;
        }
    }
    (void)fcntl(cmdfd, F_SETFL, fcntl(cmdfd, F_GETFL) | O_NONBLOCK);
    struct epoll_event sev = {.events = EPOLLIN, .data.u64 = ((uint64_t)1 << 62)};
    (void)epoll_ctl(epfd, EPOLL_CTL_ADD, cmdfd, &sev); /* fails harmlessly on /dev/null */
    if (readyfd < 0) {
        printf("ready %d\n", nagents);
        fflush(stdout);
    } else if (write(readyfd, "r", 1) != 1) {
        return 1;
    } else {
        close(readyfd);
    }

    struct epoll_event evs[256];
    while (!stop_flag) {
        int stdin_ready = 0;
        int timeout = 1000;
        int64_t now = now_ms();
        for (struct stream *st = due_list; st; st = st->next_due) {
            int64_t w = st->due_ms - now;
            if (w < timeout)
                timeout = w < 0 ? 0 : (int)w;
        }
        int k = epoll_wait(epfd, evs, 256, timeout);
        if (k < 0 && errno != EINTR) {
            perror("bench_swarm: epoll_wait");
            return 1;
        }
        for (int i = 0; i < k; i++) {
            uint64_t u = evs[i].data.u64;
            if (u & ((uint64_t)1 << 63)) {
                struct agent *a = &agents[u & 0xffffffffu];
                if (a->lfd >= 0)
                    conn_accept(a);
            } else if (u == ((uint64_t)1 << 62)) {
                stdin_ready = 1; /* after the batch: a kill frees connections still in evs */
            } else {
                conn_event(evs[i].data.ptr, evs[i].events);
            }
        }
        if (stdin_ready)
            stdin_event();
        /* slow answers whose time has come: submit them all, then flush their connections
           (a flush may close a connection and free its streams) */
        now = now_ms();
        struct conn *dirty = NULL;
        struct stream **pp = &due_list;
        while (*pp) {
            struct stream *st = *pp;
            if (st->due_ms > now) {
                pp = &st->next_due;
                continue;
            }
            *pp = st->next_due;
            st->due_ms = 0;
            answer(st);
            if (!st->c->dirty) {
                st->c->dirty = 1;
                st->c->next_dirty = dirty;
                dirty = st->c;
            }
        }
        while (dirty) {
            struct conn *c = dirty;
            dirty = c->next_dirty;
            c->dirty = 0;
            (void)conn_flush(c);
        }
    }
    for (int i = worker; i < nagents; i += nworkers)
        agent_kill(&agents[i]);
    nghttp2_session_callbacks_del(cbs);
    nghttp2_option_del(opt);
    close(epfd);
    return 0;
}

static pid_t *pids;
static volatile sig_atomic_t child_gone;

static void on_child(int sig)
{
    (void)sig;
    child_gone = 1;
}

/* The parent of several workers: starts them, says "ready" when all listen, forwards stdin to
   every one of them, and ends them all when one ends or on SIGTERM/SIGINT. */
static int run_workers(void)
{
    int *cmd = calloc((size_t)nworkers, sizeof(*cmd));
    pids = calloc((size_t)nworkers, sizeof(*pids));
    int ready[2];
    if (!cmd || !pids || pipe(ready)) {
        fprintf(stderr, "bench_swarm: cannot start workers\n");
        return 1;
    }
    struct sigaction sa = {.sa_handler = on_child}; /* no SA_RESTART: read() must return */
    sigaction(SIGCHLD, &sa, NULL);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    for (int w = 0; w < nworkers; w++) {
        int pp[2];
        if (pipe(pp))
            return 1;
        pid_t pid = fork();
        if (pid < 0)
            return 1;
        if (pid == 0) {
            for (int k = 0; k < w; k++)
                close(cmd[k]);
            close(pp[1]);
            close(ready[0]);
            signal(SIGCHLD, SIG_DFL);
            worker = w;
            cmdfd = pp[0];
            int rc = serve(ready[1]);
            free(agents);
            _exit(rc);
        }
        close(pp[0]);
        cmd[w] = pp[1];
        pids[w] = pid;
    }
    close(ready[1]);
    int got = 0;
    char c;
    while (got < nworkers && !child_gone && !stop_flag) {
        ssize_t r = read(ready[0], &c, 1);
        if (r == 1)
            got++;
        else if (r == 0 || errno != EINTR)
            break;
    }
    close(ready[0]);
    int rc = 0;
    if (got == nworkers) {
        printf("ready %d\n", nagents);
        fflush(stdout);
        char buf[4096];
        int eof = 0;
        while (!child_gone && !stop_flag) {
            if (eof) {
                pause();
                continue;
            }
            ssize_t r = read(0, buf, sizeof(buf));
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0) {
                eof = 1; /* keep serving */
                continue;
            }
            for (int w = 0; w < nworkers; w++)
                if (write(cmd[w], buf, (size_t)r) != r)
                    fprintf(stderr, "bench_swarm: worker %d does not take commands\n", w);
        }
    } else {
        fprintf(stderr, "bench_swarm: a worker failed to start\n");
        rc = 1;
    }
    for (int w = 0; w < nworkers; w++) {
        kill(pids[w], SIGTERM);
        close(cmd[w]);
    }
    for (int w = 0; w < nworkers; w++)
        waitpid(pids[w], NULL, 0);
    free(cmd);
    free(pids);
    free(agents);
    return rc;
}

int main(int argc, char **argv)
{
    int n = 1000;
    const char *base = "127.1.0.1", *list = NULL, *idprefix = "i-", *tls_dir = NULL;
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) {
            usage();
            return 2;
        }
        if (strcmp(argv[i], "-n") == 0)
            n = (int)strtol(v, NULL, 10);
        else if (strcmp(argv[i], "-b") == 0)
            base = v;
        else if (strcmp(argv[i], "-p") == 0)
            port = (int)strtol(v, NULL, 10);
        else if (strcmp(argv[i], "-l") == 0)
            list = v;
        else if (strcmp(argv[i], "--id-prefix") == 0)
            idprefix = v;
        else if (strcmp(argv[i], "--tls") == 0)
            tls_dir = v;
        else {
            usage();
            return 2;
        }
        i++;
    }
    struct in_addr ba;
    if (n < 1 || n > 200000 || port < 1 || port > 65535 || inet_pton(AF_INET, base, &ba) != 1 ||
        (ntohl(ba.s_addr) >> 24) != 127) {
        fprintf(stderr, "bench_swarm: need 1..200000 agents, a port and a 127.x.y.z base\n");
        return 2;
    }
    if (strlen(idprefix) > 16) {
        fprintf(stderr, "bench_swarm: --id-prefix longer than 16 characters\n");
        return 2;
    }
    if (tls_dir && tls_setup(tls_dir))
        return 1;
    signal(SIGPIPE, SIG_IGN); /* OpenSSL's socket BIO write()s too */
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    /* one listening socket and (usually) one connection per agent: as many worker processes
       as the file descriptor limit asks for */
    struct rlimit rl;
    rlim_t need = (rlim_t)n * 2 + 64;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
        if (rl.rlim_cur < need) {
            rlim_t per = rl.rlim_cur > 256 ? rl.rlim_cur - 128 : 128;
            nworkers = (int)((need + per - 1) / per);
        }
    }
    start_ms = now_ms();
    nagents = n;
    agents = calloc((size_t)n, sizeof(*agents));
    FILE *lf = list ? fopen(list, "w") : NULL;
    if (!agents || (list && !lf)) {
        fprintf(stderr, "bench_swarm: cannot write %s: %s\n", list ? list : "memory",
                strerror(errno));
        return 1;
    }
    uint32_t b = ntohl(ba.s_addr);
    for (int i = 0; i < n; i++) {
        struct agent *a = &agents[i];
        a->lfd = -1;
        a->addr = addr_of(i ? agents[i - 1].addr : b, i ? 1 : 0);
        a->load = 42;
        snprintf(a->id, sizeof(a->id), "%s%06d", idprefix, i);
        if (lf) {
            char ip[INET_ADDRSTRLEN];
            struct in_addr ia = {.s_addr = htonl(a->addr)};
            inet_ntop(AF_INET, &ia, ip, sizeof(ip));
            fprintf(lf, "%s %s:%d\n", a->id, ip, port);
        }
    }
    if (lf && fclose(lf)) {
        fprintf(stderr, "bench_swarm: cannot write %s\n", list);
        return 1;
    }
    int rc;
    if (nworkers == 1) {
        cmdfd = 0;
        rc = serve(-1);
        free(agents);
    } else {
        rc = run_workers();
    }
    SSL_CTX_free(tls_ctx);
    return rc;
}
