/*
 * store_etcd_rows.c - the etcd backend's per-group rows: instances, launch
 * intents, activities and metric history (contract in store.h, layout in
 * docs/internals/store.md, helpers in store_etcd.h).
 *
 * Instances and intents are addressed by id / token alone in store.h, but
 * live under their group in etcd (so that a group is one prefix to list and
 * to delete): PREFIX/index/instances/<id> and PREFIX/index/intents/<token>
 * hold the group's name, written in the same txn as the row. An index entry
 * whose row is gone reads as "absent", so a leftover entry is harmless.
 *
 * Read-modify-write (lifecycle, intent completion) is a txn conditioned on
 * the row's mod revision, retried when another writer got in between, and
 * on the group's fence when the handle has one.
 *
 * Activity and request ids are the create revision of their key: global,
 * growing, allocated by etcd with the write itself (no counter key to
 * contend on), and "id < before" is a max_create_revision filter.
 */
#include "store/store_etcd.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"

#include "common/banned.h"

#define CAS_RETRIES 8
#define TXN_OPS     100 /* etcd refuses more than 128 ops in a txn by default */

/* ---- small helpers -------------------------------------------------------------------------- */

/* The group an id or token belongs to, from PREFIX/index/<kind>/<id>: 0, ENOENT or an error. */
static int index_group(struct store *st, const char *kind, const char *id, char *group, size_t size)
{
    char *k = es_key(st, "/index/%s/%s", kind, id);
    if (!k)
        return STORE_ENOMEM;
    struct etcd_range_result *r = NULL;
    int rc = etcd_range(ES(st)->h, k, ETCD_NUL, NULL, &r);
    free(k);
    if (rc)
        return es_err(st, rc, "cannot read the id index");
    if (r->n_kvs == 0 || r->kvs[0].value_len == 0 || r->kvs[0].value_len >= size)
        rc = STORE_ENOENT;
    else
        memcpy(group, r->kvs[0].value, r->kvs[0].value_len + 1);
    etcd_range_result_free(r);
    return rc;
}

/* Reads one key; *kv_out gets a copy of value and mod revision (*found 0 when absent). */
static int read_one(struct store *st, const char *key, json_t **val, int64_t *mod, int *found)
{
    struct etcd_range_result *r = NULL;
    int rc = etcd_range(ES(st)->h, key, ETCD_NUL, NULL, &r);
    if (rc)
        return es_err(st, rc, "cannot read a row");
    *found = r->n_kvs > 0;
    *val = NULL;
    *mod = 0;
    if (*found) {
        *mod = r->kvs[0].mod_revision;
        *val = es_json(&r->kvs[0]);
        if (!json_is_object(*val)) {
            json_decref(*val);
            *val = NULL;
            rc = store_set_err(st, STORE_ECORRUPT, "\"%s\" in etcd is not a JSON object", key);
        }
    }
    etcd_range_result_free(r);
    return rc;
}

/*
 * Writes the success ops if key's mod revision is still mod (0: absent) and
 * group's fence holds. *done 0: the key moved (retry). EFENCED when fenced.
 */
static int cas_ops(struct store *st, const char *group, const char *key, int64_t mod,
                   const struct etcd_op *ops, size_t n_ops, int *done,
                   struct etcd_txn_result **keep)
{
    struct etcd_cmp cmps[2] = {{.key = key,
                                .key_len = ETCD_NUL,
                                .target = ETCD_CMP_MOD,
                                .result = ETCD_CMP_EQUAL,
                                .number = mod}};
    size_t nc = 1, nf = 0;
    struct etcd_op fail[1];
    es_fence_add(st, group, cmps, &nc, fail, &nf);
    struct etcd_txn_result *r = NULL;
    int rc = etcd_txn(ES(st)->h, cmps, nc, ops, n_ops, fail, nf, &r);
    *done = 0;
    if (rc)
        return es_err(st, rc, "cannot write");
    if (r->succeeded)
        *done = 1;
    else
        rc = es_fence_check(st, group, r, 0);
    if (keep && !rc)
        *keep = r;
    else
        etcd_txn_result_free(r);
    return rc;
}

