/*
 * store_etcd_groups.c - the etcd backend's group-level calls: settings
 * (revision = the key's version; reads from the watch-fed cache), desired
 * capacity, the group list and deletion, the spec and the owner's pending
 * requests. Contract in store.h, layout in docs/internals/store.md, helpers
 * and the cache in store_etcd.c.
 */
#include "store/store_etcd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"

#include "common/banned.h"

#define CAS_RETRIES 8 /* read-modify-write attempts before giving up with ECONFLICT */

/* ---- settings ------------------------------------------------------------------------------- */

/* Reads name's settings from etcd (not the cache) into *g; *mod (may be NULL) its mod revision. */
static int read_settings(struct store *st, const char *name, struct group_settings *g, int64_t *mod)
{
    struct es *e = ES(st);
    char *k = es_key(st, "/groups/%s/settings", name);
    if (!k)
        return STORE_ENOMEM;
    struct etcd_range_result *r = NULL;
    int rc = etcd_range(e->h, k, ETCD_NUL, NULL, &r);
    free(k);
    if (rc)
        return es_err(st, rc, "cannot read group settings");
    char why[256] = "";
    if (r->n_kvs == 0)
        rc = store_set_err(st, STORE_ENOENT, "group \"%s\" has no settings in etcd", name);
    else if (es_settings_of(&r->kvs[0], g, why, sizeof(why)) != 0)
        rc = store_set_err(st, STORE_ECORRUPT,
                           "group \"%s\": stored settings in etcd are not valid: %s", name, why);
    if (!rc) {
        snprintf(g->name, sizeof(g->name), "%s", name);
        if (mod)
            *mod = r->kvs[0].mod_revision;
        es_cache_put(e, g, r->kvs[0].mod_revision, r->revision);
    }
    etcd_range_result_free(r);
    return rc;
}

int es_get_settings(struct store *st, const char *name, struct group_settings *out)
{
    struct es *e = ES(st);
    int rc = es_ensure_watch(st);
    if (rc && rc != STORE_EUNAVAIL)
        return rc;
    if (!rc && etcd_watch_connected(e->watch) && es_cache_get(e, name, out))
        return 0;
    return read_settings(st, name, out, NULL);
}

/*
 * Writes g as name's settings if the key's version is still `version` (0:
 * absent), plus whatever the fence of the group asks when fenced. *done is
 * 1 when written, 0 when the version moved (re-read and retry); errors and
 * EFENCED are returned.
 */
static int cas_settings(struct store *st, const struct group_settings *g, int64_t version,
                        int fenced, int *done)
{
    struct es *e = ES(st);
    *done = 0;
    char *k = es_key(st, "/groups/%s/settings", g->name);
    char *ik = es_key(st, "/index/groups/%s", g->name);
    struct group_settings w = *g;
    w.updated_at_ms = clk_wall_ms();
    w.revision = version + 1; /* the copy in the JSON, for people reading etcd */
    json_t *o = group_settings_to_json(&w);
    char *val = o ? es_dump(st, o) : NULL;
    json_decref(o);
    int rc = 0;
    if (!k || !ik || !val) {
        rc = store_set_err(st, STORE_ENOMEM, "out of memory writing settings");
        goto out;
    }
    struct etcd_cmp cmps[2] = {{.key = k,
                                .key_len = ETCD_NUL,
                                .target = ETCD_CMP_VERSION,
                                .result = ETCD_CMP_EQUAL,
                                .number = version}};
    size_t nc = 1, nf = 0;
    struct etcd_op ok[2] = {
        {.type = ETCD_OP_PUT, .key = k, .key_len = ETCD_NUL, .value = val, .value_len = ETCD_NUL},
        {.type = ETCD_OP_PUT, .key = ik, .key_len = ETCD_NUL, .value = "", .value_len = 0}};
    struct etcd_op fail[1];
    if (fenced)
        es_fence_add(st, g->name, cmps, &nc, fail, &nf);
    struct etcd_txn_result *r = NULL;
    rc = etcd_txn(e->h, cmps, nc, ok, 2, fail, nf, &r);
    if (rc) {
        rc = es_err(st, rc, "cannot write group settings");
        goto out;
    }
    if (r->succeeded) {
        *done = 1;
        es_cache_put(e, &w, r->revision, 0);
    } else if (fenced) {
        rc = es_fence_check(st, g->name, r, 0);
    }
    etcd_txn_result_free(r);
out:
    free(k);
    free(ik);
    free(val);
    return rc;
}

