/*
 * refresh.c - an instance refresh's state: text form, API view (see
 * refresh.h). The text is "key=value" words separated by spaces, the reason
 * last (it may hold spaces): compact enough for the settings' fixed field.
 */
#include "controller/refresh.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/util.h"

#include "common/banned.h"

static const char *const names[] = {
    "",          "pending", "in_progress",          "paused_at_checkpoint", "successful",
    "cancelled", "failed",  "rollback_in_progress", "rolled_back",
};

const char *refresh_status_name(int status)
{
    return status >= 0 && status < (int)(sizeof(names) / sizeof(names[0])) ? names[status] : "";
}

int refresh_active(int status)
{
    return status == REFRESH_PENDING || status == REFRESH_IN_PROGRESS || status == REFRESH_PAUSED ||
           status == REFRESH_ROLLBACK_IN_PROGRESS;
}

int refresh_percent(const struct refresh *r)
{
    if (r->total <= 0)
        return r->status == REFRESH_PENDING ? 0 : 100;
    int done = r->total - r->left;
    return done <= 0 ? 0 : done >= r->total ? 100 : done * 100 / r->total;
}

static int parse_lc(const char *v, char *out)
{
    size_t n = strlen(v);
    if (n >= REFRESH_LC_MAX)
        return -1;
    memcpy(out, v, n + 1);
    return 0;
}

int refresh_parse(const char *text, struct refresh *r)
{
    memset(r, 0, sizeof(*r));
    const char *p = text;
    while (*p == ' ')
        p++;
    while (*p) {
        if (strncmp(p, "why=", 4) == 0) {
            snprintf(r->reason, sizeof(r->reason), "%s", p + 4);
            break;
        }
        const char *end = strchr(p, ' ');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        char w[128];
        if (n >= sizeof(w))
            return -1;
        memcpy(w, p, n);
        w[n] = '\0';
        char *eq = strchr(w, '=');
        if (eq == NULL)
            return -1;
        *eq = '\0';
        const char *k = w, *v = eq + 1;
        char *e = NULL;
        if (strcmp(k, "st") == 0) {
            r->status = -1;
            for (int i = 1; i < (int)(sizeof(names) / sizeof(names[0])); i++)
                if (strcmp(v, names[i]) == 0)
                    r->status = i;
            if (r->status < 0)
                return -1;
        } else if (strcmp(k, "cp") == 0) {
            for (const char *q = v; *q;) {
                long x = strtol(q, &e, 10);
                if (e == q || r->n_checkpoints == REFRESH_MAX_CHECKPOINTS || x < 1 || x > 100)
                    return -1;
                r->checkpoints[r->n_checkpoints++] = (int)x;
                q = *e == ',' ? e + 1 : e;
                if (*e != ',' && *e != '\0')
                    return -1;
            }
        } else if (strcmp(k, "to") == 0 || strcmp(k, "from") == 0) {
            if (parse_lc(v, strcmp(k, "to") == 0 ? r->target : r->from) != 0)
                return -1;
        } else {
            long long x = strtoll(v, &e, 10);
            if (e == v || *e != '\0')
                return -1;
            if (strcmp(k, "min") == 0)
                r->min_healthy = (int)x;
            else if (strcmp(k, "warm") == 0)
                r->warmup_ms = x;
            else if (strcmp(k, "next") == 0)
                r->next_checkpoint = (int)x;
            else if (strcmp(k, "total") == 0)
                r->total = (int)x;
            else if (strcmp(k, "rb") == 0)
                r->rb_counted = x != 0;
            else if (strcmp(k, "left") == 0)
                r->left = (int)x;
            else if (strcmp(k, "start") == 0)
                r->started_ms = x;
            else if (strcmp(k, "upd") == 0)
                r->updated_ms = x;
            /* an unknown key is skipped: a newer asgd may have written it */
        }
        p += n;
        while (*p == ' ')
            p++;
    }
    if (r->min_healthy < 0 || r->min_healthy > 100 || r->next_checkpoint < 0 ||
        r->next_checkpoint > r->n_checkpoints)
        return -1;
    return 0;
}

