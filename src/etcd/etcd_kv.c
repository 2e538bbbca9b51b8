/*
 * etcd_kv.c - the key-value requests of etcd.h: range, put, delete, compact
 * and txn (see etcd_int.h for how the client is cut).
 *
 * Each call builds its request object, hands it to etcd__call() (transport
 * and failover, etcd.c) and decodes the reply with etcd_codec.c. A txn is
 * here too because its operations are these same range / put / delete
 * requests, nested: the request builders are shared, and file-local.
 */
#include "etcd/etcd_int.h"

#include <stdlib.h>
#include <string.h>

#include "common/banned.h"

/* ---- requests ----------------------------------------------------------- */

static int check_key(struct etcd *h, const char *what, const void *key, size_t len, int prefix)
{
    if ((!key && len) || (len == 0 && !prefix)) {
        etcd__set_err(h, "etcd %s: empty key", what);
        return ETCD_EINVAL;
    }
    return 0;
}

static const char *const sort_orders[] = {"NONE", "ASCEND", "DESCEND"};
static const char *const sort_targets[] = {"KEY", "VERSION", "CREATE", "MOD", "VALUE"};

static int range_request(const void *key, size_t len, const struct etcd_range_opts *o, json_t **out)
{
    json_t *r = json_object();
    if (!r)
        return ETCD_ENOMEM;
    int rc = etcd__set_key_range(r, key, len, o->prefix);
    if (!rc && o->limit)
        rc = etcd__j_set(r, "limit", etcd__j_i64str(o->limit));
    if (!rc && o->revision)
        rc = etcd__j_set(r, "revision", etcd__j_i64str(o->revision));
    if (!rc && o->keys_only)
        rc = etcd__j_set(r, "keys_only", json_true());
    if (!rc && o->count_only)
        rc = etcd__j_set(r, "count_only", json_true());
    if (!rc && o->serializable)
        rc = etcd__j_set(r, "serializable", json_true());
    if (!rc && o->min_create_revision)
        rc = etcd__j_set(r, "min_create_revision", etcd__j_i64str(o->min_create_revision));
    if (!rc && o->max_create_revision)
        rc = etcd__j_set(r, "max_create_revision", etcd__j_i64str(o->max_create_revision));
    if (!rc && o->min_mod_revision)
        rc = etcd__j_set(r, "min_mod_revision", etcd__j_i64str(o->min_mod_revision));
    if (!rc && o->max_mod_revision)
        rc = etcd__j_set(r, "max_mod_revision", etcd__j_i64str(o->max_mod_revision));
    if (!rc && o->sort_order != ETCD_SORT_NONE) {
        if ((unsigned)o->sort_order > ETCD_SORT_DESCEND ||
            (unsigned)o->sort_target > ETCD_SORT_VALUE)
            rc = ETCD_EINVAL;
        if (!rc)
            rc = etcd__j_set(r, "sort_order", json_string(sort_orders[o->sort_order]));
        if (!rc)
            rc = etcd__j_set(r, "sort_target", json_string(sort_targets[o->sort_target]));
    }
    if (rc) {
        json_decref(r);
        return rc;
    }
    *out = r;
    return 0;
}

int etcd_range(struct etcd *h, const void *key, size_t key_len, const struct etcd_range_opts *opts,
               struct etcd_range_result **out)
{
    static const struct etcd_range_opts defaults = ETCD_RANGE_OPTS_INIT;
    if (!h || !out)
        return ETCD_EINVAL;
    const struct etcd_range_opts *o = opts ? opts : &defaults;
    key_len = etcd__arg_len(key, key_len);
    int rc = check_key(h, "range", key, key_len, o->prefix);
    if (rc)
        return rc;
    json_t *req = NULL, *reply = NULL;
    rc = range_request(key, key_len, o, &req);
    if (rc) {
        etcd__set_err(h, "etcd range: %s", etcd_strerror(rc));
        return rc;
    }
    rc = etcd__call(h, "range", "/v3/kv/range", req, &reply);
    if (rc)
        return rc;
    struct etcd_range_result *r = calloc(1, sizeof *r);
    rc = r ? etcd__need_header(reply) : ETCD_ENOMEM;
    if (!rc)
        rc = etcd__range_decode(reply, r);
    json_decref(reply);
    if (rc) {
        free(r);
        return etcd__bad_reply(h, "range", rc);
    }
    *out = r;
    return 0;
}

