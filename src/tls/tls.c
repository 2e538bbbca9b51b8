/*
 * tls.c - TLS material read from PEM files, re-read on demand, and OpenSSL
 * client contexts built from it.
 *
 * The material is kept as PEM text, not as parsed OpenSSL objects: gRPC core
 * takes PEM strings, and an OpenSSL context is cheap to rebuild from them.
 * The text is parsed here once per (re)load only to refuse a bad file at
 * the moment the operator changes it, with a message naming that file,
 * instead of at the next handshake with a message naming nothing.
 */
#include "tls/tls.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "common/log.h"
#include "common/util.h"
#include "common/banned.h"

struct tls_conf {
    char *ca_file, *cert_file, *key_file, *server_name; /* fixed at creation */
    pthread_mutex_t mu;
    struct tls_pem cur; /* under mu */
};

static char *dup_or_null(const char *s, int *oom)
{
    if (!s)
        return NULL;
    char *p = strdup(s);
    if (!p)
        *oom = 1;
    return p;
}

/* The first OpenSSL error of this thread as text (queue cleared), or fallback. */
static const char *ossl_reason(char *buf, size_t size, const char *fallback)
{
    unsigned long e = ERR_get_error();
    if (e == 0) {
        snprintf(buf, size, "%s", fallback);
    } else {
        const char *r = ERR_reason_error_string(e);
        if (r)
            snprintf(buf, size, "%s", r);
        else
            ERR_error_string_n(e, buf, size);
    }
    ERR_clear_error();
    return buf;
}

/* Every certificate of a PEM text, in order. Returns the count (0: none or error). */
static STACK_OF(X509) * read_certs(const char *pem, int *count)
{
    STACK_OF(X509) *sk = sk_X509_new_null();
    *count = 0;
    BIO *b = BIO_new_mem_buf(pem, -1);
    if (!sk || !b) {
        BIO_free(b);
        sk_X509_free(sk);
        return NULL;
    }
    X509 *x;
    while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
        if (!sk_X509_push(sk, x)) {
            X509_free(x);
            break;
        }
        (*count)++;
    }
    ERR_clear_error(); /* the read that ended the loop queued "no start line" */
    BIO_free(b);
    return sk;
}

static EVP_PKEY *read_key(const char *pem)
{
    BIO *b = BIO_new_mem_buf(pem, -1);
    if (!b)
        return NULL;
    EVP_PKEY *k = PEM_read_bio_PrivateKey(b, NULL, NULL, (void *)"");
    BIO_free(b);
    return k;
}

/* "2026-12-01 10:00:00 UTC" of an ASN1 time. */
static void asn1_time_str(const ASN1_TIME *t, char *buf, size_t size)
{
    struct tm tm;
    if (ASN1_TIME_to_tm(t, &tm) == 1)
        strftime(buf, size, "%Y-%m-%d %H:%M:%S UTC", &tm);
    else
        snprintf(buf, size, "an unreadable date");
}

/* Warns when the certificate is not valid now (it is still loaded: a reload can fix it). */
static void warn_validity(X509 *x, const char *path)
{
    char when[64];
    if (X509_cmp_current_time(X509_get0_notAfter(x)) < 0) {
        asn1_time_str(X509_get0_notAfter(x), when, sizeof(when));
        log_warn("tls: certificate \"%s\" expired on %s: peers will refuse it", path, when);
    } else if (X509_cmp_current_time(X509_get0_notBefore(x)) > 0) {
        asn1_time_str(X509_get0_notBefore(x), when, sizeof(when));
        log_warn("tls: certificate \"%s\" is not valid before %s: peers will refuse it", path,
                 when);
    }
}

