/*
 * keys_doc.c - the group key table (settings.c) as documentation: the
 * [group], [policy] and [health] parts of asgd.ini(5) are generated from it
 * at build time (`asgd help-keys --man`), so the manual cannot miss a key or
 * show a stale default. `asgd help-keys` prints the same as plain text.
 */
#include <stdio.h>
#include <string.h>

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