void etcd_range_result_free(struct etcd_range_result *r)
{
    if (!r)
        return;
    etcd__range_release(r);
    free(r);
}

static int put_request(const void *key, size_t key_len, const void *value, size_t value_len,
                       int64_t lease, json_t **out)
{
    json_t *r = json_object();
    if (!r)
        return ETCD_ENOMEM;
    int rc = etcd__j_set_bytes(r, "key", key, key_len);
    if (!rc)
        rc = etcd__j_set_bytes(r, "value", value ? value : "", value_len);
    if (!rc && lease)
        rc = etcd__j_set(r, "lease", etcd__j_i64str(lease));
    if (rc) {
        json_decref(r);
        return rc;
    }
    *out = r;
    return 0;
}

int etcd_put(struct etcd *h, const void *key, size_t key_len, const void *value, size_t value_len,
             int64_t lease, int64_t *revision)
{
    if (!h)
        return ETCD_EINVAL;
    key_len = etcd__arg_len(key, key_len);
    value_len = etcd__arg_len(value, value_len);
    int rc = check_key(h, "put", key, key_len, 0);
    if (rc)
        return rc;
    if (!value && value_len) {
        etcd__set_err(h, "etcd put: NULL value");
        return ETCD_EINVAL;
    }
    json_t *req = NULL, *reply = NULL;
    rc = put_request(key, key_len, value, value_len, lease, &req);
    if (rc) {
        etcd__set_err(h, "etcd put: out of memory");
        return rc;
    }
    rc = etcd__call(h, "put", "/v3/kv/put", req, &reply);
    if (rc)
        return rc;
    int64_t rev = 0;
    rc = etcd__need_header(reply);
    if (!rc)
        rc = etcd__header_revision(reply, &rev);
    json_decref(reply);
    if (rc)
        return etcd__bad_reply(h, "put", rc);
    if (revision)
        *revision = rev;
    return 0;
}

static int delete_request(const void *key, size_t key_len, int prefix, json_t **out)
{
    json_t *r = json_object();
    if (!r)
        return ETCD_ENOMEM;
    int rc = etcd__set_key_range(r, key, key_len, prefix);
    if (rc) {
        json_decref(r);
        return rc;
    }
    *out = r;
    return 0;
}

int etcd_delete(struct etcd *h, const void *key, size_t key_len, int prefix, int64_t *deleted,
                int64_t *revision)
{
    if (!h)
        return ETCD_EINVAL;
    key_len = etcd__arg_len(key, key_len);
    int rc = check_key(h, "delete", key, key_len, prefix);
    if (rc)
        return rc;
    json_t *req = NULL, *reply = NULL;
    rc = delete_request(key, key_len, prefix, &req);
    if (rc) {
        etcd__set_err(h, "etcd delete: out of memory");
        return rc;
    }
    rc = etcd__call(h, "delete", "/v3/kv/deleterange", req, &reply);
    if (rc)
        return rc;
    int64_t rev = 0, n = 0;
    rc = etcd__need_header(reply);
    if (!rc)
        rc = etcd__header_revision(reply, &rev);
    if (!rc)
        rc = etcd__j_int64(reply, "deleted", &n);
    json_decref(reply);
    if (rc)
        return etcd__bad_reply(h, "delete", rc);
    if (deleted)
        *deleted = n;
    if (revision)
        *revision = rev;
    return 0;
}

int etcd_compact(struct etcd *h, int64_t revision)
{
    if (!h || revision < 1) {
        if (h)
            etcd__set_err(h, "etcd compact: revision must be >= 1");
        return ETCD_EINVAL;
    }
    json_t *req = json_object(), *reply = NULL;
    int rc = req ? etcd__j_set(req, "revision", etcd__j_i64str(revision)) : ETCD_ENOMEM;
    if (rc) {
        json_decref(req);
        etcd__set_err(h, "etcd compact: out of memory");
        return rc;
    }
    rc = etcd__call(h, "compact", "/v3/kv/compaction", req, &reply);
    json_decref(reply);
    return rc;
}