/* Reads the files of t into *out and checks them. */
static int load(const struct tls_conf *t, struct tls_pem *out, char *err, size_t errlen)
{
    char why[256];
    size_t len;
    int rc = -1, n = 0;
    STACK_OF(X509) *chain = NULL;
    EVP_PKEY *key = NULL;
    if (t->ca_file) {
        if (util_read_file(t->ca_file, TLS_PEM_MAX, &out->ca, &len, err, errlen) != 0)
            goto out;
        STACK_OF(X509) *ca = read_certs(out->ca, &n);
        sk_X509_pop_free(ca, X509_free);
        if (n == 0) {
            util_set_err(err, errlen, "tls: CA file \"%s\" holds no PEM certificate", t->ca_file);
            goto out;
        }
    }
    if (t->cert_file) {
        util_warn_exposed_secret(t->key_file, "TLS private key");
        if (util_read_file(t->cert_file, TLS_PEM_MAX, &out->cert, &len, err, errlen) != 0 ||
            util_read_file(t->key_file, TLS_PEM_MAX, &out->key, &len, err, errlen) != 0)
            goto out;
        chain = read_certs(out->cert, &n);
        if (n == 0) {
            util_set_err(err, errlen, "tls: certificate file \"%s\" holds no PEM certificate",
                         t->cert_file);
            goto out;
        }
        key = read_key(out->key);
        if (!key) {
            util_set_err(err, errlen, "tls: key file \"%s\": %s", t->key_file,
                         ossl_reason(why, sizeof(why), "no PEM private key"));
            goto out;
        }
        X509 *leaf = sk_X509_value(chain, 0);
        if (X509_check_private_key(leaf, key) != 1) {
            ERR_clear_error();
            util_set_err(err, errlen, "tls: key file \"%s\" does not match certificate \"%s\"",
                         t->key_file, t->cert_file);
            goto out;
        }
        warn_validity(leaf, t->cert_file);
    }
    rc = 0;
out:
    EVP_PKEY_free(key);
    sk_X509_pop_free(chain, X509_free);
    if (rc != 0)
        tls_pem_release(out);
    return rc;
}

int tls_conf_new(const struct tls_files *f, struct tls_conf **out, char *err, size_t errlen)
{
    if (!f || !out || (!f->ca_file && !f->cert_file)) {
        util_set_err(err, errlen, "tls: a CA file or a certificate is needed");
        return -1;
    }
    if (!f->cert_file != !f->key_file) {
        util_set_err(err, errlen, "tls: a certificate and its key go together (got only the %s)",
                     f->cert_file ? "certificate" : "key");
        return -1;
    }
    struct tls_conf *t = calloc(1, sizeof(*t));
    if (!t) {
        util_set_err(err, errlen, "tls: out of memory");
        return -1;
    }
    int oom = 0;
    t->ca_file = dup_or_null(f->ca_file, &oom);
    t->cert_file = dup_or_null(f->cert_file, &oom);
    t->key_file = dup_or_null(f->key_file, &oom);
    t->server_name = dup_or_null(f->server_name, &oom);
    pthread_mutex_init(&t->mu, NULL);
    if (oom) {
        util_set_err(err, errlen, "tls: out of memory");
        tls_conf_free(t);
        return -1;
    }
    if (load(t, &t->cur, err, errlen) != 0) {
        tls_conf_free(t);
        return -1;
    }
    t->cur.generation = 1;
    *out = t;
    return 0;
}

int tls_conf_new_optional(const struct tls_files *f, struct tls_conf **out, char *err,
                          size_t errlen)
{
    *out = NULL;
    if (!f->ca_file && !f->cert_file && !f->key_file && !f->server_name)
        return 0;
    return tls_conf_new(f, out, err, errlen);
}

void tls_conf_free(struct tls_conf *t)
{
    if (!t)
        return;
    tls_pem_release(&t->cur);
    pthread_mutex_destroy(&t->mu);
    free(t->ca_file);
    free(t->cert_file);
    free(t->key_file);
    free(t->server_name);
    free(t);
}

