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
 *
 * The API's JSON (GET/PATCH /api/v1/group, docs/api.md) puts [group] keys at
 * the top level and [policy]/[health] in nested objects, plus the read-only
 * "revision" and "updated_at". Durations travel as text ("60s", "1500ms"); a
 * JSON number for a duration is read as seconds.
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

struct group_settings {
    char name[GROUP_NAME_MAX];
    int min_size, max_size, desired_capacity;
    struct policy_settings policy;
    struct group_health health;
    int64_t revision;      /* bumped by every store write; 1 after the first put */
    int64_t updated_at_ms; /* wall clock of the last write */
};

/* ---- the key table ------------------------------------------------------------------------ */

enum group_kind { GROUP_K_INT, GROUP_K_DOUBLE, GROUP_K_DURATION, GROUP_K_ENUM, GROUP_K_STRING };

struct group_key {
    const char *section;        /* "group" | "policy" | "health" */
    const char *key;            /* the INI key */
    const char *json;           /* the JSON key inside its object (top level for [group]) */
    int kind;                   /* enum group_kind */
    size_t off;                 /* offsetof(struct group_settings, field) */
    size_t size;                /* STRING/ENUM into a char array: its size; ENUM into an int: 0 */
    double lo, hi;              /* range the value must be in when read (ms for durations) */
    const char *const *choices; /* ENUM: NULL-terminated */
    const char *def;            /* the default, as text (documentation, check-config) */
    const char *desc;           /* one line */
};

/* The table (in the API's key order) and its length. */
extern const struct group_key group_keys[];
extern const size_t group_n_keys;
/* The entry of section/key (INI key, or JSON key when json is nonzero), or NULL. */
const struct group_key *group_key_find(const char *section, const char *key, int json);

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
 * group_settings_validate() with the reason placed at the JSON key: "max_size:
 * 5000 exceeds ...", "policy.down_threshold: 80 must be below ...".
 */
int group_settings_validate_json(const struct group_settings *g, char *err, size_t errlen);

/* "min_size 1 -> 2, policy.cooldown 60s -> 2m" for every setting that differs, or "no change". */
void group_settings_diff(const struct group_settings *a, const struct group_settings *b, char *out,
                         size_t outlen);

/* A duration as the config file writes it: "2m", "60s", or "1500ms" when not whole seconds. */
void group_format_duration(int64_t ms, char *buf, size_t len);

#endif
