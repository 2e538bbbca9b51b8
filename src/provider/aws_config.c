/*
 * aws_config.c - the AWS credential chain, region and endpoint resolution.
 *
 * Files are parsed with a small INI reader of our own, because AWS's shared
 * files are configparser files: "[profile x]" headers, "key = value", '#' and
 * ';' comment lines, and indented lines that continue a nested block (those
 * are skipped). IMDSv2 is reached with libcurl and one-second timeouts, so a
 * machine outside EC2 loses at most a second per lookup (only when nothing
 * else supplied credentials).
 */
#include "provider/aws_config.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/clock.h"
#include "common/log.h"
#include "provider/ec2_xml.h"

#include "common/banned.h"

#define IMDS_DEFAULT    "http://169.254.169.254"
#define IMDS_REFRESH_MS (15 * 60 * 1000)
#define IMDS_MAX_BODY   65536
#define SHARED_LINE_MAX 8192

static void wipe_free(char *s)
{
    if (s != NULL) {
        volatile char *p = s;
        while (*p)
            *p++ = '\0';
        free(s);
    }
}

void aws_credentials_release(struct aws_credentials *c)
{
    if (c == NULL)
        return;
    free(c->access_key_id);
    wipe_free(c->secret_access_key);
    wipe_free(c->session_token);
    *c = (struct aws_credentials)AWS_CREDENTIALS_INIT;
}

static int credentials_copy(struct aws_credentials *dst, const struct aws_credentials *src)
{
    *dst = (struct aws_credentials)AWS_CREDENTIALS_INIT;
    dst->access_key_id = strdup(src->access_key_id);
    dst->secret_access_key = strdup(src->secret_access_key);
    dst->session_token = src->session_token ? strdup(src->session_token) : NULL;
    dst->expires_ms = src->expires_ms;
    dst->source = src->source;
    if (dst->access_key_id == NULL || dst->secret_access_key == NULL ||
        (src->session_token && dst->session_token == NULL)) {
        aws_credentials_release(dst);
        return -1;
    }
    return 0;
}

static const char *env_nonempty(const char *name)
{
    const char *v = getenv(name);
    return (v != NULL && v[0] != '\0') ? v : NULL;
}

const char *aws_profile_name(const char *override)
{
    if (override != NULL && override[0] != '\0')
        return override;
    const char *p = env_nonempty("AWS_PROFILE");
    return p ? p : "default";
}

static char *home_path(const char *rel)
{
    const char *home = env_nonempty("HOME");
    if (home == NULL)
        return NULL;
    size_t n = strlen(home) + strlen(rel) + 2;
    char *p = malloc(n);
    if (p != NULL)
        snprintf(p, n, "%s/%s", home, rel);
    return p;
}

char *aws_credentials_file_path(void)
{
    const char *p = env_nonempty("AWS_SHARED_CREDENTIALS_FILE");
    return p ? strdup(p) : home_path(".aws/credentials");
}

char *aws_config_file_path(void)
{
    const char *p = env_nonempty("AWS_CONFIG_FILE");
    return p ? strdup(p) : home_path(".aws/config");
}

