/*
 * ec2_xml.c - an expat reader for EC2 responses that knows only the few paths
 * it needs and ignores the rest.
 *
 * Elements are matched by their position relative to the current instance
 * item (an <item> whose parent is <instancesSet>), not by name alone: an
 * instance also contains networkInterfaceSet/item/privateIpAddress,
 * groupSet/item and blockDeviceMapping/item, which must not be mistaken for
 * its own fields. Character data is collected only while inside a field of
 * interest, into a buffer capped at 16 KB (longer text is truncated, except
 * nextToken, whose truncation would silently lose pages: that is an error).
 */
#include "provider/ec2_xml.h"

#include <expat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/banned.h"

#define MAX_DEPTH     48
#define NAME_MAX_LEN  48
#define TEXT_CAP      16384
#define MAX_INSTANCES 100000

enum field {
    F_NONE = 0,
    F_ERR_CODE,
    F_ERR_MESSAGE,
    F_REQUEST_ID,
    F_NEXT_TOKEN,
    F_RETURN,
    F_ID,
    F_STATE_CODE,
    F_STATE_NAME,
    F_PRIVATE_IP,
    F_PUBLIC_IP,
    F_ZONE,
    F_SUBNET,
    F_CLIENT_TOKEN,
    F_LAUNCH_TIME,
    F_TAG_KEY,
    F_TAG_VALUE,
};

struct pstate {
    XML_Parser xp;
    struct ec2_response *out;
    int depth; /* 1 = root */
    char names[MAX_DEPTH][NAME_MAX_LEN];
    int inst_depth;  /* depth of the current instance item, 0 if none */
    int errors_seen; /* Error elements seen; only the first counts */
    enum field field;
    int field_depth;
    char text[TEXT_CAP];
    size_t ntext;
    int truncated;
    char tag_key[128];
    char tag_value[128];
    char err[256];
};

static const char *name_at(const struct pstate *s, int depth)
{
    if (depth < 1 || depth > s->depth || depth > MAX_DEPTH)
        return "";
    return s->names[depth - 1];
}

static int is(const struct pstate *s, int depth, const char *name)
{
    return strcmp(name_at(s, depth), name) == 0;
}

static void stop(struct pstate *s, const char *why)
{
    if (s->err[0] == '\0')
        snprintf(s->err, sizeof(s->err), "%s", why);
    XML_StopParser(s->xp, XML_FALSE);
}

