"""The CUDA backend against the CPU backend, end to end, on every model dev/gpu_check/make_models.py wrote.

For each model (numpy and the standard library only: the GPU machine runs it without the test venv):
- teacher-forced logits of a ragged batch, CPU vs GPU: max |gpu - cpu| / max |cpu| per position, argmax
  agreement, and for each disagreement how far the GPU's pick is below the CPU's best (near ties only pass);
- greedy generation on the GPU: weights streamed through a small --device-mem equal to weights resident,
  self-draft and n-gram speculation equal to plain (every step stays on the batch-invariant kernels; the
  interleaved schedule is CPU-only so far and refused on CUDA);
- greedy with the KV cache in host memory (attention on host threads): each token is one the CPU ranks within
  a near tie of its best, teacher-forced.
The CPU backend already matches llama.cpp (tests/python/test_llama_parity.py), so the GPU is held to the CPU.

    python3 dev/gpu_check/check.py --bin build/apps/specoffload --models DIR [--gpu-backend cuda] [--out FILE]
--gpu-backend cpu runs the plumbing here without a GPU.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

PROMPTS = ["def fibonacci(n):\n    if n < 2:", "The quick brown fox", "class Queue:\n    def push(self, item):",
           "Mr. Speaker, the state of our union is"]
GEN_TOKENS = 20
# Bounds (max |gpu - cpu| / max |cpu|; a pick off the CPU's argmax passes when within `tie` of max |logit| of
# the best): those the CPU itself is held to against llama.cpp (tests/python/test_llama_parity.py). Quantized
# weights carry the 8-bit activation rounding both backends do before each quantized matmul (as llama.cpp), in
# another summation order: near ties flip, and latent attention's extra matmuls compound it.
BOUNDS = {"F32": (5e-3, 2e-3), "F16": (8e-3, 3e-3), "BF16": (5e-2, 1.5e-2), "quantized": (0.15, 0.08)}
MIN_ARGMAX = 0.9
EQUALITIES = ("streamed_equals_resident", "self_draft_equals_plain", "ngram_equals_plain")


def run(args: list, timeout: int = 600) -> subprocess.CompletedProcess:
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True, errors="replace", timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, args))}\n{done.stderr[-2000:]}")
    return done


def logits(binary: Path, model: Path, request: dict, backend: str) -> list[np.ndarray]:
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        request_path, output = Path(tmp) / "request.json", Path(tmp) / "logits.bin"
        request_path.write_text(json.dumps(request))
        done = run([binary, "logits", "-m", model, "--backend", backend, "--input", request_path, "--output", output])
        summary = json.loads(done.stdout)
        values = np.fromfile(output, dtype="<f4").reshape(-1, summary["n_vocab"])
    splits = np.cumsum(summary["n_tokens"])[:-1]
    return np.split(values, splits)


def generate(binary: Path, model: Path, backend: str, *flags) -> list[dict]:
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        path = Path(tmp) / "prompts.txt"
        path.write_text("\n".join(p.replace("\\", "\\\\").replace("\n", "\\n") for p in PROMPTS) + "\n")
        done = run([binary, "generate", "-m", model, "--backend", backend, "-f", path, "-e", "-n", GEN_TOKENS,
                    "--temp", "0", "--ignore-eos", "--json", "--max-rows", len(PROMPTS), *flags])
    results = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    assert len(results) == len(PROMPTS), done.stdout
    return results


def weight_class(model: Path) -> str:
    """The BOUNDS key of a model_factory file name: its matmul dtype, or "quantized" (MXFP4 experts count)."""
    for dtype in ("F32", "F16", "BF16"):
        if f"-{dtype}-" in model.name and "MXFP4" not in model.name:
            return dtype
    return "quantized"


def compare_logits(cpu: list[np.ndarray], gpu: list[np.ndarray], max_error: float, tie: float) -> dict:
    ref, ours = np.concatenate(cpu), np.concatenate(gpu)
    scale = np.abs(ref).max(axis=1)
    errors = np.abs(ours - ref).max(axis=1) / scale
    best, picked = ref.argmax(axis=1), ours.argmax(axis=1)
    rows = np.arange(len(ref))
    gaps = (ref[rows, best] - ref[rows, picked]) / scale
    agreement = float((best == picked).mean())
    ok = not np.isnan(ours).any() and errors.max() <= max_error and gaps.max() <= tie and agreement >= MIN_ARGMAX
    return {"ok": bool(ok), "max_error": float(errors.max()), "mean_error": float(errors.mean()),
            "argmax_agreement": agreement, "worst_pick_gap": float(gaps.max()), "positions": len(ref)}


def cpu_pick_gaps(binary: Path, model: Path, results: list[dict]) -> float:
    """Teacher-forced on the CPU along each continuation: the largest (best - picked) / max |logit|."""
    request = {"sequences": [{"tokens": r["prompt_tokens"] + r["tokens"], "prefill": len(r["prompt_tokens"])}
                             for r in results]}
    worst = 0.0
    for r, rows in zip(results, logits(binary, model, request, "cpu")):
        n_prompt = len(r["prompt_tokens"])
        for j, token in enumerate(r["tokens"]):
            row = rows[n_prompt - 1 + j]
            worst = max(worst, float((row.max() - row[token]) / np.abs(row).max()))
    return worst


def check_model(binary: Path, model: Path, gpu: str, generation: bool) -> dict:
    request = json.loads(model.with_suffix(".request.json").read_text())
    max_error, tie = BOUNDS[weight_class(model)]
    record = {"model": model.stem}
    record["logits"] = compare_logits(logits(binary, model, request, "cpu"), logits(binary, model, request, gpu),
                                      max_error, tie)
    if not generation:
        record["ok"] = record["logits"]["ok"]
        return record
    resident = generate(binary, model, gpu)
    tokens = [r["tokens"] for r in resident]
    same_tokens = lambda *flags: [r["tokens"] for r in generate(binary, model, gpu, *flags)] == tokens  # noqa: E731
    # half the weights through one ring slot: a 2-layer model keeps its embeddings and streams its layers
    budget = ["--device-mem", f"{model.stat().st_size // 2 // 1024}K", "--ring-slots", "1"]
    record["streamed_equals_resident"] = same_tokens(*budget)
    record["self_draft_equals_plain"] = same_tokens("--draft-layers", "1", "--draft-max", "4")
    record["ngram_equals_plain"] = same_tokens("--draft-ngram")
    record["resident_worst_cpu_gap"] = cpu_pick_gaps(binary, model, resident)
    host = generate(binary, model, gpu, "--kv-cache", "host", *budget)
    record["host_kv_worst_cpu_gap"] = cpu_pick_gaps(binary, model, host)
    record["ok"] = (record["logits"]["ok"] and all(record[key] for key in EQUALITIES)
                    and max(record["resident_worst_cpu_gap"], record["host_kv_worst_cpu_gap"]) <= tie)
    return record


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin", required=True, type=Path)
    parser.add_argument("--models", required=True, type=Path)
    parser.add_argument("--gpu-backend", default="cuda")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--glob", default="*.gguf", help="the models of --models to check")
    parser.add_argument("--generate-on", default="-Q4_K-",
                        help="run the generation checks on models whose name holds this (each GPU process costs a "
                             "context start; every model gets the logits check)")
    args = parser.parse_args()
    records = []
    for model in sorted(args.models.glob(args.glob)):
        try:
            record = check_model(args.bin, model, args.gpu_backend, args.generate_on in model.name)
        except Exception as error:  # keep going: one model's failure must not hide the others'
            record = {"model": model.stem, "ok": False, "error": str(error)[-3000:]}
        records.append(record)
        print(json.dumps(record), flush=True)
    if args.out:
        args.out.write_text(json.dumps(records, indent=1) + "\n")
    print(f"\n{'model':48} {'ok':>3} {'maxerr':>8} {'argmax':>7} {'gap':>7} {'strm':>4} {'spec':>4} {'ngrm':>4} "
          f"{'res':>6} {'hostkv':>6}")
    for r in records:
        if "error" in r:
            print(f"{r['model']:48} ERR {r['error'].splitlines()[-1][:80]}")
            continue
        lg = r["logits"]
        line = (f"{r['model']:48} {'ok' if r['ok'] else 'NO':>3} {lg['max_error']:8.2e} "
                f"{lg['argmax_agreement']:7.3f} {lg['worst_pick_gap']:7.4f}")
        if "streamed_equals_resident" in r:
            line += "".join(f" {int(r[key]):>4}" for key in EQUALITIES)
            line += f" {r['resident_worst_cpu_gap']:6.4f} {r['host_kv_worst_cpu_gap']:6.4f}"
        print(line)
    failed = [r["model"] for r in records if not r["ok"]]
    print(f"{len(records) - len(failed)}/{len(records)} models pass" + (f"; failing: {failed}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
