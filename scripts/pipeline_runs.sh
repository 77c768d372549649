#!/usr/bin/env bash
# Whole generations through the concurrent pipeline, for the sanitizer builds (scripts/test.sh
# runs it with the AddressSanitizer build, scripts/tsan.sh with the ThreadSanitizer one):
# weights streaming through the copy thread while the pool computes (plain, throttled link,
# n-gram and self-draft speculation, interleaved half-batches drafting on a second thread, the
# disk tier, a layer-major prefill wave, the KV cache in host memory with its copy threads, a
# dummy MoE with a draft model), then the server under
# concurrent requests and a draining SIGTERM. A sanitizer report fails the run.
#
#   bash scripts/pipeline_runs.sh BUILD_DIR
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="$1/apps/specoffload"
# note: a few prompts and tokens: under TSan the engine runs 30-40x slower.
prompts="$(mktemp)"
head -n 6 "$repo/data/prompts.txt" >"$prompts"
run() { echo "+ generate $*" >&2; "$bin" generate -m default -f "$prompts" -n 8 --temp 0 --max-rows 4 "$@" >/dev/null; }
run --device-mem 30M
run --device-mem 30M --sim-link-gbps 2 --ring-slots 3
run --device-mem 30M --draft-ngram
run --device-mem 30M --draft-layers 8 --draft-max 3
run --device-mem 30M --sim-link-gbps 1 --draft-layers 8 --draft-max 3 --draft-length fixed --schedule interleaved
run --device-mem 30M --host-mem 25M --draft-layers 4 --schedule interleaved
run --device-mem 30M --step-tokens 4096 --micro-batch 64
run --device-mem 30M --sim-link-gbps 2 --kv-cache host --draft-layers 4 --schedule interleaved --micro-batch 64
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
rm -f "$prompts" "$log"
