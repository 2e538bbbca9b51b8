/*
 * cmd.c - asgctl's subcommands, one function each.
 *
 * Each command validates its own arguments first (exit 2 with a usage line,
 * before any network traffic), makes one API call, and prints the answer:
 * an aligned table or key/value block by default, the API's JSON with --json.
 * Group commands go to /api/v1/groups/NAME/... with -g NAME, else to the
 * single-group routes, which asgd answers while it has exactly one group.
 */
#include "cli/cli.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cfg.h"

#include "common/banned.h"

/* ---- small helpers ---------------------------------------------------------------------- */

static const char *str_of(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "-";
}

enum numfmt { NF_INT, NF_G, NF_1, NF_PCT };

/* Number field formatted as an integer, %g, one decimal or a percentage; "-" when null. */
static const char *num_of(const json_t *o, const char *key, enum numfmt f, char *buf, size_t len)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_number(v))
        return "-";
    double d = json_number_value(v);
    switch (f) {
    case NF_INT:
        snprintf(buf, len, "%.0f", d);
        break;
    case NF_G:
        snprintf(buf, len, "%g", d);
        break;
    case NF_1:
        snprintf(buf, len, "%.1f", d);
        break;
    case NF_PCT:
        snprintf(buf, len, "%.1f%%", d);
        break;
    }
    return buf;
}

static int parse_int(const char *s, long lo, long hi, long *out)
{
    if (!s || !*s)
        return -1;
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

/* "2026-11-29T07:30:00.123Z" -> "2026-11-29 07:30:00" for tables. */
static const char *short_time(const char *iso, char *buf, size_t len)
{
    if (!iso || strlen(iso) < 19)
        return "-";
    snprintf(buf, len, "%.10s %.8s", iso, iso + 11);
    return buf;
}

int cli_name_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > 63 || s[0] == '.')
        return 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '-' || ch == '_' || ch == '.'))
            return 0;
    }
    return 1;
}

int cli_group_path(const struct cli *c, const char *sub, const char *legacy, char *buf, size_t len)
{
    int n;
    if (!c->group)
        n = snprintf(buf, len, "%s", legacy);
    else if (!cli_name_ok(c->group)) {
        fprintf(stderr, "asgctl: \"%s\" is not a group name\n", c->group);
        return -1;
    } else
        n = snprintf(buf, len, "/api/v1/groups/%s%s", c->group, sub);
    if (n < 0 || (size_t)n >= len) {
        fprintf(stderr, "asgctl: request path too long\n");
        return -1;
    }
    return 0;
}

/* ---- status ----------------------------------------------------------------------------- */

