/*
 * cfg.c - the INI reader behind cfg.h.
 *
 * The whole file is read into memory (capped at CFG_MAX_FILE bytes) and split
 * into lines there, so a line of any length is handled without a fixed
 * buffer. The grammar, one construct per line:
 *
 *   ; comment            # comment            (blank lines are ignored)
 *   [section]            names: letters, digits, '_', '-', '.'
 *   key = value          value trimmed; may be empty; " ;" or " #" starts a
 *                        comment; "double quoted" keeps spaces, ; and #
 *                        (escapes \" and \\ inside quotes)
 *
 * A key before any section, a repeated key in a section, a repeated section
 * header, an unterminated quote or a line that is none of the above is a
 * syntax error with its line number. Libinih was considered; a reader of our
 * own gives exact line numbers and messages without its line-length limit.
 *
 * Which sections a module asked about is remembered in a hidden byte stored
 * just after the NUL of each section name (the names are allocated here and
 * freed here), so cfg.h's public struct needs no extra field; it lets
 * cfg_check_unused() tell "unknown section" from "unknown key".
 */
#include "common/cfg.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/clock.h"
#include "common/util.h"

#include "common/banned.h"

#define CFG_MAX_FILE (4 * 1024 * 1024)

#define set_err util_set_err

static char *dup_range(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p == NULL)
        return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

/* A section name with the hidden "queried" byte after its NUL. */
static char *dup_section(const char *s, size_t n)
{
    char *p = malloc(n + 2);
    if (p == NULL)
        return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    p[n + 1] = 0;
    return p;
}

static void mark_section_queried(struct cfg *c, const char *section)
{
    for (size_t i = 0; i < c->n_sections; i++) {
        if (strcmp(c->sections[i], section) == 0) {
            c->sections[i][strlen(c->sections[i]) + 1] = 1;
            return;
        }
    }
}

static int section_queried(const struct cfg *c, size_t i)
{
    return c->sections[i][strlen(c->sections[i]) + 1] != 0;
}

void cfg_release(struct cfg *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->n; i++) {
        free(c->entries[i].section);
        free(c->entries[i].key);
        free(c->entries[i].value);
    }
    free(c->entries);
    for (size_t i = 0; i < c->n_sections; i++)
        free(c->sections[i]);
    free(c->sections);
    free(c->section_lines);
    free(c->path);
    memset(c, 0, sizeof(*c));
}

static int is_name_char(int ch)
{
    return isalnum(ch) || ch == '_' || ch == '-' || ch == '.';
}

static int valid_name(const char *s, size_t n)
{
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!is_name_char((unsigned char)s[i]))
            return 0;
    return 1;
}

static int is_space(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\v' || ch == '\f';
}

/* Parser state shared by the line handlers. */
struct parser {
    struct cfg *c;
    const char *name;
    int line;
    int cur_section; /* index into c->sections, -1 before the first header */
    size_t cap_entries, cap_sections;
    char *err;
    size_t errlen;
};

static int add_section(struct parser *p, const char *s, size_t n)
{
    struct cfg *c = p->c;
    for (size_t i = 0; i < c->n_sections; i++) {
        if (strlen(c->sections[i]) == n && memcmp(c->sections[i], s, n) == 0) {
            set_err(p->err, p->errlen, "%s:%d: [%s]: section repeated (first at line %d)", p->name,
                    p->line, c->sections[i], c->section_lines[i]);
            return -1;
        }
    }
    if (c->n_sections == p->cap_sections) {
        size_t cap = p->cap_sections ? p->cap_sections * 2 : 8;
        char **ns = realloc(c->sections, cap * sizeof(*ns));
        if (ns == NULL)
            goto oom;
        c->sections = ns;
        int *nl = realloc(c->section_lines, cap * sizeof(*nl));
        if (nl == NULL)
            goto oom;
        c->section_lines = nl;
        p->cap_sections = cap;
    }
    char *name = dup_section(s, n);
    if (name == NULL)
        goto oom;
    c->sections[c->n_sections] = name;
    c->section_lines[c->n_sections] = p->line;
    p->cur_section = (int)c->n_sections;
    c->n_sections++;
    return 0;
oom:
    set_err(p->err, p->errlen, "%s:%d: out of memory", p->name, p->line);
    return -1;
}