int es_fenced_ops(struct store *st, const char *group, const struct etcd_op *ops, size_t n,
                  struct etcd_txn_result **out, const char *what)
{
    struct etcd_cmp cmps[1];
    size_t nc = 0, nf = 0;
    struct etcd_op fail[1];
    es_fence_add(st, group, cmps, &nc, fail, &nf);
    struct etcd_txn_result *r = NULL;
    int rc = etcd_txn(ES(st)->h, cmps, nc, ops, n, fail, nf, &r);
    if (rc)
        return es_err(st, rc, what);
    if (!r->succeeded) {
        rc = es_fence_check(st, group, r, 0);
        if (!rc)
            rc = store_set_err(st, STORE_EIO, "%s: txn refused", what);
        etcd_txn_result_free(r);
        return rc;
    }
    if (out)
        *out = r;
    else
        etcd_txn_result_free(r);
    return 0;
}

/* Distinct group names of an index prefix (for the "all groups" lists). */
static int index_groups(struct store *st, const char *kind, char ***names, size_t *n)
{
    char *k = es_key(st, "/index/%s/", kind);
    if (!k)
        return STORE_ENOMEM;
    struct etcd_kv *kvs = NULL;
    size_t nk = 0;
    int rc = es_range_all(st, k, ES_PAGE, 0, &kvs, &nk);
    free(k);
    if (rc)
        return rc;
    char **arr = NULL;
    size_t cnt = 0, cap = 0;
    for (size_t i = 0; !rc && i < nk; i++) {
        if (!kvs[i].value_len || kvs[i].value_len >= STORE_NAME_MAX)
            continue;
        int seen = 0;
        for (size_t j = 0; j < cnt && !seen; j++)
            seen = strcmp(arr[j], kvs[i].value) == 0;
        if (seen)
            continue;
        if (store_grow((void **)&arr, &cap, cnt + 1, sizeof(*arr)) ||
            !(arr[cnt] = strdup(kvs[i].value)))
            rc = store_set_err(st, STORE_ENOMEM, "out of memory listing groups");
        else
            cnt++;
    }
    es_kvs_free(kvs, nk);
    if (rc) {
        store_names_free(arr, cnt);
        return rc;
    }
    *names = arr;
    *n = cnt;
    return 0;
}

/* ---- instances ------------------------------------------------------------------------------ */

static json_t *instance_json(const struct store_instance *in)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:s, s:i, s:s, s:I, s:I, s:I, s:b, s:I}", "id",
                     in->id, "group", in->group, "address", in->address, "provider", in->provider,
                     "lifecycle", in->lifecycle, "launched_at_ms", (json_int_t)in->launched_at_ms,
                     "launch_token", in->launch_token, "pid", (int)in->pid, "zone", in->zone,
                     "created_at_ms", (json_int_t)in->created_at_ms, "updated_at_ms",
                     (json_int_t)in->updated_at_ms, "terminated_at_ms",
                     (json_int_t)in->terminated_at_ms, "protected", in->protect, "hook_deadline_ms",
                     (json_int_t)in->hook_deadline_ms);
}

static void instance_of(const json_t *o, struct store_instance *in)
{
    memset(in, 0, sizeof(*in));
    es_str(o, "id", in->id, sizeof(in->id));
    es_str(o, "group", in->group, sizeof(in->group));
    es_str(o, "address", in->address, sizeof(in->address));
    es_str(o, "provider", in->provider, sizeof(in->provider));
    es_str(o, "lifecycle", in->lifecycle, sizeof(in->lifecycle));
    in->launched_at_ms = es_i64(o, "launched_at_ms");
    es_str(o, "launch_token", in->launch_token, sizeof(in->launch_token));
    in->pid = (int32_t)es_i64(o, "pid");
    es_str(o, "zone", in->zone, sizeof(in->zone));
    in->created_at_ms = es_i64(o, "created_at_ms");
    in->updated_at_ms = es_i64(o, "updated_at_ms");
    in->terminated_at_ms = es_i64(o, "terminated_at_ms");
    /* absent in rows written before issue 12: unprotected, no hook wait */
    in->protect = json_is_true(json_object_get(o, "protected"));
    in->hook_deadline_ms = es_i64(o, "hook_deadline_ms");
}