int cli_cmd_status(const struct cli *c, int argc, char **argv)
{
    if (argc != 1) {
        fprintf(stderr, "usage: asgctl status\n");
        return CLI_EUSAGE;
    }
    char path[256];
    if (cli_group_path(c, "", "/api/v1/group", path, sizeof path))
        return CLI_EUSAGE;
    json_t *g = NULL;
    int rc = cli_call(c, "GET", path, NULL, &g);
    if (rc)
        return rc;
    if (c->json) {
        cli_print_json(g);
        json_decref(g);
        return CLI_OK;
    }
    json_t *p = json_object_get(g, "policy");
    json_t *h = json_object_get(g, "health");
    char a[64], b[64], d[64], e[64];
    printf("group         %s\n", str_of(g, "name"));
    json_t *owner = json_object_get(g, "owner_node");
    if (json_is_string(owner) || json_is_false(json_object_get(g, "live")))
        printf("owner         %s%s\n", json_is_string(owner) ? json_string_value(owner) : "-",
               json_is_false(json_object_get(g, "live"))
                   ? " (not reachable: counts from the store, no health)"
                   : "");
    printf("size          min %s  desired %s  max %s\n", num_of(g, "min_size", NF_INT, a, sizeof a),
           num_of(g, "desired_capacity", NF_INT, b, sizeof b),
           num_of(g, "max_size", NF_INT, d, sizeof d));
    printf("instances     %s in service, %s pending, %s unhealthy, %s terminating\n",
           num_of(g, "in_service", NF_INT, a, sizeof a), num_of(g, "pending", NF_INT, b, sizeof b),
           num_of(g, "unhealthy", NF_INT, d, sizeof d),
           num_of(g, "terminating", NF_INT, e, sizeof e));
    /* lifecycle (issue 12): standby, hook waits, protection, the hooks */
    printf("lifecycle     %s standby, %s waiting for a hook, %s protected from scale-in\n",
           num_of(g, "standby", NF_INT, a, sizeof a),
           num_of(g, "hook_waiting", NF_INT, b, sizeof b),
           num_of(g, "protected", NF_INT, d, sizeof d));
    json_t *hk = json_object_get(g, "hooks");
    printf("hooks         launch %s (default %s), terminate %s (default %s)%s\n",
           str_of(hk, "launch_timeout"), str_of(hk, "launch_default"),
           str_of(hk, "terminate_timeout"), str_of(hk, "terminate_default"),
           json_is_true(json_object_get(g, "protect_new_instances")) ? ", new instances protected"
                                                                     : "");
    const char *avg = num_of(g, "average_load", NF_PCT, a, sizeof a);
    printf("average load  %s\n", strcmp(avg, "-") == 0 ? "no data" : avg);
    if (strcmp(str_of(p, "type"), "target") == 0)
        printf("policy        target: %s%% +/- %s, every %s, scale-down window %s\n",
               num_of(p, "target", NF_G, a, sizeof a), num_of(p, "tolerance", NF_G, b, sizeof b),
               str_of(p, "evaluation_period"), str_of(p, "scale_down_window"));
    else
        printf("policy        threshold: above %s%% x%s, below %s%% x%s, every %s, cooldown %s\n",
               num_of(p, "up_threshold", NF_G, a, sizeof a),
               num_of(p, "up_factor", NF_G, b, sizeof b),
               num_of(p, "down_threshold", NF_G, d, sizeof d),
               num_of(p, "down_factor", NF_G, e, sizeof e), str_of(p, "evaluation_period"),
               str_of(p, "cooldown"));
    printf("health        %s every %s, healthy after %s, unhealthy after %s, grace %s\n",
           str_of(h, "type"), str_of(h, "interval"),
           num_of(h, "healthy_threshold", NF_INT, a, sizeof a),
           num_of(h, "unhealthy_threshold", NF_INT, b, sizeof b), str_of(h, "grace_period"));
    char list[256];
    printf("termination   %s\n",
           cli_join(json_object_get(g, "termination_policy"), list, sizeof list, "default"));
    printf("suspended     %s\n",
           cli_join(json_object_get(g, "suspended_processes"), list, sizeof list, "none"));
    json_t *nt = json_object_get(g, "notify");
    if (json_is_string(json_object_get(nt, "url")) && *str_of(nt, "url"))
        printf("notify        %s (%s)%s\n", str_of(nt, "url"),
               cli_join(json_object_get(nt, "events"), list, sizeof list, "no events"),
               *str_of(nt, "secret_file") ? ", signed" : ", unsigned");
    const char *last = json_string_value(json_object_get(g, "last_decision"));
    printf("last decision %s\n", last && *last ? last : "-");
    json_decref(g);
    return CLI_OK;
}

/* ---- instances -------------------------------------------------------------------------- */

