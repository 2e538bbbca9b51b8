/*
 * sim_cli.h - the `asgd simulate` command: options, settings, what-if runs.
 *
 *   asgd simulate --trace FILE|- [-c FILE] [--set KEY=VALUE]... [--boot S] [--poll S]
 *                 [--json] [-v] [--compare A.ini B.ini ...] [--variant KEY=VALUE[,KEY=VALUE]]...
 *                 [--sweep KEY=FROM:TO:STEP [--sweep KEY2=FROM:TO:STEP]]
 *                 [--csv FILE] [--plot FILE.svg]
 *
 * The settings of a run are the group's (from -c, else the model's defaults
 * min 2, max 20), then every --set in order. Keys are the API's JSON paths
 * (min_size, max_size, policy.target, policy.scale_down_window, ...; the INI
 * names of the policy keys too; min and max are short for min_size and
 * max_size), plus boot and poll (seconds). A --set that changes policy.type
 * starts from that type's defaults. Every value goes through the settings
 * validator the API uses, so a run can only use settings a group could have.
 *
 * --compare and --variant add runs on top of the base settings; with more
 * than one run the output is one table (or a JSON array), the best of each
 * column marked. --sweep runs the grid of one or two keys, prints it with the
 * Pareto front of (cost ratio, violation %).
 *
 * Ownership: sim_cli_main() owns everything it allocates and frees it before
 * returning. Threads: runs in the calling thread only. Errors: the return
 * value is the process's exit code (0 ok, 1 failure, 2 usage) and the reason
 * is printed on stderr as "asgd: ...".
 */
#ifndef ASGD_SIM_CLI_H
#define ASGD_SIM_CLI_H

/* argv[0] is "simulate"; the rest are its options. */
int sim_cli_main(int argc, char **argv);

#endif
