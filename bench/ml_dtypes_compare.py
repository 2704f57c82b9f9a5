"""Rounding throughput of NumPy + ml_dtypes `astype`, for BENCHMARKS.md.

Reads the float32 input that `plab bench rounding --save-input FILE` wrote (the very values
plab's own rounding benchmark uses) and times float32 -> format conversion into a
preallocated array, one thread, best of several repeats. Run through
bench/compare-ml-dtypes.sh, which installs numpy and ml_dtypes into a throwaway virtual
environment.
"""
import sys
import time

import ml_dtypes
import numpy as np


def best_time(fn, budget=0.3):
    fn()
    best = float("inf")
    start = time.perf_counter()
    calls = 0
    while calls < 3 or time.perf_counter() - start < budget:
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
        calls += 1
    return best


def main(path):
    x = np.fromfile(path, dtype=np.float32)
    formats = [("bf16", ml_dtypes.bfloat16), ("fp16", np.float16),
               ("e4m3", ml_dtypes.float8_e4m3fn), ("e5m2", ml_dtypes.float8_e5m2)]
    print(f"numpy {np.__version__}, ml_dtypes {ml_dtypes.__version__}, {x.size} float32 inputs")
    for name, dtype in formats:
        out = np.empty(x.shape, dtype=dtype)
        with np.errstate(all="ignore"):
            t = best_time(lambda: np.copyto(out, x, casting="unsafe"))
        print(f"astype {name:5s} {x.size / t / 1e9:6.3f} G elem/s")


if __name__ == "__main__":
    main(sys.argv[1])