static int add_entry(struct parser *p, const char *key, size_t keylen, char *value)
{
    struct cfg *c = p->c;
    const char *sec = c->sections[p->cur_section];
    for (size_t i = 0; i < c->n; i++) {
        struct cfg_entry *e = &c->entries[i];
        if (strcmp(e->section, sec) == 0 && strlen(e->key) == keylen &&
            memcmp(e->key, key, keylen) == 0) {
            set_err(p->err, p->errlen, "%s:%d: [%s] %s: duplicate key (first at line %d)", p->name,
                    p->line, sec, e->key, e->line);
            free(value);
            return -1;
        }
    }
    if (c->n == p->cap_entries) {
        size_t cap = p->cap_entries ? p->cap_entries * 2 : 16;
        struct cfg_entry *ne = realloc(c->entries, cap * sizeof(*ne));
        if (ne == NULL)
            goto oom;
        c->entries = ne;
        p->cap_entries = cap;
    }
    struct cfg_entry *e = &c->entries[c->n];
    memset(e, 0, sizeof(*e));
    e->section = dup_range(sec, strlen(sec));
    e->key = dup_range(key, keylen);
    e->value = value;
    e->line = p->line;
    if (e->section == NULL || e->key == NULL) {
        free(e->section);
        free(e->key);
        goto oom;
    }
    c->n++;
    return 0;
oom:
    free(value);
    set_err(p->err, p->errlen, "%s:%d: out of memory", p->name, p->line);
    return -1;
}

/*
 * Parses the value part [s, e) (already left-trimmed): a quoted string or a
 * bare value ending at an inline comment. Returns a malloc'd string or NULL
 * with the error set.
 */
static char *parse_value(struct parser *p, const char *s, const char *e, const char *key,
                         size_t keylen)
{
    const char *sec = p->c->sections[p->cur_section];
    if (s < e && *s == '"') {
        char *out = malloc((size_t)(e - s) + 1);
        size_t n = 0;
        const char *q = s + 1;
        if (out == NULL)
            goto oom;
        for (;;) {
            if (q >= e) {
                set_err(p->err, p->errlen, "%s:%d: [%s] %.*s: unterminated quoted value", p->name,
                        p->line, sec, (int)keylen, key);
                free(out);
                return NULL;
            }
            if (*q == '"')
                break;
            if (*q == '\\' && q + 1 < e && (q[1] == '"' || q[1] == '\\'))
                q++;
            out[n++] = *q++;
        }
        out[n] = '\0';
        q++;
        while (q < e && is_space(*q))
            q++;
        if (q < e && *q != ';' && *q != '#') {
            set_err(p->err, p->errlen, "%s:%d: [%s] %.*s: unexpected text after quoted value",
                    p->name, p->line, sec, (int)keylen, key);
            free(out);
            return NULL;
        }
        return out;
    }
    /* Bare value: a ';' or '#' preceded by whitespace starts a comment. */
    const char *end = e;
    for (const char *q = s; q < e; q++) {
        if ((*q == ';' || *q == '#') && (q == s || is_space(q[-1]))) {
            end = q;
            break;
        }
    }
    while (end > s && is_space(end[-1]))
        end--;
    char *v = dup_range(s, (size_t)(end - s));
    if (v == NULL)
        goto oom;
    return v;
oom:
    set_err(p->err, p->errlen, "%s:%d: out of memory", p->name, p->line);
    return NULL;
}