/* The current version of key (0 when absent). */
static int key_version(struct store *st, const char *key, int64_t *version)
{
    struct etcd_range_opts o = ETCD_RANGE_OPTS_INIT;
    o.keys_only = 1;
    struct etcd_range_result *r = NULL;
    int rc = etcd_range(ES(st)->h, key, ETCD_NUL, &o, &r);
    if (rc)
        return es_err(st, rc, "cannot read a revision");
    *version = r->n_kvs ? r->kvs[0].version : 0;
    etcd_range_result_free(r);
    return 0;
}

int es_put_settings(struct store *st, const struct group_settings *g, int64_t expect_revision,
                    int64_t *new_revision)
{
    char *k = es_key(st, "/groups/%s/settings", g->name);
    if (!k)
        return STORE_ENOMEM;
    int rc = 0;
    for (int attempt = 0; attempt < CAS_RETRIES; attempt++) {
        int64_t v = expect_revision;
        if (expect_revision < 0 && (rc = key_version(st, k, &v)) != 0)
            break;
        int done = 0;
        rc = cas_settings(st, g, v, 0, &done);
        if (rc || done) {
            if (!rc && new_revision)
                *new_revision = v + 1;
            break;
        }
        if (expect_revision >= 0) {
            int64_t now = 0;
            if ((rc = key_version(st, k, &now)) == 0)
                rc = store_set_err(st, STORE_ECONFLICT,
                                   "settings of group \"%s\" are at revision %lld, not %lld: "
                                   "reload and retry",
                                   g->name, (long long)now, (long long)expect_revision);
            break;
        }
        rc = store_set_err(st, STORE_ECONFLICT,
                           "settings of group \"%s\" kept changing while writing them", g->name);
    }
    free(k);
    return rc;
}

int es_set_desired(struct store *st, const char *name, int desired, int64_t *new_revision)
{
    int rc = 0;
    for (int attempt = 0; attempt < CAS_RETRIES; attempt++) {
        struct group_settings g;
        memset(&g, 0, sizeof(g));
        if ((rc = read_settings(st, name, &g, NULL)) != 0)
            return rc;
        if (desired < g.min_size || desired > g.max_size)
            return store_set_err(st, STORE_EINVAL, "group \"%s\": desired %d is outside [%d, %d]",
                                 name, desired, g.min_size, g.max_size);
        g.desired_capacity = desired;
        int done = 0;
        rc = cas_settings(st, &g, g.revision, 1, &done);
        if (rc)
            return rc;
        if (done) {
            if (new_revision)
                *new_revision = g.revision + 1;
            return 0;
        }
    }
    return store_set_err(st, STORE_ECONFLICT,
                         "settings of group \"%s\" kept changing while setting desired", name);
}

int es_list_groups(struct store *st, char ***names, size_t *n)
{
    return es_group_names(st, names, n);
}

int es_delete_group(struct store *st, const char *name)
{
    struct es *e = ES(st);
    char *sk = es_key(st, "/groups/%s/settings", name);
    char *pk = es_key(st, "/groups/%s/spec", name);
    char *dir = es_key(st, "/groups/%s/", name);
    char *ik = es_key(st, "/index/groups/%s", name);
    int rc = 0;
    if (!sk || !pk || !dir || !ik) {
        rc = STORE_ENOMEM;
        goto out;
    }
    int64_t v1 = 0, v2 = 0;
    if ((rc = key_version(st, sk, &v1)) != 0 || (rc = key_version(st, pk, &v2)) != 0)
        goto out;
    if (!v1 && !v2) {
        rc = store_set_err(st, STORE_ENOENT, "group \"%s\" does not exist in etcd", name);
        goto out;
    }
    /* the id indexes first: a leftover index entry is harmless, a missing one is not */
    if ((rc = es_delete_group_index(st, name)) != 0)
        goto out;
    struct etcd_op ops[2] = {
        {.type = ETCD_OP_DELETE, .key = dir, .key_len = ETCD_NUL, .prefix = 1},
        {.type = ETCD_OP_DELETE, .key = ik, .key_len = ETCD_NUL},
    };
    struct etcd_txn_result *r = NULL;
    rc = etcd_txn(e->h, NULL, 0, ops, 2, NULL, 0, &r);
    if (rc) {
        rc = es_err(st, rc, "cannot delete the group");
        goto out;
    }
    es_cache_drop(e, name, r->revision);
    etcd_txn_result_free(r);
out:
    free(sk);
    free(pk);
    free(dir);
    free(ik);
    return rc;
}

