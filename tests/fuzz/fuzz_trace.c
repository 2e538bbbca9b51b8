/*
 * fuzz_trace.c - libFuzzer target for the simulator's trace CSV
 * (sim_trace_parse in src/sim/sim.c).
 *
 * Invariants of an accepted trace (what sim_run relies on): at least one row,
 * t[0] == 0, t strictly increasing and within SIM_MAX_SECONDS, demand finite
 * and not negative; release empties it. Seeds: tests/fuzz/corpus/trace/.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sim/sim.h"

#include "common/banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sim_trace tr = SIM_TRACE_INIT;
    char err[512];
    err[sizeof(err) - 1] = 'x';
    if (sim_trace_parse("fuzz.csv", (const char *)data, size, &tr, err, sizeof(err)) == 0) {
        if (tr.n == 0 || tr.t[0] != 0)
            abort();
        for (size_t i = 0; i < tr.n; i++) {
            if (tr.t[i] < 0 || tr.t[i] > SIM_MAX_SECONDS)
                abort();
            if (i > 0 && tr.t[i] <= tr.t[i - 1])
                abort();
            if (!isfinite(tr.demand[i]) || tr.demand[i] < 0)
                abort();
        }
    } else if (memchr(err, '\0', sizeof(err)) == NULL) {
        abort();
    }
    sim_trace_release(&tr);
    if (tr.n != 0 || tr.t != NULL || tr.demand != NULL)
        abort();
    return 0;
}
