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
stage() { echo; echo "=== $* ===" >&2; }

stage "setup"
bash "$repo/scripts/setup.sh"

stage "build (Release, warnings as errors)"
bash "$repo/scripts/build.sh" -DSPECOFFLOAD_WERROR=ON

stage "tests"
ctest --test-dir "$repo/build" --output-on-failure --timeout 1500 -j "$(nproc)"

if [ "${SPECOFFLOAD_TEST_QUICK:-0}" = "1" ]; then exit 0; fi

stage "unit tests under AddressSanitizer and UBSan"
# note: without the CUDA backend: its tests skip on a machine without a GPU anyway.
SPECOFFLOAD_BUILD_DIR="$repo/build-sanitize" bash "$repo/scripts/build.sh" \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSPECOFFLOAD_SANITIZE=ON -DSPECOFFLOAD_CUDA=OFF
ctest --test-dir "$repo/build-sanitize" --output-on-failure -L unit -j "$(nproc)"
stage "the pipeline and the server under AddressSanitizer and UBSan"
bash "$repo/scripts/pipeline_runs.sh" "$repo/build-sanitize"

stage "the pipeline, the scheduler and the server under ThreadSanitizer"
bash "$repo/scripts/tsan.sh"

if [ -f "$repo/fuzz/CMakeLists.txt" ]; then
  stage "fuzzing the model-file parsers"
  SPECOFFLOAD_BUILD_DIR="$repo/build-fuzz" bash "$repo/scripts/build.sh" \
    -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_C_COMPILER=clang -DSPECOFFLOAD_FUZZ=ON -DSPECOFFLOAD_TESTS=OFF \
    -DSPECOFFLOAD_CUDA=OFF
  bash "$repo/fuzz/run.sh" "$repo/build-fuzz" "${SPECOFFLOAD_FUZZ_SECONDS:-60}"
fi
echo "all tests passed" >&2
