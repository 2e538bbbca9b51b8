/*
 * main.c - asgctl: global options, then one subcommand from the table.
 *
 *   asgctl [--url URL] [--token-file FILE] [-g GROUP] [--json] COMMAND [ARGS]
 *
 * Global options may appear anywhere on the line; ASGCTL_URL,
 * ASGCTL_TOKEN_FILE and ASGCTL_GROUP supply defaults. See cli.h for the exit codes.
 */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

#include "common/banned.h"

struct command {
    const char *name;
    int (*fn)(const struct cli *c, int argc, char **argv);
    const char *usage;
    const char *help;
};

static const struct command commands[] = {
    {"groups", cli_cmd_groups, "groups", "every group: sizes, counts, load, owner node"},
    {"status", cli_cmd_status, "status", "group settings, counts, average load, last decision"},
    {"instances", cli_cmd_instances, "instances", "the group's instances with health and load"},
    {"activities", cli_cmd_activities, "activities [--limit N]",
     "scaling history with causes, newest first"},
    {"set", cli_cmd_set, "set min|max|desired N  |  set group|policy|health|notify KEY=VALUE...",
     "change the group's settings (needs the token)"},
    {"terminate", cli_cmd_terminate, "terminate ID [--decrement]",
     "terminate an instance; --decrement lowers desired instead of replacing it"},
    {"create-group", cli_cmd_create_group, "create-group FILE",
     "create a group from an INI group file (needs the token)"},
    {"delete-group", cli_cmd_delete_group, "delete-group NAME [--force]",
     "delete a group; --force terminates its instances first (needs the token)"},
    {"cluster", cli_cmd_cluster, "cluster", "the nodes, the groups each runs, lease health"},
    {"reload", cli_cmd_reload, "reload",
     "asgd re-reads its config file and groups folder, as SIGHUP (needs the token)"},
    {"suspend", cli_cmd_suspend, "suspend [PROCESS...]",
     "suspend Launch, Terminate, HealthCheck, ReplaceUnhealthy, AlarmNotification, ... (none "
     "named: all; needs the token)"},
    {"resume", cli_cmd_resume, "resume [PROCESS...]",
     "resume suspended processes (none named: all; needs the token)"},
    {"complete-hook", cli_cmd_complete_hook, "complete-hook ID continue|abandon|heartbeat",
     "complete (or extend) the lifecycle hook an instance waits for"},
    {"protect", cli_cmd_protect, "protect ID", "protect an instance from scale-in"},
    {"unprotect", cli_cmd_unprotect, "unprotect ID", "remove an instance's scale-in protection"},
    {"standby", cli_cmd_standby, "standby ID [--decrement]",
     "keep an instance running out of the load and of health replacement"},
    {"exit-standby", cli_cmd_exit_standby, "exit-standby ID", "put a standby instance back"},
    {"detach", cli_cmd_detach, "detach ID [--decrement]",
     "remove an instance from the group without terminating it"},
    {"attach", cli_cmd_attach, "attach INSTANCE-ID|HOST:PORT",
     "take a running instance (EC2 id, or a local agent's address) into the group"},
    {"hooks", cli_cmd_hooks, "hooks [KEY=VALUE...]",
     "show or set the group's lifecycle hooks (launch_timeout=5m, terminate_timeout=90s...)"},
    {"instance-refresh", cli_cmd_instance_refresh,
     "instance-refresh start [--min-healthy PCT] [--warmup DUR] [--checkpoint PCT]... | status | "
     "cancel | resume | rollback",
     "replace the instances of an old launch configuration in batches (needs -g GROUP)"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: asgctl [--url URL] [--token-file FILE] [--cacert FILE] [-g GROUP] [--json] "
               "COMMAND [ARGS]\n\n"
               "commands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strlen(commands[i].usage) > 30)
            fprintf(f, "  %s\n  %-30s %s\n", commands[i].usage, "", commands[i].help);
        else
            fprintf(f, "  %-30s %s\n", commands[i].usage, commands[i].help);
    }
    fprintf(f, "\noptions:\n"
               "  --url URL          asgd's API (default $ASGCTL_URL or " CLI_DEFAULT_URL ")\n"
               "  --token-file FILE  bearer token for changes (default $ASGCTL_TOKEN_FILE)\n"
               "  --cacert FILE      CA bundle verifying an https:// URL's certificate\n"
               "                     (default $ASGCTL_CACERT, else the system's CAs)\n"
               "  -g, --group NAME   the group status, instances, activities, set and terminate\n"
               "                     act on (default $ASGCTL_GROUP; none: asgd's only group)\n"
               "  --json             print the API's JSON instead of tables\n"
               "\nexit codes: 0 ok, 1 asgd refused, 2 usage, 3 asgd unreachable, 4 token "
               "missing/rejected\n");
}

