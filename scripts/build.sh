#!/usr/bin/env bash
# Configures and builds into build/ (Release). Extra arguments go to CMake's configure step.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${SPECOFFLOAD_CACHE:-$HOME/.cache/specoffload}"
build="${SPECOFFLOAD_BUILD_DIR:-$repo/build}"
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
cmake -S "$repo" -B "$build" -G Ninja "${launcher[@]}" \
  -DSPECOFFLOAD_PYTHON="$cache/venv/bin/python" \
  -DSPECOFFLOAD_DEFAULT_MODEL="$cache/models/SmolLM2-135M-Instruct.Q4_1.gguf" \
  -DSPECOFFLOAD_GEMMA3_MODEL="$cache/models/gemma-3-270m-q4_k_m.gguf" "$@" >/dev/null
# SPECOFFLOAD_BUILD_TARGETS: build only these (space-separated), e.g. for the sanitizer stages.
targets=()
for target in ${SPECOFFLOAD_BUILD_TARGETS:-}; do targets+=(--target "$target"); done
cmake --build "$build" --parallel "$(nproc)" "${targets[@]}"