static int parse_line(struct parser *p, const char *s, const char *e)
{
    while (s < e && is_space(*s))
        s++;
    while (e > s && is_space(e[-1]))
        e--;
    if (s == e || *s == ';' || *s == '#')
        return 0;
    if (*s == '[') {
        const char *close = memchr(s, ']', (size_t)(e - s));
        if (close == NULL) {
            set_err(p->err, p->errlen, "%s:%d: syntax error: section header without ']'", p->name,
                    p->line);
            return -1;
        }
        const char *after = close + 1;
        while (after < e && is_space(*after))
            after++;
        if (after < e && *after != ';' && *after != '#') {
            set_err(p->err, p->errlen, "%s:%d: syntax error: text after section header", p->name,
                    p->line);
            return -1;
        }
        const char *ns = s + 1, *ne = close;
        while (ns < ne && is_space(*ns))
            ns++;
        while (ne > ns && is_space(ne[-1]))
            ne--;
        if (!valid_name(ns, (size_t)(ne - ns))) {
            set_err(p->err, p->errlen,
                    "%s:%d: syntax error: invalid section name (letters, digits, '_', '-', '.')",
                    p->name, p->line);
            return -1;
        }
        return add_section(p, ns, (size_t)(ne - ns));
    }
    const char *eq = memchr(s, '=', (size_t)(e - s));
    if (eq == NULL) {
        set_err(p->err, p->errlen, "%s:%d: syntax error: expected '[section]' or 'key = value'",
                p->name, p->line);
        return -1;
    }
    const char *ke = eq;
    while (ke > s && is_space(ke[-1]))
        ke--;
    size_t keylen = (size_t)(ke - s);
    if (!valid_name(s, keylen)) {
        set_err(p->err, p->errlen,
                "%s:%d: syntax error: invalid key name (letters, digits, '_', '-', '.')", p->name,
                p->line);
        return -1;
    }
    if (p->cur_section < 0) {
        set_err(p->err, p->errlen, "%s:%d: %.*s: key outside any [section]", p->name, p->line,
                (int)keylen, s);
        return -1;
    }
    const char *vs = eq + 1;
    while (vs < e && is_space(*vs))
        vs++;
    char *value = parse_value(p, vs, e, s, keylen);
    if (value == NULL)
        return -1;
    size_t vlen = strlen(value);
    if (vlen > CFG_VALUE_MAX) {
        set_err(p->err, p->errlen, "%s:%d: [%s] %.*s: value too long (%zu bytes, at most %d)",
                p->name, p->line, p->c->sections[p->cur_section], (int)keylen, s, vlen,
                CFG_VALUE_MAX);
        free(value);
        return -1;
    }
    return add_entry(p, s, keylen, value);
}

static int parse_text(struct cfg *c, const char *name, const char *text, size_t len, char *err,
                      size_t errlen)
{
    struct parser p = {
        .c = c, .name = name, .line = 0, .cur_section = -1, .err = err, .errlen = errlen};
    /* cppcheck-suppress pointerOutOfBoundsCond ; end is one past the last byte, as usual */
    const char *s = text, *end = text + len;
    /* a UTF-8 byte order mark is tolerated */
    if (len >= 3 && memcmp(s, "\xef\xbb\xbf", 3) == 0)
        s += 3;
    while (s < end) {
        const char *nl = memchr(s, '\n', (size_t)(end - s));
        const char *le = nl ? nl : end;
        p.line++;
        if (memchr(s, '\0', (size_t)(le - s)) != NULL) {
            set_err(err, errlen, "%s:%d: syntax error: NUL byte in line", name, p.line);
            return -1;
        }
        if (parse_line(&p, s, le) != 0)
            return -1;
        s = nl ? nl + 1 : end;
    }
    return 0;
}

int cfg_load_string(struct cfg *c, const char *name, const char *text, char *err, size_t errlen)
{
    set_err(err, errlen, "%s", "");
    memset(c, 0, sizeof(*c));
    if (name == NULL)
        name = "<string>";
    c->path = dup_range(name, strlen(name));
    if (c->path == NULL) {
        set_err(err, errlen, "%s: out of memory", name);
        return -1;
    }
    if (parse_text(c, c->path, text ? text : "", text ? strlen(text) : 0, err, errlen) != 0) {
        cfg_release(c);
        return -1;
    }
    return 0;
}

int cfg_load(struct cfg *c, const char *path, char *err, size_t errlen)
{
    int rc = -1;
    char *buf = NULL;
    size_t len = 0;

    set_err(err, errlen, "%s", "");
    memset(c, 0, sizeof(*c));
    if (util_read_file(path, CFG_MAX_FILE, &buf, &len, err, errlen) != 0)
        return -1;
    c->path = dup_range(path, strlen(path));
    if (c->path == NULL) {
        set_err(err, errlen, "%s: out of memory", path);
        goto out;
    }
    if (parse_text(c, c->path, buf ? buf : "", len, err, errlen) != 0) {
        cfg_release(c);
        goto out;
    }
    rc = 0;
out:
    free(buf);
    return rc;
}

