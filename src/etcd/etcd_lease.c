/*
 * etcd_lease.c - leases (see etcd.h): grant, keepalive, revoke, timetolive.
 *
 * Separate because the lease endpoints answer in shapes of their own: a
 * grant carries its error in an "error" string, a keepalive is a stream
 * message wrapped in {"result"} or {"error"}, and an unknown lease is TTL 0
 * or -1 rather than an error. Cluster mode's fencing rests on reading these
 * right (ETCD_ELEASE never hidden as success).
 */
#include "etcd/etcd_int.h"

#include <inttypes.h>
#include <string.h>

#include "common/banned.h"

/* ---- leases ------------------------------------------------------------- */

static int lease_call(struct etcd *h, const char *what, const char *path, const char *idname,
                      int64_t id, json_t **reply)
{
    json_t *req = json_object();
    int rc = req ? etcd__j_set(req, idname, etcd__j_i64str(id)) : ETCD_ENOMEM;
    if (rc) {
        json_decref(req);
        etcd__set_err(h, "etcd %s: out of memory", what);
        return rc;
    }
    return etcd__call(h, what, path, req, reply);
}

/* A LeaseGrantResponse carries errors in its own "error" string. */
int etcd_lease_grant(struct etcd *h, int64_t ttl_s, int64_t *id, int64_t *granted_ttl)
{
    if (!h || !id || ttl_s < 1) {
        if (h)
            etcd__set_err(h, "etcd lease grant: TTL must be >= 1 s");
        return ETCD_EINVAL;
    }
    json_t *reply = NULL;
    int rc = lease_call(h, "lease grant", "/v3/lease/grant", "TTL", ttl_s, &reply);
    if (rc)
        return rc;
    int64_t lid = 0, ttl = 0;
    json_t *e = json_object_get(reply, "error");
    if (e && json_is_string(e) && json_string_length(e) > 0) {
        etcd__set_err(h, "etcd lease grant at %s: %s", etcd_endpoint(h), json_string_value(e));
        json_decref(reply);
        return ETCD_EINVAL;
    }
    rc = etcd__need_header(reply);
    if (!rc)
        rc = etcd__j_int64(reply, "ID", &lid);
    if (!rc)
        rc = etcd__j_int64(reply, "TTL", &ttl);
    json_decref(reply);
    if (!rc && (lid == 0 || ttl < 1))
        rc = ETCD_EPROTO;
    if (rc)
        return etcd__bad_reply(h, "lease grant", rc);
    *id = lid;
    if (granted_ttl)
        *granted_ttl = ttl;
    return 0;
}

int etcd_lease_keepalive(struct etcd *h, int64_t id, int64_t *ttl)
{
    if (!h)
        return ETCD_EINVAL;
    json_t *reply = NULL;
    int rc = lease_call(h, "lease keepalive", "/v3/lease/keepalive", "ID", id, &reply);
    if (rc)
        return rc;
    /* The gateway wraps stream messages: {"result": {...}} or {"error": {...}}. */
    json_t *res = json_object_get(reply, "result");
    int64_t t = 0;
    if (!res || !json_is_object(res)) {
        json_t *e = json_object_get(reply, "error");
        if (e && json_is_object(e)) {
            json_t *m = json_object_get(e, "message");
            int lease = m && json_is_string(m) && strstr(json_string_value(m), "lease not found");
            etcd__set_err(h, "etcd lease keepalive at %s: %s", etcd_endpoint(h),
                          m && json_is_string(m) ? json_string_value(m) : "error");
            json_decref(reply);
            return lease ? ETCD_ELEASE : ETCD_EUNAVAIL;
        }
        json_decref(reply);
        return etcd__bad_reply(h, "lease keepalive", ETCD_EPROTO);
    }
    rc = etcd__need_header(res);
    if (!rc)
        rc = etcd__j_int64(res, "TTL", &t);
    json_decref(reply);
    if (rc)
        return etcd__bad_reply(h, "lease keepalive", rc);
    if (t <= 0) {
        /* etcd answers an unknown or expired lease with TTL 0 (omitted). */
        etcd__set_err(h, "etcd lease keepalive at %s: lease %" PRId64 " expired or unknown",
                      etcd_endpoint(h), id);
        return ETCD_ELEASE;
    }
    if (ttl)
        *ttl = t;
    return 0;
}

int etcd_lease_revoke(struct etcd *h, int64_t id)
{
    if (!h)
        return ETCD_EINVAL;
    json_t *reply = NULL;
    int rc = lease_call(h, "lease revoke", "/v3/lease/revoke", "ID", id, &reply);
    if (rc)
        return rc;
    json_decref(reply);
    return 0;
}

int etcd_lease_timetolive(struct etcd *h, int64_t id, int64_t *ttl, int64_t *granted_ttl)
{
    if (!h)
        return ETCD_EINVAL;
    json_t *reply = NULL;
    int rc = lease_call(h, "lease timetolive", "/v3/lease/timetolive", "ID", id, &reply);
    if (rc)
        return rc;
    int64_t t = 0, g = 0;
    rc = etcd__need_header(reply);
    if (!rc)
        rc = etcd__j_int64(reply, "TTL", &t);
    if (!rc)
        rc = etcd__j_int64(reply, "grantedTTL", &g);
    json_decref(reply);
    if (rc)
        return etcd__bad_reply(h, "lease timetolive", rc);
    if (t < 0) {
        /* etcd answers TTL -1 for an unknown or expired lease. */
        etcd__set_err(h, "etcd lease timetolive at %s: lease %" PRId64 " expired or unknown",
                      etcd_endpoint(h), id);
        return ETCD_ELEASE;
    }
    if (ttl)
        *ttl = t;
    if (granted_ttl)
        *granted_ttl = g;
    return 0;
}
