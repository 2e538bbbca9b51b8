/*
 * h2_frame.c - HTTP/2 framing and HPACK for the unary client (see h2.c for
 * why the framing is our own and h2_int.h for the files).
 *
 * Out: a call is one buffer, [preface + SETTINGS on a new connection] +
 * HEADERS + DATA, sent with one write. In: whole frames straight from the
 * read buffer, a frame cut by the read kept in c->part; HEADERS (+
 * CONTINUATION) decoded whole by the client's one shared inflater; DATA into
 * the connection's inline buffer (c->big past INLINE_MSG); SETTINGS and
 * PING acknowledged and the connection window given back through frames
 * staged in the client's obuf (sent after the read, h2__conn_event()).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "h2/h2_int.h"

#include "common/banned.h"

/* --- requests ----------------------------------------------------------------------------------
 */

/* Builds [preface + SETTINGS on a new connection] + HEADERS + DATA of the call and sends
   them. 0, or -1 when the call already ended (queued on the done list). */
int h2__send_request(struct h2_conn *c)
{
    struct h2_client *cl = c->cl;
    uint8_t *b = cl->wbuf, *end = cl->wbuf + sizeof(cl->wbuf);
    if (!c->greeted) {
        memcpy(b, NGHTTP2_CLIENT_MAGIC, NGHTTP2_CLIENT_MAGIC_LEN);
        b += NGHTTP2_CLIENT_MAGIC_LEN;
        /* the peer's HPACK table for its answers: 0 bytes (the shared inflater's rule); no
           push */
        static const uint16_t ids[] = {NGHTTP2_SETTINGS_HEADER_TABLE_SIZE,
                                       NGHTTP2_SETTINGS_ENABLE_PUSH};
        b = put_frame_header(b, 12, F_SETTINGS, 0, 0);
        for (size_t i = 0; i < 2; i++) {
            b[0] = (uint8_t)(ids[i] >> 8);
            b[1] = (uint8_t)ids[i];
            put32(b + 2, 0);
            b += 6;
        }
        c->greeted = 1;
        c->next_id = 1;
        c->send_window = WINDOW;
        c->peer_init_window = WINDOW;
        c->recv_unacked = 0;
    }
    if (c->goaway || c->next_id > 0x7fffffffu || c->send_window < c->reqlen ||
        c->peer_init_window < c->reqlen) {
        /* this connection cannot take the stream (closing, ids or window used up): a new
           one can */
        h2__conn_close(c);
        c->retry_at_ms = 0;
        return h2__conn_start(c);
    }
    char tmo[16];
    int64_t left = c->deadline_ms - clk_mono_ms();
    if (left < 1)
        left = 1;
    if (left > 99999999)
        left = 99999999;
    snprintf(tmo, sizeof(tmo), "%lldm", (long long)left);
#define HDR(n, v, vl)                                                                              \
    {                                                                                              \
        (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, (vl), NGHTTP2_NV_FLAG_NONE                  \
    }
    const nghttp2_nv hd[] = {
        HDR(":method", "POST", 4),
        HDR(":scheme", c->ssl ? "https" : "http", c->ssl ? 5 : 4),
        HDR(":path", c->path, strlen(c->path)),
        HDR(":authority", c->target, strlen(c->target)),
        HDR("content-type", "application/grpc", 16),
        HDR("te", "trailers", 8),
        HDR("grpc-timeout", tmo, strlen(tmo)),
        HDR("user-agent", "asgd-poller", 11),
    };
#undef HDR
    uint8_t *hf = b;
    b += 9;
    ssize_t hl = nghttp2_hd_deflate_hd(cl->def, b, (size_t)(end - b) - 9 - c->reqlen, hd,
                                       sizeof(hd) / sizeof(hd[0]));
    if (hl < 0) {
        h2__conn_down(c, GRPC_STATUS_INTERNAL, "cannot encode the request headers", 0);
        return -1;
    }
    uint32_t sid = c->next_id;
    c->next_id += 2;
    put_frame_header(hf, (size_t)hl, F_HEADERS, FL_END_HEADERS, sid);
    b += hl;
    b = put_frame_header(b, c->reqlen, F_DATA, FL_END_STREAM, sid);
    memcpy(b, c->req, c->reqlen);
    b += c->reqlen;
    c->send_window -= c->reqlen;
    c->stream = (int32_t)sid;
    c->sent = 1;
    if (h2__out_write(c, cl->wbuf, (size_t)(b - cl->wbuf)))
        return -1;
    return 0;
}

/* --- answers ------------------------------------------------------------------------------------
 */

/* Stages a control frame for the connection being read (sent after the read). */
static void stage(struct h2_conn *c, uint8_t type, uint8_t flags, uint32_t sid,
                  const uint8_t *payload, size_t len)
{
    struct h2_client *cl = c->cl;
    if (cl->olen + 9 + len > sizeof(cl->obuf)) {
        if (h2__out_write(c, cl->obuf, cl->olen))
            return;
        cl->olen = 0;
    }
    uint8_t *b = put_frame_header(cl->obuf + cl->olen, len, type, flags, sid);
    if (len)
        memcpy(b, payload, len);
    cl->olen += 9 + len;
}

static int digits(const uint8_t *v, size_t n, size_t max)
{
    int x = 0;
    for (size_t i = 0; i < n && i < max && v[i] >= '0' && v[i] <= '9'; i++)
        x = x * 10 + (v[i] - '0');
    return x;
}

static void on_header(struct h2_conn *c, const nghttp2_nv *nv)
{
    const uint8_t *name = nv->name, *value = nv->value;
    size_t nlen = nv->namelen, vlen = nv->valuelen;
    if (nlen == 7 && memcmp(name, ":status", 7) == 0) {
        c->http_status = digits(value, vlen, 4);
    } else if (nlen == 11 && memcmp(name, "grpc-status", 11) == 0) {
        c->status = (grpc_status_code)digits(value, vlen, 3);
        c->got_status = 1;
    } else if (nlen == 12 && memcmp(name, "grpc-message", 12) == 0) {
        /* percent-encoded; kept printable for log lines */
        size_t o = 0;
        for (size_t i = 0; i < vlen && o + 1 < sizeof(c->details); i++) {
            unsigned ch = value[i];
            if (ch == '%' && i + 2 < vlen) {
                char hex[3] = {(char)value[i + 1], (char)value[i + 2], 0};
                char *end;
                unsigned long v = strtoul(hex, &end, 16);
                if (*end == '\0') {
                    ch = (unsigned)v;
                    i += 2;
                }
            }
            c->details[o++] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
        }
        c->details[o] = '\0';
    }
}

/* Decodes a whole header block with the shared inflater. 0, or -1 (connection down). */
static int decode_block(struct h2_conn *c, int32_t sid, const uint8_t *in, size_t inlen)
{
    struct h2_client *cl = c->cl;
    int ours = sid == c->stream && c->busy && !c->done;
    for (;;) {
        nghttp2_nv nv;
        int fl = 0;
        ssize_t rv = nghttp2_hd_inflate_hd2(cl->inf, &nv, &fl, in, inlen, 1);
        if (rv < 0) {
            /* a broken inflater stays broken: a fresh one for the next blocks */
            nghttp2_hd_inflater *fresh = NULL;
            if (nghttp2_hd_inflate_new(&fresh) == 0 &&
                nghttp2_hd_inflate_change_table_size(fresh, 0) == 0) {
                nghttp2_hd_inflate_del(cl->inf);
                cl->inf = fresh;
            } else {
                nghttp2_hd_inflate_del(fresh);
            }
            h2__conn_down(c, GRPC_STATUS_INTERNAL, "bad header block (HPACK)", 0);
            return -1;
        }
        in += rv;
        inlen -= (size_t)rv;
        if ((fl & NGHTTP2_HD_INFLATE_EMIT) && ours)
            on_header(c, &nv);
        if (fl & NGHTTP2_HD_INFLATE_FINAL) {
            nghttp2_hd_inflate_end_headers(cl->inf);
            return 0;
        }
        if (rv == 0 && inlen == 0) {
            nghttp2_hd_inflate_end_headers(cl->inf);
            return 0;
        }
    }
}

/* gRPC's mapping of an HTTP status without grpc-status (its doc/http-grpc-status-mapping.md) */
static grpc_status_code from_http(int http)
{
    switch (http) {
    case 400:
        return GRPC_STATUS_INTERNAL;
    case 401:
        return GRPC_STATUS_UNAUTHENTICATED;
    case 403:
        return GRPC_STATUS_PERMISSION_DENIED;
    case 404:
        return GRPC_STATUS_UNIMPLEMENTED;
    case 429:
    case 502:
    case 503:
    case 504:
        return GRPC_STATUS_UNAVAILABLE;
    default:
        return GRPC_STATUS_UNKNOWN;
    }
}

/* The call's stream ended (END_STREAM): its outcome. */
static void stream_end(struct h2_conn *c)
{
    char why[64];
    if (c->toobig) {
        h2__call_end(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "answer larger than the limit");
    } else if (c->got_status) {
        if (c->status != GRPC_STATUS_OK)
            c->msglen = 0;
        h2__call_end(c, c->status, NULL);
    } else if (c->http_status && c->http_status != 200) {
        snprintf(why, sizeof(why), "HTTP status %d", c->http_status);
        h2__call_end(c, from_http(c->http_status), why);
    } else {
        h2__call_end(c, GRPC_STATUS_INTERNAL, "stream ended without a grpc-status");
    }
}

static void on_data(struct h2_conn *c, const uint8_t *data, size_t len)
{
    size_t need = c->msglen + len;
    if (c->toobig || need > c->cl->max_message + 5) {
        c->toobig = 1;
        return;
    }
    if (need > INLINE_MSG) {
        if (need > c->bigcap) {
            size_t cap = need < 1024 ? 1024 : need * 2;
            if (cap > c->cl->max_message + 5)
                cap = c->cl->max_message + 5;
            uint8_t *b = realloc(c->big, cap);
            if (!b) {
                c->toobig = 1;
                return;
            }
            c->big = b;
            c->bigcap = cap;
        }
        if (c->msglen <= INLINE_MSG && c->msglen)
            memcpy(c->big, c->msg, c->msglen); /* first spill: move what came inline */
        memcpy(c->big + c->msglen, data, len);
    } else if (len) {
        memcpy(c->msg + c->msglen, data, len);
    }
    c->msglen = need;
}

/* Strips padding (and a HEADERS frame's priority fields). -1 on a malformed frame. */
static int unpad(uint8_t flags, int prio, const uint8_t **p, size_t *len)
{
    size_t pad = 0;
    if (flags & FL_PADDED) {
        if (*len < 1)
            return -1;
        pad = (*p)[0];
        (*p)++;
        (*len)--;
    }
    if (prio && (flags & FL_PRIORITY)) {
        if (*len < 5)
            return -1;
        *p += 5;
        *len -= 5;
    }
    if (pad > *len)
        return -1;
    *len -= pad;
    return 0;
}

/* One whole frame. 0, or -1 when the connection went down. */
static int on_frame(struct h2_conn *c, const uint8_t *f)
{
    struct h2_client *cl = c->cl;
    size_t len = (size_t)f[0] << 16 | (size_t)f[1] << 8 | f[2];
    uint8_t type = f[3], flags = f[4];
    int32_t sid = (int32_t)(get32(f + 5) & 0x7fffffff);
    const uint8_t *p = f + 9;
    int ours = sid != 0 && sid == c->stream && c->busy && !c->done;
    if (c->hb_stream && type != F_CONTINUATION)
        goto protocol;
    switch (type) {
    case F_DATA:
        c->recv_unacked += (uint32_t)len;
        if (unpad(flags, 0, &p, &len))
            goto protocol;
        if (ours) {
            on_data(c, p, len);
            if (flags & FL_END_STREAM)
                stream_end(c);
        }
        if (c->recv_unacked >= WINDOW / 2) {
            uint8_t inc[4];
            put32(inc, c->recv_unacked);
            stage(c, F_WINDOW_UPDATE, 0, 0, inc, 4);
            c->recv_unacked = 0;
        }
        return c->fd < 0 ? -1 : 0;
    case F_HEADERS:
        if (unpad(flags, 1, &p, &len))
            goto protocol;
        if (!(flags & FL_END_HEADERS)) {
            /* continued in CONTINUATION frames (rare: our answers' headers are small) */
            c->hb = malloc(len ? len : 1);
            if (!c->hb)
                goto protocol;
            memcpy(c->hb, p, len);
            c->hblen = len;
            c->hb_stream = sid;
            c->hb_end = flags & FL_END_STREAM;
            return 0;
        }
        if (decode_block(c, sid, p, len))
            return -1;
        if (ours && (flags & FL_END_STREAM))
            stream_end(c);
        return 0;
    case F_CONTINUATION: {
        if (!c->hb_stream || sid != c->hb_stream || c->hblen + len > HBLOCK_MAX)
            goto protocol;
        uint8_t *nb = realloc(c->hb, c->hblen + len + 1);
        if (!nb)
            goto protocol;
        memcpy(nb + c->hblen, p, len);
        c->hb = nb;
        c->hblen += len;
        if (!(flags & FL_END_HEADERS))
            return 0;
        int32_t hsid = c->hb_stream;
        int end = c->hb_end;
        c->hb_stream = 0;
        int rc = decode_block(c, hsid, c->hb, c->hblen);
        free(c->hb);
        c->hb = NULL;
        c->hblen = 0;
        if (rc)
            return -1;
        if (end && hsid == c->stream && c->busy && !c->done)
            stream_end(c);
        return 0;
    }
    case F_RST_STREAM:
        if (len != 4)
            goto protocol;
        if (ours) {
            uint32_t code = get32(p);
            char why[64];
            snprintf(why, sizeof(why), "stream reset by the agent (%s)",
                     nghttp2_http2_strerror(code));
            if (code == E_REFUSED_STREAM) {
                c->refused = 1; /* not processed: h2__deliver() tries a new connection */
                h2__call_end(c, GRPC_STATUS_UNAVAILABLE, why);
            } else if (c->got_status) {
                stream_end(c); /* the status came; the reset only ends the stream */
            } else {
                h2__call_end(c,
                             code == E_CANCEL ? GRPC_STATUS_CANCELLED
                             : code == E_CALM ? GRPC_STATUS_RESOURCE_EXHAUSTED
                                              : GRPC_STATUS_INTERNAL,
                             why);
            }
        }
        return 0;
    case F_SETTINGS:
        if (sid != 0 || (flags & FL_ACK ? len != 0 : len % 6 != 0))
            goto protocol;
        if (flags & FL_ACK)
            return 0;
        for (size_t i = 0; i + 6 <= len; i += 6) {
            uint16_t id = (uint16_t)(p[i] << 8 | p[i + 1]);
            uint32_t v = get32(p + i + 2);
            if (id == NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE) {
                if (v > 0x7fffffffu)
                    goto protocol;
                c->peer_init_window = v;
            }
            /* HEADER_TABLE_SIZE is the peer decoder's: our encoder never indexes. Frame
               sizes: ours are far below the minimum. */
        }
        stage(c, F_SETTINGS, FL_ACK, 0, NULL, 0);
        return c->fd < 0 ? -1 : 0;
    case F_PUSH_PROMISE:
        goto protocol; /* push is off (our SETTINGS) */
    case F_PING:
        if (len != 8 || sid != 0)
            goto protocol;
        if (!(flags & FL_ACK))
            stage(c, F_PING, FL_ACK, 0, p, 8);
        return c->fd < 0 ? -1 : 0;
    case F_GOAWAY:
        if (len < 8)
            goto protocol;
        c->goaway = 1;
        if (ours && (uint32_t)c->stream > (get32(p) & 0x7fffffff)) {
            c->refused = 1; /* never processed: h2__deliver() tries a new connection */
            h2__call_end(c, GRPC_STATUS_UNAVAILABLE, "connection closed by the agent (GOAWAY)");
        }
        return 0;
    case F_WINDOW_UPDATE:
        if (len != 4)
            goto protocol;
        if (sid == 0)
            c->send_window += get32(p) & 0x7fffffff;
        return 0;
    default:
        return 0; /* PRIORITY, unknown extensions: ignored, as the protocol says */
    }
protocol:
    (void)cl;
    h2__conn_down(c, GRPC_STATUS_INTERNAL, "HTTP/2 protocol error from the agent", 0);
    return -1;
}

/* Keeps the first n bytes of a frame the read cut (its whole length when known). */
static int part_keep(struct h2_conn *c, const uint8_t *d, size_t n, size_t want)
{
    uint8_t *np = realloc(c->part, want);
    if (!np) {
        h2__conn_down(c, GRPC_STATUS_INTERNAL, "out of memory for a frame", 0);
        return -1;
    }
    c->part = np;
    c->partcap = want;
    memcpy(np + c->partlen, d, n);
    c->partlen += n;
    return 0;
}

static size_t frame_len(const uint8_t *h)
{
    return 9 + ((size_t)h[0] << 16 | (size_t)h[1] << 8 | h[2]);
}

/* Feeds received bytes: whole frames straight from d, a frame cut by the read through
   c->part. 0, or -1 when the connection went down. */
int h2__on_input(struct h2_conn *c, const uint8_t *d, size_t n)
{
    while (n) {
        if (c->partlen) {
            if (c->partlen < 9) {
                size_t take = 9 - c->partlen < n ? 9 - c->partlen : n;
                memcpy(c->part + c->partlen, d, take);
                c->partlen += take;
                d += take;
                n -= take;
                if (c->partlen < 9)
                    return 0;
            }
            size_t want = frame_len(c->part);
            if (want > 9 + FRAME_MAX) {
                h2__conn_down(c, GRPC_STATUS_INTERNAL, "HTTP/2 frame over the size limit", 0);
                return -1;
            }
            size_t take = want - c->partlen < n ? want - c->partlen : n;
            if (part_keep(c, d, take, want)) /* appends, grows to the whole frame */
                return -1;
            d += take;
            n -= take;
            if (c->partlen < want)
                return 0;
            uint8_t *fr = c->part;
            c->part = NULL;
            c->partlen = c->partcap = 0;
            int rc = on_frame(c, fr);
            free(fr);
            if (rc)
                return -1;
            continue;
        }
        if (n < 9)
            return part_keep(c, d, n, 9);
        size_t len = frame_len(d);
        if (len > 9 + FRAME_MAX) {
            h2__conn_down(c, GRPC_STATUS_INTERNAL, "HTTP/2 frame over the size limit", 0);
            return -1;
        }
        if (n < len)
            return part_keep(c, d, n, len);
        if (on_frame(c, d))
            return -1;
        d += len;
        n -= len;
    }
    return 0;
}