/* Writes w (already complete) at key with its index entry if key is still at mod. */
static int write_instance(struct store *st, const char *key, int64_t mod,
                          const struct store_instance *w, int *done)
{
    char *ik = es_key(st, "/index/instances/%s", w->id);
    json_t *o = instance_json(w);
    char *val = o ? es_dump(st, o) : NULL;
    json_decref(o);
    int rc = 0;
    if (!ik || !val) {
        rc = store_set_err(st, STORE_ENOMEM, "out of memory writing instance \"%s\"", w->id);
    } else {
        struct etcd_op ops[2] = {{.type = ETCD_OP_PUT,
                                  .key = key,
                                  .key_len = ETCD_NUL,
                                  .value = val,
                                  .value_len = ETCD_NUL},
                                 {.type = ETCD_OP_PUT,
                                  .key = ik,
                                  .key_len = ETCD_NUL,
                                  .value = w->group,
                                  .value_len = ETCD_NUL}};
        rc = cas_ops(st, w->group, key, mod, ops, 2, done, NULL);
    }
    free(ik);
    free(val);
    return rc;
}

int es_put_instance(struct store *st, const struct store_instance *in)
{
    char *k = es_key(st, "/groups/%s/instances/%s", in->group, in->id);
    if (!k)
        return STORE_ENOMEM;
    int rc = 0, done = 0;
    for (int attempt = 0; !rc && !done && attempt < CAS_RETRIES; attempt++) {
        json_t *old = NULL;
        int64_t mod = 0;
        int found = 0;
        if ((rc = read_one(st, k, &old, &mod, &found)) != 0)
            break;
        struct store_instance w = *in;
        w.updated_at_ms = clk_wall_ms();
        w.created_at_ms = found ? es_i64(old, "created_at_ms") : w.updated_at_ms;
        json_decref(old);
        rc = write_instance(st, k, mod, &w, &done);
    }
    if (!rc && !done)
        rc = store_set_err(st, STORE_ECONFLICT, "instance \"%s\" kept changing", in->id);
    free(k);
    return rc;
}

/* Finds instance id: its key (malloc'd), value and mod revision. ENOENT with text if absent. */
static int find_instance(struct store *st, const char *id, char **key, json_t **val, int64_t *mod)
{
    char group[STORE_NAME_MAX];
    int rc = index_group(st, "instances", id, group, sizeof(group));
    int found = 0;
    *key = NULL;
    if (!rc) {
        if (!(*key = es_key(st, "/groups/%s/instances/%s", group, id)))
            return STORE_ENOMEM;
        rc = read_one(st, *key, val, mod, &found);
    }
    if (!rc && !found)
        rc = STORE_ENOENT;
    if (rc == STORE_ENOENT)
        store_set_err(st, rc, "no instance \"%s\" in the store", id);
    if (rc) {
        free(*key);
        *key = NULL;
    }
    return rc;
}

int es_set_instance_lifecycle(struct store *st, const char *id, const char *lifecycle,
                              int64_t terminated_at_ms)
{
    int rc = 0, done = 0;
    for (int attempt = 0; !rc && !done && attempt < CAS_RETRIES; attempt++) {
        char *k = NULL;
        json_t *o = NULL;
        int64_t mod = 0;
        if ((rc = find_instance(st, id, &k, &o, &mod)) != 0)
            break;
        struct store_instance w;
        instance_of(o, &w);
        json_decref(o);
        snprintf(w.lifecycle, sizeof(w.lifecycle), "%s", lifecycle);
        if (terminated_at_ms != 0)
            w.terminated_at_ms = terminated_at_ms;
        w.updated_at_ms = clk_wall_ms();
        rc = write_instance(st, k, mod, &w, &done);
        free(k);
    }
    if (!rc && !done)
        rc = store_set_err(st, STORE_ECONFLICT, "instance \"%s\" kept changing", id);
    return rc;
}

