/*
 * grpc_server.h - the gRPC core server the unit tests call (test_h2, test_tls,
 * test_rpc): a real rpc_server (src/rpc) listening on a loopback port with the
 * methods a test names, in plain text or TLS, and the echo handler they share.
 *
 * Ownership: the caller frees the server with rpc_server_free() (which shuts
 * it down first); the methods' ctx pointers and the TLS configuration stay the
 * caller's and must outlive the server.
 * Threads: the server serves on its own thread (rpc_server_start); handlers run
 * there, one at a time.
 * Errors: test_server_start() returns NULL with the reason on stderr (a test
 * asserts on it, or expects it: a port already taken, an address the host has
 * not got).
 */
#ifndef ASGD_TEST_GRPC_SERVER_H
#define ASGD_TEST_GRPC_SERVER_H

#include <stddef.h>

#include "rpc/rpc.h"

/* One method: its full path ("/T/Echo"), handler and the handler's ctx. */
struct test_method {
    const char *path;
    rpc_handler_fn fn;
    void *ctx;
};

struct test_server_opts {
    const char *addr;                  /* host:port to bind; NULL: "127.0.0.1:0" */
    size_t max_message;                /* 0: rpc's default */
    struct tls_conf *tls;              /* NULL: plain text, else rpc_server_bind_tls */
    const struct test_method *methods; /* ended by an entry whose path is NULL */
};

/*
 * Binds and starts a server as o says. *port (port may be NULL) is the port
 * bound; target (may be NULL; n bytes) gets "host:port", the address to call.
 * NULL when the server could not be made, bound or started (the reason on
 * stderr).
 */
struct rpc_server *test_server_start(const struct test_server_opts *o, int *port, char *target,
                                     size_t n);

/*
 * Answers the request's bytes. ctx: an int counting the calls, or NULL. A
 * request without data or peer (rpc.h says never) is answered INTERNAL.
 */
grpc_status_code test_echo(void *ctx, const struct rpc_request *req, struct rpc_reply *reply);

#endif
