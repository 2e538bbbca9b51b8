/*
 * fuzz_group_patch.c - libFuzzer target for the API's PATCH body: JSON text
 * (as the server gets it) through json_loadb() and http__group_patch()
 * applied to valid default settings, then back to JSON.
 *
 * Invariants: a patch that is accepted leaves settings that pass the same
 * validation as the config file (http__group_validate) and serialise; the
 * error text is NUL-terminated. Seeds: tests/fuzz/corpus/group_patch/.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "asgd/conf.h"
#include "http/http_int.h"

#include "common/banned.h"

#define FUZZ_MAX_CAP 1000

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct group_settings defaults;
    static int ready;
    if (!ready) {
        group_settings_default(&defaults, "default");
        ready = 1;
    }
    json_error_t jerr;
    json_t *patch = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &jerr);
    if (patch == NULL)
        return 0;
    struct group_settings g = defaults;
    char err[512];
    err[sizeof(err) - 1] = 'x';
    if (json_is_object(patch) &&
        http__group_patch(&g, patch, FUZZ_MAX_CAP, err, sizeof(err)) == 0) {
        char verr[512];
        if (http__group_validate(&g, FUZZ_MAX_CAP, verr, sizeof(verr)) != 0)
            abort(); /* accepted but invalid */
        json_t *back = http__group_to_json(&g);
        if (back == NULL)
            abort();
        json_decref(back);
    }
    if (memchr(err, '\0', sizeof(err)) == NULL)
        abort();
    json_decref(patch);
    return 0;
}
