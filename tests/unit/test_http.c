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

struct env {
    char dir[64];
    char fleet_name[64];
    struct fleet *fleet;
    struct store *store; /* the test's own handle */
    struct http_server *srv;
    char base[64];
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
    struct http_deps d = {
        .listen = "127.0.0.1:0",
        .token = TOKEN,
        .group = "web",
        .fleet = e->fleet,
        .store_dir = e->dir,
        .ctl = NULL,
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
        {"{\"max_size\": 100}", "capacity of 64"},
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
    struct http_deps d = {
        .listen = "nonsense", .group = "web", .fleet = e->fleet, .store_dir = e->dir};
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
    d.store_dir = "/nonexistent/dir/for/asgd";
    assert_int_equal(http_start(&d, &s, err, sizeof err), -1);
    assert_non_null(strstr(err, "store"));
    d.fleet = NULL;
    assert_int_equal(http_start(&d, &s, err, sizeof err), -1);
    http_free(NULL);
}

static void without_token_the_api_is_read_only(void **state)
{
    struct env *e = *state;
    char err[512];
    struct http_server *s = NULL;
    struct http_deps d = {.listen = "127.0.0.1:0",
                          .token = NULL,
                          .group = "web",
                          .fleet = e->fleet,
                          .store_dir = e->dir};
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
    struct http_prom_input in = {
        .group = "g\"1", .slots = s, .n_slots = 2, .ctl = &cs, .stats = &st};
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
        cmocka_unit_test(prom_render_escapes_and_sums),
        cmocka_unit_test(group_patch_pure),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
