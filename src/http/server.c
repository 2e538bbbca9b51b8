/*
 * server.c - the libmicrohttpd daemon: request life cycle, auth, routing.
 *
 * MHD calls on_request() several times per request: once with the headers
 * (we decide here what can be decided without the body: unknown route, wrong
 * method, missing token, declared body too large, and answer at once without
 * reading the body), then once per body chunk (accumulated up to max_body;
 * beyond it the rest is discarded and the request fails with 413), then a
 * last time with no data, when the handler runs. The daemon has a single
 * polling thread, so handlers run one at a time and may use the server's
 * store handle without further locking. The route table is in routes.c.
 *
 * Hostile clients (slowloris): MHD's own idle timeout resets on every byte,
 * so a client trickling one header byte every few seconds would hold its
 * connection forever, and enough of them fill the connection table. Limits:
 *   - at most HTTP_MAX_CONNS connections, HTTP_MAX_PER_IP per client address
 *     (one address cannot take the table: others keep being served);
 *   - idle timeout HTTP_IDLE_TIMEOUT_S (MHD);
 *   - a deadline per phase enforced by a reaper thread: the request headers
 *     must be complete HTTP_HEADER_TIMEOUT_MS after the connection opened (or
 *     after the previous request on a kept-alive connection), the body and
 *     the answer HTTP_REQUEST_TIMEOUT_MS after the headers. The reaper only
 *     shutdown()s the socket (it never closes an fd MHD owns): MHD sees the
 *     end of the stream and releases the connection in its own thread.
 *   - a declared body over max_body is answered 413 before it is read; a
 *     chunked one is answered 413 at its end if it stops within a slack past
 *     the cap, else the connection is closed as soon as it passes the slack
 *     (MHD 0.9.75 cannot send an answer while it is still receiving a body).
 * Threads: the reaper's list is shared with the MHD thread under guard->mu.
 */
#include "http/http.h"

#include <curl/curl.h>
#include <errno.h>
#include <microhttpd.h>
#include <pthread.h>
#include <time.h>
#include <netdb.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "common/log.h"
#include "http/assets.h"
#include "http/http_int.h"
#include "tls/tls.h"

#include "common/banned.h"

#define HTTP_MAX_CONNS          1000
#define HTTP_MAX_PER_IP         64
#define HTTP_IDLE_TIMEOUT_S     10
#define HTTP_HEADER_TIMEOUT_MS  10000
#define HTTP_REQUEST_TIMEOUT_MS 30000
#define HTTP_REAP_PERIOD_MS     250
#define HTTP_LISTEN_BACKLOG     511
#define HTTP_BODY_SLACK         (256 * 1024) /* read past the cap before cutting a body off */

/* One open connection, as the reaper sees it. */
struct conn_slot {
    int fd;
    int64_t deadline_ms; /* monotonic: shut it down after this */
    int reaped;
    struct conn_slot *prev, *next;
};

struct http_guard {
    pthread_mutex_t mu;
    pthread_cond_t cv;     /* on CLOCK_MONOTONIC; signals stop */
    struct conn_slot head; /* circular list sentinel */
    int stop, started;
    pthread_t thread;
    unsigned long reaped_total;
};

/* Per-request state kept in MHD's con_cls between calls. */
struct req_state {
    struct http_buf body;
    int too_big;
    const struct http_route *route;
    char seg0[HTTP_PARAM_MAX], seg1[HTTP_PARAM_MAX]; /* the route's '*' segments */
    size_t discarded;                                /* body bytes dropped since too_big */
};

/* ---- replies ---------------------------------------------------------------------------- */

void http__json(struct http_reply *rep, int status, json_t *j)
{
    char *s = j ? json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(12)) : NULL;
    json_decref(j);
    if (!s) {
        http__error(rep, 500, "internal error", "out of memory while encoding the answer");
        return;
    }
    rep->status = status;
    rep->ctype = "application/json";
    rep->body = s;
    rep->len = strlen(s);
    rep->body_static = 0;
}