int tls_conf_reload(struct tls_conf *t, char *err, size_t errlen)
{
    if (!t) {
        util_set_err(err, errlen, "tls: nothing to reload");
        return -1;
    }
    struct tls_pem fresh = TLS_PEM_INIT;
    if (load(t, &fresh, err, errlen) != 0)
        return -1;
    pthread_mutex_lock(&t->mu);
    fresh.generation = t->cur.generation + 1;
    struct tls_pem old = t->cur;
    t->cur = fresh;
    pthread_mutex_unlock(&t->mu);
    tls_pem_release(&old);
    return 0;
}

uint64_t tls_conf_generation(const struct tls_conf *t)
{
    if (!t)
        return 0;
    pthread_mutex_t *mu = (pthread_mutex_t *)&t->mu;
    pthread_mutex_lock(mu);
    uint64_t g = t->cur.generation;
    pthread_mutex_unlock(mu);
    return g;
}

int tls_conf_has_ca(const struct tls_conf *t)
{
    return t && t->ca_file != NULL;
}

int tls_conf_has_cert(const struct tls_conf *t)
{
    return t && t->cert_file != NULL;
}

const char *tls_conf_server_name(const struct tls_conf *t)
{
    return t ? t->server_name : NULL;
}

int tls_conf_pem(const struct tls_conf *t, struct tls_pem *out)
{
    if (!t || !out)
        return -1;
    pthread_mutex_t *mu = (pthread_mutex_t *)&t->mu;
    int oom = 0;
    pthread_mutex_lock(mu);
    out->ca = dup_or_null(t->cur.ca, &oom);
    out->cert = dup_or_null(t->cur.cert, &oom);
    out->key = dup_or_null(t->cur.key, &oom);
    out->generation = t->cur.generation;
    pthread_mutex_unlock(mu);
    if (oom) {
        tls_pem_release(out);
        return -1;
    }
    return 0;
}

void tls_pem_release(struct tls_pem *p)
{
    if (!p)
        return;
    if (p->key)
        explicit_bzero(p->key, strlen(p->key));
    free(p->ca);
    free(p->cert);
    free(p->key);
    p->ca = p->cert = p->key = NULL;
    p->generation = 0;
}

/* ---- OpenSSL client ------------------------------------------------------------------------ */

void *tls_client_ctx_new(const struct tls_conf *t, uint64_t *generation, char *err, size_t errlen)
{
    char why[256];
    struct tls_pem pem = TLS_PEM_INIT;
    STACK_OF(X509) *certs = NULL;
    EVP_PKEY *key = NULL;
    SSL_CTX *ctx = NULL;
    int n = 0;
    if (!t || tls_conf_pem(t, &pem) != 0) {
        util_set_err(err, errlen, "tls: out of memory");
        return NULL;
    }
    ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        util_set_err(err, errlen, "tls: cannot create a context: %s",
                     ossl_reason(why, sizeof(why), "out of memory"));
        goto fail;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    static const unsigned char alpn[] = {2, 'h', '2'};
    if (SSL_CTX_set_alpn_protos(ctx, alpn, sizeof(alpn)) != 0) { /* 0 is success here */
        util_set_err(err, errlen, "tls: cannot offer ALPN h2");
        goto fail;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    if (pem.ca) {
        certs = read_certs(pem.ca, &n);
        X509_STORE *store = SSL_CTX_get_cert_store(ctx);
        for (int i = 0; i < n; i++)
            X509_STORE_add_cert(store, sk_X509_value(certs, i)); /* takes its own reference */
        ERR_clear_error(); /* a duplicate certificate in the bundle is not an error */
        sk_X509_pop_free(certs, X509_free);
        certs = NULL;
    } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
        util_set_err(err, errlen, "tls: cannot load the system's CA certificates: %s",
                     ossl_reason(why, sizeof(why), "unknown error"));
        goto fail;
    }
    if (pem.cert) {
        certs = read_certs(pem.cert, &n);
        key = read_key(pem.key);
        if (n == 0 || !key || SSL_CTX_use_certificate(ctx, sk_X509_value(certs, 0)) != 1) {
            util_set_err(err, errlen, "tls: cannot use certificate \"%s\": %s", t->cert_file,
                         ossl_reason(why, sizeof(why), "unreadable"));
            goto fail;
        }
        for (int i = 1; i < n; i++) {
            if (SSL_CTX_add1_chain_cert(ctx, sk_X509_value(certs, i)) != 1) {
                util_set_err(err, errlen, "tls: cannot use the chain of \"%s\": %s", t->cert_file,
                             ossl_reason(why, sizeof(why), "unknown error"));
                goto fail;
            }
        }
        if (SSL_CTX_use_PrivateKey(ctx, key) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
            util_set_err(err, errlen, "tls: key \"%s\" does not match certificate \"%s\"",
                         t->key_file, t->cert_file);
            ERR_clear_error();
            goto fail;
        }
    }
    if (generation)
        *generation = pem.generation;
    EVP_PKEY_free(key);
    sk_X509_pop_free(certs, X509_free);
    tls_pem_release(&pem);
    return ctx;
fail:
    EVP_PKEY_free(key);
    sk_X509_pop_free(certs, X509_free);
    SSL_CTX_free(ctx);
    tls_pem_release(&pem);
    return NULL;
}

