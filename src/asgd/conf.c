/*
 * conf.c - reads asgd's config file into struct asgd_conf (conf.h).
 *
 * Reading is two steps: the typed cfg getters check each value on its own
 * (type and a generous range, reported at the value's line), then
 * conf_validate_group() and check_rest() check how the values fit together
 * (min <= desired <= max, down < up, timeout < interval, ...) and the error
 * is placed at the offending key's line with cfg_error_at(). The HTTP API's
 * PATCH uses the same conf_validate_group(), so a setting the file would
 * refuse is refused there too.
 */
#include "asgd/conf.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/util.h"

#include "common/banned.h"

#define SEC_MS  1000LL
#define HOUR_MS (3600LL * 1000)
#define DAY_MS  (24 * HOUR_MS)
/* Sizes beyond this are typos, not fleets. */
#define CONF_MAX_INSTANCES 100000

#define set_err util_set_err

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

int conf_name_valid(const char *name)
{
    if (name == NULL)
        return 0;
    size_t n = strlen(name);
    if (n == 0 || n > CONF_NAME_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char ch = name[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '-' || ch == '_' || ch == '.'))
            return 0;
    }
    return 1;
}

char *conf_default_store_dir(const char *name)
{
    const char *sd = getenv("STATE_DIRECTORY");
    const char *xdg = getenv("XDG_STATE_HOME");
    const char *home = getenv("HOME");
    char buf[4096];
    int n;
    if (sd != NULL && sd[0] == '/')
        n = snprintf(buf, sizeof(buf), "%s/%s", sd, name);
    else if (geteuid() == 0)
        n = snprintf(buf, sizeof(buf), "/var/lib/asgd/%s", name);
    else if (xdg != NULL && xdg[0] == '/')
        n = snprintf(buf, sizeof(buf), "%s/asgd/%s", xdg, name);
    else if (home != NULL && home[0] == '/')
        n = snprintf(buf, sizeof(buf), "%s/.local/state/asgd/%s", home, name);
    else
        n = snprintf(buf, sizeof(buf), "/tmp/asgd-%u/%s", (unsigned)geteuid(), name);
    if (n < 0 || (size_t)n >= sizeof(buf))
        n = snprintf(buf, sizeof(buf), "/tmp/asgd-%u/%s", (unsigned)geteuid(), name);
    return xstrdup(buf);
}

void conf_release(struct asgd_conf *c)
{
    if (c == NULL)
        return;
    free(c->path);
    free(c->monitor.listen);
    free(c->monitor.token_file);
    free(c->monitor.advertise);
    free(c->local.agent);
    free(c->local.agent_args);
    free(c->local.address_base);
    free(c->store_dir);
    free(c->api.listen);
    free(c->api.token_file);
    memset(c, 0, sizeof(*c));
}

int conf_defaults(struct asgd_conf *c)
{
    memset(c, 0, sizeof(*c));
    struct group_settings *g = &c->group;
    snprintf(g->name, sizeof(g->name), "%s", "default");
    g->min_size = 1;
    g->max_size = 1;
    g->desired_capacity = 1;
    policy_settings_default(&g->policy, POLICY_THRESHOLD);
    snprintf(g->health.type, sizeof(g->health.type), "%s", "agent");
    g->health.interval_ms = 2 * SEC_MS;
    g->health.timeout_ms = 1 * SEC_MS;
    g->health.healthy_threshold = 2;
    g->health.unhealthy_threshold = 3;
    g->health.grace_period_ms = 30 * SEC_MS;
    c->provider = CONF_PROVIDER_LOCAL;
    c->monitor.listen = xstrdup("127.0.0.1:50052");
    c->monitor.agent_port = 50051;
    c->local.address_base = xstrdup("127.0.0.2");
    c->local.keep_logs = 20;
    c->store_dir = conf_default_store_dir(g->name);
    c->api.listen = xstrdup("127.0.0.1:8080");
    if (c->monitor.listen == NULL || c->local.address_base == NULL || c->store_dir == NULL ||
        c->api.listen == NULL)
        return -1;
    return 0;
}

/* The reason alone; the caller places it. */
#define FAIL(s, k, ...)                                                                            \
    do {                                                                                           \
        if (sec)                                                                                   \
            *sec = (s);                                                                            \
        if (key)                                                                                   \
            *key = (k);                                                                            \
        set_err(err, errlen, __VA_ARGS__);                                                         \
        return -1;                                                                                 \
    } while (0)