/* ---- spec ----------------------------------------------------------------------------------- */

int es_put_spec(struct store *st, const char *name, const char *text, int64_t expect_revision,
                int64_t *new_revision)
{
    char *k = es_key(st, "/groups/%s/spec", name);
    if (!k)
        return STORE_ENOMEM;
    int rc = 0;
    for (int attempt = 0; attempt < CAS_RETRIES; attempt++) {
        int64_t v = expect_revision;
        if (expect_revision < 0 && (rc = key_version(st, k, &v)) != 0)
            break;
        struct etcd_cmp cmp = {.key = k,
                               .key_len = ETCD_NUL,
                               .target = ETCD_CMP_VERSION,
                               .result = ETCD_CMP_EQUAL,
                               .number = v};
        struct etcd_op put = {.type = ETCD_OP_PUT,
                              .key = k,
                              .key_len = ETCD_NUL,
                              .value = text,
                              .value_len = ETCD_NUL};
        struct etcd_txn_result *r = NULL;
        rc = etcd_txn(ES(st)->h, &cmp, 1, &put, 1, NULL, 0, &r);
        if (rc) {
            rc = es_err(st, rc, "cannot write group spec");
            break;
        }
        int ok = r->succeeded;
        etcd_txn_result_free(r);
        if (ok) {
            if (new_revision)
                *new_revision = v + 1;
            break;
        }
        if (expect_revision >= 0) {
            int64_t now = 0;
            if ((rc = key_version(st, k, &now)) != 0)
                break;
            if (expect_revision == 0)
                rc = store_set_err(st, STORE_EEXIST, "group \"%s\" already has a spec", name);
            else
                rc = store_set_err(st, STORE_ECONFLICT,
                                   "spec of group \"%s\" is at revision %lld, not %lld: reload "
                                   "and retry",
                                   name, (long long)now, (long long)expect_revision);
            break;
        }
        rc = store_set_err(st, STORE_ECONFLICT, "spec of group \"%s\" kept changing", name);
    }
    free(k);
    return rc;
}

int es_get_spec(struct store *st, const char *name, char **text, int64_t *revision)
{
    char *k = es_key(st, "/groups/%s/spec", name);
    if (!k)
        return STORE_ENOMEM;
    struct etcd_range_result *r = NULL;
    int rc = etcd_range(ES(st)->h, k, ETCD_NUL, NULL, &r);
    free(k);
    if (rc)
        return es_err(st, rc, "cannot read group spec");
    if (r->n_kvs == 0) {
        rc = store_set_err(st, STORE_ENOENT, "group \"%s\" has no spec in etcd", name);
    } else {
        char *copy = strndup(r->kvs[0].value, r->kvs[0].value_len);
        if (!copy) {
            rc = store_set_err(st, STORE_ENOMEM, "out of memory reading a spec");
        } else {
            *text = copy;
            if (revision)
                *revision = r->kvs[0].version;
        }
    }
    etcd_range_result_free(r);
    return rc;
}

/* ---- requests ------------------------------------------------------------------------------- */

int es_request_add(struct store *st, const char *group, const char *kind, const char *json_text,
                   int64_t *id_out)
{
    int64_t now = clk_wall_ms();
    /* the key only has to be unique: the id is its create revision */
    char *k = es_key(st, "/groups/%s/requests/%020lld-%016llx", group, (long long)now,
                     (unsigned long long)es_rand());
    json_t *o = json_pack("{s:s, s:I, s:s}", "kind", kind, "created_at_ms", (json_int_t)now, "body",
                          json_text);
    char *val = o ? es_dump(st, o) : NULL;
    json_decref(o);
    int rc = 0;
    if (!k || !val) {
        rc = store_set_err(st, o ? STORE_ENOMEM : STORE_EINVAL,
                           "cannot encode request for group \"%s\" (body must be UTF-8)", group);
    } else {
        int64_t rev = 0;
        rc = etcd_put(ES(st)->h, k, ETCD_NUL, val, ETCD_NUL, 0, &rev);
        if (rc)
            rc = es_err(st, rc, "cannot record request");
        else if (id_out)
            *id_out = rev;
    }
    free(k);
    free(val);
    return rc;
}

