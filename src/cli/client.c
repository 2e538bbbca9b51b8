/*
 * client.c - asgctl's HTTP calls (libcurl) and the mapping of their outcomes
 * to exit codes and messages.
 *
 * The messages are for an operator in a hurry: "cannot reach asgd at URL:
 * connection refused" when asgd is down, "token rejected" for a wrong token,
 * otherwise asgd's own detail text. Answers are capped at 16 MiB.
 */
#include "cli/cli.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/http.h"

#include "common/banned.h"

#define ANSWER_MAX (16u * 1024 * 1024)

struct answer {
    char *p;
    size_t len;
    int too_big;
};

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *ud)
{
    struct answer *a = ud;
    size_t n = size * nmemb;
    if (a->len + n > ANSWER_MAX) {
        a->too_big = 1;
        return 0;
    }
    char *p = realloc(a->p, a->len + n + 1);
    if (!p)
        return 0;
    memcpy(p + a->len, ptr, n);
    a->p = p;
    a->len += n;
    a->p[a->len] = '\0';
    return n;
}

static const char *reach_reason(CURLcode cc, const char *errbuf)
{
    switch (cc) {
    case CURLE_COULDNT_CONNECT:
        return "connection refused";
    case CURLE_COULDNT_RESOLVE_HOST:
        return "unknown host";
    case CURLE_OPERATION_TIMEDOUT:
        return "timed out";
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
        return "invalid URL";
    default:
        return errbuf[0] ? errbuf : curl_easy_strerror(cc);
    }
}

int cli_call(const struct cli *c, const char *method, const char *path, const json_t *body,
             json_t **out)
{
    int rc = CLI_EUNREACHABLE;
    CURL *h = NULL;
    struct curl_slist *hdrs = NULL;
    char *token = NULL, *auth = NULL, *payload = NULL, *url = NULL;
    struct answer ans = {0};
    json_t *j = NULL;
    int mutating = strcmp(method, "GET") != 0;

    *out = NULL;
    if (mutating && c->token_file) {
        char err[512];
        if (http_token_load(c->token_file, &token, err, sizeof err)) {
            fprintf(stderr, "asgctl: %s\n", err);
            rc = CLI_EUSAGE;
            goto out;
        }
    }
    size_t base = strlen(c->url);
    while (base > 0 && c->url[base - 1] == '/')
        base--;
    size_t ulen = base + strlen(path) + 1;
    url = malloc(ulen);
    if (!url)
        goto oom;
    snprintf(url, ulen, "%.*s%s", (int)base, c->url, path);

    h = curl_easy_init();
    if (!h)
        goto oom;
    char errbuf[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &ans);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 3000L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 15000L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    if (c->cacert)
        curl_easy_setopt(h, CURLOPT_CAINFO, c->cacert);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "asgctl/" ASGD_VERSION);
    hdrs = curl_slist_append(hdrs, "Accept: application/json");
    if (body) {
        payload = json_dumps(body, JSON_COMPACT);
        if (!payload)
            goto oom;
        hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, payload);
    } else if (mutating) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
    }
    if (token) {
        size_t alen = strlen(token) + 32;
        auth = malloc(alen);
        if (!auth)
            goto oom;
        snprintf(auth, alen, "Authorization: Bearer %s", token);
        hdrs = curl_slist_append(hdrs, auth);
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);

    CURLcode cc = curl_easy_perform(h);
    if (cc != CURLE_OK) {
        if (ans.too_big)
            fprintf(stderr, "asgctl: the answer from %s is larger than %u bytes\n", url,
                    ANSWER_MAX);
        else
            fprintf(stderr, "asgctl: cannot reach asgd at %s: %s\n", c->url,
                    reach_reason(cc, errbuf));
        rc = CLI_EUNREACHABLE;
        goto out;
    }
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    json_error_t je;
    j = ans.p ? json_loadb(ans.p, ans.len, 0, &je) : NULL;
    if (status >= 200 && status < 300) {
        if (!j) {
            fprintf(stderr, "asgctl: %s answered %ld with something that is not JSON\n", c->url,
                    status);
            rc = CLI_EAPI;
            goto out;
        }
        *out = j;
        j = NULL;
        rc = CLI_OK;
        goto out;
    }
    const char *detail = j ? json_string_value(json_object_get(j, "detail")) : NULL;
    const char *error = j ? json_string_value(json_object_get(j, "error")) : NULL;
    if (status == 401) {
        if (!token)
            fprintf(stderr, "asgctl: asgd requires a token for this: pass --token-file FILE or set "
                            "ASGCTL_TOKEN_FILE\n");
        else
            fprintf(stderr, "asgctl: token rejected (%s)\n", c->token_file);
        rc = CLI_EAUTH;
        goto out;
    }
    if (detail && error)
        fprintf(stderr, "asgctl: %s: %s\n", error, detail);
    else
        fprintf(stderr, "asgctl: %s %s answered HTTP %ld\n", method, path, status);
    rc = CLI_EAPI;
    goto out;
oom:
    fprintf(stderr, "asgctl: out of memory\n");
    rc = CLI_EAPI;
out:
    json_decref(j);
    free(ans.p);
    if (token) {
        memset(token, 0, strlen(token));
        free(token);
    }
    if (auth) {
        memset(auth, 0, strlen(auth));
        free(auth);
    }
    free(payload);
    free(url);
    curl_slist_free_all(hdrs);
    if (h)
        curl_easy_cleanup(h);
    return rc;
}

void cli_print_json(const json_t *j)
{
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (s) {
        fputs(s, stdout);
        fputc('\n', stdout);
        free(s);
    }
}
