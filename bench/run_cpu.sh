#!/usr/bin/env bash
# Regenerates every CPU result and plot of docs/BENCHMARKS.md from scratch: installs what it
# needs, builds, runs each benchmark into bench/results/*_<date>.json, then draws the plots
# into docs/img/. Takes a few hours on a 2-core machine; nothing else should run meanwhile.
#
#   SPECOFFLOAD_BENCH_QUICK=1   fewer prompts and tokens (a plumbing check, not numbers)
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${SPECOFFLOAD_CACHE:-$HOME/.cache/specoffload}"
bash "$repo/scripts/setup.sh"
bash "$repo/scripts/build.sh"
py="$cache/venv/bin/python"
out="$repo/bench/results"
day="$(date +%F)"
quick="${SPECOFFLOAD_BENCH_QUICK:-0}"
step() { echo "=== $* ===" >&2; }
cd "$repo"
if [ "$quick" = "1" ]; then
  size=(--prompts 8 --tokens 16); sweep=(--tokens 16); hostkv=(--rows 8,16 --tokens 4); out="$(mktemp -d)"
else
  size=(--prompts 32 --tokens 128); sweep=(--tokens 64); hostkv=()
fi
step "this engine vs llama.cpp (decode, prefill, batched)"
"$py" bench/cpu_vs_llama.py --out "$out/cpu_vs_llama_$day.json"
"$py" bench/quant_cpu.py --out "$out/cpu_vs_llama_q4k_$day.json"
"$py" bench/quant_cpu.py --types Q5_K Q3_K Q2_K --shapes qwen3moe-64x768-top8 --out "$out/cpu_vs_llama_quant_$day.json"
for link in 0.5 0.25 0.1; do
  step "offload ablation, ${link} GB/s link"
  "$py" bench/offload_cpu.py "${size[@]}" --link-gbps "$link" --out "$out/offload_cpu_${link}_$day.json"
done
step "the draft's prompt window on summaries"
"$py" bench/draft_context_cpu.py "${size[@]}" --out "$out/draft_context_cpu_0.5_$day.json"
step "sweeps: rows, draft length, device memory, generation length, a timeline"
"$py" bench/sweeps_cpu.py "${sweep[@]}" --out "$out/sweeps_cpu_$day.json" --trace-out "$out/timeline_trace_$day.json"
step "rows with the KV cache on the device vs in host memory"
"$py" bench/host_kv_cpu.py "${hostkv[@]}" --out "$out/host_kv_cpu_$day.json"
step "planner prediction vs measurement"
"$py" bench/planner_accuracy.py --out "$out/planner_accuracy_$day.json"
step "speculative decoding on the resident model (drafters, fixed k vs adaptive)"
"$py" bench/spec_cpu.py --modes adaptive --out "$out/spec_cpu_adaptive_$day.json"
step "run vs the engine API"
"$py" bench/run_overhead.py --tokens 48 --repeats 3 --out "$out/run_overhead_$day.json"
step "plots"
"$py" bench/plots.py --results "$out" --out "$([ "$quick" = "1" ] && echo "$out/img" || echo "$repo/docs/img")"
echo "results in $out" >&2
