#!/usr/bin/env bash
# The whole test suite: installs what it needs, builds, runs unit tests and the parity
# tests against the outside references (llama.cpp, HF tokenizers, the gguf package),
# then the sanitizer builds (ASan/UBSan unit tests; TSan over the concurrent parts) and a
# short fuzzing run.
#
#   SPECOFFLOAD_TEST_QUICK=1   skip the sanitizer and fuzz stages
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${SPECOFFLOAD_CACHE:-$HOME/.cache/specoffload}"
stage() { echo; echo "=== $* (at ${SECONDS} s) ===" >&2; }

stage "setup"
bash "$repo/scripts/setup.sh"

stage "build (Release, warnings as errors)"
bash "$repo/scripts/build.sh" -DSPECOFFLOAD_WERROR=ON

stage "tests"
ctest --test-dir "$repo/build" --output-on-failure --timeout 1500 -j "$(nproc)"

if [ "${SPECOFFLOAD_TEST_QUICK:-0}" = "1" ]; then exit 0; fi

# The sanitizer builds use clang: it compiles this code base two to three times faster than
# gcc does with the sanitizers on (CI has two cores), and one ASan/UBSan build also gives the
# libFuzzer targets. No CUDA backend: its tests skip on a machine without a GPU anyway.
stage "unit tests under AddressSanitizer and UBSan"
SPECOFFLOAD_BUILD_TARGETS="unit_tests specoffload gguf_fuzz safetensors_fuzz" \
  SPECOFFLOAD_BUILD_DIR="$repo/build-sanitize" bash "$repo/scripts/build.sh" \
  -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DSPECOFFLOAD_SANITIZE=ON -DSPECOFFLOAD_FUZZ=ON -DSPECOFFLOAD_CUDA=OFF -DSPECOFFLOAD_BENCH=OFF
ctest --test-dir "$repo/build-sanitize" --output-on-failure -L unit -j "$(nproc)"
stage "the pipeline and the server under AddressSanitizer and UBSan"
bash "$repo/scripts/pipeline_runs.sh" "$repo/build-sanitize"

stage "fuzzing the model-file parsers"
bash "$repo/fuzz/run.sh" "$repo/build-sanitize" "${SPECOFFLOAD_FUZZ_SECONDS:-60}"

stage "the pipeline, the scheduler and the server under ThreadSanitizer"
bash "$repo/scripts/tsan.sh"

echo "all tests passed in ${SECONDS} s" >&2
