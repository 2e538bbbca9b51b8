/*
 * Unit tests for tls (src/tls/) and rpc's TLS, with certificates made by the
 * openssl command in a private temporary directory:
 *  - loopback address classification;
 *  - tls_conf_new's refusals (no material, half a pair, key of another
 *    certificate, a file that is not PEM, a missing file), each naming the file;
 *  - reload: a bad file keeps the previous material and generation, a good one
 *    moves the generation and the PEM text;
 *  - a real gRPC server over TLS (rpc_server_bind_tls, mutual TLS) answering an
 *    rpc client over TLS, refusing a plaintext client and a client without a
 *    certificate, and presenting a reloaded certificate on the next connection;
 *  - the OpenSSL helpers an HTTP/2 client uses (tls_client_ctx_new,
 *    tls_client_ssl_setup): a handshake with that server negotiates ALPN "h2"
 *    and verifies the IP SAN; a wrong CA or a wrong name fails with a reason
 *    from tls_handshake_error().
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "rpc/rpc.h"
#include "support/grpc_server.h"
#include "support/test_certs.h"
#include "tls/tls.h"
#include "common/banned.h"

static char dir[256];
static char path_buf[16][300];
static int npaths;

static const char *P(const char *name)
{
    char *p = path_buf[npaths++ % 16];
    snprintf(p, sizeof(path_buf[0]), "%s/%s", dir, name);
    return p;
}

static int sh(const char *cmd)
{
    return test_sh(dir, cmd);
}

/* CA "ca" and "rogue"; certificates srv, srv2 (ca), cli (ca), rogue_cli (rogue). */
static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/asgd-tls-unit-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    static const struct test_cert certs[] = {
        {"srv", "ca"}, {"srv2", "ca"}, {"cli", "ca"}, {"rogue_cli", "rogue"}};
    return test_certs_make(dir, certs, sizeof(certs) / sizeof(certs[0]));
}