int cli_cmd_instances(const struct cli *c, int argc, char **argv)
{
    if (argc != 1) {
        fprintf(stderr, "usage: asgctl instances\n");
        return CLI_EUSAGE;
    }
    char path[256];
    if (cli_group_path(c, "/instances", "/api/v1/instances", path, sizeof path))
        return CLI_EUSAGE;
    json_t *arr = NULL;
    int rc = cli_call(c, "GET", path, NULL, &arr);
    if (rc)
        return rc;
    if (c->json) {
        cli_print_json(arr);
        json_decref(arr);
        return CLI_OK;
    }
    static const char *const hdr[] = {"ID",   "ADDRESS",  "LIFECYCLE", "HEALTH",
                                      "LOAD", "LAUNCHED", "PROTECTED"};
    struct cli_table t;
    if (cli_table_init(&t, 7, hdr)) {
        json_decref(arr);
        return CLI_EAPI;
    }
    size_t i;
    json_t *o;
    json_array_foreach(arr, i, o)
    {
        char load[32], when[32];
        const char *row[7] = {
            str_of(o, "id"),
            str_of(o, "address"),
            str_of(o, "lifecycle"),
            str_of(o, "health"),
            num_of(o, "load", NF_1, load, sizeof load),
            short_time(json_string_value(json_object_get(o, "launched_at")), when, sizeof when),
            json_is_true(json_object_get(o, "protected")) ? "yes" : ""};
        cli_table_add(&t, row);
    }
    cli_table_print(&t);
    cli_table_release(&t);
    json_decref(arr);
    return CLI_OK;
}

/* ---- activities ------------------------------------------------------------------------- */

int cli_cmd_activities(const struct cli *c, int argc, char **argv)
{
    long limit = 20;
    for (int i = 1; i < argc; i++) {
        const char *v = NULL;
        if (strcmp(argv[i], "--limit") == 0 || strcmp(argv[i], "-n") == 0) {
            v = i + 1 < argc ? argv[++i] : NULL;
        } else if (strncmp(argv[i], "--limit=", 8) == 0) {
            v = argv[i] + 8;
        } else {
            fprintf(stderr, "asgctl: activities: unexpected argument \"%s\"\n", argv[i]);
            fprintf(stderr, "usage: asgctl activities [--limit N]\n");
            return CLI_EUSAGE;
        }
        if (parse_int(v, 1, 1000, &limit)) {
            fprintf(stderr, "asgctl: activities: --limit wants a number from 1 to 1000\n");
            return CLI_EUSAGE;
        }
    }
    char base[256], path[300];
    if (cli_group_path(c, "/activities", "/api/v1/activities", base, sizeof base))
        return CLI_EUSAGE;
    snprintf(path, sizeof path, "%s?limit=%ld", base, limit);
    json_t *arr = NULL;
    int rc = cli_call(c, "GET", path, NULL, &arr);
    if (rc)
        return rc;
    if (c->json) {
        cli_print_json(arr);
        json_decref(arr);
        return CLI_OK;
    }
    static const char *const hdr[] = {"TIME", "KIND", "CHANGE", "STATUS", "CAUSE"};
    struct cli_table t;
    if (cli_table_init(&t, 5, hdr)) {
        json_decref(arr);
        return CLI_EAPI;
    }
    size_t i;
    json_t *o;
    json_array_foreach(arr, i, o)
    {
        char when[32], change[48];
        snprintf(change, sizeof change, "%lld -> %lld",
                 (long long)json_integer_value(json_object_get(o, "from")),
                 (long long)json_integer_value(json_object_get(o, "to")));
        const char *cause = str_of(o, "cause");
        const char *detail = json_string_value(json_object_get(o, "detail"));
        char full[1024];
        if (detail && *detail) {
            snprintf(full, sizeof full, "%s (%s)", cause, detail);
            cause = full;
        }
        const char *row[5] = {
            short_time(json_string_value(json_object_get(o, "at")), when, sizeof when),
            str_of(o, "kind"), change, str_of(o, "status"), cause};
        cli_table_add(&t, row);
    }
    cli_table_print(&t);
    cli_table_release(&t);
    json_decref(arr);
    return CLI_OK;
}

/* ---- set -------------------------------------------------------------------------------- */

static const char *const size_keys[][2] = {
    {"min", "min_size"}, {"max", "max_size"}, {"desired", "desired_capacity"}};