static char *trim(char *s)
{
    while (*s && isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

/* Whether the section header text (between the brackets, trimmed) names profile. */
static int section_matches(const char *hdr, int config, const char *profile)
{
    if (!config)
        return strcmp(hdr, profile) == 0;
    if (strcmp(profile, "default") == 0 && strcmp(hdr, "default") == 0)
        return 1;
    if (strncmp(hdr, "profile", 7) != 0 || !isspace((unsigned char)hdr[7]))
        return 0;
    const char *name = hdr + 7;
    while (isspace((unsigned char)*name))
        name++;
    return strcmp(name, profile) == 0;
}

int aws_shared_file_get(const char *path, int config, const char *profile, const char *key,
                        char **out)
{
    *out = NULL;
    if (path == NULL)
        return 0;
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    int rc = 0, in_section = 0;
    char *line = malloc(SHARED_LINE_MAX);
    if (line == NULL) {
        fclose(f);
        return -1;
    }
    while (fgets(line, SHARED_LINE_MAX, f) != NULL) {
        if (strchr(line, '\n') == NULL && !feof(f)) {
            /* an over-long line: skip the rest of it */
            int ch;
            while ((ch = fgetc(f)) != EOF && ch != '\n')
                ;
            continue;
        }
        if (line[0] == ' ' || line[0] == '\t')
            continue; /* nested block of the previous key */
        char *s = trim(line);
        if (*s == '\0' || *s == '#' || *s == ';')
            continue;
        if (*s == '[') {
            char *end = strchr(s, ']');
            if (end == NULL) {
                in_section = 0;
                continue;
            }
            *end = '\0';
            in_section = section_matches(trim(s + 1), config, profile);
            continue;
        }
        if (!in_section)
            continue;
        char *eq = strchr(s, '=');
        if (eq == NULL)
            continue;
        *eq = '\0';
        if (strcmp(trim(s), key) != 0)
            continue;
        char *v = trim(eq + 1);
        free(*out);
        *out = strdup(v);
        if (*out == NULL) {
            rc = -1;
            break;
        }
        rc = 1;
    }
    /* the line may have held a secret */
    memset(line, 0, SHARED_LINE_MAX);
    free(line);
    fclose(f);
    return rc;
}

/* ---- IMDSv2 ------------------------------------------------------------------ */

struct membuf {
    char *p;
    size_t n, cap, max;
};

static size_t membuf_write(char *data, size_t size, size_t nmemb, void *ud)
{
    struct membuf *b = ud;
    size_t len = size * nmemb;
    if (b->n + len + 1 > b->max)
        return 0; /* curl reports a write error */
    if (b->n + len + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->n + len + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (p == NULL)
            return 0;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, data, len);
    b->n += len;
    b->p[b->n] = '\0';
    return len;
}

/* One IMDS request. Returns the HTTP status (body in *b), or -1 on a transport error. */
static long imds_request(const char *method, const char *url, const char *header, long timeout_ms,
                         struct membuf *b, char *err, size_t errlen)
{
    CURL *h = curl_easy_init();
    if (h == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    struct curl_slist *hl = NULL;
    if (header != NULL)
        hl = curl_slist_append(hl, header);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    if (strcmp(method, "PUT") == 0) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, 0L);
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, membuf_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, b);
    long status = -1;
    CURLcode cc = curl_easy_perform(h);
    if (cc != CURLE_OK)
        snprintf(err, errlen, "%s", curl_easy_strerror(cc));
    else
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    if (hl != NULL)
        curl_slist_free_all(hl);
    curl_easy_cleanup(h);
    return status;
}

static void membuf_reset(struct membuf *b)
{
    if (b->p != NULL)
        memset(b->p, 0, b->cap);
    b->n = 0;
}

static int imds_disabled(void)
{
    const char *v = getenv("AWS_EC2_METADATA_DISABLED");
    return v != NULL && strcasecmp(v, "true") == 0;
}

static long imds_timeout_ms(void)
{
    const char *v = env_nonempty("AWS_METADATA_SERVICE_TIMEOUT");
    if (v != NULL) {
        char *end;
        errno = 0;
        long s = strtol(v, &end, 10);
        if (errno == 0 && *end == '\0' && s > 0 && s <= 60)
            return s * 1000;
    }
    return 1000;
}

/* Fetches the role's credentials from IMDSv2 into *out. Returns 0 or -1 with err. */
static int imds_fetch(struct aws_credentials *out, char *err, size_t errlen)
{
    int rc = -1;
    struct membuf b = {.max = IMDS_MAX_BODY};
    char *token = NULL;
    char url[1024], hdr[1024], why[256] = "";
    const char *base = env_nonempty("AWS_EC2_METADATA_SERVICE_ENDPOINT");
    if (base == NULL)
        base = IMDS_DEFAULT;
    size_t blen = strlen(base);
    while (blen > 0 && base[blen - 1] == '/')
        blen--;
    long tmo = imds_timeout_ms();
    json_t *doc = NULL;

    snprintf(url, sizeof(url), "%.*s/latest/api/token", (int)blen, base);
    long st = imds_request("PUT", url, "X-aws-ec2-metadata-token-ttl-seconds: 21600", tmo, &b, why,
                           sizeof(why));
    if (st != 200 || b.n == 0) {
        snprintf(err, errlen, "instance metadata: token request failed (%.160s)",
                 st < 0 ? why : "unexpected HTTP status");
        goto out;
    }
    token = strdup(trim(b.p));
    if (token == NULL || strlen(token) > 512) {
        snprintf(err, errlen, "instance metadata: bad token");
        goto out;
    }
    snprintf(hdr, sizeof(hdr), "X-aws-ec2-metadata-token: %s", token);
    membuf_reset(&b);
    snprintf(url, sizeof(url), "%.*s/latest/meta-data/iam/security-credentials/", (int)blen, base);
    st = imds_request("GET", url, hdr, tmo, &b, why, sizeof(why));
    if (st == 404) {
        snprintf(err, errlen, "instance metadata: no instance role attached");
        goto out;
    }
    if (st != 200 || b.n == 0) {
        snprintf(err, errlen, "instance metadata: role lookup failed (%.160s)",
                 st < 0 ? why : "unexpected HTTP status");
        goto out;
    }
    char role[256];
    char *r = trim(b.p);
    char *nl = strchr(r, '\n');
    if (nl != NULL)
        *nl = '\0';
    if (strlen(r) == 0 || strlen(r) >= sizeof(role) || strchr(r, '/') != NULL) {
        snprintf(err, errlen, "instance metadata: bad role name");
        goto out;
    }
    snprintf(role, sizeof(role), "%s", r);
    membuf_reset(&b);
    snprintf(url, sizeof(url), "%.*s/latest/meta-data/iam/security-credentials/%s", (int)blen, base,
             role);
    st = imds_request("GET", url, hdr, tmo, &b, why, sizeof(why));
    if (st != 200 || b.n == 0) {
        snprintf(err, errlen, "instance metadata: credentials for role \"%.64s\" failed (%.160s)",
                 role, st < 0 ? why : "unexpected HTTP status");
        goto out;
    }
    json_error_t jerr;
    doc = json_loadb(b.p, b.n, 0, &jerr);
    const char *ak = doc ? json_string_value(json_object_get(doc, "AccessKeyId")) : NULL;
    const char *sk = doc ? json_string_value(json_object_get(doc, "SecretAccessKey")) : NULL;
    const char *tk = doc ? json_string_value(json_object_get(doc, "Token")) : NULL;
    const char *exp = doc ? json_string_value(json_object_get(doc, "Expiration")) : NULL;
    if (ak == NULL || sk == NULL || ak[0] == '\0' || sk[0] == '\0') {
        snprintf(err, errlen, "instance metadata: credentials for role \"%.64s\" are incomplete",
                 role);
        goto out;
    }
    struct aws_credentials c = {
        .access_key_id = (char *)ak,
        .secret_access_key = (char *)sk,
        .session_token = (char *)((tk && tk[0]) ? tk : NULL),
        .expires_ms = exp ? ec2_parse_time(exp) : 0,
        .source = "instance metadata",
    };
    if (c.expires_ms < 0)
        c.expires_ms = 0;
    if (credentials_copy(out, &c) != 0) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    rc = 0;
out:
    if (doc != NULL) {
        /* the JSON strings held secrets; jansson frees them, the raw body we wipe */
        json_decref(doc);
    }
    membuf_reset(&b);
    free(b.p);
    wipe_free(token);
    return rc;
}

/* ---- the chain ----------------------------------------------------------------- */

struct aws_chain {
    pthread_mutex_t mu;
    char *profile;               /* NULL: resolve from the environment on each call */
    struct aws_credentials imds; /* cached, empty if none */
    unsigned imds_fetches;
};

struct aws_chain *aws_chain_new(const char *profile)
{
    struct aws_chain *ch = calloc(1, sizeof(*ch));
    if (ch == NULL)
        return NULL;
    if (profile != NULL && profile[0] != '\0') {
        ch->profile = strdup(profile);
        if (ch->profile == NULL) {
            free(ch);
            return NULL;
        }
    }
    pthread_mutex_init(&ch->mu, NULL);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    return ch;
}

void aws_chain_free(struct aws_chain *ch)
{
    if (ch == NULL)
        return;
    aws_credentials_release(&ch->imds);
    pthread_mutex_destroy(&ch->mu);
    free(ch->profile);
    free(ch);
}

unsigned aws_chain_imds_fetches(const struct aws_chain *ch)
{
    return ch->imds_fetches;
}

/* Returns 1 found, 0 not found, -1 error (err set: e.g. a key without its secret). */
static int from_file(const char *path, int config, const char *profile, struct aws_credentials *out,
                     char *err, size_t errlen)
{
    char *ak = NULL, *sk = NULL, *tk = NULL;
    int rc = 0;
    int a = aws_shared_file_get(path, config, profile, "aws_access_key_id", &ak);
    int s = aws_shared_file_get(path, config, profile, "aws_secret_access_key", &sk);
    int t = aws_shared_file_get(path, config, profile, "aws_session_token", &tk);
    if (a < 0 || s < 0 || t < 0) {
        snprintf(err, errlen, "out of memory");
        rc = -1;
        goto out;
    }
    if (a == 1 && s == 1 && ak[0] && sk[0]) {
        out->access_key_id = ak;
        out->secret_access_key = sk;
        out->session_token = (t == 1 && tk[0]) ? tk : NULL;
        out->source = config ? "shared config file" : "shared credentials file";
        if (out->session_token == tk)
            tk = NULL;
        ak = sk = NULL;
        rc = 1;
    } else if (a == 1 || s == 1) {
        snprintf(err, errlen,
                 "%s: profile \"%s\" has only one of aws_access_key_id and "
                 "aws_secret_access_key",
                 path, profile);
        rc = -1;
    }
out:
    free(ak);
    wipe_free(sk);
    wipe_free(tk);
    return rc;
}

int aws_chain_get(struct aws_chain *ch, struct aws_credentials *out, char *err, size_t errlen)
{
    *out = (struct aws_credentials)AWS_CREDENTIALS_INIT;
    const char *ak = env_nonempty("AWS_ACCESS_KEY_ID");
    const char *sk = env_nonempty("AWS_SECRET_ACCESS_KEY");
    if (ak != NULL && sk != NULL) {
        struct aws_credentials c = {
            .access_key_id = (char *)ak,
            .secret_access_key = (char *)sk,
            .session_token = (char *)env_nonempty("AWS_SESSION_TOKEN"),
            .source = "environment",
        };
        if (credentials_copy(out, &c) != 0) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        return 0;
    }
    if (ak != NULL || sk != NULL) {
        snprintf(err, errlen,
                 "environment has only one of AWS_ACCESS_KEY_ID and "
                 "AWS_SECRET_ACCESS_KEY");
        return -1;
    }
    const char *profile = aws_profile_name(ch->profile);
    char *paths[2] = {aws_credentials_file_path(), aws_config_file_path()};
    int rc = -1;
    for (int i = 0; i < 2; i++) {
        int found = from_file(paths[i], i == 1, profile, out, err, errlen);
        if (found != 0) {
            rc = found == 1 ? 0 : -1;
            goto out;
        }
    }
    if (imds_disabled()) {
        snprintf(err, errlen,
                 "no AWS credentials found: not in the environment, no profile \"%s\" with keys "
                 "in %s or %s, and instance metadata is disabled",
                 profile, paths[0] ? paths[0] : "~/.aws/credentials",
                 paths[1] ? paths[1] : "~/.aws/config");
        goto out;
    }
    pthread_mutex_lock(&ch->mu);
    int64_t now = clk_wall_ms();
    int have = ch->imds.access_key_id != NULL;
    int fresh = have && (ch->imds.expires_ms == 0 || now < ch->imds.expires_ms - IMDS_REFRESH_MS);
    if (!fresh) {
        struct aws_credentials c = AWS_CREDENTIALS_INIT;
        char why[512];
        ch->imds_fetches++;
        if (imds_fetch(&c, why, sizeof(why)) == 0) {
            aws_credentials_release(&ch->imds);
            ch->imds = c;
            have = 1;
        } else if (have && (ch->imds.expires_ms == 0 || now < ch->imds.expires_ms)) {
            log_warn("refreshing instance role credentials failed, using the current ones "
                     "until they expire: %s",
                     why);
        } else {
            aws_credentials_release(&ch->imds);
            have = 0;
            snprintf(err, errlen,
                     "no AWS credentials found: not in the environment, no profile \"%s\" with "
                     "keys in %s or %s, %s",
                     profile, paths[0] ? paths[0] : "~/.aws/credentials",
                     paths[1] ? paths[1] : "~/.aws/config", why);
        }
    }
    if (have) {
        rc = credentials_copy(out, &ch->imds);
        if (rc != 0)
            snprintf(err, errlen, "out of memory");
    }
    pthread_mutex_unlock(&ch->mu);
out:
    free(paths[0]);
    free(paths[1]);
    return rc;
}

/* ---- region and endpoint ------------------------------------------------------- */

int aws_resolve_region(const char *profile, const char *configured, char **out, char *err,
                       size_t errlen)
{
    *out = NULL;
    const char *v = env_nonempty("AWS_REGION");
    if (v == NULL)
        v = env_nonempty("AWS_DEFAULT_REGION");
    if (v != NULL) {
        *out = strdup(v);
    } else {
        char *path = aws_config_file_path();
        int r = aws_shared_file_get(path, 1, aws_profile_name(profile), "region", out);
        free(path);
        if (r < 0)
            goto oom;
        if (r == 1 && (*out)[0] == '\0') {
            free(*out);
            *out = NULL;
        }
        if (*out != NULL)
            return 0;
        if (configured == NULL || configured[0] == '\0') {
            snprintf(err, errlen,
                     "no AWS region: set [ec2] region, AWS_REGION, or region in the profile");
            return -1;
        }
        *out = strdup(configured);
    }
    if (*out == NULL)
        goto oom;
    return 0;
oom:
    snprintf(err, errlen, "out of memory");
    return -1;
}

int aws_endpoint_host(const char *url, char *host, size_t hostlen)
{
    const char *rest;
    const char *defport;
    if (strncmp(url, "https://", 8) == 0) {
        rest = url + 8;
        defport = "443";
    } else if (strncmp(url, "http://", 7) == 0) {
        rest = url + 7;
        defport = "80";
    } else {
        return -1;
    }
    size_t n = strcspn(rest, "/?#");
    if (n == 0 || n >= hostlen || memchr(rest, '@', n) != NULL)
        return -1;
    memcpy(host, rest, n);
    host[n] = '\0';
    /* drop a default port, as botocore does for the Host it signs */
    char *colon = strrchr(host, ':');
    const char *bracket = strchr(host, ']'); /* IPv6 literal: its colons are not a port */
    if (colon != NULL && (bracket == NULL || bracket < colon)) {
        if (colon[1] == '\0')
            return -1;
        for (const char *p = colon + 1; *p; p++)
            if (!isdigit((unsigned char)*p))
                return -1;
        if (strcmp(colon + 1, defport) == 0)
            *colon = '\0';
    }
    return 0;
}

int aws_resolve_endpoint(const char *profile, const char *configured, const char *region,
                         char **out, char *err, size_t errlen)
{
    *out = NULL;
    char *val = NULL;
    const char *v = env_nonempty("AWS_ENDPOINT_URL_EC2");
    if (v == NULL)
        v = env_nonempty("AWS_ENDPOINT_URL");
    if (v == NULL) {
        char *path = aws_config_file_path();
        int r = aws_shared_file_get(path, 1, aws_profile_name(profile), "endpoint_url", &val);
        free(path);
        if (r < 0)
            goto oom;
        if (val != NULL && val[0] != '\0')
            v = val;
    }
    if (v == NULL && configured != NULL && configured[0] != '\0')
        v = configured;
    if (v != NULL) {
        char host[512];
        if (aws_endpoint_host(v, host, sizeof(host)) != 0) {
            snprintf(err, errlen, "endpoint \"%s\" is not an http:// or https:// URL", v);
            free(val);
            return -1;
        }
        size_t n = strlen(v);
        while (n > 0 && v[n - 1] == '/')
            n--;
        *out = strndup(v, n);
    } else {
        if (region == NULL || region[0] == '\0') {
            snprintf(err, errlen, "no EC2 endpoint: no region");
            free(val); /* an empty endpoint_url read from the config file */
            return -1;
        }
        size_t n = strlen(region) + 40;
        *out = malloc(n);
        if (*out != NULL)
            snprintf(*out, n, "https://ec2.%s.amazonaws.com%s", region,
                     strncmp(region, "cn-", 3) == 0 ? ".cn" : "");
    }
    free(val);
    if (*out == NULL)
        goto oom;
    return 0;
oom:
    snprintf(err, errlen, "out of memory");
    return -1;
}