int refresh_format(const struct refresh *r, char *buf, size_t len)
{
    if (r->status == REFRESH_NONE) {
        if (len == 0)
            return -1;
        buf[0] = '\0';
        return 0;
    }
    char cp[REFRESH_MAX_CHECKPOINTS * 4 + 1] = "";
    size_t u = 0;
    for (int i = 0; i < r->n_checkpoints; i++)
        u += (size_t)snprintf(cp + u, sizeof(cp) - u, "%s%d", i ? "," : "", r->checkpoints[i]);
    int n =
        snprintf(buf, len,
                 "st=%s min=%d warm=%" PRId64 "%s%s next=%d total=%d left=%d rb=%d start=%" PRId64
                 " upd=%" PRId64 "%s%s%s%s%s%s",
                 refresh_status_name(r->status), r->min_healthy, r->warmup_ms,
                 r->n_checkpoints ? " cp=" : "", cp, r->next_checkpoint, r->total, r->left,
                 r->rb_counted, r->started_ms, r->updated_ms, r->target[0] ? " to=" : "", r->target,
                 r->from[0] ? " from=" : "", r->from, r->reason[0] ? " why=" : "", r->reason);
    return n < 0 || (size_t)n >= len ? -1 : 0;
}

int refresh_from_request(const json_t *body, int64_t now, struct refresh *r, char *err,
                         size_t errlen)
{
    memset(r, 0, sizeof(*r));
    r->status = REFRESH_PENDING;
    r->min_healthy = 90;
    r->started_ms = r->updated_ms = now;
    if (body == NULL)
        return 0;
    if (!json_is_object(body)) {
        util_set_err(err, errlen, "the body must be a JSON object");
        return -1;
    }
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)body, k, v)
    {
        if (strcmp(k, "min_healthy_percentage") == 0) {
            if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 100) {
                util_set_err(err, errlen, "min_healthy_percentage: an integer 0..100");
                return -1;
            }
            r->min_healthy = (int)json_integer_value(v);
        } else if (strcmp(k, "instance_warmup") == 0) {
            int64_t ms = -1;
            if (json_is_integer(v))
                ms = json_integer_value(v) * 1000; /* seconds, as AWS's InstanceWarmup */
            else if (!json_is_string(v) || clk_parse_duration(json_string_value(v), &ms) != 0)
                ms = -1;
            if (ms < 0 || ms > 24 * 3600 * 1000LL) {
                util_set_err(err, errlen,
                             "instance_warmup: a duration (\"60s\", \"5m\") or seconds, 0..24h");
                return -1;
            }
            r->warmup_ms = ms;
        } else if (strcmp(k, "checkpoints") == 0) {
            size_t i;
            json_t *e;
            if (!json_is_array(v) || json_array_size(v) > REFRESH_MAX_CHECKPOINTS) {
                util_set_err(err, errlen, "checkpoints: an array of at most %d percentages",
                             REFRESH_MAX_CHECKPOINTS);
                return -1;
            }
            json_array_foreach(v, i, e)
            {
                json_int_t x = json_is_integer(e) ? json_integer_value(e) : -1;
                if (x < 1 || x > 100 || (i > 0 && x <= r->checkpoints[r->n_checkpoints - 1])) {
                    util_set_err(err, errlen,
                                 "checkpoints: ascending integer percentages in 1..100");
                    return -1;
                }
                r->checkpoints[r->n_checkpoints++] = (int)x;
            }
        } else {
            util_set_err(err, errlen,
                         "unknown key \"%.64s\" (accepted: min_healthy_percentage, "
                         "instance_warmup, checkpoints)",
                         k);
            return -1;
        }
    }
    return 0;
}

json_t *refresh_to_json(const struct refresh *r)
{
    json_t *cp = json_array();
    for (int i = 0; cp && i < r->n_checkpoints; i++)
        json_array_append_new(cp, json_integer(r->checkpoints[i]));
    char warm[32];
    clk_format_duration(r->warmup_ms, warm, sizeof(warm));
    return json_pack(
        "{s:s, s:i, s:i, s:s, s:o, s:i, s:i, s:i, s:I, s:I, s:s, s:s, s:s}", "status",
        r->status ? refresh_status_name(r->status) : "none", "percentage_complete",
        refresh_percent(r), "min_healthy_percentage", r->min_healthy, "instance_warmup", warm,
        "checkpoints", cp ? cp : json_array(), "next_checkpoint",
        r->next_checkpoint < r->n_checkpoints ? r->checkpoints[r->next_checkpoint] : 0,
        "instances_to_replace", r->total, "instances_left", r->left, "started_at_ms",
        (json_int_t)r->started_ms, "updated_at_ms", (json_int_t)r->updated_ms, "launch_config",
        r->target, "previous_launch_config", r->from, "reason", r->reason);
}
