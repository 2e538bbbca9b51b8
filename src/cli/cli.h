/*
 * cli.h - asgctl, the command-line client of asgd's HTTP API.
 *
 * main.c parses the global options and dispatches to one cli_cmd_<name>()
 * per subcommand through a {name, fn, usage, help} table (git style). Each
 * command talks to asgd with cli_call() and prints either aligned tables for
 * people or the API's JSON (--json) for scripts.
 *
 * Exit codes scripts can trust (enum cli_exit): 0 done, 1 asgd refused the
 * request (its message is printed), 2 usage error, 3 asgd unreachable,
 * 4 token missing or rejected.
 */
#ifndef ASGD_CLI_H
#define ASGD_CLI_H

#include <jansson.h>
#include <stddef.h>

enum cli_exit { CLI_OK = 0, CLI_EAPI = 1, CLI_EUSAGE = 2, CLI_EUNREACHABLE = 3, CLI_EAUTH = 4 };

#define CLI_DEFAULT_URL "http://127.0.0.1:8080"

struct cli {
    const char *url;        /* base URL, no trailing slash needed */
    const char *token_file; /* NULL: none */
    const char *cacert;     /* --cacert: CA bundle that verifies an https:// URL; NULL: the
                               system's */
    int json;               /* --json: print the API's JSON */
    const char *group;      /* -g NAME / $ASGCTL_GROUP; NULL: the node's only group */
};

/*
 * The API path of a group resource: with c->group "/api/v1/groups/NAME" +
 * sub ("" for the group itself, "/instances", ...), else the single-group
 * route legacy (which asgd answers while it has exactly one group). -1 (and
 * a message printed) if the name cannot be a group name or the path does
 * not fit len.
 */
int cli_group_path(const struct cli *c, const char *sub, const char *legacy, char *buf, size_t len);
/* 1 if s can be a group name: [A-Za-z0-9_.-], 1..63 bytes, not starting with '.'. */
int cli_name_ok(const char *s);

/*
 * Sends method path (e.g. "/api/v1/group") with an optional JSON body
 * (borrowed, may be NULL); mutating requests carry the token. On success (2xx)
 * *out owns the parsed answer (json_decref) and CLI_OK is returned. Otherwise
 * the error has been printed to stderr and the exit code is returned.
 */
int cli_call(const struct cli *c, const char *method, const char *path, const json_t *body,
             json_t **out);

/* Prints j as indented JSON on stdout. */
void cli_print_json(const json_t *j);

/* ---- aligned tables (table.c) ------------------------------------------------------------ */

struct cli_table {
    size_t ncols, nrows, cap;
    char **cells; /* nrows * ncols malloc'd strings, row 0 = headers */
};
/* Starts a table with ncols headers (copied). */
int cli_table_init(struct cli_table *t, size_t ncols, const char *const *headers);
/* Appends a row of ncols cells (copied; NULL prints "-"). */
int cli_table_add(struct cli_table *t, const char *const *cells);
/* Prints with columns padded to their widest cell, two spaces apart; last column unpadded. */
void cli_table_print(const struct cli_table *t);
void cli_table_release(struct cli_table *t);

/* ---- subcommands (cmd.c): argv[0] is the subcommand's name ---------------------------- */

int cli_cmd_status(const struct cli *c, int argc, char **argv);
int cli_cmd_instances(const struct cli *c, int argc, char **argv);
int cli_cmd_activities(const struct cli *c, int argc, char **argv);
int cli_cmd_set(const struct cli *c, int argc, char **argv);
int cli_cmd_terminate(const struct cli *c, int argc, char **argv);
int cli_cmd_groups(const struct cli *c, int argc, char **argv);
int cli_cmd_create_group(const struct cli *c, int argc, char **argv);
int cli_cmd_delete_group(const struct cli *c, int argc, char **argv);
int cli_cmd_cluster(const struct cli *c, int argc, char **argv);
/* reload.c */
int cli_cmd_reload(const struct cli *c, int argc, char **argv);
int cli_cmd_suspend(const struct cli *c, int argc, char **argv);
int cli_cmd_resume(const struct cli *c, int argc, char **argv);
/* The strings of JSON array a joined by ", " into buf; none (empty or not an array). */
const char *cli_join(const json_t *a, char *buf, size_t len, const char *none);
/* life.c: instance life cycle (issue 12) */
int cli_cmd_complete_hook(const struct cli *c, int argc, char **argv);
int cli_cmd_protect(const struct cli *c, int argc, char **argv);
int cli_cmd_unprotect(const struct cli *c, int argc, char **argv);
int cli_cmd_standby(const struct cli *c, int argc, char **argv);
int cli_cmd_exit_standby(const struct cli *c, int argc, char **argv);
int cli_cmd_detach(const struct cli *c, int argc, char **argv);
int cli_cmd_attach(const struct cli *c, int argc, char **argv);
int cli_cmd_hooks(const struct cli *c, int argc, char **argv);
int cli_cmd_instance_refresh(const struct cli *c, int argc, char **argv); /* cmd_refresh.c */

/*
 * Reads an INI group file (the [group], [policy], [health], [provider],
 * [local], [ec2] sections of asgd's group files) into the JSON object
 * POST /api/v1/groups takes: {"section": {"key": value}}; values that read
 * as integers, numbers or true/false become JSON numbers/booleans, the rest
 * strings (group.name always a string). The node validates the keys. *out
 * is a new reference. -1 with a message naming the file and line.
 * (Temporary: the group module's group_spec_from_file() replaces it.)
 */
int cli_group_file_json(const char *path, json_t **out, char *err, size_t errlen);

#endif
