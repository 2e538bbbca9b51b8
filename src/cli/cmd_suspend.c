/*
 * cmd_suspend.c - asgctl suspend|resume [PROCESS...]: POST the group's
 * /suspend or /resume with {"processes": [...]} (none named: every process,
 * as AWS's SuspendProcesses) and print what stays suspended.
 */
#include "cli/cli.h"

#include <stdio.h>
#include <string.h>

#include "common/banned.h"

const char *cli_join(const json_t *a, char *buf, size_t len, const char *none)
{
    size_t i, used = 0;
    json_t *e;
    buf[0] = '\0';
    if (json_is_array(a))
        json_array_foreach(a, i, e)
        {
            if (!json_is_string(e) || used + 1 >= len)
                continue;
            int w =
                snprintf(buf + used, len - used, "%s%s", used ? ", " : "", json_string_value(e));
            used = w < 0 ? used : (used + (size_t)w < len ? used + (size_t)w : len - 1);
        }
    if (buf[0] == '\0')
        snprintf(buf, len, "%s", none);
    return buf;
}

static int suspend_or_resume(const struct cli *c, int argc, char **argv, const char *verb)
{
    json_t *procs = json_array(), *body = NULL, *res = NULL;
    int rc = CLI_EAPI;
    for (int i = 1; procs && i < argc; i++) {
        if (argv[i][0] == '-') {
            fprintf(stderr, "usage: asgctl %s [PROCESS...]\n", verb);
            json_decref(procs);
            return CLI_EUSAGE;
        }
        /* "Launch,Terminate" works too: the server splits on commas */
        if (json_array_append_new(procs, json_string(argv[i])) != 0)
            goto out;
    }
    body = procs ? json_pack("{s:O}", "processes", procs) : NULL;
    if (body == NULL)
        goto out;
    char sub[32], legacy[64], path[320];
    snprintf(sub, sizeof sub, "/%s", verb);
    snprintf(legacy, sizeof legacy, "/api/v1/group/%s", verb);
    if (cli_group_path(c, sub, legacy, path, sizeof path)) {
        rc = CLI_EUSAGE;
        goto out;
    }
    rc = cli_call(c, "POST", path, body, &res);
    if (rc)
        goto out;
    if (c->json) {
        cli_print_json(res);
    } else {
        char list[256];
        printf("group %s: suspended processes: %s\n",
               json_string_value(json_object_get(res, "name")),
               cli_join(json_object_get(res, "suspended_processes"), list, sizeof list, "none"));
    }
out:
    json_decref(procs);
    json_decref(body);
    json_decref(res);
    return rc;
}

int cli_cmd_suspend(const struct cli *c, int argc, char **argv)
{
    return suspend_or_resume(c, argc, argv, "suspend");
}

int cli_cmd_resume(const struct cli *c, int argc, char **argv)
{
    return suspend_or_resume(c, argc, argv, "resume");
}