int es_request_list(struct store *st, const char *group, struct store_request **out, size_t *n)
{
    char *k = es_key(st, "/groups/%s/requests/", group);
    if (!k)
        return STORE_ENOMEM;
    struct etcd_kv *kvs = NULL;
    size_t nk = 0;
    int rc = es_range_all(st, k, ES_PAGE, 0, &kvs, &nk);
    free(k);
    if (rc)
        return rc;
    struct store_request *arr = nk ? calloc(nk, sizeof(*arr)) : NULL;
    size_t cnt = 0;
    if (nk && !arr) {
        es_kvs_free(kvs, nk);
        return store_set_err(st, STORE_ENOMEM, "out of memory listing requests");
    }
    for (size_t i = 0; !rc && i < nk; i++) {
        json_t *o = es_json(&kvs[i]);
        const char *body = json_string_value(json_object_get(o, "body"));
        if (!body) {
            log_warn("store etcd: unreadable request \"%s\" ignored", kvs[i].key);
            json_decref(o);
            continue;
        }
        struct store_request *q = &arr[cnt];
        q->id = kvs[i].create_revision;
        snprintf(q->group, sizeof(q->group), "%s", group);
        es_str(o, "kind", q->kind, sizeof(q->kind));
        q->created_at_ms = es_i64(o, "created_at_ms");
        if (!(q->json = strdup(body)))
            rc = store_set_err(st, STORE_ENOMEM, "out of memory listing requests");
        else
            cnt++;
        json_decref(o);
    }
    es_kvs_free(kvs, nk);
    if (rc) {
        store_requests_free(arr, cnt);
        return rc;
    }
    if (!cnt) {
        free(arr);
        arr = NULL;
    }
    *out = arr;
    *n = cnt;
    return 0;
}

int es_request_delete(struct store *st, const char *group, int64_t id)
{
    struct es *e = ES(st);
    char *dir = es_key(st, "/groups/%s/requests/", group);
    if (!dir)
        return STORE_ENOMEM;
    struct etcd_range_opts o = ETCD_RANGE_OPTS_INIT;
    o.prefix = 1;
    o.keys_only = 1;
    o.min_create_revision = id;
    o.max_create_revision = id;
    struct etcd_range_result *r = NULL;
    int rc = etcd_range(e->h, dir, ETCD_NUL, &o, &r);
    free(dir);
    if (rc)
        return es_err(st, rc, "cannot find the request");
    if (r->n_kvs == 0) {
        etcd_range_result_free(r);
        return store_set_err(st, STORE_ENOENT, "no request %lld for group \"%s\"", (long long)id,
                             group);
    }
    struct etcd_cmp cmps[2] = {{.key = r->kvs[0].key,
                                .key_len = r->kvs[0].key_len,
                                .target = ETCD_CMP_CREATE,
                                .result = ETCD_CMP_EQUAL,
                                .number = id}};
    size_t nc = 1, nf = 0;
    struct etcd_op fail[1];
    es_fence_add(st, group, cmps, &nc, fail, &nf);
    struct etcd_op del = {
        .type = ETCD_OP_DELETE, .key = r->kvs[0].key, .key_len = r->kvs[0].key_len};
    struct etcd_txn_result *t = NULL;
    rc = etcd_txn(e->h, cmps, nc, &del, 1, fail, nf, &t);
    etcd_range_result_free(r);
    if (rc)
        return es_err(st, rc, "cannot delete the request");
    if (!t->succeeded) {
        rc = es_fence_check(st, group, t, 0);
        if (!rc)
            rc = store_set_err(st, STORE_ENOENT, "no request %lld for group \"%s\"", (long long)id,
                               group);
    }
    etcd_txn_result_free(t);
    return rc;
}
