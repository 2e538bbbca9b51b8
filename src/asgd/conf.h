/*
 * conf.h - asgd's node file (asgd -c FILE) as one struct: the node-level
 * sections, and the groups the node runs.
 *
 * Node sections (defaults in parentheses; durations as "500ms", "5s", "2m"):
 *
 *   [monitor]  listen (127.0.0.1:50052), agent_port (50051), token_file (none),
 *              accept_unknown (false), advertise (listen: the address instances
 *              are told to register with, e.g. the host's private IP for EC2),
 *              tls_ca_file (none: agents are polled in clear text; set: over
 *              TLS, each agent's certificate verified against this bundle),
 *              tls_cert_file, tls_key_file (none; together: MonitorS serves
 *              TLS with them, and they are the client certificate shown to
 *              agents that require one; with tls_ca_file too, agents must
 *              present a certificate signed by it when they register),
 *              tls_server_name (none: each agent's certificate must name
 *              the host or IP address it is polled at; set: this name)
 *   [api]      listen (127.0.0.1:8080), token_file (none),
 *              tls_cert_file, tls_key_file (none; together: HTTPS only),
 *              tls_ca_file (none: the system's CAs; verifies the other nodes'
 *              https:// APIs when reads are proxied to a group's owner)
 *              TLS files are re-read on SIGHUP (daemon.c).
 *   [store]    type (sqlite | etcd), dir (see below),
 *              etcd_endpoints (comma-separated http(s)://host:port URLs;
 *              required with type = etcd), etcd_prefix (/asgd),
 *              etcd_ca_file, etcd_cert_file, etcd_key_file (TLS; cert and
 *              key go together)
 *   [cluster]  node (the host name), lease_ttl (5s, 2s..60s),
 *              api_advertise (this node's API URL shown to the others;
 *              default http://<[api] listen>)
 *   [groups]   dir: every *.ini in it (sorted by name) is one group file
 *              (group_conf.h); a group's name defaults to its file name
 *              without .ini; two files naming the same group are an error
 *              naming both files.
 *
 * Groups come from (any mix of):
 *   - the node file itself: a [group] section with its [policy], [health],
 *     [provider], [local], [ec2] (today's single-file layout, unchanged:
 *     address_base 127.0.0.2 by default, local.dir = the store dir);
 *   - [groups] dir (address_base derived from the name by default, local.dir
 *     <store dir>/local/<name> by default);
 *   - with [store] type = etcd, the store (the daemon's business, not read
 *     here), so groups may be absent from the files.
 * A file with no group ([group], [groups] dir) and not type = etcd, an empty
 * file included, is an error.
 *
 * [store] dir default: with a [group] in the node file, the state dir of that
 * group's name (conf_default_store_dir(name), as before); otherwise
 * conf_default_store_dir(NULL).
 *
 * Errors name the file, the line and the key: "asgd.ini:7: [group] min_size:
 * 5 is greater than max_size (3)". Every function returns 0 or -1 with the
 * message in err (NUL-terminated, truncated to errlen). String values longer
 * than CFG_VALUE_MAX (4096) bytes are refused at their line.
 *
 * Ownership: every pointer in struct asgd_conf is malloc'd and owned by the
 * struct; conf_release() frees them (also after a failed load).
 */
#ifndef ASGD_CONF_H
#define ASGD_CONF_H

#include <stddef.h>
#include <stdint.h>

#include "common/cfg.h"
#include "group/group.h"
#include "group/group_conf.h"

/* The old names, kept for the callers of a single group. */
#define CONF_PROVIDER_LOCAL GROUP_PROVIDER_LOCAL
#define CONF_PROVIDER_EC2   GROUP_PROVIDER_EC2
#define CONF_NAME_MAX       GROUP_NAME_LEN

enum conf_store_type { CONF_STORE_SQLITE = 0, CONF_STORE_ETCD = 1 };

struct conf_monitor {
    char *listen;          /* MonitorS gRPC "host:port" */
    int agent_port;        /* port every instance's monitorc listens on */
    char *token_file;      /* shared secret for Register/Deregister; NULL: none */
    char *advertise;       /* MonitorS address given to instances (EC2 user data); NULL: listen */
    int accept_unknown;    /* Register from an unknown instance id is accepted */
    char *tls_ca_file;     /* TLS: agents' CA bundle; NULL: none */
    char *tls_cert_file;   /* TLS: MonitorS's certificate (and client certificate) */
    char *tls_key_file;    /* goes with tls_cert_file */
    char *tls_server_name; /* name expected in agents' certificates; NULL: their address */
};

