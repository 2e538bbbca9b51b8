/*
 * life.c - asgctl's instance life-cycle commands (issue 12,
 * docs/lifecycle.md): complete-hook, protect, unprotect, standby,
 * exit-standby, detach, attach and hooks. Each is one call of the per-group
 * API (src/http/lifecycle.c); without -g the server's only group is used.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

#include "common/banned.h"

/* /api/v1/groups/{group}{sub}: -g, else the server's only group. */
static int group_path(const struct cli *c, const char *sub, char *buf, size_t len)
{
    if (c->group)
        return cli_group_path(c, sub, "", buf, len);
    json_t *arr = NULL;
    int rc = cli_call(c, "GET", "/api/v1/groups", NULL, &arr);
    if (rc)
        return rc;
    const json_t *list = json_is_array(arr) ? arr : json_object_get(arr, "groups");
    const char *name = json_array_size(list) == 1
                           ? json_string_value(json_object_get(json_array_get(list, 0), "name"))
                           : NULL;
    int n = name ? snprintf(buf, len, "/api/v1/groups/%s%s", name, sub) : -1;
    json_decref(arr);
    if (n < 0 || (size_t)n >= len) {
        fprintf(stderr, "asgctl: name the group with -g (asgd serves %s)\n",
                name ? "a group with a long name" : "several groups or none");
        return CLI_EUSAGE;
    }
    return 0;
}

/* An instance id or agent address usable in a path. */
static int id_ok(const char *id)
{
    return id && id[0] && id[0] != '-' && strlen(id) <= 100 && !strpbrk(id, "/?#% ");
}

/* One call; prints the JSON answer or `done`. */
static int call(const struct cli *c, const char *method, const char *sub, json_t *body,
                const char *done)
{
    char path[400];
    int rc = group_path(c, sub, path, sizeof path);
    json_t *res = NULL;
    if (rc == 0)
        rc = cli_call(c, method, path, body, &res);
    json_decref(body);
    if (rc)
        return rc;
    if (c->json)
        cli_print_json(res);
    else if (done)
        printf("%s\n", done);
    json_decref(res);
    return CLI_OK;
}

/* ID plus the flags of flags (each sets *out[i] when present); -1 on a usage error. */
static int args(int argc, char **argv, const char **id, const char *flag, int *set)
{
    *id = NULL;
    for (int i = 1; i < argc; i++) {
        if (flag && strcmp(argv[i], flag) == 0)
            *set = 1;
        else if (*id || !id_ok(argv[i]))
            return -1;
        else
            *id = argv[i];
    }
    return *id ? 0 : -1;
}

int cli_cmd_complete_hook(const struct cli *c, int argc, char **argv)
{
    if (argc != 3 || !id_ok(argv[1]) ||
        (strcmp(argv[2], "continue") != 0 && strcmp(argv[2], "abandon") != 0 &&
         strcmp(argv[2], "heartbeat") != 0)) {
        fprintf(stderr, "usage: asgctl complete-hook ID continue|abandon|heartbeat\n");
        return CLI_EUSAGE;
    }
    char sub[160], done[200];
    snprintf(sub, sizeof sub, "/instances/%s/lifecycle", argv[1]);
    snprintf(done, sizeof done, "lifecycle hook of %s: %s requested", argv[1], argv[2]);
    return call(c, "POST", sub, json_pack("{s:s}", "action", argv[2]), done);
}

static int protect(const struct cli *c, int argc, char **argv, int on)
{
    const char *id;
    if (args(argc, argv, &id, NULL, NULL)) {
        fprintf(stderr, "usage: asgctl %s ID\n", on ? "protect" : "unprotect");
        return CLI_EUSAGE;
    }
    char sub[160], done[200];
    snprintf(sub, sizeof sub, "/instances/%s", id);
    snprintf(done, sizeof done, "%s is %s protected from scale-in", id, on ? "now" : "no longer");
    return call(c, "PATCH", sub, json_pack("{s:b}", "protected", on), done);
}

