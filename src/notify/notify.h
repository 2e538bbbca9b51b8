/*
 * notify.h - webhooks: every activity a controller records, sent as JSON to
 * the group's [notify] url, signed, retried, never blocking the controller.
 *
 * One notifier per asgd (all groups). notify_activity() is what a controller
 * calls (through ctl_deps.on_activity): it maps the activity onto an event
 * name, filters it by the group's [notify] events, copies what the delivery
 * needs (url, secret file, retry settings, the body) into a bounded queue and
 * returns. A thread delivers: POST url, body
 *
 *   {"event": "launch", "group": "web", "id": "web-42-1a2b...",
 *    "at": "2026-12-02T03:16:06.123Z", "kind": "launch", "status": "ok",
 *    "cause": "...", "from": 1, "to": 2, "detail": ""}
 *
 * with headers Content-Type: application/json, X-Asgd-Event, X-Asgd-Delivery
 * (the id: the same on every retry, for the receiver to deduplicate),
 * X-Asgd-Attempt (1, 2, ...) and, when secret_file is set, X-Asgd-Signature:
 * sha256=<lowercase hex HMAC-SHA256 of the body under the file's contents,
 * trailing newline removed>. The key file is read at each attempt (rotation
 * works); one that cannot be read fails the attempt (never sent unsigned).
 * A 2xx answer is delivered; anything else (or no answer within timeout) is
 * retried after retry_base * 2^(attempt-1), at most retry_max, up to
 * max_retries times; then the event is dead-lettered (counted, logged).
 *
 * Event names: launch / terminate / replace / scale / hook / panic for those
 * activity kinds with status ok (or started/ended for panic), "skipped" for
 * any status "skipped" (suspended processes), and "failure" for status
 * "failed" or kind "error". Other activities (adopt, forget) send nothing.
 *
 * Counters (stats.h, /metrics): asgd_notify_events_total{result=delivered|
 * failed|dead_letter|dropped}: failed counts attempts, dropped counts events
 * refused because the queue was full.
 *
 * Threads: notify_activity() from any thread; deliveries are serial on the
 * notifier's thread (a slow receiver delays the others by up to its timeout).
 * Errors: 0 or a negative NOTIFY_E* code.
 */
#ifndef ASGD_NOTIFY_H
#define ASGD_NOTIFY_H

#include <stddef.h>
#include <stdint.h>

struct group_settings;
struct store_activity;
struct notify;

enum notify_error { NOTIFY_OK = 0, NOTIFY_ENOMEM = -1, NOTIFY_EFULL = -2, NOTIFY_ESTATE = -3 };

#define NOTIFY_QUEUE_DEFAULT 1024

/* Starts the notifier thread; queue_cap events at most wait (0: NOTIFY_QUEUE_DEFAULT). */
int notify_new(size_t queue_cap, struct notify **out);
/* Stops the thread (an attempt in flight finishes) and frees; events still queued are
   dropped and logged. NULL is a no-op. */
void notify_free(struct notify *n);

/*
 * Queues the event of activity a for group settings g (copied). Returns 0
 * when queued, 1 when nothing is sent (no url, or the event is not in
 * [notify] events), NOTIFY_EFULL when the queue is full (counted as
 * dropped), NOTIFY_ENOMEM. n NULL: 1. Thread-safe; never waits on I/O.
 */
int notify_activity(struct notify *n, const struct group_settings *g,
                    const struct store_activity *a);

/* ctl_deps.on_activity's shape: arg is the struct notify. */
void notify_on_activity(void *arg, const struct group_settings *g, const struct store_activity *a);

/* The event name of an activity (see above), or NULL when it sends nothing. */
const char *notify_event_name(const char *kind, const char *status);

/* "sha256=<hex>" of body under key into out (>= 72 bytes). */
void notify_sign(const void *key, size_t keylen, const void *body, size_t len, char *out,
                 size_t outlen);

/* Events queued and not yet delivered or dead (tests, status). */
size_t notify_pending(struct notify *n);

#endif
