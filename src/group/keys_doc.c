/*
 * keys_doc.c - the group key table (settings.c) as documentation: the
 * [group], [policy] and [health] parts of asgd.ini(5) are generated from it
 * at build time (`asgd help-keys --man`), so the manual cannot miss a key or
 * show a stale default. `asgd help-keys` prints the same as plain text, and
 * `asgd help-keys --json` as data: test_openapi checks with it that the
 * OpenAPI document's Group and GroupPatch schemas have every key with its type.
 */
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "group/group.h"

#include "common/banned.h"

/* A switch, not a table indexed by kind: a kind added to group.h without a name here prints
   "value" instead of reading past the end. */
static const char *kind_name(int kind)
{
    switch (kind) {
    case GROUP_K_INT:
        return "integer";
    case GROUP_K_DOUBLE:
        return "number";
    case GROUP_K_DURATION:
        return "duration";
    case GROUP_K_ENUM:
        return "one of";
    case GROUP_K_STRING:
        return "string";
    case GROUP_K_LIST:
        return "a comma-separated list of";
    case GROUP_K_BOOL:
        return "boolean";
    default:
        return "value";
    }
}

/* Writes s with roff's special characters escaped (a leading '.' or '\'' too). */
static void roff(FILE *out, const char *s)
{
    if (*s == '.' || *s == '\'')
        fputs("\\&", out);
    for (; *s; s++) {
        if (*s == '\\')
            fputs("\\e", out);
        else if (*s == '-')
            fputs("\\-", out);
        else
            fputc(*s, out);
    }
}

static void kind_text(FILE *out, const struct group_key *k)
{
    fputs(kind_name(k->kind), out);
    if (k->kind == GROUP_K_ENUM || k->kind == GROUP_K_LIST) {
        for (int i = 0; k->choices && k->choices[i]; i++)
            fprintf(out, "%s%s", i ? " | " : " ", k->choices[i]);
    }
}

void group_keys_print(FILE *out, int man)
{
    const char *section = "";
    for (size_t i = 0; i < group_n_keys; i++) {
        const struct group_key *k = &group_keys[i];
        if (strcmp(k->section, section) != 0) {
            section = k->section;
            if (man)
                fprintf(out, ".SS [%s]\n", section);
            else
                fprintf(out, "%s[%s]\n", i ? "\n" : "", section);
        }
        if (man) {
            fputs(".TP\n.B ", out);
            roff(out, k->key);
            fputs("\n", out);
            roff(out, k->desc);
            fputs(".\n.br\n", out);
            kind_text(out, k);
            fputs("; default: ", out);
            roff(out, k->def);
            if (strcmp(k->json, k->key) != 0 || strcmp(section, "group") != 0) {
                fputs("; API: ", out);
                if (strcmp(section, "group") != 0)
                    fprintf(out, "%s.", section);
                roff(out, k->json);
            }
            fputs("\n", out);
        } else {
            fprintf(out, "  %-28s ", k->key);
            kind_text(out, k);
            fprintf(out, ", default %s: %s\n", k->def, k->desc);
        }
    }
}

/* The JSON form's kind names (help-keys --json): one word each. */
static const char *kind_word(int kind)
{
    switch (kind) {
    case GROUP_K_INT:
        return "integer";
    case GROUP_K_DOUBLE:
        return "number";
    case GROUP_K_DURATION:
        return "duration";
    case GROUP_K_ENUM:
        return "enum";
    case GROUP_K_STRING:
        return "string";
    case GROUP_K_LIST:
        return "list";
    case GROUP_K_BOOL:
        return "boolean";
    default:
        return "value";
    }
}

int group_keys_print_json(FILE *out)
{
    json_t *all = json_array();
    for (size_t i = 0; all && i < group_n_keys; i++) {
        const struct group_key *k = &group_keys[i];
        json_t *choices = NULL;
        if (k->choices) {
            choices = json_array();
            for (int c = 0; choices && k->choices[c]; c++)
                if (json_array_append_new(choices, json_string(k->choices[c])) != 0) {
                    json_decref(choices);
                    choices = NULL;
                }
            if (choices == NULL)
                goto oom;
        }
        json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:o*, s:s, s:s}", "section", k->section, "key",
                              k->key, "json", k->json, "kind", kind_word(k->kind), "choices",
                              choices, "default", k->def, "description", k->desc);
        if (o == NULL || json_array_append_new(all, o) != 0)
            goto oom;
    }
    if (all == NULL || json_dumpf(all, out, JSON_INDENT(1)) != 0 || fputc('\n', out) == EOF) {
        json_decref(all);
        fprintf(stderr, "asgd: help-keys: cannot write the key table\n");
        return -1;
    }
    json_decref(all);
    return 0;
oom:
    json_decref(all);
    fprintf(stderr, "asgd: help-keys: out of memory\n");
    return -1;
}
