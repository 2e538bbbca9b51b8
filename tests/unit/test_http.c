/*
 * Unit tests for the http module: a real libmicrohttpd server on an ephemeral
 * loopback port, a real fleet table (unique shm name) and a real store in a
 * temporary directory, spoken to over HTTP with libcurl. No controller: the
 * server must then answer terminate requests with 503. Pure parts (PATCH
 * validation, Prometheus formatting, token handling) are also tested directly.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include "asgd/conf.h"
#include "common/clock.h"
#include "http/http.h"
#include "http/http_int.h"

#define TOKEN    "s3cret-token"
#define MAX_BODY 2048

/* ---- a test node: the http_node_ops the server calls, over real fleet tables ------------- */

#define TN_GROUPS 4

struct tn_group {
    char name[GROUP_NAME_MAX];
    struct fleet *fleet; /* NULL: run by another node */
    char owner_node[HTTP_NODE_MAX], owner_api[HTTP_URL_MAX];
};

struct test_node {
    struct store *store; /* the node's own handle (create writes it) */
    struct tn_group g[TN_GROUPS];
    int n;
    int gets, puts; /* every get must be put */
    /* last request_terminate / group_delete calls */
    char term_group[GROUP_NAME_MAX], term_id[64];
    int term_decrement, terms;
    char deleted[GROUP_NAME_MAX];
    int delete_force, deletes;
    json_t *cluster;       /* returned (a new reference) by cluster(); NULL: single node */
    const char *not_ready; /* ready() answers 0 with this */
};

static int tn_group_get(void *arg, const char *name, struct http_group_ref *out)
{
    struct test_node *t = arg;
    for (int i = 0; i < t->n; i++)
        if (strcmp(t->g[i].name, name) == 0) {
            snprintf(out->name, sizeof out->name, "%s", name);
            out->fleet = t->g[i].fleet;
            snprintf(out->owner_node, sizeof out->owner_node, "%s", t->g[i].owner_node);
            snprintf(out->owner_api, sizeof out->owner_api, "%s", t->g[i].owner_api);
            out->priv = &t->g[i];
            t->gets++;
            return 0;
        }
    return -ENOENT;
}

static void tn_group_put(void *arg, struct http_group_ref *ref)
{
    struct test_node *t = arg;
    assert_non_null(ref->priv);
    t->puts++;
}

/* Creates the group in the store from spec's [group] keys (sizes only): enough to test the API. */
static int tn_group_create(void *arg, const json_t *spec, char *err, size_t errlen)
{
    struct test_node *t = arg;
    const json_t *grp = json_object_get(spec, "group");
    const json_t *prov = json_object_get(json_object_get(spec, "provider"), "type");
    if (prov && (!json_is_string(prov) || strcmp(json_string_value(prov), "local") != 0)) {
        snprintf(err, errlen, "provider.type: must be \"local\" or \"ec2\"");
        return -EINVAL;
    }
    struct group_settings g;
    group_settings_default(&g, "default");
    snprintf(g.name, sizeof g.name, "%s", json_string_value(json_object_get(grp, "name")));
    const char *keys[] = {"min_size", "max_size", "desired_capacity"};
    int *fields[] = {&g.min_size, &g.max_size, &g.desired_capacity};
    for (int i = 0; i < 3; i++) {
        json_t *v = json_object_get(grp, keys[i]);
        if (v && !json_is_integer(v)) {
            snprintf(err, errlen, "group.%s: must be an integer", keys[i]);
            return -EINVAL;
        }
        if (v)
            *fields[i] = (int)json_integer_value(v);
    }
    int rc = store_put_settings(t->store, &g, 0, NULL);
    if (rc == STORE_ECONFLICT || rc == STORE_EEXIST)
        return -EEXIST;
    if (rc == STORE_EINVAL) {
        snprintf(err, errlen, "%s", store_errmsg(t->store));
        return -EINVAL;
    }
    return rc ? -EIO : 0;
}

static int tn_group_delete(void *arg, const char *name, int force, char *err, size_t errlen)
{
    struct test_node *t = arg;
    struct store_instance *rows = NULL;
    size_t n = 0;
    if (store_list_instances(t->store, name, 0, &rows, &n))
        return -EIO;
    store_instances_free(rows);
    if (n && !force) {
        snprintf(err, errlen, "group \"%s\" has %zu instances", name, n);
        return -EBUSY;
    }
    snprintf(t->deleted, sizeof t->deleted, "%s", name);
    t->delete_force = force;
    t->deletes++;
    return 0;
}

static int tn_request_terminate(void *arg, const char *group, const char *id, int decrement,
                                char *err, size_t errlen)
{
    struct test_node *t = arg;
    struct store_instance si;
    if (store_get_instance(t->store, id, &si) != 0 || strcmp(si.group, group) != 0) {
        snprintf(err, errlen, "group \"%s\" has no instance \"%s\"", group, id);
        return -ENOENT;
    }
    snprintf(t->term_group, sizeof t->term_group, "%s", group);
    snprintf(t->term_id, sizeof t->term_id, "%s", id);
    t->term_decrement = decrement;
    t->terms++;
    return 0;
}

static json_t *tn_cluster(void *arg)
{
    struct test_node *t = arg;
    return t->cluster ? json_incref(t->cluster) : NULL;
}

static int tn_ready(void *arg, char *why, size_t len)
{
    struct test_node *t = arg;
    if (t->not_ready) {
        snprintf(why, len, "%s", t->not_ready);
        return 0;
    }
    return 1;
}

static const struct http_node_ops tn_ops = {
    .group_get = tn_group_get,
    .group_put = tn_group_put,
    .group_create = tn_group_create,
    .group_delete = tn_group_delete,
    .request_terminate = tn_request_terminate,
    .cluster = tn_cluster,
};

/* The same node with a ready() probe (the default probe is tested with tn_ops). */
static const struct http_node_ops tn_ops_ready = {
    .group_get = tn_group_get,
    .group_put = tn_group_put,
    .cluster = tn_cluster,
    .ready = tn_ready,
};

static void tn_add(struct test_node *t, const char *name, struct fleet *f, const char *owner,
                   const char *api)
{
    assert_true(t->n < TN_GROUPS);
    struct tn_group *g = &t->g[t->n++];
    snprintf(g->name, sizeof g->name, "%s", name);
    g->fleet = f;
    snprintf(g->owner_node, sizeof g->owner_node, "%s", owner ? owner : "");
    snprintf(g->owner_api, sizeof g->owner_api, "%s", api ? api : "");
}

struct env {
    char dir[64];
    char fleet_name[64];
    struct fleet *fleet;
    struct store *store;     /* the test's own handle */
    struct store *srv_store; /* the server's handle */
    struct test_node node;
    struct http_server *srv;
    char base[64];
    /* setup_multi: a second node, owner of group "api", with its own server and fleet */
    char fleet2_name[64];
    struct fleet *fleet2;
    struct store *store2;
    struct test_node node2;
    struct http_server *srv2;
    char base2[64];
};

struct resp {
    long status;
    char *body;
    size_t len;
    char headers[4096];
    size_t hlen;
    json_t *json;
};

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
    struct resp *r = ud;
    size_t k = sz * n;
    char *nb = realloc(r->body, r->len + k + 1);
    if (!nb)
        return 0;
    memcpy(nb + r->len, p, k);
    r->body = nb;
    r->len += k;
    r->body[r->len] = '\0';
    return k;
}

static size_t on_header(char *p, size_t sz, size_t n, void *ud)
{
    struct resp *r = ud;
    size_t k = sz * n;
    if (r->hlen + k < sizeof r->headers) {
        memcpy(r->headers + r->hlen, p, k);
        r->hlen += k;
        r->headers[r->hlen] = '\0';
    }
    return k;
}

struct chunk_src {
    const char *p;
    size_t left;
};

static size_t on_read(char *buf, size_t sz, size_t n, void *ud)
{
    struct chunk_src *c = ud;
    size_t k = sz * n;
    if (k > 300)
        k = 300; /* several chunks */
    if (k > c->left)
        k = c->left;
    memcpy(buf, c->p, k);
    c->p += k;
    c->left -= k;
    return k;
}

/* Content-Type of request bodies (curl -d sends form-urlencoded: that must work too). */
static const char *req_ctype = "application/json";

/* One request. token NULL: no Authorization header. chunked: send body with chunked encoding. */
static void request(struct env *e, const char *method, const char *path, const char *body,
                    const char *token, int chunked, struct resp *r)
{
    memset(r, 0, sizeof *r);
    char url[512];
    snprintf(url, sizeof url, "%s%s", e->base, path);
    CURL *h = curl_easy_init();
    assert_non_null(h);
    struct curl_slist *hd = NULL;
    char auth[256];
    struct chunk_src src = {body, body ? strlen(body) : 0};
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 10L);
    curl_easy_setopt(h, CURLOPT_PATH_AS_IS, 1L); /* send "/../" as written (traversal tests) */
    if (strcmp(method, "HEAD") == 0)
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    else
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    if (body && chunked) {
        curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(h, CURLOPT_READDATA, &src);
        hd = curl_slist_append(hd, "Transfer-Encoding: chunked");
    } else if (body) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    }
    char ctype[128];
    snprintf(ctype, sizeof ctype, "Content-Type: %s", req_ctype);
    hd = curl_slist_append(hd, ctype);
    hd = curl_slist_append(hd, "Expect:");
    if (token) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
        hd = curl_slist_append(hd, auth);
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
    CURLcode cc = curl_easy_perform(h);
    if (cc != CURLE_OK)
        fail_msg("%s %s: %s", method, path, curl_easy_strerror(cc));
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(hd);
    curl_easy_cleanup(h);
    if (r->body)
        r->json = json_loads(r->body, 0, NULL);
}

static void resp_free(struct resp *r)
{
    free(r->body);
    json_decref(r->json);
    memset(r, 0, sizeof *r);
}

/* Asserts an error answer: status, JSON with "error" and a "detail" containing needle. */
static void assert_error(struct resp *r, long status, const char *needle)
{
    if (r->status != status)
        fail_msg("status %ld, want %ld; body %s", r->status, status, r->body ? r->body : "");
    assert_non_null(r->json);
    assert_true(json_is_string(json_object_get(r->json, "error")));
    const char *d = json_string_value(json_object_get(r->json, "detail"));
    assert_non_null(d);
    if (needle && !strstr(d, needle))
        fail_msg("detail \"%s\" lacks \"%s\"", d, needle);
    assert_non_null(strstr(r->headers, "application/json"));
}

static void seed_group(struct store *st, const char *name)
{
    struct group_settings g;
    group_settings_default(&g, name);
    g.min_size = 1;
    g.max_size = 5;
    g.desired_capacity = 2;
    assert_int_equal(store_put_settings(st, &g, -1, NULL), 0);
}

struct upd {
    int lifecycle, health;
    double load;
};

static void apply_upd(struct fleet_slot *s, void *arg)
{
    struct upd *u = arg;
    s->lifecycle = (uint8_t)u->lifecycle;
    s->health = (uint8_t)u->health;
    s->load = u->load;
}

static void add_instance(struct env *e, const char *id, const char *addr, int lifecycle, int health,
                         double load)
{
    uint32_t idx;
    assert_int_equal(fleet_alloc(e->fleet, id, addr, clk_wall_ms(), &idx), 0);
    struct fleet_slot s;
    assert_int_equal(fleet_read(e->fleet, idx, &s), 0);
    struct upd u = {lifecycle, health, load};
    assert_int_equal(fleet_update(e->fleet, idx, s.generation, apply_upd, &u), 0);
}