const struct cfg_entry *cfg_find(struct cfg *c, const char *section, const char *key)
{
    if (c == NULL || section == NULL || key == NULL)
        return NULL;
    mark_section_queried(c, section);
    for (size_t i = 0; i < c->n; i++) {
        struct cfg_entry *e = &c->entries[i];
        if (strcmp(e->section, section) == 0 && strcmp(e->key, key) == 0) {
            e->used = 1;
            return e;
        }
    }
    return NULL;
}

int cfg_has_section(const struct cfg *c, const char *section)
{
    if (c == NULL || section == NULL)
        return 0;
    for (size_t i = 0; i < c->n_sections; i++)
        if (strcmp(c->sections[i], section) == 0)
            return 1;
    return 0;
}

static const char *cfg_name(const struct cfg *c)
{
    return c->path ? c->path : "<config>";
}

static void entry_err(const struct cfg *c, const struct cfg_entry *e, char *err, size_t errlen,
                      const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void entry_err(const struct cfg *c, const struct cfg_entry *e, char *err, size_t errlen,
                      const char *fmt, ...)
{
    if (err == NULL || errlen == 0)
        return;
    int n;
    if (c->no_lines)
        n = snprintf(err, errlen, "%s: %s.%s: ", cfg_name(c), e->section, e->key);
    else
        n = snprintf(err, errlen, "%s:%d: [%s] %s: ", cfg_name(c), e->line, e->section, e->key);
    if (n < 0 || (size_t)n >= errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
    va_end(ap);
}

void cfg_error_at(const struct cfg *c, const char *sec, const char *key, char *err, size_t errlen,
                  const char *fmt, ...)
{
    if (err == NULL || errlen == 0)
        return;
    int line = 0;
    for (size_t i = 0; c != NULL && sec != NULL && key != NULL && i < c->n; i++) {
        if (strcmp(c->entries[i].section, sec) == 0 && strcmp(c->entries[i].key, key) == 0) {
            line = c->entries[i].line;
            break;
        }
    }
    for (size_t i = 0; line == 0 && c != NULL && sec != NULL && i < c->n_sections; i++)
        if (strcmp(c->sections[i], sec) == 0)
            line = c->section_lines[i];
    const char *name = c ? cfg_name(c) : "<config>";
    int n;
    if (c != NULL && c->no_lines)
        n = snprintf(err, errlen, "%s: %s%s%s: ", name, sec ? sec : "", key ? "." : "",
                     key ? key : "");
    else if (line > 0)
        n = snprintf(err, errlen, "%s:%d: [%s]%s%s: ", name, line, sec ? sec : "", key ? " " : "",
                     key ? key : "");
    else
        n = snprintf(err, errlen, "%s: [%s]%s%s: ", name, sec ? sec : "", key ? " " : "",
                     key ? key : "");
    if (n < 0 || (size_t)n >= errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
    va_end(ap);
}

int cfg_get_str(struct cfg *c, const char *sec, const char *key, const char *def, char **out,
                char *err, size_t errlen)
{
    const struct cfg_entry *e = cfg_find(c, sec, key);
    const char *v = e ? e->value : def;
    *out = NULL;
    if (v == NULL)
        return 0;
    *out = dup_range(v, strlen(v));
    if (*out == NULL) {
        set_err(err, errlen, "%s: out of memory", cfg_name(c));
        return -1;
    }
    return 0;
}

int cfg_get_int(struct cfg *c, const char *sec, const char *key, long def, long min, long max,
                long *out, char *err, size_t errlen)
{
    const struct cfg_entry *e = cfg_find(c, sec, key);
    if (e == NULL) {
        *out = def;
        return 0;
    }
    const char *v = e->value;
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (*v == '\0' || isspace((unsigned char)*v) || *end != '\0') {
        entry_err(c, e, err, errlen, "\"%s\" is not an integer", v);
        return -1;
    }
    if (errno == ERANGE || x < min || x > max) {
        entry_err(c, e, err, errlen, "%s is out of range (%ld..%ld)", v, min, max);
        return -1;
    }
    *out = x;
    return 0;
}

int cfg_get_double(struct cfg *c, const char *sec, const char *key, double def, double min,
                   double max, double *out, char *err, size_t errlen)
{
    const struct cfg_entry *e = cfg_find(c, sec, key);
    if (e == NULL) {
        *out = def;
        return 0;
    }
    const char *v = e->value;
    /* decimal notation only: strtod would also take "inf", "nan" and hex */
    int ok = *v != '\0';
    for (const char *q = v; *q; q++)
        if (!(isdigit((unsigned char)*q) || *q == '.' || *q == '-' || *q == '+' || *q == 'e' ||
              *q == 'E'))
            ok = 0;
    char *end = NULL;
    double x = 0;
    if (ok) {
        errno = 0;
        x = strtod(v, &end);
        if (*end != '\0' || end == v)
            ok = 0;
    }
    if (!ok) {
        entry_err(c, e, err, errlen, "\"%s\" is not a number", v);
        return -1;
    }
    if (errno == ERANGE || !isfinite(x) || x < min || x > max) {
        entry_err(c, e, err, errlen, "%s is out of range (%g..%g)", v, min, max);
        return -1;
    }
    *out = x;
    return 0;
}

int cfg_get_bool(struct cfg *c, const char *sec, const char *key, int def, int *out, char *err,
                 size_t errlen)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    const struct cfg_entry *e = cfg_find(c, sec, key);
    if (e == NULL) {
        *out = def ? 1 : 0;
        return 0;
    }
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        if (strcasecmp(e->value, yes[i]) == 0) {
            *out = 1;
            return 0;
        }
        if (strcasecmp(e->value, no[i]) == 0) {
            *out = 0;
            return 0;
        }
    }
    entry_err(c, e, err, errlen, "\"%s\" is not a boolean (true/false, yes/no, on/off, 1/0)",
              e->value);
    return -1;
}

int cfg_get_duration(struct cfg *c, const char *sec, const char *key, int64_t def, int64_t min,
                     int64_t max, int64_t *out, char *err, size_t errlen)
{
    const struct cfg_entry *e = cfg_find(c, sec, key);
    if (e == NULL) {
        *out = def;
        return 0;
    }
    int64_t ms = 0;
    if (clk_parse_duration(e->value, &ms) != 0) {
        entry_err(c, e, err, errlen, "\"%s\" is not a duration (like 500ms, 5s, 2m, 1h)", e->value);
        return -1;
    }
    if (ms < min || ms > max) {
        char lo[32], hi[32];
        clk_format_duration(min, lo, sizeof(lo));
        clk_format_duration(max, hi, sizeof(hi));
        entry_err(c, e, err, errlen, "%s is out of range (%s..%s)", e->value, lo, hi);
        return -1;
    }
    *out = ms;
    return 0;
}

int cfg_get_enum(struct cfg *c, const char *sec, const char *key, int def,
                 const char *const *choices, int *out, char *err, size_t errlen)
{
    const struct cfg_entry *e = cfg_find(c, sec, key);
    if (e == NULL) {
        *out = def;
        return 0;
    }
    for (int i = 0; choices[i] != NULL; i++) {
        if (strcmp(e->value, choices[i]) == 0) {
            *out = i;
            return 0;
        }
    }
    /* "must be one of a, b, c" */
    char list[256];
    size_t n = 0;
    list[0] = '\0';
    for (int i = 0; choices[i] != NULL && n < sizeof(list); i++) {
        int w = snprintf(list + n, sizeof(list) - n, "%s%s", i ? ", " : "", choices[i]);
        if (w < 0)
            break;
        n += (size_t)w;
    }
    entry_err(c, e, err, errlen, "\"%s\" is not one of: %s", e->value, list);
    return -1;
}

int cfg_check_unused(const struct cfg *c, char *err, size_t errlen)
{
    /* the earliest by line; without lines (a spec) the first in order */
    int found = 0, best_line = 0;
    const struct cfg_entry *best_entry = NULL;
    size_t best_section = 0;
    int is_section = 0;

    for (size_t i = 0; i < c->n_sections; i++) {
        if (!section_queried(c, i) && (!found || c->section_lines[i] < best_line)) {
            found = 1;
            best_line = c->section_lines[i];
            best_section = i;
            is_section = 1;
        }
    }
    for (size_t i = 0; i < c->n; i++) {
        const struct cfg_entry *e = &c->entries[i];
        if (e->used)
            continue;
        /* keys of an unknown section are covered by the section's own report */
        int sec_known = 1;
        for (size_t j = 0; j < c->n_sections; j++)
            if (strcmp(c->sections[j], e->section) == 0)
                sec_known = section_queried(c, j);
        if (!sec_known)
            continue;
        if (!found || e->line < best_line) {
            found = 1;
            best_line = e->line;
            best_entry = e;
            is_section = 0;
        }
    }
    if (!found)
        return 0;
    if (c->no_lines && is_section)
        set_err(err, errlen, "%s: %s: unknown section", cfg_name(c), c->sections[best_section]);
    else if (c->no_lines)
        set_err(err, errlen, "%s: %s.%s: unknown key", cfg_name(c), best_entry->section,
                best_entry->key);
    else if (is_section)
        set_err(err, errlen, "%s:%d: [%s]: unknown section", cfg_name(c), best_line,
                c->sections[best_section]);
    else
        set_err(err, errlen, "%s:%d: [%s] %s: unknown key", cfg_name(c), best_line,
                best_entry->section, best_entry->key);
    return -1;
}

int cfg_init_named(struct cfg *c, const char *name, char *err, size_t errlen)
{
    memset(c, 0, sizeof(*c));
    if (name == NULL)
        name = "<string>";
    c->path = dup_range(name, strlen(name));
    if (c->path == NULL) {
        set_err(err, errlen, "%s: out of memory", name);
        return -1;
    }
    c->no_lines = 1;
    return 0;
}

int cfg_add(struct cfg *c, const char *section, const char *key, const char *value, char *err,
            size_t errlen)
{
    const char *name = cfg_name(c);
    if (!valid_name(section, strlen(section))) {
        set_err(err, errlen, "%s: \"%.64s\": invalid section name (letters, digits, '_', '-', '.')",
                name, section);
        return -1;
    }
    if (!valid_name(key, strlen(key))) {
        set_err(err, errlen, "%s: %s.%.64s: invalid key name (letters, digits, '_', '-', '.')",
                name, section, key);
        return -1;
    }
    size_t vlen = strlen(value);
    if (vlen > CFG_VALUE_MAX) {
        set_err(err, errlen, "%s: %s.%s: value too long (%zu bytes, at most %d)", name, section,
                key, vlen, CFG_VALUE_MAX);
        return -1;
    }
    for (size_t i = 0; i < c->n; i++) {
        if (strcmp(c->entries[i].section, section) == 0 && strcmp(c->entries[i].key, key) == 0) {
            set_err(err, errlen, "%s: %s.%s: duplicate key", name, section, key);
            return -1;
        }
    }
    if (!cfg_has_section(c, section)) {
        char **ns = realloc(c->sections, (c->n_sections + 1) * sizeof(*ns));
        if (ns == NULL)
            goto oom;
        c->sections = ns;
        int *nl = realloc(c->section_lines, (c->n_sections + 1) * sizeof(*nl));
        if (nl == NULL)
            goto oom;
        c->section_lines = nl;
        char *sname = dup_section(section, strlen(section));
        if (sname == NULL)
            goto oom;
        c->sections[c->n_sections] = sname;
        c->section_lines[c->n_sections] = 0;
        c->n_sections++;
    }
    struct cfg_entry *ne = realloc(c->entries, (c->n + 1) * sizeof(*ne));
    if (ne == NULL)
        goto oom;
    c->entries = ne;
    struct cfg_entry *e = &c->entries[c->n];
    memset(e, 0, sizeof(*e));
    e->section = dup_range(section, strlen(section));
    e->key = dup_range(key, strlen(key));
    e->value = dup_range(value, vlen);
    if (e->section == NULL || e->key == NULL || e->value == NULL) {
        free(e->section);
        free(e->key);
        free(e->value);
        goto oom;
    }
    c->n++;
    return 0;
oom:
    set_err(err, errlen, "%s: out of memory", name);
    return -1;
}

int cfg_get_nonempty(struct cfg *cfg, const char *sec, const char *key, char **out, char *err,
                     size_t errlen)
{
    char *v = NULL;
    if (cfg_get_str(cfg, sec, key, NULL, &v, err, errlen) != 0)
        return -1;
    if (v == NULL)
        return 0;
    if (v[0] == '\0') {
        free(v);
        cfg_error_at(cfg, sec, key, err, errlen, "must not be empty");
        return -1;
    }
    free(*out);
    *out = v;
    return 0;
}