/* ---- txn ---------------------------------------------------------------- */

static const char *const cmp_targets[] = {"VALUE", "CREATE", "MOD", "VERSION", "LEASE"};
static const char *const cmp_target_fields[] = {"value", "create_revision", "mod_revision",
                                                "version", "lease"};
static const char *const cmp_results[] = {"EQUAL", "NOT_EQUAL", "GREATER", "LESS"};

static int cmp_json(const struct etcd_cmp *c, json_t **out)
{
    size_t klen = etcd__arg_len(c->key, c->key_len);
    if (!c->key || klen == 0 || (unsigned)c->target > ETCD_CMP_LEASE ||
        (unsigned)c->result > ETCD_CMP_LESS)
        return ETCD_EINVAL;
    json_t *j = json_object();
    if (!j)
        return ETCD_ENOMEM;
    int rc = etcd__j_set_bytes(j, "key", c->key, klen);
    if (!rc)
        rc = etcd__j_set(j, "target", json_string(cmp_targets[c->target]));
    if (!rc)
        rc = etcd__j_set(j, "result", json_string(cmp_results[c->result]));
    if (!rc && c->target == ETCD_CMP_VALUE) {
        size_t vlen = etcd__arg_len(c->value, c->value_len);
        rc = (!c->value && vlen) ? ETCD_EINVAL
                                 : etcd__j_set_bytes(j, "value", c->value ? c->value : "", vlen);
    } else if (!rc) {
        rc = etcd__j_set(j, cmp_target_fields[c->target], etcd__j_i64str(c->number));
    }
    if (rc) {
        json_decref(j);
        return rc;
    }
    *out = j;
    return 0;
}

static int op_json(const struct etcd_op *op, json_t **out)
{
    size_t klen = etcd__arg_len(op->key, op->key_len);
    json_t *inner = NULL;
    const char *name;
    int rc;
    switch (op->type) {
    case ETCD_OP_RANGE: {
        struct etcd_range_opts o = ETCD_RANGE_OPTS_INIT;
        if (op->range)
            o = *op->range;
        else
            o.prefix = op->prefix;
        if ((!op->key && klen) || (klen == 0 && !o.prefix))
            return ETCD_EINVAL;
        name = "request_range";
        rc = range_request(op->key, klen, &o, &inner);
        break;
    }
    case ETCD_OP_PUT: {
        size_t vlen = etcd__arg_len(op->value, op->value_len);
        if (!op->key || klen == 0 || (!op->value && vlen))
            return ETCD_EINVAL;
        name = "request_put";
        rc = put_request(op->key, klen, op->value, vlen, op->lease, &inner);
        break;
    }
    case ETCD_OP_DELETE:
        if ((!op->key && klen) || (klen == 0 && !op->prefix))
            return ETCD_EINVAL;
        name = "request_delete_range";
        rc = delete_request(op->key, klen, op->prefix, &inner);
        break;
    default:
        return ETCD_EINVAL;
    }
    if (rc)
        return rc;
    json_t *j = json_object();
    if (!j) {
        json_decref(inner);
        return ETCD_ENOMEM;
    }
    rc = etcd__j_set(j, name, inner);
    if (rc) {
        json_decref(j);
        return rc;
    }
    *out = j;
    return 0;
}

static int ops_array(json_t *req, const char *name, const struct etcd_op *ops, size_t n)
{
    if (n && !ops)
        return ETCD_EINVAL;
    json_t *a = json_array();
    if (!a)
        return ETCD_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        json_t *o = NULL;
        int rc = op_json(&ops[i], &o);
        if (!rc && json_array_append_new(a, o) != 0)
            rc = ETCD_ENOMEM;
        if (rc) {
            json_decref(a);
            return rc;
        }
    }
    return etcd__j_set(req, name, a);
}

static void op_result_release(struct etcd_op_result *r)
{
    etcd__range_release(&r->range);
}

void etcd_txn_result_free(struct etcd_txn_result *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n_ops; i++)
        op_result_release(&r->ops[i]);
    free(r->ops);
    free(r);
}