static int dur_in(int64_t v, int64_t lo, int64_t hi)
{
    return v >= lo && v <= hi;
}

int conf_validate_group(const struct group_settings *g, const char **sec, const char **key,
                        char *err, size_t errlen)
{
    char a[32], b[32], c[32];
    if (!conf_name_valid(g->name))
        FAIL("group", "name", "\"%s\" is not a valid name (1..%d letters, digits, '-', '_', '.')",
             g->name, CONF_NAME_MAX);
    if (g->min_size < 0 || g->min_size > CONF_MAX_INSTANCES)
        FAIL("group", "min_size", "%d is out of range (0..%d)", g->min_size, CONF_MAX_INSTANCES);
    if (g->max_size < 0 || g->max_size > CONF_MAX_INSTANCES)
        FAIL("group", "max_size", "%d is out of range (0..%d)", g->max_size, CONF_MAX_INSTANCES);
    if (g->min_size > g->max_size)
        FAIL("group", "min_size", "%d is greater than max_size (%d)", g->min_size, g->max_size);
    if (g->desired_capacity < g->min_size || g->desired_capacity > g->max_size)
        FAIL("group", "desired_capacity", "%d is outside min_size..max_size (%d..%d)",
             g->desired_capacity, g->min_size, g->max_size);

    const struct policy_settings *p = &g->policy;
    if (p->type != POLICY_THRESHOLD && p->type != POLICY_TARGET)
        FAIL("policy", "type", "unknown policy type %d", p->type);
    if (!(p->up_threshold >= 0 && p->up_threshold <= 100))
        FAIL("policy", "scale_up_threshold", "%g is out of range (0..100)", p->up_threshold);
    if (!(p->down_threshold >= 0 && p->down_threshold <= 100))
        FAIL("policy", "scale_down_threshold", "%g is out of range (0..100)", p->down_threshold);
    if (!(p->down_threshold < p->up_threshold))
        FAIL("policy", "scale_down_threshold", "%g must be below scale_up_threshold (%g)",
             p->down_threshold, p->up_threshold);
    if (!(p->up_factor > 1 && p->up_factor <= 100))
        FAIL("policy", "scale_up_factor", "%g must be greater than 1 (and at most 100)",
             p->up_factor);
    if (!(p->down_factor > 0 && p->down_factor < 1))
        FAIL("policy", "scale_down_factor", "%g must be between 0 and 1 (exclusive)",
             p->down_factor);
    if (!(p->target > 0 && p->target <= 100))
        FAIL("policy", "target", "%g must be above 0 and at most 100", p->target);
    if (!(p->tolerance >= 0 && p->tolerance < 1))
        FAIL("policy", "tolerance", "%g must be at least 0 and below 1", p->tolerance);
    if (!dur_in(p->evaluation_period_ms, 100, DAY_MS)) {
        clk_format_duration(p->evaluation_period_ms, a, sizeof(a));
        FAIL("policy", "evaluation_period", "%s is out of range (100ms..24h)", a);
    }
    if (!dur_in(p->cooldown_ms, 0, DAY_MS)) {
        clk_format_duration(p->cooldown_ms, a, sizeof(a));
        FAIL("policy", "cooldown", "%s is out of range (0s..24h)", a);
    }
    if (!dur_in(p->scale_down_window_ms, 0, DAY_MS)) {
        clk_format_duration(p->scale_down_window_ms, a, sizeof(a));
        FAIL("policy", "scale_down_window", "%s is out of range (0s..24h)", a);
    }

    const struct group_health *h = &g->health;
    if (strcmp(h->type, "agent") != 0 && strcmp(h->type, "ec2") != 0)
        FAIL("health", "type", "\"%s\" is not one of: agent, ec2", h->type);
    if (!dur_in(h->interval_ms, 10, HOUR_MS)) {
        clk_format_duration(h->interval_ms, a, sizeof(a));
        FAIL("health", "interval", "%s is out of range (10ms..1h)", a);
    }
    if (!dur_in(h->timeout_ms, 1, HOUR_MS)) {
        clk_format_duration(h->timeout_ms, a, sizeof(a));
        FAIL("health", "timeout", "%s is out of range (1ms..1h)", a);
    }
    if (h->timeout_ms >= h->interval_ms) {
        clk_format_duration(h->timeout_ms, b, sizeof(b));
        clk_format_duration(h->interval_ms, c, sizeof(c));
        FAIL("health", "timeout", "%s must be shorter than interval (%s)", b, c);
    }
    if (h->healthy_threshold < 1 || h->healthy_threshold > 1000)
        FAIL("health", "healthy_threshold", "%d is out of range (1..1000)", h->healthy_threshold);
    if (h->unhealthy_threshold < 1 || h->unhealthy_threshold > 1000)
        FAIL("health", "unhealthy_threshold", "%d is out of range (1..1000)",
             h->unhealthy_threshold);
    if (!dur_in(h->grace_period_ms, 0, DAY_MS)) {
        clk_format_duration(h->grace_period_ms, a, sizeof(a));
        FAIL("health", "grace_period", "%s is out of range (0s..24h)", a);
    }
    return 0;
}

