/*
 * group.h - what a group is: the one home of a group's settings.
 *
 * A group's settings (sizes, scaling policy, health checking) are read from
 * a config file, edited through the HTTP API and kept by the store. This
 * header owns the type all three share, so that none of them keeps a copy,
 * and the ONE key table every reader and writer is derived from:
 *
 *   section  key (INI)             JSON key (API)     kind      default
 *   group    name                  name               string    "default" (or the file's name)
 *            min_size              min_size           int       1
 *            max_size              max_size           int       max(min_size, 1)
 *            desired_capacity      desired_capacity   int       min_size
 *   policy   type                  type               enum      threshold (| target)
 *            scale_up_threshold    up_threshold       double    70
 *            scale_down_threshold  down_threshold     double    20
 *            scale_up_factor       up_factor          double    2
 *            scale_down_factor     down_factor        double    0.5
 *            cooldown              cooldown           duration  0 (= evaluation_period)
 *            evaluation_period     evaluation_period  duration  60s threshold, 15s target
 *            target                target             double    60
 *            tolerance             tolerance          double    0.1
 *            scale_down_window     scale_down_window  duration  300s
 *   health   type                  type               enum      agent (| ec2)
 *            interval              interval           duration  2s
 *            timeout               timeout            duration  1s
 *            healthy_threshold     healthy_threshold  int       2
 *            unhealthy_threshold   unhealthy_threshold int      3
 *            grace_period          grace_period       duration  30s
 *            panic_threshold       panic_threshold    int       50 (%; 0 = off)
 *            max_replacements_per_minute (same)       int       10 (0 = no limit)
 *            deregister_grace      deregister_grace   duration  30s
 *   group    protect_new_instances (same)             bool      false
 *            history_instances_max (same)             int       500 (0 = 500, -1 = never)
 *            metrics_instances_max (same)             int       1000 (0 = 1000, -1 = never)
 *   hooks    launch_timeout        launch_timeout     duration  0 (no launch hook)
 *            launch_default        launch_default     enum      abandon (| continue)
 *            terminate_timeout     terminate_timeout  duration  0 (no terminate hook)
 *            terminate_default     terminate_default  enum      abandon (| continue)
 *
 * The API's JSON (GET/PATCH /api/v1/group, docs/api.md) puts [group] keys at
 * the top level and every other section ([policy], [health], [notify]) in a
 * nested object of its name, plus the read-only
 * "revision" and "updated_at". Durations travel as text ("60s", "1500ms"); a
 * JSON number for a duration is read as seconds. A list (GROUP_K_LIST) is a
 * JSON array of its words (a string "a, b" is read too); in the INI file and
 * in the struct it is the canonical text "a, b" (choices' spelling, input
 * order, no duplicates; "" when empty).
 *
 * Errors: every fallible function returns 0 or -1 with the reason in err
 * (NUL-terminated, truncated to errlen; err may be NULL when errlen is 0).
 * Messages name the key: the INI reader "FILE:LINE: [policy] cooldown: why",
 * the JSON readers "policy.cooldown: why".
 *
 * Threads: all functions are pure (no I/O, no clock, no globals) and
 * reentrant.
 */
#ifndef ASGD_GROUP_H
#define ASGD_GROUP_H

#include <jansson.h>
#include <stddef.h>
#include <stdio.h>
#include <stdint.h>

#include "controller/policy.h"

#define GROUP_NAME_MAX  64 /* group name buffer, NUL included */
#define GROUP_NAME_LEN  48 /* longest valid group name (the fleet table's limit) */
#define GROUP_SHORT_MAX 32 /* short words: health type */

struct group_health {
    char type[GROUP_SHORT_MAX]; /* "agent" | "ec2" */
    int64_t interval_ms;
    int64_t timeout_ms;
    int healthy_threshold;
    int unhealthy_threshold;
    int64_t grace_period_ms;
    /* partitions (issue 11): more than this share (%) of the group failing at once stops
       replacements; 0 disables */
    int panic_threshold;
    int max_replacements_per_minute; /* 0: no limit */
    int64_t deregister_grace_ms;     /* a Deregister's reconnect window */
};

#define GROUP_LIST_MAX    160 /* a list's canonical text, NUL included */
#define GROUP_URL_MAX     512
#define GROUP_REFRESH_MAX 512 /* instance_refresh's text, NUL included */
#define GROUP_PATH_MAX    256

/* history_instances_max and metrics_instances_max when 0 (the defaults) */
#define GROUP_HISTORY_INSTANCES_MAX 500
#define GROUP_METRICS_INSTANCES_MAX 1000