int es_get_instance(struct store *st, const char *id, struct store_instance *out)
{
    char *k = NULL;
    json_t *o = NULL;
    int64_t mod = 0;
    int rc = find_instance(st, id, &k, &o, &mod);
    if (!rc)
        instance_of(o, out);
    json_decref(o);
    free(k);
    return rc;
}

int es_delete_instance(struct store *st, const char *id)
{
    char *k = NULL;
    json_t *o = NULL;
    int64_t mod = 0;
    int rc = find_instance(st, id, &k, &o, &mod);
    if (rc)
        return rc;
    char group[STORE_NAME_MAX];
    es_str(o, "group", group, sizeof(group));
    json_decref(o);
    char *ik = es_key(st, "/index/instances/%s", id);
    if (!ik) {
        free(k);
        return STORE_ENOMEM;
    }
    struct etcd_op ops[2] = {{.type = ETCD_OP_DELETE, .key = k, .key_len = ETCD_NUL},
                             {.type = ETCD_OP_DELETE, .key = ik, .key_len = ETCD_NUL}};
    struct etcd_txn_result *r = NULL;
    rc = es_fenced_ops(st, group, ops, 2, &r, "cannot delete instance");
    if (!rc) {
        if (r->n_ops < 1 || r->ops[0].deleted == 0)
            rc = store_set_err(st, STORE_ENOENT, "no instance \"%s\" in the store", id);
        etcd_txn_result_free(r);
    }
    free(k);
    free(ik);
    return rc;
}

static int cmp_instances(const void *a, const void *b)
{
    const struct store_instance *x = a, *y = b;
    if (x->launched_at_ms != y->launched_at_ms)
        return x->launched_at_ms < y->launched_at_ms ? -1 : 1;
    return strcmp(x->id, y->id);
}

/* Appends group's instances to *arr. */
static int group_instances(struct store *st, const char *group, int include_terminated,
                           struct store_instance **arr, size_t *cnt, size_t *cap)
{
    char *k = es_key(st, "/groups/%s/instances/", group);
    if (!k)
        return STORE_ENOMEM;
    struct etcd_kv *kvs = NULL;
    size_t nk = 0;
    int rc = es_range_all(st, k, ES_PAGE, 0, &kvs, &nk);
    free(k);
    for (size_t i = 0; !rc && i < nk; i++) {
        json_t *o = es_json(&kvs[i]);
        if (!json_is_object(o)) {
            log_warn("store etcd: unreadable instance \"%s\" ignored", kvs[i].key);
            json_decref(o);
            continue;
        }
        struct store_instance in;
        instance_of(o, &in);
        json_decref(o);
        if (in.terminated_at_ms != 0 && !include_terminated)
            continue;
        if (store_grow((void **)arr, cap, *cnt + 1, sizeof(**arr)))
            rc = store_set_err(st, STORE_ENOMEM, "out of memory listing instances");
        else
            (*arr)[(*cnt)++] = in;
    }
    es_kvs_free(kvs, nk);
    return rc;
}

int es_list_instances(struct store *st, const char *group, int include_terminated,
                      struct store_instance **out, size_t *n)
{
    struct store_instance *arr = NULL;
    size_t cnt = 0, cap = 0;
    int rc = 0;
    if (group) {
        rc = group_instances(st, group, include_terminated, &arr, &cnt, &cap);
    } else {
        char **names = NULL;
        size_t nn = 0;
        rc = index_groups(st, "instances", &names, &nn);
        for (size_t i = 0; !rc && i < nn; i++)
            rc = group_instances(st, names[i], include_terminated, &arr, &cnt, &cap);
        store_names_free(names, nn);
    }
    if (rc) {
        free(arr);
        return rc;
    }
    if (cnt)
        qsort(arr, cnt, sizeof(*arr), cmp_instances);
    *out = arr;
    *n = cnt;
    return 0;
}

