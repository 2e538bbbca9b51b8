/*
 * proxy.c - reads forwarded to the node that runs a group.
 *
 * Live state (the fleet table) exists only on a group's owner, so a node
 * asked about a group it does not run forwards the read there with libcurl:
 * a plain GET with a short overall timeout (the daemon's one thread waits
 * meanwhile, so the timeout bounds how long every other request waits), the
 * answer capped in size, only http/https, no redirects followed. The request
 * carries HTTP_PROXIED_HEADER so the owner, if it no longer runs the group,
 * answers from its store instead of forwarding again (no loops).
 */
#include <curl/curl.h>
#include <stdio.h>
#include <string.h>

#include "http/http_int.h"

#include "common/banned.h"

#define PROXY_BODY_MAX (8u * 1024 * 1024)

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
    struct http_buf *b = ud;
    size_t k = sz * n;
    if (b->len + k > PROXY_BODY_MAX || http__buf_append(b, p, k))
        return 0; /* makes curl fail with CURLE_WRITE_ERROR */
    return k;
}

int http__buf_escape(struct http_buf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '_' || c == '.' || c == '~') {
            http__buf_append(b, (const char *)&c, 1);
        } else {
            char e[3] = {'%', hex[c >> 4], hex[c & 15]};
            http__buf_append(b, e, 3);
        }
    }
    return b->oom ? -1 : 0;
}

int http__proxy_get(struct http_server *s, const char *base, const char *path_query, json_t **out,
                    char *why, size_t whylen)
{
    *out = NULL;
    if (strncmp(base, "http://", 7) != 0 && strncmp(base, "https://", 8) != 0) {
        snprintf(why, whylen, "owner API \"%.200s\" is not an http(s) URL", base);
        return -1;
    }
    struct http_buf url = HTTP_BUF_INIT, body = HTTP_BUF_INIT;
    size_t bl = strlen(base);
    while (bl && base[bl - 1] == '/')
        bl--;
    http__buf_append(&url, base, bl);
    http__buf_printf(&url, "%s", path_query);
    CURL *h = curl_easy_init();
    struct curl_slist *hd = NULL;
    char mark[HTTP_NODE_MAX + 64];
    snprintf(mark, sizeof mark, "%s: %s", HTTP_PROXIED_HEADER, s->node[0] ? s->node : "1");
    hd = curl_slist_append(hd, mark);
    int rc = -1;
    if (!h || !hd || url.oom) {
        snprintf(why, whylen, "out of memory");
        goto out;
    }
    char errbuf[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(h, CURLOPT_URL, url.p);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)s->proxy_timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)s->proxy_timeout_ms);
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    if (s->tls_ca_file) /* the other nodes' HTTPS certificates (else the system's CAs) */
        curl_easy_setopt(h, CURLOPT_CAINFO, s->tls_ca_file);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(h, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    CURLcode cc = curl_easy_perform(h);
    if (cc != CURLE_OK) {
        snprintf(why, whylen, "%.200s: %s", base, errbuf[0] ? errbuf : curl_easy_strerror(cc));
        goto out;
    }
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    if (status != 200) {
        snprintf(why, whylen, "%.200s answered %ld", base, status);
        goto out;
    }
    json_error_t je;
    *out = json_loadb(body.p ? body.p : "", body.len, 0, &je);
    if (!*out) {
        snprintf(why, whylen, "%.200s answered invalid JSON: %s", base, je.text);
        goto out;
    }
    rc = 0;
out:
    curl_slist_free_all(hd);
    if (h)
        curl_easy_cleanup(h);
    http__buf_release(&url);
    http__buf_release(&body);
    return rc;
}
