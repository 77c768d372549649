"""Prints how far the NumPy forward pass (and the engine, when SPECOFFLOAD_BIN is set) land from llama.cpp, per
generated model: the numbers behind the bounds in tests/python/test_llama_parity.py and test_model_factory.py.

    ~/.cache/specoffload/venv/bin/python dev/parity_report.py [--seeds 3] [--f16-kv] [--dtype Q4_K ...]

Columns: max and mean normalized error (max|diff| / max|ref| per position) over all positions of 5 sequences per
seed, argmax agreement, and the largest reference top-2 gap (as a fraction of max|ref|) where argmax differs.
"""

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "python"))

import engine  # noqa: E402
import llama_reference  # noqa: E402
import model_factory  # noqa: E402
import numpy_forward  # noqa: E402
import parity  # noqa: E402

SHAPES = [(18, 12), (7, 1), (25, 20), (11, 11), (30, 3)]


def row(name: str, c: parity.Comparison) -> str:
    differ = c.argmax_ours != c.argmax_ref
    tie = (c.ref_gaps[differ] / c.ref_scale[differ]).max() if differ.any() else 0.0
    return (f"{name:34s} max {c.errors.max():.2e}  mean {c.errors.mean():.2e}  argmax {c.argmax_agreement:.3f}"
            f"  widest tie {tie:.2e}")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--f16-kv", action="store_true", help="llama.cpp with its default f16 KV cache")
    parser.add_argument("--dtype", action="append", help="only these dtypes (repeatable)")
    args = parser.parse_args()
    with_engine = engine.engine_path() is not None
    for spec in model_factory.parity_specs(tuple(args.dtype) if args.dtype else model_factory.DTYPES):
        model = model_factory.gguf_path(spec)
        weights = parity.numpy_weights(spec)
        numpy_vs, engine_vs = [], []
        for seed in range(args.seeds):
            sequences = parity.ragged_batch(spec, SHAPES, seed)
            refs = [llama_reference.logits(model, s.tokens, s.prefill, f16_kv=args.f16_kv) for s in sequences]
            for s, ref in zip(sequences, refs):
                numpy_vs.append(parity.compare("", numpy_forward.logits(weights, list(s.tokens), s.prefill), ref))
            if with_engine:
                for ours, ref in zip(engine.run_logits(model, sequences), refs):
                    engine_vs.append(parity.compare("", ours, ref))
        print(row(f"{spec.name} numpy", parity.merge("", numpy_vs)), flush=True)
        if with_engine:
            print(row(f"{spec.name} engine", parity.merge("", engine_vs)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
