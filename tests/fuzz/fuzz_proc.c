/*
 * fuzz_proc.c - libFuzzer target for the agent's /proc parsers and load
 * specs (src/agent/load.c): /proc/stat, /proc/meminfo, /proc/loadavg, the
 * file: load value and the simulate:PARAMS spec. The first byte picks the
 * parser, the rest is the text.
 *
 * Invariants: percentages stay within 0..100, the stat counters keep busy <=
 * total, accepted sim params are ordered (min < max) and the simulation
 * stays within them. Seeds: tests/fuzz/corpus/proc/.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent.h"

#include "common/banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    char *text = malloc(size);
    if (text == NULL)
        return 0;
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    switch (data[0] % 5) {
    case 0: {
        struct agent_cpu_times t, zero = {0, 0};
        if (agent_proc_parse_stat(text, &t) == 0) {
            if (t.busy > t.total)
                abort();
            double pct = agent_cpu_percent(&zero, &t);
            if (pct != -1 && (pct < 0 || pct > 100 || isnan(pct)))
                abort();
        }
        break;
    }
    case 1: {
        double used;
        if (agent_proc_parse_meminfo(text, &used) == 0 && (used < 0 || used > 100 || isnan(used)))
            abort();
        break;
    }
    case 2: {
        double l1;
        if (agent_proc_parse_loadavg(text, &l1) == 0 && (l1 < 0 || isnan(l1)))
            abort();
        break;
    }
    case 3: {
        double v;
        if (agent_parse_load_value(text, &v) == 0 && (v < 0 || v > 100 || isnan(v)))
            abort();
        break;
    }
    default: {
        struct agent_sim_params p;
        char err[256];
        err[sizeof(err) - 1] = 'x';
        if (agent_sim_parse(text, &p, err, sizeof(err)) == 0) {
            if (!(p.min >= 0 && p.min < p.max && p.max <= 100))
                abort();
            struct agent_sim s;
            agent_sim_init(&s, &p);
            for (int64_t t = 0; t < 5 * 60000; t += 7001) {
                double v = agent_sim_step(&s, t);
                if (isnan(v) || v < p.min - 1e-9 || v > p.max + 1e-9)
                    abort();
            }
        } else if (memchr(err, '\0', sizeof(err)) == NULL) {
            abort();
        }
        break;
    }
    }
    free(text);
    return 0;
}
