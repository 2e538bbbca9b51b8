/*
 * cmd.c - asgctl's subcommands, one function each.
 *
 * Each command validates its own arguments first (exit 2 with a usage line,
 * before any network traffic), makes one API call, and prints the answer:
 * an aligned table or key/value block by default, the API's JSON with --json.
 */
#include "cli/cli.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* ---- status ----------------------------------------------------------------------------- */

int cli_cmd_status(const struct cli *c, int argc, char **argv)
{
    if (argc != 1) {
        fprintf(stderr, "usage: asgctl status\n");
        return CLI_EUSAGE;
    }
    json_t *g = NULL;
    int rc = cli_call(c, "GET", "/api/v1/group", NULL, &g);
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
    printf("size          min %s  desired %s  max %s\n", num_of(g, "min_size", NF_INT, a, sizeof a),
           num_of(g, "desired_capacity", NF_INT, b, sizeof b),
           num_of(g, "max_size", NF_INT, d, sizeof d));
    printf("instances     %s in service, %s pending, %s unhealthy, %s terminating\n",
           num_of(g, "in_service", NF_INT, a, sizeof a), num_of(g, "pending", NF_INT, b, sizeof b),
           num_of(g, "unhealthy", NF_INT, d, sizeof d),
           num_of(g, "terminating", NF_INT, e, sizeof e));
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
    json_t *arr = NULL;
    int rc = cli_call(c, "GET", "/api/v1/instances", NULL, &arr);
    if (rc)
        return rc;
    if (c->json) {
        cli_print_json(arr);
        json_decref(arr);
        return CLI_OK;
    }
    static const char *const hdr[] = {"ID", "ADDRESS", "LIFECYCLE", "HEALTH", "LOAD", "LAUNCHED"};
    struct cli_table t;
    if (cli_table_init(&t, 6, hdr)) {
        json_decref(arr);
        return CLI_EAPI;
    }
    size_t i;
    json_t *o;
    json_array_foreach(arr, i, o)
    {
        char load[32], when[32];
        const char *row[6] = {
            str_of(o, "id"),
            str_of(o, "address"),
            str_of(o, "lifecycle"),
            str_of(o, "health"),
            num_of(o, "load", NF_1, load, sizeof load),
            short_time(json_string_value(json_object_get(o, "launched_at")), when, sizeof when)};
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
    char path[64];
    snprintf(path, sizeof path, "/api/v1/activities?limit=%ld", limit);
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
    static const char usage[] = "usage: asgctl set min|max|desired N\n"
                                "       asgctl set policy KEY=VALUE...\n"
                                "       asgctl set health KEY=VALUE...\n";
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
    } else if (strcmp(argv[1], "policy") == 0 || strcmp(argv[1], "health") == 0) {
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
    rc = cli_call(c, "PATCH", "/api/v1/group", body, &res);
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
            json_t *sub = json_object_get(res, argv[1]);
            const char *k;
            json_t *v;
            printf("; %s", argv[1]);
            json_object_foreach(json_object_get(body, argv[1]), k, v)
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
            argc = 0;
            break;
        } else
            id = argv[i];
    }
    if (!id || strchr(id, '/') || strchr(id, '?') || strchr(id, '#') || strchr(id, '%')) {
        fprintf(stderr, "usage: asgctl terminate ID [--decrement]\n");
        return CLI_EUSAGE;
    }
    char path[256];
    snprintf(path, sizeof path, "/api/v1/instances/%s/terminate", id);
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
