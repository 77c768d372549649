"""Writes the inputs of dev/gpu_check/check.py: small random GGUF models (every architecture, the weight dtypes
users run) and, for each, a ragged logits request whose MoE tokens route with a margin (parity.draw_tokens), so
the GPU-vs-CPU comparison is about arithmetic, not which side of a routing tie each backend lands on.

Needs gguf, numpy and safetensors (the GPU machine gets gguf as a carried wheel: dev/gpu_check/run.sh).
    python dev/gpu_check/make_models.py OUT_DIR
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "python"))

import model_factory  # noqa: E402
import parity  # noqa: E402

# (length, prefill): a long prompt chunk (a cuBLAS-sized matmul on the GPU), decode steps, one-token prompts
SHAPES = [(40, 32), (24, 8), (17, 1), (9, 9)]


def specs() -> list[model_factory.ModelSpec]:
    variants = [("llama", True), ("llama", False), ("qwen2", None), ("mixtral", None), ("qwen3", None),
                ("qwen3moe", None), ("gemma3", None), ("gptoss", None), ("deepseek2", None)]
    chosen = [model_factory.make_spec(arch, "Q4_K", tied) for arch, tied in variants]
    chosen += [model_factory.make_spec(arch, "F16") for arch in ("qwen3", "gemma3", "deepseek2", "qwen3moe")]
    chosen += [model_factory.make_spec("llama", dtype) for dtype in
               ("F32", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_K", "Q6_K", "MXFP4", "Q2_K", "Q3_K")]
    chosen += [model_factory.make_spec("qwen3moe", "Q3_K"), model_factory.make_spec("gemma3", "Q6_K"),
               model_factory.gpt_oss_as_released("BF16"), model_factory.deepseek_lite_spec("Q8_0"),
               model_factory.make_spec("gemma3", "Q5_0", seed=1)]
    return chosen


def main(argv: list[str]) -> int:
    out = Path(argv[1])
    out.mkdir(parents=True, exist_ok=True)
    for spec in specs():
        model_factory.write_gguf(spec, out / f"{spec.name}.gguf")
        sequences = parity.ragged_batch(spec, SHAPES, seed=11)
        request = {"sequences": [s.as_request() for s in sequences]}
        (out / f"{spec.name}.request.json").write_text(json.dumps(request))
        print(spec.name, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
