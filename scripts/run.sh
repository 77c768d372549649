#!/usr/bin/env bash
# The main job: installs what it needs, builds, then answers the 50 requests of
# data/prompts.jsonl (OpenAI Batch API lines: code, summaries, questions) with the default
# model (SmolLM2-135M-Instruct) as one batch job, showing its progress. The answers go to
# out/answers-<time>.jsonl (Batch API output records). Extra arguments go to `specoffload run`
# (e.g. --temp 0, --draft-ngram, --shard 0/2).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$repo/scripts/setup.sh"
bash "$repo/scripts/build.sh" >/dev/null
mkdir -p "$repo/out"
output="$repo/out/answers-$(date +%Y%m%d-%H%M%S).jsonl"
"$repo/build/apps/specoffload" run -m default -i "$repo/data/prompts.jsonl" -o "$output" "$@"
echo "answers: $output" >&2
