#!/usr/bin/env bash
# Regenerates the GPU results of docs/BENCHMARKS.md on a machine with an NVIDIA GPU (and
# torch, transformers and accelerate for the baseline): the Mixtral-8x7B-scale run with the
# accelerate device_map baseline, then the plots. Builds first.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
bash scripts/build.sh
device="$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1 | tr ' ' '_' | tr -cd '[:alnum:]_-' | tr '[:upper:]' '[:lower:]')"
python3 bench/gpu_offload.py --bin build/apps/specoffload --accelerate \
  --out "bench/results/gpu_offload_${device}_$(date +%F).json"
# Issue 16: 256 rows with the target's KV cache in pinned host memory (attention on CPU threads), no
# speculation against rows / sweep time, and a simulated alpha of 0.7.
python3 bench/gpu_offload.py --bin build/apps/specoffload --rows 256 --prompts 256 --kv-cache host \
  --device-mem 5.9G --alphas 0.7 --timeout 1800 \
  --out "bench/results/gpu_offload_host_kv_${device}_$(date +%F).json"
# Issue 18: one streamed run per MoE config at 256 rows with host KV, self-drafting from the
# target's first layers (no small draft of their vocabularies is in configs/); gpt-oss-120b's
# experts are MXFP4 as released (~60 GiB), Qwen3-30B-A3B is bf16 (~61 GiB), DeepSeek-V2-Lite bf16
# (~31 GiB, latent attention), DeepSeek-V3 in Q2_K (206 GiB a pass; dummy layers of a kind share one
# pinned host slab, so it streams from a few GiB of host memory; bf16 would copy 1.26 TiB a pass). Short
# prompts and 32 tokens keep the decode passes full; a GPU holds the self-draft's layers and head as
# a copy beside --device-mem (gpt-oss-120b's: 7.8 GB), so its target gets 12G of the 24G.
for entry in qwen3-30b-a3b gpt-oss-120b deepseek-v2-lite qwen3-235b-a22b:Q2_K deepseek-v3:Q2_K; do
  target="${entry%%:*}" dtype=""; [ "$entry" != "$target" ] && dtype="--dummy-type ${entry#*:}"
  weights=16G; [ "$target" = gpt-oss-120b ] && weights=12G
  python3 bench/gpu_offload.py --bin build/apps/specoffload --target "configs/$target" $dtype --draft layers:4 \
    --rows 256 --prompts 256 --prompt-chars 32 --gen 32 --kv-cache host --device-mem "$weights" --alphas 0.7 \
    --timeout 1800 --out "bench/results/gpu_offload_${target}_${device}_$(date +%F).json"
done
python3 bench/plots.py
