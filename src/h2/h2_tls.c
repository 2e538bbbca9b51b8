/*
 * h2_tls.c - the TLS transport of the HTTP/2 client (see h2_int.h).
 *
 * One SSL per connection, on the client's current SSL_CTX (tls_client_ctx_new: ALPN "h2",
 * the agent's chain verified, our certificate for mutual TLS). The handshake runs between
 * the TCP connect and ST_OPEN (ST_HANDSHAKE), driven by the epoll events: SSL_connect
 * asking to read keeps input interest only, asking to write adds output interest. Modes:
 * partial writes and a moving write buffer, because h2__out_write() retries what SSL_write did
 * not take from the connection's pending buffer; released buffers, because a connection
 * is idle between polls (OpenSSL keeps ~34 KiB of record buffers otherwise).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "h2/h2_int.h"
#include "tls/tls.h"

#include "common/banned.h"

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

BIO_METHOD *h2__bio_method_new(void)
{
    int idx = BIO_get_new_index();
    BIO_METHOD *m = idx < 0 ? NULL : BIO_meth_new(idx | BIO_TYPE_SOURCE_SINK, "asgd-h2-socket");
    if (m && (!BIO_meth_set_write(m, bio_write) || !BIO_meth_set_read(m, bio_read) ||
              !BIO_meth_set_ctrl(m, bio_ctrl))) {
        BIO_meth_free(m);
        return NULL;
    }
    return m;
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
void h2__tls_reason(struct h2_conn *c, const char *what, char *why, size_t n)
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

ssize_t h2__tls_send(struct h2_conn *c, const uint8_t *d, size_t len)
{
    if (!len)
        return 0;
    int n = SSL_write(c->ssl, d, len > INT32_MAX ? INT32_MAX : (int)len);
    if (n > 0)
        return n;
    int e = SSL_get_error(c->ssl, n);
    if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ)
        return 0; /* retried with the same bytes first (h2__out_write's pending buffer) */
    ERR_clear_error();
    return -1;
}

ssize_t h2__tls_recv(struct h2_conn *c, uint8_t *buf, size_t len)
{
    int n = SSL_read(c->ssl, buf, len > INT32_MAX ? INT32_MAX : (int)len);
    if (n > 0)
        return n;
    switch (SSL_get_error(c->ssl, n)) {
    case SSL_ERROR_WANT_READ:
        return -2;
    case SSL_ERROR_WANT_WRITE:
        set_out(c, 1); /* rare (a key update): h2__conn_event() reads again on EPOLLOUT */
        return -2;
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    default:
        return -1;
    }
}

/* Moves the handshake on. The connection is open, still handshaking, or down (fd -1). */
void h2__tls_step(struct h2_conn *c)
{
    ERR_clear_error();
    int r = SSL_connect(c->ssl);
    if (r == 1) {
        const unsigned char *proto = NULL;
        unsigned plen = 0;
        SSL_get0_alpn_selected(c->ssl, &proto, &plen);
        if (plen != 2 || memcmp(proto, "h2", 2) != 0) {
            h2__conn_down(c, GRPC_STATUS_UNAVAILABLE,
                          "TLS: the agent did not select HTTP/2 by ALPN (not a gRPC server?)", 1);
            return;
        }
        h2__conn_open(c);
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
        h2__tls_reason(c, "TLS handshake failed", why, sizeof(why));
        h2__conn_down(c, GRPC_STATUS_UNAVAILABLE, why, 1);
        return;
    }
    }
}

/* The TCP connection is up: starts the handshake. */
void h2__tls_start(struct h2_conn *c)
{
    struct h2_client *cl = c->cl;
    char err[160], why[DETAILS_MAX];
    err[0] = '\0';
    SSL_CTX *ctx = tls_ctx(cl, err, sizeof(err));
    if (!ctx) {
        snprintf(why, sizeof(why), "TLS: %.100s", err);
        h2__conn_down(c, GRPC_STATUS_UNAVAILABLE, why, 1);
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
        h2__conn_down(c, GRPC_STATUS_UNAVAILABLE, why, 1);
        return;
    }
    c->state = ST_HANDSHAKE;
    h2__tls_step(c);
}
