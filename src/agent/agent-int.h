/*
 * agent-int.h - internals shared by the agent's source files (not for other
 * modules): an interruptible sleep for the background threads.
 */
#ifndef ASGD_AGENT_INT_H
#define ASGD_AGENT_INT_H

#include <pthread.h>
#include <stdint.h>

/* A stop flag with a condition variable on the monotonic clock. */
struct agent__sleeper {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop;
};
void agent__sleeper_init(struct agent__sleeper *s);
void agent__sleeper_release(struct agent__sleeper *s);
/* Sleeps up to ms or until agent__sleeper_stop. Returns 1 when stop was asked. */
int agent__sleeper_wait(struct agent__sleeper *s, int64_t ms);
void agent__sleeper_stop(struct agent__sleeper *s);

#endif