/* Takes "--opt VALUE" or "--opt=VALUE" at argv[*i]; NULL if it is not opt. */
static const char *opt_value(int argc, char **argv, int *i, const char *opt, int *missing)
{
    size_t n = strlen(opt);
    if (strncmp(argv[*i], opt, n) != 0)
        return NULL;
    if (argv[*i][n] == '=')
        return argv[*i] + n + 1;
    if (argv[*i][n] != '\0')
        return NULL;
    /* no NULL before argv[argc]; the second test says so to the static analyzer */
    if (*i + 1 >= argc || argv[*i + 1] == NULL) {
        *missing = 1;
        return NULL;
    }
    return argv[++*i];
}

int main(int argc, char **argv)
{
    struct cli c = {
        .url = getenv("ASGCTL_URL"),
        .token_file = getenv("ASGCTL_TOKEN_FILE"),
        .cacert = getenv("ASGCTL_CACERT"),
        .json = 0,
        .group = getenv("ASGCTL_GROUP"),
    };
    if (c.group && !*c.group)
        c.group = NULL;
    if (!c.url || !*c.url)
        c.url = CLI_DEFAULT_URL;
    if (c.token_file && !*c.token_file)
        c.token_file = NULL;
    if (c.cacert && !*c.cacert)
        c.cacert = NULL;

    /* pull global options out of argv, keep the rest in order */
    char **rest = calloc((size_t)argc + 1, sizeof *rest);
    if (!rest)
        return CLI_EAPI;
    int nrest = 0;
    for (int i = 1; i < argc; i++) {
        int missing = 0;
        const char *v;
        if ((v = opt_value(argc, argv, &i, "--url", &missing)))
            c.url = v;
        else if ((v = opt_value(argc, argv, &i, "--token-file", &missing)))
            c.token_file = v;
        else if (!missing && (v = opt_value(argc, argv, &i, "--cacert", &missing)))
            c.cacert = v;
        else if (!missing && (v = opt_value(argc, argv, &i, "--group", &missing)))
            c.group = v;
        else if (!missing && (v = opt_value(argc, argv, &i, "-g", &missing)))
            c.group = v;
        else if (missing) {
            fprintf(stderr, "asgctl: %s needs a value\n", argv[i]);
            free(rest);
            return CLI_EUSAGE;
        } else if (strcmp(argv[i], "--json") == 0)
            c.json = 1;
        else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0 ||
                 (nrest == 0 && strcmp(argv[i], "help") == 0)) {
            usage(stdout);
            free(rest);
            return CLI_OK;
        } else if (strcmp(argv[i], "--version") == 0) {
            printf("asgctl %s\n", ASGD_VERSION);
            free(rest);
            return CLI_OK;
        } else
            rest[nrest++] = argv[i];
    }
    if (nrest == 0) {
        usage(stderr);
        free(rest);
        return CLI_EUSAGE;
    }
    if (c.group && !cli_name_ok(c.group)) {
        fprintf(stderr, "asgctl: -g: \"%s\" is not a group name (letters, digits, '-', '_', '.')\n",
                c.group);
        free(rest);
        return CLI_EUSAGE;
    }
    const struct command *cmd = NULL;
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(rest[0], commands[i].name) == 0)
            cmd = &commands[i];
    if (!cmd) {
        fprintf(stderr, "asgctl: unknown command \"%s\"\n\n", rest[0]);
        usage(stderr);
        free(rest);
        return CLI_EUSAGE;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int rc = cmd->fn(&c, nrest, rest);
    curl_global_cleanup();
    free(rest);
    fflush(stdout);
    return rc;
}
