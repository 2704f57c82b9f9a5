#!/usr/bin/env bash
# Regenerates the Hugging Face reference fixtures in Tests/Fixtures/ (see README.md here).
#
# Creates a throwaway virtual environment (default /tmp/plab-fixture-venv, kept between runs
# so a second run does not download again; set PLAB_FIXTURE_VENV to put it elsewhere),
# installs torch, transformers, safetensors and peft from PyPI, and runs make_llama_fixture.py,
# make_mixtral_fixture.py, make_qwen_fixture.py and make_lora_fixture.py (the last three build
# plab to check the checkpoints the lab writes); then, in a second small environment with only the `tokenizers`
# library (default /tmp/plab-tok-venv, or PLAB_TOKENIZER_VENV), make_tokenizer_fixture.py.
# Extra arguments are passed to the scripts (e.g. --out DIR).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="${PLAB_FIXTURE_VENV:-/tmp/plab-fixture-venv}"
python="${PYTHON:-python3}"

if [ ! -x "$venv/bin/python" ]; then
    echo "creating virtual environment in $venv"
    "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --upgrade pip
# The default Linux torch wheel on PyPI brings CUDA libraries along (a few GB); only the CPU
# is used. numpy is needed by torch's tensor conversion.
"$venv/bin/python" -m pip install --quiet torch transformers safetensors numpy peft

cd "$root"
"$venv/bin/python" "$here/make_llama_fixture.py" --out "$root/Tests/Fixtures" "$@"
swift build -c release --product plab >&2
(cd "$here" && "$venv/bin/python" make_mixtral_fixture.py --out "$root/Tests/Fixtures" --plab "$root/.build/release/plab" "$@")
(cd "$here" && "$venv/bin/python" make_qwen_fixture.py --out "$root/Tests/Fixtures" --plab "$root/.build/release/plab" "$@")
(cd "$here" && "$venv/bin/python" make_lora_fixture.py --out "$root/Tests/Fixtures" --plab "$root/.build/release/plab" "$@")
"$venv/bin/python" "$here/make_sharded_fixture.py" --out "$root/Tests/Fixtures" "$@"

# The tokenizer fixtures need nothing but `tokenizers` (a few MB, no torch).
tokvenv="${PLAB_TOKENIZER_VENV:-/tmp/plab-tok-venv}"
if [ ! -x "$tokvenv/bin/python" ]; then
    echo "creating virtual environment in $tokvenv"
    "$python" -m venv "$tokvenv"
fi
"$tokvenv/bin/python" -m pip install --quiet tokenizers
"$tokvenv/bin/python" "$here/make_tokenizer_fixture.py" --out "$root/Tests/Fixtures" "$@"
