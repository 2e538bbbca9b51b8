/*
 * settings_diff.c - comparing two group settings key by key (group.h): the
 * "min_size 1 -> 2, ..." text of the activity log, and a config reload's
 * changes applied over what the API or the controller changed meanwhile.
 * Values are compared exactly (not as printed).
 */
#include "group/group_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/banned.h"

/* ---- diff --------------------------------------------------------------------------------- */

static void diff_add(char *out, size_t outlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void diff_add(char *out, size_t outlen, const char *fmt, ...)
{
    size_t used = strlen(out);
    if (used + 3 >= outlen)
        return;
    if (used) {
        snprintf(out + used, outlen - used, ", ");
        used += 2;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out + used, outlen - used, fmt, ap);
    va_end(ap);
}

/* A value as the diff shows it: ints and doubles as numbers, durations as text. */
static void diff_text(const struct group_settings *g, const struct group_key *k, char *buf,
                      size_t len)
{
    const void *f = group__cfield(g, k);
    switch (k->kind) {
    case GROUP_K_INT:
        snprintf(buf, len, "%d", *(const int *)f);
        break;
    case GROUP_K_BOOL:
        snprintf(buf, len, "%s", *(const int *)f ? "true" : "false");
        break;
    case GROUP_K_DOUBLE:
        snprintf(buf, len, "%g", *(const double *)f);
        break;
    case GROUP_K_DURATION:
        group_format_duration(*(const int64_t *)f, buf, len);
        break;
    case GROUP_K_ENUM:
        snprintf(buf, len, "%s", k->size ? (const char *)f : policy_type_name(*(const int *)f));
        break;
    case GROUP_K_LIST:
        snprintf(buf, len, "[%s]", (const char *)f);
        break;
    default:
        snprintf(buf, len, "%s", (const char *)f);
        break;
    }
}

/* Whether a and b hold the same value of k (numbers compared exactly, not as printed). */
static int same(const struct group_settings *a, const struct group_settings *b,
                const struct group_key *k)
{
    const void *x = group__cfield(a, k), *y = group__cfield(b, k);
    switch (k->kind) {
    case GROUP_K_INT:
    case GROUP_K_BOOL:
        return *(const int *)x == *(const int *)y;
    case GROUP_K_DOUBLE:
        return *(const double *)x == *(const double *)y;
    case GROUP_K_DURATION:
        return *(const int64_t *)x == *(const int64_t *)y;
    case GROUP_K_ENUM:
        if (!k->size)
            return *(const int *)x == *(const int *)y;
        return strncmp(x, y, k->size) == 0;
    default:
        return strncmp(x, y, k->size) == 0;
    }
}

/* The bytes a key's value takes in struct group_settings. */
static size_t key_size(const struct group_key *k)
{
    switch (k->kind) {
    case GROUP_K_INT:
        return sizeof(int);
    case GROUP_K_DOUBLE:
        return sizeof(double);
    case GROUP_K_DURATION:
        return sizeof(int64_t);
    case GROUP_K_ENUM:
        return k->size ? k->size : sizeof(int);
    default:
        return k->size;
    }
}

int group_settings_apply_changes(struct group_settings *dst, const struct group_settings *a,
                                 const struct group_settings *b)
{
    int n = 0, bounds = 0, desired = 0;
    for (size_t i = 0; i < group_n_keys; i++) {
        const struct group_key *k = &group_keys[i];
        if (strcmp(k->key, "name") == 0 && strcmp(k->section, "group") == 0)
            continue;
        if (same(a, b, k))
            continue;
        memcpy(group__field(dst, k), group__cfield(b, k), key_size(k));
        n++;
        if (strcmp(k->section, "group") == 0) {
            if (strcmp(k->key, "desired_capacity") == 0)
                desired = 1;
            else
                bounds = 1;
        }
    }
    /* as a PATCH: new bounds carry desired along */
    if (bounds && !desired && dst->min_size <= dst->max_size) {
        if (dst->desired_capacity < dst->min_size)
            dst->desired_capacity = dst->min_size;
        if (dst->desired_capacity > dst->max_size)
            dst->desired_capacity = dst->max_size;
    }
    return n;
}

void group_settings_diff(const struct group_settings *a, const struct group_settings *b, char *out,
                         size_t outlen)
{
    if (outlen == 0)
        return;
    out[0] = '\0';
    for (size_t i = 0; i < group_n_keys; i++) {
        const struct group_key *k = &group_keys[i];
        if (strcmp(k->key, "name") == 0 && strcmp(k->section, "group") == 0)
            continue; /* a group's identity, not a setting */
        if (same(a, b, k))
            continue;
        char x[GROUP_LIST_MAX + 2], y[GROUP_LIST_MAX + 2];
        diff_text(a, k, x, sizeof x);
        diff_text(b, k, y, sizeof y);
        if (strcmp(k->section, "group") == 0)
            diff_add(out, outlen, "%s %s -> %s", k->json, x, y);
        else
            diff_add(out, outlen, "%s.%s %s -> %s", k->section, k->json, x, y);
    }
    if (!out[0])
        snprintf(out, outlen, "no change");
}
