/*
 * conf.c - reads asgd's node file into struct asgd_conf (conf.h).
 *
 * The node sections are read here; every group, whether it sits in the node
 * file (the single-file layout) or in a file of [groups] dir, is read by
 * group_conf_read_cfg() (src/group/), the same reader the API's and the
 * store's specs go through. Errors are placed at the offending key's line.
 */
#include "asgd/conf.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"

#include "common/banned.h"

#define SEC_MS 1000LL

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

/* "a" + "/" + "b", malloc'd. */
static char *join(const char *a, const char *b)
{
    size_t na = strlen(a), nb = strlen(b);
    char *p = malloc(na + nb + 2);
    if (p == NULL)
        return NULL;
    memcpy(p, a, na);
    p[na] = '/';
    memcpy(p + na + 1, b, nb + 1);
    return p;
}

int conf_name_valid(const char *name)
{
    return group_name_valid(name);
}

int conf_validate_group(const struct group_settings *g, const char **sec, const char **key,
                        char *err, size_t errlen)
{
    return group_settings_validate(g, sec, key, err, errlen);
}

char *conf_default_store_dir(const char *name)
{
    const char *sd = getenv("STATE_DIRECTORY");
    const char *xdg = getenv("XDG_STATE_HOME");
    const char *home = getenv("HOME");
    const char *sl = name ? "/" : "";
    char buf[4096];
    int n;
    if (name == NULL)
        name = "";
    if (sd != NULL && sd[0] == '/')
        n = snprintf(buf, sizeof(buf), "%s%s%s", sd, sl, name);
    else if (geteuid() == 0)
        n = snprintf(buf, sizeof(buf), "/var/lib/asgd%s%s", sl, name);
    else if (xdg != NULL && xdg[0] == '/')
        n = snprintf(buf, sizeof(buf), "%s/asgd%s%s", xdg, sl, name);
    else if (home != NULL && home[0] == '/')
        n = snprintf(buf, sizeof(buf), "%s/.local/state/asgd%s%s", home, sl, name);
    else
        n = snprintf(buf, sizeof(buf), "/tmp/asgd-%u%s%s", (unsigned)geteuid(), sl, name);
    if (n < 0 || (size_t)n >= sizeof(buf))
        snprintf(buf, sizeof(buf), "/tmp/asgd-%u%s%s", (unsigned)geteuid(), sl, name);
    return xstrdup(buf);
}

char *conf_local_dir(const struct asgd_conf *c, const char *name)
{
    char *local = join(c->store.dir, "local");
    char *dir = local ? join(local, name) : NULL;
    free(local);
    return dir;
}

struct group_conf *conf_find_group(struct asgd_conf *c, const char *name)
{
    for (size_t i = 0; i < c->n_groups; i++)
        if (strcmp(c->groups[i].settings.name, name) == 0)
            return &c->groups[i];
    return NULL;
}

void conf_release(struct asgd_conf *c)
{
    if (c == NULL)
        return;
    free(c->path);
    free(c->monitor.listen);
    free(c->monitor.token_file);
    free(c->monitor.advertise);
    free(c->monitor.tls_ca_file);
    free(c->monitor.tls_cert_file);
    free(c->monitor.tls_key_file);
    free(c->monitor.tls_server_name);
    free(c->api.listen);
    free(c->api.token_file);
    free(c->api.tls_cert_file);
    free(c->api.tls_key_file);
    free(c->api.tls_ca_file);
    free(c->store.dir);
    for (size_t i = 0; i < c->store.n_etcd_endpoints; i++)
        free(c->store.etcd_endpoints[i]);
    free(c->store.etcd_endpoints);
    free(c->store.etcd_prefix);
    free(c->store.etcd_ca_file);
    free(c->store.etcd_cert_file);
    free(c->store.etcd_key_file);
    free(c->cluster.node);
    free(c->cluster.api_advertise);
    free(c->groups_dir);
    for (size_t i = 0; i < c->n_groups; i++)
        group_conf_release(&c->groups[i]);
    free(c->groups);
    memset(c, 0, sizeof(*c));
}