/* ---- launch intents ------------------------------------------------------------------------- */

static const char *intent_state_name(int s)
{
    return s == STORE_INTENT_DONE ? "done" : s == STORE_INTENT_FAILED ? "failed" : "open";
}

int es_intent_create(struct store *st, const char *token, const char *group, int count,
                     int64_t created_at_ms)
{
    char *k = es_key(st, "/groups/%s/intents/%s", group, token);
    char *ik = es_key(st, "/index/intents/%s", token);
    /*
     * The client retries a txn that timed out, and the first attempt may have
     * been applied: the nonce tells our own write (success) from another
     * caller's (EEXIST).
     */
    char nonce[24];
    snprintf(nonce, sizeof(nonce), "%016llx", (unsigned long long)es_rand());
    json_t *o =
        json_pack("{s:s, s:s, s:i, s:I, s:s, s:[], s:I, s:s}", "token", token, "group", group,
                  "count", count, "created_at_ms", (json_int_t)created_at_ms, "state", "open",
                  "ids", "updated_at_ms", (json_int_t)clk_wall_ms(), "nonce", nonce);
    char *val = o ? es_dump(st, o) : NULL;
    json_decref(o);
    int rc = 0;
    if (!k || !ik || !val) {
        rc = store_set_err(st, STORE_ENOMEM, "out of memory recording launch intent");
        goto out;
    }
    /* the token is unique over every group, as in SQLite: the index key must not exist */
    struct etcd_cmp cmps[2] = {{.key = ik,
                                .key_len = ETCD_NUL,
                                .target = ETCD_CMP_CREATE,
                                .result = ETCD_CMP_EQUAL,
                                .number = 0}};
    struct etcd_op ops[2] = {
        {.type = ETCD_OP_PUT, .key = k, .key_len = ETCD_NUL, .value = val, .value_len = ETCD_NUL},
        {.type = ETCD_OP_PUT,
         .key = ik,
         .key_len = ETCD_NUL,
         .value = group,
         .value_len = ETCD_NUL}};
    size_t nc = 1, nf = 0;
    struct etcd_op fail[2];
    es_fence_add(st, group, cmps, &nc, fail, &nf);
    size_t mine = nf;
    fail[nf++] = (struct etcd_op){.type = ETCD_OP_RANGE, .key = k, .key_len = ETCD_NUL};
    struct etcd_txn_result *r = NULL;
    rc = etcd_txn(ES(st)->h, cmps, nc, ops, 2, fail, nf, &r);
    if (rc) {
        rc = es_err(st, rc, "cannot record launch intent");
        goto out;
    }
    if (!r->succeeded) {
        rc = es_fence_check(st, group, r, 0);
        int ours = 0;
        if (!rc && mine < r->n_ops && r->ops[mine].range.n_kvs == 1) {
            json_t *cur = es_json(&r->ops[mine].range.kvs[0]);
            const char *n = json_string_value(json_object_get(cur, "nonce"));
            ours = n && strcmp(n, nonce) == 0;
            json_decref(cur);
        }
        if (!rc && !ours)
            rc = store_set_err(st, STORE_EEXIST, "launch intent \"%s\" already recorded", token);
    }
    etcd_txn_result_free(r);
out:
    free(k);
    free(ik);
    free(val);
    return rc;
}

