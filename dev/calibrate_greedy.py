"""Calibrates tests/python/test_greedy_default_model.py: how far does an exact f32 forward pass (numpy_forward,
standing in for an engine that does not quantize activations) drift from llama.cpp's greedy tokens on the
default model? Prints, per prompt, the first divergence and llama.cpp's logit gaps there.

    ~/.cache/specoffload/venv/bin/python dev/calibrate_greedy.py
"""

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "python"))

import llama_reference  # noqa: E402
import numpy_forward  # noqa: E402
import parity  # noqa: E402
from test_greedy_default_model import N_TOKENS, PROMPTS  # noqa: E402


def main() -> int:
    model = parity.default_model()
    weights = numpy_forward.load_gguf(model)
    gaps, forced_gaps, n_forced = [], [], 0
    for prompt in PROMPTS:
        tokens = llama_reference.tokenize(model, prompt)
        start = time.time()
        ref = llama_reference.greedy(model, tokens, N_TOKENS)
        t_ref = time.time() - start
        ours = numpy_forward.greedy(weights, tokens, N_TOKENS)
        # teacher forcing: llama.cpp's logits along our own continuation; how much does it prefer its argmax?
        forced = llama_reference.logits(model, tokens + ours)[len(tokens) - 1:-1]
        prefers = forced.max(axis=1) - forced[np.arange(N_TOKENS), ours]
        forced_gaps += [float(g) for g in prefers if g > 0]
        n_forced += N_TOKENS
        if ours == ref.tokens:
            print(f"equal   ({len(tokens):3d} prompt tokens, llama.cpp {t_ref:.1f}s) {prompt[:50]!r}")
            continue
        i = next(k for k, (a, b) in enumerate(zip(ours, ref.tokens)) if a != b)
        row = ref.step_logits[i]
        gap = float(row.max() - row[ours[i]])
        gaps.append(gap)
        print(f"diverge at {i:2d}: llama.cpp top-2 gap {ref.top2_gap(i):.4f}, prefers its token by {gap:.4f} "
              f"{prompt[:50]!r}")
    print(f"{len(gaps)} of {len(PROMPTS)} prompts diverge; gaps {np.round(gaps, 4).tolist()}")
    print(f"teacher-forced: {len(forced_gaps)} of {n_forced} tokens are not llama.cpp's argmax; "
          f"llama.cpp prefers its own by {np.round(sorted(forced_gaps), 4).tolist()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