static int teardown(void **state)
{
    (void)state;
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void test_loopback(void **state)
{
    (void)state;
    const char *yes[] = {"127.0.0.1:80", "127.9.8.7:1", "localhost:5", "LOCALHOST:5",
                         "[::1]:80",     "::1",         "127.0.0.2",   "[::ffff:127.0.0.1]:9"};
    const char *no[] = {"0.0.0.0:80", "[::]:80", "10.0.0.1:80", "example.com:80", "",
                        "[::1:80",    ":80",     "128.0.0.1:1", "[2001:db8::1]:5"};
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
        assert_int_equal(tls_address_is_loopback(yes[i]), 1);
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
        assert_int_equal(tls_address_is_loopback(no[i]), 0);
    assert_int_equal(tls_address_is_loopback(NULL), 0);
}

static void expect_refused(struct tls_files f, const char *want)
{
    struct tls_conf *t = NULL;
    char err[512] = "";
    assert_int_equal(tls_conf_new(&f, &t, err, sizeof(err)), -1);
    assert_null(t);
    if (!strstr(err, want))
        fail_msg("error \"%s\" does not mention \"%s\"", err, want);
}

static void test_refusals(void **state)
{
    (void)state;
    expect_refused((struct tls_files){0}, "a CA file or a certificate");
    expect_refused((struct tls_files){.cert_file = P("srv.pem")}, "go together");
    expect_refused((struct tls_files){.cert_file = P("srv.pem"), .key_file = P("cli.key")},
                   "does not match");
    expect_refused((struct tls_files){.cert_file = P("srv.pem"), .key_file = P("srv.pem")},
                   "srv.pem");
    expect_refused((struct tls_files){.ca_file = P("srv.key")}, "holds no PEM certificate");
    expect_refused((struct tls_files){.ca_file = P("missing.pem")}, "missing.pem");
    struct tls_conf *t = (struct tls_conf *)1;
    char err[64];
    assert_int_equal(tls_conf_new_optional(&(struct tls_files){0}, &t, err, sizeof(err)), 0);
    assert_null(t);
}

static void test_reload(void **state)
{
    (void)state;
    assert_int_equal(sh("cp srv.pem live.pem && cp srv.key live.key"), 0);
    struct tls_files f = {
        .ca_file = P("ca.pem"), .cert_file = P("live.pem"), .key_file = P("live.key")};
    struct tls_conf *t = NULL;
    char err[512];
    assert_int_equal(tls_conf_new(&f, &t, err, sizeof(err)), 0);
    assert_int_equal(tls_conf_generation(t), 1);
    assert_true(tls_conf_has_ca(t) && tls_conf_has_cert(t));
    struct tls_pem a = TLS_PEM_INIT, b = TLS_PEM_INIT;
    assert_int_equal(tls_conf_pem(t, &a), 0);

    assert_int_equal(sh("echo garbage > live.key"), 0);
    assert_int_equal(tls_conf_reload(t, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "live.key"));
    assert_int_equal(tls_conf_generation(t), 1);
    assert_int_equal(tls_conf_pem(t, &b), 0);
    assert_string_equal(a.key, b.key);
    tls_pem_release(&b);

    assert_int_equal(sh("cp srv2.pem live.pem && cp srv2.key live.key"), 0);
    assert_int_equal(tls_conf_reload(t, err, sizeof(err)), 0);
    assert_int_equal(tls_conf_generation(t), 2);
    assert_int_equal(tls_conf_pem(t, &b), 0);
    assert_string_not_equal(a.cert, b.cert);
    assert_int_equal(b.generation, 2);
    tls_pem_release(&a);
    tls_pem_release(&b);
    assert_null(a.key);
    tls_conf_free(t);
}

/* ---- a real gRPC server over mutual TLS ------------------------------------------------- */

static struct tls_conf *conf(const char *ca, const char *cert, const char *key)
{
    struct tls_files f = {.ca_file = ca ? P(ca) : NULL,
                          .cert_file = cert ? P(cert) : NULL,
                          .key_file = key ? P(key) : NULL};
    struct tls_conf *t = NULL;
    char err[512];
    if (tls_conf_new(&f, &t, err, sizeof(err)) != 0)
        fail_msg("%s", err);
    return t;
}

static grpc_status_code call(const char *target, struct tls_conf *t, char *details, size_t n)
{
    struct rpc_result res = RPC_RESULT_INIT;
    const uint8_t msg[] = "hello";
    int rc = rpc_call_sync_tls(target, t, "/T/Echo", msg, 5, 3000, &res);
    assert_int_equal(rc, 0);
    grpc_status_code st = res.status;
    if (st == GRPC_STATUS_OK)
        assert_memory_equal(res.data, msg, 5);
    snprintf(details, n, "%s", res.details);
    rpc_result_release(&res);
    return st;
}

/* One OpenSSL handshake with 127.0.0.1:port from tls_client_ctx_new(t). Returns 1 on
 * success (ALPN h2 checked), 0 with the reason in why. */
static int handshake(int port, struct tls_conf *t, const char *host, char *why, size_t n,
                     char *peer_cn, size_t cnlen)
{
    char err[512];
    SSL_CTX *ctx = tls_client_ctx_new(t, NULL, err, sizeof(err));
    if (!ctx)
        fail_msg("%s", err);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    SSL *ssl = SSL_new(ctx);
    assert_int_equal(tls_client_ssl_setup(ssl, t, host, err, sizeof(err)), 0);
    SSL_set_fd(ssl, fd);
    int ok = SSL_connect(ssl) == 1;
    if (ok) {
        const unsigned char *proto = NULL;
        unsigned len = 0;
        SSL_get0_alpn_selected(ssl, &proto, &len);
        assert_int_equal(len, 2);
        assert_memory_equal(proto, "h2", 2);
        X509 *x = SSL_get1_peer_certificate(ssl);
        assert_non_null(x);
        X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, peer_cn, (int)cnlen);
        X509_free(x);
        SSL_shutdown(ssl);
    } else {
        tls_handshake_error(ssl, why, n);
    }
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    close(fd);
    return ok;
}

