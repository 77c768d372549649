#!/usr/bin/env bash
# The GPU checks in one call on a lent GPU machine (repo root; binaries built here, carried with the call):
#   bash dev/gpu_check/run.sh correct   CUDA op tests, then dev/gpu_check/check.py on every random model
#   bash dev/gpu_check/run.sh bench     one streamed benchmark per MoE config that fits the host's RAM
#                                       (BENCH_TARGETS: config[:dummy type] list; BENCH_LIMIT: seconds per run)
#   bash dev/gpu_check/run.sh all       both, one machine start
# Carry: build/apps/specoffload, build/tests/unit_tests and .gpu (dev/gpu_check/prepare.sh fills it: the gguf
# wheel, the Debian-only shared libraries the binaries link, a slice of the benchmark prompts).
set -u
mode="${1:-correct}"
out="${OUT:-/tmp/gpu_check_out}"
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
cublas="$(find /usr/local /opt /usr/lib -name 'libcublas.so.13*' 2>/dev/null | head -1)"
export LD_LIBRARY_PATH="$PWD/.gpu/lib:$(dirname "${cublas:-/nonexistent/x}"):${LD_LIBRARY_PATH:-}"
export PYTHONUNBUFFERED=1
missing="$(ldd build/apps/specoffload build/tests/unit_tests | grep 'not found' | sort -u)"
[ -n "$missing" ] && { echo "missing libraries: $missing"; exit 3; }

if [ "$mode" = correct ] || [ "$mode" = all ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .gpu/whl/*.whl || exit 4
  export PYTHONPATH=/tmp/site
  timeout 150 build/tests/unit_tests --gtest_filter='Cuda*' >"$out/cuda_ops.log" 2>&1
  echo "unit_tests Cuda*: rc $?"; grep -E '^\[  (FAILED|PASSED) |OK \]|FAILED|Failure|error' "$out/cuda_ops.log" | head -40
  python3 dev/gpu_check/make_models.py /tmp/gpu_models >/dev/null || exit 5
  timeout 330 python3 dev/gpu_check/check.py --bin build/apps/specoffload --models /tmp/gpu_models \
    --glob "${GPU_CHECK_MODELS:-*.gguf}" --out "$out/e2e.json" >"$out/e2e.log" 2>&1
  echo "check.py: rc $?"; tail -35 "$out/e2e.log"
fi

if [ "$mode" = bench ] || [ "$mode" = all ]; then
  export SPECOFFLOAD_SHARED_DATA="$PWD/.gpu/data"
  build/apps/specoffload profile --backend cuda --seconds 0.2 -o "$out/profile.json" >/dev/null 2>"$out/profile.log"
  # 256 rows with host KV, self-drafting from the target's first 4 layers at a simulated alpha of 0.7; the
  # targets' weights stream from pinned host memory (qwen3-30b-a3b bf16 61 GB, gpt-oss-120b MXFP4 experts
  # 63 GB, deepseek-v2-lite bf16 31 GB, qwen3-235b-a22b in Q2_K 77 GB, deepseek-v3 in Q2_K 221 GB a pass).
  # Dummy layers of a kind share one pinned host slab, so the host holds a few GB whatever the size; bf16
  # 235B (470 GB) and V3 (1.3 TB) would fit too, at 10 and 27 s of copies a pass. Entries are config[:dummy
  # type]. Short prompts and 32 tokens so full decode passes dominate; only the smallest also runs without
  # speculation.
  for entry in ${BENCH_TARGETS:-deepseek-v2-lite qwen3-30b-a3b gpt-oss-120b qwen3-235b-a22b:Q2_K deepseek-v3:Q2_K}; do
    target="${entry%%:*}" dtype=""; [ "$entry" != "$target" ] && dtype="--dummy-type ${entry#*:}"
    plain=--no-plain; [ "$target" = deepseek-v2-lite ] && plain=
    # note: on a GPU the self-draft's 4 layers and head are a resident copy beside --device-mem: gpt-oss-120b's
    # take 7.8 GB (MXFP4 experts, a 201k-token bf16 head), so its target gets 12G of the 24G.
    weights=16G; [ "$target" = gpt-oss-120b ] && weights=12G
    limit=150; [ "$target" = qwen3-235b-a22b ] && limit=240; [ "$target" = deepseek-v3 ] && limit=400
    limit="${BENCH_LIMIT:-$limit}"
    timeout $limit python3 bench/gpu_offload.py --bin build/apps/specoffload --target "configs/$target" $dtype \
      --draft layers:4 --rows 256 --prompts 256 --prompt-chars 32 --gen 32 --kv-cache host --device-mem $weights \
      --alphas 0.7 $plain --profile "$out/profile.json" --timeout $((limit - 5)) --out "$out/gpu_offload_$target.json" \
      >"$out/bench_$target.log" 2>&1
    echo "$entry: rc $?"; grep -v '^\[' "$out/bench_$target.log" | grep -o '"name": "[^"]*"\|"decode_tokens_per_second": [0-9.]*\|"mean_rows_per_pass": [0-9.]*\|"fraction_of_physical_bound": [0-9.]*\|"achieved_copy_gbps": [0-9.]*\|"error": .\{0,300\}\|"speedup_vs_no_speculation": [0-9.]*\|"mean_pass_seconds": [0-9.]*\|"wall_seconds": [0-9.]*' | tr '\n' ' '; echo
    grep '^prefill' "$out/bench_$target.log" | tail -2
  done
fi