int es_intent_complete(struct store *st, const char *token, int state, const char *const *ids,
                       size_t n)
{
    int rc = 0, done = 0;
    for (int attempt = 0; !rc && !done && attempt < CAS_RETRIES; attempt++) {
        char group[STORE_NAME_MAX];
        rc = index_group(st, "intents", token, group, sizeof(group));
        char *k = rc ? NULL : es_key(st, "/groups/%s/intents/%s", group, token);
        json_t *o = NULL;
        int64_t mod = 0;
        int found = 0;
        if (!rc && !k)
            rc = STORE_ENOMEM;
        if (!rc)
            rc = read_one(st, k, &o, &mod, &found);
        if (!rc && !found)
            rc = STORE_ENOENT;
        if (rc == STORE_ENOENT)
            store_set_err(st, rc, "no launch intent \"%s\"", token);
        json_t *arr = rc ? NULL : json_array();
        if (!rc && !arr)
            rc = store_set_err(st, STORE_ENOMEM, "out of memory");
        for (size_t i = 0; !rc && i < n; i++)
            if (json_array_append_new(arr, json_string(ids[i])) != 0)
                rc = store_set_err(st, STORE_EINVAL,
                                   "launch intent \"%s\": instance id %zu is not UTF-8", token, i);
        char *val = NULL;
        if (!rc) {
            json_object_set_new(o, "state", json_string(intent_state_name(state)));
            json_object_set(o, "ids", arr);
            json_object_set_new(o, "updated_at_ms", json_integer((json_int_t)clk_wall_ms()));
            val = es_dump(st, o);
            if (!val)
                rc = STORE_ENOMEM;
        }
        if (!rc) {
            struct etcd_op put = {.type = ETCD_OP_PUT,
                                  .key = k,
                                  .key_len = ETCD_NUL,
                                  .value = val,
                                  .value_len = ETCD_NUL};
            rc = cas_ops(st, group, k, mod, &put, 1, &done, NULL);
        }
        json_decref(arr);
        json_decref(o);
        free(val);
        free(k);
    }
    if (!rc && !done)
        rc = store_set_err(st, STORE_ECONFLICT, "launch intent \"%s\" kept changing", token);
    return rc;
}

static int cmp_intents(const void *a, const void *b)
{
    const struct store_intent *x = a, *y = b;
    if (x->created_at_ms != y->created_at_ms)
        return x->created_at_ms < y->created_at_ms ? -1 : 1;
    return strcmp(x->token, y->token);
}

static int group_intents(struct store *st, const char *group, struct store_intent **arr,
                         size_t *cnt, size_t *cap)
{
    char *k = es_key(st, "/groups/%s/intents/", group);
    if (!k)
        return STORE_ENOMEM;
    struct etcd_kv *kvs = NULL;
    size_t nk = 0;
    int rc = es_range_all(st, k, ES_PAGE, 0, &kvs, &nk);
    free(k);
    for (size_t i = 0; !rc && i < nk; i++) {
        json_t *o = es_json(&kvs[i]);
        const char *state = json_string_value(json_object_get(o, "state"));
        if (!state || strcmp(state, "open") != 0) {
            json_decref(o);
            continue;
        }
        if (store_grow((void **)arr, cap, *cnt + 1, sizeof(**arr))) {
            json_decref(o);
            rc = store_set_err(st, STORE_ENOMEM, "out of memory listing launch intents");
            break;
        }
        struct store_intent *it = &(*arr)[(*cnt)++];
        memset(it, 0, sizeof(*it));
        es_str(o, "token", it->token, sizeof(it->token));
        es_str(o, "group", it->group, sizeof(it->group));
        it->count = (int)es_i64(o, "count");
        it->created_at_ms = es_i64(o, "created_at_ms");
        it->state = STORE_INTENT_OPEN;
        json_t *ids = json_object_get(o, "ids");
        size_t ni = json_array_size(ids);
        if (ni && !(it->ids = calloc(ni, sizeof(*it->ids)))) {
            json_decref(o);
            rc = store_set_err(st, STORE_ENOMEM, "out of memory listing launch intents");
            break;
        }
        for (size_t j = 0; !rc && j < ni; j++) {
            const char *id = json_string_value(json_array_get(ids, j));
            if (!id || !store_str_ok(id, STORE_ID_MAX, 1))
                continue;
            if (!(it->ids[it->n_ids] = strdup(id)))
                rc = store_set_err(st, STORE_ENOMEM, "out of memory listing launch intents");
            else
                it->n_ids++;
        }
        json_decref(o);
    }
    es_kvs_free(kvs, nk);
    return rc;
}