static int setup(void **state)
{
    struct env *e = calloc(1, sizeof *e);
    assert_non_null(e);
    snprintf(e->dir, sizeof e->dir, "/tmp/asgd-test-http-XXXXXX");
    assert_non_null(mkdtemp(e->dir));
    snprintf(e->fleet_name, sizeof e->fleet_name, "thttp-%d", (int)getpid());
    (void)fleet_unlink(e->fleet_name);
    assert_int_equal(fleet_open(e->fleet_name, 64, 1, &e->fleet), 0);
    char err[512];
    assert_int_equal(store_open(e->dir, &e->store, err, sizeof err), 0);
    seed_group(e->store, "web");
    add_instance(e, "i-1", "127.0.0.2:50051", FLEET_IN_SERVICE, FLEET_HEALTH_HEALTHY, 40.0);
    add_instance(e, "i-\"2", "127.0.0.3:50051", FLEET_IN_SERVICE, FLEET_HEALTH_UNHEALTHY, 80.0);
    add_instance(e, "i-3", "127.0.0.4:50051", FLEET_PENDING, FLEET_HEALTH_UNKNOWN, -1);
    assert_int_equal(store_open(e->dir, &e->srv_store, err, sizeof err), 0);
    e->node.store = e->srv_store;
    tn_add(&e->node, "web", e->fleet, NULL, NULL);
    struct http_deps d = {
        .listen = "127.0.0.1:0",
        .token = TOKEN,
        .store = e->srv_store,
        .ops = &tn_ops,
        .ops_arg = &e->node,
        .node = "node-a",
        .max_body = MAX_BODY,
    };
    if (http_start(&d, &e->srv, err, sizeof err))
        fail_msg("http_start: %s", err);
    assert_true(http_bound_port(e->srv) > 0);
    snprintf(e->base, sizeof e->base, "http://127.0.0.1:%u", (unsigned)http_bound_port(e->srv));
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    struct env *e = *state;
    http_free(e->srv);
    http_free(e->srv2);
    /* every group_get was matched by a group_put */
    assert_int_equal(e->node.gets, e->node.puts);
    assert_int_equal(e->node2.gets, e->node2.puts);
    json_decref(e->node.cluster);
    store_close(e->srv_store);
    store_close(e->store2);
    if (e->fleet2) {
        fleet_close(e->fleet2);
        (void)fleet_unlink(e->fleet2_name);
    }
    store_close(e->store);
    fleet_close(e->fleet);
    (void)fleet_unlink(e->fleet_name);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", e->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", e->dir);
    free(e);
    return 0;
}

/* ---- routing and errors ------------------------------------------------------------------- */

static void unknown_route_is_404_json(void **state)
{
    struct env *e = *state;
    struct resp r;
    request(e, "GET", "/nope", NULL, NULL, 0, &r);
    assert_error(&r, 404, NULL);
    resp_free(&r);
    request(e, "GET", "/api/v1/group/", NULL, NULL, 0, &r);
    assert_error(&r, 404, NULL);
    resp_free(&r);
    request(e, "POST", "/api/v1/instances//terminate", "{}", TOKEN, 0, &r);
    assert_error(&r, 404, NULL);
    resp_free(&r);
}

static void wrong_method_is_405_with_allow(void **state)
{
    struct env *e = *state;
    struct resp r;
    request(e, "DELETE", "/api/v1/group", NULL, TOKEN, 0, &r);
    assert_error(&r, 405, NULL);
    assert_non_null(strstr(r.headers, "PATCH"));
    resp_free(&r);
    request(e, "GET", "/api/v1/instances/i-1/terminate", NULL, NULL, 0, &r);
    assert_error(&r, 405, NULL);
    resp_free(&r);
    request(e, "POST", "/metrics", "{}", TOKEN, 0, &r);
    assert_error(&r, 405, NULL);
    resp_free(&r);
}

static void dashboard_is_embedded(void **state)
{
    struct env *e = *state;
    struct resp r;
    request(e, "GET", "/", NULL, NULL, 0, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.headers, "text/html"));
    assert_non_null(strstr(r.body, "<script src=\"/app.js\">"));
    assert_null(strstr(r.body, "http://")); /* no CDN */
    assert_null(strstr(r.body, "https://"));
    resp_free(&r);
    const char *assets[] = {"/app.js", "/style.css", "/index.html"};
    for (size_t i = 0; i < 3; i++) {
        request(e, "GET", assets[i], NULL, NULL, 0, &r);
        assert_int_equal(r.status, 200);
        assert_true(r.len > 100);
        resp_free(&r);
    }
    request(e, "HEAD", "/app.js", NULL, NULL, 0, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.headers, "javascript"));
    resp_free(&r);
}

/* ---- group -------------------------------------------------------------------------------- */

static void get_group_has_settings_and_counts(void **state)
{
    struct env *e = *state;
    struct resp r;
    request(e, "GET", "/api/v1/group", NULL, NULL, 0, &r);
    assert_int_equal(r.status, 200);
    json_t *j = r.json;
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "name")), "web");
    assert_int_equal(json_integer_value(json_object_get(j, "min_size")), 1);
    assert_int_equal(json_integer_value(json_object_get(j, "max_size")), 5);
    assert_int_equal(json_integer_value(json_object_get(j, "desired_capacity")), 2);
    assert_int_equal(json_integer_value(json_object_get(j, "in_service")), 2);
    assert_int_equal(json_integer_value(json_object_get(j, "pending")), 1);
    assert_int_equal(json_integer_value(json_object_get(j, "unhealthy")), 1);
    /* no controller here: the average comes from the in-service loads */
    assert_float_equal(json_number_value(json_object_get(j, "average_load")), 60.0, 1e-9);
    json_t *p = json_object_get(j, "policy");
    assert_string_equal(json_string_value(json_object_get(p, "type")), "threshold");
    assert_true(json_is_number(json_object_get(p, "up_threshold")));
    assert_true(json_is_string(json_object_get(p, "evaluation_period")));
    assert_true(json_is_object(json_object_get(j, "health")));
    resp_free(&r);
}

static void patch_needs_the_token(void **state)
{
    struct env *e = *state;
    struct resp r;
    request(e, "PATCH", "/api/v1/group", "{\"max_size\": 4}", NULL, 0, &r);
    assert_error(&r, 401, NULL);
    assert_non_null(strstr(r.headers, "WWW-Authenticate: Bearer"));
    resp_free(&r);
    request(e, "PATCH", "/api/v1/group", "{\"max_size\": 4}", "wrong", 0, &r);
    assert_error(&r, 401, "token rejected");
    resp_free(&r);
    request(e, "PATCH", "/api/v1/group", "{\"max_size\": 4}", TOKEN "x", 0, &r);
    assert_error(&r, 401, NULL);
    resp_free(&r);
    /* nothing changed */
    struct group_settings g;
    assert_int_equal(store_get_settings(e->store, "web", &g), 0);
    assert_int_equal(g.max_size, 5);
}

