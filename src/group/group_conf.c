/*
 * group_conf.c - reads a group's whole definition (group_conf.h) from a
 * cfg, a group file or a JSON spec, through one reader.
 *
 * The settings' keys come from group.h's table; the typed cfg getters check
 * each value at its line, then group_settings_validate() checks how they fit
 * together and the error is placed at the offending key with cfg_error_at().
 * A spec is turned into an in-memory cfg (cfg_add) and read the same way, so
 * the file, the API and the store can never disagree on what a group is.
 */
#include "group/group_conf.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

#include "common/banned.h"

#define HOUR_MS (3600LL * 1000)

/* The sections a group definition is made of, in a spec's order. */
static const char *const group_sections[] = {"group", "policy",   "health", "notify",
                                             "hooks", "provider", "local",  "ec2"};
#define N_SECTIONS (sizeof(group_sections) / sizeof(group_sections[0]))

static int is_group_section(const char *s)
{
    for (size_t i = 0; i < N_SECTIONS; i++)
        if (strcmp(s, group_sections[i]) == 0)
            return 1;
    return 0;
}

static char *xstrdup(const char *s)
{
    if (s == NULL)
        return NULL;
    size_t n = strlen(s);
    char *p = malloc(n + 1);
    if (p != NULL)
        memcpy(p, s, n + 1);
    return p;
}

void group_conf_release(struct group_conf *g)
{
    if (g == NULL)
        return;
    free(g->path);
    free(g->local.agent);
    free(g->local.agent_args);
    free(g->local.address_base);
    free(g->local.dir);
    if (g->has_ec2)
        ec2_settings_release(&g->ec2);
    free(g->spec);
    memset(g, 0, sizeof(*g));
}

void group_derive_address(const char *name, char *buf, size_t len)
{
    uint32_t h = 2166136261u; /* FNV-1a: stable across builds and hosts */
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        h ^= *p;
        h *= 16777619u;
    }
    /* 127.0.x.x stays the single-file layout's (127.0.0.2) */
    snprintf(buf, len, "127.%u.%u.2", 1 + h % 250, (h / 250) % 250);
}

/* ---- the settings, from the key table ----------------------------------------------------- */

static int read_key(struct cfg *cfg, const struct group_key *k, struct group_settings *g,
                    const char *default_name, char *err, size_t errlen)
{
    void *f = (char *)g + k->off;
    switch (k->kind) {
    case GROUP_K_INT: {
        long v;
        if (cfg_get_int(cfg, k->section, k->key, *(int *)f, (long)k->lo, (long)k->hi, &v, err,
                        errlen) != 0)
            return -1;
        *(int *)f = (int)v;
        return 0;
    }
    case GROUP_K_BOOL: {
        int b;
        if (cfg_get_bool(cfg, k->section, k->key, *(int *)f, &b, err, errlen) != 0)
            return -1;
        *(int *)f = b;
        return 0;
    }
    case GROUP_K_DOUBLE:
        return cfg_get_double(cfg, k->section, k->key, *(double *)f, k->lo, k->hi, (double *)f, err,
                              errlen);
    case GROUP_K_DURATION:
        return cfg_get_duration(cfg, k->section, k->key, *(int64_t *)f, (int64_t)k->lo,
                                (int64_t)k->hi, (int64_t *)f, err, errlen);
    case GROUP_K_ENUM: {
        int def = 0, idx;
        for (int i = 0; k->size && k->choices[i]; i++)
            if (strcmp((const char *)f, k->choices[i]) == 0)
                def = i;
        if (!k->size)
            def = *(int *)f;
        if (cfg_get_enum(cfg, k->section, k->key, def, k->choices, &idx, err, errlen) != 0)
            return -1;
        if (k->size) {
            memset(f, 0, k->size); /* equal settings compare equal byte for byte */
            snprintf((char *)f, k->size, "%s", k->choices[idx]);
        } else
            *(int *)f = idx;
        return 0;
    }
    case GROUP_K_LIST: {
        char *v = NULL, why[320];
        if (cfg_get_str(cfg, k->section, k->key, (const char *)f, &v, err, errlen) != 0)
            return -1;
        int rc = group_list_canon(k, v, (char *)f, k->size, why, sizeof(why));
        if (rc != 0)
            cfg_error_at(cfg, k->section, k->key, err, errlen, "%s", why);
        free(v);
        return rc;
    }
    default: {
        /* the name's text is checked here, where its line is known; other strings (the
           step policy's steps) by the validator */
        char *v = NULL;
        int is_name = k->off == offsetof(struct group_settings, name);
        if (cfg_get_str(cfg, k->section, k->key, is_name ? default_name : (const char *)f, &v, err,
                        errlen) != 0)
            return -1;
        if (v != NULL && !is_name && strlen(v) >= k->size) {
            cfg_error_at(cfg, k->section, k->key, err, errlen, "too long (at most %zu bytes)",
                         k->size - 1);
            free(v);
            return -1;
        }
        if (is_name && !group_name_valid(v)) {
            cfg_error_at(cfg, k->section, k->key, err, errlen,
                         "\"%.64s\"%s is not a valid name (1..%d letters, digits, '-', '_', '.')",
                         v, cfg_find(cfg, k->section, k->key) ? "" : " (the default)",
                         GROUP_NAME_LEN);
            free(v);
            return -1;
        }
        memset(f, 0, k->size);
        snprintf((char *)f, k->size, "%s", v);
        free(v);
        return 0;
    }
    }
}

