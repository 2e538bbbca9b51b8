/*
 * rpc_int.h - what the files of the gRPC core glue share (not a public API:
 * see rpc.h).
 *
 *   rpc.c         error strings, packing, gRPC's one-time set-up (backup
 *                 poll interval, abseil's deadlock detector off)
 *   rpc_server.c  the unary server: method table, listening (plain and
 *                 TLS with reloadable certificates), the serving thread
 *                 and its completion queue, shutdown
 *   rpc_client.c  the asynchronous client: channels (plain or TLS),
 *                 calls on one completion queue, polling, shutdown; and the
 *                 blocking helper rpc_call_sync() on top of it
 *
 * The small slice and deadline helpers both sides use per call are static
 * inline here.
 */
#ifndef ASGD_RPC_INT_H
#define ASGD_RPC_INT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/support/time.h>

#include "rpc/rpc.h"

/* grpc_init() for a server or client, after the process-wide set-up (once). Each call is
   balanced by one grpc_shutdown(). */
void rpc__grpc_init(void);

/* A deadline ms from now on gRPC's monotonic clock. */
static inline gpr_timespec ms_from_now(int64_t ms)
{
    return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(ms, GPR_TIMESPAN));
}

/* Copies a byte buffer into one contiguous slice (caller unrefs). */
static inline grpc_slice buffer_to_slice(grpc_byte_buffer *bb)
{
    grpc_byte_buffer_reader rd;
    if (!grpc_byte_buffer_reader_init(&rd, bb))
        return grpc_empty_slice();
    grpc_slice s = grpc_byte_buffer_reader_readall(&rd);
    grpc_byte_buffer_reader_destroy(&rd);
    return s;
}

/* Copies s into buf (size bytes, NUL-terminated, truncated). */
static inline void slice_to_cstr(grpc_slice s, char *buf, size_t size)
{
    size_t n = GRPC_SLICE_LENGTH(s);
    if (n >= size)
        n = size - 1;
    memcpy(buf, GRPC_SLICE_START_PTR(s), n);
    buf[n] = '\0';
}

#endif