int es_intent_list_open(struct store *st, const char *group, struct store_intent **out, size_t *n)
{
    struct store_intent *arr = NULL;
    size_t cnt = 0, cap = 0;
    int rc = 0;
    if (group) {
        rc = group_intents(st, group, &arr, &cnt, &cap);
    } else {
        char **names = NULL;
        size_t nn = 0;
        rc = index_groups(st, "intents", &names, &nn);
        for (size_t i = 0; !rc && i < nn; i++)
            rc = group_intents(st, names[i], &arr, &cnt, &cap);
        store_names_free(names, nn);
    }
    if (rc) {
        store_intents_free(arr, cnt);
        return rc;
    }
    if (cnt)
        qsort(arr, cnt, sizeof(*arr), cmp_intents);
    else {
        free(arr);
        arr = NULL;
    }
    *out = arr;
    *n = cnt;
    return 0;
}

/* ---- activities ----------------------------------------------------------------------------- */

int es_activity_add(struct store *st, const struct store_activity *a, int64_t *id_out)
{
    char *k = es_key(st, "/groups/%s/activities/%020lld-%016llx", a->group, (long long)a->at_ms,
                     (unsigned long long)es_rand());
    json_t *o = json_pack("{s:I, s:s, s:s, s:i, s:i, s:s, s:s}", "at_ms", (json_int_t)a->at_ms,
                          "kind", a->kind, "cause", a->cause, "from", a->from_count, "to",
                          a->to_count, "status", a->status, "detail", a->detail);
    char *val = o ? es_dump(st, o) : NULL;
    json_decref(o);
    int rc = 0;
    if (!k || !val) {
        rc = store_set_err(st, o ? STORE_ENOMEM : STORE_EINVAL,
                           "cannot encode activity of group \"%s\" (text must be UTF-8)", a->group);
    } else {
        struct etcd_op put = {.type = ETCD_OP_PUT,
                              .key = k,
                              .key_len = ETCD_NUL,
                              .value = val,
                              .value_len = ETCD_NUL};
        struct etcd_txn_result *r = NULL;
        rc = es_fenced_ops(st, a->group, &put, 1, &r, "cannot record activity");
        if (!rc) {
            if (id_out)
                *id_out = r->revision; /* the put's revision: the key's create revision */
            etcd_txn_result_free(r);
        }
    }
    free(k);
    free(val);
    return rc;
}

static int group_activities(struct store *st, const char *group, int64_t before_id, int limit,
                            struct store_activity **arr, size_t *cnt, size_t *cap)
{
    char *k = es_key(st, "/groups/%s/activities/", group);
    if (!k)
        return STORE_ENOMEM;
    struct etcd_range_opts o = ETCD_RANGE_OPTS_INIT;
    o.prefix = 1;
    o.limit = limit;
    o.sort_order = ETCD_SORT_DESCEND;
    o.sort_target = ETCD_SORT_CREATE;
    if (before_id > 0)
        o.max_create_revision = before_id - 1;
    struct etcd_range_result *r = NULL;
    int rc = etcd_range(ES(st)->h, k, ETCD_NUL, &o, &r);
    free(k);
    if (rc)
        return es_err(st, rc, "cannot list activities");
    if (before_id == 1)
        r->n_kvs = 0; /* max_create_revision 0 means "no filter" to etcd */
    for (size_t i = 0; !rc && i < r->n_kvs; i++) {
        json_t *j = es_json(&r->kvs[i]);
        if (!json_is_object(j)) {
            json_decref(j);
            continue;
        }
        if (store_grow((void **)arr, cap, *cnt + 1, sizeof(**arr))) {
            json_decref(j);
            rc = store_set_err(st, STORE_ENOMEM, "out of memory listing activities");
            break;
        }
        struct store_activity *a = &(*arr)[(*cnt)++];
        memset(a, 0, sizeof(*a));
        a->id = r->kvs[i].create_revision;
        snprintf(a->group, sizeof(a->group), "%s", group);
        a->at_ms = es_i64(j, "at_ms");
        es_str(j, "kind", a->kind, sizeof(a->kind));
        es_str(j, "cause", a->cause, sizeof(a->cause));
        a->from_count = (int)es_i64(j, "from");
        a->to_count = (int)es_i64(j, "to");
        es_str(j, "status", a->status, sizeof(a->status));
        es_str(j, "detail", a->detail, sizeof(a->detail));
        json_decref(j);
    }
    etcd_range_result_free(r);
    return rc;
}