void http__error(struct http_reply *rep, int status, const char *error, const char *fmt, ...)
{
    char detail[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    json_t *j = json_pack("{s:s, s:s}", "error", error, "detail", detail);
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (rep->body && !rep->body_static)
        free(rep->body);
    rep->status = status;
    rep->ctype = "application/json";
    if (s) {
        rep->body = s;
        rep->len = strlen(s);
        rep->body_static = 0;
    } else {
        static const char oom[] = "{\"error\":\"internal error\",\"detail\":\"out of memory\"}";
        rep->status = 500;
        rep->body = (char *)oom;
        rep->len = sizeof oom - 1;
        rep->body_static = 1;
    }
}

const char *http__query(const struct http_req *r, const char *name)
{
    return MHD_lookup_connection_value((struct MHD_Connection *)r->conn, MHD_GET_ARGUMENT_KIND,
                                       name);
}

const char *http__header(const struct http_req *r, const char *name)
{
    return MHD_lookup_connection_value((struct MHD_Connection *)r->conn, MHD_HEADER_KIND, name);
}

static enum MHD_Result send_reply(struct MHD_Connection *conn, struct http_reply *rep)
{
    struct MHD_Response *resp;
    char *link = rep->link;
    rep->link = NULL;
    if (rep->body_static)
        resp = MHD_create_response_from_buffer(rep->len, rep->body, MHD_RESPMEM_PERSISTENT);
    else
        resp = MHD_create_response_from_buffer(rep->len, rep->body, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        if (!rep->body_static)
            free(rep->body);
        rep->body = NULL;
        free(link);
        return MHD_NO;
    }
    rep->body = NULL; /* the response owns it now */
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                            rep->ctype ? rep->ctype : "application/json");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL,
                            rep->cache ? rep->cache : "no-store");
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    if (rep->ctype && strncmp(rep->ctype, "text/html", 9) == 0) {
        MHD_add_response_header(resp, "Content-Security-Policy",
                                "default-src 'self'; img-src 'self' data:; "
                                "frame-ancestors 'none'");
        MHD_add_response_header(resp, "X-Frame-Options", "DENY");
    }
    if (rep->status == 401)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"asgd\"");
    if (rep->allow)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, rep->allow);
    if (link) {
        MHD_add_response_header(resp, "Link", link);
        free(link);
    }
    enum MHD_Result ret = MHD_queue_response(conn, (unsigned)rep->status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result send_error(struct MHD_Connection *conn, int status, const char *error,
                                  const char *detail, const char *allow)
{
    struct http_reply rep = {0};
    http__error(&rep, status, error, "%s", detail);
    rep.allow = allow;
    return send_reply(conn, &rep);
}

/* ---- routing ---------------------------------------------------------------------------- */

static int is_mutation(const char *method)
{
    return strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0;
}

static const struct http_asset *find_asset(const char *path)
{
    if (strcmp(path, "/") == 0)
        path = "/index.html";
    for (size_t i = 0; i < http_assets_count; i++)
        if (strcmp(http_assets[i].path, path) == 0)
            return &http_assets[i];
    return NULL;
}

/*
 * Resolves method+path: an API route (routes.c) or a dashboard file. 0 with
 * *route or *asset set, 404 when nothing has that path, 405 when the path
 * exists for other methods (*allow set).
 */
static int resolve(const char *method, const char *path, struct req_state *st,
                   const struct http_asset **asset, const char **allow)
{
    int rc = http__resolve(method, path, &st->route, st->seg0, st->seg1, allow);
    if (rc || st->route)
        return rc;
    const struct http_asset *a = find_asset(path);
    if (!a)
        return 404;
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        *allow = "GET, HEAD";
        return 405;
    }
    *asset = a;
    return 0;
}