/* KEY=VALUE -> obj[KEY] = number if VALUE is one, true/false, else the string. */
static int put_kv(json_t *obj, const char *kv, const char *what)
{
    const char *eq = strchr(kv, '=');
    if (!eq || eq == kv || !eq[1]) {
        fprintf(stderr, "asgctl: set %s: \"%s\" is not KEY=VALUE\n", what, kv);
        return -1;
    }
    char key[128];
    snprintf(key, sizeof key, "%.*s", (int)(eq - kv), kv);
    const char *val = eq + 1;
    char *end = NULL;
    errno = 0;
    double d = strtod(val, &end);
    json_t *v;
    if (!errno && end && !*end && isfinite(d)) {
        long long ll = (long long)d;
        v = ((double)ll == d && !strchr(val, '.')) ? json_integer(ll) : json_real(d);
    } else if (strcmp(val, "true") == 0 || strcmp(val, "false") == 0) {
        v = json_boolean(strcmp(val, "true") == 0);
    } else {
        v = json_string(val);
    }
    if (!v || json_object_set_new(obj, key, v))
        return -1;
    return 0;
}

int cli_cmd_set(const struct cli *c, int argc, char **argv)
{
    static const char usage[] =
        "usage: asgctl set min|max|desired N\n"
        "       asgctl set policy KEY=VALUE...\n"
        "       asgctl set health KEY=VALUE...\n"
        "       asgctl set notify KEY=VALUE...\n"
        "       asgctl set group termination_policy=oldest_instance,default\n";
    if (argc < 3) {
        fputs(usage, stderr);
        return CLI_EUSAGE;
    }
    json_t *body = json_object();
    json_t *res = NULL;
    const char *set_key = NULL;
    int rc = CLI_EUSAGE;
    if (!body)
        return CLI_EAPI;
    for (size_t i = 0; i < sizeof size_keys / sizeof size_keys[0]; i++)
        if (strcmp(argv[1], size_keys[i][0]) == 0)
            set_key = size_keys[i][1];
    if (set_key) {
        long n;
        if (argc != 3 || parse_int(argv[2], 0, 1000000, &n)) {
            fprintf(stderr, "asgctl: set %s wants one non-negative integer\n", argv[1]);
            fputs(usage, stderr);
            goto out;
        }
        json_object_set_new(body, set_key, json_integer(n));
    } else if (strcmp(argv[1], "group") == 0) {
        /* top-level keys: termination_policy, suspended_processes */
        for (int i = 2; i < argc; i++)
            if (put_kv(body, argv[i], argv[1]))
                goto out;
    } else if (strcmp(argv[1], "policy") == 0 || strcmp(argv[1], "health") == 0 ||
               strcmp(argv[1], "notify") == 0) {
        json_t *sub = json_object();
        if (!sub || json_object_set_new(body, argv[1], sub))
            goto out;
        for (int i = 2; i < argc; i++)
            if (put_kv(sub, argv[i], argv[1]))
                goto out;
    } else {
        fprintf(stderr, "asgctl: set: unknown setting \"%s\"\n", argv[1]);
        fputs(usage, stderr);
        goto out;
    }
    char path[256];
    if (cli_group_path(c, "", "/api/v1/group", path, sizeof path))
        goto out;
    rc = cli_call(c, "PATCH", path, body, &res);
    if (rc)
        goto out;
    if (c->json) {
        cli_print_json(res);
    } else {
        printf("group %s: min %lld, desired %lld, max %lld",
               json_string_value(json_object_get(res, "name")),
               (long long)json_integer_value(json_object_get(res, "min_size")),
               (long long)json_integer_value(json_object_get(res, "desired_capacity")),
               (long long)json_integer_value(json_object_get(res, "max_size")));
        if (!set_key) {
            int top = strcmp(argv[1], "group") == 0;
            json_t *sub = top ? res : json_object_get(res, argv[1]);
            const char *k;
            json_t *v;
            printf("; %s", argv[1]);
            json_object_foreach(top ? body : json_object_get(body, argv[1]), k, v)
            {
                json_t *now = json_object_get(sub, k);
                char *s = now ? json_dumps(now, JSON_ENCODE_ANY) : NULL;
                printf(" %s=%s", k, s ? s : "?");
                free(s);
            }
        }
        printf("\n");
    }
out:
    json_decref(body);
    json_decref(res);
    return rc;
}

