/*
 * reload.c - `asgctl reload`: asks asgd to re-read its configuration files
 * (POST /api/v1/reload, as SIGHUP or `systemctl reload asgd` do) and prints
 * the outcome.
 *
 * The reload runs on asgd's signal thread, not in the request: the command
 * polls GET /api/v1/reload until the report answering its request appears
 * (its "generation" reaches the one the POST returned), for up to 60 s.
 * Exit codes as every command (cli.h): 1 when asgd refused the files (nothing
 * changed) or a step of an accepted reload failed.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"

#include "common/banned.h"

#define WAIT_MS 60000
#define STEP_MS 100

static void print_list(const json_t *rep, const char *key, const char *title)
{
    const json_t *a = json_object_get(rep, key);
    if (!json_is_array(a) || json_array_size(a) == 0)
        return;
    printf("%s:\n", title);
    size_t i;
    const json_t *v;
    json_array_foreach(a, i, v)
    {
        printf("  %s\n", json_string_value(v) ? json_string_value(v) : "?");
    }
}

int cli_cmd_reload(const struct cli *c, int argc, char **argv)
{
    (void)argv;
    if (argc != 1) {
        fprintf(stderr, "usage: asgctl reload\n");
        return CLI_EUSAGE;
    }
    json_t *req = NULL;
    json_t *empty = json_object();
    int rc = cli_call(c, "POST", "/api/v1/reload", empty, &req);
    json_decref(empty);
    if (rc)
        return rc;
    json_int_t gen = json_integer_value(json_object_get(req, "generation"));
    json_decref(req);
    json_t *rep = NULL;
    for (int waited = 0;; waited += STEP_MS) {
        rc = cli_call(c, "GET", "/api/v1/reload", NULL, &rep);
        if (rc)
            return rc;
        if (json_integer_value(json_object_get(rep, "generation")) >= gen &&
            !json_is_true(json_object_get(rep, "in_progress")))
            break;
        json_decref(rep);
        rep = NULL;
        if (waited >= WAIT_MS) {
            fprintf(stderr, "asgctl: the reload did not finish within %d s (see asgd's log)\n",
                    WAIT_MS / 1000);
            return CLI_EAPI;
        }
        struct timespec ts = {0, STEP_MS * 1000000L};
        nanosleep(&ts, NULL);
    }
    int ok = json_is_true(json_object_get(rep, "ok"));
    int failed = json_array_size(json_object_get(rep, "failed")) > 0;
    if (c->json) {
        cli_print_json(rep);
    } else if (!ok) {
        const char *e = json_string_value(json_object_get(rep, "error"));
        fprintf(stderr, "asgctl: reload refused, nothing changed: %s\n", e ? e : "(no reason)");
    } else {
        const char *f = json_string_value(json_object_get(rep, "file"));
        printf("reloaded %s\n", f ? f : "the configuration");
        print_list(rep, "added", "groups added");
        print_list(rep, "removed", "groups no longer managed (their instances keep running)");
        print_list(rep, "changed", "settings changed");
        print_list(rep, "restarted", "groups restarted (provider settings changed)");
        print_list(rep, "needs_restart", "changed but needs a restart of asgd (kept as they were)");
        print_list(rep, "failed", "FAILED");
    }
    json_decref(rep);
    return ok && !failed ? CLI_OK : CLI_EAPI;
}
