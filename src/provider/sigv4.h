/*
 * sigv4.h - AWS Signature Version 4 for the EC2 Query API, without an SDK.
 *
 * The EC2 client (ec2.c) signs every request with sigv4_sign(): it builds the
 * canonical request exactly as botocore does (method, path, query, sorted
 * lowercase "name:trimmed value" header lines, the signed header list, hex
 * SHA-256 of the body bytes), the string to sign, derives the key through the
 * HMAC chain "AWS4"+secret -> date -> region -> service -> "aws4_request", and
 * formats the Authorization header. tests/fixtures/sigv4_botocore.json holds
 * botocore's own output for fixed inputs; tests/unit/test_sigv4.c compares.
 *
 * Also here: SHA-256 and HMAC-SHA-256 (self-contained, so the signer needs no
 * crypto library), RFC 3986 percent-encoding for form bodies and the
 * X-Amz-Date format. Nothing in this module logs; secrets never leave it
 * except inside the signature.
 */
#ifndef ASGD_SIGV4_H
#define ASGD_SIGV4_H

#include <stddef.h>
#include <stdint.h>

#define SIGV4_SHA256_LEN 32
#define SIGV4_DATE_LEN   17 /* "YYYYMMDDTHHMMSSZ" + NUL */

/* SHA-256 of len bytes at data into out[32]. */
void sigv4_sha256(const void *data, size_t len, uint8_t out[SIGV4_SHA256_LEN]);
/* HMAC-SHA-256 of msg under key into out[32]. */
void sigv4_hmac_sha256(const void *key, size_t keylen, const void *msg, size_t msglen,
                       uint8_t out[SIGV4_SHA256_LEN]);
/* Lowercase hex of n bytes into out (2n+1 bytes, NUL-terminated). */
void sigv4_hex(const uint8_t *in, size_t n, char *out);

/* Formats wall-clock milliseconds as "YYYYMMDDTHHMMSSZ" (UTC) into out[17]. */
void sigv4_amz_date(int64_t wall_ms, char out[SIGV4_DATE_LEN]);

/*
 * Percent-encodes s (RFC 3986: A-Z a-z 0-9 - _ . ~ stay, every other byte
 * becomes %XX uppercase) and appends it to out at *pos, NUL-terminated.
 * Returns 0, or -1 when it does not fit in cap bytes (then *pos is unchanged).
 */
int sigv4_uri_encode(const char *s, char *out, size_t cap, size_t *pos);

struct sigv4_header {
    const char *name;  /* any case; signed in lowercase */
    const char *value; /* signed with surrounding space removed, inner runs collapsed */
};

struct sigv4_request {
    const char *method;                 /* "POST" */
    const char *path;                   /* "/" (already URI-encoded) */
    const char *query;                  /* canonical query string ("" for the Query API's POST) */
    const struct sigv4_header *headers; /* every header to sign, Host included */
    size_t n_headers;
    const void *body; /* exact bytes sent; NULL with body_len 0 for none */
    size_t body_len;
    const char *region;  /* "us-east-1" */
    const char *service; /* "ec2" */
    const char
        *amz_date; /* "YYYYMMDDTHHMMSSZ": the X-Amz-Date header value, which must be signed */
};

/*
 * Computes the Authorization header value ("AWS4-HMAC-SHA256 Credential=...,
 * SignedHeaders=..., Signature=...") for r with the given keys into out.
 * session_token is not used here: the caller adds an X-Amz-Security-Token
 * header to r->headers (as botocore does) when it has one.
 * Returns 0, or -1 if an argument is missing, there are more than 32 headers,
 * or out (or an internal buffer, 64 KB of headers) is too small.
 */
int sigv4_sign(const struct sigv4_request *r, const char *access_key, const char *secret_key,
               char *out, size_t outlen) __attribute__((warn_unused_result));

/* The Content-Type botocore sends with Query API requests. */
#define SIGV4_FORM_CONTENT_TYPE "application/x-www-form-urlencoded; charset=utf-8"

/*
 * Signs a Query API POST the way ec2.c sends it: path "/", empty query, and
 * the signed headers Content-Type, Host, X-Amz-Date and, when session_token is
 * not NULL or "", X-Amz-Security-Token (botocore's set for EC2). host is the
 * Host header value ("ec2.us-east-1.amazonaws.com", or "127.0.0.1:8123" on a
 * non-default port). Writes the Authorization header value into out.
 * Returns 0, or -1 on a missing argument or when out is too small.
 */
int sigv4_sign_form_post(const char *host, const char *region, const char *service,
                         const char *content_type, const void *body, size_t body_len,
                         const char *access_key, const char *secret_key, const char *session_token,
                         const char *amz_date, char *out, size_t outlen)
    __attribute__((warn_unused_result));

#endif
