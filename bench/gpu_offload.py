#!/usr/bin/env python3
"""GPU benchmark at Mixtral scale (issue 5): one command on a machine with an NVIDIA GPU.

  python3 bench/gpu_offload.py --bin build/apps/specoffload --out bench/results/gpu_offload_<device>_<date>.json

Runs, side by side in one process tree:
  1. `specoffload profile --backend cuda`: the pinned host->device peak of this machine;
  2. this engine with a Mixtral-8x7B-shaped bf16 dummy target streamed from pinned host memory under
     --gpu-mem 24G, without speculation and with a Mistral-7B-shaped dummy draft at simulated acceptance
     alpha in --alphas (every record says "simulated_acceptance");
  3. optionally (--accelerate) Hugging Face transformers + accelerate device_map offloading of the same shapes
     (bench/accelerate_offload.py), under the same GPU memory.
Prints one JSON record per run and writes them all to --out with the ratios the issue asks for: achieved copy
bandwidth / pinned peak, pass time / largest stage, tokens/s vs no speculation and vs accelerate, tokens/s vs the
physical bound B * tau * BW / W, and decode-phase GPU utilization (nvidia-smi sampling).
"""

from __future__ import annotations

import argparse
import datetime
import gzip
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SPECOFFLOAD_SHARED_DATA", REPO.parent / "shared" / "data"))