static int read_settings(struct cfg *cfg, const char *default_name, struct group_settings *g,
                         char *err, size_t errlen)
{
    group_settings_default(g, "default");
    for (size_t i = 0; i < group_n_keys; i++) {
        const struct group_key *k = &group_keys[i];
        if (read_key(cfg, k, g, default_name ? default_name : "default", err, errlen) != 0)
            return -1;
        /* defaults that depend on a value read before them */
        if (k->off == offsetof(struct group_settings, min_size)) {
            g->max_size = g->min_size > 1 ? g->min_size : 1;
            g->desired_capacity = g->min_size;
        } else if (k->off == offsetof(struct group_settings, policy.type)) {
            policy_settings_default(&g->policy, g->policy.type);
        }
    }
    return 0;
}

/* ---- provider, [local], [ec2] ------------------------------------------------------------- */

static int read_local(struct cfg *cfg, struct group_conf *out, char *err, size_t errlen)
{
    struct group_local *l = &out->local;
    if (cfg_get_nonempty(cfg, "local", "agent", &l->agent, err, errlen) != 0)
        return -1;
    char *args = NULL;
    if (cfg_get_str(cfg, "local", "agent_args", NULL, &args, err, errlen) != 0)
        return -1;
    if (args != NULL && args[0] != '\0')
        l->agent_args = args;
    else
        free(args);
    if (cfg_get_duration(cfg, "local", "boot_delay", 0, 0, HOUR_MS, &l->boot_delay_ms, err,
                         errlen) != 0 ||
        cfg_get_nonempty(cfg, "local", "address_base", &l->address_base, err, errlen) != 0 ||
        cfg_get_nonempty(cfg, "local", "dir", &l->dir, err, errlen) != 0)
        return -1;
    long keep = 20;
    if (cfg_get_int(cfg, "local", "keep_logs", 20, 1, 100000, &keep, err, errlen) != 0)
        return -1;
    l->keep_logs = (int)keep;
    return 0;
}

/* address_base must be IPv4 loopback with room for max_size consecutive addresses. */
static int check_address_base(struct cfg *cfg, const struct group_conf *c, char *err, size_t errlen)
{
    struct in_addr a;
    if (inet_pton(AF_INET, c->local.address_base, &a) != 1) {
        cfg_error_at(cfg, "local", "address_base", err, errlen, "\"%.64s\" is not an IPv4 address",
                     c->local.address_base);
        return -1;
    }
    uint32_t h = ntohl(a.s_addr);
    /* a private range too: agents in a network namespace of this host, over a veth link */
    uint32_t mask = (h >> 24) == 127      ? 0xffffff
                    : (h >> 24) == 10     ? 0xffffff
                    : (h >> 20) == 0xac1  ? 0xfffff
                    : (h >> 16) == 0xc0a8 ? 0xffff
                                          : 0;
    if (mask == 0) {
        cfg_error_at(cfg, "local", "address_base", err, errlen,
                     "\"%s\" is not a loopback (127.x.x.x) or private (10/8, 172.16/12, "
                     "192.168/16) address",
                     c->local.address_base);
        return -1;
    }
    if ((uint64_t)(h & mask) + (uint64_t)c->settings.max_size > mask) {
        cfg_error_at(cfg, "local", "address_base", err, errlen,
                     "\"%s\" leaves no room for max_size (%d) consecutive addresses in its range",
                     c->local.address_base, c->settings.max_size);
        return -1;
    }
    return 0;
}