static void test_grpc_and_openssl_client(void **state)
{
    (void)state;
    assert_int_equal(sh("cp srv.pem live.pem && cp srv.key live.key"), 0);
    struct tls_conf *srv_tls = conf("ca.pem", "live.pem", "live.key");
    static const struct test_method echo[] = {{"/T/Echo", test_echo, NULL}, {NULL}};
    struct test_server_opts so = {.tls = srv_tls, .methods = echo};
    int port = 0;
    char target[64], details[256], why[256], cn[64];
    struct rpc_server *srv = test_server_start(&so, &port, target, sizeof(target));
    assert_non_null(srv);

    /* gRPC client with the CA and a client certificate: served */
    struct tls_conf *cli = conf("ca.pem", "cli.pem", "cli.key");
    assert_int_equal(call(target, cli, details, sizeof(details)), GRPC_STATUS_OK);
    /* without a client certificate, in plain text, trusting another CA: refused */
    struct tls_conf *nocert = conf("ca.pem", NULL, NULL);
    struct tls_conf *rogue = conf("rogue.pem", "rogue_cli.pem", "rogue_cli.key");
    assert_int_equal(call(target, nocert, details, sizeof(details)), GRPC_STATUS_UNAVAILABLE);
    assert_int_equal(call(target, NULL, details, sizeof(details)), GRPC_STATUS_UNAVAILABLE);
    assert_int_equal(call(target, rogue, details, sizeof(details)), GRPC_STATUS_UNAVAILABLE);
    assert_non_null(strstr(details, "TLS handshake failed: certificate verify failed"));

    /* the OpenSSL helpers: ALPN h2, IP SAN verified, client certificate presented */
    assert_int_equal(handshake(port, cli, "127.0.0.1", why, sizeof(why), cn, sizeof(cn)), 1);
    assert_string_equal(cn, "srv");
    assert_int_equal(handshake(port, rogue, "127.0.0.1", why, sizeof(why), cn, sizeof(cn)), 0);
    /* gRPC sends its CA along (OpenSSL auto-chains from its client-verification store) */
    if (!strstr(why, "local issuer") &&
        !strstr(why, "self-signed certificate in certificate chain"))
        fail_msg("wrong CA: \"%s\"", why);
    assert_int_equal(handshake(port, cli, "127.0.0.2", why, sizeof(why), cn, sizeof(cn)), 0);
    if (!strstr(why, "IP address mismatch"))
        fail_msg("wrong address: \"%s\"", why);
    assert_int_equal(handshake(port, cli, "[::1]", why, sizeof(why), cn, sizeof(cn)), 0);
    assert_int_equal(handshake(port, cli, "localhost", why, sizeof(why), cn, sizeof(cn)), 1);

    /* reload: the next connection presents the new certificate */
    assert_int_equal(sh("cp srv2.pem live.pem && cp srv2.key live.key"), 0);
    char err[512];
    assert_int_equal(tls_conf_reload(srv_tls, err, sizeof(err)), 0);
    assert_int_equal(handshake(port, cli, "127.0.0.1", why, sizeof(why), cn, sizeof(cn)), 1);
    assert_string_equal(cn, "srv2");
    assert_int_equal(call(target, cli, details, sizeof(details)), GRPC_STATUS_OK);

    rpc_server_shutdown(srv, 0);
    rpc_server_free(srv);
    tls_conf_free(cli);
    tls_conf_free(nocert);
    tls_conf_free(rogue);
    tls_conf_free(srv_tls);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loopback),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_reload),
        cmocka_unit_test(test_grpc_and_openssl_client),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
