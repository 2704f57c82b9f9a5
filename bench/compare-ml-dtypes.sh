#!/usr/bin/env bash
# Side-by-side rounding throughput: plab's kernels and NumPy + ml_dtypes on the same inputs.
# Installs numpy and ml_dtypes from PyPI into a throwaway virtual environment (never a test
# dependency). Usage: bench/compare-ml-dtypes.sh
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$root/scripts/setup"
swift build -c release --package-path "$root" --product plab >&2
"$root/.build/release/plab" bench rounding --save-input "$work/input.f32"
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet numpy ml_dtypes
"$work/venv/bin/python" "$root/bench/ml_dtypes_compare.py" "$work/input.f32"