/* The node-level defaults (no group, no store dir: they depend on the groups). */
static int node_defaults(struct asgd_conf *c)
{
    memset(c, 0, sizeof(*c));
    char host[256];
    if (gethostname(host, sizeof(host)) != 0 || host[0] == '\0')
        snprintf(host, sizeof(host), "%s", "localhost");
    host[sizeof(host) - 1] = '\0';
    c->monitor.listen = xstrdup("127.0.0.1:50052");
    c->monitor.agent_port = 50051;
    c->api.listen = xstrdup("127.0.0.1:8080");
    c->store.type = CONF_STORE_SQLITE;
    c->store.etcd_prefix = xstrdup("/asgd");
    c->cluster.node = xstrdup(host);
    c->cluster.lease_ttl_ms = 5 * SEC_MS;
    if (c->monitor.listen == NULL || c->api.listen == NULL || c->store.etcd_prefix == NULL ||
        c->cluster.node == NULL)
        return -1;
    return 0;
}

/* Appends *g (moved: *g is zeroed) to c->groups. */
static int add_group(struct asgd_conf *c, struct group_conf *g)
{
    struct group_conf *ng = realloc(c->groups, (c->n_groups + 1) * sizeof(*ng));
    if (ng == NULL)
        return -1;
    c->groups = ng;
    c->groups[c->n_groups++] = *g;
    memset(g, 0, sizeof(*g));
    return 0;
}

/* http(s)://<api listen> */
static int default_advertise(struct asgd_conf *c)
{
    size_t n = strlen(c->api.listen) + sizeof("https://");
    char *p = malloc(n);
    if (p == NULL)
        return -1;
    snprintf(p, n, "%s://%s", c->api.tls_cert_file ? "https" : "http", c->api.listen);
    free(c->cluster.api_advertise);
    c->cluster.api_advertise = p;
    return 0;
}

int conf_defaults(struct asgd_conf *c)
{
    if (node_defaults(c) != 0)
        return -1;
    struct cfg empty = CFG_INIT;
    struct group_conf g;
    char err[256];
    int rc = -1;
    if (cfg_init_named(&empty, "defaults", err, sizeof(err)) != 0)
        return -1;
    if (group_conf_read_cfg(&empty, "default", 0, &g, err, sizeof(err)) != 0)
        goto out;
    if ((c->store.dir = conf_default_store_dir(g.settings.name)) == NULL ||
        (g.local.dir = xstrdup(c->store.dir)) == NULL || add_group(c, &g) != 0 ||
        default_advertise(c) != 0)
        goto out;
    rc = 0;
out:
    group_conf_release(&g);
    cfg_release(&empty);
    return rc;
}

/* ---- node sections ------------------------------------------------------------------------ */

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

static int get_listen(struct cfg *cfg, const char *sec, char **out, char *err, size_t errlen)
{
    if (cfg_get_nonempty(cfg, sec, "listen", out, err, errlen) != 0)
        return -1;
    if (!valid_listen(*out)) {
        cfg_error_at(cfg, sec, "listen", err, errlen,
                     "\"%.64s\" is not an address \"host:port\" (port 0..65535)", *out);
        return -1;
    }
    return 0;
}

/* "http://x" or "https://x" with something after the scheme. */
static int is_http_url(const char *s)
{
    size_t n = strlen(s);
    return (n > 7 && strncmp(s, "http://", 7) == 0) || (n > 8 && strncmp(s, "https://", 8) == 0);
}

/* The keys of one section that go in pairs: both or neither. */
static int check_pair(struct cfg *cfg, const char *sec, const char *cert, const char *key,
                      char *err, size_t errlen)
{
    if ((cert == NULL) == (key == NULL))
        return 0;
    cfg_error_at(cfg, sec, cert ? "tls_cert_file" : "tls_key_file", err, errlen,
                 "tls_cert_file and tls_key_file go together");
    return -1;
}

/* [monitor] and [api] tls_* keys (the files are read by the daemon: tls.h). */
static int read_tls_keys(struct cfg *cfg, struct asgd_conf *out, char *err, size_t errlen)
{
    struct conf_monitor *m = &out->monitor;
    struct conf_api *a = &out->api;
    if (cfg_get_nonempty(cfg, "monitor", "tls_ca_file", &m->tls_ca_file, err, errlen) != 0 ||
        cfg_get_nonempty(cfg, "monitor", "tls_cert_file", &m->tls_cert_file, err, errlen) != 0 ||
        cfg_get_nonempty(cfg, "monitor", "tls_key_file", &m->tls_key_file, err, errlen) != 0 ||
        cfg_get_nonempty(cfg, "monitor", "tls_server_name", &m->tls_server_name, err, errlen) !=
            0 ||
        cfg_get_nonempty(cfg, "api", "tls_cert_file", &a->tls_cert_file, err, errlen) != 0 ||
        cfg_get_nonempty(cfg, "api", "tls_key_file", &a->tls_key_file, err, errlen) != 0 ||
        cfg_get_nonempty(cfg, "api", "tls_ca_file", &a->tls_ca_file, err, errlen) != 0)
        return -1;
    if (check_pair(cfg, "monitor", m->tls_cert_file, m->tls_key_file, err, errlen) != 0 ||
        check_pair(cfg, "api", a->tls_cert_file, a->tls_key_file, err, errlen) != 0)
        return -1;
    if (m->tls_server_name != NULL && m->tls_ca_file == NULL && m->tls_cert_file == NULL) {
        cfg_error_at(cfg, "monitor", "tls_server_name", err, errlen,
                     "needs tls_ca_file (TLS to the agents)");
        return -1;
    }
    return 0;
}

