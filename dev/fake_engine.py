"""A stand-in for the engine binary that implements its `logits` and `generate` CLI contract in Python.

Why: the parity tests in tests/python were written before the engine existed. Running them against this stand-in
(built on the independent NumPy forward pass, with llama.cpp's tokenizer for prompts) shows that the harness
itself works: correct plumbing passes, and a planted bug (FAKE_ENGINE_BUG=...) fails with a readable report.
It is slow and computes each sequence on its own, so it says nothing about batching; it is not a reference.

    SPECOFFLOAD_BIN=dev/fake_engine pytest tests/python/test_llama_parity.py
    FAKE_ENGINE_BUG=rope_theta SPECOFFLOAD_BIN=dev/fake_engine pytest ...   # must fail

Planted bugs: rope_theta (uses 10000), eps (uses 1e-3), batch (perturbs a sequence's logits when it is not
alone in the batch, by one ulp), top1 (MoE: uses only the best expert).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "python"))

import numpy_forward  # noqa: E402

BUG = os.environ.get("FAKE_ENGINE_BUG", "")


def load(model: Path) -> numpy_forward.Weights:
    weights = numpy_forward.load_hf(model) if model.is_dir() else numpy_forward.load_gguf(model)
    if BUG == "rope_theta":
        weights.config.rope_theta = 10000.0
    if BUG == "eps":
        weights.config.rms_eps = 1e-3
    if BUG == "top1" and weights.config.n_experts:
        weights.config.n_experts_used = 1
    return weights


def cmd_logits(args) -> int:
    weights = load(Path(args.model))
    request = json.loads(Path(args.input).read_text())
    sequences = request["sequences"]
    outputs = []
    for seq in sequences:
        # note: one token per step whatever the prefill: NumPy's matrix-matrix and matrix-vector products sum in
        # different orders, and the engine's contract is that the split does not change a single bit.
        logits = numpy_forward.logits(weights, seq["tokens"], prefill=1).astype("<f4")
        if BUG == "batch" and len(sequences) > 1:
            logits = np.nextafter(logits, np.float32(np.inf)).astype("<f4")
        outputs.append(logits)
    with open(args.output, "wb") as f:
        for logits in outputs:
            f.write(logits.tobytes())
    print(json.dumps({"n_vocab": weights.config.vocab_size, "n_tokens": [len(s["tokens"]) for s in sequences]}))
    return 0


def cmd_generate(args) -> int:
    import llama_reference

    model = Path(args.model)
    weights = load(model)
    prompts = [args.prompt] if args.prompt is not None else Path(args.file).read_text().splitlines()
    for prompt in prompts:
        prompt_tokens = llama_reference.tokenize(model, prompt)
        tokens = numpy_forward.greedy(weights, prompt_tokens, args.n)
        text = llama_reference.detokenize(model, tokens)
        print(json.dumps({"prompt_tokens": prompt_tokens, "tokens": tokens, "text": text}), flush=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("logits")
    p.add_argument("-m", dest="model", required=True)
    p.add_argument("--input", required=True)
    p.add_argument("--output", required=True)
    p.add_argument("--threads", type=int, default=2)
    p.set_defaults(func=cmd_logits)
    g = sub.add_parser("generate")
    g.add_argument("-m", dest="model", required=True)
    g.add_argument("-p", dest="prompt")
    g.add_argument("-f", dest="file")
    g.add_argument("-n", type=int, required=True)
    g.add_argument("--temp", type=float, default=0.8)
    g.add_argument("--json", action="store_true")
    g.add_argument("--ignore-eos", action="store_true")
    g.set_defaults(func=cmd_generate)
    args = parser.parse_args()
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