/* "host:port" with a non-empty host and a port 0..65535 ([v6]:port allowed). */
static int valid_listen(const char *s)
{
    const char *colon = strrchr(s, ':');
    if (colon == NULL || colon == s || colon[1] == '\0')
        return 0;
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end != '\0' || port < 0 || port > 65535 || colon[1] == '-' || colon[1] == '+')
        return 0;
    if (s[0] == '[' && colon[-1] != ']')
        return 0;
    return 1;
}

/* Reads a string key; an empty value is refused (absent keys keep *out). */
static int get_nonempty(struct cfg *cfg, const char *sec, const char *key, char **out, char *err,
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

static int get_listen(struct cfg *cfg, const char *sec, char **out, char *err, size_t errlen)
{
    if (get_nonempty(cfg, sec, "listen", out, err, errlen) != 0)
        return -1;
    if (!valid_listen(*out)) {
        cfg_error_at(cfg, sec, "listen", err, errlen,
                     "\"%s\" is not an address \"host:port\" (port 0..65535)", *out);
        return -1;
    }
    return 0;
}

/* address_base must be IPv4 loopback with room for max_size consecutive addresses. */
static int check_address_base(struct cfg *cfg, const struct asgd_conf *c, char *err, size_t errlen)
{
    struct in_addr a;
    if (inet_pton(AF_INET, c->local.address_base, &a) != 1) {
        cfg_error_at(cfg, "local", "address_base", err, errlen, "\"%s\" is not an IPv4 address",
                     c->local.address_base);
        return -1;
    }
    uint32_t h = ntohl(a.s_addr);
    if ((h >> 24) != 127) {
        cfg_error_at(cfg, "local", "address_base", err, errlen,
                     "\"%s\" is not a loopback address (127.x.x.x)", c->local.address_base);
        return -1;
    }
    if ((uint64_t)(h & 0xffffff) + (uint64_t)c->group.max_size > 0xffffffu) {
        cfg_error_at(cfg, "local", "address_base", err, errlen,
                     "\"%s\" leaves no room for max_size (%d) consecutive addresses in 127/8",
                     c->local.address_base, c->group.max_size);
        return -1;
    }
    return 0;
}

static int read_group(struct cfg *cfg, struct asgd_conf *out, char *err, size_t errlen)
{
    struct group_settings *g = &out->group;
    char *name = NULL;
    long min, max, desired;
    if (cfg_get_str(cfg, "group", "name", "default", &name, err, errlen) != 0)
        return -1;
    if (!conf_name_valid(name)) {
        cfg_error_at(cfg, "group", "name", err, errlen,
                     "\"%s\" is not a valid name (1..%d letters, digits, '-', '_', '.')", name,
                     CONF_NAME_MAX);
        free(name);
        return -1;
    }
    snprintf(g->name, sizeof(g->name), "%s", name);
    free(name);
    if (cfg_get_int(cfg, "group", "min_size", 1, 0, CONF_MAX_INSTANCES, &min, err, errlen) != 0)
        return -1;
    if (cfg_get_int(cfg, "group", "max_size", min > 1 ? min : 1, 0, CONF_MAX_INSTANCES, &max, err,
                    errlen) != 0)
        return -1;
    if (cfg_get_int(cfg, "group", "desired_capacity", min, 0, CONF_MAX_INSTANCES, &desired, err,
                    errlen) != 0)
        return -1;
    g->min_size = (int)min;
    g->max_size = (int)max;
    g->desired_capacity = (int)desired;
    return 0;
}

static int read_policy(struct cfg *cfg, struct asgd_conf *out, char *err, size_t errlen)
{
    static const char *const types[] = {"threshold", "target", NULL};
    struct policy_settings *p = &out->group.policy;
    int type;
    if (cfg_get_enum(cfg, "policy", "type", POLICY_THRESHOLD, types, &type, err, errlen) != 0)
        return -1;
    policy_settings_default(p, type);
    if (cfg_get_double(cfg, "policy", "scale_up_threshold", p->up_threshold, 0, 100,
                       &p->up_threshold, err, errlen) != 0 ||
        cfg_get_double(cfg, "policy", "scale_down_threshold", p->down_threshold, 0, 100,
                       &p->down_threshold, err, errlen) != 0 ||
        cfg_get_double(cfg, "policy", "scale_up_factor", p->up_factor, 0, 100, &p->up_factor, err,
                       errlen) != 0 ||
        cfg_get_double(cfg, "policy", "scale_down_factor", p->down_factor, 0, 1, &p->down_factor,
                       err, errlen) != 0 ||
        cfg_get_duration(cfg, "policy", "evaluation_period", p->evaluation_period_ms, 100, DAY_MS,
                         &p->evaluation_period_ms, err, errlen) != 0 ||
        cfg_get_duration(cfg, "policy", "cooldown", p->cooldown_ms, 0, DAY_MS, &p->cooldown_ms, err,
                         errlen) != 0 ||
        cfg_get_double(cfg, "policy", "target", p->target, 0, 100, &p->target, err, errlen) != 0 ||
        cfg_get_double(cfg, "policy", "tolerance", p->tolerance, 0, 1, &p->tolerance, err,
                       errlen) != 0 ||
        cfg_get_duration(cfg, "policy", "scale_down_window", p->scale_down_window_ms, 0, DAY_MS,
                         &p->scale_down_window_ms, err, errlen) != 0)
        return -1;
    return 0;
}

static int read_health(struct cfg *cfg, struct asgd_conf *out, char *err, size_t errlen)
{
    static const char *const types[] = {"agent", "ec2", NULL};
    struct group_health *h = &out->group.health;
    int type;
    long rise, fall;
    if (cfg_get_enum(cfg, "health", "type", 0, types, &type, err, errlen) != 0)
        return -1;
    snprintf(h->type, sizeof(h->type), "%s", types[type]);
    if (cfg_get_duration(cfg, "health", "interval", h->interval_ms, 10, HOUR_MS, &h->interval_ms,
                         err, errlen) != 0 ||
        cfg_get_duration(cfg, "health", "timeout", h->timeout_ms, 1, HOUR_MS, &h->timeout_ms, err,
                         errlen) != 0 ||
        cfg_get_int(cfg, "health", "healthy_threshold", h->healthy_threshold, 1, 1000, &rise, err,
                    errlen) != 0 ||
        cfg_get_int(cfg, "health", "unhealthy_threshold", h->unhealthy_threshold, 1, 1000, &fall,
                    err, errlen) != 0 ||
        cfg_get_duration(cfg, "health", "grace_period", h->grace_period_ms, 0, DAY_MS,
                         &h->grace_period_ms, err, errlen) != 0)
        return -1;
    h->healthy_threshold = (int)rise;
    h->unhealthy_threshold = (int)fall;
    return 0;
}

static int read_rest(struct cfg *cfg, struct asgd_conf *out, char *err, size_t errlen)
{
    static const char *const providers[] = {"local", "ec2", NULL};
    long port;
    if (get_listen(cfg, "monitor", &out->monitor.listen, err, errlen) != 0)
        return -1;
    if (cfg_get_int(cfg, "monitor", "agent_port", out->monitor.agent_port, 1, 65535, &port, err,
                    errlen) != 0)
        return -1;
    out->monitor.agent_port = (int)port;
    if (get_nonempty(cfg, "monitor", "token_file", &out->monitor.token_file, err, errlen) != 0 ||
        get_nonempty(cfg, "monitor", "advertise", &out->monitor.advertise, err, errlen) != 0 ||
        cfg_get_bool(cfg, "monitor", "accept_unknown", out->monitor.accept_unknown,
                     &out->monitor.accept_unknown, err, errlen) != 0)
        return -1;

    if (cfg_get_enum(cfg, "provider", "type", CONF_PROVIDER_LOCAL, providers, &out->provider, err,
                     errlen) != 0)
        return -1;

    if (get_nonempty(cfg, "local", "agent", &out->local.agent, err, errlen) != 0)
        return -1;
    char *args = NULL;
    if (cfg_get_str(cfg, "local", "agent_args", NULL, &args, err, errlen) != 0)
        return -1;
    free(out->local.agent_args);
    out->local.agent_args = NULL;
    if (args != NULL && args[0] != '\0')
        out->local.agent_args = args;
    else
        free(args);
    if (cfg_get_duration(cfg, "local", "boot_delay", 0, 0, HOUR_MS, &out->local.boot_delay_ms, err,
                         errlen) != 0 ||
        get_nonempty(cfg, "local", "address_base", &out->local.address_base, err, errlen) != 0)
        return -1;
    long keep_logs = 20;
    if (cfg_get_int(cfg, "local", "keep_logs", 20, 1, 100000, &keep_logs, err, errlen) != 0)
        return -1;
    out->local.keep_logs = (int)keep_logs;

    const struct cfg_entry *dir = cfg_find(cfg, "store", "dir");
    if (dir != NULL) {
        if (get_nonempty(cfg, "store", "dir", &out->store_dir, err, errlen) != 0)
            return -1;
    } else {
        free(out->store_dir);
        out->store_dir = conf_default_store_dir(out->group.name);
        if (out->store_dir == NULL) {
            set_err(err, errlen, "%s: out of memory", cfg->path ? cfg->path : "config");
            return -1;
        }
    }

    if (get_listen(cfg, "api", &out->api.listen, err, errlen) != 0 ||
        get_nonempty(cfg, "api", "token_file", &out->api.token_file, err, errlen) != 0)
        return -1;
    return 0;
}

int conf_load_cfg(struct cfg *cfg, struct asgd_conf *out, char *err, size_t errlen)
{
    set_err(err, errlen, "%s", "");
    if (conf_defaults(out) != 0)
        goto oom;
    if (cfg->path != NULL && (out->path = xstrdup(cfg->path)) == NULL)
        goto oom;
    if (read_group(cfg, out, err, errlen) != 0 || read_policy(cfg, out, err, errlen) != 0 ||
        read_health(cfg, out, err, errlen) != 0 || read_rest(cfg, out, err, errlen) != 0)
        return -1;

    /* how the values fit together, reported at the offending key */
    const char *sec = NULL, *key = NULL;
    char why[256];
    if (conf_validate_group(&out->group, &sec, &key, why, sizeof(why)) != 0) {
        cfg_error_at(cfg, sec, key, err, errlen, "%s", why);
        return -1;
    }
    if (strcmp(out->group.health.type, "ec2") == 0 && out->provider != CONF_PROVIDER_EC2) {
        cfg_error_at(cfg, "health", "type", err, errlen,
                     "ec2 health checks need [provider] type = ec2");
        return -1;
    }
    if (out->provider == CONF_PROVIDER_LOCAL && check_address_base(cfg, out, err, errlen) != 0)
        return -1;
    return 0;
oom:
    set_err(err, errlen, "%s: out of memory", cfg->path ? cfg->path : "config");
    return -1;
}

int conf_load(const char *path, struct asgd_conf *out, struct cfg *keep, char *err, size_t errlen)
{
    struct cfg cfg = CFG_INIT;
    int rc = -1;
    memset(out, 0, sizeof(*out));
    if (keep != NULL)
        memset(keep, 0, sizeof(*keep));
    if (cfg_load(&cfg, path, err, errlen) != 0)
        goto out;
    if (conf_load_cfg(&cfg, out, err, errlen) != 0)
        goto out;
    if (keep == NULL) {
        /* no [ec2] reader on this path: asgd's load_config() uses keep and reads it */
        if (cfg_check_unused(&cfg, err, errlen) != 0)
            goto out;
    }
    rc = 0;
out:
    if (keep != NULL)
        *keep = cfg; /* moved: the caller releases it */
    else
        cfg_release(&cfg);
    return rc;
}
