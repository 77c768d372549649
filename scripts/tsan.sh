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
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSPECOFFLOAD_TSAN=ON -DSPECOFFLOAD_CUDA=OFF -DSPECOFFLOAD_BENCH=OFF
export TSAN_OPTIONS="halt_on_error=1 exitcode=66 second_deadlock_stack=1 suppressions=$repo/scripts/tsan.supp"
"$build/tests/concurrency_tests"
bin="$build/apps/specoffload"
# note: a few prompts and tokens: under TSan the engine runs 30-40x slower.
prompts="$(mktemp)"
head -n 6 "$repo/data/prompts.txt" >"$prompts"
run() { echo "+ generate $*" >&2; "$bin" generate -m default -f "$prompts" -n 8 --temp 0 --max-rows 4 "$@" >/dev/null; }
run --device-mem 30M
run --device-mem 30M --sim-link-gbps 2 --ring-slots 3
run --device-mem 30M --draft-ngram
run --device-mem 30M --draft-layers 8 --draft-max 3
run --device-mem 30M --sim-link-gbps 1 --draft-layers 8 --draft-max 3 --draft-length fixed --schedule interleaved
"$bin" generate -m "$repo/configs/tiny-mixtral" --load-format dummy -p "Hello" -n 16 --temp 0 --device-mem 8M \
  --draft-model "$repo/configs/tiny-mixtral" --draft-length fixed --draft-max 3 --simulate-acceptance 0.7 >/dev/null

# The server: concurrent streaming and plain requests, then a draining SIGTERM.
log="$(mktemp)"
"$bin" serve -m default --port 0 --temp 0 --max-rows 4 --draft-layers 4 --schedule interleaved 2>"$log" &
server=$!
for _ in $(seq 100); do grep -q "on http://" "$log" && break; sleep 0.2; done
port="$(sed -n 's|.*on http://[^:]*:\([0-9]*\).*|\1|p' "$log" | head -1)"
"$repo/scripts/serve_smoke.py" "$port" || { cat "$log" >&2; exit 1; }
kill -TERM "$server"
wait "$server" || { cat "$log" >&2; exit 1; }
echo "no data races found" >&2