/* Copies src into dst[cap], truncating (snprintf would warn on every call site). */
static void copy_text(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* Which field, if any, starts at the element just pushed at s->depth. */
static enum field field_for(struct pstate *s)
{
    int d = s->depth;
    const char *n = name_at(s, d);
    if (s->out->is_error) {
        if (d == 2 && strcmp(n, "RequestID") == 0)
            return F_REQUEST_ID;
        if (d == 4 && is(s, 2, "Errors") && is(s, 3, "Error") && s->errors_seen == 1) {
            if (strcmp(n, "Code") == 0)
                return F_ERR_CODE;
            if (strcmp(n, "Message") == 0)
                return F_ERR_MESSAGE;
        }
        return F_NONE;
    }
    if (d == 2) {
        if (strcmp(n, "requestId") == 0)
            return F_REQUEST_ID;
        if (strcmp(n, "nextToken") == 0)
            return F_NEXT_TOKEN;
        if (strcmp(n, "return") == 0)
            return F_RETURN;
        return F_NONE;
    }
    if (s->inst_depth == 0)
        return F_NONE;
    int rel = d - s->inst_depth;
    if (rel == 1) {
        static const struct {
            const char *name;
            enum field f;
        } direct[] = {
            {"instanceId", F_ID},
            {"privateIpAddress", F_PRIVATE_IP},
            {"ipAddress", F_PUBLIC_IP},
            {"subnetId", F_SUBNET},
            {"clientToken", F_CLIENT_TOKEN},
            {"launchTime", F_LAUNCH_TIME},
        };
        for (size_t i = 0; i < sizeof(direct) / sizeof(direct[0]); i++)
            if (strcmp(n, direct[i].name) == 0)
                return direct[i].f;
        return F_NONE;
    }
    if (rel == 2) {
        const char *parent = name_at(s, d - 1);
        if (strcmp(parent, "instanceState") == 0 || strcmp(parent, "currentState") == 0) {
            if (strcmp(n, "code") == 0)
                return F_STATE_CODE;
            if (strcmp(n, "name") == 0)
                return F_STATE_NAME;
        }
        if (strcmp(parent, "placement") == 0 && strcmp(n, "availabilityZone") == 0)
            return F_ZONE;
        return F_NONE;
    }
    if (rel == 3 && is(s, d - 2, "tagSet") && is(s, d - 1, "item")) {
        if (strcmp(n, "key") == 0)
            return F_TAG_KEY;
        if (strcmp(n, "value") == 0)
            return F_TAG_VALUE;
    }
    return F_NONE;
}

static void XMLCALL on_start(void *ud, const XML_Char *name, const XML_Char **attrs)
{
    (void)attrs;
    struct pstate *s = ud;
    s->depth++;
    /* drop a namespace prefix, if any */
    const char *colon = strrchr(name, ':');
    const char *local = colon ? colon + 1 : name;
    if (s->depth <= MAX_DEPTH)
        copy_text(s->names[s->depth - 1], NAME_MAX_LEN, local);
    if (s->depth == 1) {
        copy_text(s->out->root, sizeof(s->out->root), local);
        s->out->is_error = strcmp(local, "Response") == 0;
        return;
    }
    if (s->depth > MAX_DEPTH)
        return;
    if (s->out->is_error && s->depth == 3 && is(s, 2, "Errors") && strcmp(local, "Error") == 0)
        s->errors_seen++;
    if (!s->out->is_error && s->inst_depth == 0 && strcmp(local, "item") == 0 &&
        is(s, s->depth - 1, "instancesSet")) {
        struct ec2_response *o = s->out;
        if (o->n_instances == MAX_INSTANCES) {
            stop(s, "too many instances in one response");
            return;
        }
        if (o->n_instances == o->cap_instances) {
            size_t cap = o->cap_instances ? o->cap_instances * 2 : 16;
            struct ec2_instance *p = realloc(o->instances, cap * sizeof(*p));
            if (p == NULL) {
                stop(s, "out of memory");
                return;
            }
            o->instances = p;
            o->cap_instances = cap;
        }
        memset(&o->instances[o->n_instances], 0, sizeof(o->instances[0]));
        o->instances[o->n_instances].state_code = -1;
        o->n_instances++;
        s->inst_depth = s->depth;
        return;
    }
    if (s->inst_depth && s->depth == s->inst_depth + 2 && is(s, s->depth - 1, "tagSet") &&
        strcmp(local, "item") == 0) {
        s->tag_key[0] = s->tag_value[0] = '\0';
    }
    if (s->field == F_NONE) {
        enum field f = field_for(s);
        if (f != F_NONE) {
            s->field = f;
            s->field_depth = s->depth;
            s->ntext = 0;
            s->truncated = 0;
            s->text[0] = '\0';
        }
    }
}

static void XMLCALL on_text(void *ud, const XML_Char *t, int len)
{
    struct pstate *s = ud;
    if (s->field == F_NONE || len <= 0)
        return;
    size_t n = (size_t)len;
    if (s->ntext + n >= TEXT_CAP) {
        s->truncated = 1;
        n = TEXT_CAP - 1 - s->ntext;
    }
    memcpy(s->text + s->ntext, t, n);
    s->ntext += n;
    s->text[s->ntext] = '\0';
}

/* Stores the text t of one of an instance's own fields f. */
static void finish_instance_field(enum field f, struct ec2_instance *in, const char *t)
{
    switch (f) {
    case F_ID:
        copy_text(in->id, sizeof(in->id), t);
        break;
    case F_STATE_CODE: {
        char *end;
        long v = strtol(t, &end, 10);
        if (end != t && *end == '\0' && v >= 0)
            in->state_code = (int)(v & 0xff);
        break;
    }
    case F_STATE_NAME:
        copy_text(in->state_name, sizeof(in->state_name), t);
        break;
    case F_PRIVATE_IP:
        copy_text(in->private_ip, sizeof(in->private_ip), t);
        break;
    case F_PUBLIC_IP:
        copy_text(in->public_ip, sizeof(in->public_ip), t);
        break;
    case F_ZONE:
        copy_text(in->zone, sizeof(in->zone), t);
        break;
    case F_SUBNET:
        copy_text(in->subnet_id, sizeof(in->subnet_id), t);
        break;
    case F_CLIENT_TOKEN:
        copy_text(in->client_token, sizeof(in->client_token), t);
        break;
    case F_LAUNCH_TIME: {
        int64_t ms = ec2_parse_time(t);
        in->launch_time_ms = ms > 0 ? ms : 0;
        break;
    }
    default:
        break;
    }
}

static void finish_field(struct pstate *s)
{
    struct ec2_response *o = s->out;
    const char *t = s->text;
    switch (s->field) {
    case F_ERR_CODE:
        copy_text(o->code, sizeof(o->code), t);
        break;
    case F_ERR_MESSAGE:
        copy_text(o->message, sizeof(o->message), t);
        break;
    case F_REQUEST_ID:
        copy_text(o->request_id, sizeof(o->request_id), t);
        break;
    case F_NEXT_TOKEN:
        if (s->truncated) {
            stop(s, "nextToken longer than 16 KB");
            break;
        }
        free(o->next_token);
        o->next_token = NULL;
        if (s->ntext > 0) {
            o->next_token = strdup(t);
            if (o->next_token == NULL)
                stop(s, "out of memory");
        }
        break;
    case F_RETURN:
        o->return_value = strcmp(t, "true") == 0;
        break;
    case F_ID:
    case F_STATE_CODE:
    case F_STATE_NAME:
    case F_PRIVATE_IP:
    case F_PUBLIC_IP:
    case F_ZONE:
    case F_SUBNET:
    case F_CLIENT_TOKEN:
    case F_LAUNCH_TIME:
        /* field_for opens these only inside an instance item on_start has counted */
        if (s->inst_depth && o->n_instances > 0)
            finish_instance_field(s->field, &o->instances[o->n_instances - 1], t);
        break;
    case F_TAG_KEY:
        copy_text(s->tag_key, sizeof(s->tag_key), t);
        break;
    case F_TAG_VALUE:
        copy_text(s->tag_value, sizeof(s->tag_value), t);
        break;
    case F_NONE:
        break;
    }
}

static void XMLCALL on_end(void *ud, const XML_Char *name)
{
    (void)name;
    struct pstate *s = ud;
    if (s->field != F_NONE && s->depth == s->field_depth) {
        finish_field(s);
        s->field = F_NONE;
    }
    if (s->inst_depth && s->depth == s->inst_depth + 2 && is(s, s->depth, "item") &&
        is(s, s->depth - 1, "tagSet")) {
        if (strcmp(s->tag_key, "asg:group") == 0 && s->out->n_instances > 0)
            copy_text(s->out->instances[s->out->n_instances - 1].group,
                      sizeof(s->out->instances[0].group), s->tag_value);
    }
    if (s->inst_depth && s->depth == s->inst_depth)
        s->inst_depth = 0;
    s->depth--;
}

static void XMLCALL on_doctype(void *ud, const XML_Char *name, const XML_Char *sysid,
                               const XML_Char *pubid, int has_internal)
{
    (void)name, (void)sysid, (void)pubid, (void)has_internal;
    stop(ud, "DOCTYPE not allowed");
}

static void XMLCALL on_entity(void *ud, const XML_Char *name, int is_param, const XML_Char *value,
                              int value_len, const XML_Char *base, const XML_Char *sysid,
                              const XML_Char *pubid, const XML_Char *notation)
{
    (void)name, (void)is_param, (void)value, (void)value_len, (void)base, (void)sysid, (void)pubid,
        (void)notation;
    stop(ud, "entity declarations not allowed");
}

int ec2_xml_parse(const char *xml, size_t len, struct ec2_response *out, char *err, size_t errlen)
{
    int rc = -1;
    struct pstate *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    s->out = out;
    s->xp = XML_ParserCreate("UTF-8");
    if (s->xp == NULL) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    XML_SetUserData(s->xp, s);
    XML_SetElementHandler(s->xp, on_start, on_end);
    XML_SetCharacterDataHandler(s->xp, on_text);
    XML_SetStartDoctypeDeclHandler(s->xp, on_doctype);
    XML_SetEntityDeclHandler(s->xp, on_entity);
    if (len > (size_t)INT32_MAX) {
        snprintf(err, errlen, "response too large");
        goto out;
    }
    enum XML_Status st = XML_Parse(s->xp, xml ? xml : "", (int)len, XML_TRUE);
    if (s->err[0] != '\0') {
        snprintf(err, errlen, "bad EC2 response: %s", s->err);
        goto out;
    }
    if (st != XML_STATUS_OK) {
        snprintf(err, errlen, "malformed EC2 response at line %lu: %s",
                 (unsigned long)XML_GetCurrentLineNumber(s->xp),
                 XML_ErrorString(XML_GetErrorCode(s->xp)));
        goto out;
    }
    if (out->is_error && out->code[0] == '\0')
        copy_text(out->code, sizeof(out->code), "UnknownError");
    rc = 0;
    if (errlen > 0)
        err[0] = '\0';
out:
    if (s->xp != NULL)
        XML_ParserFree(s->xp);
    free(s);
    return rc;
}

void ec2_response_release(struct ec2_response *r)
{
    if (r == NULL)
        return;
    free(r->instances);
    free(r->next_token);
    *r = (struct ec2_response)EC2_RESPONSE_INIT;
}

enum prov_state ec2_state_to_prov(int code)
{
    switch (code) {
    case EC2_PENDING:
        return PROV_PENDING;
    case EC2_RUNNING:
        return PROV_RUNNING;
    case EC2_SHUTTING_DOWN:
    case EC2_STOPPING:
    case EC2_STOPPED:
        /* stopped: on its way out too. As PROV_GONE the controller would forget it and
           leave it stopped (still paying for its volumes); as stopping it terminates it */
        return PROV_STOPPING;
    case EC2_TERMINATED:
        return PROV_GONE;
    default:
        return PROV_PENDING;
    }
}

int64_t ec2_parse_time(const char *iso)
{
    if (iso == NULL)
        return -1;
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    const char *p = strptime(iso, "%Y-%m-%dT%H:%M:%S", &tm);
    if (p == NULL)
        return -1;
    int64_t ms = 0;
    if (*p == '.') {
        int scale = 100;
        p++;
        if (*p < '0' || *p > '9')
            return -1;
        while (*p >= '0' && *p <= '9') {
            ms += (*p - '0') * scale;
            scale /= 10;
            p++;
        }
    }
    if (*p == 'Z')
        p++;
    if (*p != '\0')
        return -1;
    time_t t = timegm(&tm);
    if (t == (time_t)-1)
        return -1;
    return (int64_t)t * 1000 + ms;
}
