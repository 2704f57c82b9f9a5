// The lab's worker threads: one job at a time, its iterations shared between the caller and
// the workers. Between jobs a worker polls for the next one for a short while (a few hundred
// microseconds), then sleeps on a condition variable: bursts of products (a decode step's)
// start without waking a sleeping processor each time, and an idle lab costs no processor.
#ifndef PLAB_POOL_H
#define PLAB_POOL_H

#ifdef __cplusplus
extern "C" {
#endif

typedef void (*plab_pool_body)(void *context, long index);

/// Runs body(context, i) for every i in 0..<count, on the calling thread and the pool's
/// workers, and returns when all have returned. A call made while another job runs (from
/// inside a body, or from a second thread) runs its iterations on its own thread, in order.
void plab_pool_run(long count, plab_pool_body body, void *context);

/// Starts `threads - 1` workers (once; later calls change nothing). Without it the pool
/// has no workers and every job runs on its caller.
void plab_pool_start(int threads);

/// How many jobs were shared with a worker, and how many times a worker slept, since start:
/// figures for tests and benchmarks.
long plab_pool_shared_jobs(void);
long plab_pool_sleeps(void);

#ifdef __cplusplus
}
#endif

#endif
