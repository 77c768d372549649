#!/usr/bin/env bash
# The concurrent parts under ThreadSanitizer: stream and event tests, then whole generations
# whose weights stream through the copy thread while the thread pool computes (plain, with
# a throttled link, with n-gram and self-draft speculation, a MoE model). Any data race
# fails the run. Not part of scripts/test.sh (it adds a third full build); run it after
# changing streams, the streamer or the scheduler.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$repo/scripts/setup.sh"
build="$repo/build-tsan"
SPECOFFLOAD_BUILD_DIR="$build" bash "$repo/scripts/build.sh" \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSPECOFFLOAD_TSAN=ON -DSPECOFFLOAD_CUDA=OFF -DSPECOFFLOAD_BENCH=OFF
export TSAN_OPTIONS="halt_on_error=1 exitcode=66 second_deadlock_stack=1"
"$build/tests/unit_tests" --gtest_filter='CpuStream*:KvCache*:Spec*:Simulated*'
bin="$build/apps/specoffload"
prompts="$repo/data/prompts.txt"
run() { echo "+ generate $*" >&2; "$bin" generate -m default -f "$prompts" -n 12 --temp 0 --max-rows 8 "$@" >/dev/null; }
run --device-mem 30M
run --device-mem 30M --sim-link-gbps 2 --ring-slots 3
run --device-mem 30M --draft-ngram
run --device-mem 30M --draft-layers 8 --draft-max 3
"$bin" generate -m "$repo/configs/tiny-mixtral" --load-format dummy -p "Hello" -n 16 --temp 0 --device-mem 8M \
  --draft-model "$repo/configs/tiny-mixtral" --draft-length fixed --draft-max 3 --simulate-acceptance 0.7 >/dev/null
echo "no data races found" >&2