/* [notify]: webhooks for the group's activities (src/notify/notify.h). */
struct group_notify {
    char url[GROUP_URL_MAX];                         /* "" = off; http:// or https:// */
    char secret_file[GROUP_PATH_MAX];                /* HMAC key file; "" = unsigned */
    char events[GROUP_LIST_MAX];                     /* list of notify event names */
    int max_retries;                                 /* after the first try; then dead letter */
    int64_t retry_base_ms, retry_max_ms, timeout_ms; /* 0: 1s, 5m, 5s */
};

/* Process names of suspended_processes (AWS's), for group_process_suspended(). */
#define GROUP_PROC_LAUNCH             "Launch"
#define GROUP_PROC_TERMINATE          "Terminate"
#define GROUP_PROC_HEALTH_CHECK       "HealthCheck"
#define GROUP_PROC_REPLACE_UNHEALTHY  "ReplaceUnhealthy"
#define GROUP_PROC_SCHEDULED_ACTIONS  "ScheduledActions"
#define GROUP_PROC_ALARM_NOTIFICATION "AlarmNotification"
#define GROUP_PROC_AZ_REBALANCE       "AZRebalance"

/* Lifecycle hooks (issue 12, docs/lifecycle.md): one launch and one terminate hook per group.
   A timeout of 0 means no hook; otherwise an instance waits in pending:wait / terminating:wait
   until the hook is completed or a heartbeat-extendable timeout applies the default result. */
struct group_hooks {
    int64_t launch_timeout_ms;
    char launch_default[GROUP_SHORT_MAX]; /* "abandon" | "continue" */
    int64_t terminate_timeout_ms;
    char terminate_default[GROUP_SHORT_MAX]; /* "abandon" | "continue" (both terminate) */
};

struct group_settings {
    char name[GROUP_NAME_MAX];
    int min_size, max_size, desired_capacity;
    int protect_new_instances; /* launched instances start with scale-in protection */
    struct policy_settings policy;
    struct group_health health;
    char termination_policy[GROUP_LIST_MAX];  /* list of victims.h policy names; "" = default */
    char suspended_processes[GROUP_LIST_MAX]; /* list of GROUP_PROC_* names */
    int64_t max_instance_lifetime_ms;         /* 0: none; older instances are replaced */
    /* per-instance load history (the controller's) and per-instance /metrics series are kept
       only while the group has at most this many instances: 0 is the default (500, 1000, so
       that a struct zeroed by hand or a store row older than the key keeps them), -1 never */
    int history_instances_max;
    int metrics_instances_max;
    struct group_notify notify;
    struct group_hooks hooks;
    /* the instance refresh's state (controller/refresh.h's text form; "" = none ever started):
       kept here so that it is persisted with the settings and survives a restart */
    char instance_refresh[GROUP_REFRESH_MAX];
    int64_t revision;      /* bumped by every store write; 1 after the first put */
    int64_t updated_at_ms; /* wall clock of the last write */
};

/* ---- the key table ------------------------------------------------------------------------ */

enum group_kind {
    GROUP_K_INT,
    GROUP_K_DOUBLE,
    GROUP_K_DURATION,
    GROUP_K_ENUM,
    GROUP_K_STRING,
    GROUP_K_LIST, /* words from choices, into a char array of size: its canonical text */
    GROUP_K_BOOL, /* an int 0/1; JSON true/false */
};

struct group_key {
    const char *section;        /* "group" | "policy" | "health" | "notify" | "hooks" */
    const char *key;            /* the INI key */
    const char *json;           /* the JSON key inside its object (top level for [group]) */
    int kind;                   /* enum group_kind */
    size_t off;                 /* offsetof(struct group_settings, field) */
    size_t size;                /* STRING/ENUM into a char array: its size; ENUM into an int: 0 */
    double lo, hi;              /* range the value must be in when read (ms for durations) */
    const char *const *choices; /* ENUM, LIST: NULL-terminated */
    const char *def;            /* the default, as text (documentation, check-config) */
    const char *desc;           /* one line */
};

/* The table (in the API's key order) and its length. */
extern const struct group_key group_keys[];
extern const size_t group_n_keys;
/* The entry of section/key (INI key, or JSON key when json is nonzero), or NULL. */
const struct group_key *group_key_find(const char *section, const char *key, int json);
/* The table as documentation (keys_doc.c): plain text, or roff for asgd.ini(5) when man. */
void group_keys_print(FILE *out, int man);
/* The table as a JSON array of {section, key, json, kind, choices, default, description}
   (help-keys --json); -1 with a message on stderr when it cannot be written. */
