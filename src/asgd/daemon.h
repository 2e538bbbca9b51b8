/*
 * daemon.h - `asgd run`: one node, its groups, its store, and in a cluster
 * its share of the estate.
 *
 * The daemon wires the pieces: the node file (conf.h), the MonitorS listener
 * and poller shared by every group (mon.h), the groups it runs (node.h), the
 * store (SQLite on one node, etcd in a cluster: store.h), group ownership
 * (cluster.h, etcd only) and the HTTP API (http.h, whose node operations it
 * implements). On one node it runs every group of its files and of its
 * store; in a cluster it runs the groups it owns and answers for all.
 *
 * Threads: daemon_run() blocks in sigwait() until SIGTERM/SIGINT (SIGHUP
 * re-reads the files there: reload.h); the stop
 * signals must be blocked in every thread before it is called (it does so
 * itself before starting any). Instances are never touched by a shutdown.
 */
#ifndef ASGD_DAEMON_H
#define ASGD_DAEMON_H

/* Runs the node of config file path until a stop signal. Returns the exit code (0 or 1). */
int daemon_run(const char *path);

#endif
