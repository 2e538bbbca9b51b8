/*
 * etcd_int.h - the etcd client's handle and what its files share (not a
 * public API: see etcd.h).
 *
 *   etcd.c        handles, error texts, the transport: one POST per attempt,
 *                 failover over the endpoints until the call's deadline
 *   etcd_codec.c  the gateway's encoding: base64, int64 strings, zero values
 *                 omitted; decoders of kvs, ranges and headers (untrusted
 *                 input: every field checked)
 *   etcd_kv.c     range, put, delete, compact and txn requests
 *   etcd_lease.c  lease grant, keepalive, revoke, timetolive
 *   etcd_watch.c  watches: a thread and a stream each, resumed on failover
 *
 * Threads: as etcd.h says, one handle is used by one thread at a time; a
 * watch's thread has a handle of its own (its curl handle is not used).
 *
 * Errors: the functions below return 0 or a negative ETCD_E* code, like the
 * public ones; those given a handle leave text for etcd_errmsg() on it.
 */
#ifndef ASGD_ETCD_INT_H
#define ASGD_ETCD_INT_H

#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>
#include <jansson.h>

#include "etcd/etcd.h"

/* A reply (or one watch line) larger than this is refused (ETCD_EPROTO): etcd's
 * own request limit is 1.5 MiB per value, so only a huge range comes near. */
#define REPLY_MAX  ((size_t)64 << 20)
#define ERRMSG_MAX 768
#define EP_ERR_MAX 160

struct ep {
    char *url;
    char err[EP_ERR_MAX]; /* what the last attempt on it met, for etcd_errmsg() */
};

struct etcd {
    struct ep *eps;
    size_t n_eps;
    size_t cur; /* the endpoint that answered last */
    char *ca, *cert, *key;
    int attempt_ms, call_ms, idle_ms;
    CURL *curl;
    struct curl_slist *headers;
    char *body; /* reply being read */
    size_t body_len, body_cap;
    char errmsg[ERRMSG_MAX];
};

/* ---- etcd.c: errors, clocks, transport ---------------------------------- */

/* Formats the handle's etcd_errmsg() text. */
void etcd__set_err(struct etcd *h, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Formats into a caller's err buffer (NULL or errlen 0: nothing). */
void etcd__put_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* CLOCK_MONOTONIC milliseconds. */
int64_t etcd__now_ms(void);
/* Sleeps ms (<= 0: returns at once), resumed after signals. */
void etcd__sleep_ms(int64_t ms);
/* Sets the curl options shared by unary calls and watch streams on c. */
void etcd__curl_common(CURL *c, const struct etcd *h, struct curl_slist *headers);
/*
 * POSTs body (consumed) to path with failover (etcd.h): on success *reply
 * owns the parsed reply object. what names the call for messages.
 */
int etcd__call(struct etcd *h, const char *what, const char *path, json_t *body, json_t **reply);
/* For a reply whose decoding failed with rc: sets the text naming the endpoint, returns rc. */
int etcd__bad_reply(struct etcd *h, const char *what, int rc);

/* ---- etcd_codec.c: the gateway's JSON ----------------------------------- */

/* An int64 field: a JSON string of digits (the gateway's form) or a number;
 * absent or null = 0 (the gateway omits zero values). Else ETCD_EPROTO. */
int etcd__j_int64(const json_t *obj, const char *name, int64_t *out);
/* A boolean field; absent or null = 0. Else ETCD_EPROTO. */
int etcd__j_bool(const json_t *obj, const char *name, int *out);
/* A new JSON string of x's digits (NULL when out of memory). */
json_t *etcd__j_i64str(int64_t x);
/* Sets obj[name] = v (stealing v); a NULL v means allocation failed. */
int etcd__j_set(json_t *obj, const char *name, json_t *v);
/* Sets obj[name] = base64 of len bytes at p. */
int etcd__j_set_bytes(json_t *obj, const char *name, const void *p, size_t len);
/* A key or value argument's length: ETCD_NUL means strlen (0 for NULL). */
size_t etcd__arg_len(const void *p, size_t len);
/* Frees a kv's key and value and zeroes it. */
void etcd__kv_release(struct etcd_kv *kv);
/* Decodes a KeyValue object into kv (zeroed first; released on failure). */
int etcd__kv_decode(const json_t *j, struct etcd_kv *kv);
/* header.revision of a reply; no header = 0. */
int etcd__header_revision(const json_t *reply, int64_t *rev);
/* ETCD_EPROTO unless the reply has a header with a revision >= 1 (every unary answer does). */
int etcd__need_header(const json_t *reply);
/* Frees a range result's kvs and zeroes it (not the struct). */
void etcd__range_release(struct etcd_range_result *r);
/* Fills r from a RangeResponse object. */
int etcd__range_decode(const json_t *j, struct etcd_range_result *r);
/* Sets key (and range_end when prefix) on obj. */
int etcd__set_key_range(json_t *obj, const void *key, size_t len, int prefix);

#endif