static int read_monitor_api(struct cfg *cfg, struct asgd_conf *out, char *err, size_t errlen)
{
    long port;
    if (get_listen(cfg, "monitor", &out->monitor.listen, err, errlen) != 0)
        return -1;
    if (cfg_get_int(cfg, "monitor", "agent_port", out->monitor.agent_port, 1, 65535, &port, err,
                    errlen) != 0)
        return -1;
    out->monitor.agent_port = (int)port;
    if (cfg_get_nonempty(cfg, "monitor", "token_file", &out->monitor.token_file, err, errlen) !=
            0 ||
        cfg_get_nonempty(cfg, "monitor", "advertise", &out->monitor.advertise, err, errlen) != 0 ||
        cfg_get_bool(cfg, "monitor", "accept_unknown", out->monitor.accept_unknown,
                     &out->monitor.accept_unknown, err, errlen) != 0)
        return -1;
    if (get_listen(cfg, "api", &out->api.listen, err, errlen) != 0 ||
        cfg_get_nonempty(cfg, "api", "token_file", &out->api.token_file, err, errlen) != 0)
        return -1;
    return read_tls_keys(cfg, out, err, errlen);
}

/* Splits the comma-separated URL list of [store] etcd_endpoints. */
static int read_endpoints(struct cfg *cfg, struct conf_store *s, char *err, size_t errlen)
{
    const struct cfg_entry *e = cfg_find(cfg, "store", "etcd_endpoints");
    if (e == NULL)
        return 0;
    const char *p = e->value;
    for (;;) {
        const char *comma = strchr(p, ',');
        const char *end = comma ? comma : p + strlen(p);
        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        const char *q = end;
        while (q > p && (q[-1] == ' ' || q[-1] == '\t'))
            q--;
        size_t n = (size_t)(q - p);
        char *url = malloc(n + 1);
        if (url == NULL)
            goto oom;
        memcpy(url, p, n);
        url[n] = '\0';
        if (!is_http_url(url) || strpbrk(url, " \t") != NULL) {
            cfg_error_at(cfg, "store", "etcd_endpoints", err, errlen,
                         "\"%.128s\" is not an http:// or https:// URL", url);
            free(url);
            return -1;
        }
        char **ne = realloc(s->etcd_endpoints, (s->n_etcd_endpoints + 1) * sizeof(*ne));
        if (ne == NULL) {
            free(url);
            goto oom;
        }
        s->etcd_endpoints = ne;
        s->etcd_endpoints[s->n_etcd_endpoints++] = url;
        if (comma == NULL)
            break;
        p = comma + 1;
    }
    return 0;
oom:
    set_err(err, errlen, "%s: out of memory", cfg->path ? cfg->path : "config");
    return -1;
}