/* 1 when s is a literal IPv4 or IPv6 address. */
static int is_ip(const char *s)
{
    unsigned char buf[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

int tls_client_ssl_setup(void *ssl, const struct tls_conf *t, const char *host, char *err,
                         size_t errlen)
{
    SSL *s = ssl;
    const char *want = t && t->server_name ? t->server_name : host;
    if (!s || !want || !want[0]) {
        util_set_err(err, errlen, "tls: no host to verify");
        return -1;
    }
    char name[256];
    size_t n = strlen(want);
    if (want[0] == '[' && n > 2 && want[n - 1] == ']') { /* "[::1]" */
        want++;
        n -= 2;
    }
    if (n >= sizeof(name)) {
        util_set_err(err, errlen, "tls: host name too long");
        return -1;
    }
    memcpy(name, want, n);
    name[n] = '\0';
    int ok;
    if (is_ip(name)) {
        /* no SNI for an address (RFC 6066); the certificate needs an IP SAN */
        ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(s), name) == 1;
    } else {
        ok = SSL_set_tlsext_host_name(s, name) == 1 && SSL_set1_host(s, name) == 1;
    }
    if (!ok) {
        char why[256];
        util_set_err(err, errlen, "tls: cannot verify \"%s\": %s", name,
                     ossl_reason(why, sizeof(why), "unknown error"));
        return -1;
    }
    return 0;
}

const char *tls_handshake_error(void *ssl, char *buf, size_t size)
{
    long v = ssl ? SSL_get_verify_result((SSL *)ssl) : X509_V_OK;
    if (v != X509_V_OK) {
        snprintf(buf, size, "%s", X509_verify_cert_error_string(v));
        ERR_clear_error();
        return buf;
    }
    return ossl_reason(buf, size, "handshake failed");
}

/* ---- addresses ----------------------------------------------------------------------------- */

int tls_address_is_loopback(const char *hostport)
{
    if (!hostport || !hostport[0])
        return 0;
    char host[256];
    const char *start = hostport, *end;
    if (hostport[0] == '[') {
        start = hostport + 1;
        end = strchr(start, ']');
        if (!end)
            return 0;
    } else {
        const char *first = strchr(hostport, ':');
        const char *last = strrchr(hostport, ':');
        /* one colon: host:port; several: a bare IPv6 address */
        end = (first && first == last) ? first : hostport + strlen(hostport);
    }
    size_t n = (size_t)(end - start);
    if (n == 0 || n >= sizeof(host))
        return 0;
    memcpy(host, start, n);
    host[n] = '\0';
    if (strcasecmp(host, "localhost") == 0)
        return 1;
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, host, &a6) == 1)
        return IN6_IS_ADDR_LOOPBACK(&a6) || (IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127);
    return 0;
}
