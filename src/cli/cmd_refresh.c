/*
 * cmd_refresh.c - asgctl instance-refresh start|status|cancel|resume|rollback: the
 * group's instance refresh (docs/instance-refresh.md) through
 * /api/v1/groups/NAME/instance-refresh[/cancel|/resume|/rollback]. Needs -g GROUP
 * (there is no single-group route for it).
 */
#include "cli/cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/banned.h"

#define USAGE                                                                                      \
    "usage: asgctl -g GROUP instance-refresh start [--min-healthy PCT] [--warmup DURATION] "       \
    "[--checkpoint PCT]...\n"                                                                      \
    "       asgctl -g GROUP instance-refresh status|cancel|resume|rollback\n"

static void print_state(const json_t *j)
{
    printf("status              %s\n", json_string_value(json_object_get(j, "status")));
    printf("percentage complete %d %%\n",
           (int)json_integer_value(json_object_get(j, "percentage_complete")));
    printf("to replace          %d (left %d)\n",
           (int)json_integer_value(json_object_get(j, "instances_to_replace")),
           (int)json_integer_value(json_object_get(j, "instances_left")));
    printf("min healthy         %d %%\n",
           (int)json_integer_value(json_object_get(j, "min_healthy_percentage")));
    printf("instance warmup     %s\n", json_string_value(json_object_get(j, "instance_warmup")));
    const json_t *cp = json_object_get(j, "checkpoints");
    size_t i;
    json_t *e;
    printf("checkpoints        ");
    json_array_foreach(cp, i, e)
    {
        printf(" %d%%", (int)json_integer_value(e));
    }
    printf("%s\n", json_array_size(cp) ? "" : " none");
    const char *from = json_string_value(json_object_get(j, "previous_launch_config"));
    const char *to = json_string_value(json_object_get(j, "launch_config"));
    printf("launch config       %s -> %s\n", from && from[0] ? from : "-", to && to[0] ? to : "-");
    const char *why = json_string_value(json_object_get(j, "reason"));
    if (why && why[0])
        printf("reason              %s\n", why);
}

/* The start request's body from the options after "start"; NULL (usage printed) when wrong. */
static json_t *start_body(int argc, char **argv)
{
    json_t *b = json_object(), *cps = json_array();
    if (b == NULL || cps == NULL)
        goto bad;
    for (int i = 2; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        char *end = NULL;
        if (v == NULL)
            goto bad;
        if (strcmp(o, "--min-healthy") == 0) {
            long x = strtol(v, &end, 10);
            if (*end != '\0' || json_object_set_new(b, "min_healthy_percentage", json_integer(x)))
                goto bad;
        } else if (strcmp(o, "--warmup") == 0) {
            if (json_object_set_new(b, "instance_warmup", json_string(v)))
                goto bad;
        } else if (strcmp(o, "--checkpoint") == 0) {
            long x = strtol(v, &end, 10);
            if (*end != '\0' || json_array_append_new(cps, json_integer(x)))
                goto bad;
        } else {
            goto bad;
        }
        i++;
    }
    if (json_array_size(cps) > 0 && json_object_set(b, "checkpoints", cps))
        goto bad;
    json_decref(cps);
    return b;
bad:
    fputs(USAGE, stderr);
    json_decref(b);
    json_decref(cps);
    return NULL;
}

int cli_cmd_instance_refresh(const struct cli *c, int argc, char **argv)
{
    const char *sub = argc >= 2 ? argv[1] : "";
    int start = strcmp(sub, "start") == 0, status = strcmp(sub, "status") == 0;
    if (!start && !status && strcmp(sub, "cancel") != 0 && strcmp(sub, "resume") != 0 &&
        strcmp(sub, "rollback") != 0) {
        fputs(USAGE, stderr);
        return CLI_EUSAGE;
    }
    if (!start && argc != 2) {
        fputs(USAGE, stderr);
        return CLI_EUSAGE;
    }
    if (c->group == NULL) {
        fprintf(stderr, "asgctl: instance-refresh needs the group: -g GROUP (or ASGCTL_GROUP)\n");
        return CLI_EUSAGE;
    }
    char rel[64], path[320];
    snprintf(rel, sizeof rel, "/instance-refresh%s%s", start || status ? "" : "/",
             start || status ? "" : sub);
    if (cli_group_path(c, rel, "", path, sizeof path))
        return CLI_EUSAGE;
    json_t *body = NULL, *res = NULL;
    if (start && (body = start_body(argc, argv)) == NULL)
        return CLI_EUSAGE;
    int rc = cli_call(c, status ? "GET" : "POST", path, body, &res);
    json_decref(body);
    if (rc == 0) {
        if (c->json)
            cli_print_json(res);
        else
            print_state(res);
    }
    json_decref(res);
    return rc;
}