static int read_store_cluster(struct cfg *cfg, struct asgd_conf *out, char *err, size_t errlen)
{
    static const char *const types[] = {"sqlite", "etcd", NULL};
    struct conf_store *s = &out->store;
    if (cfg_get_enum(cfg, "store", "type", CONF_STORE_SQLITE, types, &s->type, err, errlen) != 0 ||
        cfg_get_nonempty(cfg, "store", "dir", &s->dir, err, errlen) != 0 ||
        read_endpoints(cfg, s, err, errlen) != 0 ||
        cfg_get_nonempty(cfg, "store", "etcd_prefix", &s->etcd_prefix, err, errlen) != 0 ||
        cfg_get_nonempty(cfg, "store", "etcd_ca_file", &s->etcd_ca_file, err, errlen) != 0 ||
        cfg_get_nonempty(cfg, "store", "etcd_cert_file", &s->etcd_cert_file, err, errlen) != 0 ||
        cfg_get_nonempty(cfg, "store", "etcd_key_file", &s->etcd_key_file, err, errlen) != 0)
        return -1;
    if (s->type == CONF_STORE_ETCD && s->n_etcd_endpoints == 0) {
        cfg_error_at(cfg, "store", "type", err, errlen,
                     "etcd needs etcd_endpoints (e.g. http://127.0.0.1:2379)");
        return -1;
    }
    if (s->etcd_prefix[0] != '/') {
        cfg_error_at(cfg, "store", "etcd_prefix", err, errlen, "\"%.64s\" must start with '/'",
                     s->etcd_prefix);
        return -1;
    }
    if ((s->etcd_cert_file == NULL) != (s->etcd_key_file == NULL)) {
        cfg_error_at(cfg, "store", s->etcd_cert_file ? "etcd_cert_file" : "etcd_key_file", err,
                     errlen, "etcd_cert_file and etcd_key_file go together");
        return -1;
    }

    struct conf_cluster *c = &out->cluster;
    if (cfg_get_nonempty(cfg, "cluster", "node", &c->node, err, errlen) != 0 ||
        cfg_get_duration(cfg, "cluster", "lease_ttl", c->lease_ttl_ms, 2 * SEC_MS, 60 * SEC_MS,
                         &c->lease_ttl_ms, err, errlen) != 0 ||
        cfg_get_nonempty(cfg, "cluster", "api_advertise", &c->api_advertise, err, errlen) != 0)
        return -1;
    if (strlen(c->node) > 253 || strspn(c->node, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRST"
                                                 "UVWXYZ0123456789-_.") != strlen(c->node)) {
        cfg_error_at(cfg, "cluster", "node", err, errlen,
                     "\"%.64s\" is not a node name (1..253 letters, digits, '-', '_', '.')",
                     c->node);
        return -1;
    }
    if (c->api_advertise != NULL && !is_http_url(c->api_advertise)) {
        cfg_error_at(cfg, "cluster", "api_advertise", err, errlen,
                     "\"%.128s\" is not an http:// or https:// URL", c->api_advertise);
        return -1;
    }
    if (c->api_advertise == NULL && default_advertise(out) != 0) {
        set_err(err, errlen, "%s: out of memory", cfg->path ? cfg->path : "config");
        return -1;
    }
    return 0;
}

/* ---- groups ------------------------------------------------------------------------------- */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Where group g was defined, for messages. */
static const char *origin(const struct group_conf *g, const struct cfg *cfg)
{
    return g->path ? g->path : (cfg->path ? cfg->path : "the node file");
}

/* The *.ini files of dir, sorted; each loaded as a group file. */
static int read_groups_dir(struct cfg *cfg, struct asgd_conf *out, char *err, size_t errlen)
{
    DIR *d = opendir(out->groups_dir);
    if (d == NULL) {
        cfg_error_at(cfg, "groups", "dir", err, errlen, "cannot open \"%s\": %s", out->groups_dir,
                     strerror(errno));
        return -1;
    }
    char **names = NULL;
    size_t n = 0;
    int rc = -1;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (e->d_name[0] == '.' || len <= 4 || strcmp(e->d_name + len - 4, ".ini") != 0)
            continue;
        char **nn = realloc(names, (n + 1) * sizeof(*nn));
        if (nn == NULL)
            goto oom;
        names = nn;
        if ((names[n] = xstrdup(e->d_name)) == NULL)
            goto oom;
        n++;
    }
    if (n > 1)
        qsort(names, n, sizeof(*names), cmp_str);
    for (size_t i = 0; i < n; i++) {
        char *path = join(out->groups_dir, names[i]);
        if (path == NULL)
            goto oom;
        struct group_conf g;
        int lrc = group_conf_load_file(path, GROUP_CONF_DERIVE_ADDRESS, &g, err, errlen);
        free(path);
        if (lrc != 0) {
            group_conf_release(&g);
            goto out;
        }
        const struct group_conf *dup = conf_find_group(out, g.settings.name);
        if (dup != NULL) {
            set_err(err, errlen, "%s: group \"%s\" is already defined in %s", g.path,
                    g.settings.name, origin(dup, cfg));
            group_conf_release(&g);
            goto out;
        }
        if (g.local.dir == NULL && (g.local.dir = conf_local_dir(out, g.settings.name)) == NULL) {
            group_conf_release(&g);
            goto oom;
        }
        if (add_group(out, &g) != 0) {
            group_conf_release(&g);
            goto oom;
        }
    }
    rc = 0;
    goto out;
