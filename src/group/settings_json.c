/*
 * settings_json.c - a group's settings in the API's JSON form (group.h):
 * to JSON, from a whole object (the store's copy), a PATCH, and the
 * piecewise apply of the SQLite backend. Every key comes from the one table
 * (settings.c); wrong types and unknown keys are refused naming the key, and
 * the result goes through the validator.
 */
#include "group/group_int.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/util.h"
#include "fleet/fleet.h"

#include "common/banned.h"

/* ---- to JSON ------------------------------------------------------------------------------ */

static json_t *value_json(const struct group_settings *g, const struct group_key *k)
{
    const void *f = group__cfield(g, k);
    char b[32];
    switch (k->kind) {
    case GROUP_K_INT:
        return json_integer(*(const int *)f);
    case GROUP_K_BOOL:
        return json_boolean(*(const int *)f);
    case GROUP_K_DOUBLE:
        return json_real(*(const double *)f);
    case GROUP_K_DURATION:
        group_format_duration(*(const int64_t *)f, b, sizeof(b));
        return json_string(b);
    case GROUP_K_ENUM:
        if (k->size)
            return json_string((const char *)f);
        return json_string(policy_type_name(*(const int *)f));
    case GROUP_K_LIST: {
        json_t *a = json_array();
        const char *p = (const char *)f;
        while (a && *p) {
            size_t n = strcspn(p, ",");
            if (json_array_append_new(a, json_stringn(p, n)) != 0) {
                json_decref(a);
                return NULL;
            }
            p += n;
            while (*p == ',' || *p == ' ')
                p++;
        }
        return a;
    }
    default:
        return json_string((const char *)f);
    }
}

static int parse_iso8601(const char *s, int64_t *out)
{
    if (s[0] == '\0') {
        *out = 0;
        return 0;
    }
    struct tm tm;
    int ms = 0, n = 0;
    memset(&tm, 0, sizeof(tm));
    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
               &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms, &n) != 7 ||
        s[n] != '\0' || ms < 0)
        return -1;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    time_t t = timegm(&tm);
    if (t == (time_t)-1)
        return -1;
    *out = (int64_t)t * 1000 + ms;
    return 0;
}

json_t *group_settings_to_json(const struct group_settings *g)
{
    json_t *top = json_object(), *nested = json_object();
    if (!top || !nested)
        goto oom;
    for (size_t i = 0; i < group_n_keys; i++) {
        const struct group_key *k = &group_keys[i];
        json_t *obj = top;
        if (group_section_nested(k->section)) {
            obj = json_object_get(nested, k->section);
            if (obj == NULL &&
                (json_object_set_new(nested, k->section, obj = json_object()) != 0 || obj == NULL))
                goto oom;
        }
        if (json_object_set_new(obj, k->json, value_json(g, k)) != 0)
            goto oom;
    }
    /* the sizes come before the nested objects, as docs/api.md shows them */
    if (json_object_update(top, nested) != 0)
        goto oom;
    json_decref(nested);
    nested = NULL;
    char at[40];
    clk_iso8601(g->updated_at_ms, at, sizeof at);
    if (json_object_set_new(top, "revision", json_integer((json_int_t)g->revision)) != 0 ||
        json_object_set_new(top, "updated_at", json_string(at)) != 0)
        goto oom;
    return top;
oom:
    json_decref(top);
    json_decref(nested);
    return NULL;
}

/* ---- from JSON ---------------------------------------------------------------------------- */