/* 0 if the request carries the right bearer token, else 401 detail in why. */
static int check_auth(struct http_server *s, struct MHD_Connection *conn, const char **why)
{
    if (!s->token || !*s->token) {
        *why = "this asgd has no API token configured ([api] token_file): the API is read-only";
        return -1;
    }
    const char *h = NULL;
    size_t hlen = 0;
    if (MHD_lookup_connection_value_n(conn, MHD_HEADER_KIND, "Authorization",
                                      sizeof "Authorization" - 1, &h, &hlen) != MHD_YES)
        h = NULL;
    if (!h) {
        *why = "send \"Authorization: Bearer <token>\" (the token from [api] token_file)";
        return -1;
    }
    if (strncasecmp(h, "Bearer ", 7) != 0) {
        *why = "the Authorization header must be \"Bearer <token>\"";
        return -1;
    }
    /* MHD (0.9.75) hands out C strings cut at the first NUL, so "Bearer TOKEN\0junk"
     * looks like "Bearer TOKEN" and value_n reports the cut length too. MHD parses
     * the header block in place in its read buffer and ends each line by writing
     * NULs over its CR and LF: after a clean value come two NULs (the next line
     * follows at once only for a bare-LF line end, which we refuse as well). A
     * byte other than NUL right after the terminator means the value went on
     * past an embedded NUL: refuse it, the comparison must cover all of it. */
    if (strlen(h) != hlen || h[hlen + 1] != '\0') {
        *why = "token rejected";
        return -1;
    }
    h += 7;
    while (*h == ' ')
        h++;
    if (!http_token_equal(h, s->token)) {
        *why = "token rejected";
        return -1;
    }
    return 0;
}

/* ---- slow-client guard ------------------------------------------------------------------ */

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct conn_slot *slot_of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

/* Moves the connection's deadline (headers done, request done). */
static void slot_deadline(struct http_server *s, struct MHD_Connection *conn, int64_t ms)
{
    struct conn_slot *slot = slot_of(conn);
    if (!slot || !s->guard)
        return;
    pthread_mutex_lock(&s->guard->mu);
    slot->deadline_ms = mono_ms() + ms;
    pthread_mutex_unlock(&s->guard->mu);
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    struct http_server *s = cls;
    struct http_guard *g = s->guard;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        struct conn_slot *slot = calloc(1, sizeof *slot);
        if (!slot || !ci) {
            free(slot); /* unguarded: MHD's idle timeout still applies */
            *socket_context = NULL;
            return;
        }
        slot->fd = ci->connect_fd;
        slot->deadline_ms = mono_ms() + HTTP_HEADER_TIMEOUT_MS;
        pthread_mutex_lock(&g->mu);
        slot->next = g->head.next;
        slot->prev = &g->head;
        g->head.next->prev = slot;
        g->head.next = slot;
        pthread_mutex_unlock(&g->mu);
        *socket_context = slot;
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
        /* MHD closes the fd after this returns: from here on the reaper must not touch it */
        struct conn_slot *slot = *socket_context;
        if (!slot)
            return;
        pthread_mutex_lock(&g->mu);
        slot->prev->next = slot->next;
        slot->next->prev = slot->prev;
        pthread_mutex_unlock(&g->mu);
        free(slot);
        *socket_context = NULL;
    }
}

static void *reaper_main(void *arg)
{
    struct http_guard *g = arg;
    pthread_mutex_lock(&g->mu);
    while (!g->stop) {
        int64_t now = mono_ms();
        unsigned n = 0;
        for (struct conn_slot *c = g->head.next; c != &g->head; c = c->next) {
            if (!c->reaped && now >= c->deadline_ms) {
                shutdown(c->fd, SHUT_RDWR);
                c->reaped = 1;
                n++;
            }
        }
        if (n) {
            g->reaped_total += n;
            log_debug("http: closed %u connection%s too slow to send a request (%lu so far)", n,
                      n == 1 ? "" : "s", g->reaped_total);
        }
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += HTTP_REAP_PERIOD_MS * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&g->cv, &g->mu, &ts);
    }
    pthread_mutex_unlock(&g->mu);
    return NULL;
}

static struct http_guard *guard_new(void)
{
    struct http_guard *g = calloc(1, sizeof *g);
    if (!g)
        return NULL;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, &ca);
    pthread_condattr_destroy(&ca);
    g->head.next = g->head.prev = &g->head;
    if (pthread_create(&g->thread, NULL, reaper_main, g) != 0) {
        pthread_cond_destroy(&g->cv);
        pthread_mutex_destroy(&g->mu);
        free(g);
        return NULL;
    }
    g->started = 1;
    return g;
}