oom:
    set_err(err, errlen, "%s: out of memory", out->groups_dir);
out:
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    closedir(d);
    return rc;
}

/* [groups] dir, relative to the node file's directory. */
static int read_groups_key(struct cfg *cfg, struct asgd_conf *out, char *err, size_t errlen)
{
    char *dir = NULL;
    if (cfg_get_nonempty(cfg, "groups", "dir", &dir, err, errlen) != 0)
        return -1;
    if (dir == NULL)
        return 0;
    const char *slash = cfg->path ? strrchr(cfg->path, '/') : NULL;
    if (dir[0] != '/' && slash != NULL) {
        size_t n = (size_t)(slash - cfg->path);
        char *base = malloc(n + 1);
        if (base == NULL) {
            free(dir);
            goto oom;
        }
        memcpy(base, cfg->path, n);
        base[n] = '\0';
        out->groups_dir = join(base, dir);
        free(base);
        free(dir);
        if (out->groups_dir == NULL)
            goto oom;
    } else {
        out->groups_dir = dir;
    }
    return 0;
oom:
    set_err(err, errlen, "%s: out of memory", cfg->path ? cfg->path : "config");
    return -1;
}

int conf_load_cfg(struct cfg *cfg, struct asgd_conf *out, char *err, size_t errlen)
{
    static const char *const group_secs[] = {"group",    "policy", "health", "hooks",
                                             "provider", "local",  "ec2"};
    set_err(err, errlen, "%s", "");
    const char *name = cfg->path ? cfg->path : "config";
    if (node_defaults(out) != 0)
        goto oom;
    if (cfg->path != NULL && (out->path = xstrdup(cfg->path)) == NULL)
        goto oom;
    if (read_monitor_api(cfg, out, err, errlen) != 0 ||
        read_store_cluster(cfg, out, err, errlen) != 0 ||
        read_groups_key(cfg, out, err, errlen) != 0)
        return -1;

    /* the node file's own group (the single-file layout) */
    const char *first_sec = NULL;
    for (size_t i = 0; i < sizeof(group_secs) / sizeof(group_secs[0]) && !first_sec; i++)
        if (cfg_has_section(cfg, group_secs[i]))
            first_sec = group_secs[i];
    if (first_sec != NULL) {
        struct group_conf g;
        /* its keys are checked first, so a bad value is reported at its line */
        if (group_conf_read_cfg(cfg, "default", 0, &g, err, errlen) != 0) {
            group_conf_release(&g);
            return -1;
        }
        if (!cfg_has_section(cfg, "group")) {
            group_conf_release(&g);
            cfg_error_at(cfg, first_sec, NULL, err, errlen,
                         "group settings without a [group] section (add [group] name = ...)");
            return -1;
        }
        if (add_group(out, &g) != 0) {
            group_conf_release(&g);
            goto oom;
        }
    }
    if (out->store.dir == NULL && (out->store.dir = conf_default_store_dir(
                                       first_sec ? out->groups[0].settings.name : NULL)) == NULL)
        goto oom;
    if (first_sec != NULL && out->groups[0].local.dir == NULL &&
        (out->groups[0].local.dir = xstrdup(out->store.dir)) == NULL)
        goto oom;

    if (out->groups_dir != NULL && read_groups_dir(cfg, out, err, errlen) != 0)
        return -1;
    if (out->n_groups == 0 && out->store.type != CONF_STORE_ETCD) {
        if (out->groups_dir != NULL)
            cfg_error_at(cfg, "groups", "dir", err, errlen, "no group file (*.ini) in \"%s\"",
                         out->groups_dir);
        else
            set_err(err, errlen,
                    "%s: no group defined: add a [group] section, a [groups] dir, or [store] "
                    "type = etcd",
                    name);
        return -1;
    }
    return 0;
oom:
    set_err(err, errlen, "%s: out of memory", name);
    return -1;
}

int conf_load(const char *path, struct asgd_conf *out, char *err, size_t errlen)
{
    struct cfg cfg = CFG_INIT;
    int rc = -1;
    memset(out, 0, sizeof(*out));
    if (cfg_load(&cfg, path, err, errlen) != 0)
        goto out;
    if (conf_load_cfg(&cfg, out, err, errlen) != 0)
        goto out;
    if (cfg_check_unused(&cfg, err, errlen) != 0)
        goto out;
    rc = 0;
out:
    cfg_release(&cfg);
    return rc;
}