/* Reads one value of key k into *g; path names it in messages. */
static int read_value(struct group_settings *g, const struct group_key *k, const json_t *v,
                      const char *path, char *err, size_t errlen)
{
    void *f = group__field(g, k);
    switch (k->kind) {
    case GROUP_K_INT: {
        if (!json_is_integer(v)) {
            util_set_err(err, errlen, "%s: must be an integer", path);
            return -1;
        }
        json_int_t x = json_integer_value(v);
        if (x < -1000000000LL || x > 1000000000LL) {
            util_set_err(err, errlen, "%s: %lld is out of range", path, (long long)x);
            return -1;
        }
        *(int *)f = (int)x;
        return 0;
    }
    case GROUP_K_BOOL:
        if (!json_is_boolean(v)) {
            util_set_err(err, errlen, "%s: must be true or false", path);
            return -1;
        }
        *(int *)f = json_is_true(v);
        return 0;
    case GROUP_K_DOUBLE:
        if (!json_is_number(v) || !isfinite(json_number_value(v))) {
            util_set_err(err, errlen, "%s: must be a number", path);
            return -1;
        }
        *(double *)f = json_number_value(v);
        return 0;
    case GROUP_K_DURATION:
        if (json_is_string(v)) {
            int64_t ms;
            if (clk_parse_duration(json_string_value(v), &ms)) {
                util_set_err(err, errlen,
                             "%s: \"%.64s\" is not a duration (like \"500ms\", \"30s\", \"2m\")",
                             path, json_string_value(v));
                return -1;
            }
            *(int64_t *)f = ms;
            return 0;
        }
        if (json_is_number(v)) {
            double s = json_number_value(v);
            if (!isfinite(s) || s < 0 || s > 1e9) {
                util_set_err(err, errlen, "%s: must be a non-negative number of seconds", path);
                return -1;
            }
            *(int64_t *)f = (int64_t)llround(s * 1000.0);
            return 0;
        }
        util_set_err(err, errlen, "%s: must be a duration string (\"30s\") or a number of seconds",
                     path);
        return -1;
    case GROUP_K_ENUM: {
        const char *s = json_is_string(v) ? json_string_value(v) : NULL;
        int idx = -1;
        for (int i = 0; s && k->choices[i]; i++)
            if (strcmp(s, k->choices[i]) == 0)
                idx = i;
        if (idx < 0) {
            char list[160] = "";
            size_t at = 0;
            for (int i = 0; k->choices[i] && at < sizeof(list); i++) {
                int w = snprintf(list + at, sizeof(list) - at, "%s\"%s\"",
                                 i == 0              ? ""
                                 : k->choices[i + 1] ? ", "
                                                     : " or ",
                                 k->choices[i]);
                if (w > 0)
                    at += (size_t)w;
            }
            util_set_err(err, errlen, "%s: must be %s", path, list);
            return -1;
        }
        if (k->size) {
            memset(f, 0, k->size); /* equal settings compare equal byte for byte */
            snprintf((char *)f, k->size, "%s", k->choices[idx]);
        } else
            *(int *)f = idx;
        return 0;
    }
    case GROUP_K_LIST: {
        char text[GROUP_LIST_MAX * 2] = "", why[320];
        size_t used = 0;
        if (json_is_string(v))
            snprintf(text, sizeof(text), "%s", json_string_value(v));
        else if (json_is_array(v)) {
            size_t i;
            json_t *e;
            json_array_foreach(v, i, e)
            {
                if (!json_is_string(e) || used + json_string_length(e) + 2 >= sizeof(text)) {
                    util_set_err(err, errlen, "%s: must be an array of strings (at most %zu bytes)",
                                 path, k->size - 1);
                    return -1;
                }
                used += (size_t)snprintf(text + used, sizeof(text) - used, "%s%s", i ? "," : "",
                                         json_string_value(e));
            }
        } else {
            util_set_err(err, errlen, "%s: must be an array of strings", path);
            return -1;
        }
        if (group_list_canon(k, text, (char *)f, k->size, why, sizeof(why)) != 0) {
            util_set_err(err, errlen, "%s: %s", path, why);
            return -1;
        }
        return 0;
    }
    default: {
        const char *s = json_is_string(v) ? json_string_value(v) : NULL;
        if (s == NULL || strlen(s) >= k->size) {
            util_set_err(err, errlen, "%s: must be a string of at most %zu bytes", path,
                         k->size - 1);
            return -1;
        }
        memset(f, 0, k->size);
        snprintf((char *)f, k->size, "%s", s);
        return 0;
    }
    }
}

/* The JSON key of section sec (policy/health) named k, accepting the INI names as aliases. */
static const struct group_key *find_json_key(const char *sec, const char *k)
{
    const struct group_key *gk = group_key_find(sec, k, 1);
    return gk ? gk : group_key_find(sec, k, 0);
}

static void key_list(const char *sec, char *buf, size_t len)
{
    buf[0] = '\0';
    for (size_t i = 0; i < group_n_keys; i++) {
        if (strcmp(group_keys[i].section, sec) != 0)
            continue;
        size_t used = strlen(buf);
        snprintf(buf + used, len - used, "%s%s", used ? ", " : "", group_keys[i].json);
    }
}

static int read_section(struct group_settings *g, const char *sec, const json_t *obj, char *err,
                        size_t errlen)
{
    if (!json_is_object(obj)) {
        util_set_err(err, errlen, "%s: must be an object", sec);
        return -1;
    }
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)obj, k, v)
    {
        char path[96];
        snprintf(path, sizeof path, "%s.%.64s", sec, k);
        const struct group_key *gk = find_json_key(sec, k);
        if (gk == NULL) {
            char keys[256];
            key_list(sec, keys, sizeof keys);
            util_set_err(err, errlen, "unknown key \"%s\" (%s keys: %s)", path, sec, keys);
            return -1;
        }
        if (read_value(g, gk, v, path, err, errlen) != 0)
            return -1;
    }
    return 0;
}

enum { MODE_FULL, MODE_PATCH };

