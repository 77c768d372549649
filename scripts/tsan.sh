#!/usr/bin/env bash
# The concurrent parts under ThreadSanitizer: stream, event, compute-gate and request-queue
# tests, then whole generations whose weights stream through the copy thread while the
# thread pool computes (plain, with a throttled link, with n-gram and self-draft
# speculation, interleaved half-batches drafting on a second thread, a MoE model), and the
# server under concurrent requests and a draining shutdown. Any data race fails the run.
# scripts/test.sh runs it (CI); run it alone after changing streams, the streamer, the
# scheduler or the server.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$repo/scripts/setup.sh"
build="$repo/build-tsan"
SPECOFFLOAD_BUILD_TARGETS="concurrency_tests specoffload" SPECOFFLOAD_BUILD_DIR="$build" bash "$repo/scripts/build.sh" \
  -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSPECOFFLOAD_TSAN=ON -DSPECOFFLOAD_CUDA=OFF -DSPECOFFLOAD_BENCH=OFF
export TSAN_OPTIONS="halt_on_error=1 exitcode=66 second_deadlock_stack=1 suppressions=$repo/scripts/tsan.supp"
"$build/tests/concurrency_tests"
bash "$repo/scripts/pipeline_runs.sh" "$build"
echo "no data races found" >&2
