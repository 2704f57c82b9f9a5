// oneDNN decides how many threads a product uses from its threading runtime: with OpenMP (as
// Debian builds it), from the calling thread's OpenMP thread count, which is the processors
// unless set. The lab computes each rectangle of a product on one of its own threads, so each
// call first sets that thread's count to one: a product never starts threads of its own.
#define _GNU_SOURCE
#include "plab_dnnl.h"
#include <oneapi/dnnl/dnnl.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>

static void (*set_openmp_threads)(int);
static int (*openmp_threads)(void);
static pthread_once_t found = PTHREAD_ONCE_INIT;

// The OpenMP runtime oneDNN was linked with, if it was: looked up where it is loaded rather
// than linked, so the lab does not need that runtime's development files.
static void find_openmp(void) {
    set_openmp_threads = (void (*)(int))dlsym(RTLD_DEFAULT, "omp_set_num_threads");
    openmp_threads = (int (*)(void))dlsym(RTLD_DEFAULT, "omp_get_max_threads");
}

int plab_dnnl_thread_limit(void) {
    pthread_once(&found, find_openmp);
    return openmp_threads ? openmp_threads() : -1;
}

int plab_dnnl_confined(void) {
    pthread_once(&found, find_openmp);
    unsigned runtime = dnnl_version()->cpu_runtime;
    return runtime == DNNL_RUNTIME_SEQ || (runtime == DNNL_RUNTIME_OMP && set_openmp_threads && openmp_threads);
}

int plab_dnnl_sgemm(char transa, char transb, long m, long n, long k,
                    const float *a, long lda, const float *b, long ldb,
                    float beta, float *c, long ldc) {
    pthread_once(&found, find_openmp);
    if (set_openmp_threads) set_openmp_threads(1);
    dnnl_status_t status = dnnl_sgemm(transa, transb, m, n, k, 1.0f, a, lda, b, ldb, beta, c, ldc);
    return status == dnnl_success ? 0 : (int)status;
}

static const char *isa_name(dnnl_cpu_isa_t isa) {
    switch (isa) {
    case dnnl_cpu_isa_sse41: return "sse41";
    case dnnl_cpu_isa_avx: return "avx";
    case dnnl_cpu_isa_avx2: return "avx2";
    case dnnl_cpu_isa_avx2_vnni: return "avx2_vnni";
    case dnnl_cpu_isa_avx512_core: return "avx512_core";
    case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni";
    case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16";
    case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx";
    default: return NULL;
    }
}

static const char *runtime_name(unsigned runtime) {
    switch (runtime) {
    case DNNL_RUNTIME_SEQ: return "sequential";
    case DNNL_RUNTIME_OMP: return "OpenMP";
    case DNNL_RUNTIME_TBB: return "TBB";
    case DNNL_RUNTIME_THREADPOOL: return "threadpool";
    default: return "other runtime";
    }
}

void plab_dnnl_describe(char *buffer, int size) {
    const dnnl_version_t *v = dnnl_version();
    dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
    char number[16];
    snprintf(number, sizeof number, "isa 0x%x", (unsigned)isa);
    const char *name = isa_name(isa);
    snprintf(buffer, (size_t)size, "oneDNN %d.%d.%d (%s, %s)", v->major, v->minor, v->patch,
             name ? name : number, runtime_name(v->cpu_runtime));
}
