/*
 * group_json.c - the HTTP API's names for the group settings' JSON form.
 *
 * The mapping, the PATCH semantics and the validation live in src/group/
 * (group.h), shared with the config file and the store; these wrappers keep
 * api.c's names. max_cap (0: none) bounds max_size for callers that want a
 * bound below FLEET_MAX_SIZE (the fuzzer); the API itself passes 0: the fleet
 * table grows with max_size (group_table_fit()).
 *
 * Pure functions: no I/O, no clock; unit-tested directly and through HTTP.
 */
#include "http/http_int.h"

#include <stdio.h>

#include "common/util.h"
#include "group/group.h"

#include "common/banned.h"

json_t *http__group_to_json(const struct group_settings *g)
{
    return group_settings_to_json(g);
}

int http__group_patch(struct group_settings *g, const json_t *patch, int max_cap, char *err,
                      size_t errlen)
{
    if (group_settings_patch(g, patch, err, errlen) != 0)
        return -1;
    return http__group_validate(g, max_cap, err, errlen);
}

int http__group_validate(const struct group_settings *g, int max_cap, char *err, size_t errlen)
{
    if (group_settings_validate_json(g, err, errlen) != 0)
        return -1;
    if (max_cap > 0 && g->max_size > max_cap) {
        util_set_err(err, errlen, "max_size: %d exceeds the most instances allowed here (%d)",
                     g->max_size, max_cap);
        return -1;
    }
    return 0;
}

void http__group_diff(const struct group_settings *a, const struct group_settings *b, char *out,
                      size_t outlen)
{
    group_settings_diff(a, b, out, outlen);
}