def prompts(n: int, chars: int) -> list[str]:
    """HumanEval prompts and State of the Union openings, alternating, cut to `chars` characters."""
    code, speeches = [], []
    with gzip.open(SHARED / "HumanEval.jsonl.gz", "rt", encoding="utf-8") as f:
        code = [json.loads(line)["prompt"] for line in f]
    with open(SHARED / "sotu.jsonl", encoding="utf-8") as f:
        for _, line in zip(range(n), f):
            speeches.append(json.loads(line)["text"])
    mixed = [p for pair in zip(code, speeches) for p in pair]
    return [p[:chars] for p in (mixed * (n // max(1, len(mixed)) + 1))[:n]]


class UtilizationSampler:
    """nvidia-smi's utilization.gpu (share of time a kernel ran) every 100 ms while running."""

    def __init__(self):
        self.samples: list[tuple[float, int]] = []
        self._process = None
        self._thread = None

    def __enter__(self):
        try:
            self._process = subprocess.Popen(["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits",
                                              "-lms", "100"], stdout=subprocess.PIPE, text=True)
        except FileNotFoundError:
            return self
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        return self

    def _read(self):
        for line in self._process.stdout:
            if line.strip().isdigit():
                self.samples.append((time.time(), int(line.strip())))

    def __exit__(self, *exc):
        if self._process:
            self._process.terminate()
            self._process.wait()

    def mean_between(self, start: float, end: float) -> float | None:
        values = [v for t, v in self.samples if start <= t <= end]
        return sum(values) / len(values) / 100 if values else None


def run_logged(command: list[str], timeout: float) -> tuple[int, list[str]]:
    """Runs the engine with its --verbose lines passed on to stderr as they come (a run cut short still shows
    where it was); on timeout kills it and returns -9. Returns the exit status and the lines."""
    # note: in this process's group, so a `timeout` around this script takes the engine down with it.
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, errors="replace")
    lines: list[str] = []

    def relay():
        for line in process.stderr:
            lines.append(line.rstrip("\n"))
            print(line, end="", file=sys.stderr, flush=True)

    reader = threading.Thread(target=relay, daemon=True)
    reader.start()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        lines.append(f"killed after {timeout} s")
    reader.join(timeout=10)
    return process.returncode, lines


def run_engine(args, name: str, extra: list[str]) -> dict:
    with tempfile.TemporaryDirectory(prefix="gpu-offload-") as tmp:
        prompt_file = Path(tmp) / "prompts.txt"
        escaped = [p.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t")
                   for p in prompts(args.prompts or args.rows, args.prompt_chars)]
        prompt_file.write_text("\n".join(escaped) + "\n", encoding="utf-8")
        stats_path = Path(tmp) / "stats.json"
        command = [args.bin, "generate", "-v", "-m", args.target, "--load-format", "dummy", "--backend", args.backend,
                   "--gpu-mem", args.gpu_mem, "-f", prompt_file, "-e", "-n", args.gen, "--temp", "0", "--ignore-eos",
                   "--max-rows", args.rows, "--step-tokens", args.step_tokens, "--kv-page-tokens", 64, "--kv-cache",
                   args.kv_cache, "--stats-json", stats_path, *extra]
        if args.device_mem:
            command += ["--device-mem", args.device_mem]
        if args.dummy_type:
            command += ["--dummy-type", args.dummy_type]
        command = [str(c) for c in command]
        print(f"[{name}] {' '.join(command)}", file=sys.stderr, flush=True)
        with UtilizationSampler() as sampler:
            started = time.time()
            returncode, log = run_logged(command, args.timeout)
            ended = time.time()
        if returncode != 0:
            return {"name": name, "error": "\n".join(log[-30:])}
        stats = json.loads(stats_path.read_text())
    passes = [p for p in stats["pass_records"] if p["prefill_tokens"] == 0 and p["verify_tokens"] > 0]
    decode_seconds = sum(p["seconds"] for p in passes)
    committed = sum(p["committed"] for p in passes)
    streamed = sum(p["streamed_bytes"] for p in passes)
    copy_busy = sum(p["copy_busy_seconds"] for p in passes)
    draft = sum(p["draft_seconds"] for p in passes)
    record = {
        "name": name,
        "wall_seconds": round(ended - started, 2),
        "decode_passes": len(passes),
        "decode_tokens": committed,
        "decode_seconds": round(decode_seconds, 3),
        "decode_tokens_per_second": committed / decode_seconds if decode_seconds else 0.0,
        "tokens_per_row_pass": committed / max(1, sum(p["rows"] for p in passes)),
        "streamed_bytes_per_pass": streamed / max(1, len(passes)),
        "copy_busy_seconds": round(copy_busy, 3),
        "achieved_copy_gbps": streamed / copy_busy / 1e9 if copy_busy else 0.0,
        "draft_seconds": round(draft, 3),
        "mean_pass_seconds": decode_seconds / max(1, len(passes)),
        "backend": stats.get("backend"),
        "dummy_weights": stats.get("dummy_weights"),
        "memory": stats.get("memory"),
        "mean_rows_per_pass": sum(p["rows"] for p in passes) / max(1, len(passes)),
    }
    if "simulated_acceptance" in stats:
        record["simulated_acceptance"] = stats["simulated_acceptance"]
    # note: the decode phase is the last decode_seconds before generate returned (loading and
    # prefill come first, teardown after).
    finished = stats.get("generate_finished_unix_seconds", ended)
    utilization = sampler.mean_between(finished - decode_seconds, finished) if decode_seconds else None
    record["decode_gpu_utilization"] = utilization
    if utilization is not None and passes:
        compute = utilization * record["mean_pass_seconds"]
        largest = max(compute, copy_busy / len(passes), draft / len(passes))
        record["pass_over_largest_stage"] = record["mean_pass_seconds"] / largest if largest else None
    return record


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin", default=str(REPO / "build" / "apps" / "specoffload"))
    parser.add_argument("--target", default=str(REPO / "configs" / "mixtral-8x7b"))
    parser.add_argument("--draft", default=str(REPO / "configs" / "mistral-7b"),
                        help="a draft config directory, or layers:N for the target's first N layers (self-draft)")
    parser.add_argument("--dummy-type", default="",
                        help="the target's and draft's matrices in this GGUF type (e.g. Q2_K) instead of the config's")
    parser.add_argument("--gpu-mem", default="24G")
    parser.add_argument("--backend", default="cuda", help="cpu: a plumbing check of this script without a GPU")
    # note: 24G holds the bf16 Mistral-7B draft (14.5 GB), two ring slots of Mixtral layers (5.9 GB), both KV
    # caches and the activations; this leaves the target's weights 6.5 GB.
    parser.add_argument("--device-mem", default="6.5G", help="the target's weights budget")
    parser.add_argument("--rows", type=int, default=32)
    parser.add_argument("--kv-cache", default="auto", help="device, host (attention on CPU threads) or auto")
    parser.add_argument("--prompts", type=int, default=0,
                        help="prompts in the job (default: --rows); more than --rows keeps every pass full")
    parser.add_argument("--prompt-chars", type=int, default=128)
    parser.add_argument("--gen", type=int, default=16)
    parser.add_argument("--step-tokens", type=int, default=2048)
    parser.add_argument("--draft-max", type=int, default=4)
    parser.add_argument("--alphas", type=float, nargs="*", default=[0.6, 0.7, 0.8])
    parser.add_argument("--accelerate", action="store_true", help="also run bench/accelerate_offload.py")
    parser.add_argument("--timeout", type=int, default=900)
    parser.add_argument("--out", default="")
    parser.add_argument("--no-plain", action="store_true",
                        help="skip the run without speculation (each run loads the target again: minutes at scale)")
    parser.add_argument("--profile", default="", help="a `specoffload profile` JSON of this machine to reuse")
    args = parser.parse_args()

    records = []
    with tempfile.TemporaryDirectory() as tmp:
        profile_path = Path(args.profile) if args.profile else Path(tmp) / "profile.json"
        if not args.profile:
            done = subprocess.run([args.bin, "profile", "--backend", args.backend, "--seconds", "0.2", "-o",
                                   str(profile_path)], capture_output=True, text=True, timeout=300)
            if done.returncode != 0:
                print(done.stderr, file=sys.stderr)
                return 1
        profile = json.loads(profile_path.read_text())
    pinned_peak = profile["copy_pinned_gbps"]
    records.append({"name": "profile", "copy_pinned_gbps": pinned_peak, "copy_pageable_gbps": profile["copy_pageable_gbps"]})
    print(json.dumps(records[-1]), flush=True)

    def against_bound(record: dict) -> None:
        """rows * tau * BW / W: the pass's rows each commit tau tokens per sweep of the streamed weights."""
        if "error" in record or not record["streamed_bytes_per_pass"]:
            return
        bound = args.rows * record["tokens_per_row_pass"] * pinned_peak * 1e9 / record["streamed_bytes_per_pass"]
        record["physical_bound_tokens_per_second"] = bound
        record["fraction_of_physical_bound"] = record["decode_tokens_per_second"] / bound

    plain = {"name": "no speculation", "error": "not run (--no-plain)"}
    if not args.no_plain:
        plain = run_engine(args, "no speculation", ["--draft-max", "0"])
        against_bound(plain)
        records.append(plain)
        print(json.dumps(plain), flush=True)
    self_draft = args.draft.startswith("layers:")
    drafter = ["--draft-layers", args.draft.split(":", 1)[1]] if self_draft else ["--draft-model", args.draft]
    draft_name = f"self-draft {args.draft.split(':', 1)[1]} layers" if self_draft else Path(args.draft).name
    for alpha in args.alphas:
        record = run_engine(args, f"draft {draft_name}, simulated alpha {alpha}",
                            [*drafter, "--draft-length", "fixed", "--draft-max", str(args.draft_max),
                             "--simulate-acceptance", str(alpha)])
        if "error" not in record and "error" not in plain and plain["decode_tokens_per_second"]:
            record["speedup_vs_no_speculation"] = record["decode_tokens_per_second"] / plain["decode_tokens_per_second"]
        against_bound(record)
        if "error" not in record:
            record["copy_over_pinned_peak"] = record["achieved_copy_gbps"] / pinned_peak
        records.append(record)
        print(json.dumps(record), flush=True)

    if args.accelerate:
        done = subprocess.run([sys.executable, str(REPO / "bench" / "accelerate_offload.py"), "--config",
                               str(Path(args.target) / "config.json"), "--gpu-mem", args.gpu_mem, "--rows",
                               str(args.rows), "--prompt-tokens", str(args.prompt_chars), "--gen", "3"],
                              capture_output=True, text=True, timeout=args.timeout)
        accelerate = json.loads(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else {
            "name": "accelerate", "error": done.stderr[-3000:]}
        records.append(accelerate)
        print(json.dumps(accelerate), flush=True)
        for record in records:
            if record.get("simulated_acceptance") and accelerate.get("decode_tokens_per_second"):
                record["speedup_vs_accelerate"] = record["decode_tokens_per_second"] / accelerate["decode_tokens_per_second"]

    try:
        device = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
                                capture_output=True, text=True).stdout.strip()
    except FileNotFoundError:
        device = f"no nvidia-smi ({args.backend} backend)"
    result = {"device": device, "date": datetime.date.today().isoformat(), "target": args.target, "draft": args.draft,
              "dummy_type": args.dummy_type or "the config's torch_dtype",
              "gpu_mem": args.gpu_mem, "rows": args.rows, "kv_cache": args.kv_cache, "gen": args.gen,
              "draft_max": args.draft_max,
              "records": records}
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