/* Stops the reaper. Call after MHD_stop_daemon (every slot has been freed by then). */
static void guard_free(struct http_guard *g)
{
    if (!g)
        return;
    pthread_mutex_lock(&g->mu);
    g->stop = 1;
    pthread_cond_signal(&g->cv);
    pthread_mutex_unlock(&g->mu);
    if (g->started)
        pthread_join(g->thread, NULL);
    pthread_cond_destroy(&g->cv);
    pthread_mutex_destroy(&g->mu);
    free(g);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    struct http_server *s = cls;
    struct req_state *st = *con_cls;

    if (!st) {
        /* First call: headers only. Decide everything that needs no body. */
        st = calloc(1, sizeof *st);
        if (!st)
            return MHD_NO;
        *con_cls = st;
        slot_deadline(s, conn, HTTP_REQUEST_TIMEOUT_MS);
        const struct http_asset *asset = NULL;
        const char *allow = NULL;
        int rc = resolve(method, url, st, &asset, &allow);
        if (rc == 404)
            return send_error(conn, 404, "not found", "no such resource; the API is under /api/v1/",
                              NULL);
        if (rc == 405)
            return send_error(conn, 405, "method not allowed",
                              "this resource does not accept that method", allow);
        if (asset) {
            struct http_reply rep = {.status = 200,
                                     .ctype = asset->ctype,
                                     .body = (char *)asset->data,
                                     .len = asset->len,
                                     .body_static = 1,
                                     .cache = "no-cache"};
            return send_reply(conn, &rep);
        }
        if (is_mutation(method)) {
            const char *why = NULL;
            if (check_auth(s, conn, &why)) {
                log_info("http: refused %s %s: unauthorized", method, url);
                st->route = NULL; /* answered */
                return send_error(conn, 401, "unauthorized", why, NULL);
            }
            const char *cl =
                MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
            if (cl) {
                char *end = NULL;
                unsigned long long n = strtoull(cl, &end, 10);
                if (end != cl && n > s->max_body) {
                    char d[128];
                    snprintf(d, sizeof d, "the request body is larger than the limit of %zu bytes",
                             s->max_body);
                    st->route = NULL; /* answered */
                    return send_error(conn, 413, "payload too large", d, NULL);
                }
            }
        }
        return MHD_YES;
    }

    if (!st->route) {
        /* answered on the first call (error or asset): MHD normally does not call again, but
         * if it does, swallow the body and keep the queued answer */
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (!st->too_big &&
            (st->body.len + n > s->max_body || http__buf_append(&st->body, upload_data, n))) {
            st->too_big = 1;
            st->discarded = st->body.len;
            http__buf_release(&st->body);
        }
        if (st->too_big) {
            /* MHD 0.9.75 takes no answer while a body is being received: the 413 can
             * only go out once the body ended. A client that overshoots the cap a
             * little gets it; one that keeps sending (a chunked body declares no
             * length up front) is cut off as soon as it passes the slack, instead
             * of making us read, or wait for, the rest. */
            st->discarded += n;
            size_t slack = s->max_body > HTTP_BODY_SLACK ? s->max_body : HTTP_BODY_SLACK;
            if (st->discarded > s->max_body + slack) {
                log_info("http: closed %s %s: body over %zu bytes and still coming", method, url,
                         s->max_body);
                return MHD_NO;
            }
        }
        return MHD_YES;
    }

    if (st->too_big) {
        char d[128];
        snprintf(d, sizeof d, "the request body is larger than the limit of %zu bytes",
                 s->max_body);
        return send_error(conn, 413, "payload too large", d, NULL);
    }

    struct http_req r = {
        .srv = s,
        .conn = conn,
        .method = method,
        .path = url,
        .body = st->body.p ? st->body.p : "",
        .body_len = st->body.len,
    };
    struct http_reply rep = {.status = 500};
    http__dispatch(st->route, st->seg0, st->seg1, &r, &rep);
    if (!rep.body)
        http__error(&rep, 500, "internal error", "the handler produced no answer");
    if (rep.status >= 500 && rep.status != 503)
        log_warn("http: %s %s answered %d", method, url, rep.status);
    else
        log_debug("http: %s %s answered %d", method, url, rep.status);
    (void)version;
    return send_reply(conn, &rep);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct http_server *s = cls;
    struct req_state *st = *con_cls;
    if (st) {
        http__buf_release(&st->body);
        free(st);
        *con_cls = NULL;
    }
    /* a kept-alive connection must send its next request's headers in time too */
    slot_deadline(s, conn, HTTP_HEADER_TIMEOUT_MS);
    (void)toe;
}

