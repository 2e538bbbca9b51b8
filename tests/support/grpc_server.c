/*
 * grpc_server.c - the unit tests' gRPC core server (grpc_server.h). It exists
 * so that the tests of the poller's client (h2), of TLS and of rpc itself start
 * their servers one way; what each test checks stays in the test.
 */
#include "support/grpc_server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/banned.h"

grpc_status_code test_echo(void *ctx, const struct rpc_request *req, struct rpc_reply *reply)
{
    int *count = ctx;
    if (count)
        (*count)++;
    if (req->data == NULL || req->peer == NULL) {
        snprintf(reply->details, sizeof(reply->details), "echo: a request without %s",
                 req->data == NULL ? "data" : "peer");
        return GRPC_STATUS_INTERNAL;
    }
    reply->data = malloc(req->len ? req->len : 1);
    if (!reply->data)
        return GRPC_STATUS_RESOURCE_EXHAUSTED;
    memcpy(reply->data, req->data, req->len);
    reply->len = req->len;
    return GRPC_STATUS_OK;
}

struct rpc_server *test_server_start(const struct test_server_opts *o, int *port, char *target,
                                     size_t n)
{
    const char *addr = o->addr ? o->addr : "127.0.0.1:0";
    struct rpc_server_opts so = RPC_SERVER_OPTS_INIT;
    so.max_message = o->max_message;
    struct rpc_server *srv = rpc_server_new(&so);
    if (srv == NULL) {
        fprintf(stderr, "test server %s: out of memory\n", addr);
        return NULL;
    }
    int rc = 0;
    for (const struct test_method *m = o->methods; rc == 0 && m && m->path; m++)
        if ((rc = rpc_server_add_method(srv, m->path, m->fn, m->ctx)) != 0)
            fprintf(stderr, "test server %s: method \"%s\" refused (%d)\n", addr, m->path, rc);
    int bound = 0;
    if (rc == 0) {
        rc = o->tls ? rpc_server_bind_tls(srv, addr, o->tls, &bound)
                    : rpc_server_bind(srv, addr, &bound);
        if (rc != 0)
            fprintf(stderr, "test server: cannot bind %s: %s\n", addr, rpc_server_errmsg(srv));
    }
    if (rc == 0 && (rc = rpc_server_start(srv)) != 0)
        fprintf(stderr, "test server %s: cannot start (%d)\n", addr, rc);
    if (rc != 0) {
        rpc_server_free(srv);
        return NULL;
    }
    if (port)
        *port = bound;
    if (target && n) {
        /* the host part as given ("[::1]", "localhost"), the port as bound */
        const char *colon = strrchr(addr, ':');
        int host_len = colon ? (int)(colon - addr) : (int)strlen(addr);
        snprintf(target, n, "%.*s:%d", host_len, addr, bound);
    }
    return srv;
}