/* Applies the top-level object; see group_settings_from_json/_patch for the two modes. */
static int apply(struct group_settings *g, const json_t *j, int mode, int *bounds, int *desired,
                 char *err, size_t errlen)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)j, k, v)
    {
        const struct group_key *gk = group_key_find("group", k, 1);
        int rc;
        if (group_section_nested(k))
            rc = read_section(g, k, v, err, errlen);
        else if (strcmp(k, "revision") == 0) {
            if (!json_is_integer(v) || json_integer_value(v) < 0) {
                util_set_err(err, errlen, "revision: must be a non-negative integer");
                return -1;
            }
            if (mode == MODE_FULL)
                g->revision = (int64_t)json_integer_value(v);
            rc = 0;
        } else if (mode == MODE_FULL && strcmp(k, "updated_at") == 0) {
            if (!json_is_string(v) || parse_iso8601(json_string_value(v), &g->updated_at_ms)) {
                util_set_err(err, errlen,
                             "updated_at: must be a time like \"2026-11-29T07:30:00.123Z\"");
                return -1;
            }
            rc = 0;
        } else if (mode == MODE_PATCH &&
                   (strcmp(k, "name") == 0 || strcmp(k, "updated_at") == 0 ||
                    strcmp(k, "in_service") == 0 || strcmp(k, "pending") == 0 ||
                    strcmp(k, "unhealthy") == 0 || strcmp(k, "terminating") == 0)) {
            util_set_err(err, errlen, "key \"%s\" is read-only", k);
            return -1;
        } else if (gk != NULL) {
            rc = read_value(g, gk, v, k, err, errlen);
            if (strcmp(k, "desired_capacity") == 0)
                *desired = 1;
            else if (strcmp(k, "min_size") == 0 || strcmp(k, "max_size") == 0)
                *bounds = 1;
        } else {
            util_set_err(
                err, errlen,
                "unknown key \"%.64s\" (settable: min_size, max_size, desired_capacity, "
                "termination_policy, suspended_processes, max_instance_lifetime, policy, health, "
                "notify)",
                k);
            return -1;
        }
        if (rc)
            return -1;
    }
    return 0;
}

int group_settings_from_json(const json_t *j, struct group_settings *g, char *err, size_t errlen)
{
    if (!json_is_object(j)) {
        util_set_err(err, errlen, "group settings: must be a JSON object");
        return -1;
    }
    const json_t *name = json_object_get(j, "name");
    if (!json_is_string(name) || !group_name_valid(json_string_value(name))) {
        util_set_err(err, errlen,
                     "name: must be a valid group name (1..%d letters, digits, '-', "
                     "'_', '.')",
                     GROUP_NAME_LEN);
        return -1;
    }
    group_settings_default(g, json_string_value(name));
    /* the policy type first: its defaults apply to the policy keys absent */
    const json_t *pol = json_object_get(j, "policy");
    const json_t *pt = json_is_object(pol) ? json_object_get(pol, "type") : NULL;
    if (pt != NULL) {
        const struct group_key *k = group_key_find("policy", "type", 0);
        if (read_value(g, k, pt, "policy.type", err, errlen) != 0)
            return -1;
        policy_settings_default(&g->policy, g->policy.type);
    }
    /* as in the file: max_size and desired_capacity default to follow min_size */
    const json_t *mn = json_object_get(j, "min_size");
    if (json_is_integer(mn) && json_integer_value(mn) >= 0 &&
        json_integer_value(mn) <= FLEET_MAX_SIZE) {
        int m = (int)json_integer_value(mn);
        g->max_size = m > 1 ? m : 1;
        g->desired_capacity = m;
    }
    int bounds = 0, desired = 0;
    if (apply(g, j, MODE_FULL, &bounds, &desired, err, errlen) != 0)
        return -1;
    return group_settings_validate_json(g, err, errlen);
}

int group_settings_apply_json(struct group_settings *g, const json_t *obj, char *err, size_t errlen)
{
    int bounds = 0, desired = 0;
    if (!json_is_object(obj)) {
        util_set_err(err, errlen, "the settings must be a JSON object");
        return -1;
    }
    return apply(g, obj, MODE_PATCH, &bounds, &desired, err, errlen);
}

int group_settings_patch(struct group_settings *g, const json_t *patch, char *err, size_t errlen)
{
    if (!json_is_object(patch)) {
        util_set_err(err, errlen, "the body must be a JSON object");
        return -1;
    }
    if (json_object_size(patch) == 0) {
        util_set_err(err, errlen, "nothing to change: the object is empty");
        return -1;
    }
    int bounds = 0, desired = 0;
    if (apply(g, patch, MODE_PATCH, &bounds, &desired, err, errlen) != 0)
        return -1;
    /* AWS UpdateAutoScalingGroup: new bounds carry desired along */
    if (bounds && !desired && g->min_size <= g->max_size) {
        if (g->desired_capacity < g->min_size)
            g->desired_capacity = g->min_size;
        if (g->desired_capacity > g->max_size)
            g->desired_capacity = g->max_size;
    }
    return group_settings_validate_json(g, err, errlen);
}