/* ---- the spec ----------------------------------------------------------------------------- */

/* The canonical text of the group sections of cfg, with group.name = name. */
static char *spec_text(const struct cfg *cfg, const char *name)
{
    json_t *top = json_object();
    if (top == NULL)
        return NULL;
    for (size_t i = 0; i < cfg->n; i++) {
        const struct cfg_entry *e = &cfg->entries[i];
        if (!is_group_section(e->section))
            continue;
        json_t *sec = json_object_get(top, e->section);
        if (sec == NULL) {
            sec = json_object();
            if (json_object_set_new(top, e->section, sec) != 0)
                goto fail;
        }
        if (json_object_set_new(sec, e->key, json_string(e->value)) != 0)
            goto fail;
    }
    json_t *grp = json_object_get(top, "group");
    if (grp == NULL) {
        grp = json_object();
        if (json_object_set_new(top, "group", grp) != 0)
            goto fail;
    }
    if (json_object_set_new(grp, "name", json_string(name)) != 0)
        goto fail;
    char *text = json_dumps(top, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(top);
    return text;
fail:
    json_decref(top);
    return NULL;
}

/* ---- the reader --------------------------------------------------------------------------- */

int group_conf_read_cfg(struct cfg *cfg, const char *default_name, int flags,
                        struct group_conf *out, char *err, size_t errlen)
{
    static const char *const providers[] = {"local", "ec2", NULL};
    util_set_err(err, errlen, "%s", "");
    memset(out, 0, sizeof(*out));
    if (read_settings(cfg, default_name, &out->settings, err, errlen) != 0)
        return -1;
    if (cfg_get_enum(cfg, "provider", "type", GROUP_PROVIDER_LOCAL, providers, &out->provider, err,
                     errlen) != 0)
        return -1;
    if (read_local(cfg, out, err, errlen) != 0)
        return -1;
    if (out->local.address_base == NULL) {
        char buf[32];
        if (flags & GROUP_CONF_DERIVE_ADDRESS)
            group_derive_address(out->settings.name, buf, sizeof(buf));
        else
            snprintf(buf, sizeof(buf), "%s", "127.0.0.2");
        if ((out->local.address_base = xstrdup(buf)) == NULL)
            goto oom;
    }
    if (out->provider == GROUP_PROVIDER_EC2 || cfg_has_section(cfg, "ec2")) {
        if (ec2_settings_load(cfg, &out->ec2, err, errlen) != 0)
            return -1;
        out->has_ec2 = 1;
    }

    /* how the values fit together, reported at the offending key */
    const char *sec = NULL, *key = NULL;
    char why[256];
    if (group_settings_validate(&out->settings, &sec, &key, why, sizeof(why)) != 0) {
        cfg_error_at(cfg, sec, key, err, errlen, "%s", why);
        return -1;
    }
    if (strcmp(out->settings.health.type, "ec2") == 0 && out->provider != GROUP_PROVIDER_EC2) {
        cfg_error_at(cfg, "health", "type", err, errlen,
                     "ec2 health checks need [provider] type = ec2");
        return -1;
    }
    if (out->provider == GROUP_PROVIDER_LOCAL && check_address_base(cfg, out, err, errlen) != 0)
        return -1;
    if ((out->spec = spec_text(cfg, out->settings.name)) == NULL)
        goto oom;
    return 0;
oom:
    util_set_err(err, errlen, "%s: out of memory", cfg->path ? cfg->path : "config");
    return -1;
}

/* "dir/web.ini" -> "web" into buf. */
static void name_from_path(const char *path, char *buf, size_t len)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t n = strlen(base);
    if (n > 4 && strcmp(base + n - 4, ".ini") == 0)
        n -= 4;
    snprintf(buf, len, "%.*s", (int)(n < len ? n : len - 1), base);
}

