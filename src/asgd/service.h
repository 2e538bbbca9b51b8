/*
 * service.h - asgd as a systemd service: READY, STATUS, the watchdog, STOPPING.
 *
 * svc_start() is called once the node serves (groups started, API
 * listening): it sends READY=1 with a STATUS= line and, when systemd asked
 * for a watchdog ($WATCHDOG_USEC, the unit's WatchdogSec=), starts a thread
 * that every half interval checks that every running group's controller
 * ticked recently (ctl_get_status()'s last_tick_ms, the view /readyz and
 * /metrics' asgd_controller_last_tick_timestamp_seconds use; a group that
 * has not ticked yet counts from when this thread first saw it) and sends
 * WATCHDOG=1 only then. A wedged controller therefore stops the pings and systemd
 * restarts asgd (Restart=on-failure); its instances keep running and the new
 * asgd adopts them. The thread also refreshes STATUS= ("2 groups: web 3/3 in
 * service, batch 1/2 (1 pending)") so `systemctl status asgd` shows the
 * groups and counts. svc_stop() sends STOPPING=1 and ends the thread.
 *
 * Outside systemd ($NOTIFY_SOCKET unset) nothing is sent and no thread runs.
 * A controller is "wedged" when its last tick is older than the watchdog
 * interval, and at least SVC_MIN_TICK_AGE_MS (a tick may legitimately wait a
 * provider call's timeout).
 *
 * Threads: svc_start/svc_stop from the daemon's main thread; the node is
 * borrowed and must outlive svc_stop(). Errors: svc_start returns 0, or -1
 * when the thread cannot be created (then nothing is left running).
 */
#ifndef ASGD_SERVICE_H
#define ASGD_SERVICE_H

#include <stddef.h>
#include <stdint.h>

struct node;
struct svc;

#define SVC_MIN_TICK_AGE_MS 5000

/* READY=1 + STATUS, and the watchdog/status thread when under systemd. *out NULL outside it. */
int svc_start(struct node *node, struct svc **out);
/* STOPPING=1, then stops the thread and frees. NULL: sends STOPPING=1 only (harmless). */
void svc_stop(struct svc *s);

/* The STATUS= text for node: "N groups: NAME IN/DESIRED in service (P pending, U unhealthy), ...".
 */
void svc_status_line(struct node *node, char *buf, size_t len);

#endif