static void mhd_logger(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    log_debug("http: microhttpd: %s", msg);
}

/* ---- life cycle ------------------------------------------------------------------------- */

/* Splits "host:port" / "[v6]:port" / ":port" into host and port strings. */
static int split_listen(const char *listen, char *host, size_t hlen, char *port, size_t plen)
{
    const char *colon;
    if (listen[0] == '[') {
        const char *close = strchr(listen, ']');
        if (!close || close[1] != ':')
            return -1;
        size_t n = (size_t)(close - listen - 1);
        if (n == 0 || n >= hlen)
            return -1;
        memcpy(host, listen + 1, n);
        host[n] = '\0';
        colon = close + 1;
    } else {
        colon = strrchr(listen, ':');
        if (!colon)
            return -1;
        size_t n = (size_t)(colon - listen);
        if (n >= hlen)
            return -1;
        memcpy(host, listen, n);
        host[n] = '\0';
        if (n == 0)
            snprintf(host, hlen, "0.0.0.0");
    }
    const char *p = colon + 1;
    if (!*p || strlen(p) >= plen || strspn(p, "0123456789") != strlen(p))
        return -1;
    long v = strtol(p, NULL, 10);
    if (v < 0 || v > 65535)
        return -1;
    snprintf(port, plen, "%s", p);
    return 0;
}

static void server_free_fields(struct http_server *s)
{
    if (s->daemon) {
        MHD_stop_daemon(s->daemon);
        s->daemon = NULL;
    }
    guard_free(s->guard);
    s->guard = NULL;
    http__tls_free(s->tls); /* after the daemon: no handshake can ask for it any more */
    s->tls = NULL;
    if (s->curl_inited)
        curl_global_cleanup();
    free(s->listen);
    if (s->token) {
        memset(s->token, 0, strlen(s->token));
        free(s->token);
    }
    free(s->node);
    free(s->tls_ca_file);
    http__pager_free(s->pager); /* after the daemon: no handler can page any more */
    free(s);
}

