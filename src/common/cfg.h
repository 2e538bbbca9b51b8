/*
 * cfg.h - the INI file reader every module's settings come from.
 *
 * cfg_load() reads a whole file into (section, key, value, line) entries and
 * rejects syntax errors with their line. Modules then pull their own keys with
 * the typed getters, which validate ranges and report "FILE:LINE: [sec] key:
 * why" on failure. A getter marks its entry used; cfg_check_unused() finally
 * reports the first key or section nobody asked for, so a typo never passes
 * silently. Keys may appear once per section (a repeat is an error).
 *
 * Errors: every fallible call returns 0 on success or -1 with a message in
 * err (always NUL-terminated; truncated if longer than errlen).
 */
#ifndef ASGD_CFG_H
#define ASGD_CFG_H

#include <stddef.h>
#include <stdint.h>

struct cfg_entry {
    char *section;
    char *key;
    char *value;
    int line;
    int used;
};

struct cfg {
    char *path;
    struct cfg_entry *entries;
    size_t n;
    char **sections;    /* every section header seen, in order */
    int *section_lines; /* line of each header */
    size_t n_sections;
    int no_lines; /* built by cfg_add() (a JSON spec): messages name "sec.key", not a line */
};

/* Longest value accepted (paths: PATH_MAX is 4096 on Linux); longer is an error at its line. */
#define CFG_VALUE_MAX 4096

#define CFG_INIT                                                                                   \
    {                                                                                              \
        0                                                                                          \
    }

/* Reads path. On failure *c is left empty (cfg_release is still safe). */
int cfg_load(struct cfg *c, const char *path, char *err, size_t errlen);
/* Same, from a string (tests); name is used in messages. */
int cfg_load_string(struct cfg *c, const char *name, const char *text, char *err, size_t errlen);
/* Frees the contents; *c becomes empty. */
void cfg_release(struct cfg *c);

/*
 * Builds a cfg without a file (a JSON spec): cfg_init_named() makes *c empty
 * with name for messages and no_lines set; cfg_add() appends section.key =
 * value (the section is created on first use; a repeated key, a value over
 * CFG_VALUE_MAX bytes or an invalid name is an error "NAME: sec.key: why").
 * Messages about such entries read "NAME: sec.key: why".
 */
int cfg_init_named(struct cfg *c, const char *name, char *err, size_t errlen);
int cfg_add(struct cfg *c, const char *section, const char *key, const char *value, char *err,
            size_t errlen);

/* The entry, or NULL; marks it used. */
const struct cfg_entry *cfg_find(struct cfg *c, const char *section, const char *key);
/* Whether a [section] header appeared; marks nothing. */
int cfg_has_section(const struct cfg *c, const char *section);

/* Typed getters: absent key -> *out = def, return 0. Present and invalid -> -1 + message. */
int cfg_get_str(struct cfg *c, const char *sec, const char *key, const char *def, char **out,
                char *err,
                size_t errlen); /* *out is malloc'd (caller frees), or NULL if def NULL */
int cfg_get_int(struct cfg *c, const char *sec, const char *key, long def, long min, long max,
                long *out, char *err, size_t errlen);
int cfg_get_double(struct cfg *c, const char *sec, const char *key, double def, double min,
                   double max, double *out, char *err, size_t errlen);
int cfg_get_bool(struct cfg *c, const char *sec, const char *key, int def, int *out, char *err,
                 size_t errlen);
/* Durations as clk_parse_duration() reads them; result in milliseconds. */
int cfg_get_duration(struct cfg *c, const char *sec, const char *key, int64_t def, int64_t min,
                     int64_t max, int64_t *out, char *err, size_t errlen);
/* One of choices (NULL-terminated); *out = its index. */
int cfg_get_enum(struct cfg *c, const char *sec, const char *key, int def,
                 const char *const *choices, int *out, char *err, size_t errlen);

/* Formats "FILE:LINE: [sec] key: <fmt>" for a validation error found after reading. */
void cfg_error_at(const struct cfg *c, const char *sec, const char *key, char *err, size_t errlen,
                  const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/* First unused key or unknown section -> -1 with "FILE:LINE: unknown key ..." */
int cfg_check_unused(const struct cfg *c, char *err, size_t errlen);

/*
 * A string key that must not be empty when present: *out is replaced by a
 * malloc'd copy (the old value freed); an absent key leaves *out as it is.
 * An empty value is an error at its line ("must not be empty"). 0 or -1.
 */
int cfg_get_nonempty(struct cfg *cfg, const char *sec, const char *key, char **out, char *err,
                     size_t errlen);

#endif