/* Decodes reply into r; branch is the ops that ran (to check the reply's shape). */
static int txn_decode(const json_t *reply, const struct etcd_op *branch, size_t n_branch,
                      struct etcd_txn_result *r)
{
    int rc = etcd__header_revision(reply, &r->revision);
    if (!rc)
        rc = etcd__j_bool(reply, "succeeded", &r->succeeded);
    if (rc)
        return rc;
    (void)branch;
    json_t *resps = json_object_get(reply, "responses");
    size_t n = 0;
    if (resps && !json_is_null(resps)) {
        if (!json_is_array(resps))
            return ETCD_EPROTO;
        n = json_array_size(resps);
    }
    if (n != n_branch)
        return ETCD_EPROTO;
    if (n == 0)
        return 0;
    r->ops = calloc(n, sizeof *r->ops);
    if (!r->ops)
        return ETCD_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_array_get(resps, i);
        if (!json_is_object(o))
            return ETCD_EPROTO;
        struct etcd_op_result *res = &r->ops[i];
        json_t *v;
        if ((v = json_object_get(o, "response_range"))) {
            res->type = ETCD_OP_RANGE;
            rc = etcd__range_decode(v, &res->range);
            if (rc)
                return rc;
            res->revision = res->range.revision;
        } else if ((v = json_object_get(o, "response_put"))) {
            res->type = ETCD_OP_PUT;
            if (!json_is_object(v) || etcd__header_revision(v, &res->revision) != 0)
                return ETCD_EPROTO;
        } else if ((v = json_object_get(o, "response_delete_range"))) {
            res->type = ETCD_OP_DELETE;
            if (!json_is_object(v) || etcd__header_revision(v, &res->revision) != 0 ||
                etcd__j_int64(v, "deleted", &res->deleted) != 0)
                return ETCD_EPROTO;
        } else {
            return ETCD_EPROTO;
        }
        r->n_ops = i + 1;
        if (res->type != branch[i].type)
            return ETCD_EPROTO;
    }
    return 0;
}

int etcd_txn(struct etcd *h, const struct etcd_cmp *cmps, size_t n_cmps,
             const struct etcd_op *success, size_t n_success, const struct etcd_op *failure,
             size_t n_failure, struct etcd_txn_result **out)
{
    if (!h || !out)
        return ETCD_EINVAL;
    json_t *req = json_object(), *ca = json_array();
    int rc = req && ca ? 0 : ETCD_ENOMEM;
    if (!rc && n_cmps && !cmps)
        rc = ETCD_EINVAL;
    for (size_t i = 0; !rc && i < n_cmps; i++) {
        json_t *c = NULL;
        rc = cmp_json(&cmps[i], &c);
        if (!rc && json_array_append_new(ca, c) != 0)
            rc = ETCD_ENOMEM;
    }
    if (!rc) {
        rc = etcd__j_set(req, "compare", ca);
        ca = NULL;
    }
    if (!rc)
        rc = ops_array(req, "success", success, n_success);
    if (!rc)
        rc = ops_array(req, "failure", failure, n_failure);
    json_decref(ca);
    if (rc) {
        json_decref(req);
        etcd__set_err(h, "etcd txn: %s",
                      rc == ETCD_EINVAL ? "bad compare or op (NULL or empty key, bad enum)"
                                        : "out of memory");
        return rc;
    }
    json_t *reply = NULL;
    rc = etcd__call(h, "txn", "/v3/kv/txn", req, &reply);
    if (rc)
        return rc;
    struct etcd_txn_result *r = calloc(1, sizeof *r);
    if (!r) {
        json_decref(reply);
        return etcd__bad_reply(h, "txn", ETCD_ENOMEM);
    }
    int succeeded = 0;
    rc = etcd__need_header(reply);
    if (!rc)
        rc = etcd__j_bool(reply, "succeeded", &succeeded);
    if (!rc)
        rc = succeeded ? txn_decode(reply, success, n_success, r)
                       : txn_decode(reply, failure, n_failure, r);
    json_decref(reply);
    if (rc) {
        etcd_txn_result_free(r);
        return etcd__bad_reply(h, "txn", rc);
    }
    *out = r;
    return 0;
}
