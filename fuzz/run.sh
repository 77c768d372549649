#!/usr/bin/env bash
# Runs every fuzz target for its share of <seconds>, starting from generated seed files and
# the corpus earlier runs left in <build-dir>/fuzz-corpus/. Exits non-zero when a target
# finds a crash, an out-of-bounds read, undefined behaviour, a leak, a timeout or an OOM;
# the input that triggers it is saved in <build-dir>/fuzz-findings/.
#
#   fuzz/run.sh <build-dir> <seconds>     (build-dir configured with -DSPECOFFLOAD_FUZZ=ON)
#   reproduce:  <build-dir>/fuzz/gguf_fuzz <build-dir>/fuzz-findings/gguf_fuzz-crash-...
set -euo pipefail
if [ $# -ne 2 ]; then
  echo "usage: $0 <build-dir> <seconds>" >&2
  exit 2
fi
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="$(cd "$1" && pwd)"
seconds="$2"
cache="${SPECOFFLOAD_CACHE:-$HOME/.cache/specoffload}"
python="${SPECOFFLOAD_PYTHON:-$cache/venv/bin/python}"
targets=(gguf_fuzz safetensors_fuzz)
declare -A dictionary=([gguf_fuzz]=gguf.dict [safetensors_fuzz]=safetensors.dict)

seeds="$build/fuzz-seeds"
rm -rf "$seeds"
mkdir -p "$seeds"
if "$python" -c "import gguf, numpy" 2>/dev/null; then
  "$python" "$repo/fuzz/make_seeds.py" "$seeds" 2>/dev/null
else
  echo "[fuzz] warning: $python cannot import gguf (run scripts/setup.sh); fuzzing without seed files" >&2
fi

per_target=$(( seconds / ${#targets[@]} ))
[ "$per_target" -lt 1 ] && per_target=1
failed=()
for target in "${targets[@]}"; do
  binary="$build/fuzz/$target"
  if [ ! -x "$binary" ]; then
    echo "[fuzz] $binary is missing: configure $build with clang and -DSPECOFFLOAD_FUZZ=ON, then build" >&2
    exit 2
  fi
  corpus="$build/fuzz-corpus/$target"
  findings="$build/fuzz-findings"
  log="$build/fuzz-$target.log"
  mkdir -p "$corpus" "$seeds/$target" "$findings"
  echo "[fuzz] $target for ${per_target}s (log: $log)" >&2
  if "$binary" -max_total_time="$per_target" -timeout=10 -rss_limit_mb=2048 -max_len=16384 \
       -dict="$repo/fuzz/${dictionary[$target]}" -artifact_prefix="$findings/$target-" \
       -print_final_stats=1 "$corpus" "$seeds/$target" >"$log" 2>&1; then
    grep -E "^stat::number_of_executed_units|^stat::new_units_added" "$log" | sed "s/^/[fuzz]   /" >&2 || true
  else
    echo "[fuzz] $target FOUND A PROBLEM; the input is in $findings, the report follows:" >&2
    grep -v -E "^#[0-9]+\s+(NEW|REDUCE|pulse|INITED)" "$log" | tail -n 60 >&2
    failed+=("$target")
  fi
done
if [ ${#failed[@]} -ne 0 ]; then
  echo "[fuzz] failed: ${failed[*]}" >&2
  exit 1
fi
echo "[fuzz] no findings" >&2
