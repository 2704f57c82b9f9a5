// oneDNN's float32 matrix product, kept on the calling thread (see dnnl.c).
#ifndef PLAB_DNNL_H
#define PLAB_DNNL_H

/// C (m×n, row-major, leading dimension ldc) = op(A)·op(B) + beta·C, with op(A) m×k and
/// op(B) k×n, all row-major; transa/transb are 'N' or 'T'. Computed by `dnnl_sgemm` on the
/// calling thread alone. Returns 0, or oneDNN's status when it refused the arguments.
int plab_dnnl_sgemm(char transa, char transb, long m, long n, long k,
                    const float *a, long lda, const float *b, long ldb,
                    float beta, float *c, long ldc);

/// How many threads oneDNN may give a product called from this thread: the OpenMP runtime's
/// limit for it (`omp_get_max_threads`), or -1 when oneDNN was built without OpenMP.
int plab_dnnl_thread_limit(void);

/// 1 when a product stays on its calling thread: oneDNN is sequential, or runs on OpenMP and
/// that runtime's thread setting was found; 0 otherwise (a TBB or threadpool build, whose
/// threads the lab cannot limit).
int plab_dnnl_confined(void);

/// "oneDNN 2.6.3 (avx512_core_bf16, OpenMP)": the library's version, the instruction set its
/// kernels were generated for on this processor and its threading runtime, into `buffer`.
void plab_dnnl_describe(char *buffer, int size);

#endif
