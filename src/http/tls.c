/*
 * tls.c - HTTPS for the API and dashboard: the certificate libmicrohttpd
 * serves, re-readable without restarting the server.
 *
 * libmicrohttpd does TLS with GnuTLS. Instead of handing it the PEM text
 * once (MHD_OPTION_HTTPS_MEM_CERT, fixed for the daemon's life), it asks
 * GnuTLS's certificate callback at each handshake, which returns the current
 * generation of the material. A reload adds a generation; older ones stay
 * allocated until the server is freed, because GnuTLS does not tell when a
 * session it gave them to has finished with them (a reload is an operator's
 * SIGHUP: a handful per server life).
 *
 * The callback has no user pointer: it finds its server through the
 * connection's daemon and that daemon's listening socket, registered here
 * before the daemon starts (so the very first handshake finds it).
 * The files are read and checked through tls.h (OpenSSL), the same checks
 * and messages as the gRPC side.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <microhttpd.h>

#include "common/log.h"
#include "common/util.h"
#include "http/http_int.h"
#include "tls/tls.h"

#include "common/banned.h"

#define CHAIN_MAX 16 /* certificates in one chain */

struct gen {
    gnutls_pcert_st certs[CHAIN_MAX];
    unsigned ncerts;
    gnutls_privkey_t key;
    struct gen *older;
};

struct http_tls {
    struct tls_conf *conf;
    int listen_fd;
    struct gen *cur; /* under reg_mu */
    struct http_tls *next;
};

/* Every TLS server of the process, by listening socket. */
static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static struct http_tls *reg_head;

static void gen_free(struct gen *g)
{
    while (g) {
        struct gen *older = g->older;
        for (unsigned i = 0; i < g->ncerts; i++)
            gnutls_pcert_deinit(&g->certs[i]);
        if (g->key)
            gnutls_privkey_deinit(g->key);
        free(g);
        g = older;
    }
}

/* GnuTLS objects from the current material of t->conf. */
static struct gen *gen_new(struct http_tls *t, char *err, size_t errlen)
{
    struct tls_pem pem = TLS_PEM_INIT;
    struct gen *g = calloc(1, sizeof(*g));
    if (!g || tls_conf_pem(t->conf, &pem) != 0) {
        free(g);
        util_set_err(err, errlen, "https: out of memory");
        return NULL;
    }
    gnutls_datum_t cert = {(unsigned char *)pem.cert, (unsigned)strlen(pem.cert)};
    gnutls_datum_t key = {(unsigned char *)pem.key, (unsigned)strlen(pem.key)};
    g->ncerts = CHAIN_MAX;
    int rc = gnutls_pcert_list_import_x509_raw(g->certs, &g->ncerts, &cert, GNUTLS_X509_FMT_PEM, 0);
    if (rc < 0) {
        g->ncerts = 0;
        util_set_err(err, errlen, "https: certificate: %s", gnutls_strerror(rc));
        goto fail;
    }
    rc = gnutls_privkey_init(&g->key);
    if (rc >= 0)
        rc = gnutls_privkey_import_x509_raw(g->key, &key, GNUTLS_X509_FMT_PEM, NULL, 0);
    if (rc < 0) {
        util_set_err(err, errlen, "https: key: %s", gnutls_strerror(rc));
        goto fail;
    }
    tls_pem_release(&pem);
    return g;
fail:
    tls_pem_release(&pem);
    gen_free(g);
    return NULL;
}

/* GnuTLS asks which certificate to present (gnutls_certificate_retrieve_function2). */
static int retrieve(gnutls_session_t session, const gnutls_datum_t *req_ca_rdn, int nreqs,
                    const gnutls_pk_algorithm_t *pk_algos, int pk_algos_length,
                    gnutls_pcert_st **pcert, unsigned int *pcert_length, gnutls_privkey_t *privkey)
{
    (void)req_ca_rdn, (void)nreqs, (void)pk_algos, (void)pk_algos_length;
    struct MHD_Connection *conn = gnutls_session_get_ptr(session);
    const union MHD_ConnectionInfo *ci =
        conn ? MHD_get_connection_info(conn, MHD_CONNECTION_INFO_DAEMON) : NULL;
    const union MHD_DaemonInfo *di =
        ci ? MHD_get_daemon_info(ci->daemon, MHD_DAEMON_INFO_LISTEN_FD) : NULL;
    if (!di)
        return -1;
    int rc = -1;
    pthread_mutex_lock(&reg_mu);
    for (struct http_tls *t = reg_head; t; t = t->next) {
        if (t->listen_fd == (int)di->listen_fd && t->cur) {
            *pcert = t->cur->certs;
            *pcert_length = t->cur->ncerts;
            *privkey = t->cur->key;
            rc = 0;
            break;
        }
    }
    pthread_mutex_unlock(&reg_mu);
    return rc;
}

int http__tls_new(const char *cert_file, const char *key_file, int listen_fd, struct http_tls **out,
                  char *err, size_t errlen)
{
    if (!MHD_is_feature_supported(MHD_FEATURE_TLS) ||
        !MHD_is_feature_supported(MHD_FEATURE_HTTPS_CERT_CALLBACK)) {
        util_set_err(err, errlen, "https: this libmicrohttpd is built without TLS support");
        return -1;
    }
    struct http_tls *t = calloc(1, sizeof(*t));
    if (!t) {
        util_set_err(err, errlen, "https: out of memory");
        return -1;
    }
    struct tls_files f = {.cert_file = cert_file, .key_file = key_file};
    if (tls_conf_new(&f, &t->conf, err, errlen) != 0) {
        free(t);
        return -1;
    }
    t->cur = gen_new(t, err, errlen);
    if (!t->cur) {
        tls_conf_free(t->conf);
        free(t);
        return -1;
    }
    t->listen_fd = listen_fd;
    pthread_mutex_lock(&reg_mu);
    t->next = reg_head;
    reg_head = t;
    pthread_mutex_unlock(&reg_mu);
    *out = t;
    return 0;
}

void http__tls_option(struct MHD_OptionItem *item)
{
    item->option = MHD_OPTION_HTTPS_CERT_CALLBACK;
    item->value = 0;
    item->ptr_value = (void *)retrieve; /* a function pointer, as MHD documents */
}

int http__tls_reload(struct http_tls *t, char *err, size_t errlen)
{
    if (tls_conf_reload(t->conf, err, errlen) != 0)
        return -1;
    struct gen *g = gen_new(t, err, errlen);
    if (!g)
        return -1;
    pthread_mutex_lock(&reg_mu);
    g->older = t->cur;
    t->cur = g;
    pthread_mutex_unlock(&reg_mu);
    return 0;
}

void http__tls_free(struct http_tls *t)
{
    if (!t)
        return;
    pthread_mutex_lock(&reg_mu);
    for (struct http_tls **pp = &reg_head; *pp; pp = &(*pp)->next) {
        if (*pp == t) {
            *pp = t->next;
            break;
        }
    }
    pthread_mutex_unlock(&reg_mu);
    gen_free(t->cur);
    tls_conf_free(t->conf);
    free(t);
}

int http_reload_tls(struct http_server *s, char *err, size_t errlen)
{
    if (!s || !s->tls)
        return 0;
    if (http__tls_reload(s->tls, err, errlen) != 0)
        return -1;
    log_info("http: HTTPS certificate reloaded");
    return 0;
}
