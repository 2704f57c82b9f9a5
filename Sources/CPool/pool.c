// See plab_pool.h. One job is published at a time, under `lock`; the iterations are claimed
// with an atomic counter. A worker that took a job (under the lock) is counted in `active`
// until it stops claiming, and the next job is only published once `active` is 0, so a late
// worker never claims from a job it did not read.
#define _GNU_SOURCE
#include "plab_pool.h"
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <time.h>

/// How long a worker polls for the next job before sleeping.
#define SPIN_NANOSECONDS 200000L

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
static _Atomic long generation;       // bumped (under lock) when a job is published
static _Atomic long next_index;       // the job's next unclaimed iteration
static _Atomic long remaining;        // the job's iterations not yet finished
static _Atomic int active;            // workers that took the job and may still claim
static _Atomic int busy;              // a job is running: a second caller runs alone
static _Atomic long shared_jobs, sleeps;
static int sleepers;                  // under lock
static plab_pool_body job_body;       // under lock
static void *job_context;
static long job_count;
static _Atomic int workers;           // set once, by plab_pool_start

static inline void relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static long now_nanoseconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long)t.tv_sec * 1000000000L + t.tv_nsec;
}

static void claim_and_run(plab_pool_body body, void *context, long count) {
    for (;;) {
        long i = atomic_fetch_add(&next_index, 1);
        if (i >= count) return;
        body(context, i);
        atomic_fetch_sub(&remaining, 1);
    }
}

static void *worker_main(void *unused) {
    (void)unused;
    long seen = 0;
    for (;;) {
        long start = now_nanoseconds();
        unsigned polls = 0;
        while (atomic_load(&generation) == seen) {
            relax();
            if ((++polls & 255) == 0 && now_nanoseconds() - start > SPIN_NANOSECONDS) {
                pthread_mutex_lock(&lock);
                if (atomic_load(&generation) == seen) {
                    atomic_fetch_add(&sleeps, 1);
                    sleepers++;
                    while (atomic_load(&generation) == seen) pthread_cond_wait(&wake, &lock);
                    sleepers--;
                }
                pthread_mutex_unlock(&lock);
                break;
            }
        }
        pthread_mutex_lock(&lock);
        seen = atomic_load(&generation);
        plab_pool_body body = job_body;
        void *context = job_context;
        long count = job_count;
        atomic_fetch_add(&active, 1);
        pthread_mutex_unlock(&lock);
        claim_and_run(body, context, count);
        atomic_fetch_sub(&active, 1);
    }
    return 0;
}

void plab_pool_start(int threads) {
    pthread_mutex_lock(&lock);
    if (workers == 0 && threads > 1) {
        for (int w = 0; w < threads - 1; w++) {
            pthread_t thread;
            pthread_attr_t attributes;
            pthread_attr_init(&attributes);
            pthread_attr_setdetachstate(&attributes, PTHREAD_CREATE_DETACHED);
            if (pthread_create(&thread, &attributes, worker_main, 0) == 0) atomic_fetch_add(&workers, 1);
            pthread_attr_destroy(&attributes);
        }
    }
    pthread_mutex_unlock(&lock);
}

void plab_pool_run(long count, plab_pool_body body, void *context) {
    if (count <= 0) return;
    int expected = 0;
    if (count == 1 || atomic_load(&workers) == 0 || !atomic_compare_exchange_strong(&busy, &expected, 1)) {
        for (long i = 0; i < count; i++) body(context, i);
        return;
    }
    pthread_mutex_lock(&lock);
    unsigned waits = 0;
    while (atomic_load(&active) > 0) {
        pthread_mutex_unlock(&lock);
        relax();
        if ((++waits & 4095) == 0) sched_yield();  // a late worker may have been preempted
        pthread_mutex_lock(&lock);
    }
    job_body = body;
    job_context = context;
    job_count = count;
    atomic_store(&next_index, 0);
    atomic_store(&remaining, count);
    atomic_fetch_add(&generation, 1);
    atomic_fetch_add(&shared_jobs, 1);
    if (sleepers > 0) pthread_cond_broadcast(&wake);
    pthread_mutex_unlock(&lock);
    claim_and_run(body, context, count);
    unsigned polls = 0;
    while (atomic_load(&remaining) > 0) {
        relax();
        if ((++polls & 4095) == 0) sched_yield();  // a worker may have been preempted
    }
    atomic_store(&busy, 0);
}

long plab_pool_shared_jobs(void) { return atomic_load(&shared_jobs); }
long plab_pool_sleeps(void) { return atomic_load(&sleeps); }
