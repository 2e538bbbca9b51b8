/*
 * tls.h - the TLS material of one side of a connection (CA bundle, own
 * certificate chain and key, read from PEM files), re-readable at run time,
 * and OpenSSL helpers for an HTTP/2 client that verifies its peer.
 *
 * Who uses it: asgd's [monitor] (MonitorS's server certificate, the poller's
 * CA bundle and client certificate) and monitorc's --tls-* flags hand a
 * tls_conf to rpc.h (gRPC core credentials are built from its PEM text);
 * an OpenSSL-based client (the poller's nghttp2 client) builds its SSL_CTX
 * with tls_client_ctx_new() and prepares each connection with
 * tls_client_ssl_setup().
 *
 * Reload: tls_conf_reload() re-reads the three files (SIGHUP). A file that
 * cannot be read or parsed, or a key that does not match the certificate,
 * leaves the previous material in place and says why; on success the
 * generation counter moves, which users compare with the one they built
 * from (tls_conf_generation()) to rebuild their contexts. Connections
 * already established keep the material they were set up with.
 *
 * Checks at load: every file parses as PEM of the right kind, the key
 * matches the certificate, and a certificate outside its validity period is
 * logged as a warning (peers will refuse it) but still loaded, so that a
 * reload can replace it without a restart. A key file readable by others is
 * warned about.
 *
 * Threads: every function is thread-safe; a tls_conf is shared by the
 * threads of one process and freed by its owner after its last user.
 * Errors: 0 or -1 with an operator message naming the file in err
 * (NUL-terminated, truncated to errlen).
 */
#ifndef ASGD_TLS_H
#define ASGD_TLS_H

#include <stddef.h>
#include <stdint.h>

/* The most bytes one PEM file may hold (a CA bundle of a few hundred certificates). */
#define TLS_PEM_MAX (1024 * 1024)

/* Where the material comes from; every string is borrowed by tls_conf_new (copied). */
struct tls_files {
    const char *ca_file;     /* PEM bundle the PEER is verified against; NULL: the system's
                                default roots (a client) / peers are not asked for a
                                certificate (a server) */
    const char *cert_file;   /* own certificate chain (leaf first); NULL: none (a client
                                without client certificate). Goes with key_file. */
    const char *key_file;    /* own private key (PEM, unencrypted) */
    const char *server_name; /* a client: the name checked in the server's certificate
                                instead of the host it dials (several agents sharing one
                                certificate); NULL: the dialled host or IP address */
};

struct tls_conf;

/*
 * Reads and checks the files of f. At least one of ca_file and cert_file is
 * required, and cert_file and key_file go together. On success *out owns
 * the new object (tls_conf_free()). On failure returns -1 with err naming
 * the file and what is wrong, *out untouched.
 */
int tls_conf_new(const struct tls_files *f, struct tls_conf **out, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* tls_conf_new when f names any file or the server name, else 0 with *out = NULL (plain
 * text: nothing configured). */
int tls_conf_new_optional(const struct tls_files *f, struct tls_conf **out, char *err,
                          size_t errlen) __attribute__((warn_unused_result));

/* Frees t (the PEM key text is wiped first). NULL is a no-op. */
void tls_conf_free(struct tls_conf *t);

/*
 * Re-reads the files named at creation. 0 when the new material is in
 * place (the generation moves even if the files did not change), -1 with
 * err when it is not (the old material stays).
 */
int tls_conf_reload(struct tls_conf *t, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* 1 at creation, +1 on each successful reload. */
uint64_t tls_conf_generation(const struct tls_conf *t);

/* 1 when a CA file / a certificate was configured (fixed at creation). */
int tls_conf_has_ca(const struct tls_conf *t);
int tls_conf_has_cert(const struct tls_conf *t);

/* The server-name override, or NULL (owned by t, fixed at creation). */
const char *tls_conf_server_name(const struct tls_conf *t);

/* A copy of the current material. Strings are NUL-terminated PEM text or NULL when not
 * configured; the caller releases it with tls_pem_release() (wipes the key). */
struct tls_pem {
    char *ca, *cert, *key;
    uint64_t generation;
};
#define TLS_PEM_INIT                                                                               \
    {                                                                                              \
        NULL, NULL, NULL, 0                                                                        \
    }
/* Fills *out (which must be TLS_PEM_INIT or released). 0, or -1 when out of memory. */
int tls_conf_pem(const struct tls_conf *t, struct tls_pem *out) __attribute__((warn_unused_result));
void tls_pem_release(struct tls_pem *p);

/* ------------------------------------------------------------------------ */
/* OpenSSL client helpers                                                   */
/* ------------------------------------------------------------------------ */

/*
 * A new OpenSSL client context (SSL_CTX *, returned as void * so that users
 * of this header need not include OpenSSL) from t's current material: TLS
 * 1.2 or later, ALPN "h2" offered, the peer's chain verified
 * (SSL_VERIFY_PEER) against t's CA bundle (the system's default paths when
 * t has none), t's certificate and key presented when the server asks
 * (mutual TLS). The caller frees it with SSL_CTX_free() and builds a new one
 * when tls_conf_generation() moved past *generation (set here; may be NULL).
 * NULL with err on failure.
 */
void *tls_client_ctx_new(const struct tls_conf *t, uint64_t *generation, char *err, size_t errlen);

/*
 * Prepares one client connection (ssl is an SSL * of a context from
 * tls_client_ctx_new, before SSL_connect) to the dialled host: SNI is the
 * host (or the server-name override) unless it is an IP address, and the
 * peer certificate must match the override, else the host name (DNS SAN)
 * or the IP address (IP SAN). host may carry brackets ("[::1]"). 0, or -1
 * with err.
 */
int tls_client_ssl_setup(void *ssl, const struct tls_conf *t, const char *host, char *err,
                         size_t errlen);

/*
 * Why the handshake on ssl failed, for a log line: the peer verification
 * result when it failed ("certificate has expired", "unable to get local
 * issuer certificate", "hostname mismatch"), else the first OpenSSL error
 * queued on this thread (the queue is then cleared). Returns buf.
 */
const char *tls_handshake_error(void *ssl, char *buf, size_t size);

/* ------------------------------------------------------------------------ */
/* Addresses                                                                */
/* ------------------------------------------------------------------------ */

/*
 * 1 when the host of "host:port" (or a bare host) is a loopback address:
 * 127.0.0.0/8, ::1, "localhost". Anything else (other addresses, names,
 * wildcards 0.0.0.0 / [::]) is 0: a token sent there may cross a network.
 */
int tls_address_is_loopback(const char *hostport);

#endif