static void patch_persists_and_records_activity(void **state)
{
    struct env *e = *state;
    struct resp r;
    request(e, "PATCH", "/api/v1/group",
            "{\"max_size\": 4, \"policy\": {\"up_threshold\": 75, \"cooldown\": \"2m\","
            " \"scale_down_factor\": 0.25}}",
            TOKEN, 0, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(json_integer_value(json_object_get(r.json, "max_size")), 4);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(r.json, "policy"), "cooldown")), "2m");
    resp_free(&r);
    struct group_settings g;
    assert_int_equal(store_get_settings(e->store, "web", &g), 0);
    assert_int_equal(g.max_size, 4);
    assert_float_equal(g.policy.up_threshold, 75, 1e-9);
    assert_float_equal(g.policy.down_factor, 0.25, 1e-9);
    assert_int_equal(g.policy.cooldown_ms, 120000);

    struct store_activity *acts = NULL;
    size_t n = 0;
    assert_int_equal(store_activity_list(e->store, "web", 0, 10, &acts, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(acts[0].kind, "settings");
    assert_non_null(strstr(acts[0].cause, "max_size 5 -> 4"));
    store_activities_free(acts);

    /* raising min above desired lifts desired (AWS semantics) */
    request(e, "PATCH", "/api/v1/group", "{\"min_size\": 3}", TOKEN, 0, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(json_integer_value(json_object_get(r.json, "desired_capacity")), 3);
    resp_free(&r);
    /* the same patch again: no change, no new activity */
    request(e, "PATCH", "/api/v1/group", "{\"min_size\": 3}", TOKEN, 0, &r);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    assert_int_equal(store_activity_list(e->store, "web", 0, 10, &acts, &n), 0);
    assert_int_equal(n, 2);
    store_activities_free(acts);
}

static void patch_accepts_any_content_type(void **state)
{
    struct env *e = *state;
    struct resp r;
    req_ctype = "application/x-www-form-urlencoded"; /* what curl -d sends */
    request(e, "PATCH", "/api/v1/group", "{\"max_size\": 3}", TOKEN, 0, &r);
    req_ctype = "application/json";
    assert_int_equal(r.status, 200);
    assert_int_equal(json_integer_value(json_object_get(r.json, "max_size")), 3);
    resp_free(&r);
}

static void patch_rejects_bad_input_with_messages(void **state)
{
    struct env *e = *state;
    static const struct {
        const char *body;
        const char *needle;
    } cases[] = {
        {"{\"min_size\": ", "line 1"},
        {"not json", "line 1"},
        {"", "no body"},
        {"[1,2]", "JSON object"},
        {"{}", "nothing to change"},
        {"{\"min_size\": 5, \"max_size\": 3}", "min_size 5 > max_size 3"},
        {"{\"min_size\": 9}", "min_size 9 > max_size 5"},
        {"{\"desired_capacity\": 9}", "desired_capacity 9 is outside"},
        {"{\"bogus\": 1}", "unknown key \"bogus\""},
        {"{\"policy\": {\"bogus\": 1}}", "unknown key \"policy.bogus\""},
        {"{\"health\": {\"interval\": \"soon\"}}", "health.interval"},
        {"{\"name\": \"other\"}", "read-only"},
        {"{\"min_size\": \"2\"}", "min_size: must be an integer"},
        {"{\"min_size\": 1.5}", "min_size: must be an integer"},
        {"{\"max_size\": 100001}",
         "max_size: 100001 exceeds the most instances a group can have (100000)"},
        {"{\"policy\": {\"down_threshold\": 90}}", "policy.down_threshold"},
        {"{\"policy\": {\"up_factor\": 0.5}}", "policy.up_factor"},
        {"{\"policy\": {\"type\": \"magic\"}}", "policy.type"},
        {"{\"policy\": 3}", "policy: must be an object"},
        {"{\"min_size\": 1, \"min_size\": 2}", "duplicate"},
        {"{\"revision\": \"x\"}", "revision"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct resp r;
        request(e, "PATCH", "/api/v1/group", cases[i].body, TOKEN, 0, &r);
        if (r.status != 400)
            fail_msg("case %zu (%s): status %ld body %s", i, cases[i].body, r.status,
                     r.body ? r.body : "");
        assert_error(&r, 400, cases[i].needle);
        resp_free(&r);
    }
    struct group_settings g;
    assert_int_equal(store_get_settings(e->store, "web", &g), 0);
    assert_int_equal(g.min_size, 1);
    assert_int_equal(g.max_size, 5);
    assert_int_equal(g.revision, 1);
}

/* A max_size above the fleet table's old fixed cap (4096) is taken, and the running group's
   table grows to hold it (the config file takes the same value: test_conf). */
static void patch_max_size_grows_the_table(void **state)
{
    struct env *e = *state;
    assert_true(fleet_capacity(e->fleet) < 5000);
    struct resp r;
    request(e, "PATCH", "/api/v1/group", "{\"max_size\": 20000}", TOKEN, 0, &r);
    if (r.status != 200)
        fail_msg("status %ld body %s", r.status, r.body ? r.body : "");
    resp_free(&r);
    assert_true(fleet_capacity(e->fleet) >= 20000);
    struct group_settings g;
    assert_int_equal(store_get_settings(e->store, "web", &g), 0);
    assert_int_equal(g.max_size, 20000);
    /* and the table still works above its old end */
    uint32_t idx;
    size_t before = fleet_snapshot(e->fleet, NULL, 0);
    for (int i = 0; i < 200; i++) {
        char id[32];
        snprintf(id, sizeof id, "i-grown-%d", i);
        assert_int_equal(fleet_alloc(e->fleet, id, "", 1, &idx), 0);
    }
    assert_int_equal(fleet_snapshot(e->fleet, NULL, 0), before + 200);
}

static void patch_with_stale_revision_is_409(void **state)
{
    struct env *e = *state;
    struct resp r;
    request(e, "PATCH", "/api/v1/group", "{\"revision\": 99, \"max_size\": 4}", TOKEN, 0, &r);
    assert_error(&r, 409, "revision 99");
    resp_free(&r);
    request(e, "PATCH", "/api/v1/group", "{\"revision\": 1, \"max_size\": 4}", TOKEN, 0, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(json_integer_value(json_object_get(r.json, "revision")), 2);
    resp_free(&r);
}

static void oversized_bodies_are_413(void **state)
{
    struct env *e = *state;
    size_t n = MAX_BODY + 500;
    char *big = malloc(n + 1);
    assert_non_null(big);
    memset(big, ' ', n);
    big[0] = '{';
    memcpy(big + n - 14, "\"min_size\":2}", 13);
    big[n - 1] = ' ';
    big[n] = '\0';
    struct resp r;
    /* declared length over the cap: refused before the body is read */
    request(e, "PATCH", "/api/v1/group", big, TOKEN, 0, &r);
    assert_error(&r, 413, "2048");
    resp_free(&r);
    /* chunked: the server only finds out while reading */
    request(e, "PATCH", "/api/v1/group", big, TOKEN, 1, &r);
    assert_error(&r, 413, "2048");
    resp_free(&r);
    /* a chunked body under the cap is accepted */
    request(e, "PATCH", "/api/v1/group", "{\"max_size\": 4}", TOKEN, 1, &r);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    free(big);
    /* the server still works */
    request(e, "GET", "/healthz", NULL, NULL, 0, &r);
    assert_int_equal(r.status, 200);
    resp_free(&r);
}

/* ---- instances and terminate ------------------------------------------------------------- */

static void instances_come_from_the_fleet_table(void **state)
{
    struct env *e = *state;
    struct resp r;
    request(e, "GET", "/api/v1/instances", NULL, NULL, 0, &r);
    assert_int_equal(r.status, 200);
    assert_true(json_is_array(r.json));
    assert_int_equal(json_array_size(r.json), 3);
    json_t *a = json_array_get(r.json, 0);
    assert_string_equal(json_string_value(json_object_get(a, "id")), "i-1");
    assert_string_equal(json_string_value(json_object_get(a, "address")), "127.0.0.2:50051");
    assert_string_equal(json_string_value(json_object_get(a, "lifecycle")),
                        fleet_lifecycle_name(FLEET_IN_SERVICE));
    assert_string_equal(json_string_value(json_object_get(a, "health")),
                        fleet_health_name(FLEET_HEALTH_HEALTHY));
    assert_float_equal(json_number_value(json_object_get(a, "load")), 40.0, 1e-9);
    assert_true(json_is_string(json_object_get(a, "launched_at")));
    json_t *c = json_array_get(r.json, 2);
    assert_true(json_is_null(json_object_get(c, "load"))); /* unknown load is null, not 0 */
    resp_free(&r);
}

static void terminate_checks_auth_body_and_id(void **state)
{
    struct env *e = *state;
    struct resp r;
    request(e, "POST", "/api/v1/instances/i-1/terminate", "{\"decrement_desired\": true}", NULL, 0,
            &r);
    assert_error(&r, 401, NULL);
    resp_free(&r);
    request(e, "POST", "/api/v1/instances/i-404/terminate", "{\"decrement_desired\": true}", TOKEN,
            0, &r);
    assert_error(&r, 404, "i-404");
    resp_free(&r);
    request(e, "POST", "/api/v1/instances/i-1/terminate", "{\"decrement\": true}", TOKEN, 0, &r);
    assert_error(&r, 400, "unknown key \"decrement\"");
    resp_free(&r);
    request(e, "POST", "/api/v1/instances/i-1/terminate", "{\"decrement_desired\": 1}", TOKEN, 0,
            &r);
    assert_error(&r, 400, "true or false");
    resp_free(&r);
    request(e, "POST", "/api/v1/instances/i-1/terminate", "{oops", TOKEN, 0, &r);
    assert_error(&r, 400, NULL);
    resp_free(&r);
    /* known instance, but no controller in this process */
    request(e, "POST", "/api/v1/instances/i-1/terminate", "{\"decrement_desired\": false}", TOKEN,
            0, &r);
    assert_error(&r, 503, "controller");
    resp_free(&r);
    request(e, "POST", "/api/v1/instances/i-1/terminate", NULL, TOKEN, 0, &r);
    assert_error(&r, 503, NULL);
    resp_free(&r);
}

/* ---- activities and history -------------------------------------------------------------- */

static void activities_newest_first_with_limit(void **state)
{
    struct env *e = *state;
    for (int i = 0; i < 5; i++) {
        struct store_activity a = {0};
        snprintf(a.group, sizeof a.group, "web");
        a.at_ms = clk_wall_ms() + i;
        snprintf(a.kind, sizeof a.kind, "scale");
        snprintf(a.cause, sizeof a.cause, "cause %d", i);
        a.from_count = i;
        a.to_count = i + 1;
        snprintf(a.status, sizeof a.status, "ok");
        assert_int_equal(store_activity_add(e->store, &a, NULL), 0);
    }
    struct resp r;
    request(e, "GET", "/api/v1/activities?limit=3", NULL, NULL, 0, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(json_array_size(r.json), 3);
    json_t *first = json_array_get(r.json, 0);
    assert_string_equal(json_string_value(json_object_get(first, "cause")), "cause 4");
    assert_int_equal(json_integer_value(json_object_get(first, "from")), 4);
    assert_int_equal(json_integer_value(json_object_get(first, "to")), 5);
    json_int_t last_id = json_integer_value(json_object_get(json_array_get(r.json, 2), "id"));
    resp_free(&r);
    char path[96];
    snprintf(path, sizeof path, "/api/v1/activities?limit=10&before=%lld", (long long)last_id);
    request(e, "GET", path, NULL, NULL, 0, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(json_array_size(r.json), 2);
    resp_free(&r);
    const char *bad[] = {"/api/v1/activities?limit=0", "/api/v1/activities?limit=abc",
                         "/api/v1/activities?limit=1001", "/api/v1/activities?before=-3"};
    for (size_t i = 0; i < 4; i++) {
        request(e, "GET", bad[i], NULL, NULL, 0, &r);
        assert_error(&r, 400, NULL);
        resp_free(&r);
    }
}

static void history_returns_series_since(void **state)
{
    struct env *e = *state;
    int64_t now = clk_wall_ms();
    struct store_metric_group g[3];
    struct store_metric_instance im[4];
    memset(g, 0, sizeof g);
    memset(im, 0, sizeof im);
    for (int i = 0; i < 3; i++) {
        snprintf(g[i].group, sizeof g[i].group, "web");
        g[i].at_ms = now - (3 - i) * 60000;
        g[i].avg_load = i == 0 ? -1 : 10.0 * i;
        g[i].in_service = i + 1;
        g[i].desired = 3;
    }
    for (int i = 0; i < 4; i++) {
        snprintf(im[i].group, sizeof im[i].group, "web");
        snprintf(im[i].instance_id, sizeof im[i].instance_id, "i-%d", i % 2);
        im[i].at_ms = now - (4 - i) * 30000;
        im[i].load = 5.0 * i;
    }
    assert_int_equal(store_metrics_add(e->store, g, 3, im, 4), 0);
    struct resp r;
    request(e, "GET", "/api/v1/metrics/history?since=10m", NULL, NULL, 0, &r);
    assert_int_equal(r.status, 200);
    json_t *ga = json_object_get(r.json, "group");
    assert_int_equal(json_array_size(ga), 3);
    assert_true(json_is_null(json_object_get(json_array_get(ga, 0), "avg_load")));
    assert_int_equal(json_integer_value(json_object_get(json_array_get(ga, 2), "in_service")), 3);
    json_t *inst = json_object_get(r.json, "instances");
    assert_int_equal(json_array_size(json_object_get(inst, "i-0")), 2);
    assert_int_equal(json_array_size(json_object_get(inst, "i-1")), 2);
    resp_free(&r);
    /* epoch milliseconds: only the last group row */
    char path[96];
    snprintf(path, sizeof path, "/api/v1/metrics/history?since=%lld", (long long)(now - 90000));
    request(e, "GET", path, NULL, NULL, 0, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(json_array_size(json_object_get(r.json, "group")), 1);
    resp_free(&r);
    request(e, "GET", "/api/v1/metrics/history?since=yesterday", NULL, NULL, 0, &r);
    assert_error(&r, 400, "since");
    resp_free(&r);
}

/* ---- /metrics and probes ----------------------------------------------------------------- */

static void metrics_page_has_the_families(void **state)
{
    struct env *e = *state;
    stats_observe_poll(700, 1);
    stats_observe_poll(2000000, 0);
    stats_count_provider(STATS_OP_LAUNCH, STATS_RES_OK);
    stats_count_deferred_polls(3);
    struct resp r;
    request(e, "GET", "/metrics", NULL, NULL, 0, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.headers, "text/plain; version=0.0.4"));
    const char *want[] = {
        "asgd_desired_capacity{group=\"web\"} 2\n",
        "asgd_instances{group=\"web\",lifecycle=\"in-service\"} 2\n",
        "asgd_instances{group=\"web\",lifecycle=\"pending\"} 1\n",
        "asgd_instance_load{group=\"web\",instance_id=\"i-1\"} 40\n",
        "asgd_instance_load{group=\"web\",instance_id=\"i-\\\"2\"} 80\n", /* escaped quote */
        "# TYPE asgd_poll_duration_seconds histogram\n",
        "asgd_poll_duration_seconds_bucket{le=\"+Inf\"} 2\n",
        "asgd_poll_duration_seconds_count 2\n",
        "asgd_poll_failures_total 1\n",
        "# TYPE asgd_polls_deferred_total counter\n",
        "asgd_polls_deferred_total 3\n",
        "asgd_provider_calls_total{op=\"launch\",result=\"ok\"} 1\n",
        "# TYPE asgd_scaling_actions_total counter\n",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        if (!strstr(r.body, want[i]))
            fail_msg("missing %s in:\n%s", want[i], r.body);
    /* the pending instance has no load sample */
    assert_null(strstr(r.body, "asgd_instance_load{group=\"web\",instance_id=\"i-3\"}"));
    /* histogram buckets are cumulative: the 700 us poll is in le=0.001 */
    assert_non_null(strstr(r.body, "asgd_poll_duration_seconds_bucket{le=\"0.001\"} 1\n"));
    resp_free(&r);
}

static void probes(void **state)
{
    struct env *e = *state;
    struct resp r;
    request(e, "GET", "/healthz", NULL, NULL, 0, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(json_string_value(json_object_get(r.json, "status")), "ok");
    resp_free(&r);
    /* no controller and no controller heartbeat yet: not ready */
    request(e, "GET", "/readyz", NULL, NULL, 0, &r);
    assert_error(&r, 503, "tick");
    resp_free(&r);
    fleet_heartbeat(e->fleet, 1, clk_wall_ms());
    request(e, "GET", "/readyz", NULL, NULL, 0, &r);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    fleet_heartbeat(e->fleet, 1, clk_wall_ms() - 60000);
    request(e, "GET", "/readyz", NULL, NULL, 0, &r);
    assert_error(&r, 503, "ago");
    resp_free(&r);
}

/* ---- start-up errors and read-only mode -------------------------------------------------- */

static void start_errors_are_explained(void **state)
{
    struct env *e = *state;
    char err[512];
    struct http_server *s = NULL;
    /* the test's own handle: the fixture's server uses srv_store on its thread */
    struct http_deps d = {
        .listen = "nonsense", .store = e->store, .ops = &tn_ops, .ops_arg = &e->node};
    assert_int_equal(http_start(&d, &s, err, sizeof err), -1);
    assert_non_null(strstr(err, "nonsense"));
    assert_null(s);
    d.listen = "127.0.0.1:99999";
    assert_int_equal(http_start(&d, &s, err, sizeof err), -1);
    /* the port is taken by the fixture's server */
    char taken[64];
    snprintf(taken, sizeof taken, "127.0.0.1:%u", (unsigned)http_bound_port(e->srv));
    d.listen = taken;
    assert_int_equal(http_start(&d, &s, err, sizeof err), -1);
    assert_non_null(strstr(err, "in use"));
    /* names resolve; "localhost" binds IPv4 loopback where asgctl looks by default */
    d.listen = "localhost:0";
    assert_int_equal(http_start(&d, &s, err, sizeof err), 0);
    assert_true(http_bound_port(s) > 0);
    http_free(s);
    s = NULL;
    d.listen = "[::1]:0";
    if (http_start(&d, &s, err, sizeof err) == 0) /* IPv6 may be off in a container */
        http_free(s);
    s = NULL;
    d.listen = "127.0.0.1:0";
    d.store = NULL;
    assert_int_equal(http_start(&d, &s, err, sizeof err), -1);
    assert_non_null(strstr(err, "store"));
    d.store = e->store;
    d.ops = NULL;
    assert_int_equal(http_start(&d, &s, err, sizeof err), -1);
    assert_non_null(strstr(err, "group_get"));
    assert_null(s);
    http_free(NULL);
}

static void without_token_the_api_is_read_only(void **state)
{
    struct env *e = *state;
    char err[512];
    struct http_server *s = NULL;
    struct http_deps d = {.listen = "127.0.0.1:0",
                          .token = NULL,
                          .store = e->store,
                          .ops = &tn_ops,
                          .ops_arg = &e->node};
    assert_int_equal(http_start(&d, &s, err, sizeof err), 0);
    struct env e2 = *e;
    snprintf(e2.base, sizeof e2.base, "http://127.0.0.1:%u", (unsigned)http_bound_port(s));
    struct resp r;
    request(&e2, "PATCH", "/api/v1/group", "{\"max_size\": 4}", "", 0, &r);
    assert_error(&r, 401, "read-only");
    resp_free(&r);
    request(&e2, "GET", "/api/v1/group", NULL, NULL, 0, &r);
    assert_int_equal(r.status, 200);
    assert_true(json_is_true(json_object_get(r.json, "read_only")));
    resp_free(&r);
    http_stop(s);
    http_stop(s); /* idempotent */
    http_free(s);
}

/* ---- many groups: a second node owns "api", "batch" is known only to the store ------------ */

static void put_row(struct store *st, const char *group, const char *id, const char *lifecycle)
{
    struct store_instance si;
    memset(&si, 0, sizeof si);
    snprintf(si.id, sizeof si.id, "%s", id);
    snprintf(si.group, sizeof si.group, "%s", group);
    snprintf(si.address, sizeof si.address, "127.0.0.9:50051");
    snprintf(si.provider, sizeof si.provider, "local");
    snprintf(si.lifecycle, sizeof si.lifecycle, "%s", lifecycle);
    si.launched_at_ms = clk_wall_ms();
    assert_int_equal(store_put_instance(st, &si), 0);
}

static int setup_multi(void **state)
{
    setup(state);
    struct env *e = *state;
    char err[512];
    seed_group(e->store, "api");
    seed_group(e->store, "batch");
    put_row(e->store, "api", "a-1", "in-service");
    put_row(e->store, "api", "a-2", "pending");
    put_row(e->store, "api", "a-3", "in-service");
    /* node-b: runs "api" in its own fleet table, serves the same store through its own handle */
    snprintf(e->fleet2_name, sizeof e->fleet2_name, "thttp2-%d", (int)getpid());
    (void)fleet_unlink(e->fleet2_name);
    assert_int_equal(fleet_open(e->fleet2_name, 64, 1, &e->fleet2), 0);
    const char *ids[] = {"a-1", "a-2", "a-3"};
    for (int i = 0; i < 3; i++) {
        uint32_t idx;
        assert_int_equal(fleet_alloc(e->fleet2, ids[i], "127.0.0.9:50051", clk_wall_ms(), &idx), 0);
        struct fleet_slot sl;
        assert_int_equal(fleet_read(e->fleet2, idx, &sl), 0);
        struct upd u = {i == 1 ? FLEET_PENDING : FLEET_IN_SERVICE,
                        i == 2 ? FLEET_HEALTH_UNHEALTHY : FLEET_HEALTH_HEALTHY, 10.0 * (i + 1)};
        assert_int_equal(fleet_update(e->fleet2, idx, sl.generation, apply_upd, &u), 0);
    }
    assert_int_equal(store_open(e->dir, &e->store2, err, sizeof err), 0);
    e->node2.store = e->store2;
    tn_add(&e->node2, "api", e->fleet2, "node-b", NULL);
    struct http_deps d = {.listen = "127.0.0.1:0",
                          .token = TOKEN,
                          .store = e->store2,
                          .ops = &tn_ops,
                          .ops_arg = &e->node2,
                          .node = "node-b"};
    if (http_start(&d, &e->srv2, err, sizeof err))
        fail_msg("http_start node-b: %s", err);
    snprintf(e->base2, sizeof e->base2, "http://127.0.0.1:%u", (unsigned)http_bound_port(e->srv2));
    /* node-a knows node-b runs "api" */
    tn_add(&e->node, "api", NULL, "node-b", e->base2);
    return 0;
}

static json_t *find_named(json_t *arr, const char *name)
{
    size_t i;
    json_t *o;
    json_array_foreach(arr, i, o)
    {
        const char *n = json_string_value(json_object_get(o, "name"));
        if (n && strcmp(n, name) == 0)
            return o;
    }
    return NULL;
}

static json_int_t jint(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    if (!json_is_integer(v))
        fail_msg("%s is not an integer", k);
    return json_integer_value(v);
}

static void groups_list_every_group_with_counts_and_owner(void **state)
{
    struct env *e = *state;
    struct resp r;
    request(e, "GET", "/api/v1/groups", NULL, NULL, 0, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(json_array_size(r.json), 3);
    /* run here: live counts from the fleet table */
    json_t *web = find_named(r.json, "web");
    assert_non_null(web);
    assert_int_equal(jint(web, "in_service"), 2);
    assert_int_equal(jint(web, "pending"), 1);
    assert_int_equal(jint(web, "unhealthy"), 1);
    assert_int_equal(jint(web, "min_size"), 1);
    assert_int_equal(jint(web, "max_size"), 5);
    assert_int_equal(jint(web, "desired_capacity"), 2);
    assert_float_equal(json_number_value(json_object_get(web, "average_load")), 60.0, 1e-9);
    assert_string_equal(json_string_value(json_object_get(web, "owner_node")), "node-a");
    assert_true(json_is_true(json_object_get(web, "live")));
    /* run by node-b: its live counts, asked from it */
    json_t *api = find_named(r.json, "api");
    assert_non_null(api);
    assert_true(json_is_true(json_object_get(api, "live")));
    assert_string_equal(json_string_value(json_object_get(api, "owner_node")), "node-b");
    assert_int_equal(jint(api, "in_service"), 2);
    assert_int_equal(jint(api, "unhealthy"), 1);
    assert_float_equal(json_number_value(json_object_get(api, "average_load")), 20.0, 1e-9);
    /* known to the store alone: not live, no owner */
    json_t *batch = find_named(r.json, "batch");
    assert_non_null(batch);
    assert_true(json_is_false(json_object_get(batch, "live")));
    assert_true(json_is_null(json_object_get(batch, "owner_node")));
    assert_int_equal(jint(batch, "instances"), 0);
    resp_free(&r);
    /* scope=local: only what this node runs (what owners are asked) */
    request(e, "GET", "/api/v1/groups?scope=local", NULL, NULL, 0, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(json_array_size(r.json), 1);
    assert_non_null(find_named(r.json, "web"));
    resp_free(&r);
    request(e, "GET", "/api/v1/groups?scope=everything", NULL, NULL, 0, &r);
    assert_error(&r, 400, "scope");
    resp_free(&r);
}

static void single_group_routes_refuse_several_groups(void **state)
{
    struct env *e = *state;
    struct resp r;
    const char *paths[] = {"/api/v1/group", "/api/v1/instances", "/api/v1/activities",
                           "/api/v1/metrics/history"};
    for (size_t i = 0; i < 4; i++) {
        request(e, "GET", paths[i], NULL, NULL, 0, &r);
        assert_error(&r, 409, "/api/v1/groups/{name}/");
        assert_non_null(strstr(r.body, "batch"));
        resp_free(&r);
    }
    request(e, "PATCH", "/api/v1/group", "{\"max_size\": 4}", TOKEN, 0, &r);
    assert_error(&r, 409, "3 groups");
    resp_free(&r);
    request(e, "POST", "/api/v1/instances/i-1/terminate", NULL, TOKEN, 0, &r);
    assert_error(&r, 409, NULL);
    resp_free(&r);
}

static void group_routes_check_names_and_bodies(void **state)
{
    struct env *e = *state;
    struct resp r;
    request(e, "GET", "/api/v1/groups/web", NULL, NULL, 0, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(json_string_value(json_object_get(r.json, "name")), "web");
    assert_int_equal(jint(r.json, "in_service"), 2);
    resp_free(&r);
    request(e, "GET", "/api/v1/groups/nope", NULL, NULL, 0, &r);
    assert_error(&r, 404, "nope");
    resp_free(&r);
    request(e, "GET", "/api/v1/groups/nope/instances", NULL, NULL, 0, &r);
    assert_error(&r, 404, NULL);
    resp_free(&r);
    char longname[128];
    memset(longname, 'x', 70);
    longname[70] = '\0';
    char path[256];
    snprintf(path, sizeof path, "/api/v1/groups/%s", longname);
    const char *bad[] = {"/api/v1/groups/..",
                         "/api/v1/groups/.hidden",
                         "/api/v1/groups/a%20b",
                         "/api/v1/groups/%2e%2e",
                         "/api/v1/groups/a%2fb",
                         "/api/v1/groups/w*b",
                         path};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        request(e, "GET", bad[i], NULL, NULL, 0, &r);
        if (r.status != 400 && r.status != 404)
            fail_msg("%s: status %ld", bad[i], r.status);
        assert_error(&r, r.status, NULL);
        resp_free(&r);
    }
    request(e, "GET", "/api/v1/groups/..", NULL, NULL, 0, &r);
    assert_error(&r, 400, "group name");
    resp_free(&r);
    /* traversal never reaches another route or a file */
    request(e, "GET", "/api/v1/groups/web/../../../etc/passwd", NULL, NULL, 0, &r);
    assert_error(&r, 404, NULL);
    resp_free(&r);
    /* an instance is a resource for PATCH only (its protection, issue 12) */
    request(e, "GET", "/api/v1/groups/web/instances/extra", NULL, NULL, 0, &r);
    assert_error(&r, 405, NULL);
    resp_free(&r);
    request(e, "GET", "/api/v1/groups/web/instances/extra/more", NULL, NULL, 0, &r);
    assert_error(&r, 404, NULL);
    resp_free(&r);
    request(e, "PUT", "/api/v1/groups/web", "{}", TOKEN, 0, &r);
    assert_error(&r, 405, NULL);
    assert_non_null(strstr(r.headers, "DELETE"));
    resp_free(&r);
    /* wrong JSON types on the group routes, too */
    request(e, "PATCH", "/api/v1/groups/web", "{\"min_size\": \"2\"}", TOKEN, 0, &r);
    assert_error(&r, 400, "min_size: must be an integer");
    resp_free(&r);
    request(e, "PATCH", "/api/v1/groups/web", "[]", TOKEN, 0, &r);
    assert_error(&r, 400, NULL);
    resp_free(&r);
    request(e, "PATCH", "/api/v1/groups/web", "{\"max_size\": 4}", NULL, 0, &r);
    assert_error(&r, 401, NULL);
    resp_free(&r);
    size_t n = MAX_BODY * 4;
    char *big = malloc(n + 1);
    assert_non_null(big);
    memset(big, ' ', n);
    big[0] = '{';
    big[n - 1] = '}';
    big[n] = '\0';
    request(e, "PATCH", "/api/v1/groups/web", big, TOKEN, 0, &r);
    assert_error(&r, 413, NULL);
    resp_free(&r);
    request(e, "POST", "/api/v1/groups", big, TOKEN, 1, &r);
    assert_error(&r, 413, NULL);
    resp_free(&r);
    free(big);
}

static void patch_of_a_group_run_elsewhere_writes_the_store(void **state)
{
    struct env *e = *state;
    struct resp r;
    request(e, "PATCH", "/api/v1/groups/batch", "{\"max_size\": 4, \"revision\": 1}", TOKEN, 0, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(jint(r.json, "max_size"), 4);
    assert_true(json_is_false(json_object_get(r.json, "live")));
    resp_free(&r);
    struct group_settings g;
    assert_int_equal(store_get_settings(e->store, "batch", &g), 0);
    assert_int_equal(g.max_size, 4);
    assert_int_equal(g.revision, 2);
    request(e, "PATCH", "/api/v1/groups/batch", "{\"max_size\": 3, \"revision\": 1}", TOKEN, 0, &r);
    assert_error(&r, 409, "revision 1");
    resp_free(&r);
    /* run by node-b: written here, node-b sees it through the store */
    request(e, "PATCH", "/api/v1/groups/api", "{\"desired_capacity\": 3}", TOKEN, 0, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(jint(r.json, "desired_capacity"), 3);
    resp_free(&r);
    struct env e2 = *e;
    snprintf(e2.base, sizeof e2.base, "%s", e->base2);
    request(&e2, "GET", "/api/v1/groups/api", NULL, NULL, 0, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(jint(r.json, "desired_capacity"), 3);
    resp_free(&r);
    /* the activity names the group */
    struct store_activity *acts = NULL;
    size_t n = 0;
    assert_int_equal(store_activity_list(e->store, "api", 0, 10, &acts, &n), 0);
    assert_int_equal(n, 1);
    assert_non_null(strstr(acts[0].cause, "desired_capacity 2 -> 3"));
    store_activities_free(acts);
}

/* Lifecycle calls for a group another node runs are recorded for its owner (issue 12). */
static void lifecycle_of_a_group_run_elsewhere_goes_to_the_owner(void **state)
{
    struct env *e = *state;
    struct resp r;
    request(e, "POST", "/api/v1/groups/api/instances/i-7/lifecycle", "{\"action\": \"continue\"}",
            TOKEN, 0, &r);
    assert_int_equal(r.status, 202);
    resp_free(&r);
    request(e, "PATCH", "/api/v1/groups/api/instances/i-7", "{\"protected\": true}", TOKEN, 0, &r);
    assert_int_equal(r.status, 202);
    resp_free(&r);
    request(e, "POST", "/api/v1/groups/api/instances/i-7/standby", "{\"bogus\": 1}", TOKEN, 0, &r);
    assert_error(&r, 400, "bogus");
    resp_free(&r);
    request(e, "PATCH", "/api/v1/groups/api/instances/i-7", "{\"protected\": 1}", TOKEN, 0, &r);
    assert_error(&r, 400, "protected");
    resp_free(&r);
    struct store_request *rq = NULL;
    size_t n = 0;
    assert_int_equal(store_request_list(e->store, "api", &rq, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(rq[0].kind, "lifecycle");
    assert_non_null(strstr(rq[0].json, "\"op\":\"hook\""));
    assert_non_null(strstr(rq[0].json, "\"action\":\"continue\""));
    assert_non_null(strstr(rq[1].json, "\"protected\":true"));
    store_requests_free(rq, n);
}

static void instances_of_a_group_run_elsewhere_are_proxied_then_from_the_store(void **state)
{
    struct env *e = *state;
    struct resp r;
    request(e, "GET", "/api/v1/groups/api/instances", NULL, NULL, 0, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(json_array_size(r.json), 3);
    json_t *a3 = find_named(r.json, "a-3"); /* no: instances have "id" */
    assert_null(a3);
    size_t i;
    json_t *o;
    int unhealthy = 0;
    json_array_foreach(r.json, i, o)
    {
        assert_true(json_is_true(json_object_get(o, "live")));
        const char *h = json_string_value(json_object_get(o, "health"));
        assert_non_null(h);
        unhealthy += strcmp(h, fleet_health_name(FLEET_HEALTH_UNHEALTHY)) == 0;
    }
    assert_int_equal(unhealthy, 1); /* the owner's view: health is known there */
    resp_free(&r);
    /* paging through the proxy: the Link header points to this node's route */
    request(e, "GET", "/api/v1/groups/api/instances?limit=2", NULL, NULL, 0, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(json_array_size(r.json), 2);
    assert_non_null(strstr(r.headers, "Link: </api/v1/groups/api/instances?limit=2&after=a-2>"));
    resp_free(&r);
    request(e, "GET", "/api/v1/groups/api/instances?limit=2&after=a-2", NULL, NULL, 0, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(json_array_size(r.json), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(r.json, 0), "id")), "a-3");
    resp_free(&r);
    request(e, "GET", "/api/v1/groups/api", NULL, NULL, 0, &r);
    assert_int_equal(r.status, 200);
    assert_true(json_is_true(json_object_get(r.json, "live")));
    assert_int_equal(jint(r.json, "unhealthy"), 1);
    resp_free(&r);

    /* the owner goes down: the store's rows, marked not live */
    http_free(e->srv2);
    e->srv2 = NULL;
    request(e, "GET", "/api/v1/groups/api/instances", NULL, NULL, 0, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(json_array_size(r.json), 3);
    json_array_foreach(r.json, i, o)
    {
        assert_true(json_is_false(json_object_get(o, "live")));
        assert_true(json_is_null(json_object_get(o, "health")));
        assert_string_equal(json_string_value(json_object_get(o, "provider")), "local");
    }
    resp_free(&r);
    request(e, "GET", "/api/v1/groups/api/instances?limit=1&after=a-1", NULL, NULL, 0, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(json_array_size(r.json), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(r.json, 0), "id")), "a-2");
    assert_non_null(strstr(r.headers, "after=a-2>"));
    resp_free(&r);
    request(e, "GET", "/api/v1/groups/api", NULL, NULL, 0, &r);
    assert_int_equal(r.status, 200);
    assert_true(json_is_false(json_object_get(r.json, "live")));
    assert_int_equal(jint(r.json, "in_service"), 2); /* counted from the store's rows */
    assert_true(json_is_null(json_object_get(r.json, "unhealthy")));
    assert_non_null(json_string_value(json_object_get(r.json, "owner_error")));
    resp_free(&r);
    request(e, "GET", "/api/v1/groups", NULL, NULL, 0, &r);
    assert_int_equal(r.status, 200);
    json_t *api = find_named(r.json, "api");
    assert_non_null(api);
    assert_true(json_is_false(json_object_get(api, "live")));
    assert_string_equal(json_string_value(json_object_get(api, "owner_node")), "node-b");
    resp_free(&r);
}

static void proxied_requests_are_never_forwarded_again(void **state)
{
    struct env *e = *state;
    /* node-b believes node-a runs "batch" (stale view): a proxied read must stop at node-b */
    tn_add(&e->node2, "batch", NULL, "node-a", e->base);
    tn_add(&e->node, "batch", NULL, "node-b", e->base2);
    struct resp r;
    request(e, "GET", "/api/v1/groups/batch/instances", NULL, NULL, 0, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(json_array_size(r.json), 0);
    resp_free(&r);
    request(e, "GET", "/api/v1/groups/batch", NULL, NULL, 0, &r);
    assert_int_equal(r.status, 200);
    assert_true(json_is_false(json_object_get(r.json, "live")));
    resp_free(&r);
}

static void terminate_of_a_group_run_elsewhere_goes_to_the_node(void **state)
{
    struct env *e = *state;
    struct resp r;
    request(e, "POST", "/api/v1/groups/api/instances/a-1/terminate",
            "{\"decrement_desired\": true}", TOKEN, 0, &r);
    assert_int_equal(r.status, 202);
    assert_string_equal(json_string_value(json_object_get(r.json, "group")), "api");
    resp_free(&r);
    assert_int_equal(e->node.terms, 1);
    assert_string_equal(e->node.term_group, "api");
    assert_string_equal(e->node.term_id, "a-1");
    assert_int_equal(e->node.term_decrement, 1);
    request(e, "POST", "/api/v1/groups/api/instances/i-1/terminate", NULL, TOKEN, 0, &r);
    assert_error(&r, 404, "i-1");
    resp_free(&r);
    request(e, "POST", "/api/v1/groups/api/instances/a-1/terminate", "{\"x\": 1}", TOKEN, 0, &r);
    assert_error(&r, 400, "unknown key");
    resp_free(&r);
    assert_int_equal(e->node.terms, 1);
    /* run here without a controller: 503 as before; unknown here: 404 */
    request(e, "POST", "/api/v1/groups/web/instances/i-1/terminate", NULL, TOKEN, 0, &r);
    assert_error(&r, 503, "controller");
    resp_free(&r);
    request(e, "POST", "/api/v1/groups/web/instances/a-1/terminate", NULL, TOKEN, 0, &r);
    assert_error(&r, 404, "a-1");
    resp_free(&r);
}

static void create_and_delete_groups(void **state)
{
    struct env *e = *state;
    struct resp r;
    static const struct {
        const char *body;
        int status;
        const char *needle;
    } cases[] = {
        {"", 400, "no body"},
        {"{oops", 400, "line 1"},
        {"[]", 400, "JSON object"},
        {"{\"group\": 3}", 400, "group: must be an object"},
        {"{\"group\": {}}", 400, "group.name"},
        {"{\"group\": {\"name\": 7}}", 400, "group.name: must be a string"},
        {"{\"group\": {\"name\": \"../etc\"}}", 400, "group.name"},
        {"{\"group\": {\"name\": \"\"}}", 400, "group.name"},
        {"{\"group\": {\"name\": \"web\"}}", 409, "exists"},
        {"{\"group\": {\"name\": \"new\", \"min_size\": \"x\"}}", 400, "group.min_size"},
        {"{\"group\": {\"name\": \"new\"}, \"provider\": {\"type\": \"gce\"}}", 400,
         "provider.type"},
        {"{\"group\": {\"name\": \"new\", \"min_size\": 3, \"max_size\": 1}}", 400, NULL},
        {"{\"group\": {\"name\": \"a\"}, \"group\": {\"name\": \"b\"}}", 400, "duplicate"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        request(e, "POST", "/api/v1/groups", cases[i].body, TOKEN, 0, &r);
        if (r.status != cases[i].status)
            fail_msg("case %zu (%s): status %ld body %s", i, cases[i].body, r.status,
                     r.body ? r.body : "");
        assert_error(&r, cases[i].status, cases[i].needle);
        resp_free(&r);
    }
    request(e, "POST", "/api/v1/groups", "{\"group\": {\"name\": \"new\"}}", NULL, 0, &r);
    assert_error(&r, 401, NULL);
    resp_free(&r);
    request(e, "POST", "/api/v1/groups",
            "{\"group\": {\"name\": \"new\", \"min_size\": 0, \"max_size\": 3, "
            "\"desired_capacity\": 1}, \"provider\": {\"type\": \"local\"}}",
            TOKEN, 0, &r);
    assert_int_equal(r.status, 201);
    assert_string_equal(json_string_value(json_object_get(r.json, "name")), "new");
    assert_int_equal(jint(r.json, "max_size"), 3);
    resp_free(&r);
    request(e, "GET", "/api/v1/groups/new", NULL, NULL, 0, &r);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    request(e, "POST", "/api/v1/groups", "{\"group\": {\"name\": \"new\"}}", TOKEN, 0, &r);
    assert_error(&r, 409, "new");
    resp_free(&r);

    /* delete: refused while instances exist, forced terminates them; the node decides */
    request(e, "DELETE", "/api/v1/groups/api", NULL, NULL, 0, &r);
    assert_error(&r, 401, NULL);
    resp_free(&r);
    request(e, "DELETE", "/api/v1/groups/api", NULL, TOKEN, 0, &r);
    assert_error(&r, 409, "3 instances");
    resp_free(&r);
    assert_int_equal(e->node.deletes, 0);
    request(e, "DELETE", "/api/v1/groups/api?force=maybe", NULL, TOKEN, 0, &r);
    assert_error(&r, 400, "force");
    resp_free(&r);
    request(e, "DELETE", "/api/v1/groups/api?force=true", NULL, TOKEN, 0, &r);
    assert_int_equal(r.status, 202);
    assert_true(json_is_true(json_object_get(r.json, "force")));
    resp_free(&r);
    assert_string_equal(e->node.deleted, "api");
    assert_int_equal(e->node.delete_force, 1);
    request(e, "DELETE", "/api/v1/groups/new", NULL, TOKEN, 0, &r);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    request(e, "DELETE", "/api/v1/groups/ghost", NULL, TOKEN, 0, &r);
    assert_error(&r, 404, "ghost");
    resp_free(&r);
    assert_int_equal(e->node.deletes, 2);
}

static void local_instances_page_by_id(void **state)
{
    struct env *e = *state;
    struct resp r;
    /* ids: i-1, i-"2, i-3: by id '"' (0x22) sorts first */
    request(e, "GET", "/api/v1/groups/web/instances?limit=2", NULL, NULL, 0, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(json_array_size(r.json), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(r.json, 0), "id")),
                        "i-\"2");
    assert_string_equal(json_string_value(json_object_get(json_array_get(r.json, 1), "id")), "i-1");
    assert_non_null(strstr(r.headers, "after=i-1>; rel=\"next\""));
    resp_free(&r);
    request(e, "GET", "/api/v1/groups/web/instances?limit=2&after=i-1", NULL, NULL, 0, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(json_array_size(r.json), 1);
    assert_null(strstr(r.headers, "Link:")); /* the last page */
    resp_free(&r);
    request(e, "GET", "/api/v1/groups/web/instances?after=%22", NULL, NULL, 0, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(json_array_size(r.json), 3);
    resp_free(&r);

    /* the order is kept between requests (pager.c): membership moving between two pages shows
       on the next page, a gone instance never reappears, and a store row written after the
       instance was first paged gives its provider once it exists */
    uint32_t idx;
    assert_int_equal(fleet_find(e->fleet, "i-3", &idx), 0);
    struct fleet_slot gone;
    assert_int_equal(fleet_read(e->fleet, idx, &gone), 0);
    assert_int_equal(fleet_free(e->fleet, idx, gone.generation), 0);
    add_instance(e, "i-4", "127.0.0.1:4", FLEET_PENDING, FLEET_HEALTH_UNKNOWN, -1);
    add_instance(e, "i-0", "127.0.0.1:5", FLEET_PENDING, FLEET_HEALTH_UNKNOWN, -1);
    request(e, "GET", "/api/v1/groups/web/instances?limit=2&after=i-1", NULL, NULL, 0, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(json_array_size(r.json), 1);
    json_t *four = json_array_get(r.json, 0);
    assert_string_equal(json_string_value(json_object_get(four, "id")), "i-4");
    assert_true(json_is_null(json_object_get(four, "provider"))); /* no row yet */
    resp_free(&r);
    put_row(e->store, "web", "i-4", "pending");
    request(e, "GET", "/api/v1/groups/web/instances?limit=1000", NULL, NULL, 0, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(json_array_size(r.json), 4);
    const char *want[] = {"i-\"2", "i-0", "i-1", "i-4"};
    for (size_t i = 0; i < 4; i++)
        assert_string_equal(json_string_value(json_object_get(json_array_get(r.json, i), "id")),
                            want[i]);
    assert_string_equal(json_string_value(json_object_get(json_array_get(r.json, 3), "provider")),
                        "local");
    assert_null(strstr(r.headers, "Link:"));
    resp_free(&r);
    const char *bad[] = {"limit=0", "limit=abc", "limit=1001", "limit=-1", "after="};
    for (size_t i = 0; i < 5; i++) {
        char path[128];
        snprintf(path, sizeof path, "/api/v1/groups/web/instances?%s", bad[i]);
        request(e, "GET", path, NULL, NULL, 0, &r);
        assert_error(&r, 400, NULL);
        resp_free(&r);
    }
}

/* A store row of group "web" with its own zone ("z-" + id). */
static void put_zoned_row(struct store *st, const char *id)
{
    struct store_instance si;
    memset(&si, 0, sizeof si);
    snprintf(si.id, sizeof si.id, "%s", id);
    snprintf(si.group, sizeof si.group, "web");
    snprintf(si.address, sizeof si.address, "127.0.0.9:50051");
    snprintf(si.provider, sizeof si.provider, "ec2");
    snprintf(si.lifecycle, sizeof si.lifecycle, "in-service");
    snprintf(si.zone, sizeof si.zone, "z-%.28s", id);
    si.launched_at_ms = clk_wall_ms();
    assert_int_equal(store_put_instance(st, &si), 0);
}

/* Every instance of the unpaged list has its own row's provider and zone, or null where the
   row is in rowless (ids; NULL: every instance has a row). Returns how many it holds. */
static size_t check_zones(struct env *e, const char *const *rowless, size_t n_rowless)
{
    struct resp r;
    request(e, "GET", "/api/v1/groups/web/instances", NULL, NULL, 0, &r);
    assert_int_equal(r.status, 200);
    size_t i, n = json_array_size(r.json);
    json_t *o;
    json_array_foreach(r.json, i, o)
    {
        const char *id = json_string_value(json_object_get(o, "id"));
        int has_row = 1;
        for (size_t k = 0; k < n_rowless; k++)
            has_row &= strcmp(rowless[k], id) != 0;
        json_t *prov = json_object_get(o, "provider"), *zone = json_object_get(o, "zone");
        if (!has_row) {
            if (!json_is_null(prov) || !json_is_null(zone))
                fail_msg("\"%s\" has no row yet but a provider or zone", id);
            continue;
        }
        char want[40];
        snprintf(want, sizeof want, "z-%.28s", id);
        if (!json_is_string(zone) || strcmp(json_string_value(zone), want) != 0)
            fail_msg("\"%s\": zone %s, want %s", id,
                     json_is_string(zone) ? json_string_value(zone) : "null", want);
        assert_string_equal(json_string_value(prov), "ec2");
    }
    resp_free(&r);
    return n;
}

static void unpaged_instances_follow_the_store_rows(void **state)
{
    struct env *e = *state;
    /* the table's order (the documented order without paging), provider and zone null while
       the instances have no row */
    const char *first[] = {"i-1", "i-\"2", "i-3"};
    assert_int_equal(check_zones(e, first, 3), 3);
    struct resp r;
    request(e, "GET", "/api/v1/instances", NULL, NULL, 0, &r);
    for (size_t i = 0; i < 3; i++)
        assert_string_equal(json_string_value(json_object_get(json_array_get(r.json, i), "id")),
                            first[i]);
    resp_free(&r);
    /* a row written after the instance was first listed shows in the next list */
    put_zoned_row(e->store, "i-\"2");
    const char *two_rowless[] = {"i-1", "i-3"};
    assert_int_equal(check_zones(e, two_rowless, 2), 3);
    /* many at once (the group's rows are read in one go): each gets its own row, half of them
       only one list later */
    char ids[40][16];
    const char *rowless[22] = {"i-1", "i-3"}; /* then the 20 whose rows come later */
    for (int i = 0; i < 40; i++) {
        snprintf(ids[i], sizeof ids[i], "m-%02d", (i * 17) % 40); /* not in id order */
        add_instance(e, ids[i], "127.0.0.5:50051", FLEET_IN_SERVICE, FLEET_HEALTH_HEALTHY, 5.0);
        if (i % 2)
            put_zoned_row(e->store, ids[i]);
        else
            rowless[2 + i / 2] = ids[i];
    }
    assert_int_equal(check_zones(e, rowless, 22), 43);
    for (int i = 2; i < 22; i++)
        put_zoned_row(e->store, rowless[i]);
    assert_int_equal(check_zones(e, rowless, 2), 43);
    /* a slot freed and taken by another instance (the table is full: it must take that one):
       the newcomer's row, not the old one's */
    uint32_t idx;
    size_t total = 43;
    for (; total < fleet_capacity(e->fleet); total++) {
        char id[16];
        snprintf(id, sizeof id, "f-%02zu", total);
        add_instance(e, id, "127.0.0.7:50051", FLEET_IN_SERVICE, FLEET_HEALTH_HEALTHY, 1.0);
        put_zoned_row(e->store, id);
    }
    assert_int_equal(check_zones(e, rowless, 2), total);
    struct fleet_slot gone;
    assert_int_equal(fleet_find(e->fleet, "m-07", &idx), 0);
    assert_int_equal(fleet_read(e->fleet, idx, &gone), 0);
    assert_int_equal(fleet_free(e->fleet, idx, gone.generation), 0);
    add_instance(e, "n-1", "127.0.0.6:50051", FLEET_PENDING, FLEET_HEALTH_UNKNOWN, -1);
    assert_int_equal(fleet_find(e->fleet, "n-1", &idx), 0);
    assert_int_equal(idx, gone.index);
    const char *n1_rowless[] = {"i-1", "i-3", "n-1"};
    assert_int_equal(check_zones(e, n1_rowless, 3), total);
    put_zoned_row(e->store, "n-1");
    assert_int_equal(check_zones(e, rowless, 2), total);
    /* the pages of the same instances agree */
    request(e, "GET", "/api/v1/groups/web/instances?limit=1000", NULL, NULL, 0, &r);
    assert_int_equal(json_array_size(r.json), total);
    json_t *n1 = NULL;
    size_t i;
    json_t *o;
    json_array_foreach(r.json, i, o)
    {
        if (strcmp(json_string_value(json_object_get(o, "id")), "n-1") == 0)
            n1 = o;
    }
    assert_non_null(n1);
    assert_string_equal(json_string_value(json_object_get(n1, "zone")), "z-n-1");
    resp_free(&r);
}

struct every_field {
    int64_t now;
};

static void set_every_field(struct fleet_slot *s, void *arg)
{
    int64_t now = ((struct every_field *)arg)->now;
    s->lifecycle = FLEET_IN_SERVICE;
    s->health = FLEET_HEALTH_UNHEALTHY;
    s->registered = 1;
    s->app_healthy = 0;
    s->adopted = 1;
    s->seed_protocol = 0;
    s->protect = 1;
    s->pid = 4242;
    s->load = 1.0 / 3.0;
    s->cpu_pct = 100;
    s->mem_pct = -1;
    s->load1 = 1e-7;
    /* dates minutes apart that share the answer's cache line, one in minute 0, one past year
       9999 */
    s->in_service_at_ms = now - 8 * 60000;
    s->last_seen_ms = 1500; /* the first minute there is */
    s->health_changed_ms = now - 16 * 60000 - 999;
    s->hook_deadline_ms = 253402300800123ll;
    s->polls_ok = 123456789012ull;
    s->polls_failed = 3;
    s->last_rtt_us = 1234;
}

static void iso_equal(json_t *o, const char *key, int64_t ms)
{
    char want[40];
    clk_iso8601(ms, want, sizeof want);
    const char *got = json_string_value(json_object_get(o, key));
    if (!got || strcmp(got, want) != 0)
        fail_msg("%s: %s, want %s", key, got ? got : "(not a string)", want);
}

/* The documented keys with the slot's values, the same in a page and in the unpaged list. */
static void instance_json_has_every_field(void **state)
{
    struct env *e = *state;
    uint32_t idx;
    assert_int_equal(fleet_find(e->fleet, "i-3", &idx), 0);
    struct fleet_slot s;
    assert_int_equal(fleet_read(e->fleet, idx, &s), 0);
    struct every_field ef = {clk_wall_ms()};
    assert_int_equal(fleet_update(e->fleet, idx, s.generation, set_every_field, &ef), 0);
    assert_int_equal(fleet_read(e->fleet, idx, &s), 0);
    put_zoned_row(e->store, "i-3");
    struct resp all, page;
    request(e, "GET", "/api/v1/instances", NULL, NULL, 0, &all);
    request(e, "GET", "/api/v1/instances?limit=1&after=i-2", NULL, NULL, 0, &page);
    assert_int_equal(all.status, 200);
    assert_int_equal(page.status, 200);
    json_t *o = json_array_get(all.json, 2);
    assert_true(json_equal(o, json_array_get(page.json, 0)));
    assert_int_equal(json_object_size(o), 26);
    assert_string_equal(json_string_value(json_object_get(o, "id")), "i-3");
    assert_string_equal(json_string_value(json_object_get(o, "address")), "127.0.0.4:50051");
    assert_string_equal(json_string_value(json_object_get(o, "lifecycle")), "in-service");
    assert_string_equal(json_string_value(json_object_get(o, "health")), "unhealthy");
    assert_true(json_is_real(json_object_get(o, "load")));
    assert_float_equal(json_real_value(json_object_get(o, "load")), 1.0 / 3.0, 1e-11);
    assert_true(json_is_real(json_object_get(o, "cpu_pct"))); /* 100.0, not the integer 100 */
    assert_float_equal(json_real_value(json_object_get(o, "cpu_pct")), 100, 0);
    assert_true(json_is_null(json_object_get(o, "mem_pct")));
    assert_float_equal(json_real_value(json_object_get(o, "load1")), 1e-7, 1e-20);
    iso_equal(o, "launched_at", s.launched_at_ms);
    assert_int_equal(jint(o, "launched_at_ms"), s.launched_at_ms);
    iso_equal(o, "in_service_at", ef.now - 8 * 60000);
    iso_equal(o, "last_seen_at", 1500);
    iso_equal(o, "health_changed_at", ef.now - 16 * 60000 - 999);
    iso_equal(o, "hook_deadline_at", 253402300800123ll);
    assert_true(json_is_true(json_object_get(o, "registered")));
    assert_true(json_is_false(json_object_get(o, "app_healthy")));
    assert_true(json_is_true(json_object_get(o, "adopted")));
    assert_true(json_is_false(json_object_get(o, "seed_protocol")));
    assert_true(json_is_true(json_object_get(o, "protected")));
    assert_true(json_is_true(json_object_get(o, "live")));
    assert_int_equal(jint(o, "pid"), 4242);
    assert_int_equal(jint(o, "polls_ok"), 123456789012ll);
    assert_int_equal(jint(o, "polls_failed"), 3);
    assert_float_equal(json_real_value(json_object_get(o, "rtt_ms")), 1.234, 1e-12);
    assert_string_equal(json_string_value(json_object_get(o, "provider")), "ec2");
    assert_string_equal(json_string_value(json_object_get(o, "zone")), "z-i-3");
    /* no hook wait, never seen: null */
    json_t *first = json_array_get(all.json, 0);
    assert_true(json_is_null(json_object_get(first, "hook_deadline_at")));
    assert_true(json_is_null(json_object_get(first, "last_seen_at")));
    assert_true(json_is_null(json_object_get(first, "provider")));
    resp_free(&all);
    resp_free(&page);
}

static void activities_and_history_are_per_group(void **state)
{
    struct env *e = *state;
    const char *groups[] = {"web", "api", "api"};
    for (int i = 0; i < 3; i++) {
        struct store_activity a = {0};
        snprintf(a.group, sizeof a.group, "%s", groups[i]);
        a.at_ms = clk_wall_ms();
        snprintf(a.kind, sizeof a.kind, "scale");
        snprintf(a.cause, sizeof a.cause, "%s %d", groups[i], i);
        snprintf(a.status, sizeof a.status, "ok");
        assert_int_equal(store_activity_add(e->store, &a, NULL), 0);
    }
    struct store_metric_group m = {.at_ms = clk_wall_ms() - 1000, .avg_load = 33, .desired = 2};
    snprintf(m.group, sizeof m.group, "api");
    assert_int_equal(store_metrics_add(e->store, &m, 1, NULL, 0), 0);
    struct resp r;
    request(e, "GET", "/api/v1/groups/api/activities", NULL, NULL, 0, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(json_array_size(r.json), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(r.json, 0), "cause")),
                        "api 2");
    resp_free(&r);
    request(e, "GET", "/api/v1/groups/web/activities?limit=1000", NULL, NULL, 0, &r);
    assert_int_equal(json_array_size(r.json), 1);
    resp_free(&r);
    request(e, "GET", "/api/v1/groups/api/metrics/history?since=5m", NULL, NULL, 0, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(json_array_size(json_object_get(r.json, "group")), 1);
    resp_free(&r);
    request(e, "GET", "/api/v1/groups/web/metrics/history?since=5m", NULL, NULL, 0, &r);
    assert_int_equal(json_array_size(json_object_get(r.json, "group")), 0);
    resp_free(&r);
    request(e, "GET", "/api/v1/groups/batch/activities?before=x", NULL, NULL, 0, &r);
    assert_error(&r, 400, "before");
    resp_free(&r);
}

static void cluster_view(void **state)
{
    struct env *e = *state;
    struct resp r;
    request(e, "GET", "/api/v1/cluster", NULL, NULL, 0, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(json_string_value(json_object_get(r.json, "mode")), "single");
    json_t *nodes = json_object_get(r.json, "nodes");
    assert_int_equal(json_array_size(nodes), 1);
    json_t *n0 = json_array_get(nodes, 0);
    assert_string_equal(json_string_value(json_object_get(n0, "name")), "node-a");
    assert_int_equal(json_array_size(json_object_get(n0, "groups")), 3);
    resp_free(&r);
    e->node.cluster = json_pack(
        "{s:s, s:[{s:s, s:s, s:b, s:[s], s:{s:b, s:i}}, {s:s, s:s, s:b, s:[s], s:{s:b, s:i}}]}",
        "self", "node-a", "nodes", "name", "node-a", "api", e->base, "alive", 1, "groups", "web",
        "lease", "ok", 1, "ttl_ms", 5000, "name", "node-b", "api", e->base2, "alive", 1, "groups",
        "api", "lease", "ok", 0, "ttl_ms", 5000);
    assert_non_null(e->node.cluster);
    request(e, "GET", "/api/v1/cluster", NULL, NULL, 0, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(json_string_value(json_object_get(r.json, "mode")), "cluster");
    nodes = json_object_get(r.json, "nodes");
    assert_int_equal(json_array_size(nodes), 2);
    assert_true(
        json_is_false(json_object_get(json_object_get(json_array_get(nodes, 1), "lease"), "ok")));
    resp_free(&r);
    /* a node that describes the cluster without nodes is a 500, not a crash */
    json_decref(e->node.cluster);
    e->node.cluster = json_pack("{s:s}", "self", "node-a");
    request(e, "GET", "/api/v1/cluster", NULL, NULL, 0, &r);
    assert_error(&r, 500, "nodes");
    resp_free(&r);
}

static void metrics_are_labelled_by_the_groups_run_here(void **state)
{
    struct env *e = *state;
    struct resp r;
    request(e, "GET", "/metrics", NULL, NULL, 0, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "asgd_desired_capacity{group=\"web\"} 2\n"));
    assert_null(strstr(r.body, "group=\"api\""));   /* run by node-b */
    assert_null(strstr(r.body, "group=\"batch\"")); /* run by nobody known */
    assert_non_null(strstr(r.body, "asgd_groups 1\n"));
    resp_free(&r);
    struct env e2 = *e;
    snprintf(e2.base, sizeof e2.base, "%s", e->base2);
    request(&e2, "GET", "/metrics", NULL, NULL, 0, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "asgd_instances{group=\"api\",lifecycle=\"in-service\"} 2\n"));
    assert_non_null(strstr(r.body, "asgd_instance_load{group=\"api\",instance_id=\"a-3\"} 30\n"));
    assert_null(strstr(r.body, "group=\"web\""));
    resp_free(&r);
    /* two groups in one page: each family announced once */
    tn_add(&e->node, "batch", e->fleet2, NULL, NULL);
    request(e, "GET", "/metrics", NULL, NULL, 0, &r);
    assert_int_equal(r.status, 200);
    const char *p = strstr(r.body, "# TYPE asgd_instances gauge");
    assert_non_null(p);
    assert_null(strstr(p + 1, "# TYPE asgd_instances gauge"));
    assert_non_null(strstr(r.body, "asgd_min_size{group=\"batch\"} 1\n"));
    assert_non_null(strstr(r.body, "asgd_min_size{group=\"web\"} 1\n"));
    resp_free(&r);
}

static void readyz_reports_the_node_reason(void **state)
{
    struct env *e = *state;
    char err[512];
    struct http_server *s = NULL;
    struct test_node tn = {.store = e->store};
    tn_add(&tn, "web", e->fleet, NULL, NULL);
    tn.not_ready = "etcd quorum lost: no provider action until it is back";
    struct http_deps d = {
        .listen = "127.0.0.1:0", .store = e->store, .ops = &tn_ops_ready, .ops_arg = &tn};
    assert_int_equal(http_start(&d, &s, err, sizeof err), 0);
    struct env e2 = *e;
    snprintf(e2.base, sizeof e2.base, "http://127.0.0.1:%u", (unsigned)http_bound_port(s));
    struct resp r;
    request(&e2, "GET", "/readyz", NULL, NULL, 0, &r);
    assert_error(&r, 503, "quorum lost");
    resp_free(&r);
    tn.not_ready = NULL;
    request(&e2, "GET", "/readyz", NULL, NULL, 0, &r);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    /* no create/delete ops: 501, not a crash */
    request(&e2, "POST", "/api/v1/groups", "{\"group\": {\"name\": \"x\"}}", NULL, 0, &r);
    assert_error(&r, 401, NULL); /* no token configured: read-only first */
    resp_free(&r);
    http_free(s);
    assert_int_equal(tn.gets, tn.puts);
}

static void node_without_optional_ops_answers_501_and_503(void **state)
{
    struct env *e = *state;
    char err[512];
    struct http_server *s = NULL;
    struct test_node tn = {.store = e->store};
    tn_add(&tn, "web", e->fleet, NULL, NULL);
    tn_add(&tn, "api", NULL, "node-b", "http://127.0.0.1:1");
    static const struct http_node_ops minimal = {.group_get = tn_group_get};
    struct http_deps d = {.listen = "127.0.0.1:0",
                          .token = TOKEN,
                          .store = e->store,
                          .ops = &minimal,
                          .ops_arg = &tn,
                          .proxy_timeout_ms = 500};
    assert_int_equal(http_start(&d, &s, err, sizeof err), 0);
    struct env e2 = *e;
    snprintf(e2.base, sizeof e2.base, "http://127.0.0.1:%u", (unsigned)http_bound_port(s));
    struct resp r;
    request(&e2, "POST", "/api/v1/groups", "{\"group\": {\"name\": \"x\"}}", TOKEN, 0, &r);
    assert_error(&r, 501, NULL);
    resp_free(&r);
    request(&e2, "DELETE", "/api/v1/groups/web", NULL, TOKEN, 0, &r);
    assert_error(&r, 501, NULL);
    resp_free(&r);
    request(&e2, "POST", "/api/v1/groups/api/instances/a-1/terminate", NULL, TOKEN, 0, &r);
    assert_error(&r, 503, "owner");
    resp_free(&r);
    /* owner_api that refuses connections: the store's rows, quickly */
    request(&e2, "GET", "/api/v1/groups/api/instances", NULL, NULL, 0, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(json_array_size(r.json), 3);
    resp_free(&r);
    http_free(s);
}

/* ---- pure parts ---------------------------------------------------------------------------- */

static void token_compare_and_load(void **state)
{
    struct env *e = *state;
    assert_true(http_token_equal("abc", "abc"));
    assert_false(http_token_equal("abc", "abd"));
    assert_false(http_token_equal("abc", "abcd"));
    assert_false(http_token_equal("", "a"));
    assert_false(http_token_equal(NULL, "a"));
    char path[128], err[256];
    snprintf(path, sizeof path, "%s/tok", e->dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("  tok-123 \nsecond line\n", f);
    fclose(f);
    char *t = NULL;
    assert_int_equal(http_token_load(path, &t, err, sizeof err), 0);
    assert_string_equal(t, "tok-123");
    free(t);
    f = fopen(path, "w");
    fputs("\n  \n", f);
    fclose(f);
    assert_int_equal(http_token_load(path, &t, err, sizeof err), -1);
    assert_non_null(strstr(err, "no token"));
    snprintf(path, sizeof path, "%s/missing", e->dir);
    assert_int_equal(http_token_load(path, &t, err, sizeof err), -1);
    assert_non_null(strstr(err, "cannot read"));
}

/* [group] metrics_instances_max: per-instance series only for groups of at most that many
   instances (0: the default, 1000; -1: never), a comment naming the group otherwise. */
static void prom_per_instance_cut_follows_the_setting(void **state)
{
    (void)state;
    struct fleet_slot s[2];
    memset(s, 0, sizeof s);
    for (int i = 0; i < 2; i++) {
        snprintf(s[i].id, sizeof s[i].id, "i-%d", i);
        s[i].lifecycle = FLEET_IN_SERVICE;
        s[i].health = FLEET_HEALTH_HEALTHY;
        s[i].load = 10 + i;
    }
    struct group_settings g;
    group_settings_default(&g, "web");
    struct http_prom_group pg = {.group = "web", .settings = &g, .slots = s, .n_slots = 2};
    struct http_prom_input in = {.groups = &pg, .n_groups = 1};
    static const struct {
        int max, series;
        const char *comment;
    } cases[] = {
        {1, 0, "# per-instance series of group \"web\" left out: 2 instances (more than 1)\n"},
        {2, 1, NULL},
        {0, 1, NULL},
        {-1, 0, "# per-instance series of group \"web\" left out: metrics_instances_max is -1\n"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        g.metrics_instances_max = cases[i].max;
        struct http_buf b = HTTP_BUF_INIT;
        assert_int_equal(http__prom_render(&b, &in), 0);
        const char *load =
            strstr(b.p, "asgd_instance_load{group=\"web\",instance_id=\"i-1\"} 11\n");
        const char *healthy =
            strstr(b.p, "asgd_instance_healthy{group=\"web\",instance_id=\"i-0\"");
        if ((load != NULL) != cases[i].series || (healthy != NULL) != cases[i].series)
            fail_msg("metrics_instances_max %d: per-instance series %s:\n%s", cases[i].max,
                     cases[i].series ? "missing" : "written", b.p);
        if (cases[i].comment ? !strstr(b.p, cases[i].comment)
                             : strstr(b.p, "# per-instance series") != NULL)
            fail_msg("metrics_instances_max %d: comment line wrong:\n%s", cases[i].max, b.p);
        /* the group's own families stay */
        assert_non_null(
            strstr(b.p, "asgd_instances_by_health{group=\"web\",health=\"healthy\"} 2\n"));
        http__buf_release(&b);
    }
}

static void prom_render_escapes_and_sums(void **state)
{
    (void)state;
    struct fleet_slot s[2];
    memset(s, 0, sizeof s);
    snprintf(s[0].id, sizeof s[0].id, "a\\b\nc");
    s[0].lifecycle = FLEET_IN_SERVICE;
    s[0].health = FLEET_HEALTH_HEALTHY;
    s[0].load = 12.5;
    snprintf(s[1].id, sizeof s[1].id, "x");
    s[1].lifecycle = FLEET_TERMINATING;
    s[1].load = -1;
    struct stats st;
    memset(&st, 0, sizeof st);
    struct ctl_status cs = {.avg_load = 12.5, .last_tick_ms = 1000, .provider_ok = 1};
    struct http_prom_group pg = {.group = "g\"1", .slots = s, .n_slots = 2, .ctl = &cs};
    struct http_prom_input in = {.groups = &pg, .n_groups = 1, .stats = &st};
    struct http_buf b = HTTP_BUF_INIT;
    assert_int_equal(http__prom_render(&b, &in), 0);
    assert_non_null(strstr(b.p, "instance_id=\"a\\\\b\\nc\"} 12.5\n"));
    assert_non_null(strstr(b.p, "group=\"g\\\"1\""));
    assert_non_null(strstr(b.p, "asgd_instances{group=\"g\\\"1\",lifecycle=\"terminating\"} 1\n"));
    assert_non_null(strstr(b.p, "asgd_average_load{group=\"g\\\"1\"} 12.5\n"));
    assert_non_null(strstr(b.p, "asgd_poll_duration_seconds_count 0\n"));
    assert_null(strstr(b.p, "asgd_desired_capacity")); /* no settings known */
    /* every sample line belongs to a family announced before it with HELP and TYPE */
    char *text = strdup(b.p);
    assert_non_null(text);
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#')
            continue;
        char fam[128], want[160];
        snprintf(fam, sizeof fam, "%.*s", (int)strcspn(line, "{ "), line);
        const char *sufs[] = {"_bucket", "_sum", "_count"};
        for (int k = 0; k < 3 && strncmp(fam, "asgd_poll_duration_seconds_", 27) == 0; k++) {
            size_t fl = strlen(fam), sl = strlen(sufs[k]);
            if (fl > sl && strcmp(fam + fl - sl, sufs[k]) == 0)
                fam[fl - sl] = '\0';
        }
        snprintf(want, sizeof want, "# TYPE %s ", fam);
        char *type_at = strstr(b.p, want);
        snprintf(want, sizeof want, "# HELP %s ", fam);
        if (!type_at || !strstr(b.p, want))
            fail_msg("sample \"%s\" has no HELP/TYPE for family %s", line, fam);
    }
    free(text);
    http__buf_release(&b);
}

/* The text json_dumps() gives v as the API encodes answers. */
static char *jansson_text(json_t *v)
{
    char *t = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT | JSON_REAL_PRECISION(12));
    json_decref(v);
    assert_non_null(t);
    return t;
}

/* The buffer's JSON values are jansson's text, byte for byte (the instance list is written
   with them, everything else with jansson). */
static void buf_json_writes_what_jansson_writes(void **state)
{
    (void)state;
    const double reals[] = {0.0,
                            -0.0,
                            1.0,
                            3.0,
                            -7.25,
                            0.1,
                            1.0 / 3.0,
                            100.0,
                            99.5,
                            1e-4,
                            1e-5,
                            1.5e-7,
                            1e11,
                            1e12,
                            1e15,
                            1e20,
                            1e100,
                            -2e-300,
                            5e-324,
                            1.7976931348623157e308,
                            123456789012.5,
                            12.3456789012345,
                            0.000123456789012345,
                            42.0};
    for (size_t i = 0; i < sizeof reals / sizeof reals[0]; i++) {
        struct http_buf b = HTTP_BUF_INIT;
        assert_int_equal(http__buf_json_real(&b, reals[i]), 0);
        char *want = jansson_text(json_real(reals[i]));
        if (strcmp(b.p, want) != 0)
            fail_msg("%.17g: %s, jansson %s", reals[i], b.p, want);
        free(want);
        http__buf_release(&b);
    }
    /* the shortcut past printf (most values in [1e-4, 1e12)) against printf itself: random
       doubles over 20 decades, short decimals (1/100 and 1/1000 steps, as loads often are),
       and the doubles right around each power of ten and each half-way point */
    uint64_t rnd = 0x9E3779B97F4A7C15ull;
    for (int i = 0; i < 60000; i++) {
        rnd ^= rnd << 13;
        rnd ^= rnd >> 7;
        rnd ^= rnd << 17;
        double u = (double)(rnd >> 11) / 9007199254740992.0, v;
        int kind = i % 4;
        if (kind == 0)
            v = pow(10.0, -8.0 + 22.0 * u);
        else if (kind == 1)
            v = (double)(rnd % 10000000) / 100.0;
        else if (kind == 2)
            v = (double)(rnd % 100000000) / 1000.0;
        else
            v = nextafter(pow(10.0, (double)(int)(rnd % 20) - 6) * (1 + (rnd >> 40) % 2 * 0.5),
                          (rnd >> 20) % 2 ? 0.0 : INFINITY);
        if (i % 8 < 4)
            v = -v;
        struct http_buf b = HTTP_BUF_INIT;
        assert_int_equal(http__buf_json_real(&b, v), 0);
        char *want = jansson_text(json_real(v));
        if (strcmp(b.p, want) != 0)
            fail_msg("%.17g: %s, jansson %s", v, b.p, want);
        free(want);
        http__buf_release(&b);
    }
    const long long ints[] = {0, 1, -1, 4242, 1764670000123ll, LLONG_MAX, LLONG_MIN};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        struct http_buf b = HTTP_BUF_INIT;
        assert_int_equal(http__buf_json_int(&b, ints[i]), 0);
        char *want = jansson_text(json_integer(ints[i]));
        assert_string_equal(b.p, want);
        free(want);
        http__buf_release(&b);
    }
    const char *strs[] = {"",
                          "i-0abc",
                          "quote\" back\\slash /slash",
                          "\x01\x02\x1f\b\f\n\r\t\x7f",
                          "z\xc3\xa9ro \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf",
                          "[fe80::1%eth0]:50051"};
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++) {
        struct http_buf b = HTTP_BUF_INIT;
        assert_int_equal(http__buf_json_str(&b, strs[i]), 0);
        char *want = jansson_text(json_string(strs[i]));
        assert_string_equal(b.p, want);
        free(want);
        http__buf_release(&b);
    }
    /* what jansson refuses (not UTF-8) still gives valid JSON: U+FFFD for each bad byte */
    const char *bad[][2] = {
        {"a\xff"
         "b",
         "\"a\\uFFFDb\""},
        {"\xc3", "\"\\uFFFD\""},                                  /* cut short */
        {"\xc0\xaf", "\"\\uFFFD\\uFFFD\""},                       /* overlong '/' */
        {"\xed\xa0\x80", "\"\\uFFFD\\uFFFD\\uFFFD\""},            /* a surrogate */
        {"\xf4\x90\x80\x80", "\"\\uFFFD\\uFFFD\\uFFFD\\uFFFD\""}, /* above U+10FFFF */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct http_buf b = HTTP_BUF_INIT;
        assert_int_equal(http__buf_json_str(&b, bad[i][0]), 0);
        assert_string_equal(b.p, bad[i][1]);
        json_t *back = json_loads(b.p, JSON_DECODE_ANY, NULL);
        assert_non_null(back);
        json_decref(back);
        http__buf_release(&b);
    }
    struct http_buf b = HTTP_BUF_INIT;
    assert_int_equal(http__buf_json_str(&b, NULL), 0);
    assert_int_equal(http__buf_json_real(&b, NAN), 0);
    assert_int_equal(http__buf_json_real(&b, -INFINITY), 0);
    assert_string_equal(b.p, "nullnullnull");
    http__buf_release(&b);
    /* a buffer's own cap */
    b.max = 8;
    assert_int_equal(http__buf_json_str(&b, "abc"), 0);
    assert_int_equal(http__buf_json_str(&b, "abc"), -1);
    assert_true(b.oom);
    http__buf_release(&b);
}

static void group_patch_pure(void **state)
{
    (void)state;
    struct group_settings g;
    group_settings_default(&g, "default");
    g.min_size = 1;
    g.max_size = 4;
    g.desired_capacity = 3;
    char err[256];
    json_t *p = json_pack("{s:i}", "max_size", 2);
    assert_int_equal(http__group_patch(&g, p, 0, err, sizeof err), 0);
    assert_int_equal(g.desired_capacity, 2); /* clamped into the new range */
    json_decref(p);
    p = json_pack("{s:{s:s, s:f, s:i}}", "policy", "type", "target", "target", 55.0,
                  "evaluation_period", 20);
    assert_int_equal(http__group_patch(&g, p, 0, err, sizeof err), 0);
    assert_int_equal(g.policy.type, POLICY_TARGET);
    assert_int_equal(g.policy.evaluation_period_ms, 20000); /* a bare number is seconds */
    json_decref(p);
    p = json_pack("{s:{s:s}}", "health", "timeout", "1h");
    assert_int_equal(http__group_patch(&g, p, 0, err, sizeof err), -1);
    assert_non_null(strstr(err, "health.timeout"));
    json_decref(p);
    struct group_settings a = g, b = g;
    b.max_size = 3;
    b.policy.cooldown_ms = 1500;
    char diff[256];
    http__group_diff(&a, &b, diff, sizeof diff);
    assert_string_equal(diff, "max_size 2 -> 3, policy.cooldown "
                              "0s -> 1500ms");
    http__group_diff(&a, &a, diff, sizeof diff);
    assert_string_equal(diff, "no change");
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(unknown_route_is_404_json, setup, teardown),
        cmocka_unit_test_setup_teardown(wrong_method_is_405_with_allow, setup, teardown),
        cmocka_unit_test_setup_teardown(dashboard_is_embedded, setup, teardown),
        cmocka_unit_test_setup_teardown(get_group_has_settings_and_counts, setup, teardown),
        cmocka_unit_test_setup_teardown(patch_needs_the_token, setup, teardown),
        cmocka_unit_test_setup_teardown(patch_persists_and_records_activity, setup, teardown),
        cmocka_unit_test_setup_teardown(patch_accepts_any_content_type, setup, teardown),
        cmocka_unit_test_setup_teardown(patch_rejects_bad_input_with_messages, setup, teardown),
        cmocka_unit_test_setup_teardown(patch_max_size_grows_the_table, setup, teardown),
        cmocka_unit_test_setup_teardown(patch_with_stale_revision_is_409, setup, teardown),
        cmocka_unit_test_setup_teardown(oversized_bodies_are_413, setup, teardown),
        cmocka_unit_test_setup_teardown(instances_come_from_the_fleet_table, setup, teardown),
        cmocka_unit_test_setup_teardown(terminate_checks_auth_body_and_id, setup, teardown),
        cmocka_unit_test_setup_teardown(activities_newest_first_with_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(history_returns_series_since, setup, teardown),
        cmocka_unit_test_setup_teardown(metrics_page_has_the_families, setup, teardown),
        cmocka_unit_test_setup_teardown(probes, setup, teardown),
        cmocka_unit_test_setup_teardown(start_errors_are_explained, setup, teardown),
        cmocka_unit_test_setup_teardown(without_token_the_api_is_read_only, setup, teardown),
        cmocka_unit_test_setup_teardown(token_compare_and_load, setup, teardown),
        cmocka_unit_test_setup_teardown(groups_list_every_group_with_counts_and_owner, setup_multi,
                                        teardown),
        cmocka_unit_test_setup_teardown(single_group_routes_refuse_several_groups, setup_multi,
                                        teardown),
        cmocka_unit_test_setup_teardown(group_routes_check_names_and_bodies, setup_multi, teardown),
        cmocka_unit_test_setup_teardown(patch_of_a_group_run_elsewhere_writes_the_store,
                                        setup_multi, teardown),
        cmocka_unit_test_setup_teardown(lifecycle_of_a_group_run_elsewhere_goes_to_the_owner,
                                        setup_multi, teardown),
        cmocka_unit_test_setup_teardown(
            instances_of_a_group_run_elsewhere_are_proxied_then_from_the_store, setup_multi,
            teardown),
        cmocka_unit_test_setup_teardown(proxied_requests_are_never_forwarded_again, setup_multi,
                                        teardown),
        cmocka_unit_test_setup_teardown(terminate_of_a_group_run_elsewhere_goes_to_the_node,
                                        setup_multi, teardown),
        cmocka_unit_test_setup_teardown(create_and_delete_groups, setup_multi, teardown),
        cmocka_unit_test_setup_teardown(local_instances_page_by_id, setup_multi, teardown),
        cmocka_unit_test_setup_teardown(unpaged_instances_follow_the_store_rows, setup, teardown),
        cmocka_unit_test_setup_teardown(instance_json_has_every_field, setup, teardown),
        cmocka_unit_test_setup_teardown(activities_and_history_are_per_group, setup_multi,
                                        teardown),
        cmocka_unit_test_setup_teardown(cluster_view, setup_multi, teardown),
        cmocka_unit_test_setup_teardown(metrics_are_labelled_by_the_groups_run_here, setup_multi,
                                        teardown),
        cmocka_unit_test_setup_teardown(readyz_reports_the_node_reason, setup, teardown),
        cmocka_unit_test_setup_teardown(node_without_optional_ops_answers_501_and_503, setup_multi,
                                        teardown),
        cmocka_unit_test(prom_render_escapes_and_sums),
        cmocka_unit_test(prom_per_instance_cut_follows_the_setting),
        cmocka_unit_test(group_patch_pure),
        cmocka_unit_test(buf_json_writes_what_jansson_writes),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