/* ---- terminate -------------------------------------------------------------------------- */

int cli_cmd_terminate(const struct cli *c, int argc, char **argv)
{
    const char *id = NULL;
    int decrement = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--decrement") == 0 || strcmp(argv[i], "--decrement-desired") == 0)
            decrement = 1;
        else if (argv[i][0] == '-' || id) {
            fprintf(stderr, "asgctl: terminate: unexpected argument \"%s\"\n", argv[i]);
            id = NULL;
            break;
        } else
            id = argv[i];
    }
    if (!id || strchr(id, '/') || strchr(id, '?') || strchr(id, '#') || strchr(id, '%')) {
        fprintf(stderr, "usage: asgctl terminate ID [--decrement]\n");
        return CLI_EUSAGE;
    }
    char sub[160], legacy[160], path[320];
    if (strlen(id) > 100) {
        fprintf(stderr, "asgctl: terminate: instance id too long\n");
        return CLI_EUSAGE;
    }
    snprintf(sub, sizeof sub, "/instances/%s/terminate", id);
    snprintf(legacy, sizeof legacy, "/api/v1/instances/%s/terminate", id);
    if (cli_group_path(c, sub, legacy, path, sizeof path))
        return CLI_EUSAGE;
    json_t *body = json_pack("{s:b}", "decrement_desired", decrement);
    json_t *res = NULL;
    int rc = body ? cli_call(c, "POST", path, body, &res) : CLI_EAPI;
    json_decref(body);
    if (rc)
        return rc;
    if (c->json)
        cli_print_json(res);
    else
        printf("terminate of %s requested (%s)\n", id,
               decrement ? "desired capacity decremented" : "it will be replaced");
    json_decref(res);
    return CLI_OK;
}

/* ---- groups ----------------------------------------------------------------------------- */

int cli_cmd_groups(const struct cli *c, int argc, char **argv)
{
    if (argc != 1) {
        fprintf(stderr, "usage: asgctl groups\n");
        return CLI_EUSAGE;
    }
    json_t *arr = NULL;
    int rc = cli_call(c, "GET", "/api/v1/groups", NULL, &arr);
    if (rc)
        return rc;
    if (c->json) {
        cli_print_json(arr);
        json_decref(arr);
        return CLI_OK;
    }
    static const char *const hdr[] = {"NAME",    "MIN",       "DESIRED", "MAX",  "IN SERVICE",
                                      "PENDING", "UNHEALTHY", "LOAD",    "OWNER"};
    struct cli_table t;
    if (cli_table_init(&t, 9, hdr)) {
        json_decref(arr);
        return CLI_EAPI;
    }
    size_t i;
    json_t *o;
    json_array_foreach(arr, i, o)
    {
        char a[32], b[32], d[32], e[32], f[32], g[32], l[32], owner[96];
        const char *on = json_string_value(json_object_get(o, "owner_node"));
        snprintf(owner, sizeof owner, "%s%s", on ? on : "-",
                 json_is_false(json_object_get(o, "live")) ? " (not live)" : "");
        const char *row[9] = {str_of(o, "name"),
                              num_of(o, "min_size", NF_INT, a, sizeof a),
                              num_of(o, "desired_capacity", NF_INT, b, sizeof b),
                              num_of(o, "max_size", NF_INT, d, sizeof d),
                              num_of(o, "in_service", NF_INT, e, sizeof e),
                              num_of(o, "pending", NF_INT, f, sizeof f),
                              num_of(o, "unhealthy", NF_INT, g, sizeof g),
                              num_of(o, "average_load", NF_PCT, l, sizeof l),
                              owner};
        cli_table_add(&t, row);
    }
    cli_table_print(&t);
    cli_table_release(&t);
    json_decref(arr);
    return CLI_OK;
}

