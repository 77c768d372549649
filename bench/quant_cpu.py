"""This engine vs llama.cpp on the quantized types models ship in, for a dense and a MoE model, CPU.

SmolLM2 ships as Q4_1; the models people run in 2026 ship as Q4_K_M (mostly Q4_K), Q5_K_M, and for the largest
MoE models Q3_K_M / Q2_K, and Qwen3-30B-A3B is the MoE people run on a CPU. No such file is at hand, so both are
random weights of those layouts at a size the CI machine holds (tests/python/model_factory.py writes them: blocks
with random codes and sane scales), every matrix in the type named:
  qwen3 dense    dim 1024, 12 layers, head 128 (16 q / 4 kv heads), ffn 3072             ~ 0.1 GB at Q4_K
  qwen3moe       the same attention, 64 experts of ffn 768, 8 used per token (A3B's ratio)  ~ 1.1 GB at Q4_K
and bench/cpu_vs_llama.py runs its three workloads on each (same file, same threads, side by side).

    python bench/quant_cpu.py [--types Q4_K Q2_K] [--shapes qwen3moe] [--threads 2] [--repeats 2]
                              [--out bench/results/cpu_vs_llama_quant_<date>.json]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "python"))
import model_factory as mf  # noqa: E402

SHAPES = {
    "qwen3-dense": dict(arch="qwen3", ffn_dim=3072),
    "qwen3moe-64x768-top8": dict(arch="qwen3moe", ffn_dim=768, n_experts=64, n_experts_used=8),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--types", nargs="+", default=["Q4_K"], help="GGUF types, e.g. Q4_K Q5_K Q3_K Q2_K Q5_0")
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    parser.add_argument("--out", default="")
    args = parser.parse_args()
    records = []
    with tempfile.TemporaryDirectory(prefix="quant-cpu-") as tmp:
        for dtype, shape_name in ((t, s) for t in args.types for s in args.shapes):
            name, shape = f"{shape_name}-{dtype.lower()}", SHAPES[shape_name]
            spec = mf.ModelSpec(dtype=dtype, tied=False, n_layers=12, dim=1024, n_heads=16, n_kv_heads=4,
                                key_length=128, rope_theta=1e6, rms_eps=1e-6, vocab_size=640, context_length=4096,
                                **shape)
            path = mf.write_gguf(spec, Path(tmp) / f"{name}.gguf")
            out = Path(tmp) / f"{name}.json"
            subprocess.run([sys.executable, str(REPO / "bench" / "cpu_vs_llama.py"), "--model", str(path), "--threads",
                            str(args.threads), "--repeats", str(args.repeats), "--out", str(out)],
                           check=True, stderr=subprocess.DEVNULL)
            for record in json.loads(out.read_text()):
                record["model"] = name
                record["weight_type"] = dtype
                records.append(record)
                print(json.dumps(record), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(records, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