struct conf_api {
    char *listen;        /* HTTP API "host:port" */
    char *token_file;    /* bearer token for writes; NULL: none */
    char *tls_cert_file; /* HTTPS certificate chain; NULL: plain HTTP */
    char *tls_key_file;  /* goes with tls_cert_file */
    char *tls_ca_file;   /* CA of the other nodes' HTTPS APIs (cluster proxy); NULL: system */
};

struct conf_store {
    int type;                /* enum conf_store_type */
    char *dir;               /* local state: SQLite database, tokens, local groups' files */
    char **etcd_endpoints;   /* etcd: the URLs, each "http(s)://host:port"; NULL for sqlite */
    size_t n_etcd_endpoints; /* >= 1 with etcd */
    char *etcd_prefix;       /* key prefix, "/asgd" by default; starts with '/' */
    char *etcd_ca_file;      /* NULL: system CAs */
    char *etcd_cert_file;    /* client certificate; NULL: none (then key NULL too) */
    char *etcd_key_file;
};

struct conf_cluster {
    char *node;           /* this node's name: the host name by default */
    int64_t lease_ttl_ms; /* group ownership lease */
    char *api_advertise;  /* "http(s)://..." of this node's API, shown to the others */
};

struct asgd_conf {
    char *path; /* the file read; NULL when only defaults */
    struct conf_monitor monitor;
    struct conf_api api;
    struct conf_store store;
    struct conf_cluster cluster;
    char *groups_dir;          /* [groups] dir; NULL: none */
    struct group_conf *groups; /* the node file's group first, then the folder's, sorted */
    size_t n_groups;           /* 0 only with [store] type = etcd */
};

/*
 * Fills *c with every default and one group "default" (the single-file
 * layout's defaults), as asgd without a file. Any previous content is NOT
 * freed. Returns 0, or -1 when out of memory (then *c is safe to
 * conf_release()).
 */
int conf_defaults(struct asgd_conf *c);

/* Frees everything *c owns and zeroes it. NULL is a no-op; calling twice is safe. */
void conf_release(struct asgd_conf *c);

/*
 * Reads the node file cfg (loaded by the caller) into *out, which it first
 * zeroes (pass an empty or released struct): node sections, the node file's
 * group if it has a [group] section, the group files of [groups] dir (each
 * loaded and checked for unknown keys on its own). Does NOT call
 * cfg_check_unused() on cfg. On failure returns -1 with "FILE:LINE: [section]
 * key: why" in err; *out must still be conf_release()d.
 */
int conf_load_cfg(struct cfg *cfg, struct asgd_conf *out, char *err, size_t errlen);

/* cfg_load(path), conf_load_cfg(), cfg_check_unused(): the whole node file. */
int conf_load(const char *path, struct asgd_conf *out, char *err, size_t errlen);

/* The group named name in c, or NULL. */
struct group_conf *conf_find_group(struct asgd_conf *c, const char *name);

/*
 * The local provider's directory of a group defined outside the files (a
 * spec from the store or the API) with no [local] dir: <store dir>/local/<name>,
 * malloc'd (NULL when out of memory). conf_load() already sets it for the
 * file groups.
 */
char *conf_local_dir(const struct asgd_conf *c, const char *name);

/* Compatibility: group_settings_validate(). */
int conf_validate_group(const struct group_settings *g, const char **sec, const char **key,
                        char *err, size_t errlen);

/* Compatibility: group_name_valid(). */
int conf_name_valid(const char *name);

/*
 * The default state directory, malloc'd (caller frees; NULL when out of
 * memory): $STATE_DIRECTORY when set (systemd's StateDirectory=), else
 * /var/lib/asgd for root, else $XDG_STATE_HOME/asgd, else
 * $HOME/.local/state/asgd, else /tmp/asgd-<uid>; followed by "/<name>" when
 * name is not NULL. Never relative to the working directory.
 */
char *conf_default_store_dir(const char *name);

#endif