int http_start(const struct http_deps *deps, struct http_server **out, char *err, size_t errlen)
{
    struct http_server *s = NULL;
    struct addrinfo *ai = NULL;
    int fd = -1;
    int rc = -1;

    if (!deps || !deps->store || !deps->ops || !deps->ops->group_get) {
        snprintf(err, errlen, "http: a store handle and the node's ops (group_get) are required");
        return -1;
    }
    s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    s->listen = strdup(deps->listen ? deps->listen : HTTP_DEFAULT_LISTEN);
    s->token = deps->token && *deps->token ? strdup(deps->token) : NULL;
    s->node = strdup(deps->node ? deps->node : "");
    s->tls_ca_file = deps->tls_ca_file ? strdup(deps->tls_ca_file) : NULL;
    s->pager = http__pager_new();
    s->store = deps->store;
    s->ops = deps->ops;
    s->ops_arg = deps->ops_arg;
    s->proxy_timeout_ms =
        deps->proxy_timeout_ms > 0 ? deps->proxy_timeout_ms : HTTP_DEFAULT_PROXY_TIMEOUT_MS;
    s->max_body = deps->max_body ? deps->max_body : HTTP_DEFAULT_MAX_BODY;
    if (!s->listen || !s->node || !s->pager || (deps->token && *deps->token && !s->token) ||
        (deps->tls_ca_file && !s->tls_ca_file)) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }

    char host[256], port[16];
    if (split_listen(s->listen, host, sizeof host, port, sizeof port)) {
        snprintf(err, errlen, "invalid listen address \"%s\" (want HOST:PORT, e.g. 127.0.0.1:8080)",
                 s->listen);
        goto out;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    int gai = getaddrinfo(host, port, &hints, &ai);
    if (gai != 0 || ai == NULL) { /* success brings at least one address: say so, not crash */
        snprintf(err, errlen, "cannot resolve listen address \"%s\": %s", s->listen,
                 gai != 0 ? gai_strerror(gai) : "no address");
        goto out;
    }
    /* "localhost" may resolve to ::1 first; clients default to 127.0.0.1: prefer IPv4 */
    const struct addrinfo *use = ai;
    for (const struct addrinfo *p = ai; p; p = p->ai_next)
        if (p->ai_family == AF_INET) {
            use = p;
            break;
        }
    /* Bind ourselves: MHD does not say why a bind failed, the operator needs to know. */
    fd = socket(use->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "cannot listen on %s: socket: %s", s->listen, strerror(errno));
        goto out;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, use->ai_addr, use->ai_addrlen) != 0 || listen(fd, HTTP_LISTEN_BACKLOG) != 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", s->listen, strerror(errno));
        goto out;
    }
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t sl = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET)
            s->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        else if (ss.ss_family == AF_INET6)
            s->port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    }
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ERROR_LOG;
    if (use->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    struct MHD_OptionItem tls_opts[2] = {{MHD_OPTION_END, 0, NULL}, {MHD_OPTION_END, 0, NULL}};
    if (deps->tls_cert_file || deps->tls_key_file) {
        if (!deps->tls_cert_file || !deps->tls_key_file) {
            snprintf(err, errlen, "https: a certificate and its key go together");
            goto out;
        }
        if (http__tls_new(deps->tls_cert_file, deps->tls_key_file, fd, &s->tls, err, errlen))
            goto out;
        http__tls_option(&tls_opts[0]);
        flags |= MHD_USE_TLS;
    } else if (s->token && !tls_address_is_loopback(s->listen)) {
        log_warn("http: the API listens on %s in clear text: its token crosses the network "
                 "unencrypted (set [api] tls_cert_file and tls_key_file)",
                 s->listen);
    }
    s->guard = guard_new();
    if (!s->guard) {
        snprintf(err, errlen, "cannot start the HTTP connection reaper thread");
        goto out;
    }
    s->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, s, MHD_OPTION_LISTEN_SOCKET, fd,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_NOTIFY_CONNECTION, on_connection,
        s, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)HTTP_IDLE_TIMEOUT_S,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)HTTP_MAX_CONNS, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
        (unsigned)HTTP_MAX_PER_IP, MHD_OPTION_STRICT_FOR_CLIENT, (int)1, MHD_OPTION_EXTERNAL_LOGGER,
        mhd_logger, s, MHD_OPTION_ARRAY, tls_opts, MHD_OPTION_END);
    if (!s->daemon) {
        snprintf(err, errlen, "cannot start the HTTP server on %s", s->listen);
        goto out;
    }
    fd = -1; /* the daemon closes it */
    /* the proxy to group owners uses libcurl from this thread: initialise it
     * here, before any request, not lazily inside a request (not thread-safe) */
    curl_global_init(CURL_GLOBAL_DEFAULT);
    s->curl_inited = 1;
    log_info("http: serving the API and dashboard on %s://%s (port %u)%s",
             s->tls ? "https" : "http", s->listen, (unsigned)s->port,
             s->token ? "" : "; no token: read-only");
    *out = s;
    s = NULL;
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    if (ai)
        freeaddrinfo(ai);
    if (s)
        server_free_fields(s);
    return rc;
}

uint16_t http_bound_port(const struct http_server *s)
{
    return s ? s->port : 0;
}

void http_stop(struct http_server *s)
{
    if (s && s->daemon) {
        MHD_stop_daemon(s->daemon);
        s->daemon = NULL;
    }
}

void http_free(struct http_server *s)
{
    if (!s)
        return;
    http_stop(s);
    server_free_fields(s);
}