/* ---- create-group, delete-group --------------------------------------------------------- */

/* INI text value -> JSON: integer, number, boolean, else string. */
static json_t *typed_value(const char *v)
{
    char *end = NULL;
    errno = 0;
    long long ll = strtoll(v, &end, 10);
    if (*v && !errno && end && !*end)
        return json_integer(ll);
    errno = 0;
    double d = strtod(v, &end);
    if (*v && !errno && end && !*end && isfinite(d))
        return json_real(d);
    if (strcmp(v, "true") == 0 || strcmp(v, "false") == 0)
        return json_boolean(strcmp(v, "true") == 0);
    return json_string(v);
}

int cli_group_file_json(const char *path, json_t **out, char *err, size_t errlen)
{
    struct cfg cf = CFG_INIT;
    if (cfg_load(&cf, path, err, errlen))
        return -1;
    json_t *root = json_object();
    int rc = root ? 0 : -1;
    if (!root)
        snprintf(err, errlen, "out of memory");
    for (size_t i = 0; rc == 0 && i < cf.n; i++) {
        const struct cfg_entry *e = &cf.entries[i];
        json_t *sec = json_object_get(root, e->section);
        if (!sec) {
            sec = json_object();
            if (!sec || json_object_set_new(root, e->section, sec)) {
                snprintf(err, errlen, "out of memory");
                rc = -1;
                break;
            }
        }
        int as_string = strcmp(e->section, "group") == 0 && strcmp(e->key, "name") == 0;
        json_t *v = as_string ? json_string(e->value) : typed_value(e->value);
        if (!v || json_object_set_new(sec, e->key, v)) {
            snprintf(err, errlen, "%s:%d: [%s] %s: cannot encode the value as JSON (UTF-8?)", path,
                     e->line, e->section, e->key);
            rc = -1;
        }
    }
    if (rc == 0 && !json_is_string(json_object_get(json_object_get(root, "group"), "name"))) {
        snprintf(err, errlen, "%s: no [group] name: a group file names its group", path);
        rc = -1;
    }
    cfg_release(&cf);
    if (rc) {
        json_decref(root);
        return -1;
    }
    *out = root;
    return 0;
}

int cli_cmd_create_group(const struct cli *c, int argc, char **argv)
{
    if (argc != 2 || argv[1][0] == '-') {
        fprintf(stderr, "usage: asgctl create-group FILE\n");
        return CLI_EUSAGE;
    }
    char err[1024];
    json_t *spec = NULL;
    if (cli_group_file_json(argv[1], &spec, err, sizeof err)) {
        fprintf(stderr, "asgctl: create-group: %s\n", err);
        return CLI_EUSAGE;
    }
    json_t *res = NULL;
    int rc = cli_call(c, "POST", "/api/v1/groups", spec, &res);
    if (rc == CLI_OK) {
        if (c->json)
            cli_print_json(res);
        else
            printf("group %s created: min %lld, desired %lld, max %lld\n",
                   json_string_value(json_object_get(res, "name")),
                   (long long)json_integer_value(json_object_get(res, "min_size")),
                   (long long)json_integer_value(json_object_get(res, "desired_capacity")),
                   (long long)json_integer_value(json_object_get(res, "max_size")));
    }
    json_decref(spec);
    json_decref(res);
    return rc;
}