static int cmp_activities(const void *a, const void *b)
{
    const struct store_activity *x = a, *y = b;
    return x->id == y->id ? 0 : x->id > y->id ? -1 : 1; /* newest first */
}

int es_activity_list(struct store *st, const char *group, int64_t before_id, int limit,
                     struct store_activity **out, size_t *n)
{
    struct store_activity *arr = NULL;
    size_t cnt = 0, cap = 0;
    int rc = 0;
    if (group) {
        rc = group_activities(st, group, before_id, limit, &arr, &cnt, &cap);
    } else {
        /* the newest `limit` of each group, merged: the newest `limit` overall are among them */
        char **names = NULL;
        size_t nn = 0;
        rc = es_group_names(st, &names, &nn);
        for (size_t i = 0; !rc && i < nn; i++)
            rc = group_activities(st, names[i], before_id, limit, &arr, &cnt, &cap);
        store_names_free(names, nn);
        if (!rc && cnt)
            qsort(arr, cnt, sizeof(*arr), cmp_activities);
        if (cnt > (size_t)limit)
            cnt = (size_t)limit;
    }
    if (rc) {
        free(arr);
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

/* ---- group deletion ------------------------------------------------------------------------- */

/* Deletes PREFIX/index/<kind>/<id> for every row under group's <dir>/ in txns of TXN_OPS. */
static int drop_index(struct store *st, const char *group, const char *dir, const char *kind)
{
    char *k = es_key(st, "/groups/%s/%s/", group, dir);
    if (!k)
        return STORE_ENOMEM;
    struct etcd_kv *kvs = NULL;
    size_t nk = 0;
    int rc = es_range_all(st, k, ES_PAGE, 1, &kvs, &nk);
    size_t klen = strlen(k);
    free(k);
    char *keys[TXN_OPS];
    struct etcd_op ops[TXN_OPS];
    size_t nops = 0;
    for (size_t i = 0; !rc && i <= nk; i++) {
        if (i < nk && kvs[i].key_len > klen) {
            keys[nops] = es_key(st, "/index/%s/%s", kind, kvs[i].key + klen);
            if (!keys[nops]) {
                rc = STORE_ENOMEM;
                break;
            }
            ops[nops] =
                (struct etcd_op){.type = ETCD_OP_DELETE, .key = keys[nops], .key_len = ETCD_NUL};
            nops++;
        }
        if (nops == TXN_OPS || (i == nk && nops > 0)) {
            struct etcd_txn_result *r = NULL;
            int e = etcd_txn(ES(st)->h, NULL, 0, ops, nops, NULL, 0, &r);
            etcd_txn_result_free(r);
            if (e)
                rc = es_err(st, e, "cannot delete the group's id index");
            for (size_t j = 0; j < nops; j++)
                free(keys[j]);
            nops = 0;
        }
    }
    for (size_t j = 0; j < nops; j++)
        free(keys[j]);
    es_kvs_free(kvs, nk);
    return rc;
}

int es_delete_group_index(struct store *st, const char *group)
{
    int rc = drop_index(st, group, "instances", "instances");
    if (!rc)
        rc = drop_index(st, group, "intents", "intents");
    if (!rc)
        es_metrics_forget(st, group);
    return rc;
}