int group_keys_print_json(FILE *out);

/* Whether sec is a section of the table other than "group" (a nested JSON object). */
int group_section_nested(const char *sec);

/*
 * A list value: text ("a, b" or "a b", words matched case-insensitively
 * against k->choices) into its canonical text in out (outlen bytes). -1 with
 * "\"x\" is not one of: ..." in err for an unknown word or a text too long.
 */
int group_list_canon(const struct group_key *k, const char *text, char *out, size_t outlen,
                     char *err, size_t errlen);
/* 1 when the canonical list text holds word (exact spelling). */
int group_list_has(const char *list, const char *word);
/* 1 when process proc (GROUP_PROC_*) is in g's suspended_processes. */
int group_process_suspended(const struct group_settings *g, const char *proc);

/* ---- settings ----------------------------------------------------------------------------- */

/* Whether name is a valid group name: 1..GROUP_NAME_LEN letters, digits, '-', '_', '.'. */
int group_name_valid(const char *name);

/* Every default, name copied (truncated to the buffer; validity is the validator's). */
void group_settings_default(struct group_settings *g, const char *name);

/*
 * THE validator: name, sizes (0 <= min <= desired <= max <= FLEET_MAX_SIZE:
 * the fleet table is sized from max_size, see group_table_fit()), policy and health ranges and how
 * they fit together. On failure returns -1, sets *sec and *key (each may be NULL) to the INI
 * section and key of the offending setting (static strings, e.g. "policy", "scale_down_threshold")
 * and writes the reason alone to err ("80 must be below scale_up_threshold (70)"); callers place it
 * (file:line or JSON key).
 */
int group_settings_validate(const struct group_settings *g, const char **sec, const char **key,
                            char *err, size_t errlen);

/* New JSON object in the API's shape (see above). NULL when out of memory. */
json_t *group_settings_to_json(const struct group_settings *g);

/*
 * Reads a whole object as group_settings_to_json() writes it (the store's
 * copy) into *g: "name" is required, settings keys absent take their defaults
 * (as in the file: max_size and desired_capacity follow min_size),
 * "revision" and "updated_at" are read when present (else 0), unknown keys
 * and wrong types are refused naming the key; the result is validated. On
 * failure *g is unspecified.
 */
int group_settings_from_json(const json_t *j, struct group_settings *g, char *err, size_t errlen);

/*
 * The API's PATCH: applies the partial object patch to *g (absent keys keep
 * their value). Unknown keys, read-only keys (name, updated_at, and the
 * status counts) and wrong types are errors naming the key; "revision" is
 * accepted and ignored (the caller's optimistic-locking check). The INI names
 * of the policy keys (scale_up_threshold, ...) are accepted as aliases. When
 * min_size/max_size change without desired_capacity, desired is clamped into
 * the new range. The result is validated; errors read "policy.target: why".
 * On failure *g may be partly changed.
 */
int group_settings_patch(struct group_settings *g, const json_t *patch, char *err, size_t errlen);

/*
 * The values of obj (the API's form, any subset of keys) onto *g, each read
 * and type-checked as group_settings_patch() does, but NOT validated together
 * and without PATCH's min/max rule: for a reader of settings stored piecewise
 * (the SQLite backend's columns), whose values were validated when written.
 */
int group_settings_apply_json(struct group_settings *g, const json_t *obj, char *err,
                              size_t errlen);

/*
 * group_settings_validate() with the reason placed at the JSON key: "max_size:
 * 5000 exceeds ...", "policy.down_threshold: 80 must be below ...".
 */
int group_settings_validate_json(const struct group_settings *g, char *err, size_t errlen);

/* "min_size 1 -> 2, policy.cooldown 60s -> 2m" for every setting that differs, or "no change". */
void group_settings_diff(const struct group_settings *a, const struct group_settings *b, char *out,
                         size_t outlen);

/*
 * A config reload: copies into *dst every setting in which b differs from a
 * (a: a group file as it was, b: as it is now), so that what the API or the
 * controller changed meanwhile (desired_capacity ...) stays unless the file
 * changed it too. New min/max without a new desired carry desired into the
 * range, as a PATCH does. Returns how many settings were copied; *dst is not
 * validated (group_settings_validate()).
 */
int group_settings_apply_changes(struct group_settings *dst, const struct group_settings *a,
                                 const struct group_settings *b);

/* A duration as the config file writes it: "2m", "60s", or "1500ms" when not whole seconds. */
void group_format_duration(int64_t ms, char *buf, size_t len);

#endif