int cli_cmd_delete_group(const struct cli *c, int argc, char **argv)
{
    const char *name = NULL;
    int force = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--force") == 0)
            force = 1;
        else if (argv[i][0] != '-' && !name)
            name = argv[i];
        else {
            name = NULL;
            break;
        }
    }
    if (!name || !cli_name_ok(name)) {
        if (name)
            fprintf(stderr, "asgctl: delete-group: \"%s\" is not a group name\n", name);
        fprintf(stderr, "usage: asgctl delete-group NAME [--force]\n");
        return CLI_EUSAGE;
    }
    char path[160];
    snprintf(path, sizeof path, "/api/v1/groups/%s%s", name, force ? "?force=true" : "");
    json_t *res = NULL;
    int rc = cli_call(c, "DELETE", path, NULL, &res);
    if (rc == CLI_OK) {
        if (c->json)
            cli_print_json(res);
        else
            printf("group %s deleted%s\n", name,
                   force ? " (its instances are being terminated)" : "");
    }
    json_decref(res);
    return rc;
}

/* ---- cluster ---------------------------------------------------------------------------- */

int cli_cmd_cluster(const struct cli *c, int argc, char **argv)
{
    if (argc != 1) {
        fprintf(stderr, "usage: asgctl cluster\n");
        return CLI_EUSAGE;
    }
    json_t *cl = NULL;
    int rc = cli_call(c, "GET", "/api/v1/cluster", NULL, &cl);
    if (rc)
        return rc;
    if (c->json) {
        cli_print_json(cl);
        json_decref(cl);
        return CLI_OK;
    }
    json_t *st = json_object_get(cl, "store");
    printf("mode   %s\n", str_of(cl, "mode"));
    if (json_is_object(st))
        printf("store  %s%s%s\n", str_of(st, "type"),
               json_is_false(json_object_get(st, "ok")) ? ": NOT OK " : "",
               json_is_false(json_object_get(st, "ok")) ? str_of(st, "detail") : "");
    printf("\n");
    static const char *const hdr[] = {"NODE", "API", "ALIVE", "LEASE", "GROUPS"};
    struct cli_table t;
    if (cli_table_init(&t, 5, hdr)) {
        json_decref(cl);
        return CLI_EAPI;
    }
    size_t i;
    json_t *n;
    json_array_foreach(json_object_get(cl, "nodes"), i, n)
    {
        char name[128], lease[160], groups[1024] = "";
        snprintf(name, sizeof name, "%s%s", str_of(n, "name"),
                 json_is_true(json_object_get(n, "self")) ? " (this)" : "");
        json_t *l = json_object_get(n, "lease");
        if (!json_is_object(l))
            snprintf(lease, sizeof lease, "-");
        else {
            json_t *ago = json_object_get(l, "last_renewal_ms_ago");
            json_t *ttl = json_object_get(l, "ttl_ms");
            const char *d = json_string_value(json_object_get(l, "detail"));
            snprintf(lease, sizeof lease, "%s",
                     json_is_true(json_object_get(l, "ok")) ? "ok" : "LOST");
            size_t u = strlen(lease);
            if (json_is_number(ago) && json_is_number(ttl))
                snprintf(lease + u, sizeof lease - u, " (renewed %.1fs ago, ttl %.0fs)",
                         json_number_value(ago) / 1000.0, json_number_value(ttl) / 1000.0);
            u = strlen(lease);
            if (d && *d)
                snprintf(lease + u, sizeof lease - u, " %s", d);
        }
        size_t k, used = 0;
        json_t *g;
        json_array_foreach(json_object_get(n, "groups"), k, g)
        {
            const char *gs = json_string_value(g);
            int w =
                snprintf(groups + used, sizeof groups - used, "%s%s", k ? "," : "", gs ? gs : "?");
            if (w < 0 || (size_t)w >= sizeof groups - used) {
                snprintf(groups + (sizeof groups - 5), 5, "...");
                break;
            }
            used += (size_t)w;
        }
        json_t *alive = json_object_get(n, "alive");
        const char *row[5] = {name, str_of(n, "api"),
                              json_is_boolean(alive) ? (json_is_true(alive) ? "yes" : "NO") : "-",
                              lease, groups[0] ? groups : "-"};
        cli_table_add(&t, row);
    }
    cli_table_print(&t);
    cli_table_release(&t);
    json_decref(cl);
    return CLI_OK;
}