int cli_cmd_protect(const struct cli *c, int argc, char **argv)
{
    return protect(c, argc, argv, 1);
}

int cli_cmd_unprotect(const struct cli *c, int argc, char **argv)
{
    return protect(c, argc, argv, 0);
}

/* standby, exit-standby and detach: ID [--decrement] */
static int move(const struct cli *c, int argc, char **argv, const char *verb, int decrementable)
{
    const char *id;
    int dec = 0;
    if (args(argc, argv, &id, decrementable ? "--decrement" : NULL, &dec)) {
        fprintf(stderr, "usage: asgctl %s ID%s\n", argv[0], decrementable ? " [--decrement]" : "");
        return CLI_EUSAGE;
    }
    char sub[160], done[200];
    snprintf(sub, sizeof sub, "/instances/%s/%s", id, verb);
    snprintf(done, sizeof done, "%s of %s requested%s", argv[0], id,
             dec ? " (desired capacity decremented)" : "");
    return call(c, "POST", sub, json_pack("{s:b}", "decrement_desired", dec), done);
}

int cli_cmd_standby(const struct cli *c, int argc, char **argv)
{
    return move(c, argc, argv, "standby", 1);
}

int cli_cmd_exit_standby(const struct cli *c, int argc, char **argv)
{
    const char *id;
    if (args(argc, argv, &id, NULL, NULL)) {
        fprintf(stderr, "usage: asgctl exit-standby ID\n");
        return CLI_EUSAGE;
    }
    char sub[160], done[200];
    snprintf(sub, sizeof sub, "/instances/%s/exit-standby", id);
    snprintf(done, sizeof done, "exit-standby of %s requested", id);
    return call(c, "POST", sub, json_object(), done);
}

int cli_cmd_detach(const struct cli *c, int argc, char **argv)
{
    return move(c, argc, argv, "detach", 1);
}

int cli_cmd_attach(const struct cli *c, int argc, char **argv)
{
    if (argc != 2 || !id_ok(argv[1])) {
        fprintf(stderr, "usage: asgctl attach INSTANCE-ID|HOST:PORT\n");
        return CLI_EUSAGE;
    }
    char done[200];
    snprintf(done, sizeof done, "attach of %s requested", argv[1]);
    return call(c, "POST", "/instances", json_pack("{s:s}", "attach", argv[1]), done);
}

/* hooks: show; hooks KEY=VALUE...: set (durations as text, results as words). */
int cli_cmd_hooks(const struct cli *c, int argc, char **argv)
{
    if (argc == 1) {
        char path[400];
        int rc = group_path(c, "/hooks", path, sizeof path);
        json_t *h = NULL;
        if (rc == 0)
            rc = cli_call(c, "GET", path, NULL, &h);
        if (rc)
            return rc;
        if (c->json) {
            cli_print_json(h);
        } else {
            const char *k;
            json_t *v;
            json_object_foreach(h, k, v)
            {
                printf("%-18s %s\n", k, json_is_string(v) ? json_string_value(v) : "?");
            }
        }
        json_decref(h);
        return CLI_OK;
    }
    json_t *body = json_object();
    for (int i = 1; i < argc && body; i++) {
        const char *eq = strchr(argv[i], '=');
        if (!eq || eq == argv[i]) {
            fprintf(stderr, "usage: asgctl hooks [KEY=VALUE...] (launch_timeout=5m, "
                            "launch_default=continue, terminate_timeout=90s, ...)\n");
            json_decref(body);
            return CLI_EUSAGE;
        }
        char key[64];
        snprintf(key, sizeof key, "%.*s", (int)(eq - argv[i]), argv[i]);
        json_object_set_new(body, key, json_string(eq + 1));
    }
    return call(c, "PATCH", "/hooks", body, "hooks updated");
}