int group_conf_load_file(const char *path, int flags, struct group_conf *out, char *err,
                         size_t errlen)
{
    struct cfg cfg = CFG_INIT;
    char name[GROUP_NAME_MAX + 8];
    memset(out, 0, sizeof(*out));
    if (cfg_load(&cfg, path, err, errlen) != 0)
        return -1;
    name_from_path(path, name, sizeof(name));
    int rc = group_conf_read_cfg(&cfg, name, flags, out, err, errlen);
    if (rc == 0)
        rc = cfg_check_unused(&cfg, err, errlen);
    if (rc == 0 && (out->path = xstrdup(path)) == NULL) {
        util_set_err(err, errlen, "%s: out of memory", path);
        rc = -1;
    }
    cfg_release(&cfg);
    return rc;
}

int group_spec_from_file(const char *path, char **json_text, char *err, size_t errlen)
{
    struct group_conf g;
    *json_text = NULL;
    int rc = group_conf_load_file(path, GROUP_CONF_DERIVE_ADDRESS, &g, err, errlen);
    if (rc == 0) {
        *json_text = g.spec;
        g.spec = NULL;
    }
    group_conf_release(&g);
    return rc;
}

/* One spec value as the INI's text into buf; -1 + message for a wrong type. */
static int value_text(const json_t *v, const char *name, const char *sec, const char *key,
                      char *buf, size_t len, const char **out, char *err, size_t errlen)
{
    if (json_is_string(v)) {
        if (strlen(json_string_value(v)) != json_string_length(v)) {
            util_set_err(err, errlen, "%s: %s.%.64s: NUL byte in the value", name, sec, key);
            return -1;
        }
        *out = json_string_value(v);
        return 0;
    }
    if (json_is_integer(v))
        snprintf(buf, len, "%lld", (long long)json_integer_value(v));
    else if (json_is_real(v))
        snprintf(buf, len, "%.17g", json_real_value(v));
    else if (json_is_boolean(v))
        snprintf(buf, len, "%s", json_is_true(v) ? "true" : "false");
    else {
        util_set_err(err, errlen, "%s: %s.%.64s: must be a string, number or boolean", name, sec,
                     key);
        return -1;
    }
    *out = buf;
    return 0;
}

int group_conf_from_spec(const char *text, const json_t *j, const char *name,
                         struct group_conf *out, char *err, size_t errlen)
{
    json_t *parsed = NULL;
    struct cfg cfg = CFG_INIT;
    int rc = -1;
    memset(out, 0, sizeof(*out));
    if (name == NULL)
        name = "spec";
    if (j == NULL) {
        json_error_t je;
        parsed = json_loads(text ? text : "", JSON_REJECT_DUPLICATES, &je);
        if (parsed == NULL) {
            util_set_err(err, errlen, "%s: line %d: %s", name, je.line, je.text);
            return -1;
        }
        j = parsed;
    }
    if (!json_is_object(j)) {
        util_set_err(err, errlen, "%s: must be a JSON object of sections", name);
        goto out;
    }
    if (cfg_init_named(&cfg, name, err, errlen) != 0)
        goto out;
    const char *sk;
    json_t *sv;
    json_object_foreach((json_t *)j, sk, sv)
    {
        if (!json_is_object(sv)) {
            util_set_err(err, errlen, "%s: %.64s: must be an object of keys", name, sk);
            goto out;
        }
        const char *k;
        json_t *v;
        json_object_foreach(sv, k, v)
        {
            char buf[64];
            const char *t;
            if (value_text(v, name, sk, k, buf, sizeof(buf), &t, err, errlen) != 0 ||
                cfg_add(&cfg, sk, k, t, err, errlen) != 0)
                goto out;
        }
        if (json_object_size(sv) == 0 && !is_group_section(sk)) {
            util_set_err(err, errlen, "%s: %.64s: unknown section", name, sk);
            goto out;
        }
    }
    if (cfg_find(&cfg, "group", "name") == NULL) {
        util_set_err(err, errlen, "%s: group.name: required", name);
        goto out;
    }
    if (group_conf_read_cfg(&cfg, NULL, GROUP_CONF_DERIVE_ADDRESS, out, err, errlen) != 0 ||
        cfg_check_unused(&cfg, err, errlen) != 0)
        goto out;
    rc = 0;
out:
    cfg_release(&cfg);
    json_decref(parsed);
    return rc;
}
