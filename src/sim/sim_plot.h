/*
 * sim_plot.h - what a simulated run did, second by second: --csv and --plot.
 *
 * A recorder is the sim_params.on_second callback's argument. It writes one
 * CSV row per second when given a file, and folds the seconds into at most
 * SIM_PLOT_BUCKETS columns for the chart, so memory stays small however
 * long the trace is. sim_plot_svg() draws one panel per recorder: demand
 * against capacity (in service + booting) and in service over time, the
 * seconds in violation shaded, the run's figures in the panel's title. The
 * SVG is self-contained (no script, no external font or stylesheet).
 *
 * Ownership: the caller owns recorders (sim_rec_free()) and the FILEs it
 * passes (never closed here). Threads: a recorder belongs to one run.
 * Errors: sim_rec_new() returns NULL when out of memory; the writers return
 * 0 or -1 when the FILE reports an error (the caller names the file).
 */
#ifndef ASGD_SIM_PLOT_H
#define ASGD_SIM_PLOT_H

#include <stdint.h>
#include <stdio.h>

#include "sim/sim.h"

#define SIM_PLOT_BUCKETS 1000

struct sim_rec;

/* seconds: the run's length (last t + 1). csv: NULL, or the file to append rows to;
   label: the run's name in the CSV's policy column (NULL: no such column). */
struct sim_rec *sim_rec_new(int64_t seconds, FILE *csv, const char *label);
void sim_rec_free(struct sim_rec *r);
/* The on_second callback (arg is a struct sim_rec *). */
void sim_rec_second(void *arg, const struct sim_second *s);
/* Writes the CSV header ("[policy,]t,demand,desired,in_service,booting,load,violation"). */
int sim_csv_header(FILE *f, int with_label);

/* Column i of n (sim_rec_columns()): its first second, highest demand, highest capacity
   (in service + booting), lowest in service and seconds in violation. */
size_t sim_rec_columns(const struct sim_rec *r);
void sim_rec_column(const struct sim_rec *r, size_t i, int64_t *t, double *demand, int *capacity,
                    int *in_service, int *violations);

/* One panel per recorder; labels[i] and results[i] title panel i. */
int sim_plot_svg(FILE *f, struct sim_rec *const *recs, const char *const *labels,
                 const struct sim_result *results, size_t n);

#endif
